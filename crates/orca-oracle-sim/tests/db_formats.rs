//! Every block of every datafile and archived log is valid Oracle format.

mod db_common;

use db_common::*;
use orca_oracle::Scn;
use orca_oracle_sim::db::{Database, WorkloadOptions};

#[test]
fn created_database_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    let n = check_datafiles(&db);
    assert_eq!(n, 4 * 255);
    let info = db.info().unwrap();
    assert_eq!(info.name, "ORCL");
    assert_eq!(info.log_mode, "ARCHIVELOG");
    let ts: Vec<_> = db
        .datafiles()
        .unwrap()
        .into_iter()
        .map(|d| d.tablespace)
        .collect();
    assert_eq!(ts, ["SYSTEM", "SYSAUX", "UNDOTBS1", "USERS"]);
    // Reopen from disk.
    drop(db);
    let db = Database::open(dir.path().join("db")).unwrap();
    assert_eq!(db.datafiles().unwrap().len(), 4);
}

#[test]
fn workload_keeps_every_block_valid() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    let before = db.datafiles().unwrap();
    let scn0 = db.current_scn().unwrap();
    let r = db
        .workload(&WorkloadOptions {
            change_pct: 20.0,
            grow_mb: 1,
            log_switches: 3,
            seed: 3,
        })
        .unwrap();
    assert!(r.blocks_changed > 100, "{r:?}");
    assert!(r.blocks_formatted > 0);
    assert_eq!(r.blocks_grown, 128);
    assert!(r.archived.len() >= 3);
    assert!(db.current_scn().unwrap() > scn0);
    check_datafiles(&db);
    assert!(check_archived_logs(&db) >= 3);
    let after = db.datafiles().unwrap();
    assert_eq!(after[3].blocks, before[3].blocks + 128);
    // Checkpoint advanced in control file and headers.
    for d in &after {
        let h = db
            .open_datafile(d.file_no, false)
            .unwrap()
            .header()
            .unwrap();
        assert_eq!(h.checkpoint.scn, d.checkpoint_scn);
        assert!(d.checkpoint_scn > scn0);
    }
}

#[test]
fn sequences_and_scns_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    for _ in 0..3 {
        db.switch_logfile().unwrap();
    }
    let logs = db.archived_logs().unwrap();
    assert_eq!(logs.len(), 3);
    for w in logs.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence + 1);
        assert_eq!(w[1].first_scn, w[0].next_scn);
        assert!(w[0].next_scn > w[0].first_scn);
    }
    assert!(logs.iter().all(|l| l.status == "A" && !l.deleted));
    assert!(db.current_scn().unwrap() >= logs[2].next_scn);
    assert!(logs[0].first_scn > Scn(0));
    check_archived_logs(&db);
}
