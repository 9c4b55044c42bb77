//! The catalog of vault servers that share a PostgreSQL index: tables `vault_tokens` and
//! `vault_records` in the same database, migrated by `orca_vault_schema`.
//!
//! The calls take no writers' lock: each is one statement, atomic on its own, and must not
//! wait behind a backup's commit. A lost connection is retried as the index retries it, so an
//! insert may run again after its first try committed but the answer was lost: each insert
//! recognises its own earlier row (a token by its whole content, a record by a nonce drawn
//! once per call) and reports it inserted rather than taken.

use orca_repo::RepoError;
use orca_repo::{PgConfig, PgPool};
use postgres::types::ToSql;

use super::{Catalog, GroupRow, RecordRow, Selection, TokenRow};
use crate::server::VaultError;

const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE vault_tokens (
    hash BYTEA PRIMARY KEY,
    db TEXT NOT NULL,
    scope TEXT NOT NULL,
    created BIGINT NOT NULL,
    seq BIGSERIAL NOT NULL
);
CREATE TABLE vault_records (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    database TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT,
    time BIGINT NOT NULL,
    doc TEXT NOT NULL,
    seq BIGSERIAL NOT NULL,
    PRIMARY KEY (type, id)
);
CREATE INDEX vault_records_by_database ON vault_records(type, database, time);
",
    "
ALTER TABLE vault_records ADD COLUMN nonce BYTEA;
",
    "
CREATE TABLE vault_groups (
    name TEXT PRIMARY KEY,
    secret BYTEA,
    created BIGINT NOT NULL,
    seq BIGSERIAL NOT NULL
);
CREATE TABLE vault_group_members (
    db TEXT PRIMARY KEY,
    grp TEXT NOT NULL REFERENCES vault_groups(name)
);
",
];

pub(crate) struct PgCatalog(PgPool);

fn shared(e: RepoError) -> VaultError {
    VaultError::SharedCatalog(Box::new(e))
}

impl PgCatalog {
    pub fn open(cfg: &PgConfig) -> Result<PgCatalog, VaultError> {
        let pool = PgPool::new(cfg).map_err(shared)?;
        pool.migrate("orca_vault_schema", MIGRATIONS, |_| Ok(()))
            .map_err(shared)?;
        Ok(PgCatalog(pool))
    }

