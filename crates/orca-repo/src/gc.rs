//! Garbage collection: time-fenced mark and sweep, safe beside running backups.
//!
//! 1. **Fence.** `fence = min(now - grace, floor of every live writer session)`,
//!    published before anything is swept (see
//!    [`crate::index::Collection::gc_begin`]). A chunk referenced at or after
//!    the fence (probed as present, uploaded, committed, or named by a
//!    lineage a live writer relies on) is never swept.
//! 2. **Mark.** Every manifest object is read (no key needed): its chunks, the
//!    bases of those that are deltas, and the bases of every chunk referenced
//!    since the fence are kept.
//! 3. **Sweep**, pack by pack, each in its own short index transaction (probes
//!    and commits of running backups wait milliseconds, never the whole
//!    collection): unkept chunks last referenced before the fence leave the
//!    index. A probe that touches a chunk orders itself before (the chunk
//!    survives) or after (the chunk is reported missing and sent again).
//! 4. **Reclaim.** A pack left without chunks is deleted; one whose live
//!    bytes fell below `repack_below` of its size has its live chunks copied
//!    into new packs (written and indexed before the old pack is deleted).
//!    Pack objects the index does not know, older than an hour (a crashed
//!    writer's), are deleted.
//!
//! Every step is idempotent, so a collection that crashed is resumed by the
//! next one with the same fence. Readers that located a chunk in a pack that
//! was just rewritten look it up again (see `Store::get_chunks`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::chain::MAX_DELTA_DEPTH;
use crate::error::{RepoError, Result};
use crate::id::ChunkId;
use crate::index::{ChunkKind, GcRun, GcStart, MovedChunk, PackKey, PackRow, SweepOutcome};
use crate::manifest::Manifest;
use crate::pack::{self, PackBuilder, PackEntry};
use crate::store::{Progress, ProgressFn, Store, obj, pack_key};

/// Pack objects unknown to the index are left alone this long: a writer
/// stores a pack a moment before it indexes it.
const ORPHAN_AGE_SECS: i64 = 3600;

/// How a garbage collection ([`crate::Store::gc`]) runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GcOptions {
    /// Chunks referenced within this long before the collection starts are
    /// kept even when no manifest names them.
    pub grace: Duration,
    /// Rewrite a pack whose live bytes fell below this fraction of its size.
    pub repack_below: f64,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            repack_below: 0.5,
        }
    }
}

/// What a collection did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GcReport {
    /// Unix seconds: chunks referenced since then were kept.
    pub fence: i64,
    /// The collection continued one that was interrupted.
    pub resumed: bool,
    /// Writer sessions that held the fence back, as (piece, floor).
    pub held_back_by: Vec<(String, i64)>,
    /// Pieces whose manifests were read to mark live chunks.
    pub pieces: u64,
    /// Chunks the manifests reference.
    pub marked_chunks: u64,
    /// Chunks dropped from the index, and their encoded bytes.
    pub swept_chunks: u64,
    /// Encoded bytes of the swept chunks.
    pub swept_bytes: u64,
    /// Packs, and their bytes, when the collection started.
    pub packs_before: u64,
    /// Bytes of the packs when the collection started.
    pub pack_bytes_before: u64,
    /// Packs deleted because no live chunk was left in them.
    pub packs_deleted: u64,
    /// Packs whose live chunks were copied into new packs before deleting them.
    pub packs_rewritten: u64,
    /// New packs written by those copies.
    pub packs_written: u64,
    /// Pack objects the index did not know (a crashed write), deleted once old enough.
    pub orphans_deleted: u64,
    /// Bytes of the packs when the collection ended.
    pub pack_bytes_after: u64,
    /// Packs left as they were because they could not be read back intact
    /// (`orca verify` names what they hold).
    pub damaged: Vec<(String, String)>,
    /// How long the collection took.
    pub elapsed_ms: u64,
}

impl GcReport {
    /// Bytes of pack objects the collection gave back.
    pub fn reclaimed_bytes(&self) -> u64 {
        self.pack_bytes_before.saturating_sub(self.pack_bytes_after)
    }
}

/// Live chunks waiting to be copied into a new pack, with the pack each
/// comes from.
struct Repacker {
    builder: PackBuilder,
    from: HashMap<ChunkId, PackKey>,
    old: Vec<(PackKey, String)>,
}

