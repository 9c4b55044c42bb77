//! The vault's HTTP server: a repository ([`Store`]) behind bearer tokens scoped to one
//! database. The vault holds what clients encrypted and never needs the repository key.
//!
//! | method and path | scope | what |
//! |---|---|---|
//! | `GET /healthz` | none | liveness |
//! | `GET /metrics` | none | Prometheus text |
//! | `GET /api/v1/openapi.json` | none | this API, generated from the handlers' types |
//! | `GET /api/v1/config`, `GET /api/v1/keys` | read | repository config, wrapped keys |
//! | `POST /api/v1/chunks/missing` | backup | which ids are not stored (touches the others) |
//! | `PUT /api/v1/chunks` | backup | idempotent upload of encoded chunks |
//! | `POST /api/v1/chunks/read` | read | chunk payloads, in order |
//! | `POST /api/v1/chunks/values` | read | the first bytes of each payload, holding its unit values |
//! | `POST /api/v1/flush` | backup | make uploads durable |
//! | `POST /api/v1/pieces` | backup | atomic commit of a manifest (409 + missing ids) |
//! | `GET /api/v1/pieces` | read | list the token's database's pieces |
//! | `GET /api/v1/pieces/info?name=`, `/pieces/manifest?name=` | read | a piece's catalog entry, manifest |
//! | `DELETE /api/v1/pieces?name=` | backup | delete a piece |
//! | `POST`, `GET /api/v1/recovery-points`, `GET`, `DELETE …/{id}` | backup, read | recovery points |
//! | `POST`, `GET /api/v1/jobs`, `GET`, `PATCH …/{id}` | backup, read | job records (the agent's queue; a queued job past its deadline fails) |
//! | `PUT`, `GET /api/v1/agents/{database}` | backup, read | agent heartbeats |
//!
//! `admin` tokens may do everything for every database; `backup` tokens may also read
//! (a restore through the same channel configuration), `restore` tokens only read. Every
//! refused request is answered with a JSON [`ErrorBody`] and changes nothing.

mod agents;
mod console;
mod db;
mod metrics;
mod net;
mod pieces;
mod records;
mod schema;
mod sessions;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use orca_repo::{RepoError, Store};
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, SecurityRequirement};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::listen::Limits;
use crate::listen::is_body_timeout;
use crate::wire::{self, ErrorBody};
use db::{Caller, Records};
pub use db::{GroupInfo, Groups, LEGACY_GROUP, TokenInfo, Tokens};
pub use net::{TlsFiles, serve, serve_on, spawn_local, spawn_local_limited, spawn_local_with};

