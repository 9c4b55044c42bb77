//! The agent end to end, all real processes: `orca vault serve`, `orca agent run`, the
//! simulator's `rman` and `sqlplus` loading the SBT library, `orca backup` / `orca jobs` /
//! `orca job show` as a DBA types them. Databases are a few MiB so each test takes seconds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orca_testing::agent::{AgentConfig, AgentDatabase, AgentProcess, alive};
use orca_testing::orca::Orca;
use orca_testing::process::{output, run_ok};
use orca_testing::sim::{DbSpec, SimDb, sbt_parms, sbt_run};
use orca_testing::tools;
use orca_testing::vault::VaultServer;

const PASSWORD: &str = "agent e2e passphrase";

fn orca() -> Orca {
    Orca::at(env!("CARGO_BIN_EXE_orca"))
}

/// A vault, a simulated database with its token, and the agent's configuration for it.
/// Fields drop in order: the agent stops before its vault.
struct Site {
    agent: AgentProcess,
    vault: VaultServer,
    root: PathBuf,
    db: SimDb,
    config: AgentConfig,
    config_file: PathBuf,
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
    /// Incompressible datafile blocks (`oraclesim create --fill random`).
    random: bool,
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
            random: false,
        }
    }
}

/// What [`Setup::sectioned`] holds in datafiles.
const SECTIONED_BYTES: u64 = 4 * (8 << 20);

impl Setup {
    /// Four 8 MiB datafiles backed up in 1 MiB sections: a backup killed or failed anywhere
    /// leaves files complete, files partly done and files not started.
    fn sectioned() -> Setup {
        Setup {
            datafiles: 4,
            size_mb: 8,
            section_size: Some("1M"),
            ..Setup::default()
        }
    }

    /// A two-instance RAC database of four 8 MiB datafiles.
    fn rac() -> Setup {
        Setup {
            datafiles: 4,
            size_mb: 8,
            threads: 2,
            rac: true,
            ..Setup::default()
        }
    }
}

impl Site {
    fn new(root: &Path, s: Setup) -> Site {
        let vault = VaultServer::init(&orca().with_password(PASSWORD), root);
        let name = "ORCL";
        let token = vault.token(name);
        let db = SimDb::create(
            &tools::oraclesim(),
            root,
            &DbSpec {
                datafiles: s.datafiles,
                size_mb: s.size_mb,
                threads: s.threads,
                online_log_mb: Some(4),
                random_fill: s.random,
                ..DbSpec::default()
            },
        );
        let config = AgentConfig {
            name: "testhost".into(),
            state_dir: root.join("state"),
            heartbeat: "1s".into(),
            poll: "200ms".into(),
            vault_url: vault.url(),
            database: AgentDatabase {
                name: name.into(),
                oracle_sid: if s.threads > 1 { "orcl1" } else { "orcl" }.into(),
                oracle_home: db.home.clone(),
                bin: db.bin.clone(),
                token,
                password: PASSWORD.into(),
                sbt_library: tools::sbt_library(),
                channels: s.channels,
                section_size: s.section_size.map(String::from),
                retention: s.retention.map(String::from),
                rac_instances: if s.rac {
                    vec!["orcl1".into(), "orcl2".into()]
                } else {
                    Vec::new()
                },
                cache_dir: root.join("cache"),
            },
        };
        let config_file = root.join("agent.toml");
        config.write(&config_file);
        let agent = AgentProcess::new(&orca(), &config_file, &root.join("agent.log"));
        Site {
            agent,
            vault,
            root: root.to_path_buf(),
            db,
            config,
            config_file,
        }
    }

    fn name(&self) -> &str {
        &self.config.database.name
    }

    /// Starts `orca agent run` with extra environment (the simulator's fault switches reach
    /// `rman` through it) and waits for its first heartbeat.
    fn start_agent(&mut self, env: &[(&str, String)]) {
        let (orca_cmd, config) = (orca(), self.config_file.clone());
        let (url, db, token) = (
            self.vault.url(),
            self.config.database.name.clone(),
            self.config.database.token.clone(),
        );
        self.agent.start(env, || {
            let (ok, out) = output(
                orca_cmd
                    .cmd()
                    .args(["jobs", "--json", "--config"])
                    .arg(&config),
            );
            assert!(ok, "{out}");
            // `orca backup` reads the same heartbeat; a raw read keeps this check side-effect free.
            alive(&url, &db, &token)
        });
    }

