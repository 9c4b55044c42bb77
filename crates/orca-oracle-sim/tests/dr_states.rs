//! The simulator's disaster-recovery paths through its `rman` and `sqlplus` stand-ins: the
//! states of an instance (idle, NOMOUNT, MOUNT, OPEN) and what each refuses, the control
//! file autobackup search (MAXDAYS, MAXSEQ, one media-manager question per name), a new
//! host's empty home, CATALOG START WITH, and incarnations.

#[path = "sbt_testlib/mod.rs"]
#[allow(dead_code)]
mod testlib;

use std::path::{Path, PathBuf};

use orca_testing::sim::{DbSpec, TempDb};

/// A database of 4 datafiles of 4 MiB, with the shims.
fn env() -> TempDb {
    TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec::default(),
    )
}

fn dbid(env: &TempDb) -> u64 {
    env.db.number("select dbid from v$database")
}

#[test]
fn instance_states_refuse_what_oracle_refuses() {
    let env = env();
    let home = env.db.home.clone();
    let out = env.db.rman_err("startup;\n");
    assert!(
        out.contains("connected to target database: ORCL (DBID="),
        "{out}"
    );
    assert!(
        out.contains("ORA-01081: cannot start already-running ORACLE"),
        "{out}"
    );
    let out = env.db.rman_ok("shutdown immediate;\n");
    assert!(
        out.contains("database closed\ndatabase dismounted\nOracle instance shut down"),
        "{out}"
    );

    // Idle: nothing but STARTUP.
    let out = env.db.rman_err("list backup;\n");
    assert!(
        out.contains("connected to target database (not started)"),
        "{out}"
    );
    assert!(out.contains("RMAN-03002: failure of list command"), "{out}");
    assert!(out.contains("ORA-01034: ORACLE not available"), "{out}");
    assert!(
        env.db
            .sqlplus("select name from v$database;\n")
            .1
            .contains("ORA-01034: ORACLE not available")
    );
    let (ok, out) = env.db.sim_status(&["switch"]);
    assert!(!ok && out.contains("ORA-01034"), "{out}");

    // NOMOUNT: the instance answers from its parameters only.
    let out = env.db.rman_ok("startup nomount;\n");
    assert!(out.contains("Oracle instance started"), "{out}");
    assert!(!out.contains("database mounted"), "{out}");
    let out = env.db.rman_err("restore database;\n");
    assert!(
        out.contains("connected to target database: ORCL (not mounted)"),
        "{out}"
    );
    assert!(
        out.contains("RMAN-03002: failure of restore command"),
        "{out}"
    );
    assert!(out.contains("ORA-01507: database not mounted"), "{out}");
    let out = env.db.rman_err("alter database open;\n");
    assert!(out.contains("ORA-01507: database not mounted"), "{out}");
    let q = env.db.sqlplus("set heading off\nselect status from v$instance;\nselect value from v$parameter where name = 'db_name';\nselect name from v$database;\n",
    ).1;
    assert!(q.contains("STARTED"), "{q}");
    assert!(q.contains("ORCL"), "{q}");
    assert!(q.contains("ORA-01507: database not mounted"), "{q}");

    // MOUNT, then OPEN with the checks of each.
    let out = env.db.rman_ok("alter database mount;\n");
    assert!(out.contains("Statement processed"), "{out}");
    let out = env.db.rman_err("alter database mount;\n");
    assert!(out.contains("(DBID="), "{out}");
    assert!(out.contains(", not open)"), "{out}");
    assert!(out.contains("ORA-01100: database already mounted"), "{out}");
    let out = env.db.rman_err("alter database open resetlogs;\n");
    assert!(
        out.contains(
            "ORA-01139: RESETLOGS option only valid after an incomplete database recovery"
        ),
        "{out}"
    );
    let out = env.db.rman_err("set dbid 42;\n");
    assert!(out.contains("RMAN-06188"), "{out}");
    // A datafile put back from an old copy needs media recovery.
    let users = home.join("oradata/ORCL/users01.dbf");
    let old = std::fs::read(&users).unwrap();
    env.db.rman_ok("alter database open;\n");
    env.db.workload("5", 1);
    env.db.rman_ok("shutdown immediate;\nstartup mount;\n");
    std::fs::write(&users, &old).unwrap();
    let out = env.db.rman_err("alter database open;\n");
    assert!(
        out.contains("ORA-01113: file 4 needs media recovery"),
        "{out}"
    );
    assert!(out.contains("ORA-01110: data file 4"), "{out}");
    env.db
        .rman_ok("recover datafile 4;\nalter database open;\n");
    let out = env.db.rman_err("alter database open;\n");
    assert!(out.contains("ORA-01531"), "{out}");

    // STARTUP MOUNT without a control file stops at NOMOUNT with ORA-00205.
    let cf = home.join("control/control01.ctl");
    let saved = std::fs::read(&cf).unwrap();
    env.db.rman_ok("shutdown immediate;\n");
    std::fs::rename(&cf, env.path("cf.saved")).unwrap();
    let out = env.db.rman_err("startup mount;\n");
    assert!(out.contains("Oracle instance started"), "{out}");
    assert!(
        out.contains("ORA-00205: error in identifying control file"),
        "{out}"
    );
    let q = env
        .db
        .sqlplus("set heading off\nselect status from v$instance;\n")
        .1;
    assert!(q.contains("STARTED"), "{q}");
    std::fs::write(&cf, &saved).unwrap();
    env.db
        .rman_ok("alter database mount;\nalter database open;\n");
}

