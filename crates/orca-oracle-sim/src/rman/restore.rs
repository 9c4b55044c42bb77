//! RESTORE, RECOVER (incremental backups then redo), RECOVER COPY (incremental merge into
//! image copies) and VALIDATE: everything that reads backup pieces back.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use orca_oracle::block::{Rdba, check_block, is_null_block};
use orca_oracle::{DatafileHeader, OracleTime, Scn};

use super::ast::*;
use super::catalog::{self, BackupDatafileRow, PieceRow, SetRow, StatusEnd};
use super::channel::{Channel, unwrap_io_read};
use super::datetime::elapsed;
use super::job::{self, JobCtx, Step, StepError};
use super::producer::block_scn;
use super::restore_part::{check_run, scan_copy, validate_step, wanted_log_sets};
use super::session::{CmdError, Session, db_lines, now};
use crate::db::{Database, DatafileInfo, RecoverOptions, RecoverUntil};
use crate::piece::{EntryKind, PieceError, PieceReader, Record};

/// Where the blocks of one piece entry go.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key {
    Datafile(u32),
    /// Thread, sequence, RESETLOGS_ID.
    Archlog(u16, u32, u32),
}

/// An archived log to restore: thread, sequence and its incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct LogWant {
    pub thread: u16,
    pub sequence: u32,
    pub resetlogs_scn: Scn,
    pub resetlogs_id: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Full / level-0 restore of datafiles.
    Restore,
    /// Apply a level-1 set (RECOVER, RECOVER COPY).
    Apply,
    /// Restore archived logs.
    Archlog,
    /// Read and check only.
    Validate,
    /// Restore a datafile's blocks for block media recovery (written like `Restore`, into a
    /// scratch copy of the file).
    Blocks,
}

/// A set (or one section piece of it) to read.
#[derive(Debug)]
pub(super) struct ReadStep {
    pub(super) device: DeviceType,
    pub(super) pieces: Vec<PieceRow>,
    pub(super) targets: BTreeMap<Key, PathBuf>,
    pub(super) mode: Mode,
    /// Datafile targets and their paths, for the "restoring datafile" lines.
    pub(super) label: Vec<(Key, PathBuf)>,
}

impl Step for ReadStep {
    fn device(&self) -> Option<DeviceType> {
        Some(self.device)
    }
}

pub(super) fn device_of(p: &PieceRow) -> DeviceType {
    if p.device_type == "DISK" {
        DeviceType::Disk
    } else {
        DeviceType::Sbt
    }
}

/// Lines for a piece that cannot be read; as Oracle's, they name the piece (ORA-19870)
/// above what the device said.
pub(super) fn piece_read_error(e: PieceError, handle: &str) -> StepError {
    match e {
        PieceError::Io(io) => {
            let mut s: StepError = unwrap_io_read(io, handle).into();
            if !s.lines.iter().any(|l| l.starts_with("ORA-19870")) {
                s.lines.insert(
                    0,
                    format!("ORA-19870: error while restoring backup piece {handle}"),
                );
            }
            s
        }
        PieceError::Decrypt => StepError::lines(vec![
            format!("ORA-19870: error while restoring backup piece {handle}"),
            "ORA-19913: unable to decrypt backup".into(),
            "ORA-28365: wallet is not open".into(),
        ]),
        other => StepError::lines(vec![
            format!("ORA-19870: error while restoring backup piece {handle}"),
            format!("ORA-19599: block number 0 is corrupt in backup piece {handle} ({other})"),
        ]),
    }
}

