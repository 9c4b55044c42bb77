//! The agent: its configuration file for one database, written as a DBA writes it
//! (`docs/agent.example.toml`), and `orca agent run` as its own process.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::http;
use crate::orca::Orca;
use crate::process::{Guard, wait_for};

/// An agent configuration with one `[[database]]`.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `[agent] name`.
    pub name: String,
    /// `[agent] state_dir`.
    pub state_dir: PathBuf,
    /// `[agent] heartbeat`, as written (`1s`).
    pub heartbeat: String,
    /// `[agent] poll`, as written (`200ms`).
    pub poll: String,
    /// `[vault] url`.
    pub vault_url: String,
    pub database: AgentDatabase,
}

/// The `[[database]]` of an [`AgentConfig`].
#[derive(Debug, Clone)]
pub struct AgentDatabase {
    pub name: String,
    pub oracle_sid: String,
    pub oracle_home: PathBuf,
    /// Where `rman` and `sqlplus` are.
    pub bin: PathBuf,
    pub token: String,
    pub password: String,
    pub sbt_library: PathBuf,
    pub channels: u32,
    /// `section_size`, as written (`1M`).
    pub section_size: Option<String>,
    /// `retention`, as TOML (`{ redundancy = 1 }`).
    pub retention: Option<String>,
    /// `[database.rac] instances`; no RAC table when empty.
    pub rac_instances: Vec<String>,
    /// The channels' `ORCA_CACHE_DIR`.
    pub cache_dir: PathBuf,
}

impl AgentConfig {
    /// The file's text.
    pub fn to_toml(&self) -> String {
        let d = &self.database;
        let mut db_lines = String::new();
        if let Some(s) = &d.section_size {
            db_lines.push_str(&format!("section_size = \"{s}\"\n"));
        }
        if let Some(r) = &d.retention {
            db_lines.push_str(&format!("retention = {r}\n"));
        }
        let rac = if d.rac_instances.is_empty() {
            String::new()
        } else {
            let instances: Vec<String> =
                d.rac_instances.iter().map(|i| format!("\"{i}\"")).collect();
            format!(
                "[database.rac]\ninstances = [{}]\nchannel_connect = \"sys/pw@{{instance}}\"\n",
                instances.join(", ")
            )
        };
        format!(
            r#"[agent]
name = "{agent}"
state_dir = "{state}"
heartbeat = "{heartbeat}"
poll = "{poll}"

[vault]
url = "{vault}"

[[database]]
name = "{name}"
oracle_sid = "{sid}"
oracle_home = "{home}"
rman = "{bin}/rman"
sqlplus = "{bin}/sqlplus"
token = "{token}"
password = "{password}"
sbt_library = "{lib}"
sbt_trace = "{home}/trace/sbtio.log"
channels = {channels}
{db_lines}
[database.channel_env]
ORCA_CACHE_DIR = "{cache}"
ORCA_SBT_BATCH_MB = "1"

[database.env]
ORACLESIM_HOME = "{home}"
{rac}"#,
            agent = self.name,
            state = self.state_dir.display(),
            heartbeat = self.heartbeat,
            poll = self.poll,
            vault = self.vault_url,
            name = d.name,
            sid = d.oracle_sid,
            home = d.oracle_home.display(),
            bin = d.bin.display(),
            token = d.token,
            password = d.password,
            lib = d.sbt_library.display(),
            channels = d.channels,
            cache = d.cache_dir.display(),
        )
    }

    /// Writes the file at `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_toml())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// Whether the vault says the agent of database `db` is alive (its last heartbeat is
/// recent), asked with the database's `token`.
pub fn alive(vault_url: &str, db: &str, token: &str) -> bool {
    http::request(
        vault_url,
        "GET",
        &format!("/api/v1/agents/{db}"),
        Some(token),
        b"",
    )
    .is_ok_and(|r| r.body.contains("\"alive\":true"))
}

/// `orca -v agent run --config <config>`, logging to `log`; killed when dropped.
#[derive(Debug)]
pub struct AgentProcess {
    orca: Orca,
    config: PathBuf,
    log: PathBuf,
    child: Guard,
}

impl AgentProcess {
    /// An agent of `config`, not started.
    pub fn new(orca: &Orca, config: &Path, log: &Path) -> AgentProcess {
        AgentProcess {
            orca: orca.clone(),
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            child: Guard::default(),
        }
    }

    /// (Re)starts it with `env` added (the simulator's fault switches reach `rman` through
    /// it) and waits until `alive` holds.
    pub fn start(&mut self, env: &[(&str, String)], alive: impl FnMut() -> bool) {
        self.child.kill();
        let log = std::fs::File::create(&self.log)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.log.display()));
        let mut c = self.orca.cmd();
        c.args(["-v", "agent", "run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            c.env(k, v);
        }
        self.child = Guard::spawn(&mut c);
        wait_for("the agent's heartbeat", 20, alive);
    }

    /// kill -9.
    pub fn stop(&mut self) {
        self.child.kill();
    }
}
