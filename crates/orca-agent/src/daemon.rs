//! `orca agent run`: per configured database, heartbeats to the vault, jobs taken from the
//! vault's queue one at a time (backups and drills), and the schedules' jobs put into that
//! queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orca_vault::client::{ClientOptions, VaultClient};
use orca_vault::wire::{Heartbeat, Job, JobFilter, JobState, JobTrigger, JobUpdate, NewJob};

use crate::AgentError;
use crate::config::{Config, DatabaseConfig};
use crate::drill;
use crate::job::{JobKind, Runner};
use crate::restore;

/// A client for the vault with a database's token.
pub fn vault_for(cfg: &Config, db: &DatabaseConfig) -> Result<Arc<VaultClient>, AgentError> {
    let opts = ClientOptions {
        ca_file: cfg.vault.ca_file.clone(),
        concurrency: None,
        command_id: None,
    };
    Ok(VaultClient::with_options(&cfg.vault.url, &db.token, &opts)?)
}

/// Serves every configured database until a signal (SIGINT, SIGTERM) stops the agent.
pub async fn run(cfg: Config) -> Result<(), AgentError> {
    let mut tasks = tokio::task::JoinSet::new();
    for db in &cfg.databases {
        let vault = vault_for(&cfg, db)?;
        tasks.spawn(serve(cfg.clone(), db.clone(), vault));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AgentError::io("cannot watch for SIGTERM"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        Some(r) = tasks.join_next() => {
            return r.map_err(|source| AgentError::Task { what: "a database's task", source })?;
        }
    }
    tracing::info!("agent stopping");
    Ok(())
}

async fn serve(cfg: Config, db: DatabaseConfig, vault: Arc<VaultClient>) -> Result<(), AgentError> {
    let alerts = Arc::new(Mutex::new(Vec::<String>::new()));
    let beat = Heartbeat {
        agent: cfg.agent_name(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        interval_secs: cfg.agent.heartbeat.as_secs().max(1),
        alerts: Vec::new(),
        rpo_secs: db.schedule.rpo().map(|d| d.as_secs()),
    };
    // The first heartbeat must get through: a wrong token or URL stops the agent at once.
    vault.heartbeat(&db.name, &beat).await?;
    tracing::info!(database = %db.name, "agent serving");
    let heart = {
        let (vault, name, alerts) = (vault.clone(), db.name.clone(), alerts.clone());
        let every = cfg.agent.heartbeat;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let mut b = beat.clone();
                b.alerts = alerts.lock().expect("alerts lock").clone();
                if let Err(e) = vault.heartbeat(&name, &b).await {
                    tracing::warn!(database = %name, error = %e, "heartbeat not delivered");
                }
            }
        })
    };
    let runner = Runner::new(&cfg, &db, vault.clone());
    let result = loop {
        if let Err(e) = schedule(&cfg, &db, &vault).await {
            tracing::warn!(database = %db.name, error = %e, "schedule not checked");
        }
        match next_job(&db, &vault).await {
            Ok(Some(job)) => {
                let out = if job.kind == drill::KIND {
                    let req = drill::DrillRequest::default();
                    drill::perform(&cfg, &db, vault.clone(), &job, &req).await
                } else if job.kind == restore::KIND {
                    queued_restore(&cfg, &db, vault.clone(), &job).await
                } else {
                    runner.run(&job).await
                };
                alerts
                    .lock()
                    .expect("alerts lock")
                    .extend(out.alerts.clone());
                let update = out.update();
                tracing::info!(job = %job.id, succeeded = out.succeeded, message = %out.message, "job finished");
                if let Err(e) = vault.update_job(&job.id, &update).await {
                    tracing::error!(job = %job.id, error = %e, "job result not recorded");
                }
                continue;
            }
            Ok(None) => {}
            Err(AgentError::Vault(e)) if e.rejected_with().is_some_and(|s| s.as_u16() == 401) => {
                break Err(AgentError::Vault(e));
            }
            Err(e) => tracing::warn!(database = %db.name, error = %e, "queue not read"),
        }
        tokio::time::sleep(cfg.agent.poll).await;
    };
    heart.abort();
    result
}

