//! Recovery points and job records: what the agent and the appliance keep in the vault.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;

use super::db::{Record, Selection};
use super::pieces::committed;
use super::{ApiError, ApiResult, Caller, JsonBody, READ, St, WRITE};
use crate::wire::{
    ErrorBody, Job, JobFilter, JobProgress, JobState, JobUpdate, NewJob, NewRecoveryPoint,
    RecoveryPoint, RecoveryPointFilter, RecoveryPointStats, check_database_name,
};

const MAX_MESSAGE: usize = 16 << 10;
const MAX_LABELS: usize = 64;

fn check_id(id: &str) -> ApiResult<()> {
    let ok = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{id:?} is not an id: 1 to 128 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn check_database(db: &str) -> ApiResult<()> {
    check_database_name(db).map_err(ApiError::invalid)
}

fn check_labels(labels: &BTreeMap<String, String>) -> ApiResult<()> {
    if labels.len() > MAX_LABELS
        || labels
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 4096)
    {
        return Err(ApiError::invalid(format!(
            "labels: at most {MAX_LABELS}, keys of 1 to 128 bytes, values of at most 4096"
        )));
    }
    Ok(())
}

fn check_message(m: &str) -> ApiResult<()> {
    if m.len() > MAX_MESSAGE {
        return Err(ApiError::invalid(format!(
            "a message of {} bytes is over the limit of {MAX_MESSAGE}",
            m.len()
        )));
    }
    Ok(())
}

/// The caller's id, or a fresh one.
fn id_or_new(id: Option<String>, prefix: &str) -> ApiResult<String> {
    match id {
        Some(id) => check_id(&id).map(|_| id),
        None => {
            let mut raw = [0u8; 8];
            getrandom::fill(&mut raw)
                .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
            Ok(format!("{prefix}-{}", hex::encode(raw)))
        }
    }
}

/// 403 unless the caller may write `db`'s records; 422 when `db` names no database.
fn may_write(c: &Caller, db: &str) -> ApiResult<()> {
    c.may(WRITE)?;
    check_database(db)?;
    c.owns(Some(db))
}

/// Stores a new record: 201 with it, 409 when its id is taken.
async fn insert<R: Record + Clone>(s: &St, r: R) -> ApiResult<(StatusCode, Json<R>)> {
    let stored = r.clone();
    if s.blocking(move |s| Ok(s.records.insert(&stored)?)).await? {
        Ok((StatusCode::CREATED, Json(r)))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{} {:?} exists", R::TYPE, r.id()),
            "choose another id, or leave it out to get a fresh one",
        ))
    }
}

/// The record `id`, which must belong to the caller's database.
async fn owned<R: Record>(s: &St, c: &Caller, id: String) -> ApiResult<R> {
    check_id(&id)?;
    let found = {
        let id = id.clone();
        s.blocking(move |s| Ok(s.records.get::<R>(&id)?)).await?
    };
    let r = found.ok_or_else(|| ApiError::not_found(R::TYPE, &id))?;
    c.owns(Some(r.database()))?;
    Ok(r)
}

/// The records the caller may read among `sel`.
async fn list<R: Record>(s: &St, c: &Caller, mut sel: Selection) -> ApiResult<Json<Vec<R>>> {
    c.may(READ)?;
    sel.database = c.listing(sel.database.take())?;
    Ok(Json(s.blocking(move |s| Ok(s.records.list(&sel)?)).await?))
}

#[utoipa::path(post, path = "/recovery-points", tag = "records",
    request_body = NewRecoveryPoint,
    responses(
        (status = 201, description = "recorded", body = RecoveryPoint),
        (status = 409, description = "id taken, or pieces not committed for the database (listed in `missing_pieces`)", body = ErrorBody),
        (status = 422, description = "a field is out of range", body = ErrorBody)))]
