//! The upload queue: pending recovery points go to the vault oldest first, one at a time, each
//! file as a vault piece written through the same deduplicating pipeline as the SBT library
//! (its previous version's fingerprints make unchanged chunks free and changed ones deltas),
//! then registered as a vault recovery point. Only then is the local copy released.
//!
//! Resumable after a kill -9: a file whose vault piece is already committed is not sent again
//! (pieces are create-only), and a recovery point already registered is not registered twice.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use orca_repo::LineageCache;
use orca_repo::{KeySource, PieceMeta, ReadOptions, RepoError, Repository, WriteOptions};
use orca_vault::client::VaultClient;
use orca_vault::wire::{NewRecoveryPoint, RecoveryPointKind};
use tokio::sync::OnceCell;

use crate::StoreError;
use crate::appliance::{Appliance, UploadProgress};
use crate::config::VaultConfig;
use crate::retention::keep;
use crate::state::{PointStatus, RecoveryPoint};

/// How the store reaches the vault; connected on first use, so the store serves (and queues)
/// while the vault is down.
pub struct VaultLink {
    url: String,
    token: String,
    key: KeySource,
    cache_dir: std::path::PathBuf,
    open: OnceCell<Arc<Open>>,
}

pub(crate) struct Open {
    pub repo: Repository,
    pub client: Arc<VaultClient>,
    /// The database the token writes for: the recovery points are recorded under it.
    pub database: String,
    pub cache: LineageCache,
}

impl VaultLink {
    pub(crate) fn new(
        cfg: &VaultConfig,
        key: Option<KeySource>,
        meta: &Path,
    ) -> Result<VaultLink, StoreError> {
        let key = match (&cfg.key_file, key) {
            (Some(f), _) => KeySource::KeyFile(f.clone()),
            (None, Some(k)) => k,
            (None, None) => {
                return Err(StoreError::Vault(
                    "no key for the vault's repository: set key_file in [vault] or ORCA_PASSWORD"
                        .into(),
                ));
            }
        };
        Ok(VaultLink {
            url: cfg.url.clone(),
            token: cfg.token()?,
            key,
            cache_dir: meta.join("cache-vault"),
            open: OnceCell::new(),
        })
    }

    pub(crate) async fn repo(&self) -> Result<Arc<Open>, StoreError> {
        self.open
            .get_or_try_init(|| async {
                let client = VaultClient::connect(&self.url, &self.token)?;
                let who = client.whoami().await.map_err(RepoError::from)?;
                let repo = Repository::open(client.clone(), &self.key).await?;
                let cache = LineageCache::open(&self.cache_dir, &repo.cache_id())?;
                Ok(Arc::new(Open {
                    repo,
                    client,
                    database: who.database,
                    cache,
                }))
            })
            .await
            .cloned()
    }
}