/// A restore taken from the queue: its request is in the job's details.
async fn queued_restore(
    cfg: &Config,
    db: &DatabaseConfig,
    vault: Arc<VaultClient>,
    job: &Job,
) -> crate::job::Outcome {
    let asked = job
        .details
        .get(restore::REQUEST_DETAIL)
        .map(|r| serde_json::from_str::<restore::RestoreRequest>(r));
    let why = match asked {
        Some(Ok(req)) => return restore::perform(cfg, db, vault, job, &req).await,
        Some(Err(e)) => e.to_string(),
        None => "it has none".to_string(),
    };
    crate::job::Outcome {
        succeeded: false,
        message: format!(
            "the job's {} detail is not a restore request this agent understands ({why}): \
             upgrade the agent, or run `orca restore` on the database host",
            restore::REQUEST_DETAIL
        ),
        ..Default::default()
    }
}

/// The oldest queued job, taken (moved to `running`); another agent taking it first is no error.
async fn next_job(db: &DatabaseConfig, vault: &VaultClient) -> Result<Option<Job>, AgentError> {
    let queued = vault
        .jobs(&JobFilter {
            database: Some(db.name.clone()),
            state: Some(JobState::Queued),
            ..Default::default()
        })
        .await?;
    for job in queued {
        // A manual drill (`orca drill`) runs where it was asked and records its own job;
        // the queue holds the scheduled ones.
        let drill = job.kind == drill::KIND && job.trigger == JobTrigger::Scheduled;
        // A restore `orca restore --wait | --queue` put in the queue, once it has its request.
        let restore =
            job.kind == restore::KIND && job.details.contains_key(restore::REQUEST_DETAIL);
        if JobKind::parse(&job.kind).is_none() && !drill && !restore {
            continue;
        }
        let take = JobUpdate {
            state: Some(JobState::Running),
            message: Some("running".into()),
            ..Default::default()
        };
        match vault.update_job(&job.id, &take).await {
            Ok(j) => return Ok(Some(j)),
            Err(e) if e.rejected_with().is_some_and(|s| s.as_u16() == 409) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Queues a scheduled job of each type whose interval has passed since the last job of
/// that type was requested.
async fn schedule(
    cfg: &Config,
    db: &DatabaseConfig,
    vault: &VaultClient,
) -> Result<(), AgentError> {
    let s = &db.schedule;
    let due = [
        (s.full, JobKind::Full.as_str()),
        (s.incremental, JobKind::Backup.as_str()),
        (s.archivelog, JobKind::Archivelog.as_str()),
        (db.drill.every, drill::KIND),
    ];
    let now = unix_now();
    for (every, kind) in due {
        let Some(every) = every else { continue };
        let recent = vault
            .jobs(&JobFilter {
                database: Some(db.name.clone()),
                kind: Some(kind.into()),
                since: Some(now.saturating_sub(secs(every))),
                ..Default::default()
            })
            .await?;
        if !recent.is_empty() {
            continue;
        }
        let job = vault
            .create_job(&NewJob {
                id: None,
                database: db.name.clone(),
                kind: kind.into(),
                message: format!("scheduled every {}", humantime::format_duration(every)),
                bytes_estimated: None,
                trigger: JobTrigger::Scheduled,
                deadline: Some(now.saturating_add(secs(db.schedule.window))),
            })
            .await?;
        tracing::info!(job = %job.id, kind, agent = %cfg.agent_name(), "scheduled job queued");
    }
    Ok(())
}

fn unix_now() -> i64 {
    secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO),
    )
}

/// Whole seconds of `d`, saturating: a span beyond i64 seconds is "forever".
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
