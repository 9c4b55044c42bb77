//! Streaming ingest of one piece: chunk → fingerprint → ask which chunks are
//! new → compress and encrypt only those → upload → commit the recipe.
//!
//! The caller pushes bytes with [`PieceWriter::write`] from a plain thread
//! (an SBT `sbtwrite2`, a file read loop); batches of chunks are processed
//! on the runtime, hashing and encoding in parallel on the rayon pool, with
//! up to `concurrency` batches in flight so probing, uploading and the
//! caller's reads overlap.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use rayon::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::{Backend, EncodedChunk};
use crate::chain::MAX_DELTA_DEPTH;
use crate::chunker::{Chunker, ChunkerSpec};
use crate::codec::{Codec, UnitValues};
use crate::error::{RepoError, Result};
use crate::hash::{GROUP, Node, UnitCv};
use crate::id::ChunkId;
use crate::index::{PieceInfo, SessionGrant};
use crate::lineage::{Anchor, AnchorRef, Lineage, LineageEntry};
use crate::manifest::{self, ChunkRef, Manifest, ManifestHeader, PieceMeta, WriteStats};
use crate::pool::Pools;
use crate::repository::Repository;

/// Tuning of a writer.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Chunker for this piece; the repository default when `None`.
    pub chunker: Option<ChunkerSpec>,
    /// Bytes of chunks handed to the pipeline at a time (one probe each).
    pub batch_bytes: usize,
    /// Batches in flight at once.
    pub concurrency: usize,
    /// With fixed-size chunking, fingerprint each write's bytes in the
    /// calling thread while they are in its cache, and copy only the units
    /// that differ from the chunk last stored at this position (see
    /// [`PieceWriter::set_lineage`]). For callers whose buffers are reused
    /// after every call (an SBT channel): an unchanged backup then costs a
    /// hash of the stream and no copy of it.
    pub hash_in_caller: bool,
    /// Bytes of change detection and of deltas with fixed-size chunking: a power of two from
    /// [`crate::hash::MIN_UNIT`] to [`crate::hash::UNIT`] (the default). A stream of Oracle
    /// blocks smaller than 8 KiB takes its block size ([`crate::hash::unit_for_block`]), so
    /// that a changed block costs itself and not its neighbours. A chunk's unit values are
    /// of its writer's unit: an anchor written with another is stored against whole once.
    pub unit: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            chunker: None,
            batch_bytes: 8 << 20,
            concurrency: 2,
            hash_in_caller: false,
            unit: crate::hash::UNIT,
        }
    }
}

/// A committed piece: its catalog entry, its recipe, and the lineage to
/// remember for the next backup of the same source.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The piece as the catalog lists it.
    pub info: PieceInfo,
    /// Its recipe.
    pub manifest: Manifest,
    /// What to remember for the next backup of the same source ([`crate::LineageCache::store`]).
    pub lineage: Lineage,
    /// For a demultiplexed piece, the same per lane, positions being offsets in the lane.
    pub lanes: std::collections::BTreeMap<u32, Lineage>,
    /// `lineage` holds exactly the entries of the lineage the writer was given: the cache
    /// need only be told the new session time ([`crate::LineageCache::update`]).
    pub lineage_unchanged: bool,
    /// The lanes whose lineage is likewise unchanged.
    pub lanes_unchanged: std::collections::BTreeSet<u32>,
}

/// What the pipeline produced for one chunk.
struct Outcome {
    id: ChunkId,
    len: u32,
    offset: u64,
    lineage: LineageEntry,
}

/// The writer's session with the store (see [`Backend::begin_session`]),
/// renewed in the background while the piece is written.
struct Session {
    grant: SessionGrant,
    renewer: JoinHandle<()>,
}

/// [`PieceWriter::write_file`] reads a chunk in parts of this size, each
/// hashed while it is still in the core's cache.
const READ_PART: usize = 128 << 10;

/// How often a session is renewed: well within its time to live.
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

struct Ctx {
    /// The piece's name, for errors.
    name: String,
    backend: Arc<dyn Backend>,
    codec: Arc<Codec>,
    pools: Arc<Pools>,
    /// Unit chaining values are computed (for deltas) with fixed chunking.
    with_units: bool,
    /// Their unit ([`WriteOptions::unit`]).
    unit: usize,
    lineage: Mutex<Option<Arc<Known>>>,
    seen: Mutex<HashSet<ChunkId>>,
}

/// A lineage, the chunk ids it vouches for, and its anchors' unit values, read from the
/// repository a window of positions at a time as the stream reaches them.
struct Known {
    lineage: Lineage,
    ids: HashSet<ChunkId>,
    /// The positions that have an anchor, in order.
    anchored: Vec<u64>,
    /// Per lane, the windows read last.
    windows: Mutex<HashMap<u64, Windows>>,
    /// Whether positions are lanes' ([`PieceWriter::write_lane`]: a lane is a position's
    /// bits above [`LANE_SHIFT`]) or one stream's (where those bits are regions, in order).
    lanes: bool,
    /// Anchored positions per window.
    window: usize,
    reader: AnchorReader,
}

/// Positions whose anchors are read at once, at the least. All of a piece's at once made a
/// channel's memory grow with the datafile (3 KiB of values per 1 MiB chunk and the chains'
/// links while they are composed): 87 MiB at the peak of an unchanged repeat of two 4 GiB
/// datafiles, 58 a window at a time. 256 positions are 0.8 MiB of values with 1 MiB chunks.
const ANCHOR_WINDOW: usize = 256;

/// What reads anchors: the writer's repository and runtime, and how far ahead of the
/// chunks handed on the writer looks chunks up.
struct AnchorReader {
    backend: Arc<dyn Backend>,
    codec: Arc<Codec>,
    piece: String,
    rt: Handle,
    ahead: usize,
}

/// The window a lane's stream is in, and the one before: a chunk is looked up when it is read
/// and again when it is handed on (up to a batch later), so the stream may still be in the
/// window before when the next one is read. A window is at least twice that lag long.
#[derive(Default)]
struct Windows {
    current: Option<Window>,
    previous: Option<Window>,
}

struct Window {
    /// Positions `from..to` of one lane.
    from: u64,
    to: u64,
    anchors: HashMap<ChunkId, Anchor>,
}

impl Known {
    fn new(lineage: Lineage, reader: AnchorReader, lanes: bool) -> Known {
        let mut anchored: Vec<u64> = lineage
            .entries
            .iter()
            .filter_map(|(p, e)| e.anchor.map(|_| *p))
            .collect();
        anchored.sort_unstable();
        Known {
            ids: lineage.known(),
            anchored,
            lineage,
            windows: Mutex::new(HashMap::new()),
            lanes,
            window: ANCHOR_WINDOW.max(reader.ahead.saturating_mul(2)),
            reader,
        }
    }

    /// The anchor of position `pos` in units of `unit`, when its values could be read.
    /// Lanes of a piece may have units of their own, and one chunk may anchor positions of
    /// several: its values count its length in one unit only (more than one value, so the
    /// count tells the unit), and a chunk in another unit finds no anchor. A position past
    /// the windows held reads the next one; call it from the writer's thread, not the
    /// runtime's.
    fn anchor(&self, pos: u64, unit: usize) -> Option<Anchor> {
        let id = self.lineage.entries.get(&pos)?.anchor?.id;
        let mut all = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = all.entry(self.lane_of(pos)).or_default();
        let holds = |x: &Option<Window>| x.as_ref().is_some_and(|x| x.from <= pos && pos < x.to);
        if !holds(&w.current) && !holds(&w.previous) {
            w.previous = w.current.replace(self.read_window(pos, unit));
        }
        let window = if holds(&w.current) {
            &w.current
        } else {
            &w.previous
        };
        window
            .as_ref()?
            .anchors
            .get(&id)
            .filter(|a| a.cvs.len() == (a.len as usize).div_ceil(unit))
            .cloned()
    }

    fn lane_of(&self, pos: u64) -> u64 {
        if self.lanes { pos >> LANE_SHIFT } else { 0 }
    }

