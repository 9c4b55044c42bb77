//! `orca drill --config agent.toml --db NAME [--point RP] [--scratch DIR]`: a recovery point
//! restored into scratch space, recovered, checked (`[database.drill] verify`), removed; the
//! result and duration recorded in the vault (`orca recovery-points` shows the last one).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use orca_agent::drill::DrillRequest;

use super::restore::{agent_database, finish};

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// The agent's configuration (docs/agent.example.toml).
    #[arg(long, value_name = "FILE", env = "ORCA_AGENT_CONFIG")]
    config: PathBuf,
    /// The database (DB_NAME); needed when the configuration has several.
    #[arg(long)]
    db: Option<String>,
    /// The recovery point to drill; the newest restorable one by default.
    #[arg(long)]
    point: Option<String>,
    /// Scratch space for the restored copy (removed afterwards).
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    /// Print the job as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: DrillArgs) -> Result<()> {
    let (cfg, db) = agent_database(&a.config, a.db.as_deref())?;
    let vault = orca_agent::daemon::vault_for(&cfg, &db)?;
    let req = DrillRequest {
        point: a.point,
        scratch: a.scratch,
    };
    let job = orca_agent::drill::run(&cfg, &db, vault, &req).await?;
    finish(&job, a.json)
}
