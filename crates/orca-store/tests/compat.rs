//! Backward compatibility of the store's catalog (`<root>/.orca-store/state.json`;
//! docs/design.md, "Versions and compatibility").
//!
//! `tests/fixtures/v<N>/state.json` is a catalog as one build wrote it, holding every kind of
//! mount, recovery point, file entry, RMAN log and restore. Sets are never edited or removed:
//! every one is read back by today's code ([`every_fixture_set_reads_back`]), and the newest
//! one must be what today's code writes for the same content while `STATE_VERSION` is the
//! set's ([`format_changes_need_a_version_bump`]); [`a_changed_format_is_caught`] is the
//! negative control. A new set, after a bump of `STATE_VERSION`:
//! `cargo test -p orca-store --test compat -- --ignored write_fixtures`.

use std::path::{Path, PathBuf};

use orca_store::StoreError;
use orca_store::{STATE_VERSION, State};
use orca_testing::fs::version_dirs;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The content of every fixture set. Never change it: old sets must keep reading back to it.
fn content() -> State {
    let log = |snap: &str, errors: Value| {
        json!({
            "file_name": format!("rman_{snap}.log"),
            "mountpoint": "/mnt/prod",
            "platform": "Linux x86 64-bit",
            "stored": format!("/srv/orca-store/.orca-store/logs/prod-{snap}.log"),
            "vault": format!("store-a1b2c3/prod/{snap}/rman.log"),
            "summary": {
                "database": "PROD",
                "dbid": 1234,
                "datafile_copies": ["/mnt/prod/oracle_data/df/system01.dbf"],
                "backup_pieces": ["/mnt/prod/oracle_data/bs/0a_1_1"],
                "archived_logs": ["1_10", "1_11"],
                "datafiles": ["1=/u01/oradata/PROD/system01.dbf"],
                "succeeded": errors.as_array().is_none_or(|e| e.is_empty()),
                "errors": errors,
            }
        })
    };
    let stamp = |size: u64, t: i64| json!({"size": size, "mtime_ns": t * 1_000_000_000, "ctime_ns": t * 1_000_000_000 + 7, "inode": 4242 + size});
    let point = |snap: &str,
                 created: i64,
                 status: &str,
                 files: Value,
                 uploaded: Value,
                 error: Value| {
        json!({
            "snap_name": snap,
            "mount": "prod",
            "created": created,
            "status": status,
            "files": files,
            "log": log(snap, json!([])),
            "vault_id": if uploaded.is_null() { Value::Null } else { json!(format!("rp-{snap}")) },
            "uploaded": uploaded,
            "last_error": error,
        })
    };
    let doc = json!({
        "store_id": "a1b2c3d4e5f6",
        "status": "active",
        "next_snap": 4,
        "next_job": 4,
        "mounts": {
            "prod": {
                "name": "prod",
                "created": 1_800_000_000,
                "status": "ready",
                "backup_started": null,
                "pending_log": null,
                "retention": {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 1},
                "points": [
                    point("UID_1", 1_800_000_100, "expired", json!([
                        {"path": "df/system01.dbf", "stamp": stamp(8192 * 100, 1_800_000_050),
                         "local": null, "vault": "store-a1b2c3/prod/UID_1/df/system01.dbf"}
                    ]), json!(1_800_000_200), Value::Null),
                    point("UID_2", 1_800_086_500, "uploaded", json!([
                        {"path": "df/system01.dbf", "stamp": stamp(8192 * 100, 1_800_086_400),
                         "local": null, "vault": "store-a1b2c3/prod/UID_2/df/system01.dbf"},
                        {"path": "bs/0a_1_1", "stamp": stamp(65536, 1_800_086_450),
                         "local": null, "vault": "store-a1b2c3/prod/UID_2/bs/0a_1_1"}
                    ]), json!(1_800_086_600), Value::Null),
                    point("UID_3", 1_800_172_900, "pending", json!([
                        {"path": "df/system01.dbf", "stamp": stamp(8192 * 100, 1_800_172_800),
                         "local": "prod/UID_3/df/system01.dbf", "vault": null},
                        {"path": "bs/0a_1_1", "stamp": stamp(65536, 1_800_086_450),
                         "local": null, "vault": "store-a1b2c3/prod/UID_2/bs/0a_1_1"},
                        {"path": "df/users01.dbf", "stamp": stamp(8192 * 10, 1_800_172_850),
                         "local": null, "vault": null, "snapshot": "prod/snapshots/UID_3/df/users01.dbf"}
                    ]), Value::Null, json!("vault: connection refused (is the vault at https://vault:7400 up?)")),
                ]
            },
            "test": {
                "name": "test",
                "created": 1_800_000_010,
                "status": "marked_for_delete",
                "backup_started": 1_800_172_000,
                "pending_log": log("UID_4", json!(["RMAN-03009: failure of backup command on ORA_DISK_1 channel"])),
                "retention": null,
                "points": []
            }
        },
        "restores": {
            "1": {"jobid": 1, "mount": "prod", "snap_name": "UID_1", "status": "succeeded",
                  "path": "/srv/orca-store/prod/restores/1", "started": 1_800_000_300,
                  "finished": 1_800_000_400, "bytes": 819_200, "message": ""},
            "2": {"jobid": 2, "mount": "prod", "snap_name": "UID_2", "status": "failed",
                  "path": "/srv/orca-store/prod/restores/2", "started": 1_800_086_700,
                  "finished": 1_800_086_710, "bytes": 0, "message": "vault: piece not found"},
            "3": {"jobid": 3, "mount": "prod", "snap_name": "UID_3", "status": "running",
                  "path": "/srv/orca-store/prod/restores/3", "started": 1_800_173_000,
                  "finished": null, "bytes": 65_536, "message": ""}
        }
    });
    let mut state: State = serde_json::from_value(doc).expect("the content fits today's catalog");
    state.version = STATE_VERSION;
    state
}

