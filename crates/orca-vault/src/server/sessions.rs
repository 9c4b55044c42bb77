//! Writer sessions: what lets garbage collection run beside backups through the vault.
//!
//! A session belongs to the database of the token that began it (its holder is recorded as
//! `<database>/<piece>`; database names hold no `/`, so the part before the first one is the
//! owner), so one database's token can neither end nor stretch another's.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use orca_repo::{Backend, Manifest, PieceFilter};

use super::db::GroupRow;
use super::{ApiError, ApiResult, AppState, Caller, JsonBody, St, WRITE};
use crate::wire::{
    self, ErrorBody, LineageRequest, SessionAnswer, SessionGrantBody, SessionRequest, WhoAmI,
};

/// The session `id`, which must belong to the caller's database.
async fn owned(s: &St, c: &Caller, id: u64) -> ApiResult<()> {
    let index = s.store.index().clone();
    let holder = tokio::task::spawn_blocking(move || index.session_holder(id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    match holder {
        Some(h) => c.owns(h.split('/').next()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no writer session {id}"),
            "it ended or expired (10 minutes without renewal): begin a new one",
        )),
    }
}

#[utoipa::path(post, path = "/sessions", tag = "chunks",
    request_body = SessionRequest,
    responses((status = 201, description = "the session; collections keep what it relies on until it ends", body = SessionGrantBody)))]
pub(super) async fn begin(
    State(s): St,
    c: Caller,
    JsonBody(r): JsonBody<SessionRequest>,
) -> ApiResult<(StatusCode, Json<SessionGrantBody>)> {
    c.may(WRITE)?;
    if r.holder.len() > wire::MAX_PIECE_NAME || r.holder.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "holder: at most {} bytes, no control character",
            wire::MAX_PIECE_NAME
        )));
    }
    let g = s
        .store
        .begin_session(&format!("{}/{}", c.db, r.holder), r.lineage_since)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionGrantBody {
            id: g.id,
            started: g.started,
            lineage_ok: g.lineage_ok,
        }),
    ))
}

#[utoipa::path(post, path = "/sessions/{id}/lineage", tag = "chunks",
    params(("id" = u64, Path, description = "the session")),
    request_body = LineageRequest,
    responses(
        (status = 200, description = "ok: the lineage may be relied on, and is kept", body = SessionAnswer),
        (status = 404, description = "no such session", body = ErrorBody)))]
pub(super) async fn adopt(
    s: St,
    c: Caller,
    Path(id): Path<u64>,
    JsonBody(r): JsonBody<LineageRequest>,
) -> ApiResult<Json<SessionAnswer>> {
    c.may(WRITE)?;
    owned(&s, &c, id).await?;
    let ok = s.store.adopt_lineage(id, r.since).await?;
    Ok(Json(SessionAnswer { ok }))
}

#[utoipa::path(post, path = "/sessions/{id}/renew", tag = "chunks",
    params(("id" = u64, Path, description = "the session")),
    responses(
        (status = 200, description = "renewed", body = SessionAnswer),
        (status = 404, description = "no such session", body = ErrorBody)))]
pub(super) async fn renew(s: St, c: Caller, Path(id): Path<u64>) -> ApiResult<Json<SessionAnswer>> {
    c.may(WRITE)?;
    owned(&s, &c, id).await?;
    let ok = s.store.renew_session(id).await?;
    Ok(Json(SessionAnswer { ok }))
}

#[utoipa::path(delete, path = "/sessions/{id}", tag = "chunks",
    params(("id" = u64, Path, description = "the session")),
    responses(
        (status = 204, description = "ended"),
        (status = 404, description = "no such session", body = ErrorBody)))]
pub(super) async fn end(s: St, c: Caller, Path(id): Path<u64>) -> ApiResult<StatusCode> {
    c.may(WRITE)?;
    owned(&s, &c, id).await?;
    s.store.end_session(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The dedup group of `db`, which is placed in one on its first request
/// ([`super::Groups`]: the legacy group when it already has pieces).
pub(super) async fn group_of(s: &Arc<AppState>, db: &str) -> ApiResult<GroupRow> {
    // Only a database not yet placed needs its pieces looked up: ask the catalog first.
    let known = {
        let db = db.to_string();
        s.blocking(move |s| Ok(s.groups.placed(&db)?)).await?
    };
    if let Some(g) = known {
        return Ok(g);
    }
    let filter = PieceFilter {
        database: Some(db.to_string()),
        ..Default::default()
    };
    let pieces = s.store.list(&filter).await?;
    // Pieces from before groups keep their database in the legacy group (their ids, which
    // its next backups dedup against). A database whose newest piece names a group's id key
    // was in a group this catalog does not know (a new host attached to the bucket): a new
    // group of its own, as its pieces are read from what their manifests seal.
    let legacy = match pieces.iter().max_by_key(|p| p.created) {
        None => false,
        Some(p) => match s.store.manifest(&p.name).await? {
            Some(m) => Manifest::decode_unverified(&m, &p.name)?
                .header
                .id_key
                .is_none(),
            None => true,
        },
    };
    let db = db.to_string();
    s.blocking(move |s| Ok(s.groups.of_database(&db, || Ok(legacy))?))
        .await
}

#[utoipa::path(get, path = "/whoami", tag = "service",
    responses((status = 200, description = "the caller's database, scope and dedup group, with the \
        group's secret that chunk ids are keyed by (docs/design.md, Tenants)", body = WhoAmI)))]
pub(super) async fn whoami(State(s): St, c: Caller) -> ApiResult<Json<WhoAmI>> {
    let g = group_of(&s, &c.db).await?;
    Ok(Json(WhoAmI {
        database: c.db.clone(),
        scope: c.scope.to_string(),
        group: Some(g.name),
        group_secret: g.secret.map(hex::encode),
    }))
}