#[test]
fn sqlplus_starts_and_stops_the_instance() {
    let env = env();
    let home = env.db.home.clone();
    let out = env.db.sqlplus("shutdown immediate\n").1;
    assert!(
        out.contains("Database closed.\nDatabase dismounted.\nORACLE instance shut down."),
        "{out}"
    );
    let out = env
        .db
        .sqlplus("startup mount\nselect open_mode from v$database;\n")
        .1;
    assert!(out.contains("ORACLE instance started."), "{out}");
    assert!(out.contains("Database mounted."), "{out}");
    assert!(out.contains("MOUNTED"), "{out}");
    let out = env
        .db
        .sqlplus("alter database open;\nselect open_mode from v$database;\n")
        .1;
    assert!(out.contains("READ WRITE"), "{out}");
    // No parameter file: SQL*Plus cannot start an instance; RMAN starts its dummy one.
    env.db.sqlplus("shutdown abort\n");
    let spfile = home.join("dbs/spfileORCL.ora");
    std::fs::rename(&spfile, env.path("spfile.saved")).unwrap();
    let out = env.db.sqlplus("startup nomount\n").1;
    assert!(
        out.contains("ORA-01078: failure in processing system parameters"),
        "{out}"
    );
    assert!(
        out.contains("LRM-00109: could not open parameter file"),
        "{out}"
    );
    let out = env.db.rman_ok("startup nomount;\n");
    assert!(
        out.contains("starting Oracle instance without parameter file for retrieval of spfile"),
        "{out}"
    );
    let out = env.db.rman_err("alter database mount;\n");
    assert!(
        out.contains("connected to target database: DUMMY (not mounted)"),
        "{out}"
    );
    assert!(
        out.contains("ORA-01103: database name 'ORCL' in control file is not 'DUMMY'"),
        "{out}"
    );
}

/// Backs up through the test SBT library with autobackups on, then loses the control file.
fn sbt_home(env: &TempDb) -> (PathBuf, String, PathBuf, PathBuf) {
    let home = env.db.home.clone();
    let lib = testlib::build(env.tmp.path());
    let store = env.path("store");
    std::fs::create_dir(&store).unwrap();
    let trace = env.path("calls.log");
    let parms = format!(
        "SBT_LIBRARY={}, ENV=(SBT_TESTLIB_DIR={}, SBT_TESTLIB_TRACE={})",
        lib.display(),
        store.display(),
        trace.display()
    );
    env.db.rman_ok(&format!(
            "configure controlfile autobackup on;\nconfigure default device type to sbt;\nconfigure channel device type sbt parms '{parms}';\nbackup database plus archivelog;\n"
        ),
    );
    (home, parms, store, trace)
}

fn today() -> String {
    chrono::Local::now().format("%Y%m%d").to_string()
}