/// Reads the pieces of one step and writes the blocks of the wanted entries.
fn read_step(
    ctx: &JobCtx,
    ch: &mut Channel,
    db: &Database,
    step: ReadStep,
) -> Result<u64, StepError> {
    let start = now();
    let name = ch.name.clone();
    match step.mode {
        Mode::Restore => {
            ctx.out.line(format!(
                "channel {name}: starting datafile backup set restore"
            ));
            ctx.out.line(format!(
                "channel {name}: specifying datafile(s) to restore from backup set"
            ));
            for (k, p) in &step.label {
                if let Key::Datafile(n) = k {
                    ctx.out.line(format!(
                        "channel {name}: restoring datafile {n:05} to {}",
                        p.display()
                    ));
                }
            }
        }
        Mode::Apply => {
            ctx.out.line(format!(
                "channel {name}: starting incremental datafile backup set restore"
            ));
            ctx.out.line(format!(
                "channel {name}: specifying datafile(s) to restore from backup set"
            ));
            for (k, p) in &step.label {
                if let Key::Datafile(n) = k {
                    ctx.out.line(format!(
                        "destination for restore of datafile {n:05}: {}",
                        p.display()
                    ));
                }
            }
        }
        Mode::Archlog => {
            ctx.out.line(format!(
                "channel {name}: starting archived log restore to default destination"
            ));
            for (k, _) in &step.label {
                if let Key::Archlog(t, s, _) = k {
                    ctx.out
                        .line(format!("channel {name}: restoring archived log"));
                    ctx.out
                        .line(format!("archived log thread={t} sequence={s}"));
                }
            }
        }
        Mode::Validate => {
            ctx.out.line(format!(
                "channel {name}: starting validation of datafile backup set"
            ));
        }
        Mode::Blocks => {
            ctx.out.line(format!("channel {name}: restoring block(s)"));
            ctx.out.line(format!(
                "channel {name}: specifying block(s) to restore from backup set"
            ));
            for (k, _) in &step.label {
                if let Key::Datafile(n) = k {
                    ctx.out.line(format!("restoring blocks of datafile {n:05}"));
                }
            }
        }
    }
    if ch.device == DeviceType::Sbt {
        // RMAN first asks the media manager which pieces it has.
        let handles: Vec<String> = step.pieces.iter().map(|p| p.handle.clone()).collect();
        ch.info(&handles)?;
    }
    let mut files: BTreeMap<Key, File> = BTreeMap::new();
    let mut bytes = 0u64;
    for first in &step.pieces {
        // A duplexed piece that cannot be opened fails over to its next available copy.
        let mut others = other_copies(db, first).into_iter();
        let mut p = first.clone();
        ctx.out.line(format!(
            "channel {name}: reading from backup piece {}",
            p.handle
        ));
        let input = loop {
            match ch.open_piece(&p.handle) {
                Ok(input) => break input,
                Err(e) => {
                    let Some(next) = others.next() else {
                        return Err(e.into());
                    };
                    ctx.out.line(format!(
                        "channel {name}: ORA-19870: error while restoring backup piece {}",
                        p.handle
                    ));
                    for l in e.ora_lines() {
                        ctx.out.line(l);
                    }
                    ctx.out.line(format!(
                        "failover to piece handle={} tag={}",
                        next.handle,
                        next.tag.as_deref().unwrap_or("")
                    ));
                    p = next;
                }
            }
        };
        let mut reader = match PieceReader::open(input) {
            Ok(r) => r,
            Err(e) => return Err(piece_read_error(e, &p.handle)),
        };
        if let Some(wraps) = reader.header().key_wraps.clone() {
            let wallet = crate::db::wallet_key(&ctx.home);
            match crate::piece::crypt::open_key(&wraps, &ctx.decryption, wallet.as_ref()) {
                Some(key) => reader.set_key(key),
                None => return Err(piece_read_error(PieceError::Decrypt, &p.handle)),
            }
        }
        let entries = reader.header().entries.clone();
        let mut buf = Vec::new();
        loop {
            let rec = match reader.next_record(&mut buf) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => return Err(piece_read_error(e, &p.handle)),
            };
            let Record::Run {
                entry,
                first_block,
                block_size,
                ..
            } = rec
            else {
                continue;
            };
            bytes += buf.len() as u64;
            let e = &entries[entry as usize];
            let key = match e.kind {
                EntryKind::Datafile => Key::Datafile(e.file_number),
                EntryKind::ArchivedLog => {
                    Key::Archlog(e.file_number as u16, e.sequence, e.ts_number)
                }
                _ => continue,
            };
            if step.mode == Mode::Validate {
                if e.kind == EntryKind::Datafile {
                    check_run(&buf, first_block, block_size, &p.handle)?;
                }
                continue;
            }
            let Some(path) = step.targets.get(&key) else {
                continue;
            };
            if !files.contains_key(&key) {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(|err| {
                        StepError::lines(vec![
                            format!("ORA-19504: failed to create file \"{}\"", path.display()),
                            super::channel::os_error_line(&err),
                        ])
                    })?;
                let want = e.file_blocks * u64::from(block_size);
                if f.metadata().map(|m| m.len()).unwrap_or(0) < want {
                    f.set_len(want).map_err(|err| {
                        StepError::lines(vec![
                            format!("ORA-19502: write error on file \"{}\"", path.display()),
                            super::channel::os_error_line(&err),
                        ])
                    })?;
                }
                files.insert(key.clone(), f);
            }
            let f = &files[&key];
            f.write_all_at(&buf, first_block * u64::from(block_size))
                .map_err(|err| {
                    StepError::lines(vec![
                        format!(
                            "ORA-19502: write error on file \"{}\", block number {first_block} (block size={block_size})",
                            path.display()
                        ),
                        super::channel::os_error_line(&err),
                    ])
                })?;
        }
        let input = reader.into_inner();
        input.finish()?;
        ctx.out.line(format!(
            "channel {name}: piece handle={} tag={}",
            p.handle,
            p.tag.as_deref().unwrap_or("")
        ));
        if step.mode == Mode::Blocks {
            ctx.out.line(format!(
                "channel {name}: restored block(s) from backup piece {}",
                p.piece
            ));
        } else {
            ctx.out
                .line(format!("channel {name}: restored backup piece {}", p.piece));
        }
    }
    for (k, f) in &files {
        f.sync_all().map_err(|err| {
            StepError::lines(vec![format!(
                "ORA-19502: write error on file \"{}\": {err}",
                step.targets[k].display()
            )])
        })?;
    }
    if step.mode == Mode::Archlog {
        for (k, path) in &step.targets {
            if let Key::Archlog(..) = k {
                db.register_archived_log(path, "RMAN")
                    .map_err(|e| StepError::lines(db_lines(&e)))?;
            }
        }
    }
    let verb = match step.mode {
        Mode::Validate => "validation",
        Mode::Blocks => "block restore",
        _ => "restore",
    };
    ctx.out.line(format!(
        "channel {name}: {verb} complete, elapsed time: {}",
        elapsed((now() - start).num_seconds())
    ));
    Ok(bytes)
}

/// The other available copies (BACKUP COPIES) of a piece on its device type, by COPY#.
fn other_copies(db: &Database, p: &PieceRow) -> Vec<PieceRow> {
    let mut v: Vec<PieceRow> = catalog::pieces(db)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            (c.set_stamp, c.set_count, c.piece) == (p.set_stamp, p.set_count, p.piece)
                && c.recid != p.recid
                && c.status == "A"
                && c.device_type == p.device_type
        })
        .collect();
    v.sort_by_key(|c| c.copy);
    v
}

/// Catalog snapshot used to choose backups.
pub(super) struct Backups {
    pub(super) sets: BTreeMap<(u32, u32), SetRow>,
    pieces: Vec<PieceRow>,
    pub(super) datafiles: Vec<BackupDatafileRow>,
    pub(super) redologs: Vec<catalog::BackupRedologRow>,
}

impl Backups {
    pub(super) fn load(db: &Database) -> crate::db::Result<Self> {
        Ok(Self {
            sets: catalog::sets(db)?
                .into_iter()
                .map(|s| ((s.set_stamp, s.set_count), s))
                .collect(),
            pieces: catalog::pieces(db)?,
            datafiles: catalog::backup_datafiles(db)?,
            redologs: catalog::backup_redologs(db)?,
        })
    }