/// Why the vault could not start, or a token could not be managed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The repository the vault serves cannot be opened.
    #[error("cannot open the vault's repository {}: {source}", .path.display())]
    Repository {
        /// The repository directory.
        path: PathBuf,
        /// The repository's error.
        #[source]
        source: Box<RepoError>,
    },
    /// The vault's own SQLite catalog failed.
    #[error("vault database {}: {source}", .path.display())]
    Database {
        /// The catalog file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The catalog kept in the shared PostgreSQL index failed.
    #[error("vault catalog: {0}")]
    SharedCatalog(#[source] Box<RepoError>),
    /// A record in the catalog cannot be read.
    #[error("vault database {location} holds an unreadable record: {message}")]
    Corrupt {
        /// The catalog.
        location: String,
        /// What is wrong with the record.
        message: String,
    },
    /// The operating system's random source failed while making a token.
    #[error("no randomness for a new secret: {0}")]
    Random(getrandom::Error),
    /// The caller asked for something invalid; nothing changed.
    #[error("{0}")]
    InvalidArgument(String),
    /// A scope name other than backup, restore or admin.
    #[error("unknown scope {0:?}: use backup, restore or admin")]
    UnknownScope(String),
    /// No dedup group has this name.
    #[error(
        "no dedup group {0:?}: see `orca vault group list`, or create it with `orca vault group create`"
    )]
    GroupNotFound(String),
    /// No token matches the id prefix given.
    #[error("no token has an id starting with {0:?}: see `orca vault token list`")]
    TokenNotFound(String),
    /// Several tokens match the id prefix given.
    #[error("{count} tokens have an id starting with {prefix:?}: give more of the id")]
    AmbiguousToken {
        /// The prefix given.
        prefix: String,
        /// How many tokens it matches.
        count: usize,
    },
    /// The listening socket cannot be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS certificate or key file cannot be read or parsed.
    #[error("TLS {what} {}: {message}", .path.display())]
    TlsFile {
        /// Which file (certificate, key).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS configuration refused: {0}")]
    Tls(#[from] rustls::Error),
    /// The Tokio runtime of a local vault cannot start.
    #[error("cannot start the vault's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl VaultError {
    /// The SQLite catalog's disk is full: what the repository says of its own full disk,
    /// with the bytes left where the catalog lives.
    fn full_disk(&self) -> Option<RepoError> {
        match self {
            VaultError::Database { path, source }
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) =>
            {
                let dir = path.parent().unwrap_or(path);
                Some(RepoError::disk_full(&dir.to_string_lossy()))
            }
            _ => None,
        }
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Write and read the pieces and records of its database.
    Backup,
    /// Read the pieces and records of its database.
    Restore,
    /// Everything a backup or restore token may do, for every database.
    Admin,
}

impl Scope {
    /// The scope's name, as `orca vault token` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Backup => "backup",
            Scope::Restore => "restore",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = VaultError;
    fn from_str(s: &str) -> Result<Scope, VaultError> {
        match s {
            "backup" => Ok(Scope::Backup),
            "restore" => Ok(Scope::Restore),
            "admin" => Ok(Scope::Admin),
            _ => Err(VaultError::UnknownScope(s.to_string())),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Scopes that may read a database's pieces and records (admin always may).
const READ: &[Scope] = &[Scope::Backup, Scope::Restore];
/// Scopes that may write them.
const WRITE: &[Scope] = &[Scope::Backup];

struct AppState {
    store: Arc<Store>,
    tokens: Tokens,
    groups: Groups,
    records: Records,
    metrics: Arc<metrics::Metrics>,
    openapi: String,
}

type St = State<Arc<AppState>>;

impl AppState {
    /// Runs catalog work (SQLite, PostgreSQL) off the async threads.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&AppState) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || f(&s))
            .await
            .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
    }
}

/// An error answer: status and JSON body, no state changed.
#[derive(Debug)]
struct ApiError(StatusCode, ErrorBody);

type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError(
            code,
            ErrorBody {
                error: error.into(),
                hint: hint.into(),
                ..Default::default()
            },
        )
    }

    fn internal(error: impl Into<String>) -> Self {
        let error = error.into();
        tracing::error!(%error, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            error,
            "see the vault's log",
        )
    }

    /// 422: the body parsed but its content is not acceptable.
    fn invalid(error: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            error,
            "see /api/v1/openapi.json for what the request may hold",
        )
    }

    fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no {what} {id:?}"),
            format!("list the {what}s to see what exists"),
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
            // A client newer than the vault: retrying cannot help, so not a 5xx.
            RepoError::UnsupportedVersion { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                e.to_string(),
                "the client is newer than the vault: upgrade the vault",
            ),
            ref full if full.is_disk_full() => {
                tracing::error!(error = %full, "the repository's disk is full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    full.to_string(),
                    "free space on the vault's repository disk, then run the backup again: \
                     what was committed is intact",
                )
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e.full_disk() {
            // The catalog's transaction rolled back: the same answer as a full repository disk.
            Some(full) => full.into(),
            None => ApiError::internal(e.to_string()),
        }
    }
}

/// What to do about a refusal the framework made (no route, bad query, ...).
fn hint_for(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            "see /api/v1/openapi.json for the routes".into()
        }
        _ => "see /api/v1/openapi.json for what the request may hold".into(),
    }
}

/// The caller, from its bearer token: 401 without a known one.
impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<AppState>) -> ApiResult<Caller> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "no bearer token",
                    "send Authorization: Bearer <token> (ORCA_TOKEN); create one with `orca vault token create`",
                )
            })?;
        s.blocking(move |s| Ok(s.tokens.lookup(&token)?))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unknown token",
                    "check ORCA_TOKEN; create one with `orca vault token create`",
                )
            })
    }
}

