//! Proving restores: compare the datafiles of two homes (`oraclesim
//! verify`), and check every block of a home (`oraclesim dbv`).

use crate::db::{Database, DatafileIo, DbError};
use orca_oracle::Scn;
use orca_oracle::block::{BlockHeader, FileHeaderBlock, Rdba, check_block, is_null_block};
use orca_oracle::redo::parse_log;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One difference found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// FILE#.
    pub file_no: u32,
    /// Block number, if the difference is in one block.
    pub block: Option<u32>,
    /// What differs.
    pub what: String,
}

/// Result of comparing two homes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Datafiles compared.
    pub files: u32,
    /// Blocks compared.
    pub blocks: u64,
    /// Blocks skipped because they changed after the SCN bound.
    pub blocks_newer: u64,
    /// Differences (at most 100 are kept).
    pub mismatches: Vec<Mismatch>,
}

impl VerifyReport {
    /// Whether the homes match.
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }

    fn push(&mut self, m: Mismatch) {
        if self.mismatches.len() < 100 {
            self.mismatches.push(m);
        }
    }
}

const CHUNK: usize = 1 << 20;

/// Compares two datafiles block by block. With `up_to`, blocks that the
/// reference (`against`) changed after that SCN may differ, as long as the
/// restored block is not newer than the bound either; the header block is
/// compared only if the reference's checkpoint is not after the bound.
pub fn compare_datafiles(
    file_no: u32,
    restored: &Path,
    against: &Path,
    up_to: Option<Scn>,
    report: &mut VerifyReport,
) -> Result<(), DbError> {
    let a = DatafileIo::open(restored, false)?;
    let b = DatafileIo::open(against, false)?;
    report.files += 1;
    if a.block_size() != b.block_size() {
        report.push(Mismatch {
            file_no,
            block: None,
            what: format!("block size {} vs {}", a.block_size(), b.block_size()),
        });
        return Ok(());
    }
    let bs = a.block_size();
    if up_to.is_none() && a.block_count() != b.block_count() {
        report.push(Mismatch {
            file_no,
            block: None,
            what: format!("{} blocks vs {} blocks", a.block_count(), b.block_count()),
        });
        return Ok(());
    }
    let per = (CHUNK / bs) as u32;
    let total = b.block_count().max(a.block_count());
    let mut ba = vec![0u8; CHUNK];
    let mut bb = vec![0u8; CHUNK];
    let mut first = 0u32;
    while first <= total {
        let n = per.min(total + 1 - first);
        let len = n as usize * bs;
        let a_n = (a.block_count() + 1).saturating_sub(first).min(n);
        let b_n = (b.block_count() + 1).saturating_sub(first).min(n);
        ba[..len].fill(0);
        bb[..len].fill(0);
        if a_n > 0 {
            a.read_blocks(first, &mut ba[..a_n as usize * bs])?;
        }
        if b_n > 0 {
            b.read_blocks(first, &mut bb[..b_n as usize * bs])?;
        }
        for i in 0..n {
            let blk = first + i;
            let x = &ba[i as usize * bs..(i as usize + 1) * bs];
            let y = &bb[i as usize * bs..(i as usize + 1) * bs];
            report.blocks += 1;
            if x == y {
                continue;
            }
            let Some(bound) = up_to else {
                report.push(Mismatch {
                    file_no,
                    block: Some(blk),
                    what: "content differs".into(),
                });
                continue;
            };
            if blk == 0 {
                // Block 0 carries the size, which may have grown after the bound.
                continue;
            }
            let scn_of = |buf: &[u8]| -> Option<Scn> {
                if is_null_block(buf) {
                    return None;
                }
                if blk == 1 {
                    orca_oracle::DatafileHeader::parse(buf)
                        .ok()
                        .map(|h| h.checkpoint.scn)
                } else {
                    BlockHeader::parse(buf).ok().map(|h| h.scn)
                }
            };
            let ref_scn = scn_of(y);
            let our_scn = scn_of(x);
            let ref_newer = ref_scn.is_some_and(|s| s >= bound);
            let ours_ok = our_scn.is_none_or(|s| s < bound);
            if ref_newer && ours_ok {
                report.blocks_newer += 1;
            } else {
                report.push(Mismatch {
                    file_no,
                    block: Some(blk),
                    what: format!(
                        "content differs (restored SCN {}, reference SCN {})",
                        our_scn.map_or("null".into(), |s| s.to_string()),
                        ref_scn.map_or("null".into(), |s| s.to_string())
                    ),
                });
            }
        }
        first += n;
    }
    Ok(())
}