#[test]
fn autobackup_search_asks_for_each_name_within_maxseq_and_maxdays() {
    let env = env();
    let (home, parms, store, trace) = sbt_home(&env);
    let dbid = dbid(&env);
    env.db.rman_ok("shutdown abort;\n");
    std::fs::remove_file(home.join("control/control01.ctl")).unwrap();
    let run = |body: &str| {
        format!(
            "startup nomount;\nset dbid {dbid};\nrun {{\n allocate channel t1 device type sbt parms '{parms}';\n {body}\n}}\n"
        )
    };
    // Without SET DBID there is nothing to look for.
    let out = env.db.rman_err(&format!("startup nomount;\nrun {{\n allocate channel t1 device type sbt parms '{parms}';\n restore controlfile from autobackup;\n}}\n"),
    );
    assert!(
        out.contains("RMAN-06495: must explicitly specify DBID with SET DBID command"),
        "{out}"
    );

    // The autobackup made 3 days ago with QQ 10: MAXDAYS 2 and MAXSEQ 5 miss it.
    let made = store.join(format!("c-{dbid}-{}-00", today()));
    let three_days = (chrono::Local::now() - chrono::Duration::days(3))
        .format("%Y%m%d")
        .to_string();
    let old = format!("c-{dbid}-{three_days}-10");
    std::fs::rename(&made, store.join(&old)).unwrap();
    std::fs::write(&trace, "").unwrap();
    env.db.rman("shutdown abort;\n", &[]);
    let out = env
        .db
        .rman_err(&run("restore controlfile from autobackup maxdays 2;"));
    assert!(
        out.contains(&format!(
            "channel t1: looking for AUTOBACKUP on day: {}",
            today()
        )),
        "{out}"
    );
    assert!(
        out.contains("channel t1: no AUTOBACKUP in 2 days found"),
        "{out}"
    );
    assert!(
        out.contains(
            "RMAN-06172: no AUTOBACKUP found or specified handle is not a valid copy or piece"
        ),
        "{out}"
    );
    // Each candidate name was one question to the media manager, newest first.
    let asked: Vec<String> = testlib::read_trace(&trace)
        .into_iter()
        .filter(|c| c.name == "sbtinfo2")
        .map(|c| c.args)
        .collect();
    assert_eq!(asked.len(), 2 * 256, "{asked:?}");
    assert!(
        asked[0].contains(&format!("names=c-{dbid}-{}-ff ", today())),
        "{asked:?}"
    );
    assert!(
        asked[255].contains(&format!("-{}-00 ", today())),
        "{asked:?}"
    );
    assert!(!home.join("control/control01.ctl").exists());

    env.db.rman("shutdown abort;\n", &[]);
    let out = env
        .db
        .rman_err(&run("restore controlfile from autobackup maxseq 5;"));
    assert!(out.contains("no AUTOBACKUP in 7 days found"), "{out}");

    env.db.rman("shutdown abort;\n", &[]);
    let out = env.db.rman_ok(&run("restore controlfile from autobackup;"));
    assert!(
        out.contains(&format!(
            "channel t1: looking for AUTOBACKUP on day: {three_days}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("channel t1: AUTOBACKUP found: {old}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "channel t1: restoring control file from AUTOBACKUP {old}"
        )),
        "{out}"
    );
    assert!(
        out.contains("channel t1: control file restore from AUTOBACKUP complete"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "output file name={}",
            home.canonicalize()
                .unwrap()
                .join("control/control01.ctl")
                .display()
        )),
        "{out}"
    );
    // A backup control file: mounted, it needs RESETLOGS, and RESETLOGS needs recovery.
    let out = env
        .db
        .rman_err("alter database mount;\nalter database open;\n");
    assert!(out.contains("Statement processed"), "{out}");
    assert!(
        out.contains("ORA-01589: must use RESETLOGS or NORESETLOGS option for database open"),
        "{out}"
    );
    let q = env
        .db
        .sqlplus(
            "set heading off\nselect controlfile_type || ' ' || open_resetlogs from v$database;\n",
        )
        .1;
    assert!(q.contains("BACKUP REQUIRED"), "{q}");
    let out = env.db.rman_err("alter database open resetlogs;\n");
    assert!(
        out.contains("ORA-01194: file 1 needs more recovery to be consistent"),
        "{out}"
    );
    let out = env
        .db
        .rman_ok("recover database;\nalter database open resetlogs;\n");
    assert!(out.contains("media recovery complete"), "{out}");
    let out = env.db.rman_err(&format!("run {{\n allocate channel t1 device type sbt parms '{parms}';\n restore controlfile from '{old}';\n}}\n"),
    );
    assert!(
        out.contains("RMAN-06496: must use the TO clause when the database is mounted or open"),
        "{out}"
    );
    let copy = env.path("cf.copy");
    let out = env.db.rman_ok(&format!("run {{\n allocate channel t1 device type sbt parms '{parms}';\n restore controlfile to '{}' from '{old}';\n}}\n", copy.display()),
    );
    assert!(
        out.contains("channel t1: restoring control file\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("output file name={}", copy.display())),
        "{out}"
    );
    assert!(
        std::fs::read(&copy)
            .unwrap()
            .starts_with(b"SQLite format 3\0")
    );
}

