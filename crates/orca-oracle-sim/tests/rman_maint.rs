//! Maintenance commands of production RMAN scripts (issue 18): DELETE ARCHIVELOG by backups,
//! time and completion, BACKUP ... DELETE INPUT, CHANGE BACKUPSET/BACKUPPIECE, CATALOG START
//! WITH, DELETE COPY.

use std::path::Path;

use orca_testing::sim::TempDb;

/// A small database with three archived logs.
fn env() -> TempDb {
    TempDb::with_archived_logs(Path::new(env!("CARGO_BIN_EXE_oraclesim")), 3)
}

fn log_name(env: &TempDb, sequence: u32) -> String {
    env.db
        .sql_column(&format!(
            "select name from v$archived_log where sequence# = {sequence}"
        ))
        .remove(0)
}

fn log_status(env: &TempDb, sequence: u32) -> String {
    env.db
        .sql_column(&format!(
            "select status from v$archived_log where sequence# = {sequence}"
        ))
        .remove(0)
}

fn available_logs(env: &TempDb) -> u64 {
    env.db
        .number("select count(*) from v$archived_log where status = 'A'")
}

#[test]
fn delete_archivelog_backed_up_once_to_disk_takes_only_logs_in_a_backup() {
    let env = env();
    let bk = env.dir("bk");
    let one = log_name(&env, 1);
    let two = log_name(&env, 2);
    env.db
        .rman_ok(&format!("backup archivelog sequence 1 format '{bk}/%U';\n"));
    // SBT holds no backup of it: nothing qualifies there.
    env.db
        .rman_ok("delete noprompt archivelog all backed up 1 times to device type sbt;\n");
    assert_eq!(log_status(&env, 1), "A");
    let out = env
        .db
        .rman_ok("delete noprompt archivelog all backed up 1 times to device type disk;\n");
    assert!(out.contains("deleted archived log"), "{out}");
    assert_eq!(log_status(&env, 1), "D");
    assert!(!Path::new(&one).exists());
    assert_eq!(log_status(&env, 2), "A");
    assert!(Path::new(&two).exists());
}

#[test]
fn delete_archivelog_until_time_and_completed_before() {
    let env = env();
    // Nothing is older than a day ago: nothing goes.
    env.db
        .rman_ok("delete noprompt archivelog until time 'sysdate-1';\n");
    assert_eq!(available_logs(&env), 3);
    env.db
        .rman_ok("delete noprompt archivelog completed before 'sysdate-1';\n");
    assert_eq!(available_logs(&env), 3);
    let out = env
        .db
        .rman_ok("delete noprompt archivelog completed before 'sysdate+1';\n");
    assert!(out.contains("deleted archived log"), "{out}");
    assert_eq!(available_logs(&env), 0);
}

#[test]
fn delete_force_archivelog_all_gets_past_a_log_removed_by_hand() {
    let env = env();
    std::fs::remove_file(log_name(&env, 2)).unwrap();
    env.db.rman_ok("delete noprompt force archivelog all;\n");
    assert_eq!(available_logs(&env), 0);
    for s in 1..=3 {
        assert_eq!(log_status(&env, s), "D");
    }
}

#[test]
fn backup_archivelog_all_delete_input_removes_every_log_it_backed_up() {
    let env = env();
    let bk = env.dir("bk");
    let names: Vec<String> = (1..=3).map(|s| log_name(&env, s)).collect();
    env.db.rman_ok(&format!(
        "backup archivelog all format '{bk}/%U' delete input;\n"
    ));
    assert_eq!(available_logs(&env), 0);
    for n in &names {
        assert!(!Path::new(n).exists(), "{n}");
    }
    // The current log was archived first and is in a backup too.
    let backed = env
        .db
        .number("select count(distinct sequence#) from v$backup_redolog");
    assert_eq!(backed, 4);
}

