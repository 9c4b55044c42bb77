//! Restoring in part and elsewhere: Oracle's refusal to restore files an open instance uses,
//! restores to SET NEWNAME locations (cataloged as datafile copies), RESTORE ... PREVIEW and
//! VALIDATE, and the restore that block media recovery reads its blocks from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use orca_oracle::block::{Rdba, check_block, is_null_block};
use orca_oracle::{DatafileHeader, Scn};

use super::ast::*;
use super::catalog;
use super::job::StepError;
use super::restore::{Backups, Key, LogWant, Mode, ReadStep, create_empty, device_of, split_steps};
use super::session::{CmdError, Session, now};
use crate::db::DatafileInfo;

impl Session {
    /// Where RESTORE writes a datafile: the name SET NEWNAME gave it, else its own.
    pub(super) fn restore_destination(&self, f: &DatafileInfo) -> PathBuf {
        self.newnames
            .get(&f.file_no)
            .cloned()
            .unwrap_or_else(|| f.path.clone())
    }

    /// RESTORE of a datafile an open instance uses fails before anything is written
    /// (RMAN-03002, ORA-19870, ORA-19573), as Oracle's exclusive enqueue makes it fail.
    pub(super) fn refuse_files_in_use(
        &mut self,
        bk: &Backups,
        by_set: &BTreeMap<(u32, u32), Vec<DatafileInfo>>,
        copies: &[(DatafileInfo, catalog::CopyRow)],
    ) -> Result<(), CmdError> {
        let in_place = |s: &Self, f: &DatafileInfo| s.restore_destination(f) == f.path;
        let mut busy = None;
        'sets: for (key, files) in by_set {
            for f in files {
                let used = self
                    .db
                    .datafile_in_use(f)
                    .map_err(|e| CmdError::db("restore", e))?;
                if in_place(self, f) && used {
                    busy = Some((Some(*key), f.clone()));
                    break 'sets;
                }
            }
        }
        if busy.is_none() {
            for (f, _) in copies {
                let used = self
                    .db
                    .datafile_in_use(f)
                    .map_err(|e| CmdError::db("restore", e))?;
                if in_place(self, f) && used {
                    busy = Some((None, f.clone()));
                    break;
                }
            }
        }
        let Some((key, f)) = busy else {
            return Ok(());
        };
        let enqueue = format!(
            "ORA-19573: cannot obtain exclusive enqueue for datafile {}",
            f.file_no
        );
        let Some(key) = key else {
            return Err(CmdError::command("restore", vec![enqueue]));
        };
        let pieces = bk.usable_pieces(key).unwrap_or_default();
        let devices: BTreeSet<DeviceType> = pieces.iter().map(device_of).collect();
        let chans = self.read_channels(&devices)?;
        let name = self.channels[chans[0]].1.name.clone();
        let handle = pieces.first().map(|p| p.handle.clone()).unwrap_or_default();
        self.out.line(format!(
            "channel {name}: starting datafile backup set restore"
        ));
        self.out.line(format!(
            "channel {name}: specifying datafile(s) to restore from backup set"
        ));
        self.out.line(format!(
            "channel {name}: restoring datafile {:05} to {}",
            f.file_no,
            f.path.display()
        ));
        self.out.line(format!(
            "channel {name}: reading from backup piece {handle}"
        ));
        Err(CmdError::command(
            "restore",
            vec![
                format!("ORA-19870: error while restoring backup piece {handle}"),
                enqueue,
            ],
        ))
    }

    /// After RESTORE: a file restored in place needs media recovery; one restored to a new
    /// name (SET NEWNAME) is a datafile copy until SWITCH makes it the datafile.
    pub(super) fn record_restored(&self, f: &DatafileInfo) -> Result<(), CmdError> {
        let dest = self.restore_destination(f);
        if dest == f.path {
            return self
                .db
                .mark_restored(f.file_no)
                .map_err(|e| CmdError::db("restore", e));
        }
        let h = crate::db::DatafileIo::open(&dest, false)
            .and_then(|io| Ok((io.header()?, io.block_count())))
            .map_err(|e| CmdError::db("restore", e))?;
        let (h, blocks) = h;
        let ckpt_time = h.checkpoint.time.to_datetime().unwrap_or_else(|_| now());
        catalog::insert_copy(
            &self.db,
            &catalog::CopyRow {
                recid: 0,
                stamp: 0,
                name: dest.display().to_string(),
                tag: None,
                file_no: f.file_no,
                rfile_no: f.rfile_no,
                creation_scn: f.creation_scn,
                incremental_level: None,
                checkpoint_scn: h.checkpoint.scn,
                checkpoint_time: ckpt_time,
                blocks: u64::from(blocks),
                block_size: f.block_size as u32,
                status: "A".into(),
                completion_time: now(),
            },
            self.current_status.map(|k| (k.recid, k.stamp)),
        )
        .map_err(|e| CmdError::db("restore", e))?;
        Ok(())
    }

    /// RESTORE ... PREVIEW [SUMMARY]: the backups RESTORE would read and where recovery
    /// would start, without reading anything.
    pub(super) fn preview_restore(
        &mut self,
        bk: &Backups,
        by_set: &BTreeMap<(u32, u32), Vec<DatafileInfo>>,
        copies: &[(DatafileInfo, catalog::CopyRow)],
        summary: bool,
    ) -> Result<(), CmdError> {
        let mut start: Option<Scn> = None;
        let mut fuzzy = Scn(0);
        for (key, files) in by_set {
            for d in bk.datafiles.iter().filter(|d| {
                (d.set_stamp, d.set_count) == *key && files.iter().any(|f| f.file_no == d.file_no)
            }) {
                start = Some(start.map_or(d.checkpoint_scn, |s| s.min(d.checkpoint_scn)));
                fuzzy = fuzzy.max(d.absolute_fuzzy_scn);
            }
        }
        for (_, c) in copies {
            start = Some(start.map_or(c.checkpoint_scn, |s| s.min(c.checkpoint_scn)));
        }
        let mut keys: Vec<(u32, u32)> = by_set.keys().copied().collect();
        let on_disk = self
            .db
            .archived_logs()
            .map_err(|e| CmdError::db("restore", e))?;
        if let Some(start) = start {
            let mut needed = Vec::new();
            for l in bk.redologs.iter().filter(|l| l.next_scn > start) {
                // Only the logs of the recovery branch count.
                let Some(rid) = self
                    .db
                    .branch_resetlogs_id(l.resetlogs_scn)
                    .map_err(|e| CmdError::db("restore", e))?
                else {
                    continue;
                };
                let on_disk = on_disk.iter().any(|a| {
                    a.thread == l.thread
                        && a.sequence == l.sequence
                        && a.resetlogs_id == rid
                        && a.name.as_ref().is_some_and(|n| n.is_file())
                });
                if !on_disk {
                    needed.push(LogWant {
                        thread: l.thread,
                        sequence: l.sequence,
                        resetlogs_scn: l.resetlogs_scn,
                        resetlogs_id: rid,
                    });
                }
            }
            keys.extend(wanted_log_sets(bk, &needed));
        }
        keys.sort();
        keys.dedup();
        self.preview_sets(&keys, summary)?;
        if !copies.is_empty() {
            self.out.blank();
            self.out.line("List of Datafile Copies");
            self.out.line("=======================");
            self.out.blank();
            self.out
                .line("Key     File S Completion Time Ckp SCN    Ckp Time        Name");
            self.out
                .line("------- ---- - --------------- ---------- --------------- ----");
            for (f, c) in copies {
                self.out.line(format!(
                    "{:<7} {:<4} {} {:<15} {:<10} {:<15} {}",
                    c.recid,
                    f.file_no,
                    c.status,
                    self.date(c.completion_time),
                    c.checkpoint_scn.0,
                    self.date(c.checkpoint_time),
                    c.name
                ));
            }
        }
        if let Some(start) = start {
            let logs: Vec<&crate::db::ArchivedLog> = on_disk
                .iter()
                .filter(|a| a.next_scn > start && a.name.as_ref().is_some_and(|n| n.is_file()))
                .collect();
            if !logs.is_empty() {
                self.print_log_table(logs);
            }
            if let Some(Until::Scn(u)) = self.until.as_ref() {
                self.out
                    .line(format!("recovery will be done up to SCN {u}"));
            }
            self.out
                .line(format!("Media recovery start SCN is {}", start.0));
            if fuzzy > start {
                self.out.line(format!(
                    "Recovery must be done beyond SCN {} to clear datafile fuzziness",
                    fuzzy.0
                ));
            }
        }
        Ok(())
    }

    /// Lists backup sets as LIST BACKUP [SUMMARY] does.
    pub(super) fn preview_sets(
        &mut self,
        keys: &[(u32, u32)],
        summary: bool,
    ) -> Result<(), CmdError> {
        let bk = Backups::load(&self.db).map_err(|e| CmdError::db("restore", e))?;
        let sets: Vec<u64> = keys
            .iter()
            .filter_map(|k| bk.sets.get(k))
            .map(|s| s.recid as u64)
            .collect();
        if sets.is_empty() {
            return Ok(());
        }
        if !summary {
            self.out.blank();
            self.out.line("List of Backup Sets");
            self.out.line("===================");
        }
        self.list(&List::Backup {
            summary,
            expired: false,
            of: None,
            tag: None,
            sets,
            device: None,
            recoverable: false,
        })
    }

    /// Restores the newest full or level-0 backup (or image copy) of a datafile into
    /// `dest`, printing RMAN's block-restore messages (block media recovery reads its blocks
    /// from there).
    pub(super) fn restore_for_block_recovery(
        &mut self,
        f: &DatafileInfo,
        dest: &Path,
    ) -> Result<u64, CmdError> {
        let bk = Backups::load(&self.db).map_err(|e| CmdError::db("recover", e))?;
        let best = bk
            .datafiles
            .iter()
            .filter(|d| d.file_no == f.file_no && d.is_base())
            .filter(|d| bk.usable_pieces((d.set_stamp, d.set_count)).is_some())
            .max_by_key(|d| (d.checkpoint_scn, d.completion_time));
        let copy = catalog::copies(&self.db)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.file_no == f.file_no && c.status == "A")
            .filter(|c| Path::new(&c.name).is_file() && Path::new(&c.name) != f.path)
            .max_by_key(|c| c.checkpoint_scn);
        let newer_copy = match (best, &copy) {
            (Some(d), Some(c)) => c.checkpoint_scn > d.checkpoint_scn,
            (None, c) => c.is_some(),
            (Some(_), None) => false,
        };
        match (best, copy) {
            (Some(d), _) if !newer_copy => {
                let key = (d.set_stamp, d.set_count);
                let pieces = bk.usable_pieces(key).unwrap_or_default();
                create_empty(dest, (d.datafile_blocks + 1) * f.block_size as u64)
                    .map_err(|e| CmdError::command("recover", e))?;
                let mut targets = BTreeMap::new();
                targets.insert(Key::Datafile(f.file_no), dest.to_path_buf());
                let multi = bk.sets.get(&key).is_some_and(|s| s.multi_section);
                let steps = split_steps(pieces, multi)
                    .into_iter()
                    .map(|group| ReadStep {
                        device: device_of(&group[0]),
                        pieces: group,
                        targets: targets.clone(),
                        mode: Mode::Blocks,
                        label: vec![(Key::Datafile(f.file_no), dest.to_path_buf())],
                    })
                    .collect();
                self.run_read("recover", steps)
            }
            (_, Some(c)) => {
                let chans = self.job_channels(Some(DeviceType::Disk), false)?;
                let name = self.channels[chans[0]].1.name.clone();
                self.out.line(format!(
                    "channel {name}: restoring block(s) from datafile copy {}",
                    c.name
                ));
                std::fs::copy(&c.name, dest).map_err(|e| {
                    CmdError::command(
                        "recover",
                        vec![
                            format!("ORA-19505: failed to identify file \"{}\"", c.name),
                            super::channel::os_error_line(&e),
                        ],
                    )
                })?;
                Ok(c.blocks * u64::from(c.block_size))
            }
            (_, None) => Err(CmdError::command(
                "recover",
                vec![
                    "RMAN-06026: some targets not found - aborting restore".into(),
                    format!(
                        "RMAN-06023: no backup or copy of datafile {} found to restore",
                        f.file_no
                    ),
                ],
            )),
        }
    }
}

