//! The agent end to end, all real processes: `orca vault serve`, `orca agent run`, the
//! simulator's `rman` and `sqlplus` loading the SBT library, `orca backup` / `orca jobs` /
//! `orca job show` as a DBA types them. Databases are a few MiB so each test takes seconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

const PASSWORD: &str = "agent e2e passphrase";

fn orca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orca"))
}

/// Where `orca` is built, with the SBT library and the simulator beside it (built now, so
/// that they are never older than their sources).
fn bin_dir() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "orca-sbt", "-p", "orca-oracle-sim"])
            .status()
            .unwrap();
        assert!(status.success());
    });
    Path::new(env!("CARGO_BIN_EXE_orca"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn output(c: &mut Command) -> (bool, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed:\n{}{}",
        c,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains(" 200 ")
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A vault, a simulated database with its token, and the agent's configuration for it.
struct Site {
    root: PathBuf,
    name: String,
    home: PathBuf,
    bin: PathBuf,
    config: PathBuf,
    vault_port: u16,
    vault: Option<Child>,
    agent: Option<Child>,
}

/// How the database and the agent are set up.
struct Setup {
    datafiles: u32,
    size_mb: u32,
    threads: u16,
    section_size: Option<&'static str>,
    channels: u32,
    rac: bool,
    /// `retention = ...` line of the database's configuration.
    retention: Option<&'static str>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            datafiles: 4,
            size_mb: 4,
            threads: 1,
            section_size: None,
            channels: 2,
            rac: false,
            retention: None,
        }
    }
}

impl Site {
    fn new(root: &Path, s: Setup) -> Site {
        let bins = bin_dir();
        let name = "ORCL".to_string();
        let data = root.join("vault");
        run_ok(
            orca()
                .env("ORCA_PASSWORD", PASSWORD)
                .args(["repo", "init", "--repo"])
                .arg(&data),
        );
        let vault_port = free_port();
        let vault = orca()
            .args(["vault", "serve", "--data"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{vault_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the vault", 20, || http_ok(vault_port, "/healthz"));
        let token = run_ok(
            orca()
                .args(["vault", "token", "create", "--data"])
                .arg(&data)
                .args(["--db", &name, "--scope", "backup"]),
        )
        .trim()
        .to_string();
        let bin = root.join("bin");
        run_ok(
            Command::new(bins.join("oraclesim"))
                .arg("install-shims")
                .arg(&bin),
        );
        let home = root.join("db");
        run_ok(
            Command::new(bins.join("oraclesim"))
                .args(["create", "--home"])
                .arg(&home)
                .args(["--name", &name, "--online-log-mb", "4"])
                .args(["--datafiles", &s.datafiles.to_string()])
                .args(["--size-mb", &s.size_mb.to_string()])
                .args(["--threads", &s.threads.to_string()]),
        );
        let sid = if s.threads > 1 { "orcl1" } else { "orcl" };
        let section = s
            .section_size
            .map(|v| format!("section_size = \"{v}\"\n"))
            .unwrap_or_default();
        let section = match s.retention {
            Some(r) => format!("{section}retention = {r}\n"),
            None => section,
        };
        let rac = if s.rac {
            "[database.rac]\ninstances = [\"orcl1\", \"orcl2\"]\nchannel_connect = \"sys/pw@{instance}\"\n"
        } else {
            ""
        };
        let config = root.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                r#"[agent]
name = "testhost"
state_dir = "{state}"
heartbeat = "1s"
poll = "200ms"

[vault]
url = "http://127.0.0.1:{vault_port}"

[[database]]
name = "{name}"
oracle_sid = "{sid}"
oracle_home = "{home}"
rman = "{bin}/rman"
sqlplus = "{bin}/sqlplus"
token = "{token}"
password = "{PASSWORD}"
sbt_library = "{lib}"
sbt_trace = "{home}/trace/sbtio.log"
channels = {channels}
{section}
[database.channel_env]
ORCA_CACHE_DIR = "{cache}"
ORCA_SBT_BATCH_MB = "1"

[database.env]
ORACLESIM_HOME = "{home}"
{rac}"#,
                state = root.join("state").display(),
                home = home.display(),
                bin = bin.display(),
                lib = bins.join("liborca_sbt.so").display(),
                cache = root.join("cache").display(),
                channels = s.channels,
            ),
        )
        .unwrap();
        Site {
            root: root.to_path_buf(),
            name,
            home,
            bin,
            config,
            vault_port,
            vault: Some(vault),
            agent: None,
        }
    }

    /// Starts `orca agent run` with extra environment (the simulator's fault switches reach
    /// `rman` through it) and waits for its first heartbeat.
    fn start_agent(&mut self, env: &[(&str, String)]) {
        kill(&mut self.agent);
        let log = std::fs::File::create(self.root.join("agent.log")).unwrap();
        let mut c = orca();
        c.args(["-v", "agent", "run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            c.env(k, v);
        }
        self.agent = Some(c.spawn().unwrap());
        wait_for("the agent's heartbeat", 20, || self.agent_alive());
    }

    fn stop_agent(&mut self) {
        kill(&mut self.agent);
    }

    fn agent_alive(&self) -> bool {
        let (ok, out) = output(
            orca()
                .args(["jobs", "--json", "--config"])
                .arg(&self.config),
        );
        assert!(ok, "{out}");
        // `orca backup` reads the same heartbeat; a raw read keeps this helper side-effect free.
        let token = self.token();
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.vault_port)) else {
            return false;
        };
        let _ = write!(
            s,
            "GET /api/v1/agents/{} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
            self.name
        );
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"alive\":true")
    }

    /// The database's vault token, from the agent's configuration.
    fn token(&self) -> String {
        std::fs::read_to_string(&self.config)
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("token = \"")
                    .map(|t| t.trim_end_matches('"').to_string())
            })
            .unwrap()
    }

    fn orca(&self, args: &[&str]) -> (bool, String) {
        output(orca().args(args).arg("--config").arg(&self.config))
    }

    /// `orca backup --db ORCL [--type T] --wait`: the job id and whether it succeeded.
    fn backup(&self, kind: Option<&str>) -> (String, bool, String) {
        let mut args = vec!["backup", "--db", "ORCL", "--wait"];
        if let Some(k) = kind {
            args.extend(["--type", k]);
        }
        let out = orca()
            .args(&args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let id = stdout.lines().next().unwrap_or_default().trim().to_string();
        let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        (id, out.status.success(), text)
    }

    fn job(&self, id: &str) -> serde_json::Value {
        let (ok, out) = self.orca(&["job", "show", id, "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    }

    fn recovery_points(&self) -> Vec<serde_json::Value> {
        let (ok, out) = self.orca(&["recovery-points", "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    }

    fn sim(&self, args: &[&str]) -> String {
        run_ok(
            Command::new(bin_dir().join("oraclesim"))
                .args(args)
                .env("ORACLESIM_HOME", &self.home),
        )
    }

    fn workload(&self, change_pct: &str, switches: u32) {
        self.sim(&[
            "workload",
            "--change-pct",
            change_pct,
            "--log-switches",
            &switches.to_string(),
        ]);
    }

    fn parms(&self) -> String {
        let token = self.token();
        format!(
            "SBT_LIBRARY={}, ENV=(ORCA_VAULT=http://127.0.0.1:{}, ORCA_TOKEN={token}, ORCA_PASSWORD={PASSWORD}, ORCA_CACHE_DIR={})",
            bin_dir().join("liborca_sbt.so").display(),
            self.vault_port,
            self.root.join("cache").display()
        )
    }

    fn rman(&self, script: &str) -> String {
        let f = self.root.join("test.rman");
        std::fs::write(&f, script).unwrap();
        run_ok(
            Command::new(self.bin.join("rman"))
                .arg("target")
                .arg("/")
                .arg(format!("cmdfile={}", f.display()))
                .env("ORACLESIM_HOME", &self.home),
        )
    }

    /// Delete every datafile, restore and recover through the vault, compare with a copy.
    fn lose_restore_verify(&self) {
        let reference = self.root.join("reference");
        let _ = std::fs::remove_dir_all(&reference);
        copy_dir(&self.home, &reference);
        let oradata = self.home.join("oradata").join(&self.name);
        for e in std::fs::read_dir(&oradata).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        let p = self.parms();
        self.rman(&format!(
            "run {{\n allocate channel c1 device type sbt parms '{p}';\n allocate channel c2 device type sbt parms '{p}';\n restore database;\n recover database;\n}}\n"
        ));
        let out = self.sim(&[
            "verify",
            "--home",
            self.home.to_str().unwrap(),
            "--against",
            reference.to_str().unwrap(),
        ]);
        assert!(out.contains("OK"), "{out}");
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        kill(&mut self.agent);
        kill(&mut self.vault);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn detail<'a>(job: &'a serde_json::Value, key: &str) -> &'a str {
    job["details"][key].as_str().unwrap_or("")
}

fn detail_u64(job: &serde_json::Value, key: &str) -> u64 {
    detail(job, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {job:#}"))
}

#[test]
fn full_then_incrementals_then_archived_logs_and_a_restore_of_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path(), Setup::default());
    site.start_agent(&[]);

    // No --type: the first backup of the database is a full (level 0).
    let (id, ok, out) = site.backup(None);
    assert!(ok, "{out}");
    let j = site.job(&id);
    assert_eq!(j["state"], "succeeded", "{j:#}");
    assert_eq!(detail(&j, "level"), "0", "{j:#}");
    assert!(detail_u64(&j, "bytes_read") > 0, "{j:#}");
    assert!(j["progress"]["bytes_estimated"].as_u64().unwrap() > 0);

    for i in 0..2 {
        site.workload("2", 1);
        let (id, ok, out) = site.backup(None);
        assert!(ok, "incremental {i}: {out}");
        let j = site.job(&id);
        assert_eq!(detail(&j, "level"), "1", "{j:#}");
    }
    site.workload("1", 2);
    let (id, ok, out) = site.backup(Some("archivelog"));
    assert!(ok, "{out}");
    assert!(detail(&site.job(&id), "tag").starts_with("ORCA_ARC_"));

    let kinds: Vec<String> = site
        .recovery_points()
        .iter()
        .map(|rp| rp["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["full", "incremental", "incremental", "archivelog"]);
    let (ok, list) = site.orca(&["jobs"]);
    assert!(ok && list.matches("succeeded").count() == 4, "{list}");

    site.stop_agent();
    site.lose_restore_verify();
}

#[test]
fn retention_deletes_what_the_policy_no_longer_needs_in_rman_and_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(
        dir.path(),
        Setup {
            retention: Some("{ redundancy = 1 }"),
            ..Setup::default()
        },
    );
    site.start_agent(&[]);
    let (first, ok, out) = site.backup(Some("full"));
    assert!(ok, "{out}");
    let j1 = site.job(&first);
    assert_eq!(detail(&j1, "retention"), "redundancy 1", "{j1:#}");
    let first_rp = detail(&j1, "recovery_point").to_string();
    site.workload("2", 1);
    // Backup times have one-second resolution: the second full must be newer.
    std::thread::sleep(Duration::from_millis(1100));
    let (second, ok, out) = site.backup(Some("full"));
    assert!(ok, "{out}");
    let j2 = site.job(&second);
    // The first full's datafile pieces are obsolete once a second full exists.
    assert!(detail_u64(&j2, "retention_deleted_pieces") >= 4, "{j2:#}");
    assert!(
        detail(&j2, "retention_dropped_points").contains(&first_rp),
        "{j2:#}"
    );
    let rps = site.recovery_points();
    assert!(
        rps.iter().all(|rp| rp["id"] != first_rp.as_str()),
        "{rps:#?}"
    );
    assert!(
        rps.iter()
            .any(|rp| rp["id"] == detail(&j2, "recovery_point")),
        "{rps:#?}"
    );
    // Nothing the kept point names is gone: it restores.
    site.stop_agent();
    site.lose_restore_verify();
}

#[test]
#[ignore = "issue 6: on a clean CI build the recovery point sometimes names a piece of the killed attempt that never committed; run with --ignored"]
fn a_killed_full_is_resumed_into_one_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(
        dir.path(),
        Setup {
            datafiles: 4,
            size_mb: 8,
            section_size: Some("1M"),
            ..Setup::default()
        },
    );
    let db_bytes: u64 = 4 * (8 << 20);
    // Late enough that whichever way the channels share the sections, one
    // datafile is complete and one is partly done.
    site.start_agent(&[("ORACLESIM_KILL_AFTER_BYTES", (db_bytes * 3 / 4).to_string())]);
    let (first, ok, out) = site.backup(Some("full"));
    assert!(!ok, "the killed full must fail: {out}");
    let j1 = site.job(&first);
    assert_eq!(j1["state"], "failed");
    let tag = detail(&j1, "tag").to_string();
    assert!(tag.starts_with("ORCA_L0_"), "{j1:#}");

    site.start_agent(&[]);
    site.workload("1", 1);
    // Any datafile request resumes the failed full.
    let (second, ok, out) = site.backup(None);
    assert!(ok, "{out}");
    let j2 = site.job(&second);
    assert_eq!(detail(&j2, "resumed"), "true", "{j2:#}");
    assert_eq!(detail(&j2, "tag"), tag);
    assert_eq!(detail(&j2, "command_id"), detail(&j1, "command_id"));
    assert!(!detail(&j2, "skipped_datafiles").is_empty(), "{j2:#}");
    let log = std::fs::read_to_string(dir.path().join("state/ORCL").join(format!("{second}.log")))
        .unwrap();
    assert!(log.contains("skipping datafile"), "{log}");
    assert!(
        log.contains(&format!(
            "set command id to '{}'",
            detail(&j1, "command_id")
        )),
        "{log}"
    );

    let rps = site.recovery_points();
    assert_eq!(rps.len(), 1, "{rps:#?}");
    assert_eq!(rps[0]["labels"]["tag"], tag.as_str());
    assert_eq!(rps[0]["labels"]["attempts"], "2");
    let read = detail_u64(&j2, "bytes_read");
    let sent = detail_u64(&j2, "bytes_sent");
    let resent = detail_u64(&j2, "bytes_resent");
    let cleaned = detail(&j2, "cleaned_up")
        .split(',')
        .filter(|s| !s.is_empty())
        .count() as u64;
    eprintln!(
        "resumed full: read {read} sent {sent} re-sent {resent} cleaned-up sections {cleaned}"
    );
    assert!(
        resent <= 2 * (1 << 20) + cleaned * (1 << 20),
        "re-sent {resent} bytes > one 1 MiB chunk per channel plus {cleaned} cleaned-up sections"
    );
    site.stop_agent();
    site.lose_restore_verify();
}

#[test]
fn with_the_agent_stopped_a_manual_job_fails_at_once_and_a_scheduled_one_expires() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path(), Setup::default());
    let started = Instant::now();
    let (id, ok, out) = site.backup(None);
    assert!(!ok, "{out}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(out.contains("the agent is not running"), "{out}");
    assert_eq!(site.job(&id)["state"], "failed");

    let (ok, out) = site.orca(&["backup", "--db", "ORCL", "--window", "2s"]);
    assert!(ok, "{out}");
    let id = out.lines().next().unwrap().trim().to_string();
    assert_eq!(site.job(&id)["state"], "queued");
    std::thread::sleep(Duration::from_secs(3));
    let j = site.job(&id);
    assert_eq!(j["state"], "failed", "{j:#}");
    assert_eq!(j["trigger"], "scheduled");
    assert!(
        j["message"].as_str().unwrap().contains("window closed"),
        "{j:#}"
    );
}
