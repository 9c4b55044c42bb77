//! Restores of part of a database through ORCA's SBT library and a local repository, as a
//! DBA runs them on Oracle: a datafile or tablespace restored while the rest stays open,
//! restore to a new location, block media recovery, RESTORE ... VALIDATE / PREVIEW, and
//! Oracle's refusal to restore files an open instance uses. Every restore is proved with
//! `oraclesim verify` against a snapshot taken before the damage.

mod support;

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};

use orca_testing::fs::files_in;
use orca_testing::sim::{DbSpec, SimDb, sbt_parms, sbt_run};
use orca_testing::tools;

const PASSWORD: &str = "restore-in-part";
const BLOCK: u64 = 8192;

/// A database, its SBT channel into a local repository.
struct Env {
    tmp: tempfile::TempDir,
    db: SimDb,
    repo: PathBuf,
}

impl Env {
    /// A database of `datafiles` x 8 MiB, an empty repository, and a first full backup
    /// (with the archived logs) after some changes.
    fn new(datafiles: u32) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let db = SimDb::create(
            &tools::oraclesim(),
            tmp.path(),
            &DbSpec {
                online_log_mb: Some(4),
                ..DbSpec::sized(datafiles, 8)
            },
        );
        let repo = tmp.path().join("repo");
        support::init_repo(&repo, PASSWORD);
        let env = Env { tmp, db, repo };
        env.db.workload("2", 1);
        env.run(" backup database plus archivelog;\n");
        env.db.workload("2", 2);
        env
    }

    /// A RUN block with two SBT channels around `body`.
    fn run_block(&self, body: &str) -> String {
        let p = sbt_parms(
            &tools::sbt_library(),
            &[
                ("ORCA_REPO", self.repo.display().to_string()),
                ("ORCA_PASSWORD", PASSWORD.into()),
                (
                    "ORCA_CACHE_DIR",
                    self.tmp.path().join("cache").display().to_string(),
                ),
            ],
        );
        sbt_run(&[&p, &p], body)
    }

    fn run(&self, body: &str) -> String {
        self.db.rman_ok(&self.run_block(body))
    }

    fn rman(&self, script: &str) -> (bool, String) {
        self.db.rman(script, &[])
    }

    /// `sqlplus -S / as sysdba` without headings: one line per row.
    fn sqlplus(&self, input: &str) -> String {
        self.db
            .sqlplus(&format!("set heading off feedback off pagesize 0\n{input}"))
            .1
    }

    /// FILE# → NAME from V$DATAFILE.
    fn datafiles(&self) -> BTreeMap<u32, PathBuf> {
        self.sqlplus("select file# || ' ' || name from v$datafile order by file#;\n")
            .lines()
            .filter_map(|l| l.trim().split_once(' '))
            .map(|(n, p)| (n.parse().unwrap(), PathBuf::from(p)))
            .collect()
    }

    fn recover_files(&self) -> Vec<u32> {
        self.sqlplus("select file# from v$recover_file order by file#;\n")
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    }

    /// A checksum of every datafile's content.
    fn checksums(&self) -> BTreeMap<u32, u64> {
        self.datafiles()
            .into_iter()
            .map(|(n, p)| (n, checksum(&p)))
            .collect()
    }
}

fn checksum(path: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(&std::fs::read(path).unwrap());
    h.finish()
}

/// Overwrites `len` bytes of block `block` of a datafile at `offset` within the block.
fn damage(path: &Path, block: u64, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, block * BLOCK + offset).unwrap();
}

/// Zeroes a whole datafile, keeping its size (a disk returning zeros).
fn zero(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    std::fs::write(path, vec![0u8; usize::try_from(len).unwrap()]).unwrap();
}

