//! Archived logs as RMAN scripts of production DBAs treat them: FORMAT variables of archived-log
//! backup sets, CROSSCHECK / DELETE ARCHIVELOG, DELETE INPUT (issue 18).

use std::path::Path;

use orca_testing::fs::files_in;
use orca_testing::sim::{DbSpec, TempDb};

/// A small database with three archived logs.
fn env() -> TempDb {
    let env = TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec {
            online_log_mb: Some(1),
            ..DbSpec::default()
        },
    );
    for _ in 0..3 {
        env.db.switch();
    }
    env
}

/// A directory of the test, created.
fn dir(env: &TempDb, rel: &str) -> String {
    let d = env.path(rel);
    std::fs::create_dir_all(&d).unwrap();
    d.display().to_string()
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
    let arch = dir(&env, "archivelogs");
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
    let arch = dir(&env, "a");
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
