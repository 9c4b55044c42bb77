//! The ORCA repository engine: named byte streams ("pieces": RMAN backup
//! pieces, image copies, archived logs) stored deduplicated, compressed and
//! encrypted in an object store, with an index that can always be rebuilt
//! from the objects.
//!
//! A repository is a set of objects (packs of encoded chunks, one authenticated
//! manifest per piece, the wrapped key, the configuration) in a local
//! directory, in memory or in an S3 bucket, plus an index (SQLite beside a
//! local repository, or PostgreSQL shared by several vault servers).
//!
//! # Main types
//!
//! - [`Repository`]: the client side. [`Repository::init_local`] and
//!   [`Repository::open_local`] create or open one in a directory;
//!   [`Repository::init`] and [`Repository::open`] take any object store or
//!   [`Backend`]. It holds the keys, so it is what writes and reads pieces.
//! - [`PieceWriter`] ([`Repository::writer`]): streaming ingest with dedup;
//!   nothing is visible until [`PieceWriter::finish`] commits the manifest.
//!   With a [`Lineage`] it stores a changed chunk as the blocks that differ.
//! - [`PieceReader`] ([`Repository::reader`]): streaming restore with
//!   read-ahead; every chunk is checked against its id before it is returned.
//! - [`Store`]: the server side, objects plus index, and the [`Backend`] a
//!   local [`Repository`] writes through (the vault client is the other one).
//!   It verifies ([`Store::verify`]), rebuilds its index
//!   ([`Store::rebuild_index`]) and collects garbage ([`Store::gc`]).
//! - [`index`]: the index backends ([`IndexBackend`], split by concern) and
//!   their row types.
//! - [`RepoError`]: every error, with [`RepoError::is_transient`] for retries.
//!
//! # Example
//!
//! Create a repository in a directory, write a piece, read it back and
//! verify the repository. [`PieceWriter`] and [`PieceReader`] are blocking
//! (they serve threads such as an RMAN channel's); the repository runs its
//! pipeline on the Tokio runtime it was opened in.
//!
//! ```
//! use orca_repo::{
//!     InitOptions, KdfParams, NewKey, PieceMeta, ReadOptions, Repository, WriteOptions,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Runtime::new()?;
//! let dir = tempfile::tempdir()?;
//! let opts = InitOptions {
//!     // A cheap key derivation keeps the example fast; keep the default otherwise.
//!     kdf: KdfParams { m_kib: 256, t: 1, p: 1 },
//!     ..InitOptions::default()
//! };
//! let key = NewKey::Passphrase("correct horse battery staple".into());
//! let (repo, store) = rt.block_on(Repository::init_local(dir.path(), &opts, &key))?;
//!
//! // 3 MiB in three 1 MiB chunks; the second and third are the same chunk.
//! let mut data = vec![7u8; 3 << 20];
//! data[..1 << 20].iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
//! let mut writer = repo.writer("orcl/df1", PieceMeta::default(), &WriteOptions::default())?;
//! writer.write(&data)?;
//! let committed = writer.finish()?;
//! assert_eq!(committed.info.size, data.len() as u64);
//!
//! let mut reader = rt.block_on(repo.reader("orcl/df1", &ReadOptions::default()))?;
//! let mut back = Vec::new();
//! while let Some(chunk) = reader.next_chunk()? {
//!     back.extend_from_slice(&chunk);
//! }
//! assert!(back == data, "the piece read back differs from what was written");
//!
//! // Decrypt, decompress and re-hash every stored chunk against its id.
//! let report = rt.block_on(store.verify(Some(repo.codec().clone()), None))?;
//! assert!(report.is_clean(), "{:?}", report.problems);
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! The modules are private; their items are re-exported below. In reading
//! order: `chunker` (fixed-size aligned and FastCDC), `hash` and `keys`
//! (keyed BLAKE3 chunk ids, the master key and its Argon2id wrapping),
//! `codec` and `aead` (zstd then AES-256-GCM or ChaCha20-Poly1305 per chunk,
//! unit deltas), `pack`, `manifest`, [`index`] (`sqlite`, `postgres`),
//! `store` (the write and read paths of the server side), `gc`, `verify`,
//! `rebuild`, `direct` (packs written with `O_DIRECT` to a local directory),
//! `remote` (objects in an S3 bucket named by `objects.json`), `metered`
//! (object store requests counted), `pool` (reused buffers), `backend`,
//! `repository`, `writer`, `reader`, `lineage` (the local fingerprint cache
//! per source). The byte layouts are drawn in `docs/design.md`.

