//! The index and catalog: which chunk ids are stored and where, the pieces
//! by name, database and time, writer sessions and the collection fence.
//!
//! It is a cache of what the objects say (pack trailers, manifests) and can
//! be rebuilt from them at any time (see [`crate::Store::rebuild_index`]). What an index
//! answers is split by concern, the way `object_store` splits its traits:
//!
//! - [`ChunkIndex`]: which chunks are stored, in which pack, and when each
//!   pack was last checked;
//! - [`PieceCatalog`]: the pieces, and the commits between their manifest
//!   write and their catalog row;
//! - [`WriterSessions`]: the backups in flight that hold garbage collection
//!   back, and the published collection fence they are checked against;
//! - [`Collection`]: a garbage collection's own steps (fence, sweep, repack).
//!
//! [`IndexBackend`] is all four; two backends implement it: SQLite beside a
//! local repository (the default), and PostgreSQL shared by several vault
//! servers over one bucket ([`PgConfig`], [`PgPool`]).
//!
//! # Transactions
//!
//! Every call is one transaction: it lands whole or not at all, and the
//! calls that write are ordered against each other (SQLite `BEGIN
//! IMMEDIATE`, one PostgreSQL advisory lock), across processes and servers.
//! Calls block; async code makes them from blocking threads.
//!
//! # The collection fence
//!
//! Times are Unix seconds on the store's clock. Each chunk carries its last
//! reference (`last_ref`): when it was stored, probed as present
//! ([`ChunkIndex::missing`] with `touch`) or committed
//! ([`PieceCatalog::add_piece`]). A collection computes a fence
//! ([`Collection::gc_begin`]) no later than the floor of every live writer
//! session and publishes it in the same transaction; it sweeps only chunks
//! last referenced before the fence ([`Collection::sweep_pack`]). A writer
//! relies on chunks it was told are stored from the moment it was told (the
//! probe touched them), and on chunks named by a lineage only when that
//! lineage is no older than the published fence ([`WriterSessions`]).

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::ChunkId;
use crate::manifest::{FileType, Manifest, PieceMeta};
pub use crate::pack::PackEntry;

pub use postgres::{MIGRATIONS as PG_MIGRATIONS, PgConfig, PgPool};
pub(crate) use sqlite::open_wal;

const SCHEMA_VERSION: i64 = 1;

/// A writer session not renewed for this long is dead (its process crashed)
/// and no longer holds garbage collection back.
pub const SESSION_TTL_SECS: i64 = 600;

/// What [`WriterSessions::begin_session`] granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionGrant {
    /// The session's id: what the writer renews and ends.
    pub id: u64,
    /// The store's clock when the session began: the `updated` time of the
    /// lineage this writer will leave behind.
    pub started: i64,
    /// Whether the lineage the writer asked to rely on is still trustworthy
    /// (no collection since it was recorded could have swept its chunks).
    pub lineage_ok: bool,
}

/// A garbage collection in progress (or interrupted, to be resumed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRun {
    /// When the collection began (Unix seconds).
    pub started: i64,
    /// Chunks referenced (probed, uploaded, committed) at or after the fence
    /// are kept whatever the manifests say.
    pub fence: i64,
    /// When the collector last said it was alive (Unix seconds).
    pub heartbeat: i64,
}

/// What [`Collection::gc_begin`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcStart {
    /// A new collection, with a fence computed now and published.
    Started(GcRun),
    /// A collection a crash interrupted, taken over with its fence.
    Resumed(GcRun),
    /// Another collection is alive (its heartbeat is recent); nothing changed.
    Busy(GcRun),
}

impl GcStart {
    /// The collection started, resumed or found running.
    pub fn run(&self) -> GcRun {
        match self {
            GcStart::Started(r) | GcStart::Resumed(r) | GcStart::Busy(r) => *r,
        }
    }
}

