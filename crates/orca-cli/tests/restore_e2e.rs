//! Restores and drills end to end, all real processes: `orca vault serve`, `orca agent run`
//! taking the backups, the simulator's `rman` and `sqlplus` loading the SBT library, and
//! `orca restore` / `orca drill` / `orca recovery-points` as a DBA types them. The agent
//! writes every RMAN restore script; each restore ends with `oraclesim verify --at-scn`
//! against a snapshot of the expected state, and shows that the same proof fails once one
//! byte differs.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use orca_testing::agent::{AgentConfig, AgentDatabase, AgentProcess, alive};
use orca_testing::fs::flip_at;
use orca_testing::orca::Orca;
use orca_testing::process::{output, run_ok, wait_for};
use orca_testing::sim::{DbSpec, SimDb, Snapshot};
use orca_testing::tools;
use orca_testing::vault::VaultServer;

const PASSWORD: &str = "restore e2e passphrase";

fn orca() -> Orca {
    Orca::at(env!("CARGO_BIN_EXE_orca"))
}

/// A vault, a database of four 4 MiB datafiles, the agent serving it. Fields drop in
/// order: the agent stops before its vault.
struct Site {
    agent: AgentProcess,
    vault: VaultServer,
    db: SimDb,
    config: AgentConfig,
    config_file: PathBuf,
}

impl Site {
    /// A full and an incremental with changes between, the database at a time T (its
    /// snapshot), then more changes and another incremental: what a restore to T must equal.
    fn backups_around_a_time(&self) -> (Snapshot, String) {
        self.backup(None);
        self.db.workload("2", 1);
        self.backup(None);
        self.db.workload("2", 1);
        self.db.switch();
        let snap = self.db.snapshot("at-t");
        // Redo has one-second times: nothing before T is after the snapshot, nothing after
        // it before.
        std::thread::sleep(Duration::from_millis(1100));
        let t = self.db_time();
        std::thread::sleep(Duration::from_millis(1100));
        self.db.workload("3", 1);
        self.backup(None);
        (snap, t)
    }

    fn new(root: &Path) -> Site {
        let vault = VaultServer::init(&orca().with_password(PASSWORD), root);
        let token = vault.token("ORCL");
        let db = SimDb::create(
            &tools::oraclesim(),
            root,
            &DbSpec {
                online_log_mb: Some(4),
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
                name: "ORCL".into(),
                oracle_sid: "orcl".into(),
                oracle_home: db.home.clone(),
                bin: db.bin.clone(),
                token,
                password: PASSWORD.into(),
                sbt_library: tools::sbt_library(),
                channels: 2,
                section_size: None,
                retention: None,
                rac_instances: Vec::new(),
                cache_dir: root.join("cache"),
            },
        };
        let config_file = root.join("agent.toml");
        config.write(&config_file);
        let agent = AgentProcess::new(&orca(), &config_file, &root.join("agent.log"));
        let mut site = Site {
            agent,
            vault,
            db,
            config,
            config_file,
        };
        site.start_agent();
        site
    }

    fn start_agent(&mut self) {
        let (url, token) = (self.vault.url(), self.config.database.token.clone());
        self.agent.start(&[], || alive(&url, "ORCL", &token));
    }

    /// The configuration with `[database.drill] verify = <command>`.
    fn drill_check(&self, command: &str) {
        std::fs::write(
            &self.config_file,
            format!(
                "{}\n[database.drill]\nverify = {}\n",
                self.config.to_toml(),
                toml_string(command)
            ),
        )
        .unwrap();
    }

    /// `orca <args> --config <agent.toml>`: whether it succeeded, what it printed.
    fn orca(&self, args: &[&str]) -> (bool, String) {
        output(
            orca()
                .cmd()
                .args(args)
                .arg("--config")
                .arg(&self.config_file),
        )
    }

    /// `orca backup --db ORCL --wait [--type T]`, which must succeed.
    fn backup(&self, kind: Option<&str>) {
        let mut args = vec!["backup", "--db", "ORCL", "--wait"];
        if let Some(k) = kind {
            args.extend(["--type", k]);
        }
        let (ok, out) = self.orca(&args);
        assert!(ok, "{out}");
    }

