//! Chunks and pieces: the repository, as the `Backend` trait sees it, over HTTP.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orca_repo::Manifest;
use orca_repo::{Backend, ChunkId, PieceFilter, PieceInfo, RepoError};

use super::schema::{NameQuery, PieceInfoSchema, PieceQuery};
use super::{ApiError, ApiResult, AppState, Caller, JsonBody, READ, St, WRITE};
use crate::wire::{self, ErrorBody, Ids};

/// The catalog entry of `name`, which must belong to the caller's database.
async fn owned_piece(s: &AppState, c: &Caller, name: &str) -> ApiResult<PieceInfo> {
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
    c.owns(info.database.as_deref())?;
    Ok(info)
}

fn ids(body: Ids) -> ApiResult<Vec<ChunkId>> {
    wire::ids_from_hex(&body.ids)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e, "ids are 64 hex digits"))
}

#[utoipa::path(get, path = "/config", tag = "pieces",
    responses((status = 200, description = "the repository's config file, as `orca repo init` wrote it", body = Object)))]
pub(super) async fn config(State(s): St, c: Caller) -> ApiResult<Response> {
    c.may(READ)?;
    let cfg = s.store.config().to_json();
    Ok(([(header::CONTENT_TYPE, "application/json")], cfg).into_response())
}

#[utoipa::path(get, path = "/keys", tag = "pieces",
    responses((status = 200, description = "the master key, wrapped by each passphrase (useless without one)", body = [Object])))]
pub(super) async fn keys(State(s): St, c: Caller) -> ApiResult<Response> {
    c.may(READ)?;
    Ok(Json(s.store.wrapped_keys().await?).into_response())
}

#[utoipa::path(post, path = "/chunks/missing", tag = "chunks",
    request_body = Ids,
    responses((status = 200, description = "the ids the vault does not hold; the others count as referenced now", body = Ids)))]
pub(super) async fn missing(
    State(s): St,
    c: Caller,
    JsonBody(body): JsonBody<Ids>,
) -> ApiResult<Json<Ids>> {
    c.may(WRITE)?;
    let ids = ids(body)?;
    let m = s.store.missing(&ids).await?;
    s.metrics.probe(ids.len(), m.len());
    Ok(Json(Ids::of(&m)))
}

#[utoipa::path(put, path = "/chunks", tag = "chunks",
    request_body(content(("application/octet-stream")),
        description = "repeat { id [32] | raw_len u32 LE | payload_len u32 LE | payload }"),
    responses((status = 204, description = "stored (chunks already held are ignored)")))]
pub(super) async fn upload(
    State(s): St,
    c: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    c.may(WRITE)?;
    let chunks = wire::decode_chunks(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            e,
            "see PUT /api/v1/chunks in /api/v1/openapi.json for the framing",
        )
    })?;
    let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
    let absent: HashSet<ChunkId> = s.store.missing(&ids).await?.into_iter().collect();
    let (mut dup_chunks, mut dup_bytes, mut bytes) = (0, 0, 0);
    for c in &chunks {
        bytes += c.payload.len() as u64;
        if !absent.contains(&c.id) {
            dup_chunks += 1;
            dup_bytes += c.payload.len() as u64;
        }
    }
    let n = chunks.len();
    s.store.put_chunks(chunks).await?;
    s.metrics.upload(n, bytes, dup_chunks, dup_bytes);
    if let Some(id) = headers
        .get(wire::COMMAND_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 256)
    {
        s.metrics
            .transfer((&c.db, id), n, bytes, dup_chunks, dup_bytes);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/transfers/{command_id}", tag = "chunks",
    params(("command_id" = String, Path, description = "the backup's RMAN command id")),
    responses((status = 200, description = "what the vault received for the backup since it started (uploads naming the command id in x-orca-command-id)", body = wire::Transfer)))]
pub(super) async fn transfer(
    State(s): St,
    c: Caller,
    Path(command_id): Path<String>,
) -> ApiResult<Json<wire::Transfer>> {
    c.may(READ)?;
    Ok(Json(s.metrics.transfer_of(&c.db, &command_id)))
}

#[utoipa::path(post, path = "/chunks/read", tag = "chunks",
    request_body = Ids,
    responses(
        (status = 200, description = "repeat { payload_len u32 LE | payload }, in the order asked",
            content(("application/octet-stream"))),
        (status = 404, description = "a chunk is not stored", body = ErrorBody)))]
pub(super) async fn read(
    State(s): St,
    c: Caller,
    JsonBody(body): JsonBody<Ids>,
) -> ApiResult<Response> {
    c.may(READ)?;
    let ids = ids(body)?;
    let absent: HashSet<_> = s.store.missing(&ids).await?.into_iter().collect();
    if let Some(id) = ids.iter().find(|i| absent.contains(i)) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("chunk {} is not stored", id.short()),
            "the piece is damaged: run `orca verify` on the vault's repository",
        ));
    }
    let payloads = s.store.get_chunks(&ids).await?;
    let body = wire::encode_payloads(&payloads);
    s.metrics.chunk_read(ids.len(), body.len() as u64);
    Ok(body.into_response())
}

