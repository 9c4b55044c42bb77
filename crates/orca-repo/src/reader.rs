//! Streaming restore of one piece with read-ahead: groups of chunks are
//! fetched in parallel, decrypted, decompressed and verified against their
//! fingerprints on the rayon pool, and handed to the reader in order.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use rayon::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::backend::Backend;
use crate::codec::{Codec, Opened};
use crate::error::{RepoError, Result};
use crate::id::ChunkId;
use crate::manifest::Manifest;

/// A decrypted chunk at its position, with its base's plaintext if a delta.
type Opening = (usize, Opened, Option<Bytes>);

/// Tuning of a reader.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Bytes fetched per request.
    pub group_bytes: u64,
    /// Requests in flight.
    pub read_ahead: usize,
    /// Plaintext bytes held ahead of the caller at most: the requests in flight, the chunks
    /// decoded and waiting, and the group being handed out. What bounds a reader's memory
    /// whatever the piece size; a request larger than this waits for the whole of it.
    pub ahead_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            group_bytes: 4 << 20,
            read_ahead: 4,
            ahead_bytes: 24 << 20,
        }
    }
}

/// The read-ahead budget is counted in units of this many bytes (a semaphore's permits).
const BUDGET_UNIT: u64 = 1 << 10;

/// A group of decoded chunks in order, holding its share of the read-ahead budget until the
/// last of them is handed out.
type Group = (VecDeque<Bytes>, OwnedSemaphorePermit);

/// The chunks of one read-ahead (the piece's, or a lane's), in order.
struct Feed {
    rx: mpsc::Receiver<Result<Group>>,
    queue: VecDeque<Bytes>,
    current: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Feed {
    fn new(rx: mpsc::Receiver<Result<Group>>) -> Self {
        Feed {
            rx,
            queue: VecDeque::new(),
            current: Bytes::new(),
            _budget: None,
        }
    }

    /// Makes `current` the next chunk; false at the end.
    fn advance(&mut self) -> Result<bool> {
        loop {
            if let Some(c) = self.queue.pop_front() {
                self.current = c;
                return Ok(true);
            }
            // The group is handed out: its share of the budget goes to the next ones, one of
            // which may be waiting for it before it can be fetched.
            self._budget = None;
            match self.rx.blocking_recv() {
                Some(Ok((chunks, permit))) => {
                    self.queue = chunks;
                    self._budget = Some(permit);
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(false),
            }
        }
    }

    /// Up to `out.len()` next bytes; 0 at the end.
    fn take(&mut self, out: &mut [u8]) -> Result<usize> {
        if self.current.is_empty() && !self.advance()? {
            return Ok(0);
        }
        let k = out.len().min(self.current.len());
        out[..k].copy_from_slice(&self.current[..k]);
        let _ = self.current.split_to(k);
        Ok(k)
    }
}

/// A piece being restored ([`crate::Repository::reader`]): chunks in stream order, each
/// fetched ahead in groups, decrypted, decompressed, rebuilt from its delta and checked
/// against its id before it is returned. Blocking: use it from a thread outside the runtime.
pub struct PieceReader {
    manifest: Arc<Manifest>,
    feed: Feed,
    delivered: u64,
    /// For a demultiplexed piece: its lanes, woven back together by the layout.
    remux: Option<Box<Remux>>,
}

/// The layout operation being replayed.
enum Replay {
    Literal(u64),
    Take(u32, u64),
}

/// Weaves a demultiplexed piece's lanes back into the piece.
struct Remux {
    layout: Feed,
    /// Lanes being read, each started on its first use: RMAN interleaves a few files at a
    /// time (MAXOPENFILES), so few lanes hold read-ahead at once however many the piece has.
    lanes: std::collections::HashMap<u32, Feed>,
    /// The chunks of each lane not started yet.
    unopened: std::collections::HashMap<u32, Vec<usize>>,
    start: Starter,
    op: Option<Replay>,
}

/// What starting a read-ahead takes.
struct Starter {
    manifest: Arc<Manifest>,
    backend: Arc<dyn Backend>,
    codec: Arc<Codec>,
    rt: Handle,
    opts: ReadOptions,
}

impl Starter {
    fn start(&self, indices: Vec<usize>) -> Feed {
        let (tx, rx) = mpsc::channel(self.opts.read_ahead.max(1));
        self.rt.spawn(prefetch(
            self.manifest.clone(),
            indices,
            self.backend.clone(),
            self.codec.clone(),
            tx,
            self.opts.clone(),
        ));
        Feed::new(rx)
    }
}

/// What one lane's read-ahead holds at most, whatever the reader's options.
const LANE_GROUP_BYTES: u64 = 2 << 20;
const LANE_AHEAD_BYTES: u64 = 4 << 20;

impl Remux {
    fn corrupt(name: &str, what: &str) -> RepoError {
        RepoError::corrupt(name, format!("demultiplexed piece {name:?}: {what}"))
    }

    fn byte(&mut self) -> Result<Option<u8>> {
        let mut b = [0u8; 1];
        Ok((self.layout.take(&mut b)? == 1).then_some(b[0]))
    }

    fn varint(&mut self, name: &str) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self
                .byte()?
                .ok_or_else(|| Self::corrupt(name, "the layout ends inside an operation"))?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Self::corrupt(name, "a layout number is too long"))
    }