    fn stop_agent(&mut self) {
        self.agent.stop();
    }

    fn orca(&self, args: &[&str]) -> (bool, String) {
        output(
            orca()
                .cmd()
                .args(args)
                .arg("--config")
                .arg(&self.config_file),
        )
    }

    /// `orca backup --db ORCL [--type T] --wait`: the job id and whether it succeeded.
    fn backup(&self, kind: Option<&str>) -> (String, bool, String) {
        let mut args = vec!["backup", "--db", "ORCL", "--wait"];
        if let Some(k) = kind {
            args.extend(["--type", k]);
        }
        let out = orca()
            .cmd()
            .args(&args)
            .arg("--config")
            .arg(&self.config_file)
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

    /// The handles RMAN's catalog holds as available, optionally of one tag.
    fn rman_pieces(&self, tag: Option<&str>) -> Vec<String> {
        let filter = tag.map_or(String::new(), |t| format!(" and tag = '{t}'"));
        self.db.sql_column(&format!(
            "select handle from v$backup_piece where status = 'A'{filter}"
        ))
    }

    /// `orca vault orphans --db ORCL`: the names of the pieces it reports.
    fn orphans(&self) -> Vec<String> {
        let (ok, out) = self.orca(&["vault", "orphans", "--db", "ORCL", "--json"]);
        assert!(ok, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The pieces the vault holds, as `<database>/<handle>`.
    fn vault_pieces(&self) -> Vec<String> {
        let v = orca().with_password(PASSWORD).json(&[
            "ls",
            "--json",
            "--repo",
            self.vault.data.to_str().unwrap(),
        ]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The SBT channel of the database's configuration.
    fn parms(&self) -> String {
        sbt_parms(
            &self.config.database.sbt_library,
            &[
                ("ORCA_VAULT", self.vault.url()),
                ("ORCA_TOKEN", self.config.database.token.clone()),
                ("ORCA_PASSWORD", PASSWORD.into()),
                (
                    "ORCA_CACHE_DIR",
                    self.root.join("cache").display().to_string(),
                ),
            ],
        )
    }

    /// Delete every datafile, restore and recover through the vault, prove it against a
    /// snapshot taken before the loss.
    fn lose_restore_verify(&self) {
        let p = self.parms();
        self.db
            .lose_restore_verify(&sbt_run(&[&p, &p], "restore database;\nrecover database;"));
    }
}

/// A byte counter of the vault's /metrics, as the exposition prints it.
fn vault_count(site: &Site, name: &str) -> u64 {
    let text = site.vault.metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| {
            v.trim().parse().unwrap_or_else(|_| panic!("{name} {v}"))
        })
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

    let mut tags = Vec::new();
    for i in 0..2 {
        site.db.workload("2", 1);
        let (id, ok, out) = site.backup(None);
        assert!(ok, "incremental {i}: {out}");
        let j = site.job(&id);
        assert_eq!(detail(&j, "level"), "1", "{j:#}");
        tags.push(detail(&j, "tag").to_string());
    }
    // Backups of a small database end within the second they began: the next one still
    // gets a tag of its own, so each recovery point holds its own pieces only.
    assert_ne!(tags[0], tags[1]);
    let pieces: Vec<Vec<String>> = site
        .recovery_points()
        .iter()
        .filter(|rp| rp["kind"] == "incremental")
        .map(|rp| {
            let listed: Vec<String> = rp["pieces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect();
            // The vault names a piece by its handle after the database's namespace.
            for own in site.rman_pieces(rp["labels"]["tag"].as_str()) {
                assert!(
                    listed.iter().any(|l| l.ends_with(&own)),
                    "{own} not in {rp:#}"
                );
            }
            listed
        })
        .collect();
    assert_eq!(pieces.len(), 2);
    assert!(
        pieces[0].iter().all(|p| !pieces[1].contains(p)),
        "two recovery points share pieces: {pieces:?}"
    );
    site.db.workload("1", 2);
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
    site.db.workload("2", 1);
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
fn a_killed_full_is_resumed_into_one_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path(), Setup::sectioned());
    let db_bytes = SECTIONED_BYTES;
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
    site.db.workload("1", 1);
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

/// RMAN killed right after the vault committed a piece and before RMAN recorded it: the
/// vault holds a piece no catalog names (the orphans report shows it), the resume deletes
/// it, and the job's byte figures are the vault's own counts.
#[test]
fn a_kill_between_the_vaults_commit_and_rmans_record_leaves_no_orphan_after_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path(), Setup::sectioned());
    site.start_agent(&[("ORACLESIM_FAULT", "die-after-sbtclose2:3".to_string())]);
    let (first, ok, out) = site.backup(Some("full"));
    assert!(!ok, "the killed full must fail: {out}");
    assert_eq!(site.job(&first)["state"], "failed");
    let orphans = site.orphans();
    assert!(
        !orphans.is_empty(),
        "the piece committed before the kill is named by no catalog: {:?}",
        site.vault_pieces()
    );
    let catalogued = site.rman_pieces(None);
    for o in &orphans {
        let handle = o.strip_prefix("ORCL/").unwrap();
        assert!(
            !catalogued.iter().any(|h| h == handle),
            "{o} {catalogued:?}"
        );
    }

    site.start_agent(&[]);
    let (second, ok, out) = site.backup(None);
    assert!(ok, "{out}");
    let j2 = site.job(&second);
    assert_eq!(detail(&j2, "resumed"), "true", "{j2:#}");
    let deleted = detail(&j2, "uncatalogued_deleted");
    for o in &orphans {
        assert!(
            deleted.split(',').any(|h| o.ends_with(&format!("/{h}"))),
            "{o} not deleted: {j2:#}"
        );
        assert!(
            !site.vault_pieces().contains(o),
            "{o} is still in the vault"
        );
    }
    assert!(site.orphans().is_empty(), "{:?}", site.orphans());
    assert_eq!(site.recovery_points().len(), 1);

    // The vault counted every upload of both attempts for the command id; this vault saw
    // no other backup, so its totals are the job's.
    let sent = detail_u64(&j2, "bytes_sent");
    let resent = detail_u64(&j2, "bytes_resent");
    let stored = detail_u64(&j2, "bytes_stored");
    eprintln!("killed after a commit, resumed: sent {sent} re-sent {resent} stored {stored}");
    assert_eq!(
        sent,
        vault_count(&site, "orca_vault_uploaded_bytes_total"),
        "{j2:#}"
    );
    assert_eq!(
        resent,
        vault_count(&site, "orca_vault_upload_duplicate_bytes_total"),
        "{j2:#}"
    );
    assert_eq!(stored, sent - resent);
    assert!(sent > 0);
    let progress = &j2["progress"];
    assert_eq!(
        progress["bytes_done"], progress["bytes_estimated"],
        "{j2:#}"
    );

    site.stop_agent();
    site.lose_restore_verify();
}

/// Incompressible data, the full killed at a quarter, half and three quarters: the resume
/// sends again at most 1 MiB per channel, makes one recovery point, and restores.
#[test]
fn a_random_content_full_killed_anywhere_resends_at_most_a_mib_per_channel() {
    let random = || Setup {
        random: true,
        ..Setup::sectioned()
    };
    // The same database backed up whole, into another vault: what a clean full sends.
    let clean = {
        let dir = tempfile::tempdir().unwrap();
        let mut site = Site::new(dir.path(), random());
        site.start_agent(&[]);
        let (id, ok, out) = site.backup(Some("full"));
        assert!(ok, "{out}");
        detail_u64(&site.job(&id), "bytes_sent")
    };
    for pct in [25u64, 50, 75] {
        let dir = tempfile::tempdir().unwrap();
        let mut site = Site::new(dir.path(), random());
        let kill = SECTIONED_BYTES * pct / 100;
        site.start_agent(&[("ORACLESIM_KILL_AFTER_BYTES", kill.to_string())]);
        let (first, ok, out) = site.backup(Some("full"));
        assert!(!ok, "killed at {pct}%: {out}");
        assert_eq!(site.job(&first)["state"], "failed");
        site.start_agent(&[]);
        let (second, ok, out) = site.backup(None);
        assert!(ok, "{out}");
        let j2 = site.job(&second);
        assert_eq!(detail(&j2, "resumed"), "true", "{j2:#}");
        let sent = detail_u64(&j2, "bytes_sent");
        let resent = detail_u64(&j2, "bytes_resent");
        eprintln!(
            "random content, killed at {pct}%: received {sent} bytes ({} more than a clean full's {clean}), {resent} of them received twice ({} channels)",
            sent.saturating_sub(clean),
            site.config.database.channels
        );
        let per_channels = u64::from(site.config.database.channels) << 20;
        assert!(
            resent <= per_channels,
            "killed at {pct}%: {resent} bytes received twice: {j2:#}"
        );
        // Measured from outside too: what the kill cost over a clean full.
        assert!(
            sent.saturating_sub(clean) <= per_channels,
            "killed at {pct}%: received {sent}, a clean full {clean}: {j2:#}"
        );
        assert_eq!(site.recovery_points().len(), 1);
        assert!(site.orphans().is_empty());
        site.stop_agent();
        site.lose_restore_verify();
    }
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

/// A full that fails three times in a row (killed, a channel failing, killed again) and then
/// completes is one recovery point with the one tag, covering all four attempts.
#[test]
fn three_failed_attempts_then_success_make_one_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path(), Setup::sectioned());
    let db_bytes = SECTIONED_BYTES;
    let faults = [
        ("ORACLESIM_KILL_AFTER_BYTES", (db_bytes / 8).to_string()),
        ("ORACLESIM_FAIL_AT_PIECE", "3".to_string()),
        ("ORACLESIM_KILL_AFTER_BYTES", (db_bytes / 8).to_string()),
    ];
    let mut tag = String::new();
    let mut jobs = Vec::new();
    for (i, fault) in faults.iter().enumerate() {
        site.start_agent(std::slice::from_ref(fault));
        let (id, ok, out) = site.backup(Some("full"));
        assert!(!ok, "attempt {} must fail: {out}", i + 1);
        let j = site.job(&id);
        assert_eq!(j["state"], "failed", "{j:#}");
        if i == 0 {
            tag = detail(&j, "tag").to_string();
        } else {
            assert_eq!(detail(&j, "tag"), tag, "attempt {} keeps the tag", i + 1);
            assert_eq!(detail(&j, "resumed"), "true", "{j:#}");
        }
        assert_eq!(detail(&j, "attempts"), (i + 1).to_string(), "{j:#}");
        jobs.push(id);
        site.db.workload("1", 1);
    }
    assert!(site.recovery_points().is_empty());
    site.start_agent(&[]);
    let (last, ok, out) = site.backup(None);
    assert!(ok, "{out}");
    jobs.push(last.clone());
    let j = site.job(&last);
    assert_eq!(detail(&j, "resumed"), "true", "{j:#}");
    assert_eq!(detail(&j, "tag"), tag);
    let rps = site.recovery_points();
    assert_eq!(rps.len(), 1, "{rps:#?}");
    assert_eq!(rps[0]["kind"], "full");
    assert_eq!(rps[0]["labels"]["tag"], tag.as_str());
    assert_eq!(rps[0]["labels"]["attempts"], "4");
    assert_eq!(rps[0]["labels"]["jobs"], jobs.join(",").as_str());
    site.stop_agent();
    site.lose_restore_verify();
}

/// A gap in the archived-log chain since the failed full started cannot be bridged by a
/// resume: the next request takes a fresh full and records why.
#[test]
fn an_archived_log_lost_between_attempts_means_a_fresh_full_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path(), Setup::sectioned());
    let db_bytes = SECTIONED_BYTES;
    site.start_agent(&[("ORACLESIM_KILL_AFTER_BYTES", (db_bytes / 2).to_string())]);
    let (first, ok, out) = site.backup(Some("full"));
    assert!(!ok, "{out}");
    let old_tag = detail(&site.job(&first), "tag").to_string();
    site.db.workload("1", 3);
    let logs = site
        .db
        .sql_column("select name from v$archived_log where status = 'A' order by sequence#");
    assert!(logs.len() >= 3, "{logs:?}");
    let lost = &logs[logs.len() - 2];
    std::fs::remove_file(lost).unwrap();

