//! HTTP: the contract's five endpoints under `/druva-phoenix/v1` (the documented base path,
//! kept for the DBAs' scripts) and, the same handlers, under ORCA's `/orca/v1`, where the admin
//! surface and the OpenAPI document live too. Every answer, refusals included, is the
//! contract's envelope `{"error_code", "error_msg", "result"}`.

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use orca_vault::listen::{Limits, is_body_timeout};

use crate::appliance::{Appliance, UploadProgress};
use crate::code::{ApiError, Code};
use crate::multipart;
use crate::retention::Retention;
use crate::state::{Mount, RecoveryPoint, Restore, StoreStatus};

/// The documented base path.
pub const CONTRACT_BASE: &str = "/druva-phoenix/v1";
/// ORCA's own base path: the same contract endpoints plus `admin/` and `openapi.json`.
pub const NATIVE_BASE: &str = "/orca/v1";
/// RMAN logs are text; a few MiB is a long one.
pub const MAX_LOG_BYTES: usize = 64 << 20;
/// Largest admin JSON body.
pub const MAX_JSON_BYTES: usize = 2 << 20;

type St = State<Arc<Appliance>>;

/// The envelope every answer is wrapped in.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Envelope<T> {
    /// 0 on success, else one of the codes listed in this document's description.
    pub error_code: u64,
    pub error_msg: String,
    pub result: T,
}

fn ok<T: Serialize>(result: T) -> Response {
    (
        StatusCode::OK,
        Json(Envelope {
            error_code: 0,
            error_msg: String::new(),
            result,
        }),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let result = match &self.mount {
            Some(m) => json!({ "mount_name": m }),
            None => json!({}),
        };
        (
            self.code.status(),
            Json(Envelope {
                error_code: self.code.value(),
                error_msg: self.text(),
                result,
            }),
        )
            .into_response()
    }
}

type Answer = Result<Response, ApiError>;

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(Code::BadRequest, detail)
}

/// A JSON body the handler could not take: 408 when it did not arrive in time, 413 when it
/// is over its limit, else 400.
fn bad_json(e: JsonRejection) -> ApiError {
    if is_body_timeout(&e) {
        ApiError::new(Code::RequestTimeout, e.body_text())
    } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::BodyTooLarge,
            format!(
                "an admin JSON body holds at most {} MiB",
                MAX_JSON_BYTES >> 20
            ),
        )
    } else {
        bad(e.body_text())
    }
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v).map_err(|e| bad(e.body_text()))
}

#[derive(Serialize, ToSchema)]
pub struct StatusResult {
    pub mount_name: String,
    pub is_reached_max_snapshots: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MountParams {
    pub timeo: u32,
    pub retrans: u32,
}

#[derive(Serialize, ToSchema)]
pub struct StartResult {
    /// The mount's data directory on the store (what is exported over NFS).
    pub mount_path: String,
    pub mount_name: String,
    /// NFS mount options the database host should use.
    pub mount_params: MountParams,
}

#[derive(Serialize, ToSchema)]
pub struct MountResult {
    pub mount_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct EndResult {
    pub snap_name: String,
    pub mount_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeleteRestoreResult {
    pub mount_name: String,
    pub jobid: u64,
}

#[utoipa::path(get, path = "/mounts/{mount}/backup", tag = "backup",
    params(("mount" = String, Path, description = "backup mount name (case-sensitive)")),
    responses((status = 200, description = "the mount's status", body = Envelope<StatusResult>)))]
async fn get_backup(State(app): St, p: Result<Path<String>, PathRejection>) -> Answer {
    let mount = path(p)?;
    let reached = app.status(&mount)?;
    Ok(ok(StatusResult {
        mount_name: mount,
        is_reached_max_snapshots: reached,
    }))
}

#[utoipa::path(post, path = "/mounts/{mount}/backup", tag = "backup",
    params(("mount" = String, Path, description = "backup mount name")),
    responses((status = 200, description = "backup started: RMAN may write into mount_path", body = Envelope<StartResult>)))]
async fn post_backup(State(app): St, p: Result<Path<String>, PathRejection>) -> Answer {
    let mount = path(p)?;
    let dir = app.start_backup(&mount)?;
    Ok(ok(StartResult {
        mount_path: dir.display().to_string(),
        mount_name: mount,
        mount_params: MountParams {
            timeo: app.config().nfs.timeo,
            retrans: app.config().nfs.retrans,
        },
    }))
}

#[utoipa::path(put, path = "/mounts/{mount}/backup", tag = "backup",
    params(("mount" = String, Path, description = "backup mount name")),
    responses((status = 200, description = "recovery point taken and queued for upload", body = Envelope<EndResult>)))]