    /// Available pieces of a complete set, by piece number (None if one is missing).
    pub(super) fn usable_pieces(&self, key: (u32, u32)) -> Option<Vec<PieceRow>> {
        let set = self.sets.get(&key)?;
        let mut v: Vec<PieceRow> = self
            .pieces
            .iter()
            .filter(|p| (p.set_stamp, p.set_count) == key && p.status == "A")
            .cloned()
            .collect();
        v.sort_by_key(|p| p.piece);
        v.dedup_by_key(|p| p.piece);
        (v.len() as u32 == set.pieces).then_some(v)
    }

    fn tag_of(&self, key: (u32, u32)) -> Option<String> {
        self.pieces
            .iter()
            .find(|p| (p.set_stamp, p.set_count) == key)
            .and_then(|p| p.tag.clone())
    }
}

/// A multi-section set restores one piece per step so sections restore in parallel.
pub(super) fn split_steps(pieces: Vec<PieceRow>, multi: bool) -> Vec<Vec<PieceRow>> {
    if multi {
        pieces.into_iter().map(|p| vec![p]).collect()
    } else {
        vec![pieces]
    }
}

fn until_of(s: &Session, u: &Until) -> Result<RecoverUntil, CmdError> {
    Ok(match u {
        Until::Scn(n) => RecoverUntil::Scn(Scn(*n)),
        Until::Time(t) => {
            RecoverUntil::Time(OracleTime::from_datetime(s.time(t)?).unwrap_or_default())
        }
        Until::Sequence { sequence, thread } => RecoverUntil::Sequence {
            thread: *thread as u16,
            sequence: *sequence as u32,
        },
    })
}

impl Session {
    fn read_ctx(&self, command: &'static str) -> JobCtx {
        JobCtx {
            home: self.home.clone(),
            out: self.out.clone(),
            faults: self.faults.clone(),
            info: self.info.clone(),
            nls: self.nls.clone(),
            command,
            status: self.current_status.map(|k| (k.recid, k.stamp)),
            decryption: self.decryption.clone(),
        }
    }

    /// Channels for reading pieces of these device types.
    pub(super) fn read_channels(
        &mut self,
        devices: &BTreeSet<DeviceType>,
    ) -> Result<Vec<usize>, CmdError> {
        let mut v = Vec::new();
        if self.in_run
            && self
                .channels
                .iter()
                .any(|(o, _)| *o == super::session::Origin::Run)
        {
            return self.job_channels(None, false);
        }
        for d in devices {
            v.extend(self.job_channels(Some(*d), false)?);
        }
        if v.is_empty() {
            v = self.job_channels(None, false)?;
        }
        Ok(v)
    }

