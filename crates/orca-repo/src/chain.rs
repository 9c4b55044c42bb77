//! Delta chains: a delta may build on a delta, so that each day's new version of a chunk
//! stores only the units changed since the day before. A chain is at most
//! [`MAX_DELTA_DEPTH`] deltas long above its full chunk; a read fetches it one level per
//! request.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use rayon::prelude::*;

use crate::backend::Backend;
use crate::codec::{Codec, Opened};
use crate::error::{RepoError, Result};
use crate::id::ChunkId;

/// The most deltas between a chunk and the full chunk its chain ends in. Eight covers a
/// week of daily versions, each storing only that day's changes; a read of the deepest
/// chunk costs nine fetches, of which eight are small.
pub const MAX_DELTA_DEPTH: u8 = 8;

/// A delta's base has no recorded length: only the largest fixed chunk bounds it
/// ([`crate::ChunkerSpec::validate`]; deltas are made of fixed-size chunks only). A chunk
/// grows at its end and shrinks there too (docs/design.md, "Deltas"), so the chunk built on
/// a base says nothing of its length; a base's buffer is sized from its own frame.
pub(crate) const MAX_BASE_LEN: usize = 16 << 20;

/// [`plaintexts`] with the chunks fetched from `backend`.
pub(crate) async fn plaintexts_from(
    backend: &Arc<dyn Backend>,
    codec: &Arc<Codec>,
    location: &str,
    wanted: &[(ChunkId, usize)],
) -> Result<HashMap<ChunkId, Bytes>> {
    plaintexts(codec, location, wanted, |ids| {
        let b = backend.clone();
        async move { b.get_chunks(&ids).await }
    })
    .await
}

/// The plaintexts of `wanted` (ids and bounds of their lengths: [`MAX_BASE_LEN`] for a
/// delta's base), whether each is a full chunk or a delta whose chain ends in one. `fetch` returns the
/// payloads of the ids it is given, in order; it is called once per level of the chains.
pub(crate) async fn plaintexts<F, Fut>(
    codec: &Arc<Codec>,
    location: &str,
    wanted: &[(ChunkId, usize)],
    fetch: F,
) -> Result<HashMap<ChunkId, Bytes>>
where
    F: Fn(Vec<ChunkId>) -> Fut,
    Fut: Future<Output = Result<Vec<Bytes>>>,
{
    let wanted_ids: HashSet<ChunkId> = wanted.iter().map(|(id, _)| *id).collect();
    let mut plain: HashMap<ChunkId, Bytes> = HashMap::new();
    // A delta's base has no recorded length, only a bound ([`MAX_BASE_LEN`]). So every
    // length here is a bound; a delta's own comes from its body, and the fingerprint check
    // covers each.
    let mut pending: Vec<(ChunkId, ChunkId, Vec<u8>)> = Vec::new();
    let mut asked: HashSet<ChunkId> = HashSet::new();
    let mut level: Vec<(ChunkId, usize)> = wanted
        .iter()
        .filter(|(id, _)| asked.insert(*id))
        .copied()
        .collect();
    for _ in 0..=MAX_DELTA_DEPTH {
        if level.is_empty() {
            break;
        }
        let payloads = fetch(level.iter().map(|(id, _)| *id).collect()).await?;
        let (c, loc) = (codec.clone(), location.to_string());
        let opened = tokio::task::spawn_blocking(move || {
            level
                .into_par_iter()
                .zip(payloads.into_par_iter())
                .map(|((id, len), p)| Ok((id, c.open_base(&id, &p, len, &loc)?)))
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(RepoError::task("delta chain decoding"))??;
        level = Vec::new();
        for (id, o) in opened {
            match o {
                Opened::Full(p) => {
                    plain.insert(id, codec.plain_bytes(p));
                }
                Opened::Delta { base, body } => {
                    if asked.insert(base) {
                        level.push((base, MAX_BASE_LEN));
                    }
                    pending.push((id, base, body));
                }
            }
        }
    }
    if let Some((id, _)) = level.first() {
        return Err(RepoError::CorruptChunk {
            piece: None,
            index: None,
            id: *id,
            object: location.to_string(),
            reason: format!(
                "more than {MAX_DELTA_DEPTH} deltas above this chunk before a full one: \
                 the repository never writes such a chain"
            ),
        });
    }
    // Each round completes the deltas whose base is at hand: the deepest level first.
    while !pending.is_empty() {
        let (ready, rest): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, base, _)| plain.contains_key(base));
        if ready.is_empty() {
            let (id, base, _) = &rest[0];
            return Err(RepoError::CorruptChunk {
                piece: None,
                index: None,
                id: *id,
                object: location.to_string(),
                reason: format!("base chunk {} missing", base.short()),
            });
        }
        pending = rest;
        let bases: Vec<Bytes> = ready
            .iter()
            .map(|(_, base, _)| plain[base].clone())
            .collect();
        let (c, loc) = (codec.clone(), location.to_string());
        let done = tokio::task::spawn_blocking(move || {
            ready
                .into_par_iter()
                .zip(bases.into_par_iter())
                .map(|((id, _, body), base)| {
                    let len = Codec::delta_len(&body, base.len()).ok_or_else(|| {
                        RepoError::CorruptChunk {
                            piece: None,
                            index: None,
                            id,
                            object: loc.clone(),
                            reason: "delta header damaged".into(),
                        }
                    })?;
                    Ok((
                        id,
                        c.plain_bytes(c.apply_delta(&id, &base, &body, len, &loc)?),
                    ))
                })
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(RepoError::task("delta chain decoding"))??;
        plain.extend(done);
        // A level below what is wanted goes once nothing pending builds on it: a restore
        // holds two levels of each chain at a time, not all nine.
        let needed: HashSet<ChunkId> = pending.iter().map(|(_, base, _)| *base).collect();
        plain.retain(|id, _| wanted_ids.contains(id) || needed.contains(id));
    }
    Ok(plain)
}
