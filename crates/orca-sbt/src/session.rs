//! One SBT session (one RMAN channel): configuration, the repository, the file open for
//! writing or reading, the pending error and the buffers whose addresses RMAN holds until the
//! next call. Everything here is safe Rust; [`crate::ffi`] maps C calls onto it.

use std::time::Instant;

use orca_repo::LineageCache;
use orca_repo::{
    FileType, KeySource, PieceFilter, PieceMeta, PieceReader, PieceWriter, ReadOptions, RepoError,
    Repository, WriteOptions,
};

use crate::config::{Backend, Config};
use crate::demux::{Part, Splitter, plausible};
use crate::stream::{Identity, StreamScan};
use crate::trace::Trace;

/// SBT error codes (oracle-facts §1.7).
pub const SBT_ERROR_MM: u64 = 7501;
pub const SBT_ERROR_NOTFOUND: u64 = 7502;
pub const SBT_ERROR_EXISTS: u64 = 7503;
pub const SBT_ERROR_EOF: u64 = 7504;

/// Longest backup file name RMAN may pass, NUL included (`SBT_FILE_MAX`).
pub const SBT_FILE_MAX: usize = 512;

/// Version this library reports (`SBTINIT_MMSVSN`, shown as `MMS Version a.b.c.d`).
pub const MMS_VERSION: [u8; 4] = [0, 1, 0, 0];

/// A failed call: the code and text `sbterror` hands to RMAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbtFailure {
    pub code: u64,
    pub text: String,
}

impl SbtFailure {
    pub fn mm(text: impl Into<String>) -> Self {
        SbtFailure {
            code: SBT_ERROR_MM,
            text: text.into(),
        }
    }
}

pub type SbtResult<T> = Result<T, SbtFailure>;

/// What `sbtbackup` learns from RMAN's `sbtobject` list.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    pub db_name: Option<String>,
    pub dbid: Option<u64>,
    /// `SBTOBJECT_FILETYPE`: 1 datafile, 2 archived log, 3 other.
    pub file_type: Option<u64>,
}

/// Bytes held back at the start of a piece until its identity (datafile) is known, so the
/// fingerprint cache of that datafile can be consulted from the first chunk on.
const SNIFF_BYTES: usize = 2 << 20;
/// A piece whose first [`SNIFF_BYTES`] hold the blocks of one datafile only is held back
/// up to this much: RMAN may open a multiplexed piece with a run of one file's blocks as
/// long as 64 blocks, and a multiplexed piece must be known as one before its first chunk.
const SNIFF_MAX: usize = 16 << 20;
/// The held-back head is kept in segments of this size, taken from the writers' chunk buffers
/// and handed back as each is written, so that the head and the pipeline it feeds share
/// their memory rather than add up.
const HEAD_SEGMENT: usize = 1 << 20;

struct Writing {
    name: String,
    block_size: usize,
    object: ObjectInfo,
    /// The held-back head, in segments of [`HEAD_SEGMENT`] from `buffers`.
    head: Vec<Vec<u8>>,
    head_len: usize,
    buffers: std::sync::Arc<orca_repo::BufferPool>,
    writer: Option<PieceWriter>,
    lineage_key: Option<String>,
    /// Bytes the cache entry of `lineage_key` covered when the piece began.
    known: u64,
    scan: StreamScan,
    /// Set when the piece is stored demultiplexed.
    demux: Option<Demuxing>,
    /// Set when a single datafile's chunks are keyed by block number.
    regions: Option<Regions>,
    started: Instant,
}

/// Lanes of a multiplexed piece past this many files keep their blocks in the layout:
/// each lane holds up to a chunk in memory.
const MAX_LANES: usize = 64;

/// A piece stored demultiplexed, one lane per datafile (relative file number).
struct Demuxing {
    /// Names the lanes' fingerprint cache entries; without it lanes are only probed.
    dbid: Option<u64>,
    /// Each lane, with the bytes its cache entry covered when the piece began.
    lanes: std::collections::BTreeMap<u32, u64>,
    /// The chunk size when each lane's chunks are keyed by block number (a full backup, see
    /// [`Regions`]; a lane holds only blocks, so a region is a whole chunk's worth of them),
    /// and each lane's first block number of its next region.
    by_block: Option<usize>,
    next: std::collections::BTreeMap<u32, u32>,
}

/// Lane regions a writer takes ([`PieceWriter::realign_lane`]): past them, a lane's blocks
/// are keyed by offset.
const MAX_LANE_REGION: u32 = (1 << 16) - 1;

impl Demuxing {
    fn key(&self, lane: u32) -> Option<String> {
        self.dbid.map(|d| format!("lane:{d}/{lane}"))
    }

