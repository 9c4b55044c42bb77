//! Disaster recovery through ORCA's SBT library, as a DBA runs it with Oracle's RMAN: every
//! control file lost, a new host with nothing but the repository, and point-in-time recovery
//! into a new incarnation and back into the old one. The library answers RMAN's autobackup
//! search (sbtinfo2 for each `c-DBID-YYYYMMDD-QQ` name) from a local repository.
//!
//! Every test ends with `oraclesim verify --at-scn` against an `oraclesim snapshot` taken
//! before the damage, and shows on the spot that the same proof fails once one byte of the
//! snapshot differs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("debug")
}

/// Builds the cdylib and the simulator when missing (`cargo test -p orca-sbt` alone).
fn build() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if library().exists() && target_dir().join("oraclesim").exists() {
            return;
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "orca-sbt", "-p", "orca-oracle-sim"])
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of the library and simulator failed"
        );
    });
}

fn library() -> PathBuf {
    target_dir().join("liborca_sbt.so")
}

struct Env {
    tmp: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
    key: PathBuf,
    bin: PathBuf,
}

impl Env {
    /// A database of 4 x 8 MiB, a repository with a key file, autobackups on through SBT.
    fn new() -> Env {
        build();
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let home = tmp.path().join("db");
        let repo = tmp.path().join("repo");
        let key = tmp.path().join("repo.key");
        let env = Env {
            tmp,
            home,
            repo,
            key,
            bin,
        };
        env.oraclesim(&["install-shims", env.bin.to_str().unwrap()]);
        env.oraclesim(&[
            "create",
            "--home",
            env.home.to_str().unwrap(),
            "--name",
            "ORCL",
            "--datafiles",
            "4",
            "--size-mb",
            "8",
        ]);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(orca_repo::Repository::init_local(
                &env.repo,
                &orca_repo::InitOptions::default(),
                &orca_repo::NewKey::KeyFile(env.key.clone()),
            ))
            .unwrap();
        env.rman_ok(&format!(
            "configure controlfile autobackup on;\nconfigure default device type to sbt;\nconfigure channel device type sbt parms '{}';\n",
            env.parms()
        ));
        env
    }

    fn parms(&self) -> String {
        format!(
            "SBT_LIBRARY={}, ENV=(ORCA_REPO={}, ORCA_KEY_FILE={}, ORCA_CACHE_DIR={})",
            library().display(),
            self.repo.display(),
            self.key.display(),
            self.tmp.path().join("cache").display()
        )
    }

    /// A RUN block with one SBT channel allocated by hand (no control file configuration
    /// exists before the mount).
    fn run_sbt(&self, body: &str) -> String {
        format!(
            "run {{\n allocate channel t1 device type sbt parms '{}';\n{body}\n}}\n",
            self.parms()
        )
    }

