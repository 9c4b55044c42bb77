//! Copy-on-write clones of a mount's changed files (`snapshot = reflink`): on XFS (reflink=1)
//! and btrfs a clone shares the file's extents, so PUT costs metadata only and the point is
//! immutable at once; RMAN's next in-place rewrite of a copy allocates new blocks for itself
//! and leaves the clone as it was. Clones live in `<root>/<mount>/snapshots/<snap>/` (beside
//! the exported `oracle_data`, so on its filesystem as long as the mount is one filesystem)
//! until the upload ingests them into the local chunk store.

use std::fs::File;
use std::path::Path;

use crate::StoreError;

/// The clones' directory inside a mount's directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// Clones the open file `src` (named `name` in messages) to the new file `dst`, copy-on-write
/// (`FICLONE`: it fails rather than copy the bytes). The source is a file already opened, so
/// what is cloned is what was checked, whatever its path names by now.
pub fn reflink(src: &File, name: &Path, dst: &Path) -> Result<(), StoreError> {
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    }
    let out = File::create_new(dst).map_err(|e| StoreError::io(dst, e))?;
    if let Err(e) = rustix::fs::ioctl_ficlone(&out, src) {
        drop(out);
        let _ = std::fs::remove_file(dst);
        return Err(StoreError::Corrupt {
            path: name.to_path_buf(),
            message: format!(
                "cannot clone it copy-on-write into {}: {} (set snapshot = \"ingest\" for a \
                 filesystem without reflink)",
                dst.display(),
                std::io::Error::from(e)
            ),
        });
    }
    Ok(())
}

/// Whether files of `data` can be cloned into `clones`: the two are on one filesystem and a
/// probe file clones there.
pub fn supported(data: &Path, clones: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if std::fs::create_dir_all(clones).is_err() {
        return false;
    }
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    if dev(data).is_none() || dev(data) != dev(clones) {
        return false;
    }
    let probe = clones.join(".reflink-probe");
    let clone = clones.join(".reflink-probe.clone");
    let _ = std::fs::remove_file(&clone);
    let ok = std::fs::write(&probe, b"orca reflink probe").is_ok()
        && File::open(&probe).is_ok_and(|f| reflink(&f, &probe, &clone).is_ok());
    let _ = std::fs::remove_file(&probe);
    let _ = std::fs::remove_file(&clone);
    ok
}

/// Files under `dir`, relative to `base`, as `/`-joined strings.
pub fn files_under(base: &Path, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => {
                    if let Some(rel) = p.strip_prefix(base).ok().and_then(|r| r.to_str()) {
                        out.push(rel.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    out
}
