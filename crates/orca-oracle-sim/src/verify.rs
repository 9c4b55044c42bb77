//! Proving restores: take a self-consistent reference of a home (`oraclesim snapshot`),
//! compare the datafiles of a home with a reference block by block (`oraclesim verify`), and
//! check every block of a home (`oraclesim dbv`).
//!
//! The reference's datafiles are always read from the reference itself, matched by FILE#,
//! whatever its control file says: a copy of a home made with `cp -a` has a control file
//! naming the original's datafiles, and comparing those would compare each file with itself.

use crate::db::{Database, DatafileIo, DbError, io_err};
use orca_oracle::Scn;
use orca_oracle::block::{BlockHeader, FileHeaderBlock, Rdba, check_block, is_null_block};
use orca_oracle::redo::parse_log;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// SCN the reference snapshot was taken at (None for a copy of a home).
    pub reference_scn: Option<Scn>,
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

/// How `verify` compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyOptions {
    /// The reference is newer than the home: only require identity for changes before this
    /// SCN (`--up-to-scn`).
    pub up_to: Option<Scn>,
    /// The reference must be a snapshot taken at this SCN (`--at-scn`).
    pub at_scn: Option<Scn>,
}

/// Name of the manifest `oraclesim snapshot` writes into the snapshot directory.
pub const SNAPSHOT_MANIFEST: &str = "snapshot.json";

/// One datafile of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// FILE#.
    pub file_no: u32,
    /// Path relative to the snapshot directory.
    pub path: PathBuf,
    /// Blocks (block 0 excluded).
    pub blocks: u32,
}

/// `snapshot.json`: what a snapshot holds and when it was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// DBID.
    pub dbid: u32,
    /// DB_NAME.
    pub name: String,
    /// The database's SCN when the snapshot was taken (every change up to it is included).
    pub scn: Scn,
    /// The home the snapshot was taken of.
    pub home: PathBuf,
    /// The datafiles, by FILE#.
    pub datafiles: Vec<SnapshotFile>,
}

const CHUNK: usize = 1 << 20;

/// SCN of a block as verify reports it (`null` for a never-formatted block).
fn block_scn_text(blk: u32, buf: &[u8]) -> String {
    if is_null_block(buf) {
        return "null".into();
    }
    let scn = if blk == 1 {
        orca_oracle::DatafileHeader::parse(buf)
            .ok()
            .map(|h| h.checkpoint.scn)
    } else {
        BlockHeader::parse(buf).ok().map(|h| h.scn)
    };
    match scn {
        None => "unreadable".into(),
        Some(s) if blk > 1 => match check_block(buf, None) {
            Ok(_) => s.to_string(),
            Err(e) => format!("{s}, corrupt: {e}"),
        },
        Some(s) => s.to_string(),
    }
}

/// Why two datafile headers (block 1) differ, if they do. The checkpoint (SCN, time, redo
/// address, counts), the control-file sequence and the resetlogs data record what media
/// recovery and OPEN did to the file, not its content: they may differ as long as the
/// restored file's checkpoint is not older than the reference's.
fn header_difference(restored: &[u8], reference: &[u8]) -> Option<String> {
    let a = match orca_oracle::DatafileHeader::parse(restored) {
        Ok(h) => h,
        Err(e) => return Some(format!("restored datafile header is invalid: {e}")),
    };
    let b = match orca_oracle::DatafileHeader::parse(reference) {
        Ok(h) => h,
        Err(e) => return Some(format!("reference datafile header is invalid: {e}")),
    };
    let content = |h: &orca_oracle::DatafileHeader| {
        let mut h = h.clone();
        h.checkpoint = Default::default();
        h.checkpoint_count = 0;
        h.cf_checkpoint_count = 0;
        h.controlfile_seq = 0;
        h.resetlogs_scn = Scn(0);
        h.resetlogs_time = Default::default();
        h
    };
    if content(&a) != content(&b) {
        return Some(format!(
            "datafile header differs (restored checkpoint SCN {}, reference checkpoint SCN {})",
            a.checkpoint.scn, b.checkpoint.scn
        ));
    }
    (a.checkpoint.scn < b.checkpoint.scn).then(|| {
        format!(
            "datafile header: restored checkpoint SCN {} is older than the reference's {} (media recovery missing?)",
            a.checkpoint.scn, b.checkpoint.scn
        )
    })
}

