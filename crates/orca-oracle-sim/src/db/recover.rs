//! Media recovery: apply archived and online redo to (restored) datafiles.
//!
//! Every change the simulator makes to a datafile is logged as a full block
//! image (header blocks included, at each checkpoint and resize), so
//! replaying the records with SCN above a file's checkpoint, in SCN order
//! across threads, makes the file byte-identical to the original at the
//! recovery point.
//!
//! Redo comes from the incarnation branch of the recovery target (see
//! `incarnation.rs`): an ancestor's logs only up to the SCN where its child
//! branched off, so the overlapping SCNs of an abandoned branch are never
//! applied. An incomplete recovery, or one with a backup control file, records
//! its recovery point as the files' LAST_CHANGE# and makes OPEN RESETLOGS
//! required.

use super::{Database, DatafileIo, DbError, Result, ora};
use orca_oracle::redo::parse_log;
use orca_oracle::{OracleTime, RecordKind, RedoRecord, Scn};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where recovery stops (the change at the bound is not applied).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoverUntil {
    /// `UNTIL SCN n`: changes with SCN < n.
    Scn(Scn),
    /// `UNTIL TIME t`: changes made before t.
    Time(OracleTime),
    /// `UNTIL SEQUENCE s THREAD t`: changes before log s of thread t.
    Sequence {
        /// Thread.
        thread: u16,
        /// Sequence (not applied).
        sequence: u32,
    },
}

/// What to recover.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverOptions {
    /// Target; `None` = complete recovery (archived, then online redo).
    pub until: Option<RecoverUntil>,
    /// Datafiles (FILE#) to recover; `None` = all.
    pub files: Option<Vec<u32>>,
    /// Files restored elsewhere (`SET NEWNAME`): FILE# → path to recover.
    pub paths: BTreeMap<u32, PathBuf>,
}

/// A log recovery will read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedLog {
    /// RESETLOGS_ID of the log's incarnation.
    pub resetlogs_id: u32,
    /// Thread.
    pub thread: u16,
    /// Sequence.
    pub sequence: u32,
    /// FIRST_CHANGE#.
    pub first_scn: Scn,
    /// NEXT_CHANGE# (`None` for the current online log).
    pub next_scn: Option<Scn>,
    /// File to read.
    pub path: PathBuf,
    /// An online log rather than an archived one.
    pub online: bool,
    /// V$ARCHIVED_LOG.RECID when known.
    pub recid: Option<i64>,
}

/// A log recovery needs but cannot find.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingLog {
    /// RESETLOGS_ID of the log's incarnation.
    pub resetlogs_id: u32,
    /// RESETLOGS_CHANGE# of the log's incarnation.
    pub resetlogs_scn: Scn,
    /// Thread.
    pub thread: u16,
    /// Sequence.
    pub sequence: u32,
    /// FIRST_CHANGE# if the control file knows it.
    pub first_scn: Option<Scn>,
    /// The name it had (or the name it would have in this home).
    pub name: Option<PathBuf>,
    /// RECID of its V$ARCHIVED_LOG row, if any.
    pub recid: Option<i64>,
}

/// What a recovery would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPlan {
    /// (FILE#, path, checkpoint SCN of the file on disk).
    pub files: Vec<(u32, PathBuf, Scn)>,
    /// Lowest checkpoint SCN: redo above it is applied.
    pub start_scn: Scn,
    /// SCN bound (exclusive).
    pub until_scn: Option<Scn>,
    /// Time bound (exclusive).
    pub until_time: Option<OracleTime>,
    /// Logs to read, by thread then sequence.
    pub logs: Vec<PlannedLog>,
    /// Logs needed but not available.
    pub missing: Vec<MissingLog>,
}

/// What a recovery did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Lowest checkpoint SCN recovery started from.
    pub start_scn: Scn,
    /// Highest SCN applied (or the start SCN if nothing was applied).
    pub end_scn: Scn,
    /// Logs read.
    pub logs_applied: Vec<PlannedLog>,
    /// Redo records applied.
    pub records_applied: u64,
    /// Block writes done.
    pub blocks_written: u64,
    /// True for complete recovery (no UNTIL; online redo applied).
    pub complete: bool,
    /// The recovery point recorded for OPEN RESETLOGS (incomplete recovery or a backup
    /// control file): every change up to it, and none after, is in the files.
    pub resetlogs_point: Option<Scn>,
}

struct Row {
    recid: i64,
    name: Option<String>,
    first: Scn,
    next: Scn,
    first_time: OracleTime,
    status: String,
}