    site.start_agent(&[]);
    // Backup times have one-second resolution: the fresh full gets a tag of its own.
    std::thread::sleep(Duration::from_millis(1100));
    let (second, ok, out) = site.backup(None);
    assert!(ok, "{out}");
    let j = site.job(&second);
    assert_eq!(detail(&j, "resumed"), "false", "{j:#}");
    assert_ne!(detail(&j, "tag"), old_tag, "{j:#}");
    let reason = detail(&j, "fresh_full_reason");
    assert!(
        reason.contains("is missing") && reason.contains(&old_tag),
        "{j:#}"
    );
    let rps = site.recovery_points();
    assert_eq!(rps.len(), 1, "{rps:#?}");
    assert_eq!(rps[0]["labels"]["attempts"], "1");
    assert_eq!(rps[0]["labels"]["tag"], detail(&j, "tag"));
    site.stop_agent();
    site.lose_restore_verify();
}

/// A multi-section file with 3 of its 5 sections done when the full failed: the resume
/// deletes those 3 pieces in RMAN's catalog and in the vault first, and afterwards every
/// piece in the vault is one RMAN knows (nothing orphaned).
#[test]
fn three_of_five_sections_done_are_deleted_in_rman_and_the_vault_before_the_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(
        dir.path(),
        Setup {
            datafiles: 1,
            // 4 MiB and the header block: five 1 MiB sections.
            size_mb: 4,
            section_size: Some("1M"),
            channels: 1,
            ..Setup::default()
        },
    );
    site.start_agent(&[("ORACLESIM_FAIL_AFTER_SECTIONS", "3".to_string())]);
    let (first, ok, out) = site.backup(Some("full"));
    assert!(!ok, "{out}");
    let tag = detail(&site.job(&first), "tag").to_string();
    let sections = site.rman_pieces(Some(&tag));
    assert_eq!(sections.len(), 3, "RMAN: {sections:?}");
    let vault = site.vault_pieces();
    for h in &sections {
        assert!(
            vault.contains(&format!("{}/{h}", site.name())),
            "{h} not in the vault: {vault:?}"
        );
    }

    site.start_agent(&[]);
    let (second, ok, out) = site.backup(None);
    assert!(ok, "{out}");
    let j = site.job(&second);
    let mut cleaned: Vec<&str> = detail(&j, "cleaned_up").split(',').collect();
    cleaned.sort_unstable();
    let mut expected: Vec<&str> = sections.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(cleaned, expected, "{j:#}");
    let cleanup_log = std::fs::read_to_string(dir.path().join("state/ORCL/cleanup.log")).unwrap();
    assert_eq!(
        cleanup_log.matches("deleted backup piece").count(),
        3,
        "{cleanup_log}"
    );

    let in_rman = site.rman_pieces(None);
    let vault = site.vault_pieces();
    eprintln!("RMAN catalog: {in_rman:?}\nvault: {vault:?}");
    for h in &sections {
        assert!(!in_rman.contains(h), "{h} still in RMAN's catalog");
        assert!(
            !vault.contains(&format!("{}/{h}", site.name())),
            "{h} still in the vault"
        );
    }
    for v in &vault {
        let h = v.split_once('/').unwrap().1;
        assert!(
            in_rman.iter().any(|r| r == h),
            "{v} is orphaned in the vault"
        );
    }
    // Five sections and the archived logs backed up with them.
    assert_eq!(site.rman_pieces(Some(&tag)).len(), 6, "{in_rman:?}");
    let rps = site.recovery_points();
    assert_eq!(rps.len(), 1, "{rps:#?}");
    site.stop_agent();
    site.lose_restore_verify();
}

