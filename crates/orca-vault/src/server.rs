//! The vault's HTTP server: a repository ([`Store`]) behind bearer tokens scoped to one
//! database. The vault holds what clients encrypted and never needs the repository key.
//!
//! | method and path | scope | what |
//! |---|---|---|
//! | `GET /healthz` | none | liveness |
//! | `GET /metrics` | none | Prometheus text |
//! | `GET /api/v1/config`, `GET /api/v1/keys` | any | repository config, wrapped keys |
//! | `POST /api/v1/chunks/missing` | backup | which ids are not stored (touches the others) |
//! | `PUT /api/v1/chunks` | backup | idempotent upload of encoded chunks |
//! | `POST /api/v1/flush` | backup | make uploads durable |
//! | `POST /api/v1/pieces` | backup | atomic commit of a manifest (409 + missing ids) |
//! | `GET /api/v1/pieces` | any | list the token's database's pieces |
//! | `GET /api/v1/pieces/manifest?name=` | any | a piece's manifest |
//! | `DELETE /api/v1/pieces?name=` | backup | delete a piece |
//! | `POST /api/v1/chunks/read` | restore | chunk payloads, in order |
//!
//! `admin` tokens may do everything for every database; `backup` tokens may also read
//! (a restore through the same channel configuration), `restore` tokens only read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use orca_repo::manifest::Manifest;
use orca_repo::{Backend, PieceFilter, RepoError, Store};
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;

use crate::wire::{self, ErrorBody, Ids};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Backup,
    Restore,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "backup" => Some(Scope::Backup),
            "restore" => Some(Scope::Restore),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scope::Backup => "backup",
            Scope::Restore => "restore",
            Scope::Admin => "admin",
        }
    }
}

/// The caller, from its token.
#[derive(Debug, Clone)]
struct Caller {
    db: String,
    scope: Scope,
}

/// Tokens, stored as BLAKE3 hashes in `<data>/vault.sqlite`.
pub struct Tokens {
    path: PathBuf,
}

impl Tokens {
    pub fn open(data: &Path) -> Result<Tokens, String> {
        let t = Tokens {
            path: data.join("vault.sqlite"),
        };
        t.conn()?;
        Ok(t)
    }

    fn conn(&self) -> Result<rusqlite::Connection, String> {
        let c = rusqlite::Connection::open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        c.busy_timeout(std::time::Duration::from_secs(10))
            .and_then(|_| {
                c.execute_batch(
                    "CREATE TABLE IF NOT EXISTS tokens (hash BLOB PRIMARY KEY, db TEXT NOT NULL, scope TEXT NOT NULL, created INTEGER NOT NULL);",
                )
            })
            .map_err(|e| format!("cannot prepare {}: {e}", self.path.display()))?;
        Ok(c)
    }

    /// Creates a token; the secret is returned once and only its hash is kept.
    pub fn create(&self, db: &str, scope: Scope) -> Result<String, String> {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(|e| format!("no randomness: {e}"))?;
        let token = format!("orca_{}", hex::encode(raw));
        self.conn()?
            .execute(
                "INSERT INTO tokens(hash, db, scope, created) VALUES (?1, ?2, ?3, ?4)",
                params![
                    blake3::hash(token.as_bytes()).as_bytes().as_slice(),
                    db,
                    scope.as_str(),
                    orca_repo::now_unix()
                ],
            )
            .map_err(|e| format!("cannot store the token: {e}"))?;
        Ok(token)
    }

    fn lookup(&self, token: &str) -> Result<Option<Caller>, String> {
        let row: Option<(String, String)> = self
            .conn()?
            .query_row(
                "SELECT db, scope FROM tokens WHERE hash = ?1",
                [blake3::hash(token.as_bytes()).as_bytes().as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| format!("token lookup failed: {e}"))?;
        Ok(row.and_then(|(db, s)| Scope::parse(&s).map(|scope| Caller { db, scope })))
    }
}

#[derive(Default)]
struct Metrics {
    requests: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    probes: AtomicU64,
    probed_ids: AtomicU64,
    uploaded_chunks: AtomicU64,
    commits: AtomicU64,
    chunk_reads: AtomicU64,
}

struct AppState {
    store: Arc<Store>,
    tokens: Tokens,
    metrics: Metrics,
}

type St = State<Arc<AppState>>;

/// An error answer: status and JSON body, no state changed.
struct ApiError(StatusCode, ErrorBody);

impl ApiError {
    fn new(code: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError(
            code,
            ErrorBody {
                error: error.into(),
                hint: hint.into(),
                missing: Vec::new(),
            },
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::MissingChunks { ref missing, .. } => {
                let mut a = ApiError::new(
                    StatusCode::CONFLICT,
                    e.to_string(),
                    "upload the missing chunks, then commit again",
                );
                a.1.missing = wire::ids_to_hex(missing);
                a
            }
            RepoError::PieceExists { .. } => ApiError::new(
                StatusCode::CONFLICT,
                e.to_string(),
                "choose another piece name",
            ),
            RepoError::PieceNotFound { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                e.to_string(),
                "list the pieces to see what exists",
            ),
            RepoError::InvalidArgument(_) | RepoError::CorruptObject { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                e.to_string(),
                "the request body is malformed",
            ),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                other.to_string(),
                "see the vault's log",
            ),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn caller(s: &AppState, headers: &HeaderMap, need: &[Scope]) -> ApiResult<Caller> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no bearer token",
                "send Authorization: Bearer <token> (ORCA_TOKEN); create one with `orca vault token create`",
            )
        })?;
    let c = s
        .tokens
        .lookup(token)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e, "see the vault's log"))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown token",
                "check ORCA_TOKEN; create one with `orca vault token create`",
            )
        })?;
    if c.scope == Scope::Admin || need.contains(&c.scope) {
        Ok(c)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("a {} token may not do this", c.scope.as_str()),
            "use a token with the right scope",
        ))
    }
}

