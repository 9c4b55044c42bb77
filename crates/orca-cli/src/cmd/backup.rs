//! `orca backup --db NAME [--type full|incremental|archivelog] [--wait]`: a request put into
//! the vault's job queue for the database's agent.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use orca_agent::JobKind;
use orca_vault::wire::{JobState, JobTrigger, JobUpdate, NewJob};

use super::jobs::{VaultArgs, print_job, wait_for_job};

#[derive(ValueEnum, Clone, Copy, Debug)]
enum BackupType {
    /// Incremental level 0 (resumes a failed full).
    Full,
    /// Incremental level 1 (a full when the database has none).
    Incremental,
    /// `BACKUP ARCHIVELOG ALL NOT BACKED UP`.
    Archivelog,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The database (DB_NAME).
    #[arg(long)]
    db: String,
    /// What to back up; by default the first backup is a full and later ones incremental.
    #[arg(long = "type", value_enum)]
    kind: Option<BackupType>,
    /// Wait for the job to finish, showing its progress; fail when it fails.
    #[arg(long)]
    wait: bool,
    /// A scheduled request (cron, a scheduler): it waits in the queue for an agent this long,
    /// then fails, instead of failing at once when no agent runs.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    window: Option<Duration>,
}

pub async fn run(a: BackupArgs) -> Result<()> {
    let (v, db) = a.vault.client(Some(&a.db))?;
    let db = db.unwrap_or(a.db.clone());
    let kind = match a.kind {
        None => JobKind::Backup,
        Some(BackupType::Full) => JobKind::Full,
        Some(BackupType::Incremental) => JobKind::Incremental,
        Some(BackupType::Archivelog) => JobKind::Archivelog,
    };
    let agent = v.agent(&db).await?;
    let alive = agent.as_ref().is_some_and(|s| s.alive);
    let now = orca_repo::now_unix();
    let job = v
        .create_job(&NewJob {
            id: None,
            database: db.clone(),
            kind: kind.as_str().into(),
            message: String::new(),
            bytes_estimated: None,
            trigger: if a.window.is_some() {
                JobTrigger::Scheduled
            } else {
                JobTrigger::Manual
            },
            deadline: a
                .window
                .map(|w| now.saturating_add(i64::try_from(w.as_secs()).unwrap_or(i64::MAX))),
        })
        .await?;
    if !alive && a.window.is_none() {
        let seen = match &agent {
            Some(s) => format!("its last heartbeat was {}s ago", now - s.seen),
            None => "it never sent a heartbeat".into(),
        };
        let message = format!(
            "the agent is not running for database {db} ({seen}): start it with `orca agent run --config FILE`"
        );
        v.update_job(
            &job.id,
            &JobUpdate {
                state: Some(JobState::Failed),
                message: Some(message.clone()),
                ..Default::default()
            },
        )
        .await?;
        println!("{}", job.id);
        bail!("job {} failed: {message}", job.id);
    }
    println!("{}", job.id);
    if !alive {
        eprintln!("no agent runs for {db} now: the job waits until its window closes, then fails");
    }
    if !a.wait {
        return Ok(());
    }
    let j = wait_for_job(&v, &job.id).await?;
    print_job(&j);
    if j.state == JobState::Failed {
        bail!("job {} failed: {}", j.id, j.message);
    }
    Ok(())
}