/// A backup of datafile 4 with its own tag: (BS key, piece handle).
fn users_backup(env: &TempDb, bk: &str, tag: &str) -> (u64, String) {
    env.db
        .rman_ok(&format!("backup datafile 4 format '{bk}/%U' tag {tag};\n"));
    let key = env.db.number(&format!(
        "select s.recid from v$backup_set s join v$backup_piece p
           on p.set_stamp = s.set_stamp and p.set_count = s.set_count where p.tag = '{tag}'"
    ));
    let handle = env
        .db
        .sql_column(&format!(
            "select handle from v$backup_piece where tag = '{tag}'"
        ))
        .remove(0);
    (key, handle)
}

fn piece_status(env: &TempDb, handle: &str) -> Vec<String> {
    env.db.sql_column(&format!(
        "select status from v$backup_piece where handle = '{handle}' order by recid"
    ))
}

#[test]
fn change_marks_pieces_unavailable_and_available() {
    let env = env();
    let bk = env.dir("bk");
    let (key, handle) = users_backup(&env, &bk, "T4");
    let out = env
        .db
        .rman_ok(&format!("change backupset {key} unavailable;\n"));
    assert!(out.contains("changed backup piece unavailable"), "{out}");
    assert!(
        out.contains("Changed 1 objects to UNAVAILABLE status"),
        "{out}"
    );
    assert_eq!(piece_status(&env, &handle), ["U"]);
    let listed = env.db.rman_ok("list backup of datafile 4;\n");
    assert!(listed.contains("UNAVAILABLE"), "{listed}");
    let out = env
        .db
        .rman_ok(&format!("change backuppiece '{handle}' available;\n"));
    assert!(
        out.contains("Changed 1 objects to AVAILABLE status"),
        "{out}"
    );
    assert_eq!(piece_status(&env, &handle), ["A"]);
    // A key that names no set changes nothing.
    let err = env.db.rman_err("change backupset 999 unavailable;\n");
    assert!(err.contains("RMAN-06160"), "{err}");
    assert_eq!(piece_status(&env, &handle), ["A"]);
}

#[test]
fn change_keep_makes_a_backup_outlive_the_redundancy_policy() {
    let env = env();
    let bk = env.dir("bk");
    let (old, _) = users_backup(&env, &bk, "OLD");
    // Completion times have one-second resolution: the newer backup must be newer.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    users_backup(&env, &bk, "NEW");
    let report = env.db.rman_ok("report obsolete redundancy 1;\n");
    assert!(
        report.contains(&format!("Backup Set           {old:<6} ")),
        "{report}"
    );
    let out = env
        .db
        .rman_ok(&format!("change backupset {old} keep forever;\n"));
    assert!(
        out.contains("keep attributes for the backup are changed"),
        "{out}"
    );
    assert!(out.contains("backup will never be obsolete"), "{out}");
    assert_eq!(
        env.db.sql_column(&format!(
            "select keep from v$backup_set where recid = {old}"
        )),
        ["YES"]
    );
    let report = env.db.rman_ok("report obsolete redundancy 1;\n");
    assert!(
        !report.contains(&format!("Backup Set           {old:<6} ")),
        "{report}"
    );
    let out = env.db.rman_ok(&format!(
        "change backupset {old} keep until time 'sysdate+30';\n"
    ));
    assert!(out.contains("backup will be obsolete on date"), "{out}");
    let until = env.db.number(&format!(
        "select count(*) from v$backup_set where recid = {old} and keep_until > sysdate + 29"
    ));
    assert_eq!(until, 1);
    let report = env.db.rman_ok("report obsolete redundancy 1;\n");
    assert!(
        !report.contains(&format!("Backup Set           {old:<6} ")),
        "{report}"
    );
    // Once the KEEP UNTIL time has passed the backup is obsolete again.
    let cf = rusqlite::Connection::open(env.db.home.join("control/control01.ctl")).unwrap();
    cf.execute(
        r#"UPDATE cf_backup_set SET "KEEP_UNTIL" = "KEEP_UNTIL" - 31 WHERE "RECID" = ?1"#,
        [i64::try_from(old).unwrap()],
    )
    .unwrap();
    drop(cf);
    let report = env.db.rman_ok("report obsolete redundancy 1;\n");
    assert!(
        report.contains(&format!("Backup Set           {old:<6} ")),
        "{report}"
    );
    let out = env.db.rman_ok(&format!("change backupset {old} nokeep;\n"));
    assert!(
        out.contains("keep attributes for the backup are deleted"),
        "{out}"
    );
    let report = env.db.rman_ok("report obsolete redundancy 1;\n");
    assert!(
        report.contains(&format!("Backup Set           {old:<6} ")),
        "{report}"
    );
}