async fn put_backup(State(app): St, p: Result<Path<String>, PathRejection>) -> Answer {
    let mount = path(p)?;
    let snap = app.end_backup(&mount).await?;
    Ok(ok(EndResult {
        snap_name: snap,
        mount_name: mount,
    }))
}

#[utoipa::path(post, path = "/mounts/{mount}/uploadlog", tag = "backup",
    params(("mount" = String, Path, description = "backup mount name")),
    request_body(content_type = "multipart/form-data", description = "fields `file` (the RMAN log's contents: `-F file=@/path/x.log`), `mountpoint`, `platform`"),
    responses((status = 200, description = "log stored with the coming recovery point", body = Envelope<MountResult>)))]
async fn upload_log(
    State(app): St,
    p: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let mount = path(p)?;
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Code::BodyTooLarge
        } else if is_body_timeout(&e) {
            Code::RequestTimeout
        } else {
            Code::BadRequest
        };
        ApiError::new(
            code,
            format!("{} (at most {MAX_LOG_BYTES} bytes)", e.body_text()),
        )
        .on(&mount)
    })?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parts = multipart::parse(ct, &body).map_err(|m| bad(m).on(&mount))?;
    let field = |n: &str| parts.iter().find(|p| p.name == n);
    let file = field("file").ok_or_else(|| bad("the form has no `file` field").on(&mount))?;
    let Some(file_name) = &file.filename else {
        return Err(bad(format!(
            "the `file` field holds the text {:?}, not a file's contents: the store cannot read a path on the database host; send the log itself with -F \"file=@{}\"",
            String::from_utf8_lossy(&file.data[..file.data.len().min(200)]),
            String::from_utf8_lossy(&file.data[..file.data.len().min(200)])
        ))
        .on(&mount));
    };
    let text = |n: &str| {
        field(n)
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
            .unwrap_or_default()
    };
    app.upload_log(
        &mount,
        file_name,
        &file.data,
        &text("mountpoint"),
        &text("platform"),
    )?;
    Ok(ok(MountResult { mount_name: mount }))
}

#[utoipa::path(delete, path = "/mounts/{mount}/restores/{jobid}", tag = "backup",
    params(("mount" = String, Path, description = "backup mount name"),
           ("jobid" = u64, Path, description = "the restore job's id")),
    responses((status = 200, description = "the restore's folder was removed", body = Envelope<DeleteRestoreResult>)))]
async fn delete_restore(
    State(app): St,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let (mount, jobid) = path(p)?;
    let jobid: u64 = jobid
        .parse()
        .map_err(|_| bad(format!("job id {jobid:?} is not a number")).on(&mount))?;
    app.delete_restore(&mount, jobid)?;
    Ok(ok(DeleteRestoreResult {
        mount_name: mount,
        jobid,
    }))
}

// ---- admin ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct StoreInfo {
    pub store_id: String,
    pub status: StoreStatus,
    pub max_pending: usize,
    pub mounts: usize,
    pub pending: usize,
    /// The vault's address, when one is configured.
    pub vault: Option<String>,
}

#[utoipa::path(get, path = "/admin/store", tag = "admin",
    responses((status = 200, description = "the store", body = Envelope<StoreInfo>)))]
async fn store_info(State(app): St) -> Answer {
    let s = app.snapshot_state();
    Ok(ok(StoreInfo {
        store_id: s.store_id.clone(),
        status: s.status,
        max_pending: app.config().max_pending,
        mounts: s.mounts.len(),
        pending: s.mounts.values().map(|m| m.pending()).sum(),
        vault: app.config().vault.as_ref().map(|v| v.url.clone()),
    }))
}

#[utoipa::path(post, path = "/admin/store/decommission", tag = "admin",
    responses((status = 200, description = "decommissioning: backups are refused; decommissioned once every pending point is uploaded", body = Envelope<StoreStatus>)))]
async fn decommission(State(app): St) -> Answer {
    Ok(ok(app.decommission()?))
}

#[utoipa::path(post, path = "/admin/store/register", tag = "admin",
    responses((status = 200, description = "the store takes backups again", body = Envelope<StoreStatus>)))]
async fn register(State(app): St) -> Answer {
    Ok(ok(app.register()?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewMount {
    pub name: String,
}

#[utoipa::path(get, path = "/admin/mounts", tag = "admin",
    responses((status = 200, description = "every mount", body = Envelope<Vec<Mount>>)))]
async fn mounts(State(app): St) -> Answer {
    Ok(ok(app.mounts()))
}

#[utoipa::path(post, path = "/admin/mounts", tag = "admin", request_body = NewMount,
    responses((status = 200, description = "the mount, its directories created and exported", body = Envelope<Mount>)))]
