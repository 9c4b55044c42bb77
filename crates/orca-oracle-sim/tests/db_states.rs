//! Datafile states as Oracle enforces them (offline, needs recovery, in use) and the verify
//! tool that proves restores, with its negative controls.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use orca_testing::fs::{copy_dir, flip_at};
use orca_testing::sim::{DbSpec, TempDb};

/// A database of four 4 MiB datafiles that has changed a little since its creation.
fn env() -> TempDb {
    let env = TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec {
            online_log_mb: Some(2),
            ..DbSpec::default()
        },
    );
    env.db.workload("3", 1);
    env
}

fn home(env: &TempDb) -> &str {
    env.db.home.to_str().unwrap()
}

/// `oraclesim verify` against any reference, with `extra` arguments.
fn verify(env: &TempDb, against: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["verify", "--home", home(env), "--against"];
    args.push(against.to_str().unwrap());
    args.extend(extra);
    env.db.sim_status(&args)
}

/// `sqlplus -S / as sysdba` without headings or feedback.
fn sqlplus(env: &TempDb, input: &str) -> String {
    env.db
        .sqlplus(&format!("set heading off pagesize 0\n{input}"))
        .1
}

/// A disk channel writing into the test's backup directory.
fn disk(env: &TempDb) -> String {
    let dir = env.path("bk");
    std::fs::create_dir_all(&dir).unwrap();
    format!(
        "allocate channel d1 device type disk format '{}/%U';",
        dir.display()
    )
}

fn users(env: &TempDb) -> PathBuf {
    env.db.oradata().join("users01.dbf")
}

/// Flips one bit of byte `offset` of block `block` (8 KiB blocks).
fn flip(path: &Path, block: u64, offset: u64) {
    flip_at(path, block * 8192 + offset, 0x01);
}

#[test]
fn verify_reads_a_copy_from_its_own_directory_and_finds_one_flipped_byte() {
    let env = env();
    let copy = env.path("copy");
    copy_dir(&env.db.home, &copy);
    let (ok, out) = verify(&env, &copy, &[]);
    assert!(ok && out.starts_with("OK: 4 datafiles"), "{out}");
    // One byte of one data block of the home: the copy's control file names the home's
    // datafiles, yet the comparison reads the copy's own.
    flip(&users(&env), 40, 1000);
    let (ok, out) = verify(&env, &copy, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("file 4 block 40: content differs (restored SCN "),
        "{out}"
    );
    assert!(out.contains("reference SCN "), "{out}");
    assert!(out.contains("MISMATCH: 1 difference(s)"), "{out}");
    flip(&users(&env), 40, 1000);
    assert!(verify(&env, &copy, &[]).0);
    // And one byte of the reference.
    flip(&copy.join("oradata/ORCL/system01.dbf"), 7, 30);
    let (ok, out) = verify(&env, &copy, &[]);
    assert!(
        !ok && out.contains("file 1 block 7: content differs"),
        "{out}"
    );
}