#[test]
fn uncatalog_forgets_a_piece_and_catalog_start_with_finds_it_again() {
    let env = env();
    let bk = env.dir("bk");
    let (_, handle) = users_backup(&env, &bk, "T4");
    let out = env
        .db
        .rman_ok(&format!("change backuppiece '{handle}' uncatalog;\n"));
    assert!(out.contains("uncataloged backup piece"), "{out}");
    assert!(out.contains("Uncataloged 1 objects"), "{out}");
    assert!(Path::new(&handle).exists());
    let live =
        format!("select count(*) from v$backup_piece where status = 'A' and handle = '{handle}'");
    assert_eq!(env.db.number(&live), 0);
    let out = env
        .db
        .rman_ok(&format!("catalog start with '{bk}' noprompt;\n"));
    assert!(out.contains(&format!("File Name: {handle}")), "{out}");
    assert_eq!(env.db.number(&live), 1);
    // A second pass finds nothing new.
    let out = env
        .db
        .rman_ok(&format!("catalog start with '{bk}' noprompt;\n"));
    assert!(
        out.contains("no files found to be unknown to the database"),
        "{out}"
    );
}

#[test]
fn delete_copy_of_datafile_removes_that_file_s_copies_only() {
    let env = env();
    let cp = env.dir("cp");
    env.db.rman_ok(&format!(
        "backup as copy datafile 3, 4 format '{cp}/df_%f_%U';\n"
    ));
    let names = |f: u32| {
        env.db.sql_column(&format!(
            "select name from v$datafile_copy where file# = {f} and status = 'A'"
        ))
    };
    let four = names(4);
    let three = names(3);
    assert_eq!(four.len(), 1);
    assert_eq!(three.len(), 1);
    let out = env.db.rman_ok("delete noprompt copy of datafile 4;\n");
    assert!(out.contains("deleted datafile copy"), "{out}");
    assert!(out.contains("Deleted 1 objects"), "{out}");
    assert!(names(4).is_empty());
    assert!(!Path::new(&four[0]).exists());
    assert_eq!(names(3), three);
    assert!(Path::new(&three[0]).exists());
    let out = env.db.rman_ok("delete noprompt copy of datafile 4;\n");
    assert!(out.contains("specification does not match"), "{out}");
}

#[test]
fn list_expired_backup_and_archivelog_show_what_crosscheck_did_not_find() {
    let env = env();
    let bk = env.dir("bk");
    let (_, handle) = users_backup(&env, &bk, "T4");
    let out = env.db.rman_ok("list expired backup;\n");
    assert!(
        out.contains("specification does not match any backup"),
        "{out}"
    );
    std::fs::remove_file(&handle).unwrap();
    env.db.rman_ok("crosscheck backup;\n");
    let out = env.db.rman_ok("list expired backup;\n");
    assert!(out.contains(&handle), "{out}");
    assert!(out.contains("EXPIRED"), "{out}");
    let out = env.db.rman_ok("list expired archivelog all;\n");
    assert!(
        out.contains("specification does not match any archived log"),
        "{out}"
    );
    let gone = log_name(&env, 2);
    let kept = log_name(&env, 1);
    std::fs::remove_file(&gone).unwrap();
    env.db.rman_ok("crosscheck archivelog all;\n");
    let out = env.db.rman_ok("list expired archivelog all;\n");
    assert!(out.contains(&gone), "{out}");
    assert!(!out.contains(&kept), "{out}");
}