    /// The next operation; `None` at the end of the layout.
    fn next_op(&mut self, name: &str) -> Result<Option<Replay>> {
        match self.byte()? {
            None => Ok(None),
            Some(crate::writer::OP_LITERAL) => Ok(Some(Replay::Literal(self.varint(name)?))),
            Some(crate::writer::OP_TAKE) => {
                let lane = u32::try_from(self.varint(name)?)
                    .map_err(|_| Self::corrupt(name, "a lane number out of range"))?;
                Ok(Some(Replay::Take(lane, self.varint(name)?)))
            }
            Some(op) => Err(Self::corrupt(
                name,
                &format!("unknown layout operation {op}"),
            )),
        }
    }

    /// Lane `lane`, its read-ahead started on first use.
    fn lane(&mut self, name: &str, lane: u32) -> Result<&mut Feed> {
        if !self.lanes.contains_key(&lane) {
            let indices = self.unopened.remove(&lane).ok_or_else(|| {
                Self::corrupt(
                    name,
                    &format!("the layout names lane {lane}, which has no chunks"),
                )
            })?;
            self.lanes.insert(lane, self.start.start(indices));
        }
        Ok(self.lanes.get_mut(&lane).expect("inserted above"))
    }

    /// Fills `buf` with the piece's next bytes; fewer only at its end.
    fn fill(&mut self, name: &str, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let op = match self.op.take() {
                Some(op) => op,
                None => match self.next_op(name)? {
                    Some(op) => op,
                    None => break,
                },
            };
            let (left, src) = match op {
                Replay::Literal(left) => (left, None),
                Replay::Take(lane, left) => (left, Some(lane)),
            };
            let want = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(buf.len() - n);
            let got = match src {
                None => self.layout.take(&mut buf[n..n + want])?,
                Some(lane) => self.lane(name, lane)?.take(&mut buf[n..n + want])?,
            };
            if got == 0 && want > 0 {
                return Err(Self::corrupt(
                    name,
                    "a lane ends before the layout is done with it",
                ));
            }
            n += got;
            let left = left - got as u64;
            if left > 0 {
                self.op = Some(match src {
                    None => Replay::Literal(left),
                    Some(lane) => Replay::Take(lane, left),
                });
            }
        }
        Ok(n)
    }
}

impl std::fmt::Debug for PieceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PieceReader({:?})", self.manifest.name())
    }
}

impl PieceReader {
    pub(crate) fn start(
        manifest: Manifest,
        backend: Arc<dyn Backend>,
        codec: Arc<Codec>,
        rt: &Handle,
        opts: &ReadOptions,
    ) -> Self {
        let manifest = Arc::new(manifest);
        let starter = |opts: ReadOptions| Starter {
            manifest: manifest.clone(),
            backend: backend.clone(),
            codec: codec.clone(),
            rt: rt.clone(),
            opts,
        };
        let (feed, remux) = match &manifest.header.demux {
            None => {
                let all = (0..manifest.chunks.len()).collect();
                (starter(opts.clone()).start(all), None)
            }
            Some(d) => {
                let mut of_lane: std::collections::HashMap<Option<u32>, Vec<usize>> =
                    Default::default();
                for (i, lane) in d.chunk_lanes().enumerate() {
                    of_lane.entry(lane).or_default().push(i);
                }
                let start = starter(ReadOptions {
                    group_bytes: opts.group_bytes.min(LANE_GROUP_BYTES),
                    read_ahead: 1,
                    ahead_bytes: opts.ahead_bytes.min(LANE_AHEAD_BYTES),
                });
                let layout = start.start(of_lane.remove(&None).unwrap_or_default());
                let unopened = of_lane
                    .into_iter()
                    .filter_map(|(lane, indices)| lane.map(|l| (l, indices)))
                    .collect();
                let (_, rx) = mpsc::channel(1);
                (
                    Feed::new(rx),
                    Some(Box::new(Remux {
                        layout,
                        lanes: Default::default(),
                        unopened,
                        start,
                        op: None,
                    })),
                )
            }
        };
        PieceReader {
            manifest,
            feed,
            delivered: 0,
            remux,
        }
    }