    /// The anchors of the next `window` anchored positions of `pos`'s lane from `pos` on.
    fn read_window(&self, pos: u64, unit: usize) -> Window {
        let started = Instant::now();
        let lane_end = if self.lanes {
            ((pos >> LANE_SHIFT) + 1).saturating_mul(1 << LANE_SHIFT)
        } else {
            u64::MAX
        };
        let first = self.anchored.partition_point(|&p| p < pos);
        let taken: Vec<u64> = self.anchored[first..]
            .iter()
            .take_while(|&&p| p < lane_end)
            .take(self.window)
            .copied()
            .collect();
        let to = match taken.last() {
            Some(last) if taken.len() == self.window => last + 1,
            _ => lane_end,
        };
        let r = &self.reader;
        let anchors = r.rt.block_on(crate::chain::anchors_from(
            &*r.backend,
            &r.codec,
            &r.piece,
            unit,
            taken
                .iter()
                .filter_map(|p| self.lineage.entries.get(p).and_then(|e| e.anchor)),
        ));
        tracing::debug!(
            piece = %r.piece,
            from = pos,
            positions = taken.len(),
            anchors = anchors.len(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "read the unit values of the last backup's chunks"
        );
        Window {
            from: pos,
            to,
            anchors,
        }
    }
}

/// A chunk's fingerprint and, with fixed chunking, its unit chaining values.
type Hashed = (ChunkId, Option<Vec<UnitCv>>);

/// A chunk, where it starts in the stream, and its fingerprint when the
/// source already computed it (see [`PieceWriter::write_file`]).
/// A chunk's length as the formats store it: the chunkers cut at most 16 MiB
/// (ChunkerSpec::validate), far below u32::MAX.
#[allow(clippy::cast_possible_truncation)]
fn chunk_len(data: &[u8]) -> u32 {
    data.len() as u32
}

struct Item {
    offset: u64,
    data: Bytes,
    /// The unit its values are computed in: the writer's, or its lane's.
    unit: usize,
    /// The last version at its position, looked up when it was handed on.
    anchor: Option<Anchor>,
    hash: Option<Hashed>,
    sparse: Option<Sparse>,
}

/// A chunk hashed in the caller's buffers whose units equal to the anchor's
/// were not copied: `data` holds garbage there until they are needed.
struct Sparse {
    anchor: ChunkId,
    /// The anchor's length: the chunk may end short of it (the end of the stream).
    anchor_len: usize,
    absent: Vec<usize>,
}

/// The chunk being filled with [`WriteOptions::hash_in_caller`].
#[derive(Default)]
struct InPlace {
    /// Bytes of the chunk received so far.
    filled: usize,
    /// Its completed units' share of its tree, in order.
    nodes: Vec<Node>,
    /// Units left uncopied because they equal the anchor's.
    absent: Vec<usize>,
    /// Units equal to the anchor's, copied or not.
    matching: usize,
    /// The chunk stored at this position last time, when of the same size.
    anchor: Option<Anchor>,
    /// Copy every unit: the previous chunk mostly differed from its anchor,
    /// so it is stored whole, and skipping units would only mean reading
    /// the anchor back to fill them in.
    copy_all: bool,
}

/// The background half of a writer: chunk outcomes in order, and figures.
type Pipeline = JoinHandle<Result<(Vec<Outcome>, WriteStats)>>;

/// A chunk to store as the units that differ from its base: the last version (its anchor),
/// or, when the anchor's chain is as long as allowed, the full chunk the chain ends in.
struct Delta {
    base: ChunkId,
    changed: Vec<usize>,
}

/// A piece being written ([`crate::Repository::writer`]). Blocking: push bytes with
/// [`PieceWriter::write`] from a thread outside the runtime, then [`PieceWriter::finish`]
/// to commit; a piece is visible only once committed, and dropping or aborting the writer
/// leaves nothing visible.
pub struct PieceWriter {
    name: String,
    meta: PieceMeta,
    spec: ChunkerSpec,
    chunker: Chunker,
    /// Bytes not yet cut, for content-defined chunking.
    pending: BytesMut,
    /// With fixed-size chunking, the chunk being filled (a pooled buffer
    /// whose length is what it holds) and its size.
    fill: Option<(usize, Vec<u8>)>,
    /// Set with [`WriteOptions::hash_in_caller`] and fixed-size chunking.
    in_place: Option<InPlace>,
    /// Lineage position of the next chunk (the first byte in `pending`): its stream offset,
    /// unless the caller moved the positions on ([`Self::realign`]).
    chunked: u64,
    batch: Vec<Item>,
    batch_len: usize,
    batch_target: usize,
    tx: Option<mpsc::Sender<Vec<Item>>>,
    task: Option<Pipeline>,
    ctx: Arc<Ctx>,
    rt: Handle,
    size: u64,
    started: Instant,
    /// `None` until the first batch or lineage; stays `None` on a backend
    /// without sessions (then no lineage is trusted).
    session: Option<Session>,
    session_tried: bool,
    /// Set once the piece is written lane by lane ([`PieceWriter::write_lane`]).
    lanes: Option<Box<Lanes>>,
}

/// The highest lane number a caller may use: a chunk's lineage position is its lane's
/// number above [`LANE_SHIFT`] bits of offset in the lane.
pub const MAX_LANE: u32 = (1 << 23) - 1;
const LANE_SHIFT: u32 = 40;
/// The layout lane's slot, beyond every data lane's.
const LAYOUT_SLOT: u64 = MAX_LANE as u64 + 2;
/// Literal bytes gathered before their layout operation is written.
const LITERAL_MAX: usize = 64 << 10;
/// Layout operations (docs/design.md, "Demultiplexed pieces").
pub(crate) const OP_LITERAL: u8 = 1;
pub(crate) const OP_TAKE: u8 = 2;

/// A region's positions ([`PieceWriter::realign`]) sit above a stream of 1 TiB.
const REGION_SHIFT: u32 = 40;

fn lane_position(lane: u32, offset: u64) -> u64 {
    ((u64::from(lane) + 1) << LANE_SHIFT) | offset
}

/// The lanes of `lanes` whose entries are exactly those `known` (lanes merged by
/// [`lane_position`]) holds for them.
fn unchanged_lanes(
    known: &Lineage,
    lanes: &std::collections::BTreeMap<u32, Lineage>,
) -> std::collections::BTreeSet<u32> {
    let mut counts = std::collections::BTreeMap::<u64, usize>::new();
    for pos in known.entries.keys() {
        *counts.entry(pos >> LANE_SHIFT).or_default() += 1;
    }
    lanes
        .iter()
        .filter(|(lane, l)| {
            counts.get(&(u64::from(**lane) + 1)) == Some(&l.entries.len())
                && l.entries
                    .iter()
                    .all(|(off, e)| known.entries.get(&lane_position(**lane, *off)) == Some(e))
        })
        .map(|(lane, _)| *lane)
        .collect()
}

/// The size of the parts a lane's last, partial chunk is cut into: 1/8 of a chunk, at least
/// 64 KiB. A datafile grows at its end (blocks newly formatted below its high-water mark
/// join the backup), which lengthens its lane's last chunk every day; a chunk of another
/// length than its last version cannot be a delta on it, so cut whole, that tail would be
/// stored whole every day. Cut in granules at fixed lane offsets, only the last granule
/// changes length, and the lineage stays put: the same offsets every backup.
fn tail_granule(chunk_size: usize) -> usize {
    (chunk_size / 8).max(64 << 10).min(chunk_size)
}

/// The bytes of one lane not yet cut into a chunk, and the lineage position (in the lane)
/// of the first of them: the lane's length before them, unless the lane is written by
/// regions ([`PieceWriter::realign_lane`]).
#[derive(Default)]
struct LaneBuf {
    buf: Vec<u8>,
    done: u64,
    /// Chunks end where regions do, or are full; never cut in granules.
    by_region: bool,
    /// The lane's unit ([`PieceWriter::set_lane_unit`]); the writer's when none was set.
    unit: Option<usize>,
}

/// A lane region's positions sit at multiples of 16 MiB of the lane's 40 bits of offset.
const LANE_REGION_SHIFT: u32 = 24;

/// The layout operation being gathered.
enum Op {
    None,
    Literal(Vec<u8>),
    Take(u32, u64),
}

/// A piece written demultiplexed: data lanes, the layout lane, and the lane of each chunk.
struct Lanes {
    data: std::collections::BTreeMap<u32, LaneBuf>,
    layout: LaneBuf,
    op: Op,
    runs: Vec<(Option<u32>, u32)>,
    stored: u64,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let low = (v & 0x7f).to_le_bytes()[0];
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

impl Lanes {
    /// Writes the gathered operation to the layout lane.
    fn flush_op(&mut self) {
        let layout = &mut self.layout.buf;
        match std::mem::replace(&mut self.op, Op::None) {
            Op::None => {}
            Op::Literal(bytes) => {
                layout.push(OP_LITERAL);
                put_varint(layout, bytes.len() as u64);
                layout.extend_from_slice(&bytes);
            }
            Op::Take(lane, n) => {
                layout.push(OP_TAKE);
                put_varint(layout, u64::from(lane));
                put_varint(layout, n);
            }
        }
    }