    /// `orca <command> --json ...`: whether it succeeded and the job it printed.
    fn job(&self, args: &[&str]) -> (bool, serde_json::Value, String) {
        let mut c = orca().cmd();
        c.args(args)
            .arg("--json")
            .arg("--config")
            .arg(&self.config_file);
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let job = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("no job printed ({e}): {text}"));
        (out.status.success(), job, text)
    }

    fn recovery_points(&self) -> Vec<serde_json::Value> {
        let (ok, out) = self.orca(&["recovery-points", "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    }

    /// A checksum of every file in the home's datafile and online log directories.
    fn checksums(&self, home: &Path) -> BTreeMap<PathBuf, u64> {
        let mut out = BTreeMap::new();
        for dir in [home.join("oradata/ORCL"), home.join("onlinelog")] {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let mut h = DefaultHasher::new();
                h.write(&std::fs::read(&p).unwrap());
                out.insert(p, h.finish());
            }
        }
        out
    }

    /// `rman` run as the instance of a copy in `dir` (its `ORACLESIM_HOME`).
    fn rman_in(&self, dir: &Path, script: &str) {
        let mut c = self.db.rman_cmd(script);
        c.env("ORACLESIM_HOME", dir);
        let (ok, out) = output(&mut c);
        assert!(ok, "{out}");
    }

    /// The database's time, as `--until-time` takes it.
    fn db_time(&self) -> String {
        self.db
            .sql_column("select to_char(sysdate, 'YYYY-MM-DD HH24:MI:SS') from dual")[0]
            .clone()
    }

    /// Shut down abort and every datafile deleted: the loss a whole restore repairs.
    fn lose_everything(&self) {
        self.db.rman_ok("shutdown abort;\n");
        for f in self.db.datafiles() {
            std::fs::remove_file(f).unwrap();
        }
    }
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn detail<'a>(job: &'a serde_json::Value, key: &str) -> &'a str {
    job["details"][key].as_str().unwrap_or("")
}

fn point<'a>(points: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    points
        .iter()
        .rev()
        .find(|p| p["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} point in {points:#?}"))
}