#![warn(missing_docs)]

// A repository: create, open, keys and configuration.
pub use config::{CONFIG_KEY, CONFIG_VERSION, DEFAULT_ZSTD_LEVEL, KeyStorage, RepoConfig};
pub use keys::{KdfParams, KeyFile, KeySource, Keys, WrappedKey};
pub use remote::{REMOTE_FILE, RemoteObjects};
pub use repository::{InitOptions, NewKey, Repository};

// Writing a piece.
pub use chain::MAX_DELTA_DEPTH;
pub use chunker::ChunkerSpec;
pub use hash::{MIN_UNIT, UNIT, changed_units, unit_for_block, unit_for_file};
pub use lineage::{Anchor, AnchorRef, Lineage, LineageCache, LineageEntry};
pub use manifest::{FileType, PieceMeta, WriteStats};
pub use writer::{Committed, MAX_LANE, PieceWriter, WriteOptions};

// Reading a piece, and the formats it is read from.
pub use aead::{Aead, Unauthentic};
pub use codec::{Cipher, Codec, Opened, UnitValues};
pub use manifest::{
    ChunkRef, Demux, Manifest, ManifestHeader, VERSION as MANIFEST_VERSION,
    object_key as manifest_key,
};
pub use pool::BufferPool;
pub use reader::{PieceReader, ReadOptions};

// The server side: objects plus index, and what clients write through.
pub use backend::{Backend, EncodedChunk};
pub use metered::Requests;
pub use store::{Progress, ProgressFn, Store};

// Verify, rebuild, collect.
pub use gc::{GcOptions, GcReport};
pub use rebuild::RebuildReport;
pub use verify::{Problem, VerifyReport};

// Index backends (their row types are in `index`).
pub use index::{
    ChunkIndex, Collection, Index, IndexBackend, IndexLocation, IndexStats, PgConfig, PgPool,
    PieceCatalog, PieceFilter, PieceInfo, SessionGrant, WriterSessions,
};

// Errors.
pub use error::{RepoError, Result};

// Ids.
pub use id::ChunkId;

// TLS clients (the shared index, the vault client)
pub use trust::{read_secret_file, system_ca_roots};

/// What the fuzz targets (fuzz/) feed arbitrary bytes to.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz {
    /// A pack as read back from storage: the whole-pack scan of verify and rebuild, and its
    /// footer and trailer as a reader parses them.
    pub fn pack(data: &[u8]) {
        let _ = crate::pack::scan(data, "fuzz");
        let len = data.len();
        if let Some(footer) = data.get(len.saturating_sub(crate::pack::FOOTER_LEN)..)
            && let Ok(off) = crate::pack::parse_footer(footer, len as u64, "fuzz")
            && let Some(trailer) = usize::try_from(off)
                .ok()
                .and_then(|o| data.get(o..len - crate::pack::FOOTER_LEN))
        {
            let _ = crate::pack::parse_trailer(trailer, off, "fuzz");
        }
    }
}

mod aead;
mod backend;
mod chain;
mod chunker;
mod codec;
mod config;
mod direct;
mod error;
mod gc;
mod hash;
mod id;
pub mod index;
mod keys;
mod lineage;
mod manifest;
mod metered;
mod pack;
mod pool;
mod reader;
mod rebuild;
mod remote;
mod repository;
mod store;
mod trust;
mod verify;
mod writer;

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
