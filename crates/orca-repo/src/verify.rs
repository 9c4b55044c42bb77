//! Verify: read the repository back and name every piece a damage touches.
//!
//! 1. **Manifests.** Every piece the catalog lists has its manifest read and
//!    parsed (its MAC checked when a key is given), to learn which pieces
//!    use which chunk at which position.
//! 2. **Packs**, all of them or a sampled share, in the order
//!    [`crate::index::ChunkIndex::packs_by_check_age`] gives: never checked
//!    first, then the longest unchecked. Each is read whole and scanned blob
//!    by blob (magic, id, CRC). With a key, every blob the index places there
//!    is decrypted, decompressed and re-hashed against its id, and deltas are
//!    rebuilt from their bases. Blobs the index does not place in the pack
//!    are swept garbage awaiting a rewrite: counted, never problems. Each
//!    pack's outcome is recorded ([`crate::index::ChunkIndex::record_check`]),
//!    so regular sampled runs cover the whole repository in turn.
//! 3. **Lost chunks.** When every pack was read, a chunk a manifest names
//!    that no intact pack holds is a problem too.
//!
//! Each problem names the object, the chunk and the pieces (with the chunk's
//! position) that rely on it. A vault holds no key and verifies checksums
//! only; clients with the key verify deeply.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::codec::{Codec, Opened};
use crate::error::{RepoError, Result};
use crate::id::ChunkId;
use crate::index::PieceFilter;
use crate::manifest::{self, Manifest};
use crate::pack::{self, PackEntry};
use crate::store::{Progress, ProgressFn, Store, join_err, obj, pack_key};

/// One problem [`Store::verify`] found.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Problem {
    /// The object at fault (a pack or manifest key).
    pub object: String,
    /// The damaged chunk, when the problem is one chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk: Option<ChunkId>,
    /// Pieces (name, chunk position) that rely on the damaged chunk.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pieces: Vec<(String, u64)>,
    /// What is wrong.
    pub reason: String,
}

