//! What reaches the media manager, piece by piece (issue 18): BACKUP COPIES (one FORMAT per
//! copy, and CONFIGURE ... BACKUP COPIES), encrypted backup sets, MAXPIECESIZE, and
//! databases with 2, 4, 16 and 32 KiB blocks.

#[path = "sbt_testlib/mod.rs"]
#[allow(dead_code)] // only `build` here: the call trace is rman_e2e's
mod testlib;

use std::path::{Path, PathBuf};

use orca_testing::fs::files_in;
use orca_testing::sim::{DbSpec, TempDb};

fn env() -> TempDb {
    TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec::default(),
    )
}

/// `configure channel device type sbt parms '...'` for the C test library storing its
/// files in `<tmp>/store` (a handle's `/` becomes `%` there).
fn sbt_channel(env: &TempDb) -> (String, PathBuf) {
    let lib = testlib::build(env.tmp.path());
    let store = env.path("store");
    std::fs::create_dir_all(&store).unwrap();
    (
        format!(
            "configure channel device type sbt parms 'SBT_LIBRARY={}, ENV=(SBT_TESTLIB_DIR={})';\n",
            lib.display(),
            store.display()
        ),
        store,
    )
}

fn names(dir: &Path) -> Vec<String> {
    files_in(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn backup_copies_2_writes_one_copy_per_format_and_restores_from_copy_2_when_copy_1_is_gone() {
    let env = env();
    let a = env.dir("a");
    let b = env.dir("b");
    let out = env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\n\
         backup copies 2 database format '{a}/%U', '{b}/%U';\n"
    ));
    assert!(out.contains(" with 2 copies and tag TAG"), "{out}");
    let (in_a, in_b) = (names(Path::new(&a)), names(Path::new(&b)));
    assert!(!in_a.is_empty(), "{out}");
    assert_eq!(in_a.len(), in_b.len(), "{in_a:?} {in_b:?}");
    assert!(in_a.iter().all(|n| n.ends_with("_1_1")), "{in_a:?}");
    assert!(in_b.iter().all(|n| n.ends_with("_1_2")), "{in_b:?}");
    for n in &in_b {
        assert!(
            out.contains(&format!("piece handle={b}/{n} comment=NONE")),
            "{out}"
        );
    }
    let rows = env.db.sql_column(&format!(
        "select piece# || ' ' || copy# || ' ' || substr(handle, 1, {}) from v$backup_piece \
         order by set_count, copy#",
        a.len()
    ));
    let mut want = Vec::new();
    for _ in 0..in_a.len() {
        want.push(format!("1 1 {a}"));
        want.push(format!("1 2 {b}"));
    }
    assert_eq!(rows, want);
    let pieces = env
        .db
        .sql_column("select distinct pieces from v$backup_set");
    assert_eq!(pieces, ["1"]);

    // Copy 1 lost without RMAN knowing: the restore fails over to copy 2.
    for f in files_in(Path::new(&a)) {
        std::fs::remove_file(f).unwrap();
    }
    let out = env
        .db
        .lose_restore_verify("restore database;\nrecover database;\n");
    assert!(
        out.contains(&format!("failover to piece handle={b}/")),
        "{out}"
    );
    assert!(out.contains("media recovery complete"), "{out}");
}