/// A pack's key in the index: how the collection names a pack while it
/// sweeps and rewrites it. It means nothing outside the index that gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackKey(pub i64);

/// A pack as the collection walks them ([`Collection::pack_rows`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackRow {
    /// The pack's key in this index.
    pub key: PackKey,
    /// The pack's name (hex of its hash).
    pub name: String,
    /// Bytes of the pack object.
    pub size: u64,
}

/// A pack with the time a verify last read it ([`ChunkIndex::packs_by_check_age`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackCheck {
    /// The pack's name (hex of its hash).
    pub name: String,
    /// Bytes of the pack object.
    pub size: u64,
    /// When it was last checked (Unix seconds); `None` when never.
    pub last_checked: Option<i64>,
}

/// A chunk a sweep dropped from the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweptChunk {
    /// Bytes of its encoded payload (space the pack will give back).
    pub payload_bytes: u64,
    /// When it was last referenced (Unix seconds): before the fence.
    pub last_ref: i64,
}

/// What [`Collection::sweep_pack`] did to one pack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// The chunks dropped, with the deltas that built on them.
    pub dropped: Vec<SweptChunk>,
    /// The entries the index still places in the pack.
    pub remaining: Vec<PackEntry>,
}

/// A chunk copied into a new pack by [`Collection::move_chunks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovedChunk {
    /// The chunk's place in the new pack.
    pub entry: PackEntry,
    /// The pack the index places it in now.
    pub from: PackKey,
}

/// A writer session alive now ([`WriterSessions::live_sessions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSession {
    /// Who registered it (for the vault, `<database>/<piece>`).
    pub holder: String,
    /// No collection sweeps a chunk referenced at or after this time while
    /// the session lives (Unix seconds).
    pub floor: i64,
    /// When the session began (Unix seconds).
    pub started: i64,
}

/// A commit whose manifest is being written ([`PieceCatalog::commits_in_flight`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInFlight {
    /// The piece's name.
    pub name: String,
    /// When the commit began (Unix seconds).
    pub started: i64,
}

/// What kind of chunk the index holds under an id ([`ChunkIndex::kinds`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// Its payload is the whole chunk.
    Full,
    /// Its payload is a delta against `base`, a full chunk or a shorter delta.
    Delta {
        /// The chunk it builds on.
        base: ChunkId,
    },
}

impl ChunkKind {
    /// A chunk with this base (`None`: full).
    pub fn with_base(base: Option<ChunkId>) -> ChunkKind {
        match base {
            Some(base) => ChunkKind::Delta { base },
            None => ChunkKind::Full,
        }
    }

    /// The chunk a delta builds on; `None` for a full chunk.
    pub fn base(self) -> Option<ChunkId> {
        match self {
            ChunkKind::Full => None,
            ChunkKind::Delta { base } => Some(base),
        }
    }
}

/// A piece as the catalog lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PieceInfo {
    /// The piece's name.
    pub name: String,
    /// Oracle database name, when known.
    pub database: Option<String>,
    /// Oracle database id, when known.
    pub dbid: Option<u64>,
    /// What the piece holds.
    pub file_type: FileType,
    /// Seconds since the Unix epoch.
    pub created: i64,
    /// Bytes of the piece.
    pub size: u64,
    /// Chunks of the piece.
    pub chunks: u64,
    /// Encoded bytes this piece added to the repository when written.
    pub stored: u64,
    /// The metadata of its manifest.
    pub meta: PieceMeta,
}

impl PieceInfo {
    /// The catalog entry of the piece `m` describes.
    pub fn from_manifest(m: &Manifest) -> Self {
        let meta = m.header.meta.clone();
        PieceInfo {
            name: m.header.name.clone(),
            database: meta.database.clone(),
            dbid: meta.dbid,
            file_type: meta.file_type,
            created: meta.created,
            size: m.header.size,
            chunks: m.chunks.len() as u64,
            stored: meta.stats.as_ref().map(|s| s.new_bytes).unwrap_or(0),
            meta,
        }
    }
}

