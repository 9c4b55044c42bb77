//! Agent heartbeats: an agent says every few seconds that it serves a database, so a manual
//! job request can fail at once when none does (the agent takes queued jobs from `jobs`).

use axum::Json;
use axum::extract::Path;

use super::db::Record;
use super::{ApiError, ApiResult, Caller, JsonBody, READ, St, WRITE};
use crate::wire::{AgentStatus, ErrorBody, Heartbeat, check_database_name};

impl Record for AgentStatus {
    const TYPE: &'static str = "agent";
    fn id(&self) -> &str {
        &self.database
    }
    fn database(&self) -> &str {
        &self.database
    }
    fn kind(&self) -> &str {
        "agent"
    }
    fn state(&self) -> Option<&str> {
        None
    }
    fn time(&self) -> i64 {
        self.seen
    }
}

fn check(c: &Caller, database: &str) -> ApiResult<()> {
    check_database_name(database).map_err(ApiError::invalid)?;
    c.owns(Some(database))
}

#[utoipa::path(put, path = "/agents/{database}", tag = "agents",
    params(("database" = String, Path, description = "the database the agent serves")),
    request_body = Heartbeat,
    responses(
        (status = 200, description = "recorded", body = AgentStatus),
        (status = 422, description = "a field is out of range", body = ErrorBody)))]
pub(super) async fn heartbeat(
    s: St,
    c: Caller,
    Path(database): Path<String>,
    JsonBody(h): JsonBody<Heartbeat>,
) -> ApiResult<Json<AgentStatus>> {
    c.may(WRITE)?;
    check(&c, &database)?;
    if h.agent.is_empty() || h.agent.len() > 128 || h.version.len() > 64 || h.alerts.len() > 64 {
        return Err(ApiError::invalid(
            "agent: 1 to 128 bytes; version: at most 64; at most 64 alerts",
        ));
    }
    if !(1..=86_400).contains(&h.interval_secs) {
        return Err(ApiError::invalid("interval_secs: 1 to 86400"));
    }
    let status = AgentStatus {
        database,
        agent: h.agent,
        version: h.version,
        interval_secs: h.interval_secs,
        seen: orca_repo::now_unix(),
        alive: true,
        alerts: h.alerts,
        rpo_secs: h.rpo_secs,
    };
    let new = status.clone();
    s.blocking(move |s| {
        // Heartbeats of one database come from one agent, a few seconds apart: a lost race
        // against another heartbeat is retried once against what that one stored.
        for _ in 0..2 {
            match s.records.get::<AgentStatus>(&new.database)? {
                None if s.records.insert(&new)? => return Ok(()),
                Some(old) if s.records.replace(&old, &new)? => return Ok(()),
                _ => {}
            }
        }
        Err(ApiError::internal(
            "concurrent heartbeats kept replacing each other",
        ))
    })
    .await?;
    Ok(Json(status))
}

#[utoipa::path(get, path = "/agents/{database}", tag = "agents",
    params(("database" = String, Path, description = "the database")),
    responses(
        (status = 200, description = "the last heartbeat and whether the agent counts as running", body = AgentStatus),
        (status = 404, description = "no agent ever served the database", body = ErrorBody)))]
pub(super) async fn agent(
    s: St,
    c: Caller,
    Path(database): Path<String>,
) -> ApiResult<Json<AgentStatus>> {
    c.may(READ)?;
    check(&c, &database)?;
    let id = database.clone();
    let mut found = s
        .blocking(move |s| Ok(s.records.get::<AgentStatus>(&id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("agent of database", &database))?;
    found.alive = found.alive_at(orca_repo::now_unix());
    Ok(Json(found))
}
