//! Test helpers: build the C test SBT library and read its call trace.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `sbt_testlib.c` into `<dir>/libsbt_testlib.so` with the system `cc`.
pub fn build(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sbt_testlib/sbt_testlib.c");
    let out = dir.join("libsbt_testlib.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed to build the test SBT library");
    out
}

/// One traced call: process id, entry point, the rest of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub pid: u32,
    pub name: String,
    pub args: String,
}

/// Reads the trace file written by the library (missing file = no calls).
pub fn read_trace(path: &Path) -> Vec<Call> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            let pid = it.next()?.parse().ok()?;
            let name = it.next()?.to_string();
            let args = it.next().unwrap_or("").to_string();
            Some(Call { pid, name, args })
        })
        .collect()
}

/// Collapses runs of the same call into `name xN` so sequences are easy to compare.
pub fn collapse(calls: &[Call]) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for c in calls {
        match out.last_mut() {
            Some((n, k)) if *n == c.name => *k += 1,
            _ => out.push((c.name.clone(), 1)),
        }
    }
    out.into_iter()
        .map(|(n, k)| if k == 1 { n } else { format!("{n} x{k}") })
        .collect()
}