/// What [`Store::verify`] (or [`Store::verify_sample`]) found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Packs read.
    pub packs: u64,
    /// Chunks checked.
    pub chunks: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Manifests read and checked.
    pub pieces: u64,
    /// Whether chunk contents were decrypted and re-hashed (needs the key),
    /// or only checked against their stored checksums.
    pub deep: bool,
    /// Share of the packs read (100: all of them).
    pub sample_percent: f64,
    /// Packs never checked before this run.
    pub never_checked: u64,
    /// The oldest last check among the packs this run did not read (Unix
    /// seconds): everything else was checked since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_unchecked_since: Option<i64>,
    /// Blobs in pack files that the index does not place there: swept
    /// garbage waiting for its pack to be rewritten. Reads never use them,
    /// so they are not problems (a delta's base may already be gone).
    #[serde(default)]
    pub garbage_chunks: u64,
    /// Everything found wrong; empty when the repository is sound.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// No problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Re-read every pack and manifest. With a codec, every chunk is
    /// decrypted, decompressed and re-hashed against its id; without one
    /// (a vault holds no key) stored checksums are checked. Every problem is
    /// reported with the pieces (and chunk positions) it affects.
    pub async fn verify(
        &self,
        codec: Option<Arc<Codec>>,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<VerifyReport> {
        self.verify_sample(codec, 100.0, progress).await
    }

    /// Like [`Store::verify`], reading only `percent` of the packs (at least
    /// one): those never checked first, then those checked longest ago. When
    /// each pack was last checked is kept in the index, so regular sampled
    /// runs cover the whole repository in turn.
    pub async fn verify_sample(
        &self,
        codec: Option<Arc<Codec>>,
        percent: f64,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<VerifyReport> {
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(RepoError::InvalidArgument(format!(
                "a verify sample of {percent}% makes no sense: give a percentage in (0, 100]"
            )));
        }
        let mut report = VerifyReport {
            deep: codec.is_some(),
            sample_percent: percent,
            ..Default::default()
        };
        // Which pieces use which chunk, to name them in problems.
        let pieces = self.list_inner(&PieceFilter::default()).await?;
        let mut users: HashMap<ChunkId, Vec<(String, u64)>> = HashMap::new();
        // Pieces of vault dedup groups: their chunk ids are keyed by the group secret each
        // manifest seals, so chunks are checked against those ids too.
        let mut groups: Vec<[u8; 32]> = Vec::new();
        let total_pieces = pieces.len() as u64;
        for (n, info) in pieces.iter().enumerate() {
            let key = manifest::object_key(&info.name);
            let bytes = match self.objects().get(&obj(&key)).await {
                Ok(r) => r
                    .bytes()
                    .await
                    .map_err(|e| RepoError::storage(key.clone(), e))?,
                Err(e) => {
                    report.problems.push(Problem {
                        object: key,
                        chunk: None,
                        pieces: vec![(info.name.clone(), 0)],
                        reason: format!("manifest of piece {:?} unreadable: {e}", info.name),
                    });
                    continue;
                }
            };
            let parsed = match &codec {
                Some(c) => Manifest::decode(&bytes, c.keys(), &key),
                None => Manifest::decode_unverified(&bytes, &key),
            };
            let parsed = parsed.and_then(|m| {
                if let Some(c) = &codec
                    && let Some(secret) = m.keys(c.keys(), &key)?.group_secret()
                    && !groups.contains(&secret)
                {
                    groups.push(secret);
                }
                Ok(m)
            });
            match parsed {
                Ok(m) => {
                    report.pieces += 1;
                    for (pos, c) in m.chunks.iter().enumerate() {
                        users
                            .entry(c.id)
                            .or_default()
                            .push((info.name.clone(), pos as u64));
                    }
                }
                Err(e) => report.problems.push(Problem {
                    object: key,
                    chunk: None,
                    pieces: vec![(info.name.clone(), 0)],
                    reason: e.to_string(),
                }),
            }
            if let Some(p) = progress {
                p(&Progress {
                    phase: "manifests".into(),
                    done: n as u64 + 1,
                    total: total_pieces,
                    bytes: 0,
                });
            }
        }
        let codec = match codec {
            Some(c) if !groups.is_empty() => Some(Arc::new(
                c.with_keys(c.keys().clone().accepting_groups(&groups)),
            )),
            other => other,
        };
        let by_age = self.blocking(|i| i.packs_by_check_age()).await?;
        let take = if percent >= 100.0 {
            by_age.len()
        } else {
            // The percentage of the packs rounded up, at least one: the smallest count that
            // reaches it, so no float is cast back to an integer.
            let wanted = by_age.len() as f64 * percent / 100.0;
            (1..=by_age.len())
                .find(|&n| n as f64 >= wanted)
                .unwrap_or(by_age.len())
                .max(1)
        };
        report.never_checked = by_age.iter().filter(|p| p.last_checked.is_none()).count() as u64;
        report.oldest_unchecked_since = by_age[take.min(by_age.len())..]
            .iter()
            .filter_map(|p| p.last_checked)
            .min();
        let sampled = take < by_age.len();
        let packs: Vec<String> = by_age.into_iter().take(take).map(|p| p.name).collect();
        let total = packs.len() as u64;
        let mut seen: HashSet<ChunkId> = HashSet::new();
        let mut bytes_done = 0u64;
        for (n, name) in packs.into_iter().enumerate() {
            let key = pack_key(&name);
            let data = match self.objects().get(&obj(&key)).await {
                Ok(r) => r
                    .bytes()
                    .await
                    .map_err(|e| RepoError::storage(key.clone(), e)),
                Err(e) => Err(RepoError::storage(key.clone(), e)),
            };
            let data = match data {
                Ok(d) => d,
                Err(e) => {
                    report.problems.push(Problem {
                        object: key,
                        chunk: None,
                        pieces: Vec::new(),
                        reason: e.to_string(),
                    });
                    let checked = name.clone();
                    self.blocking(move |i| i.record_check(&checked, false, crate::now_unix()))
                        .await?;
                    continue;
                }
            };
            report.packs += 1;
            bytes_done += data.len() as u64;
            let codec2 = codec.clone();
            let key2 = key.clone();
            let (scan, mut decode_errors, deltas) = tokio::task::spawn_blocking(move || {
                let scan = pack::scan(&data, &key2);
                let mut errors = Vec::new();
                let mut deltas = Vec::new();
                if let Some(c) = &codec2 {
                    use rayon::prelude::*;
                    let opened: Vec<(PackEntry, Result<Opened>)> = scan
                        .good
                        .par_iter()
                        .map(|e| {
                            // scan found this blob inside `data`.
                            let start = e.offset as usize + pack::BLOB_HEADER_LEN;
                            let payload = &data[start..start + e.payload_len as usize];
                            (*e, c.open(&e.id, payload, e.raw_len as usize, &key2))
                        })
                        .collect();
                    for (e, o) in opened {
                        match o {
                            Ok(Opened::Full(_)) => {}
                            Ok(Opened::Delta { base, body }) => deltas.push((e, base, body)),
                            Err(err) => errors.push((e.id, err.to_string())),
                        }
                    }
                }
                (scan, errors, deltas)
            })
            .await
            .map_err(join_err)?;
            let indexed = {
                let name = name.clone();
                self.blocking(move |i| i.pack_chunk_ids(&name)).await?
            };
            // Blobs the index does not place in this pack are swept garbage
            // (or stale copies of chunks stored again elsewhere): reads never
            // come here for them, and a delta's base may be long gone.
            let garbage = |id: &ChunkId| !indexed.contains(id);
            report.garbage_chunks += scan.good.iter().filter(|e| garbage(&e.id)).count() as u64;
            decode_errors.retain(|(id, _)| !garbage(id));
            let deltas: Vec<_> = deltas.into_iter().filter(|d| !garbage(&d.0.id)).collect();
            if let (Some(c), false) = (&codec, deltas.is_empty()) {
                decode_errors.extend(self.verify_deltas(c.clone(), deltas, &key).await?);
            }
            report.chunks += scan.good.len() as u64;
            for e in scan.good.iter().filter(|e| !garbage(&e.id)) {
                seen.insert(e.id);
            }
            let clean = scan.damaged.is_empty() && decode_errors.is_empty();
            let checked = name.clone();
            self.blocking(move |i| i.record_check(&checked, clean, crate::now_unix()))
                .await?;
            for (id, reason) in scan
                .damaged
                .into_iter()
                .chain(decode_errors.into_iter().map(|(i, r)| (Some(i), r)))
            {
                if let Some(id) = id {
                    seen.remove(&id);
                }
                report.problems.push(Problem {
                    pieces: id.and_then(|i| users.get(&i).cloned()).unwrap_or_default(),
                    object: key.clone(),
                    chunk: id,
                    reason,
                });
            }
            if let Some(p) = progress {
                p(&Progress {
                    phase: "packs".into(),
                    done: n as u64 + 1,
                    total,
                    bytes: bytes_done,
                });
            }
        }
        report.bytes = bytes_done;
        // Chunks referenced by a manifest but found in no intact pack (only
        // knowable when every pack was read).
        let mut lost: Vec<(&ChunkId, &Vec<(String, u64)>)> = if sampled {
            Vec::new()
        } else {
            users.iter().filter(|(id, _)| !seen.contains(*id)).collect()
        };
        lost.sort_by(|a, b| a.1.cmp(b.1));
        for (id, pieces) in lost {
            if report.problems.iter().any(|p| p.chunk == Some(*id)) {
                continue;
            }
            report.problems.push(Problem {
                object: Backend::location(self),
                chunk: Some(*id),
                pieces: pieces.clone(),
                reason: "referenced chunk is in no intact pack (if the index is stale, `orca repo rebuild-index` may find it)".into(),
            });
        }
        Ok(report)
    }

    /// Rebuild delta chunks from their bases and check their fingerprints.
    async fn verify_deltas(
        &self,
        codec: Arc<Codec>,
        deltas: Vec<(PackEntry, ChunkId, Vec<u8>)>,
        object: &str,
    ) -> Result<Vec<(ChunkId, String)>> {
        let mut errors = Vec::new();
        let fetch = |ids: Vec<ChunkId>| async move { self.get_chunks_inner(&ids).await };
        let wanted: Vec<(ChunkId, usize)> = deltas
            .iter()
            .map(|(_, b, _)| (*b, crate::chain::MAX_BASE_LEN))
            .collect();
        let bases = match crate::chain::plaintexts(&codec, object, &wanted, fetch).await {
            Ok(b) => b,
            Err(_) => {
                // Find out one by one which bases (or links of their chains) are unreadable.
                let mut found = HashMap::new();
                for ((e, b, _), w) in deltas.iter().zip(&wanted) {
                    match crate::chain::plaintexts(&codec, object, std::slice::from_ref(w), fetch)
                        .await
                    {
                        Ok(p) => found.extend(p),
                        Err(err) => errors.push((
                            e.id,
                            format!(
                                "base chunk {} of this delta is unreadable: {err}",
                                b.short()
                            ),
                        )),
                    }
                }
                found
            }
        };
        let object = object.to_string();
        let checked: Vec<(ChunkId, String)> = tokio::task::spawn_blocking(move || {
            use rayon::prelude::*;
            deltas
                .par_iter()
                .filter_map(|(e, base, body)| {
                    let bp = bases.get(base)?;
                    codec
                        .apply_delta(&e.id, bp, body, e.raw_len as usize, &object)
                        .err()
                        .map(|err| (e.id, err.to_string()))
                })
                .collect()
        })
        .await
        .map_err(join_err)?;
        errors.extend(checked);
        Ok(errors)
    }
}