    fn oraclesim(&self, args: &[&str]) -> String {
        let o = Command::new(target_dir().join("oraclesim"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "oraclesim {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn rman(&self, script: &str) -> (bool, String) {
        let f = self.tmp.path().join("script.rman");
        std::fs::write(&f, script).unwrap();
        let o = Command::new(self.bin.join("rman"))
            .arg("target")
            .arg("/")
            .arg(format!("cmdfile={}", f.display()))
            .env("ORACLESIM_HOME", &self.home)
            .env_remove("ORACLE_SID")
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    fn rman_ok(&self, script: &str) -> String {
        let (ok, out) = self.rman(script);
        assert!(ok, "rman failed:\n{out}");
        out
    }

    /// One number from `sqlplus -S / as sysdba`.
    fn number(&self, query: &str) -> u64 {
        use std::io::Write;
        let mut child = Command::new(self.bin.join("sqlplus"))
            .args(["-S", "/", "as", "sysdba"])
            .env("ORACLESIM_HOME", &self.home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("set heading off feedback off\n{query};\n").as_bytes())
            .unwrap();
        let out = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned();
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{query}: {out}"))
    }

    fn workload(&self, pct: &str, switches: &str) {
        self.oraclesim(&[
            "workload",
            "--home",
            self.home.to_str().unwrap(),
            "--change-pct",
            pct,
            "--log-switches",
            switches,
        ]);
        // Everything changed so far is in an archived log.
        self.oraclesim(&["switch", "--home", self.home.to_str().unwrap()]);
    }

    /// `oraclesim snapshot` of the home now: its directory and the SCN it was taken at.
    fn snapshot(&self, name: &str) -> (PathBuf, u64) {
        let dir = self.tmp.path().join(name);
        let out = self.oraclesim(&[
            "snapshot",
            "--home",
            self.home.to_str().unwrap(),
            "--to",
            dir.to_str().unwrap(),
        ]);
        let scn = out
            .split(" at SCN ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no SCN in {out}"));
        (dir, scn)
    }

    fn verify(&self, snapshot: &(PathBuf, u64)) -> (bool, String) {
        let o = Command::new(target_dir().join("oraclesim"))
            .args(["verify", "--home", self.home.to_str().unwrap(), "--against"])
            .arg(&snapshot.0)
            .args(["--at-scn", &snapshot.1.to_string()])
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    }

    /// `oraclesim verify --at-scn` against the snapshot passes, and fails naming the file
    /// and block once one byte of one data block of the snapshot differs.
    fn prove(&self, snapshot: &(PathBuf, u64)) {
        let (ok, out) = self.verify(snapshot);
        assert!(ok && out.starts_with("OK: 4 datafiles"), "{out}");
        let users = snapshot.0.join("oradata/ORCL/users01.dbf");
        flip(&users, 300 * 8192 + 4000);
        let (ok, out) = self.verify(snapshot);
        flip(&users, 300 * 8192 + 4000);
        assert!(!ok, "{out}");
        assert!(out.contains("file 4 block 300: content differs"), "{out}");
    }

    fn dbid(&self) -> u64 {
        self.number("select dbid from v$database")
    }

    /// Piece names in the repository.
    fn repository_pieces(&self) -> Vec<String> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (repo, _) = rt
            .block_on(orca_repo::Repository::open_local(
                &self.repo,
                &orca_repo::KeySource::KeyFile(self.key.clone()),
            ))
            .unwrap();
        rt.block_on(repo.list(&orca_repo::PieceFilter::default()))
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect()
    }
}

/// Flips one bit of the byte at `offset`.
fn flip(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], offset).unwrap();
}

fn today() -> String {
    chrono::Local::now().format("%Y%m%d").to_string()
}

