//! The agent's TOML configuration (`docs/agent.example.toml` documents every key).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::AgentError;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub agent: AgentSection,
    pub vault: VaultSection,
    #[serde(rename = "database")]
    pub databases: Vec<DatabaseConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Shown in heartbeats; the host name by default.
    pub name: Option<String>,
    /// Where the agent keeps each database's attempts and RMAN logs.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_heartbeat", with = "humantime_serde_compat")]
    pub heartbeat: Duration,
    /// How often the queue is read.
    #[serde(default = "default_poll", with = "humantime_serde_compat")]
    pub poll: Duration,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            name: None,
            state_dir: default_state_dir(),
            heartbeat: default_heartbeat(),
            poll: default_poll(),
        }
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/orca-agent")
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(5)
}
fn default_poll() -> Duration {
    Duration::from_secs(2)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    /// `http(s)://host:port`.
    pub url: String,
    /// CA certificate for a vault with a private certificate.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// DB_NAME, as the vault token knows it.
    pub name: String,
    pub oracle_sid: String,
    pub oracle_home: PathBuf,
    /// Default `$ORACLE_HOME/bin/rman`.
    pub rman: Option<PathBuf>,
    /// Default `$ORACLE_HOME/bin/sqlplus`.
    pub sqlplus: Option<PathBuf>,
    /// RMAN's `target` connect string; sqlplus connects with it `as sysdba`.
    #[serde(default = "default_connect")]
    pub connect: String,
    /// The database's vault token (`orca vault token create --scope backup`).
    pub token: String,
    /// The repository key for the SBT library: one of these.
    pub key_file: Option<PathBuf>,
    pub password: Option<String>,
    /// `liborca_sbt.so`.
    pub sbt_library: PathBuf,
    /// SBT trace file the library writes per-piece statistics to (`SBTINIT_TRACE_NAME`):
    /// read for bytes read, sent and re-sent.
    pub sbt_trace: Option<PathBuf>,
    /// SBT channels per job.
    #[serde(default = "default_channels")]
    pub channels: u32,
    /// RMAN `SECTION SIZE` (e.g. `64G`): files larger than this go in sections, in parallel.
    pub section_size: Option<String>,
    /// More variables for the channels' `ENV=(...)` (cache directory, batch sizes).
    #[serde(default)]
    pub channel_env: BTreeMap<String, String>,
    /// More environment for `rman` and `sqlplus` (NLS settings, TNS_ADMIN...).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub rac: Option<RacConfig>,
    #[serde(default)]
    pub schedule: Schedule,
    /// What to keep; after every successful backup the rest is deleted in RMAN
    /// (`DELETE OBSOLETE`, which removes the pieces from the vault through the
    /// SBT library) and the recovery points that named it are dropped. None:
    /// nothing is deleted.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Restore drills (`orca drill`).
    #[serde(default)]
    pub drill: DrillConfig,
}

/// `[database.drill]`: where drills restore to and how the copy is checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// Scratch space for the restored copy; `<state_dir>/<db>/drill` by default.
    pub scratch: Option<PathBuf>,
    /// A shell command that checks the restored copy (`{location}`: its directory, `{scn}`:
    /// the SCN it was recovered to); exit 0 passes. None: the restore, recovery and OPEN
    /// RESETLOGS are the check.
    pub verify: Option<String>,
    /// The agent drills the newest restorable point this often (`7d`); None: only
    /// `orca drill`.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub every: Option<Duration>,
}

/// A retention policy, in RMAN's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Retention {
    /// Keep what a point-in-time recovery to any moment of the last N days needs.
    RecoveryWindowDays(u32),
    /// Keep the last N backups of every datafile (and what recovering them needs).
    Redundancy(u32),
}

impl Retention {
    /// The policy as RMAN writes it after `DELETE OBSOLETE`.
    pub fn rman(&self) -> String {
        match self {
            Retention::RecoveryWindowDays(n) => format!("recovery window of {n} days"),
            Retention::Redundancy(n) => format!("redundancy {n}"),
        }
    }
}

fn default_connect() -> String {
    "/".into()
}
fn default_channels() -> u32 {
    2
}

/// A RAC database: the instances channels may run on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RacConfig {
    /// INSTANCE_NAMEs; the first is the primary the backup is started on.
    pub instances: Vec<String>,
    /// Channel `CONNECT` string with `{instance}` in it, e.g. `sys/secret@{instance}`.
    pub channel_connect: String,
}