    /// Send one part of the stream to its lane, starting the lane (and consulting its
    /// fingerprint cache entry) on its first block.
    fn put(
        &mut self,
        writer: &mut PieceWriter,
        cache: Option<&LineageCache>,
        trace: &Trace,
        part: Part<'_>,
    ) -> Result<(), RepoError> {
        let (file, bytes) = match part {
            Part::Other(bytes) => return writer.write_literal(bytes),
            Part::Block { file, bytes } => (file, bytes),
        };
        if !self.lanes.contains_key(&file) {
            if self.lanes.len() >= MAX_LANES || file > orca_repo::MAX_LANE {
                return writer.write_literal(bytes);
            }
            // A lane's unit is its own file's, not the piece's (the smallest block size in
            // the set): else it would change with the files RMAN puts beside it, and a lane
            // whose unit changed finds no anchor and is stored whole.
            writer.set_lane_unit(file, unit_for(Some(bytes.len())))?;
            let mut known = 0;
            if let (Some(c), Some(k)) = (cache, self.key(file)) {
                match c.load(&k) {
                    Ok(l) => {
                        known = l.bytes();
                        if !l.is_empty() && !writer.set_lane_lineage(file, l) {
                            trace.line(1, &format!("fingerprint cache entry {k} predates a garbage collection of the repository: probing instead"));
                        }
                    }
                    Err(e) => trace.line(
                        0,
                        &format!("fingerprint cache entry {k} unreadable, probing instead: {e}"),
                    ),
                }
            }
            self.lanes.insert(file, known);
        }
        if let Some(size) = self.by_block
            && let Some(rdba) = plausible(bytes)
            && rdba.rfile() == file
        {
            let per = u32::try_from(size / bytes.len()).unwrap_or(0);
            let next = self.next.entry(file).or_insert(0);
            if let Some(region) = region_begun(next, per, rdba.block())
                && region < MAX_LANE_REGION
            {
                writer.realign_lane(file, u64::from(region) + 1)?;
            }
        }
        writer.write_lane(file, bytes)
    }
}

/// The region (of `per` block numbers) that `block` begins, when it reaches `next`, the first
/// block number of the next region, which then moves past it.
fn region_begun(next: &mut u32, per: u32, block: u32) -> Option<u32> {
    if per == 0 || block < *next {
        return None;
    }
    let region = block / per;
    *next = (region + 1).saturating_mul(per);
    Some(region)
}

/// Keys a single datafile's chunks by block number rather than stream offset: each run of
/// a chunk's worth of block numbers starts a region of the piece ([`PieceWriter::realign`]).
/// RMAN leaves never-formatted blocks out of a backup, so a block formatted in the middle of
/// a file moves every later block in the stream; by block number it changes one chunk.
struct Regions {
    block_size: usize,
    /// Block numbers per region: 15/16 of a chunk's worth, so that what RMAN puts between
    /// runs of blocks (record headers) fits in the region's chunk with its blocks.
    per: u32,
    rfile: u32,
    /// The first block number of the next region.
    next: u32,
    /// Stream offset of the next byte written, modulo the block size.
    phase: usize,
}

impl Regions {
    /// For a piece whose head shows a full backup of one datafile; `None` for a level 1
    /// (sparse changed blocks would make a chunk of every few), chunks smaller than a block,
    /// or with `ORCA_SBT_BY_BLOCK=0` ([`by_block`]).
    fn new(scan: &StreamScan, chunk_size: usize) -> Option<Regions> {
        if !by_block() {
            return None;
        }
        let run = scan.seen().run().filter(|r| r.dense())?;
        let per = u32::try_from(chunk_size / 16 * 15 / run.block_size).ok()?;
        (per > 0).then_some(Regions {
            block_size: run.block_size,
            per,
            rfile: run.rfile,
            next: 0,
            phase: 0,
        })
    }

    /// Write `buf`, starting a region at each block whose number reaches the next region's
    /// (with RMAN's bytes just before it, after the last block of the region before). Only
    /// blocks at multiples of their size are looked at, as RMAN lays them out; a block
    /// missed costs dedup, never data.
    fn write(&mut self, writer: &mut PieceWriter, buf: &[u8]) -> Result<(), RepoError> {
        let bs = self.block_size;
        let mut from = 0;
        let mut at = (bs - self.phase) % bs;
        // Where in `buf` the last block of the file ended.
        let mut after_block = None;
        while at + bs <= buf.len() {
            if let Some(rdba) = plausible(&buf[at..at + bs])
                && rdba.rfile() == self.rfile
            {
                if let Some(region) = region_begun(&mut self.next, self.per, rdba.block()) {
                    let cut = after_block.filter(|&e| e >= from).unwrap_or(at);
                    writer.write(&buf[from..cut])?;
                    writer.realign(u64::from(region) + 1)?;
                    from = cut;
                }
                after_block = Some(at + bs);
            }
            at += bs;
        }
        self.phase = (self.phase + buf.len()) % bs;
        writer.write(&buf[from..])
    }
}

/// Whether datafile chunks are keyed by block number (single-file pieces and lanes alike):
/// `ORCA_SBT_BY_BLOCK=0` keys them by stream offset, as before.
fn by_block() -> bool {
    std::env::var("ORCA_SBT_BY_BLOCK").as_deref() != Ok("0")
}

