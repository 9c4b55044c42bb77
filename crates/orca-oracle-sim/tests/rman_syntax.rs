//! RMAN syntax of production scripts (issue 18): parenthesised backup specifications,
//! BACKUP DATAFILE '<name>', CONFIGURE EXCLUDE, SHOW <setting>, the `log=` / `append`
//! command line, and the SQL statements RMAN's SQL command runs.

use std::path::Path;

use orca_testing::fs::files_in;
use orca_testing::sim::{DbSpec, TempDb};

fn env() -> TempDb {
    TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec {
            online_log_mb: Some(1),
            ..DbSpec::default()
        },
    )
}

fn count(dir: &str) -> usize {
    files_in(Path::new(dir)).len()
}

fn backed_up_files(env: &TempDb) -> Vec<String> {
    env.db
        .sql_column("select distinct file# from v$backup_datafile where file# > 0 order by 1")
}

#[test]
fn parenthesised_specs_take_their_own_format() {
    let env = env();
    let a = env.dir("a");
    let b = env.dir("b");
    env.db.rman_ok(&format!(
        "backup (datafile 4 format '{a}/df_%U') (archivelog all format '{b}/al_%U');\n"
    ));
    assert_eq!(backed_up_files(&env), ["4"]);
    assert!(count(&a) >= 1);
    assert!(count(&b) >= 1);
    assert!(
        files_in(Path::new(&a))
            .iter()
            .all(|p| { p.file_name().unwrap().to_string_lossy().starts_with("df_") })
    );
    assert!(env.db.number("select count(*) from v$backup_redolog") >= 1);
    // An unclosed parenthesis is a syntax error, before anything is written.
    let err = env
        .db
        .rman_err(&format!("backup (datafile 3 format '{a}/x_%U';\n"));
    assert!(err.contains("RMAN-01009"), "{err}");
}

#[test]
fn per_object_channel_writes_that_object_on_that_channel() {
    let env = env();
    let a = env.dir("a");
    let b = env.dir("b");
    let out = env.db.rman_ok(&format!(
        "run {{ allocate channel c1 device type disk format '{a}/%U';\n\
         allocate channel c2 device type disk format '{b}/%U';\n\
         backup (datafile 1 channel c1) (datafile 4 channel c2); }}\n"
    ));
    assert_eq!(backed_up_files(&env), ["1", "4"]);
    let handle_of = |f: u32| {
        env.db
            .sql_column(&format!(
                "select p.handle from v$backup_piece p join v$backup_datafile d
                   on d.set_stamp = p.set_stamp and d.set_count = p.set_count
                 where d.file# = {f}"
            ))
            .remove(0)
    };
    assert!(handle_of(1).starts_with(&a), "{out}");
    assert!(handle_of(4).starts_with(&b), "{out}");
    let err = env.db.rman_err(&format!(
        "run {{ allocate channel c1 device type disk format '{a}/%U';\n\
         backup (datafile 3 channel c9); }}\n"
    ));
    assert!(
        err.contains("RMAN-06012: channel: c9 not allocated"),
        "{err}"
    );
}

#[test]
fn backup_datafile_by_name() {
    let env = env();
    let a = env.dir("a");
    let users = env
        .db
        .sql_column("select name from v$datafile where file# = 4")
        .remove(0);
    env.db
        .rman_ok(&format!("backup datafile '{users}' format '{a}/%U';\n"));
    assert_eq!(backed_up_files(&env), ["4"]);
    let err = env.db.rman_err(&format!(
        "backup datafile '/no/such/file.dbf' format '{a}/%U';\n"
    ));
    assert!(
        err.contains("RMAN-06010: error while looking up datafile: /no/such/file.dbf"),
        "{err}"
    );
}

#[test]
fn configure_exclude_leaves_a_tablespace_out_of_backup_database() {
    let env = env();
    let a = env.dir("a");
    let out = env.db.rman_ok("configure exclude for tablespace users;\n");
    assert!(
        out.contains("CONFIGURE EXCLUDE FOR TABLESPACE USERS;"),
        "{out}"
    );
    let shown = env.db.rman_ok("show exclude;\n");
    assert!(
        shown.contains("CONFIGURE EXCLUDE FOR TABLESPACE USERS;"),
        "{shown}"
    );
    env.db
        .rman_ok(&format!("backup database format '{a}/%U' tag excl;\n"));
    let files = env.db.sql_column(
        "select distinct d.file# from v$backup_datafile d join v$backup_piece p
           on p.set_stamp = d.set_stamp and p.set_count = d.set_count
         where p.tag = 'EXCL' and d.file# > 0 order by 1",
    );
    assert_eq!(files, ["1", "2", "3"]);
    env.db.rman_ok(&format!(
        "backup database format '{a}/%U' tag noexcl noexclude;\n"
    ));
    let files = env.db.sql_column(
        "select distinct d.file# from v$backup_datafile d join v$backup_piece p
           on p.set_stamp = d.set_stamp and p.set_count = d.set_count
         where p.tag = 'NOEXCL' and d.file# > 0 order by 1",
    );
    assert_eq!(files, ["1", "2", "3", "4"]);
    env.db
        .rman_ok("configure exclude for tablespace users clear;\n");
    assert_eq!(
        env.db.number(
            "select count(*) from v$rman_configuration where name = 'EXCLUDE FOR TABLESPACE'"
        ),
        0
    );
}