/// Compares two datafiles block by block (blocks 0, 1 and every data block).
///
/// Without `up_to`, every data block must be byte-identical and the headers must agree (see
/// `header_difference`). With `up_to`, blocks that the reference (`against`) changed after
/// that SCN may differ, as long as the restored block is not newer than the bound either;
/// the header block is compared only if the reference's checkpoint is not after the bound.
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
                let what = if blk == 1 {
                    match header_difference(x, y) {
                        Some(w) => w,
                        None => continue,
                    }
                } else {
                    format!(
                        "content differs (restored SCN {}, reference SCN {})",
                        block_scn_text(blk, x),
                        block_scn_text(blk, y)
                    )
                };
                report.push(Mismatch {
                    file_no,
                    block: Some(blk),
                    what,
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
                        block_scn_text(blk, x),
                        block_scn_text(blk, y)
                    ),
                });
            }
        }
        first += n;
    }
    Ok(())
}

/// The datafiles of a reference, read from the reference directory itself.
struct Reference {
    dbid: u32,
    scn: Option<Scn>,
    files: BTreeMap<u32, PathBuf>,
}

fn read_manifest(dir: &Path) -> Result<Option<SnapshotManifest>, DbError> {
    let p = dir.join(SNAPSHOT_MANIFEST);
    if !p.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p)
        .map_err(|e| io_err(format!("cannot read {}", p.display()), e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DbError::Invalid(format!("{} is not a snapshot manifest: {e}", p.display())))
}

