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
use crate::codec::{Codec, Opened, UnitValues};
use crate::error::{RepoError, Result};
use crate::hash::UnitCv;
use crate::id::ChunkId;
use crate::lineage::{Anchor, AnchorRef};

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
        let opened = crate::pool::on_cpu_pool("delta chain decoding", move || {
            level
                .into_par_iter()
                .zip(payloads.into_par_iter())
                .map(|((id, len), p)| Ok((id, c.open_base(&id, &p, len, &loc)?)))
                .collect::<Result<Vec<_>>>()
        })
        .await??;
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
        let done = crate::pool::on_cpu_pool("delta chain decoding", move || {
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
        .await??;
        plain.extend(done);
        // A level below what is wanted goes once nothing pending builds on it: a restore
        // holds two levels of each chain at a time, not all nine.
        let needed: HashSet<ChunkId> = pending.iter().map(|(_, base, _)| *base).collect();
        plain.retain(|id, _| wanted_ids.contains(id) || needed.contains(id));
    }
    Ok(plain)
}

/// The [`Anchor`]s of `refs` as their payloads' unit values tell ([`UnitValues`]): a full
/// chunk's own, a delta's those of its chain's full chunk with each delta's changed ones
/// applied in order. Reads one level of every chain per request ([`Backend::get_values`],
/// the payloads' first bytes only), so a source's positions cost as many requests as its
/// deepest chain has links.
///
/// An anchor comes back only when its whole chain carries values that add up to its length:
/// one written before payloads carried values, one whose values do not open (damaged, or
/// of another key) or one no longer held is left out, and the next version of its position
/// is stored whole, never wrongly.
pub(crate) async fn anchors_from(
    backend: &dyn Backend,
    codec: &Codec,
    location: &str,
    unit: usize,
    refs: impl IntoIterator<Item = AnchorRef>,
) -> HashMap<ChunkId, Anchor> {
    let refs: HashMap<ChunkId, u32> = refs.into_iter().map(|a| (a.id, a.len)).collect();
    let mut links: HashMap<ChunkId, Option<Link>> = HashMap::new();
    let mut level: Vec<ChunkId> = refs.keys().copied().collect();
    // Every id asked for once: chains share their full chunks and older links.
    let mut asked: HashSet<ChunkId> = level.iter().copied().collect();
    // One level more than the deepest chain: a chain deeper than that is left unresolved.
    for _ in 0..=MAX_DELTA_DEPTH {
        if level.is_empty() {
            break;
        }
        let prefixes = values_of(backend, &level).await;
        let mut next = Vec::new();
        for (id, prefix) in level.into_iter().zip(prefixes) {
            let link = prefix.and_then(|p| match codec.open_values(&id, &p, location) {
                Ok(values) => Some(Link {
                    base: Codec::payload_base(&p),
                    values: values?,
                }),
                Err(e) => {
                    tracing::warn!(chunk = %id, error = %e, "unit values do not open; the next version of this chunk is stored whole");
                    None
                }
            });
            if let Some(base) = link.as_ref().and_then(|l| l.base)
                && asked.insert(base)
            {
                next.push(base);
            }
            links.insert(id, link);
        }
        level = next;
    }
    refs.into_iter()
        .filter_map(|(id, len)| {
            // Each anchor's chain is composed on its own and its older versions dropped: a
            // chain's versions are its own (deltas build on their position's last version),
            // and kept for the whole window their values (3 KiB a version) made 5 MiB of a
            // channel's peak with chains eight deep.
            let c = compose(id, &links, 0)?;
            // A chunk of one unit or less has no values, so nothing builds on it; values of
            // another unit size (a writer of another block size) are not this writer's.
            let whole = c.cvs.len() > 1 && c.cvs.len() == (len as usize).div_ceil(unit);
            whole.then_some((
                id,
                Anchor {
                    id,
                    len,
                    cvs: c.cvs,
                    depth: c.depth,
                    root: c.root,
                    dirty: c.dirty,
                },
            ))
        })
        .collect()
}

/// What one payload's values section says: its base (a delta's) and its values.
struct Link {
    base: Option<ChunkId>,
    values: UnitValues,
}

/// A chunk's values with its chain's applied, and its place in the chain.
#[derive(Clone)]
struct Composed {
    cvs: Arc<Vec<UnitCv>>,
    depth: u8,
    root: Option<ChunkId>,
    dirty: Arc<Vec<u16>>,
}

fn compose(id: ChunkId, links: &HashMap<ChunkId, Option<Link>>, above: u8) -> Option<Composed> {
    // Bounds the recursion whatever the links say (a chain that loops back on itself).
    if above > MAX_DELTA_DEPTH {
        return None;
    }
    let link = links.get(&id)?.as_ref()?;
    match (&link.values, link.base) {
        (UnitValues::Every(cvs), None) => Some(Composed {
            cvs: Arc::new(cvs.clone()),
            depth: 0,
            root: None,
            dirty: Arc::new(Vec::new()),
        }),
        (UnitValues::Changed { changed, .. }, Some(base)) => compose(base, links, above + 1)
            .and_then(|b| {
                let cvs = link.values.resolve(Some(&b.cvs))?;
                let depth = b.depth + 1;
                let mut dirty: Vec<u16> = b.dirty.iter().copied().collect();
                dirty.extend(changed.iter().map(|(u, _)| *u));
                dirty.retain(|&u| usize::from(u) < cvs.len());
                dirty.sort_unstable();
                dirty.dedup();
                (depth <= MAX_DELTA_DEPTH).then(|| Composed {
                    cvs: Arc::new(cvs),
                    depth,
                    root: Some(b.root.unwrap_or(base)),
                    dirty: Arc::new(dirty),
                })
            }),
        // A full chunk's values are all of them, a delta's its changed ones: any other
        // pairing is not what a writer stores.
        _ => None,
    }
}

/// [`Backend::get_values`] of `ids`, `None` for each it cannot give. One id the backend no
/// longer holds fails the whole request; those are then asked about and left out.
async fn values_of(backend: &dyn Backend, ids: &[ChunkId]) -> Vec<Option<Bytes>> {
    let first = match backend.get_values(ids).await {
        Ok(v) if v.len() == ids.len() => return v,
        Ok(_) => return vec![None; ids.len()],
        Err(e) => e,
    };
    let missing: HashSet<ChunkId> = match backend.missing(ids).await {
        Ok(m) if !m.is_empty() => m.into_iter().collect(),
        _ => {
            tracing::warn!(error = %first, "cannot read the unit values of the last backup's chunks; changed chunks are stored whole");
            return vec![None; ids.len()];
        }
    };
    let held: Vec<ChunkId> = ids
        .iter()
        .filter(|id| !missing.contains(id))
        .copied()
        .collect();
    let mut got = match backend.get_values(&held).await {
        Ok(v) if v.len() == held.len() => v.into_iter(),
        _ => return vec![None; ids.len()],
    };
    ids.iter()
        .map(|id| {
            if missing.contains(id) {
                None
            } else {
                got.next().flatten()
            }
        })
        .collect()
}
