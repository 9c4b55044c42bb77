//! `orca demo`, the README's main job, on a small database: it must finish with the restore
//! verified and the repository clean, and report the dedup it claims.

use std::process::Command;

use orca_testing::tools::{Tool, ensure};

#[test]
fn demo_backs_up_restores_and_verifies_through_sbt() {
    // The demo drives the programs built beside `orca`.
    ensure(&[Tool::Oraclesim, Tool::SbtLibrary]);
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
    // Beside FILESPERSET 1: the repeat full of a DBA who compresses and of one who
    // multiplexes, each with its line as printed.
    let repeats = r["repeat_fulls"].as_array().unwrap();
    assert_eq!(repeats.len(), 2, "{r}");
    for (v, variant) in repeats
        .iter()
        .zip(["AS COMPRESSED BACKUPSET", "FILESPERSET 4 (multiplexed)"])
    {
        assert_eq!(v["variant"], variant, "{v}");
        assert!(v["full_stored"].as_u64().unwrap() > 0, "{v}");
        assert!(v["repeat_stored"].as_u64().is_some(), "{v}");
        let line = v["line"].as_str().unwrap();
        assert!(line.starts_with(&format!("{variant}: full ")), "{line}");
        assert!(line.contains("unchanged repeat"), "{line}");
    }
    // Stored demultiplexed, the multiplexed repeat finds the full's chunks.
    let mux = &repeats[1];
    assert!(
        mux["repeat_stored"].as_u64().unwrap() * 20 <= mux["full_stored"].as_u64().unwrap(),
        "{mux}"
    );
    // The agent's part: the full killed halfway is resumed into one recovery point that
    // restores, and the resume re-sent at most a chunk per channel plus cleaned-up sections.
    let resume = &r["resume"];
    assert_eq!(resume["recovery_points"], 1, "{resume:#}");
    // Two RMAN runs, or three when the resume had to back up again a file an earlier
    // demo step's backup (another repository) made NOT BACKED UP SINCE skip.
    let attempts = resume["attempts"].as_u64().unwrap();
    assert!((2..=3).contains(&attempts), "{resume:#}");
    assert_eq!(resume["restore_verified"], true, "{resume:#}");
    assert_eq!(resume["drill_passed"], true, "{resume:#}");
    let section = (db / 16).max(1 << 20);
    let allowed = 2 * (1 << 20) + resume["cleaned_up_sections"].as_u64().unwrap() * section;
    assert!(
        resume["bytes_resent"].as_u64().unwrap() <= allowed,
        "{resume:#}"
    );
    assert!(resume["bytes_read"].as_u64().unwrap() > 0, "{resume:#}");
    assert!(resume["bytes_sent"].as_u64().unwrap() > 0, "{resume:#}");
}