    fn note(&mut self, lane: Option<u32>) {
        match self.runs.last_mut() {
            Some((l, n)) if *l == lane && *n < u32::MAX => *n += 1,
            _ => self.runs.push((lane, 1)),
        }
    }
}

impl std::fmt::Debug for PieceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PieceWriter({:?}, {} bytes)", self.name, self.size)
    }
}

impl PieceWriter {
    pub(crate) fn new(
        repo: &Repository,
        name: &str,
        meta: PieceMeta,
        opts: &WriteOptions,
    ) -> Result<Self> {
        manifest::validate_name(name)?;
        if !crate::hash::valid_unit(opts.unit) {
            return Err(RepoError::InvalidArgument(format!(
                "a unit of {} bytes: units are a power of two from {} to {} bytes",
                opts.unit,
                crate::hash::MIN_UNIT,
                crate::hash::UNIT
            )));
        }
        let spec = opts.chunker.unwrap_or(repo.config().chunker);
        let chunker = spec.build(repo.cdc_seed())?;
        let rt = repo.runtime().clone();
        let ctx = Arc::new(Ctx {
            name: name.to_string(),
            backend: repo.backend().clone(),
            codec: repo.codec().clone(),
            pools: repo.pools().clone(),
            with_units: matches!(spec, ChunkerSpec::Fixed { .. }),
            unit: opts.unit,
            lineage: Mutex::new(None),
            seen: Mutex::new(HashSet::new()),
        });
        // One batch queued beside the `concurrency` being processed and the one filling:
        // what bounds a writer's memory whatever the piece size.
        let (tx, rx) = mpsc::channel::<Vec<Item>>(1);
        let task = rt.spawn(run(rx, ctx.clone(), opts.concurrency.max(1)));
        Ok(PieceWriter {
            name: name.to_string(),
            meta,
            spec,
            pending: BytesMut::new(),
            fill: match spec {
                ChunkerSpec::Fixed { size } => Some((size as usize, Vec::new())),
                _ => None,
            },
            in_place: (opts.hash_in_caller && matches!(spec, ChunkerSpec::Fixed { .. }))
                .then(InPlace::default),
            chunked: 0,
            chunker,
            batch: Vec::new(),
            batch_len: 0,
            batch_target: opts.batch_bytes.max(1),
            tx: Some(tx),
            task: Some(task),
            ctx,
            rt,
            size: 0,
            started: Instant::now(),
            session: None,
            session_tried: false,
            lanes: None,
        })
    }

