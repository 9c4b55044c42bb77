//! The backup-store appliance: DBAs' template scripts write RMAN image copies (incremental
//! merge) into a mount over NFS and drive the store through the backup-store REST contract
//! (`GET`/`POST`/`PUT .../backup`, `POST .../uploadlog`, `DELETE .../restores/{jobid}`); each
//! PUT takes a recovery point that goes to the vault in the background.
//!
//! - [`serve`] (module `server`): the contract's endpoints (two base paths), the admin
//!   surface, OpenAPI;
//! - [`Appliance`] (`appliance`): mounts, the backup workflow, recovery points, restores;
//! - `upload`: the queue to the vault, resumable, with [`Retention`];
//! - [`State`] (`state`): the catalog (one JSON file, replaced atomically);
//! - `snapshot`: copy-on-write clones of changed files where the filesystem has them;
//! - `beneath`: files under a mount opened without following links;
//! - [`Code`] and [`ApiError`] (`code`), [`validate_mount`] (`name`), `multipart`,
//!   [`LogSummary`] (`rmanlog`), [`StoreConfig`] (`config`), and [`client`] (for
//!   `orca store ...`).
//!
//! # Recovery points: per-file clones or a local chunk store, never a filesystem snapshot
//!
//! A recovery point must be immutable once PUT answers, yet the next RMAN run rewrites the
//! image copies in place (`RECOVER COPY`). A filesystem snapshot (ZFS, btrfs subvolumes) would
//! tie the store to one filesystem and to privileged tools, so the store takes none. PUT
//! instead keeps each changed file in one of two ways, chosen per mount by `snapshot` in the
//! configuration:
//!
//! - **clone** (`"reflink"`, and `"auto"`, the default, where the mount's filesystem can do
//!   it: XFS with reflink, btrfs): each changed file is cloned copy-on-write (module
//!   `snapshot`: the `FICLONE` ioctl on the file opened without following links, no
//!   privilege) into `<root>/<mount>/snapshots/<snap>/`. PUT costs metadata only; RMAN's next in-place
//!   rewrite allocates new blocks and leaves the clone as it was. The clone is ingested into
//!   the local chunk store when its upload starts, then removed. Until then a pending point
//!   pins the blocks RMAN rewrote since (up to `max_pending` days of changes), and the mount
//!   must be one reflink-capable filesystem.
//! - **ingest** (`"ingest"`, and `"auto"` where the filesystem cannot clone): PUT reads each
//!   changed file into a local orca-repo repository under `<root>/.orca-store/chunks`, storing
//!   only its changed chunks, and a changed 1 MiB chunk only as the 8 KiB units (the
//!   Oracle blocks) that differ from the file's previous version (its fingerprint cache in
//!   `<root>/.orca-store/cache-local`): five pending points of a
//!   database cost about one copy plus five days of changes, not five copies. The cost is
//!   reading every rewritten copy at PUT (sequential I/O at disk speed: for incremental merge,
//!   every datafile copy changes daily), and PUT answers only once that is done: the script
//!   waits, but the point is safe from the next run as soon as it answers.
//!
//! Either way, files whose size, inode, mtime and ctime are unchanged since the mount's
//! previous point are neither cloned nor read (archived-log and level-1 backup sets written
//! on earlier days): the new point names the earlier point's copy.
//!
//! Upload then reads the point back from the local store (verified) and writes it through the
//! same pipeline into the vault, where dedup and deltas against the previous day's pieces
//! keep the transfer to the changed blocks. Once the vault holds the point (pieces committed,
//! recovery point registered), its local pieces are deleted and collected. At most
//! `max_pending` points per mount wait; POST is refused beyond that (4295622664).

#![warn(missing_docs)]

mod appliance;
mod beneath;
pub mod client;
mod code;
mod config;
mod multipart;
mod name;
mod retention;
mod rmanlog;
mod server;
mod snapshot;
mod state;
mod upload;

use std::path::{Path, PathBuf};

// The appliance and its configuration.
pub use appliance::{Appliance, UploadProgress};
pub use config::{SnapshotMode, StoreConfig, VaultConfig};
pub use name::validate_mount;
pub use retention::{Retention, keep};

// The catalog: mounts, recovery points, restores.
pub use rmanlog::LogSummary;
pub use state::{
    FileEntry, FileStamp, Mount, MountStatus, PointStatus, RecoveryPoint, Restore, RestoreStatus,
    RmanLog, STATE_VERSION, State, StoreStatus,
};

/// What the fuzz target (fuzz/) feeds arbitrary bytes to: the multipart parser of
/// `uploadlog`, with the first line of `data` as the Content-Type and the rest as the body.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_multipart(data: &[u8]) {
    let (ct, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let _ = multipart::parse(&String::from_utf8_lossy(ct), body);
}

// The REST surface.
pub use code::{ApiError, Code};
/// What the store allows each client (timeouts, connections): the vault's serving, shared.
pub use orca_vault::listen::Limits;
pub use server::{serve, serve_on};

/// The store's own files under the root (the name cannot be a mount: it starts with `.`).
pub const META_DIR: &str = ".orca-store";
/// A mount's data directory, what RMAN writes into: `<root>/<mount>/oracle_data`.
pub const DATA_DIR: &str = "oracle_data";
/// A mount's restore area: `<root>/<mount>/restores/<jobid>/`.
pub const RESTORES_DIR: &str = "restores";

/// Why the store cannot start or go on (API refusals are [`ApiError`]s).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configuration is unreadable or out of range.
    #[error("configuration {}: {message}", .path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file of the store (the catalog) is unreadable.
    #[error("{}: {message}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The catalog was written by a newer build; it is left untouched.
    #[error(
        "{}: catalog version {found} is newer than this build understands ({supported}): upgrade orca",
        .path.display()
    )]
    UnsupportedVersion {
        /// The catalog file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The newest this build reads ([`STATE_VERSION`]).
        supported: u32,
    },
    /// A file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The local chunk store failed.
    #[error(transparent)]
    Repo(#[from] orca_repo::RepoError),
    /// The vault failed or refused.
    #[error("vault: {0}")]
    Vault(String),
    /// The REST API cannot listen.
    #[error("cannot serve on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A blocking task of the appliance panicked or was cancelled at shutdown.
    #[error("the {what} task failed: {source}; ORCA was shutting down or hit a bug: see the log")]
    Task {
        /// Which task: "ingest", "restore", ...
        what: &'static str,
        /// Why the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The system's random source failed while making a job id or token.
    #[error(
        "the operating system's random number source failed: {0}; check that getrandom(2) or /dev/urandom works on this host"
    )]
    Random(#[source] getrandom::Error),
}

impl StoreError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