/// A RAC site whose instance of `thread` goes down a third of the way into a full backup.
fn rac_full_with_instance_down(dir: &Path, thread: &str) -> (Site, String, bool, String) {
    let mut site = Site::new(dir, Setup::rac());
    let db_bytes: u64 = 4 * (8 << 20);
    site.start_agent(&[
        (
            "ORACLESIM_INSTANCE_DOWN_AFTER_BYTES",
            (db_bytes / 3).to_string(),
        ),
        ("ORACLESIM_INSTANCE_DOWN_THREAD", thread.to_string()),
    ]);
    let (id, ok, out) = site.backup(Some("full"));
    (site, id, ok, out)
}

/// RAC: the secondary instance going down mid-job is an alert; its channel's work moves to
/// the primary's and the job succeeds with a complete, restorable recovery point.
#[test]
fn rac_secondary_instance_down_mid_job_raises_an_alert_and_the_backup_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut site, id, ok, out) = rac_full_with_instance_down(dir.path(), "2");
    assert!(ok, "{out}");
    let j = site.job(&id);
    assert_eq!(j["state"], "succeeded", "{j:#}");
    assert!(
        detail(&j, "alerts").contains("instance orcl2 went down during the backup"),
        "{j:#}"
    );
    assert_eq!(detail(&j, "instances"), "orcl1", "{j:#}");
    let rps = site.recovery_points();
    assert_eq!(rps.len(), 1, "{rps:#?}");
    assert_eq!(rps[0]["labels"]["attempts"], "2", "{rps:#?}");
    let retry =
        std::fs::read_to_string(dir.path().join(format!("state/ORCL/{id}.2.rman"))).unwrap();
    assert!(
        !retry.contains("@orcl2") && retry.contains("not backed up since time"),
        "{retry}"
    );
    site.stop_agent();
    site.db.sim(&["instance", "--thread", "2", "up"]);
    site.lose_restore_verify();
}

