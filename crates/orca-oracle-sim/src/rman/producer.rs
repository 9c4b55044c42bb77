//! Reads the input files of a backup set and produces the runs of blocks that go into its
//! pieces: null blocks skipped, level-1 filtering by block SCN (or by the change-tracking
//! bitmap), and RMAN-like multiplexing when several files share a set.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use orca_oracle::Scn;
use orca_oracle::block::is_null_block;

use crate::db::DatafileIo;

/// Runs of a file alone in its set are cut at multiples of this many blocks, so an unchanged
/// file gives byte-identical runs in every backup.
pub const ALIGNED_RUN: u32 = 128;
/// Multiplexed runs take between these many blocks of one file at a time.
const MUX_MIN: u32 = 8;
const MUX_MAX: u32 = 64;
/// Buffers kept for reuse once written: a window being read, a chunk being written, and a
/// queue's worth between them.
const SPARES: usize = 4;

/// Runs read from one window: first block, the buffer holding it and where in that buffer.
type Runs = Vec<(u64, Vec<u8>, Range<usize>)>;

/// Which blocks of a datafile go into the backup.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Full / level 0: every block that is not null.
    All,
    /// Level 1: blocks 0 and 1 and blocks whose SCN is above this.
    ChangedSince(Scn),
    /// Level 1 with block change tracking: only these blocks are read (sorted), plus 0 and 1.
    Tracked { since: Scn, blocks: Vec<u32> },
}

/// Where a file's blocks come from.
#[derive(Debug)]
pub enum Source {
    Datafile(DatafileIo),
    /// Archived log (or any file read as raw blocks).
    Raw {
        file: File,
        path: PathBuf,
    },
}

/// Reading progress of one input file.
#[derive(Debug)]
pub struct FileCursor {
    pub entry: u32,
    source: Source,
    block_size: usize,
    next: u32,
    end: u32,
    filter: Filter,
    tracked_pos: usize,
    /// Blocks written to the set (V$BACKUP_DATAFILE.BLOCKS).
    pub blocks_written: u64,
    /// Blocks read from disk (BLOCKS_READ).
    pub blocks_read: u64,
    /// Highest block SCN seen (ABSOLUTE_FUZZY_CHANGE#).
    pub max_scn: Scn,
    /// Bytes read (V$RMAN_STATUS.INPUT_BYTES).
    pub bytes_read: u64,
}

/// A read failure, with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {reason}")]
pub struct ReadError {
    pub path: String,
    pub block: u64,
    pub block_size: usize,
    pub reason: String,
    pub io: Option<std::io::Error>,
}

impl FileCursor {
    /// Blocks `first..end` of a datafile (`end` exclusive; block 0 is the OS header block).
    pub fn datafile(entry: u32, io: DatafileIo, first: u32, end: u32, filter: Filter) -> Self {
        let block_size = io.block_size();
        let mut filter = filter;
        if let Filter::Tracked { blocks, .. } = &mut filter {
            blocks.retain(|b| *b >= first.max(2) && *b < end);
        }
        Self {
            entry,
            source: Source::Datafile(io),
            block_size,
            next: first,
            end,
            filter,
            tracked_pos: 0,
            blocks_written: 0,
            blocks_read: 0,
            max_scn: Scn(0),
            bytes_read: 0,
        }
    }

    /// Every block of a raw file (archived log).
    pub fn raw(entry: u32, file: File, path: PathBuf, block_size: usize, blocks: u32) -> Self {
        Self {
            entry,
            source: Source::Raw { file, path },
            block_size,
            next: 0,
            end: blocks,
            filter: Filter::All,
            tracked_pos: 0,
            blocks_written: 0,
            blocks_read: 0,
            max_scn: Scn(0),
            bytes_read: 0,
        }
    }

    fn path(&self) -> String {
        match &self.source {
            Source::Datafile(io) => io.path().display().to_string(),
            Source::Raw { path, .. } => path.display().to_string(),
        }
    }

