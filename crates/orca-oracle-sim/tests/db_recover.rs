//! Media recovery makes restored datafiles byte-identical to the originals.

mod db_common;

use db_common::*;
use orca_oracle::Scn;
use orca_oracle::block::BlockHeader;
use orca_oracle_sim::db::{DbError, RecoverOptions, RecoverUntil, WorkloadOptions};

fn wl(pct: f64, switches: u32, seed: u64) -> WorkloadOptions {
    WorkloadOptions {
        change_pct: pct,
        grow_mb: 0,
        log_switches: switches,
        seed,
    }
}

#[test]
fn complete_recovery_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    let backup = copy_datafiles(&db, &dir.path().join("backup"));
    db.workload(&WorkloadOptions {
        change_pct: 30.0,
        grow_mb: 1,
        log_switches: 2,
        seed: 11,
    })
    .unwrap();
    // More changes that stay in the online log only.
    db.workload(&wl(5.0, 0, 12)).unwrap();
    let expected = copy_datafiles(&db, &dir.path().join("expected"));
    restore(&backup);
    let report = db.recover(&RecoverOptions::default()).unwrap();
    assert!(report.complete);
    assert!(report.records_applied > 0);
    assert!(report.logs_applied.iter().any(|l| l.online));
    assert_same(&expected);
    check_datafiles(&db);
}

#[test]
fn point_in_time_recovery_matches_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    let backup = copy_datafiles(&db, &dir.path().join("backup"));
    db.workload(&wl(20.0, 2, 21)).unwrap();
    db.workload(&wl(10.0, 0, 22)).unwrap();
    let mid = copy_datafiles(&db, &dir.path().join("mid"));
    let until = Scn(db.current_scn().unwrap().0 + 1);
    db.workload(&wl(20.0, 2, 23)).unwrap();
    restore(&backup);
    let report = db
        .recover(&RecoverOptions {
            until: Some(RecoverUntil::Scn(until)),
            ..Default::default()
        })
        .unwrap();
    assert!(!report.complete);
    assert!(report.end_scn < until);
    assert_same(&mid);
}

#[test]
fn recovery_until_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    let backup = copy_datafiles(&db, &dir.path().join("backup"));
    db.workload(&wl(10.0, 1, 31)).unwrap();
    let snap = copy_datafiles(&db, &dir.path().join("snap"));
    let logs = db.archived_logs().unwrap();
    let next_seq = logs.last().unwrap().sequence + 1;
    db.workload(&wl(10.0, 1, 32)).unwrap();
    restore(&backup);
    db.recover(&RecoverOptions {
        until: Some(RecoverUntil::Sequence {
            thread: 1,
            sequence: next_seq,
        }),
        ..Default::default()
    })
    .unwrap();
    assert_same(&snap);
}

#[test]
fn missing_archived_log_is_reported_and_views_still_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    let backup = copy_datafiles(&db, &dir.path().join("backup"));
    db.workload(&wl(10.0, 3, 41)).unwrap();
    let logs = db.archived_logs().unwrap();
    let victim = &logs[1];
    std::fs::remove_file(victim.name.as_ref().unwrap()).unwrap();
    // The control file still says available, as Oracle does until crosscheck.
    let again = db.archived_log(victim.recid).unwrap();
    assert_eq!(again.status, "A");
    assert!(again.name.is_some());
    restore(&backup);
    let plan = db.recovery_plan(&RecoverOptions::default()).unwrap();
    assert_eq!(plan.missing.len(), 1);
    assert_eq!(plan.missing[0].sequence, victim.sequence);
    match db.recover(&RecoverOptions::default()) {
        Err(DbError::MissingLogs(m)) => {
            assert_eq!(m[0].thread, 1);
            assert_eq!(m[0].sequence, victim.sequence);
        }
        other => panic!("expected missing logs, got {other:?}"),
    }
    // Restoring the log from "backup" and registering it makes recovery work.
    let restored = dir.path().join("restored.arc");
    std::fs::write(
        &restored,
        std::fs::read(logs[0].name.as_ref().unwrap()).unwrap(),
    )
    .unwrap();
    assert!(db.register_archived_log(&restored, "RMAN").is_ok());
}