pub(super) async fn create_recovery_point(
    s: St,
    c: Caller,
    JsonBody(new): JsonBody<NewRecoveryPoint>,
) -> ApiResult<(StatusCode, Json<RecoveryPoint>)> {
    may_write(&c, &new.database)?;
    check_labels(&new.labels)?;
    if new.pieces.is_empty() {
        return Err(ApiError::invalid("a recovery point needs pieces"));
    }
    if let (Some(first), Some(next)) = (new.first_scn, new.next_scn)
        && first > next
    {
        return Err(ApiError::invalid(format!(
            "first_scn {first} is after next_scn {next}"
        )));
    }
    let (pieces, absent) = committed(&s, &new.database, &new.pieces).await?;
    if !absent.is_empty() {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{} of the pieces are not committed for database {}: {}",
                absent.len(),
                new.database,
                absent.join(", ")
            ),
            "commit the pieces first, or leave them out",
        );
        e.1.missing_pieces = absent;
        return Err(e);
    }
    let rp = RecoveryPoint {
        id: id_or_new(new.id, "rp")?,
        database: new.database,
        dbid: new.dbid,
        kind: new.kind,
        created: new.created.unwrap_or_else(orca_repo::now_unix),
        first_scn: new.first_scn,
        next_scn: new.next_scn,
        stats: RecoveryPointStats {
            pieces: pieces.len() as u64,
            bytes: pieces.iter().map(|p| p.size).sum(),
            stored: pieces.iter().map(|p| p.stored).sum(),
        },
        pieces: new.pieces,
        labels: new.labels,
    };
    insert(&s, rp).await
}

#[utoipa::path(get, path = "/recovery-points", tag = "records",
    params(RecoveryPointFilter),
    responses((status = 200, description = "the recovery points, oldest first", body = [RecoveryPoint])))]
pub(super) async fn recovery_points(
    s: St,
    c: Caller,
    Query(f): Query<RecoveryPointFilter>,
) -> ApiResult<Json<Vec<RecoveryPoint>>> {
    list(&s, &c, f.into()).await
}

#[utoipa::path(get, path = "/recovery-points/{id}", tag = "records",
    params(("id" = String, Path, description = "the recovery point's id")),
    responses(
        (status = 200, description = "the recovery point", body = RecoveryPoint),
        (status = 404, description = "no such recovery point", body = ErrorBody)))]
pub(super) async fn recovery_point(
    s: St,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RecoveryPoint>> {
    c.may(READ)?;
    Ok(Json(owned(&s, &c, id).await?))
}

#[utoipa::path(delete, path = "/recovery-points/{id}", tag = "records",
    params(("id" = String, Path, description = "the recovery point's id")),
    responses(
        (status = 204, description = "the record is gone; its pieces stay until deleted themselves"),
        (status = 404, description = "no such recovery point", body = ErrorBody)))]
pub(super) async fn delete_recovery_point(
    s: St,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    c.may(WRITE)?;
    let id = owned::<RecoveryPoint>(&s, &c, id).await?.id;
    let gone = {
        let id = id.clone();
        s.blocking(move |s| Ok(s.records.delete::<RecoveryPoint>(&id)?))
            .await?
    };
    if gone {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(RecoveryPoint::TYPE, &id))
    }
}

#[utoipa::path(post, path = "/jobs", tag = "records",
    request_body = NewJob,
    responses(
        (status = 201, description = "recorded, queued", body = Job),
        (status = 409, description = "id taken", body = ErrorBody),
        (status = 422, description = "a field is out of range", body = ErrorBody)))]
pub(super) async fn create_job(
    s: St,
    c: Caller,
    JsonBody(new): JsonBody<NewJob>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    may_write(&c, &new.database)?;
    check_message(&new.message)?;
    let kind_ok = (1..=64).contains(&new.kind.len())
        && new
            .kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b));
    if !kind_ok {
        return Err(ApiError::invalid(format!(
            "{:?} is not a job kind: 1 to 64 lowercase letters, digits, '-' or '_'",
            new.kind
        )));
    }
    let job = Job {
        id: id_or_new(new.id, "job")?,
        database: new.database,
        kind: new.kind,
        state: JobState::Queued,
        requested: orca_repo::now_unix(),
        started: None,
        finished: None,
        message: new.message,
        progress: JobProgress {
            bytes_done: 0,
            bytes_estimated: new.bytes_estimated,
        },
        trigger: new.trigger,
        deadline: new.deadline,
        details: BTreeMap::new(),
    };
    insert(&s, job).await
}

#[utoipa::path(get, path = "/jobs", tag = "records",
    params(JobFilter),
    responses((status = 200, description = "the jobs, oldest request first", body = [Job])))]
