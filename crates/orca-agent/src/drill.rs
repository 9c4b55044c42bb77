//! `orca drill`: proof that a recovery point still rebuilds its database, before the day it
//! is needed. The point is restored into scratch space as a database of its own (the
//! original is left alone), recovered to the point, opened; then the configured check runs
//! (`[database.drill] verify`, e.g. a block-by-block comparison); the scratch copy is
//! removed. The drill is a job of kind `drill` in the vault whose details name the point,
//! the result and the duration: `orca recovery-points` shows each point's last one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use orca_vault::client::VaultClient;
use orca_vault::wire::{Job, JobFilter, RecoveryPoint};

use crate::AgentError;
use crate::config::{Config, DatabaseConfig};
use crate::job::Outcome;
use crate::point;
use crate::restore::{Restorer, Until, ended, recorded};

/// The job kind of a drill.
pub const KIND: &str = "drill";

/// What `orca drill` asks for.
#[derive(Debug, Clone, Default)]
pub struct DrillRequest {
    /// A recovery point's id; the newest restorable one by default.
    pub point: Option<String>,
    /// Scratch space; `[database.drill] scratch`, else `<state_dir>/<db>/drill`.
    pub scratch: Option<PathBuf>,
}

/// A drill's result as its job records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillResult {
    pub job: String,
    pub point: String,
    pub passed: bool,
    pub finished: i64,
    pub duration_secs: u64,
    pub message: String,
}

/// Runs a drill of `db`, recorded in the vault as a job; the job at its end.
pub async fn run(
    cfg: &Config,
    db: &DatabaseConfig,
    vault: Arc<VaultClient>,
    req: &DrillRequest,
) -> Result<Job, AgentError> {
    let message = match &req.point {
        Some(p) => format!("drill of recovery point {p}"),
        None => "drill of the newest recovery point".into(),
    };
    let v = vault.clone();
    recorded(&vault, &db.name, KIND, message, |job| async move {
        perform(cfg, db, v, &job, req).await
    })
    .await
}

/// Runs a drill as `job` (already `running`: from `orca drill`, or the agent's queue).
pub async fn perform(
    cfg: &Config,
    db: &DatabaseConfig,
    vault: Arc<VaultClient>,
    job: &Job,
    req: &DrillRequest,
) -> Outcome {
    let restorer = Restorer::new(cfg, db, vault);
    let mut out = Outcome::default();
    let started = Instant::now();
    let r = drill(cfg, db, &restorer, job, req, &mut out).await;
    out.details.insert(
        "duration_secs".into(),
        started.elapsed().as_secs().to_string(),
    );
    out.details.insert(
        "result".into(),
        if r.is_ok() { "passed" } else { "failed" }.into(),
    );
    ended(r, out)
}

async fn drill(
    cfg: &Config,
    db: &DatabaseConfig,
    restorer: &Restorer,
    job: &Job,
    req: &DrillRequest,
    out: &mut Outcome,
) -> Result<String, AgentError> {
    let rp = restorer.choose(req.point.as_deref(), None).await?;
    out.details.insert("recovery_point".into(), rp.id.clone());
    let scn = point::until_scn(&rp).ok_or_else(|| {
        AgentError::Job(format!("recovery point {} has no SCN to recover to", rp.id))
    })?;
    let scratch = req
        .scratch
        .clone()
        .or_else(|| db.drill.scratch.clone())
        .unwrap_or_else(|| cfg.agent.state_dir.join(&db.name).join("drill"));
    let location = scratch.join(&job.id);
    let result = restore_and_check(restorer, job, &rp, scn, &location, db, out).await;
    if location.join("control").exists()
        && let Err(e) = restorer.shut_down_copy(job, &location).await
    {
        tracing::warn!(location = %location.display(), error = %e, "drill copy not shut down");
    }
    let removed = std::fs::remove_dir_all(&location);
    if let Err(e) = removed
        && location.exists()
    {
        tracing::warn!(location = %location.display(), error = %e, "drill scratch copy not removed");
    }
    result
}

async fn restore_and_check(
    restorer: &Restorer,
    job: &Job,
    rp: &RecoveryPoint,
    scn: u64,
    location: &Path,
    db: &DatabaseConfig,
    out: &mut Outcome,
) -> Result<String, AgentError> {
    restorer
        .relocate(job, rp, &Until::Scn(scn), location, out)
        .await?;
    let Some(verify) = &db.drill.verify else {
        return Ok(format!(
            "recovery point {} restored, recovered to SCN {scn} and opened in scratch space",
            rp.id
        ));
    };
    let command = verify
        .replace("{location}", &location.display().to_string())
        .replace("{scn}", &scn.to_string());
    out.details.insert("verify".into(), command.clone());
    let o = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(AgentError::io(format!("drill check: cannot run {command}")))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let said = said.trim();
    if !o.status.success() {
        return Err(AgentError::Job(format!(
            "the check of the restored copy failed ({}): {}",
            o.status,
            said.lines().take(5).collect::<Vec<_>>().join("; ")
        )));
    }
    Ok(format!(
        "recovery point {} restored, recovered to SCN {scn} and checked: {}",
        rp.id,
        said.lines().last().unwrap_or("")
    ))
}

/// The last drill of each recovery point of `database`, from the vault's drill jobs.
pub async fn last_drills(
    vault: &VaultClient,
    database: Option<&str>,
) -> Result<Vec<DrillResult>, AgentError> {
    let jobs = vault
        .jobs(&JobFilter {
            database: database.map(str::to_string),
            kind: Some(KIND.into()),
            ..Default::default()
        })
        .await?;
    let mut last: std::collections::BTreeMap<String, DrillResult> = Default::default();
    for j in jobs {
        let (Some(point), Some(finished)) = (j.details.get("recovery_point"), j.finished) else {
            continue;
        };
        let r = DrillResult {
            job: j.id.clone(),
            point: point.clone(),
            passed: j.details.get("result").is_some_and(|r| r == "passed"),
            finished,
            duration_secs: j
                .details
                .get("duration_secs")
                .and_then(|d| d.parse().ok())
                .unwrap_or(0),
            message: j.message.clone(),
        };
        if last.get(point).is_none_or(|o| o.finished <= finished) {
            last.insert(point.clone(), r);
        }
    }
    Ok(last.into_values().collect())
}
