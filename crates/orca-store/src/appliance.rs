//! The appliance itself: mounts, the contract's backup workflow, recovery points in the local
//! chunk store, restores. The HTTP layer (`server`) only translates; every rule lives here.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use orca_repo::LineageCache;
use orca_repo::{
    FileType, KeySource, NewKey, PieceFilter, PieceMeta, ReadOptions, Repository, WriteOptions,
};
use serde::Serialize;
use tokio::sync::Notify;

use crate::beneath::open_under;
use crate::code::{ApiError, Code, internal};
use crate::config::{SnapshotMode, StoreConfig};
use crate::name::validate_mount;
use crate::retention::Retention;
use crate::rmanlog::LogSummary;
use crate::snapshot;
use crate::state::{
    FileEntry, FileStamp, Mount, MountStatus, PointStatus, RecoveryPoint, Restore, RestoreStatus,
    RmanLog, State, StoreStatus,
};
use crate::upload::VaultLink;
use crate::{DATA_DIR, META_DIR, RESTORES_DIR, StoreError};

/// What the upload queue is doing, for `GET .../uploads`.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct UploadProgress {
    /// The mount of the point being uploaded.
    pub mount: String,
    /// The point being uploaded.
    pub snap_name: String,
    /// Files uploaded so far.
    pub files_done: usize,
    /// Files of the point.
    pub files_total: usize,
    /// Bytes uploaded so far.
    pub bytes_done: u64,
    /// Bytes of the point.
    pub bytes_total: u64,
}

/// A backup store: its mounts under the root, the catalog, the local chunk store and the
/// upload queue. Every REST call is a method here.
pub struct Appliance {
    pub(crate) root: PathBuf,
    pub(crate) config: StoreConfig,
    state: Mutex<State>,
    pub(crate) local: Repository,
    pub(crate) local_cache: LineageCache,
    /// One recovery point is taken at a time: each reads the mount whole.
    snapshots: tokio::sync::Mutex<()>,
    pub(crate) wake: Notify,
    pub(crate) progress: Mutex<Option<UploadProgress>>,
    pub(crate) progress_bytes: Arc<AtomicU64>,
    pub(crate) vault: Option<VaultLink>,
    /// What admin requests must bear (`Authorization: Bearer ...`); none on loopback.
    pub(crate) admin_token: Option<String>,
}

impl std::fmt::Debug for Appliance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Appliance({})", self.root.display())
    }
}

/// A locked catalog that is written back by [`Appliance::commit`].
pub(crate) type Locked<'a> = MutexGuard<'a, State>;