/// `state.json` as today's code writes `state`.
fn written(state: &State) -> Vec<u8> {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join(orca_store::META_DIR)).unwrap();
    state.save(root.path()).unwrap();
    std::fs::read(State::path(root.path())).unwrap()
}

/// The catalog `bytes` as today's code loads it.
fn load(bytes: &[u8]) -> Result<Option<State>, StoreError> {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join(orca_store::META_DIR)).unwrap();
    std::fs::write(State::path(root.path()), bytes).unwrap();
    State::load(root.path())
}

/// The fixture sets, oldest first.
fn sets() -> Vec<(u32, PathBuf)> {
    version_dirs(Path::new(FIXTURES))
}

fn version_of(bytes: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    v["version"].as_u64().unwrap_or(1)
}

/// Adds `fixtures/v<newest + 1>` once `STATE_VERSION` moved past the newest set's.
#[test]
#[ignore = "writes a new fixture set into the source tree; run after a bump of STATE_VERSION"]
fn write_fixtures() {
    let next = match sets().pop() {
        Some((n, dir)) => {
            let old = version_of(&std::fs::read(dir.join("state.json")).unwrap());
            assert!(
                u64::from(STATE_VERSION) > old,
                "STATE_VERSION is still {old}, the version of fixtures/v{n}: a new set needs a bump"
            );
            n + 1
        }
        None => 1,
    };
    let dest = Path::new(FIXTURES).join(format!("v{next}"));
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("state.json"), written(&content())).unwrap();
    println!("wrote {}", dest.display());
}

fn assert_same(n: u32, got: &State, want: &State) {
    assert_eq!(
        (&got.store_id, got.status, got.next_snap, got.next_job),
        (&want.store_id, want.status, want.next_snap, want.next_job),
        "fixtures/v{n}"
    );
    assert_eq!(got.mounts, want.mounts, "fixtures/v{n}");
    assert_eq!(got.restores, want.restores, "fixtures/v{n}");
}