#[test]
fn points_name_what_rebuilds_them_and_a_datafile_lost_while_open_is_restored_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path());
    site.backup(None);
    site.db.workload("2", 1);
    site.backup(None);

    let points = site.recovery_points();
    let full = point(&points, "full");
    let inc = point(&points, "incremental");
    let autobackup = full["labels"]["autobackup"].as_str().unwrap();
    assert!(autobackup.starts_with("c-"), "{full:#}");
    assert!(
        full["pieces"]
            .as_array()
            .unwrap()
            .contains(&format!("ORCL/{autobackup}").into()),
        "{full:#}"
    );
    assert!(
        !full["labels"]["archived_logs"].as_str().unwrap().is_empty(),
        "{full:#}"
    );
    let until: u64 = full["labels"]["until_scn"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(until >= full["next_scn"].as_u64().unwrap(), "{full:#}");
    assert_eq!(full["labels"]["incarnation"], "1", "{full:#}");
    assert_eq!(inc["labels"]["chain"], full["id"], "{inc:#}");
    assert_eq!(full["restorable"], true, "{full:#}");
    assert_eq!(inc["restorable"], true, "{inc:#}");
    let (ok, table) = site.orca(&["recovery-points"]);
    assert!(ok, "{table}");
    assert!(
        table.contains("RESTORABLE") && table.contains("never"),
        "{table}"
    );

    // A datafile lost under the open database: offline, restore, recover, online.
    let snap = site.db.snapshot("before-loss");
    let users = site.db.oradata().join("users01.dbf");
    std::fs::remove_file(&users).unwrap();
    let (ok, job, out) = site.job(&["restore", "--db", "ORCL"]);
    assert!(ok, "{out}");
    assert_eq!(detail(&job, "mode"), "datafiles", "{job:#}");
    assert_eq!(detail(&job, "datafiles"), "4", "{job:#}");
    assert!(
        detail(&job, "bytes_read").parse::<u64>().unwrap() > 0,
        "{job:#}"
    );
    let script = std::fs::read_to_string(
        dir.path()
            .join("state/ORCL")
            .join(format!("{}.restore.rman", job["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(
        script.contains("sql 'alter database datafile 4 offline';"),
        "{script}"
    );
    assert_eq!(site.db.datafile_status(4), "ONLINE");
    site.db.prove(&snap);

    // A point whose autobackup left the vault cannot rebuild the database; nor can the
    // incremental applied on it.
    run_ok(
        orca()
            .with_password(PASSWORD)
            .cmd()
            .args(["rm", "--repo"])
            .arg(&site.vault.data)
            .arg(format!("ORCL/{autobackup}")),
    );
    let points = site.recovery_points();
    let full = point(&points, "full");
    assert_eq!(full["restorable"], false, "{full:#}");
    assert!(
        full["not_restorable_because"]
            .as_str()
            .unwrap()
            .contains(autobackup),
        "{full:#}"
    );
    assert_eq!(point(&points, "incremental")["restorable"], false);
}

#[test]
fn an_open_database_is_refused_whole_and_restored_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path());
    site.backup(None);
    site.db.workload("2", 1);
    let before = site.checksums(&site.db.home);

    for args in [
        vec!["restore", "--db", "ORCL"],
        vec!["restore", "--db", "ORCL", "--until-scn", "100"],
    ] {
        let (ok, job, out) = site.job(&args);
        assert!(!ok, "{out}");
        let m = job["message"].as_str().unwrap();
        assert!(
            m.contains("is open") && m.contains("--new-location") && m.contains("shut it down"),
            "{m}"
        );
    }
    let (ok, job, out) = site.job(&["restore", "--db", "ORCL", "--validate"]);
    assert!(ok, "{out}");
    assert!(
        detail(&job, "validated_sets").parse::<u64>().unwrap() > 0,
        "{job:#}"
    );
    // The same check handed to the running agent through the vault's queue, followed to its end.
    let (ok, job, out) = site.job(&["restore", "--db", "ORCL", "--validate", "--wait"]);
    assert!(ok, "{out}");
    assert!(
        detail(&job, "request").contains(r#""validate":true"#),
        "the job did not go through the queue: {job:#}"
    );
    assert!(
        detail(&job, "validated_sets").parse::<u64>().unwrap() > 0,
        "{job:#}"
    );
    // With no agent running, a queued restore fails at once instead of waiting for nobody.
    site.agent.stop();
    let (url, token) = (site.vault.url(), site.config.database.token.clone());
    wait_for("the vault to see the agent stopped", 20, || {
        !alive(&url, "ORCL", &token)
    });
    let (ok, out) = site.orca(&["restore", "--db", "ORCL", "--validate", "--wait"]);
    assert!(
        !ok && out.contains("no agent runs for database ORCL"),
        "{out}"
    );
    site.start_agent();
    assert_eq!(
        site.checksums(&site.db.home),
        before,
        "a refused restore wrote"
    );

    let snap = site.db.snapshot("before-loss");
    site.lose_everything();
    let (ok, job, out) = site.job(&["restore", "--db", "ORCL"]);
    assert!(ok, "{out}");
    assert_eq!(detail(&job, "mode"), "database", "{job:#}");
    assert_eq!(detail(&job, "instance"), "idle", "{job:#}");
    site.db.prove(&snap);
    site.db.workload("1", 1);
}

#[test]
fn until_time_between_two_incrementals_equals_the_snapshot_at_that_time() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path());
    let (snap, t) = site.backups_around_a_time();

    site.lose_everything();
    let (ok, job, out) = site.job(&["restore", "--db", "ORCL", "--until-time", &t]);
    assert!(ok, "{out}");
    assert!(
        detail(&job, "bytes_read").parse::<u64>().unwrap() > 0,
        "{job:#}"
    );
    site.db.prove(&snap);
}

