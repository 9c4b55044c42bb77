//! The embedded index (SQLite in WAL mode), the default beside a local
//! repository. WAL mode with a busy timeout lets several processes (one per
//! RMAN channel) use one local repository at once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    ChunkIndex, ChunkKind, Collection, CommitInFlight, GcRun, GcStart, IndexBackend, IndexStats,
    LiveSession, Location, MovedChunk, PackCheck, PackKey, PackRow, PieceCatalog, PieceFilter,
    PieceInfo, SCHEMA_VERSION, SESSION_TTL_SECS, SessionGrant, SweepOutcome, SweptChunk,
    WriterSessions,
};
use crate::error::{RepoError, Result};
use crate::id::ChunkId;
use crate::manifest::PieceMeta;
use crate::pack::PackEntry;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs (
    pk INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id BLOB PRIMARY KEY,
    pack INTEGER NOT NULL REFERENCES packs(pk),
    base BLOB,
    offset INTEGER NOT NULL,
    payload_len INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    last_ref INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_pack ON chunks(pack);
CREATE INDEX IF NOT EXISTS chunks_base ON chunks(base) WHERE base IS NOT NULL;
CREATE TABLE IF NOT EXISTS pieces (
    name TEXT PRIMARY KEY,
    database TEXT,
    dbid INTEGER,
    file_type TEXT NOT NULL,
    created INTEGER NOT NULL,
    size INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pieces_db ON pieces(database, created);
CREATE INDEX IF NOT EXISTS pieces_created ON pieces(created);
CREATE TABLE IF NOT EXISTS commits_in_flight (
    name TEXT PRIMARY KEY,
    started INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    holder TEXT NOT NULL,
    floor INTEGER NOT NULL,
    started INTEGER NOT NULL,
    renewed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pack_checks (
    name TEXT PRIMARY KEY,
    checked INTEGER NOT NULL,
    ok INTEGER NOT NULL
);
";

/// Open a SQLite database in WAL mode, as several processes may at once.
/// Switching a new file to WAL takes a lock that SQLite does not wait for
/// (the busy timeout does not apply), so a concurrent opener retries. `page_size` applies
/// to a file this call creates (SQLite's default, 4 KiB, when `None`).
pub(crate) fn open_wal(path: &Path, page_size: Option<u32>) -> rusqlite::Result<Connection> {
    const WAIT: Duration = Duration::from_secs(60);
    let conn = Connection::open(path)?;
    conn.busy_timeout(WAIT)?;
    if let Some(size) = page_size {
        conn.pragma_update(None, "page_size", size)?;
    }
    let started = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < WAIT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            r => break r?,
        }
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// A chunk row: id, base, offset, payload length, plain length, last reference.
type ChunkRow = (Vec<u8>, Option<Vec<u8>>, u32, u32, u32, i64);

#[derive(Debug)]
pub struct SqliteIndex {
    conn: Mutex<Connection>,
}

impl SqliteIndex {
    /// Open or create the index at `path` for repository `repo_id`. Returns the
    /// index and whether it was created empty (the caller then rebuilds it).
    pub fn open(path: &Path, repo_id: &str) -> Result<(SqliteIndex, bool)> {
        let ctx = |what: &str| format!("{what} {}", path.display());
        let conn = open_wal(path, None).map_err(|e| RepoError::index(ctx("cannot open"), e))?;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
            .map_err(|e| RepoError::index(ctx("cannot create schema in"), e))?;
        let stored: Option<String> = conn
            .query_row("SELECT v FROM meta WHERE k='repo_id'", [], |r| r.get(0))
            .optional()
            .map_err(|e| RepoError::index(ctx("cannot read"), e))?;
        let fresh = match stored {
            Some(id) if id == repo_id => false,
            Some(id) => {
                return Err(RepoError::InvalidArgument(format!(
                    "the index {} belongs to repository {id}, not {repo_id}: remove it and run `orca repo rebuild-index`",
                    path.display()
                )));
            }
            None => {
                conn.execute(
                    "INSERT OR IGNORE INTO meta(k, v) VALUES ('repo_id', ?1), ('schema', ?2)",
                    params![repo_id, SCHEMA_VERSION.to_string()],
                )
                .map_err(|e| RepoError::index(ctx("cannot write"), e))?;
                true
            }
        };
        Ok((
            SqliteIndex {
                conn: Mutex::new(conn),
            },
            fresh,
        ))
    }

    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| RepoError::index(what.to_string(), e))
    }

    fn meta_get(tx: &rusqlite::Transaction<'_>, k: &str) -> rusqlite::Result<Option<String>> {
        tx.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
            .optional()
    }

    fn meta_set(tx: &rusqlite::Transaction<'_>, k: &str, v: &str) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO meta(k, v) VALUES (?1, ?2)",
            params![k, v],
        )
        .map(|_| ())
    }

    fn fence_of(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<i64> {
        Ok(Self::meta_get(tx, "gc_fence")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

impl ChunkIndex for SqliteIndex {
    fn missing(&self, ids: &[ChunkId], touch: Option<i64>) -> Result<Vec<ChunkId>> {
        self.with("probe", |c| {
            let tx = match touch {
                Some(_) => c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
                None => c.transaction()?,
            };
            let mut out = Vec::new();
            {
                let mut st =
                    tx.prepare_cached("SELECT last_ref, base FROM chunks WHERE id = ?1")?;
                let mut up = tx.prepare_cached("UPDATE chunks SET last_ref = ?2 WHERE id = ?1")?;
                // A delta is only as good as its base: the base is kept too.
                let mut up_base = tx.prepare_cached(
                    "UPDATE chunks SET last_ref = ?2 WHERE id = ?1 AND last_ref < ?2",
                )?;
                for id in ids {
                    match st
                        .query_row([id.as_bytes().as_slice()], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
                        })
                        .optional()?
                    {
                        None => out.push(*id),
                        Some((last, base)) => {
                            if let Some(now) = touch.filter(|now| *now > last) {
                                up.execute(params![id.as_bytes().as_slice(), now])?;
                                if let Some(b) = base {
                                    up_base.execute(params![b, now])?;
                                }
                            }
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn kinds(&self, ids: &[ChunkId]) -> Result<Vec<Option<ChunkKind>>> {
        self.with("look up chunks", |c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(ids.len());
            {
                let mut st = tx.prepare_cached("SELECT base FROM chunks WHERE id = ?1")?;
                for id in ids {
                    let row: Option<Option<Vec<u8>>> = st
                        .query_row([id.as_bytes().as_slice()], |r| r.get(0))
                        .optional()?;
                    out.push(
                        row.map(|b| ChunkKind::with_base(b.and_then(|b| ChunkId::from_slice(&b)))),
                    );
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        self.with("locate chunks", |c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(ids.len());
            {
                let mut st = tx.prepare_cached(
                    "SELECT p.name, c.offset, c.payload_len, c.raw_len, c.base
                     FROM chunks c JOIN packs p ON p.pk = c.pack WHERE c.id = ?1",
                )?;
                for id in ids {
                    let loc = st
                        .query_row([id.as_bytes().as_slice()], |r| {
                            let base: Option<Vec<u8>> = r.get(4)?;
                            Ok(Location {
                                pack: r.get(0)?,
                                entry: PackEntry {
                                    id: *id,
                                    base: base.and_then(|b| ChunkId::from_slice(&b)),
                                    offset: r.get(1)?,
                                    payload_len: r.get(2)?,
                                    raw_len: r.get(3)?,
                                },
                            })
                        })
                        .optional()?;
                    out.push(loc);
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn add_pack(&self, name: &str, size: u64, entries: &[PackEntry], now: i64) -> Result<()> {
        self.with("record pack", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO packs(name, size, chunks, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, size, entries.len(), now],
            )?;
            let pk: i64 = tx.query_row("SELECT pk FROM packs WHERE name = ?1", [name], |r| r.get(0))?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR IGNORE INTO chunks(id, pack, base, offset, payload_len, raw_len, last_ref)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for e in entries {
                    st.execute(params![
                        e.id.as_bytes().as_slice(),
                        pk,
                        e.base.as_ref().map(|b| b.as_bytes().to_vec()),
                        e.offset,
                        e.payload_len,
                        e.raw_len,
                        now
                    ])?;
                }
            }
            tx.commit()
        })
    }

    fn missing_bases(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        self.with("check bases", |c| {
            let tx = c.transaction()?;
            let mut out = Vec::new();
            {
                let mut st = tx.prepare_cached(
                    "SELECT c.base FROM chunks c WHERE c.id = ?1 AND c.base IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM chunks b WHERE b.id = c.base)",
                )?;
                for id in ids {
                    if let Some(b) = st
                        .query_row([id.as_bytes().as_slice()], |r| r.get::<_, Vec<u8>>(0))
                        .optional()?
                    {
                        out.extend(ChunkId::from_slice(&b));
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn pack_names(&self) -> Result<HashSet<String>> {
        self.with("list packs", |c| {
            let mut st = c.prepare("SELECT name FROM packs")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
    }

    fn pack_chunk_ids(&self, name: &str) -> Result<HashSet<ChunkId>> {
        self.with("list a pack's chunks", |c| {
            let mut st = c.prepare_cached(
                "SELECT c.id FROM chunks c JOIN packs p ON p.pk = c.pack WHERE p.name = ?1",
            )?;
            let rows = st.query_map([name], |r| r.get::<_, Vec<u8>>(0))?;
            let mut out = HashSet::new();
            for id in rows {
                if let Some(id) = ChunkId::from_slice(&id?) {
                    out.insert(id);
                }
            }
            Ok(out)
        })
    }

    fn drop_baseless_deltas(&self) -> Result<u64> {
        // A delta on a dropped delta goes too: one round per level of a chain.
        self.with("drop deltas without a base", |c| {
            let mut dropped = 0u64;
            loop {
                let n = c.execute(
                    "DELETE FROM chunks WHERE base IS NOT NULL AND base NOT IN (SELECT id FROM chunks)",
                    [],
                )?;
                if n == 0 {
                    return Ok(dropped);
                }
                // A row count: usize is at most 64 bits on every target ORCA builds for.
                dropped += u64::try_from(n).unwrap_or(u64::MAX);
            }
        })
    }

    fn record_check(&self, name: &str, ok: bool, now: i64) -> Result<()> {
        self.with("record a pack check", |c| {
            c.execute(
                "INSERT OR REPLACE INTO pack_checks(name, checked, ok) VALUES (?1, ?2, ?3)",
                params![name, now, ok],
            )
            .map(|_| ())
        })
    }

    fn packs_by_check_age(&self) -> Result<Vec<PackCheck>> {
        self.with("list packs by check age", |c| {
            let mut st = c.prepare(
                "SELECT p.name, p.size, k.checked FROM packs p LEFT JOIN pack_checks k ON k.name = p.name
                 ORDER BY k.checked IS NOT NULL, k.checked, p.name",
            )?;
            let rows = st.query_map([], |r| {
                Ok(PackCheck {
                    name: r.get(0)?,
                    size: r.get(1)?,
                    last_checked: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }
}

impl PieceCatalog for SqliteIndex {
    fn add_piece(&self, info: &PieceInfo, chunk_ids: &[ChunkId], now: i64) -> Result<()> {
        let meta =
            serde_json::to_string(&info.meta).map_err(|e| RepoError::json("piece metadata", e))?;
        self.with("record piece", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR REPLACE INTO pieces(name, database, dbid, file_type, created, size, chunks, stored, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    info.name,
                    info.database,
                    info.dbid,
                    info.file_type.as_str(),
                    info.created,
                    info.size,
                    info.chunks,
                    info.stored,
                    meta
                ],
            )?;
            tx.execute("DELETE FROM commits_in_flight WHERE name = ?1", [&info.name])?;
            {
                // One row per statement, by primary key: SQLite then keeps no statement
                // journal, whose pages, freed after every statement, made the C allocator
                // hand memory back to the system thousands of times per piece.
                let mut touch = tx.prepare_cached(
                    "UPDATE chunks SET last_ref = ?2 WHERE id = ?1 AND last_ref < ?2",
                )?;
                let mut base = tx.prepare_cached("SELECT base FROM chunks WHERE id = ?1")?;
                for id in chunk_ids {
                    touch.execute(params![id.as_bytes().as_slice(), now])?;
                    let b: Option<Vec<u8>> = base
                        .query_row([id.as_bytes().as_slice()], |r| r.get(0))
                        .optional()?
                        .flatten();
                    if let Some(b) = b {
                        touch.execute(params![b, now])?;
                    }
                }
            }
            tx.commit()
        })
    }

    fn begin_commit(&self, name: &str, now: i64) -> Result<()> {
        self.with("record commit in flight", |c| {
            c.execute(
                "INSERT OR REPLACE INTO commits_in_flight(name, started) VALUES (?1, ?2)",
                params![name, now],
            )?;
            Ok(())
        })
    }

    fn end_commit(&self, name: &str) -> Result<()> {
        self.with("clear commit in flight", |c| {
            c.execute("DELETE FROM commits_in_flight WHERE name = ?1", [name])?;
            Ok(())
        })
    }

    fn commits_in_flight(&self) -> Result<Vec<CommitInFlight>> {
        self.with("list commits in flight", |c| {
            let mut st = c.prepare("SELECT name, started FROM commits_in_flight")?;
            let rows = st
                .query_map([], |r| {
                    Ok(CommitInFlight {
                        name: r.get(0)?,
                        started: r.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn remove_piece(&self, name: &str) -> Result<bool> {
        self.with("remove piece", |c| {
            Ok(c.execute("DELETE FROM pieces WHERE name = ?1", [name])? > 0)
        })
    }

    fn remove_piece_created(&self, name: &str, created: i64) -> Result<bool> {
        self.with("remove piece", |c| {
            Ok(c.execute(
                "DELETE FROM pieces WHERE name = ?1 AND created = ?2",
                params![name, created],
            )? > 0)
        })
    }

    fn piece(&self, name: &str) -> Result<Option<PieceInfo>> {
        self.with("look up piece", |c| {
            c.query_row(
                "SELECT name, database, dbid, file_type, created, size, chunks, stored, meta FROM pieces WHERE name = ?1",
                [name],
                row_to_info,
            )
            .optional()
        })
    }

    fn list(&self, f: &PieceFilter) -> Result<Vec<PieceInfo>> {
        let mut sql = String::from(
            "SELECT name, database, dbid, file_type, created, size, chunks, stored, meta FROM pieces WHERE 1=1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(p) = &f.name_prefix {
            sql.push_str(" AND substr(name, 1, ?) = ?");
            args.push(sql_int(p.chars().count(), "name prefix length")?.into());
            args.push(p.clone().into());
        }
        if let Some(d) = &f.database {
            sql.push_str(" AND database = ?");
            args.push(d.clone().into());
        }
        if let Some(d) = f.dbid {
            sql.push_str(" AND dbid = ?");
            args.push(sql_int(d, "dbid")?.into());
        }
        if let Some(t) = f.file_type {
            sql.push_str(" AND file_type = ?");
            args.push(t.as_str().to_string().into());
        }
        if let Some(s) = f.since {
            sql.push_str(" AND created >= ?");
            args.push(s.into());
        }
        if let Some(u) = f.until {
            sql.push_str(" AND created < ?");
            args.push(u.into());
        }
        sql.push_str(" ORDER BY created, name");
        if let Some(l) = f.limit {
            sql.push_str(" LIMIT ?");
            args.push(sql_int(l, "limit")?.into());
        }
        self.with("list pieces", |c| {
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), row_to_info)?;
            rows.collect()
        })
    }
}

impl WriterSessions for SqliteIndex {
    fn gc_fence(&self) -> Result<i64> {
        self.with("read the collection fence", |c| {
            let tx = c.transaction()?;
            Self::fence_of(&tx)
        })
    }

    fn begin_session(
        &self,
        holder: &str,
        lineage_since: Option<i64>,
        now: i64,
    ) -> Result<SessionGrant> {
        self.with("begin a writer session", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let fence = Self::fence_of(&tx)?;
            let since = lineage_since.filter(|&t| t >= fence && t <= now);
            tx.execute(
                "INSERT INTO sessions(holder, floor, started, renewed) VALUES (?1, ?2, ?3, ?3)",
                params![holder, since.unwrap_or(now), now],
            )?;
            let rowid = tx.last_insert_rowid();
            let id = u64::try_from(rowid)
                .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, rowid))?;
            tx.commit()?;
            Ok(SessionGrant {
                id,
                started: now,
                lineage_ok: since.is_some() || lineage_since.is_none(),
            })
        })
    }

    fn adopt_lineage(&self, id: u64, since: i64, now: i64) -> Result<bool> {
        self.with("extend a writer session", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if since < Self::fence_of(&tx)? || since > now {
                return Ok(false);
            }
            let n = tx.execute(
                "UPDATE sessions SET floor = min(floor, ?2), renewed = ?3 WHERE id = ?1",
                params![id, since, now],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn renew_session(&self, id: u64, now: i64) -> Result<bool> {
        self.with("renew a writer session", |c| {
            Ok(c.execute(
                "UPDATE sessions SET renewed = ?2 WHERE id = ?1",
                params![id, now],
            )? > 0)
        })
    }

    fn session_holder(&self, id: u64) -> Result<Option<String>> {
        self.with("look up a writer session", |c| {
            c.query_row("SELECT holder FROM sessions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    fn end_session(&self, id: u64) -> Result<()> {
        self.with("end a writer session", |c| {
            c.execute("DELETE FROM sessions WHERE id = ?1", [id])
                .map(|_| ())
        })
    }

    fn live_sessions(&self, now: i64) -> Result<Vec<LiveSession>> {
        self.with("list writer sessions", |c| {
            let mut st = c.prepare(
                "SELECT holder, floor, started FROM sessions WHERE renewed >= ?1 ORDER BY floor",
            )?;
            let rows = st.query_map([now - SESSION_TTL_SECS], |r| {
                Ok(LiveSession {
                    holder: r.get(0)?,
                    floor: r.get(1)?,
                    started: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }
}

impl Collection for SqliteIndex {
    fn gc_begin(&self, grace: i64, now: i64) -> Result<GcStart> {
        self.with("start a collection", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let running: Option<GcRun> =
                Self::meta_get(&tx, "gc_run")?.and_then(|v| serde_json::from_str(&v).ok());
            let start = match running {
                Some(r) if now - r.heartbeat < SESSION_TTL_SECS => return Ok(GcStart::Busy(r)),
                Some(r) => GcStart::Resumed(GcRun {
                    heartbeat: now,
                    ..r
                }),
                None => {
                    tx.execute(
                        "DELETE FROM sessions WHERE renewed < ?1",
                        [now - SESSION_TTL_SECS],
                    )?;
                    let oldest: Option<i64> =
                        tx.query_row("SELECT min(floor) FROM sessions", [], |r| r.get(0))?;
                    let fence = (now - grace).min(oldest.unwrap_or(i64::MAX));
                    GcStart::Started(GcRun {
                        started: now,
                        fence,
                        heartbeat: now,
                    })
                }
            };
            let run = start.run();
            let published = Self::fence_of(&tx)?.max(run.fence);
            Self::meta_set(&tx, "gc_fence", &published.to_string())?;
            Self::meta_set(
                &tx,
                "gc_run",
                &serde_json::to_string(&run).expect("serialisable"),
            )?;
            tx.commit()?;
            Ok(start)
        })
    }

    fn gc_heartbeat(&self, run: &GcRun, now: i64) -> Result<()> {
        let beat = GcRun {
            heartbeat: now,
            ..*run
        };
        self.with("record collection progress", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            Self::meta_set(
                &tx,
                "gc_run",
                &serde_json::to_string(&beat).expect("serialisable"),
            )?;
            tx.commit()
        })
    }

    fn gc_finish(&self, newest_swept: Option<i64>, previous_fence: i64) -> Result<i64> {
        self.with("finish a collection", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let fence = previous_fence.max(newest_swept.map_or(0, |t| t + 1));
            Self::meta_set(&tx, "gc_fence", &fence.to_string())?;
            tx.execute("DELETE FROM meta WHERE k = 'gc_run'", [])?;
            tx.commit()?;
            Ok(fence)
        })
    }

    fn pack_rows(&self) -> Result<Vec<PackRow>> {
        self.with("list packs", |c| {
            let mut st = c.prepare("SELECT pk, name, size FROM packs ORDER BY pk")?;
            let rows = st.query_map([], |r| {
                Ok(PackRow {
                    key: PackKey(r.get(0)?),
                    name: r.get(1)?,
                    size: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    fn recent_bases(&self, fence: i64) -> Result<Vec<ChunkId>> {
        self.with("list bases", |c| {
            let mut st = c.prepare(
                "SELECT DISTINCT base FROM chunks WHERE base IS NOT NULL AND last_ref >= ?1",
            )?;
            let rows = st.query_map([fence], |r| r.get::<_, Vec<u8>>(0))?;
            Ok(rows
                .filter_map(|b| b.ok().and_then(|b| ChunkId::from_slice(&b)))
                .collect())
        })
    }

    fn sweep_pack(
        &self,
        pack: PackKey,
        fence: i64,
        keep: &dyn Fn(&ChunkId) -> bool,
    ) -> Result<SweepOutcome> {
        self.with("sweep a pack", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut dropped = Vec::new();
            let mut live = Vec::new();
            let mut gone: HashSet<Vec<u8>> = HashSet::new();
            {
                let mut st = tx.prepare_cached(
                    "SELECT id, base, offset, payload_len, raw_len, last_ref FROM chunks WHERE pack = ?1",
                )?;
                let mut del = tx.prepare_cached("DELETE FROM chunks WHERE id = ?1")?;
                // Deltas built on a swept chunk go with it: nothing kept
                // builds on it (a kept delta keeps its base), and a probe
                // must never answer "stored" for a delta it cannot rebuild.
                let mut del_deltas = tx.prepare_cached(
                    "DELETE FROM chunks WHERE base = ?1 RETURNING id, payload_len, last_ref",
                )?;
                let rows: Vec<ChunkRow> = st
                    .query_map([pack.0], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                for (id, base, offset, payload_len, raw_len, last_ref) in rows {
                    let Some(cid) = ChunkId::from_slice(&id) else {
                        continue;
                    };
                    if gone.contains(&id) {
                        continue;
                    }
                    if last_ref < fence && !keep(&cid) {
                        del.execute([&id])?;
                        dropped.push(SweptChunk {
                            payload_bytes: u64::from(payload_len),
                            last_ref,
                        });
                        let cascade = del_deltas
                            .query_map([&id], |r| {
                                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, u64>(1)?, r.get(2)?))
                            })?
                            .collect::<rusqlite::Result<Vec<(Vec<u8>, u64, i64)>>>()?;
                        for (d, payload_bytes, last_ref) in cascade {
                            dropped.push(SweptChunk {
                                payload_bytes,
                                last_ref,
                            });
                            gone.insert(d);
                        }
                        gone.insert(id);
                    } else {
                        live.push(PackEntry {
                            id: cid,
                            base: base.and_then(|b| ChunkId::from_slice(&b)),
                            offset,
                            payload_len,
                            raw_len,
                        });
                    }
                }
            }
            tx.commit()?;
            live.retain(|e| !gone.contains(e.id.as_bytes().as_slice()));
            Ok(SweepOutcome {
                dropped,
                remaining: live,
            })
        })
    }

    fn move_chunks(&self, name: &str, size: u64, moved: &[MovedChunk], now: i64) -> Result<()> {
        self.with("move chunks to a new pack", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO packs(name, size, chunks, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, size, moved.len(), now],
            )?;
            let pk: i64 =
                tx.query_row("SELECT pk FROM packs WHERE name = ?1", [name], |r| r.get(0))?;
            {
                let mut st = tx.prepare_cached(
                    "UPDATE chunks SET pack = ?2, offset = ?3 WHERE id = ?1 AND pack = ?4",
                )?;
                for m in moved {
                    st.execute(params![
                        m.entry.id.as_bytes().as_slice(),
                        pk,
                        m.entry.offset,
                        m.from.0
                    ])?;
                }
            }
            tx.commit()
        })
    }

    fn remove_pack_if_empty(&self, pack: PackKey) -> Result<bool> {
        self.with("remove a pack", |c| {
            Ok(c.execute(
                "DELETE FROM packs WHERE pk = ?1 AND NOT EXISTS (SELECT 1 FROM chunks WHERE pack = ?1)",
                [pack.0],
            )? > 0)
        })
    }
}

impl IndexBackend for SqliteIndex {
    fn stats(&self) -> Result<IndexStats> {
        self.with("count", |c| {
            let (packs, pack_bytes): (u64, u64) =
                c.query_row("SELECT count(*), coalesce(sum(size),0) FROM packs", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let (chunks, chunk_bytes, raw_bytes): (u64, u64, u64) = c.query_row(
                "SELECT count(*), coalesce(sum(payload_len),0), coalesce(sum(raw_len),0) FROM chunks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let (pieces, piece_bytes): (u64, u64) =
                c.query_row("SELECT count(*), coalesce(sum(size),0) FROM pieces", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            Ok(IndexStats {
                packs,
                pack_bytes,
                chunks,
                chunk_bytes,
                raw_bytes,
                pieces,
                piece_bytes,
            })
        })
    }

    fn clear(&self) -> Result<()> {
        self.with("clear", |c| {
            c.execute_batch("BEGIN IMMEDIATE; DELETE FROM chunks; DELETE FROM packs; DELETE FROM pieces; COMMIT;")
        })
    }
}

/// `v` as an SQLite integer (signed 64-bit): a larger value is refused, not wrapped.
fn sql_int<T: TryInto<i64> + Copy + std::fmt::Display>(v: T, what: &str) -> Result<i64> {
    v.try_into().map_err(|_| {
        RepoError::InvalidArgument(format!("{what} {v} is beyond the index's range (2^63 - 1)"))
    })
}

fn row_to_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<PieceInfo> {
    let meta_json: String = r.get(8)?;
    let meta: PieceMeta = serde_json::from_str(&meta_json).unwrap_or_default();
    let ft: String = r.get(3)?;
    Ok(PieceInfo {
        name: r.get(0)?,
        database: r.get(1)?,
        dbid: r.get(2)?,
        file_type: ft.parse().unwrap_or_default(),
        created: r.get(4)?,
        size: r.get(5)?,
        chunks: r.get(6)?,
        stored: r.get(7)?,
        meta,
    })
}
