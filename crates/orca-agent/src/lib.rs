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
//! - [`point`]: what a recovery point needs to rebuild its database; whether it can.
//! - [`restore`]: `orca restore`: the RMAN script the database's state and the request need.
//! - [`drill`]: `orca drill`: a point restored into scratch space, checked, recorded.
//! - [`vfull`]: virtual fulls: datafile images built from a chain's pieces, block by block.

pub mod config;
pub mod daemon;
pub mod drill;
pub mod job;
pub mod oracle;
pub mod point;
pub mod restore;
pub mod script;
pub mod state;
pub mod vfull;

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
    /// A repository call to the vault failed; the repository's error, and the vault
    /// client's under it, stay the source (boxed, as the client's error is).
    #[error("{context}: {source}")]
    Repo {
        context: String,
        #[source]
        source: Box<orca_repo::RepoError>,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {source}; the agent was stopping or hit a bug: see the log")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl AgentError {
    /// An `io::Error`, with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
        let context = context.into();
        move |source| AgentError::Io { context, source }
    }
}

impl From<orca_vault::client::ClientError> for AgentError {
    fn from(e: orca_vault::client::ClientError) -> Self {
        AgentError::Vault(Box::new(e))
    }
}
