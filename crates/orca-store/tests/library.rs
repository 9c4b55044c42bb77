//! The appliance's library below `orca store serve`: mount names, the contract's
//! GET/POST/uploadlog/PUT workflow and restores against a temporary root (no vault: points
//! stay pending), the catalog file, RMAN logs, retention.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orca_store::Appliance;
use orca_store::Code;
use orca_store::LogSummary;
use orca_store::validate_mount;
use orca_store::{DATA_DIR, META_DIR, StoreError};
use orca_store::{PointStatus, RecoveryPoint, Restore, RestoreStatus, State};
use orca_store::{Retention, keep};
use orca_store::{SnapshotMode, StoreConfig};
use orca_testing::data::{noise, oracle_blocks};
use orca_testing::fs::{files_under, flip_byte};

/// What the DBAs' template script uploads: RMAN's log of the run.
const LOG: &str = "connected to target database: ORCL (DBID=42)\nRecovery Manager complete.\n";

/// A store under `root` that reads each changed file at PUT (any filesystem) and holds at
/// most `max_pending` points per mount.
async fn open(root: &Path, max_pending: usize) -> Arc<Appliance> {
    let mut c = StoreConfig::with_root(root.to_path_buf());
    c.snapshot = SnapshotMode::Ingest;
    c.max_pending = max_pending;
    Appliance::open(c, None).await.unwrap()
}