/// Which pieces to list.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PieceFilter {
    /// Only pieces whose name starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Only pieces of this database (name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Only pieces of this database (id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbid: Option<u64>,
    /// Only pieces of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<FileType>,
    /// Created at or after (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Created before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// At most this many pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Where a chunk is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The pack's name.
    pub pack: String,
    /// The chunk's place in it.
    pub entry: PackEntry,
}

/// Counts for `orca repo info`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexStats {
    /// Packs indexed.
    pub packs: u64,
    /// Their bytes.
    pub pack_bytes: u64,
    /// Chunks indexed.
    pub chunks: u64,
    /// Their encoded bytes.
    pub chunk_bytes: u64,
    /// Their plaintext bytes.
    pub raw_bytes: u64,
    /// Pieces catalogued.
    pub pieces: u64,
    /// Their bytes (before dedup).
    pub piece_bytes: u64,
}

/// Where a repository's index lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexLocation {
    /// A SQLite file (`index.sqlite` in the repository directory).
    Sqlite(PathBuf),
    /// A PostgreSQL database several servers share.
    Postgres(postgres::PgConfig),
}

impl std::fmt::Display for IndexLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexLocation::Sqlite(p) => write!(f, "{}", p.display()),
            IndexLocation::Postgres(c) => write!(f, "{}", c.redacted()),
        }
    }
}

/// Which chunks are stored and where.
///
/// A chunk id is indexed at most once: the first pack recorded with it keeps
/// it, later copies are garbage for the collection. A delta is indexed only
/// while its base is (a probe never answers "stored" for a delta it cannot
/// rebuild). Each call is one transaction; [`ChunkIndex::missing`] with
/// `touch` and [`ChunkIndex::add_pack`] are writes, ordered against a
/// collection's sweep (see the module documentation on the fence).
pub trait ChunkIndex: Send + Sync + std::fmt::Debug {
    /// The subset of `ids` the index does not know. With `touch`, the
    /// reference time of the others (and of the bases they build on) is
    /// raised to `now`: a chunk a backup was just told it can rely on must
    /// survive garbage collection until that backup commits.
    fn missing(&self, ids: &[ChunkId], touch: Option<i64>) -> Result<Vec<ChunkId>>;

    /// For each id, what kind of chunk the index holds; `None` when absent.
    fn kinds(&self, ids: &[ChunkId]) -> Result<Vec<Option<ChunkKind>>>;

    /// For each id, the pack holding it and where; `None` when absent.
    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>>;

    /// Record a stored pack and its chunks, referenced at `now`. A chunk
    /// already indexed elsewhere keeps its first location; the duplicate copy
    /// is garbage for GC.
    fn add_pack(&self, name: &str, size: u64, entries: &[PackEntry], now: i64) -> Result<()>;

    /// Bases of delta chunks among `ids` that are not stored.
    fn missing_bases(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>>;

    /// Names of the packs the index knows.
    fn pack_names(&self) -> Result<HashSet<String>>;

    /// The chunks the index places in pack `name`.
    fn pack_chunk_ids(&self, name: &str) -> Result<HashSet<ChunkId>>;

    /// Forget deltas whose base the index does not hold (a collection swept
    /// the base; the delta's blob lingers in a pack until it is rewritten).
    /// Bases are never deltas themselves, so one pass is enough. Returns how
    /// many were forgotten.
    fn drop_baseless_deltas(&self) -> Result<u64>;

    /// Record the outcome of checking pack `name` at `now`.
    fn record_check(&self, name: &str, ok: bool, now: i64) -> Result<()>;

    /// Packs in the order a sampling verify should read them: never checked
    /// first, then the longest unchecked.
    fn packs_by_check_age(&self) -> Result<Vec<PackCheck>>;
}

/// The pieces, by name, database and time.
///
/// A catalog row is written only after the piece's manifest is stored, so a
/// row always names a committed piece; the manifest is the truth, and a row
/// a crash lost is restored from it. [`PieceCatalog::begin_commit`] marks
/// the window between the manifest write and the row so a listing can close
/// it. [`PieceCatalog::add_piece`] is one write transaction that also
/// references the piece's chunks (see the fence in the module documentation).
pub trait PieceCatalog: Send + Sync + std::fmt::Debug {
    /// Record a committed piece, end its commit in flight, and raise the
    /// reference time of its chunks and of the bases they build on to `now`
    /// (garbage collection keeps recently referenced chunks).
    fn add_piece(&self, info: &PieceInfo, chunk_ids: &[ChunkId], now: i64) -> Result<()>;

