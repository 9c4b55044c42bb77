//! The programs the end-to-end tests drive, found in the build's own target directory and
//! built there when missing or older than their sources.
//!
//! `cargo test --workspace` builds every tool itself. A narrower run (`cargo test -p
//! orca-sbt`) does not build the simulator or the `orca` binary, and a tool left from an
//! earlier build may be stale: a test of today's SBT library against yesterday's
//! `oraclesim` proves nothing. So before a tool is used, it is compared with the newest
//! source it is built from (the `src/` and `Cargo.toml` of its package and of every
//! workspace crate that package depends on, the workspace's `Cargo.toml` and `Cargo.lock`)
//! and rebuilt with `cargo build -p <package>` when older.
//!
//! Building only then matters: that build resolves features for the tools' packages alone,
//! differently from the test build's resolution for the whole set it was asked for, so the
//! two would keep rebuilding each other's artifacts. It always names all three packages,
//! whichever tool was stale: a build of one package resolves features again differently
//! from a build of two, and each new resolution compiles the dependencies anew (minutes on
//! a small machine), where one fixed set compiles once. Cargo leaves an artifact that was
//! already up to date untouched, so a tool found fresh by cargo is stamped with the time of
//! the check: the next test binary sees it newer than its sources and does not call cargo.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

/// A program the tests drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// The `orca` command (package orca-cli).
    Orca,
    /// The simulator `oraclesim`; `oraclesim install-shims` makes `rman` and `sqlplus`.
    Oraclesim,
    /// The SBT library `liborca_sbt.so` (package orca-sbt).
    SbtLibrary,
}

impl Tool {
    /// Every tool, in the order their packages go to cargo.
    pub const ALL: [Tool; 3] = [Tool::Orca, Tool::Oraclesim, Tool::SbtLibrary];

    /// Its file name in the target directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Tool::Orca => "orca",
            Tool::Oraclesim => "oraclesim",
            Tool::SbtLibrary => "liborca_sbt.so",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Tool::Orca => "orca-cli",
            Tool::Oraclesim => "orca-oracle-sim",
            Tool::SbtLibrary => "orca-sbt",
        }
    }
}

/// The tools checked by this process already.
static CHECKED: Mutex<Vec<Tool>> = Mutex::new(Vec::new());

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/orca-testing is two levels below the workspace")
        .to_path_buf()
}

/// The directory cargo puts this build's binaries in (`<target>/debug`): the parent of the
/// `deps/` directory that holds the running test.
pub fn dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test's path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in <target>/<profile>/deps", exe.display()))
        .to_path_buf()
}

/// `tool`, built if it is missing or stale.
pub fn path(tool: Tool) -> PathBuf {
    ensure(&[tool]);
    dir().join(tool.file_name())
}

/// The `orca` command, fresh. Tests in orca-cli use `env!("CARGO_BIN_EXE_orca")` instead.
pub fn orca() -> PathBuf {
    path(Tool::Orca)
}

/// The simulator, fresh.
pub fn oraclesim() -> PathBuf {
    path(Tool::Oraclesim)
}

/// The SBT library, fresh.
pub fn sbt_library() -> PathBuf {
    path(Tool::SbtLibrary)
}

/// Builds, in one cargo run of every tool's package, when any of `tools` is missing or
/// older than its sources (once per test process; concurrent tests wait for it).
pub fn ensure(tools: &[Tool]) {
    let mut checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    let dir = dir();
    let stale = tools
        .iter()
        .any(|t| !checked.contains(t) && !fresh(&dir, *t));
    if stale {
        build(&dir, &Tool::ALL);
        checked.clear();
        checked.extend(Tool::ALL);
    }
    for t in tools {
        if !checked.contains(t) {
            checked.push(*t);
        }
    }
}

fn build(dir: &Path, tools: &[Tool]) {
    let root = workspace();
    let target = dir.parent().expect("a profile directory has a parent");
    let mut c = Command::new(env!("CARGO"));
    c.arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(set_for_the_test) {
            c.env_remove(&key);
        }
    }
    match dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            c.args(["--profile", profile]);
        }
    }
    for t in tools {
        c.args(["-p", t.package()]);
    }
    let status = c
        .status()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    assert!(
        status.success(),
        "{c:?} failed: the tools could not be built"
    );
    for t in tools {
        let path = dir.join(t.file_name());
        let stamped = std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        if let Err(e) = stamped {
            panic!("{} after the build: {e}", path.display());
        }
    }
}

/// Whether cargo set `key` for the running test (its package's name, version, manifest,
/// binaries). Left in the build's environment, these differ from what a build run from a
/// shell sees, and build scripts that watch them (ring's) run again, then every crate
/// above them compiles again: minutes, at each switch between the two.
fn set_for_the_test(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_BIN_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// Whether `tool` exists in `dir` and is newer than every source it is built from.
fn fresh(dir: &Path, tool: Tool) -> bool {
    let Ok(built) = std::fs::metadata(dir.join(tool.file_name())).and_then(|m| m.modified()) else {
        return false;
    };
    let root = workspace();
    let crates = root.join("crates");
    let mut sources = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    for c in package_closure(&crates, tool.package()) {
        sources.push(crates.join(&c).join("src"));
        sources.push(crates.join(&c).join("Cargo.toml"));
    }
    sources.iter().all(|s| newest_mtime(s) <= built)
}

/// `package` and every workspace crate it depends on (not its dev-dependencies), read from
/// the `[dependencies]` tables of their `Cargo.toml`.
fn package_closure(crates: &Path, package: &str) -> Vec<String> {
    let mut out = vec![package.to_string()];
    let mut i = 0;
    while i < out.len() {
        let manifest = crates.join(&out[i]).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("read {}: {e}", manifest.display()));
        for dep in workspace_dependencies(&text) {
            if !out.contains(&dep) {
                out.push(dep);
            }
        }
        i += 1;
    }
    out
}

/// The `orca-*` keys of a manifest's `[dependencies]` table.
fn workspace_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && line.starts_with("orca-") {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

/// The newest modification time of `path` and of everything below it.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_are_built_from_their_package_and_its_workspace_dependencies() {
        let crates = workspace().join("crates");
        let mut sbt = package_closure(&crates, "orca-sbt");
        sbt.sort();
        assert_eq!(sbt, ["orca-oracle", "orca-repo", "orca-sbt", "orca-vault"]);
        let mut sim = package_closure(&crates, "orca-oracle-sim");
        sim.sort();
        assert_eq!(sim, ["orca-oracle", "orca-oracle-sim"]);
        let orca = package_closure(&crates, "orca-cli");
        for c in [
            "orca-agent",
            "orca-store",
            "orca-vault",
            "orca-repo",
            "orca-oracle",
        ] {
            assert!(orca.iter().any(|o| o == c), "{c} not in {orca:?}");
        }
        // Dev-dependencies are not what a tool is built from.
        assert!(!orca.iter().any(|o| o == "orca-testing"), "{orca:?}");
    }

    #[test]
    fn a_tool_older_than_a_source_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            !fresh(dir.path(), Tool::Oraclesim),
            "a missing tool is stale"
        );
        let tool = dir.path().join("oraclesim");
        std::fs::write(&tool, b"").unwrap();
        let f = std::fs::File::options().append(true).open(&tool).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH).unwrap();
        assert!(!fresh(dir.path(), Tool::Oraclesim));
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(3600))
            .unwrap();
        assert!(fresh(dir.path(), Tool::Oraclesim));
    }
}