/// Compares every datafile of `home` with the same FILE# in `against`.
pub fn verify_homes(
    home: &Path,
    against: &Path,
    up_to: Option<Scn>,
) -> Result<VerifyReport, DbError> {
    let a = Database::open(home)?;
    let b = Database::open(against)?;
    let (ia, ib) = (a.info()?, b.info()?);
    let mut report = VerifyReport::default();
    if ia.dbid != ib.dbid {
        report.push(Mismatch {
            file_no: 0,
            block: None,
            what: format!("DBID {} vs {}", ia.dbid, ib.dbid),
        });
        return Ok(report);
    }
    let fa = a.datafiles()?;
    for d in b.datafiles()? {
        let Some(mine) = fa.iter().find(|x| x.file_no == d.file_no) else {
            report.push(Mismatch {
                file_no: d.file_no,
                block: None,
                what: "datafile missing".into(),
            });
            continue;
        };
        if !mine.path.exists() {
            report.push(Mismatch {
                file_no: d.file_no,
                block: None,
                what: format!("{} does not exist", mine.path.display()),
            });
            continue;
        }
        compare_datafiles(d.file_no, &mine.path, &d.path, up_to, &mut report)?;
    }
    Ok(report)
}

/// DBVERIFY-style figures for one file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbvFile {
    /// File path.
    pub path: PathBuf,
    /// Datafile or redo log.
    pub kind: String,
    /// Pages examined.
    pub examined: u64,
    /// Formatted pages that passed.
    pub processed: u64,
    /// Pages failing.
    pub failing: u64,
    /// Never-formatted pages.
    pub empty: u64,
    /// Highest block SCN.
    pub highest_scn: Scn,
    /// First few failures.
    pub errors: Vec<String>,
}

/// Checks every block of every datafile, archived log and online log.
pub fn dbv(db: &Database) -> Result<Vec<DbvFile>, DbError> {
    let mut out = Vec::new();
    for d in db.datafiles()? {
        let bytes = std::fs::read(&d.path)
            .map_err(|e| crate::db::io_err(format!("cannot read {}", d.path.display()), e))?;
        let mut r = DbvFile {
            path: d.path.clone(),
            kind: "datafile".into(),
            ..Default::default()
        };
        let bs = d.block_size;
        match FileHeaderBlock::parse(&bytes) {
            Ok(fh) if fh.block_size as usize == bs && fh.file_size() == bytes.len() as u64 => {}
            Ok(fh) => r.errors.push(format!(
                "block 0 says {} blocks of {} bytes, file has {} bytes",
                fh.block_count,
                fh.block_size,
                bytes.len()
            )),
            Err(e) => r.errors.push(format!("block 0: {e}")),
        }
        for (i, blk) in bytes.chunks_exact(bs).enumerate().skip(1) {
            r.examined += 1;
            if is_null_block(blk) {
                r.empty += 1;
                continue;
            }
            let rdba = Rdba::new(d.rfile_no, i as u32)?;
            let res = if i == 1 {
                orca_oracle::DatafileHeader::parse(blk).map(|h| h.checkpoint.scn)
            } else {
                check_block(blk, Some(rdba)).map(|h| h.scn)
            };
            match res {
                Ok(scn) => {
                    r.processed += 1;
                    r.highest_scn = r.highest_scn.max(scn);
                }
                Err(e) => {
                    r.failing += 1;
                    if r.errors.len() < 10 {
                        r.errors.push(format!("page {i}: {e}"));
                    }
                }
            }
        }
        r.failing += u64::from(r.errors.iter().any(|e| e.starts_with("block 0")));
        out.push(r);
    }
    let mut logs: Vec<PathBuf> = db
        .archived_logs()?
        .into_iter()
        .filter_map(|a| a.name)
        .filter(|p| p.exists())
        .collect();
    let members: Vec<String> = {
        let mut st = db
            .connection()
            .prepare(r#"SELECT "MEMBER" FROM cf_logfile ORDER BY "GROUP#""#)?;
        st.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    logs.extend(members.into_iter().map(PathBuf::from));
    for p in logs {
        let bytes = std::fs::read(&p)
            .map_err(|e| crate::db::io_err(format!("cannot read {}", p.display()), e))?;
        let mut r = DbvFile {
            path: p.clone(),
            kind: "redo log".into(),
            ..Default::default()
        };
        match parse_log(&bytes) {
            Ok(l) => {
                r.examined = u64::from(l.header.nab.max(1) - 1);
                r.processed = r.examined;
                r.highest_scn = l.records.iter().map(|x| x.scn).max().unwrap_or_default();
            }
            Err(e) => {
                r.failing = 1;
                r.errors.push(e.to_string());
            }
        }
        out.push(r);
    }
    Ok(out)
}
