//! `BACKUP AS COMPRESSED BACKUPSET`: what reaches the media manager is compressed block data,
//! the catalog says so, and a restore gives the same blocks back (issue 18).

use std::path::Path;
use std::process::Command;

use orca_testing::fs::files_in;
use orca_testing::process::run_ok;
use orca_testing::sim::{DbSpec, TempDb};

/// The one file in `dir`.
fn only_file(dir: &str) -> std::path::PathBuf {
    let files = files_in(Path::new(dir));
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn compressed_piece_beats_gzip_1_is_listed_compressed_and_restores_the_same_blocks() {
    let env = TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec::default(),
    );
    env.db.workload("3", 1);
    let plain = env.dir("plain");
    let packed = env.dir("packed");
    let out = env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\nbackup as backupset datafile 4 format '{plain}/%U';\n"
    ));
    assert!(out.contains("starting full datafile backup set"), "{out}");
    let out = env.db.rman_ok(&format!(
        "backup as compressed backupset datafile 4 format '{packed}/%U';\n"
    ));
    assert!(
        out.contains("starting compressed full datafile backup set"),
        "{out}"
    );
    let plain_piece = only_file(&plain);
    let packed_piece = only_file(&packed);
    let gz = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -1 -c '{}' | wc -c", plain_piece.display())),
    );
    let gz: u64 = gz.trim().parse().unwrap();
    let plain_len = std::fs::metadata(&plain_piece).unwrap().len();
    let packed_len = std::fs::metadata(&packed_piece).unwrap().len();
    assert!(
        packed_len <= gz && gz < plain_len,
        "compressed {packed_len}, gzip -1 {gz}, plain {plain_len}"
    );

    let compressed = env.db.sql_column(&format!(
        "select compressed from v$backup_piece where handle = '{}'",
        packed_piece.display()
    ));
    assert_eq!(compressed, ["YES"]);
    let compressed = env.db.sql_column(&format!(
        "select compressed from v$backup_piece where handle = '{}'",
        plain_piece.display()
    ));
    assert_eq!(compressed, ["NO"]);
    let list = env.db.rman_ok("list backup;\n");
    assert_eq!(list.matches("Compressed: YES").count(), 1, "{list}");
    assert_eq!(list.matches("Compressed: NO").count(), 1, "{list}");
    let summary = env.db.rman_ok("list backup summary;\n");
    assert!(
        summary
            .lines()
            .any(|l| l.contains(" DISK ") && l.contains(" YES ")),
        "{summary}"
    );

    // The newest backup of every file is compressed: the restore reads only those pieces,
    // and the proof (with its negative control) checks every block.
    let all = env.dir("all");
    env.db.rman_ok(&format!(
        "backup as compressed backupset database format '{all}/%U';\n"
    ));
    env.db.workload("2", 1);
    let out = env
        .db
        .lose_restore_verify("restore database;\nrecover database;\n");
    assert!(out.contains(&format!("piece handle={all}/")), "{out}");
    assert!(!out.contains(&format!("piece handle={plain}/")), "{out}");
    assert!(out.contains("media recovery complete"), "{out}");
}

#[test]
fn configured_compressed_backup_type_compresses_and_backupset_does_not() {
    let env = TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec::default(),
    );
    let bk = env.dir("bk");
    let out = env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\n\
         configure device type disk backup type to compressed backupset;\n\
         backup datafile 4 format '{bk}/a_%U';\n\
         backup as backupset datafile 4 format '{bk}/b_%U';\n"
    ));
    assert_eq!(
        out.matches("starting compressed full datafile backup set")
            .count(),
        1,
        "{out}"
    );
    let rows = env.db.sql_column(&format!(
        "select substr(handle, {}, 1) || compressed from v$backup_piece order by recid",
        bk.len() + 2
    ));
    assert_eq!(rows, ["aYES", "bNO"]);
}

#[test]
fn compression_algorithm_high_writes_smaller_pieces_than_low() {
    let env = TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec::default(),
    );
    let size = |algorithm: &str| {
        let d = env.dir(algorithm);
        env.db.rman_ok(&format!(
            "configure controlfile autobackup off;\n\
             configure compression algorithm '{algorithm}';\n\
             backup as compressed backupset datafile 4 format '{d}/%U';\n"
        ));
        std::fs::metadata(only_file(&d)).unwrap().len()
    };
    let (low, basic, high) = (size("LOW"), size("BASIC"), size("HIGH"));
    assert!(high < low, "HIGH {high}, BASIC {basic}, LOW {low}");
    assert!(basic <= low, "HIGH {high}, BASIC {basic}, LOW {low}");
    let out = env.db.rman_ok("show all;\n");
    assert!(
        out.contains("CONFIGURE COMPRESSION ALGORITHM 'HIGH'"),
        "{out}"
    );
}
