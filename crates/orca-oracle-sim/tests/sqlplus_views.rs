//! Dictionary and job views DBA scripts query through `sqlplus -S` (issue 18): DBA_DATA_FILES,
//! DBA_TABLESPACES, DBA_TEMP_FILES, V$RMAN_BACKUP_JOB_DETAILS, V$BACKUP_SET_DETAILS,
//! V$SESSION_LONGOPS, V$RECOVERY_AREA_USAGE, V$RECOVER_FILE, V$BACKUP_DATAFILE, in CSV and
//! plain output.

use std::path::Path;

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

#[test]
fn dba_data_files_matches_v_datafile() {
    let env = env();
    let names = env
        .db
        .sql_column("select name from v$datafile order by file#");
    let files = env
        .db
        .sql_column("select file_name from dba_data_files order by file_id");
    assert_eq!(files, names);
    let ts = env
        .db
        .sql_column("select tablespace_name from dba_data_files where file_id = 4");
    assert_eq!(ts, ["USERS"]);
    let bytes = env.db.number("select sum(bytes) from dba_data_files");
    assert_eq!(bytes, env.db.number("select sum(bytes) from v$datafile"));
    // The plain format has Oracle's headings.
    let (ok, out) = env.db.sqlplus(
        "set linesize 200\nselect file_id, tablespace_name from dba_data_files order by 1;\nexit\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("TABLESPACE_NAME"), "{out}");
    assert!(out.contains("USERS"), "{out}");
}

#[test]
fn dba_tablespaces_shows_contents_and_status() {
    let env = env();
    let rows = env.db.sql_column(
        "select tablespace_name || ':' || contents || ':' || status from dba_tablespaces order by 1",
    );
    assert!(
        rows.contains(&"USERS:PERMANENT:ONLINE".to_string()),
        "{rows:?}"
    );
    assert!(
        rows.contains(&"UNDOTBS1:UNDO:ONLINE".to_string()),
        "{rows:?}"
    );
    assert!(
        rows.contains(&"SYSTEM:PERMANENT:ONLINE".to_string()),
        "{rows:?}"
    );
    let (ok, out) = env.db.sqlplus("alter tablespace users offline;\nexit\n");
    assert!(ok, "{out}");
    let status = env
        .db
        .sql_column("select status from dba_tablespaces where tablespace_name = 'USERS'");
    assert_eq!(status, ["OFFLINE"]);
    assert_eq!(env.db.number("select count(*) from dba_temp_files"), 0);
}

#[test]
fn backup_job_views_describe_the_backup_just_taken() {
    let env = env();
    let a = env.dir("a");
    assert_eq!(
        env.db
            .number("select count(*) from v$rman_backup_job_details"),
        0
    );
    env.db
        .rman_ok(&format!("backup datafile 4 format '{a}/%U';\n"));
    let rows = env.db.sql_column(
        "select status || ':' || input_type || ':' || output_device_type from v$rman_backup_job_details",
    );
    assert_eq!(rows, ["COMPLETED:DATAFILE FULL:DISK"]);
    let out_bytes = env
        .db
        .number("select output_bytes from v$rman_backup_job_details");
    let piece_bytes = env
        .db
        .number("select sum(bytes) from v$backup_piece where status = 'A'");
    // The control-file autobackup after it counts too.
    assert_eq!(out_bytes, piece_bytes);
    assert_eq!(
        env.db
            .sql_column("select autobackup_done from v$rman_backup_job_details"),
        ["YES"]
    );
    assert_eq!(
        env.db.number("select count(*) from v$backup_set_details"),
        env.db.number("select count(*) from v$backup_set")
    );
    let longops = env
        .db
        .number("select count(*) from v$session_longops where opname like 'RMAN%'");
    assert!(longops >= 1);
    // A second session is a second job.
    env.db
        .rman_ok(&format!("backup datafile 3 format '{a}/%U';\n"));
    assert_eq!(
        env.db
            .number("select count(*) from v$rman_backup_job_details"),
        2
    );
    assert_eq!(
        env.db
            .number("select count(*) from v$backup_datafile where file# in (3, 4)"),
        2
    );
}

#[test]
fn recovery_area_usage_lists_the_file_types_and_recover_file_a_lost_file() {
    let env = env();
    let types = env
        .db
        .sql_column("select file_type from v$recovery_area_usage");
    assert_eq!(types.len(), 8);
    assert!(types.contains(&"ARCHIVED LOG".to_string()));
    assert_eq!(env.db.number("select count(*) from v$recover_file"), 0);
    let users = env
        .db
        .sql_column("select name from v$datafile where file# = 4")
        .remove(0);
    std::fs::remove_file(&users).unwrap();
    let rows = env
        .db
        .sql_column("select file# || ':' || error from v$recover_file");
    assert_eq!(rows, ["4:FILE NOT FOUND"]);
}

#[test]
fn session_longops_shows_each_channel_s_progress_and_where_a_failed_set_stopped() {
    let env = env();
    let a = env.dir("a");
    let blocks = env
        .db
        .number("select blocks + 1 from v$datafile where file# = 4");
    env.db
        .rman_ok(&format!("backup datafile 4 format '{a}/%U';\n"));
    let done = env.db.sql_column(
        "select sofar || '/' || totalwork || ' ' || units from v$session_longops \
         where opname = 'RMAN: full datafile backup'",
    );
    assert_eq!(done, [format!("{blocks}/{blocks} Blocks")]);
    // A channel that fails a quarter of the way leaves its row where it stopped: the row was
    // written while the set was read, not once it was done.
    let script = format!(
        "run {{ allocate channel c1 device type disk; \
         backup incremental level 0 datafile 4 format '{a}/%U'; }}\n"
    );
    let quarter = (blocks * 8192 / 4).to_string();
    let (ok, out) = env
        .db
        .rman(&script, &[("ORACLESIM_FAIL_AFTER_BYTES", quarter.as_str())]);
    assert!(!ok, "{out}");
    let row = env.db.sql_column(
        "select sofar || ' ' || totalwork || ' ' || message from v$session_longops \
         where opname = 'RMAN: incremental datafile backup'",
    );
    assert_eq!(row.len(), 1, "{row:?}");
    let mut it = row[0].splitn(3, ' ');
    let sofar: u64 = it.next().unwrap().parse().unwrap();
    let total: u64 = it.next().unwrap().parse().unwrap();
    assert_eq!(total, blocks);
    assert!(sofar > 0 && sofar < total, "{row:?}");
    assert!(
        it.next()
            .unwrap()
            .ends_with(&format!("{sofar} out of {total} Blocks done")),
        "{row:?}"
    );
}