#[test]
fn deleted_input_then_registered_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    let backup = copy_datafiles(&db, &dir.path().join("backup"));
    db.workload(&wl(10.0, 2, 51)).unwrap();
    let expected = copy_datafiles(&db, &dir.path().join("expected"));
    let log = db.archived_logs().unwrap()[0].clone();
    let path = log.name.clone().unwrap();
    let saved = dir.path().join("saved.arc");
    std::fs::copy(&path, &saved).unwrap();
    std::fs::remove_file(&path).unwrap();
    db.mark_archived_log_deleted(log.recid).unwrap();
    let row = db.archived_log(log.recid).unwrap();
    assert_eq!(
        (row.name, row.status.as_str(), row.deleted),
        (None, "D", true)
    );
    restore(&backup);
    assert!(matches!(
        db.recover(&RecoverOptions::default()),
        Err(DbError::MissingLogs(_))
    ));
    let reg = db.register_archived_log(&saved, "RMAN").unwrap();
    assert_eq!(
        (reg.thread, reg.sequence, reg.creator.as_str()),
        (1, log.sequence, "RMAN")
    );
    db.recover(&RecoverOptions::default()).unwrap();
    assert_same(&expected);
}

#[test]
fn too_new_backup_for_target() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    let early = Scn(db.current_scn().unwrap().0 - 5);
    db.workload(&wl(5.0, 1, 61)).unwrap();
    let err = db
        .recover(&RecoverOptions {
            until: Some(RecoverUntil::Scn(early)),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().starts_with("ORA-01152"), "{err}");
}

#[test]
fn rac_two_threads_recover_and_instance_down() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 2);
    let backup = copy_datafiles(&db, &dir.path().join("backup"));
    db.workload(&wl(20.0, 2, 71)).unwrap();
    let logs = db.archived_logs().unwrap();
    assert!(logs.iter().any(|l| l.thread == 1));
    assert!(logs.iter().any(|l| l.thread == 2));
    db.set_instance_state(2, false).unwrap();
    let up: Vec<_> = db
        .instances()
        .unwrap()
        .into_iter()
        .filter(|i| i.is_up())
        .collect();
    assert_eq!(up.len(), 1);
    let n: i64 = db
        .connection()
        .query_row("select count(*) from gv$instance", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    db.workload(&wl(10.0, 1, 72)).unwrap();
    let expected = copy_datafiles(&db, &dir.path().join("expected"));
    restore(&backup);
    db.recover(&RecoverOptions::default()).unwrap();
    assert_same(&expected);
    db.set_instance_state(2, true).unwrap();
    assert!(db.instances().unwrap().iter().all(|i| i.is_up()));
    db.workload(&wl(5.0, 1, 73)).unwrap();
    check_archived_logs(&db);
}

#[test]
fn block_change_tracking_lists_changed_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 1);
    assert_eq!(db.changed_blocks_since(4, Scn(0)).unwrap(), None);
    db.enable_block_change_tracking(None).unwrap();
    let st = db.block_change_tracking().unwrap();
    assert!(st.is_enabled() && st.bytes.unwrap() > 0);
    let since = db.datafile(4).unwrap().checkpoint_scn;
    db.workload(&wl(10.0, 1, 81)).unwrap();
    let listed = db.changed_blocks_since(4, since).unwrap().unwrap();
    let d = db.datafile(4).unwrap();
    let io = db.open_datafile(4, false).unwrap();
    let mut buf = vec![0u8; d.block_size];
    let mut actual = Vec::new();
    for b in 1..=d.blocks {
        io.read_block(b, &mut buf).unwrap();
        let scn = if b == 1 {
            io.header().unwrap().checkpoint.scn
        } else {
            BlockHeader::parse(&buf).unwrap().scn
        };
        if scn > since {
            actual.push(b);
        }
    }
    assert_eq!(listed, actual);
    assert!(listed.len() > 5);
    // Before tracking started: unknown.
    assert_eq!(
        db.changed_blocks_since(4, Scn(since.0 - 100)).unwrap(),
        None
    );
    db.disable_block_change_tracking().unwrap();
    assert!(!db.block_change_tracking().unwrap().is_enabled());
}