#[test]
fn list_backup_recoverable_leaves_out_unavailable_sets() {
    let env = env();
    let bk = env.dir("bk");
    let (one, first) = users_backup(&env, &bk, "ONE");
    let (_, second) = users_backup(&env, &bk, "TWO");
    env.db
        .rman_ok(&format!("change backupset {one} unavailable;\n"));
    let out = env.db.rman_ok("list backup of datafile 4 recoverable;\n");
    assert!(out.contains(&second), "{out}");
    assert!(!out.contains(&first), "{out}");
    let all = env.db.rman_ok("list backup of datafile 4;\n");
    assert!(all.contains(&first), "{all}");
}

#[test]
fn report_unrecoverable_names_files_changed_without_logging_since_their_backup() {
    let env = env();
    let bk = env.dir("bk");
    let out = env.db.rman_ok("report unrecoverable;\n");
    assert!(
        out.contains("Report of files that need backup due to unrecoverable operations"),
        "{out}"
    );
    let users = env
        .db
        .sql_column("select name from v$datafile where file# = 4")
        .remove(0);
    assert!(!out.contains(&users), "{out}");
    // A NOLOGGING load into USERS before its last checkpoint: Oracle records its SCN in the
    // control file.
    let scn = env
        .db
        .number("select checkpoint_change# from v$datafile where file# = 4");
    let cf = rusqlite::Connection::open(env.db.home.join("control/control01.ctl")).unwrap();
    cf.execute(
        r#"UPDATE cf_datafile SET "UNRECOVERABLE_CHANGE#" = ?1 WHERE "FILE#" = 4"#,
        [i64::try_from(scn).unwrap()],
    )
    .unwrap();
    drop(cf);
    let out = env.db.rman_ok("report unrecoverable;\n");
    assert!(
        out.contains(&format!("4    full                    {users}")),
        "{out}"
    );
    // A backup taken after the load covers it.
    env.db
        .rman_ok(&format!("backup datafile 4 format '{bk}/%U';\n"));
    let out = env.db.rman_ok("report unrecoverable;\n");
    assert!(!out.contains(&users), "{out}");
}

#[test]
fn report_obsolete_follows_redundancy_and_recovery_window() {
    let env = env();
    let bk = env.dir("bk");
    let (old, _) = users_backup(&env, &bk, "OLD");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    users_backup(&env, &bk, "NEW");
    let line = format!("Backup Set           {old:<6} ");
    let r1 = env.db.rman_ok("report obsolete redundancy 1;\n");
    assert!(r1.contains(&line), "{r1}");
    assert!(
        r1.contains("RMAN retention policy is set to redundancy 1"),
        "{r1}"
    );
    let r2 = env.db.rman_ok("report obsolete redundancy 2;\n");
    assert!(!r2.contains(&line), "{r2}");
    // Both backups are younger than the window: both are needed to reach its start.
    let w = env
        .db
        .rman_ok("report obsolete recovery window of 1 days;\n");
    assert!(!w.contains(&line), "{w}");
    assert!(w.contains("recovery window of 1 days"), "{w}");
    // The configured policy applies when none is given.
    env.db
        .rman_ok("configure retention policy to redundancy 1;\n");
    let c = env.db.rman_ok("report obsolete;\n");
    assert!(c.contains(&line), "{c}");
}

/// Live pieces (status other than deleted) whose handle starts with `dir`.
fn live_pieces_in(env: &TempDb, dir: &str) -> u64 {
    env.db.number(&format!(
        "select count(*) from v$backup_piece where status <> 'D' and handle like '{dir}/%'"
    ))
}