    /// Begin the session, relying on a lineage recorded at `lineage_since`;
    /// returns whether that lineage may be trusted.
    fn begin_session(&mut self, lineage_since: Option<i64>) -> bool {
        self.session_tried = true;
        let backend = self.ctx.backend.clone();
        match self
            .rt
            .block_on(backend.begin_session(&self.name, lineage_since))
        {
            Ok(grant) => {
                let id = grant.id;
                let renewer = self.rt.spawn(async move {
                    loop {
                        tokio::time::sleep(RENEW_EVERY).await;
                        match backend.renew_session(id).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(session = id, "writer session expired; the commit will re-check every chunk");
                                return;
                            }
                            Err(e) => tracing::warn!(session = id, error = %e, "cannot renew the writer session"),
                        }
                    }
                });
                self.session = Some(Session { grant, renewer });
                grant.lineage_ok
            }
            Err(e) => {
                tracing::warn!(piece = %self.name, error = %e, "no writer session: garbage collection is not held back and no fingerprint cache is trusted");
                false
            }
        }
    }

    fn ensure_session(&mut self) {
        if !self.session_tried {
            self.begin_session(None);
        }
    }

    fn end_session(&mut self) {
        if let Some(s) = self.session.take() {
            s.renewer.abort();
            let backend = self.ctx.backend.clone();
            let id = s.grant.id;
            if let Err(e) = self.rt.block_on(backend.end_session(id)) {
                tracing::warn!(session = id, error = %e, "cannot end the writer session (it expires by itself)");
            }
        }
    }

    /// The piece's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// What the source looked like at its last backup (see [`crate::LineageCache`]):
    /// unchanged chunks are not probed and changed ones may be stored as
    /// deltas. Takes effect for batches processed after the call.
    ///
    /// The store is asked first whether the lineage is still trustworthy (no
    /// garbage collection since it was recorded could have swept its chunks);
    /// when it is not, it is ignored and this piece is probed chunk by chunk.
    /// Then the unit values of its anchors are read from the repository, one request per
    /// level of their delta chains (a position whose anchor's values cannot be read stores
    /// its next version whole). Returns whether the lineage is used.
    pub fn set_lineage(&mut self, lineage: Lineage) -> bool {
        if lineage.is_empty() || !self.trust(lineage.since) {
            return false;
        }
        let known = Known::new(lineage, self.anchor_reader(), false);
        *self.ctx.lineage.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(known));
        true
    }

    /// Reads anchors for a [`Known`] of this piece: ahead of the stream, since
    /// [`WriteOptions::hash_in_caller`] decides while the caller's buffer is still its own
    /// whether to copy each unit.
    fn anchor_reader(&self) -> AnchorReader {
        AnchorReader {
            backend: self.ctx.backend.clone(),
            codec: self.ctx.codec.clone(),
            piece: self.name.clone(),
            rt: self.rt.clone(),
            ahead: self.chunks_ahead(),
        }
    }

    /// Chunks [`Self::write_file`] reads ahead of the one it hands on: a batch's worth, as
    /// many as the pipeline takes at once (one with content-defined chunks, read as a stream).
    fn chunks_ahead(&self) -> usize {
        match self.spec {
            ChunkerSpec::Fixed { size } => (self.batch_target / size as usize).max(1),
            ChunkerSpec::Cdc { .. } => 1,
        }
    }

    /// [`Self::set_lineage`] for one lane of a demultiplexed piece
    /// ([`Self::write_lane`]): the lane's own lineage, its positions being offsets in the
    /// lane. Lanes' lineages add up; returns whether this one is used.
    pub fn set_lane_lineage(&mut self, lane: u32, lineage: Lineage) -> bool {
        if lane > MAX_LANE || lineage.is_empty() || !self.trust(lineage.since) {
            return false;
        }
        let reader = self.anchor_reader();
        let mut slot = self.ctx.lineage.lock().unwrap_or_else(|p| p.into_inner());
        let mut merged = slot.as_ref().map(|k| k.lineage.clone()).unwrap_or_default();
        merged.since = if merged.is_empty() {
            lineage.since
        } else {
            merged.since.min(lineage.since)
        };
        for (off, e) in lineage.entries {
            merged.entries.insert(lane_position(lane, off), e);
        }
        *slot = Some(Arc::new(Known::new(merged, reader, true)));
        true
    }

    /// Whether the store vouches for a lineage recorded at `since`.
    fn trust(&mut self, since: i64) -> bool {
        let trusted = match &self.session {
            None if !self.session_tried => self.begin_session(Some(since)),
            None => false,
            Some(s) => {
                let id = s.grant.id;
                let backend = self.ctx.backend.clone();
                self.rt
                    .block_on(backend.adopt_lineage(id, since))
                    .unwrap_or(false)
            }
        };
        if !trusted {
            tracing::info!(piece = %self.name, "fingerprint cache entry predates a garbage collection; probing instead");
        }
        trusted
    }

    /// The lanes of a demultiplexed piece, started on the first lane or literal write.
    fn lanes(&mut self) -> Result<&mut Lanes> {
        if self.lanes.is_none() {
            if self.size > 0 {
                return Err(RepoError::InvalidArgument(format!(
                    "piece {:?}: lanes must be written from the start of the piece",
                    self.name
                )));
            }
            if !matches!(self.spec, ChunkerSpec::Fixed { .. }) {
                return Err(RepoError::InvalidArgument(format!(
                    "piece {:?}: a demultiplexed piece needs fixed-size chunks",
                    self.name
                )));
            }
            self.in_place = None;
            self.lanes = Some(Box::new(Lanes {
                data: Default::default(),
                layout: LaneBuf::default(),
                op: Op::None,
                runs: Vec::new(),
                stored: 0,
            }));
        }
        Ok(self.lanes.as_mut().expect("set above"))
    }

    fn chunk_size(&self) -> usize {
        match self.spec {
            ChunkerSpec::Fixed { size } => size as usize,
            _ => self.chunker.max_chunk(),
        }
    }

    /// Give lane `lane`'s chunks unit values in units of `unit` (as [`WriteOptions::unit`],
    /// which the lanes otherwise take). A multiplexed piece interleaves files of several
    /// block sizes: each lane then keeps its own file's unit whatever files share the piece,
    /// and with it its anchors (values of another unit are none). Call before the lane's
    /// first bytes and before [`Self::set_lane_lineage`], whose anchors are read in the
    /// lane's unit.
    pub fn set_lane_unit(&mut self, lane: u32, unit: usize) -> Result<()> {
        if lane > MAX_LANE {
            return Err(RepoError::InvalidArgument(format!(
                "lane {lane} is beyond the highest, {MAX_LANE}"
            )));
        }
        if !crate::hash::valid_unit(unit) {
            return Err(RepoError::InvalidArgument(format!(
                "unit {unit} is not a power of two from {} to {}",
                crate::hash::MIN_UNIT,
                crate::hash::UNIT
            )));
        }
        let name = self.name.clone();
        let b = self.lanes()?.data.entry(lane).or_default();
        if b.done > 0 || !b.buf.is_empty() {
            return Err(RepoError::InvalidArgument(format!(
                "piece {name:?}: lane {lane} already has bytes, its unit cannot change"
            )));
        }
        b.unit = Some(unit);
        Ok(())
    }

    /// The unit of lane `lane`'s chunks.
    fn lane_unit(&self, lane: u32) -> usize {
        self.lanes
            .as_ref()
            .and_then(|l| l.data.get(&lane)?.unit)
            .unwrap_or(self.ctx.unit)
    }

    /// Append the next `data` of the piece, taken from lane `lane` (≤ [`MAX_LANE`]): the
    /// piece is then stored demultiplexed, each lane cut into chunks of its own, so bytes
    /// that recur in a lane (a datafile's blocks) make the same chunks however the piece
    /// interleaves its lanes. Do not mix with [`Self::write`].
    pub fn write_lane(&mut self, lane: u32, data: &[u8]) -> Result<()> {
        if lane > MAX_LANE {
            return Err(RepoError::InvalidArgument(format!(
                "lane {lane} is beyond the highest, {MAX_LANE}"
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        let size = self.chunk_size();
        let pools = self.ctx.pools.clone();
        let l = self.lanes()?;
        match &mut l.op {
            Op::Take(t, n) if *t == lane => *n += data.len() as u64,
            _ => {
                l.flush_op();
                l.op = Op::Take(lane, data.len() as u64);
            }
        }
        self.size += data.len() as u64;
        let mut rest = data;
        while !rest.is_empty() {
            let l = self.lanes.as_mut().expect("started");
            let b = l.data.entry(lane).or_default();
            if b.buf.capacity() < size {
                b.buf = pools.chunks.take(size);
                b.buf.clear();
            }
            let n = (size - b.buf.len()).min(rest.len());
            b.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if b.buf.len() == size {
                self.cut_lane(Some(lane))?;
            }
        }
        self.cut_layout(false)
    }

    /// End lane `lane`'s current chunk here and give its next chunks the positions of
    /// `region` (from 1, increasing in each lane, below 65536): as [`Self::realign`] for a
    /// plain piece, so that a caller that knows the block numbers in a lane keys each run
    /// of them alone. A lane written by regions is never cut in granules.
    pub fn realign_lane(&mut self, lane: u32, region: u64) -> Result<()> {
        if lane > MAX_LANE {
            return Err(RepoError::InvalidArgument(format!(
                "lane {lane} is beyond the highest, {MAX_LANE}"
            )));
        }
        if region == 0 || region >= 1 << (LANE_SHIFT - LANE_REGION_SHIFT) {
            return Err(RepoError::InvalidArgument(format!(
                "lane region {region} is out of range: 1 to {}",
                (1u64 << (LANE_SHIFT - LANE_REGION_SHIFT)) - 1
            )));
        }
        self.lanes()?.data.entry(lane).or_default().by_region = true;
        self.cut_lane(Some(lane))?;
        let position = region << LANE_REGION_SHIFT;
        let name = self.name.clone();
        let b = self
            .lanes
            .as_mut()
            .and_then(|l| l.data.get_mut(&lane))
            .expect("the lane above");
        if position <= b.done {
            return Err(RepoError::InvalidArgument(format!(
                "piece {name:?}: region {region} of lane {lane} does not follow the last position"
            )));
        }
        b.done = position;
        Ok(())
    }

    /// Append `data` to the piece as it is, kept in the layout lane (the bytes between
    /// lanes' runs: headers, padding). Starts a demultiplexed piece like [`Self::write_lane`].
    pub fn write_literal(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let l = self.lanes()?;
        let mut rest = data;
        while !rest.is_empty() {
            if !matches!(l.op, Op::Literal(_)) {
                l.flush_op();
                l.op = Op::Literal(Vec::new());
            }
            let Op::Literal(bytes) = &mut l.op else {
                unreachable!()
            };
            let n = (LITERAL_MAX - bytes.len()).min(rest.len());
            bytes.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if bytes.len() == LITERAL_MAX {
                l.flush_op();
            }
        }
        self.size += data.len() as u64;
        self.cut_layout(false)
    }

    /// Cut the layout lane's full chunks (all of it at the end).
    fn cut_layout(&mut self, end: bool) -> Result<()> {
        let size = self.chunk_size();
        loop {
            let l = self.lanes.as_mut().expect("started");
            let have = l.layout.buf.len();
            if have == 0 || (have < size && !end) {
                return Ok(());
            }
            let n = have.min(size);
            let mut chunk = self.ctx.pools.chunks.take(size);
            chunk.clear();
            chunk.extend_from_slice(&l.layout.buf[..n]);
            l.layout.buf.drain(..n);
            let pos = (LAYOUT_SLOT << LANE_SHIFT) | l.layout.done;
            l.layout.done += n as u64;
            l.stored += n as u64;
            l.note(None);
            let data = self.ctx.pools.chunks.bytes(chunk);
            self.enqueue(pos, data, self.ctx.unit, None, None)?;
        }
    }

    /// Send what data lane `lane` holds as its next chunk; a lane's last, partial chunk
    /// goes as granules of [`tail_granule`] bytes.
    fn cut_lane(&mut self, lane: Option<u32>) -> Result<()> {
        let Some(lane) = lane else {
            return self.cut_layout(true);
        };
        let size = self.chunk_size();
        let l = self.lanes.as_mut().expect("started");
        let Some(b) = l.data.get_mut(&lane) else {
            return Ok(());
        };
        if b.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut b.buf);
        let pos = lane_position(lane, b.done);
        let granule = if b.by_region {
            size
        } else if buf.len() < size || self.granulated_at(pos, size) {
            tail_granule(size)
        } else {
            size
        };
        let mut parts = Vec::with_capacity(buf.len().div_ceil(granule));
        if granule >= buf.len() {
            parts.push(buf);
        } else {
            for part in buf.chunks(granule) {
                let mut chunk = self.ctx.pools.chunks.take(size);
                chunk.clear();
                chunk.extend_from_slice(part);
                parts.push(chunk);
            }
        }
        let unit = self.lane_unit(lane);
        for chunk in parts {
            let l = self.lanes.as_mut().expect("started");
            let b = l.data.get_mut(&lane).expect("the lane above");
            let pos = lane_position(lane, b.done);
            b.done += chunk.len() as u64;
            l.stored += chunk.len() as u64;
            l.note(Some(lane));
            let data = self.ctx.pools.chunks.bytes(chunk);
            self.enqueue(pos, data, unit, None, None)?;
        }
        Ok(())
    }

    /// Whether the last backup cut the lane region at `pos` into granules: a region that was
    /// a lane's tail and has since filled up stays in granules, each a delta on its last
    /// version, instead of being stored whole once as a chunk of another length.
    fn granulated_at(&self, pos: u64, size: usize) -> bool {
        let granule = tail_granule(size);
        granule < size
            && self
                .ctx
                .lineage
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(|k| k.lineage.entries.get(&pos)?.anchor)
                .is_some_and(|a| a.len as usize == granule)
    }

    /// The last partial chunk of every lane, the layout last.
    fn finish_lanes(&mut self) -> Result<Option<crate::manifest::Demux>> {
        let Some(l) = self.lanes.as_mut() else {
            return Ok(None);
        };
        l.flush_op();
        let lanes: Vec<u32> = l.data.keys().copied().collect();
        for lane in lanes {
            self.cut_lane(Some(lane))?;
        }
        self.cut_layout(true)?;
        let l = self.lanes.as_ref().expect("started");
        Ok(Some(crate::manifest::Demux {
            stored: l.stored,
            runs: l.runs.clone(),
        }))
    }

    /// Change metadata before the commit (e.g. once the stream revealed the
    /// datafile it carries).
    pub fn meta_mut(&mut self) -> &mut PieceMeta {
        &mut self.meta
    }

    /// Append bytes to the piece. Call from a blocking thread, not from async code.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        if self.lanes.is_some() {
            return Err(RepoError::InvalidArgument(format!(
                "piece {:?} is written lane by lane: plain writes cannot follow",
                self.name
            )));
        }
        if self.in_place.is_some() {
            return self.write_in_place(data);
        }
        if self.fill.is_some() {
            self.size += data.len() as u64;
            while !data.is_empty() {
                let (size, buf) = self.fill.as_mut().expect("fixed");
                let size = *size;
                if buf.capacity() < size {
                    *buf = self.ctx.pools.chunks.take(size);
                    buf.clear();
                }
                let n = (size - buf.len()).min(data.len());
                buf.extend_from_slice(&data[..n]);
                data = &data[n..];
                if buf.len() == size {
                    self.push_fill()?;
                }
            }
            return Ok(());
        }
        let spare = self.pending.capacity() - self.pending.len();
        if spare < data.len() {
            self.pending
                .reserve(data.len().max(self.chunker.max_chunk() * 2));
        }
        self.pending.extend_from_slice(data);
        self.size += data.len() as u64;
        self.cut(false)
    }

    /// Read `input` to its end into the piece. Bytes are read into fresh
    /// buffers that become the chunks themselves (no copy, no zero-fill);
    /// `progress` gets each read's size.
    pub fn write_from(
        &mut self,
        input: &mut impl std::io::Read,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        use std::io::Read;
        if self.fill.is_some() {
            return self.read_fixed(input, progress);
        }
        let read_size = (8 << 20).max(self.chunker.max_chunk() * 2);
        let mut total = 0u64;
        loop {
            let carry = self.pending.len();
            let mut buf = Vec::with_capacity(carry + read_size);
            buf.extend_from_slice(&self.pending);
            let n = loop {
                match input.by_ref().take(read_size as u64).read_to_end(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(RepoError::io("cannot read the input", e)),
                }
            };
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            self.size += n as u64;
            progress(n as u64);
            let mut data = Bytes::from(buf);
            self.pending.clear();
            while let Some(k) = self.chunker.next_cut(&data, false) {
                let chunk = data.split_to(k);
                self.push(chunk)?;
            }
            self.pending.extend_from_slice(&data);
        }
    }

    /// End the current chunk here, whatever the chunker says. Used to keep
    /// chunks aligned to structure the caller knows (e.g. the end of a
    /// backup-piece header before the datafile blocks).
    pub fn boundary(&mut self) -> Result<()> {
        if self.in_place.is_some() {
            return self.push_in_place();
        }
        if self.fill.as_ref().is_some_and(|(_, b)| !b.is_empty()) {
            return self.push_fill();
        }
        if !self.pending.is_empty() {
            let chunk = self.pending.split().freeze();
            self.push(chunk)?;
        }
        Ok(())
    }

    /// End the current chunk here and give the next chunks the lineage positions of `region`
    /// (`region << 40` on; regions increase through a piece, from 1). A caller that knows where
    /// its source's structure lies in the stream (an Oracle datafile's block numbers) keys
    /// each stretch by that instead of by its stream offset: a block that appears or vanishes
    /// in one stretch then moves no other stretch's chunks, and they keep their ids and their
    /// anchors (docs/design.md, "Positions").
    pub fn realign(&mut self, region: u64) -> Result<()> {
        if self.lanes.is_some() {
            return Err(RepoError::InvalidArgument(format!(
                "piece {:?} is written lane by lane: it has no stream positions to move",
                self.name
            )));
        }
        if region == 0 || region >= 1 << (64 - REGION_SHIFT) {
            return Err(RepoError::InvalidArgument(format!(
                "region {region} is out of range: 1 to {}",
                (1u64 << (64 - REGION_SHIFT)) - 1
            )));
        }
        let position = region << REGION_SHIFT;
        self.boundary()?;
        if position <= self.chunked {
            return Err(RepoError::InvalidArgument(format!(
                "piece {:?}: region {region} does not follow the last position",
                self.name
            )));
        }
        self.chunked = position;
        Ok(())
    }

    /// Fixed-size chunking straight into pooled chunk buffers.
    fn read_fixed(
        &mut self,
        input: &mut impl std::io::Read,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let (size, buf) = self.fill.as_mut().expect("fixed");
            let size = *size;
            if buf.capacity() < size {
                *buf = self.ctx.pools.chunks.take(size);
                buf.clear();
            }
            let filled = buf.len();
            buf.resize(size, 0);
            let n = loop {
                match input.read(&mut buf[filled..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        buf.truncate(filled);
                        return Err(RepoError::io("cannot read the input", e));
                    }
                }
            };
            buf.truncate(filled + n);
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            self.size += n as u64;
            progress(n as u64);
            if buf.len() == size {
                self.push_fill()?;
            }
        }
    }

    /// [`Self::write`] with [`WriteOptions::hash_in_caller`].
    fn write_in_place(&mut self, mut data: &[u8]) -> Result<()> {
        self.size += data.len() as u64;
        let key = *self.ctx.codec.keys().id_key();
        while !data.is_empty() {
            let (size, buf) = self.fill.as_mut().expect("fixed");
            let size = *size;
            let st = self.in_place.as_mut().expect("in place");
            if st.filled == 0 {
                if buf.capacity() < size {
                    *buf = self.ctx.pools.chunks.take(size);
                }
                // Units are written at their places; a reused buffer is
                // already this long, so nothing is zero-filled.
                buf.resize(size, 0);
                st.anchor = known(&self.ctx)
                    .and_then(|k| k.anchor(self.chunked, self.ctx.unit))
                    .filter(|a| a.len as usize <= size);
            }
            let n = (size - st.filled).min(data.len());
            let (part, rest) = data.split_at(n);
            place_units(&key, self.ctx.unit, st, buf, part);
            data = rest;
            if st.filled == size {
                self.push_in_place()?;
            }
        }
        Ok(())
    }

    /// Send the chunk being filled in place.
    fn push_in_place(&mut self) -> Result<()> {
        let (Some(st), Some((_, buf))) = (self.in_place.as_mut(), self.fill.as_mut()) else {
            return Ok(());
        };
        let filled = std::mem::take(&mut st.filled);
        if filled == 0 {
            return Ok(());
        }
        let key = self.ctx.codec.keys().id_key();
        let unit = self.ctx.unit;
        let hashed = st.nodes.len() * unit;
        if hashed < filled {
            crate::hash::unit_cvs(key, &buf[hashed..filled], hashed, unit, &mut st.nodes);
        }
        buf.truncate(filled);
        let hash = crate::hash::from_nodes(key, buf, unit, &st.nodes);
        st.nodes.clear();
        let units = filled.div_ceil(unit);
        let matching = std::mem::take(&mut st.matching);
        st.copy_all = st.anchor.is_some() && matching * 2 < units;
        let absent = std::mem::take(&mut st.absent);
        let sparse = match st.anchor.take() {
            Some(a) if !absent.is_empty() => Some(Sparse {
                anchor: a.id,
                anchor_len: a.len as usize,
                absent,
            }),
            _ => None,
        };
        let data = self.ctx.pools.chunks.bytes(std::mem::take(buf));
        self.push_item(data, Some(hash), sparse)
    }

    /// Send the chunk being filled.
    fn push_fill(&mut self) -> Result<()> {
        let Some((_, buf)) = self.fill.as_mut() else {
            return Ok(());
        };
        let data = self.ctx.pools.chunks.bytes(std::mem::take(buf));
        self.push(data)
    }

    fn cut(&mut self, eof: bool) -> Result<()> {
        if self.fill.is_some() {
            if eof {
                self.boundary()?;
            }
            return Ok(());
        }
        while let Some(n) = self.chunker.next_cut(&self.pending, eof) {
            let chunk = self.pending.split_to(n).freeze();
            self.push(chunk)?;
        }
        Ok(())
    }

    fn push(&mut self, chunk: Bytes) -> Result<()> {
        self.push_hashed(chunk, None)
    }

    fn push_hashed(&mut self, data: Bytes, hash: Option<Hashed>) -> Result<()> {
        self.push_item(data, hash, None)
    }

    fn push_item(
        &mut self,
        data: Bytes,
        hash: Option<Hashed>,
        sparse: Option<Sparse>,
    ) -> Result<()> {
        let offset = self.chunked;
        self.chunked += data.len() as u64;
        self.enqueue(offset, data, self.ctx.unit, hash, sparse)
    }

    /// Add a chunk at lineage position `offset` to the batch being gathered.
    fn enqueue(
        &mut self,
        offset: u64,
        data: Bytes,
        unit: usize,
        hash: Option<Hashed>,
        sparse: Option<Sparse>,
    ) -> Result<()> {
        self.batch_len += data.len();
        let anchor = known(&self.ctx).and_then(|k| k.anchor(offset, unit));
        self.batch.push(Item {
            offset,
            data,
            unit,
            anchor,
            hash,
            sparse,
        });
        if self.batch_len >= self.batch_target {
            self.send_batch()?;
        }
        Ok(())
    }

    /// Store a whole regular file. With fixed-size chunking its chunks are
    /// read and fingerprinted in parallel on the rayon pool, each by the
    /// thread that read it while the bytes are still in its cache: reading
    /// costs as much CPU as hashing, so a single reading thread would halve
    /// the speed on already-stored data. Other chunkers read it as a stream.
    /// Call it from a plain thread (`spawn_blocking`), not from a rayon task: it waits for
    /// the chunks it hands to the pool.
    pub fn write_file(
        &mut self,
        file: &std::fs::File,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        let size = match self.spec {
            ChunkerSpec::Fixed { size } => size as usize,
            _ => return self.write_from(&mut std::io::BufReader::new(file), progress),
        };
        let partial = self.fill.as_ref().is_some_and(|(_, b)| !b.is_empty())
            || self.in_place.as_ref().is_some_and(|st| st.filled > 0);
        if partial || !self.chunked.is_multiple_of(size as u64) {
            return self.write_from(&mut std::io::BufReader::new(file), progress);
        }
        let ctx = self.ctx.clone();
        let window = self.chunks_ahead() as u64;
        let base = self.chunked;
        let anchor_at = |i: u64| -> Option<Arc<Vec<UnitCv>>> {
            Some(known(&ctx)?.anchor(base + i * size as u64, ctx.unit)?.cvs)
        };
        // One rayon task per chunk, at most `window` of them ahead of the one handed on, and
        // handed on in order as they come: no batch waits for its slowest chunk while the
        // other core idles. Tasks never block, so the pipeline's own encoding on the same
        // pool always gets a thread.
        rayon::in_place_scope(|scope| -> Result<u64> {
            let (tx, rx) = std::sync::mpsc::channel::<(u64, Result<Option<(Bytes, Hashed)>>)>();
            let spawn = |i: u64| {
                let (tx, ctx, anchor) = (tx.clone(), &ctx, anchor_at(i));
                scope.spawn(move |_| {
                    let anchor = anchor.as_deref().map(Vec::as_slice);
                    // A panic would leave the chunk's slot empty forever: hand it on as an error.
                    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        read_chunk(file, i * size as u64, size, ctx, anchor)
                    }))
                    .unwrap_or(Err(RepoError::PipelineStopped { stage: "file read" }));
                    // The receiver is gone only once the file's end or an error was handed on.
                    let _ = tx.send((i, read));
                });
            };
            let mut ready: std::collections::BTreeMap<u64, Result<Option<(Bytes, Hashed)>>> =
                std::collections::BTreeMap::new();
            for i in 0..window {
                spawn(i);
            }
            let mut next = 0u64;
            let mut at = 0u64;
            loop {
                let read = match ready.remove(&next) {
                    Some(r) => r,
                    None => {
                        let (i, r) = rx
                            .recv()
                            .map_err(|_| RepoError::PipelineStopped { stage: "file read" })?;
                        ready.insert(i, r);
                        continue;
                    }
                };
                // A short chunk is the file's end; anything read after it
                // (a file growing while we read) belongs to no consistent view.
                let Some((data, hash)) = read? else {
                    return Ok(at);
                };
                let n = data.len() as u64;
                at += n;
                self.size += n;
                progress(n);
                self.push_hashed(data, Some(hash))?;
                if n < size as u64 {
                    return Ok(at);
                }
                spawn(next + window);
                next += 1;
            }
        })
    }

    fn send_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.ensure_session();
        let batch = std::mem::take(&mut self.batch);
        self.batch_len = 0;
        let sent = match &self.tx {
            Some(tx) => tx.blocking_send(batch).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The pipeline stopped: report why.
            self.tx = None;
            match self.join() {
                Err(e) => Err(e),
                Ok(_) => Err(RepoError::PipelineStopped { stage: "ingest" }),
            }
        }
    }

    fn join(&mut self) -> Result<(Vec<Outcome>, WriteStats)> {
        match self.task.take() {
            Some(t) => self
                .rt
                .block_on(t)
                .map_err(RepoError::task("ingest pipeline"))?,
            None => Err(RepoError::WriterFailed {
                name: self.name.clone(),
            }),
        }
    }

    /// Process the rest, then commit the piece atomically.
    pub fn finish(mut self) -> Result<Committed> {
        self.cut(true)?;
        let demux = self.finish_lanes()?;
        self.send_batch()?;
        self.tx = None;
        let (outcomes, mut stats) = self.join()?;
        stats.bytes_in = self.size;
        // u64 milliseconds outlast any run.
        stats.elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut meta = self.meta.clone();
        meta.stats = Some(stats);
        let keys = self.ctx.codec.keys();
        let manifest = Manifest {
            header: ManifestHeader {
                version: if demux.is_some() {
                    manifest::VERSION_DEMUX
                } else if keys.is_group() {
                    manifest::VERSION_GROUP_IDS
                } else {
                    manifest::VERSION_REPOSITORY_IDS
                },
                name: self.name.clone(),
                size: self.size,
                chunker: self.spec,
                meta,
                id_key: keys.is_group().then(|| keys.id_key_fingerprint()),
                group_secret: keys.sealed_group_secret()?,
                demux,
            },
            chunks: outcomes
                .iter()
                .map(|o| ChunkRef {
                    id: o.id,
                    len: o.len,
                })
                .collect(),
        };
        let bytes = manifest.encode(keys)?;
        self.ensure_session();
        let committed = self.rt.block_on(self.ctx.backend.commit(bytes));
        let since = self.session.as_ref().map(|s| s.grant.started);
        self.end_session();
        let info = committed?;
        // Without a session no store time vouches for these chunks: the
        // lineage is kept for deltas' sake but never trusted (since = 0).
        let since = since.unwrap_or(0);
        let mut lineage = Lineage {
            since,
            ..Default::default()
        };
        let mut lanes: std::collections::BTreeMap<u32, Lineage> = Default::default();
        let demuxed = manifest.header.demux.is_some();
        for o in outcomes {
            if !demuxed {
                lineage.entries.insert(o.offset, o.lineage);
                continue;
            }
            let slot = o.offset >> LANE_SHIFT;
            if let Some(lane) = slot
                .checked_sub(1)
                .and_then(|l| u32::try_from(l).ok())
                .filter(|&l| l <= MAX_LANE)
            {
                lanes
                    .entry(lane)
                    .or_insert_with(|| Lineage {
                        since,
                        ..Default::default()
                    })
                    .entries
                    .insert(o.offset & ((1 << LANE_SHIFT) - 1), o.lineage);
            }
        }
        let known = self
            .ctx
            .lineage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let lineage_unchanged = !demuxed
            && known
                .as_ref()
                .is_some_and(|k| k.lineage.entries == lineage.entries);
        let lanes_unchanged = match &known {
            Some(k) if demuxed => unchanged_lanes(&k.lineage, &lanes),
            _ => Default::default(),
        };
        Ok(Committed {
            info,
            manifest,
            lineage,
            lanes,
            lineage_unchanged,
            lanes_unchanged,
        })
    }

    /// Give up on the piece: nothing becomes visible. Chunks already sent are
    /// kept (made durable) so a retry does not send them again.
    pub fn abort(mut self) {
        self.tx = None;
        let _ = self.join();
        if let Err(e) = self.rt.block_on(self.ctx.backend.flush()) {
            tracing::warn!(piece = %self.name, error = %e, "could not keep the chunks of an aborted piece");
        }
        self.end_session();
    }
}