#[test]
fn show_one_setting_prints_only_its_lines() {
    let env = env();
    let out = env.db.rman_ok("show retention policy;\n");
    assert!(
        out.contains("CONFIGURE RETENTION POLICY TO REDUNDANCY 1; # default"),
        "{out}"
    );
    assert!(!out.contains("BACKUP OPTIMIZATION"), "{out}");
    let out = env.db.rman_ok("show controlfile autobackup;\n");
    assert!(out.contains("CONFIGURE CONTROLFILE AUTOBACKUP ON"), "{out}");
    assert!(!out.contains("AUTOBACKUP FORMAT"), "{out}");
    let out = env.db.rman_ok("show all;\n");
    assert!(out.contains("CONFIGURE SNAPSHOT CONTROLFILE NAME"), "{out}");
    let err = env.db.rman_err("show nonsense;\n");
    assert!(err.contains("RMAN-01009"), "{err}");
}

#[test]
fn log_writes_the_output_to_a_file_and_append_keeps_what_was_there() {
    let env = env();
    let log = env.path("rman.log");
    let run = |append: bool| {
        let script = env.path("show.rcv");
        std::fs::write(&script, "show retention policy;\n").unwrap();
        let mut c = env.db.tool("rman");
        c.arg("target")
            .arg("/")
            .arg(format!("cmdfile={}", script.display()))
            .arg(format!("log={}", log.display()));
        if append {
            c.arg("append");
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stdout = run(false);
    assert!(!stdout.contains("RETENTION POLICY"), "{stdout}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("CONFIGURE RETENTION POLICY").count(),
        1,
        "{text}"
    );
    run(true);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("CONFIGURE RETENTION POLICY").count(),
        2,
        "{text}"
    );
    run(false);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("CONFIGURE RETENTION POLICY").count(),
        1,
        "{text}"
    );
}

#[test]
fn rman_sql_runs_the_statements_of_backup_scripts() {
    let env = env();
    let pfile = env.path("initORCL.ora");
    let trace = env.path("cf.trc");
    env.db.rman_ok(&format!(
        "sql 'alter system archive log all';\n\
         sql 'alter database begin backup';\n\
         sql 'alter database end backup';\n\
         sql \"alter session set nls_date_format=''YYYY-MM-DD HH24:MI:SS''\";\n\
         sql \"create pfile=''{}'' from spfile\";\n\
         sql \"alter database backup controlfile to trace as ''{}''\";\n",
        pfile.display(),
        trace.display()
    ));
    let p = std::fs::read_to_string(&pfile).unwrap();
    assert!(p.to_ascii_lowercase().contains("db_name"), "{p}");
    let t = std::fs::read_to_string(&trace).unwrap();
    assert!(
        t.contains("CREATE CONTROLFILE REUSE DATABASE \"ORCL\""),
        "{t}"
    );
    let users = env
        .db
        .sql_column("select name from v$datafile where file# = 4")
        .remove(0);
    assert!(t.contains(&users), "{t}");
    let err = env.db.rman_err("sql 'alter database frobnicate';\n");
    assert!(err.contains("ORA-00900"), "{err}");
}

#[test]
fn backup_backupset_adds_a_copy_that_restore_fails_over_to() {
    let env = env();
    let a = env.dir("a");
    let b = env.dir("b");
    env.db
        .rman_ok(&format!("backup datafile 4 format '{a}/%U' tag bs;\n"));
    let key = env.db.number(
        "select s.recid from v$backup_set s join v$backup_piece p
           on p.set_stamp = s.set_stamp and p.set_count = s.set_count where p.tag = 'BS'",
    );
    let out = env
        .db
        .rman_ok(&format!("backup backupset {key} format '{b}/%U';\n"));
    assert!(out.contains("input backup set: count="), "{out}");
    let copies = env.db.sql_column(
        "select copy# || ':' || handle from v$backup_piece where tag = 'BS' order by copy#",
    );
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(copies[1].starts_with(&format!("2:{b}/")), "{copies:?}");
    let first = copies[0].split_once(':').unwrap().1.to_string();
    let second = copies[1].split_once(':').unwrap().1.to_string();
    std::fs::remove_file(&first).unwrap();
    let restore = "sql 'alter database datafile 4 offline';\n\
                   restore datafile 4;\n\
                   recover datafile 4;\n\
                   sql 'alter database datafile 4 online';\n";
    let out = env.db.rman_ok(restore);
    assert!(
        out.contains(&format!("failover to piece handle={second}")),
        "{out}"
    );
    assert_eq!(env.db.datafile_status(4), "ONLINE");
    // Without either copy there is nothing to restore from.
    std::fs::remove_file(&second).unwrap();
    let err = env.db.rman_err(restore);
    assert!(
        err.contains(&format!("ORA-19505: failed to identify file \"{second}\"")),
        "{err}"
    );
}
