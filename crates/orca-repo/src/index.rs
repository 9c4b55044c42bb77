//! The embedded index and catalog (SQLite in WAL mode).
//!
//! It answers "which of these chunk ids are stored, and where" and lists
//! pieces by name, database and time. It is a cache of what the objects say
//! (pack trailers, manifests) and can be rebuilt from them at any time.
//! SQLite's WAL mode with a busy timeout lets several processes (one per RMAN
//! channel) use one local repository at once.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::id::ChunkId;
use crate::manifest::{FileType, Manifest, PieceMeta};
use crate::pack::PackEntry;

const SCHEMA_VERSION: i64 = 1;

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
";

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

#[derive(Debug)]
pub struct Index {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Index {
    /// Open or create the index at `path` for repository `repo_id`. Returns the
    /// index and whether it was created empty (the caller then rebuilds it).
    pub fn open(path: &Path, repo_id: &str) -> Result<(Index, bool)> {
        let ctx = |what: &str| format!("{what} {}", path.display());
        let conn = Connection::open(path).map_err(|e| RepoError::index(ctx("cannot open"), e))?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(|e| RepoError::index(ctx("cannot configure"), e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| RepoError::index(ctx("cannot enable WAL on"), e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| RepoError::index(ctx("cannot configure"), e))?;
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
            Index {
                conn: Mutex::new(conn),
                path: path.to_path_buf(),
            },
            fresh,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| RepoError::index(what.to_string(), e))
    }

    /// The subset of `ids` the index does not know. With `touch`, the
    /// reference time of the others is set to `now`: a chunk a backup was
    /// just told it can rely on must survive garbage collection until that
    /// backup commits.
    pub fn missing(&self, ids: &[ChunkId], touch: Option<i64>) -> Result<Vec<ChunkId>> {
        self.with("probe", |c| {
            let tx = match touch {
                Some(_) => c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
                None => c.transaction()?,
            };
            let mut out = Vec::new();
            {
                let mut st = tx.prepare_cached("SELECT last_ref FROM chunks WHERE id = ?1")?;
                let mut up = tx.prepare_cached("UPDATE chunks SET last_ref = ?2 WHERE id = ?1")?;
                for id in ids {
                    match st
                        .query_row([id.as_bytes().as_slice()], |r| r.get::<_, i64>(0))
                        .optional()?
                    {
                        None => out.push(*id),
                        Some(last) => {
                            if let Some(now) = touch.filter(|now| *now > last) {
                                up.execute(params![id.as_bytes().as_slice(), now])?;
                            }
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// For each id: `None` when absent, `Some(None)` for a full chunk,
    /// `Some(Some(base))` for a delta.
    pub fn kinds(&self, ids: &[ChunkId]) -> Result<Vec<Option<Option<ChunkId>>>> {
        self.with("look up chunks", |c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(ids.len());
            {
                let mut st = tx.prepare_cached("SELECT base FROM chunks WHERE id = ?1")?;
                for id in ids {
                    let row: Option<Option<Vec<u8>>> = st
                        .query_row([id.as_bytes().as_slice()], |r| r.get(0))
                        .optional()?;
                    out.push(row.map(|b| b.and_then(|b| ChunkId::from_slice(&b))));
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    pub fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
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

    /// Record a stored pack and its chunks. A chunk already indexed elsewhere
    /// keeps its first location; the duplicate copy is garbage for GC.
    pub fn add_pack(&self, name: &str, size: u64, entries: &[PackEntry], now: i64) -> Result<()> {
        self.with("record pack", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO packs(name, size, chunks, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, size as i64, entries.len() as i64, now],
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

    /// Record a committed piece and refresh the reference time of its chunks
    /// and of the bases they build on (garbage collection keeps recently
    /// referenced chunks).
    pub fn add_piece(&self, info: &PieceInfo, chunk_ids: &[ChunkId], now: i64) -> Result<()> {
        let meta =
            serde_json::to_string(&info.meta).map_err(|e| RepoError::Internal(e.to_string()))?;
        self.with("record piece", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR REPLACE INTO pieces(name, database, dbid, file_type, created, size, chunks, stored, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    info.name,
                    info.database,
                    info.dbid.map(|d| d as i64),
                    info.file_type.as_str(),
                    info.created,
                    info.size as i64,
                    info.chunks as i64,
                    info.stored as i64,
                    meta
                ],
            )?;
            tx.execute("DELETE FROM commits_in_flight WHERE name = ?1", [&info.name])?;
            {
                let mut st = tx.prepare_cached(
                    "UPDATE chunks SET last_ref = ?2 WHERE last_ref < ?2 AND (id = ?1 OR id = (SELECT base FROM chunks WHERE id = ?1))",
                )?;
                for id in chunk_ids {
                    st.execute(params![id.as_bytes().as_slice(), now])?;
                }
            }
            tx.commit()
        })
    }

    /// Bases of delta chunks among `ids` that are not stored.
    pub fn missing_bases(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
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

    /// Note that the manifest of `name` is about to be written, so a crash
    /// between that write and [`Index::add_piece`] is repaired by the next
    /// listing instead of leaving a committed piece the catalog does not show.
    pub fn begin_commit(&self, name: &str, now: i64) -> Result<()> {
        self.with("record commit in flight", |c| {
            c.execute(
                "INSERT OR REPLACE INTO commits_in_flight(name, started) VALUES (?1, ?2)",
                params![name, now],
            )?;
            Ok(())
        })
    }

    pub fn end_commit(&self, name: &str) -> Result<()> {
        self.with("clear commit in flight", |c| {
            c.execute("DELETE FROM commits_in_flight WHERE name = ?1", [name])?;
            Ok(())
        })
    }

    /// Commits begun and not finished, as (name, started).
    pub fn commits_in_flight(&self) -> Result<Vec<(String, i64)>> {
        self.with("list commits in flight", |c| {
            let mut st = c.prepare("SELECT name, started FROM commits_in_flight")?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    pub fn remove_piece(&self, name: &str) -> Result<bool> {
        self.with("remove piece", |c| {
            Ok(c.execute("DELETE FROM pieces WHERE name = ?1", [name])? > 0)
        })
    }

    pub fn piece(&self, name: &str) -> Result<Option<PieceInfo>> {
        self.with("look up piece", |c| {
            c.query_row(
                "SELECT name, database, dbid, file_type, created, size, chunks, stored, meta FROM pieces WHERE name = ?1",
                [name],
                row_to_info,
            )
            .optional()
        })
    }

    pub fn list(&self, f: &PieceFilter) -> Result<Vec<PieceInfo>> {
        let mut sql = String::from(
            "SELECT name, database, dbid, file_type, created, size, chunks, stored, meta FROM pieces WHERE 1=1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(p) = &f.name_prefix {
            sql.push_str(" AND substr(name, 1, ?) = ?");
            args.push((p.chars().count() as i64).into());
            args.push(p.clone().into());
        }
        if let Some(d) = &f.database {
            sql.push_str(" AND database = ?");
            args.push(d.clone().into());
        }
        if let Some(d) = f.dbid {
            sql.push_str(" AND dbid = ?");
            args.push((d as i64).into());
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
            args.push((l as i64).into());
        }
        self.with("list pieces", |c| {
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), row_to_info)?;
            rows.collect()
        })
    }

    /// Every pack the index knows, with its size.
    pub fn packs(&self) -> Result<Vec<(String, u64)>> {
        self.with("list packs", |c| {
            let mut st = c.prepare("SELECT name, size FROM packs ORDER BY name")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect()
        })
    }

    pub fn stats(&self) -> Result<IndexStats> {
        self.with("count", |c| {
            let (packs, pack_bytes): (i64, i64) =
                c.query_row("SELECT count(*), coalesce(sum(size),0) FROM packs", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let (chunks, chunk_bytes, raw_bytes): (i64, i64, i64) = c.query_row(
                "SELECT count(*), coalesce(sum(payload_len),0), coalesce(sum(raw_len),0) FROM chunks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let (pieces, piece_bytes): (i64, i64) =
                c.query_row("SELECT count(*), coalesce(sum(size),0) FROM pieces", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            Ok(IndexStats {
                packs: packs as u64,
                pack_bytes: pack_bytes as u64,
                chunks: chunks as u64,
                chunk_bytes: chunk_bytes as u64,
                raw_bytes: raw_bytes as u64,
                pieces: pieces as u64,
                piece_bytes: piece_bytes as u64,
            })
        })
    }

    /// Forget everything (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        self.with("clear", |c| {
            c.execute_batch("BEGIN IMMEDIATE; DELETE FROM chunks; DELETE FROM packs; DELETE FROM pieces; COMMIT;")
        })
    }
}

fn row_to_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<PieceInfo> {
    let meta_json: String = r.get(8)?;
    let meta: PieceMeta = serde_json::from_str(&meta_json).unwrap_or_default();
    let ft: String = r.get(3)?;
    Ok(PieceInfo {
        name: r.get(0)?,
        database: r.get(1)?,
        dbid: r.get::<_, Option<i64>>(2)?.map(|d| d as u64),
        file_type: ft.parse().unwrap_or_default(),
        created: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        chunks: r.get::<_, i64>(6)? as u64,
        stored: r.get::<_, i64>(7)? as u64,
        meta,
    })
}