#[test]
fn configured_datafile_copies_duplex_sbt_pieces_and_archivelog_copies_stay_one() {
    let env = env();
    let (channel, store) = sbt_channel(&env);
    let out = env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\n\
         {channel}\
         configure default device type to sbt;\n\
         configure datafile backup copies for device type sbt to 2;\n\
         show all;\n"
    ));
    assert!(
        out.contains("CONFIGURE DATAFILE BACKUP COPIES FOR DEVICE TYPE 'SBT_TAPE' TO 2;\n"),
        "{out}"
    );
    assert!(
        out.contains("CONFIGURE DATAFILE BACKUP COPIES FOR DEVICE TYPE DISK TO 1; # default"),
        "{out}"
    );
    assert!(
        out.contains(
            "CONFIGURE ARCHIVELOG BACKUP COPIES FOR DEVICE TYPE 'SBT_TAPE' TO 1; # default"
        ),
        "{out}"
    );
    env.db.rman_ok(
        "backup database format 'one/%U', 'two/%U';\n\
         backup archivelog all format 'logs/%U';\n",
    );
    let rows = env.db.sql_column(
        "select device_type || ' ' || copy# || ' ' || substr(handle, 1, 4) from v$backup_piece \
         order by set_count, copy#",
    );
    // Every datafile set's piece twice, then the archived-log set's once.
    let duplexed = rows.len() - 1;
    assert!(duplexed >= 2 && duplexed.is_multiple_of(2), "{rows:?}");
    for pair in rows[..duplexed].chunks(2) {
        assert_eq!(pair, ["SBT_TAPE 1 one/", "SBT_TAPE 2 two/"], "{rows:?}");
    }
    assert_eq!(rows[duplexed], "SBT_TAPE 1 logs", "{rows:?}");
    let stored = names(&store);
    assert_eq!(
        stored.iter().filter(|n| n.starts_with("two%")).count(),
        duplexed / 2,
        "{stored:?}"
    );

    // The media manager lost copy 1: the restore reads copy 2.
    for f in files_in(&store) {
        if f.file_name().unwrap().to_string_lossy().starts_with("one%") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let out = env
        .db
        .lose_restore_verify("restore database;\nrecover database;\n");
    assert!(out.contains("failover to piece handle=two/"), "{out}");
}

/// Whether any file in `dir` holds `needle`.
fn dir_holds(dir: &Path, needle: &[u8]) -> bool {
    files_in(dir).iter().any(|f| {
        std::fs::read(f)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
    })
}

/// 8 KiB of formatted data from the USERS datafile (file 4), as a backup piece would carry
/// it in the clear.
fn users_block(env: &TempDb) -> Vec<u8> {
    let users = env.db.oradata().join("users01.dbf");
    let bytes = std::fs::read(&users).unwrap();
    let block = bytes[20 * 8192..21 * 8192].to_vec();
    assert!(
        block.iter().any(|&b| b != 0),
        "block 20 of {users:?} is empty"
    );
    block
}

#[test]
fn password_encrypted_backup_hides_the_blocks_and_restores_only_after_set_decryption() {
    let env = env();
    let plain = env.dir("plain");
    let enc = env.dir("enc");
    let block = users_block(&env);
    let out = env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\n\
         backup datafile 4 format '{plain}/%U';\n\
         set encryption on identified by 'Secret_1' only;\n\
         backup database format '{enc}/%U';\n"
    ));
    assert!(out.contains("executing command: SET encryption"), "{out}");
    // The negative control: the same block is in the clear in a plain piece.
    assert!(dir_holds(Path::new(&plain), &block));
    assert!(!dir_holds(Path::new(&enc), &block));
    let rows = env.db.sql_column(&format!(
        "select distinct encrypted from v$backup_piece where handle like '{enc}/%'"
    ));
    assert_eq!(rows, ["YES"]);
    let rows = env.db.sql_column(&format!(
        "select encrypted from v$backup_piece where handle like '{plain}/%'"
    ));
    assert_eq!(rows, ["NO"]);

    // CATALOG registers encrypted pieces without the key: move them, forget them, find them.
    let moved = env.dir("moved");
    for f in files_in(Path::new(&enc)) {
        std::fs::copy(&f, Path::new(&moved).join(f.file_name().unwrap())).unwrap();
    }
    env.db.rman_ok("delete noprompt backup;\n");
    let out = env
        .db
        .rman_ok(&format!("catalog start with '{moved}/' noprompt;\n"));
    assert!(out.contains("List of Cataloged Files"), "{out}");
    let rows = env.db.sql_column(&format!(
        "select distinct encrypted from v$backup_piece where status = 'A' and handle like '{moved}/%'"
    ));
    assert_eq!(rows, ["YES"]);

    // The datafiles are lost: without the password, and with a wrong one, RESTORE fails.
    let snapshot = lose_datafiles(&env);
    let out = env
        .db
        .rman_err("shutdown abort;\nstartup mount;\nrestore database;\n");
    assert!(out.contains("ORA-19913: unable to decrypt backup"), "{out}");
    assert!(out.contains("ORA-28365: wallet is not open"), "{out}");
    let out = env
        .db
        .rman_err("set decryption identified by 'secret_1';\nrestore database;\n");
    assert!(out.contains("ORA-19913: unable to decrypt backup"), "{out}");

    let out = env.db.rman_ok(
        "set decryption identified by 'wrong', 'Secret_1';\nrestore database;\n\
         recover database;\nalter database open;\n",
    );
    assert!(out.contains("executing command: SET decryption"), "{out}");
    assert!(out.contains(&format!("piece handle={moved}/")), "{out}");
    env.db.prove(&snapshot);
}

