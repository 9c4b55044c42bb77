//! Disaster recovery through ORCA's SBT library, as a DBA runs it with Oracle's RMAN: every
//! control file lost, a new host with nothing but the repository, and point-in-time recovery
//! into a new incarnation and back into the old one. The library answers RMAN's autobackup
//! search (sbtinfo2 for each `c-DBID-YYYYMMDD-QQ` name) from a local repository.
//!
//! Every test ends with `oraclesim verify --at-scn` against an `oraclesim snapshot` taken
//! before the damage, and shows on the spot that the same proof fails once one byte of the
//! snapshot differs.

use std::path::PathBuf;

use orca_testing::sim::{DbSpec, SimDb, sbt_parms, sbt_run};
use orca_testing::tools;

struct Env {
    tmp: tempfile::TempDir,
    db: SimDb,
    repo: PathBuf,
    key: PathBuf,
}

impl Env {
    /// A database of 4 x 8 MiB, a repository with a key file, autobackups on through SBT.
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let db = SimDb::create(&tools::oraclesim(), tmp.path(), &DbSpec::sized(4, 8));
        let repo = tmp.path().join("repo");
        let key = tmp.path().join("repo.key");
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(orca_repo::Repository::init_local(
                &repo,
                &orca_repo::InitOptions::default(),
                &orca_repo::NewKey::KeyFile(key.clone()),
            ))
            .unwrap();
        let env = Env { tmp, db, repo, key };
        env.db.rman_ok(&format!(
            "configure controlfile autobackup on;\nconfigure default device type to sbt;\nconfigure channel device type sbt parms '{}';\n",
            env.parms()
        ));
        env
    }

    fn parms(&self) -> String {
        sbt_parms(
            &tools::sbt_library(),
            &[
                ("ORCA_REPO", self.repo.display().to_string()),
                ("ORCA_KEY_FILE", self.key.display().to_string()),
                (
                    "ORCA_CACHE_DIR",
                    self.tmp.path().join("cache").display().to_string(),
                ),
            ],
        )
    }

    /// A RUN block with one SBT channel allocated by hand (no control file configuration
    /// exists before the mount).
    fn run_sbt(&self, body: &str) -> String {
        sbt_run(&[&self.parms()], body)
    }

    /// Changes, then a log switch: everything changed so far is in an archived log.
    fn workload(&self, pct: &str, switches: u32) {
        self.db.workload(pct, switches);
        self.db.switch();
    }

    fn dbid(&self) -> u64 {
        self.db.number("select dbid from v$database")
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

fn today() -> String {
    chrono::Local::now().format("%Y%m%d").to_string()
}

#[test]
fn every_control_file_lost_restores_through_the_autobackup_in_the_repository() {
    let env = Env::new();
    let out = env.db.rman_ok("backup database plus archivelog;\n");
    let dbid = env.dbid();
    let autobackup = format!("c-{dbid}-{}-00", today());
    assert!(
        out.contains(&format!("piece handle={autobackup} ")),
        "{out}"
    );
    assert!(env.repository_pieces().contains(&autobackup));
    env.workload("3", 2);
    let snapshot = env.db.snapshot("snapshot");

    // The control file and every datafile are gone; the instance went down with them.
    for rel in [
        "control/control01.ctl",
        "control/control01.ctl-wal",
        "control/control01.ctl-shm",
    ] {
        let _ = std::fs::remove_file(env.db.home.join(rel));
    }
    for e in std::fs::read_dir(env.db.home.join("oradata/ORCL")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let out = env.db.rman_ok(&format!(
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
            "channel c1: looking for AUTOBACKUP on day: {}",
            today()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("channel c1: AUTOBACKUP found: {autobackup}")),
        "{out}"
    );
    assert!(
        out.contains("channel c1: control file restore from AUTOBACKUP complete"),
        "{out}"
    );
    assert!(out.contains("output file name="), "{out}");
    assert!(
        out.contains("channel c1: restoring datafile 00001"),
        "{out}"
    );
    assert!(out.contains("media recovery complete"), "{out}");
    assert!(
        out.ends_with("Statement processed\n\nRecovery Manager complete.\n"),
        "{out}"
    );
    assert_eq!(
        env.db.number("select count(*) from v$database_incarnation"),
        2
    );
    env.db.prove(&snapshot);
}

#[test]
fn a_new_host_gets_spfile_control_file_and_database_from_the_repository_alone() {
    let env = Env::new();
    env.db.rman_ok("backup database plus archivelog;\n");
    let dbid = env.dbid();
    env.workload("3", 2);
    env.db.rman_ok("backup archivelog all;\n");
    let snapshot = env.db.snapshot("snapshot");
    let spfile = std::fs::read(env.db.home.join("dbs/spfileORCL.ora")).unwrap();

    // The old host is gone; the new one has an empty home with an init file.
    std::fs::remove_dir_all(&env.db.home).unwrap();
    let out = env.db.sim(&[
        "create",
        "--empty",
        "--home",
        env.db.home.to_str().unwrap(),
        "--name",
        "ORCL",
    ]);
    assert!(out.contains("initORCL.ora"), "{out}");
    assert!(!env.db.home.join("control/control01.ctl").exists());
    let out = env.db.rman_ok(&format!(
        "startup nomount;\nset dbid {dbid};\n{}startup force nomount;\n{}",
        env.run_sbt(" restore spfile from autobackup;"),
        env.run_sbt(" restore controlfile from autobackup;\n alter database mount;")
    ));
    assert!(
        out.contains("channel c1: SPFILE restore from AUTOBACKUP complete"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(env.db.home.join("dbs/spfileORCL.ora")).unwrap(),
        spfile
    );
    // The control file says which logs were backed up: recover through the last of them.
    let next = env
        .db
        .number("select max(sequence#) + 1 from v$backup_redolog");
    let out = env.db.rman_ok(&format!(
        "{}alter database open resetlogs;\n",
        env.run_sbt(&format!(
            " set until sequence {next} thread 1;\n restore database;\n recover database;"
        ))
    ));
    assert!(out.contains("channel c1: restoring archived log"), "{out}");
    assert!(out.contains("media recovery complete"), "{out}");
    env.db.prove(&snapshot);
}

#[test]
fn point_in_time_opens_an_overlapping_incarnation_and_the_old_one_stays_reachable() {
    let env = Env::new();
    env.db.rman_ok("backup database plus archivelog;\n");
    env.workload("4", 2);
    let s1 = env.db.number("select current_scn from v$database");
    let at_s1 = env.db.snapshot("at_s1");
    assert_eq!(at_s1.scn, s1);
    env.workload("4", 2);
    let s2 = env.db.number("select current_scn from v$database");
    let at_s2 = env.db.snapshot("at_s2");
    assert_eq!(at_s2.scn, s2);

    let out = env.db.rman_ok(&format!(
        "shutdown immediate;\nstartup mount;\n{}alter database open resetlogs;\n",
        env.run_sbt(&format!(
            " set until scn {s1};\n restore database;\n recover database;"
        ))
    ));
    assert!(out.contains("media recovery complete"), "{out}");
    env.db.prove(&at_s1);
    assert_eq!(
        env.db.number(
            "select resetlogs_change# from v$database_incarnation where status = 'CURRENT'"
        ),
        s1
    );
    // The new incarnation reuses SCNs the old one had used after s1, and is backed up too.
    env.workload("1", 1);
    let inc2_first = env.db.number(
        "select min(first_change#) from v$archived_log where resetlogs_change# = (select resetlogs_change# from v$database)",
    );
    let inc2_last = env.db.number(
        "select max(next_change#) from v$archived_log where resetlogs_change# = (select resetlogs_change# from v$database)",
    );
    assert!(
        s1 <= inc2_first && inc2_last < s2,
        "{s1} {inc2_first} {inc2_last} {s2}"
    );
    env.db.rman_ok("backup database;\n");

    // Back to the old incarnation, at a point its new sibling's SCNs overlap.
    let out = env.db.rman_ok(&format!(
        "shutdown immediate;\nstartup mount;\nreset database to incarnation 1;\n{}alter database open resetlogs;\nlist incarnation;\n",
        env.run_sbt(&format!(
            " set until scn {s2};\n restore database;\n recover database;"
        ))
    ));
    assert!(out.contains("database reset to incarnation 1"), "{out}");
    assert!(out.contains("ORPHAN"), "{out}");
    env.db.prove(&at_s2);
}
