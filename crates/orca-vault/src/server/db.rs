//! `<data>/vault.sqlite`: tokens (only their hashes), recovery points and job records.
//!
//! ```text
//! tokens(hash BLOB PK, db, scope, created)       hash = BLAKE3(token); id = hex prefix of it
//! records(type, id, database, kind, state, time, doc)   PK (type, id); doc = the record as JSON
//!     type "recovery point": time = created, state NULL
//!     type "job":            time = requested
//! ```
//!
//! WAL mode: the token lookup every request makes never waits for a writer (the CLI creating a
//! token while the vault serves).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Scope, VaultError};
use crate::wire::{Job, JobFilter, RecoveryPoint, RecoveryPointFilter};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (hash BLOB PRIMARY KEY, db TEXT NOT NULL, scope TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (type TEXT NOT NULL, id TEXT NOT NULL, database TEXT NOT NULL, kind TEXT NOT NULL, state TEXT, time INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (type, id));
CREATE INDEX IF NOT EXISTS records_by_database ON records(type, database, time);
";

/// Hex digits of a token's hash shown as its id: enough to name it, useless to guess it.
const ID_LEN: usize = 16;

/// One connection to `vault.sqlite`, shared by the threads that use it.
struct Db {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Db {
    fn open(data: &Path) -> Result<Db, VaultError> {
        let path = data.join("vault.sqlite");
        let conn = Connection::open(&path)
            .and_then(|c| {
                c.busy_timeout(Duration::from_secs(10))?;
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.execute_batch(SCHEMA)?;
                Ok(c)
            })
            .map_err(|source| VaultError::Database {
                path: path.clone(),
                source,
            })?;
        Ok(Db {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent (each statement is atomic).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, source: rusqlite::Error) -> VaultError {
        VaultError::Database {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: &str, e: serde_json::Error) -> VaultError {
        VaultError::Corrupt {
            path: self.path.clone(),
            message: format!("{what}: {e}"),
        }
    }

    fn docs<T: DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<T>, VaultError> {
        let c = self.conn();
        let mut st = c.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(args, |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|d| serde_json::from_str(d).map_err(|e| self.corrupt(what, e)))
            .collect()
    }
}

/// What tokens and records may name as their database.
pub(crate) fn is_database_name(db: &str) -> bool {
    (1..=128).contains(&db.len()) && !db.chars().any(char::is_control)
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialise")
}

/// A token as `orca vault token list` shows it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Leading hex digits of the token's hash.
    pub id: String,
    pub db: String,
    pub scope: Scope,
    /// Unix seconds.
    pub created: i64,
}

/// The caller, from its token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub db: String,
    pub scope: Scope,
}

/// Tokens, stored as BLAKE3 hashes.
pub struct Tokens(Db);

impl Tokens {
    pub fn open(data: &Path) -> Result<Tokens, VaultError> {
        Db::open(data).map(Tokens)
    }

    /// Creates a token; the secret is returned once and only its hash is kept.
    pub fn create(&self, db: &str, scope: Scope) -> Result<String, VaultError> {
        if !is_database_name(db) {
            return Err(VaultError::InvalidArgument(format!(
                "{db:?} is not a database name"
            )));
        }
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(VaultError::Random)?;
        let token = format!("orca_{}", hex::encode(raw));
        self.0
            .conn()
            .execute(
                "INSERT INTO tokens(hash, db, scope, created) VALUES (?1, ?2, ?3, ?4)",
                params![
                    blake3::hash(token.as_bytes()).as_bytes().as_slice(),
                    db,
                    scope.as_str(),
                    orca_repo::now_unix()
                ],
            )
            .map_err(|e| self.0.err(e))?;
        Ok(token)
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, VaultError> {
        self.matching("")
    }

    /// Revokes the one token whose id starts with `id`.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo, VaultError> {
        if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(VaultError::InvalidArgument(format!(
                "{id:?} is not a token id: give at least 4 of the hex digits `orca vault token list` shows"
            )));
        }
        let found = self.matching(id)?;
        let [t] = found.as_slice() else {
            return Err(match found.len() {
                0 => VaultError::TokenNotFound(id.to_string()),
                count => VaultError::AmbiguousToken {
                    prefix: id.to_string(),
                    count,
                },
            });
        };
        self.0
            .conn()
            .execute(
                "DELETE FROM tokens WHERE substr(lower(hex(hash)), 1, length(?1)) = ?1",
                [id.to_ascii_lowercase()],
            )
            .map_err(|e| self.0.err(e))?;
        Ok(t.clone())
    }

    fn matching(&self, prefix: &str) -> Result<Vec<TokenInfo>, VaultError> {
        let c = self.0.conn();
        let mut st = c
            .prepare_cached(
                "SELECT lower(hex(hash)), db, scope, created FROM tokens
                 WHERE substr(lower(hex(hash)), 1, length(?1)) = ?1 ORDER BY created, rowid",
            )
            .map_err(|e| self.0.err(e))?;
        let rows = st
            .query_map([prefix.to_ascii_lowercase()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.0.err(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(hash, db, scope, created)| {
                Some(TokenInfo {
                    id: hash[..ID_LEN].to_string(),
                    db,
                    scope: scope.parse().ok()?,
                    created,
                })
            })
            .collect())
    }

    pub(crate) fn lookup(&self, token: &str) -> Result<Option<Caller>, VaultError> {
        let row: Option<(String, String)> = self
            .0
            .conn()
            .prepare_cached("SELECT db, scope FROM tokens WHERE hash = ?1")
            .and_then(|mut st| {
                st.query_row(
                    [blake3::hash(token.as_bytes()).as_bytes().as_slice()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .map_err(|e| self.0.err(e))?;
        Ok(row.and_then(|(db, s)| s.parse().ok().map(|scope| Caller { db, scope })))
    }
}

/// A JSON document kept in `records`, with the columns it is selected by.
pub(crate) trait Record: Serialize + DeserializeOwned + Send + 'static {
    /// The `type` column, and what messages call one.
    const TYPE: &'static str;
    fn id(&self) -> &str;
    fn database(&self) -> &str;
    fn kind(&self) -> &str;
    fn state(&self) -> Option<&str>;
    fn time(&self) -> i64;
}

impl Record for RecoveryPoint {
    const TYPE: &'static str = "recovery point";
    fn id(&self) -> &str {
        &self.id
    }
    fn database(&self) -> &str {
        &self.database
    }
    fn kind(&self) -> &str {
        self.kind.as_str()
    }
    fn state(&self) -> Option<&str> {
        None
    }
    fn time(&self) -> i64 {
        self.created
    }
}

impl Record for Job {
    const TYPE: &'static str = "job";
    fn id(&self) -> &str {
        &self.id
    }
    fn database(&self) -> &str {
        &self.database
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn state(&self) -> Option<&str> {
        Some(self.state.as_str())
    }
    fn time(&self) -> i64 {
        self.requested
    }
}

/// Which records to list; `None` matches all.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    pub database: Option<String>,
    pub kind: Option<String>,
    pub state: Option<String>,
    /// `time` at or after.
    pub since: Option<i64>,
    /// `time` before.
    pub until: Option<i64>,
}

impl From<RecoveryPointFilter> for Selection {
    fn from(f: RecoveryPointFilter) -> Self {
        Selection {
            database: f.database,
            kind: f.kind.map(|k| k.as_str().to_string()),
            state: None,
            since: f.since,
            until: f.until,
        }
    }
}

impl From<JobFilter> for Selection {
    fn from(f: JobFilter) -> Self {
        Selection {
            database: f.database,
            kind: f.kind,
            state: f.state.map(|s| s.as_str().to_string()),
            since: f.since,
            until: None,
        }
    }
}

/// Recovery points and job records.
pub(crate) struct Records(Db);

impl Records {
    pub fn open(data: &Path) -> Result<Records, VaultError> {
        Db::open(data).map(Records)
    }

    /// `false` when the id is taken.
    pub fn insert<R: Record>(&self, r: &R) -> Result<bool, VaultError> {
        self.0
            .conn()
            .execute(
                "INSERT OR IGNORE INTO records(type, id, database, kind, state, time, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![R::TYPE, r.id(), r.database(), r.kind(), r.state(), r.time(), to_json(r)],
            )
            .map(|n| n == 1)
            .map_err(|e| self.0.err(e))
    }

    pub fn get<R: Record>(&self, id: &str) -> Result<Option<R>, VaultError> {
        self.0
            .docs(
                R::TYPE,
                "SELECT doc FROM records WHERE type = ?1 AND id = ?2",
                [R::TYPE, id],
            )
            .map(|mut v| v.pop())
    }

    /// Oldest first, then in the order recorded.
    pub fn list<R: Record>(&self, s: &Selection) -> Result<Vec<R>, VaultError> {
        self.0.docs(
            R::TYPE,
            "SELECT doc FROM records
             WHERE type = ?1 AND (?2 IS NULL OR database = ?2) AND (?3 IS NULL OR kind = ?3)
               AND (?4 IS NULL OR state = ?4) AND (?5 IS NULL OR time >= ?5)
               AND (?6 IS NULL OR time < ?6)
             ORDER BY time, rowid",
            params![R::TYPE, s.database, s.kind, s.state, s.since, s.until],
        )
    }

    pub fn delete<R: Record>(&self, id: &str) -> Result<bool, VaultError> {
        self.0
            .conn()
            .execute(
                "DELETE FROM records WHERE type = ?1 AND id = ?2",
                [R::TYPE, id],
            )
            .map(|n| n == 1)
            .map_err(|e| self.0.err(e))
    }

    /// Replaces `old` by `new` (same id); `false` when the stored record is no longer `old`
    /// (changed by a concurrent update).
    pub fn replace<R: Record>(&self, old: &R, new: &R) -> Result<bool, VaultError> {
        self.0
            .conn()
            .execute(
                "UPDATE records SET kind = ?3, state = ?4, time = ?5, doc = ?6
                 WHERE type = ?1 AND id = ?2 AND doc = ?7",
                params![
                    R::TYPE,
                    new.id(),
                    new.kind(),
                    new.state(),
                    new.time(),
                    to_json(new),
                    to_json(old)
                ],
            )
            .map(|n| n == 1)
            .map_err(|e| self.0.err(e))
    }
}
