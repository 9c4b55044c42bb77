//! The store's catalog: mounts, recovery points, restores. Small, so it is kept in memory and
//! written whole, atomically (temporary file, fsync, rename), after every change; a kill -9
//! leaves either the old or the new file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::retention::Retention;
use crate::rmanlog::LogSummary;

/// Whether the store takes backups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreStatus {
    /// Taking backups.
    #[default]
    Active,
    /// Waiting for pending uploads before it stops taking backups for good.
    Decommissioning,
    /// Stopped for good: every point is in the vault.
    Decommissioned,
}

/// Whether a mount takes backups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MountStatus {
    /// Taking backups.
    #[default]
    Ready,
    /// Deleted by the admin; removed once its pending recovery points are in the vault.
    MarkedForDelete,
}

/// Where a recovery point's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    /// Held in the local chunk store, waiting for (or in) upload.
    Pending,
    /// In the vault; the local copy is released.
    Uploaded,
    /// Removed from the vault by the mount's retention.
    Expired,
}

/// What identifies a file's version without reading it: RMAN rewrites image copies in place,
/// which changes the modification and change times even when the size stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileStamp {
    /// Bytes.
    pub size: u64,
    /// Modification time (nanoseconds since the Unix epoch).
    pub mtime_ns: i64,
    /// Status change time (nanoseconds since the Unix epoch).
    pub ctime_ns: i64,
    /// Inode number.
    pub inode: u64,
}

/// One file of a recovery point, relative to the mount's data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileEntry {
    /// Path relative to the mount's data directory.
    pub path: String,
    /// The version of the file the point holds.
    pub stamp: FileStamp,
    /// Piece in the local chunk store while the point is pending.
    pub local: Option<String>,
    /// Piece in the vault once uploaded.
    pub vault: Option<String>,
    /// A copy-on-write clone of the file (`snapshot = reflink`), relative to the store's
    /// root, until it is ingested into the local chunk store right before its upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// The RMAN log uploaded for a recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RmanLog {
    /// Name of the uploaded file.
    pub file_name: String,
    /// Where the database host mounts this mount (the `mountpoint` field).
    pub mountpoint: String,
    /// The database host's platform (the `platform` field).
    pub platform: String,
    /// Kept under `<root>/.orca-store/logs/` until the recovery point is uploaded.
    #[schema(value_type = String)]
    pub stored: PathBuf,
    /// Its piece in the vault once uploaded.
    pub vault: Option<String>,
    /// What the log says (database, backups, errors).
    pub summary: LogSummary,
}

/// A recovery point: the mount's files as one PUT found them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecoveryPoint {
    /// Its name, unique in the store (what restores and the REST API name it by).
    pub snap_name: String,
    /// The mount it was taken of.
    pub mount: String,
    /// Unix seconds of the PUT that took it.
    pub created: i64,
    /// Where its data is.
    pub status: PointStatus,
    /// Its files.
    pub files: Vec<FileEntry>,
    /// The RMAN log uploaded before the PUT, if any.
    pub log: Option<RmanLog>,
    /// Its id in the vault's recovery points, once registered there.
    pub vault_id: Option<String>,
    /// When it reached the vault (Unix seconds).
    pub uploaded: Option<i64>,
    /// The last upload failure, for the admin.
    pub last_error: Option<String>,
}

impl RecoveryPoint {
    /// Bytes of its files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.stamp.size).sum()
    }

    /// The database its RMAN log names, if any.
    pub fn database(&self) -> Option<&str> {
        self.log
            .as_ref()
            .and_then(|l| l.summary.database.as_deref())
    }
}

/// A mount: a directory the database host writes image copies into over NFS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mount {
    /// Its name (see [`crate::validate_mount`]).
    pub name: String,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// Whether it takes backups.
    pub status: MountStatus,
    /// Set by POST (start backup), cleared by PUT.
    pub backup_started: Option<i64>,
    /// Uploaded by `uploadlog` for the recovery point the next PUT takes.
    pub pending_log: Option<RmanLog>,
    /// How long its points are kept in the vault; forever when `None`.
    pub retention: Option<Retention>,
    /// Its recovery points, oldest first.
    pub points: Vec<RecoveryPoint>,
}

