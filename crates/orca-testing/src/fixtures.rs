//! Committed fixture sets of the compatibility tests: `fixtures/v1`, `fixtures/v2`, ... each
//! written by the build that introduced a format version and read back by every later build.

use std::path::{Path, PathBuf};

/// The fixture sets under `dir` (subdirectories named `v<N>`), oldest first; other entries
/// are ignored and a missing `dir` gives none.
pub fn sets(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_prefix('v')?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    out.sort();
    out
}