impl Drop for PieceWriter {
    /// A writer dropped without `finish` or `abort` (a panic, an early
    /// return) still releases its session rather than holding garbage
    /// collection back until it expires.
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            s.renewer.abort();
            let backend = self.ctx.backend.clone();
            self.rt.spawn(async move {
                let _ = backend.end_session(s.grant.id).await;
            });
        }
    }
}

/// Hash `part`, the next bytes of the chunk in `buf`: whole units (of `size` bytes) straight
/// from the caller's buffer (copied only when they differ from the anchor's),
/// split units once gathered in `buf`. With an anchor, a whole group is first
/// hashed at once and its units hashed apart only when it differs from the
/// anchor's group. Unit 0 is always copied and hashed on its own: a chunk that
/// ends up one unit long is hashed from its bytes, one of two units from
/// their values.
fn place_units(key: &[u8; 32], size: usize, st: &mut InPlace, buf: &mut [u8], part: &[u8]) {
    let mut pos = 0;
    while pos < part.len() {
        let at = st.filled;
        let unit = at / size;
        if at.is_multiple_of(GROUP)
            && at > 0
            && at + GROUP <= buf.len()
            && part.len() - pos >= GROUP
            && let Some(a) = st.anchor.as_ref()
            && at + GROUP <= a.len as usize
        {
            let bytes = &part[pos..pos + GROUP];
            let cv = crate::hash::group_cv(key, bytes, at);
            if crate::hash::group_value(&a.cvs, size, at / GROUP).is_some_and(|v| v[..] == cv[..16])
            {
                let per = GROUP / size;
                st.nodes
                    .extend(crate::hash::group_nodes(cv, &a.cvs, unit, size));
                st.matching += per;
                if st.copy_all {
                    buf[at..at + GROUP].copy_from_slice(bytes);
                } else {
                    st.absent.extend(unit..unit + per);
                }
                st.filled += GROUP;
                pos += GROUP;
                continue;
            }
        }
        let unit_end = ((unit + 1) * size).min(buf.len());
        let take = (unit_end - at).min(part.len() - pos);
        let bytes = &part[pos..pos + take];
        if at == unit * size && at + take == unit_end && unit > 0 {
            let mut node = Vec::with_capacity(1);
            crate::hash::unit_cvs(key, bytes, at, size, &mut node);
            let same = unit_same(st, size, unit, &node[0]);
            if same {
                st.matching += 1;
            }
            if same && !st.copy_all {
                st.absent.push(unit);
            } else {
                buf[at..at + take].copy_from_slice(bytes);
            }
            st.nodes.push(node[0]);
        } else {
            buf[at..at + take].copy_from_slice(bytes);
            if at + take == unit_end {
                let start = unit * size;
                let before = st.nodes.len();
                crate::hash::unit_cvs(key, &buf[start..unit_end], start, size, &mut st.nodes);
                if unit_same(st, size, unit, &st.nodes[before]) {
                    st.matching += 1;
                }
            }
        }
        st.filled += take;
        pos += take;
    }
}

