//! The web console at `/ui`: a read-only view of databases, agents, jobs, recovery points,
//! savings and exposure, for the administrators of a vault. Its three files are built into
//! the binary (no CDN, nothing fetched from elsewhere: the vault may have no internet), and
//! the page reads the same API as the CLI with the token the user logs in with, so a
//! database's token shows that database only and an admin token every database.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::db::Selection;
use super::{ApiResult, Caller, READ, St};
use crate::wire::{
    AgentStatus, Alert, DatabaseOverview, HistoryPoint, Job, JobState, Overview, RecoveryPoint,
    StorageOverview,
};

/// The exposure objective of a database whose agent has no schedule.
const DEFAULT_RPO_SECS: u64 = 86_400;
/// Jobs the overview carries.
const RECENT_JOBS: usize = 50;

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");

/// The page may load only its own script and style, and no other site may frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub(super) async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

pub(super) async fn script() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

pub(super) async fn style() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

#[utoipa::path(get, path = "/overview", tag = "console",
    responses((status = 200, description = "what the web console shows, for the databases the token may see", body = Overview)))]
pub(super) async fn overview(s: St, c: Caller) -> ApiResult<Json<Overview>> {
    c.may(READ)?;
    let database = c.listing(None)?;
    let stats = s
        .store
        .stats()
        .await
        .map_err(|e| super::ApiError::internal(format!("repository statistics: {e}")))?;
    let (points, jobs, agents) = s
        .blocking(move |s| {
            let sel = || Selection {
                database: database.clone(),
                ..Selection::default()
            };
            Ok((
                s.records.list::<RecoveryPoint>(&sel())?,
                s.records.list::<Job>(&sel())?,
                s.records.list::<AgentStatus>(&sel())?,
            ))
        })
        .await?;
    let storage = StorageOverview {
        logical_bytes: stats.piece_bytes,
        stored_bytes: stats.pack_bytes,
        pieces: stats.pieces,
        chunks: stats.chunks,
    };
    Ok(Json(summarise(
        orca_repo::now_unix(),
        storage,
        points,
        jobs,
        agents,
    )))
}

/// The overview of these records at `now`.
fn summarise(
    now: i64,
    storage: StorageOverview,
    mut points: Vec<RecoveryPoint>,
    mut jobs: Vec<Job>,
    agents: Vec<AgentStatus>,
) -> Overview {
    points.sort_by_key(|p| p.created);
    jobs.sort_by_key(|j| std::cmp::Reverse(j.requested));
    let mut dbs: BTreeMap<String, DatabaseOverview> = BTreeMap::new();
    let entry = |dbs: &mut BTreeMap<String, DatabaseOverview>, name: &str| {
        dbs.entry(name.to_string())
            .or_insert_with(|| DatabaseOverview {
                database: name.to_string(),
                agent: None,
                recovery_points: 0,
                last_point: None,
                exposure_secs: None,
                rpo_secs: DEFAULT_RPO_SECS,
                exposed: true,
                logical_bytes: 0,
                stored_bytes: 0,
                last_job: None,
            })
            .database
            .clone()
    };
    for mut a in agents {
        let name = entry(&mut dbs, &a.database);
        a.alive = a.alive_at(now);
        let d = dbs.get_mut(&name).expect("entry made above");
        d.rpo_secs = a.rpo_secs.unwrap_or(DEFAULT_RPO_SECS);
        d.agent = Some(a);
    }
    let mut history = Vec::with_capacity(points.len());
    let (mut logical, mut stored) = (0u64, 0u64);
    for p in &points {
        let name = entry(&mut dbs, &p.database);
        let d = dbs.get_mut(&name).expect("entry made above");
        d.recovery_points += 1;
        d.last_point = Some(d.last_point.map_or(p.created, |t| t.max(p.created)));
        d.logical_bytes += p.stats.bytes;
        d.stored_bytes += p.stats.stored;
        logical += p.stats.bytes;
        stored += p.stats.stored;
        history.push(HistoryPoint {
            time: p.created,
            logical_bytes: logical,
            stored_bytes: stored,
        });
    }
    for j in &jobs {
        let name = entry(&mut dbs, &j.database);
        let d = dbs.get_mut(&name).expect("entry made above");
        if d.last_job.is_none() {
            d.last_job = Some(j.state);
        }
    }
    let mut alerts = Vec::new();
    for d in dbs.values_mut() {
        d.exposure_secs = d.last_point.map(|t| (now - t).max(0));
        let rpo = i64::try_from(d.rpo_secs).unwrap_or(i64::MAX);
        d.exposed = d.exposure_secs.is_none_or(|e| e > rpo);
        let mut alert = |severity: &str, message: String| {
            alerts.push(Alert {
                database: d.database.clone(),
                severity: severity.to_string(),
                message,
            });
        };
        match d.exposure_secs {
            None => alert("critical", "no recovery point yet".to_string()),
            Some(e) if e > rpo => alert(
                "critical",
                format!(
                    "last recovery point {} ago, beyond its objective of {}",
                    duration(e),
                    duration(rpo)
                ),
            ),
            Some(_) => {}
        }
        if let Some(a) = &d.agent {
            if !a.alive {
                alert(
                    "critical",
                    format!("agent {} silent for {}", a.agent, duration(now - a.seen)),
                );
            }
            for m in &a.alerts {
                alert("warning", format!("agent {}: {m}", a.agent));
            }
        }
        if d.last_job == Some(JobState::Failed) {
            let msg = jobs
                .iter()
                .find(|j| j.database == d.database)
                .map(|j| j.message.clone())
                .unwrap_or_default();
            alert("warning", format!("last job failed: {msg}"));
        }
    }
    alerts.sort_by_key(|a| (a.severity != "critical", a.database.clone()));
    jobs.truncate(RECENT_JOBS);
    Overview {
        generated: now,
        storage,
        databases: dbs.into_values().collect(),
        alerts,
        history,
        jobs,
    }
}

