//! Datafile states as Oracle enforces them (offline, needs recovery, in use) and the verify
//! tool that proves restores, with its negative controls.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Env {
    tmp: tempfile::TempDir,
    bin: PathBuf,
    home: PathBuf,
}

impl Env {
    /// A database of four 4 MiB datafiles that has changed a little since its creation.
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let home = tmp.path().join("db");
        let env = Env { tmp, bin, home };
        env.sim(&["install-shims", env.bin.to_str().unwrap()]);
        env.sim(&[
            "create",
            "--home",
            env.home(),
            "--datafiles",
            "4",
            "--size-mb",
            "4",
            "--online-log-mb",
            "2",
        ]);
        env.sim(&[
            "workload",
            "--home",
            env.home(),
            "--change-pct",
            "3",
            "--log-switches",
            "1",
        ]);
        env
    }

    fn home(&self) -> &str {
        self.home.to_str().unwrap()
    }

    fn sim_status(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new(env!("CARGO_BIN_EXE_oraclesim"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    }

    fn sim(&self, args: &[&str]) -> String {
        let (ok, out) = self.sim_status(args);
        assert!(ok, "oraclesim {args:?}: {out}");
        out
    }

    fn verify(&self, against: &Path, extra: &[&str]) -> (bool, String) {
        let mut args = vec!["verify", "--home", self.home(), "--against"];
        args.push(against.to_str().unwrap());
        args.extend(extra);
        self.sim_status(&args)
    }

    /// `sqlplus -S / as sysdba` without headings or feedback.
    fn sqlplus(&self, input: &str) -> String {
        let mut child = Command::new(self.bin.join("sqlplus"))
            .args(["-S", "/", "as", "sysdba"])
            .env("ORACLESIM_HOME", &self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("set heading off pagesize 0\n{input}").as_bytes())
            .unwrap();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    }

    fn rman(&self, script: &str) -> (bool, String) {
        let f = self.tmp.path().join("script.rman");
        std::fs::write(&f, script).unwrap();
        let o = Command::new(self.bin.join("rman"))
            .arg("target")
            .arg("/")
            .arg(format!("cmdfile={}", f.display()))
            .env("ORACLESIM_HOME", &self.home)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    fn rman_ok(&self, script: &str) -> String {
        let (ok, out) = self.rman(script);
        assert!(ok, "rman failed:\n{out}");
        out
    }

    /// A disk channel writing into the test's backup directory.
    fn disk(&self) -> String {
        let dir = self.tmp.path().join("bk");
        std::fs::create_dir_all(&dir).unwrap();
        format!(
            "allocate channel d1 device type disk format '{}/%U';",
            dir.display()
        )
    }

    fn users(&self) -> PathBuf {
        self.home.join("oradata/ORCL/users01.dbf")
    }

    fn status_of(&self, file_no: u32) -> String {
        self.sqlplus(&format!(
            "select status from v$datafile where file# = {file_no};\n"
        ))
        .trim()
        .to_string()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Flips one bit of byte `offset` of block `block` (8 KiB blocks).
fn flip(path: &Path, block: u64, offset: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, block * 8192 + offset).unwrap();
    b[0] ^= 0x01;
    f.write_all_at(&b, block * 8192 + offset).unwrap();
}

#[test]
fn verify_reads_a_copy_from_its_own_directory_and_finds_one_flipped_byte() {
    let env = Env::new();
    let copy = env.tmp.path().join("copy");
    copy_dir(&env.home, &copy);
    let (ok, out) = env.verify(&copy, &[]);
    assert!(ok && out.starts_with("OK: 4 datafiles"), "{out}");
    // One byte of one data block of the home: the copy's control file names the home's
    // datafiles, yet the comparison reads the copy's own.
    flip(&env.users(), 40, 1000);
    let (ok, out) = env.verify(&copy, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("file 4 block 40: content differs (restored SCN "),
        "{out}"
    );
    assert!(out.contains("reference SCN "), "{out}");
    assert!(out.contains("MISMATCH: 1 difference(s)"), "{out}");
    flip(&env.users(), 40, 1000);
    assert!(env.verify(&copy, &[]).0);
    // And one byte of the reference.
    flip(&copy.join("oradata/ORCL/system01.dbf"), 7, 30);
    let (ok, out) = env.verify(&copy, &[]);
    assert!(
        !ok && out.contains("file 1 block 7: content differs"),
        "{out}"
    );
}

#[test]
fn a_snapshot_names_its_own_files_and_verify_holds_it_to_its_scn() {
    let env = Env::new();
    let snap = env.tmp.path().join("snap");
    let out = env.sim(&[
        "snapshot",
        "--home",
        env.home(),
        "--to",
        snap.to_str().unwrap(),
    ]);
    let scn: u64 = out
        .split(" at SCN ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(snap.join("snapshot.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["scn"], scn);
    // Its control file names the snapshot's files, not the home's.
    let names = Command::new(env.bin.join("sqlplus"))
        .args(["-S", "/", "as", "sysdba"])
        .env("ORACLESIM_HOME", &snap)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"set heading off pagesize 0\nselect name from v$datafile;\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let names = String::from_utf8_lossy(&names.stdout).into_owned();
    let snap_real = snap.canonicalize().unwrap();
    assert_eq!(names.lines().filter(|l| !l.trim().is_empty()).count(), 4);
    for n in names.lines().filter(|l| !l.trim().is_empty()) {
        assert!(Path::new(n.trim()).starts_with(&snap_real), "{n}");
    }

    let at = scn.to_string();
    let (ok, out) = env.verify(&snap, &["--at-scn", &at]);
    assert!(
        ok && out.contains(&format!("to the snapshot at SCN {scn}")),
        "{out}"
    );
    let other = (scn + 1).to_string();
    let (ok, out) = env.verify(&snap, &["--at-scn", &other]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("was taken at SCN {scn}, not at SCN {other}")),
        "{out}"
    );
    // A copy made with cp is no snapshot for --at-scn.
    let copy = env.tmp.path().join("copy");
    copy_dir(&env.home, &copy);
    let (ok, out) = env.verify(&copy, &["--at-scn", &at]);
    assert!(!ok && out.contains("is not a snapshot"), "{out}");
    // The home is no reference for itself.
    let (ok, out) = env.verify(&env.home, &[]);
    assert!(!ok && out.contains("are the same file"), "{out}");
    // Changes after the snapshot are differences, named with both SCNs.
    env.sim(&["workload", "--home", env.home(), "--change-pct", "1"]);
    let (ok, out) = env.verify(&snap, &["--at-scn", &at]);
    assert!(
        !ok && out.contains("content differs (restored SCN"),
        "{out}"
    );
    // A snapshot directory must be new.
    let (ok, out) = env.sim_status(&[
        "snapshot",
        "--home",
        env.home(),
        "--to",
        snap.to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("is not empty"), "{out}");
}

#[test]
fn an_offline_datafile_takes_no_changes_and_needs_recovery_before_it_comes_online() {
    let env = Env::new();
    env.rman_ok(&format!("run {{ {} backup database; }}\n", env.disk()));
    let out = env.sqlplus("alter database datafile 4 offline;\n");
    assert!(out.contains("Database altered."), "{out}");
    assert_eq!(env.status_of(4), "RECOVER");
    let row = env.sqlplus("select file# || ' ' || online_status from v$recover_file;\n");
    assert_eq!(row.trim(), "4 OFFLINE");
    let before = std::fs::read(env.users()).unwrap();
    env.sim(&[
        "workload",
        "--home",
        env.home(),
        "--change-pct",
        "10",
        "--log-switches",
        "2",
    ]);
    env.sim(&["checkpoint", "--home", env.home()]);
    assert!(
        std::fs::read(env.users()).unwrap() == before,
        "an offline file changed"
    );

    let out = env.sqlplus("alter database datafile 4 online;\n");
    assert!(
        out.contains("ORA-01113: file 4 needs media recovery"),
        "{out}"
    );
    assert!(out.contains("ORA-01110: data file 4: '"), "{out}");
    assert_eq!(env.status_of(4), "RECOVER");
    // A file in use cannot be recovered; the offline one can, while the rest stays open.
    let (ok, out) = env.rman("recover datafile 1;\n");
    assert!(
        !ok && out.contains("ORA-01124: cannot recover data file 1"),
        "{out}"
    );
    let out = env.rman_ok(&format!("run {{ {} recover datafile 4; }}\n", env.disk()));
    assert!(out.contains("media recovery complete"), "{out}");
    assert_eq!(env.status_of(4), "OFFLINE");
    let out = env.sqlplus("alter database datafile 4 online;\n");
    assert!(out.contains("Database altered."), "{out}");
    assert_eq!(env.status_of(4), "ONLINE");
    assert!(
        env.sqlplus("select * from v$recover_file;\n")
            .contains("no rows selected")
    );
}

#[test]
fn restore_of_a_file_in_use_is_refused_and_offline_restore_recover_online_proves_out() {
    let env = Env::new();
    env.rman_ok(&format!("run {{ {} backup database; }}\n", env.disk()));
    env.sim(&[
        "workload",
        "--home",
        env.home(),
        "--change-pct",
        "3",
        "--log-switches",
        "1",
    ]);
    let snap = env.tmp.path().join("snap");
    env.sim(&[
        "snapshot",
        "--home",
        env.home(),
        "--to",
        snap.to_str().unwrap(),
    ]);
    let before = std::fs::read(env.users()).unwrap();
    let (ok, out) = env.rman(&format!("run {{ {} restore datafile 4; }}\n", env.disk()));
    assert!(!ok, "{out}");
    assert!(
        out.contains("ORA-19573: cannot obtain exclusive enqueue for datafile 4"),
        "{out}"
    );
    assert!(std::fs::read(env.users()).unwrap() == before);
    std::fs::remove_file(env.users()).unwrap();
    let out = env.rman_ok(&format!(
        "alter database datafile 4 offline;\nrun {{ {} restore datafile 4; recover datafile 4; }}\nalter database datafile 4 online;\n",
        env.disk()
    ));
    assert!(out.contains("Finished recover at"), "{out}");
    let (ok, out) = env.verify(&snap, &[]);
    assert!(ok, "{out}");
}

#[test]
fn tablespace_offline_normal_needs_no_recovery_and_system_stays_online() {
    let env = Env::new();
    let out = env.sqlplus("alter tablespace users offline;\n");
    assert!(out.contains("Tablespace altered."), "{out}");
    assert_eq!(env.status_of(4), "OFFLINE");
    let row = env.sqlplus("select file# || ' ' || error from v$recover_file;\n");
    assert_eq!(row.trim(), "4 OFFLINE NORMAL");
    let out = env.sqlplus("alter tablespace users online;\n");
    assert!(out.contains("Tablespace altered."), "{out}");
    assert_eq!(env.status_of(4), "ONLINE");

    let out = env.sqlplus("alter tablespace system offline;\n");
    assert!(
        out.contains("ORA-01541: system tablespace cannot be brought offline"),
        "{out}"
    );
    let out = env.sqlplus("alter database datafile 1 offline;\n");
    assert!(out.contains("ORA-01541"), "{out}");
    let out = env.sqlplus("alter tablespace nosuch offline;\n");
    assert!(
        out.contains("ORA-00959: tablespace 'NOSUCH' does not exist"),
        "{out}"
    );

    let out = env.sqlplus("alter tablespace users offline immediate;\n");
    assert!(out.contains("Tablespace altered."), "{out}");
    let out = env.sqlplus("alter tablespace users online;\n");
    assert!(
        out.contains("ORA-01113: file 4 needs media recovery"),
        "{out}"
    );
}

#[test]
fn validate_lists_corrupt_blocks_and_block_media_recovery_repairs_them() {
    let env = Env::new();
    env.rman_ok(&format!("run {{ {} backup database; }}\n", env.disk()));
    let snap = env.tmp.path().join("snap");
    env.sim(&[
        "snapshot",
        "--home",
        env.home(),
        "--to",
        snap.to_str().unwrap(),
    ]);
    flip(&env.users(), 12, 2000);
    flip(&env.users(), 13, 2000);
    let (ok, out) = env.rman(&format!("run {{ {} validate database; }}\n", env.disk()));
    assert!(
        ok && out.contains("validate found one or more corrupt blocks"),
        "{out}"
    );
    let rows = env.sqlplus(
        "select file# || ' ' || block# || ' ' || blocks || ' ' || corruption_type from v$database_block_corruption;\n",
    );
    assert_eq!(rows.trim(), "4 12 2 CHECKSUM");
    let out = env.rman_ok(&format!(
        "run {{ {} recover corruption list; }}\n",
        env.disk()
    ));
    assert!(out.contains("restoring blocks of datafile 00004"), "{out}");
    assert!(
        env.sqlplus("select * from v$database_block_corruption;\n")
            .contains("no rows selected")
    );
    assert!(env.verify(&snap, &[]).0);
}