/// Whether unit `unit` (of `size` bytes), hashed on its own, equals the anchor's unit there.
fn unit_same(st: &InPlace, size: usize, unit: usize, node: &Node) -> bool {
    let Node::Unit(cv) = node else {
        return false;
    };
    // The anchor's short last unit is never this whole one.
    st.anchor.as_ref().is_some_and(|a| {
        (unit + 1) * size <= a.len as usize
            && a.cvs
                .get(unit)
                .is_some_and(|v| crate::hash::unit_matches(v, cv))
    })
}

/// How a changed chunk of `len` bytes with unit values `cvs` is stored against its last
/// version's anchor `a`, or `None` to store it whole (more than half the units they share
/// differ). Below the chain's depth limit it is a delta on `a` of the
/// units changed since; at the limit, a delta on the chain's full chunk of every unit that
/// differs from that, which starts the chain again one deep.
///
/// A chunk that grew at its end changed every unit not wholly in `a`; those are new bytes,
/// stored whole or not, so only the units `a` has count towards the half. They join
/// `dirty` too, so a delta on the chain's full chunk (shorter still, if the chunk grew
/// since it) carries every unit past that chunk's end.
///
/// A chunk that lost bytes at its end (a datafile region whose trailing RMAN bytes moved
/// on to the next region) carries its last unit, whose length tells a reader where the
/// chunk ends on its longer base ([`Codec::delta_len`]); so does a delta on the chain's full
/// chunk, whose length nothing records.
fn plan_delta(
    a: &Anchor,
    len: usize,
    unit: usize,
    cvs: &[UnitCv],
    missing: &HashSet<ChunkId>,
) -> Option<Delta> {
    let mut changed = crate::hash::changed_units(&a.cvs, cvs);
    let anchor_len = a.len as usize;
    let last = cvs.len().checked_sub(1)?;
    if anchor_len < len {
        changed.extend(anchor_len / unit..cvs.len());
    }
    if anchor_len > len {
        changed.push(last);
    }
    changed.sort_unstable();
    changed.dedup();
    // The chain's full chunk may be shorter or longer than `a`, by a length nothing
    // records: there every unit counts.
    let (base, changed, base_units) = if a.depth < MAX_DELTA_DEPTH {
        (a.id, changed, a.cvs.len().min(cvs.len()))
    } else {
        let root = a.root.filter(|r| !missing.contains(r))?;
        let mut all: Vec<usize> = a.dirty.iter().map(|&u| usize::from(u)).collect();
        all.extend_from_slice(&changed);
        all.retain(|&u| u < cvs.len());
        all.push(last);
        all.sort_unstable();
        all.dedup();
        (root, all, cvs.len())
    };
    let differ = changed.iter().filter(|&&u| u < base_units).count();
    (differ * 2 <= base_units).then_some(Delta { base, changed })
}