/// The unit a datafile's chunks are fingerprinted in, for blocks of `block_size` bytes:
/// one block when blocks are 2 or 4 KiB (`ORCA_SBT_UNIT_BY_BLOCK=0`: 8 KiB whatever the
/// block size), so that a changed block costs itself in a delta, not the 8 KiB around it.
fn unit_for(block_size: Option<usize>) -> usize {
    block_size
        .filter(|_| std::env::var("ORCA_SBT_UNIT_BY_BLOCK").as_deref() != Ok("0"))
        .map_or(orca_repo::UNIT, orca_repo::unit_for_block)
}

/// Whether a piece is stored demultiplexed: `ORCA_SBT_DEMUX=0` never, `1` whenever it holds
/// Oracle blocks, by default when it holds blocks of more than one datafile (a single-file
/// piece keeps the faster path that fingerprints RMAN's buffers in place).
fn demux_wanted(scan: &StreamScan) -> bool {
    let seen = scan.seen();
    match std::env::var("ORCA_SBT_DEMUX").as_deref() {
        Ok("0") => false,
        Ok("1") => seen.oracle_blocks > 0,
        _ => seen.multiplexed(),
    }
}

impl Writing {
    /// The fingerprint cache entries this piece relies on.
    fn cache_keys(&self) -> Vec<String> {
        let lanes = self
            .demux
            .iter()
            .flat_map(|d| d.lanes.keys().filter_map(|&l| d.key(l)));
        self.lineage_key.iter().cloned().chain(lanes).collect()
    }
}

struct Reading {
    reader: PieceReader,
    block_size: usize,
}

enum Open {
    None,
    Write(Box<Writing>),
    Read(Box<Reading>),
}

/// An opened repository with the runtime its pipelines run on.
struct Repo {
    // Field order matters: the repository's tasks must end before the runtime drops.
    repo: Repository,
    cache: Option<LineageCache>,
    /// Through the vault, piece names are kept as `<database>/<handle>`, the database being
    /// the token's: RMAN's `%U` handles are unique within one database only, and several
    /// databases share a vault.
    namespace: Option<String>,
    _rt: tokio::runtime::Runtime,
}

impl Repo {
    /// The repository's name of the piece RMAN calls `handle`.
    fn key(&self, handle: &str) -> String {
        match &self.namespace {
            Some(db) => format!("{db}/{handle}"),
            None => handle.to_string(),
        }
    }
}

pub struct Session {
    pub trace: Trace,
    overrides: std::collections::HashMap<String, String>,
    config: Option<Config>,
    repo: Option<Repo>,
    open: Open,
}

impl Session {
    pub fn new(trace: Trace) -> Session {
        Session {
            trace,
            overrides: Default::default(),
            config: None,
            repo: None,
            open: Open::None,
        }
    }

    /// `sbtinit2`: read the configuration from the channel's environment.
    pub fn init(&mut self) -> SbtResult<()> {
        let overrides = &self.overrides;
        let cfg =
            Config::from_lookup(|k| overrides.get(k).cloned().or_else(|| std::env::var(k).ok()))
                .map_err(SbtFailure::mm)?;
        self.trace
            .line(1, &format!("configured: {}", cfg.describe()));
        self.config = Some(cfg);
        Ok(())
    }

    /// `sbtcommand`: `ENV=(A=1,B=2)` sets variables for this channel, as RMAN's SEND does.
    pub fn command(&mut self, text: &str) -> SbtResult<()> {
        self.trace.line(1, &format!("sbtcommand: {text}"));
        let Some(env) = crate::config::parse_env_command(text) else {
            return Ok(());
        };
        // Kept per session rather than in the process environment: channels may be threads.
        self.overrides.extend(env);
        if self.config.is_some() {
            self.repo = None;
            self.init()?;
        }
        Ok(())
    }

    fn config(&self) -> SbtResult<&Config> {
        self.config.as_ref().ok_or_else(|| {
            SbtFailure::mm("the SBT session is not initialised (sbtinit2 was not called)")
        })
    }

