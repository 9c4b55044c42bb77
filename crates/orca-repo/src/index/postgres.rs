//! The shared index (PostgreSQL 13+): several vault servers over one bucket
//! see one catalog, one set of writer sessions and one collection fence.
//!
//! Every transaction that SQLite runs `BEGIN IMMEDIATE` takes the same
//! transaction-scoped advisory lock here, so writers are ordered exactly as
//! they are against a local index: a probe that touches chunks, a commit and
//! a collection's sweep never interleave. Reads take no lock. Lookups are
//! batched (`id = ANY($1)`) so a probe of a 32 MiB batch is one round trip.
//!
//! A dropped connection (the server restarted, a failover) is retried on a
//! new connection for up to [`RECONNECT_FOR`]; each call is one transaction,
//! so a retry repeats the whole call or nothing of it landed. After that the
//! call fails with an error naming the server.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Transaction};
use serde::{Deserialize, Serialize};
use tokio_postgres_rustls::MakeRustlsConnect;

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

/// How long a call keeps reconnecting before it fails.
pub const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// Idle connections kept for reuse (the vault serves calls from several
/// blocking threads at once; more are opened when all are busy).
const POOL_IDLE: usize = 8;

/// An integer the database's signed BIGINT columns hold for an unsigned or narrower Rust
/// type (sizes, offsets, ids), converted both ways with a check: a negative or oversized
/// value fails the call with [`OutOfRange`] as the cause instead of wrapping silently.
#[derive(Debug, Clone, Copy)]
struct Int<T>(T);

/// A value that does not fit the type on the other side of the database.
#[derive(Debug, thiserror::Error)]
#[error("the integer {value} does not fit {target}")]
pub(crate) struct OutOfRange {
    value: String,
    target: &'static str,
}

type SqlResult<T> = std::result::Result<T, Box<dyn std::error::Error + Sync + Send>>;

impl<'a, T: TryFrom<i64>> FromSql<'a> for Int<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> SqlResult<Self> {
        let v = i64::from_sql(ty, raw)?;
        T::try_from(v).map(Int).map_err(|_| {
            OutOfRange {
                value: v.to_string(),
                target: std::any::type_name::<T>(),
            }
            .into()
        })
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

impl<T: Copy + TryInto<i64> + std::fmt::Display + std::fmt::Debug> ToSql for Int<T> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> SqlResult<IsNull> {
        let v: i64 = self.0.try_into().map_err(|_| OutOfRange {
            value: self.0.to_string(),
            target: "a BIGINT column",
        })?;
        v.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// Column `i` of `r`, a BIGINT, as `T`.
fn int<T: TryFrom<i64>>(r: &postgres::Row, i: usize) -> std::result::Result<T, postgres::Error> {
    r.try_get::<_, Int<T>>(i).map(|Int(v)| v)
}

/// The advisory lock key that orders writers (`orca` in ASCII).
const WRITE_LOCK: i64 = 0x6f72_6361;

/// The schema, one migration per version; `orca_schema` records the applied
/// ones so a newer server upgrades an older database in place. Public so the
/// compatibility test can hold each released migration to its committed hash:
/// a migration never changes once released, a change is a new one.
pub const MIGRATIONS: &[&str] = &["
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE packs (
    pk BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    chunks BIGINT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE chunks (
    id BYTEA PRIMARY KEY,
    pack BIGINT NOT NULL REFERENCES packs(pk),
    base BYTEA,
    pos BIGINT NOT NULL,
    payload_len BIGINT NOT NULL,
    raw_len BIGINT NOT NULL,
    last_ref BIGINT NOT NULL
);
CREATE INDEX chunks_pack ON chunks(pack);
CREATE INDEX chunks_base ON chunks(base) WHERE base IS NOT NULL;
CREATE INDEX chunks_last_ref ON chunks(last_ref) WHERE base IS NOT NULL;
CREATE TABLE pieces (
    name TEXT PRIMARY KEY,
    database TEXT,
    dbid BIGINT,
    file_type TEXT NOT NULL,
    created BIGINT NOT NULL,
    size BIGINT NOT NULL,
    chunks BIGINT NOT NULL,
    stored BIGINT NOT NULL,
    meta TEXT NOT NULL
);
CREATE INDEX pieces_db ON pieces(database, created);
CREATE INDEX pieces_created ON pieces(created);
CREATE TABLE commits_in_flight (name TEXT PRIMARY KEY, started BIGINT NOT NULL);
CREATE TABLE sessions (
    id BIGSERIAL PRIMARY KEY,
    holder TEXT NOT NULL,
    floor BIGINT NOT NULL,
    started BIGINT NOT NULL,
    renewed BIGINT NOT NULL
);
CREATE TABLE pack_checks (name TEXT PRIMARY KEY, checked BIGINT NOT NULL, ok BOOLEAN NOT NULL);
"];

/// How to reach the database: in `objects.json` as
/// `"index": {"url": "postgresql://orca@db.example:5432/orca"}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgConfig {
    /// `postgresql://USER@HOST:PORT/DATABASE` (key=value strings work too).
    /// Keep the password out of it: it comes from `password_file` or
    /// `PGPASSWORD`.
    pub url: String,
    /// A file (mode 0600) whose first line is the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<std::path::PathBuf>,
    /// The PEM file of the CA that signed the server's certificate. Given,
    /// or with `sslmode=require` in the URL, the connection is TLS and the
    /// certificate is checked against the host name (the system's CA bundle
    /// when no file is given); otherwise it is plain TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted())
            .finish()
    }
}

impl PgConfig {
    /// The connection string fit for logs and errors: a password written
    /// into it anyway (`postgresql://user:secret@host/db`) shows as `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return self.url.clone();
        };
        match rest.split_once('@') {
            Some((user, host)) if user.contains(':') => {
                let name = user.split(':').next().unwrap_or("");
                format!("{scheme}://{name}:***@{host}")
            }
            _ => self.url.clone(),
        }
    }