#[test]
fn a_snapshot_names_its_own_files_and_verify_holds_it_to_its_scn() {
    let env = env();
    let snap = env.path("snap");
    let out = env.db.sim(&[
        "snapshot",
        "--home",
        home(&env),
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
    let names = Command::new(env.db.bin.join("sqlplus"))
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
    let (ok, out) = verify(&env, &snap, &["--at-scn", &at]);
    assert!(
        ok && out.contains(&format!("to the snapshot at SCN {scn}")),
        "{out}"
    );
    let other = (scn + 1).to_string();
    let (ok, out) = verify(&env, &snap, &["--at-scn", &other]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("was taken at SCN {scn}, not at SCN {other}")),
        "{out}"
    );
    // A copy made with cp is no snapshot for --at-scn.
    let copy = env.path("copy");
    copy_dir(&env.db.home, &copy);
    let (ok, out) = verify(&env, &copy, &["--at-scn", &at]);
    assert!(!ok && out.contains("is not a snapshot"), "{out}");
    // The home is no reference for itself.
    let (ok, out) = verify(&env, &env.db.home, &[]);
    assert!(!ok && out.contains("are the same file"), "{out}");
    // Changes after the snapshot are differences, named with both SCNs.
    env.db
        .sim(&["workload", "--home", home(&env), "--change-pct", "1"]);
    let (ok, out) = verify(&env, &snap, &["--at-scn", &at]);
    assert!(
        !ok && out.contains("content differs (restored SCN"),
        "{out}"
    );
    // A snapshot directory must be new.
    let (ok, out) = env.db.sim_status(&[
        "snapshot",
        "--home",
        home(&env),
        "--to",
        snap.to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("is not empty"), "{out}");
}

#[test]
fn an_offline_datafile_takes_no_changes_and_needs_recovery_before_it_comes_online() {
    let env = env();
    env.db
        .rman_ok(&format!("run {{ {} backup database; }}\n", disk(&env)));
    let out = sqlplus(&env, "alter database datafile 4 offline;\n");
    assert!(out.contains("Database altered."), "{out}");
    assert_eq!(env.db.datafile_status(4), "RECOVER");
    let row = sqlplus(
        &env,
        "select file# || ' ' || online_status from v$recover_file;\n",
    );
    assert_eq!(row.trim(), "4 OFFLINE");
    let before = std::fs::read(users(&env)).unwrap();
    env.db.workload("10", 2);
    env.db.sim(&["checkpoint"]);
    assert!(
        std::fs::read(users(&env)).unwrap() == before,
        "an offline file changed"
    );

    let out = sqlplus(&env, "alter database datafile 4 online;\n");
    assert!(
        out.contains("ORA-01113: file 4 needs media recovery"),
        "{out}"
    );
    assert!(out.contains("ORA-01110: data file 4: '"), "{out}");
    assert_eq!(env.db.datafile_status(4), "RECOVER");
    // A file in use cannot be recovered; the offline one can, while the rest stays open.
    let (ok, out) = env.db.rman("recover datafile 1;\n", &[]);
    assert!(
        !ok && out.contains("ORA-01124: cannot recover data file 1"),
        "{out}"
    );
    let out = env
        .db
        .rman_ok(&format!("run {{ {} recover datafile 4; }}\n", disk(&env)));
    assert!(out.contains("media recovery complete"), "{out}");
    assert_eq!(env.db.datafile_status(4), "OFFLINE");
    let out = sqlplus(&env, "alter database datafile 4 online;\n");
    assert!(out.contains("Database altered."), "{out}");
    assert_eq!(env.db.datafile_status(4), "ONLINE");
    assert!(sqlplus(&env, "select * from v$recover_file;\n").contains("no rows selected"));
}

#[test]
fn restore_of_a_file_in_use_is_refused_and_offline_restore_recover_online_proves_out() {
    let env = env();
    env.db
        .rman_ok(&format!("run {{ {} backup database; }}\n", disk(&env)));
    env.db.workload("3", 1);
    let snap = env.db.snapshot("snap");
    let before = std::fs::read(users(&env)).unwrap();
    let (ok, out) = env.db.rman(
        &format!("run {{ {} restore datafile 4; }}\n", disk(&env)),
        &[],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("ORA-19573: cannot obtain exclusive enqueue for datafile 4"),
        "{out}"
    );
    assert!(std::fs::read(users(&env)).unwrap() == before);
    std::fs::remove_file(users(&env)).unwrap();
    let out = env.db.rman_ok(&format!(
        "alter database datafile 4 offline;\nrun {{ {} restore datafile 4; recover datafile 4; }}\nalter database datafile 4 online;\n",
        disk(&env)
    ));
    assert!(out.contains("Finished recover at"), "{out}");
    env.db.prove(&snap);
}

#[test]
fn tablespace_offline_normal_needs_no_recovery_and_system_stays_online() {
    let env = env();
    let out = sqlplus(&env, "alter tablespace users offline;\n");
    assert!(out.contains("Tablespace altered."), "{out}");
    assert_eq!(env.db.datafile_status(4), "OFFLINE");
    let row = sqlplus(&env, "select file# || ' ' || error from v$recover_file;\n");
    assert_eq!(row.trim(), "4 OFFLINE NORMAL");
    let out = sqlplus(&env, "alter tablespace users online;\n");
    assert!(out.contains("Tablespace altered."), "{out}");
    assert_eq!(env.db.datafile_status(4), "ONLINE");

    let out = sqlplus(&env, "alter tablespace system offline;\n");
    assert!(
        out.contains("ORA-01541: system tablespace cannot be brought offline"),
        "{out}"
    );
    let out = sqlplus(&env, "alter database datafile 1 offline;\n");
    assert!(out.contains("ORA-01541"), "{out}");
    let out = sqlplus(&env, "alter tablespace nosuch offline;\n");
    assert!(
        out.contains("ORA-00959: tablespace 'NOSUCH' does not exist"),
        "{out}"
    );

    let out = sqlplus(&env, "alter tablespace users offline immediate;\n");
    assert!(out.contains("Tablespace altered."), "{out}");
    let out = sqlplus(&env, "alter tablespace users online;\n");
    assert!(
        out.contains("ORA-01113: file 4 needs media recovery"),
        "{out}"
    );
}

#[test]
fn validate_lists_corrupt_blocks_and_block_media_recovery_repairs_them() {
    let env = env();
    env.db
        .rman_ok(&format!("run {{ {} backup database; }}\n", disk(&env)));
    let snap = env.db.snapshot("snap");
    flip(&users(&env), 12, 2000);
    flip(&users(&env), 13, 2000);
    let (ok, out) = env.db.rman(
        &format!("run {{ {} validate database; }}\n", disk(&env)),
        &[],
    );
    assert!(
        ok && out.contains("validate found one or more corrupt blocks"),
        "{out}"
    );
    let rows = sqlplus(
        &env,
        "select file# || ' ' || block# || ' ' || blocks || ' ' || corruption_type from v$database_block_corruption;\n",
    );
    assert_eq!(rows.trim(), "4 12 2 CHECKSUM");
    let out = env.db.rman_ok(&format!(
        "run {{ {} recover corruption list; }}\n",
        disk(&env)
    ));
    assert!(out.contains("restoring blocks of datafile 00004"), "{out}");
    assert!(
        sqlplus(&env, "select * from v$database_block_corruption;\n").contains("no rows selected")
    );
    env.db.prove(&snap);
}