#[test]
fn a_new_location_comes_up_while_the_original_keeps_running_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path());
    site.db.workload("2", 1);
    site.backup(None);
    let snap = site.db.snapshot("at-backup");
    let before = site.checksums(&site.db.home);

    let copy = dir.path().join("copy");
    let (ok, job, out) = site.job(&[
        "restore",
        "--db",
        "ORCL",
        "--new-location",
        copy.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(detail(&job, "mode"), "new-location", "{job:#}");
    let script = std::fs::read_to_string(
        dir.path()
            .join("state/ORCL")
            .join(format!("{}.restore.rman", job["id"].as_str().unwrap())),
    )
    .unwrap();
    eprintln!("{script}");
    assert!(script.contains("alter database rename file"), "{script}");
    assert!(script.contains("set newname for database"), "{script}");
    assert_eq!(
        site.checksums(&site.db.home),
        before,
        "the original changed"
    );
    assert_eq!(
        site.db.sql_column("select open_mode from v$database"),
        ["READ WRITE"]
    );
    site.db.prove_home(&copy, &snap);
    // The copy is a database of its own: its files, its online logs.
    let copy_files = site.checksums(&copy);
    assert_eq!(copy_files.len(), before.len(), "{copy_files:#?}");
    // The original goes on.
    site.db.workload("1", 1);
    site.backup(None);
    // A second restore into the same place is refused before anything is written.
    let (ok, job, _) = site.job(&[
        "restore",
        "--db",
        "ORCL",
        "--new-location",
        copy.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        job["message"].as_str().unwrap().contains("is not empty"),
        "{job:#}"
    );
    assert_eq!(site.checksums(&copy), copy_files);
}

#[test]
fn a_virtual_full_of_a_level_0_and_three_level_1s_equals_the_snapshot_at_the_point() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path());
    site.backup(None);
    for _ in 0..3 {
        site.db.workload("2", 1);
        site.backup(None);
    }
    let snap = site.db.snapshot("at-point");
    let points = site.recovery_points();
    let full = point(&points, "full");
    let last = point(&points, "incremental");
    assert_eq!(
        last["labels"]["chain"].as_str().unwrap().split(',').count(),
        3,
        "{last:#}"
    );

    let plain = dir.path().join("plain");
    let started = std::time::Instant::now();
    let (ok, _, out) = site.job(&[
        "restore",
        "--db",
        "ORCL",
        "--point",
        full["id"].as_str().unwrap(),
        "--new-location",
        plain.to_str().unwrap(),
    ]);
    let plain_secs = started.elapsed().as_secs_f64();
    assert!(ok, "{out}");
    site.rman_in(&plain, "shutdown abort;\n");
    std::fs::remove_dir_all(&plain).unwrap();

    let copy = dir.path().join("vfull");
    let started = std::time::Instant::now();
    let (ok, job, out) = site.job(&[
        "restore",
        "--db",
        "ORCL",
        "--new-location",
        copy.to_str().unwrap(),
        "--virtual-full",
    ]);
    let vfull_secs = started.elapsed().as_secs_f64();
    assert!(ok, "{out}");
    assert_eq!(detail(&job, "mode"), "virtual-full", "{job:#}");
    assert_eq!(detail(&job, "recovery_point"), last["id"], "{job:#}");
    assert_eq!(detail(&job, "levels"), "4", "{job:#}");
    let script = std::fs::read_to_string(
        dir.path()
            .join("state/ORCL")
            .join(format!("{}.recover.rman", job["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(script.contains("catalog datafilecopy"), "{script}");
    assert!(script.contains("switch database to copy"), "{script}");
    assert!(!script.contains("restore database"), "{script}");
    let log = std::fs::read_to_string(
        dir.path()
            .join("state/ORCL")
            .join(format!("{}.recover.log", job["id"].as_str().unwrap())),
    )
    .unwrap();
    // The images are at the newest level already: RMAN applies archived logs only.
    assert!(!log.contains("backup set restore"), "{log}");
    site.db.prove_home(&copy, &snap);

    let read: u64 = detail(&job, "image_bytes_read").parse().unwrap();
    let fetched: u64 = detail(&job, "vault_bytes_read").parse().unwrap();
    let full_bytes = full["stats"]["bytes"].as_u64().unwrap();
    let full_stored = full["stats"]["stored"].as_u64().unwrap();
    let ratio = fetched as f64 / full_stored as f64;
    eprintln!(
        "virtual full: {fetched} encoded bytes fetched from the vault for {read} bytes of \
         datafile pieces (4 levels); one full: {full_stored} bytes stored, {full_bytes} as RMAN \
         wrote them: {ratio:.3}x the full's stored bytes; {vfull_secs:.1} s vs {plain_secs:.1} s \
         for a plain new-location restore of the level 0"
    );
    assert!(ratio <= 1.1, "fetched {ratio:.3}x one full's stored bytes");
}

#[test]
fn a_virtual_full_until_a_time_between_level_1s_leaves_the_later_level_out() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path());
    let (snap, t) = site.backups_around_a_time();

    let copy = dir.path().join("vfull");
    let (ok, job, out) = site.job(&[
        "restore",
        "--db",
        "ORCL",
        "--until-time",
        &t,
        "--new-location",
        copy.to_str().unwrap(),
        "--virtual-full",
    ]);
    assert!(ok, "{out}");
    assert_eq!(detail(&job, "levels"), "2", "{job:#}");
    site.db.prove_home(&copy, &snap);
}

#[test]
fn a_compressed_backup_refuses_a_virtual_full_naming_the_piece() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path());
    site.db
        .rman_ok("configure device type sbt backup type to compressed backupset;\n");
    site.backup(None);
    let copy = dir.path().join("vfull");
    let (ok, job, _) = site.job(&[
        "restore",
        "--db",
        "ORCL",
        "--new-location",
        copy.to_str().unwrap(),
        "--virtual-full",
    ]);
    assert!(!ok);
    let m = job["message"].as_str().unwrap();
    assert!(
        m.contains("is compressed") && m.contains("restore normally"),
        "{job:#}"
    );
    let images = orca_testing::fs::files_under(&copy.join("oradata"));
    assert!(images.is_empty(), "{images:?}");
    site.rman_in(&copy, "shutdown abort;\n");
}