impl Store {
    /// Collect garbage; see the module documentation for the algorithm and
    /// why it is safe beside running backups.
    pub async fn gc(&self, opts: &GcOptions, progress: Option<ProgressFn<'_>>) -> Result<GcReport> {
        let started = Instant::now();
        let now = crate::now_unix();
        // Saturating: a grace beyond i64 seconds protects everything, as asked.
        let grace = i64::try_from(opts.grace.as_secs()).unwrap_or(i64::MAX);
        let previous_fence = self.blocking(|i| i.gc_fence()).await?;
        let (run, resumed) = match self.blocking(move |i| i.gc_begin(grace, now)).await? {
            GcStart::Started(run) => (run, false),
            GcStart::Resumed(run) => (run, true),
            GcStart::Busy(r) => {
                return Err(RepoError::GcRunning {
                    location: Backend::location(self),
                    started: r.started,
                    heartbeat: r.heartbeat,
                });
            }
        };
        let mut report = GcReport {
            fence: run.fence,
            resumed,
            ..Default::default()
        };
        report.held_back_by = self
            .blocking(move |i| i.live_sessions(now))
            .await?
            .into_iter()
            .filter(|s| s.floor <= run.fence)
            .map(|s| (s.holder, s.floor))
            .collect();

        let keep = self.mark(&run, &mut report, progress).await?;
        let newest = self.sweep(&run, &keep, opts, &mut report, progress).await?;
        self.delete_orphans(&mut report).await?;
        let fence = self
            .blocking(move |i| i.gc_finish(newest, previous_fence))
            .await?;
        tracing::info!(
            fence = report.fence,
            published_fence = fence,
            swept = report.swept_chunks,
            reclaimed = report.reclaimed_bytes(),
            "garbage collection finished"
        );
        // u64 milliseconds outlast any run.
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }

    /// Chunks to keep whatever their age: those of every manifest, and the
    /// bases of those and of every chunk referenced since the fence.
    async fn mark(
        &self,
        run: &GcRun,
        report: &mut GcReport,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<HashSet<ChunkId>> {
        let metas: Vec<object_store::ObjectMeta> = self
            .objects()
            .list(Some(&obj("pieces")))
            .try_collect()
            .await
            .map_err(|e| RepoError::storage("pieces/", e))?;
        let total = metas.len() as u64;
        let mut keep: HashSet<ChunkId> = HashSet::new();
        for (n, meta) in metas.into_iter().enumerate() {
            let key = meta.location.to_string();
            let bytes = match self.objects().get(&meta.location).await {
                Ok(r) => r
                    .bytes()
                    .await
                    .map_err(|e| RepoError::storage(key.clone(), e))?,
                // Deleted since the listing: its chunks are garbage now.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(RepoError::storage(key, e)),
            };
            // A manifest that cannot be parsed stops the collection: sweeping
            // without knowing what it references could destroy a backup.
            let m = Manifest::decode_unverified(&bytes, &key)?;
            keep.extend(m.chunks.iter().map(|c| c.id));
            report.pieces += 1;
            if let Some(p) = progress {
                p(&Progress {
                    phase: "mark".into(),
                    done: n as u64 + 1,
                    total,
                    bytes: 0,
                });
            }
        }
        report.marked_chunks = keep.len() as u64;
        let ids: Vec<ChunkId> = keep.iter().copied().collect();
        let fence = run.fence;
        let (kinds, recent) = self
            .blocking(move |i| Ok((i.kinds(&ids)?, i.recent_bases(fence)?)))
            .await?;
        // Bases, and the bases of bases down each delta chain to its full chunk.
        let mut level: Vec<ChunkId> = kinds
            .into_iter()
            .flatten()
            .filter_map(ChunkKind::base)
            .chain(recent)
            .collect();
        for _ in 0..=MAX_DELTA_DEPTH {
            level.retain(|b| keep.insert(*b));
            if level.is_empty() {
                break;
            }
            let ids = std::mem::take(&mut level);
            level = self
                .blocking(move |i| i.kinds(&ids))
                .await?
                .into_iter()
                .flatten()
                .filter_map(ChunkKind::base)
                .collect();
        }
        Ok(keep)
    }

    async fn sweep(
        &self,
        run: &GcRun,
        keep: &HashSet<ChunkId>,
        opts: &GcOptions,
        report: &mut GcReport,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<Option<i64>> {
        let packs = self.blocking(|i| i.pack_rows()).await?;
        report.packs_before = packs.len() as u64;
        report.pack_bytes_before = packs.iter().map(|p| p.size).sum();
        let total = packs.len() as u64;
        let keep = std::sync::Arc::new(keep.clone());
        let mut newest: Option<i64> = None;
        let mut repacker = Repacker {
            builder: PackBuilder::new(self.config().pack_size as usize),
            from: HashMap::new(),
            old: Vec::new(),
        };
        let mut last_beat = Instant::now();
        let mut after = 0u64;
        for (n, PackRow { key, name, size }) in packs.into_iter().enumerate() {
            let fence = run.fence;
            let k = keep.clone();
            let SweepOutcome {
                dropped,
                remaining: live,
            } = self
                .blocking(move |i| i.sweep_pack(key, fence, &|id| k.contains(id)))
                .await?;
            report.swept_chunks += dropped.len() as u64;
            report.swept_bytes += dropped.iter().map(|d| d.payload_bytes).sum::<u64>();
            if let Some(t) = dropped.iter().map(|d| d.last_ref).max() {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
            let live_bytes: u64 = live
                .iter()
                .map(|e| (pack::BLOB_HEADER_LEN as u64) + e.payload_len as u64)
                .sum();
            if live.is_empty() {
                self.delete_pack(key, &name).await?;
                report.packs_deleted += 1;
            } else if (live_bytes as f64) < opts.repack_below * size as f64 {
                match self.collect_live(key, &name, live, &mut repacker).await {
                    Ok(()) => {
                        report.packs_rewritten += 1;
                        if repacker.builder.len() >= self.config().pack_size as usize {
                            after += self.flush_repack(&mut repacker, report).await?;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(pack = %name, error = %e, "pack unreadable; left as it is");
                        report.damaged.push((pack_key(&name), e.to_string()));
                        after += size;
                    }
                }
            } else {
                after += size;
            }
            if last_beat.elapsed() > Duration::from_secs(10) {
                let r = *run;
                self.blocking(move |i| i.gc_heartbeat(&r, crate::now_unix()))
                    .await?;
                last_beat = Instant::now();
            }
            if let Some(p) = progress {
                p(&Progress {
                    phase: "sweep".into(),
                    done: n as u64 + 1,
                    total,
                    bytes: report.swept_bytes,
                });
            }
        }
        after += self.flush_repack(&mut repacker, report).await?;
        report.pack_bytes_after = after;
        Ok(newest)
    }

    async fn delete_pack(&self, pack: PackKey, name: &str) -> Result<()> {
        let key = pack_key(name);
        match self.objects().delete(&obj(&key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(RepoError::storage(key, e)),
        }
        self.blocking(move |i| i.remove_pack_if_empty(pack))
            .await
            .map(|_| ())
    }

    /// Read the live chunks of a pack into the repacker (checksums checked).
    async fn collect_live(
        &self,
        pack: PackKey,
        name: &str,
        live: Vec<PackEntry>,
        r: &mut Repacker,
    ) -> Result<()> {
        let key = pack_key(name);
        let ranges: Vec<std::ops::Range<u64>> = live.iter().map(|e| e.blob_range()).collect();
        let blobs = self
            .objects()
            .get_ranges(&obj(&key), &ranges)
            .await
            .map_err(|e| RepoError::storage(key.clone(), e))?;
        let mut payloads = Vec::with_capacity(live.len());
        for (e, blob) in live.iter().zip(blobs) {
            payloads.push(pack::open_blob(blob, &e.id, &key)?);
        }
        for (e, payload) in live.into_iter().zip(payloads) {
            r.builder.add(e.id, e.base, e.raw_len, &payload)?;
            r.from.insert(e.id, pack);
        }
        r.old.push((pack, name.to_string()));
        Ok(())
    }

    /// Write the repacker's new pack, point its chunks at it, then delete the
    /// packs they came from. Returns the new pack's size.
    async fn flush_repack(&self, r: &mut Repacker, report: &mut GcReport) -> Result<u64> {
        if r.builder.is_empty() {
            return Ok(0);
        }
        let builder = std::mem::replace(
            &mut r.builder,
            PackBuilder::new(self.config().pack_size as usize),
        );
        let from = std::mem::take(&mut r.from);
        let old = std::mem::take(&mut r.old);
        let (bytes, entries, name) = builder.finish()?;
        let size = bytes.len() as u64;
        let key = pack_key(&name);
        self.objects()
            .put(&obj(&key), PutPayload::from(bytes))
            .await
            .map_err(|e| RepoError::storage(key, e))?;
        let moves: Vec<MovedChunk> = entries
            .into_iter()
            .map(|entry| MovedChunk {
                entry,
                from: from[&entry.id],
            })
            .collect();
        let now = crate::now_unix();
        self.blocking(move |i| i.move_chunks(&name, size, &moves, now))
            .await?;
        for (pack, old_name) in old {
            self.delete_pack(pack, &old_name).await?;
        }
        report.packs_written += 1;
        Ok(size)
    }

    /// Delete pack objects the index does not know and that are old enough
    /// not to belong to a writer about to index them.
    async fn delete_orphans(&self, report: &mut GcReport) -> Result<()> {
        let known = self.blocking(|i| i.pack_names()).await?;
        let metas: Vec<object_store::ObjectMeta> = self
            .objects()
            .list(Some(&obj("packs")))
            .try_collect()
            .await
            .map_err(|e| RepoError::storage("packs/", e))?;
        let cutoff = crate::now_unix() - ORPHAN_AGE_SECS;
        for meta in metas {
            let key = meta.location.to_string();
            let name = key.rsplit('/').next().unwrap_or_default();
            if known.contains(name) || meta.last_modified.timestamp() > cutoff {
                continue;
            }
            match self.objects().delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    report.orphans_deleted += 1;
                }
                Err(e) => return Err(RepoError::storage(key, e)),
            }
        }
        Ok(())
    }
}