    /// Note that the manifest of `name` is about to be written, so a crash
    /// between that write and [`PieceCatalog::add_piece`] is repaired by the
    /// next listing instead of leaving a committed piece the catalog does not
    /// show.
    fn begin_commit(&self, name: &str, now: i64) -> Result<()>;

    /// Forget the commit in flight of `name` (its manifest write failed, or
    /// a listing found the manifest and restored the row).
    fn end_commit(&self, name: &str) -> Result<()>;

    /// Commits begun and not finished.
    fn commits_in_flight(&self) -> Result<Vec<CommitInFlight>>;

    /// Remove the row of `name`; `true` when there was one.
    fn remove_piece(&self, name: &str) -> Result<bool>;

    /// Remove the row of `name` only if it is still the one created at `created`: a
    /// reader that found the manifest gone must not take away the row of a commit of the
    /// same name that landed after its read.
    fn remove_piece_created(&self, name: &str, created: i64) -> Result<bool>;

    /// The row of `name`, if any.
    fn piece(&self, name: &str) -> Result<Option<PieceInfo>>;

    /// The rows `f` selects, oldest first (then by name).
    fn list(&self, f: &PieceFilter) -> Result<Vec<PieceInfo>>;
}

/// The backups in flight, which hold garbage collection back.
///
/// A writer registers a session before its first probe and renews it; a
/// session not renewed for [`SESSION_TTL_SECS`] is dead. While a session
/// lives, no collection sweeps a chunk referenced at or after its floor. A
/// writer may also rely on a lineage (chunks a previous backup of the same
/// source stored) recorded at some time `since`: only when `since` is not
/// older than the published fence ([`WriterSessions::gc_fence`]), because a
/// collection that published a later fence may have swept those chunks.
/// Checking the fence and setting the floor happen in one write
/// transaction, which orders them against a collection computing its fence.
pub trait WriterSessions: Send + Sync + std::fmt::Debug {
    /// Lineages recorded before this time may name chunks a collection swept.
    fn gc_fence(&self) -> Result<i64>;

    /// Register a writer. Its floor is `now`, or `lineage_since` (when its
    /// lineage was recorded) when that lineage is still trustworthy.
    fn begin_session(
        &self,
        holder: &str,
        lineage_since: Option<i64>,
        now: i64,
    ) -> Result<SessionGrant>;

    /// Extend a running session to a lineage recorded at `since`; `false`
    /// (and nothing changes) when that lineage is no longer trustworthy or
    /// the session is gone.
    fn adopt_lineage(&self, id: u64, since: i64, now: i64) -> Result<bool>;

    /// `false` when the session is unknown (ended, or expired and removed).
    fn renew_session(&self, id: u64, now: i64) -> Result<bool>;

    /// Who holds session `id`, if it exists.
    fn session_holder(&self, id: u64) -> Result<Option<String>>;

    /// End session `id`; its floor no longer holds collections back.
    fn end_session(&self, id: u64) -> Result<()>;