#[test]
fn a_new_host_with_an_empty_home_gets_spfile_control_file_and_database_from_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path());
    site.db.workload("2", 1);
    site.backup(None);
    let snap = site.db.snapshot("at-backup");
    let spfile = std::fs::read(site.db.home.join("dbs/spfileORCL.ora")).unwrap();

    // The old host is gone with its archived logs; the new one has an empty home.
    std::fs::remove_dir_all(&site.db.home).unwrap();
    site.db.sim(&[
        "create",
        "--empty",
        "--home",
        site.db.home.to_str().unwrap(),
        "--name",
        "ORCL",
    ]);
    let (ok, job, out) = site.job(&["restore", "--db", "ORCL", "--new-host"]);
    assert!(ok, "{out}");
    assert_eq!(detail(&job, "mode"), "new-host", "{job:#}");
    assert_eq!(
        std::fs::read(site.db.home.join("dbs/spfileORCL.ora")).unwrap(),
        spfile
    );
    site.db.prove(&snap);
    site.db.workload("1", 1);
    // Asked again, the home holds a database now: refused.
    let (ok, job, _) = site.job(&["restore", "--db", "ORCL", "--new-host"]);
    assert!(!ok);
    assert!(
        job["message"].as_str().unwrap().contains("is open here"),
        "{job:#}"
    );
}