async fn create_mount(State(app): St, body: Result<Json<NewMount>, JsonRejection>) -> Answer {
    let Json(m) = body.map_err(bad_json)?;
    Ok(ok(app.create_mount(&m.name)?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DeleteMountQuery {
    /// Delete at once, dropping recovery points not yet in the vault.
    #[serde(default)]
    pub force: bool,
}

#[utoipa::path(delete, path = "/admin/mounts/{mount}", tag = "admin",
    params(("mount" = String, Path, description = "backup mount name"), DeleteMountQuery),
    responses((status = 200, description = "marked for deletion; removed once its pending points are uploaded", body = Envelope<MountResult>)))]
async fn delete_mount(
    State(app): St,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<DeleteMountQuery>, QueryRejection>,
) -> Answer {
    let mount = path(p)?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    app.delete_mount(&mount, q.force)?;
    Ok(ok(MountResult { mount_name: mount }))
}

#[utoipa::path(put, path = "/admin/mounts/{mount}/retention", tag = "admin",
    params(("mount" = String, Path, description = "backup mount name")),
    request_body = Option<Retention>,
    responses((status = 200, description = "the mount with its retention (null: keep every point)", body = Envelope<Mount>)))]
async fn set_retention(
    State(app): St,
    p: Result<Path<String>, PathRejection>,
    body: Result<Json<Option<Retention>>, JsonRejection>,
) -> Answer {
    let mount = path(p)?;
    let Json(r) = body.map_err(bad_json)?;
    Ok(ok(app.set_retention(&mount, r)?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PointQuery {
    pub mount: Option<String>,
    /// The database (DB_NAME) the point's RMAN log names.
    pub database: Option<String>,
}

#[utoipa::path(get, path = "/admin/recovery-points", tag = "admin", params(PointQuery),
    responses((status = 200, description = "recovery points, oldest first, with the files and the parsed RMAN log", body = Envelope<Vec<RecoveryPoint>>)))]
async fn points(State(app): St, q: Result<Query<PointQuery>, QueryRejection>) -> Answer {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    Ok(ok(app.points(q.mount.as_deref(), q.database.as_deref())))
}

#[utoipa::path(post, path = "/admin/mounts/{mount}/recovery-points/{snap}/restore", tag = "admin",
    params(("mount" = String, Path, description = "backup mount name"),
           ("snap" = String, Path, description = "the recovery point's snap_name")),
    responses((status = 200, description = "restore started into <root>/<mount>/restores/<jobid>/", body = Envelope<Restore>)))]
async fn start_restore(State(app): St, p: Result<Path<(String, String)>, PathRejection>) -> Answer {
    let (mount, snap) = path(p)?;
    Ok(ok(app.start_restore(&mount, &snap)?))
}

/// What a point-in-time restore asks for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UntilRequest {
    /// The database's time to recover to, `YYYY-MM-DD HH:MM:SS` in the store's time zone.
    until_time: String,
}

#[utoipa::path(post, path = "/admin/mounts/{mount}/restore", tag = "admin",
    params(("mount" = String, Path, description = "backup mount name")),
    request_body = UntilRequest,
    responses((status = 200, description = "restore started into <root>/<mount>/restores/<jobid>/: the image \
        copies of the newest point taken at or before `until_time`, the archived logs of the first point taken \
        after it, and in `rman` the commands that recover the database from them to `until_time`", body = Envelope<Restore>)))]
async fn start_restore_until(
    State(app): St,
    p: Result<Path<String>, PathRejection>,
    body: Result<Json<UntilRequest>, JsonRejection>,
) -> Answer {
    let mount = path(p)?;
    let Json(r) = body.map_err(bad_json)?;
    Ok(ok(app.start_restore_until(&mount, &r.until_time)?))
}

#[utoipa::path(get, path = "/admin/restores/{jobid}", tag = "admin",
    params(("jobid" = u64, Path, description = "the restore job's id")),
    responses((status = 200, description = "the restore job", body = Envelope<Restore>)))]
async fn restore(State(app): St, p: Result<Path<String>, PathRejection>) -> Answer {
    let id = path(p)?;
    let id: u64 = id
        .parse()
        .map_err(|_| bad(format!("job id {id:?} is not a number")))?;
    Ok(ok(app.restore(id)?))
}

#[derive(Serialize, ToSchema)]
pub struct Uploads {
    /// The point being uploaded now.
    pub current: Option<UploadProgress>,
    /// Every point waiting for upload, oldest first.
    pub pending: Vec<RecoveryPoint>,
}

#[utoipa::path(get, path = "/admin/uploads", tag = "admin",
    responses((status = 200, description = "upload progress", body = Envelope<Uploads>)))]
async fn uploads(State(app): St) -> Answer {
    let (current, pending) = app.uploads();
    Ok(ok(Uploads { current, pending }))
}

#[utoipa::path(get, path = "/openapi.json", tag = "admin",
    responses((status = 200, description = "this document", body = Object)))]
