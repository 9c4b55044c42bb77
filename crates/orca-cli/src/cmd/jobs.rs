//! `orca jobs`, `orca job show ID`, `orca recovery-points`: what the agent did, from the vault.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use orca_vault::client::VaultClient;
use orca_vault::wire::{Job, JobFilter, JobState, RecoveryPointFilter, RecoveryPointKind};

use crate::common::{format_time, human_bytes, print_json};

/// How to reach the vault: the agent's configuration (its database's token), or a URL and token.
#[derive(Args, Debug, Clone)]
pub struct VaultArgs {
    /// The agent's configuration: vault URL and the database's token come from it.
    #[arg(long, value_name = "FILE", env = "ORCA_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Vault URL, without --config.
    #[arg(long, env = "ORCA_VAULT", conflicts_with = "config")]
    pub vault: Option<String>,
    /// The database's vault token, without --config.
    #[arg(
        long,
        env = "ORCA_TOKEN",
        hide_env_values = true,
        conflicts_with = "config"
    )]
    pub token: Option<String>,
}

impl VaultArgs {
    /// A client, and the database name the configuration gives when it has one database.
    pub fn client(&self, db: Option<&str>) -> Result<(Arc<VaultClient>, Option<String>)> {
        if let Some(path) = &self.config {
            let cfg = orca_agent::Config::load(path)?;
            let d = match db {
                Some(name) => cfg
                    .database(name)
                    .with_context(|| format!("database {name} is not in {}", path.display()))?,
                None if cfg.databases.len() == 1 => &cfg.databases[0],
                None => bail!(
                    "{} configures several databases: name one with --db",
                    path.display()
                ),
            };
            let v = orca_agent::daemon::vault_for(&cfg, d)?;
            return Ok((v, Some(d.name.clone())));
        }
        let (Some(url), Some(token)) = (&self.vault, &self.token) else {
            bail!(
                "give --config FILE (the agent's), or --vault URL and --token TOKEN (ORCA_VAULT, ORCA_TOKEN)"
            );
        };
        Ok((VaultClient::connect(url, token)?, db.map(str::to_string)))
    }
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Only this database's jobs.
    #[arg(long)]
    db: Option<String>,
    /// Only jobs in this state (queued, running, succeeded, failed).
    #[arg(long, value_parser = parse_state)]
    state: Option<JobState>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_state(s: &str) -> Result<JobState, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("{s:?}: use queued, running, succeeded or failed"))
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// One job: state, progress, what it found and did (tag, resume, bytes read/sent/re-sent).
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The job's id (`orca jobs`).
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct RecoveryPointsArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Only this database's.
    #[arg(long)]
    db: Option<String>,
    /// Flag points never drilled, or last drilled longer ago than this (`7d`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    drill_max_age: Option<std::time::Duration>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn progress(j: &Job) -> String {
    match j.progress.bytes_estimated {
        Some(e) if e > 0 => format!("{}/{}", human_bytes(j.progress.bytes_done), human_bytes(e)),
        _ if j.progress.bytes_done > 0 => human_bytes(j.progress.bytes_done),
        _ => "-".into(),
    }
}