    /// The next bytes of a demultiplexed piece into `buf`; checks at the end that the
    /// layout made the piece's size.
    fn remux_fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let name = self.manifest.name().to_string();
        let remux = self.remux.as_mut().expect("demultiplexed");
        let n = remux.fill(&name, buf)?;
        self.delivered += n as u64;
        let size = self.manifest.header.size;
        if self.delivered > size || (n < buf.len() && self.delivered != size) {
            return Err(Remux::corrupt(
                &name,
                &format!(
                    "the layout makes {} bytes of a piece of {size}",
                    self.delivered
                ),
            ));
        }
        Ok(n)
    }

    /// The piece's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Bytes of the piece.
    pub fn size(&self) -> u64 {
        self.manifest.header.size
    }

    /// Next verified chunk, `None` at the end. Call from a blocking thread.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.remux.is_some() {
            let left = self.manifest.header.size - self.delivered;
            let mut buf = vec![0u8; usize::try_from(left.min(1 << 20)).unwrap_or(1 << 20)];
            let n = self.remux_fill(&mut buf)?;
            buf.truncate(n);
            return Ok((n > 0).then(|| Bytes::from(buf)));
        }
        if self.feed.current.is_empty() && !self.receive()? {
            return Ok(None);
        }
        let c = std::mem::take(&mut self.feed.current);
        self.delivered += c.len() as u64;
        Ok(Some(c))
    }

    /// Fills `buf` across chunk boundaries with slice copies; fewer bytes than `buf` holds
    /// only at the end of the piece (0 after it). Call from a blocking thread.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.remux.is_some() {
            return self.remux_fill(buf);
        }
        let mut n = 0;
        while n < buf.len() {
            if self.feed.current.is_empty() && !self.receive()? {
                break;
            }
            let k = self.feed.take(&mut buf[n..])?;
            self.delivered += k as u64;
            n += k;
        }
        Ok(n)
    }

    /// Waits for the next chunk into `current`; false at the end of the piece.
    fn receive(&mut self) -> Result<bool> {
        if self.feed.advance()? {
            Ok(true)
        } else if self.delivered == self.manifest.header.size {
            Ok(false)
        } else {
            Err(RepoError::RestoreStopped {
                name: self.manifest.name().to_string(),
                delivered: self.delivered,
                size: self.manifest.header.size,
            })
        }
    }
}

impl Read for PieceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remux.is_some() {
            return self.remux_fill(buf).map_err(std::io::Error::other);
        }
        if self.feed.current.is_empty() && !self.receive().map_err(std::io::Error::other)? {
            return Ok(0);
        }
        let n = self.feed.take(buf).map_err(std::io::Error::other)?;
        self.delivered += n as u64;
        Ok(n)
    }
}

/// The chunks at `indices`, in requests of about `group_bytes`.
fn groups(m: &Manifest, indices: Vec<usize>, group_bytes: u64) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut group = Vec::new();
    let mut acc = 0u64;
    for i in indices {
        acc += m.chunks[i].len as u64;
        group.push(i);
        if acc >= group_bytes {
            out.push(std::mem::take(&mut group));
            acc = 0;
        }
    }
    if !group.is_empty() {
        out.push(group);
    }
    out
}