#[test]
fn every_fixture_set_reads_back() {
    let sets = sets();
    assert!(!sets.is_empty(), "no fixture set under {FIXTURES}");
    let want = content();
    for (n, dir) in sets {
        let bytes = std::fs::read(dir.join("state.json")).unwrap();
        let got = load(&bytes)
            .unwrap_or_else(|e| panic!("fixtures/v{n}: {e}"))
            .expect("a catalog");
        assert_same(n, &got, &want);
        assert_eq!(u64::from(got.version), version_of(&bytes));
    }
}

/// Catalogs written before the version was recorded are version 1.
#[test]
fn a_catalog_without_a_version_is_the_first() {
    let (_, dir) = sets().remove(0);
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    doc.as_object_mut().unwrap().remove("version");
    let got = load(&serde_json::to_vec(&doc).unwrap()).unwrap().unwrap();
    assert_eq!(got.version, 1);
    assert_same(1, &got, &content());
}

#[test]
fn a_newer_catalog_is_refused() {
    let (_, dir) = sets().pop().unwrap();
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    doc["version"] = (STATE_VERSION + 1).into();
    match load(&serde_json::to_vec(&doc).unwrap()) {
        Err(e @ StoreError::UnsupportedVersion { found, .. }) if found == STATE_VERSION + 1 => {
            assert!(e.to_string().contains("upgrade orca"), "{e}");
        }
        other => panic!(
            "a catalog of version {} was not refused: {other:?}",
            STATE_VERSION + 1
        ),
    }
}

/// How today's code differs from fixture set `n` (its `state.json` is `bytes`).
fn differences(n: u32, bytes: &[u8]) -> Vec<String> {
    let was = version_of(bytes);
    if u64::from(STATE_VERSION) != was {
        return vec![format!(
            "the store catalog is version {STATE_VERSION} now and {was} in fixtures/v{n}: add \
             fixtures/v{} with `cargo test -p orca-store --test compat -- --ignored write_fixtures` (keep v{n})",
            n + 1
        )];
    }
    let changed = |how: String| {
        format!(
            "format store catalog changed without a version bump: bump STATE_VERSION (orca-store \
             src/state.rs) and add fixtures/v{} ({how})",
            n + 1
        )
    };
    let mut found = Vec::new();
    match load(bytes) {
        Ok(Some(state)) if written(&state) != bytes => found.push(changed(format!(
            "a catalog read and saved again is\n{}",
            String::from_utf8_lossy(&written(&state))
        ))),
        Ok(Some(_)) => {}
        other => found.push(changed(format!("today's code cannot read it: {other:?}"))),
    }
    if written(&content()) != bytes {
        found.push(changed(format!(
            "the same content is written as\n{}",
            String::from_utf8_lossy(&written(&content()))
        )));
    }
    found
}

#[test]
fn format_changes_need_a_version_bump() {
    let (n, dir) = sets().pop().unwrap();
    let found = differences(n, &std::fs::read(dir.join("state.json")).unwrap());
    assert!(found.is_empty(), "\n{}\n", found.join("\n"));
}

/// A field the fixture has and today's code does not know (as if written by a build that
/// added it without a bump) fails the comparison with the bump message.
#[test]
fn a_changed_format_is_caught() {
    let (n, dir) = sets().pop().unwrap();
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    doc["mounts"]["prod"]["points"][0]["immutable_until"] = 1_800_600_000.into();
    let found = differences(n, &serde_json::to_vec_pretty(&doc).unwrap());
    assert!(
        found.iter().any(|f| f.contains(&format!(
            "format store catalog changed without a version bump: bump STATE_VERSION (orca-store src/state.rs) and add fixtures/v{}",
            n + 1
        ))),
        "{found:#?}"
    );
}
