//! Files: a directory copied whole, the files under a directory, one flipped byte (the
//! negative control of every integrity check).

use std::path::{Path, PathBuf};

/// Copies `from` into `to` (made if missing), recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target)
                .unwrap_or_else(|err| panic!("copy {}: {err}", e.path().display()));
        }
    }
}

/// Every file under `dir`, at any depth, sorted; none when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.append(&mut files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The files directly in `dir` (not in its subdirectories), sorted.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// XORs `mask` into the byte a third of the way into `path`; the offset changed.
pub fn flip_byte(path: &Path, mask: u8) -> usize {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let at = bytes.len() / 3;
    bytes[at] ^= mask;
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    at
}

/// XORs `mask` into the byte at `offset` of `path`; XORing it again undoes it.
pub fn flip_at(path: &Path, offset: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset)
        .unwrap_or_else(|e| panic!("read {} at {offset}: {e}", path.display()));
    f.write_all_at(&[b[0] ^ mask], offset)
        .unwrap_or_else(|e| panic!("write {} at {offset}: {e}", path.display()));
}

/// The directories `v<N>` in `dir` (fixture sets, one a format version), by N; none when
/// `dir` does not exist.
pub fn version_dirs(dir: &Path) -> Vec<(u32, PathBuf)> {
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