    fn repo(&mut self) -> SbtResult<&mut Repo> {
        if self.repo.is_none() {
            let cfg = self.config()?.clone();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(
                    env_number("ORCA_SBT_IO_THREADS")
                        .unwrap_or(IO_THREADS)
                        .max(1),
                )
                .thread_name("orca-sbt")
                .enable_all()
                .build()
                .map_err(|e| SbtFailure::mm(format!("cannot start the I/O runtime: {e}")))?;
            let key = match (&cfg.key_file, &cfg.password) {
                (Some(f), _) => KeySource::KeyFile(f.clone()),
                (None, Some(p)) => KeySource::Passphrase(p.clone()),
                (None, None) => {
                    return Err(SbtFailure::mm(
                        "no repository key: set ORCA_PASSWORD or ORCA_KEY_FILE in the channel's ENV",
                    ));
                }
            };
            let (repo, namespace) = match &cfg.backend {
                Backend::Local(dir) => rt
                    .block_on(Repository::open_local(dir, &key))
                    .map(|(r, store)| {
                        store.limit_pack_memory(
                            env_number("ORCA_SBT_PACK_MB").unwrap_or(PACK_MEMORY_MB) << 20,
                        );
                        (r, None)
                    })
                    .map_err(|e| {
                        SbtFailure::mm(format!(
                            "cannot open the ORCA repository {} (ORCA_REPO): {e}",
                            dir.display()
                        ))
                    })?,
                Backend::Vault { url, token } => {
                    let mut opts = orca_vault::client::ClientOptions::from_env()
                        .map_err(|e| SbtFailure::mm(e.to_string()))?;
                    opts.command_id = cfg.command_id.clone();
                    let client = orca_vault::client::VaultClient::with_options(url, token, &opts)
                        .map_err(|e| SbtFailure::mm(e.to_string()))?;
                    let me = rt.block_on(client.whoami()).map_err(|e| {
                        SbtFailure::mm(format!(
                            "cannot reach the ORCA vault {url} (ORCA_VAULT): {e}"
                        ))
                    })?;
                    let repo = rt.block_on(Repository::open(client, &key)).map_err(|e| {
                        SbtFailure::mm(format!(
                            "cannot open the ORCA vault {url} (ORCA_VAULT): {e}"
                        ))
                    })?;
                    (repo, (me.scope != "admin").then_some(me.database))
                }
            };
            let cache = match LineageCache::open(&cfg.cache_dir, &repo.cache_id()) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.trace.line(
                        0,
                        &format!(
                            "fingerprint cache {} unavailable, every chunk will be probed: {e}",
                            cfg.cache_dir.display()
                        ),
                    );
                    None
                }
            };
            self.repo = Some(Repo {
                repo,
                cache,
                namespace,
                _rt: rt,
            });
        }
        Ok(self.repo.as_mut().expect("opened above"))
    }

    fn exists(&mut self, name: &str) -> SbtResult<bool> {
        let repo = self.repo()?;
        let rt = repo._rt.handle().clone();
        let key = repo.key(name);
        let filter = PieceFilter {
            name_prefix: Some(key.clone()),
            ..Default::default()
        };
        match rt.block_on(repo.repo.list(&filter)) {
            Ok(list) => Ok(list.iter().any(|p| p.name == key)),
            Err(e) => Err(SbtFailure::mm(format!(
                "cannot look up backup piece {name}: {e}"
            ))),
        }
    }

    /// `sbtbackup`: start a new piece; it stays invisible until [`Session::close`].
    pub fn backup(&mut self, name: &str, object: ObjectInfo, block_size: usize) -> SbtResult<()> {
        if !matches!(self.open, Open::None) {
            return Err(SbtFailure::mm(
                "a backup file is already open in this session; close it first",
            ));
        }
        check_name(name)?;
        if block_size == 0 {
            return Err(SbtFailure::mm("sbtbackup: the block size is 0"));
        }
        if self.exists(name)? {
            return Err(SbtFailure {
                code: SBT_ERROR_EXISTS,
                text: format!("backup piece {name} already exists in the ORCA repository"),
            });
        }
        self.trace.line(
            1,
            &format!("sbtbackup {name} block_size={block_size} object={object:?}"),
        );
        let repo = &self.repo()?.repo;
        repo.codec().clear_idle();
        let buffers = repo.chunk_buffers();
        // The pipeline's batches and a spare, or a whole held-back head if more: every piece
        // holds one, and a channel that freed part of it would fault the same memory in
        // again for its next piece (the peak is the head's either way).
        let opts = write_options(None);
        let pipeline = opts.batch_bytes * (opts.concurrency + 2) / HEAD_SEGMENT + 2;
        buffers.set_keep(pipeline.max(SNIFF_MAX / HEAD_SEGMENT));
        self.open = Open::Write(Box::new(Writing {
            name: name.to_string(),
            block_size,
            object,
            head: Vec::new(),
            head_len: 0,
            buffers,
            writer: None,
            lineage_key: None,
            known: 0,
            scan: StreamScan::default(),
            demux: None,
            regions: None,
            started: Instant::now(),
        }));
        Ok(())
    }

    /// `sbtwrite2`: one buffer of exactly the block size.
    pub fn write(&mut self, buf: &[u8]) -> SbtResult<()> {
        let Open::Write(w) = &mut self.open else {
            return Err(SbtFailure::mm(
                "sbtwrite2 without an open backup file (call sbtbackup first)",
            ));
        };
        if buf.len() != w.block_size {
            return Err(SbtFailure::mm(
                "sbtwrite2: buffer size differs from the block size",
            ));
        }
        if w.writer.is_none() {
            w.scan.feed(buf);
            let mut rest = buf;
            while !rest.is_empty() {
                let seg = match w.head.last_mut() {
                    Some(seg) if seg.len() < HEAD_SEGMENT => seg,
                    _ => {
                        let mut seg = w.buffers.take(HEAD_SEGMENT);
                        seg.clear();
                        w.head.push(seg);
                        w.head.last_mut().expect("pushed above")
                    }
                };
                let n = (HEAD_SEGMENT - seg.len()).min(rest.len());
                seg.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            w.head_len += buf.len();
            let seen = w.scan.seen();
            let undecided = seen.oracle_blocks > 0 && !seen.multiplexed();
            if w.head_len < SNIFF_BYTES || (undecided && w.head_len < SNIFF_MAX) {
                return Ok(());
            }
            self.start_writer()?;
            return Ok(());
        }
        let cache = self.repo.as_ref().and_then(|r| r.cache.as_ref());
        let r = match &mut w.demux {
            Some(d) => {
                let writer = w.writer.as_mut().expect("started");
                let trace = &self.trace;
                w.scan.feed_to(buf, &mut |p| d.put(writer, cache, trace, p))
            }
            None => {
                w.scan.feed(buf);
                let writer = w.writer.as_mut().expect("started");
                match &mut w.regions {
                    Some(r) => r.write(writer, buf),
                    None => writer.write(buf),
                }
            }
        };
        r.map_err(|e| self.fail_write(e))
    }

    fn fail_write(&mut self, e: RepoError) -> SbtFailure {
        let (name, keys) = match std::mem::replace(&mut self.open, Open::None) {
            Open::Write(w) => {
                let keys = w.cache_keys();
                if let Some(wr) = w.writer {
                    wr.abort();
                }
                (w.name, keys)
            }
            _ => (String::new(), Vec::new()),
        };
        if matches!(e, RepoError::MissingChunks { .. }) {
            return self.cache_out_of_date(&name, &keys, &e);
        }
        SbtFailure::mm(format!("cannot store backup piece {name}: {e}"))
    }

    /// The fingerprint cache vouched for chunks the repository no longer holds (restored
    /// or pruned behind our back): forget it so the re-run probes and sends them.
    fn cache_out_of_date(&self, name: &str, keys: &[String], e: &RepoError) -> SbtFailure {
        if let Some(repo) = &self.repo
            && let Some(c) = &repo.cache
        {
            for k in keys {
                let _ = c.forget(k);
            }
        }
        SbtFailure::mm(format!(
            "cannot commit backup piece {name}: {e}; the fingerprint cache was out of date and has been cleared: re-run the backup"
        ))
    }

    /// Creates the repository writer once the piece's identity is known.
    fn start_writer(&mut self) -> SbtResult<()> {
        let Open::Write(w) = &self.open else {
            return Ok(());
        };
        let demux = demux_wanted(&w.scan)
            && self.repo.as_ref().is_some_and(|r| {
                matches!(
                    r.repo.config().chunker,
                    orca_repo::ChunkerSpec::Fixed { .. }
                )
            });
        let identity = if demux {
            None
        } else {
            w.scan.seen().identity()
        };
        let dbid = w
            .object
            .dbid
            .or_else(|| w.scan.seen().dbid().map(u64::from));
        let object = w.object.clone();
        let name = w.name.clone();
        let block_size = w.scan.seen().block_size();
        let file_type = match (object.file_type, &identity) {
            (_, Some(Identity::Datafile { .. } | Identity::Section { .. })) => FileType::Datafile,
            (Some(1), _) => FileType::Datafile,
            (Some(2), _) => FileType::Archivelog,
            _ => FileType::Other,
        };
        let mut meta = PieceMeta {
            database: object.db_name.clone(),
            dbid: object.dbid,
            file_type,
            created: orca_repo::now_unix(),
            stats: None,
            labels: Default::default(),
        };
        meta.labels.insert("sbt.api".into(), "2.0".into());
        meta.labels.insert("sbt.mms".into(), mms_version_text());
        if let Some(id) = &self.config()?.command_id {
            meta.labels
                .insert(orca_vault::wire::COMMAND_ID_LABEL.into(), id.clone());
        }
        let lineage_key = match identity {
            Some(Identity::Datafile { dbid, file_no }) => {
                meta.labels
                    .insert("oracle.file#".into(), file_no.to_string());
                Some(format!("datafile:{dbid}/{file_no}"))
            }
            // A later section: keyed by where it starts, so the same section of the next
            // backup finds its fingerprints (the first section has the header, as a whole
            // file does).
            Some(Identity::Section {
                file_no,
                first_block,
            }) => {
                meta.labels
                    .insert("oracle.file#".into(), file_no.to_string());
                meta.labels
                    .insert("oracle.section_first_block".into(), first_block.to_string());
                object
                    .dbid
                    .map(|dbid| format!("datafile:{dbid}/{file_no}@{first_block}"))
            }
            None => None,
        };
        if demux {
            meta.labels
                .insert("sbt.layout".into(), "demultiplexed".into());
        }
        let repo = self.repo()?;
        let chunk_size = match repo.repo.config().chunker {
            orca_repo::ChunkerSpec::Fixed { size } => size as usize,
            _ => 0,
        };
        let mut writer = repo
            .repo
            .writer(&repo.key(&name), meta, &write_options(block_size))
            .map_err(|e| SbtFailure::mm(format!("cannot start backup piece {name}: {e}")))?;
        let mut known = 0;
        if let (Some(c), Some(k)) = (&repo.cache, &lineage_key) {
            match c.load(k) {
                Ok(l) => {
                    known = l.bytes();
                    if !l.is_empty() && !writer.set_lineage(l) {
                        let msg = format!(
                            "fingerprint cache entry {k} predates a garbage collection of the repository: probing instead"
                        );
                        self.trace.line(1, &msg);
                    }
                }
                Err(e) => {
                    let msg =
                        format!("fingerprint cache entry {k} unreadable, probing instead: {e}");
                    self.trace.line(0, &msg);
                }
            }
        }
        let Open::Write(w) = &mut self.open else {
            unreachable!()
        };
        if !demux && lineage_key.is_some() {
            w.regions = Regions::new(&w.scan, chunk_size);
        }
        w.lineage_key = lineage_key;
        w.known = known;
        let head = std::mem::take(&mut w.head);
        w.writer = Some(writer);
        let writer = w.writer.as_mut().expect("set above");
        let r = if demux {
            self.trace.line(
                1,
                &format!("piece {name}: blocks of several datafiles, stored demultiplexed"),
            );
            let by_block = (w.scan.seen().dense() && by_block())
                .then_some(chunk_size)
                .filter(|&s| s > 0);
            let d = w.demux.insert(Demuxing {
                dbid,
                lanes: Default::default(),
                by_block,
                next: Default::default(),
            });
            let cache = self.repo.as_ref().and_then(|r| r.cache.as_ref());
            let trace = &self.trace;
            // The scan's splitter, which saw the head, keeps the head's incomplete last
            // window for the rest of the stream; this one's copy of it is dropped.
            let mut split = Splitter::default();
            head.into_iter().try_for_each(|seg| {
                split.feed(&seg, &mut |p| d.put(writer, cache, trace, p))?;
                w.buffers.give(seg);
                Ok(())
            })
        } else {
            head.into_iter().try_for_each(|seg| {
                match &mut w.regions {
                    Some(r) => r.write(writer, &seg)?,
                    None => writer.write(&seg)?,
                }
                w.buffers.give(seg);
                Ok(())
            })
        };
        r.map_err(|e| self.fail_write(e))
    }

    /// `sbtclose2`: commit a piece being written (unless `abort`), or close a read.
    pub fn close(&mut self, abort: bool) -> SbtResult<()> {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => Err(SbtFailure::mm("sbtclose2 without an open file")),
            Open::Read(_) => Ok(()),
            Open::Write(w) if abort => {
                self.trace
                    .line(1, &format!("sbtclose2 ABORT {}: discarded", w.name));
                if let Some(wr) = w.writer {
                    wr.abort();
                }
                Ok(())
            }
            Open::Write(w) => {
                self.open = Open::Write(w);
                if matches!(&self.open, Open::Write(w) if w.writer.is_none()) {
                    self.start_writer()?;
                }
                let Open::Write(mut w) = std::mem::replace(&mut self.open, Open::None) else {
                    unreachable!()
                };
                let name = w.name.clone();
                let keys = w.cache_keys();
                let mut writer = w.writer.take().expect("started above");
                let tail = match &mut w.demux {
                    Some(d) => {
                        let cache = self.repo.as_ref().and_then(|r| r.cache.as_ref());
                        let trace = &self.trace;
                        let r = w
                            .scan
                            .finish_to(&mut |p| d.put(&mut writer, cache, trace, p));
                        let files: Vec<String> = d.lanes.keys().map(u32::to_string).collect();
                        writer
                            .meta_mut()
                            .labels
                            .insert("oracle.rfiles".into(), files.join(","));
                        r
                    }
                    None => {
                        w.scan.finish();
                        Ok(())
                    }
                };
                if let Err(e) = tail {
                    writer.abort();
                    return Err(SbtFailure::mm(format!(
                        "cannot store backup piece {name}: {e}"
                    )));
                }
                let committed = match writer.finish() {
                    Ok(c) => c,
                    Err(e @ RepoError::MissingChunks { .. }) => {
                        return Err(self.cache_out_of_date(&name, &keys, &e));
                    }
                    Err(e) => {
                        return Err(SbtFailure::mm(format!(
                            "cannot commit backup piece {name}: {e}"
                        )));
                    }
                };
                let stats = committed
                    .manifest
                    .header
                    .meta
                    .stats
                    .clone()
                    .unwrap_or_default();
                if let Some(k) = &w.lineage_key {
                    self.remember(k, &committed.lineage, w.known, committed.lineage_unchanged);
                }
                if let Some(d) = &w.demux {
                    for (lane, lineage) in &committed.lanes {
                        if let Some(k) = d.key(*lane) {
                            let known = d.lanes.get(lane).copied().unwrap_or(0);
                            let same = committed.lanes_unchanged.contains(lane);
                            self.remember(&k, lineage, known, same);
                        }
                    }
                }
                self.trace.line(
                    0,
                    &format!(
                        "piece {name} committed: bytes_in={} new_bytes={} chunks={} new_chunks={} delta_chunks={} cache_hits={} probes={} elapsed_ms={} oracle_blocks={} null_blocks={}",
                        stats.bytes_in,
                        stats.new_bytes,
                        stats.chunks,
                        stats.new_chunks,
                        stats.delta_chunks,
                        stats.cache_hits,
                        stats.probes,
                        w.started.elapsed().as_millis(),
                        w.scan.seen().oracle_blocks,
                        w.scan.seen().null_blocks,
                    ),
                );
                Ok(())
            }
        }
    }

    /// Keep a piece's (or a lane's) lineage for the next backup of its source, unless it
    /// covers far fewer bytes than the entry it would replace (`known`): a level 1 piece
    /// carries only the changed blocks, and the next full finds its chunks from the last
    /// full's lineage. An entry the piece left `unchanged` is only told the new session time:
    /// rewriting every position of an unchanged datafile would cost more than hashing it.
    fn remember(&self, k: &str, lineage: &orca_repo::Lineage, known: u64, unchanged: bool) {
        let Some(cache) = self.repo.as_ref().and_then(|r| r.cache.as_ref()) else {
            return;
        };
        if lineage.bytes() * 2 < known {
            self.trace.line(
                0,
                &format!(
                    "fingerprint cache entry {k} kept: this piece holds {} of its {known} bytes (an incremental)",
                    lineage.bytes()
                ),
            );
            return;
        }
        if let Err(e) = cache.update(k, lineage, unchanged) {
            let msg = format!("could not update the fingerprint cache entry {k}: {e}");
            self.trace.line(0, &msg);
        }
    }

    /// `sbtrestore`: open a committed piece for reading.
    pub fn restore(&mut self, name: &str, block_size: usize) -> SbtResult<()> {
        if !matches!(self.open, Open::None) {
            return Err(SbtFailure::mm(
                "a backup file is already open in this session; close it first",
            ));
        }
        check_name(name)?;
        if block_size == 0 {
            return Err(SbtFailure::mm("sbtrestore: the block size is 0"));
        }
        let repo = self.repo()?;
        // A channel restores after it backed up (a resumed job, a test): the buffers kept for
        // the next piece would only add to its memory now.
        repo.repo.clear_idle_write_buffers();
        let rt = repo._rt.handle().clone();
        let key = repo.key(name);
        let reader = match rt.block_on(repo.repo.reader(&key, &read_options())) {
            Ok(r) => r,
            Err(RepoError::PieceNotFound { .. }) => {
                return Err(SbtFailure {
                    code: SBT_ERROR_NOTFOUND,
                    text: format!("backup piece {name} is not in the ORCA repository"),
                });
            }
            Err(e) => {
                return Err(SbtFailure::mm(format!(
                    "cannot open backup piece {name}: {e}"
                )));
            }
        };
        self.trace
            .line(1, &format!("sbtrestore {name} block_size={block_size}"));
        self.open = Open::Read(Box::new(Reading { reader, block_size }));
        Ok(())
    }

    /// `sbtread2`: the next block-size buffer; EOF (7504) after the last.
    pub fn read(&mut self, buf: &mut [u8]) -> SbtResult<()> {
        let Open::Read(r) = &mut self.open else {
            return Err(SbtFailure::mm(
                "sbtread2 without an open backup file (call sbtrestore first)",
            ));
        };
        if buf.len() != r.block_size {
            return Err(SbtFailure::mm(
                "sbtread2: buffer size differs from the block size",
            ));
        }
        let n = r.reader.fill(buf).map_err(|e| {
            SbtFailure::mm(format!(
                "cannot read the backup piece from the ORCA repository: {e}"
            ))
        })?;
        if n == 0 {
            return Err(SbtFailure {
                code: SBT_ERROR_EOF,
                text: "end of backup file".into(),
            });
        }
        // A short last buffer is left untouched after the data, as the reference library does.
        Ok(())
    }

    /// `sbtremove2`: delete every named piece; NOTFOUND when one does not exist.
    pub fn remove(&mut self, names: &[String]) -> SbtResult<()> {
        let repo = self.repo()?;
        let rt = repo._rt.handle().clone();
        let mut missing = Vec::new();
        for n in names {
            match rt.block_on(repo.repo.delete(&repo.key(n))) {
                Ok(()) => {}
                Err(RepoError::PieceNotFound { .. }) => missing.push(n.clone()),
                Err(e) => {
                    return Err(SbtFailure::mm(format!(
                        "cannot delete backup piece {n}: {e}"
                    )));
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SbtFailure {
                code: SBT_ERROR_NOTFOUND,
                text: format!(
                    "backup piece(s) not in the ORCA repository: {}",
                    missing.join(", ")
                ),
            })
        }
    }

    /// `sbtinfo2`: for each name, `Some(created unix time)` or `None` when not found.
    pub fn info(&mut self, names: &[String]) -> SbtResult<Vec<Option<i64>>> {
        let repo = self.repo()?;
        let rt = repo._rt.handle().clone();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let key = repo.key(n);
            let filter = PieceFilter {
                name_prefix: Some(key.clone()),
                ..Default::default()
            };
            let found = rt
                .block_on(repo.repo.list(&filter))
                .map_err(|e| SbtFailure::mm(format!("cannot list the ORCA repository: {e}")))?
                .into_iter()
                .find(|p| p.name == key)
                .map(|p| p.created);
            out.push(found);
        }
        Ok(out)
    }

    /// `sbtend`: discard an open piece, release everything.
    pub fn end(&mut self) {
        if let Open::Write(w) = std::mem::replace(&mut self.open, Open::None) {
            self.trace
                .line(1, &format!("sbtend with {} open: discarded", w.name));
            if let Some(wr) = w.writer {
                wr.abort();
            }
        }
        self.repo = None;
    }
}