/// Fill in the units that in-place hashing skipped in the chunks at
/// `which`, from their anchors, and check each result against its id.
async fn complete_sparse(
    ctx: &Ctx,
    batch: &mut [Item],
    which: &[usize],
    hashes: &[Hashed],
) -> Result<()> {
    // An anchor is the chunk's last version: a full chunk or a delta of a chain.
    let wanted: Vec<(ChunkId, usize)> = which
        .iter()
        .filter_map(|&i| batch[i].sparse.as_ref().map(|s| (s.anchor, s.anchor_len)))
        .collect();
    let bases = crate::chain::plaintexts_from(
        &ctx.backend,
        &ctx.codec,
        "the anchor of a changed chunk",
        &wanted,
    )
    .await?;
    for &i in which {
        let item = &mut batch[i];
        let Some(sparse) = item.sparse.take() else {
            continue;
        };
        let anchor = &sparse.anchor;
        let len = item.data.len();
        let base = &bases[anchor];
        let mut full = ctx.pools.chunks.take(len);
        full.clear();
        full.extend_from_slice(&item.data);
        for u in sparse.absent {
            let r = u * item.unit..((u + 1) * item.unit).min(len);
            full[r.clone()].copy_from_slice(&base[r]);
        }
        if ctx.codec.keys().chunk_id(&full) != hashes[i].0 {
            return Err(RepoError::StaleLineage {
                chunk: hashes[i].0,
                anchor: *anchor,
            });
        }
        item.data = ctx.pools.chunks.bytes(full);
    }
    Ok(())
}

async fn run(
    rx: mpsc::Receiver<Vec<Item>>,
    ctx: Arc<Ctx>,
    concurrency: usize,
) -> Result<(Vec<Outcome>, WriteStats)> {
    let batches =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let results = batches
        .map(|b| process(b, ctx.clone()))
        .buffered(concurrency);
    futures::pin_mut!(results);
    let mut refs = Vec::new();
    let mut stats = WriteStats::default();
    while let Some(r) = results.next().await {
        let (batch_refs, s) = r?;
        refs.extend(batch_refs);
        stats.chunks += s.chunks;
        stats.new_chunks += s.new_chunks;
        stats.new_bytes += s.new_bytes;
        stats.delta_chunks += s.delta_chunks;
        stats.cache_hits += s.cache_hits;
        stats.probes += s.probes;
        stats.probed_ids += s.probed_ids;
        stats.anchor_reads += s.anchor_reads;
    }
    Ok((refs, stats))
}

/// The values of a delta's `changed` units, as its payload carries them.
fn changed_values(cvs: &[UnitCv], changed: &[usize]) -> Option<UnitValues> {
    let mut carried = changed
        .iter()
        .map(|&u| Some((u16::try_from(u).ok()?, *cvs.get(u)?)))
        .collect::<Option<Vec<_>>>()?;
    carried.sort_unstable_by_key(|(u, _)| *u);
    Some(UnitValues::Changed {
        units: u16::try_from(cvs.len()).ok()?,
        changed: carried,
    })
}