fn own_database(c: &Caller, db: Option<&str>) -> ApiResult<()> {
    if c.scope == Scope::Admin || db == Some(c.db.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token belongs to database {} and may not touch this piece",
                c.db
            ),
            "use the token of the piece's database",
        ))
    }
}

/// The catalog entry of `name`, which must belong to the caller's database.
async fn owned_piece(s: &AppState, c: &Caller, name: &str) -> ApiResult<orca_repo::PieceInfo> {
    let filter = PieceFilter {
        name_prefix: Some(name.to_string()),
        ..Default::default()
    };
    let info = s
        .store
        .list(&filter)
        .await?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| RepoError::PieceNotFound {
            name: name.to_string(),
        })?;
    own_database(c, info.database.as_deref())?;
    Ok(info)
}

async fn config(State(s): St, h: HeaderMap) -> ApiResult<Response> {
    caller(&s, &h, &[Scope::Backup, Scope::Restore])?;
    let cfg = s.store.config().clone();
    Ok(([(header::CONTENT_TYPE, "application/json")], cfg.to_json()).into_response())
}

async fn keys(State(s): St, h: HeaderMap) -> ApiResult<Response> {
    caller(&s, &h, &[Scope::Backup, Scope::Restore])?;
    Ok(axum::Json(s.store.wrapped_keys().await?).into_response())
}

fn json_ids(body: &Bytes) -> ApiResult<Vec<orca_repo::ChunkId>> {
    let ids: Ids = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {e}"),
            "send {\"ids\": [hex, ...]}",
        )
    })?;
    wire::ids_from_hex(&ids.ids)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e, "ids are 64 hex digits"))
}

async fn missing(State(s): St, h: HeaderMap, body: Bytes) -> ApiResult<Response> {
    caller(&s, &h, &[Scope::Backup])?;
    let ids = json_ids(&body)?;
    s.metrics.probes.fetch_add(1, Ordering::Relaxed);
    s.metrics
        .probed_ids
        .fetch_add(ids.len() as u64, Ordering::Relaxed);
    let m = s.store.missing(&ids).await?;
    Ok(axum::Json(Ids {
        ids: wire::ids_to_hex(&m),
    })
    .into_response())
}

async fn upload(State(s): St, h: HeaderMap, body: Bytes) -> ApiResult<StatusCode> {
    caller(&s, &h, &[Scope::Backup])?;
    let chunks = wire::decode_chunks(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            e,
            "see docs/design.md, Vault: chunk upload framing",
        )
    })?;
    s.metrics
        .uploaded_chunks
        .fetch_add(chunks.len() as u64, Ordering::Relaxed);
    s.store.put_chunks(chunks).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn flush(State(s): St, h: HeaderMap) -> ApiResult<StatusCode> {
    caller(&s, &h, &[Scope::Backup])?;
    s.store.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn commit(State(s): St, h: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let c = caller(&s, &h, &[Scope::Backup])?;
    let m = Manifest::decode_unverified(&body, "manifest upload")?;
    own_database(&c, m.header.meta.database.as_deref())?;
    let info = s.store.commit(body).await?;
    s.metrics.commits.fetch_add(1, Ordering::Relaxed);
    Ok((StatusCode::CREATED, axum::Json(info)).into_response())
}

#[derive(Deserialize)]
struct NameQ {
    name: String,
}

async fn list(State(s): St, h: HeaderMap, Query(mut f): Query<PieceFilter>) -> ApiResult<Response> {
    let c = caller(&s, &h, &[Scope::Backup, Scope::Restore])?;
    if c.scope != Scope::Admin {
        f.database = Some(c.db.clone());
    }
    Ok(axum::Json(s.store.list(&f).await?).into_response())
}

async fn manifest(State(s): St, h: HeaderMap, Query(q): Query<NameQ>) -> ApiResult<Response> {
    let c = caller(&s, &h, &[Scope::Backup, Scope::Restore])?;
    owned_piece(&s, &c, &q.name).await?;
    match s.store.manifest(&q.name).await? {
        Some(b) => Ok(b.into_response()),
        None => Err(RepoError::PieceNotFound { name: q.name }.into()),
    }
}

async fn delete(State(s): St, h: HeaderMap, Query(q): Query<NameQ>) -> ApiResult<StatusCode> {
    let c = caller(&s, &h, &[Scope::Backup])?;
    owned_piece(&s, &c, &q.name).await?;
    if s.store.delete(&q.name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(RepoError::PieceNotFound { name: q.name }.into())
    }
}

async fn read(State(s): St, h: HeaderMap, body: Bytes) -> ApiResult<Response> {
    caller(&s, &h, &[Scope::Backup, Scope::Restore])?;
    let ids = json_ids(&body)?;
    let known: std::collections::HashSet<_> = s.store.missing(&ids).await?.into_iter().collect();
    if let Some(id) = ids.iter().find(|i| known.contains(i)) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("chunk {} is not stored", id.short()),
            "the piece is damaged: run `orca vault verify`",
        ));
    }
    s.metrics
        .chunk_reads
        .fetch_add(ids.len() as u64, Ordering::Relaxed);
    let payloads = s.store.get_chunks(&ids).await?;
    Ok(wire::encode_payloads(&payloads).into_response())
}