#[test]
fn delete_backup_of_archivelog_all_keeps_the_datafile_backups() {
    let env = env();
    let db_bk = env.dir("db_bk");
    let arch_bk = env.dir("arch_bk");
    env.db.rman_ok(&format!(
        "backup database format '{db_bk}/%U';\nbackup archivelog all format '{arch_bk}/%U';\n"
    ));
    let db_pieces = live_pieces_in(&env, &db_bk);
    assert!(db_pieces > 0);
    assert!(live_pieces_in(&env, &arch_bk) > 0);
    let out = env
        .db
        .rman_ok("delete noprompt backup of archivelog all;\n");
    assert!(out.contains("deleted backup piece"), "{out}");
    assert!(!out.contains(&db_bk), "{out}");
    assert_eq!(live_pieces_in(&env, &arch_bk), 0);
    assert_eq!(std::fs::read_dir(&arch_bk).unwrap().count(), 0);
    assert_eq!(live_pieces_in(&env, &db_bk), db_pieces);
    let out = env.db.rman_ok("list backup of archivelog all;\n");
    assert!(out.contains("specification does not match"), "{out}");
    let out = env.db.rman_ok("list backup of database;\n");
    assert!(out.contains(&db_bk), "{out}");
    // Without OF, DELETE BACKUP still takes every backup: the control of the test above.
    env.db.rman_ok("delete noprompt backup;\n");
    assert_eq!(live_pieces_in(&env, &db_bk), 0);
}

#[test]
fn delete_and_crosscheck_backup_of_an_object_select_the_sets_holding_it() {
    let env = env();
    let bk = env.dir("bk");
    let (_, users) = users_backup(&env, &bk, "T4");
    let cf = env.dir("cf");
    env.db
        .rman_ok(&format!("backup current controlfile format '{cf}/%U';\n"));
    let sp = env.dir("sp");
    env.db
        .rman_ok(&format!("backup spfile format '{sp}/%U';\n"));
    let cf_piece = env
        .db
        .sql_column(&format!(
            "select handle from v$backup_piece where handle like '{cf}/%'"
        ))
        .remove(0);

    // CROSSCHECK BACKUP OF checks the pieces LIST BACKUP OF shows, and no other.
    std::fs::remove_file(&users).unwrap();
    std::fs::remove_file(&cf_piece).unwrap();
    // The control file autobackups hold the control file too: they are checked, found.
    let out = env.db.rman_ok("crosscheck backup of controlfile;\n");
    assert!(out.contains(&cf_piece), "{out}");
    assert!(!out.contains(&users), "{out}");
    assert_eq!(piece_status(&env, &cf_piece), ["X"]);
    assert_eq!(piece_status(&env, &users), ["A"]);
    let out = env.db.rman_ok("crosscheck backup of tablespace users;\n");
    assert!(out.contains(&users), "{out}");
    assert!(!out.contains(&cf_piece), "{out}");
    assert_eq!(piece_status(&env, &users), ["X"]);

    // DELETE BACKUP OF SPFILE / DATAFILE take their own sets.
    env.db.rman_ok("delete noprompt backup of spfile;\n");
    assert_eq!(live_pieces_in(&env, &sp), 0);
    assert_eq!(live_pieces_in(&env, &cf), 1);
    assert_eq!(live_pieces_in(&env, &bk), 1);
    let out = env.db.rman_ok("delete noprompt backup of datafile 4;\n");
    assert!(out.contains(&users), "{out}");
    assert_eq!(live_pieces_in(&env, &bk), 0);
    assert_eq!(live_pieces_in(&env, &cf), 1);
    let out = env.db.rman_ok("delete noprompt backup of datafile 4;\n");
    assert!(out.contains("specification does not match"), "{out}");
    env.db.rman_ok("delete noprompt backup of controlfile;\n");
    assert_eq!(live_pieces_in(&env, &cf), 0);
}