/// A channel's memory (issue 22: peak RSS within 64 MiB whatever the piece size; the knobs
/// are listed in [`crate::config`]). Backup: batches of [`WRITE_BATCH_MB`], [`WRITE_BATCHES`]
/// in process beside one queued and one filling, and [`PACK_MEMORY_MB`] of packs.
const WRITE_BATCH_MB: usize = 2;
const WRITE_BATCHES: usize = 2;
/// Restore: requests of [`READ_GROUP_MB`], [`READ_REQUESTS`] in flight, and at most
/// [`READ_AHEAD_MB`] of decoded chunks held ahead of RMAN in all.
const READ_GROUP_MB: u64 = 2;
const READ_REQUESTS: usize = 4;
const READ_AHEAD_MB: u64 = 4;
/// What a channel's packs (the one filling and those being written) hold at most, with a
/// local repository; through the vault, packs are built on the server.
const PACK_MEMORY_MB: usize = 9;

/// Threads for the library's blocking calls (index queries, file reads and writes). Tokio's
/// default, 512 started as calls overlap, left 20-30 threads in a channel backing up a 4 GiB
/// datafile, each with allocator arenas and caches of its own: 175-205 MiB at the peak
/// against 94-102 with four, at the same speed.
const IO_THREADS: usize = 4;