impl Appliance {
    /// Opens (or creates) the store under `config.root`. `vault_key` unlocks the vault's
    /// repository when a vault is configured.
    pub async fn open(
        config: StoreConfig,
        vault_key: Option<KeySource>,
    ) -> Result<Arc<Appliance>, StoreError> {
        let root = config.root.clone();
        let admin_token = config.admin_token()?;
        let meta = root.join(META_DIR);
        std::fs::create_dir_all(meta.join("logs")).map_err(|e| StoreError::io(&meta, e))?;
        let chunks = meta.join("chunks");
        let key = meta.join("chunks.key");
        // The local chunk store's key never leaves the store: it holds recovery points only
        // until they are in the vault, which has its own key.
        let local = if chunks.join(orca_repo::CONFIG_KEY).exists() {
            Repository::open_local(&chunks, &KeySource::KeyFile(key))
                .await?
                .0
        } else {
            Repository::init_local(
                &chunks,
                &orca_repo::InitOptions::default(),
                &NewKey::KeyFile(key),
            )
            .await?
            .0
        };
        let local_cache = LineageCache::open(&meta.join("cache-local"), &local.cache_id())?;
        let state = match State::load(&root)? {
            Some(s) => s,
            None => {
                let mut id = [0u8; 6];
                getrandom::fill(&mut id).map_err(StoreError::Random)?;
                let s = State {
                    store_id: hex::encode(id),
                    next_snap: 1,
                    next_job: 1,
                    ..State::default()
                };
                s.save(&root)?;
                s
            }
        };
        let vault = match &config.vault {
            Some(v) => Some(VaultLink::new(v, vault_key, &meta)?),
            None => None,
        };
        let app = Arc::new(Appliance {
            root,
            config,
            state: Mutex::new(state),
            local,
            local_cache,
            snapshots: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            progress: Mutex::new(None),
            progress_bytes: Arc::default(),
            vault,
            admin_token,
        });
        app.recover_after_restart().await?;
        Ok(app)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn lock(&self) -> Locked<'_> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the catalog; a failure is answered as an internal error and logged.
    pub(crate) fn commit(&self, s: &State) -> Result<(), ApiError> {
        s.save(&self.root).map_err(|e| {
            tracing::error!(error = %e, "cannot write the store catalog");
            internal(e)
        })
    }

    /// A copy of the catalog as it is now.
    pub fn snapshot_state(&self) -> State {
        self.lock().clone()
    }

    /// The directory of mount `mount`: `<root>/<mount>`.
    pub fn mount_dir(&self, mount: &str) -> PathBuf {
        self.root.join(mount)
    }

    /// What RMAN writes into: `<root>/<mount>/oracle_data`.
    pub fn data_dir(&self, mount: &str) -> PathBuf {
        self.root.join(mount).join(DATA_DIR)
    }

    /// A kill -9 may have interrupted a PUT (pieces of a point never recorded) or a restore:
    /// drop the unreferenced pieces and mark the restore failed.
    async fn recover_after_restart(&self) -> Result<(), StoreError> {
        let referenced: HashSet<String> = {
            let s = self.lock();
            s.points()
                .filter(|p| p.status == PointStatus::Pending)
                .flat_map(|p| p.files.iter().filter_map(|f| f.local.clone()))
                .collect()
        };
        for piece in self.local.list(&PieceFilter::default()).await? {
            if !referenced.contains(&piece.name) {
                tracing::info!(piece = ?piece.name, "dropping a piece of an interrupted recovery point");
                self.local.delete(&piece.name).await?;
            }
        }
        self.drop_unreferenced_clones();
        let mut s = self.lock();
        let mut changed = false;
        for r in s.restores.values_mut() {
            if r.status == RestoreStatus::Running {
                let partial = partial_dir(&r.path);
                if partial.exists() {
                    std::fs::remove_dir_all(&partial).map_err(|e| StoreError::io(&partial, e))?;
                }
                r.status = RestoreStatus::Failed;
                r.finished = Some(orca_repo::now_unix());
                r.message = "the store restarted during the restore; start it again".into();
                changed = true;
            }
        }
        if changed {
            s.save(&self.root)?;
        }
        Ok(())
    }

    /// The checks every contract endpoint makes first, in the order the codes are listed.
    fn usable<'a>(&self, s: &'a mut State, mount: &str) -> Result<&'a mut Mount, ApiError> {
        match s.status {
            StoreStatus::Active => {}
            StoreStatus::Decommissioning => {
                return Err(ApiError::new(Code::DecommissionInProgress, "").on(mount));
            }
            StoreStatus::Decommissioned => {
                return Err(ApiError::new(Code::Decommissioned, "").on(mount));
            }
        }
        validate_mount(mount).map_err(|e| e.on(mount))?;
        let data = self.data_dir(mount);
        let m = s
            .mounts
            .get_mut(mount)
            .ok_or_else(|| ApiError::new(Code::MountMissing, "").on(mount))?;
        if m.status == MountStatus::MarkedForDelete {
            return Err(ApiError::new(Code::MountMarkedForDelete, "").on(mount));
        }
        if !data.is_dir() {
            tracing::warn!(mount, path = %data.display(), "the mount's data directory is missing");
            return Err(ApiError::new(Code::MountInconsistent, "").on(mount));
        }
        Ok(m)
    }

    fn export(&self, mount: &str) -> Result<(), ApiError> {
        let Some((prog, args)) = self.config.export_command.split_first() else {
            return Ok(());
        };
        let path = self.data_dir(mount).display().to_string();
        let out = std::process::Command::new(prog)
            .args(args.iter().map(|a| a.replace("{path}", &path)))
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => {
                tracing::error!(mount, status = %o.status, stderr = %String::from_utf8_lossy(&o.stderr), "export command failed");
                Err(ApiError::new(Code::ExportFailed, "").on(mount))
            }
            Err(e) => {
                tracing::error!(mount, error = %e, "cannot run the export command");
                Err(ApiError::new(Code::ExportFailed, "").on(mount))
            }
        }
    }

    /// `GET .../backup`: whether the mount may take another backup.
    pub fn status(&self, mount: &str) -> Result<bool, ApiError> {
        let mut s = self.lock();
        let m = self.usable(&mut s, mount)?;
        Ok(m.pending() >= self.config.max_pending)
    }

    /// `POST .../backup`: start a backup; the mount's data directory, exported.
    pub fn start_backup(&self, mount: &str) -> Result<PathBuf, ApiError> {
        let mut s = self.lock();
        let m = self.usable(&mut s, mount)?;
        if m.pending() >= self.config.max_pending {
            return Err(ApiError::new(Code::MaxPendingSnapshots, "").on(mount));
        }
        self.export(mount)?;
        m.backup_started = Some(orca_repo::now_unix());
        self.commit(&s).map_err(|e| e.on(mount))?;
        Ok(self.data_dir(mount))
    }

    /// `POST .../uploadlog`: keep the RMAN log for the recovery point the next PUT takes.
    pub fn upload_log(
        &self,
        mount: &str,
        file_name: &str,
        contents: &[u8],
        mountpoint: &str,
        platform: &str,
    ) -> Result<(), ApiError> {
        {
            let mut s = self.lock();
            self.usable(&mut s, mount)?;
        }
        let summary = LogSummary::parse(&String::from_utf8_lossy(contents));
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let stored = self
            .root
            .join(META_DIR)
            .join("logs")
            .join(format!("{mount}.{n}.log"));
        std::fs::write(&stored, contents).map_err(|e| internal(e).on(mount))?;
        let mut s = self.lock();
        let m = self.usable(&mut s, mount)?;
        let old = m.pending_log.replace(RmanLog {
            file_name: file_name.to_string(),
            mountpoint: mountpoint.to_string(),
            platform: platform.to_string(),
            stored,
            vault: None,
            summary,
        });
        self.commit(&s).map_err(|e| e.on(mount))?;
        if let Some(old) = old {
            let _ = std::fs::remove_file(old.stored);
        }
        Ok(())
    }

    /// `PUT .../backup`: take the recovery point, stamped with this request's time, and queue
    /// it for upload. Files unchanged since the mount's last point are not read again.
    pub async fn end_backup(&self, mount: &str) -> Result<String, ApiError> {
        let created = orca_repo::now_unix();
        let _one = self.snapshots.lock().await;
        let (snap, previous) = {
            let mut s = self.lock();
            let m = self.usable(&mut s, mount)?;
            if m.backup_started.is_none() {
                return Err(ApiError::new(Code::StartBackupMissing, "").on(mount));
            }
            let previous: Vec<FileEntry> = m
                .points
                .iter()
                .rev()
                .filter(|p| p.status != PointStatus::Expired)
                .flat_map(|p| p.files.iter().cloned())
                .collect();
            let snap = format!("UID_{}", s.next_snap);
            s.next_snap += 1;
            self.commit(&s).map_err(|e| e.on(mount))?;
            (snap, previous)
        };
        let files = walk(&self.data_dir(mount)).map_err(|e| internal(e).on(mount))?;
        let clone = self.clones(mount);
        let mut entries = Vec::with_capacity(files.len());
        for (rel, stamp) in files {
            if let Some(p) = previous.iter().find(|p| {
                p.path == rel
                    && p.stamp == stamp
                    && (p.local.is_some() || p.vault.is_some() || p.snapshot.is_some())
            }) {
                entries.push(p.clone());
                continue;
            }
            if clone {
                let at = format!("{mount}/{}/{snap}/{rel}", snapshot::SNAPSHOTS_DIR);
                let data = self.data_dir(mount);
                let src = open_under(&data, Path::new(&rel))
                    .map_err(|e| internal(StoreError::io(&data.join(&rel), e)).on(mount))?;
                snapshot::reflink(&src, &data.join(&rel), &self.root.join(&at))
                    .map_err(|e| internal(e).on(mount))?;
                entries.push(FileEntry {
                    path: rel,
                    stamp,
                    local: None,
                    vault: None,
                    snapshot: Some(at),
                });
                continue;
            }
            let piece = format!("{mount}/{snap}/{rel}");
            self.ingest(&self.data_dir(mount), &rel, mount, &rel, &piece, created)
                .await
                .map_err(|e| internal(e).on(mount))?;
            entries.push(FileEntry {
                path: rel,
                stamp,
                local: Some(piece),
                vault: None,
                snapshot: None,
            });
        }
        let mut s = self.lock();
        let m = self.usable(&mut s, mount)?;
        m.backup_started = None;
        let log = m.pending_log.take();
        m.points.push(RecoveryPoint {
            snap_name: snap.clone(),
            mount: mount.to_string(),
            created,
            status: PointStatus::Pending,
            files: entries,
            log,
            vault_id: None,
            uploaded: None,
            last_error: None,
        });
        self.commit(&s).map_err(|e| e.on(mount))?;
        drop(s);
        self.wake.notify_one();
        tracing::info!(mount, snap = %snap, "recovery point taken");
        Ok(snap)
    }

    /// Whether this PUT clones changed files instead of reading them (`snapshot`).
    fn clones(&self, mount: &str) -> bool {
        let clones = self.mount_dir(mount).join(snapshot::SNAPSHOTS_DIR);
        match self.config.snapshot {
            SnapshotMode::Ingest => false,
            SnapshotMode::Reflink => true,
            SnapshotMode::Auto => snapshot::supported(&self.data_dir(mount), &clones),
        }
    }

    /// Ingests the clones of the point's files (`snapshot = reflink`) into the local chunk
    /// store, right before the point's upload, and removes them. Later points that share a
    /// clone (the file did not change) share the piece.
    pub(crate) async fn settle_clones(&self, mount: &str, snap: &str) -> Result<(), StoreError> {
        let Some(point) = self.point(mount, snap) else {
            return Ok(());
        };
        for f in &point.files {
            let Some(clone) = f.snapshot.clone() else {
                continue;
            };
            let piece = format!("{mount}/{snap}/{}", f.path);
            let path = self.root.join(&clone);
            self.ingest(&self.root, &clone, mount, &f.path, &piece, point.created)
                .await?;
            {
                let mut s = self.lock();
                for e in s.mounts.values_mut().flat_map(|m| m.points.iter_mut()) {
                    for e in e
                        .files
                        .iter_mut()
                        .filter(|e| e.snapshot.as_ref() == Some(&clone))
                    {
                        e.local = Some(piece.clone());
                        e.snapshot = None;
                    }
                }
                s.save(&self.root)?;
            }
            std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
        }
        self.drop_unreferenced_clones();
        Ok(())
    }

    /// Removes clones no recovery point names (left by a PUT or a settle that a kill -9
    /// interrupted) and emptied snapshot directories.
    pub(crate) fn drop_unreferenced_clones(&self) {
        let (named, mounts): (HashSet<String>, Vec<String>) = {
            let s = self.lock();
            (
                s.points()
                    .flat_map(|p| p.files.iter().filter_map(|f| f.snapshot.clone()))
                    .collect(),
                s.mounts.keys().cloned().collect(),
            )
        };
        for m in mounts {
            let dir = self.mount_dir(&m).join(snapshot::SNAPSHOTS_DIR);
            for rel in snapshot::files_under(&self.root, &dir) {
                if !named.contains(&rel) {
                    tracing::info!(clone = ?rel, "removing a clone no recovery point names");
                    let _ = std::fs::remove_file(self.root.join(&rel));
                }
            }
            if let Ok(snaps) = std::fs::read_dir(&dir) {
                for d in snaps.flatten() {
                    // Only empty directories go; a non-empty one fails harmlessly.
                    let _ = remove_empty_dirs(&d.path());
                }
            }
        }
    }

    /// Copies the file `under/file` into the local chunk store as `piece`, opened without
    /// following links ([`open_under`]). Its previous version's fingerprints (`<mount>/<rel>`)
    /// make unchanged chunks free and changed ones deltas of their blocks.
    pub(crate) async fn ingest(
        &self,
        under: &Path,
        file: &str,
        mount: &str,
        rel: &str,
        piece: &str,
        created: i64,
    ) -> Result<(), StoreError> {
        let (under, file) = (under.to_path_buf(), PathBuf::from(file));
        let key = format!("{mount}/{rel}");
        let lineage = self.local_cache.load(&key)?;
        let meta = PieceMeta {
            file_type: file_type(rel),
            created,
            ..PieceMeta::default()
        };
        let (local, piece) = (self.local.clone(), piece.to_string());
        let committed = tokio::task::spawn_blocking(move || {
            let f = open_under(&under, &file).map_err(|e| StoreError::io(&under.join(&file), e))?;
            let mut head = [0u8; orca_oracle::block::BLOCK0_LEN];
            let head = match std::os::unix::fs::FileExt::read_at(&f, &mut head, 0) {
                Ok(n) => &head[..n],
                Err(e) => return Err(StoreError::io(&under.join(&file), e)),
            };
            let opts = WriteOptions {
                unit: orca_repo::unit_for_file(head),
                ..WriteOptions::default()
            };
            let mut writer = local.writer(&piece, meta, &opts)?;
            writer.set_lineage(lineage);
            if let Err(e) = writer.write_file(&f, |_| {}) {
                writer.abort();
                return Err(StoreError::Repo(e));
            }
            Ok::<_, StoreError>(writer.finish()?)
        })
        .await
        .map_err(|source| StoreError::Task {
            what: "ingest",
            source,
        })??;
        if let Err(e) =
            self.local_cache
                .update(&key, &committed.lineage, committed.lineage_unchanged)
        {
            tracing::warn!(error = %e, "cannot update the local fingerprint cache");
        }
        Ok(())
    }

    /// `DELETE .../restores/{jobid}`: remove a downloaded restore.
    pub fn delete_restore(&self, mount: &str, jobid: u64) -> Result<(), ApiError> {
        let mut s = self.lock();
        self.usable(&mut s, mount)?;
        let dir = self
            .mount_dir(mount)
            .join(RESTORES_DIR)
            .join(jobid.to_string());
        if !dir.is_dir() {
            return Err(ApiError::new(Code::RestorePathMissing, "").on(mount));
        }
        std::fs::remove_dir_all(&dir).map_err(|e| internal(e).on(mount))?;
        s.restores.remove(&jobid);
        self.commit(&s).map_err(|e| e.on(mount))
    }

    // ---- admin ----

    /// Create mount `mount` with its directories.
    pub fn create_mount(&self, mount: &str) -> Result<Mount, ApiError> {
        validate_mount(mount)?;
        let mut s = self.lock();
        if s.mounts.contains_key(mount) {
            return Err(ApiError::new(Code::MountExists, format!("{mount:?} exists")).on(mount));
        }
        for d in [
            self.data_dir(mount),
            self.mount_dir(mount).join(RESTORES_DIR),
        ] {
            std::fs::create_dir_all(&d).map_err(|e| internal(e).on(mount))?;
        }
        self.export(mount)?;
        let m = Mount {
            name: mount.to_string(),
            created: orca_repo::now_unix(),
            status: MountStatus::Ready,
            backup_started: None,
            pending_log: None,
            retention: None,
            points: Vec::new(),
        };
        s.mounts.insert(mount.to_string(), m.clone());
        self.commit(&s)?;
        Ok(m)
    }

    /// Every mount.
    pub fn mounts(&self) -> Vec<Mount> {
        self.lock().mounts.values().cloned().collect()
    }

    fn known<'a>(&self, s: &'a mut State, mount: &str) -> Result<&'a mut Mount, ApiError> {
        validate_mount(mount)?;
        s.mounts
            .get_mut(mount)
            .ok_or_else(|| ApiError::new(Code::MountMissing, "").on(mount))
    }

    /// Marks a mount for deletion; it goes once its pending points are in the vault, at once
    /// with `force` (pending points are then lost).
    pub fn delete_mount(&self, mount: &str, force: bool) -> Result<(), ApiError> {
        let mut s = self.lock();
        let m = self.known(&mut s, mount)?;
        m.status = MountStatus::MarkedForDelete;
        if force {
            for p in &mut m.points {
                if p.status == PointStatus::Pending {
                    p.status = PointStatus::Expired;
                }
            }
        }
        self.commit(&s)?;
        drop(s);
        self.wake.notify_one();
        Ok(())
    }

    /// Removes mounts marked for deletion whose points are all uploaded.
    pub(crate) async fn finish_deletions(&self) -> Result<(), StoreError> {
        let gone: Vec<String> = {
            let s = self.lock();
            s.mounts
                .values()
                .filter(|m| m.status == MountStatus::MarkedForDelete && m.pending() == 0)
                .map(|m| m.name.clone())
                .collect()
        };
        for mount in gone {
            let dir = self.mount_dir(&mount);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
            }
            let released = {
                let mut s = self.lock();
                let m = s.mounts.remove(&mount);
                s.save(&self.root)?;
                m.map(|m| {
                    m.points
                        .into_iter()
                        .flat_map(|p| p.files.into_iter().filter_map(|f| f.local))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
            };
            for piece in released {
                let _ = self.local.delete(&piece).await;
            }
            tracing::info!(mount, "mount deleted");
        }
        Ok(())
    }

    /// Set (or, with `None`, clear) the retention of mount `mount`.
    pub fn set_retention(&self, mount: &str, r: Option<Retention>) -> Result<Mount, ApiError> {
        let mut s = self.lock();
        let m = self.known(&mut s, mount)?;
        m.retention = r;
        let out = m.clone();
        self.commit(&s)?;
        drop(s);
        self.wake.notify_one();
        Ok(out)
    }

    /// Recovery points, oldest first, of one mount and/or one database.
    pub fn points(&self, mount: Option<&str>, database: Option<&str>) -> Vec<RecoveryPoint> {
        let s = self.lock();
        let mut out: Vec<RecoveryPoint> = s
            .points()
            .filter(|p| mount.is_none_or(|m| p.mount == m))
            .filter(|p| database.is_none_or(|d| p.database() == Some(d)))
            .cloned()
            .collect();
        out.sort_by_key(|p| p.created);
        out
    }

    /// Stop taking backups; the store is decommissioned once every pending point is uploaded.
    pub fn decommission(&self) -> Result<StoreStatus, ApiError> {
        let mut s = self.lock();
        if s.status == StoreStatus::Active {
            s.status = StoreStatus::Decommissioning;
        }
        let st = s.status;
        self.commit(&s)?;
        drop(s);
        self.wake.notify_one();
        Ok(st)
    }

    /// Take backups again.
    pub fn register(&self) -> Result<StoreStatus, ApiError> {
        let mut s = self.lock();
        s.status = StoreStatus::Active;
        self.commit(&s)?;
        Ok(StoreStatus::Active)
    }

    /// Whether the store takes backups.
    pub fn store_status(&self) -> StoreStatus {
        self.lock().status
    }

    /// A decommissioning store is decommissioned once nothing waits for upload.
    pub(crate) fn finish_decommission(&self) -> Result<(), StoreError> {
        let mut s = self.lock();
        if s.status == StoreStatus::Decommissioning && s.mounts.values().all(|m| m.pending() == 0) {
            s.status = StoreStatus::Decommissioned;
            s.save(&self.root)?;
            tracing::info!("store decommissioned");
        }
        Ok(())
    }

    /// Starts downloading a recovery point into `<root>/<mount>/restores/<jobid>/`.
    pub fn start_restore(self: &Arc<Self>, mount: &str, snap: &str) -> Result<Restore, ApiError> {
        let mut s = self.lock();
        let m = self.known(&mut s, mount)?;
        let point = m
            .points
            .iter()
            .find(|p| p.snap_name == snap && p.status != PointStatus::Expired)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    Code::RecoveryPointMissing,
                    format!("no recovery point {snap:?} on mount {mount:?}"),
                )
                .on(mount)
            })?;
        drop(s);
        let files = point.files.clone();
        self.spawn_restore(mount, &point, files, None)
    }

    /// Starts downloading what recovers the mount's database to `until` (the database's
    /// time, `YYYY-MM-DD HH:MM:SS`, read in the store's time zone): the image copies of the
    /// newest point taken at or before it, and the archived logs of the first point taken
    /// after it (the logs RMAN needs to roll those copies forward to `until`).
    pub fn start_restore_until(
        self: &Arc<Self>,
        mount: &str,
        until: &str,
    ) -> Result<Restore, ApiError> {
        let at = parse_until(until).map_err(|e| ApiError::new(Code::BadRequest, e).on(mount))?;
        let mut s = self.lock();
        let m = self.known(&mut s, mount)?;
        let points: Vec<&RecoveryPoint> = m
            .points
            .iter()
            .filter(|p| p.status != PointStatus::Expired)
            .collect();
        let Some(base) = points.iter().rev().find(|p| p.created <= at) else {
            let oldest = points
                .first()
                .map(|p| format!("the oldest was taken at {}", local_time(p.created)))
                .unwrap_or_else(|| "it has none".into());
            return Err(ApiError::new(
                Code::RecoveryPointMissing,
                format!(
                    "no recovery point of mount {mount:?} was taken at or before {until}: \
                     {oldest}; ask for a later time"
                ),
            )
            .on(mount));
        };
        let base = (*base).clone();
        let logs = points.iter().find(|p| p.created > at).map(|p| (*p).clone());
        drop(s);
        let from = logs.as_ref().unwrap_or(&base);
        let files = base
            .files
            .iter()
            .filter(|f| file_type(&f.path) != FileType::Archivelog)
            .chain(
                from.files
                    .iter()
                    .filter(|f| file_type(&f.path) == FileType::Archivelog),
            )
            .cloned()
            .collect();
        let until = Until {
            time: until.to_string(),
            logs_from: logs.as_ref().map(|p| p.snap_name.clone()),
        };
        self.spawn_restore(mount, &base, files, Some(until))
    }

    /// Records restore job of `files` (of `point`, with `until`'s logs) and starts it.
    fn spawn_restore(
        self: &Arc<Self>,
        mount: &str,
        point: &RecoveryPoint,
        files: Vec<FileEntry>,
        until: Option<Until>,
    ) -> Result<Restore, ApiError> {
        let mut s = self.lock();
        self.known(&mut s, mount)?;
        let jobid = s.next_job;
        s.next_job += 1;
        let path = self
            .mount_dir(mount)
            .join(RESTORES_DIR)
            .join(jobid.to_string());
        let mut message = String::new();
        if let Some(u) = &until
            && u.logs_from.is_none()
        {
            message = format!(
                "{} is after the newest recovery point ({}, taken at {}): the store holds no \
                 archived log after it, so RMAN recovers only as far as its logs reach",
                u.time,
                point.snap_name,
                local_time(point.created)
            );
        }
        let r = Restore {
            jobid,
            mount: mount.to_string(),
            snap_name: point.snap_name.clone(),
            status: RestoreStatus::Running,
            rman: rman_commands(&path, until.as_ref().map(|u| u.time.as_str())),
            until_time: until.as_ref().map(|u| u.time.clone()),
            logs_from: until.and_then(|u| u.logs_from),
            path,
            started: orca_repo::now_unix(),
            finished: None,
            bytes: files.iter().map(|f| f.stamp.size).sum(),
            message,
        };
        s.restores.insert(jobid, r.clone());
        self.commit(&s)?;
        drop(s);
        let app = self.clone();
        let target = r.path.clone();
        tokio::spawn(async move {
            let result = app.restore_into(&files, &target).await;
            let mut s = app.lock();
            if let Some(r) = s.restores.get_mut(&jobid) {
                r.finished = Some(orca_repo::now_unix());
                match result {
                    Ok(()) => r.status = RestoreStatus::Succeeded,
                    Err(e) => {
                        tracing::error!(jobid, error = %e, "restore failed");
                        r.status = RestoreStatus::Failed;
                        r.message = e.to_string();
                    }
                }
            }
            let _ = app.commit(&s);
        });
        Ok(r)
    }

    /// Restore job `jobid`.
    pub fn restore(&self, jobid: u64) -> Result<Restore, ApiError> {
        self.lock().restores.get(&jobid).cloned().ok_or_else(|| {
            ApiError::new(Code::RestoreJobMissing, format!("no restore job {jobid}"))
        })
    }

    /// Writes every one of `files` under `target` (through `<target>.partial`, renamed once
    /// complete, so RMAN never catalogs a half-written restore), from the vault when the point
    /// is there, else from the local chunk store.
    async fn restore_into(&self, files: &[FileEntry], target: &Path) -> Result<(), StoreError> {
        let partial = partial_dir(target);
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| StoreError::io(&partial, e))?;
        }
        for f in files {
            let rel = Path::new(&f.path);
            if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(StoreError::Corrupt {
                    path: rel.to_path_buf(),
                    message: "not a plain relative path".into(),
                });
            }
            let dest = partial.join(rel);
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
            }
            if let (None, None, Some(clone)) = (&f.vault, &f.local, &f.snapshot) {
                let src = self.root.join(clone);
                let mut from = open_under(&self.root, Path::new(clone))
                    .map_err(|e| StoreError::io(&src, e))?;
                let mut to =
                    std::fs::File::create_new(&dest).map_err(|e| StoreError::io(&dest, e))?;
                std::io::copy(&mut from, &mut to).map_err(|e| StoreError::io(&src, e))?;
                continue;
            }
            let (repo, piece) = match (&f.vault, &f.local, &self.vault) {
                (Some(v), _, Some(link)) => (link.repo().await?.repo.clone(), v.clone()),
                (_, Some(l), _) => (self.local.clone(), l.clone()),
                _ => {
                    return Err(StoreError::Vault(format!(
                        "{} is neither in the vault nor held locally",
                        f.path
                    )));
                }
            };
            let mut reader = repo.reader(&piece, &ReadOptions::default()).await?;
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                // A new file: never through a link planted in the restore area.
                let mut out =
                    std::fs::File::create_new(&dest).map_err(|e| StoreError::io(&dest, e))?;
                while let Some(chunk) = reader.next_chunk()? {
                    out.write_all(&chunk)
                        .map_err(|e| StoreError::io(&dest, e))?;
                }
                out.sync_all().map_err(|e| StoreError::io(&dest, e))
            })
            .await
            .map_err(|source| StoreError::Task {
                what: "restore",
                source,
            })??;
        }
        std::fs::create_dir_all(&partial).map_err(|e| StoreError::io(&partial, e))?;
        std::fs::rename(&partial, target).map_err(|e| StoreError::io(target, e))?;
        Ok(())
    }

    /// The upload in progress, if any, and the points waiting for upload.
    pub fn uploads(&self) -> (Option<UploadProgress>, Vec<RecoveryPoint>) {
        let mut p = self
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(p) = &mut p {
            p.bytes_done = self.progress_bytes.load(Ordering::Relaxed);
        }
        let pending = self
            .points(None, None)
            .into_iter()
            .filter(|p| p.status == PointStatus::Pending)
            .collect();
        (p, pending)
    }
}