    /// Writer sessions alive at `now`, lowest floor first.
    fn live_sessions(&self, now: i64) -> Result<Vec<LiveSession>>;
}

/// A garbage collection's steps (see [`crate::Store::gc`] for the procedure).
///
/// One collection runs at a time: [`Collection::gc_begin`] records the run
/// and a second collector finds it [`GcStart::Busy`] until its heartbeat is
/// [`SESSION_TTL_SECS`] old, when the next one resumes it with the same
/// fence. Each call is one transaction, a sweep one per pack, so probes and
/// commits of running backups wait milliseconds, never a whole collection.
pub trait Collection: Send + Sync + std::fmt::Debug {
    /// Start a collection, or resume the one a crash interrupted (keeping its
    /// fence). The fence is the older of `now - grace` and every live
    /// session's floor; it is published at once, so a writer starting from
    /// now on does not trust a lineage older than it.
    fn gc_begin(&self, grace: i64, now: i64) -> Result<GcStart>;

    /// Note that collection `run` is still alive at `now`.
    fn gc_heartbeat(&self, run: &GcRun, now: i64) -> Result<()>;

    /// End a collection. The published fence drops back to just after the
    /// newest reference among the swept chunks (never below where a previous
    /// collection left it), so lineages newer than everything swept stay
    /// trusted. Returns the fence published.
    fn gc_finish(&self, newest_swept: Option<i64>, previous_fence: i64) -> Result<i64>;

    /// Every pack, in key order.
    fn pack_rows(&self) -> Result<Vec<PackRow>>;

    /// Bases that chunks kept by a collection with `fence` build on: those of
    /// chunks referenced since the fence. (Bases of marked chunks the caller
    /// adds itself.)
    fn recent_bases(&self, fence: i64) -> Result<Vec<ChunkId>>;

    /// In one transaction: drop from pack `pack` every chunk that is not
    /// `keep`-ed and was last referenced before `fence`, with the deltas
    /// built on it. A probe or commit touching a chunk orders itself before
    /// (the chunk survives) or after (it is reported missing and sent again).
    fn sweep_pack(
        &self,
        pack: PackKey,
        fence: i64,
        keep: &dyn Fn(&ChunkId) -> bool,
    ) -> Result<SweepOutcome>;

    /// Record the new pack `name` and point at it the chunks it holds copies
    /// of. A chunk no longer in the pack `from` names (swept meanwhile) is
    /// left alone.
    fn move_chunks(&self, name: &str, size: u64, moved: &[MovedChunk], now: i64) -> Result<()>;

    /// Forget pack `pack` when no chunk points at it; `true` when it is gone.
    fn remove_pack_if_empty(&self, pack: PackKey) -> Result<bool>;
}

/// Everything an index answers: what [`Index`] holds.
pub trait IndexBackend: ChunkIndex + PieceCatalog + WriterSessions + Collection {
    /// Counts of packs, chunks and pieces, read in one transaction.
    fn stats(&self) -> Result<IndexStats>;

    /// Forget every pack, chunk and piece (before a rebuild). Sessions, the
    /// fence and pack checks stay.
    fn clear(&self) -> Result<()>;
}

/// An open index, whichever backend holds it. It dereferences to
/// `dyn IndexBackend`, so every call of the traits above is available on it
/// without importing them.
#[derive(Debug)]
pub struct Index(Box<dyn IndexBackend>);

impl Index {
    /// Open or create the index at `at` for repository `repo_id`. Returns the
    /// index and whether it was created empty (the caller then rebuilds it).
    pub fn open(at: &IndexLocation, repo_id: &str) -> Result<(Index, bool)> {
        Ok(match at {
            IndexLocation::Sqlite(path) => {
                let (i, fresh) = sqlite::SqliteIndex::open(path, repo_id)?;
                (Index(Box::new(i)), fresh)
            }
            IndexLocation::Postgres(cfg) => {
                let (i, fresh) = postgres::PgIndex::open(cfg, repo_id)?;
                (Index(Box::new(i)), fresh)
            }
        })
    }
}

impl std::ops::Deref for Index {
    type Target = dyn IndexBackend;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}