/// The newest usable set holding each of these logs (of its incarnation).
pub(super) fn wanted_log_sets(bk: &Backups, wanted: &[LogWant]) -> Vec<(u32, u32)> {
    let mut keys: Vec<(u32, u32)> = wanted
        .iter()
        .filter_map(|w| {
            bk.redologs
                .iter()
                .filter(|r| r.thread == w.thread && r.sequence == w.sequence)
                .filter(|r| r.resetlogs_scn == w.resetlogs_scn)
                .filter(|r| bk.usable_pieces((r.set_stamp, r.set_count)).is_some())
                .max_by_key(|r| (r.set_stamp, r.set_count))
                .map(|r| (r.set_stamp, r.set_count))
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A step reading every piece of a set to check it (RESTORE ... VALIDATE).
pub(super) fn validate_step(bk: &Backups, key: (u32, u32)) -> ReadStep {
    let pieces = bk.usable_pieces(key).unwrap_or_default();
    ReadStep {
        device: device_of(&pieces[0]),
        pieces,
        targets: BTreeMap::new(),
        mode: Mode::Validate,
        label: Vec::new(),
    }
}

/// Reads every block of an image copy and checks it (RESTORE ... VALIDATE of a copy).
pub(super) fn scan_copy(path: &Path, rfile_no: u32) -> Result<(), Vec<String>> {
    let io = crate::db::DatafileIo::open(path, false).map_err(|e| {
        vec![format!(
            "ORA-19505: failed to identify file \"{}\" ({e})",
            path.display()
        )]
    })?;
    let mut buf = vec![0u8; io.block_size()];
    for b in 2..=io.block_count() {
        io.read_block(b, &mut buf).map_err(|e| {
            vec![format!(
                "ORA-19501: read error on file \"{}\" ({e})",
                path.display()
            )]
        })?;
        if is_null_block(&buf) {
            continue;
        }
        if check_block(&buf, Rdba::new(rfile_no, b).ok()).is_err() {
            return Err(vec![format!(
                "ORA-19566: exceeded limit of 0 corrupt blocks for file {}",
                path.display()
            )]);
        }
    }
    Ok(())
}

/// Checks the blocks of one run read from a piece (RESTORE ... VALIDATE).
pub(super) fn check_run(
    buf: &[u8],
    first_block: u64,
    block_size: u32,
    handle: &str,
) -> Result<(), StepError> {
    for (i, blk) in buf.chunks_exact(block_size as usize).enumerate() {
        if is_null_block(blk) {
            continue;
        }
        let n = first_block + i as u64;
        let ok = if n == 1 {
            DatafileHeader::parse(blk).is_ok()
        } else {
            check_block(blk, None).is_ok()
        };
        if !ok {
            return Err(StepError::lines(vec![
                format!("ORA-19870: error while restoring backup piece {handle}"),
                format!("ORA-19599: block number {n} is corrupt in backup piece {handle}"),
            ]));
        }
    }
    Ok(())
}
