//! The catalog of a vault over a local index: `<data>/vault.sqlite`.
//!
//! WAL mode: the token lookup every request makes never waits for a writer (the CLI creating a
//! token while the vault serves).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Catalog, GroupRow, RecordRow, Selection, TokenRow};
use crate::server::VaultError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (hash BLOB PRIMARY KEY, db TEXT NOT NULL, scope TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (type TEXT NOT NULL, id TEXT NOT NULL, database TEXT NOT NULL, kind TEXT NOT NULL, state TEXT, time INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (type, id));
CREATE INDEX IF NOT EXISTS records_by_database ON records(type, database, time);
";

/// Tables added after [`SCHEMA`] was released: created when missing beside it, so a
/// catalog from before them gains them and keeps everything else.
const GROUPS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dedup_groups (name TEXT PRIMARY KEY, secret BLOB, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (db TEXT PRIMARY KEY, grp TEXT NOT NULL REFERENCES dedup_groups(name));
";

/// One connection to `vault.sqlite`, shared by the threads that use it.
pub(crate) struct SqliteCatalog {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteCatalog {
    pub fn open(data: &Path) -> Result<SqliteCatalog, VaultError> {
        let path = data.join("vault.sqlite");
        let conn = Connection::open(&path)
            .and_then(|c| {
                c.busy_timeout(Duration::from_secs(10))?;
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.execute_batch(SCHEMA)?;
                c.execute_batch(GROUPS_SCHEMA)?;
                Ok(c)
            })
            .map_err(|source| VaultError::Database {
                path: path.clone(),
                source,
            })?;
        Ok(SqliteCatalog {
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

    fn execute(&self, sql: &str, args: impl rusqlite::Params) -> Result<usize, VaultError> {
        self.conn()
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(args))
            .map_err(|e| self.err(e))
    }

    fn docs(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<String>, VaultError> {
        let c = self.conn();
        let mut st = c.prepare_cached(sql).map_err(|e| self.err(e))?;
        st.query_map(args, |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))
    }
}

impl Catalog for SqliteCatalog {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn insert_token(
        &self,
        hash: &[u8],
        db: &str,
        scope: &str,
        created: i64,
    ) -> Result<bool, VaultError> {
        let inserted = self.execute(
            "INSERT INTO tokens(hash, db, scope, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (hash) DO UPDATE SET created = excluded.created
             WHERE db = excluded.db AND scope = excluded.scope AND created = excluded.created",
            params![hash, db, scope, created],
        )?;
        Ok(inserted == 1)
    }

    fn tokens(&self, prefix: &str) -> Result<Vec<TokenRow>, VaultError> {
        let c = self.conn();
        let mut st = c
            .prepare_cached(
                "SELECT lower(hex(hash)), db, scope, created FROM tokens
                 WHERE substr(lower(hex(hash)), 1, length(?1)) = ?1 ORDER BY created, rowid",
            )
            .map_err(|e| self.err(e))?;
        st.query_map([prefix], |r| {
            Ok(TokenRow {
                hash: r.get(0)?,
                db: r.get(1)?,
                scope: r.get(2)?,
                created: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| self.err(e))
    }

    fn delete_tokens(&self, prefix: &str) -> Result<(), VaultError> {
        self.execute(
            "DELETE FROM tokens WHERE substr(lower(hex(hash)), 1, length(?1)) = ?1",
            [prefix],
        )
        .map(|_| ())
    }

    fn token(&self, hash: &[u8]) -> Result<Option<(String, String)>, VaultError> {
        self.conn()
            .prepare_cached("SELECT db, scope FROM tokens WHERE hash = ?1")
            .and_then(|mut st| {
                st.query_row([hash], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))
    }

    fn insert_record(&self, r: &RecordRow<'_>) -> Result<bool, VaultError> {
        self.execute(
            "INSERT OR IGNORE INTO records(type, id, database, kind, state, time, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![r.kind_of, r.id, r.database, r.kind, r.state, r.time, r.doc],
        )
        .map(|n| n == 1)
    }

    fn record(&self, kind_of: &str, id: &str) -> Result<Option<String>, VaultError> {
        self.docs(
            "SELECT doc FROM records WHERE type = ?1 AND id = ?2",
            [kind_of, id],
        )
        .map(|mut v| v.pop())
    }

    fn records(&self, kind_of: &str, s: &Selection) -> Result<Vec<String>, VaultError> {
        self.docs(
            "SELECT doc FROM records
             WHERE type = ?1 AND (?2 IS NULL OR database = ?2) AND (?3 IS NULL OR kind = ?3)
               AND (?4 IS NULL OR state = ?4) AND (?5 IS NULL OR time >= ?5)
               AND (?6 IS NULL OR time < ?6)
             ORDER BY time, rowid",
            params![kind_of, s.database, s.kind, s.state, s.since, s.until],
        )
    }

    fn delete_record(&self, kind_of: &str, id: &str) -> Result<bool, VaultError> {
        self.execute(
            "DELETE FROM records WHERE type = ?1 AND id = ?2",
            [kind_of, id],
        )
        .map(|n| n == 1)
    }

    fn replace_record(&self, new: &RecordRow<'_>, old_doc: &str) -> Result<bool, VaultError> {
        self.execute(
            "UPDATE records SET kind = ?3, state = ?4, time = ?5, doc = ?6
             WHERE type = ?1 AND id = ?2 AND doc = ?7",
            params![
                new.kind_of,
                new.id,
                new.kind,
                new.state,
                new.time,
                new.doc,
                old_doc
            ],
        )
        .map(|n| n == 1)
    }

    fn insert_group(
        &self,
        name: &str,
        secret: Option<&[u8]>,
        created: i64,
    ) -> Result<bool, VaultError> {
        self.execute(
            "INSERT OR IGNORE INTO dedup_groups(name, secret, created) VALUES (?1, ?2, ?3)",
            params![name, secret, created],
        )
        .map(|n| n == 1)
    }

    fn groups(&self) -> Result<Vec<GroupRow>, VaultError> {
        let c = self.conn();
        let mut st = c
            .prepare_cached(
                "SELECT name, secret, created FROM dedup_groups ORDER BY created, rowid",
            )
            .map_err(|e| self.err(e))?;
        st.query_map([], group_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))
    }

    fn members(&self) -> Result<Vec<(String, String)>, VaultError> {
        let c = self.conn();
        let mut st = c
            .prepare_cached("SELECT db, grp FROM group_members ORDER BY db")
            .map_err(|e| self.err(e))?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))
    }

    fn group_of(&self, db: &str) -> Result<Option<GroupRow>, VaultError> {
        self.conn()
            .prepare_cached(
                "SELECT g.name, g.secret, g.created FROM group_members m
                 JOIN dedup_groups g ON g.name = m.grp WHERE m.db = ?1",
            )
            .and_then(|mut st| st.query_row([db], group_row).optional())
            .map_err(|e| self.err(e))
    }

    fn join_if_new(&self, db: &str, group: &str) -> Result<(), VaultError> {
        self.execute(
            "INSERT OR IGNORE INTO group_members(db, grp) VALUES (?1, ?2)",
            [db, group],
        )
        .map(|_| ())
    }

    fn set_group(&self, group: &str, dbs: &[String]) -> Result<(), VaultError> {
        let mut c = self.conn();
        let tx = c.transaction().map_err(|e| self.err(e))?;
        for db in dbs {
            tx.execute(
                "INSERT INTO group_members(db, grp) VALUES (?1, ?2)
                 ON CONFLICT (db) DO UPDATE SET grp = excluded.grp",
                [db, group],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

fn group_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        name: r.get(0)?,
        secret: r.get(1)?,
        created: r.get(2)?,
    })
}

#[cfg(test)]
mod compat {
    /// BLAKE3 of [`super::SCHEMA`] as released. `vault.sqlite` records no version and its
    /// tables are only created when missing, so an existing catalog would keep the old layout:
    /// a change needs a version (and a migration) first (docs/design.md, "Versions and
    /// compatibility").
    const RELEASED: &str = "7934224c0116a176ebc73f8b15e8bb4d471d4e5d1e88ff5011bfff44c2578d7a";

    /// The same for [`super::GROUPS_SCHEMA`], released with dedup groups.
    const GROUPS_RELEASED: &str =
        "7ced22e09f1901b9060bd079d21cc247298e9a90f336001a514c5e5933329f58";

    #[test]
    fn the_unversioned_catalog_schema_never_changes() {
        assert_eq!(
            blake3::hash(super::GROUPS_SCHEMA.as_bytes())
                .to_hex()
                .as_str(),
            GROUPS_RELEASED,
            "format vault catalog (vault.sqlite) groups tables changed without a version bump"
        );
        assert_eq!(
            blake3::hash(super::SCHEMA.as_bytes()).to_hex().as_str(),
            RELEASED,
            "format vault catalog (vault.sqlite) changed without a version bump: it has no \
             version yet; add one (a meta table and migrations) before changing its tables"
        );
    }
}