    fn client_config(&self) -> Result<postgres::Config> {
        let mut cfg: postgres::Config = self.url.parse().map_err(|e| {
            RepoError::InvalidArgument(format!(
                "the index location {:?} is not a PostgreSQL connection string ({e}): give postgresql://USER@HOST:PORT/DATABASE",
                self.redacted()
            ))
        })?;
        if cfg.get_password().is_none() {
            if let Some(path) = &self.password_file {
                let raw = crate::read_secret_file(path, "the PostgreSQL password file")?;
                let text = String::from_utf8_lossy(&raw);
                cfg.password(text.lines().next().unwrap_or("").trim_end());
            } else if let Ok(pw) = std::env::var("PGPASSWORD") {
                cfg.password(pw);
            }
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(10));
        }
        cfg.application_name("orca");
        Ok(cfg)
    }

    /// The TLS connector, when the connection is to be encrypted: always
    /// verified, because a shared index that an impostor could answer for
    /// would accept its lies about which chunks are stored.
    fn tls(&self, cfg: &mut postgres::Config) -> Result<Option<MakeRustlsConnect>> {
        use postgres::config::SslMode;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let wanted = self.ca_file.is_some() || cfg.get_ssl_mode() == SslMode::Require;
        if !wanted {
            cfg.ssl_mode(SslMode::Disable);
            return Ok(None);
        }
        cfg.ssl_mode(SslMode::Require);
        let bad = |what: String, why: String| {
            RepoError::InvalidArgument(format!(
                "{what} {why}: give the PEM file of the CA that signed the PostgreSQL server's certificate (--index-ca-file)"
            ))
        };
        let roots = match &self.ca_file {
            Some(file) => {
                let what = format!("the PostgreSQL CA file {}", file.display());
                let certs = CertificateDer::pem_file_iter(file)
                    .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| bad(what.clone(), format!("cannot be read ({e})")))?;
                let mut roots = rustls::RootCertStore::empty();
                if roots.add_parsable_certificates(certs).0 == 0 {
                    return Err(bad(what, "holds no usable certificate".into()));
                }
                roots
            }
            None => {
                crate::system_ca_roots().map_err(|why| bad("TLS to PostgreSQL:".into(), why))?
            }
        };
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                bad(
                    "TLS to PostgreSQL".into(),
                    format!("cannot be set up ({e})"),
                )
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }
}

/// Connections to one PostgreSQL database, reused across calls, with the
/// reconnect-and-repeat rule every ORCA table there is written under. The
/// vault keeps its tokens and records through one of these too.
pub struct PgPool {
    cfg: postgres::Config,
    tls: Option<MakeRustlsConnect>,
    url: String,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool").field("url", &self.url).finish()
    }
}

impl Drop for PgPool {
    /// Closing a blocking client blocks on its runtime, which panics on an
    /// async worker (where a `Store` is usually dropped): close on a thread.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|p| p.into_inner()));
        if !idle.is_empty() {
            std::thread::spawn(move || drop(idle));
        }
    }
}

impl PgPool {
    /// No connection is made until the first call.
    pub fn new(cfg: &PgConfig) -> Result<PgPool> {
        let mut client = cfg.client_config()?;
        let tls = cfg.tls(&mut client)?;
        Ok(PgPool {
            cfg: client,
            tls,
            url: cfg.redacted(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The connection string with any password masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Applies the `migrations` (version n is `migrations[n - 1]`) that
    /// `table` does not record yet, under the writers' lock so two servers
    /// starting at once do not race, then runs `after` in the same
    /// transaction. A database a newer build migrated is refused and left
    /// untouched: this build would misread it.
    pub fn migrate<T>(
        &self,
        table: &str,
        migrations: &[&str],
        mut after: impl FnMut(&mut Transaction<'_>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let (applied, out) = self.write("create the schema", |tx| {
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY)"
            ))?;
            let applied = tx
                .query_one(&format!("SELECT max(version) FROM {table}"), &[])?
                .get::<_, Option<i32>>(0)
                .unwrap_or(0);
            // No build writes a negative version: refuse it as one this build does not know.
            let applied = usize::try_from(applied).unwrap_or(usize::MAX);
            if applied > migrations.len() {
                return Ok((applied, None));
            }
            for (n, sql) in migrations.iter().enumerate().skip(applied) {
                tx.batch_execute(sql)?;
                tx.execute(
                    &format!("INSERT INTO {table}(version) VALUES ($1)"),
                    // A handful of migrations: far below i32::MAX, the column's type.
                    &[&i32::try_from(n + 1).unwrap_or(i32::MAX)],
                )?;
            }
            Ok((applied, Some(after(tx)?)))
        })?;
        out.ok_or_else(|| {
            RepoError::InvalidArgument(format!(
                "the database at {} has schema version {applied} in {table}, newer than this build knows ({}): upgrade orca",
                self.url,
                migrations.len()
            ))
        })
    }