#[test]
fn restore_database_while_open_fails_with_ora_19573_and_changes_nothing() {
    let env = Env::new(4);
    let before = env.checksums();
    let (ok, out) = env.rman(&env.run_block(" restore database;\n"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("RMAN-03002: failure of restore command"),
        "{out}"
    );
    assert!(
        out.contains("ORA-19573: cannot obtain exclusive enqueue for datafile"),
        "{out}"
    );
    assert!(
        out.contains("ORA-19870: error while restoring backup piece"),
        "{out}"
    );
    assert_eq!(
        env.checksums(),
        before,
        "a refused restore wrote to a datafile"
    );
    assert!(env.recover_files().is_empty());
}

#[test]
fn a_corrupt_block_after_a_restore_fails_verify_naming_file_and_block() {
    let env = Env::new(4);
    let snap = env.db.snapshot("before-loss");
    for p in env.datafiles().values() {
        std::fs::remove_file(p).unwrap();
    }
    env.db.rman_ok(&format!(
        "shutdown abort;\nstartup mount;\n{}alter database open;\n",
        env.run_block(" restore database;\n recover database;\n")
    ));
    env.db.prove(&snap);
    // The restore returns one wrong byte in one data block: the proof must fail.
    let users = env.datafiles()[&4].clone();
    damage(&users, 37, 100, &[0x5a]);
    let (ok, out) = env.db.verify_at(&snap);
    assert!(!ok, "{out}");
    assert!(out.contains("file 4 block 37: content differs"), "{out}");
    assert!(
        out.contains("restored SCN") && out.contains("reference SCN"),
        "{out}"
    );
}

#[test]
fn a_datafile_zeroed_while_open_is_taken_offline_restored_recovered_and_brought_online() {
    let env = Env::new(4);
    let snap = env.db.snapshot("before-damage");
    let users = env.datafiles()[&4].clone();
    zero(&users);
    // Still online in an open database: RESTORE is refused and the file stays as it is.
    let (ok, out) = env.rman(&env.run_block(" restore datafile 4;\n"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("ORA-19573: cannot obtain exclusive enqueue for datafile 4"),
        "{out}"
    );
    assert!(std::fs::read(&users).unwrap().iter().all(|&b| b == 0));

    env.db.rman_ok("sql 'alter database datafile 4 offline';\n");
    assert_eq!(env.db.datafile_status(4), "RECOVER");
    assert_eq!(env.recover_files(), [4]);
    let out = env.run(" restore datafile 4;\n");
    assert!(
        out.contains("channel c1: restoring datafile 00004 to")
            || out.contains("channel c2: restoring datafile 00004 to"),
        "{out}"
    );
    assert!(out.contains("Finished restore at"), "{out}");
    // Restored but not recovered: Oracle will not bring it online.
    let (ok, out) = env.rman("sql 'alter database datafile 4 online';\n");
    assert!(!ok, "{out}");
    assert!(
        out.contains("ORA-01113: file 4 needs media recovery"),
        "{out}"
    );
    assert!(
        out.contains(&format!("ORA-01110: data file 4: '{}'", users.display())),
        "{out}"
    );

    let out = env.run(" recover datafile 4;\n");
    assert!(out.contains("starting media recovery"), "{out}");
    assert!(out.contains("media recovery complete"), "{out}");
    assert_eq!(env.db.datafile_status(4), "OFFLINE");
    env.db.rman_ok("alter database datafile 4 online;\n");
    assert_eq!(env.db.datafile_status(4), "ONLINE");
    assert!(env.recover_files().is_empty());
    env.db.prove(&snap);
    // The database goes on with the file back in it.
    env.db.workload("1", 1);
}

#[test]
fn a_tablespace_lost_while_open_is_taken_offline_restored_recovered_and_brought_online() {
    // Five datafiles: USERS has files 4 and 5.
    let env = Env::new(5);
    let snap = env.db.snapshot("before-loss");
    let files = env.datafiles();
    std::fs::remove_file(&files[&4]).unwrap();
    zero(&files[&5]);
    env.db
        .rman_ok("sql 'alter tablespace users offline immediate';\n");
    assert_eq!(env.db.datafile_status(4), "RECOVER");
    assert_eq!(env.db.datafile_status(5), "RECOVER");
    let listed = env.sqlplus("select file# || ' ' || error from v$recover_file order by file#;\n");
    assert!(listed.contains("4 FILE NOT FOUND"), "{listed}");
    let out = env.run(" restore tablespace users;\n recover tablespace users;\n");
    assert!(out.contains("media recovery complete"), "{out}");
    let out = env.sqlplus(
        "alter tablespace users online;\nselect status from v$datafile where file# in (4, 5);\n",
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["ONLINE", "ONLINE"],
        "{out}"
    );
    env.db.prove(&snap);
}

#[test]
fn restore_to_a_new_location_with_set_newname_and_switch_leaves_the_originals() {
    let env = Env::new(4);
    let snap = env.db.snapshot("before-move");
    let originals = env.datafiles();
    let before = env.checksums();
    let new = env.tmp.path().join("newdisk");
    let out = env.db.rman_ok(&format!(
        "shutdown immediate;\nstartup mount;\n{}alter database open;\n",
        env.run_block(&format!(
            " set newname for database to '{dir}/%b';\n set newname for datafile 4 to '{dir}/%U.dbf';\n restore database;\n switch datafile all;\n recover database;\n",
            dir = new.display()
        ))
    ));
    assert!(out.contains("executing command: SET NEWNAME"), "{out}");
    assert!(
        out.contains("datafile 4 switched to datafile copy"),
        "{out}"
    );
    assert!(out.contains("input datafile copy RECID="), "{out}");
    let moved = env.datafiles();
    let expect4 = new.join(format!(
        "data-D-ORCL_id-{}_TS-USERS_FNO-4.dbf",
        env.sqlplus("select dbid from v$database;\n").trim()
    ));
    assert_eq!(moved[&4], expect4);
    assert_eq!(moved[&1], new.join("system01.dbf"));
    // The originals are untouched; the copies are the database now and verify.
    for (n, p) in &originals {
        assert_eq!(checksum(p), before[n], "original {} changed", p.display());
    }
    env.db.prove(&snap);
    // The database runs on the new files.
    env.db.workload("1", 1);
    for (n, p) in &originals {
        assert_eq!(checksum(p), before[n], "original {} changed", p.display());
    }
}

#[test]
fn block_media_recovery_repairs_three_corrupt_blocks_while_the_file_stays_online() {
    let env = Env::new(4);
    let snap = env.db.snapshot("before-corruption");
    let users = env.datafiles()[&4].clone();
    damage(&users, 20, 300, b"garbage");
    damage(&users, 21, 1000, b"more garbage");
    damage(&users, 90, 0, &[0u8; 8192]);
    let (ok, _) = env.db.verify_at(&snap);
    assert!(!ok);
    let out = env.run(" backup validate check logical database;\n");
    assert!(
        out.contains("validate found one or more corrupt blocks"),
        "{out}"
    );
    let rows = env.sqlplus(
        "select file# || ' ' || block# || ' ' || blocks || ' ' || corruption_type from v$database_block_corruption order by block#;\n",
    );
    assert_eq!(
        rows.lines().map(str::trim).collect::<Vec<_>>(),
        ["4 20 2 CHECKSUM", "4 90 1 ALL ZERO"],
        "{rows}"
    );
    let out = env.run(" recover corruption list;\n");
    assert!(out.contains("restoring blocks of datafile 00004"), "{out}");
    assert!(out.contains("block restore complete"), "{out}");
    assert!(out.contains("media recovery complete"), "{out}");
    assert_eq!(env.db.datafile_status(4), "ONLINE");
    assert!(
        env.sqlplus("select count(*) from v$database_block_corruption;\n")
            .trim()
            == "0"
    );
    env.db.prove(&snap);

    // The same by block number.
    damage(&users, 33, 500, b"x");
    damage(&users, 34, 500, b"y");
    damage(&users, 35, 500, b"z");
    env.run(" recover datafile 4 block 33, 34, 35;\n");
    env.db.prove(&snap);
}

#[test]
fn restore_validate_and_preview_read_the_backups_and_write_nothing() {
    let env = Env::new(4);
    let before = env.checksums();
    let files = files_in(&env.db.oradata());
    let out = env.run(" restore database validate;\n");
    assert!(
        out.contains("starting validation of datafile backup set"),
        "{out}"
    );
    assert!(out.contains("validation complete, elapsed time"), "{out}");
    assert!(out.contains("reading from backup piece"), "{out}");
    assert!(!out.contains("restoring datafile"), "{out}");
    let out = env.run(" restore database preview;\n");
    assert!(out.contains("List of Backup Sets"), "{out}");
    assert!(out.contains("Piece Name:"), "{out}");
    assert!(out.contains("Media recovery start SCN is"), "{out}");
    let out = env.run(" restore database preview summary;\n");
    assert!(out.contains("List of Backups"), "{out}");
    assert!(out.contains("Media recovery start SCN is"), "{out}");
    let out = env.run(" restore archivelog all validate;\n");
    assert!(out.contains("Finished restore at"), "{out}");
    assert_eq!(env.checksums(), before);
    assert_eq!(files_in(&env.db.oradata()), files);
    assert_eq!(
        env.sqlplus("select count(*) from v$datafile_copy;\n")
            .trim(),
        "0"
    );
    assert!(env.recover_files().is_empty());

    // A piece that went bad in the repository is found by RESTORE ... VALIDATE.
    let (rt, repo) = support::open_repo(&env.repo, PASSWORD);
    let handle = env
        .sqlplus(
            "select handle from v$backup_piece p where exists (select 1 from v$backup_datafile d \
             where d.set_stamp = p.set_stamp and d.set_count = p.set_count and d.file# = 4);\n",
        )
        .trim()
        .to_string();
    assert!(!handle.is_empty());
    rt.block_on(repo.delete(&handle)).unwrap();
    let (ok, out) = env.rman(&env.run_block(" restore database validate;\n"));
    assert!(!ok, "{out}");
    assert_eq!(env.checksums(), before);
}