/// Finds the reference's datafiles: a snapshot's from its manifest; a copy of a home's by
/// moving each path its control file names from the original home (the directory of the
/// `control_files` parameter) into the copy. A datafile that would be read from outside
/// the reference is refused.
fn load_reference(against: &Path) -> Result<Reference, DbError> {
    let root = against
        .canonicalize()
        .map_err(|e| io_err(format!("cannot resolve {}", against.display()), e))?;
    if let Some(m) = read_manifest(&root)? {
        return Ok(Reference {
            dbid: m.dbid,
            scn: Some(m.scn),
            files: m
                .datafiles
                .into_iter()
                .map(|f| (f.file_no, root.join(f.path)))
                .collect(),
        });
    }
    let db = Database::open(&root)?;
    let dbid = db.info()?.dbid;
    let origin: Option<PathBuf> = db
        .connection()
        .query_row(
            r#"SELECT "VALUE" FROM cf_parameter WHERE "NAME" = 'control_files'"#,
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
        .and_then(|cf| {
            Path::new(&cf)
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
        });
    let mut files = BTreeMap::new();
    for d in db.datafiles()? {
        let inside = if d.path.starts_with(&root) {
            Some(d.path.clone())
        } else {
            origin
                .as_ref()
                .and_then(|o| d.path.strip_prefix(o).ok())
                .map(|rel| root.join(rel))
        };
        let Some(p) = inside else {
            return Err(DbError::Invalid(format!(
                "the reference's control file names datafile {} as {}, outside the reference {}: \
                 take the reference with `oraclesim snapshot --home HOME --to DIR`",
                d.file_no,
                d.path.display(),
                root.display()
            )));
        };
        files.insert(d.file_no, p);
    }
    Ok(Reference {
        dbid,
        scn: None,
        files,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Compares every datafile of `home` with the same FILE# in the reference `against` (a
/// snapshot, or a copy of a home).
pub fn verify_homes(
    home: &Path,
    against: &Path,
    opts: &VerifyOptions,
) -> Result<VerifyReport, DbError> {
    let reference = load_reference(against)?;
    if let Some(want) = opts.at_scn {
        match reference.scn {
            None => {
                return Err(DbError::Invalid(format!(
                    "{} is not a snapshot (no {SNAPSHOT_MANIFEST}): --at-scn needs a reference \
                     taken with `oraclesim snapshot`",
                    against.display()
                )));
            }
            Some(s) if s != want => {
                return Err(DbError::Invalid(format!(
                    "the snapshot in {} was taken at SCN {s}, not at SCN {want}: compare against \
                     a snapshot taken at SCN {want}",
                    against.display()
                )));
            }
            Some(_) => {}
        }
    }
    let a = Database::open(home)?;
    let ia = a.info()?;
    let mut report = VerifyReport {
        reference_scn: reference.scn,
        ..Default::default()
    };
    if ia.dbid != reference.dbid {
        report.push(Mismatch {
            file_no: 0,
            block: None,
            what: format!("DBID {} vs {}", ia.dbid, reference.dbid),
        });
        return Ok(report);
    }
    let fa = a.datafiles()?;
    for mine in fa
        .iter()
        .filter(|d| !reference.files.contains_key(&d.file_no))
    {
        report.push(Mismatch {
            file_no: mine.file_no,
            block: None,
            what: "datafile not in the reference".into(),
        });
    }
    for (&file_no, ref_path) in &reference.files {
        let Some(mine) = fa.iter().find(|x| x.file_no == file_no) else {
            report.push(Mismatch {
                file_no,
                block: None,
                what: "datafile missing".into(),
            });
            continue;
        };
        if !mine.path.exists() {
            report.push(Mismatch {
                file_no,
                block: None,
                what: format!("{} does not exist", mine.path.display()),
            });
            continue;
        }
        if !ref_path.exists() {
            report.push(Mismatch {
                file_no,
                block: None,
                what: format!("reference datafile {} does not exist", ref_path.display()),
            });
            continue;
        }
        if same_file(&mine.path, ref_path) {
            return Err(DbError::Invalid(format!(
                "datafile {file_no} of the home and of the reference are the same file ({}): \
                 verify needs a separate reference (`oraclesim snapshot`)",
                ref_path.display()
            )));
        }
        compare_datafiles(file_no, &mine.path, ref_path, opts.up_to, &mut report)?;
    }
    Ok(report)
}

/// Takes a snapshot of `home` into the new directory `to`: a copy of every datafile, a
/// control file naming those copies, and `snapshot.json` recording the SCN. The home is
/// locked meanwhile, so no change lands half-way.
pub fn snapshot(home: &Path, to: &Path) -> Result<SnapshotManifest, DbError> {
    let db = Database::open(home)?;
    if to.exists()
        && std::fs::read_dir(to)
            .map_err(|e| io_err(format!("cannot read {}", to.display()), e))?
            .next()
            .is_some()
    {
        return Err(DbError::Invalid(format!(
            "{} is not empty: a snapshot goes into a new directory",
            to.display()
        )));
    }
    std::fs::create_dir_all(to.join("control"))
        .map_err(|e| io_err(format!("cannot create {}", to.display()), e))?;
    let root = to
        .canonicalize()
        .map_err(|e| io_err(format!("cannot resolve {}", to.display()), e))?;
    let home = db
        .home()
        .canonicalize()
        .map_err(|e| io_err(format!("cannot resolve {}", db.home().display()), e))?;
    let _lock = db.lock()?;
    let info = db.info()?;
    let scn = db.current_scn()?;
    let mut files = Vec::new();
    let mut renames = Vec::new();
    for d in db.datafiles()? {
        let rel = match d.path.strip_prefix(&home) {
            Ok(r) => r.to_path_buf(),
            Err(_) => Path::new("oradata").join(&info.name).join(format!(
                "{}_{}",
                d.file_no,
                d.path.file_name().unwrap_or_default().to_string_lossy()
            )),
        };
        let target = root.join(&rel);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_err(format!("cannot create {}", dir.display()), e))?;
        }
        std::fs::copy(&d.path, &target).map_err(|e| {
            io_err(
                format!(
                    "cannot copy datafile {} ({}) into the snapshot",
                    d.file_no,
                    d.path.display()
                ),
                e,
            )
        })?;
        let blocks = DatafileIo::open(&target, false)?.block_count();
        files.push(SnapshotFile {
            file_no: d.file_no,
            path: rel,
            blocks,
        });
        renames.push((d.file_no, target));
    }
    let cf = root.join(crate::db::CONTROLFILE_REL);
    std::fs::write(&cf, db.controlfile_bytes()?)
        .map_err(|e| io_err(format!("cannot write {}", cf.display()), e))?;
    {
        let conn = rusqlite::Connection::open(&cf)?;
        for (file_no, target) in &renames {
            conn.execute(
                r#"UPDATE cf_datafile SET "NAME" = ?1 WHERE "FILE#" = ?2"#,
                rusqlite::params![target.to_string_lossy(), file_no],
            )?;
        }
        conn.execute(
            r#"UPDATE cf_parameter SET "VALUE" = ?1, "DISPLAY_VALUE" = ?1
               WHERE "NAME" = 'control_files'"#,
            [cf.to_string_lossy()],
        )?;
    }
    let manifest = SnapshotManifest {
        dbid: info.dbid,
        name: info.name,
        scn,
        home,
        datafiles: files,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| DbError::Invalid(format!("cannot encode the snapshot manifest: {e}")))?;
    let mp = root.join(SNAPSHOT_MANIFEST);
    std::fs::write(&mp, text + "\n")
        .map_err(|e| io_err(format!("cannot write {}", mp.display()), e))?;
    Ok(manifest)
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
            .map_err(|e| io_err(format!("cannot read {}", d.path.display()), e))?;
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
        let bytes =
            std::fs::read(&p).map_err(|e| io_err(format!("cannot read {}", p.display()), e))?;
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
