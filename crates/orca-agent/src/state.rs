//! What the agent remembers between jobs, per database, in `<state_dir>/<DB>/state.json`:
//! the full backup that has not finished yet (its tag, command id, start time and attempts),
//! which the next request resumes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::AgentError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DbState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_full: Option<PendingFull>,
}

/// A full backup that failed at least once (or is running).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingFull {
    pub tag: String,
    pub command_id: String,
    /// The first attempt's start, by the database's clock (`YYYY-MM-DD HH24:MI:SS`).
    pub start_time: String,
    pub attempts: Vec<Attempt>,
}

/// One RMAN run of a backup.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attempt {
    pub job: String,
    pub succeeded: bool,
    pub message: String,
    /// Pieces committed, with what the SBT library read and sent for each.
    pub pieces: Vec<PieceStat>,
    /// (file#, piece#) of every datafile piece RMAN started, finished or not.
    pub started: Vec<(u32, u32)>,
    pub skipped_datafiles: Vec<u32>,
    /// Pieces of unfinished multi-section files deleted before this attempt.
    pub cleaned_up: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PieceStat {
    pub handle: String,
    /// (file#, piece#) when the piece holds a datafile.
    pub section: Option<(u32, u32)>,
    pub bytes_in: u64,
    pub new_bytes: u64,
}

/// The state file of one database.
#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
}

impl StateFile {
    pub fn new(state_dir: &Path, database: &str) -> StateFile {
        StateFile {
            dir: state_dir.join(database.to_ascii_uppercase()),
        }
    }

    /// Where the job's RMAN command files and logs go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn load(&self) -> Result<DbState, AgentError> {
        match std::fs::read(self.path()) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| AgentError::State {
                path: self.path(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DbState::default()),
            Err(e) => Err(AgentError::State {
                path: self.path(),
                message: e.to_string(),
            }),
        }
    }

    /// Written to a temporary file and renamed: a crash leaves the old state or the new one.
    pub fn save(&self, s: &DbState) -> Result<(), AgentError> {
        let err = |e: std::io::Error| AgentError::State {
            path: self.path(),
            message: e.to_string(),
        };
        private_dir(&self.dir).map_err(err)?;
        let tmp = self.dir.join("state.json.tmp");
        let body = serde_json::to_vec_pretty(s).expect("state serialises");
        write_private(&tmp, &body).map_err(err)?;
        std::fs::rename(&tmp, self.path()).map_err(err)
    }
}

/// Creates `dir` (and its parents) readable by the agent's user only (0700): it holds RMAN
/// command files and logs, which name the channels' secret files.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes `body` to `path`, readable by the agent's user only (0600), whatever the umask and
/// whatever the mode of a file already there.
pub(crate) fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(body)
}
