//! `oraclesim workload`: DML-like block changes, inserts into never-formatted
//! blocks, file growth, checkpoints and log switches, all logged in redo.

use super::blockgen::{self, Profile, Rng};
use super::redo::{self, Writers};
use super::{Database, DatafileIo, DbError, Result, bct, oracle_now};
use orca_oracle::{OracleTime, RecordKind, RedoRecord, Scn};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a workload run does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadOptions {
    /// Percentage (0-100) of each file's formatted blocks to change.
    pub change_pct: f64,
    /// MiB to add, spread over the USERS datafiles (all files if none).
    pub grow_mb: u64,
    /// Log switches (with archiving) spread evenly over the run; with 0 the
    /// run ends with a checkpoint instead.
    pub log_switches: u32,
    /// Seed (mixed with the current SCN so repeated runs differ).
    pub seed: u64,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            change_pct: 5.0,
            grow_mb: 0,
            log_switches: 0,
            seed: 1,
        }
    }
}

/// What a workload run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// Existing blocks changed.
    pub blocks_changed: u64,
    /// Never-formatted blocks formatted (inserts).
    pub blocks_formatted: u64,
    /// Blocks added by growing files.
    pub blocks_grown: u64,
    /// Redo records written.
    pub redo_records: u64,
    /// Archived logs written, as (thread, sequence).
    pub archived: Vec<(u16, u32)>,
    /// SCN before the run.
    pub start_scn: Scn,
    /// SCN after the run.
    pub end_scn: Scn,
}

#[derive(Clone, Copy)]
struct Change {
    file_no: u32,
    block: u32,
    insert: bool,
}

const BATCH: usize = 512;
const PER_THREAD_RUN: usize = 64;

fn select_blocks(rng: &mut Rng, from: u32, to: u32, n: u64, out: &mut Vec<Change>, file_no: u32) {
    // Selection sampling (Knuth's algorithm S): n distinct blocks, in order.
    let total = u64::from(to.saturating_sub(from));
    let mut need = n.min(total);
    let mut left = total;
    let mut b = from;
    while need > 0 && b < to {
        if rng.below(left) < need {
            out.push(Change {
                file_no,
                block: b,
                insert: false,
            });
            need -= 1;
        }
        left -= 1;
        b += 1;
    }
}