/// RAC: the primary instance going down mid-job fails the job, saying so.
#[test]
fn rac_primary_instance_down_mid_job_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let (site, id, ok, out) = rac_full_with_instance_down(dir.path(), "1");
    assert!(!ok, "{out}");
    let j = site.job(&id);
    assert_eq!(j["state"], "failed", "{j:#}");
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("the primary instance orcl1 went down during the backup"),
        "{j:#}"
    );
    assert!(site.recovery_points().is_empty());
}

/// A piece RMAN's catalog lists that the vault lost (a commit that did not survive a crashed
/// host): the resume crosschecks the tag, RMAN marks it EXPIRED, its file is backed up again,
/// and the recovery point restores.
#[test]
fn a_piece_the_vault_lost_is_crosschecked_expired_and_its_file_backed_up_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path(), Setup::default());
    let db_bytes: u64 = 4 * (4 << 20);
    site.start_agent(&[("ORACLESIM_KILL_AFTER_BYTES", (db_bytes * 3 / 4).to_string())]);
    let (first, ok, out) = site.backup(Some("full"));
    assert!(!ok, "{out}");
    let tag = detail(&site.job(&first), "tag").to_string();
    let done = site.rman_pieces(Some(&tag));
    assert!(!done.is_empty(), "the killed full finished no datafile");
    let lost = &done[0];
    run_ok(
        orca()
            .with_password(PASSWORD)
            .cmd()
            .args(["rm", "--repo"])
            .arg(&site.vault.data)
            .arg(format!("{}/{lost}", site.name())),
    );

    site.start_agent(&[]);
    let (second, ok, out) = site.backup(None);
    assert!(ok, "{out}");
    let j = site.job(&second);
    assert_eq!(detail(&j, "resumed"), "true", "{j:#}");
    assert_eq!(detail(&j, "expired_pieces"), lost.as_str(), "{j:#}");
    let rps = site.recovery_points();
    assert_eq!(rps.len(), 1, "{rps:#?}");
    let named: Vec<&str> = rps[0]["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        !named.contains(&format!("{}/{lost}", site.name()).as_str()),
        "{named:?}"
    );
    site.stop_agent();
    site.lose_restore_verify();
}

