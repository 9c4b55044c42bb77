//! Archived logs as RMAN scripts of production DBAs treat them: FORMAT variables of archived-log
//! backup sets, CROSSCHECK / DELETE ARCHIVELOG, DELETE INPUT (issue 18).

use std::path::Path;

use orca_testing::fs::files_in;
use orca_testing::sim::TempDb;

/// A small database with three archived logs.
fn env() -> TempDb {
    TempDb::with_archived_logs(Path::new(env!("CARGO_BIN_EXE_oraclesim")), 3)
}

fn file_names(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = files_in(Path::new(dir))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn seed_archivelog_format_names_each_set_after_its_first_log() {
    let env = env();
    let arch = env.dir("archivelogs");
    let out = env.db.rman_ok(&format!(
        "backup as backupset format '{arch}/%d_%h_%e_%s_%t.arc' archivelog all not backed up;\n"
    ));
    assert!(!out.contains("ORA-19508"), "{out}");
    // The control-file autobackup that follows goes to its own default place.
    let mine = format!("status = 'A' and handle like '{arch}/%'");
    let handles = env.db.sql_column(&format!(
        "select handle from v$backup_piece where {mine} order by recid"
    ));
    assert!(!handles.is_empty(), "{out}");
    // Every handle is in the FORMAT's directory and named by the thread and sequence of
    // the lowest log of its set, the set count and the set stamp.
    let sets = env.db.sql_column(&format!(
        "select set_count || '_' || set_stamp from v$backup_piece where {mine} order by recid"
    ));
    let mut expected = Vec::new();
    for (handle, set) in handles.iter().zip(&sets) {
        let (count, stamp) = set.split_once('_').unwrap();
        let first = env.db.number(&format!(
            "select min(sequence#) from v$backup_redolog where set_count = {count}"
        ));
        let thread = env.db.number(&format!(
            "select min(thread#) from v$backup_redolog where set_count = {count}"
        ));
        let name = format!("ORCL_{thread}_{first}_{count}_{stamp}.arc");
        assert_eq!(handle, &format!("{arch}/{name}"));
        expected.push(name);
    }
    expected.sort();
    assert_eq!(file_names(&arch), expected);
    // Every available log is in a set: nothing left to back up.
    let logs = env
        .db
        .number("select count(*) from v$archived_log where status = 'A' and backup_count = 0");
    assert_eq!(logs, 0);
    let again = env.db.rman_ok(&format!(
        "backup as backupset format '{arch}/%d_%h_%e_%s_%t.arc' archivelog all not backed up;\n"
    ));
    assert!(again.contains("skipping archived log"), "{again}");
}

#[test]
fn activation_id_names_archivelog_sets_and_file_number_does_not() {
    let env = env();
    let arch = env.dir("a");
    let activation = env.db.number("select activation# from v$database");
    env.db.rman_ok(&format!(
        "backup format '{arch}/%a_%h_%e.arc' archivelog sequence 1;\n"
    ));
    assert_eq!(file_names(&arch), vec![format!("{activation}_1_1.arc")]);
    // %f names a datafile: an archived-log set has none, as Oracle refuses it.
    let out = env.db.rman_err(&format!(
        "backup format '{arch}/%f_%e.arc' archivelog sequence 2;\n"
    ));
    assert!(out.contains("ORA-19508"), "{out}");
    assert_eq!(file_names(&arch).len(), 1);
}

/// `(sequence, status, name)` of every V$ARCHIVED_LOG row.
fn log_rows(env: &TempDb) -> Vec<(u64, String, String)> {
    let seqs = env
        .db
        .sql_column("select sequence# from v$archived_log order by recid");
    let status = env
        .db
        .sql_column("select status from v$archived_log order by recid");
    let names = env
        .db
        .sql_column("select nvl(name, '-') from v$archived_log order by recid");
    assert_eq!(seqs.len(), status.len());
    assert_eq!(seqs.len(), names.len());
    seqs.iter()
        .zip(status)
        .zip(names)
        .map(|((q, s), n)| (q.parse().unwrap(), s, n))
        .collect()
}

fn name_of(env: &TempDb, sequence: u64) -> String {
    log_rows(env)
        .into_iter()
        .find(|r| r.0 == sequence)
        .unwrap()
        .2
}

#[test]
fn a_log_removed_by_hand_is_crosschecked_expired_deleted_and_backup_goes_on() {
    let env = env();
    let bk = env.dir("bk");
    let gone = name_of(&env, 2);
    // Without the crosscheck the next backup cannot read the log: the way out is below.
    std::fs::remove_file(&gone).unwrap();
    let out = env
        .db
        .rman_err(&format!("backup format '{bk}/%U' archivelog all;\n"));
    assert!(out.contains(&gone), "{out}");
    // As on Oracle, the current log was archived (sequence 4) before the missing one was met.
    assert!(out.contains("current log archived"), "{out}");

    let out = env.db.rman_ok("crosscheck archivelog all;\n");
    assert!(out.contains("validation failed for archived log"), "{out}");
    assert!(
        out.contains(&format!("archived log file name={gone} RECID=2 ")),
        "{out}"
    );
    assert_eq!(
        out.matches("validation succeeded for archived log").count(),
        3,
        "{out}"
    );
    assert!(out.contains("Crosschecked 4 objects"), "{out}");
    let rows = log_rows(&env);
    let statuses: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(statuses, ["A", "X", "A", "A"]);
    let list = env.db.rman_ok("list archivelog all;\n");
    assert!(list.contains("2       1    2       X "), "{list}");

    let out = env.db.rman_ok("delete noprompt expired archivelog all;\n");
    assert!(out.contains("deleted archived log"), "{out}");
    assert!(out.contains("Deleted 1 EXPIRED objects"), "{out}");
    let rows = log_rows(&env);
    assert_eq!(rows[1], (2, "D".into(), "-".into()));
    assert_eq!(rows[0].1, "A");
    assert_eq!(
        env.db
            .number("select count(*) from v$archived_log where deleted = 'YES'"),
        1
    );

    let out = env
        .db
        .rman_ok(&format!("backup format '{bk}/%U' archivelog all;\n"));
    assert!(out.contains("sequence=1 "), "{out}");
    assert!(out.contains("sequence=3 "), "{out}");
    assert!(!out.contains("sequence=2 "), "{out}");
    // The two logs still on disk are in a set.
    assert!(!files_in(Path::new(&bk)).is_empty());
    assert_eq!(
        env.db
            .number("select count(*) from v$backup_redolog where sequence# in (1, 3)"),
        2
    );
}

#[test]
fn crosscheck_finds_a_log_back_and_delete_without_force_keeps_a_mismatched_one() {
    let env = env();
    let name = name_of(&env, 1);
    let saved = env.path("saved.arc");
    std::fs::rename(&name, &saved).unwrap();
    env.db.rman_ok("crosscheck archivelog all;\n");
    assert_eq!(log_rows(&env)[0].1, "X");
    // Back on disk: the next crosscheck makes it AVAILABLE again.
    std::fs::rename(&saved, &name).unwrap();
    let out = env.db.rman_ok("crosscheck archivelog sequence 1;\n");
    assert!(out.contains("Crosschecked 1 objects"), "{out}");
    assert_eq!(log_rows(&env)[0].1, "A");

    // Gone again, no crosscheck: DELETE leaves the record and says why.
    std::fs::remove_file(&name).unwrap();
    let out = env.db.rman_ok("delete noprompt archivelog sequence 1;\n");
    assert!(
        out.contains("RMAN-06207: WARNING: 1 objects could not be deleted"),
        "{out}"
    );
    assert!(
        out.contains(&format!("RMAN-06214: Archivelog      {name}")),
        "{out}"
    );
    assert!(out.contains("Deleted 0 objects"), "{out}");
    assert_eq!(log_rows(&env)[0].1, "A");
    let out = env
        .db
        .rman_ok("delete noprompt force archivelog sequence 1;\n");
    assert!(out.contains("Deleted 1 objects"), "{out}");
    assert_eq!(log_rows(&env)[0], (1, "D".into(), "-".into()));
}

#[test]
fn delete_archivelog_all_until_time_completed_before_and_backed_up_times() {
    let env = env();
    let bk = env.dir("bk");
    let names: Vec<String> = log_rows(&env).into_iter().map(|r| r.2).collect();
    // Nothing completed a day ago or before the first log's first redo.
    let out = env
        .db
        .rman_ok("delete noprompt archivelog all completed before 'SYSDATE-1';\n");
    assert!(
        out.contains("specification does not match any archived log in the repository"),
        "{out}"
    );
    let out = env
        .db
        .rman_ok("delete noprompt archivelog until time 'SYSDATE-1';\n");
    assert!(out.contains("specification does not match"), "{out}");

    // Backed up once to disk: BACKED UP 1 TIMES TO DISK takes them, TO SBT does not.
    env.db
        .rman_ok(&format!("backup format '{bk}/%U' archivelog sequence 1;\n"));
    let out = env
        .db
        .rman_ok("delete noprompt archivelog all backed up 1 times to device type sbt;\n");
    assert!(out.contains("specification does not match"), "{out}");
    let out = env
        .db
        .rman_ok("delete noprompt archivelog all backed up 1 times to device type disk;\n");
    assert!(out.contains("Deleted 1 objects"), "{out}");
    assert!(!Path::new(&names[0]).exists());
    assert!(Path::new(&names[1]).exists());
    assert_eq!(log_rows(&env)[0].1, "D");

    // Everything archived so far completed before tomorrow.
    let out = env
        .db
        .rman_ok("delete noprompt archivelog all completed before 'SYSDATE+1';\n");
    assert!(out.contains("Deleted 2 objects"), "{out}");
    for n in &names {
        assert!(!Path::new(n).exists(), "{n}");
    }
    assert_eq!(
        env.db
            .number("select count(*) from v$archived_log where status = 'A'"),
        0
    );
}

#[test]
fn delete_archivelog_all_asks_and_backup_delete_input_removes_what_it_backed_up() {
    let env = env();
    let bk = env.dir("bk");
    let names: Vec<String> = log_rows(&env).into_iter().map(|r| r.2).collect();
    // Without NOPROMPT the answer NO (no input) keeps everything.
    let out = env.db.rman_ok("delete archivelog all;\n");
    assert!(
        out.contains("Do you really want to delete the above objects"),
        "{out}"
    );
    assert!(!out.contains("deleted archived log"), "{out}");
    assert!(names.iter().all(|n| Path::new(n).exists()));

    let out = env.db.rman_ok(&format!(
        "backup format '{bk}/%U' archivelog sequence between 1 and 2 delete input;\n"
    ));
    assert!(out.contains("deleting archived log(s)"), "{out}");
    assert!(!Path::new(&names[0]).exists());
    assert!(!Path::new(&names[1]).exists());
    assert!(Path::new(&names[2]).exists());
    let rows = log_rows(&env);
    assert_eq!(rows[0], (1, "D".into(), "-".into()));
    assert_eq!(rows[1], (2, "D".into(), "-".into()));
    assert_eq!(rows[2].1, "A");
    assert_eq!(
        env.db
            .number("select count(*) from v$backup_redolog where sequence# in (1, 2)"),
        2
    );
}