pub(super) fn run(db: &Database, opts: &WorkloadOptions) -> Result<WorkloadReport> {
    if !(0.0..=100.0).contains(&opts.change_pct) || opts.change_pct.is_nan() {
        return Err(DbError::Invalid(format!(
            "--change-pct {}: use a percentage from 0 to 100",
            opts.change_pct
        )));
    }
    if opts.grow_mb > 1 << 20 {
        return Err(DbError::Invalid(format!(
            "--grow-mb {}: at most 1048576",
            opts.grow_mb
        )));
    }
    db.require_open()?;
    let start_scn = db.current_scn()?;
    let mut rng = Rng::new(blockgen::mix(&[opts.seed, start_scn.0, 0x3017]));
    // Offline files take no changes (Oracle refuses DML on them).
    let files: Vec<_> = db
        .datafiles()?
        .into_iter()
        .filter(|d| d.is_online())
        .collect();
    let contents: HashMap<String, String> = db
        .tablespaces()?
        .into_iter()
        .map(|t| (t.name, t.contents))
        .collect();
    let profile_of =
        |ts: &str| Profile::from_contents(contents.get(ts).map(String::as_str).unwrap_or("USERS"));

    // Growth targets and new sizes.
    let mut new_blocks: HashMap<u32, u32> = files.iter().map(|d| (d.file_no, d.blocks)).collect();
    let mut grown: Vec<(u32, u32)> = Vec::new();
    if opts.grow_mb > 0 {
        let users: Vec<_> = files
            .iter()
            .filter(|d| profile_of(&d.tablespace) == Profile::Users)
            .collect();
        let targets: Vec<_> = if users.is_empty() {
            files.iter().collect()
        } else {
            users
        };
        let bs = files.first().map_or(8192, |d| d.block_size) as u64;
        let total = opts.grow_mb * (1 << 20) / bs;
        let k = targets.len() as u64;
        for (i, d) in targets.iter().enumerate() {
            let add = total / k + u64::from((i as u64) < total % k);
            let nb = u64::from(d.blocks) + add;
            if nb > u64::from(orca_oracle::block::MAX_BLOCK_NO) {
                return Err(DbError::Invalid(format!(
                    "growing {} by {add} blocks exceeds the 4194303-block limit of a smallfile datafile",
                    d.path.display()
                )));
            }
            if add > 0 {
                new_blocks.insert(d.file_no, nb as u32);
                grown.push((d.file_no, nb as u32));
            }
        }
    }

    // The change plan: updates of formatted blocks, then inserts at the HWM.
    let mut changes: Vec<Change> = Vec::new();
    for d in &files {
        let formatted = d.hwm_blocks.saturating_sub(2);
        let n = ((f64::from(formatted) * opts.change_pct / 100.0).round() as u64)
            .min(u64::from(formatted));
        select_blocks(&mut rng, 2, d.hwm_blocks, n, &mut changes, d.file_no);
        let limit = new_blocks[&d.file_no] + 1;
        let grown_extra = u64::from(new_blocks[&d.file_no] - d.blocks) / 2;
        let inserts = (n / 10 + grown_extra).min(u64::from(limit.saturating_sub(d.hwm_blocks)));
        for i in 0..inserts as u32 {
            changes.push(Change {
                file_no: d.file_no,
                block: d.hwm_blocks + i,
                insert: true,
            });
        }
    }
    for i in (1..changes.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        changes.swap(i, j);
    }
    let k = opts.log_switches as usize;
    // Switch points; several may coincide when there are few changes.
    let cuts: Vec<usize> = (1..=k).map(|i| i * changes.len() / k).collect();

    let mut report = WorkloadReport {
        start_scn,
        ..Default::default()
    };
    let last_recid = db.archived_logs()?.last().map_or(0, |a| a.recid);
    let by_no: HashMap<u32, &super::DatafileInfo> = files.iter().map(|d| (d.file_no, d)).collect();

    if !grown.is_empty() {
        let _lock = db.lock()?;
        let mut writers = Writers::open_all(db)?;
        let mut tracker = bct::Tracker::load(db)?;
        for &(fno, nb) in &grown {
            let d = by_no[&fno];
            let scn = db.allocate_scn()?;
            grow_file(db, &mut writers, &mut tracker, d, nb, scn, oracle_now())?;
            report.blocks_grown += u64::from(nb - d.blocks);
            report.redo_records += 2;
        }
        writers.flush(db)?;
        if let Some(t) = tracker {
            t.save()?;
        }
    }

    let mut pos = 0usize;
    let mut cut_iter = cuts.into_iter().peekable();
    let mut block = vec![0u8; files.first().map_or(8192, |d| d.block_size)];
    loop {
        let next_cut = cut_iter.peek().copied().unwrap_or(changes.len());
        let end = (pos + BATCH).min(next_cut).min(changes.len());
        if end > pos {
            let batch = &changes[pos..end];
            let _lock = db.lock()?;
            let mut writers = Writers::open_all(db)?;
            let mut tracker = bct::Tracker::load(db)?;
            let first = db.allocate_scns(batch.len() as u64)?;
            let now = oracle_now();
            let mut ios: HashMap<u32, DatafileIo> = HashMap::new();
            let mut hwm: HashMap<u32, u32> = HashMap::new();
            for (j, ch) in batch.iter().enumerate() {
                let d = by_no[&ch.file_no];
                // Tablespaces may have their own block size.
                block.resize(d.block_size, 0);
                let scn = Scn(first.0 + j as u64);
                let io = match ios.entry(ch.file_no) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(DatafileIo::open(&d.path, true)?)
                    }
                };
                if ch.insert {
                    blockgen::format_block(
                        &mut block,
                        profile_of(&d.tablespace),
                        d.rfile_no,
                        ch.block,
                        70_000 + ch.file_no * 1000,
                        scn,
                        1,
                        &mut rng,
                    )?;
                    let h = hwm.entry(ch.file_no).or_insert(0);
                    *h = (*h).max(ch.block + 1);
                    report.blocks_formatted += 1;
                } else {
                    io.read_block(ch.block, &mut block)?;
                    blockgen::change_block(&mut block, scn, &mut rng)?;
                    report.blocks_changed += 1;
                }
                io.write_block(ch.block, &block)?;
                let w = writers.pick((pos + j) / PER_THREAD_RUN)?;
                let thread = w.thread;
                w.append_record(
                    db,
                    &RedoRecord {
                        kind: RecordKind::BlockImage,
                        thread,
                        scn,
                        time: now,
                        file_no: ch.file_no as u16,
                        block_no: ch.block,
                        payload: block.clone(),
                    },
                )?;
                report.redo_records += 1;
                if let Some(t) = tracker.as_mut() {
                    t.record(ch.file_no, ch.block, scn);
                }
            }
            writers.flush(db)?;
            if let Some(t) = tracker {
                t.save()?;
            }
            for (fno, h) in hwm {
                db.connection().execute(
                    "UPDATE cf_datafile SET hwm_blocks = max(hwm_blocks, ?1) WHERE \"FILE#\" = ?2",
                    params![h, fno],
                )?;
            }
            pos = end;
        }
        if cut_iter.peek() == Some(&pos) {
            cut_iter.next();
            let _lock = db.lock()?;
            let mut writers = Writers::open_all(db)?;
            redo::checkpoint(db, &mut writers)?;
            redo::switch_all(db, &mut writers)?;
            continue;
        }
        if pos >= changes.len() && cut_iter.peek().is_none() {
            break;
        }
    }
    if k == 0 {
        let _lock = db.lock()?;
        let mut writers = Writers::open_all(db)?;
        redo::checkpoint(db, &mut writers)?;
        writers.flush(db)?;
    }
    // Logs archived by explicit switches and by logs filling up.
    report.archived = db
        .archived_logs()?
        .into_iter()
        .filter(|a| a.recid > last_recid)
        .map(|a| (a.thread, a.sequence))
        .collect();
    report.end_scn = db.current_scn()?;
    Ok(report)
}

