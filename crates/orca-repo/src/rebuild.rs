//! Index rebuild: the index is a cache of the objects, and this makes it again.
//!
//! 1. **Clear** the packs, chunks and pieces the index holds (writer
//!    sessions, the collection fence and pack check times stay).
//! 2. **Packs.** Every object under `packs/` with a pack's name is read back
//!    from its trailer (two ranged reads: footer, then trailer); a pack whose
//!    trailer is damaged is scanned blob by blob instead, and its intact
//!    blobs are indexed. A chunk stored in two packs keeps the first one
//!    recorded, as on the write path.
//! 3. **Manifests.** Every object under `pieces/` is parsed (no key needed)
//!    and recorded in the catalog, referencing its chunks now.
//! 4. **Baseless deltas.** Deltas whose base is in no pack (a collection swept
//!    the base and the delta's blob lingers in a pack not yet rewritten) are
//!    left out, so no backup comes to rely on a chunk that cannot be read.
//!
//! Objects that cannot be read back are reported, not fatal. The rebuild
//! needs no key and is safe to run at any time; opening a repository whose
//! index is new (a missing `index.sqlite`, an empty PostgreSQL database) runs
//! it (see [`Store::open`]).

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::id::ChunkId;
use crate::index::PieceInfo;
use crate::manifest::Manifest;
use crate::pack::{self, PackEntry};
use crate::store::{Progress, ProgressFn, Store, obj};

/// What [`Store::rebuild_index`] found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RebuildReport {
    /// Packs whose trailers were read back.
    pub packs: u64,
    /// Chunks indexed from them.
    pub chunks: u64,
    /// Pieces catalogued from their manifests.
    pub pieces: u64,
    /// Swept deltas found in pack files whose bases are gone: left out of
    /// the index, so no backup can come to rely on them.
    #[serde(default)]
    pub dropped_deltas: u64,
    /// Objects that could not be read back, with the reason.
    pub damaged: Vec<(String, String)>,
}

impl Store {
    /// Read back every pack's trailer and every manifest and rebuild the
    /// index from them. Safe to run at any time; needs no key.
    pub async fn rebuild_index(&self, progress: Option<ProgressFn<'_>>) -> Result<RebuildReport> {
        self.blocking(|i| i.clear()).await?;
        let mut report = RebuildReport::default();
        let packs: Vec<object_store::ObjectMeta> = self
            .objects()
            .list(Some(&obj("packs")))
            .try_collect()
            .await
            .map_err(|e| RepoError::storage("packs/", e))?;
        let total = packs.len() as u64;
        for (n, meta) in packs.into_iter().enumerate() {
            let key = meta.location.to_string();
            let Some(name) = key.rsplit('/').next().map(str::to_string) else {
                continue;
            };
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            match self.read_pack_entries(&key, meta.size).await {
                Ok(entries) => {
                    report.packs += 1;
                    report.chunks += entries.len() as u64;
                    let size = meta.size;
                    self.blocking(move |i| i.add_pack(&name, size, &entries, crate::now_unix()))
                        .await?;
                }
                Err(e) => report.damaged.push((key, e.to_string())),
            }
            if let Some(p) = progress {
                p(&Progress {
                    phase: "packs".into(),
                    done: n as u64 + 1,
                    total,
                    bytes: 0,
                });
            }
        }
        let pieces: Vec<object_store::ObjectMeta> = self
            .objects()
            .list(Some(&obj("pieces")))
            .try_collect()
            .await
            .map_err(|e| RepoError::storage("pieces/", e))?;
        for meta in pieces {
            let key = meta.location.to_string();
            let got = self
                .objects()
                .get(&meta.location)
                .await
                .map_err(|e| RepoError::storage(key.clone(), e));
            let parsed = match got {
                Ok(r) => match r.bytes().await {
                    Ok(b) => Manifest::decode_unverified(&b, &key),
                    Err(e) => Err(RepoError::storage(key.clone(), e)),
                },
                Err(e) => Err(e),
            };
            match parsed {
                Ok(m) => {
                    let info = PieceInfo::from_manifest(&m);
                    let ids: Vec<ChunkId> = m.chunks.iter().map(|c| c.id).collect();
                    self.blocking(move |i| i.add_piece(&info, &ids, crate::now_unix()))
                        .await?;
                    report.pieces += 1;
                }
                Err(e) => report.damaged.push((key, e.to_string())),
            }
        }
        report.dropped_deltas = self.blocking(|i| i.drop_baseless_deltas()).await?;
        Ok(report)
    }

    /// Entries of a pack: from its trailer, or by scanning it when the
    /// trailer is damaged.
    async fn read_pack_entries(&self, key: &str, size: u64) -> Result<Vec<PackEntry>> {
        let p = obj(key);
        let from_trailer = async {
            if size < (pack::HEADER_LEN + pack::FOOTER_LEN) as u64 {
                return Err(RepoError::corrupt(key, "pack too short"));
            }
            let footer = self
                .objects()
                .get_range(&p, size - pack::FOOTER_LEN as u64..size)
                .await
                .map_err(|e| RepoError::storage(key, e))?;
            let off = pack::parse_footer(&footer, size, key)?;
            let trailer = self
                .objects()
                .get_range(&p, off..size - pack::FOOTER_LEN as u64)
                .await
                .map_err(|e| RepoError::storage(key, e))?;
            pack::parse_trailer(&trailer, off, key)
        };
        match from_trailer.await {
            Ok(e) => Ok(e),
            Err(err) => {
                tracing::warn!(pack = key, error = %err, "pack trailer unreadable; scanning the pack");
                let all = self
                    .objects()
                    .get(&p)
                    .await
                    .map_err(|e| RepoError::storage(key, e))?
                    .bytes()
                    .await
                    .map_err(|e| RepoError::storage(key, e))?;
                let scan = pack::scan(&all, key);
                if scan.good.is_empty() {
                    return Err(err);
                }
                Ok(scan.good)
            }
        }
    }
}