/// The writer's lineage, if it has one, out of its lock (reading anchors may take a while).
fn known(ctx: &Ctx) -> Option<Arc<Known>> {
    ctx.lineage
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Read the fixed-size chunk at `start` of `file` and fingerprint it, each part hashed while
/// it is still in the core's cache; `None` past the file's end.
fn read_chunk(
    file: &std::fs::File,
    start: u64,
    size: usize,
    ctx: &Ctx,
    anchor: Option<&[UnitCv]>,
) -> Result<Option<(Bytes, Hashed)>> {
    use std::os::unix::fs::FileExt;
    let mut buf = ctx.pools.chunks.take(size);
    buf.resize(size, 0);
    let key = ctx.codec.keys().id_key();
    let unit = ctx.unit;
    let mut nodes = Vec::with_capacity(size.div_ceil(unit));
    let mut got = 0;
    let mut hashed = 0;
    while got < size {
        let end = (got + READ_PART).min(size);
        let n = match file.read_at(&mut buf[got..end], start + got as u64) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RepoError::io("cannot read the input file", e)),
        };
        got += n;
        if ctx.with_units && (got == end || n == 0) {
            let whole = if n == 0 { got } else { got - got % unit };
            crate::hash::hash_units(key, &buf[hashed..whole], hashed, unit, anchor, &mut nodes);
            hashed = whole;
        }
        if n == 0 {
            break;
        }
    }
    if got == 0 {
        ctx.pools.chunks.give(buf);
        return Ok(None);
    }
    buf.truncate(got);
    let hash = if ctx.with_units {
        if hashed < got {
            crate::hash::hash_units(key, &buf[hashed..got], hashed, unit, anchor, &mut nodes);
        }
        crate::hash::from_nodes(key, &buf, unit, &nodes)
    } else {
        ctx.codec.keys().chunk_hash(&buf, false)
    };
    Ok(Some((ctx.pools.chunks.bytes(buf), hash)))
}

async fn process(batch: Vec<Item>, ctx: Arc<Ctx>) -> Result<(Vec<Outcome>, WriteStats)> {
    let codec = ctx.codec.clone();
    let with_units = ctx.with_units;
    let mut batch = batch;
    let lineage = known(&ctx);
    let hashes: Vec<Hashed> = if batch.iter().all(|it| it.hash.is_some()) {
        batch.iter_mut().filter_map(|it| it.hash.take()).collect()
    } else {
        let (b, hashes) = crate::pool::on_cpu_pool("chunk hashing", move || {
            let hashes: Vec<Hashed> = batch
                .par_iter_mut()
                .map(|it| {
                    it.hash.take().unwrap_or_else(|| {
                        let anchor = it.anchor.as_ref();
                        let key = codec.keys().id_key();
                        crate::hash::chunk_hash(
                            key,
                            &it.data,
                            it.unit,
                            with_units,
                            anchor.map(|a| &a.cvs[..]),
                        )
                    })
                })
                .collect();
            (batch, hashes)
        })
        .await?;
        batch = b;
        hashes
    };

    let mut stats = WriteStats {
        chunks: batch.len() as u64,
        ..Default::default()
    };
    let previous = |offset: u64| {
        lineage
            .as_ref()
            .and_then(|l| l.lineage.entries.get(&offset))
    };
    // A changed chunk's anchor is probed with it: a delta may only build on a
    // chunk the repository still holds.
    let anchor_of = |i: usize| -> Option<&Anchor> {
        let Item { data, anchor, .. } = &batch[i];
        anchor
            .as_ref()
            .filter(|a| a.id != hashes[i].0 && hashes[i].1.is_some() && !data.is_empty())
    };
    let mut to_probe = Vec::new();
    let mut hits = vec![false; batch.len()];
    {
        let seen = ctx.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut asked = HashSet::new();
        for (i, (id, _)) in hashes.iter().enumerate() {
            if lineage.as_ref().is_some_and(|l| l.ids.contains(id)) {
                stats.cache_hits += 1;
                hits[i] = true;
                continue;
            }
            if seen.contains(id) {
                continue;
            }
            if asked.insert(*id) {
                to_probe.push(*id);
                if let Some(a) = anchor_of(i) {
                    for base in [Some(a.id), a.root.filter(|_| a.depth >= MAX_DELTA_DEPTH)]
                        .into_iter()
                        .flatten()
                    {
                        if asked.insert(base) {
                            to_probe.push(base);
                        }
                    }
                }
            }
        }
    }
    let missing: HashSet<ChunkId> = if to_probe.is_empty() {
        HashSet::new()
    } else {
        stats.probes = 1;
        stats.probed_ids = to_probe.len() as u64;
        ctx.backend.missing(&to_probe).await?.into_iter().collect()
    };

    // Decide, per first occurrence of each missing chunk: delta or full.
    let mut plan: Vec<(usize, Option<Delta>)> = Vec::new();
    let mut planned = HashSet::new();
    for (i, (id, cvs)) in hashes.iter().enumerate() {
        if hits[i] || !missing.contains(id) || !planned.insert(*id) {
            continue;
        }
        let delta = anchor_of(i)
            .filter(|a| !missing.contains(&a.id))
            .and_then(|a| {
                let Item { data, unit, .. } = &batch[i];
                plan_delta(a, data.len(), *unit, cvs.as_ref()?, &missing)
            });
        plan.push((i, delta));
    }
    // A chunk hashed in place that is stored whole (or on another base, or carrying a unit
    // it skipped: its last, when it shrank) needs the units it skipped: they are the anchor's.
    let incomplete: Vec<usize> = plan
        .iter()
        .filter(|(i, d)| {
            batch[*i].sparse.as_ref().is_some_and(|s| {
                d.as_ref().is_none_or(|d| {
                    d.base != s.anchor || d.changed.iter().any(|u| s.absent.contains(u))
                })
            })
        })
        .map(|(i, _)| *i)
        .collect();
    // Without its anchor such a chunk cannot be rebuilt: the lineage that
    // vouched for the anchor is out of date, as when a commit finds cached
    // chunks missing.
    let lost: Vec<ChunkId> = incomplete
        .iter()
        .filter_map(|&i| batch[i].sparse.as_ref().map(|s| s.anchor))
        .filter(|a| missing.contains(a))
        .collect();
    if !lost.is_empty() {
        return Err(RepoError::MissingChunks {
            name: ctx.name.clone(),
            missing: lost,
        });
    }
    if !incomplete.is_empty() {
        stats.anchor_reads = incomplete.len() as u64;
        complete_sparse(&ctx, &mut batch, &incomplete, &hashes).await?;
    }
    let codec = ctx.codec.clone();
    let pools = ctx.pools.clone();
    let (batch, hashes, plan, encoded) = crate::pool::on_cpu_pool("chunk encoding", move || {
        let encoded: Result<Vec<EncodedChunk>> = plan
            .par_iter()
            .map(|(i, delta)| {
                let (id, Item { data, unit, .. }) = (&hashes[*i].0, &batch[*i]);
                let out = pools.payloads.take(Codec::max_payload(data.len()));
                // The chunk's unit values travel with it, so that its next version can find
                // which units changed without a local copy: all of them for a chunk stored
                // whole, the delta's own for a delta.
                let cvs = hashes[*i].1.as_deref();
                let payload = match delta {
                    Some(d) => {
                        let values = cvs.and_then(|c| changed_values(c, &d.changed));
                        codec.encode_delta_with_values_in(
                            out,
                            id,
                            data,
                            *unit,
                            &d.base,
                            &d.changed,
                            values.as_ref(),
                        )?
                    }
                    None => {
                        let values = cvs.map(|c| UnitValues::Every(c.to_vec()));
                        codec.encode_with_values_in(out, id, data, values.as_ref())?
                    }
                };
                Ok(EncodedChunk {
                    id: *id,
                    raw_len: chunk_len(data),
                    payload: pools.payloads.bytes(payload),
                })
            })
            .collect();
        (batch, hashes, plan, encoded)
    })
    .await?;
    let encoded = encoded?;
    stats.new_chunks = encoded.len() as u64;
    stats.new_bytes = encoded.iter().map(|c| c.payload.len() as u64).sum();
    stats.delta_chunks = plan.iter().filter(|(_, d)| d.is_some()).count() as u64;
    if !encoded.is_empty() {
        ctx.backend.put_chunks(encoded).await?;
    }
    ctx.seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(hashes.iter().map(|(id, _)| *id));

    // The anchor each position offers the next backup: the version just written, so that the
    // next one stores only what changes after it, whether it was stored now, before, or by
    // another source (its values are in its payload, its place in a chain is read with
    // them). Only a chunk with unit values is one: they are what its next version is
    // compared with.
    let outcomes = batch
        .iter()
        .zip(hashes)
        .map(|(Item { offset, data, .. }, (id, cvs))| {
            let len = chunk_len(data);
            let anchor = match cvs {
                Some(_) => Some(AnchorRef { id, len }),
                None => previous(*offset).and_then(|e| e.anchor),
            };
            Outcome {
                id,
                len,
                offset: *offset,
                lineage: LineageEntry { chunk: id, anchor },
            }
        })
        .collect();
    Ok((outcomes, stats))
}
