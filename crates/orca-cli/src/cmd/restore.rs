//! `orca restore --config agent.toml --db NAME [--point RP | --until-time T | --until-scn S]
//! [--new-location DIR [--virtual-full] | --new-host] [--validate] [--wait | --queue]`: the
//! agent's restore writes the RMAN script the database's state needs, runs it, and records
//! the restore as a job in the vault (`orca jobs`, `orca job show`). By default it runs here,
//! on the database's host; with `--wait` or `--queue` it goes through the vault's job queue to
//! the database's running agent (`orca agent run`), like `orca backup`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use orca_agent::restore::{RestoreRequest, Until};
use orca_vault::wire::{Job, JobState, JobTrigger, JobUpdate, NewJob};

use super::jobs::print_job;
use crate::common::print_json;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The agent's configuration (docs/agent.example.toml).
    #[arg(long, value_name = "FILE", env = "ORCA_AGENT_CONFIG")]
    config: PathBuf,
    /// The database (DB_NAME); needed when the configuration has several.
    #[arg(long)]
    db: Option<String>,
    /// Restore this recovery point (`orca recovery-points`) and recover to its end.
    #[arg(long, conflicts_with_all = ["until_time", "until_scn"])]
    point: Option<String>,
    /// Recover until this database time, `YYYY-MM-DD HH:MM:SS` (opens with RESETLOGS).
    #[arg(long, value_name = "TIME", value_parser = parse_db_time, conflicts_with = "until_scn")]
    until_time: Option<String>,
    /// Recover until this SCN (opens with RESETLOGS).
    #[arg(long, value_name = "SCN")]
    until_scn: Option<u64>,
    /// Restore into this empty directory as a database of its own; the database itself
    /// keeps running unchanged.
    #[arg(long, value_name = "DIR", conflicts_with = "new_host")]
    new_location: Option<PathBuf>,
    /// The Oracle home is empty but for its init file (a new host): SPFILE, control file,
    /// datafiles and archived logs all come from the vault.
    #[arg(long)]
    new_host: bool,
    /// With --new-location: build each datafile as an image straight from the vault, block
    /// by block from the point's level 0 and the level 1s after it (a later level's block
    /// wins), then let RMAN catalog the images, switch to them and recover them with archived
    /// logs only: no incremental is replayed. Refused for compressed or encrypted backups,
    /// whose blocks the media manager cannot see.
    #[arg(long, requires = "new_location")]
    virtual_full: bool,
    /// Read and check every backup the restore needs (RESTORE ... VALIDATE); write nothing.
    #[arg(long, conflicts_with_all = ["new_location", "new_host"])]
    validate: bool,
    /// Hand the restore to the database's running agent through the vault's job queue and
    /// wait for it, showing its progress; fail when it fails.
    #[arg(long)]
    wait: bool,
    /// Hand the restore to the database's running agent and print the job's id at once
    /// (`orca job show ID` follows it).
    #[arg(long, conflicts_with = "wait")]
    queue: bool,
    /// Print the job as JSON.
    #[arg(long)]
    json: bool,
}

/// `YYYY-MM-DD HH:MM:SS`, as RMAN's `TO_DATE(..., 'YYYY-MM-DD HH24:MI:SS')` reads it.
pub fn parse_db_time(s: &str) -> Result<String, String> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .map_err(|e| format!("{s:?}: {e}; use YYYY-MM-DD HH:MM:SS (the database's time)"))
}

pub async fn run(a: RestoreArgs) -> Result<()> {
    let (cfg, db) = agent_database(&a.config, a.db.as_deref())?;
    let vault = orca_agent::daemon::vault_for(&cfg, &db)?;
    let req = RestoreRequest {
        point: a.point,
        until: match (a.until_time, a.until_scn) {
            (Some(t), _) => Some(Until::Time(t)),
            (None, Some(s)) => Some(Until::Scn(s)),
            (None, None) => None,
        },
        new_location: a.new_location,
        new_host: a.new_host,
        validate: a.validate,
        virtual_full: a.virtual_full,
    };
    if a.wait || a.queue {
        let id = queue(&vault, &db.name, &req).await?;
        if a.queue {
            println!("{id}");
            return Ok(());
        }
        let job = super::jobs::wait_for_job(&vault, &id).await?;
        return finish(&job, a.json);
    }
    let job = orca_agent::restore::run(&cfg, &db, vault, &req).await?;
    finish(&job, a.json)
}

/// Puts the restore into the vault's queue for the database's agent; the job's id. Fails at
/// once, recording why, when no agent runs for the database.
async fn queue(
    vault: &orca_vault::client::VaultClient,
    database: &str,
    req: &RestoreRequest,
) -> Result<String> {
    let agent = vault.agent(database).await?;
    let job = vault
        .create_job(&NewJob {
            id: None,
            database: database.to_string(),
            kind: orca_agent::restore::KIND.into(),
            message: req.describe(database),
            bytes_estimated: None,
            trigger: JobTrigger::Manual,
            deadline: None,
        })
        .await?;
    let alive = agent.as_ref().is_some_and(|s| s.alive);
    let (state, message, details) = if alive {
        let request = serde_json::to_string(req).context("the restore request as JSON")?;
        (
            None,
            None,
            BTreeMap::from([(orca_agent::restore::REQUEST_DETAIL.to_string(), request)]),
        )
    } else {
        let m = format!(
            "no agent runs for database {database}: start it with `orca agent run --config FILE`, or run `orca restore` without --wait/--queue on the database host"
        );
        (Some(JobState::Failed), Some(m), BTreeMap::new())
    };
    // The request goes in after the job exists: an agent takes a queued restore only once it
    // has its request, so it cannot start one half made.
    let job = vault
        .update_job(
            &job.id,
            &JobUpdate {
                state,
                message: message.clone(),
                details,
                ..Default::default()
            },
        )
        .await?;
    if let Some(m) = message {
        bail!("job {} failed: {m}", job.id);
    }
    Ok(job.id)
}

/// The configuration and the database it names (or its only one).
pub fn agent_database(
    path: &std::path::Path,
    db: Option<&str>,
) -> Result<(orca_agent::Config, orca_agent::config::DatabaseConfig)> {
    let cfg = orca_agent::Config::load(path)?;
    let d = match db {
        Some(name) => cfg
            .database(name)
            .with_context(|| format!("database {name} is not in {}", path.display()))?
            .clone(),
        None if cfg.databases.len() == 1 => cfg.databases[0].clone(),
        None => bail!(
            "{} configures several databases: name one with --db",
            path.display()
        ),
    };
    Ok((cfg, d))
}

/// Prints the job; an error when it failed.
pub fn finish(job: &Job, json: bool) -> Result<()> {
    if json {
        print_json(job)?;
    } else {
        print_job(job);
    }
    if job.state == JobState::Failed {
        bail!("job {} failed: {}", job.id, job.message);
    }
    Ok(())
}