impl Caller {
    /// 403 unless the token's scope is one of `scopes` (admin always is).
    fn may(&self, scopes: &[Scope]) -> ApiResult<()> {
        if self.scope == Scope::Admin || scopes.contains(&self.scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("a {} token may not do this", self.scope),
                "use a token with the right scope",
            ))
        }
    }

    /// 403 unless the token may touch `db`'s data.
    fn owns(&self, db: Option<&str>) -> ApiResult<()> {
        if self.scope == Scope::Admin || db == Some(self.db.as_str()) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this token belongs to database {} and may not touch {}'s data",
                    self.db,
                    db.unwrap_or("another database")
                ),
                "use the token of that database",
            ))
        }
    }

    /// The database a listing is restricted to: the token's own unless it is an admin's.
    fn listing(&self, asked: Option<String>) -> ApiResult<Option<String>> {
        if self.scope == Scope::Admin {
            return Ok(asked);
        }
        self.owns(Some(asked.as_deref().unwrap_or(&self.db)))?;
        Ok(Some(self.db.clone()))
    }
}

/// `n` bytes for messages (every limit is a whole number of MiB).
fn mib(n: usize) -> String {
    format!("{} MiB", n >> 20)
}

/// 413 for a request over one of the vault's limits.
fn too_large(error: String, limit: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        error,
        format!(
            "send at most {limit} per request (the vault's client splits its requests to fit); \
             see /api/v1/openapi.json for each request's limits"
        ),
    )
}

/// A request body of at most `max` bytes: refused with 413 from its `Content-Length` before
/// it is read when it declares more, or as soon as more arrives; 408 when it does not arrive
/// within the server's body timeout; 400 when it cannot be read.
async fn read_body(req: Request, max: usize) -> ApiResult<Bytes> {
    let what = format!("{} {}", req.method(), req.uri().path());
    let over = |size: String| {
        too_large(
            format!("{size} is over the limit of {} of {what}", mib(max)),
            &mib(max),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > max as u64
    {
        return Err(over(format!("a {n}-byte body")));
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(over("the body".into())),
        Err(e) if is_body_timeout(&*e) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            e.to_string(),
            "send the body without pausing (the vault's --body-timeout bounds it)",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("cannot read the body of {what}: {e}"),
            "send the whole body its Content-Length announces",
        )),
    }
}

/// A binary request body of at most `MAX` bytes.
struct RawBody<const MAX: usize>(Bytes);

impl<S: Send + Sync, const MAX: usize> FromRequest<S> for RawBody<MAX> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> ApiResult<Self> {
        read_body(req, MAX).await.map(RawBody)
    }
}

/// A JSON request body of at most [`wire::MAX_JSON_BODY`], whatever its `Content-Type`: 400
/// when it is not JSON, 422 when it does not fit the type.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> ApiResult<Self> {
        let body = read_body(req, wire::MAX_JSON_BODY).await?;
        serde_json::from_slice(&body).map(JsonBody).map_err(|e| {
            let status = match e.classify() {
                serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, format!("malformed JSON: {e}"), hint_for(status))
        })
    }
}

/// Gives the framework's own refusals (plain text or empty) the JSON error body.
async fn json_errors(req: Request, next: Next) -> Response {
    let what = format!("{} {}", req.method(), req.uri().path());
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = if text.is_empty() {
        format!("{what}: {}", status.canonical_reason().unwrap_or("refused"))
    } else {
        text
    };
    let mut json = ApiError::new(status, error, hint_for(status)).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            json.headers_mut().insert(name, v.clone());
        }
    }
    json
}

#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "the vault is up", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
async fn metrics_text(State(s): St) -> String {
    let mut text = s.metrics.render(&s.store.object_requests());
    let drills = s
        .blocking(|s| {
            let points = s
                .records
                .list::<wire::RecoveryPoint>(&db::Selection::default())?;
            let jobs = s.records.list::<wire::Job>(&db::Selection {
                kind: Some("drill".into()),
                ..Default::default()
            })?;
            Ok(metrics::drills(&points, &jobs, orca_repo::now_unix()))
        })
        .await;
    match drills {
        Ok(d) => text.push_str(&d),
        Err(e) => tracing::warn!(error = ?e, "drill metrics not read from the catalog"),
    }
    text
}