/// Removes `dir` and the directories under it if they hold no file.
fn remove_empty_dirs(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_type()?.is_dir() {
            remove_empty_dirs(&e.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// A point-in-time restore: the time asked and the point whose archived logs reach it.
struct Until {
    time: String,
    logs_from: Option<String>,
}

/// `YYYY-MM-DD HH:MM:SS` (what `sysdate` shows with the format RMAN's `to_date` is given)
/// in the store's time zone, as Unix seconds.
fn parse_until(t: &str) -> Result<i64, String> {
    use chrono::TimeZone;
    let naive =
        chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S").map_err(|e| {
            format!("until time {t:?} is not YYYY-MM-DD HH:MM:SS ({e}); e.g. 2026-12-06 14:30:00")
        })?;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|d| d.timestamp())
        .ok_or_else(|| format!("until time {t:?} does not exist in the store's time zone"))
}

fn local_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// What the DBA runs on the database host, the database mounted with its control file,
/// once the restore directory is reachable there at the same path (over NFS): the copies and
/// archived-log backup sets catalogued, the datafiles restored and recovered (until the time
/// asked), the database opened. RESTORE rather than SWITCH TO COPY: under SET UNTIL, RMAN
/// takes only copies older than the time, so the newer copies still in the mount cannot be
/// picked by mistake.
fn rman_commands(dir: &Path, until: Option<&str>) -> String {
    let dir = dir.display();
    match until {
        Some(t) => format!(
            "catalog start with '{dir}/' noprompt;\n\
             run {{\n  set until time \"to_date('{t}','YYYY-MM-DD HH24:MI:SS')\";\n  \
             restore database;\n  recover database;\n}}\n\
             alter database open resetlogs;\n"
        ),
        None => format!(
            "catalog start with '{dir}/' noprompt;\n\
             restore database;\n\
             recover database;\n\
             alter database open;\n"
        ),
    }
}

