//! Errors of the repository engine. Each variant names the object at fault
//! and, in its message, what the user can do about it.

use std::sync::Arc;

use crate::id::ChunkId;

/// The result of every fallible call of the engine.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// An error of the repository engine; [`RepoError::is_transient`] says whether a retry
/// may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// No repository configuration where one was expected.
    #[error("no ORCA repository at {location}: create one with `orca repo init --repo {location}`")]
    NotARepository {
        /// Where the repository was looked for.
        location: String,
    },

    /// Init found a repository already there.
    #[error("a repository already exists at {location}; refusing to overwrite it")]
    AlreadyInitialised {
        /// Where the repository is.
        location: String,
    },

    /// Opening needs a passphrase or key file, and none was given.
    #[error(
        "the repository at {location} is encrypted and no key was given: set ORCA_PASSWORD or pass --key-file"
    )]
    KeyRequired {
        /// The repository.
        location: String,
    },

    /// The passphrase or key file does not unlock this repository.
    #[error("wrong key for the repository at {location}: {detail}")]
    WrongKey {
        /// The repository.
        location: String,
        /// Why the key does not fit.
        detail: String,
    },

    /// A commit found the name taken; nothing changed.
    #[error("piece {name:?} already exists in the repository")]
    PieceExists {
        /// The piece's name.
        name: String,
    },

    /// No committed piece of that name.
    #[error("piece {name:?} not found in the repository")]
    PieceNotFound {
        /// The piece's name.
        name: String,
    },

    /// A commit named chunks the repository does not hold; nothing changed.
    #[error(
        "piece {name:?} references {} chunk(s) the repository does not hold (first: {}); nothing was committed",
        missing.len(),
        missing.first().map(|c| c.short()).unwrap_or_default()
    )]
    MissingChunks {
        /// The piece's name.
        name: String,
        /// The chunks it lacks: upload them, then commit again.
        missing: Vec<ChunkId>,
    },

    /// A chunk failed its checks (authentication, decompression, id).
    #[error("{}corrupt chunk {} in {object}: {reason}", piece_context(piece, *index), id.short())]
    CorruptChunk {
        /// The piece being read, when known.
        piece: Option<String>,
        /// The chunk's position in that piece, when known.
        index: Option<u64>,
        /// The chunk.
        id: ChunkId,
        /// The object it was read from.
        object: String,
        /// What failed.
        reason: String,
    },

    /// An object (pack, manifest, config, key) is malformed or fails its MAC.
    #[error("corrupt object {object}: {reason}")]
    CorruptObject {
        /// The object.
        object: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A format newer than this build reads; it is left untouched.
    #[error(
        "unsupported {what} version {found} (this build understands up to {supported}); upgrade ORCA"
    )]
    UnsupportedVersion {
        /// Which format.
        what: &'static str,
        /// The version found.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },

    /// The caller asked for something invalid; nothing changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The object store failed.
    #[error("storage error on {object}: {source}")]
    Storage {
        /// The object being accessed.
        object: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },

    #[error(
        "repository index error ({context}): {source}; if the index file is damaged, run `orca repo rebuild-index`"
    )]
    /// The SQLite index failed.
    Index {
        /// What the index was doing.
        context: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "PostgreSQL error ({context}): {detail}; check that the PostgreSQL server is running and reachable, and that ORCA's user may write its tables"
    )]
    /// The PostgreSQL index failed.
    IndexServer {
        /// What the index was doing.
        context: String,
        /// What the server said, or why it could not be reached (the
        /// client's own message for a server error is only "db error").
        detail: String,
        /// The client's error.
        #[source]
        source: postgres::Error,
    },

    #[error(
        "fingerprint cache error ({context}): {source}; the cache only saves probes: delete the file and the next backup rebuilds it"
    )]
    /// The local fingerprint cache failed.
    Cache {
        /// What the cache was doing.
        context: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A backend (the vault over HTTP, ...) failed; `source` is its own error
    /// and `transient` its verdict on whether a later retry may succeed.
    #[error("backend {location} failed: {source}")]
    Backend {
        /// The backend's location.
        location: String,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Whether a later retry may succeed.
        transient: bool,
    },

    /// The repository's filesystem has no room left: no retry helps until space is freed.
    #[error("the repository's disk is full ({free} bytes free at {path})")]
    DiskFull {
        /// The repository's directory.
        path: String,
        /// What its filesystem has left for the repository's user.
        free: u64,
    },

    /// Storing a pack failed; `source` is shared by every write that waited on it.
    #[error(
        "writing a pack to {location} failed: {source}; its chunks were not stored: once the cause is fixed, write the piece again"
    )]
    PackWrite {
        /// The repository.
        location: String,
        /// Why the pack could not be stored.
        #[source]
        source: Arc<RepoError>,
    },

    /// Another collection is running; nothing changed.
    #[error(
        "another garbage collection of {location} is running (started {started}, last progress {heartbeat}, Unix seconds); wait for it, or retry once it has made no progress for 10 minutes"
    )]
    GcRunning {
        /// The repository.
        location: String,
        /// When the running collection started (Unix seconds).
        started: i64,
        /// When it last made progress (Unix seconds).
        heartbeat: i64,
    },

    /// A value could not be encoded as JSON.
    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        /// What was being encoded.
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },

    /// The operating system's random source failed.
    #[error(
        "the operating system's random number source failed: {0}; check that getrandom(2) or /dev/urandom works on this host"
    )]
    Random(#[source] getrandom::Error),

    /// Argon2id refused its parameters or input.
    #[error(
        "deriving the key from the passphrase (Argon2id) failed: {source}; check the key's KDF parameters"
    )]
    Kdf {
        /// Argon2's error.
        #[source]
        source: argon2::Error,
    },

    /// An AEAD operation failed; the cipher library gives no detail beyond the
    /// operation.
    #[error("{what} failed in the cipher library")]
    Crypto {
        /// The operation.
        what: &'static str,
    },

    /// zstd failed.
    #[error("zstd {what} failed: {source}")]
    Compression {
        /// Compressing or decompressing.
        what: &'static str,
        /// zstd's error.
        #[source]
        source: std::io::Error,
    },

    /// A task of the pipeline panicked or was cancelled.
    #[error("the {what} task failed: {source}; ORCA was shutting down or hit a bug: see the log")]
    TaskFailed {
        /// Which task.
        what: &'static str,
        /// Tokio's error.
        #[source]
        source: tokio::task::JoinError,
    },

    /// A pipeline stage ended without an error or a result (a bug).
    #[error(
        "the {stage} pipeline stopped without saying why; this is a bug in ORCA: report it with the log"
    )]
    PipelineStopped {
        /// Which stage.
        stage: &'static str,
    },

    /// The restore task of a reader ended early.
    #[error(
        "restore of piece {name:?} stopped after {delivered} of {size} bytes: the restore task ended early (shutdown or a bug: see the log)"
    )]
    RestoreStopped {
        /// The piece.
        name: String,
        /// Bytes returned before it stopped.
        delivered: u64,
        /// Bytes of the piece.
        size: u64,
    },

    /// A call on a writer that already failed.
    #[error(
        "the writer of piece {name:?} already failed (see its first error); abort it and write the piece again"
    )]
    WriterFailed {
        /// The piece.
        name: String,
    },

    /// The repository was opened outside a Tokio runtime.
    #[error(
        "no tokio runtime: open the repository from inside one (`#[tokio::main]` or `Runtime::enter`)"
    )]
    NoRuntime,

    /// A pack would outgrow its 32-bit offsets.
    #[error(
        "a pack would grow to {size} bytes, beyond the 4 GiB its 32-bit offsets address; use a smaller pack size"
    )]
    PackTooLarge {
        /// The size it would reach.
        size: usize,
    },

    /// The fingerprint cache said parts of a chunk equal its anchor's, and the
    /// anchor read back from the repository disagrees.
    #[error(
        "chunk {} rebuilt from its anchor {} does not match its fingerprint: the fingerprint cache is out of date; delete it and run the backup again",
        chunk.short(),
        anchor.short()
    )]
    StaleLineage {
        /// The chunk rebuilt.
        chunk: ChunkId,
        /// The anchor it was rebuilt from.
        anchor: ChunkId,
    },
}