/// Runs the queue until the process ends.
pub async fn run(app: Arc<Appliance>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if let Err(e) = app.finish_deletions().await {
            tracing::error!(error = %e, "cannot finish deleting a mount");
        }
        if let Err(e) = app.finish_decommission() {
            tracing::error!(error = %e, "cannot finish the decommission");
        }
        let next = app.next_pending();
        let (Some((mount, snap)), Some(link)) = (next, &app.vault) else {
            // Nothing to do (or no vault configured): wait for a PUT or an admin change.
            let _ = tokio::time::timeout(Duration::from_secs(30), app.wake.notified()).await;
            continue;
        };
        match app.upload_point(link, &mount, &snap).await {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                if let Err(e) = app.apply_retention(link, &mount).await {
                    tracing::error!(mount, error = %e, "retention failed; retried after the next upload");
                }
                app.release_local().await;
            }
            Err(e) => {
                tracing::warn!(mount, snap, error = %e, retry_in = ?backoff, "upload failed");
                app.note_error(&mount, &snap, &e.to_string());
                let _ = tokio::time::timeout(backoff, app.wake.notified()).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
        *app.progress.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Appliance {
    /// The oldest pending recovery point of any mount.
    fn next_pending(&self) -> Option<(String, String)> {
        let s = self.lock();
        s.points()
            .filter(|p| p.status == PointStatus::Pending)
            .min_by_key(|p| p.created)
            .map(|p| (p.mount.clone(), p.snap_name.clone()))
    }

    pub(crate) fn point(&self, mount: &str, snap: &str) -> Option<RecoveryPoint> {
        let s = self.lock();
        s.mounts
            .get(mount)?
            .points
            .iter()
            .find(|p| p.snap_name == snap)
            .cloned()
    }

    fn update_point(&self, mount: &str, snap: &str, f: impl FnOnce(&mut RecoveryPoint)) {
        let mut s = self.lock();
        if let Some(p) = s
            .mounts
            .get_mut(mount)
            .and_then(|m| m.points.iter_mut().find(|p| p.snap_name == snap))
        {
            f(p);
            if let Err(e) = s.save(&self.root) {
                tracing::error!(error = %e, "cannot write the store catalog");
            }
        }
    }

    fn note_error(&self, mount: &str, snap: &str, message: &str) {
        self.update_point(mount, snap, |p| p.last_error = Some(message.to_string()));
    }

    /// A vault piece already holding this local piece (an unchanged file of an earlier point).
    fn uploaded_as(&self, local: &str) -> Option<String> {
        let s = self.lock();
        s.points()
            .filter(|p| p.status != PointStatus::Expired)
            .flat_map(|p| p.files.iter())
            .find(|f| f.local.as_deref() == Some(local) && f.vault.is_some())
            .and_then(|f| f.vault.clone())
    }

    async fn upload_point(
        &self,
        link: &VaultLink,
        mount: &str,
        snap: &str,
    ) -> Result<(), StoreError> {
        let open = link.repo().await?;
        self.settle_clones(mount, snap).await?;
        let Some(point) = self.point(mount, snap) else {
            return Ok(());
        };
        let store_id = self.lock().store_id.clone();
        // The vault keeps a database's pieces under its name.
        let prefix = format!("{}/orca-store/{store_id}/{mount}/{snap}", open.database);
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(UploadProgress {
            mount: mount.to_string(),
            snap_name: snap.to_string(),
            files_done: 0,
            files_total: point.files.len(),
            bytes_done: 0,
            bytes_total: point.bytes(),
        });
        self.progress_bytes.store(0, Ordering::Relaxed);
        let database = point.database().map(str::to_string);
        let dbid = point.log.as_ref().and_then(|l| l.summary.dbid);
        for (i, f) in point.files.iter().enumerate() {
            if f.vault.is_none() {
                let local = f.local.clone().ok_or_else(|| {
                    StoreError::Vault(format!("{} of {snap} has no local copy", f.path))
                })?;
                let name = match self.uploaded_as(&local) {
                    Some(v) => v,
                    None => {
                        let name = format!("{prefix}/{}", f.path);
                        if open.repo.backend().manifest(&name).await?.is_none() {
                            // The vault files every piece under the token's database.
                            let meta = PieceMeta {
                                database: Some(open.database.clone()),
                                dbid,
                                file_type: self.local.manifest(&local).await?.header.meta.file_type,
                                created: point.created,
                                ..PieceMeta::default()
                            };
                            let key = format!("{store_id}/{mount}/{}", f.path);
                            self.send(&open, &local, &name, &key, meta).await?;
                        }
                        name
                    }
                };
                self.update_point(mount, snap, |p| p.files[i].vault = Some(name));
            } else {
                self.progress_bytes
                    .fetch_add(f.stamp.size, Ordering::Relaxed);
            }
            if let Some(p) = self
                .progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
            {
                p.files_done = i + 1;
            }
        }
        let mut pieces: Vec<String> = self
            .point(mount, snap)
            .map(|p| p.files.iter().filter_map(|f| f.vault.clone()).collect())
            .unwrap_or_default();
        if let Some(log) = &point.log {
            let name = format!("{prefix}.rman.log");
            if log.vault.is_none() && open.repo.backend().manifest(&name).await?.is_none() {
                self.send_file(&open, &log.stored, &name, point.created)
                    .await?;
            }
            pieces.push(name.clone());
            self.update_point(mount, snap, |p| {
                if let Some(l) = &mut p.log {
                    l.vault = Some(name);
                }
            });
        }
        let id = format!("{store_id}-{mount}-{snap}");
        if open
            .client
            .recovery_point(&id)
            .await
            .map_err(RepoError::from)?
            .is_none()
        {
            let mut labels = BTreeMap::new();
            labels.insert("mount".to_string(), mount.to_string());
            labels.insert("snap_name".to_string(), snap.to_string());
            labels.insert("store".to_string(), store_id.clone());
            if let Some(d) = &database {
                labels.insert("oracle_database".to_string(), d.clone());
            }
            open.client
                .create_recovery_point(&NewRecoveryPoint {
                    id: Some(id.clone()),
                    database: open.database.clone(),
                    dbid,
                    kind: RecoveryPointKind::ImageCopy,
                    created: Some(point.created),
                    first_scn: None,
                    next_scn: None,
                    pieces,
                    labels,
                })
                .await
                .map_err(RepoError::from)?;
        }
        let log_file = point.log.as_ref().map(|l| l.stored.clone());
        self.update_point(mount, snap, |p| {
            p.status = PointStatus::Uploaded;
            p.vault_id = Some(id);
            p.uploaded = Some(orca_repo::now_unix());
            p.last_error = None;
        });
        if let Some(f) = log_file {
            let _ = std::fs::remove_file(f);
        }
        tracing::info!(mount, snap, "recovery point uploaded");
        Ok(())
    }

    /// One local piece into the vault, at most at the configured rate.
    async fn send(
        &self,
        open: &Open,
        local: &str,
        name: &str,
        key: &str,
        meta: PieceMeta,
    ) -> Result<(), StoreError> {
        let mut reader = self.local.reader(local, &ReadOptions::default()).await?;
        let lineage = open.cache.load(key)?;
        let limit = self.config.upload_limit_mb_per_s * 1e6;
        let counter = self.progress_bytes.clone();
        let started = Instant::now();
        let (repo, name) = (open.repo.clone(), name.to_string());
        let committed = tokio::task::spawn_blocking(move || {
            // The piece's first chunk tells its unit (an image copy's block 0), so the
            // writer starts once it is read.
            let mut first = reader.next_chunk()?;
            let opts = WriteOptions {
                unit: orca_repo::unit_for_file(first.as_deref().unwrap_or_default()),
                ..WriteOptions::default()
            };
            let mut writer = repo.writer(&name, meta, &opts)?;
            writer.set_lineage(lineage);
            let mut sent = 0u64;
            loop {
                let next = match first.take() {
                    Some(c) => Ok(Some(c)),
                    None => reader.next_chunk(),
                };
                let chunk = match next {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => {
                        writer.abort();
                        return Err(e);
                    }
                };
                if let Err(e) = writer.write(&chunk) {
                    writer.abort();
                    return Err(e);
                }
                sent += chunk.len() as u64;
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if limit > 0.0 {
                    let due = Duration::from_secs_f64(sent as f64 / limit);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            writer.finish()
        })
        .await
        .map_err(|source| StoreError::Task {
            what: "upload",
            source,
        })??;
        if let Err(e) = open
            .cache
            .update(key, &committed.lineage, committed.lineage_unchanged)
        {
            tracing::warn!(error = %e, "cannot update the vault fingerprint cache");
        }
        Ok(())
    }

    async fn send_file(
        &self,
        open: &Open,
        path: &Path,
        name: &str,
        created: i64,
    ) -> Result<(), StoreError> {
        let meta = PieceMeta {
            database: Some(open.database.clone()),
            created,
            ..PieceMeta::default()
        };
        let opts = WriteOptions {
            chunker: Some(orca_repo::ChunkerSpec::default_cdc()),
            ..WriteOptions::default()
        };
        let mut writer = open.repo.writer(name, meta, &opts)?;
        let f = std::fs::File::open(path).map_err(|e| StoreError::io(path, e))?;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = writer.write_file(&f, |_| {}) {
                writer.abort();
                return Err(e);
            }
            writer.finish().map(|_| ())
        })
        .await
        .map_err(|source| StoreError::Task {
            what: "upload",
            source,
        })??;
        Ok(())
    }

    /// Deletes local pieces no pending point needs any more, then reclaims their space.
    pub(crate) async fn release_local(&self) {
        self.drop_unreferenced_clones();
        let (drop, still): (HashSet<String>, HashSet<String>) = {
            let s = self.lock();
            let still: HashSet<String> = s
                .points()
                .filter(|p| p.status == PointStatus::Pending)
                .flat_map(|p| p.files.iter().filter_map(|f| f.local.clone()))
                .collect();
            let drop = s
                .points()
                .flat_map(|p| p.files.iter().filter_map(|f| f.local.clone()))
                .filter(|l| !still.contains(l))
                .collect();
            (drop, still)
        };
        if drop.is_empty() {
            return;
        }
        for piece in &drop {
            if let Err(e) = self.local.delete(piece).await
                && !matches!(e, orca_repo::RepoError::PieceNotFound { .. })
            {
                tracing::warn!(piece, error = %e, "cannot release a local piece");
                return;
            }
        }
        {
            let mut s = self.lock();
            for m in s.mounts.values_mut() {
                for p in &mut m.points {
                    for f in &mut p.files {
                        if f.local.as_ref().is_some_and(|l| !still.contains(l)) {
                            f.local = None;
                        }
                    }
                }
            }
            if let Err(e) = s.save(&self.root) {
                tracing::error!(error = %e, "cannot write the store catalog");
            }
        }
        let store = match orca_repo::Store::open_local(
            &self.root.join(crate::META_DIR).join("chunks"),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the local chunk store to reclaim space");
                return;
            }
        };
        let opts = orca_repo::GcOptions {
            grace: Duration::ZERO,
            ..orca_repo::GcOptions::default()
        };
        match store.gc(&opts, None).await {
            Ok(r) => tracing::info!(
                reclaimed = r.reclaimed_bytes(),
                "local chunk store collected"
            ),
            Err(e) => tracing::warn!(error = %e, "local garbage collection failed"),
        }
    }

    /// Expires the mount's uploaded points its retention no longer keeps: their vault record,
    /// and the vault pieces no kept point shares.
    async fn apply_retention(&self, link: &VaultLink, mount: &str) -> Result<(), StoreError> {
        let (expired, kept_pieces) = {
            let s = self.lock();
            let Some(m) = s.mounts.get(mount) else {
                return Ok(());
            };
            let Some(r) = m.retention else {
                return Ok(());
            };
            let uploaded: Vec<&RecoveryPoint> = m
                .points
                .iter()
                .filter(|p| p.status == PointStatus::Uploaded)
                .collect();
            let created: Vec<i64> = uploaded.iter().map(|p| p.created).collect();
            let k = keep(&created, &r);
            let expired: Vec<RecoveryPoint> = uploaded
                .iter()
                .zip(&k)
                .filter(|(_, k)| !**k)
                .map(|(p, _)| (*p).clone())
                .collect();
            let gone: HashSet<&str> = expired.iter().map(|p| p.snap_name.as_str()).collect();
            let kept_pieces: HashSet<String> = s
                .points()
                .filter(|p| p.status != PointStatus::Expired)
                .filter(|p| !(p.mount == mount && gone.contains(p.snap_name.as_str())))
                .flat_map(|p| p.files.iter().filter_map(|f| f.vault.clone()))
                .collect();
            (expired, kept_pieces)
        };
        if expired.is_empty() {
            return Ok(());
        }
        let open = link.repo().await?;
        for p in expired {
            if let Some(id) = &p.vault_id {
                open.client
                    .delete_recovery_point(id)
                    .await
                    .map_err(RepoError::from)?;
            }
            let mut names: Vec<String> = p.files.iter().filter_map(|f| f.vault.clone()).collect();
            names.extend(p.log.as_ref().and_then(|l| l.vault.clone()));
            for name in names.into_iter().filter(|n| !kept_pieces.contains(n)) {
                open.repo.backend().delete(&name).await?;
            }
            tracing::info!(mount, snap = %p.snap_name, "recovery point expired by retention");
            self.update_point(mount, &p.snap_name, |p| p.status = PointStatus::Expired);
        }
        Ok(())
    }
}