fn read_log_header(path: &Path) -> Option<orca_oracle::RedoLogHeader> {
    let f = File::open(path).ok()?;
    let mut b = vec![0u8; 1024];
    f.read_exact_at(&mut b, 0).ok()?;
    orca_oracle::redo::parse_log_headers(&b).ok().map(|x| x.1)
}

pub(super) fn plan(db: &Database, opts: &RecoverOptions) -> Result<RecoveryPlan> {
    let info = db.info()?;
    let all = db.datafiles()?;
    let targets: Vec<_> = match &opts.files {
        None => all.clone(),
        Some(list) => list
            .iter()
            .map(|f| db.datafile(*f))
            .collect::<Result<Vec<_>>>()?,
    };
    let mut files = Vec::new();
    for d in &targets {
        let path = opts
            .paths
            .get(&d.file_no)
            .cloned()
            .unwrap_or(d.path.clone());
        let io = DatafileIo::open(&path, false).map_err(|_| {
            ora(
                1157,
                format!(
                    "cannot identify/lock data file {} - see DBWR trace file\nORA-01110: data file {}: '{}'",
                    d.file_no,
                    d.file_no,
                    path.display()
                ),
            )
        })?;
        let h = io.header()?;
        if h.dbid != info.dbid || u32::from(h.file_no) != d.file_no {
            return Err(ora(
                1122,
                format!(
                    "database file {} failed verification check\nORA-01110: data file {}: '{}'\nORA-01206: file is not part of this database - wrong database id",
                    d.file_no,
                    d.file_no,
                    path.display()
                ),
            ));
        }
        files.push((d.file_no, path, h.checkpoint.scn));
    }
    let start_scn = files
        .iter()
        .map(|f| f.2)
        .min()
        .unwrap_or(info.checkpoint_scn);
    let branch = db.incarnation_branch()?;
    let target_rid = info.resetlogs_id;

    // Archived log rows of the branch's incarnations by (RESETLOGS_ID, thread, sequence).
    let mut rows: HashMap<(u32, u16, u32), Vec<Row>> = HashMap::new();
    {
        let mut st = db.connection().prepare(
            r#"SELECT "RECID", "NAME", "THREAD#", "SEQUENCE#", "FIRST_CHANGE#", "NEXT_CHANGE#",
                      "FIRST_TIME", "STATUS", "RESETLOGS_ID"
               FROM cf_archived_log ORDER BY "RECID""#,
        )?;
        let it = st.query_map([], |r| {
            Ok((
                r.get::<_, u32>(8)?,
                r.get::<_, u16>(2)?,
                r.get::<_, u32>(3)?,
                Row {
                    recid: r.get(0)?,
                    name: r.get(1)?,
                    first: Scn(r.get::<_, i64>(4)? as u64),
                    next: Scn(r.get::<_, i64>(5)? as u64),
                    first_time: super::stamp_of_julian(r.get(6)?),
                    status: r.get(7)?,
                },
            ))
        })?;
        for x in it {
            let (rid, t, s, row) = x?;
            if branch.iter().any(|b| b.resetlogs_id == rid) {
                rows.entry((rid, t, s)).or_default().push(row);
            }
        }
    }
    let online_members: Vec<String> = {
        let mut st = db
            .connection()
            .prepare(r#"SELECT "MEMBER" FROM cf_logfile ORDER BY "GROUP#""#)?;
        st.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let online_headers: Vec<(PathBuf, orca_oracle::RedoLogHeader, u32)> = online_members
        .iter()
        .filter_map(|m| {
            let p = PathBuf::from(m);
            let f = File::open(&p).ok()?;
            let mut b = vec![0u8; 1024];
            f.read_exact_at(&mut b, 0).ok()?;
            let (_, h, seq) = orca_oracle::redo::parse_log_headers(&b).ok()?;
            (h.resetlogs_id == target_rid && h.dbid == info.dbid).then_some((p, h, seq))
        })
        .collect();

    let (until_scn, until_time) = match &opts.until {
        None => (None, None),
        Some(RecoverUntil::Scn(s)) => (Some(*s), None),
        Some(RecoverUntil::Time(t)) => (None, Some(*t)),
        Some(RecoverUntil::Sequence { thread, sequence }) => {
            let first = rows
                .get(&(target_rid, *thread, *sequence))
                .and_then(|v| v.first().map(|r| r.first))
                .or_else(|| {
                    // The log was never archived: it begins where the one before ends.
                    rows.get(&(target_rid, *thread, sequence.wrapping_sub(1)))
                        .and_then(|v| v.first().map(|r| r.next))
                })
                .or_else(|| {
                    online_headers
                        .iter()
                        .find(|(_, h, s)| h.thread == *thread && s == sequence)
                        .map(|(_, h, _)| h.first_scn)
                })
                .ok_or_else(|| {
                    DbError::Invalid(format!(
                        "log sequence {sequence} of thread {thread} is not known to the control file"
                    ))
                })?;
            (Some(first), None)
        }
    };
    if let Some(u) = until_scn
        && u < info.resetlogs_scn
    {
        return Err(DbError::Invalid(format!(
            "UNTIL SCN {u} is before the RESETLOGS (SCN {}) of the recovery target incarnation: reset the database to an older incarnation first",
            info.resetlogs_scn
        )));
    }

    let threads: Vec<(u16, u32)> = {
        let mut st = db
            .connection()
            .prepare(r#"SELECT "THREAD#", "SEQUENCE#" FROM cf_thread ORDER BY "THREAD#""#)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut logs = Vec::new();
    let mut missing = Vec::new();
    for seg in &branch {
        if seg.end.is_some_and(|e| e.0 <= start_scn.0 + 1)
            || until_scn.is_some_and(|u| u <= seg.resetlogs_scn)
        {
            continue;
        }
        let target = seg.resetlogs_id == target_rid;
        let bound = match (until_scn, seg.end) {
            (Some(u), Some(e)) => Some(u.min(e)),
            (u, e) => u.or(e),
        };
        let past = |first: Scn, first_time: OracleTime| {
            bound.is_some_and(|u| first >= u) || until_time.is_some_and(|t| first_time >= t)
        };
        for &(thread, cf_seq) in &threads {
            let cur_seq = if target { cf_seq } else { 0 };
            let known_max = rows
                .keys()
                .filter(|(r, t, _)| *r == seg.resetlogs_id && *t == thread)
                .map(|(_, _, s)| *s)
                .max()
                .unwrap_or(0)
                .max(cur_seq);
            let s0 = if start_scn < seg.resetlogs_scn {
                1
            } else {
                rows.iter()
                    .filter(|((r, t, _), v)| {
                        *r == seg.resetlogs_id
                            && *t == thread
                            && v.iter().any(|x| x.next > start_scn)
                    })
                    .map(|((_, _, s), _)| *s)
                    .min()
                    .unwrap_or(cur_seq.max(1))
            };
            let mut seq = s0;
            loop {
                let known = rows.get(&(seg.resetlogs_id, thread, seq));
                let usable = known.and_then(|v| {
                    v.iter().find(|r| {
                        r.status != "D" && r.name.as_ref().is_some_and(|n| Path::new(n).is_file())
                    })
                });
                let first_known = known.and_then(|v| v.first());
                // A log the control file does not know begins where the one before ends.
                let previous_end = rows
                    .get(&(seg.resetlogs_id, thread, seq.wrapping_sub(1)))
                    .and_then(|v| v.first())
                    .map(|r| r.next);
                if first_known.is_none()
                    && previous_end.is_some_and(|e| bound.is_some_and(|u| e >= u))
                {
                    break;
                }
                // Nothing at or after the bound is needed.
                if let Some(r) = first_known {
                    if past(r.first, r.first_time) {
                        break;
                    }
                    if r.next <= start_scn {
                        seq += 1;
                        continue;
                    }
                }
                if let Some(r) = usable {
                    logs.push(PlannedLog {
                        resetlogs_id: seg.resetlogs_id,
                        thread,
                        sequence: seq,
                        first_scn: r.first,
                        next_scn: Some(r.next),
                        path: PathBuf::from(r.name.clone().unwrap_or_default()),
                        online: false,
                        recid: Some(r.recid),
                    });
                    seq += 1;
                    continue;
                }
                let standard = db.archived_log_path_in(thread, seq, seg.resetlogs_id);
                if let Some(h) = read_log_header(&standard)
                    .filter(|h| h.next_scn.is_some() && h.resetlogs_id == seg.resetlogs_id)
                {
                    if past(h.first_scn, h.first_time) {
                        break;
                    }
                    if h.next_scn.is_some_and(|n| n > start_scn) {
                        logs.push(PlannedLog {
                            resetlogs_id: seg.resetlogs_id,
                            thread,
                            sequence: seq,
                            first_scn: h.first_scn,
                            next_scn: h.next_scn,
                            path: standard,
                            online: false,
                            recid: None,
                        });
                    }
                    seq += 1;
                    continue;
                }
                if let Some((p, h, _)) = online_headers
                    .iter()
                    .filter(|_| target)
                    .find(|(_, h, s)| h.thread == thread && *s == seq)
                {
                    if past(h.first_scn, h.first_time) {
                        break;
                    }
                    logs.push(PlannedLog {
                        resetlogs_id: seg.resetlogs_id,
                        thread,
                        sequence: seq,
                        first_scn: h.first_scn,
                        next_scn: h.next_scn,
                        path: p.clone(),
                        online: true,
                        recid: None,
                    });
                    if h.next_scn.is_none() {
                        break;
                    }
                    seq += 1;
                    continue;
                }
                if seq > known_max {
                    break;
                }
                missing.push(MissingLog {
                    resetlogs_id: seg.resetlogs_id,
                    resetlogs_scn: seg.resetlogs_scn,
                    thread,
                    sequence: seq,
                    first_scn: first_known.map(|r| r.first),
                    name: known
                        .and_then(|v| v.iter().find_map(|r| r.name.clone()))
                        .map(PathBuf::from)
                        .or(Some(standard)),
                    recid: first_known.map(|r| r.recid),
                });
                seq += 1;
            }
        }
    }
    Ok(RecoveryPlan {
        files,
        start_scn,
        until_scn,
        until_time,
        logs,
        missing,
    })
}

pub(super) fn recover(db: &Database, opts: &RecoverOptions) -> Result<RecoveryReport> {
    let _lock = db.lock()?;
    let p = plan(db, opts)?;
    if !p.missing.is_empty() {
        return Err(DbError::MissingLogs(p.missing));
    }
    if let Some(u) = p.until_scn
        && let Some((fno, path, _)) = p.files.iter().find(|f| f.2 >= u)
    {
        return Err(ora(
            1152,
            format!(
                "file {fno} was not restored from a sufficiently old backup\nORA-01110: data file {fno}: '{}'",
                path.display()
            ),
        ));
    }
    let info = db.info()?;
    let branch_end: HashMap<u32, Option<Scn>> = db
        .incarnation_branch()?
        .into_iter()
        .map(|s| (s.resetlogs_id, s.end))
        .collect();
    let mut records: Vec<RedoRecord> = Vec::new();
    let mut max_seen = Scn(0);
    // Highest SCN the logs read account for: the recovery point when there is no bound.
    let mut covered = p.files.iter().map(|f| f.2).max().unwrap_or(p.start_scn);
    for l in &p.logs {
        let bytes = std::fs::read(&l.path)
            .map_err(|e| super::io_err(format!("cannot read log {}", l.path.display()), e))?;
        let parsed = parse_log(&bytes).map_err(|e| {
            ora(
                354,
                format!(
                    "corrupt redo log block header\nORA-00353: log corruption near block in {}: {e}",
                    l.path.display()
                ),
            )
        })?;
        if parsed.header.dbid != info.dbid
            || parsed.header.thread != l.thread
            || parsed.sequence != l.sequence
        {
            return Err(ora(
                310,
                format!(
                    "archived log contains sequence {}; sequence {} required\nORA-00334: archived log: '{}'",
                    parsed.sequence,
                    l.sequence,
                    l.path.display()
                ),
            ));
        }
        if parsed.header.resetlogs_id != l.resetlogs_id {
            return Err(ora(
                1287,
                format!(
                    "file {} is from a different database incarnation",
                    l.path.display()
                ),
            ));
        }
        let seg_end = branch_end.get(&l.resetlogs_id).copied().flatten();
        if let Some(n) = l.next_scn {
            let last = seg_end.map_or(n, |e| n.min(e));
            covered = covered.max(Scn(last.0.saturating_sub(1)));
        }
        for r in parsed.records {
            if seg_end.is_some_and(|e| r.scn >= e) {
                continue;
            }
            max_seen = max_seen.max(r.scn);
            if l.next_scn.is_none() {
                covered = covered.max(r.scn);
            }
            let keep = r.scn > p.start_scn
                && p.until_scn.is_none_or(|u| r.scn < u)
                && p.until_time.is_none_or(|t| r.time < t);
            if keep {
                records.push(r);
            }
        }
    }
    records.sort_by_key(|r| r.scn);
    let ckpt: HashMap<u32, Scn> = p.files.iter().map(|f| (f.0, f.2)).collect();
    let mut ios: HashMap<u32, DatafileIo> = HashMap::new();
    for (fno, path, _) in &p.files {
        ios.insert(*fno, DatafileIo::open(path, true)?);
    }
    let mut applied = 0u64;
    let mut written = 0u64;
    let mut end = p.start_scn;
    for r in &records {
        let fno = u32::from(r.file_no);
        let (Some(io), Some(&c)) = (ios.get_mut(&fno), ckpt.get(&fno)) else {
            continue;
        };
        if r.scn <= c {
            continue;
        }
        match r.kind {
            RecordKind::BlockImage => {
                if r.payload.len() != io.block_size() {
                    return Err(ora(
                        600,
                        format!(
                            "internal error code, arguments: [kcrfr_bad_image], [{}], [{}]",
                            r.file_no, r.block_no
                        ),
                    ));
                }
                if r.block_no > io.block_count() {
                    io.resize(r.block_no)?;
                }
                io.write_block(r.block_no, &r.payload)?;
                written += 1;
            }
            RecordKind::FileResize => io.resize(r.block_no)?,
            RecordKind::Checkpoint | RecordKind::ThreadClose => {}
        }
        applied += 1;
        end = end.max(r.scn);
    }
    for io in ios.values() {
        io.sync()?;
    }
    db.advance_scn_to(max_seen)?;
    // The control file follows the recovered headers of files in place.
    for (fno, path, _) in &p.files {
        if opts.paths.contains_key(fno) {
            continue;
        }
        let io = DatafileIo::open(path, false)?;
        let h = io.header()?;
        db.connection().execute(
            r#"UPDATE cf_datafile SET "CHECKPOINT_CHANGE#" = ?1, "CHECKPOINT_TIME" = ?2,
                   checkpoint_stamp = ?3, "BLOCKS" = ?4, "BYTES" = ?5 WHERE "FILE#" = ?6"#,
            params![
                h.checkpoint.scn.0 as i64,
                super::julian_of(h.checkpoint.time),
                h.checkpoint.time.0,
                io.block_count(),
                i64::from(io.block_count()) * io.block_size() as i64,
                fno
            ],
        )?;
    }
    let complete = opts.until.is_none() && p.logs.iter().any(|l| l.online);
    let resetlogs_point = if opts.until.is_some() || info.controlfile_type == "BACKUP" {
        let point = match (p.until_scn, p.until_time) {
            (Some(u), _) => covered.min(Scn(u.0.saturating_sub(1))),
            (None, Some(_)) => end.max(p.files.iter().map(|f| f.2).max().unwrap_or(end)),
            (None, None) => covered,
        };
        let in_place: Vec<u32> = p
            .files
            .iter()
            .filter(|f| !opts.paths.contains_key(&f.0))
            .map(|f| f.0)
            .collect();
        mark_recovered(db, &in_place, point)?;
        Some(point)
    } else {
        None
    };
    Ok(RecoveryReport {
        start_scn: p.start_scn,
        end_scn: end,
        logs_applied: p.logs,
        records_applied: applied,
        blocks_written: written,
        complete,
        resetlogs_point,
    })
}

/// After an incomplete recovery (or one with a backup control file) the files are
/// consistent at `point`: LAST_CHANGE# records it for OPEN RESETLOGS, which is now required;
/// the high-water marks follow the recovered contents.
fn mark_recovered(db: &Database, files: &[u32], point: Scn) -> Result<()> {
    let c = db.connection();
    for &fno in files {
        let d = db.datafile(fno)?;
        let hwm = formatted_end(&DatafileIo::open(&d.path, false)?)?;
        c.execute(
            r#"UPDATE cf_datafile SET "LAST_CHANGE#" = ?1, hwm_blocks = ?2 WHERE "FILE#" = ?3"#,
            params![point.0 as i64, hwm, fno],
        )?;
    }
    c.execute(
        r#"UPDATE cf_database SET "OPEN_RESETLOGS" = 'REQUIRED'"#,
        [],
    )?;
    Ok(())
}

/// The first block after the last formatted one (the workload's high-water mark).
fn formatted_end(io: &DatafileIo) -> Result<u32> {
    let bs = io.block_size();
    let per = (1u32 << 20) / bs as u32;
    let mut buf = vec![0u8; per as usize * bs];
    let mut hi = io.block_count() + 1;
    while hi > 2 {
        let lo = hi.saturating_sub(per).max(2);
        let chunk = &mut buf[..(hi - lo) as usize * bs];
        io.read_blocks(lo, chunk)?;
        if let Some(i) = chunk
            .chunks_exact(bs)
            .rposition(|b| !orca_oracle::block::is_null_block(b))
        {
            return Ok(lo + i as u32 + 1);
        }
        hi = lo;
    }
    Ok(2)
}
