//! `orca agent run --config F`: the agent daemon (crate `orca-agent`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum AgentCmd {
    /// Run the agent: heartbeats to the vault, backup jobs from its queue through RMAN and
    /// the SBT library, scheduled jobs, resume of failed full backups. Stops on SIGINT/SIGTERM.
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The agent's TOML configuration (see docs/agent.example.toml).
    #[arg(long, value_name = "FILE", env = "ORCA_AGENT_CONFIG")]
    config: PathBuf,
}

pub async fn run(c: AgentCmd) -> Result<()> {
    match c {
        AgentCmd::Run(a) => {
            let cfg = orca_agent::Config::load(&a.config)?;
            orca_agent::daemon::run(cfg).await?;
            Ok(())
        }
    }
}