/// A positive whole number from the environment.
fn env_number(k: &str) -> Option<usize> {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
}

/// Backup tuning for a piece of datafile blocks of `block_size` bytes (the smallest seen; a
/// multiplexed piece's lanes take their own); the knobs are listed in [`crate::config`].
fn write_options(block_size: Option<usize>) -> WriteOptions {
    WriteOptions {
        unit: unit_for(block_size),
        batch_bytes: env_number("ORCA_SBT_BATCH_MB").unwrap_or(WRITE_BATCH_MB) << 20,
        concurrency: env_number("ORCA_SBT_BATCHES").unwrap_or(WRITE_BATCHES),
        // RMAN reuses its buffer after each sbtwrite2: fingerprinting it in
        // the channel thread saves copying unchanged data at all.
        hash_in_caller: std::env::var("ORCA_SBT_HASH_IN_CHANNEL")
            .ok()
            .is_none_or(|v| v != "0"),
        ..WriteOptions::default()
    }
}

/// Restore tuning; the knobs are listed in [`crate::config`].
fn read_options() -> ReadOptions {
    let mb = |k: &str, d: u64| env_number(k).map_or(d, |m| m as u64) << 20;
    ReadOptions {
        group_bytes: mb("ORCA_SBT_READ_MB", READ_GROUP_MB),
        read_ahead: env_number("ORCA_SBT_READ_AHEAD").unwrap_or(READ_REQUESTS),
        ahead_bytes: mb("ORCA_SBT_READ_AHEAD_MB", READ_AHEAD_MB),
    }
}

fn check_name(name: &str) -> SbtResult<()> {
    if name.is_empty() {
        return Err(SbtFailure::mm("the backup file name is empty"));
    }
    if name.len() >= SBT_FILE_MAX {
        return Err(SbtFailure::mm(format!(
            "the backup file name is {} bytes; SBT allows at most {}",
            name.len(),
            SBT_FILE_MAX - 1
        )));
    }
    Ok(())
}

pub fn mms_version_text() -> String {
    let [a, b, c, d] = MMS_VERSION;
    format!("{a}.{b}.{c}.{d}")
}