fn grow_file(
    db: &Database,
    writers: &mut Writers,
    tracker: &mut Option<bct::Tracker>,
    d: &super::DatafileInfo,
    blocks: u32,
    scn: Scn,
    now: OracleTime,
) -> Result<()> {
    let mut io = DatafileIo::open(&d.path, true)?;
    io.resize(blocks)?;
    let mut h = io.header()?;
    h.file_size_blocks = blocks;
    let img = io.write_header(&h)?;
    let w = writers.pick(0)?;
    let thread = w.thread;
    for rec in [
        RedoRecord {
            kind: RecordKind::FileResize,
            thread,
            scn,
            time: now,
            file_no: d.file_no as u16,
            block_no: blocks,
            payload: Vec::new(),
        },
        RedoRecord {
            kind: RecordKind::BlockImage,
            thread,
            scn,
            time: now,
            file_no: d.file_no as u16,
            block_no: 1,
            payload: img,
        },
    ] {
        w.append_record(db, &rec)?;
    }
    if let Some(t) = tracker.as_mut() {
        t.record(d.file_no, 1, scn);
    }
    db.connection().execute(
        r#"UPDATE cf_datafile SET "BLOCKS" = ?1, "BYTES" = ?2 WHERE "FILE#" = ?3"#,
        params![blocks, i64::from(blocks) * d.block_size as i64, d.file_no],
    )?;
    Ok(())
}