    fn done(&self) -> bool {
        self.next >= self.end
    }

    fn read(&mut self, first: u32, buf: &mut [u8]) -> Result<(), ReadError> {
        let res = match &self.source {
            Source::Datafile(io) => io
                .read_blocks(first, buf)
                .map_err(|e| (e.to_string(), None)),
            Source::Raw { file, .. } => file
                .read_exact_at(buf, u64::from(first) * self.block_size as u64)
                .map_err(|e| (e.to_string(), Some(e))),
        };
        self.blocks_read += (buf.len() / self.block_size) as u64;
        self.bytes_read += buf.len() as u64;
        res.map_err(|(reason, io)| ReadError {
            path: self.path(),
            block: u64::from(first),
            block_size: self.block_size,
            reason,
            io,
        })
    }

    fn keep(&mut self, block: u32, buf: &[u8]) -> bool {
        if is_null_block(buf) {
            return false;
        }
        if let Source::Raw { .. } = self.source {
            return true;
        }
        let scn = block_scn(buf);
        if block >= 2 && scn > self.max_scn {
            self.max_scn = scn;
        }
        match &self.filter {
            Filter::All => true,
            Filter::ChangedSince(since) | Filter::Tracked { since, .. } => {
                block < 2 || scn > *since
            }
        }
    }

    /// Reads up to `window` blocks from the current position and returns the runs to write.
    /// Buffers come from `spare` (what the writer gave back), so windows reuse their pages;
    /// a window that is one run leaves whole, uncopied.
    fn next_runs(&mut self, window: u32, spare: &mut Vec<Vec<u8>>) -> Result<Runs, ReadError> {
        let bs = self.block_size;
        let start = self.next;
        let stop = start.saturating_add(window).min(self.end);
        self.next = stop;
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let candidates: Vec<u32> = match &self.filter {
            Filter::Tracked { blocks, .. } => {
                let mut v: Vec<u32> = (start..stop.min(2)).collect();
                while self.tracked_pos < blocks.len() && blocks[self.tracked_pos] < stop {
                    if blocks[self.tracked_pos] >= start {
                        v.push(blocks[self.tracked_pos]);
                    }
                    self.tracked_pos += 1;
                }
                v
            }
            _ => {
                if stop <= start {
                    return Ok(Vec::new());
                }
                let n = (stop - start) as usize;
                let mut window = spare.pop().unwrap_or_default();
                // Only ever grown: the window is its first n blocks, the rest is left as is.
                if window.len() < n * bs {
                    window.resize(n * bs, 0);
                }
                self.read(start, &mut window[..n * bs])?;
                let mut ranges: Vec<Range<usize>> = Vec::new();
                let mut from = None;
                for i in 0..=n {
                    let kept = i < n && self.keep(start + i as u32, &window[i * bs..][..bs]);
                    match (kept, from) {
                        (true, None) => from = Some(i),
                        (false, Some(f)) => {
                            ranges.push(f * bs..i * bs);
                            from = None;
                        }
                        _ => {}
                    }
                }
                self.blocks_written += ranges.iter().map(|r| (r.len() / bs) as u64).sum::<u64>();
                let first_of = |r: &Range<usize>| u64::from(start) + (r.start / bs) as u64;
                if ranges.len() == 1 {
                    let r = ranges.pop().expect("one run");
                    return Ok(vec![(first_of(&r), window, r)]);
                }
                let runs = ranges
                    .iter()
                    .map(|r| {
                        let mut v = spare.pop().unwrap_or_default();
                        v.clear();
                        v.extend_from_slice(&window[r.clone()]);
                        let len = v.len();
                        (first_of(r), v, 0..len)
                    })
                    .collect();
                spare.push(window);
                return Ok(runs);
            }
        };
        let mut blk = vec![0u8; bs];
        for b in candidates {
            self.read(b, &mut blk)?;
            if self.keep(b, &blk) {
                push_block(&mut out, u64::from(b), &blk);
            }
        }
        self.blocks_written += out.iter().map(|(_, d)| (d.len() / bs) as u64).sum::<u64>();
        Ok(out
            .into_iter()
            .map(|(first, d)| {
                let len = d.len();
                (first, d, 0..len)
            })
            .collect())
    }
}