#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "this document", body = Object)))]
async fn openapi_json(State(s): St) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.clone(),
    )
        .into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ORCA vault",
        description = "Deduplicated storage of encrypted backup chunks, pieces, recovery points and jobs. \
            Authenticate with `Authorization: Bearer <token>` (`orca vault token create`). \
            Every refused request answers a JSON ErrorBody and changes nothing; a client error is \
            always a 4xx (retry only 5xx). \
            Database names follow Oracle's DB_NAME rules (1 to 30 letters, digits, `_`, `$`, `#`, \
            starting with a letter); a piece's name is `DBNAME/handle`, starts with its database \
            (the token's, for a database's token), and holds no control character. \
            Every request's work is bounded: each operation with a body names its limits, and a \
            request over one is answered 413 with the limit in its message. \
            Slow clients are cut off: request headers (and a TLS handshake) must arrive within the \
            server's header timeout (default 30 s), a body within its body timeout (default 300 s: \
            408), and a connection with no request for its idle timeout (default 120 s) is closed; \
            at most max-connections (default 1024) are served at once."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "service", description = "liveness, metrics, this document"),
        (name = "chunks", description = "probe, upload and read encoded chunks"),
        (name = "pieces", description = "commit, list, read and delete pieces"),
        (name = "records", description = "recovery points and job records"),
        (name = "agents", description = "agent heartbeats"),
        (name = "console", description = "what the web console at /ui shows"),
    )
)]
struct ApiDoc;

/// The routes and the document describing them, from the same annotations.
fn api() -> (Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(pieces::config))
        .routes(routes!(pieces::keys))
        .routes(routes!(pieces::missing))
        .routes(routes!(pieces::upload))
        .routes(routes!(pieces::transfer))
        .routes(routes!(pieces::read))
        .routes(routes!(pieces::values))
        .routes(routes!(pieces::flush))
        .routes(routes!(pieces::commit, pieces::list, pieces::delete))
        .routes(routes!(pieces::info))
        .routes(routes!(pieces::manifest))
        .routes(routes!(
            records::create_recovery_point,
            records::recovery_points
        ))
        .routes(routes!(
            records::recovery_point,
            records::delete_recovery_point
        ))
        .routes(routes!(sessions::whoami))
        .routes(routes!(sessions::begin))
        .routes(routes!(sessions::adopt))
        .routes(routes!(sessions::renew))
        .routes(routes!(sessions::end))
        .routes(routes!(records::create_job, records::jobs))
        .routes(routes!(records::job, records::update_job))
        .routes(routes!(agents::heartbeat, agents::agent))
        .routes(routes!(console::overview));
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics_text))
        .nest(wire::API, v1)
        .split_for_parts();
    // The console's page, script and style: open, like /healthz (they hold no data; the page
    // asks for a token and reads the API with it).
    let router = router
        .route("/ui", axum::routing::get(console::index))
        .route("/ui/", axum::routing::get(console::index))
        .route("/ui/app.js", axum::routing::get(console::script))
        .route("/ui/app.css", axum::routing::get(console::style));
    add_conventions(&mut doc);
    (router, doc)
}

/// What every operation shares, said once: bearer auth on the API (but its document), and
/// JSON error answers.
fn add_conventions(doc: &mut utoipa::openapi::OpenApi) {
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let open = format!("{}/openapi.json", wire::API);
    for (path, item) in doc.paths.paths.iter_mut() {
        let secured = path.starts_with(wire::API) && *path != open;
        for (method, op) in [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ]
        .into_iter()
        .filter_map(|(m, op)| Some((m, op.as_mut()?)))
        {
            if let Some(limits) = limits_of(method, path, op.request_body.is_some()) {
                let said = op.description.take().unwrap_or_default();
                op.description = Some(format!("{said}\n\nLimits: {limits}").trim().to_string());
                op.responses.responses.insert(
                    "413".into(),
                    error("over a limit of this request (named in the message): nothing changed")
                        .into(),
                );
            }
            let r = &mut op.responses.responses;
            if writes_repository(method, path) {
                r.insert(
                    "507".into(),
                    error(
                        "the repository's disk is full (N bytes free at PATH, in the message): \
                         nothing of the request was stored and what was committed is intact; \
                         retry once space is freed",
                    )
                    .into(),
                );
            }
            if secured {
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                r.entry("401".into())
                    .or_insert_with(|| error("no token, or an unknown one").into());
                r.entry("403".into()).or_insert_with(|| {
                    error("the token's scope or database does not allow this").into()
                });
            }
            r.entry("4XX".into()).or_insert_with(|| {
                error("refused (malformed, too large, unknown): nothing changed").into()
            });
            r.entry("5XX".into())
                .or_insert_with(|| error("the vault failed: retry later").into());
        }
    }
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
}

