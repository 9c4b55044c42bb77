//! The ORCA agent: runs a database's backup jobs through RMAN and the ORCA SBT library,
//! takes them from a queue in the vault, says it is alive with heartbeats, and resumes a
//! failed full backup instead of starting it again.
//!
//! - [`config`]: the TOML file (`docs/agent.example.toml`).
//! - [`oracle`]: `sqlplus` queries of the `v$` views and `rman` runs.
//! - [`script`]: RMAN command files from the settings.
//! - [`state`]: per database, the full backup not finished yet and its attempts.
//! - [`job`]: one job: estimate, decide level 0 / 1 / resume, clean up, run, record.
//! - [`daemon`]: `orca agent run`: heartbeats, queue, schedules.

pub mod config;
pub mod daemon;
pub mod job;
pub mod oracle;
pub mod script;
pub mod state;

use std::path::PathBuf;

pub use config::Config;
pub use job::{JobKind, Outcome};

/// Why the agent could not do something.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("configuration {}: {message}", .path.display())]
    Config { path: PathBuf, message: String },
    #[error("state file {}: {message}", .path.display())]
    State { path: PathBuf, message: String },
    #[error("{tool}: {message}")]
    Tool { tool: &'static str, message: String },
    /// Boxed: the client's error is large and every result of the agent carries this type.
    #[error("vault: {0}")]
    Vault(Box<orca_vault::client::ClientError>),
    #[error("{0}")]
    Job(String),
}

impl From<orca_vault::client::ClientError> for AgentError {
    fn from(e: orca_vault::client::ClientError) -> Self {
        AgentError::Vault(Box::new(e))
    }
}