fn push_block(out: &mut Vec<(u64, Vec<u8>)>, b: u64, data: &[u8]) {
    let bs = data.len() as u64;
    if let Some((first, d)) = out.last_mut()
        && *first + d.len() as u64 / bs == b
    {
        d.extend_from_slice(data);
        return;
    }
    out.push((b, data.to_vec()));
}

/// SCN in a block's `kcbh` (bytes 8..14).
pub fn block_scn(buf: &[u8]) -> Scn {
    if buf.len() < 14 {
        return Scn(0);
    }
    let base = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    let wrap = u16::from_le_bytes([buf[12], buf[13]]);
    Scn::from_parts(base, wrap)
}

/// One unit of piece content.
#[derive(Debug)]
pub enum Chunk {
    /// Blocks `first_block..` of an entry: the bytes `data[at]`. Give `data` back with
    /// [`Producer::recycle`] once written.
    Run {
        entry: u32,
        first_block: u64,
        data: Vec<u8>,
        at: Range<usize>,
    },
    Blob {
        entry: u32,
        data: Vec<u8>,
    },
}

/// Small xorshift generator: the interleaving must differ between runs, not be secure.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Produces the content of one backup set (over one or more pieces).
#[derive(Debug)]
pub struct Producer {
    pub cursors: Vec<FileCursor>,
    blobs: VecDeque<(u32, Vec<u8>)>,
    queue: VecDeque<Chunk>,
    spare: Vec<Vec<u8>>,
    multiplex: bool,
    rng: Rng,
    blob_bytes: u64,
}

impl Producer {
    /// `cursors` are the set's files; `blobs` its control file / spfile entries.
    pub fn new(cursors: Vec<FileCursor>, blobs: Vec<(u32, Vec<u8>)>) -> Self {
        let multiplex = cursors.len() > 1;
        let blob_bytes = blobs.iter().map(|(_, d)| d.len() as u64).sum();
        Self {
            cursors,
            blob_bytes,
            blobs: blobs.into(),
            queue: VecDeque::new(),
            spare: Vec::new(),
            multiplex,
            rng: Rng::from_clock(),
        }
    }

    /// The next chunk to write, or None when the set is complete.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, ReadError> {
        loop {
            if let Some(c) = self.queue.pop_front() {
                return Ok(Some(c));
            }
            let live: Vec<usize> = (0..self.cursors.len())
                .filter(|&i| !self.cursors[i].done())
                .collect();
            if live.is_empty() {
                return Ok(self
                    .blobs
                    .pop_front()
                    .map(|(entry, data)| Chunk::Blob { entry, data }));
            }
            let (idx, window) = if self.multiplex {
                let i = live[self.rng.below(live.len() as u64) as usize];
                let w = MUX_MIN + self.rng.below(u64::from(MUX_MAX - MUX_MIN + 1)) as u32;
                (i, w)
            } else {
                let c = &self.cursors[live[0]];
                (live[0], ALIGNED_RUN - c.next % ALIGNED_RUN)
            };
            let c = &mut self.cursors[idx];
            let entry = c.entry;
            for (first_block, data, at) in c.next_runs(window, &mut self.spare)? {
                self.queue.push_back(Chunk::Run {
                    entry,
                    first_block,
                    data,
                    at,
                });
            }
        }
    }

    /// Takes a written run's buffer back for the next windows (up to a few are kept).
    pub fn recycle(&mut self, data: Vec<u8>) {
        if self.spare.len() < SPARES {
            self.spare.push(data);
        }
    }

    /// Bytes read from all inputs so far.
    pub fn bytes_read(&self) -> u64 {
        self.cursors.iter().map(|c| c.bytes_read).sum::<u64>() + self.blob_bytes
    }
}