pub async fn jobs(a: JobsArgs) -> Result<()> {
    let (v, db) = a.vault.client(a.db.as_deref())?;
    let list = v
        .jobs(&JobFilter {
            database: db,
            state: a.state,
            ..Default::default()
        })
        .await?;
    if a.json {
        return print_json(&list);
    }
    println!(
        "{:<22} {:<8} {:<18} {:<9} {:<9} {:<19} {:>17}  MESSAGE",
        "ID", "DATABASE", "KIND", "TRIGGER", "STATE", "REQUESTED", "PROGRESS"
    );
    for j in &list {
        println!(
            "{:<22} {:<8} {:<18} {:<9} {:<9} {:<19} {:>17}  {}",
            j.id,
            j.database,
            j.kind,
            j.trigger.as_str(),
            j.state.as_str(),
            format_time(j.requested),
            progress(j),
            j.message.lines().next().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn job(c: JobCmd) -> Result<()> {
    let JobCmd::Show(a) = c;
    let (v, _) = a.vault.client(None)?;
    let Some(j) = v.job(&a.id).await? else {
        bail!("no job {:?}: see `orca jobs`", a.id);
    };
    if a.json {
        return print_json(&j);
    }
    print_job(&j);
    Ok(())
}

pub fn print_job(j: &Job) {
    println!("job        {}", j.id);
    println!("database   {}", j.database);
    println!("kind       {} ({})", j.kind, j.trigger.as_str());
    println!("state      {}", j.state.as_str());
    println!("requested  {}", format_time(j.requested));
    if let Some(t) = j.started {
        println!("started    {}", format_time(t));
    }
    if let Some(t) = j.finished {
        println!("finished   {}", format_time(t));
    }
    if let Some(t) = j.deadline {
        println!("deadline   {}", format_time(t));
    }
    println!("progress   {}", progress(j));
    println!("message    {}", j.message);
    for (k, v) in &j.details {
        println!("  {k:<18} {v}");
    }
}

pub async fn recovery_points(a: RecoveryPointsArgs) -> Result<()> {
    let (v, db) = a.vault.client(a.db.as_deref())?;
    let list = v
        .recovery_points(&RecoveryPointFilter {
            database: db.clone(),
            ..Default::default()
        })
        .await?;
    let drills = orca_agent::drill::last_drills(&v, db.as_deref()).await?;
    let mut rows = Vec::new();
    for rp in &list {
        let same_db: Vec<_> = list
            .iter()
            .filter(|p| p.database == rp.database)
            .cloned()
            .collect();
        let why_not = orca_agent::point::not_restorable(&v, rp, &same_db).await?;
        let drill = drills.iter().find(|d| d.point == rp.id);
        rows.push((rp, why_not, drill));
    }
    if a.json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|(rp, why_not, drill)| {
                let mut o = serde_json::to_value(rp).unwrap_or_default();
                if let Some(m) = o.as_object_mut() {
                    m.insert("restorable".into(), why_not.is_none().into());
                    if let Some(w) = why_not {
                        m.insert("not_restorable_because".into(), w.clone().into());
                    }
                    if let Some(d) = drill {
                        m.insert(
                            "last_drill".into(),
                            serde_json::json!({
                                "job": d.job,
                                "result": if d.passed { "passed" } else { "failed" },
                                "finished": d.finished,
                                "duration_secs": d.duration_secs,
                                "message": d.message,
                            }),
                        );
                    }
                }
                o
            })
            .collect();
        return print_json(&out);
    }
    println!(
        "{:<34} {:<8} {:<11} {:<19} {:<23} {:>4} {:>10} {:<10} {:<24}  CHAIN",
        "ID", "DATABASE", "KIND", "CREATED", "SCN", "INC", "BYTES", "RESTORABLE", "LAST DRILL"
    );
    for (rp, why_not, drill) in &rows {
        let scn = match (rp.first_scn, orca_agent::point::until_scn(rp)) {
            (Some(f), Some(u)) => format!("{f}-{u}"),
            (None, Some(u)) => format!("-{u}"),
            _ => "-".into(),
        };
        let drill = drill.map_or_else(
            || "never".to_string(),
            |d| {
                format!(
                    "{} {} {}s",
                    if d.passed { "passed" } else { "FAILED" },
                    format_time(d.finished),
                    d.duration_secs
                )
            },
        );
        let chain = orca_agent::point::chain(rp);
        println!(
            "{:<34} {:<8} {:<11} {:<19} {:<23} {:>4} {:>10} {:<10} {:<24}  {}",
            rp.id,
            rp.database,
            rp.kind.as_str(),
            format_time(rp.created),
            scn,
            rp.labels
                .get(orca_agent::point::INCARNATION)
                .map_or("-", String::as_str),
            human_bytes(rp.stats.bytes),
            if why_not.is_none() { "yes" } else { "no" },
            drill,
            if chain.is_empty() {
                "-".to_string()
            } else {
                chain.join(" > ")
            }
        );
    }
    for (rp, why_not, _) in &rows {
        if let Some(w) = why_not
            && matches!(
                rp.kind,
                RecoveryPointKind::Full | RecoveryPointKind::Incremental
            )
        {
            println!("{}: not restorable: {w}", rp.id);
        }
    }
    if let Some(max) = a.drill_max_age {
        let now = orca_repo::now_unix();
        let oldest = now.saturating_sub(i64::try_from(max.as_secs()).unwrap_or(i64::MAX));
        for (rp, _, drill) in &rows {
            if !matches!(
                rp.kind,
                RecoveryPointKind::Full | RecoveryPointKind::Incremental
            ) {
                continue;
            }
            match drill {
                None => println!("{}: never drilled", rp.id),
                Some(d) if d.finished < oldest => println!(
                    "{}: last drilled {} ago",
                    rp.id,
                    humantime::format_duration(std::time::Duration::from_secs(
                        u64::try_from(now - d.finished).unwrap_or(0)
                    ))
                ),
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// Follows job `id` until it ends, printing its progress on stderr when it changes; the job
/// as it ended.
pub async fn wait_for_job(v: &VaultClient, id: &str) -> Result<Job> {
    let mut last = String::new();
    loop {
        let Some(j) = v.job(id).await? else {
            bail!("job {id} disappeared from the vault");
        };
        let line = format!(
            "{} {}/{}",
            j.state.as_str(),
            human_bytes(j.progress.bytes_done),
            j.progress
                .bytes_estimated
                .map_or_else(|| "?".to_string(), human_bytes)
        );
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if j.state.is_finished() {
            return Ok(j);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
