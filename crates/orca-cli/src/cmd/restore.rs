//! `orca restore --config agent.toml --db NAME [--point RP | --until-time T | --until-scn S]
//! [--new-location DIR | --new-host] [--validate]`: run on the database's host, the agent's restore
//! writes the RMAN script the database's state needs, runs it, and records the restore as a
//! job in the vault (`orca jobs`, `orca job show`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use orca_agent::restore::{RestoreRequest, Until};
use orca_vault::wire::{Job, JobState};

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
    /// Read and check every backup the restore needs (RESTORE ... VALIDATE); write nothing.
    #[arg(long, conflicts_with_all = ["new_location", "new_host"])]
    validate: bool,
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
    };
    let job = orca_agent::restore::run(&cfg, &db, vault, &req).await?;
    finish(&job, a.json)
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
