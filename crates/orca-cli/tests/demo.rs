//! `orca demo`, the README's main job, on a small database: it must finish with the restore
//! verified and the repository clean, and report the dedup it claims.

use std::process::Command;

#[test]
fn demo_backs_up_restores_and_verifies_through_sbt() {
    // The demo drives programs built beside `orca`. `cargo test --workspace` builds them;
    // `cargo test -p orca-cli` alone does not, so build them then.
    let dir_of_orca = std::path::Path::new(env!("CARGO_BIN_EXE_orca"))
        .parent()
        .unwrap();
    if !dir_of_orca.join("oraclesim").exists() || !dir_of_orca.join("liborca_sbt.so").exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "orca-sbt", "-p", "orca-oracle-sim"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(["demo", "--size-mb", "32", "--json", "--dir"])
        .arg(&work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["restore_verified"], true);
    assert_eq!(r["repository_verified"], true);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    let db = r["database_bytes"].as_u64().unwrap();
    // Unchanged: almost nothing stored; 1% changed: at most 5% of the database.
    assert!(
        steps[1]["new_bytes_stored"].as_u64().unwrap() * 200 <= db,
        "{r}"
    );
    assert!(
        steps[2]["new_bytes_stored"].as_u64().unwrap() * 20 <= db,
        "{r}"
    );
    assert!(steps[1]["cache_hits"].as_u64().unwrap() > 0);
}
