//! The index and catalog: which chunk ids are stored and where, the pieces
//! by name, database and time, writer sessions and the collection fence.
//!
//! It is a cache of what the objects say (pack trailers, manifests) and can
//! be rebuilt from them at any time. Two backends answer the same
//! [`IndexBackend`] calls: SQLite beside a local repository (the default,
//! [`sqlite`]), and PostgreSQL shared by several vault servers over one
//! bucket ([`postgres`]).

pub mod postgres;
pub mod sqlite;

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::ChunkId;
use crate::manifest::{FileType, Manifest, PieceMeta};
use crate::pack::PackEntry;

pub(crate) use sqlite::open_wal;

const SCHEMA_VERSION: i64 = 1;

/// What [`IndexBackend::sweep_pack`] did: dropped chunks as (payload bytes, last
/// reference), and the entries left in the pack.
pub type Swept = (Vec<(u64, i64)>, Vec<PackEntry>);

/// A writer session not renewed for this long is dead (its process crashed)
/// and no longer holds garbage collection back.
pub const SESSION_TTL_SECS: i64 = 600;

/// What [`IndexBackend::begin_session`] granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionGrant {
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
    pub started: i64,
    /// Chunks referenced (probed, uploaded, committed) at or after the fence
    /// are kept whatever the manifests say.
    pub fence: i64,
    pub heartbeat: i64,
}

/// A piece as the catalog lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PieceInfo {
    pub name: String,
    pub database: Option<String>,
    pub dbid: Option<u64>,
    pub file_type: FileType,
    /// Seconds since the Unix epoch.
    pub created: i64,
    pub size: u64,
    pub chunks: u64,
    /// Encoded bytes this piece added to the repository when written.
    pub stored: u64,
    pub meta: PieceMeta,
}

impl PieceInfo {
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<FileType>,
    /// Created at or after (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Created before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Where a chunk is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: String,
    pub entry: PackEntry,
}

/// Counts for `orca repo info`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexStats {
    pub packs: u64,
    pub pack_bytes: u64,
    pub chunks: u64,
    pub chunk_bytes: u64,
    pub raw_bytes: u64,
    pub pieces: u64,
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

/// What every index backend answers. Calls block (they are made from
/// blocking threads); each is one transaction.
pub trait IndexBackend: Send + Sync + std::fmt::Debug {
    /// The subset of `ids` the index does not know. With `touch`, the
    /// reference time of the others is set to `now`: a chunk a backup was
    /// just told it can rely on must survive garbage collection until that
    /// backup commits.
    fn missing(&self, ids: &[ChunkId], touch: Option<i64>) -> Result<Vec<ChunkId>>;

    /// For each id: `None` when absent, `Some(None)` for a full chunk,
    /// `Some(Some(base))` for a delta.
    fn kinds(&self, ids: &[ChunkId]) -> Result<Vec<Option<Option<ChunkId>>>>;

    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>>;

    /// Record a stored pack and its chunks. A chunk already indexed elsewhere
    /// keeps its first location; the duplicate copy is garbage for GC.
    fn add_pack(&self, name: &str, size: u64, entries: &[PackEntry], now: i64) -> Result<()>;

    /// Record a committed piece and refresh the reference time of its chunks
    /// and of the bases they build on (garbage collection keeps recently
    /// referenced chunks).
    fn add_piece(&self, info: &PieceInfo, chunk_ids: &[ChunkId], now: i64) -> Result<()>;