/// One run of the template script: POST, RMAN writes `files` into the mount, uploadlog, PUT.
async fn backup(app: &Appliance, mount: &str, files: &[(&str, Vec<u8>)]) -> String {
    assert!(!app.status(mount).unwrap(), "the mount takes a backup");
    let data = app.start_backup(mount).unwrap();
    assert_eq!(data, app.data_dir(mount));
    for (rel, bytes) in files {
        let path = data.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    app.upload_log(
        mount,
        "rman_full_backup_1.log",
        LOG.as_bytes(),
        "/local/m",
        "linux",
    )
    .unwrap();
    app.end_backup(mount).await.unwrap()
}

/// Starts a restore of `snap` and waits for its end.
async fn restore(app: &Arc<Appliance>, mount: &str, snap: &str) -> Restore {
    let started = app.start_restore(mount, snap).unwrap();
    for _ in 0..600 {
        let r = app.restore(started.jobid).unwrap();
        if r.status != RestoreStatus::Running {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("restore {} did not end", started.jobid);
}

fn point(app: &Appliance, mount: &str, snap: &str) -> RecoveryPoint {
    app.points(Some(mount), None)
        .into_iter()
        .find(|p| p.snap_name == snap)
        .unwrap_or_else(|| panic!("no point {snap}"))
}

/// What is directly under the store's root.
fn entries(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn mount_names_are_plain_identifiers() {
    for ok in ["testmount", "ORCL_prod-1", "a.b"] {
        validate_mount(ok).unwrap();
    }
    for bad in ["", "a/b", "..", ".orca-store", "a\0b", &"x".repeat(256)] {
        let e = validate_mount(bad).unwrap_err();
        assert_eq!(e.code, Code::InvalidMountName, "{bad:?}");
        assert!(e.text().contains("letters, digits"), "{}", e.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_mount_name_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path(), 5).await;
    let before = entries(dir.path());
    for bad in ["../escape", "a/b", ".orca-store"] {
        let e = app.create_mount(bad).unwrap_err();
        assert_eq!(e.code, Code::InvalidMountName, "{bad:?}");
    }
    assert_eq!(entries(dir.path()), before);
    assert!(!dir.path().parent().unwrap().join("escape").exists());
    app.create_mount("m").unwrap();
    let e = app.create_mount("m").unwrap_err();
    assert_eq!(e.code, Code::MountExists);
    assert_eq!(entries(dir.path()), [META_DIR, "m"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_takes_a_point_that_restores_as_it_was_at_the_put() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path(), 5).await;
    app.create_mount("m").unwrap();
    let copy = oracle_blocks(64, 1);
    let arc = oracle_blocks(8, 2);
    let snap = backup(
        &app,
        "m",
        &[
            ("data_D-ORCL_TS-USERS_FNO-4_01", copy.clone()),
            ("archivelogs/ORCL_1_7.arc", arc.clone()),
        ],
    )
    .await;
    assert_eq!(snap, "UID_1");
    let p = point(&app, "m", &snap);
    assert_eq!(p.status, PointStatus::Pending, "no vault: it waits");
    assert_eq!(p.files.len(), 2, "{p:?}");
    assert!(p.files.iter().all(|f| f.local.is_some()), "{p:?}");
    assert_eq!(p.database(), Some("ORCL"));
    assert_eq!(p.bytes(), (copy.len() + arc.len()) as u64);
    assert_eq!(app.points(None, Some("ORCL")).len(), 1);
    assert!(app.points(None, Some("SALES")).is_empty());

    // RMAN rewrites the copy in place after the PUT: the point keeps the PUT's version.
    let data = app.data_dir("m");
    flip_byte(&data.join("data_D-ORCL_TS-USERS_FNO-4_01"), 0x20);
    let r = restore(&app, "m", &snap).await;
    assert_eq!(r.status, RestoreStatus::Succeeded, "{r:?}");
    assert_eq!(r.path, dir.path().join("m/restores/1"));
    let restored = std::fs::read(r.path.join("data_D-ORCL_TS-USERS_FNO-4_01")).unwrap();
    assert!(
        restored == copy,
        "the restore differs from the copy at the PUT"
    );
    let now = std::fs::read(data.join("data_D-ORCL_TS-USERS_FNO-4_01")).unwrap();
    assert!(restored != now, "the restore followed the rewrite");
    assert!(std::fs::read(r.path.join("archivelogs/ORCL_1_7.arc")).unwrap() == arc);
    assert_eq!(files_under(&r.path).len(), 2);

    // Removed as the documentation shows; twice is an error.
    app.delete_restore("m", r.jobid).unwrap();
    assert!(!r.path.exists());
    let e = app.delete_restore("m", r.jobid).unwrap_err();
    assert_eq!(e.code, Code::RestorePathMissing);
    let e = app.start_restore("m", "UID_9").unwrap_err();
    assert_eq!(e.code, Code::RecoveryPointMissing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_file_is_not_read_again_and_a_changed_one_is() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path(), 5).await;
    app.create_mount("m").unwrap();
    let files = [
        ("copy1", oracle_blocks(32, 1)),
        ("copy2", oracle_blocks(32, 2)),
    ];
    let first = backup(&app, "m", &files).await;
    // Day 2: RMAN rewrites copy2 only.
    let day2 = [("copy2", oracle_blocks(32, 3))];
    let second = backup(&app, "m", &day2).await;
    let (p1, p2) = (point(&app, "m", &first), point(&app, "m", &second));
    let piece = |p: &RecoveryPoint, rel: &str| {
        p.files
            .iter()
            .find(|f| f.path == rel)
            .and_then(|f| f.local.clone())
            .unwrap()
    };
    assert_eq!(piece(&p2, "copy1"), piece(&p1, "copy1"), "copy1 read again");
    assert_ne!(piece(&p2, "copy2"), piece(&p1, "copy2"));
    let r = restore(&app, "m", &second).await;
    assert!(std::fs::read(r.path.join("copy1")).unwrap() == files[0].1);
    assert!(std::fs::read(r.path.join("copy2")).unwrap() == day2[0].1);
}

/// An image copy of a datafile of 2 KiB blocks: the next point stores the blocks that
/// changed, not the 8 KiB around each, its changes being found in units of the block size
/// its block 0 names. The negative control, the same file without a datafile's block 0,
/// costs 8 KiB a changed block. Both restore as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_copy_of_small_blocks_stores_its_changed_blocks() {
    let bs = 2048;
    let blocks = 2048u32; // 4 MiB
    let grown = |datafile: bool| async move {
        let dir = tempfile::tempdir().unwrap();
        let app = open(dir.path(), 5).await;
        app.create_mount("m").unwrap();
        let mut file = noise((blocks as usize + 1) * bs, 0x9e37_79b9_7f4a_7c15);
        if datafile {
            orca_oracle::FileHeaderBlock::datafile(bs, blocks)
                .unwrap()
                .build(&mut file[..bs])
                .unwrap();
        }
        let packs = dir.path().join(META_DIR).join("chunks/packs");
        let stored = || -> u64 {
            files_under(&packs)
                .iter()
                .map(|f| std::fs::metadata(f).unwrap().len())
                .sum()
        };
        backup(&app, "m", &[("df_2k.dbf", file.clone())]).await;
        let before = stored();
        // 64 blocks, none within 8 KiB of another.
        for b in 0..64 {
            file[(1 + b * 32) * bs + 100] ^= 0x5a;
        }
        let snap = backup(&app, "m", &[("df_2k.dbf", file.clone())]).await;
        let r = restore(&app, "m", &snap).await;
        assert!(std::fs::read(r.path.join("df_2k.dbf")).unwrap() == file);
        stored() - before
    };
    let (small, control) = (grown(true).await, grown(false).await);
    eprintln!("64 changed 2 KiB blocks: {small} B stored, {control} B without block 0");
    assert!(
        small < 64 * 2048 + (32 << 10) && control >= 64 * 8192,
        "by block {small} B, in 8 KiB units {control} B"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_refusals_and_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path(), 1).await;
    assert_eq!(app.status("nope").unwrap_err().code, Code::MountMissing);
    app.create_mount("m").unwrap();
    let e = app.end_backup("m").await.unwrap_err();
    assert_eq!(e.code, Code::StartBackupMissing, "PUT before POST");
    assert_eq!(e.mount.as_deref(), Some("m"));

    backup(&app, "m", &[("copy", oracle_blocks(4, 1))]).await;
    assert!(app.status("m").unwrap(), "max_pending = 1 is reached");
    let e = app.start_backup("m").unwrap_err();
    assert_eq!(e.code, Code::MaxPendingSnapshots);
    assert!(
        app.snapshot_state().mounts["m"].backup_started.is_none(),
        "a refused POST changes nothing"
    );

    app.create_mount("broken").unwrap();
    std::fs::remove_dir_all(dir.path().join("broken").join(DATA_DIR)).unwrap();
    assert_eq!(
        app.status("broken").unwrap_err().code,
        Code::MountInconsistent
    );

    app.delete_mount("m", false).unwrap();
    assert_eq!(
        app.status("m").unwrap_err().code,
        Code::MountMarkedForDelete
    );
    app.decommission().unwrap();
    assert_eq!(
        app.status("broken").unwrap_err().code,
        Code::DecommissionInProgress
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_store_keeps_its_mounts_points_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path(), 5).await;
    app.create_mount("m").unwrap();
    app.set_retention(
        "m",
        Some(Retention {
            daily: 3,
            ..Retention::default()
        }),
    )
    .unwrap();
    backup(&app, "m", &[("copy", oracle_blocks(4, 1))]).await;
    let store_id = app.snapshot_state().store_id;
    drop(app);

    let app = open(dir.path(), 5).await;
    let state = app.snapshot_state();
    assert_eq!(state.store_id, store_id);
    assert_eq!(state.mounts["m"].retention.unwrap().daily, 3);
    assert_eq!(app.points(Some("m"), None).len(), 1);
    let next = backup(&app, "m", &[("copy", oracle_blocks(4, 2))]).await;
    assert_eq!(next, "UID_2");
    assert_eq!(
        app.set_retention("nope", None).unwrap_err().code,
        Code::MountMissing
    );
}

mod catalog {
    use super::*;

    fn state_file(root: &Path) -> PathBuf {
        State::path(root)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_cut_short_leaves_the_catalog_before_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(State::load(dir.path()).unwrap().is_none(), "no catalog yet");
        let app = open(dir.path(), 5).await;
        app.create_mount("m").unwrap();
        drop(app);
        // A crash during the next save: its temporary file holds half a catalog.
        let whole = std::fs::read(state_file(dir.path())).unwrap();
        let tmp = state_file(dir.path()).with_extension("json.tmp");
        std::fs::write(&tmp, &whole[..whole.len() / 2]).unwrap();
        let state = State::load(dir.path()).unwrap().unwrap();
        assert!(state.mounts.contains_key("m"));
        let app = open(dir.path(), 5).await;
        app.create_mount("n").unwrap();
        assert!(!tmp.exists(), "the next save replaces the leftover");
        assert_eq!(State::load(dir.path()).unwrap().unwrap().mounts.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_catalog_stops_the_store_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), 5).await);
        std::fs::write(state_file(dir.path()), b"{\"store_id\": ").unwrap();
        let mut c = StoreConfig::with_root(dir.path().to_path_buf());
        c.snapshot = SnapshotMode::Ingest;
        let e = Appliance::open(c, None).await.unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("state.json"), "{e}");
    }
}

mod rman_log {
    use super::*;

    #[test]
    fn a_failed_run_names_its_error_and_is_not_a_success() {
        let log = "\
connected to target database: ORCL (DBID=1000593576)
channel c1: starting datafile copy
input datafile file number=00004 name=/u01/oradata/ORCL/users01.dbf
RMAN-00571: ===========================================================
RMAN-00569: =============== ERROR MESSAGE STACK FOLLOWS ===============
RMAN-00571: ===========================================================
RMAN-03009: failure of backup command on c1 channel at 03/04/2026 09:17:14
ORA-19504: failed to create file \"/local/m/x\"
";
        let s = LogSummary::parse(log);
        assert_eq!(s.database.as_deref(), Some("ORCL"));
        assert_eq!(s.datafiles, ["4=/u01/oradata/ORCL/users01.dbf"]);
        assert!(!s.succeeded);
        assert_eq!(s.errors.len(), 1, "{s:?}");
        assert!(
            s.errors[0].starts_with("RMAN-03009: failure of backup command"),
            "{s:?}"
        );
    }

    #[test]
    fn a_complete_run_is_a_success() {
        let s = LogSummary::parse(LOG);
        assert_eq!(s.dbid, Some(42));
        assert!(s.succeeded && s.errors.is_empty(), "{s:?}");
    }
}

mod retention {
    use super::*;

    const DAY: i64 = 86_400;
    // 2026-01-05 was a Monday.
    const MONDAY: i64 = 1_767_571_200;

    #[test]
    fn the_newest_point_of_each_kept_day_stays_whatever_the_order() {
        // Given out of order: day 2 at 09:00, day 1 at 12:00, day 1 at 10:00.
        let created = [
            MONDAY + DAY + 9 * 3600,
            MONDAY + 12 * 3600,
            MONDAY + 10 * 3600,
        ];
        let daily = |n| Retention {
            daily: n,
            ..Retention::default()
        };
        assert_eq!(keep(&created, &daily(1)), [true, false, false]);
        assert_eq!(keep(&created, &daily(2)), [true, true, false]);
        assert_eq!(keep(&created, &daily(5)), [true, true, false]);
    }

    #[test]
    fn no_rule_keeps_the_newest_only() {
        let created = [MONDAY, MONDAY + 7 * DAY, MONDAY + 3 * DAY];
        assert_eq!(keep(&created, &Retention::default()), [false, true, false]);
    }
}