fn partial_dir(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

/// What kind of Oracle file a name in the mount holds, for listings in the vault.
fn file_type(rel: &str) -> FileType {
    if rel.starts_with("archivelogs/") || rel.ends_with(".arc") {
        FileType::Archivelog
    } else if rel.contains("data-D-") || rel.contains("data_D-") {
        FileType::Datafile
    } else {
        FileType::Other
    }
}

/// Regular files under `dir`, as paths relative to it (sorted), with their stamps. Symbolic
/// links are not followed: a link written over NFS must not make the store read outside it
/// (and each file is opened later with [`open_under`], in case one replaced it since). Names
/// that are not UTF-8 or hold a control character (RMAN writes neither) are skipped: a
/// piece name holds neither.
fn walk(dir: &Path) -> std::io::Result<Vec<(String, FileStamp)>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let md = std::fs::symlink_metadata(e.path())?;
            let r = rel.join(e.file_name());
            if md.is_dir() {
                todo.push(r);
            } else if md.is_file() {
                let Some(name) = r.to_str() else {
                    tracing::warn!(path = ?r, "skipping a file whose name is not UTF-8");
                    continue;
                };
                if name.chars().any(char::is_control) {
                    tracing::warn!(path = ?name, "skipping a file whose name holds a control character");
                    continue;
                }
                out.push((
                    name.to_string(),
                    FileStamp {
                        size: md.size(),
                        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                        ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
                        inode: md.ino(),
                    },
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
