//! Errors of the repository engine. Each variant names the object at fault
//! and, in its message, what the user can do about it.

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

    /// A backend (the vault over HTTP, ...) failed.
    #[error("backend {location} failed: {message}")]
    Backend {
        /// The backend's location.
        location: String,
        /// What it said.
        message: String,
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

    /// Anything else: a bug or an unexpected library failure.
    #[error("{0}")]
    Internal(String),
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
            RepoError::IndexServer { source, .. } => source.is_closed() || source.code().is_none(),
            RepoError::Io { .. } => true,
            _ => false,
        }
    }
}
