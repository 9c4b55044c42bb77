//! The repository store: packs, manifests and keys on an object store, with
//! the embedded index beside it. This is the server side of a repository:
//! it never sees plaintext (payloads arrive encrypted) and it is what a
//! local repository and the vault both run.
//!
//! Object layout (see docs/design.md):
//! ```text
//! config                      repository parameters (JSON)
//! keys/<id>                   master key wrapped by a passphrase (JSON)
//! packs/<h[0..2]>/<h>         pack of encoded chunks, h = random 256-bit id
//! pieces/<n[0..2]>/<n>        manifest of a piece, n = BLAKE3 of its name
//! ```
//!
//! Write ordering keeps every committed piece restorable after a crash at
//! any instant: a pack is stored before its chunks enter the index; a
//! manifest is stored (atomically, create-only) only after every chunk it
//! references is in a stored pack; the catalog row follows the manifest.
//! A crash leaves at worst an unreferenced pack or a manifest without its
//! catalog row, which `manifest()` and `rebuild_index()` repair.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, EncodedChunk};
use crate::chain::MAX_DELTA_DEPTH;
use crate::codec::{Codec, OVERHEAD};

/// Bytes of a payload a values read takes at first: a 1 MiB chunk's 128 values and a
/// delta's base fit.
const VALUES_READ: u64 = 4 << 10;
use crate::config::{CONFIG_KEY, RepoConfig};
use crate::error::{RepoError, Result};
use crate::id::ChunkId;
use crate::index::{
    ChunkKind, CommitInFlight, Index, IndexLocation, IndexStats, Location, PieceFilter, PieceInfo,
    SessionGrant,
};
use crate::keys::WrappedKey;
use crate::manifest::{self, Manifest};
use crate::pack::{self, PackBuilder, PackEntry};
use crate::pool::BufferPool;

/// Packs waiting to be written before `put_chunks` applies back-pressure.
const MAX_INFLIGHT_PACKS: usize = 2;
/// Largest chunk payload accepted (a 16 MiB chunk plus codec overhead).
const MAX_PAYLOAD: usize = (16 << 20) + 4096;

/// The end of a pack write, awaited by every caller whose chunks it holds:
/// hence the error is shared.
type Done = Shared<BoxFuture<'static, std::result::Result<(), Arc<RepoError>>>>;

/// Chunks buffered or being written, with the kind of each.
type Held = HashMap<ChunkId, ChunkKind>;

struct InFlight {
    seq: u64,
    ids: Held,
    done: Done,
}

#[derive(Default)]
struct Packer {
    open: PackBuilder,
    open_ids: Held,
    inflight: Vec<InFlight>,
    next_seq: u64,
    /// The open pack is sealed at this size: the repository's pack size, or less under
    /// [`Store::limit_pack_memory`].
    target: usize,
    /// Packs being written beyond which `put_chunks` waits for the oldest.
    max_inflight: usize,
}

impl Packer {
    /// `None` when not held, else its kind, as in [`crate::index::ChunkIndex::kinds`].
    fn held(&self, id: &ChunkId) -> Option<ChunkKind> {
        self.open_ids
            .get(id)
            .or_else(|| self.inflight.iter().find_map(|f| f.ids.get(id)))
            .copied()
    }

    fn holds(&self, id: &ChunkId) -> bool {
        self.held(id).is_some()
    }
}

/// The server side of a repository: its objects (packs, manifests, keys, config) on an
/// `object_store` backend plus the index, with the write path (packs filled and
/// indexed), the read path, verify, index rebuild and garbage collection. It is the
/// [`Backend`] of a local repository, and what the vault serves.
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    location: String,
    config: RepoConfig,
    index: Arc<Index>,
    packer: Arc<Mutex<Packer>>,
    /// Pack buffers: the open one, the ones being written, one spare.
    pack_buffers: Arc<BufferPool>,
    /// Requests made to the object store, per operation.
    requests: Arc<crate::metered::RequestCounts>,
    /// The wrapped keys, read once: they are written only at `init`, and
    /// every client session asks for them (a LIST on object storage).
    wrapped: tokio::sync::OnceCell<Vec<WrappedKey>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.location)
    }
}