#[test]
fn a_new_host_is_restored_from_sbt_alone_and_stops_at_the_unknown_log() {
    let env = env();
    let (home, parms, _store, _trace) = sbt_home(&env);
    let dbid = dbid(&env);
    env.db.workload("3", 2);
    env.db.switch();
    env.db.rman_ok("backup archivelog all;\n");
    let reference = env.db.snapshot("reference");
    std::fs::remove_dir_all(&home).unwrap();

    let out = env.db.sim(&[
        "create",
        "--empty",
        "--home",
        home.to_str().unwrap(),
        "--name",
        "orcl",
    ]);
    assert!(out.contains("dbs/initORCL.ora"), "{out}");
    let (again, _) = env
        .db
        .sim_status(&["create", "--empty", "--home", home.to_str().unwrap()]);
    assert!(!again, "a second --empty must refuse the home");
    let ch = format!("allocate channel t1 device type sbt parms '{parms}';");
    let out = env.db.rman_ok(&format!("startup nomount;\nset dbid {dbid};\nrun {{\n {ch}\n restore spfile from autobackup;\n}}\nstartup force nomount;\nrun {{\n {ch}\n restore controlfile from autobackup;\n alter database mount;\n restore database;\n}}\n"),
    );
    assert!(
        out.contains("channel t1: SPFILE restore from AUTOBACKUP complete"),
        "{out}"
    );
    assert!(home.join("dbs/spfileORCL.ora").is_file());
    // Without the online logs the recovery runs out of redo, as Oracle's does.
    let out = env
        .db
        .rman_err(&format!("run {{\n {ch}\n recover database;\n}}\n"));
    assert!(out.contains("channel t1: restoring archived log"), "{out}");
    assert!(out.contains("unable to find archived log"), "{out}");
    assert!(
        out.contains("RMAN-06054: media recovery requesting unknown archived log for thread 1"),
        "{out}"
    );
    let out = env.db.rman_ok("alter database open resetlogs;\n");
    assert!(out.contains("Statement processed"), "{out}");
    env.db.prove(&reference);
}

#[test]
fn catalog_start_with_makes_later_backups_restorable() {
    let env = env();
    let home = env.db.home.clone();
    let bk = env.path("bk");
    std::fs::create_dir(&bk).unwrap();
    let backup = |tag: &str| {
        env.db.rman_ok(&format!(
                "run {{\n allocate channel d1 device type disk format '{}/%U';\n backup database tag '{tag}';\n backup current controlfile format '{}/cf_{tag}_%U';\n}}\n",
                bk.display(),
                bk.display()
            ),
        );
    };
    backup("first");
    let first_cf = std::fs::read_dir(&bk)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("cf_first")
        })
        .unwrap();
    env.db.workload("3", 1);
    backup("second");
    env.db.switch();
    let reference = env.db.snapshot("reference");
    env.db.rman_ok("shutdown abort;\n");
    std::fs::remove_file(home.join("control/control01.ctl")).unwrap();
    for e in std::fs::read_dir(home.join("oradata/ORCL")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let out = env.db.rman_ok(&format!(
            "startup nomount;\nrestore controlfile from '{}';\nalter database mount;\ncatalog start with '{}/' noprompt;\n",
            first_cf.display(),
            bk.display()
        ),
    );
    assert!(
        out.contains("channel ORA_DISK_1: restoring control file"),
        "{out}"
    );
    assert!(
        out.contains("searching for all files that match the pattern"),
        "{out}"
    );
    assert!(out.contains("List of Cataloged Files"), "{out}");
    let q = env.db.sqlplus("set heading off\nselect count(*) from v$backup_set where set_count > 0 and controlfile_included = 'NO';\n",
    ).1;
    assert!(q.trim().parse::<u32>().unwrap() >= 2, "{q}");
    let out = env
        .db
        .rman_ok("restore database;\nrecover database;\nalter database open resetlogs;\n");
    assert!(
        out.contains("tag=SECOND"),
        "the later backup is used:\n{out}"
    );
    env.db.prove(&reference);
}

