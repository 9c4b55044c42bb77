//! What the end-to-end tests share.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The tools and the crates whose sources they are built from.
const TOOLS: [(&str, &[&str]); 2] = [
    ("oraclesim", &["orca-oracle-sim", "orca-oracle"]),
    (
        "liborca_sbt.so",
        &["orca-sbt", "orca-repo", "orca-oracle", "orca-vault"],
    ),
];

fn newest_mtime(path: &Path) -> SystemTime {
    let mut newest = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let Ok(entries) = std::fs::read_dir(path) else {
        return newest;
    };
    for e in entries.flatten() {
        let t = match e.file_type() {
            Ok(ft) if ft.is_dir() => newest_mtime(&e.path()),
            _ => e.metadata().and_then(|m| m.modified()).unwrap_or(newest),
        };
        newest = newest.max(t);
    }
    newest
}

/// Where `orca` is built, with the simulator (`oraclesim`) and the SBT library
/// (`liborca_sbt.so`) beside it. `cargo test --workspace` builds them; they are built here
/// when missing or older than their sources (`cargo test -p orca-cli` alone). Building
/// only then matters: that build resolves features differently from the test build's, and
/// each would rebuild the other's dependencies.
pub fn tool_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_orca")).parent().unwrap();
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let lock = crates.parent().unwrap().join("Cargo.lock");
    let fresh = TOOLS.iter().all(|(tool, from)| {
        let sources = from
            .iter()
            .flat_map(|c| {
                [
                    crates.join(c).join("src"),
                    crates.join(c).join("Cargo.toml"),
                ]
            })
            .chain([lock.clone()])
            .map(|p| newest_mtime(&p))
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        std::fs::metadata(dir.join(tool))
            .and_then(|m| m.modified())
            .is_ok_and(|built| built >= sources)
    });
    if !fresh {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "orca-sbt", "-p", "orca-oracle-sim"])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "building the simulator and the SBT library failed"
        );
        // Cargo leaves an up-to-date artifact's time alone: mark the tools as checked now,
        // or every test binary would run this build again (and, with the build's own
        // feature set, invalidate the workspace's artifacts each time).
        for (tool, _) in TOOLS {
            if let Ok(f) = std::fs::File::options().append(true).open(dir.join(tool)) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
    }
    dir.to_path_buf()
}