/// A snapshot to prove the restore against, then every datafile deleted.
fn lose_datafiles(env: &TempDb) -> orca_testing::sim::Snapshot {
    let snapshot = env.db.snapshot("before-loss");
    for f in env.db.datafiles() {
        std::fs::remove_file(f).unwrap();
    }
    snapshot
}

#[test]
fn configured_encryption_needs_the_open_wallet_to_back_up_and_to_restore() {
    let env = env();
    let enc = env.dir("enc");
    let block = users_block(&env);
    let out = env.db.rman_err(&format!(
        "configure controlfile autobackup off;\n\
         configure encryption for database on;\n\
         backup database format '{enc}/%U';\n"
    ));
    assert!(out.contains("ORA-19914: unable to encrypt backup"), "{out}");
    assert!(out.contains("ORA-28365: wallet is not open"), "{out}");
    assert!(files_in(Path::new(&enc)).is_empty());

    assert!(env.db.sim(&["wallet", "open"]).contains("keystore open"));
    let out = env
        .db
        .rman_ok(&format!("show all;\nbackup database format '{enc}/%U';\n"));
    assert!(
        out.contains("CONFIGURE ENCRYPTION FOR DATABASE ON;"),
        "{out}"
    );
    let rows = env
        .db
        .sql_column("select distinct encrypted from v$backup_piece");
    assert_eq!(rows, ["YES"]);
    assert!(!dir_holds(Path::new(&enc), &block));

    let snapshot = lose_datafiles(&env);
    env.db.sim(&["wallet", "close"]);
    let out = env
        .db
        .rman_err("shutdown abort;\nstartup mount;\nrestore database;\n");
    assert!(out.contains("ORA-19913: unable to decrypt backup"), "{out}");
    assert!(out.contains("ORA-28365: wallet is not open"), "{out}");

    env.db.sim(&["wallet", "open"]);
    let out = env
        .db
        .rman_ok("restore database;\nrecover database;\nalter database open;\n");
    assert!(out.contains("media recovery complete"), "{out}");
    env.db.prove(&snapshot);
}

#[test]
fn maxpiecesize_splits_a_set_into_pieces_that_restore_together() {
    let env = env();
    let d = env.dir("mp");
    let out = env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\n\
         run {{\n\
          allocate channel c1 device type disk maxpiecesize 1M format '{d}/%U';\n\
          backup datafile 4;\n\
         }}\n"
    ));
    let pieces = files_in(Path::new(&d));
    assert!(pieces.len() >= 3, "{pieces:?}\n{out}");
    for p in &pieces {
        assert!(std::fs::metadata(p).unwrap().len() <= 1 << 20, "{p:?}");
    }
    assert!(out.contains("channel c1: starting piece 2 at "), "{out}");
    let rows = env
        .db
        .sql_column("select piece# || ' ' || copy# from v$backup_piece order by piece#");
    let want: Vec<String> = (1..=pieces.len()).map(|n| format!("{n} 1")).collect();
    assert_eq!(rows, want);
    let set_pieces = env.db.sql_column("select pieces from v$backup_set");
    assert_eq!(set_pieces, [pieces.len().to_string()]);

    // Every piece is needed: the set restores from all of them, and not without one.
    env.db.rman_ok(&format!(
        "configure channel device type disk maxpiecesize 1M;\nbackup database format '{d}/all_%U';\n"
    ));
    let out = env
        .db
        .lose_restore_verify("restore database;\nrecover database;\n");
    assert!(out.contains("restored backup piece 2"), "{out}");
    let second = env.db.sql_column(&format!(
        "select handle from v$backup_piece where piece# = 2 and handle like '{d}/all_%'"
    ));
    assert_eq!(second.len(), 1, "{second:?}");
    std::fs::remove_file(&second[0]).unwrap();
    let out = env
        .db
        .rman_err("crosscheck backup;\nrestore database validate;\n");
    assert!(
        out.contains("RMAN-06023: no backup or copy of datafile 1 found to restore"),
        "{out}"
    );
}

