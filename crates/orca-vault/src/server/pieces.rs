//! Chunks and pieces: the repository, as the `Backend` trait sees it, over HTTP.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use orca_repo::Manifest;
use orca_repo::{Backend, ChunkId, PieceFilter, PieceInfo, RepoError};

use super::schema::{NameQuery, PieceInfoSchema, PieceQuery};
use super::{
    ApiError, ApiResult, AppState, Caller, JsonBody, READ, RawBody, Scope, St, WRITE, mib,
    too_large,
};
use crate::wire::{self, ErrorBody, Ids};

/// Chunk payloads read at once while a read's answer is streamed: what one read holds in
/// memory, whatever its size.
const READ_SLICE: u64 = 8 << 20;

/// Checks the name of a piece being committed against the token and the manifest: 400 unless
/// it is a vault piece name (`DBNAME/handle`, no control character, not too long) of the
/// database its manifest names, 403 unless that is the token's database. An admin token may
/// also commit a piece of no database, under any name a piece may have.
fn check_name(c: &Caller, name: &str, database: Option<&str>) -> ApiResult<()> {
    let bad = |e: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            e,
            "pieces sent through the vault are named DBNAME/handle (the SBT library does so)",
        )
    };
    if c.scope == Scope::Admin && database.is_none() {
        return wire::check_piece_name(name).map_err(bad);
    }
    let db = wire::piece_database(name).map_err(bad)?;
    if c.scope != Scope::Admin && db != c.db {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token belongs to database {} and may not commit pieces named {db}/...",
                c.db
            ),
            format!(
                "name the database's pieces {}/handle, or use {db}'s token",
                c.db
            ),
        ));
    }
    c.owns(database)?;
    if database != Some(db) {
        return Err(bad(format!(
            "piece {name:?} is named for database {db} but its manifest says {}",
            database.unwrap_or("none")
        )));
    }
    Ok(())
}

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

/// The ids of a request that may name at most `max`.
fn ids(body: Ids, max: usize) -> ApiResult<Vec<ChunkId>> {
    if body.ids.len() > max {
        return Err(too_large(
            format!(
                "{} ids are over the limit of {max} per request",
                body.ids.len()
            ),
            &format!("{max} ids"),
        ));
    }
    wire::ids_from_hex(&body.ids)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e, "ids are 64 hex digits"))
}

fn not_stored(id: &ChunkId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("chunk {} is not stored", id.short()),
        "the piece is damaged: run `orca verify` on the vault's repository",
    )
}

/// The payload size of each of `ids`, from the index: 404 for a chunk the vault does not hold.
async fn payload_sizes(s: &AppState, ids: &[ChunkId]) -> ApiResult<Vec<u64>> {
    let locate = |ids: Vec<ChunkId>| {
        let index = s.store.index().clone();
        async move {
            tokio::task::spawn_blocking(move || index.locate(&ids))
                .await
                .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
                .map_err(ApiError::from)
        }
    };
    let mut found = locate(ids.to_vec()).await?;
    let unlocated: Vec<ChunkId> = ids
        .iter()
        .zip(&found)
        .filter(|(_, l)| l.is_none())
        .map(|(id, _)| *id)
        .collect();
    if !unlocated.is_empty() {
        if let Some(id) = s.store.missing(&unlocated).await?.first() {
            return Err(not_stored(id));
        }
        // Uploaded, but still in a pack being written: its chunks are indexed once it is.
        s.store.flush().await?;
        found = locate(ids.to_vec()).await?;
    }
    ids.iter()
        .zip(found)
        .map(|(id, l)| {
            l.map(|l| u64::from(l.entry.payload_len))
                .ok_or_else(|| not_stored(id))
        })
        .collect()
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
    let ids = ids(body, wire::MAX_IDS)?;
    let m = s.store.missing(&ids).await?;
    s.metrics.probe(ids.len(), m.len());
    Ok(Json(Ids::of(&m)))
}

#[utoipa::path(put, path = "/chunks", tag = "chunks",
    request_body(content(("application/octet-stream")),
        description = "repeat { id [32] | raw_len u32 LE | payload_len u32 LE | payload }"),
    responses((status = 204, description = "stored durably: packs written and synced before the answer (chunks already held are ignored)")))]