    /// Bases of delta chunks among `ids` that are not stored.
    fn missing_bases(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>>;

    /// Note that the manifest of `name` is about to be written, so a crash
    /// between that write and [`IndexBackend::add_piece`] is repaired by the next
    /// listing instead of leaving a committed piece the catalog does not show.
    fn begin_commit(&self, name: &str, now: i64) -> Result<()>;

    fn end_commit(&self, name: &str) -> Result<()>;

    /// Commits begun and not finished, as (name, started).
    fn commits_in_flight(&self) -> Result<Vec<(String, i64)>>;

    fn remove_piece(&self, name: &str) -> Result<bool>;

    /// Remove the row of `name` only if it is still the one created at `created`: a
    /// reader that found the manifest gone must not take away the row of a commit of the
    /// same name that landed after its read.
    fn remove_piece_created(&self, name: &str, created: i64) -> Result<bool>;

    fn piece(&self, name: &str) -> Result<Option<PieceInfo>>;

    fn list(&self, f: &PieceFilter) -> Result<Vec<PieceInfo>>;

    /// Every pack the index knows, with its size.
    fn packs(&self) -> Result<Vec<(String, u64)>>;

    fn stats(&self) -> Result<IndexStats>;

    /// Lineages recorded before this time may name chunks a collection swept.
    fn gc_fence(&self) -> Result<i64>;

    /// Register a writer. Until it ends (or stops renewing), no collection
    /// sweeps a chunk referenced at or after its floor: `now`, or the time
    /// `lineage_since` its lineage was recorded when that lineage is still
    /// trustworthy. Checking the fence and inserting the session in one
    /// transaction orders it against a collection computing its fence.
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

    fn end_session(&self, id: u64) -> Result<()>;

    /// Writer sessions alive at `now`, as (holder, floor, started).
    fn live_sessions(&self, now: i64) -> Result<Vec<(String, i64, i64)>>;

    /// Start a collection, or resume the one a crash interrupted (keeping its
    /// fence). The fence is the older of `now - grace` and every live
    /// session's floor; it is published at once, so a writer starting from
    /// now on does not trust a lineage older than it. `Err(run)` when another
    /// collection is alive.
    fn gc_begin(&self, grace: i64, now: i64) -> Result<std::result::Result<GcRun, GcRun>>;

    fn gc_heartbeat(&self, run: &GcRun, now: i64) -> Result<()>;

    /// End a collection. The published fence drops back to just after the
    /// newest reference among the swept chunks (never below where a previous
    /// collection left it), so lineages newer than everything swept stay
    /// trusted.
    fn gc_finish(&self, newest_swept: Option<i64>, previous_fence: i64) -> Result<i64>;

    /// Packs with their index key, name and size.
    fn pack_rows(&self) -> Result<Vec<(i64, String, u64)>>;

    /// Bases that chunks kept by a collection with `fence` build on: those of
    /// chunks referenced since the fence. (Bases of marked chunks the caller
    /// adds itself.)
    fn recent_bases(&self, fence: i64) -> Result<Vec<ChunkId>>;

    /// In one transaction: drop from pack `pk` every chunk that is not
    /// `keep`-ed and was last referenced before `fence`. A probe or commit
    /// touching a chunk orders itself before (the chunk survives) or after
    /// (it is reported missing and sent again). Returns what was dropped, as
    /// (payload bytes, last reference), and the entries that remain.
    fn sweep_pack(&self, pk: i64, fence: i64, keep: &dyn Fn(&ChunkId) -> bool) -> Result<Swept>;

    /// Point chunks at the new pack `name`, which holds copies of them: each
    /// entry (its place in the new pack) with the pack it is in now. A chunk
    /// no longer in that pack (swept meanwhile) is left alone.
    fn move_chunks(
        &self,
        name: &str,
        size: u64,
        entries: &[(PackEntry, i64)],
        now: i64,
    ) -> Result<()>;

    /// Forget pack `pk` when no chunk points at it; `true` when it is gone.
    fn remove_pack_if_empty(&self, pk: i64) -> Result<bool>;

    /// Names of the packs the index knows.
    fn pack_names(&self) -> Result<HashSet<String>>;

    /// The chunks the index places in pack `name`.
    fn pack_chunk_ids(&self, name: &str) -> Result<HashSet<ChunkId>>;

    /// Forget deltas whose base the index does not hold (a collection swept
    /// the base; the delta's blob lingers in a pack until it is rewritten).
    /// Bases are never deltas themselves, so one pass is enough.
    fn drop_baseless_deltas(&self) -> Result<u64>;

    /// Record the outcome of checking a pack.
    fn record_check(&self, name: &str, ok: bool, now: i64) -> Result<()>;

    /// Packs in the order a sampling verify should read them: never checked
    /// first, then the longest unchecked; with the time of the last check.
    fn packs_by_check_age(&self) -> Result<Vec<(String, u64, Option<i64>)>>;

    /// Forget everything (before a rebuild).
    fn clear(&self) -> Result<()>;
}

/// An open index, whichever backend holds it.
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
