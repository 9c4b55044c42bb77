//! Helpers shared by the `db_*` tests.
#![allow(dead_code)]

use orca_oracle::DatafileHeader;
use orca_oracle::block::{FileHeaderBlock, Rdba, check_block, is_null_block};
use orca_oracle::redo::parse_log;
use orca_oracle_sim::db::{CreateOptions, Database};
use std::path::{Path, PathBuf};

/// A small database: 4 datafiles of 2 MiB, 1 MiB online logs.
pub fn small_db(dir: &Path, threads: u16) -> Database {
    let mut o = CreateOptions::new(dir.join("db"), "ORCL", 4, 2);
    o.threads = threads;
    o.online_log_mb = 1;
    o.seed = 7;
    Database::create(&o).expect("create database")
}

/// Checks every block of every datafile: block 0, header, formatted blocks
/// (checksum, tail, rdba), null blocks. Returns the number of blocks checked.
pub fn check_datafiles(db: &Database) -> u64 {
    let mut n = 0;
    for d in db.datafiles().unwrap() {
        let bytes = std::fs::read(&d.path).unwrap();
        let bs = d.block_size;
        let fh = FileHeaderBlock::parse(&bytes).unwrap();
        assert_eq!(fh.block_count, d.blocks, "{}", d.path.display());
        assert_eq!(bytes.len() as u64, fh.file_size());
        let h = DatafileHeader::parse(&bytes[bs..2 * bs]).unwrap();
        assert_eq!(u32::from(h.file_no), d.file_no);
        assert_eq!(h.file_size_blocks, d.blocks);
        assert_eq!(h.tablespace_name, d.tablespace);
        for b in 2..=d.blocks {
            let blk = &bytes[b as usize * bs..(b as usize + 1) * bs];
            if b >= d.hwm_blocks {
                assert!(
                    is_null_block(blk),
                    "file {} block {b} should be null",
                    d.file_no
                );
            } else {
                check_block(blk, Some(Rdba::new(d.rfile_no, b).unwrap()))
                    .unwrap_or_else(|e| panic!("file {} block {b}: {e}", d.file_no));
            }
            n += 1;
        }
    }
    n
}

/// Parses every archived log on disk fully (every block's checksum).
pub fn check_archived_logs(db: &Database) -> usize {
    let mut n = 0;
    for a in db.archived_logs().unwrap() {
        if let Some(p) = &a.name
            && p.exists()
        {
            let log = parse_log(&std::fs::read(p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(log.header.thread, a.thread);
            assert_eq!(log.sequence, a.sequence);
            assert_eq!(log.header.first_scn, a.first_scn);
            assert_eq!(log.header.next_scn, Some(a.next_scn));
            assert_eq!(log.file_header.block_count, a.blocks);
            for r in &log.records {
                assert!(r.scn >= a.first_scn && r.scn < a.next_scn);
            }
            n += 1;
        }
    }
    n
}

/// Copies every datafile into `dir`; returns (FILE#, original path, copy).
pub fn copy_datafiles(db: &Database, dir: &Path) -> Vec<(u32, PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).unwrap();
    db.datafiles()
        .unwrap()
        .into_iter()
        .map(|d| {
            let c = dir.join(d.path.file_name().unwrap());
            std::fs::copy(&d.path, &c).unwrap();
            (d.file_no, d.path, c)
        })
        .collect()
}

/// Copies the files back over the originals (a restore).
pub fn restore(copies: &[(u32, PathBuf, PathBuf)]) {
    for (_, orig, copy) in copies {
        std::fs::copy(copy, orig).unwrap();
    }
}

/// Asserts that each original datafile equals its saved copy.
pub fn assert_same(copies: &[(u32, PathBuf, PathBuf)]) {
    for (fno, orig, copy) in copies {
        let a = std::fs::read(orig).unwrap();
        let b = std::fs::read(copy).unwrap();
        assert_eq!(a.len(), b.len(), "file {fno} size");
        if a != b {
            let bs = 8192;
            let first = (0..a.len() / bs)
                .find(|&i| a[i * bs..(i + 1) * bs] != b[i * bs..(i + 1) * bs])
                .unwrap();
            panic!("file {fno} differs first at block {first}");
        }
    }
}