pub(super) async fn upload(
    State(s): St,
    c: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody<{ wire::MAX_BODY }>,
) -> ApiResult<StatusCode> {
    c.may(WRITE)?;
    let chunks = wire::decode_chunks(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            e,
            "see PUT /api/v1/chunks in /api/v1/openapi.json for the framing",
        )
    })?;
    if chunks.len() > wire::MAX_IDS {
        return Err(too_large(
            format!(
                "a batch of {} chunks is over the limit of {}",
                chunks.len(),
                wire::MAX_IDS
            ),
            &format!("{} chunks", wire::MAX_IDS),
        ));
    }
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
    // A 204 means durable: a client that saw it never sends these chunks again, so they
    // must not wait in the open pack for a kill -9 to lose them.
    s.store.persist(&ids).await?;
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
    let ids = ids(body, wire::MAX_READ_IDS)?;
    let sizes = payload_sizes(&s, &ids).await?;
    let total: u64 = sizes.iter().map(|n| 4 + n).sum();
    if total > wire::MAX_READ_BYTES as u64 {
        return Err(too_large(
            format!(
                "an answer of {total} bytes is over the limit of {} per read",
                mib(wire::MAX_READ_BYTES)
            ),
            &mib(wire::MAX_READ_BYTES),
        ));
    }
    // Streamed a slice at a time, so a read holds a few MiB whatever it asks for; the first
    // slice is read before answering, so a read that fails at once gets its status.
    let mut slices: Vec<Vec<ChunkId>> = Vec::new();
    let mut filled = READ_SLICE;
    for (id, size) in ids.iter().zip(&sizes) {
        if filled + size > READ_SLICE {
            slices.push(Vec::new());
            filled = 0;
        }
        filled += size;
        slices.last_mut().expect("pushed above").push(*id);
    }
    let mut slices = slices.into_iter();
    let first = match slices.next() {
        Some(slice) => wire::encode_payloads(&s.store.get_chunks(&slice).await?),
        None => Bytes::new(),
    };
    s.metrics.chunk_read(ids.len(), total);
    let store = s.store.clone();
    let rest = futures::stream::iter(slices).then(move |slice| {
        let store = store.clone();
        async move {
            match store.get_chunks(&slice).await {
                Ok(p) => Ok(wire::encode_payloads(&p)),
                Err(e) => {
                    tracing::error!(error = %e, "a chunk read failed while its answer was sent");
                    Err(e)
                }
            }
        }
    });
    let stream = futures::stream::once(async move { Ok::<_, RepoError>(first) }).chain(rest);
    Ok(Body::from_stream(stream).into_response())
}

#[utoipa::path(post, path = "/chunks/values", tag = "chunks",
    request_body = Ids,
    responses(
        (status = 200, description = "repeat { len u32 LE | the first len bytes of the payload, \
            which hold its unit values (0: a payload written without them) }, in the order asked",
            content(("application/octet-stream"))),
        (status = 404, description = "a chunk is not stored", body = ErrorBody)))]
pub(super) async fn values(
    State(s): St,
    c: Caller,
    JsonBody(body): JsonBody<Ids>,
) -> ApiResult<Response> {
    c.may(READ)?;
    let ids = ids(body, wire::MAX_READ_IDS)?;
    let got = s.store.get_values(&ids).await?;
    let prefixes: Vec<Bytes> = got.into_iter().map(Option::unwrap_or_default).collect();
    let answer = wire::encode_payloads(&prefixes);
    s.metrics.chunk_read(ids.len(), answer.len() as u64);
    Ok(answer.into_response())
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
pub(super) async fn commit(
    State(s): St,
    c: Caller,
    RawBody(body): RawBody<{ wire::MAX_BODY }>,
) -> ApiResult<Response> {
    c.may(WRITE)?;
    let m = Manifest::decode_unverified(&body, "manifest upload")?;
    check_name(&c, &m.header.name, m.header.meta.database.as_deref())?;
    // A client from before dedup groups keys ids by the repository key alone: in a group of
    // its own, what it wrote would not be read back by the group's up-to-date clients.
    if m.header.id_key.is_none() && super::sessions::group_of(&s, &c.db).await?.secret.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "piece {:?} was written without the chunk-id key of database {}'s dedup group",
                m.header.name, c.db
            ),
            "the client is older than the vault's dedup groups: upgrade it (orca, the SBT library)",
        ));
    }
    let info = s.store.commit(body).await?;
    s.metrics.commit();
    tracing::info!(
        piece = ?info.name,
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
        tracing::info!(piece = ?q.name, "piece deleted");
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