fn piece_context(piece: &Option<String>, index: Option<u64>) -> String {
    match (piece, index) {
        (Some(p), Some(i)) => format!("piece {p:?}, chunk #{i}: "),
        (Some(p), None) => format!("piece {p:?}: "),
        _ => String::new(),
    }
}

impl RepoError {
    /// An object store error on `object`.
    pub fn storage(object: impl Into<String>, source: object_store::Error) -> Self {
        RepoError::Storage {
            object: object.into(),
            source,
        }
    }

    /// Whether the repository's disk is full: this error, or the pack write it failed on.
    pub fn is_disk_full(&self) -> bool {
        match self {
            RepoError::DiskFull { .. } => true,
            RepoError::PackWrite { source, .. } => source.is_disk_full(),
            _ => false,
        }
    }

    /// An object store's failure to write `object` under the directory `dir`: [`RepoError::DiskFull`]
    /// when the operating system said the filesystem is full (ENOSPC, EDQUOT), else
    /// [`RepoError::Storage`].
    pub fn storage_write(dir: &str, object: String, source: object_store::Error) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&source);
        while let Some(c) = cause {
            if c.downcast_ref::<std::io::Error>().is_some_and(|e| {
                e.kind() == std::io::ErrorKind::StorageFull
                    || e.raw_os_error() == Some(libc::EDQUOT)
            }) {
                return RepoError::disk_full(dir);
            }
            cause = c.source();
        }
        RepoError::storage(object, source)
    }

    /// [`RepoError::DiskFull`] for the filesystem holding `dir`, with what it has left.
    pub fn disk_full(dir: &str) -> Self {
        let free = rustix::fs::statvfs(dir)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(0);
        RepoError::DiskFull {
            path: dir.to_string(),
            free,
        }
    }

    /// A SQLite index error while doing `context`.
    pub fn index(context: impl Into<String>, source: rusqlite::Error) -> Self {
        RepoError::Index {
            context: context.into(),
            source,
        }
    }

    /// A fingerprint cache error while doing `context`.
    pub fn cache(context: impl Into<String>, source: rusqlite::Error) -> Self {
        RepoError::Cache {
            context: context.into(),
            source,
        }
    }

    /// A local I/O error while doing `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RepoError::Io {
            context: context.into(),
            source,
        }
    }

    /// A backend's own error, with its verdict on retrying.
    pub fn backend(
        location: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        transient: bool,
    ) -> Self {
        RepoError::Backend {
            location: location.into(),
            source: source.into(),
            transient,
        }
    }

    pub(crate) fn json(what: &'static str, source: serde_json::Error) -> Self {
        RepoError::Json { what, source }
    }

    pub(crate) fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |source| RepoError::TaskFailed { what, source }
    }

    /// Object `object` is corrupt for `reason`.
    pub fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        RepoError::CorruptObject {
            object: object.into(),
            reason: reason.into(),
        }
    }

    /// Attach the piece and position to a chunk error found while reading a piece.
    pub fn in_piece(self, name: &str, position: u64) -> Self {
        match self {
            RepoError::CorruptChunk {
                id, object, reason, ..
            } => RepoError::CorruptChunk {
                piece: Some(name.to_string()),
                index: Some(position),
                id,
                object,
                reason,
            },
            other => other,
        }
    }

    /// True when retrying the same call later may succeed (network, busy storage).
    pub fn is_transient(&self) -> bool {
        match self {
            RepoError::Storage { source, .. } => {
                matches!(source, object_store::Error::Generic { .. })
            }
            RepoError::Index { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            // The index already retried its connection; a later call may find the server back.
            // A value that does not fit its column will not fit on a retry either.
            RepoError::IndexServer { source, .. } => {
                (source.is_closed() || source.code().is_none())
                    && !std::error::Error::source(source)
                        .is_some_and(|c| c.is::<crate::index::postgres::OutOfRange>())
            }
            RepoError::Io { .. } => true,
            RepoError::Backend { transient, .. } => *transient,
            RepoError::PackWrite { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_put(e: std::io::Error) -> object_store::Error {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        }
    }

    #[test]
    fn a_full_disk_is_named_with_its_free_bytes_and_nothing_else_is() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_str().unwrap();
        for full in [
            std::io::Error::from(std::io::ErrorKind::StorageFull),
            std::io::Error::from_raw_os_error(libc::ENOSPC),
            std::io::Error::from_raw_os_error(libc::EDQUOT),
        ] {
            let e = RepoError::storage_write(dir, format!("{dir}/packs/x"), failed_put(full));
            let RepoError::DiskFull { path, free } = &e else {
                panic!("not a full disk: {e}");
            };
            assert_eq!(path, dir);
            assert!(*free > 0);
            assert!(
                e.to_string().starts_with("the repository's disk is full ("),
                "{e}"
            );
            let wrapped = RepoError::PackWrite {
                location: dir.into(),
                source: Arc::new(e),
            };
            assert!(wrapped.is_disk_full());
            assert!(wrapped.to_string().contains("bytes free at"), "{wrapped}");
        }
        // A negative control: another failure stays what it was.
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = RepoError::storage_write(dir, "o".into(), failed_put(denied));
        assert!(
            matches!(e, RepoError::Storage { .. }) && !e.is_disk_full(),
            "{e}"
        );
    }
}