#[test]
fn every_control_file_lost_restores_through_the_autobackup_in_the_repository() {
    let env = Env::new();
    let out = env.rman_ok("backup database plus archivelog;\n");
    let dbid = env.dbid();
    let autobackup = format!("c-{dbid}-{}-00", today());
    assert!(
        out.contains(&format!("piece handle={autobackup} ")),
        "{out}"
    );
    assert!(env.repository_pieces().contains(&autobackup));
    env.workload("3", "2");
    let snapshot = env.snapshot("snapshot");

    // The control file and every datafile are gone; the instance went down with them.
    for rel in [
        "control/control01.ctl",
        "control/control01.ctl-wal",
        "control/control01.ctl-shm",
    ] {
        let _ = std::fs::remove_file(env.home.join(rel));
    }
    for e in std::fs::read_dir(env.home.join("oradata/ORCL")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let out = env.rman_ok(&format!(
        "startup nomount;\nset dbid {dbid};\n{}alter database open resetlogs;\n",
        env.run_sbt(
            " restore controlfile from autobackup;\n alter database mount;\n restore database;\n recover database;"
        )
    ));
    assert!(
        out.contains("connected to target database (not started)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "channel t1: looking for AUTOBACKUP on day: {}",
            today()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("channel t1: AUTOBACKUP found: {autobackup}")),
        "{out}"
    );
    assert!(
        out.contains("channel t1: control file restore from AUTOBACKUP complete"),
        "{out}"
    );
    assert!(out.contains("output file name="), "{out}");
    assert!(
        out.contains("channel t1: restoring datafile 00001"),
        "{out}"
    );
    assert!(out.contains("media recovery complete"), "{out}");
    assert!(
        out.ends_with("Statement processed\n\nRecovery Manager complete.\n"),
        "{out}"
    );
    assert_eq!(env.number("select count(*) from v$database_incarnation"), 2);
    env.prove(&snapshot);
}

#[test]
fn a_new_host_gets_spfile_control_file_and_database_from_the_repository_alone() {
    let env = Env::new();
    env.rman_ok("backup database plus archivelog;\n");
    let dbid = env.dbid();
    env.workload("3", "2");
    env.rman_ok("backup archivelog all;\n");
    let snapshot = env.snapshot("snapshot");
    let spfile = std::fs::read(env.home.join("dbs/spfileORCL.ora")).unwrap();

    // The old host is gone; the new one has an empty home with an init file.
    std::fs::remove_dir_all(&env.home).unwrap();
    let out = env.oraclesim(&[
        "create",
        "--empty",
        "--home",
        env.home.to_str().unwrap(),
        "--name",
        "ORCL",
    ]);
    assert!(out.contains("initORCL.ora"), "{out}");
    assert!(!env.home.join("control/control01.ctl").exists());
    let out = env.rman_ok(&format!(
        "startup nomount;\nset dbid {dbid};\n{}startup force nomount;\n{}",
        env.run_sbt(" restore spfile from autobackup;"),
        env.run_sbt(" restore controlfile from autobackup;\n alter database mount;")
    ));
    assert!(
        out.contains("channel t1: SPFILE restore from AUTOBACKUP complete"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(env.home.join("dbs/spfileORCL.ora")).unwrap(),
        spfile
    );
    // The control file says which logs were backed up: recover through the last of them.
    let next = env.number("select max(sequence#) + 1 from v$backup_redolog");
    let out = env.rman_ok(&format!(
        "{}alter database open resetlogs;\n",
        env.run_sbt(&format!(
            " set until sequence {next} thread 1;\n restore database;\n recover database;"
        ))
    ));
    assert!(out.contains("channel t1: restoring archived log"), "{out}");
    assert!(out.contains("media recovery complete"), "{out}");
    env.prove(&snapshot);
}

#[test]
fn point_in_time_opens_an_overlapping_incarnation_and_the_old_one_stays_reachable() {
    let env = Env::new();
    env.rman_ok("backup database plus archivelog;\n");
    env.workload("4", "2");
    let s1 = env.number("select current_scn from v$database");
    let at_s1 = env.snapshot("at_s1");
    assert_eq!(at_s1.1, s1);
    env.workload("4", "2");
    let s2 = env.number("select current_scn from v$database");
    let at_s2 = env.snapshot("at_s2");
    assert_eq!(at_s2.1, s2);

    let out = env.rman_ok(&format!(
        "shutdown immediate;\nstartup mount;\n{}alter database open resetlogs;\n",
        env.run_sbt(&format!(
            " set until scn {s1};\n restore database;\n recover database;"
        ))
    ));
    assert!(out.contains("media recovery complete"), "{out}");
    env.prove(&at_s1);
    assert_eq!(
        env.number("select resetlogs_change# from v$database_incarnation where status = 'CURRENT'"),
        s1
    );
    // The new incarnation reuses SCNs the old one had used after s1, and is backed up too.
    env.workload("1", "1");
    let inc2_first = env.number(
        "select min(first_change#) from v$archived_log where resetlogs_change# = (select resetlogs_change# from v$database)",
    );
    let inc2_last = env.number(
        "select max(next_change#) from v$archived_log where resetlogs_change# = (select resetlogs_change# from v$database)",
    );
    assert!(
        s1 <= inc2_first && inc2_last < s2,
        "{s1} {inc2_first} {inc2_last} {s2}"
    );
    env.rman_ok("backup database;\n");

    // Back to the old incarnation, at a point its new sibling's SCNs overlap.
    let out = env.rman_ok(&format!(
        "shutdown immediate;\nstartup mount;\nreset database to incarnation 1;\n{}alter database open resetlogs;\nlist incarnation;\n",
        env.run_sbt(&format!(
            " set until scn {s2};\n restore database;\n recover database;"
        ))
    ));
    assert!(out.contains("database reset to incarnation 1"), "{out}");
    assert!(out.contains("ORPHAN"), "{out}");
    env.prove(&at_s2);
}