/// Intervals between backups the agent starts itself; none by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default, with = "humantime_serde_compat::option")]
    pub full: Option<Duration>,
    #[serde(default, with = "humantime_serde_compat::option")]
    pub incremental: Option<Duration>,
    #[serde(default, with = "humantime_serde_compat::option")]
    pub archivelog: Option<Duration>,
    /// How long a scheduled job may wait to start before it fails.
    #[serde(default = "default_window", with = "humantime_serde_compat")]
    pub window: Duration,
}

impl Schedule {
    /// The longest the database should go without a new recovery point: its shortest backup
    /// interval, plus the window a scheduled job has to start in. None when nothing is scheduled.
    pub fn rpo(&self) -> Option<Duration> {
        [self.full, self.incremental, self.archivelog]
            .into_iter()
            .flatten()
            .min()
            .map(|every| every + self.window)
    }
}

/// Without a `[database.schedule]` table the window is the default too: a drill scheduled
/// in `[database.drill]` must not expire the moment it is queued.
impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            full: None,
            incremental: None,
            archivelog: None,
            window: default_window(),
        }
    }
}

fn default_window() -> Duration {
    Duration::from_secs(4 * 3600)
}

/// Durations as humans write them (`30s`, `4h`, `7d`).
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Config::parse(&text).map_err(|message| AgentError::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and checks configuration text; the error names the key to fix.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if c.databases.is_empty() {
            return Err("no [[database]]: the agent has nothing to back up".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for d in &c.databases {
            if !names.insert(d.name.to_ascii_uppercase()) {
                return Err(format!("database {} is configured twice", d.name));
            }
            if d.key_file.is_none() == d.password.is_none() {
                return Err(format!(
                    "database {}: set exactly one of key_file and password (the repository key)",
                    d.name
                ));
            }
            if matches!(
                d.retention,
                Some(Retention::RecoveryWindowDays(0) | Retention::Redundancy(0))
            ) {
                return Err(format!(
                    "database {}: retention must keep at least 1 day or 1 backup",
                    d.name
                ));
            }
            if !(1..=64).contains(&d.channels) {
                return Err(format!("database {}: channels must be 1 to 64", d.name));
            }
            if let Some(r) = &d.rac
                && (r.instances.is_empty() || !r.channel_connect.contains("{instance}"))
            {
                return Err(format!(
                    "database {}: [database.rac] needs instances and a channel_connect with {{instance}}",
                    d.name
                ));
            }
            // Values end up inside PARMS '...ENV=(K=V, ...)': quotes, commas or parentheses
            // would change the channel's configuration rather than fail.
            let bad = |v: &str| v.contains(['\'', '"', ',', '(', ')', '\n']);
            let channel_values = d
                .channel_env
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()])
                .chain([d.token.as_str(), c.vault.url.as_str()])
                .chain(d.password.as_deref());
            if let Some(v) = channel_values.into_iter().find(|v| bad(v)) {
                return Err(format!(
                    "database {}: {v:?} cannot go into a channel's ENV: no quotes, commas, parentheses or newlines",
                    d.name
                ));
            }
        }
        Ok(c)
    }

    pub fn database(&self, name: &str) -> Option<&DatabaseConfig> {
        self.databases
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// The name heartbeats carry.
    pub fn agent_name(&self) -> String {
        self.agent.name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "orca-agent".into())
        })
    }
}

impl DatabaseConfig {
    pub fn rman_path(&self) -> PathBuf {
        self.rman
            .clone()
            .unwrap_or_else(|| self.oracle_home.join("bin").join("rman"))
    }

    pub fn sqlplus_path(&self) -> PathBuf {
        self.sqlplus
            .clone()
            .unwrap_or_else(|| self.oracle_home.join("bin").join("sqlplus"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../../docs/agent.example.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.databases[0].name, "ORCL");
        assert_eq!(
            c.databases[0].schedule.window,
            Duration::from_secs(2 * 3600)
        );
        assert!(c.databases[0].schedule.full.is_some());
        assert_eq!(
            c.databases[0].retention,
            Some(Retention::RecoveryWindowDays(7))
        );
        assert_eq!(
            c.databases[0].retention.unwrap().rman(),
            "recovery window of 7 days"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let base = r#"
[vault]
url = "http://v:7400"
[[database]]
name = "ORCL"
oracle_sid = "orcl"
oracle_home = "/u01"
token = "orca_x"
sbt_library = "/l.so"
"#;
        assert!(Config::parse(base).unwrap_err().contains("key_file"));
        let e = Config::parse(&format!("{base}password = \"a,b\"\n")).unwrap_err();
        assert!(e.contains("ENV"), "{e}");
        let e = Config::parse(&format!("{base}password = \"p\"\nchanels = 2\n")).unwrap_err();
        assert!(e.contains("chanels"), "{e}");
        assert!(Config::parse(&format!("{base}password = \"p\"\n")).is_ok());
    }
}
