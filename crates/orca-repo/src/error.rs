//! Errors of the repository engine. Each variant names the object at fault
//! and, in its message, what the user can do about it.

use std::sync::Arc;

use crate::id::ChunkId;

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    #[error("no ORCA repository at {location}: create one with `orca repo init --repo {location}`")]
    NotARepository { location: String },

    #[error("a repository already exists at {location}; refusing to overwrite it")]
    AlreadyInitialised { location: String },

    #[error(
        "the repository at {location} is encrypted and no key was given: set ORCA_PASSWORD or pass --key-file"
    )]
    KeyRequired { location: String },

    #[error("wrong key for the repository at {location}: {detail}")]
    WrongKey { location: String, detail: String },

    #[error("piece {name:?} already exists in the repository")]
    PieceExists { name: String },

    #[error("piece {name:?} not found in the repository")]
    PieceNotFound { name: String },

    #[error(
        "piece {name:?} references {} chunk(s) the repository does not hold (first: {}); nothing was committed",
        missing.len(),
        missing.first().map(|c| c.short()).unwrap_or_default()
    )]
    MissingChunks { name: String, missing: Vec<ChunkId> },

    #[error("{}corrupt chunk {} in {object}: {reason}", piece_context(piece, *index), id.short())]
    CorruptChunk {
        piece: Option<String>,
        index: Option<u64>,
        id: ChunkId,
        object: String,
        reason: String,
    },

    #[error("corrupt object {object}: {reason}")]
    CorruptObject { object: String, reason: String },

    #[error(
        "unsupported {what} version {found} (this build understands up to {supported}); upgrade ORCA"
    )]
    UnsupportedVersion {
        what: &'static str,
        found: u32,
        supported: u32,
    },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("storage error on {object}: {source}")]
    Storage {
        object: String,
        #[source]
        source: object_store::Error,
    },

    #[error(
        "repository index error ({context}): {source}; if the index file is damaged, run `orca repo rebuild-index`"
    )]
    Index {
        context: String,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "PostgreSQL error ({context}): {detail}; check that the PostgreSQL server is running and reachable, and that ORCA's user may write its tables"
    )]
    IndexServer {
        context: String,
        /// What the server said, or why it could not be reached (the
        /// client's own message for a server error is only "db error").
        detail: String,
        #[source]
        source: postgres::Error,
    },

    #[error(
        "fingerprint cache error ({context}): {source}; the cache only saves probes: delete the file and the next backup rebuilds it"
    )]
    Cache {
        context: String,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A backend (the vault over HTTP, ...) failed; `source` is its own error
    /// and `transient` its verdict on whether a later retry may succeed.
    #[error("backend {location} failed: {source}")]
    Backend {
        location: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        transient: bool,
    },

    /// Storing a pack failed; `source` is shared by every write that waited on it.
    #[error(
        "writing a pack to {location} failed: {source}; its chunks were not stored: once the cause is fixed, write the piece again"
    )]
    PackWrite {
        location: String,
        #[source]
        source: Arc<RepoError>,
    },

    #[error(
        "another garbage collection of {location} is running (started {started}, last progress {heartbeat}, Unix seconds); wait for it, or retry once it has made no progress for 10 minutes"
    )]
    GcRunning {
        location: String,
        started: i64,
        heartbeat: i64,
    },

    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "the operating system's random number source failed: {0}; check that getrandom(2) or /dev/urandom works on this host"
    )]
    Random(#[source] getrandom::Error),

    #[error(
        "deriving the key from the passphrase (Argon2id) failed: {source}; check the key's KDF parameters"
    )]
    Kdf {
        #[source]
        source: argon2::Error,
    },

    /// An AEAD operation failed; the cipher library gives no detail beyond the
    /// operation.
    #[error("{what} failed in the cipher library")]
    Crypto { what: &'static str },

    #[error("zstd {what} failed: {source}")]
    Compression {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("the {what} task failed: {source}; ORCA was shutting down or hit a bug: see the log")]
    TaskFailed {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },

    #[error(
        "the {stage} pipeline stopped without saying why; this is a bug in ORCA: report it with the log"
    )]
    PipelineStopped { stage: &'static str },

    #[error(
        "restore of piece {name:?} stopped after {delivered} of {size} bytes: the restore task ended early (shutdown or a bug: see the log)"
    )]
    RestoreStopped {
        name: String,
        delivered: u64,
        size: u64,
    },

    #[error(
        "the writer of piece {name:?} already failed (see its first error); abort it and write the piece again"
    )]
    WriterFailed { name: String },

    #[error(
        "no tokio runtime: open the repository from inside one (`#[tokio::main]` or `Runtime::enter`)"
    )]
    NoRuntime,

    #[error(
        "a pack would grow to {size} bytes, beyond the 4 GiB its 32-bit offsets address; use a smaller pack size"
    )]
    PackTooLarge { size: usize },

    /// The fingerprint cache said parts of a chunk equal its anchor's, and the
    /// anchor read back from the repository disagrees.
    #[error(
        "chunk {} rebuilt from its anchor {} does not match its fingerprint: the fingerprint cache is out of date; delete it and run the backup again",
        chunk.short(),
        anchor.short()
    )]
    StaleLineage { chunk: ChunkId, anchor: ChunkId },
}

fn piece_context(piece: &Option<String>, index: Option<u64>) -> String {
    match (piece, index) {
        (Some(p), Some(i)) => format!("piece {p:?}, chunk #{i}: "),
        (Some(p), None) => format!("piece {p:?}: "),
        _ => String::new(),
    }
}

impl RepoError {
    pub fn storage(object: impl Into<String>, source: object_store::Error) -> Self {
        RepoError::Storage {
            object: object.into(),
            source,
        }
    }

    pub fn index(context: impl Into<String>, source: rusqlite::Error) -> Self {
        RepoError::Index {
            context: context.into(),
            source,
        }
    }

    pub fn cache(context: impl Into<String>, source: rusqlite::Error) -> Self {
        RepoError::Cache {
            context: context.into(),
            source,
        }
    }

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