async fn metrics(State(s): St) -> String {
    let m = &s.metrics;
    let mut out = String::new();
    for (name, help, v) in [
        ("orca_vault_requests_total", "HTTP requests", &m.requests),
        (
            "orca_vault_request_errors_total",
            "HTTP requests answered 4xx/5xx",
            &m.errors,
        ),
        (
            "orca_vault_bytes_in_total",
            "request body bytes",
            &m.bytes_in,
        ),
        (
            "orca_vault_bytes_out_total",
            "response body bytes",
            &m.bytes_out,
        ),
        ("orca_vault_probes_total", "batch probes", &m.probes),
        (
            "orca_vault_probed_ids_total",
            "chunk ids probed",
            &m.probed_ids,
        ),
        (
            "orca_vault_uploaded_chunks_total",
            "chunks received",
            &m.uploaded_chunks,
        ),
        ("orca_vault_commits_total", "pieces committed", &m.commits),
        (
            "orca_vault_chunk_reads_total",
            "chunks read for restores",
            &m.chunk_reads,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            v.load(Ordering::Relaxed)
        ));
    }
    out
}

async fn count(State(s): St, req: Request, next: Next) -> Response {
    s.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    s.metrics.bytes_in.fetch_add(len, Ordering::Relaxed);
    let resp = next.run(req).await;
    if resp.status().is_client_error() || resp.status().is_server_error() {
        s.metrics.errors.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(n) = axum::body::HttpBody::size_hint(resp.body()).exact() {
        s.metrics.bytes_out.fetch_add(n, Ordering::Relaxed);
    }
    resp
}

/// The router over a repository directory made by `orca repo init`.
pub async fn router(data: &Path) -> Result<Router, String> {
    let store = Store::open_local(data)
        .await
        .map_err(|e| format!("cannot open the vault's repository: {e}"))?;
    let tokens = Tokens::open(data)?;
    let state = Arc::new(AppState {
        store: Arc::new(store),
        tokens,
        metrics: Metrics::default(),
    });
    let api = wire::API;
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route(&format!("{api}/config"), get(config))
        .route(&format!("{api}/keys"), get(keys))
        .route(&format!("{api}/chunks/missing"), post(missing))
        .route(&format!("{api}/chunks"), put(upload))
        .route(&format!("{api}/chunks/read"), post(read))
        .route(&format!("{api}/flush"), post(flush))
        .route(
            &format!("{api}/pieces"),
            post(commit).get(list).delete(delete),
        )
        .route(&format!("{api}/pieces/manifest"), get(manifest))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(wire::MAX_BODY))
        .with_state(state))
}

/// Serves until the process ends.
pub async fn serve(data: &Path, listen: &str) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    serve_on(data, listener).await
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve_on(data: &Path, listener: tokio::net::TcpListener) -> Result<(), String> {
    let app = router(data).await?;
    tracing::info!(data = %data.display(), "vault serving");
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("server failed: {e}"))
}

/// Starts a vault on a free loopback port in a background thread; returns its URL.
/// For tests and demos that need a real server without a separate process.
pub fn spawn_local(data: &Path) -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let data = data.to_path_buf();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(format!("no runtime: {e}")));
                return;
            }
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot bind: {e}")));
                    return;
                }
            };
            let addr = listener.local_addr().map_err(|e| e.to_string());
            let _ = tx.send(addr.map(|a| format!("http://{a}")));
            if let Err(e) = serve_on(&data, listener).await {
                tracing::error!(error = %e, "vault stopped");
            }
        });
    });
    rx.recv().map_err(|e| format!("vault thread died: {e}"))?
}