/// Progress of a long store operation (verify, rebuild).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    /// What is being done (`packs`, `manifests`, ...).
    pub phase: String,
    /// Items done so far in this phase.
    pub done: u64,
    /// Items in this phase.
    pub total: u64,
    /// Bytes read so far.
    pub bytes: u64,
}

/// Called with the progress of a long operation, from any thread.
pub type ProgressFn<'a> = &'a (dyn Fn(&Progress) + Send + Sync);

pub(crate) fn pack_key(name: &str) -> String {
    format!("packs/{}/{}", &name[..2], name)
}

pub(crate) fn obj(key: &str) -> ObjPath {
    ObjPath::from(key)
}

fn now() -> i64 {
    crate::now_unix()
}

impl Store {
    /// A local directory as an object store, with the index inside it.
    pub fn local_objects(dir: &Path) -> Result<Arc<dyn ObjectStore>> {
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| RepoError::storage(dir.display().to_string(), e))?
            .with_fsync(true);
        Ok(Arc::new(crate::direct::DirectLocal::new(fs, dir)))
    }

    /// The SQLite index file of the repository directory `dir`.
    pub fn local_index_path(dir: &Path) -> PathBuf {
        dir.join("index.sqlite")
    }

    /// The index of the repository directory `dir`: the PostgreSQL database
    /// its `objects.json` names, else `index.sqlite` inside it.
    pub fn index_of(dir: &Path) -> Result<IndexLocation> {
        Ok(
            match crate::remote::RemoteObjects::read(dir)?.and_then(|r| r.index) {
                Some(pg) => IndexLocation::Postgres(pg),
                None => IndexLocation::Sqlite(Self::local_index_path(dir)),
            },
        )
    }

    /// The objects of the repository directory `dir` and how to name them:
    /// the directory itself, or the bucket its `objects.json` names.
    pub fn objects_of(dir: &Path) -> Result<(Arc<dyn ObjectStore>, String)> {
        match crate::remote::RemoteObjects::read(dir)? {
            Some(r) => Ok((r.objects()?, r.url)),
            None => Ok((Self::local_objects(dir)?, dir.display().to_string())),
        }
    }

    /// Open the repository in `dir` (objects there or in its bucket).
    pub async fn open_local(dir: &Path) -> Result<Store> {
        let remote = dir.join(crate::remote::REMOTE_FILE).is_file();
        if !remote && !dir.join(CONFIG_KEY).is_file() {
            return Err(RepoError::NotARepository {
                location: dir.display().to_string(),
            });
        }
        let (objects, location) = Self::objects_of(dir)?;
        Self::open(objects, location, &Self::index_of(dir)?).await
    }

    /// Create a repository: write its config (create-only, so two concurrent
    /// inits cannot both succeed) and optionally a wrapped key.
    pub async fn create(
        objects: Arc<dyn ObjectStore>,
        location: String,
        index: &IndexLocation,
        config: &RepoConfig,
        wrapped: Option<&WrappedKey>,
    ) -> Result<Store> {
        config.validate(CONFIG_KEY)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match objects
            .put_opts(&obj(CONFIG_KEY), PutPayload::from(config.to_json()), opts)
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(RepoError::AlreadyInitialised { location });
            }
            Err(e) => return Err(RepoError::storage(format!("{location}/{CONFIG_KEY}"), e)),
        }
        let mut written = vec![obj(CONFIG_KEY)];
        let made = async {
            if let Some(w) = wrapped {
                let body =
                    serde_json::to_vec_pretty(w).map_err(|e| RepoError::json("wrapped key", e))?;
                let key = format!("keys/{}", &blake3::hash(&body).to_hex()[..16]);
                written.push(obj(&key));
                objects
                    .put(&obj(&key), PutPayload::from(body))
                    .await
                    .map_err(|e| RepoError::storage(key, e))?;
            }
            Self::open(objects.clone(), location, index).await
        }
        .await;
        if made.is_err() {
            // A half-made repository (a config with no reachable index, say) would make every
            // later `init` of this location fail as "already initialised": take it back.
            for path in &written {
                if let Err(e) = objects.delete(path).await {
                    tracing::warn!(object = %path, error = %e, "cannot remove an object of the failed init");
                }
            }
        }
        made
    }

    /// Open the repository whose objects are `objects` (named `location` in messages) with
    /// its index at `index`; rebuilds the index when it was created empty.
    pub async fn open(
        objects: Arc<dyn ObjectStore>,
        location: String,
        index: &IndexLocation,
    ) -> Result<Store> {
        let raw = match objects.get(&obj(CONFIG_KEY)).await {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| RepoError::storage(CONFIG_KEY, e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(RepoError::NotARepository { location });
            }
            Err(e) => return Err(RepoError::storage(format!("{location}/{CONFIG_KEY}"), e)),
        };
        let config = RepoConfig::parse(&raw, &format!("{location}/{CONFIG_KEY}"))?;
        let (metered, requests) = crate::metered::Metered::new(objects);
        let objects: Arc<dyn ObjectStore> = Arc::new(metered);
        let at = index.clone();
        let id = config.id.clone();
        let (index, fresh) = tokio::task::spawn_blocking(move || Index::open(&at, &id))
            .await
            .map_err(join_err)??;
        let pack_size = config.pack_size as usize;
        let store = Store {
            objects,
            location,
            config,
            index: Arc::new(index),
            packer: Arc::new(Mutex::new(Packer {
                open: PackBuilder::new(pack_size),
                target: pack_size,
                max_inflight: MAX_INFLIGHT_PACKS,
                ..Default::default()
            })),
            pack_buffers: BufferPool::new(MAX_INFLIGHT_PACKS + 2),
            wrapped: tokio::sync::OnceCell::new(),
            requests,
        };
        if fresh {
            let report = store.rebuild_index(None).await?;
            if report.packs > 0 || report.pieces > 0 {
                tracing::info!(
                    packs = report.packs,
                    pieces = report.pieces,
                    "built a new index from the repository's objects"
                );
            }
        }
        Ok(store)
    }

    /// The repository configuration.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The object store holding the repository.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// The index; its calls block, so async code makes them from blocking threads.
    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Packer> {
        self.packer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Index) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || f(&index))
            .await
            .map_err(join_err)?
    }

    /// Seal the open pack and start writing it. Returns its completion.
    fn seal(&self, p: &mut Packer) -> Option<Done> {
        if p.open.is_empty() {
            return None;
        }
        let target = p.target;
        let fresh =
            PackBuilder::with_buffer(self.pack_buffers.take(PackBuilder::capacity_for(target)));
        let builder = std::mem::replace(&mut p.open, fresh);
        let ids = std::mem::take(&mut p.open_ids);
        let seq = p.next_seq;
        p.next_seq += 1;
        let objects = self.objects.clone();
        let index = self.index.clone();
        let packer = self.packer.clone();
        let location = self.location.clone();
        let buffers = self.pack_buffers.clone();
        let task = tokio::spawn(async move {
            let result = write_pack(objects, index, builder, &buffers, &location).await;
            packer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .inflight
                .retain(|f| f.seq != seq);
            result.map_err(Arc::new)
        });
        let done: Done = async move {
            task.await
                .unwrap_or_else(|e| Err(Arc::new(RepoError::task("pack writer")(e))))
        }
        .boxed()
        .shared();
        p.inflight.push(InFlight {
            seq,
            ids,
            done: done.clone(),
        });
        Some(done)
    }

    async fn put_chunks_inner(&self, chunks: Vec<EncodedChunk>) -> Result<()> {
        for c in &chunks {
            if c.payload.len() < OVERHEAD
                || c.payload.len() > MAX_PAYLOAD
                || c.raw_len as usize > MAX_PAYLOAD
            {
                return Err(RepoError::InvalidArgument(format!(
                    "chunk {} has an invalid size ({} bytes encoded, {} plain); nothing of the batch was stored",
                    c.id.short(),
                    c.payload.len(),
                    c.raw_len
                )));
            }
        }
        let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
        let absent: HashSet<ChunkId> = self
            .blocking(move |i| i.missing(&ids, None))
            .await?
            .into_iter()
            .collect();
        // What the index says of the bases' chains, a level per query; a link the index
        // does not have yet (buffered or being written) is looked up under the lock, and
        // what lies below it fetched on another round.
        let mut known: HashMap<ChunkId, Option<ChunkKind>> = HashMap::new();
        let mut ask: Vec<ChunkId> = chunks.iter().filter_map(|c| c.base()).collect();
        let wait = loop {
            for _ in 0..=MAX_DELTA_DEPTH {
                ask.retain(|b| !known.contains_key(b));
                ask.sort_unstable();
                ask.dedup();
                if ask.is_empty() {
                    break;
                }
                let list = std::mem::take(&mut ask);
                let l2 = list.clone();
                let kinds = self.blocking(move |i| i.kinds(&l2)).await?;
                for (id, k) in list.into_iter().zip(kinds) {
                    ask.extend(k.and_then(ChunkKind::base));
                    known.insert(id, k);
                }
            }
            let mut p = self.lock();
            // The whole batch is checked before any chunk of it is stored: a refused batch
            // leaves nothing behind. A delta may build on a chunk earlier in the batch.
            let mut taken: Held = HashMap::new();
            let mut unknown = Vec::new();
            for c in &chunks {
                if !absent.contains(&c.id) || p.holds(&c.id) || taken.contains_key(&c.id) {
                    continue;
                }
                let base = c.base();
                if let Some(b) = base {
                    let kind_of = |id: &ChunkId| {
                        known
                            .get(id)
                            .copied()
                            .flatten()
                            .or_else(|| p.held(id))
                            .or_else(|| taken.get(id).copied())
                    };
                    // Chains stay short, so that a read needs few fetches.
                    let mut depth = 1u8;
                    let mut link = b;
                    let end = loop {
                        match kind_of(&link) {
                            Some(ChunkKind::Full) => break Some(depth),
                            Some(ChunkKind::Delta { base }) if depth < MAX_DELTA_DEPTH => {
                                depth += 1;
                                link = base;
                            }
                            Some(ChunkKind::Delta { .. }) => break Some(depth + 1),
                            None => break None,
                        }
                    };
                    match end {
                        _ if b == c.id => {
                            return Err(RepoError::InvalidArgument(format!(
                                "delta chunk {} builds on itself; nothing of the batch was stored",
                                c.id.short()
                            )));
                        }
                        Some(d) if d <= MAX_DELTA_DEPTH => {}
                        Some(_) => {
                            return Err(RepoError::InvalidArgument(format!(
                                "delta chunk {} would be more than {MAX_DELTA_DEPTH} deltas above a full chunk; nothing of the batch was stored",
                                c.id.short()
                            )));
                        }
                        None if !known.contains_key(&link) => unknown.push(link),
                        None => {
                            return Err(RepoError::InvalidArgument(format!(
                                "delta chunk {} builds on {}, which the repository does not hold; nothing of the batch was stored",
                                c.id.short(),
                                link.short()
                            )));
                        }
                    }
                }
                taken.insert(c.id, ChunkKind::with_base(base));
            }
            if !unknown.is_empty() {
                drop(p);
                ask = unknown;
                continue;
            }
            for c in chunks {
                let Some(kind) = taken.remove(&c.id) else {
                    continue;
                };
                p.open.add(c.id, c.base(), c.raw_len, &c.payload)?;
                p.open_ids.insert(c.id, kind);
                if p.open.len() >= p.target {
                    self.seal(&mut p);
                }
            }
            break if p.inflight.len() > p.max_inflight {
                Some(p.inflight[0].done.clone())
            } else {
                None
            };
        };
        if let Some(done) = wait {
            done.await.map_err(|e| self.pack_write_err(e))?;
        }
        Ok(())
    }

    fn pack_write_err(&self, source: Arc<RepoError>) -> RepoError {
        RepoError::PackWrite {
            location: self.location.clone(),
            source,
        }
    }

    /// Bounds the memory the write path's packs hold, for a client whose memory is bounded
    /// (an SBT channel): packs are sealed at a third of `bytes` (or the repository's pack
    /// size, when smaller), and a writer waits for the packs being written before it goes
    /// on, so that the open pack and the two a pair of concurrent writers may have sealed
    /// hold about `bytes`. Smaller packs only mean more objects: reads, verify and the
    /// garbage collection take packs of any size.
    pub fn limit_pack_memory(&self, bytes: usize) {
        let mut p = self.lock();
        p.target = (bytes / 3).clamp(1 << 20, self.config.pack_size as usize);
        p.max_inflight = 0;
        if p.open.is_empty() {
            // The pack opened with the store was sized for the repository's pack size.
            p.open = PackBuilder::new(p.target);
        }
    }

    /// Makes the chunks of `ids` this store buffers or is writing durable (their packs
    /// written, synced and indexed), or fails: what the vault does before it acknowledges an
    /// upload, so that an acknowledged chunk survives a kill -9.
    pub async fn persist(&self, ids: &[ChunkId]) -> Result<()> {
        let ids: HashSet<ChunkId> = ids.iter().copied().collect();
        self.settle(Some(&ids)).await
    }

    /// Make sure every chunk of `ids` that is buffered or being written is
    /// durable (or has failed) before returning.
    async fn settle(&self, ids: Option<&HashSet<ChunkId>>) -> Result<()> {
        let waits: Vec<Done> = {
            let mut p = self.lock();
            let open_hit = match ids {
                None => true,
                Some(ids) => ids.iter().any(|id| p.open_ids.contains_key(id)),
            };
            if open_hit {
                self.seal(&mut p);
            }
            p.inflight
                .iter()
                .filter(|f| ids.is_none_or(|ids| ids.iter().any(|id| f.ids.contains_key(id))))
                .map(|f| f.done.clone())
                .collect()
        };
        let mut first_err = None;
        for w in waits {
            if let Err(e) = w.await {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(self.pack_write_err(e)),
            None => Ok(()),
        }
    }

    async fn commit_inner(&self, bytes: Bytes) -> Result<PieceInfo> {
        let m = Manifest::decode_unverified(&bytes, "manifest upload")?;
        let name = m.header.name.clone();
        let mut ids: HashSet<ChunkId> = m.chunks.iter().map(|c| c.id).collect();
        let held_bases: Vec<ChunkId> = {
            let p = self.lock();
            ids.iter()
                .filter_map(|id| p.held(id).and_then(ChunkKind::base))
                .collect()
        };
        let list: Vec<ChunkId> = ids.iter().copied().collect();
        ids.extend(held_bases);
        // A failed pack write shows up below as missing chunks, which is the
        // answer the client can act on (it re-sends them); not when the disk is full,
        // where re-sending cannot help and "missing" would blame the client's cache.
        if let Err(e) = self.settle(Some(&ids)).await
            && e.is_disk_full()
        {
            tracing::error!(piece = ?name, error = %e, "a pack write failed");
            return Err(e);
        }
        // Every link of every delta chain too: a committed piece must read back.
        let missing = self
            .blocking(move |i| {
                let mut m = i.missing(&list, None)?;
                m.extend(i.missing_bases(&list)?);
                let mut level = list;
                for _ in 0..MAX_DELTA_DEPTH {
                    level = i
                        .kinds(&level)?
                        .into_iter()
                        .flatten()
                        .filter_map(ChunkKind::base)
                        .collect();
                    level.sort_unstable();
                    level.dedup();
                    if level.is_empty() {
                        break;
                    }
                    m.extend(i.missing_bases(&level)?);
                }
                m.sort_unstable();
                m.dedup();
                Ok(m)
            })
            .await?;
        if !missing.is_empty() {
            return Err(RepoError::MissingChunks { name, missing });
        }
        let key = manifest::object_key(&name);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let owned = name.clone();
        self.blocking(move |i| i.begin_commit(&owned, now()))
            .await?;
        let put = self
            .objects
            .put_opts(&obj(&key), PutPayload::from(bytes), opts)
            .await;
        if let Err(e) = put {
            let owned = name.clone();
            self.blocking(move |i| i.end_commit(&owned)).await?;
            return Err(match e {
                object_store::Error::AlreadyExists { .. } => {
                    // The name may belong to a commit whose catalog row a
                    // crash lost: reading the manifest restores the row.
                    self.manifest_inner(&name).await?;
                    RepoError::PieceExists { name }
                }
                e => RepoError::storage(key, e),
            });
        }
        let info = PieceInfo::from_manifest(&m);
        let row = info.clone();
        let chunk_ids: Vec<ChunkId> = m.chunks.iter().map(|c| c.id).collect();
        self.blocking(move |i| i.add_piece(&row, &chunk_ids, now()))
            .await?;
        Ok(info)
    }

    async fn manifest_inner(&self, name: &str) -> Result<Option<Bytes>> {
        manifest::validate_name(name)?;
        let key = manifest::object_key(name);
        // A row is written only after its manifest, so one seen before a read that finds
        // no manifest belongs to a deleted piece; a row that appears after the read is a
        // commit that landed meanwhile, and stays.
        let owned = name.to_string();
        let before = self.blocking(move |i| i.piece(&owned)).await?;
        match self.objects.get(&obj(&key)).await {
            Ok(r) => {
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| RepoError::storage(key.clone(), e))?;
                if before.is_none() {
                    // Committed, but the catalog row was lost to a crash: restore it.
                    if let Ok(m) = Manifest::decode_unverified(&bytes, &key) {
                        let info = PieceInfo::from_manifest(&m);
                        let ids: Vec<ChunkId> = m.chunks.iter().map(|c| c.id).collect();
                        self.blocking(move |i| i.add_piece(&info, &ids, now()))
                            .await?;
                    }
                }
                Ok(Some(bytes))
            }
            Err(object_store::Error::NotFound { .. }) => {
                if let Some(row) = before {
                    let owned = name.to_string();
                    self.blocking(move |i| i.remove_piece_created(&owned, row.created))
                        .await?;
                }
                Ok(None)
            }
            Err(e) => Err(RepoError::storage(key, e)),
        }
    }

    async fn delete_inner(&self, name: &str) -> Result<bool> {
        manifest::validate_name(name)?;
        let key = manifest::object_key(name);
        let existed = match self.objects.head(&obj(&key)).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(RepoError::storage(key, e)),
        };
        if existed {
            match self.objects.delete(&obj(&key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(RepoError::storage(key, e)),
            }
        }
        let owned = name.to_string();
        let had_row = self.blocking(move |i| i.remove_piece(&owned)).await?;
        Ok(existed || had_row)
    }

    pub(crate) async fn get_chunks_inner(&self, ids: &[ChunkId]) -> Result<Vec<Bytes>> {
        match self.fetch_chunks(ids).await {
            // A garbage collection rewrote the pack between our lookup and
            // our read: the index now points at the new copy.
            Err(RepoError::Storage {
                source: object_store::Error::NotFound { .. },
                ..
            }) => self.fetch_chunks(ids).await,
            other => other,
        }
    }

    /// A chunk asked for by id that the index does not hold.
    fn not_stored(&self, id: ChunkId) -> RepoError {
        RepoError::CorruptChunk {
            piece: None,
            index: None,
            id,
            object: self.location.clone(),
            reason: "chunk is not in the repository (lost or never stored)".into(),
        }
    }

    /// [`Backend::get_values`] by ranged reads: each blob's header and the first
    /// [`VALUES_READ`] bytes of its payload, and again for the few whose values are longer.
    async fn values_of(&self, ids: &[ChunkId]) -> Result<Vec<Option<Bytes>>> {
        let list = ids.to_vec();
        let locs = self.blocking(move |i| i.locate(&list)).await?;
        let mut out: Vec<Option<Bytes>> = vec![None; ids.len()];
        let mut want: Vec<(usize, String, PackEntry, u64)> = Vec::new();
        for (pos, loc) in locs.into_iter().enumerate() {
            let Some(Location { pack, entry }) = loc else {
                return Err(self.not_stored(ids[pos]));
            };
            let len = u64::from(entry.payload_len).min(VALUES_READ);
            want.push((pos, pack, entry, len));
        }
        // At most two rounds: the first read tells each section's length.
        for _ in 0..2 {
            let mut by_pack: HashMap<String, Vec<(usize, PackEntry, u64)>> = HashMap::new();
            for (pos, pack, entry, len) in want.drain(..) {
                by_pack.entry(pack).or_default().push((pos, entry, len));
            }
            let objects = self.objects.clone();
            let read: Vec<Vec<(usize, String, PackEntry, Bytes)>> =
                futures::stream::iter(by_pack.into_iter().map(|(pack, items)| {
                    let objects = objects.clone();
                    async move {
                        let key = pack_key(&pack);
                        let ranges: Vec<std::ops::Range<u64>> = items
                            .iter()
                            .map(|(_, e, len)| {
                                let start = u64::from(e.offset);
                                start..start + pack::BLOB_HEADER_LEN as u64 + len
                            })
                            .collect();
                        let got = objects
                            .get_ranges(&obj(&key), &ranges)
                            .await
                            .map_err(|e| RepoError::storage(key.clone(), e))?;
                        Ok::<_, RepoError>(
                            items
                                .into_iter()
                                .zip(got)
                                .map(|((pos, e, _), b)| (pos, pack.clone(), e, b))
                                .collect(),
                        )
                    }
                }))
                .buffer_unordered(4)
                .try_collect()
                .await?;
            for (pos, pack, entry, blob) in read.into_iter().flatten() {
                let head = pack::blob_head(&blob, &entry.id, &pack_key(&pack))?;
                let prefix = blob.slice(head..);
                match Codec::values_prefix_len(&prefix) {
                    Some(n) if n <= prefix.len() => out[pos] = Some(prefix.slice(..n)),
                    Some(n) if (n as u64) <= u64::from(entry.payload_len) => {
                        want.push((pos, pack, entry, n as u64));
                    }
                    Some(_) => {
                        return Err(RepoError::CorruptChunk {
                            piece: None,
                            index: None,
                            id: entry.id,
                            object: pack_key(&pack),
                            reason: "unit values longer than their payload".into(),
                        });
                    }
                    None => {}
                }
            }
            if want.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    async fn fetch_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Bytes>> {
        let list = ids.to_vec();
        let locs = self.blocking(move |i| i.locate(&list)).await?;
        let mut by_pack: HashMap<String, Vec<(usize, PackEntry)>> = HashMap::new();
        for (pos, loc) in locs.into_iter().enumerate() {
            match loc {
                Some(Location { pack, entry }) => {
                    by_pack.entry(pack).or_default().push((pos, entry))
                }
                None => return Err(self.not_stored(ids[pos])),
            }
        }
        let objects = self.objects.clone();
        let fetched: Vec<Vec<(usize, Bytes)>> =
            futures::stream::iter(by_pack.into_iter().map(|(pack, items)| {
                let objects = objects.clone();
                async move {
                    let key = pack_key(&pack);
                    let ranges: Vec<std::ops::Range<u64>> =
                        items.iter().map(|(_, e)| e.blob_range()).collect();
                    let blobs = objects
                        .get_ranges(&obj(&key), &ranges)
                        .await
                        .map_err(|e| RepoError::storage(key.clone(), e))?;
                    items
                        .iter()
                        .zip(blobs)
                        .map(|((pos, e), blob)| Ok((*pos, pack::open_blob(blob, &e.id, &key)?)))
                        .collect::<Result<Vec<_>>>()
                }
            }))
            .buffer_unordered(4)
            .try_collect()
            .await?;
        let mut out = vec![Bytes::new(); ids.len()];
        for (pos, b) in fetched.into_iter().flatten() {
            out[pos] = b;
        }
        Ok(out)
    }

    pub(crate) async fn list_inner(&self, filter: &PieceFilter) -> Result<Vec<PieceInfo>> {
        self.settle_commits_in_flight().await?;
        let f = filter.clone();
        self.blocking(move |i| i.list(&f)).await
    }

    /// Finish the catalog side of commits a crashed process left between
    /// writing the manifest and recording the piece. A commit without its
    /// manifest may still be running elsewhere, so only stale ones are dropped.
    async fn settle_commits_in_flight(&self) -> Result<()> {
        const STALE_SECS: i64 = 3600;
        let pending = self.blocking(|i| i.commits_in_flight()).await?;
        for CommitInFlight { name, started } in pending {
            if self.manifest_inner(&name).await?.is_some() {
                let owned = name.clone();
                self.blocking(move |i| i.end_commit(&owned)).await?;
            } else if now() - started > STALE_SECS {
                self.blocking(move |i| i.end_commit(&name)).await?;
            }
        }
        Ok(())
    }

    /// Counts of packs, chunks and pieces (`orca repo info`).
    pub async fn stats(&self) -> Result<IndexStats> {
        self.blocking(|i| i.stats()).await
    }
}

async fn write_pack(
    objects: Arc<dyn ObjectStore>,
    index: Arc<Index>,
    builder: PackBuilder,
    buffers: &Arc<BufferPool>,
    location: &str,
) -> Result<()> {
    let (buf, entries, name) = builder.finish_vec()?;
    let bytes = buffers.bytes(buf);
    let key = pack_key(&name);
    let size = bytes.len() as u64;
    objects
        .put(&obj(&key), PutPayload::from(bytes))
        .await
        .map_err(|e| RepoError::storage_write(location, format!("{location}/{key}"), e))?;
    tokio::task::spawn_blocking(move || index.add_pack(&name, size, &entries, now()))
        .await
        .map_err(join_err)?
}

pub(crate) fn join_err(e: tokio::task::JoinError) -> RepoError {
    RepoError::TaskFailed {
        what: "background",
        source: e,
    }
}

impl Store {
    /// Requests made to the object store since this store was opened.
    pub fn object_requests(&self) -> crate::metered::Requests {
        self.requests.snapshot()
    }

    async fn read_wrapped_keys(&self) -> Result<Vec<WrappedKey>> {
        if self.config.key_storage == crate::config::KeyStorage::Keyfile {
            return Ok(Vec::new());
        }
        let metas: Vec<object_store::ObjectMeta> = self
            .objects
            .list(Some(&obj("keys")))
            .try_collect()
            .await
            .map_err(|e| RepoError::storage("keys/", e))?;
        let mut out = Vec::new();
        for m in metas {
            let key = m.location.to_string();
            let body = self
                .objects
                .get(&m.location)
                .await
                .map_err(|e| RepoError::storage(key.clone(), e))?
                .bytes()
                .await
                .map_err(|e| RepoError::storage(key.clone(), e))?;
            let w: WrappedKey = serde_json::from_slice(&body)
                .map_err(|e| RepoError::corrupt(key, format!("key object: {e}")))?;
            out.push(w);
        }
        Ok(out)
    }
}

#[async_trait]
impl Backend for Store {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn config(&self) -> Result<RepoConfig> {
        Ok(self.config.clone())
    }

    async fn wrapped_keys(&self) -> Result<Vec<WrappedKey>> {
        self.wrapped
            .get_or_try_init(|| self.read_wrapped_keys())
            .await
            .cloned()
    }

    async fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let candidates: Vec<ChunkId> = {
            let p = self.lock();
            ids.iter().filter(|id| !p.holds(id)).copied().collect()
        };
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        self.blocking(move |i| i.missing(&candidates, Some(now())))
            .await
    }

    async fn put_chunks(&self, chunks: Vec<EncodedChunk>) -> Result<()> {
        self.put_chunks_inner(chunks).await
    }

    async fn flush(&self) -> Result<()> {
        self.settle(None).await
    }

    async fn commit(&self, manifest: Bytes) -> Result<PieceInfo> {
        self.commit_inner(manifest).await
    }

    async fn manifest(&self, name: &str) -> Result<Option<Bytes>> {
        self.manifest_inner(name).await
    }

    async fn list(&self, filter: &PieceFilter) -> Result<Vec<PieceInfo>> {
        self.list_inner(filter).await
    }

    async fn delete(&self, name: &str) -> Result<bool> {
        self.delete_inner(name).await
    }

    async fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Bytes>> {
        self.get_chunks_inner(ids).await
    }

    async fn get_values(&self, ids: &[ChunkId]) -> Result<Vec<Option<Bytes>>> {
        self.values_of(ids).await
    }

    async fn begin_session(
        &self,
        holder: &str,
        lineage_since: Option<i64>,
    ) -> Result<SessionGrant> {
        let holder = holder.to_string();
        self.blocking(move |i| i.begin_session(&holder, lineage_since, now()))
            .await
    }

    async fn adopt_lineage(&self, session: u64, since: i64) -> Result<bool> {
        self.blocking(move |i| i.adopt_lineage(session, since, now()))
            .await
    }

    async fn renew_session(&self, session: u64) -> Result<bool> {
        self.blocking(move |i| i.renew_session(session, now()))
            .await
    }

    async fn end_session(&self, session: u64) -> Result<()> {
        self.blocking(move |i| i.end_session(session)).await
    }
}