#[test]
fn incarnations_overlap_and_reset_database_returns_to_the_old_one() {
    let env = env();
    env.db.rman_ok("backup database plus archivelog;\n");
    env.db.workload("4", 2);
    env.db.switch();
    let s1 = env.db.number("select current_scn from v$database");
    let at_s1 = env.db.snapshot("at_s1");
    assert_eq!(at_s1.scn, s1);
    env.db.workload("4", 2);
    env.db.switch();
    let s2 = env.db.number("select current_scn from v$database");
    let at_s2 = env.db.snapshot("at_s2");
    assert_eq!(at_s2.scn, s2);

    let out = env.db.rman_ok(&format!("shutdown immediate;\nstartup mount;\nrun {{\n set until scn {s1};\n restore database;\n recover database;\n}}\nalter database open resetlogs;\n"),
    );
    assert!(out.contains("media recovery complete"), "{out}");
    env.db.prove(&at_s1);
    let q = env.db.sqlplus("set heading off feedback off\nselect incarnation# || ' ' || resetlogs_change# || ' ' || status || ' ' || prior_incarnation# from v$database_incarnation order by 1;\n",
    ).1;
    let rows: Vec<&str> = q.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(
        rows,
        ["1 1 PARENT 0".to_string(), format!("2 {s1} CURRENT 1")],
        "{q}"
    );
    // The new incarnation hands out SCNs the old one already used.
    assert_eq!(env.db.number("select current_scn from v$database"), s1);
    env.db.workload("1", 1);
    env.db.rman_ok("backup database;\n");
    let newest = env
        .db
        .number("select max(checkpoint_change#) from v$backup_datafile where file# = 1");
    assert!(newest > s1 && newest < s2, "{s1} < {newest} < {s2}");
    let out = env.db.rman_ok("list incarnation;\n");
    assert!(
        out.contains("DB Key  Inc Key DB Name  DB ID            STATUS  Reset SCN  Reset Time"),
        "{out}"
    );
    assert!(out.contains("2       2       ORCL     "), "{out}");
    assert!(out.contains(&format!("CURRENT {s1:<10} ")), "{out}");

    // A point of the old incarnation: refused until the old incarnation is the target.
    let out = env.db.rman_err(&format!("shutdown immediate;\nstartup mount;\nrun {{\n set until scn {}; \n restore database;\n}}\n", s1 - 1),
    );
    assert!(
        out.contains("RMAN-20208: UNTIL CHANGE is before RESETLOGS change"),
        "{out}"
    );
    let out = env.db.rman_err("reset database to incarnation 9;\n");
    assert!(out.contains("RMAN-20003"), "{out}");
    let out = env.db.rman_ok(&format!("reset database to incarnation 1;\nrun {{\n set until scn {s2};\n restore database;\n recover database;\n}}\nalter database open resetlogs;\nlist incarnation;\n"),
    );
    assert!(out.contains("database reset to incarnation 1"), "{out}");
    assert!(out.contains("ORPHAN  "), "{out}");
    env.db.prove(&at_s2);
    let q = env.db.sqlplus("set heading off feedback off\nselect incarnation# || ' ' || status || ' ' || prior_incarnation# from v$database_incarnation order by 1;\n",
    ).1;
    let rows: Vec<&str> = q.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(rows, ["1 PARENT 0", "2 ORPHAN 1", "3 CURRENT 1"], "{q}");
}