#[test]
fn a_drill_passes_and_is_recorded_and_fails_naming_the_piece_once_a_chunk_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path());
    site.db.workload("2", 1);
    site.backup(None);
    let snap = site.db.snapshot("at-backup");
    site.drill_check(&format!(
        "{} verify --home {{location}} --against {} --at-scn {}",
        tools::oraclesim().display(),
        snap.dir.display(),
        snap.scn
    ));
    let scratch = dir.path().join("scratch");
    let (ok, job, out) = site.job(&[
        "drill",
        "--db",
        "ORCL",
        "--scratch",
        scratch.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(detail(&job, "result"), "passed", "{job:#}");
    assert!(job["message"].as_str().unwrap().contains("OK: "), "{job:#}");
    let rp = detail(&job, "recovery_point").to_string();
    assert!(
        std::fs::read_dir(&scratch).unwrap().next().is_none(),
        "the scratch copy was left"
    );
    let points = site.recovery_points();
    let full = point(&points, "full");
    assert_eq!(full["id"], rp.as_str());
    assert_eq!(full["last_drill"]["result"], "passed", "{full:#}");

    // The drill's check can fail: one byte of the reference differs.
    let users = snap_file(&snap, "users01.dbf");
    flip_at(&users, 37 * 8192 + 100, 0x10);
    let (ok, job, _) = site.job(&["drill", "--db", "ORCL"]);
    flip_at(&users, 37 * 8192 + 100, 0x10);
    assert!(!ok);
    assert!(
        job["message"]
            .as_str()
            .unwrap()
            .contains("file 4 block 37: content differs"),
        "{job:#}"
    );

    // One chunk of the point goes bad in the vault: the next drill fails and names it.
    corrupt_one_chunk(&site.vault.data);
    let (ok, job, _) = site.job(&["drill", "--db", "ORCL"]);
    assert!(!ok);
    let m = job["message"].as_str().unwrap();
    eprintln!("drill after one corrupt chunk: {m}");
    assert!(
        m.contains("error while restoring backup piece ") && m.contains("corrupt chunk "),
        "{m}"
    );
    let (ok, table) = site.orca(&["recovery-points"]);
    assert!(ok && table.contains("FAILED"), "{table}");
    let points = site.recovery_points();
    assert_eq!(point(&points, "full")["last_drill"]["result"], "failed");
    let metrics = site.vault.metrics();
    assert!(
        metrics.contains(&format!(
            "orca_recovery_point_drill_age_seconds{{database=\"ORCL\",recovery_point=\"{rp}\",drilled=\"yes\"}}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("orca_drill_failures_total{database=\"ORCL\"} 2"),
        "{metrics}"
    );
}

#[test]
fn the_agent_drills_on_its_schedule_and_flags_points_not_drilled() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path());
    site.backup(None);
    let (ok, out) = site.orca(&["recovery-points", "--drill-max-age", "7d"]);
    assert!(ok && out.contains(": never drilled"), "{out}");
    std::fs::write(
        &site.config_file,
        format!(
            "{}\n[database.drill]\nevery = \"1h\"\n",
            site.config.to_toml()
        ),
    )
    .unwrap();
    site.start_agent();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !site
        .recovery_points()
        .iter()
        .any(|p| p["last_drill"]["result"] == "passed")
    {
        let (_, jobs) = site.orca(&["jobs"]);
        assert!(
            std::time::Instant::now() < deadline,
            "no passed scheduled drill: {jobs}\n{}",
            std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (ok, out) = site.orca(&["jobs"]);
    assert!(
        ok && out.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(2..5) == Some(&["drill", "scheduled", "succeeded"][..])
        }),
        "{out}"
    );
    let (ok, out) = site.orca(&["recovery-points", "--drill-max-age", "7d"]);
    assert!(ok && !out.contains("never drilled"), "{out}");
}

/// The snapshot's copy of datafile `name`.
fn snap_file(snap: &Snapshot, name: &str) -> PathBuf {
    orca_testing::fs::files_under(&snap.dir)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("no {name} in {}", snap.dir.display()))
}

/// Flips one byte in the middle of the vault's largest pack: inside a chunk's data.
fn corrupt_one_chunk(data: &Path) {
    let largest = orca_testing::fs::files_under(&data.join("packs"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a pack");
    let len = std::fs::metadata(&largest).unwrap().len();
    flip_at(&largest, len / 2, 0x01);
}