async fn openapi_json() -> Response {
    let doc = api().1;
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_pretty_json().unwrap_or_default(),
    )
        .into_response()
}

async fn unknown_route() -> ApiError {
    ApiError::new(
        Code::UnknownRoute,
        format!("see {NATIVE_BASE}/openapi.json for the routes"),
    )
}

#[derive(OpenApi)]
#[openapi(info(
    title = "ORCA backup store",
    description = "The backup-store appliance. The contract endpoints are served under /druva-phoenix/v1 \
        (for existing template scripts) and /orca/v1. Every answer is {\"error_code\", \"error_msg\", \"result\"}; \
        error_code 0 is success. Contract codes: 4295622675 Store Decommission in progress. | \
        4295622676 Store was decommissioned. | 4295622665 Backup mount does not exist on Export Service. | \
        4295622669 Backup mount is inconsistent state on Export Service. | \
        4295622667 Backup mount marked for delete on Export Service. | 4295622670 Failed to export path to NFS. | \
        4295622659 START_BACKUP cmd not received yet. | 4295622664 Backup mount exceeded max pending snapshots. | \
        4295622663 Restore Path is missing on Export Service. ORCA's own: 4295626753 bad request (malformed \
        multipart, a path sent instead of the log's contents, bad JSON or parameters) | 4295626754 invalid mount name | \
        4295626755 unknown route | 4295626756 body too large | 4295626757 mount exists | \
        4295626758 recovery point does not exist | 4295626759 restore job does not exist | 4295626760 internal error | 4295626761 admin token missing or wrong (admin routes of a store with \
        admin_token_file; send Authorization: Bearer <token>) | 4295626762 request timeout (a body that did not \
        arrive within the store's body timeout). \
        A refused request changes nothing. Bodies: an RMAN log of at most 64 MiB, admin JSON of at most 2 MiB. \
        Slow clients are cut off: request headers must arrive within the store's header timeout (default 30 s), \
        a body within its body timeout (default 300 s), and a connection with no request for its idle timeout \
        (default 120 s) is closed; at most max-connections (default 1024) are served at once."
))]
struct ApiDoc;

fn contract() -> OpenApiRouter<Arc<Appliance>> {
    OpenApiRouter::new()
        .routes(routes!(get_backup, post_backup, put_backup))
        .routes(routes!(upload_log))
        .routes(routes!(delete_restore))
        .layer(DefaultBodyLimit::max(MAX_LOG_BYTES))
}

fn api() -> (Router<Arc<Appliance>>, utoipa::openapi::OpenApi) {
    let native = contract()
        .routes(routes!(store_info))
        .routes(routes!(decommission))
        .routes(routes!(register))
        .routes(routes!(mounts, create_mount))
        .routes(routes!(delete_mount))
        .routes(routes!(set_retention))
        .routes(routes!(points))
        .routes(routes!(start_restore))
        .routes(routes!(start_restore_until))
        .routes(routes!(restore))
        .routes(routes!(uploads))
        .routes(routes!(openapi_json));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(CONTRACT_BASE, contract())
        .nest(NATIVE_BASE, native)
        .split_for_parts()
}

pub fn router(app: Arc<Appliance>) -> Router {
    api()
        .0
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_route)
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            admin_auth,
        ))
        .with_state(app)
}

/// Admin routes take requests bearing the store's admin token, when it has one.
async fn admin_auth(
    State(app): St,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let admin = req
        .uri()
        .path()
        .strip_prefix(NATIVE_BASE)
        .is_some_and(|p| p.starts_with("/admin/") || p == "/admin");
    if let (true, Some(token)) = (admin, &app.admin_token) {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            let why = if given.is_empty() {
                "no Authorization: Bearer header; give the token with --admin-token or ORCA_STORE_ADMIN_TOKEN"
            } else {
                "the token is not the store's admin token"
            };
            return ApiError::new(Code::Unauthorized, why).into_response();
        }
    }
    next.run(req).await
}

/// Compares in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Serves until the process ends, with the upload queue running beside it; slow clients are
/// cut off and connections bounded by `limits`.
pub async fn serve(
    app: Arc<Appliance>,
    listen: &str,
    limits: Limits,
) -> Result<(), crate::StoreError> {
    let listener =
        tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| crate::StoreError::Listen {
                addr: listen.to_string(),
                source: e,
            })?;
    serve_on(app, listener, limits).await
}

/// [`serve`] on a bound listener (tests bind port 0).
pub async fn serve_on(
    app: Arc<Appliance>,
    listener: tokio::net::TcpListener,
    limits: Limits,
) -> Result<(), crate::StoreError> {
    tokio::spawn(crate::upload::run(app.clone()));
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%addr, "backup store listening");
    match orca_vault::listen::serve(listener, router(app), limits, None).await {}
}