pub(super) async fn jobs(
    s: St,
    c: Caller,
    Query(f): Query<JobFilter>,
) -> ApiResult<Json<Vec<Job>>> {
    // Selected by state after overdue jobs failed, so that they count as failed already.
    let mut sel: Selection = f.into();
    let asked = sel.state.take();
    let Json(found) = list::<Job>(&s, &c, sel).await?;
    let mut out = Vec::with_capacity(found.len());
    for j in found {
        let j = expire_overdue(&s, j).await?;
        if asked.as_deref().is_none_or(|a| a == j.state.as_str()) {
            out.push(j);
        }
    }
    Ok(Json(out))
}

/// A queued job past its deadline fails, recorded the first time anyone looks at it: nothing
/// started it within its window, so no agent was running for its database.
async fn expire_overdue(s: &St, job: Job) -> ApiResult<Job> {
    let now = orca_repo::now_unix();
    let overdue = job.state == JobState::Queued && job.deadline.is_some_and(|d| d <= now);
    if !overdue {
        return Ok(job);
    }
    let mut failed = job.clone();
    failed.state = JobState::Failed;
    failed.finished = Some(now);
    failed.message = format!(
        "the {} job's window closed {}s ago before an agent started it: the agent is not running",
        job.trigger.as_str(),
        now - job.deadline.unwrap_or(now)
    );
    let (old, new) = (job, failed.clone());
    if s.blocking(move |s| Ok(s.records.replace(&old, &new)?))
        .await?
    {
        Ok(failed)
    } else {
        // Someone else changed it meanwhile (an agent took it, or another reader expired it).
        let id = failed.id.clone();
        s.blocking(move |s| Ok(s.records.get::<Job>(&id)?))
            .await?
            .ok_or_else(|| ApiError::not_found(Job::TYPE, &failed.id))
    }
}

#[utoipa::path(get, path = "/jobs/{id}", tag = "records",
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "the job", body = Job),
        (status = 404, description = "no such job", body = ErrorBody)))]
pub(super) async fn job(s: St, c: Caller, Path(id): Path<String>) -> ApiResult<Json<Job>> {
    c.may(READ)?;
    let j = owned(&s, &c, id).await?;
    Ok(Json(expire_overdue(&s, j).await?))
}

#[utoipa::path(patch, path = "/jobs/{id}", tag = "records",
    params(("id" = String, Path, description = "the job's id")),
    request_body = JobUpdate,
    responses(
        (status = 200, description = "the job as it is now", body = Job),
        (status = 404, description = "no such job", body = ErrorBody),
        (status = 409, description = "the job is finished, the change of state is not allowed, or it changed meanwhile", body = ErrorBody)))]
pub(super) async fn update_job(
    s: St,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(u): JsonBody<JobUpdate>,
) -> ApiResult<Json<Job>> {
    c.may(WRITE)?;
    if let Some(m) = &u.message {
        check_message(m)?;
    }
    check_labels(&u.details)?;
    let old: Job = owned(&s, &c, id).await?;
    let old = expire_overdue(&s, old).await?;
    let mut job = old.clone();
    let now = orca_repo::now_unix();
    if let Some(next) = u.state {
        if !old.state.may_become(next) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "job {} is {} and cannot become {}",
                    old.id,
                    old.state.as_str(),
                    next.as_str()
                ),
                "queued -> running -> succeeded | failed; queued -> failed; a finished job stays as it is",
            ));
        }
        if next == JobState::Running && old.state == JobState::Queued {
            job.started = Some(now);
        }
        if next.is_finished() {
            job.finished = Some(now);
        }
        job.state = next;
    } else if old.state.is_finished() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {} is {}", old.id, old.state.as_str()),
            "a finished job stays as it is",
        ));
    }
    if let Some(m) = u.message {
        job.message = m;
    }
    if let Some(b) = u.bytes_done {
        job.progress.bytes_done = b;
    }
    if u.bytes_estimated.is_some() {
        job.progress.bytes_estimated = u.bytes_estimated;
    }
    job.details.extend(u.details);
    check_labels(&job.details)?;
    let new = job.clone();
    if !s
        .blocking(move |s| Ok(s.records.replace(&old, &new)?))
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {} changed while this update was made", job.id),
            "read the job again and retry",
        ));
    }
    Ok(Json(job))
}
