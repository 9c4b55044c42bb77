//! Block change tracking: a file recording, per datafile block, the SCN of
//! its last change since tracking was enabled.
//!
//! File format (little-endian): `"ORABCT01"`, enabled SCN u64, file count
//! u32, reserved u32, then per datafile: file# u32, block count u32, and one
//! u64 per block (last change SCN, 0 = not changed since enabled; index 0 is
//! block 0).

use super::{Database, DbError, Result, io_err};
use orca_oracle::Scn;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"ORABCT01";

/// V$BLOCK_CHANGE_TRACKING.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BctStatus {
    /// `ENABLED` or `DISABLED`.
    pub status: String,
    /// Tracking file.
    pub file: Option<PathBuf>,
    /// Size of the tracking file.
    pub bytes: Option<u64>,
    /// SCN at which tracking started.
    pub enabled_scn: Option<Scn>,
}

impl BctStatus {
    /// Whether tracking is on.
    pub fn is_enabled(&self) -> bool {
        self.status == "ENABLED"
    }
}

pub(crate) struct Tracker {
    path: PathBuf,
    enabled_scn: Scn,
    files: BTreeMap<u32, Vec<u64>>,
}

impl Tracker {
    fn read(path: &Path) -> Result<Tracker> {
        let b = std::fs::read(path).map_err(|e| {
            io_err(
                format!("cannot read change tracking file {}", path.display()),
                e,
            )
        })?;
        let bad = || {
            DbError::Invalid(format!(
                "{} is not a block change tracking file; disable and re-enable tracking",
                path.display()
            ))
        };
        if b.len() < 24 || &b[..8] != MAGIC {
            return Err(bad());
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let enabled_scn = Scn(u64::from_le_bytes(b[8..16].try_into().map_err(|_| bad())?));
        let n = u32_at(16) as usize;
        let mut p = 24;
        let mut files = BTreeMap::new();
        for _ in 0..n {
            if p + 8 > b.len() {
                return Err(bad());
            }
            let fno = u32_at(p);
            let nb = u32_at(p + 4) as usize;
            p += 8;
            let end = p
                .checked_add(nb * 8)
                .filter(|&e| e <= b.len())
                .ok_or_else(bad)?;
            let v = b[p..end]
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            files.insert(fno, v);
            p = end;
        }
        Ok(Tracker {
            path: path.to_path_buf(),
            enabled_scn,
            files,
        })
    }

    /// The tracker when tracking is enabled.
    pub fn load(db: &Database) -> Result<Option<Tracker>> {
        let s = status(db)?;
        match (s.is_enabled(), s.file) {
            (true, Some(f)) => Tracker::read(&f).map(Some),
            _ => Ok(None),
        }
    }

    /// Notes a change of `block` of `file_no` at `scn`.
    pub fn record(&mut self, file_no: u32, block: u32, scn: Scn) {
        let v = self.files.entry(file_no).or_default();
        let i = block as usize;
        if v.len() <= i {
            v.resize(i + 1, 0);
        }
        v[i] = v[i].max(scn.0);
    }

    /// Writes the tracking file.
    pub fn save(self) -> Result<()> {
        let total: usize = self.files.values().map(|v| 8 + v.len() * 8).sum();
        let mut b = Vec::with_capacity(24 + total);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.enabled_scn.0.to_le_bytes());
        b.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for (fno, v) in &self.files {
            b.extend_from_slice(&fno.to_le_bytes());
            b.extend_from_slice(&(v.len() as u32).to_le_bytes());
            for x in v {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        super::write_atomic(&self.path, &b)
    }
}

pub(crate) fn status(db: &Database) -> Result<BctStatus> {
    let (st, file, scn): (String, Option<String>, Option<i64>) = db.connection().query_row(
        "SELECT bct_status, bct_file, bct_enabled_scn FROM cf_sim",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let file = file.map(PathBuf::from);
    let bytes = file
        .as_ref()
        .and_then(|f| std::fs::metadata(f).ok())
        .map(|m| m.len());
    Ok(BctStatus {
        status: st,
        file,
        bytes,
        enabled_scn: scn.map(|s| Scn(s as u64)),
    })
}

pub(crate) fn enable(db: &Database, file: Option<&Path>) -> Result<()> {
    let s = status(db)?;
    if s.is_enabled() {
        return Err(super::ora(
            19_751,
            format!(
                "could not create the change tracking file\nORA-19750: change tracking file: '{}'\nORA-27038: created file already exists",
                s.file.map(|f| f.display().to_string()).unwrap_or_default()
            ),
        ));
    }
    let path = file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| db.home().join("bct").join("change_tracking.ctf"));
    let scn = db.current_scn()?;
    let mut t = Tracker {
        path: path.clone(),
        enabled_scn: scn,
        files: BTreeMap::new(),
    };
    for d in db.datafiles()? {
        t.files.insert(d.file_no, vec![0; d.blocks as usize + 1]);
    }
    t.save()?;
    db.connection().execute(
        "UPDATE cf_sim SET bct_status = 'ENABLED', bct_file = ?1, bct_enabled_scn = ?2",
        params![path.to_string_lossy(), scn.0 as i64],
    )?;
    Ok(())
}

pub(crate) fn disable(db: &Database) -> Result<()> {
    let s = status(db)?;
    if let Some(f) = s.file {
        let _ = std::fs::remove_file(f);
    }
    db.connection().execute(
        "UPDATE cf_sim SET bct_status = 'DISABLED', bct_file = NULL, bct_enabled_scn = NULL",
        [],
    )?;
    Ok(())
}

pub(crate) fn changed_since(db: &Database, file_no: u32, scn: Scn) -> Result<Option<Vec<u32>>> {
    let Some(t) = Tracker::load(db)? else {
        return Ok(None);
    };
    if scn < t.enabled_scn {
        return Ok(None);
    }
    let d = db.datafile(file_no)?;
    let v = t.files.get(&file_no).cloned().unwrap_or_default();
    Ok(Some(
        v.iter()
            .enumerate()
            .filter(|(i, s)| *i >= 1 && *i <= d.blocks as usize && **s > scn.0)
            .map(|(i, _)| i as u32)
            .collect(),
    ))
}