#[utoipa::path(post, path = "/flush", tag = "chunks",
    responses((status = 204, description = "every chunk accepted so far is durable")))]
pub(super) async fn flush(State(s): St, c: Caller) -> ApiResult<StatusCode> {
    c.may(WRITE)?;
    s.store.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/pieces", tag = "pieces",
    request_body(content(("application/octet-stream")),
        description = "the piece's manifest (docs/design.md, Manifests)"),
    responses(
        (status = 201, description = "committed", body = PieceInfoSchema),
        (status = 409, description = "name taken, or chunks missing (listed in `missing`)", body = ErrorBody)))]
pub(super) async fn commit(State(s): St, c: Caller, body: Bytes) -> ApiResult<Response> {
    c.may(WRITE)?;
    let m = Manifest::decode_unverified(&body, "manifest upload")?;
    c.owns(m.header.meta.database.as_deref())?;
    let info = s.store.commit(body).await?;
    s.metrics.commit();
    tracing::info!(
        piece = %info.name,
        database = info.database.as_deref().unwrap_or("-"),
        bytes = info.size,
        "piece committed"
    );
    Ok((StatusCode::CREATED, Json(PieceInfoSchema::from(info))).into_response())
}

#[utoipa::path(get, path = "/pieces", tag = "pieces",
    params(PieceQuery),
    responses((status = 200, description = "the pieces, by name", body = [PieceInfoSchema])))]
pub(super) async fn list(
    State(s): St,
    c: Caller,
    Query(mut q): Query<PieceQuery>,
) -> ApiResult<Json<Vec<PieceInfoSchema>>> {
    c.may(READ)?;
    q.database = c.listing(q.database.take())?;
    let pieces = s.store.list(&PieceFilter::from(q)).await?;
    Ok(Json(pieces.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/pieces/info", tag = "pieces",
    params(NameQuery),
    responses(
        (status = 200, description = "the piece's catalog entry", body = PieceInfoSchema),
        (status = 404, description = "no such piece", body = ErrorBody)))]
pub(super) async fn info(
    State(s): St,
    c: Caller,
    Query(q): Query<NameQuery>,
) -> ApiResult<Json<PieceInfoSchema>> {
    c.may(READ)?;
    Ok(Json(owned_piece(&s, &c, &q.name).await?.into()))
}

#[utoipa::path(get, path = "/pieces/manifest", tag = "pieces",
    params(NameQuery),
    responses(
        (status = 200, description = "the piece's manifest", content(("application/octet-stream"))),
        (status = 404, description = "no such piece", body = ErrorBody)))]
pub(super) async fn manifest(
    State(s): St,
    c: Caller,
    Query(q): Query<NameQuery>,
) -> ApiResult<Response> {
    c.may(READ)?;
    owned_piece(&s, &c, &q.name).await?;
    match s.store.manifest(&q.name).await? {
        Some(b) => Ok(b.into_response()),
        None => Err(RepoError::PieceNotFound { name: q.name }.into()),
    }
}

#[utoipa::path(delete, path = "/pieces", tag = "pieces",
    params(NameQuery),
    responses(
        (status = 204, description = "deleted; its chunks become garbage once nothing references them"),
        (status = 404, description = "no such piece", body = ErrorBody)))]
pub(super) async fn delete(
    State(s): St,
    c: Caller,
    Query(q): Query<NameQuery>,
) -> ApiResult<StatusCode> {
    c.may(WRITE)?;
    owned_piece(&s, &c, &q.name).await?;
    if s.store.delete(&q.name).await? {
        tracing::info!(piece = %q.name, "piece deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(RepoError::PieceNotFound { name: q.name }.into())
    }
}

/// The committed pieces among `names` that belong to `db`, and the names that are not.
pub(super) async fn committed(
    s: &Arc<AppState>,
    db: &str,
    names: &[String],
) -> ApiResult<(Vec<PieceInfo>, Vec<String>)> {
    let filter = PieceFilter {
        database: Some(db.to_string()),
        ..Default::default()
    };
    let mut by_name: HashMap<String, PieceInfo> = s
        .store
        .list(&filter)
        .await?
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    let mut found = Vec::with_capacity(names.len());
    let mut absent = Vec::new();
    // A name given twice (a view that lists a piece once per session) is one piece, found
    // or absent once.
    let mut seen = std::collections::HashSet::new();
    for name in names.iter().filter(|n| seen.insert(n.as_str())) {
        match by_name.remove(name) {
            Some(p) => found.push(p),
            None => absent.push(name.clone()),
        }
    }
    Ok((found, absent))
}
