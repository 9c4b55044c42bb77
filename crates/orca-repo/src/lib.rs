//! The ORCA repository engine.
//!
//! A repository stores named byte streams ("pieces": RMAN backup pieces,
//! image copies, logs) deduplicated, compressed and encrypted:
//!
//! - [`chunker`]: fixed-size aligned and content-defined (FastCDC) chunking;
//! - [`keys`]: the master key, its passphrase wrapping (Argon2id) or key file,
//!   and the derived keys (keyed BLAKE3 chunk ids, encryption, MAC);
//! - [`codec`]: zstd then AES-256-GCM / ChaCha20-Poly1305 per chunk, with the
//!   chunk id bound as associated data;
//! - [`pack`]: many encoded chunks per stored object, self-describing;
//! - [`manifest`]: the recipe of a piece, authenticated;
//! - [`index`]: the embedded index and catalog (SQLite, WAL), rebuildable;
//! - [`store`]: packs, manifests and keys on an `object_store` backend (local
//!   directory, in memory, S3) plus the index: the server side;
//! - [`verify`], [`rebuild`]: reading a store back to check it, or to make
//!   its index again;
//! - [`metered`]: request counts per operation on the object store;
//! - [`remote`]: a repository directory whose objects live in an
//!   S3-compatible bucket (`objects.json`);
//! - [`backend`]: what clients need from a store, local or remote;
//! - [`repository`], [`writer`], [`reader`]: the client side (init/open,
//!   streaming ingest with dedup, streaming restore with read-ahead).
//!
//! The byte layouts are drawn in `docs/design.md`.

pub mod aead;
pub mod backend;
pub mod chunker;
pub mod codec;
pub mod config;
pub mod direct;
pub mod error;
pub mod gc;
pub mod hash;
pub mod id;
pub mod index;
pub mod keys;
pub mod lineage;
pub mod manifest;
pub mod metered;
pub mod pack;
pub mod pool;
pub mod reader;
pub mod rebuild;
pub mod remote;
pub mod repository;
pub mod store;
pub mod verify;
pub mod writer;

pub use backend::{Backend, EncodedChunk};
pub use chunker::ChunkerSpec;
pub use codec::{Cipher, Codec};
pub use config::RepoConfig;
pub use error::{RepoError, Result};
pub use gc::{GcOptions, GcReport};
pub use id::ChunkId;
pub use index::{IndexLocation, PieceFilter, PieceInfo, SessionGrant};
pub use keys::{KdfParams, KeySource, Keys};
pub use manifest::{FileType, Manifest, PieceMeta, WriteStats};
pub use reader::{PieceReader, ReadOptions};
pub use rebuild::RebuildReport;
pub use repository::{InitOptions, NewKey, Repository};
pub use store::Store;
pub use verify::{Problem, VerifyReport};
pub use writer::{Committed, PieceWriter, WriteOptions};

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