    fn connect(&self) -> std::result::Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.cfg.connect(tls.clone()),
            None => self.cfg.connect(NoTls),
        }
    }

    /// Run `f` in one transaction on a pooled connection; `write` takes the
    /// writers' lock first. A lost connection is replaced and the call
    /// repeated until `RECONNECT_FOR` (30 s) has passed.
    pub fn run<T>(
        &self,
        what: &str,
        write: bool,
        mut f: impl FnMut(&mut Transaction<'_>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let attempt = match pooled.filter(|c| !c.is_closed()) {
                Some(c) => Ok(c),
                None => self.connect(),
            }
            .and_then(|mut client| {
                let out = (|| {
                    let mut tx = client.transaction()?;
                    if write {
                        lock_writers(&mut tx)?;
                    }
                    let v = f(&mut tx)?;
                    tx.commit()?;
                    Ok(v)
                })();
                if !client.is_closed() {
                    let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                    if idle.len() < POOL_IDLE {
                        idle.push(client);
                    }
                }
                out
            });
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) if lost_connection(&e) && started.elapsed() < RECONNECT_FOR => {
                    tracing::warn!(url = %self.url, error = %e, "PostgreSQL connection lost: retrying on a new one");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(db_err(&self.url, what, e)),
            }
        }
    }

    fn write<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut Transaction<'_>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        self.run(what, true, f)
    }
}

#[derive(Debug)]
pub struct PgIndex {
    pool: PgPool,
}

fn db_err(url: &str, what: &str, e: postgres::Error) -> RepoError {
    let detail = match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            text
        }
    };
    let detail = if bad_settings(&e) && detail.contains("password missing") {
        format!(
            "{detail}: the server asks for a password; put it in a file (mode 0600) named by \
             --index-password-file (password_file in objects.json), or set PGPASSWORD"
        )
    } else {
        detail
    };
    RepoError::IndexServer {
        context: format!("{what} (PostgreSQL at {url})"),
        detail,
        source: e,
    }
}

fn lock_writers(tx: &mut Transaction<'_>) -> std::result::Result<(), postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .map(|_| ())
}

fn id_bytes(ids: &[ChunkId]) -> Vec<&[u8]> {
    ids.iter().map(|i| i.as_bytes().as_slice()).collect()
}

fn chunk_id(b: Option<Vec<u8>>) -> Option<ChunkId> {
    b.and_then(|b| ChunkId::from_slice(&b))
}

impl PgIndex {
    /// Connect, apply the migrations this build knows, and check the
    /// database belongs to `repo_id`.
    pub fn open(cfg: &PgConfig, repo_id: &str) -> Result<(PgIndex, bool)> {
        let index = PgIndex {
            pool: PgPool::new(cfg)?,
        };
        let stored = index.pool.migrate("orca_schema", MIGRATIONS, |tx| {
            let stored: Option<String> = tx
                .query_opt("SELECT v FROM meta WHERE k = 'repo_id'", &[])?
                .map(|r| r.get(0));
            if stored.is_none() {
                tx.execute(
                    "INSERT INTO meta(k, v) VALUES ('repo_id', $1), ('schema', $2)",
                    &[&repo_id, &SCHEMA_VERSION.to_string()],
                )?;
            }
            Ok(stored)
        })?;
        match stored {
            Some(id) if id != repo_id => Err(RepoError::InvalidArgument(format!(
                "the index at {} belongs to repository {id}, not {repo_id}: give each repository its own database (or schema)",
                index.pool.url
            ))),
            Some(_) => Ok((index, false)),
            None => Ok((index, true)),
        }
    }