    fn execute(
        &self,
        what: &str,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, VaultError> {
        self.0
            .run(what, false, |tx| tx.execute(sql, args))
            .map_err(shared)
    }

    /// One insert, however often it is retried: `nonce` marks the row as this call's.
    pub(super) fn insert_record_once(
        &self,
        r: &RecordRow<'_>,
        nonce: &[u8],
    ) -> Result<bool, VaultError> {
        self.execute(
            "record",
            "INSERT INTO vault_records(type, id, database, kind, state, time, doc, nonce)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (type, id) DO UPDATE SET nonce = EXCLUDED.nonce
             WHERE vault_records.nonce = EXCLUDED.nonce",
            &[
                &r.kind_of,
                &r.id,
                &r.database,
                &r.kind,
                &r.state,
                &r.time,
                &r.doc,
                &nonce,
            ],
        )
        .map(|n| n == 1)
    }

    fn docs(
        &self,
        what: &str,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<String>, VaultError> {
        self.0
            .run(what, false, |tx| {
                Ok(tx.query(sql, args)?.iter().map(|r| r.get(0)).collect())
            })
            .map_err(shared)
    }
}

impl Catalog for PgCatalog {
    fn location(&self) -> String {
        self.0.url().to_string()
    }

    fn insert_token(
        &self,
        hash: &[u8],
        db: &str,
        scope: &str,
        created: i64,
    ) -> Result<bool, VaultError> {
        let inserted = self.execute(
            "create a token",
            "INSERT INTO vault_tokens(hash, db, scope, created) VALUES ($1, $2, $3, $4)
             ON CONFLICT (hash) DO UPDATE SET created = EXCLUDED.created
             WHERE vault_tokens.db = EXCLUDED.db AND vault_tokens.scope = EXCLUDED.scope
               AND vault_tokens.created = EXCLUDED.created",
            &[&hash, &db, &scope, &created],
        )?;
        Ok(inserted == 1)
    }

    fn tokens(&self, prefix: &str) -> Result<Vec<TokenRow>, VaultError> {
        self.0
            .run("list the tokens", false, |tx| {
                Ok(tx
                    .query(
                        "SELECT encode(hash, 'hex'), db, scope, created FROM vault_tokens
                         WHERE left(encode(hash, 'hex'), length($1)) = $1 ORDER BY created, seq",
                        &[&prefix],
                    )?
                    .iter()
                    .map(|r| TokenRow {
                        hash: r.get(0),
                        db: r.get(1),
                        scope: r.get(2),
                        created: r.get(3),
                    })
                    .collect())
            })
            .map_err(shared)
    }

    fn delete_tokens(&self, prefix: &str) -> Result<(), VaultError> {
        self.execute(
            "revoke a token",
            "DELETE FROM vault_tokens WHERE left(encode(hash, 'hex'), length($1)) = $1",
            &[&prefix],
        )
        .map(|_| ())
    }

    fn token(&self, hash: &[u8]) -> Result<Option<(String, String)>, VaultError> {
        self.0
            .run("look up a token", false, |tx| {
                Ok(tx
                    .query_opt(
                        "SELECT db, scope FROM vault_tokens WHERE hash = $1",
                        &[&hash],
                    )?
                    .map(|r| (r.get(0), r.get(1))))
            })
            .map_err(shared)
    }

    fn insert_record(&self, r: &RecordRow<'_>) -> Result<bool, VaultError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(VaultError::Random)?;
        self.insert_record_once(r, &nonce)
    }

    fn record(&self, kind_of: &str, id: &str) -> Result<Option<String>, VaultError> {
        self.docs(
            "read a record",
            "SELECT doc FROM vault_records WHERE type = $1 AND id = $2",
            &[&kind_of, &id],
        )
        .map(|mut v| v.pop())
    }

    fn records(&self, kind_of: &str, s: &Selection) -> Result<Vec<String>, VaultError> {
        self.docs(
            "list records",
            "SELECT doc FROM vault_records
             WHERE type = $1 AND ($2::TEXT IS NULL OR database = $2)
               AND ($3::TEXT IS NULL OR kind = $3) AND ($4::TEXT IS NULL OR state = $4)
               AND ($5::BIGINT IS NULL OR time >= $5) AND ($6::BIGINT IS NULL OR time < $6)
             ORDER BY time, seq",
            &[&kind_of, &s.database, &s.kind, &s.state, &s.since, &s.until],
        )
    }

    fn delete_record(&self, kind_of: &str, id: &str) -> Result<bool, VaultError> {
        self.execute(
            "delete a record",
            "DELETE FROM vault_records WHERE type = $1 AND id = $2",
            &[&kind_of, &id],
        )
        .map(|n| n == 1)
    }

    fn replace_record(&self, new: &RecordRow<'_>, old_doc: &str) -> Result<bool, VaultError> {
        self.execute(
            "update a record",
            "UPDATE vault_records SET kind = $3, state = $4, time = $5, doc = $6
             WHERE type = $1 AND id = $2 AND doc = $7",
            &[
                &new.kind_of,
                &new.id,
                &new.kind,
                &new.state,
                &new.time,
                &new.doc,
                &old_doc,
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
            "create a group",
            "INSERT INTO vault_groups(name, secret, created) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &secret, &created],
        )
        .map(|n| n == 1)
    }

    fn groups(&self) -> Result<Vec<GroupRow>, VaultError> {
        self.0
            .run("list the groups", false, |tx| {
                Ok(tx
                    .query(
                        "SELECT name, secret, created FROM vault_groups ORDER BY created, seq",
                        &[],
                    )?
                    .iter()
                    .map(group_row)
                    .collect())
            })
            .map_err(shared)
    }

    fn members(&self) -> Result<Vec<(String, String)>, VaultError> {
        self.0
            .run("list the group members", false, |tx| {
                Ok(tx
                    .query("SELECT db, grp FROM vault_group_members ORDER BY db", &[])?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect())
            })
            .map_err(shared)
    }

    fn group_of(&self, db: &str) -> Result<Option<GroupRow>, VaultError> {
        self.0
            .run("look up a group", false, |tx| {
                Ok(tx
                    .query_opt(
                        "SELECT g.name, g.secret, g.created FROM vault_group_members m
                         JOIN vault_groups g ON g.name = m.grp WHERE m.db = $1",
                        &[&db],
                    )?
                    .as_ref()
                    .map(group_row))
            })
            .map_err(shared)
    }

    fn join_if_new(&self, db: &str, group: &str) -> Result<(), VaultError> {
        self.execute(
            "place a database in a group",
            "INSERT INTO vault_group_members(db, grp) VALUES ($1, $2) ON CONFLICT (db) DO NOTHING",
            &[&db, &group],
        )
        .map(|_| ())
    }

    fn set_group(&self, group: &str, dbs: &[String]) -> Result<(), VaultError> {
        self.0
            .run("move databases to a group", false, |tx| {
                for db in dbs {
                    tx.execute(
                        "INSERT INTO vault_group_members(db, grp) VALUES ($1, $2)
                         ON CONFLICT (db) DO UPDATE SET grp = EXCLUDED.grp",
                        &[db, &group],
                    )?;
                }
                Ok(())
            })
            .map_err(shared)
    }
}

fn group_row(r: &postgres::Row) -> GroupRow {
    GroupRow {
        name: r.get(0),
        secret: r.get(1),
        created: r.get(2),
    }
}

#[cfg(test)]
mod compat {
    /// BLAKE3 of each released migration, in order. A released migration never changes (a
    /// database that ran it would differ from one that runs the new text); a change is a new
    /// migration, and its hash is added here once released (docs/design.md, "Versions and
    /// compatibility").
    const RELEASED: &[&str] = &[
        "adf049165ead4b665ad9a8fcee3772a042adb7bf23a978edde1b7bed1e8e624f",
        "a38165babee48ac47e4ab2258d815aee760ca9bce230628f88391d1775ce8432",
        "a0022fe1c56b94788e4a7d091c94c5626f17d1de1583bb4d060bb94bc80ca5c8",
    ];

    #[test]
    fn released_migrations_never_change() {
        let hashes: Vec<String> = super::MIGRATIONS
            .iter()
            .map(|sql| blake3::hash(sql.as_bytes()).to_hex().to_string())
            .collect();
        for (n, (now, then)) in hashes.iter().zip(RELEASED).enumerate() {
            assert_eq!(
                now,
                then,
                "vault catalog migration {} changed after its release: restore it and add the change as migration {}",
                n + 1,
                hashes.len() + 1
            );
        }
        assert_eq!(
            hashes.len(),
            RELEASED.len(),
            "a new vault catalog migration: add its hash to RELEASED ({hashes:?})"
        );
    }
}
