//! Opening files under a mount without following links. A mount's data directory is written
//! over NFS by the database host, which may swap a file, or a directory on its path, for a
//! symbolic link between the walk that listed it and the read: every component is opened
//! relative to the directory before it with `O_NOFOLLOW`, and the file must be a regular one.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{CWD, FileType, Mode, OFlags, fcntl_getfl, fcntl_setfl, fstat, openat};

/// The regular file `rel` under the directory `dir`, opened for reading without following a
/// symbolic link anywhere in `rel` (`dir` itself is the store's own). Refused: a link, a
/// device, a FIFO (opened without blocking, then refused), `..` or an absolute path.
pub fn open_under(dir: &Path, rel: &Path) -> io::Result<File> {
    let refuse = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} under {}: {why}; the store reads nothing outside its mounts",
                rel.display(),
                dir.display()
            ),
        )
    };
    let parts: Vec<_> = rel.components().collect();
    if parts.is_empty() || !parts.iter().all(|c| matches!(c, Component::Normal(_))) {
        return Err(refuse("not a plain relative path"));
    }
    let mut at: OwnedFd = openat(
        CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let kind = if last {
            OFlags::NONBLOCK | OFlags::NOCTTY
        } else {
            OFlags::DIRECTORY
        };
        at = openat(
            &at,
            part.as_os_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | kind,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => refuse("a symbolic link is on its path"),
            rustix::io::Errno::NOTDIR if !last => {
                refuse("a component of its path is not a directory")
            }
            e => io::Error::from(e),
        })?;
    }
    if FileType::from_raw_mode(fstat(&at)?.st_mode) != FileType::RegularFile {
        return Err(refuse("not a regular file"));
    }
    fcntl_setfl(&at, fcntl_getfl(&at)? - OFlags::NONBLOCK)?;
    Ok(File::from(at))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn files_open_and_links_anywhere_on_the_path_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let (mount, outside) = (d.path().join("mount"), d.path().join("outside"));
        std::fs::create_dir_all(mount.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(mount.join("sub/f.dbf"), b"datafile").unwrap();
        std::fs::write(outside.join("secret"), b"store host secret").unwrap();
        let mut got = String::new();
        open_under(&mount, Path::new("sub/f.dbf"))
            .unwrap()
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "datafile");

        symlink(outside.join("secret"), mount.join("sub/link.dbf")).unwrap();
        symlink(&outside, mount.join("dirlink")).unwrap();
        rustix::fs::mknodat(
            CWD,
            mount.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        for bad in [
            "sub/link.dbf",
            "dirlink/secret",
            "fifo",
            "sub",
            "../outside/secret",
            "/etc/passwd",
            "",
        ] {
            let e = open_under(&mount, Path::new(bad)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
            assert!(e.to_string().contains("outside its mounts"), "{e}");
        }
        assert_eq!(
            open_under(&mount, Path::new("sub/none"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }
}