    fn read<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut Transaction<'_>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        self.pool.run(what, false, f)
    }

    fn write<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut Transaction<'_>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        self.pool.run(what, true, f)
    }

    fn meta_get(
        tx: &mut Transaction<'_>,
        k: &str,
    ) -> std::result::Result<Option<String>, postgres::Error> {
        Ok(tx
            .query_opt("SELECT v FROM meta WHERE k = $1", &[&k])?
            .map(|r| r.get(0)))
    }

    fn meta_set(
        tx: &mut Transaction<'_>,
        k: &str,
        v: &str,
    ) -> std::result::Result<(), postgres::Error> {
        tx.execute(
            "INSERT INTO meta(k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
            &[&k, &v],
        )
        .map(|_| ())
    }

    fn fence_of(tx: &mut Transaction<'_>) -> std::result::Result<i64, postgres::Error> {
        Ok(Self::meta_get(tx, "gc_fence")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    fn add_pack_row(
        tx: &mut Transaction<'_>,
        name: &str,
        size: u64,
        chunks: usize,
        now: i64,
    ) -> std::result::Result<i64, postgres::Error> {
        tx.execute(
            "INSERT INTO packs(name, size, chunks, created) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            &[&name, &Int(size), &Int(chunks), &now],
        )?;
        Ok(tx
            .query_one("SELECT pk FROM packs WHERE name = $1", &[&name])?
            .get(0))
    }
}

/// A connection the server closed or a network error: worth a new connection.
fn lost_connection(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        // admin_shutdown, crash_shutdown, cannot_connect_now (starting up).
        return matches!(db.code().code(), "57P01" | "57P02" | "57P03");
    }
    // No SQL state: the failure was below SQL (refused, reset, timed out),
    // unless TLS refused the server (another attempt would meet the same
    // certificate) or the client's own settings did (no password to give).
    e.code().is_none() && !tls_refused(e) && !bad_settings(e)
}

/// tokio-postgres reports a setting it lacks (the password the server asked for) as an
/// "invalid configuration" error; no retry fixes that.
fn bad_settings(e: &postgres::Error) -> bool {
    e.code().is_none() && e.to_string().starts_with("invalid configuration")
}

fn tls_refused(e: &postgres::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let inner = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        if c.is::<rustls::Error>() || inner.is_some_and(|i| i.is::<rustls::Error>()) {
            return true;
        }
        cause = c.source();
    }
    false
}

const PIECE_COLUMNS: &str = "name, database, dbid, file_type, created, size, chunks, stored, meta";

fn row_to_info(r: &postgres::Row) -> std::result::Result<PieceInfo, postgres::Error> {
    let meta: PieceMeta = serde_json::from_str(r.get::<_, &str>(8)).unwrap_or_default();
    Ok(PieceInfo {
        name: r.get(0),
        database: r.get(1),
        dbid: r.try_get::<_, Option<Int<u64>>>(2)?.map(|Int(d)| d),
        file_type: r.get::<_, &str>(3).parse().unwrap_or_default(),
        created: r.get(4),
        size: int(r, 5)?,
        chunks: int(r, 6)?,
        stored: int(r, 7)?,
        meta,
    })
}

