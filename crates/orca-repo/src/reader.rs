//! Streaming restore of one piece with read-ahead: groups of chunks are
//! fetched in parallel, decrypted, decompressed and verified against their
//! fingerprints on the rayon pool, and handed to the reader in order.

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use rayon::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

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
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            group_bytes: 8 << 20,
            read_ahead: 4,
        }
    }
}

/// A piece being restored ([`crate::Repository::reader`]): chunks in stream order, each
/// fetched ahead in groups, decrypted, decompressed, rebuilt from its delta and checked
/// against its id before it is returned. Blocking: use it from a thread outside the runtime.
pub struct PieceReader {
    manifest: Arc<Manifest>,
    rx: mpsc::Receiver<Result<Bytes>>,
    current: Bytes,
    delivered: u64,
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
        let (tx, rx) = mpsc::channel(64);
        rt.spawn(prefetch(manifest.clone(), backend, codec, tx, opts.clone()));
        PieceReader {
            manifest,
            rx,
            current: Bytes::new(),
            delivered: 0,
        }
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
        if self.current.is_empty() && !self.receive()? {
            return Ok(None);
        }
        let c = std::mem::take(&mut self.current);
        self.delivered += c.len() as u64;
        Ok(Some(c))
    }

    /// Fills `buf` across chunk boundaries with slice copies; fewer bytes than `buf` holds
    /// only at the end of the piece (0 after it). Call from a blocking thread.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.current.is_empty() && !self.receive()? {
                break;
            }
            let k = (buf.len() - n).min(self.current.len());
            buf[n..n + k].copy_from_slice(&self.current[..k]);
            let _ = self.current.split_to(k);
            self.delivered += k as u64;
            n += k;
        }
        Ok(n)
    }

    /// Waits for the next chunk into `current`; false at the end of the piece.
    fn receive(&mut self) -> Result<bool> {
        match self.rx.blocking_recv() {
            Some(Ok(c)) => {
                self.current = c;
                Ok(true)
            }
            Some(Err(e)) => Err(e),
            None if self.delivered == self.manifest.header.size => Ok(false),
            None => Err(RepoError::RestoreStopped {
                name: self.manifest.name().to_string(),
                delivered: self.delivered,
                size: self.manifest.header.size,
            }),
        }
    }
}

impl Read for PieceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.current.is_empty() && !self.receive().map_err(std::io::Error::other)? {
            return Ok(0);
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        self.delivered += n as u64;
        Ok(n)
    }
}

fn groups(m: &Manifest, group_bytes: u64) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut acc = 0u64;
    for (i, c) in m.chunks.iter().enumerate() {
        acc += c.len as u64;
        if acc >= group_bytes {
            out.push(start..i + 1);
            start = i + 1;
            acc = 0;
        }
    }
    if start < m.chunks.len() {
        out.push(start..m.chunks.len());
    }
    out
}

async fn prefetch(
    manifest: Arc<Manifest>,
    backend: Arc<dyn Backend>,
    codec: Arc<Codec>,
    tx: mpsc::Sender<Result<Bytes>>,
    opts: ReadOptions,
) {
    let fetches = futures::stream::iter(groups(&manifest, opts.group_bytes))
        .map(|range| fetch_group(manifest.clone(), backend.clone(), codec.clone(), range))
        .buffered(opts.read_ahead.max(1));
    futures::pin_mut!(fetches);
    while let Some(result) = fetches.next().await {
        match result {
            Ok(chunks) => {
                for c in chunks {
                    if tx.send(Ok(c)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

async fn fetch_group(
    manifest: Arc<Manifest>,
    backend: Arc<dyn Backend>,
    codec: Arc<Codec>,
    range: Range<usize>,
) -> Result<Vec<Bytes>> {
    let name = manifest.name().to_string();
    let first = range.start;
    let range_start = first as u64;
    let ids: Vec<_> = manifest.chunks[range.clone()]
        .iter()
        .map(|c| c.id)
        .collect();
    let position =
        |id: &ChunkId| range.start as u64 + ids.iter().position(|x| x == id).unwrap_or(0) as u64;
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
    let lens: Vec<usize> = manifest.chunks[range.clone()]
        .iter()
        .map(|c| c.len as usize)
        .collect();
    let opened: Vec<Opened> = tokio::task::spawn_blocking(move || {
        range
            .clone()
            .into_par_iter()
            .zip(payloads.into_par_iter())
            .map(|(i, p)| {
                let c = &m2.chunks[i];
                c2.open(&c.id, &p, c.len as usize, &loc2)
                    .map_err(|e| e.in_piece(&n2, i as u64))
            })
            .collect::<Result<Vec<Opened>>>()
    })
    .await
    .map_err(RepoError::task("chunk decoding"))??;

    // Deltas need their bases' plaintexts: one more request per level of their chains.
    let bases: Vec<(ChunkId, usize)> = opened
        .iter()
        .zip(lens)
        .filter_map(|(o, len)| match o {
            Opened::Delta { base, .. } => Some((*base, len)),
            Opened::Full(_) => None,
        })
        .collect();
    let base_plain = if bases.is_empty() {
        HashMap::new()
    } else {
        let b = backend.clone();
        crate::chain::plaintexts(&codec, &location, &bases, move |ids| {
            let b = b.clone();
            async move { b.get_chunks(&ids).await }
        })
        .await
        .map_err(|e| e.in_piece(&name, range_start))?
    };
    tokio::task::spawn_blocking(move || {
        let work: Vec<Opening> = opened
            .into_iter()
            .enumerate()
            .map(|(k, o)| {
                let b = match &o {
                    Opened::Delta { base, .. } => base_plain.get(base).cloned(),
                    Opened::Full(_) => None,
                };
                (first + k, o, b)
            })
            .collect();
        work.into_par_iter()
            .map(|(i, o, b)| {
                let c = &manifest.chunks[i];
                match (o, b) {
                    (Opened::Full(p), _) => Ok(Bytes::from(p)),
                    (Opened::Delta { body, .. }, Some(base)) => codec
                        .apply_delta(&c.id, &base, &body, c.len as usize, &location)
                        .map(Bytes::from),
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
    .await
    .map_err(RepoError::task("chunk decoding"))?
}