    pub(super) fn run_read(
        &mut self,
        command: &'static str,
        steps: Vec<ReadStep>,
    ) -> Result<u64, CmdError> {
        if steps.is_empty() {
            return Ok(0);
        }
        let devices: BTreeSet<DeviceType> = steps.iter().map(|s| s.device).collect();
        let chans = self.read_channels(&devices)?;
        let ctx = self.read_ctx(command);
        let chosen: Vec<&mut Channel> = self
            .channels
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| chans.contains(i))
            .map(|(_, (_, c))| c)
            .collect();
        let available: BTreeSet<DeviceType> = chosen.iter().map(|c| c.device).collect();
        let missing: Vec<&ReadStep> = steps
            .iter()
            .filter(|s| !available.contains(&s.device))
            .collect();
        if !missing.is_empty() {
            return Err(CmdError::command(
                command,
                vec![format!(
                    "RMAN-06100: no channel to restore a backup or copy of {}",
                    missing[0]
                        .label
                        .first()
                        .map(|(k, _)| match k {
                            Key::Datafile(n) => format!("datafile {n}"),
                            Key::Archlog(t, s, _) =>
                                format!("archived log for thread {t} with sequence {s}"),
                        })
                        .unwrap_or_default()
                )],
            ));
        }
        let outcome = job::run(&ctx, chosen, steps, read_step);
        if !outcome.failures.is_empty() || outcome.not_run > 0 {
            let mut lines: Vec<String> = outcome.failures.into_iter().flatten().collect();
            if lines.is_empty() {
                lines = CmdError::command(
                    command,
                    vec!["RMAN-06091: no channel left to complete the job".into()],
                )
                .lines;
            }
            return Err(CmdError::new(lines));
        }
        Ok(outcome.results.iter().sum())
    }

    fn restore_targets(&self, obj: &RestoreObject) -> Result<Vec<DatafileInfo>, CmdError> {
        let b = match obj {
            RestoreObject::Database => BackupObject::Database,
            RestoreObject::Datafile(v) => BackupObject::Datafile(v.clone()),
            RestoreObject::Tablespace(v) => BackupObject::Tablespace(v.clone()),
            RestoreObject::Archivelog(_) => return Ok(Vec::new()),
        };
        self.datafiles_of(&b)
    }

    pub(super) fn restore(&mut self, r: &Restore, end: &mut StatusEnd) -> Result<(), CmdError> {
        self.out.blank();
        self.out
            .line(format!("Starting restore at {}", self.date(now())));
        let until = match r.until.as_ref().or(self.until.as_ref()) {
            Some(Until::Time(t)) => Some(self.time(t)?),
            _ => None,
        };
        let point = self.restore_point(r.until.as_ref().or(self.until.as_ref()), "restore")?;
        let bk = Backups::load(&self.db).map_err(|e| CmdError::db("restore", e))?;
        if let RestoreObject::Archivelog(range) = &r.object {
            let wanted = self.archivelog_wanted(&bk, range, "restore")?;
            let bytes = if r.preview {
                let keys = wanted_log_sets(&bk, &wanted);
                self.preview_sets(&keys, r.preview_summary)?;
                0
            } else if r.validate {
                let steps = wanted_log_sets(&bk, &wanted)
                    .into_iter()
                    .map(|key| validate_step(&bk, key))
                    .collect();
                self.run_read("restore", steps)?
            } else {
                self.restore_logs(&bk, &wanted, "restore")?
            };
            end.input_bytes = bytes;
            end.output_bytes = bytes;
            self.out
                .line(format!("Finished restore at {}", self.date(now())));
            return Ok(());
        }
        let files = self.restore_targets(&r.object)?;
        let mut by_set: BTreeMap<(u32, u32), Vec<DatafileInfo>> = BTreeMap::new();
        let mut copies: Vec<(DatafileInfo, catalog::CopyRow)> = Vec::new();
        let mut missing = Vec::new();
        for f in files {
            let best = bk
                .datafiles
                .iter()
                .filter(|d| d.file_no == f.file_no && d.is_base())
                .filter(|d| until.is_none_or(|u| d.checkpoint_time <= u))
                .filter(|d| point.admits(d))
                .filter(|d| bk.usable_pieces((d.set_stamp, d.set_count)).is_some())
                .filter(|d| {
                    r.from_tag.as_ref().is_none_or(|t| {
                        bk.tag_of((d.set_stamp, d.set_count)).as_deref() == Some(t.as_str())
                    })
                })
                .max_by_key(|d| (d.checkpoint_scn, d.completion_time));
            let copy = catalog::copies(&self.db)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.file_no == f.file_no && c.status == "A")
                .filter(|c| {
                    r.from_tag
                        .as_ref()
                        .is_none_or(|t| c.tag.as_deref() == Some(t.as_str()))
                })
                .filter(|c| until.is_none_or(|u| c.checkpoint_time <= u))
                .filter(|c| point.admits_copy(c))
                .filter(|c| Path::new(&c.name).is_file() && Path::new(&c.name) != f.path)
                .max_by_key(|c| c.checkpoint_scn);
            match (best, copy) {
                (Some(d), Some(c)) if c.checkpoint_scn > d.checkpoint_scn => copies.push((f, c)),
                (Some(d), _) => by_set
                    .entry((d.set_stamp, d.set_count))
                    .or_default()
                    .push(f),
                (None, Some(c)) => copies.push((f, c)),
                (None, None) => missing.push(f.file_no),
            }
        }
        if !missing.is_empty() {
            let mut lines =
                vec!["RMAN-06026: some targets not found - aborting restore".to_string()];
            for n in &missing {
                lines.push(format!(
                    "RMAN-06023: no backup or copy of datafile {n} found to restore"
                ));
            }
            return Err(CmdError::command("restore", lines));
        }
        if r.preview {
            self.preview_restore(&bk, &by_set, &copies, r.preview_summary)?;
            self.out
                .line(format!("Finished restore at {}", self.date(now())));
            return Ok(());
        }
        let mode = if r.validate {
            Mode::Validate
        } else {
            self.refuse_files_in_use(&bk, &by_set, &copies)?;
            Mode::Restore
        };
        let mut steps = Vec::new();
        for (key, files) in &by_set {
            let pieces = bk.usable_pieces(*key).unwrap_or_default();
            let multi = bk.sets.get(key).is_some_and(|s| s.multi_section);
            let mut targets = BTreeMap::new();
            let mut label = Vec::new();
            for f in files {
                let dest = self.restore_destination(f);
                targets.insert(Key::Datafile(f.file_no), dest.clone());
                label.push((Key::Datafile(f.file_no), dest.clone()));
                if mode == Mode::Restore {
                    let blocks = bk
                        .datafiles
                        .iter()
                        .find(|d| (d.set_stamp, d.set_count) == *key && d.file_no == f.file_no)
                        .map_or(u64::from(f.blocks), |d| d.datafile_blocks);
                    create_empty(&dest, (blocks + 1) * f.block_size as u64)
                        .map_err(|e| CmdError::command("restore", e))?;
                }
            }
            for group in split_steps(pieces, multi) {
                steps.push(ReadStep {
                    device: device_of(&group[0]),
                    pieces: group,
                    targets: targets.clone(),
                    mode,
                    label: label.clone(),
                });
            }
        }
        let mut bytes = self.run_read("restore", steps)?;
        if !copies.is_empty() {
            let chans = self.job_channels(Some(DeviceType::Disk), false)?;
            let name = self.channels[chans[0]].1.name.clone();
            for (f, c) in &copies {
                bytes += c.blocks * u64::from(c.block_size);
                if r.validate {
                    self.out
                        .line(format!("channel {name}: scanning datafile copy {}", c.name));
                    scan_copy(Path::new(&c.name), f.rfile_no)
                        .map_err(|e| CmdError::command("restore", e))?;
                    continue;
                }
                let dest = self.restore_destination(f);
                self.out.line(format!(
                    "channel {name}: restoring datafile {:05} to {}",
                    f.file_no,
                    dest.display()
                ));
                std::fs::copy(&c.name, &dest).map_err(|e| {
                    CmdError::command(
                        "restore",
                        vec![
                            format!("ORA-19505: failed to identify file \"{}\"", c.name),
                            super::channel::os_error_line(&e),
                        ],
                    )
                })?;
                self.out.line(format!(
                    "channel {name}: copied datafile copy of datafile {:05}",
                    f.file_no
                ));
                self.out.line(format!(
                    "output file name={} RECID={} STAMP={}",
                    dest.display(),
                    c.recid,
                    c.stamp
                ));
            }
        }
        if !r.validate {
            let restored = by_set
                .values()
                .flatten()
                .chain(copies.iter().map(|(f, _)| f));
            for f in restored {
                self.record_restored(f)?;
            }
        }
        end.input_bytes = bytes;
        end.output_bytes = if r.validate { 0 } else { bytes };
        self.out
            .line(format!("Finished restore at {}", self.date(now())));
        Ok(())
    }

    /// The backed-up archived logs in a range, each with the incarnation it belongs to
    /// (the current one when a log's branch point is shared with it).
    fn archivelog_wanted(
        &self,
        bk: &Backups,
        range: &ArchivelogRange,
        command: &'static str,
    ) -> Result<Vec<LogWant>, CmdError> {
        let incarnations = self
            .db
            .incarnations()
            .map_err(|e| CmdError::db(command, e))?;
        let current = self.info.resetlogs_id;
        let mut wanted: Vec<LogWant> = bk
            .redologs
            .iter()
            .filter(|r| bk.usable_pieces((r.set_stamp, r.set_count)).is_some())
            .filter(|r| match range {
                ArchivelogRange::All => true,
                ArchivelogRange::Sequence {
                    from,
                    until,
                    thread,
                } => {
                    thread.is_none_or(|t| u32::from(r.thread) == t)
                        && from.is_none_or(|f| u64::from(r.sequence) >= f)
                        && until.is_none_or(|u| u64::from(r.sequence) <= u)
                }
                ArchivelogRange::Scn { from, until } => {
                    from.is_none_or(|f| r.next_scn.0 > f) && until.is_none_or(|u| r.first_scn.0 < u)
                }
                ArchivelogRange::Time { .. } | ArchivelogRange::Completed { .. } => true,
            })
            .map(|r| LogWant {
                thread: r.thread,
                sequence: r.sequence,
                resetlogs_scn: r.resetlogs_scn,
                resetlogs_id: incarnations
                    .iter()
                    .filter(|i| i.resetlogs_scn == r.resetlogs_scn)
                    .map(|i| i.resetlogs_id)
                    .find(|&id| id == current)
                    .or_else(|| {
                        incarnations
                            .iter()
                            .find(|i| i.resetlogs_scn == r.resetlogs_scn)
                            .map(|i| i.resetlogs_id)
                    })
                    .unwrap_or(current),
            })
            .collect();
        wanted.sort();
        wanted.dedup();
        Ok(wanted)
    }

    /// Restores the given logs that are not on disk.
    fn restore_logs(
        &mut self,
        bk: &Backups,
        wanted: &[LogWant],
        command: &'static str,
    ) -> Result<u64, CmdError> {
        let on_disk = self
            .db
            .archived_logs()
            .map_err(|e| CmdError::db(command, e))?;
        let mut by_set: BTreeMap<(u32, u32), Vec<LogWant>> = BTreeMap::new();
        for w in wanted {
            let (t, s) = (w.thread, w.sequence);
            if let Some(l) = on_disk.iter().find(|l| {
                l.thread == t
                    && l.sequence == s
                    && l.resetlogs_id == w.resetlogs_id
                    && l.status == "A"
                    && l.name.as_ref().is_some_and(|n| n.is_file())
            }) {
                self.out.line(format!(
                    "archived log for thread {t} with sequence {s} is already on disk as file {}",
                    l.name
                        .as_ref()
                        .map(|n| n.display().to_string())
                        .unwrap_or_default()
                ));
                continue;
            }
            let Some(r) = bk
                .redologs
                .iter()
                .filter(|r| r.thread == t && r.sequence == s)
                .filter(|r| r.resetlogs_scn == w.resetlogs_scn)
                .filter(|r| bk.usable_pieces((r.set_stamp, r.set_count)).is_some())
                .max_by_key(|r| (r.set_stamp, r.set_count))
            else {
                return Err(CmdError::command(
                    command,
                    vec![
                        "RMAN-06026: some targets not found - aborting restore".into(),
                        format!(
                            "RMAN-06025: no backup of archived log for thread {t} with sequence {s} and starting SCN of 0 found to restore"
                        ),
                    ],
                ));
            };
            by_set
                .entry((r.set_stamp, r.set_count))
                .or_default()
                .push(*w);
        }
        let mut steps = Vec::new();
        for (key, logs) in by_set {
            let pieces = bk.usable_pieces(key).unwrap_or_default();
            let mut targets = BTreeMap::new();
            let mut label = Vec::new();
            for w in logs {
                let path = self
                    .db
                    .archived_log_path_in(w.thread, w.sequence, w.resetlogs_id);
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let _ = std::fs::remove_file(&path);
                let key = Key::Archlog(w.thread, w.sequence, w.resetlogs_id);
                targets.insert(key.clone(), path.clone());
                label.push((key, path));
            }
            steps.push(ReadStep {
                device: device_of(&pieces[0]),
                pieces,
                targets,
                mode: Mode::Archlog,
                label,
            });
        }
        self.run_read(command, steps)
    }

    pub(super) fn recover(&mut self, r: &Recover, end: &mut StatusEnd) -> Result<(), CmdError> {
        self.out.blank();
        self.out
            .line(format!("Starting recover at {}", self.date(now())));
        let obj = match &r.object {
            RecoverObject::Database => BackupObject::Database,
            RecoverObject::Datafile(v) => BackupObject::Datafile(v.clone()),
            RecoverObject::Tablespace(v) => BackupObject::Tablespace(v.clone()),
        };
        let files = self.datafiles_of(&obj)?;
        for f in &files {
            let busy = self
                .db
                .datafile_in_use(f)
                .and_then(|u| Ok(u && !self.db.datafile_needs_recovery(f)?))
                .map_err(|e| CmdError::db("recover", e))?;
            if busy {
                return Err(CmdError::command(
                    "recover",
                    vec![
                        format!(
                            "ORA-01124: cannot recover data file {} - file is in use or recovery",
                            f.file_no
                        ),
                        format!("ORA-01110: data file {}: '{}'", f.file_no, f.path.display()),
                    ],
                ));
            }
        }
        let until_u = r.until.as_ref().or(self.until.as_ref()).cloned();
        let until_time = match &until_u {
            Some(Until::Time(t)) => Some(self.time(t)?),
            _ => None,
        };
        let point = self.restore_point(until_u.as_ref(), "recover")?;
        let bk = Backups::load(&self.db).map_err(|e| CmdError::db("recover", e))?;
        // Level-1 incrementals first, chained from each file's current checkpoint.
        let mut steps = Vec::new();
        let mut applied: BTreeMap<(u32, u32), Vec<DatafileInfo>> = BTreeMap::new();
        for f in &files {
            let mut ckpt = match file_checkpoint(&f.path) {
                Some(c) => c,
                None => {
                    return Err(CmdError::command(
                        "recover",
                        vec![format!(
                            "RMAN-06094: datafile {} must be restored",
                            f.file_no
                        )],
                    ));
                }
            };
            loop {
                let next = bk
                    .datafiles
                    .iter()
                    .filter(|d| d.file_no == f.file_no && d.incremental_level == Some(1))
                    .filter(|d| d.incremental_scn <= ckpt && d.checkpoint_scn > ckpt)
                    .filter(|d| until_time.is_none_or(|u| d.checkpoint_time <= u))
                    .filter(|d| point.admits(d))
                    .filter(|d| bk.usable_pieces((d.set_stamp, d.set_count)).is_some())
                    .max_by_key(|d| d.checkpoint_scn);
                let Some(d) = next else { break };
                ckpt = d.checkpoint_scn;
                applied
                    .entry((d.set_stamp, d.set_count))
                    .or_default()
                    .push(f.clone());
            }
        }
        // Older sets first so a chain applies in order.
        let mut ordered: Vec<((u32, u32), Vec<DatafileInfo>)> = applied.into_iter().collect();
        ordered.sort_by_key(|(k, _)| bk.sets.get(k).map(|s| s.completion_time));
        let mut bytes = 0;
        for (key, files) in ordered {
            let pieces = bk.usable_pieces(key).unwrap_or_default();
            let targets: BTreeMap<Key, PathBuf> = files
                .iter()
                .map(|f| (Key::Datafile(f.file_no), f.path.clone()))
                .collect();
            steps.push(ReadStep {
                device: device_of(&pieces[0]),
                pieces,
                label: targets
                    .iter()
                    .map(|(k, p)| (k.clone(), p.clone()))
                    .collect(),
                targets,
                mode: Mode::Apply,
            });
            // Each set applies after the previous one: run them one by one.
            bytes += self.run_read("recover", std::mem::take(&mut steps))?;
        }
        if !r.noredo {
            let opts = RecoverOptions {
                until: until_u.as_ref().map(|u| until_of(self, u)).transpose()?,
                files: match &r.object {
                    RecoverObject::Database => None,
                    _ => Some(files.iter().map(|f| f.file_no).collect()),
                },
                ..RecoverOptions::default()
            };
            end.input_bytes = bytes;
            bytes += self.media_recovery(&opts, end)?;
        }
        end.input_bytes = bytes;
        self.out.blank();
        self.out
            .line(format!("Finished recover at {}", self.date(now())));
        Ok(())
    }

    /// Applies redo (restoring missing archived logs from backups first), printing RMAN's
    /// "starting media recovery" .. "media recovery complete"; returns the bytes restored.
    pub(super) fn media_recovery(
        &mut self,
        opts: &RecoverOptions,
        end: &mut StatusEnd,
    ) -> Result<u64, CmdError> {
        self.out.blank();
        self.out.line("starting media recovery");
        let start = now();
        let mut bytes = 0;
        let mut opts = opts.clone();
        let plan = self
            .db
            .recovery_plan(&opts)
            .map_err(|e| CmdError::db("recover", e))?;
        // Redo past the last log a backup control file knows of ends the recovery there.
        let mut unknown: Option<(u16, u32, Scn)> = None;
        if !plan.missing.is_empty() {
            let bk = Backups::load(&self.db).map_err(|e| CmdError::db("recover", e))?;
            let backed_up = |m: &crate::db::MissingLog| {
                bk.redologs.iter().any(|r| {
                    r.thread == m.thread
                        && r.sequence == m.sequence
                        && r.resetlogs_scn == m.resetlogs_scn
                        && bk.usable_pieces((r.set_stamp, r.set_count)).is_some()
                })
            };
            let unavailable: Vec<&crate::db::MissingLog> =
                plan.missing.iter().filter(|m| !backed_up(m)).collect();
            if opts.until.is_none() && self.info.controlfile_type == "BACKUP" {
                unknown = unavailable
                    .iter()
                    .filter(|m| m.resetlogs_id == self.info.resetlogs_id)
                    .filter(|m| {
                        let later = |thread: u16, rid: u32, seq: u32| {
                            thread == m.thread && rid == m.resetlogs_id && seq > m.sequence
                        };
                        !plan
                            .logs
                            .iter()
                            .any(|l| later(l.thread, l.resetlogs_id, l.sequence))
                            && !plan
                                .missing
                                .iter()
                                .any(|x| later(x.thread, x.resetlogs_id, x.sequence))
                    })
                    .filter_map(|m| {
                        let previous = m.sequence.wrapping_sub(1);
                        plan.logs
                            .iter()
                            .find(|l| {
                                l.thread == m.thread
                                    && l.resetlogs_id == m.resetlogs_id
                                    && l.sequence == previous
                            })
                            .and_then(|l| l.next_scn)
                            .or_else(|| {
                                bk.redologs
                                    .iter()
                                    .find(|r| {
                                        r.thread == m.thread
                                            && r.sequence == previous
                                            && r.resetlogs_scn == m.resetlogs_scn
                                    })
                                    .map(|r| r.next_scn)
                            })
                            .or(m.first_scn)
                            .map(|scn| (m.thread, m.sequence, scn))
                    })
                    .min_by_key(|x| x.2);
            }
            let unavailable: Vec<&crate::db::MissingLog> = unavailable
                .into_iter()
                .filter(|m| unknown.is_none_or(|(t, _, _)| m.thread != t))
                .collect();
            if let Some((_, _, scn)) = unknown {
                opts.until = Some(RecoverUntil::Scn(scn));
            }
            let wanted: Vec<LogWant> = plan
                .missing
                .iter()
                .filter(|m| backed_up(m))
                .filter(|m| unknown.is_none_or(|(_, _, scn)| m.first_scn.is_none_or(|f| f < scn)))
                .map(|m| LogWant {
                    thread: m.thread,
                    sequence: m.sequence,
                    resetlogs_scn: m.resetlogs_scn,
                    resetlogs_id: m.resetlogs_id,
                })
                .collect();
            if let Some(m) = unavailable.first() {
                return Err(CmdError::command(
                    "recover",
                    vec![
                        "RMAN-06053: unable to perform media recovery because of missing log"
                            .into(),
                        format!(
                            "RMAN-06025: no backup of archived log for thread {} with sequence {} and starting SCN of {} found to restore",
                            m.thread,
                            m.sequence,
                            m.first_scn.map(|s| s.0).unwrap_or(0)
                        ),
                    ],
                ));
            }
            bytes += self.restore_logs(&bk, &wanted, "recover")?;
        }
        let plan = self
            .db
            .recovery_plan(&opts)
            .map_err(|e| CmdError::db("recover", e))?;
        for l in plan.logs.iter().filter(|l| !l.online) {
            self.out.line(format!(
                "archived log for thread {} with sequence {} is already on disk as file {}",
                l.thread,
                l.sequence,
                l.path.display()
            ));
        }
        let report = self
            .db
            .recover(&opts)
            .map_err(|e| CmdError::db("recover", e))?;
        for l in report.logs_applied.iter().filter(|l| !l.online) {
            self.out.line(format!(
                "archived log file name={} thread={} sequence={}",
                l.path.display(),
                l.thread,
                l.sequence
            ));
        }
        if let Some((t, s, scn)) = unknown {
            self.out.line("unable to find archived log");
            self.out
                .line(format!("archived log thread={t} sequence={s}"));
            end.input_bytes += bytes;
            return Err(CmdError::command(
                "recover",
                vec![format!(
                    "RMAN-06054: media recovery requesting unknown archived log for thread {t} with sequence {s} and starting SCN of {}",
                    scn.0
                )],
            ));
        }
        self.out.line(format!(
            "media recovery complete, elapsed time: {}",
            elapsed((now() - start).num_seconds())
        ));
        Ok(bytes)
    }

    pub(super) fn recover_copy(
        &mut self,
        datafiles: Option<&[u32]>,
        tag: Option<&str>,
        until: Option<&TimeExpr>,
        end: &mut StatusEnd,
    ) -> Result<(), CmdError> {
        self.out.blank();
        self.out
            .line(format!("Starting recover at {}", self.date(now())));
        let until = until.map(|t| self.time(t)).transpose()?;
        let bk = Backups::load(&self.db).map_err(|e| CmdError::db("recover", e))?;
        let files = match datafiles {
            Some(v) => self.datafiles_of(&BackupObject::Datafile(v.to_vec()))?,
            None => self.datafiles_of(&BackupObject::Database)?,
        };
        let copies = catalog::copies(&self.db).map_err(|e| CmdError::db("recover", e))?;
        let mut any_channel = false;
        let mut bytes = 0;
        for f in &files {
            let copy = copies
                .iter()
                .filter(|c| c.file_no == f.file_no && c.status == "A")
                .filter(|c| tag.is_none_or(|t| c.tag.as_deref() == Some(t)))
                .max_by_key(|c| c.checkpoint_scn)
                .cloned();
            let Some(copy) = copy else {
                self.out.line(format!(
                    "no copy of datafile {} found to recover",
                    f.file_no
                ));
                continue;
            };
            let mut ckpt = copy.checkpoint_scn;
            let mut last: Option<&BackupDatafileRow> = None;
            loop {
                let next = bk
                    .datafiles
                    .iter()
                    .filter(|d| d.file_no == f.file_no && d.incremental_level == Some(1))
                    .filter(|d| d.incremental_scn <= ckpt && d.checkpoint_scn > ckpt)
                    .filter(|d| {
                        tag.is_none_or(|t| {
                            bk.tag_of((d.set_stamp, d.set_count)).as_deref() == Some(t)
                        })
                    })
                    .filter(|d| until.is_none_or(|u| d.checkpoint_time <= u))
                    .filter(|d| bk.usable_pieces((d.set_stamp, d.set_count)).is_some())
                    .min_by_key(|d| d.checkpoint_scn);
                let Some(d) = next else { break };
                if !any_channel {
                    any_channel = true;
                }
                let pieces = bk
                    .usable_pieces((d.set_stamp, d.set_count))
                    .unwrap_or_default();
                let mut targets = BTreeMap::new();
                targets.insert(Key::Datafile(f.file_no), PathBuf::from(&copy.name));
                self.out.line(format!(
                    "recovering datafile copy file number={:05} name={}",
                    f.file_no, copy.name
                ));
                bytes += self.run_read(
                    "recover",
                    vec![ReadStep {
                        device: device_of(&pieces[0]),
                        pieces,
                        targets,
                        mode: Mode::Apply,
                        label: Vec::new(),
                    }],
                )?;
                ckpt = d.checkpoint_scn;
                last = Some(d);
            }
            if let Some(d) = last {
                let blocks = d.datafile_blocks;
                catalog::update_copy_checkpoint(
                    &self.db,
                    copy.recid,
                    d.checkpoint_scn,
                    d.checkpoint_time,
                    blocks,
                )
                .map_err(|e| CmdError::db("recover", e))?;
            }
        }
        if !any_channel {
            self.job_channels(Some(DeviceType::Disk), false)?;
        }
        end.input_bytes = bytes;
        self.out
            .line(format!("Finished recover at {}", self.date(now())));
        Ok(())
    }

    pub(super) fn validate(&mut self, v: &Validate, _end: &mut StatusEnd) -> Result<(), CmdError> {
        let obj = match v {
            Validate::Database => BackupObject::Database,
            Validate::Datafile(v) => BackupObject::Datafile(v.clone()),
            Validate::Tablespace(v) => BackupObject::Tablespace(v.clone()),
            Validate::Backupset(keys) => return self.validate_backupsets(keys),
        };
        let files: Vec<u32> = self.datafiles_of(&obj)?.iter().map(|f| f.file_no).collect();
        self.validate_datafiles(&files, "validate")
    }

    fn validate_backupsets(&mut self, keys: &[u64]) -> Result<(), CmdError> {
        self.out.blank();
        self.out
            .line(format!("Starting validate at {}", self.date(now())));
        let bk = Backups::load(&self.db).map_err(|e| CmdError::db("validate", e))?;
        let mut steps = Vec::new();
        for k in keys {
            let Some(set) = bk.sets.values().find(|s| s.recid as u64 == *k) else {
                return Err(CmdError::command(
                    "validate",
                    vec![format!(
                        "RMAN-06160: no backup pieces found for backup set key: {k}"
                    )],
                ));
            };
            let key = (set.set_stamp, set.set_count);
            let pieces = bk.usable_pieces(key).ok_or_else(|| {
                CmdError::command(
                    "validate",
                    vec![format!(
                        "RMAN-06160: no backup pieces found for backup set key: {k}"
                    )],
                )
            })?;
            steps.push(ReadStep {
                device: device_of(&pieces[0]),
                pieces,
                targets: BTreeMap::new(),
                mode: Mode::Validate,
                label: Vec::new(),
            });
        }
        self.run_read("validate", steps)?;
        self.out
            .line(format!("Finished validate at {}", self.date(now())));
        Ok(())
    }

    /// Reads every block of the files and checks headers, tails and checksums.
    pub(super) fn validate_datafiles(
        &mut self,
        files: &[u32],
        command: &'static str,
    ) -> Result<(), CmdError> {
        self.out.blank();
        self.out
            .line(format!("Starting {command} at {}", self.date(now())));
        let chans = self.job_channels(None, false)?;
        let name = self.channels[chans[0]].1.name.clone();
        let start = now();
        self.out
            .line(format!("channel {name}: starting validation of datafile"));
        self.out.line(format!(
            "channel {name}: specifying datafile(s) for validation"
        ));
        let mut report = Vec::new();
        for n in files {
            let info = self.db.datafile(*n).map_err(|e| CmdError::db(command, e))?;
            self.out.line(format!(
                "input datafile file number={:05} name={}",
                n,
                info.path.display()
            ));
            let io = self
                .db
                .open_datafile(*n, false)
                .map_err(|e| CmdError::db(command, e))?;
            let bs = io.block_size();
            let total = io.block_count() + 1;
            let (mut empty, mut corrupt, mut high) = (0u64, 0u64, Scn(0));
            let mut found: Vec<(u32, &str)> = Vec::new();
            let mut buf = vec![0u8; bs];
            for b in 1..total {
                io.read_block(b, &mut buf)
                    .map_err(|e| CmdError::db(command, e))?;
                if is_null_block(&buf) {
                    // Every block below the high-water mark was formatted once.
                    if b < info.hwm_blocks {
                        corrupt += 1;
                        found.push((b, "ALL ZERO"));
                    } else {
                        empty += 1;
                    }
                    continue;
                }
                let rdba = Rdba::new(info.rfile_no, b).ok();
                if let Err(e) = check_block(&buf, rdba) {
                    corrupt += 1;
                    found.push((b, crate::db::corruption_kind(&e)));
                }
                high = high.max(block_scn(&buf));
            }
            self.db
                .record_block_corruption(*n, &found)
                .map_err(|e| CmdError::db(command, e))?;
            report.push((
                *n,
                info.path.clone(),
                corrupt,
                empty,
                u64::from(total - 1),
                high,
            ));
        }
        self.out.line(format!(
            "channel {name}: validation complete, elapsed time: {}",
            elapsed((now() - start).num_seconds())
        ));
        self.out.line("List of Datafiles");
        self.out.line("=================");
        self.out
            .line("File Status Marked Corrupt Empty Blocks Blocks Examined High SCN");
        self.out
            .line("---- ------ -------------- ------------ --------------- ----------");
        let mut failed = false;
        for (n, path, corrupt, empty, examined, high) in &report {
            failed |= *corrupt > 0;
            self.out.line(format!(
                "{:<4} {:<6} {:<14} {:<12} {:<15} {}",
                n,
                if *corrupt > 0 { "FAILED" } else { "OK" },
                corrupt,
                empty,
                examined,
                high.0
            ));
            self.out.line(format!("  File Name: {}", path.display()));
        }
        if failed {
            self.out.line("validate found one or more corrupt blocks");
        }
        self.out
            .line(format!("Finished {command} at {}", self.date(now())));
        Ok(())
    }
}

/// Checkpoint SCN in a datafile's header block (None if the file is missing or unreadable).
fn file_checkpoint(path: &Path) -> Option<Scn> {
    let f = File::open(path).ok()?;
    let mut b0 = [0u8; 512];
    f.read_exact_at(&mut b0, 0).ok()?;
    let fh = orca_oracle::FileHeaderBlock::parse(&b0).ok()?;
    let bs = fh.block_size as usize;
    let mut b1 = vec![0u8; bs];
    f.read_exact_at(&mut b1, bs as u64).ok()?;
    DatafileHeader::parse(&b1).ok().map(|h| h.checkpoint.scn)
}

/// Creates (or truncates) a datafile about to be restored, at its full size.
pub(super) fn create_empty(path: &Path, len: u64) -> Result<(), Vec<String>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| vec![super::channel::os_error_line(&e)])?;
    }
    let f = File::create(path).map_err(|e| {
        vec![
            format!("ORA-19504: failed to create file \"{}\"", path.display()),
            super::channel::os_error_line(&e),
        ]
    })?;
    f.set_len(len)
        .map_err(|e| vec![super::channel::os_error_line(&e)])
}