impl Mount {
    /// Points not yet in the vault.
    pub fn pending(&self) -> usize {
        self.points
            .iter()
            .filter(|p| p.status == PointStatus::Pending)
            .count()
    }
}

/// Where a restore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestoreStatus {
    /// Files are being written.
    Running,
    /// Every file is written.
    Succeeded,
    /// Stopped on an error (in its message).
    Failed,
}

/// A restore of a recovery point into `<root>/<mount>/restores/<jobid>/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Restore {
    /// Its job id.
    pub jobid: u64,
    /// The mount restored.
    pub mount: String,
    /// The recovery point restored.
    pub snap_name: String,
    /// Where it is.
    pub status: RestoreStatus,
    /// The directory the files go into.
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// When it started (Unix seconds).
    pub started: i64,
    /// When it ended (Unix seconds).
    pub finished: Option<i64>,
    /// Bytes written so far.
    pub bytes: u64,
    /// What it is doing, or why it failed.
    pub message: String,
    /// For a restore to a point in time: the time asked (the database's, `YYYY-MM-DD HH:MM:SS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_time: Option<String>,
    /// The later recovery point whose archived logs were restored beside the copies, to
    /// recover them until `until_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_from: Option<String>,
    /// The RMAN commands that bring the database back from these files (absent from
    /// restores made before the store said them).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rman: String,
}

/// Layout version of the catalog (`state.json`). A build refuses a catalog newer than this:
/// it would misread it and, at its next save, drop what it does not know.
pub const STATE_VERSION: u32 = 1;

/// Catalogs written before the version was recorded have the first layout.
fn first_version() -> u32 {
    1
}

/// The catalog: every mount with its recovery points, and the restores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// [`STATE_VERSION`] when written.
    #[serde(default = "first_version")]
    pub version: u32,
    /// Random, so the vault pieces of two stores sharing a token never collide.
    pub store_id: String,
    /// Whether the store takes backups.
    pub status: StoreStatus,
    /// Number of the next recovery point's name.
    pub next_snap: u64,
    /// Id of the next restore job.
    pub next_job: u64,
    /// Mounts by name.
    pub mounts: BTreeMap<String, Mount>,
    /// Restores by job id.
    pub restores: BTreeMap<u64, Restore>,
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            store_id: String::new(),
            status: StoreStatus::default(),
            next_snap: 0,
            next_job: 0,
            mounts: BTreeMap::new(),
            restores: BTreeMap::new(),
        }
    }
}

impl State {
    /// The catalog file under the store's root.
    pub fn path(root: &Path) -> PathBuf {
        root.join(crate::META_DIR).join("state.json")
    }

    /// Read the catalog under `root`; `None` when there is none yet. A newer version is refused.
    pub fn load(root: &Path) -> Result<Option<State>, StoreError> {
        let path = State::path(root);
        match std::fs::read(&path) {
            Ok(b) => {
                #[derive(Deserialize)]
                struct Probe {
                    #[serde(default = "first_version")]
                    version: u32,
                }
                let corrupt = |e: serde_json::Error| StoreError::Corrupt {
                    path: path.clone(),
                    message: e.to_string(),
                };
                let probe: Probe = serde_json::from_slice(&b).map_err(corrupt)?;
                if probe.version > STATE_VERSION {
                    return Err(StoreError::UnsupportedVersion {
                        path,
                        found: probe.version,
                        supported: STATE_VERSION,
                    });
                }
                serde_json::from_slice(&b).map(Some).map_err(corrupt)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Write the catalog under `root` atomically.
    pub fn save(&self, root: &Path) -> Result<(), StoreError> {
        let path = State::path(root);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| StoreError::io(&tmp, e))?;
        f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        Ok(())
    }

    /// Every recovery point, oldest first within each mount.
    pub fn points(&self) -> impl Iterator<Item = &RecoveryPoint> {
        self.mounts.values().flat_map(|m| m.points.iter())
    }
}