/// A backup the DBA takes between the attempts (another tag, to disk) makes RMAN's NOT
/// BACKED UP SINCE skip its file; the resume backs that file up into the full's tag again, so
/// the one recovery point restores every datafile from the vault alone.
#[test]
fn a_file_backed_up_elsewhere_between_attempts_is_still_in_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path(), Setup::sectioned());
    site.start_agent(&[(
        "ORACLESIM_KILL_AFTER_BYTES",
        (SECTIONED_BYTES / 4).to_string(),
    )]);
    let (first, ok, out) = site.backup(Some("full"));
    assert!(!ok, "{out}");
    let tag = detail(&site.job(&first), "tag").to_string();
    let disk = dir.path().join("dba");
    std::fs::create_dir_all(&disk).unwrap();
    site.db.rman_ok(&format!(
        "run {{\n allocate channel d1 device type disk format '{}/%U';\n backup datafile 4 tag 'DBA_COPY';\n}}\n",
        disk.display()
    ));

    site.start_agent(&[]);
    let (second, ok, out) = site.backup(None);
    assert!(ok, "{out}");
    let j = site.job(&second);
    assert_eq!(detail(&j, "tag"), tag);
    assert_eq!(detail(&j, "backed_up_again"), "4", "{j:#}");
    // Only the vault's pieces are left to restore from.
    site.db.rman_ok("delete noprompt backup tag 'DBA_COPY';\n");
    site.stop_agent();
    site.lose_restore_verify();
}