/// Whether the operation writes the repository's packs or the vault's catalog, so a full
/// disk refuses it with 507 ([`RepoError::DiskFull`]) rather than a 5xx clients retry at once.
fn writes_repository(method: &str, path: &str) -> bool {
    let route = path.strip_prefix(wire::API).unwrap_or(path);
    matches!(
        (method, route),
        ("PUT", "/chunks")
            | ("POST", "/flush")
            | ("POST" | "DELETE", "/pieces")
            | ("POST", "/recovery-points" | "/jobs")
            | ("DELETE", "/recovery-points/{id}")
            | ("PATCH", "/jobs/{id}")
            | ("PUT", "/agents/{database}")
    )
}

/// What bounds the work of a request, as its operation's description says it: the same
/// constants the handlers and the client use.
fn limits_of(method: &str, path: &str, has_body: bool) -> Option<String> {
    let route = path.strip_prefix(wire::API).unwrap_or(path);
    let json = format!("a JSON body of at most {}.", mib(wire::MAX_JSON_BODY));
    Some(match (method, route) {
        ("POST", "/chunks/missing") => format!("at most {} ids; {json}", wire::MAX_IDS),
        ("POST", "/chunks/read") => format!(
            "at most {} ids, and an answer of at most {} (payloads and their 4-byte lengths; \
             an id asked twice counts twice): ask for fewer ids beyond; {json}",
            wire::MAX_READ_IDS,
            mib(wire::MAX_READ_BYTES)
        ),
        ("POST", "/chunks/values") => format!(
            "at most {} ids; an answer of at most a few KiB per id (a chunk's unit values); \
             {json}",
            wire::MAX_READ_IDS
        ),
        ("PUT", "/chunks") => format!(
            "at most {} chunks and {} per batch. A batch is checked whole (sizes, delta bases) \
             before any of its chunks is stored: a refused batch stores nothing.",
            wire::MAX_IDS,
            mib(wire::MAX_BODY)
        ),
        ("POST", "/pieces") => format!("a manifest of at most {}.", mib(wire::MAX_BODY)),
        _ if has_body => json,
        _ => return None,
    })
}

/// The OpenAPI document of the vault's API (what `/api/v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The router over a repository directory made by `orca repo init`.
pub async fn router(data: &Path) -> Result<Router, VaultError> {
    let store = Store::open_local(data)
        .await
        .map_err(|source| VaultError::Repository {
            path: data.to_path_buf(),
            source: Box::new(source),
        })?;
    // Read the wrapped keys now, so that no session opened during a backup
    // lists the bucket for them.
    orca_repo::Backend::wrapped_keys(&store)
        .await
        .map_err(|source| VaultError::Repository {
            path: data.to_path_buf(),
            source: Box::new(source),
        })?;
    let at = data.to_path_buf();
    let catalog = tokio::task::spawn_blocking(move || db::open(&at))
        .await
        .map_err(|e| VaultError::Runtime(std::io::Error::other(e)))??;
    let (routes, doc) = api();
    let metrics = Arc::new(metrics::Metrics::default());
    let state = Arc::new(AppState {
        store: Arc::new(store),
        tokens: Tokens::of(catalog.clone()),
        groups: Groups::of(catalog.clone()),
        records: Records::of(catalog),
        metrics: metrics.clone(),
        openapi: doc.to_json().expect("the document serialises"),
    });
    Ok(routes
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(metrics, metrics::observe))
        // Handlers read bodies with their own limits (`read_body`); this bounds the framework's.
        .layer(DefaultBodyLimit::max(wire::MAX_JSON_BODY))
        .with_state(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_naming_the_free_bytes_and_other_failures_are_not() {
        let full = RepoError::DiskFull {
            path: "/srv/orca-vault".into(),
            free: 4096,
        };
        let e = ApiError::from(RepoError::PackWrite {
            location: "/srv/orca-vault".into(),
            source: Arc::new(full),
        });
        assert_eq!(e.0, StatusCode::INSUFFICIENT_STORAGE);
        assert!(
            e.1.error
                .contains("the repository's disk is full (4096 bytes free at /srv/orca-vault)"),
            "{}",
            e.1.error
        );
        let other = ApiError::from(RepoError::InvalidArgument("x".into()));
        assert_eq!(other.0, StatusCode::BAD_REQUEST);
    }
}
