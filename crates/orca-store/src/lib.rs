//! The backup-store appliance: DBAs' template scripts write RMAN image copies (incremental
//! merge) into a mount over NFS and drive the store through the backup-store REST contract
//! (`GET`/`POST`/`PUT .../backup`, `POST .../uploadlog`, `DELETE .../restores/{jobid}`); each
//! PUT takes a recovery point that goes to the vault in the background.
//!
//! - [`server`]: the contract's endpoints (two base paths), the admin surface, OpenAPI;
//! - [`appliance`]: mounts, the backup workflow, recovery points, restores;
//! - [`upload`]: the queue to the vault, resumable, with retention;
//! - [`state`]: the catalog (one JSON file, replaced atomically);
//! - [`snapshot`]: copy-on-write clones of changed files where the filesystem has them;
//! - [`beneath`]: files under a mount opened without following links;
//! - [`code`], [`name`], [`multipart`], [`rmanlog`], [`retention`], [`config`], [`client`].
//!
//! # Recovery points: a local chunk store, not a filesystem snapshot
//!
//! A recovery point must be immutable once PUT answers, yet the next RMAN run rewrites the
//! image copies in place (`RECOVER COPY`). A copy-on-write snapshot (ZFS, btrfs) would cost
//! nothing at PUT, but ties the store to one filesystem and to privileged tools. ORCA instead
//! ingests the mount into a local orca-repo repository under `<root>/.orca-store/chunks`:
//!
//! - files whose size, inode, mtime and ctime are unchanged since the previous point are not
//!   read at all (archived-log and level-1 backup sets written on earlier days);
//! - changed files are read once, but only their changed chunks are stored, and a changed
//!   1 MiB chunk only as the Oracle blocks that differ (the fingerprint cache of the file's
//!   previous version): five pending points of a database cost about one copy plus five days
//!   of changes, not five copies;
//! - the cost is reading every rewritten copy at PUT (sequential I/O at disk speed: for
//!   incremental merge, every datafile copy changes daily), and the PUT answers only once that
//!   is done: the script waits, but the point is safe from the next run as soon as it answers.
//!
//! Where the mount's filesystem clones files copy-on-write (XFS with reflink, btrfs), PUT
//! does not read at all (`snapshot = "auto"`, the default, or `"reflink"`): each changed file
//! is cloned into `<root>/<mount>/snapshots/<snap>/` (metadata only; RMAN's next in-place
//! rewrite allocates new blocks and leaves the clone as it was), and the clone is ingested
//! into the local chunk store when its upload starts, then removed. The trade-off: PUT answers
//! in milliseconds instead of after a read of every rewritten copy, but until its upload a
//! pending point pins the blocks RMAN rewrote since (up to `max_pending` days of changes, as
//! the chunk store would hold too), and the mount must be a single reflink-capable
//! filesystem. `snapshot = "ingest"` reads at PUT on any filesystem.
//!
//! Upload then reads the point back from the local store (verified) and writes it through the
//! same pipeline into the vault, where dedup and deltas against the previous day's pieces
//! keep the transfer to the changed blocks. Once the vault holds the point (pieces committed,
//! recovery point registered), its local pieces are deleted and collected. At most
//! `max_pending` points per mount wait; POST is refused beyond that (4295622664).

pub mod appliance;
pub mod beneath;
pub mod client;
pub mod code;
pub mod config;
pub mod multipart;
pub mod name;
pub mod retention;
pub mod rmanlog;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod upload;

use std::path::{Path, PathBuf};

pub use appliance::Appliance;
pub use code::{ApiError, Code};
pub use config::StoreConfig;

/// The store's own files under the root (the name cannot be a mount: it starts with `.`).
pub const META_DIR: &str = ".orca-store";
/// A mount's data directory, what RMAN writes into: `<root>/<mount>/oracle_data`.
pub const DATA_DIR: &str = "oracle_data";
/// A mount's restore area: `<root>/<mount>/restores/<jobid>/`.
pub const RESTORES_DIR: &str = "restores";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("configuration {}: {message}", .path.display())]
    Config { path: PathBuf, message: String },
    #[error("{}: {message}", .path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Repo(#[from] orca_repo::RepoError),
    #[error("vault: {0}")]
    Vault(String),
    #[error("cannot serve on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