/// `3d 4h`, `2h 5m`, `40s`: enough for an alert.
fn duration(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{JobProgress, JobTrigger, RecoveryPointKind, RecoveryPointStats};

    fn point(db: &str, created: i64, bytes: u64, stored: u64) -> RecoveryPoint {
        RecoveryPoint {
            id: format!("{db}-{created}"),
            database: db.into(),
            dbid: None,
            kind: RecoveryPointKind::Full,
            created,
            first_scn: None,
            next_scn: None,
            pieces: vec![],
            labels: BTreeMap::new(),
            stats: RecoveryPointStats {
                pieces: 1,
                bytes,
                stored,
            },
        }
    }

    fn job(db: &str, requested: i64, state: JobState, message: &str) -> Job {
        Job {
            id: format!("{db}-{requested}"),
            database: db.into(),
            kind: "full".into(),
            state,
            requested,
            started: None,
            finished: None,
            message: message.into(),
            progress: JobProgress::default(),
            trigger: JobTrigger::default(),
            deadline: None,
            details: BTreeMap::new(),
        }
    }

    fn agent(db: &str, seen: i64, rpo: Option<u64>, alerts: &[&str]) -> AgentStatus {
        AgentStatus {
            database: db.into(),
            agent: format!("host-{db}"),
            version: "1".into(),
            interval_secs: 10,
            seen,
            alive: true,
            alerts: alerts.iter().map(|a| (*a).to_string()).collect(),
            rpo_secs: rpo,
        }
    }

    #[test]
    fn exposure_silence_failures_and_agent_alerts_become_alerts() {
        let now = 1_000_000;
        let storage = StorageOverview {
            logical_bytes: 300,
            stored_bytes: 40,
            pieces: 3,
            chunks: 3,
        };
        let o = summarise(
            now,
            storage,
            vec![
                point("ORCL", now - 100, 100, 30),
                point("ORCL", now - 5000, 100, 5),
                point("HR", now - 90_000, 100, 5),
            ],
            vec![
                job("HR", now - 50, JobState::Failed, "ORA-19511"),
                job("HR", now - 500, JobState::Succeeded, ""),
            ],
            vec![
                agent("ORCL", now - 5, Some(3600), &["instance ORCL2 down"]),
                agent("HR", now - 600, None, &[]),
            ],
        );
        let names: Vec<_> = o.databases.iter().map(|d| d.database.as_str()).collect();
        assert_eq!(names, ["HR", "ORCL"]);
        let (hr, orcl) = (&o.databases[0], &o.databases[1]);
        assert!(!orcl.exposed && orcl.exposure_secs == Some(100) && orcl.rpo_secs == 3600);
        assert!(hr.exposed && hr.rpo_secs == DEFAULT_RPO_SECS);
        assert!(!hr.agent.as_ref().unwrap().alive, "600 s > 3 x 10 s");
        assert_eq!(hr.last_job, Some(JobState::Failed));
        assert_eq!((orcl.logical_bytes, orcl.stored_bytes), (200, 35));
        let said: Vec<_> = o
            .alerts
            .iter()
            .map(|a| format!("{} {} {}", a.severity, a.database, a.message))
            .collect();
        assert_eq!(said.len(), 4, "{said:?}");
        assert!(
            said[0].starts_with("critical HR last recovery point 1d 1h ago"),
            "{said:?}"
        );
        assert!(
            said[1].starts_with("critical HR agent host-HR silent for 10m"),
            "{said:?}"
        );
        assert!(
            said.contains(&"warning HR last job failed: ORA-19511".to_string()),
            "{said:?}"
        );
        assert!(
            said.contains(&"warning ORCL agent host-ORCL: instance ORCL2 down".to_string()),
            "{said:?}"
        );
        let last = o.history.last().unwrap();
        assert_eq!((last.logical_bytes, last.stored_bytes), (300, 40));
        assert!(o.history.windows(2).all(|w| w[0].time <= w[1].time));
        assert_eq!(o.jobs[0].requested, now - 50, "newest job first");
    }
}