async fn prefetch(
    manifest: Arc<Manifest>,
    indices: Vec<usize>,
    backend: Arc<dyn Backend>,
    codec: Arc<Codec>,
    tx: mpsc::Sender<Result<Group>>,
    opts: ReadOptions,
) {
    let units = |bytes: u64| u32::try_from(bytes.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX);
    let budget = units(opts.ahead_bytes).max(1);
    let ahead = Arc::new(Semaphore::new(budget as usize));
    let sized: Vec<(Vec<usize>, u32)> = groups(&manifest, indices, opts.group_bytes)
        .into_iter()
        .map(|g| {
            let bytes = g.iter().map(|&i| u64::from(manifest.chunks[i].len)).sum();
            (g, units(bytes).clamp(1, budget))
        })
        .collect();
    // Each group's share of the budget is taken in order before its request starts, so the
    // next group to hand out never waits behind a later one.
    let fetches = futures::stream::iter(sized)
        .then(|(range, need)| {
            let ahead = ahead.clone();
            async move {
                let permit = ahead
                    .acquire_many_owned(need)
                    .await
                    .expect("the semaphore is never closed");
                (range, permit)
            }
        })
        .map(|(range, permit)| {
            let f = fetch_group(manifest.clone(), backend.clone(), codec.clone(), range);
            async move { f.await.map(|chunks| (VecDeque::from(chunks), permit)) }
        })
        .buffered(opts.read_ahead.max(1));
    futures::pin_mut!(fetches);
    while let Some(result) = fetches.next().await {
        let failed = result.is_err();
        if tx.send(result).await.is_err() || failed {
            return;
        }
    }
}

async fn fetch_group(
    manifest: Arc<Manifest>,
    backend: Arc<dyn Backend>,
    codec: Arc<Codec>,
    range: Vec<usize>,
) -> Result<Vec<Bytes>> {
    let name = manifest.name().to_string();
    let range_start = range[0] as u64;
    let ids: Vec<_> = range.iter().map(|&i| manifest.chunks[i].id).collect();
    let position = |id: &ChunkId| {
        ids.iter()
            .position(|x| x == id)
            .map_or(range_start, |k| range[k] as u64)
    };
    let payloads = backend.get_chunks(&ids).await.map_err(|e| match &e {
        RepoError::CorruptChunk { id, .. } => {
            let pos = position(id);
            e.in_piece(&name, pos)
        }
        _ => e,
    })?;
    let location = backend.location();
    let (m2, c2, n2, loc2) = (
        manifest.clone(),
        codec.clone(),
        name.clone(),
        location.clone(),
    );
    let r2 = range.clone();
    let opened: Vec<Opened> = crate::pool::on_cpu_pool("chunk decoding", move || {
        r2.into_par_iter()
            .zip(payloads.into_par_iter())
            .map(|(i, p)| {
                let c = &m2.chunks[i];
                c2.open(&c.id, &p, c.len as usize, &loc2)
                    .map_err(|e| e.in_piece(&n2, i as u64))
            })
            .collect::<Result<Vec<Opened>>>()
    })
    .await??;

    // Deltas need their bases' plaintexts: one more request per level of their chains.
    let bases: Vec<(ChunkId, usize)> = opened
        .iter()
        .filter_map(|o| match o {
            Opened::Delta { base, .. } => Some((*base, crate::chain::MAX_BASE_LEN)),
            Opened::Full(_) => None,
        })
        .collect();
    let base_plain = if bases.is_empty() {
        HashMap::new()
    } else {
        crate::chain::plaintexts_from(&backend, &codec, &location, &bases)
            .await
            .map_err(|e| e.in_piece(&name, range_start))?
    };
    crate::pool::on_cpu_pool("chunk decoding", move || {
        let work: Vec<Opening> = opened
            .into_iter()
            .enumerate()
            .map(|(k, o)| {
                let b = match &o {
                    Opened::Delta { base, .. } => base_plain.get(base).cloned(),
                    Opened::Full(_) => None,
                };
                (range[k], o, b)
            })
            .collect();
        work.into_par_iter()
            .map(|(i, o, b)| {
                let c = &manifest.chunks[i];
                match (o, b) {
                    (Opened::Full(p), _) => Ok(codec.plain_bytes(p)),
                    (Opened::Delta { body, .. }, Some(base)) => codec
                        .apply_delta(&c.id, &base, &body, c.len as usize, &location)
                        .map(|p| codec.plain_bytes(p)),
                    (Opened::Delta { base, .. }, None) => Err(RepoError::CorruptChunk {
                        piece: None,
                        index: None,
                        id: c.id,
                        object: location.clone(),
                        reason: format!("base chunk {} missing", base.short()),
                    }),
                }
                .map_err(|e| e.in_piece(&name, i as u64))
            })
            .collect::<Result<Vec<Bytes>>>()
    })
    .await?
}