#[test]
fn tablespaces_of_2_4_16_and_32_kib_blocks_go_through_sbt_and_restore_block_for_block() {
    let env = TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec {
            block_sizes: vec![2, 4, 16, 32],
            ..DbSpec::sized(4, 2)
        },
    );
    let sizes = env
        .db
        .sql_column("select block_size from v$datafile order by file#");
    assert_eq!(
        sizes,
        [
            "8192", "8192", "8192", "8192", "2048", "4096", "16384", "32768"
        ]
    );
    let names = env.db.sql_column(
        "select t.name from v$tablespace t, v$datafile d where t.ts# = d.ts# and d.file# > 4 \
         order by d.file#",
    );
    assert_eq!(names, ["TS_2K", "TS_4K", "TS_16K", "TS_32K"]);
    // Every block's kcbh carries the format byte of its size and a valid checksum.
    for (file, bs, format) in [
        ("ts_2k01.dbf", 2048usize, 0x62u8),
        ("ts_4k01.dbf", 4096, 0x82),
        ("ts_16k01.dbf", 16384, 0xC2),
        ("ts_32k01.dbf", 32768, 0xE2),
    ] {
        let bytes = std::fs::read(env.db.oradata().join(file)).unwrap();
        assert_eq!(bytes.len() % bs, 0, "{file}");
        assert_eq!(bytes[2 * bs + 1], format, "{file}");
    }
    env.db.sim(&["dbv"]);
    env.db.workload("5", 1);
    env.db.sim(&["dbv"]);

    let (channel, store) = sbt_channel(&env);
    env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\n{channel}configure default device type to sbt;\n\
         backup database;\n"
    ));
    assert!(!files_in(&store).is_empty());
    let backed = env.db.sql_column(
        "select file# || ' ' || block_size from v$backup_datafile where file# > 4 order by file#",
    );
    assert_eq!(backed, ["5 2048", "6 4096", "7 16384", "8 32768"]);
    env.db.workload("2", 1);
    let out = env
        .db
        .lose_restore_verify("restore database;\nrecover database;\n");
    assert!(out.contains("media recovery complete"), "{out}");
    env.db.sim(&["dbv"]);
}

#[test]
fn the_autobackup_of_an_encrypted_backup_is_encrypted_and_restores_with_the_password() {
    let env = env();
    let d = env.dir("ab");
    env.db.rman_ok(&format!(
        "configure controlfile autobackup format for device type disk to '{d}/%F';\n\
         set encryption on identified by 'pw1' only;\n\
         backup datafile 4 format '{d}/%U';\n"
    ));
    let handles = env.db.sql_column(&format!(
        "select handle || ' ' || encrypted from v$backup_piece where handle like '{d}/c-%'"
    ));
    assert_eq!(handles.len(), 1, "{handles:?}");
    let (handle, encrypted) = handles[0].split_once(' ').unwrap();
    assert_eq!(encrypted, "YES");

    env.db.rman_ok("shutdown abort;\n");
    std::fs::remove_file(env.db.home.join("control/control01.ctl")).unwrap();
    let out = env.db.rman_err(&format!(
        "startup nomount;\nrestore controlfile from '{handle}';\n"
    ));
    assert!(out.contains("ORA-19913: unable to decrypt backup"), "{out}");
    let out = env.db.rman_ok(&format!(
        "set decryption identified by 'pw1';\nrestore controlfile from '{handle}';\n\
         alter database mount;\n"
    ));
    assert!(out.contains("restoring control file"), "{out}");
}