impl ChunkIndex for PgIndex {
    fn missing(&self, ids: &[ChunkId], touch: Option<i64>) -> Result<Vec<ChunkId>> {
        let keys = id_bytes(ids);
        let body = |tx: &mut Transaction<'_>| {
            let rows = tx.query(
                "SELECT id, last_ref, base FROM chunks WHERE id = ANY($1)",
                &[&keys],
            )?;
            let mut known: HashMap<Vec<u8>, (i64, Option<Vec<u8>>)> = HashMap::new();
            for r in rows {
                known.insert(r.get(0), (r.get(1), r.get(2)));
            }
            if let Some(now) = touch {
                let stale: Vec<&[u8]> = known
                    .iter()
                    .filter(|(_, (last, _))| *last < now)
                    .map(|(id, _)| id.as_slice())
                    .collect();
                // A delta is only as good as its base: the base is kept too.
                let bases: Vec<&[u8]> = known
                    .values()
                    .filter(|(last, _)| *last < now)
                    .filter_map(|(_, b)| b.as_deref())
                    .collect();
                if !stale.is_empty() {
                    tx.execute(
                        "UPDATE chunks SET last_ref = $2 WHERE id = ANY($1) AND last_ref < $2",
                        &[&stale, &now],
                    )?;
                }
                if !bases.is_empty() {
                    tx.execute(
                        "UPDATE chunks SET last_ref = $2 WHERE id = ANY($1) AND last_ref < $2",
                        &[&bases, &now],
                    )?;
                }
            }
            Ok(ids
                .iter()
                .filter(|id| !known.contains_key(id.as_bytes().as_slice()))
                .copied()
                .collect())
        };
        match touch {
            Some(_) => self.write("probe", body),
            None => self.read("probe", body),
        }
    }

    fn kinds(&self, ids: &[ChunkId]) -> Result<Vec<Option<ChunkKind>>> {
        let keys = id_bytes(ids);
        self.read("look up chunks", |tx| {
            let mut known: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
            for r in tx.query("SELECT id, base FROM chunks WHERE id = ANY($1)", &[&keys])? {
                known.insert(r.get(0), r.get(1));
            }
            Ok(ids
                .iter()
                .map(|id| {
                    known
                        .get(id.as_bytes().as_slice())
                        .map(|b| ChunkKind::with_base(chunk_id(b.clone())))
                })
                .collect())
        })
    }

    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        let keys = id_bytes(ids);
        self.read("locate chunks", |tx| {
            let mut known: HashMap<Vec<u8>, Location> = HashMap::new();
            for r in tx.query(
                "SELECT c.id, p.name, c.pos, c.payload_len, c.raw_len, c.base
                 FROM chunks c JOIN packs p ON p.pk = c.pack WHERE c.id = ANY($1)",
                &[&keys],
            )? {
                let id: Vec<u8> = r.get(0);
                let Some(cid) = ChunkId::from_slice(&id) else {
                    continue;
                };
                known.insert(
                    id,
                    Location {
                        pack: r.get(1),
                        entry: PackEntry {
                            id: cid,
                            base: chunk_id(r.get(5)),
                            offset: int(&r, 2)?,
                            payload_len: int(&r, 3)?,
                            raw_len: int(&r, 4)?,
                        },
                    },
                );
            }
            Ok(ids
                .iter()
                .map(|id| known.get(id.as_bytes().as_slice()).cloned())
                .collect())
        })
    }

    fn add_pack(&self, name: &str, size: u64, entries: &[PackEntry], now: i64) -> Result<()> {
        let ids: Vec<&[u8]> = entries.iter().map(|e| e.id.as_bytes().as_slice()).collect();
        let bases: Vec<Option<&[u8]>> = entries
            .iter()
            .map(|e| e.base.as_ref().map(|b| b.as_bytes().as_slice()))
            .collect();
        let offsets: Vec<i64> = entries.iter().map(|e| i64::from(e.offset)).collect();
        let payloads: Vec<i64> = entries.iter().map(|e| i64::from(e.payload_len)).collect();
        let raws: Vec<i64> = entries.iter().map(|e| i64::from(e.raw_len)).collect();
        self.write("record pack", |tx| {
            let pk = Self::add_pack_row(tx, name, size, entries.len(), now)?;
            tx.execute(
                "INSERT INTO chunks(id, pack, base, pos, payload_len, raw_len, last_ref)
                 SELECT u.id, $1, u.base, u.pos, u.payload_len, u.raw_len, $2
                 FROM unnest($3::bytea[], $4::bytea[], $5::bigint[], $6::bigint[], $7::bigint[])
                      AS u(id, base, pos, payload_len, raw_len)
                 ON CONFLICT (id) DO NOTHING",
                &[&pk, &now, &ids, &bases, &offsets, &payloads, &raws],
            )?;
            Ok(())
        })
    }

    fn missing_bases(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let keys = id_bytes(ids);
        self.read("check bases", |tx| {
            let rows = tx.query(
                "SELECT c.base FROM chunks c WHERE c.id = ANY($1) AND c.base IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM chunks b WHERE b.id = c.base)",
                &[&keys],
            )?;
            Ok(rows
                .into_iter()
                .filter_map(|r| chunk_id(r.get(0)))
                .collect())
        })
    }

    fn pack_names(&self) -> Result<HashSet<String>> {
        self.read("list packs", |tx| {
            Ok(tx
                .query("SELECT name FROM packs", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    fn pack_chunk_ids(&self, name: &str) -> Result<HashSet<ChunkId>> {
        self.read("list a pack's chunks", |tx| {
            Ok(tx
                .query(
                    "SELECT c.id FROM chunks c JOIN packs p ON p.pk = c.pack WHERE p.name = $1",
                    &[&name],
                )?
                .into_iter()
                .filter_map(|r| chunk_id(r.get(0)))
                .collect())
        })
    }

    fn drop_baseless_deltas(&self) -> Result<u64> {
        // A delta on a dropped delta goes too: one round per level of a chain.
        self.write("drop deltas without a base", |tx| {
            let mut dropped = 0u64;
            loop {
                let n = tx.execute(
                    "DELETE FROM chunks c WHERE c.base IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM chunks b WHERE b.id = c.base)",
                    &[],
                )?;
                if n == 0 {
                    return Ok(dropped);
                }
                dropped += n;
            }
        })
    }

    fn record_check(&self, name: &str, ok: bool, now: i64) -> Result<()> {
        self.write("record a pack check", |tx| {
            tx.execute(
                "INSERT INTO pack_checks(name, checked, ok) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET checked = EXCLUDED.checked, ok = EXCLUDED.ok",
                &[&name, &now, &ok],
            )
            .map(|_| ())
        })
    }

    fn packs_by_check_age(&self) -> Result<Vec<PackCheck>> {
        self.read("list packs by check age", |tx| {
            tx
                .query(
                    "SELECT p.name, p.size, k.checked FROM packs p LEFT JOIN pack_checks k ON k.name = p.name
                     ORDER BY k.checked IS NOT NULL, k.checked, p.name",
                    &[],
                )?
                .iter()
                .map(|r| {
                    Ok(PackCheck {
                        name: r.get(0),
                        size: int(r, 1)?,
                        last_checked: r.get(2),
                    })
                })
                .collect()
        })
    }
}

impl PieceCatalog for PgIndex {
    fn add_piece(&self, info: &PieceInfo, chunk_ids: &[ChunkId], now: i64) -> Result<()> {
        let meta =
            serde_json::to_string(&info.meta).map_err(|e| RepoError::json("piece metadata", e))?;
        let keys = id_bytes(chunk_ids);
        self.write("record piece", |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO pieces({PIECE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (name) DO UPDATE SET database = EXCLUDED.database, dbid = EXCLUDED.dbid,
                       file_type = EXCLUDED.file_type, created = EXCLUDED.created, size = EXCLUDED.size,
                       chunks = EXCLUDED.chunks, stored = EXCLUDED.stored, meta = EXCLUDED.meta"
                ),
                &[
                    &info.name,
                    &info.database,
                    &info.dbid.map(Int),
                    &info.file_type.as_str(),
                    &info.created,
                    &Int(info.size),
                    &Int(info.chunks),
                    &Int(info.stored),
                    &meta,
                ],
            )?;
            tx.execute("DELETE FROM commits_in_flight WHERE name = $1", &[&info.name])?;
            tx.execute(
                "UPDATE chunks SET last_ref = $2 WHERE last_ref < $2 AND (id = ANY($1)
                   OR id IN (SELECT base FROM chunks WHERE id = ANY($1) AND base IS NOT NULL))",
                &[&keys, &now],
            )?;
            Ok(())
        })
    }

    fn begin_commit(&self, name: &str, now: i64) -> Result<()> {
        self.write("record commit in flight", |tx| {
            tx.execute(
                "INSERT INTO commits_in_flight(name, started) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET started = EXCLUDED.started",
                &[&name, &now],
            )
            .map(|_| ())
        })
    }

    fn end_commit(&self, name: &str) -> Result<()> {
        self.write("clear commit in flight", |tx| {
            tx.execute("DELETE FROM commits_in_flight WHERE name = $1", &[&name])
                .map(|_| ())
        })
    }

    fn commits_in_flight(&self) -> Result<Vec<CommitInFlight>> {
        self.read("list commits in flight", |tx| {
            Ok(tx
                .query("SELECT name, started FROM commits_in_flight", &[])?
                .iter()
                .map(|r| CommitInFlight {
                    name: r.get(0),
                    started: r.get(1),
                })
                .collect())
        })
    }

    fn remove_piece(&self, name: &str) -> Result<bool> {
        self.write("remove piece", |tx| {
            Ok(tx.execute("DELETE FROM pieces WHERE name = $1", &[&name])? > 0)
        })
    }

    fn remove_piece_created(&self, name: &str, created: i64) -> Result<bool> {
        self.write("remove piece", |tx| {
            Ok(tx.execute(
                "DELETE FROM pieces WHERE name = $1 AND created = $2",
                &[&name, &created],
            )? > 0)
        })
    }

    fn piece(&self, name: &str) -> Result<Option<PieceInfo>> {
        self.read("look up piece", |tx| {
            tx.query_opt(
                &format!("SELECT {PIECE_COLUMNS} FROM pieces WHERE name = $1"),
                &[&name],
            )?
            .as_ref()
            .map(row_to_info)
            .transpose()
        })
    }

    fn list(&self, f: &PieceFilter) -> Result<Vec<PieceInfo>> {
        let mut sql = format!("SELECT {PIECE_COLUMNS} FROM pieces WHERE true");
        let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: Box<dyn ToSql + Sync>| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(p) = &f.name_prefix {
            arg(&mut sql, " AND starts_with(name, ?)", Box::new(p.clone()));
        }
        if let Some(d) = &f.database {
            arg(&mut sql, " AND database = ?", Box::new(d.clone()));
        }
        if let Some(d) = f.dbid {
            arg(&mut sql, " AND dbid = ?", Box::new(Int(d)));
        }
        if let Some(t) = f.file_type {
            arg(
                &mut sql,
                " AND file_type = ?",
                Box::new(t.as_str().to_string()),
            );
        }
        if let Some(s) = f.since {
            arg(&mut sql, " AND created >= ?", Box::new(s));
        }
        if let Some(u) = f.until {
            arg(&mut sql, " AND created < ?", Box::new(u));
        }
        sql.push_str(" ORDER BY created, name");
        if let Some(l) = f.limit {
            arg(&mut sql, " LIMIT ?", Box::new(Int(l)));
        }
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
        self.read("list pieces", |tx| {
            tx.query(&sql, &params)?.iter().map(row_to_info).collect()
        })
    }
}

impl WriterSessions for PgIndex {
    fn gc_fence(&self) -> Result<i64> {
        self.read("read the collection fence", Self::fence_of)
    }

    fn begin_session(
        &self,
        holder: &str,
        lineage_since: Option<i64>,
        now: i64,
    ) -> Result<SessionGrant> {
        self.write("begin a writer session", |tx| {
            let fence = Self::fence_of(tx)?;
            let since = lineage_since.filter(|&t| t >= fence && t <= now);
            let row = tx.query_one(
                "INSERT INTO sessions(holder, floor, started, renewed) VALUES ($1, $2, $3, $3) RETURNING id",
                &[&holder, &since.unwrap_or(now), &now],
            )?;
            Ok(SessionGrant {
                id: int(&row, 0)?,
                started: now,
                lineage_ok: since.is_some() || lineage_since.is_none(),
            })
        })
    }

    fn adopt_lineage(&self, id: u64, since: i64, now: i64) -> Result<bool> {
        self.write("extend a writer session", |tx| {
            if since < Self::fence_of(tx)? || since > now {
                return Ok(false);
            }
            Ok(tx.execute(
                "UPDATE sessions SET floor = LEAST(floor, $2), renewed = $3 WHERE id = $1",
                &[&Int(id), &since, &now],
            )? > 0)
        })
    }

    fn renew_session(&self, id: u64, now: i64) -> Result<bool> {
        self.write("renew a writer session", |tx| {
            Ok(tx.execute(
                "UPDATE sessions SET renewed = $2 WHERE id = $1",
                &[&Int(id), &now],
            )? > 0)
        })
    }

    fn session_holder(&self, id: u64) -> Result<Option<String>> {
        self.read("look up a writer session", |tx| {
            Ok(tx
                .query_opt("SELECT holder FROM sessions WHERE id = $1", &[&Int(id)])?
                .map(|r| r.get(0)))
        })
    }

    fn end_session(&self, id: u64) -> Result<()> {
        self.write("end a writer session", |tx| {
            tx.execute("DELETE FROM sessions WHERE id = $1", &[&Int(id)])
                .map(|_| ())
        })
    }

    fn live_sessions(&self, now: i64) -> Result<Vec<LiveSession>> {
        self.read("list writer sessions", |tx| {
            Ok(tx
                .query(
                    "SELECT holder, floor, started FROM sessions WHERE renewed >= $1 ORDER BY floor",
                    &[&(now - SESSION_TTL_SECS)],
                )?
                .iter()
                .map(|r| LiveSession {
                    holder: r.get(0),
                    floor: r.get(1),
                    started: r.get(2),
                })
                .collect())
        })
    }
}

impl Collection for PgIndex {
    fn gc_begin(&self, grace: i64, now: i64) -> Result<GcStart> {
        self.write("start a collection", |tx| {
            let running: Option<GcRun> =
                Self::meta_get(tx, "gc_run")?.and_then(|v| serde_json::from_str(&v).ok());
            let start = match running {
                Some(r) if now - r.heartbeat < SESSION_TTL_SECS => return Ok(GcStart::Busy(r)),
                Some(r) => GcStart::Resumed(GcRun {
                    heartbeat: now,
                    ..r
                }),
                None => {
                    tx.execute(
                        "DELETE FROM sessions WHERE renewed < $1",
                        &[&(now - SESSION_TTL_SECS)],
                    )?;
                    let oldest: Option<i64> =
                        tx.query_one("SELECT min(floor) FROM sessions", &[])?.get(0);
                    GcStart::Started(GcRun {
                        started: now,
                        fence: (now - grace).min(oldest.unwrap_or(i64::MAX)),
                        heartbeat: now,
                    })
                }
            };
            let run = start.run();
            let published = Self::fence_of(tx)?.max(run.fence);
            Self::meta_set(tx, "gc_fence", &published.to_string())?;
            Self::meta_set(
                tx,
                "gc_run",
                &serde_json::to_string(&run).expect("serialisable"),
            )?;
            Ok(start)
        })
    }

    fn gc_heartbeat(&self, run: &GcRun, now: i64) -> Result<()> {
        let beat = serde_json::to_string(&GcRun {
            heartbeat: now,
            ..*run
        })
        .expect("serialisable");
        self.write("record collection progress", |tx| {
            Self::meta_set(tx, "gc_run", &beat)
        })
    }

    fn gc_finish(&self, newest_swept: Option<i64>, previous_fence: i64) -> Result<i64> {
        self.write("finish a collection", |tx| {
            let fence = previous_fence.max(newest_swept.map_or(0, |t| t + 1));
            Self::meta_set(tx, "gc_fence", &fence.to_string())?;
            tx.execute("DELETE FROM meta WHERE k = 'gc_run'", &[])?;
            Ok(fence)
        })
    }

    fn pack_rows(&self) -> Result<Vec<PackRow>> {
        self.read("list packs", |tx| {
            tx.query("SELECT pk, name, size FROM packs ORDER BY pk", &[])?
                .iter()
                .map(|r| {
                    Ok(PackRow {
                        key: PackKey(r.get(0)),
                        name: r.get(1),
                        size: int(r, 2)?,
                    })
                })
                .collect()
        })
    }

    fn recent_bases(&self, fence: i64) -> Result<Vec<ChunkId>> {
        self.read("list bases", |tx| {
            Ok(tx
                .query(
                    "SELECT DISTINCT base FROM chunks WHERE base IS NOT NULL AND last_ref >= $1",
                    &[&fence],
                )?
                .into_iter()
                .filter_map(|r| chunk_id(r.get(0)))
                .collect())
        })
    }

    fn sweep_pack(
        &self,
        pack: PackKey,
        fence: i64,
        keep: &dyn Fn(&ChunkId) -> bool,
    ) -> Result<SweepOutcome> {
        self.write("sweep a pack", |tx| {
            let mut dropped = Vec::new();
            let mut live = Vec::new();
            let mut gone: HashSet<Vec<u8>> = HashSet::new();
            let rows = tx.query(
                "SELECT id, base, pos, payload_len, raw_len, last_ref FROM chunks WHERE pack = $1",
                &[&pack.0],
            )?;
            for r in rows {
                let id: Vec<u8> = r.get(0);
                let Some(cid) = ChunkId::from_slice(&id) else {
                    continue;
                };
                if gone.contains(&id) {
                    continue;
                }
                let last_ref: i64 = r.get(5);
                if last_ref < fence && !keep(&cid) {
                    tx.execute("DELETE FROM chunks WHERE id = $1", &[&id])?;
                    dropped.push(SweptChunk {
                        payload_bytes: int(&r, 3)?,
                        last_ref,
                    });
                    // Deltas built on a swept chunk go with it: nothing kept
                    // builds on it, and a probe must never answer "stored"
                    // for a delta it cannot rebuild.
                    for d in tx.query(
                        "DELETE FROM chunks WHERE base = $1 RETURNING id, payload_len, last_ref",
                        &[&id],
                    )? {
                        dropped.push(SweptChunk {
                            payload_bytes: int(&d, 1)?,
                            last_ref: d.get(2),
                        });
                        gone.insert(d.get(0));
                    }
                    gone.insert(id);
                } else {
                    live.push(PackEntry {
                        id: cid,
                        base: chunk_id(r.get(1)),
                        offset: int(&r, 2)?,
                        payload_len: int(&r, 3)?,
                        raw_len: int(&r, 4)?,
                    });
                }
            }
            live.retain(|e| !gone.contains(e.id.as_bytes().as_slice()));
            Ok(SweepOutcome {
                dropped,
                remaining: live,
            })
        })
    }

    fn move_chunks(&self, name: &str, size: u64, moved: &[MovedChunk], now: i64) -> Result<()> {
        let ids: Vec<&[u8]> = moved
            .iter()
            .map(|m| m.entry.id.as_bytes().as_slice())
            .collect();
        let offsets: Vec<i64> = moved.iter().map(|m| i64::from(m.entry.offset)).collect();
        let from: Vec<i64> = moved.iter().map(|m| m.from.0).collect();
        self.write("move chunks to a new pack", |tx| {
            let pk = Self::add_pack_row(tx, name, size, moved.len(), now)?;
            tx.execute(
                "UPDATE chunks c SET pack = $1, pos = u.pos
                 FROM unnest($2::bytea[], $3::bigint[], $4::bigint[]) AS u(id, pos, from_pack)
                 WHERE c.id = u.id AND c.pack = u.from_pack",
                &[&pk, &ids, &offsets, &from],
            )?;
            Ok(())
        })
    }

    fn remove_pack_if_empty(&self, pack: PackKey) -> Result<bool> {
        self.write("remove a pack", |tx| {
            Ok(tx.execute(
                "DELETE FROM packs WHERE pk = $1 AND NOT EXISTS (SELECT 1 FROM chunks WHERE pack = $1)",
                &[&pack.0],
            )? > 0)
        })
    }
}

impl IndexBackend for PgIndex {
    fn stats(&self) -> Result<IndexStats> {
        self.read("count", |tx| {
            let p = tx.query_one(
                "SELECT count(*), coalesce(sum(size), 0)::bigint FROM packs",
                &[],
            )?;
            let c = tx.query_one(
                "SELECT count(*), coalesce(sum(payload_len), 0)::bigint, coalesce(sum(raw_len), 0)::bigint FROM chunks",
                &[],
            )?;
            let q = tx.query_one(
                "SELECT count(*), coalesce(sum(size), 0)::bigint FROM pieces",
                &[],
            )?;
            Ok(IndexStats {
                packs: int(&p, 0)?,
                pack_bytes: int(&p, 1)?,
                chunks: int(&c, 0)?,
                chunk_bytes: int(&c, 1)?,
                raw_bytes: int(&c, 2)?,
                pieces: int(&q, 0)?,
                piece_bytes: int(&q, 1)?,
            })
        })
    }

    fn clear(&self) -> Result<()> {
        self.write("clear", |tx| {
            tx.batch_execute("DELETE FROM chunks; DELETE FROM packs; DELETE FROM pieces;")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_never_shows() {
        let c = |url: &str| PgConfig {
            url: url.into(),
            password_file: None,
            ca_file: None,
        };
        assert_eq!(
            c("postgresql://orca:s3cret@db:5432/orca").redacted(),
            "postgresql://orca:***@db:5432/orca"
        );
        assert_eq!(
            c("postgresql://orca@db/orca").redacted(),
            "postgresql://orca@db/orca"
        );
        assert!(!format!("{:?}", c("postgres://u:pw@h/d")).contains("pw"));
        let e = c("postgresql://u:pw@h:notaport/d")
            .client_config()
            .unwrap_err();
        assert!(!e.to_string().contains("pw@"), "{e}");
    }
}
