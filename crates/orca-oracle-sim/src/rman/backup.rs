//! BACKUP: planning of backup sets (FILESPERSET, SECTION SIZE, NOT BACKED UP, level-1
//! parents, FOR RECOVER OF COPY), writing them through the channels, and recording them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use orca_oracle::format::{FormatContext, FormatKind, expand_format};
use orca_oracle::{OracleTime, Scn};

use super::ast::*;
use super::catalog::{
    self, BackupDatafileRow, BackupRedologRow, CopyRow, PieceRow, SetRow, StatusEnd,
};
use super::channel::{Channel, ChannelError, PieceDone, PieceOut, unwrap_io};
use super::datetime::elapsed;
use super::job::{self, JobCtx, Step, StepError};
use super::producer::{Chunk, FileCursor, Filter, Producer, ReadError};
use super::session::{CmdError, Session, db_lines, now};
use crate::db::{ArchivedLog, Database, DatafileInfo, DbError};
use crate::piece::{
    BackupType, EntryKind, PieceEntry, PieceError, PieceHeader, PieceWriter, RECORD_HEADER,
};
use crate::sbt::ObjectInfo;
use crate::sbt::ffi::{SBTOBJECT_ARCHLOG, SBTOBJECT_DATAFILE, SBTOBJECT_OTHER};

/// One file of a set.
#[derive(Debug, Clone)]
pub enum Member {
    Datafile {
        info: DatafileInfo,
        /// INCREMENTAL_CHANGE# for level 1.
        since: Option<Scn>,
    },
    Archlog(ArchivedLog),
    Controlfile,
    Spfile,
}

/// What kind of set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    Datafile { level: Option<u8>, cumulative: bool },
    Archivelog,
}

/// A backup set to write.
#[derive(Debug, Clone)]
pub struct SetPlan {
    pub kind: SetKind,
    pub members: Vec<Member>,
    pub tag: String,
    pub formats: Vec<String>,
    pub delete_input: Option<bool>,
    pub for_recover_of_copy: bool,
    /// BACKUP ... KEEP: an archival set.
    pub keep: Option<KeepAttrs>,
    pub pool: u32,
    /// Multi-section: (shared state, section index).
    pub section: Option<(Arc<Multi>, usize)>,
    /// Bound to a device type (autobackup on the command's device).
    pub device: Option<DeviceType>,
    /// Bound to one channel (CHANNEL c of the backup specification).
    pub channel: Option<String>,
    /// AS COMPRESSED BACKUPSET (or configured for the device): the zstd level the block
    /// data is compressed at.
    pub compressed: Option<i32>,
    /// BACKUP COPIES (or CONFIGURE ... BACKUP COPIES): copies of every piece, 1..4.
    pub copies: Option<u32>,
    /// Encrypted pieces: who may open their data keys.
    pub encryption: Option<Encryption>,
}

/// KEEP attributes of an archival set, as V$BACKUP_SET records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepAttrs {
    /// KEEP_UNTIL; None: forever.
    pub until: Option<NaiveDateTime>,
    /// KEEP_OPTIONS: `LOGS`, `NOLOGS` or `BACKUP_LOGS`.
    pub options: &'static str,
}

/// The secrets an encrypted set's data keys are wrapped under: the password (SET ENCRYPTION
/// ... IDENTIFIED BY), the wallet's master key (transparent), or both (dual mode).
#[derive(Clone, PartialEq, Eq)]
pub struct Encryption {
    pub password: Option<String>,
    pub wallet: Option<[u8; 32]>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field("password", &self.password.is_some())
            .field("wallet", &self.wallet.is_some())
            .finish()
    }
}

/// Shared state of a multi-section set.
#[derive(Debug)]
pub struct Multi {
    /// (first block, block count) per section.
    pub sections: Vec<(u32, u32)>,
    pub section_blocks: u32,
    pub state: Mutex<MultiState>,
}

#[derive(Debug, Default)]
pub struct MultiState {
    pub set: Option<(u32, u32, NaiveDateTime)>,
    pub done: usize,
    pub blocks: u64,
    pub blocks_read: u64,
    pub max_scn: Scn,
    pub checkpoint: Option<(Scn, NaiveDateTime, Scn)>,
}

/// An image copy to make.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    pub info: DatafileInfo,
    pub tag: String,
    pub format: Option<String>,
    pub level0: bool,
}

/// A step of a BACKUP job.
#[derive(Debug)]
pub enum BackupStep {
    Set(SetPlan),
    Copy(CopyPlan),
}

impl Step for BackupStep {
    fn device(&self) -> Option<DeviceType> {
        match self {
            BackupStep::Set(s) => s.device,
            BackupStep::Copy(_) => Some(DeviceType::Disk),
        }
    }

    fn channel(&self) -> Option<&str> {
        match self {
            BackupStep::Set(s) => s.channel.as_deref(),
            BackupStep::Copy(_) => None,
        }
    }
}

/// What a finished step reports.
#[derive(Debug, Default)]
pub struct StepDone {
    pub input_bytes: u64,
    pub output_bytes: u64,
}

fn ndt(t: OracleTime) -> NaiveDateTime {
    t.to_datetime().unwrap_or_default()
}

/// Default piece name when no FORMAT applies.
pub fn default_format(home: &Path, device: DeviceType) -> String {
    match device {
        DeviceType::Disk => format!("{}/backup/%U", home.display()),
        DeviceType::Sbt => "%U".into(),
    }
}

/// A disk name without a directory lands in `<home>/dbs`, as Oracle puts it in `$ORACLE_HOME/dbs`.
pub fn disk_path(home: &Path, name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        home.join("dbs").join(name).display().to_string()
    }
}

/// FORMAT context for a piece or copy.
pub fn format_ctx(
    ctx: &JobCtx,
    kind: FormatKind,
    set_count: u32,
    set_stamp: u32,
    piece: u32,
) -> FormatContext {
    FormatContext {
        kind,
        db_name: ctx.info.name.clone(),
        dbid: ctx.info.dbid,
        set_count,
        set_stamp: OracleTime(set_stamp),
        piece_no: piece,
        copy_no: 1,
        activation_id: ctx.info.activation_id,
        file_no: None,
        tablespace: None,
        file_name: None,
        thread: None,
        sequence: None,
        date: now(),
        autobackup_seq: 0,
    }
}

fn format_error(e: impl std::fmt::Display, fmt: &str) -> StepError {
    StepError::lines(vec![
        format!("ORA-19508: failed to expand format string \"{fmt}\""),
        format!("Additional information: {e}"),
    ])
}

fn read_error(e: ReadError) -> StepError {
    let mut v = vec![format!(
        "ORA-19501: read error on file \"{}\", block number {} (block size={})",
        e.path, e.block, e.block_size
    )];
    match &e.io {
        Some(io) => v.push(super::channel::os_error_line(io)),
        None => v.push(format!("Additional information: {}", e.reason)),
    }
    StepError::lines(v)
}

fn piece_error(e: PieceError) -> StepError {
    match e {
        PieceError::Io(io) => unwrap_io(io).into(),
        other => StepError::lines(vec![format!("ORA-19599: {other}")]),
    }
}

fn db_error(e: DbError) -> StepError {
    StepError::lines(db_lines(&e))
}

impl Session {
    pub(super) fn backup(&mut self, b: &Backup, end: &mut StatusEnd) -> Result<(), CmdError> {
        let cmd = if b.plus_archivelog.is_some() {
            "backup plus archivelog"
        } else {
            "backup"
        };
        if b.validate {
            return self.backup_validate(b);
        }
        if b.recover_of_copy.is_some() && b.incremental.is_none_or(|i| i.level == 0) {
            return Err(CmdError::command(
                cmd,
                vec![
                    "RMAN-06578: INCREMENTAL LEVEL > 0 must be specified with FOR RECOVER OF"
                        .into(),
                ],
            ));
        }
        if b.as_copy && b.incremental.is_some_and(|i| i.level > 0) {
            return Err(CmdError::command(
                cmd,
                vec!["RMAN-06022: level must be 0 for image copies".into()],
            ));
        }
        let mut stats = StepDone::default();
        let mut devices: Vec<DeviceType> = Vec::new();
        if let Some(plus) = &b.plus_archivelog {
            let switched = self.backup_phase(
                b,
                Phase::PlusArchivelog(plus, ArchivelogRange::All),
                cmd,
                &mut stats,
                &mut devices,
            )?;
            self.backup_phase(b, Phase::Main, cmd, &mut stats, &mut devices)?;
            // As Oracle: the second pass takes only the logs generated since the first
            // pass's switch, not every log again.
            let since =
                switched
                    .iter()
                    .map(|l| l.next_scn.0)
                    .min()
                    .map_or(ArchivelogRange::All, |from| ArchivelogRange::Scn {
                        from: Some(from),
                        until: None,
                    });
            self.backup_phase(
                b,
                Phase::PlusArchivelog(plus, since),
                cmd,
                &mut stats,
                &mut devices,
            )?;
        } else {
            let start_scn = self.db.current_scn().map_err(|e| CmdError::db(cmd, e))?;
            self.backup_phase(b, Phase::Main, cmd, &mut stats, &mut devices)?;
            // An archival backup of an open database is consistent only with the redo
            // generated while it ran: Oracle backs those logs up with the same KEEP.
            if let Some(logs) = self.archival_log_opts(b) {
                self.backup_phase(
                    b,
                    Phase::PlusArchivelog(
                        &logs,
                        ArchivelogRange::Scn {
                            from: Some(start_scn.0),
                            until: None,
                        },
                    ),
                    cmd,
                    &mut stats,
                    &mut devices,
                )?;
            }
        }
        end.input_bytes = stats.input_bytes;
        end.output_bytes = stats.output_bytes;
        end.object_type = Some(object_type(b));
        devices.sort();
        devices.dedup();
        end.device_type = match devices.as_slice() {
            [d] => Some(d.name().to_string()),
            [] => None,
            _ => Some("*".into()),
        };
        if self.config().autobackup && !self.autobackup_deferred {
            let device = devices
                .first()
                .copied()
                .unwrap_or(self.config().default_device);
            self.autobackup(device, cmd)?;
        }
        Ok(())
    }

    fn backup_phase(
        &mut self,
        b: &Backup,
        phase: Phase<'_>,
        cmd: &'static str,
        stats: &mut StepDone,
        devices: &mut Vec<DeviceType>,
    ) -> Result<Vec<ArchivedLog>, CmdError> {
        let start = now();
        self.out.blank();
        self.out
            .line(format!("Starting backup at {}", self.date(start)));
        let default_tag = format!("TAG{}", start.format("%Y%m%dT%H%M%S"));
        let mut items: Vec<(BackupObject, BackupOpts)> = Vec::new();
        let mut switched = Vec::new();
        match phase {
            Phase::PlusArchivelog(o, range) => {
                switched = self.db.switch_logfile().map_err(|e| CmdError::db(cmd, e))?;
                self.out.line("current log archived");
                items.push((BackupObject::Archivelog(range), o.over(&b.opts)));
            }
            Phase::Main => {
                for s in &b.specs {
                    items.push((s.object.clone(), s.opts.over(&b.opts)));
                }
                // Oracle archives the current log before backing up logs up to "now"
                // (ALL, or FROM ... with no UNTIL), so the backup covers all redo so far.
                let open_ended = items.iter().any(|(o, _)| {
                    matches!(
                        o,
                        BackupObject::Archivelog(
                            ArchivelogRange::All
                                | ArchivelogRange::Sequence { until: None, .. }
                                | ArchivelogRange::Scn { until: None, .. }
                                | ArchivelogRange::Time { until: None, .. }
                        )
                    )
                });
                if open_ended && self.can_archive_current() {
                    switched = self.db.switch_logfile().map_err(|e| CmdError::db(cmd, e))?;
                    self.out.line("current log archived");
                }
            }
        }
        let chans = self.job_channels(b.device, false)?;
        for name in items.iter().filter_map(|(_, o)| o.channel.as_deref()) {
            if !chans
                .iter()
                .any(|&i| self.channels[i].1.name.eq_ignore_ascii_case(name))
            {
                return Err(CmdError::command(
                    cmd,
                    vec![format!("RMAN-06012: channel: {name} not allocated")],
                ));
            }
        }
        let channel_device = self.channels[chans[0]].1.device;
        devices.push(channel_device);
        let mut steps = self.plan(b, &items, &default_tag, chans.len(), channel_device, cmd)?;
        let compressed = b.compressed.unwrap_or_else(|| {
            self.config()
                .backup_type
                .get(&channel_device)
                .is_some_and(|t| t.starts_with("COMPRESSED"))
        });
        let config = self.config();
        let level = config.compression_level();
        let encryption = self.backup_encryption(&config, cmd)?;
        for step in &mut steps {
            if let BackupStep::Set(s) = step {
                s.compressed = compressed.then_some(level);
                s.encryption = encryption.clone();
                s.copies = s.copies.or_else(|| {
                    Some(config.backup_copies(s.kind == SetKind::Archivelog, channel_device))
                });
            }
        }
        let outcome = self.run_backup_steps(&chans, steps, cmd);
        stats.input_bytes += outcome.results.iter().map(|r| r.input_bytes).sum::<u64>();
        stats.output_bytes += outcome.results.iter().map(|r| r.output_bytes).sum::<u64>();
        if !outcome.failures.is_empty() || outcome.not_run > 0 {
            let mut lines: Vec<String> = outcome.failures.into_iter().flatten().collect();
            if lines.is_empty() {
                lines = CmdError::command(
                    cmd,
                    vec![
                        "RMAN-06091: no channel allocated for backup of the remaining files".into(),
                    ],
                )
                .lines;
            }
            return Err(CmdError::new(lines));
        }
        self.out
            .line(format!("Finished backup at {}", self.date(now())));
        Ok(switched)
    }

    /// How this backup's pieces are encrypted: SET ENCRYPTION of the session, else CONFIGURE
    /// ENCRYPTION FOR DATABASE ON (transparent). Every mode but password-only (ONLY) needs
    /// the wallet open, as Oracle's needs its keystore.
    fn backup_encryption(
        &self,
        config: &super::config::Config,
        cmd: &'static str,
    ) -> Result<Option<Encryption>, CmdError> {
        let set = match &self.encryption {
            Some(s) => s.clone(),
            None => config.encryption_for_database().then_some(EncryptionSet {
                password: None,
                only: false,
            }),
        };
        let Some(set) = set else {
            return Ok(None);
        };
        if set.only {
            return Ok(Some(Encryption {
                password: set.password,
                wallet: None,
            }));
        }
        match crate::db::wallet_key(&self.home) {
            Some(w) => Ok(Some(Encryption {
                password: set.password,
                wallet: Some(w),
            })),
            None => Err(CmdError::command(
                cmd,
                vec![
                    "ORA-19914: unable to encrypt backup".into(),
                    "ORA-28365: wallet is not open".into(),
                ],
            )),
        }
    }

    /// KEEP attributes of a BACKUP's sets: NOLOGS when asked for or when the database is not
    /// open (a consistent backup), LOGS when asked for, else BACKUP_LOGS (the backup of an
    /// open database needs the archived logs of its time).
    fn keep_attrs(&self, opts: &BackupOpts) -> Result<Option<KeepAttrs>, CmdError> {
        let Some(k) = &opts.keep else {
            return Ok(None);
        };
        let until = k.until.as_ref().map(|t| self.time(t)).transpose()?;
        let options = match k.logs {
            Some(true) => "LOGS",
            Some(false) => "NOLOGS",
            None if self.db.is_open().unwrap_or(false) => "BACKUP_LOGS",
            None => "NOLOGS",
        };
        Ok(Some(KeepAttrs { until, options }))
    }

    /// The operands of the archived-log pass of an archival (KEEP) backup of datafiles, if
    /// it needs one: the KEEP and FORMAT of its first datafile specification.
    fn archival_log_opts(&self, b: &Backup) -> Option<BackupOpts> {
        if !self.can_archive_current() {
            return None;
        }
        b.specs.iter().find_map(|s| {
            let o = s.opts.over(&b.opts);
            let datafiles = matches!(
                s.object,
                BackupObject::Database | BackupObject::Datafile(_) | BackupObject::Tablespace(_)
            );
            let keep = o.keep.clone().filter(|k| k.logs != Some(false))?;
            datafiles.then(|| BackupOpts {
                keep: Some(keep),
                formats: o.formats.clone(),
                tag: o.tag.clone(),
                ..BackupOpts::default()
            })
        })
    }

    /// Whether ALTER SYSTEM ARCHIVE LOG CURRENT would succeed: open, in ARCHIVELOG mode.
    fn can_archive_current(&self) -> bool {
        self.db.is_open().unwrap_or(false)
            && self.db.info().is_ok_and(|i| i.log_mode == "ARCHIVELOG")
    }

    /// Runs backup steps on the chosen channels.
    fn run_backup_steps(
        &mut self,
        chans: &[usize],
        steps: Vec<BackupStep>,
        cmd: &'static str,
    ) -> job::JobOutcome<StepDone> {
        let ctx = JobCtx {
            home: self.home.clone(),
            out: self.out.clone(),
            faults: self.faults.clone(),
            info: self.info.clone(),
            nls: self.nls.clone(),
            command: if cmd.starts_with("backup") {
                "backup"
            } else {
                cmd
            },
            status: self.current_status.map(|k| (k.recid, k.stamp)),
            decryption: Vec::new(),
        };
        let chosen: Vec<&mut Channel> = self
            .channels
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| chans.contains(i))
            .map(|(_, (_, c))| c)
            .collect();
        job::run(&ctx, chosen, steps, |ctx, ch, db, step| match step {
            BackupStep::Set(plan) => write_set(ctx, ch, db, plan),
            BackupStep::Copy(plan) => write_copy(ctx, ch, db, plan),
        })
    }

    /// Most recent completed backup (set) time of a datafile, for NOT BACKED UP SINCE.
    fn last_datafile_backup(&self, file_no: u32, incremental_ok: bool) -> Option<NaiveDateTime> {
        let sets = catalog::sets(&self.db).ok()?;
        let complete: BTreeMap<(u32, u32), &SetRow> = sets
            .iter()
            .map(|s| ((s.set_stamp, s.set_count), s))
            .collect();
        // As RMAN's NOT BACKED UP: only a set whose pieces are all AVAILABLE counts (one
        // crosschecked EXPIRED or deleted leaves the file to be backed up again).
        let mut available: BTreeMap<(u32, u32), u32> = BTreeMap::new();
        for p in catalog::pieces(&self.db).ok()? {
            if p.status == "A" {
                *available.entry((p.set_stamp, p.set_count)).or_default() += 1;
            }
        }
        catalog::backup_datafiles(&self.db)
            .ok()?
            .into_iter()
            .filter(|d| d.file_no == file_no)
            .filter(|d| incremental_ok || d.is_base())
            .filter_map(|d| {
                let key = (d.set_stamp, d.set_count);
                complete
                    .get(&key)
                    .filter(|s| available.get(&key).copied().unwrap_or(0) >= s.pieces.max(1))
                    .map(|s| s.completion_time)
            })
            .max()
    }

    /// INCREMENTAL_CHANGE# of a level-1 backup of `file_no` (None: no level-0 parent).
    fn parent_scn(&self, file_no: u32, cumulative: bool) -> Option<Scn> {
        let sets = catalog::sets(&self.db).ok()?;
        let complete: BTreeMap<(u32, u32), &SetRow> = sets
            .iter()
            .map(|s| ((s.set_stamp, s.set_count), s))
            .collect();
        let rows = catalog::backup_datafiles(&self.db).ok()?;
        let level0 = rows
            .iter()
            .filter(|d| d.file_no == file_no && d.incremental_level == Some(0))
            .filter(|d| complete.contains_key(&(d.set_stamp, d.set_count)))
            .map(|d| d.checkpoint_scn)
            .chain(
                catalog::copies(&self.db)
                    .ok()?
                    .into_iter()
                    .filter(|c| {
                        c.file_no == file_no && c.incremental_level == Some(0) && c.status == "A"
                    })
                    .map(|c| c.checkpoint_scn),
            )
            .max()?;
        if cumulative {
            return Some(level0);
        }
        let level1 = rows
            .iter()
            .filter(|d| d.file_no == file_no && d.incremental_level == Some(1))
            .filter(|d| complete.contains_key(&(d.set_stamp, d.set_count)))
            .map(|d| d.checkpoint_scn)
            .filter(|s| *s > level0)
            .max();
        Some(level1.unwrap_or(level0))
    }

    /// Datafiles named by an object.
    pub(super) fn datafiles_of(&self, obj: &BackupObject) -> Result<Vec<DatafileInfo>, CmdError> {
        let all = self.db.datafiles().map_err(|e| CmdError::db("backup", e))?;
        match obj {
            BackupObject::Database => Ok(all),
            BackupObject::Datafile(ns) => ns
                .iter()
                .map(|n| {
                    all.iter()
                        .find(|d| d.file_no == *n)
                        .cloned()
                        .ok_or_else(|| {
                            CmdError::command(
                                "command",
                                vec![
                                    format!(
                                        "RMAN-20201: datafile not found in the recovery catalog"
                                    ),
                                    format!("RMAN-06010: error while looking up datafile: {n}"),
                                ],
                            )
                        })
                })
                .collect(),
            BackupObject::Tablespace(names) => {
                let mut v = Vec::new();
                for n in names {
                    let found: Vec<DatafileInfo> = all
                        .iter()
                        .filter(|d| d.tablespace.eq_ignore_ascii_case(n))
                        .cloned()
                        .collect();
                    if found.is_empty() {
                        return Err(CmdError::command(
                            "command",
                            vec![
                                "RMAN-20202: Tablespace not found in the recovery catalog".into(),
                                format!(
                                    "RMAN-06019: could not translate tablespace name \"{}\"",
                                    n.to_ascii_uppercase()
                                ),
                            ],
                        ));
                    }
                    v.extend(found);
                }
                Ok(v)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Archived logs selected by a range (one row per thread/sequence, available ones).
    pub(super) fn archived_logs_in(
        &self,
        range: &ArchivelogRange,
    ) -> Result<Vec<ArchivedLog>, CmdError> {
        self.archived_logs_where(range, |l| l.status == "A" && l.name.is_some())
    }

    /// Archived logs selected by a range among the rows `keep` accepts (one row per
    /// thread/sequence), in thread and sequence order.
    pub(super) fn archived_logs_where(
        &self,
        range: &ArchivelogRange,
        keep: impl Fn(&ArchivedLog) -> bool,
    ) -> Result<Vec<ArchivedLog>, CmdError> {
        let logs = self
            .db
            .archived_logs()
            .map_err(|e| CmdError::db("backup", e))?;
        let (tfrom, tuntil) = match range {
            ArchivelogRange::Time { from, until } => (
                from.as_ref().map(|t| self.time(t)).transpose()?,
                until.as_ref().map(|t| self.time(t)).transpose()?,
            ),
            ArchivelogRange::Completed { after, before } => (
                after.as_ref().map(|t| self.time(t)).transpose()?,
                before.as_ref().map(|t| self.time(t)).transpose()?,
            ),
            _ => (None, None),
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for l in logs {
            if !keep(&l) {
                continue;
            }
            let ok = match range {
                ArchivelogRange::All => true,
                ArchivelogRange::Sequence {
                    from,
                    until,
                    thread,
                } => {
                    thread.is_none_or(|t| u32::from(l.thread) == t)
                        && from.is_none_or(|f| u64::from(l.sequence) >= f)
                        && until.is_none_or(|u| u64::from(l.sequence) <= u)
                }
                ArchivelogRange::Scn { from, until } => {
                    from.is_none_or(|f| l.next_scn.0 > f) && until.is_none_or(|u| l.first_scn.0 < u)
                }
                ArchivelogRange::Time { .. } => {
                    tfrom.is_none_or(|f| ndt(l.next_time) > f)
                        && tuntil.is_none_or(|u| ndt(l.first_time) < u)
                }
                // The row's STAMP is when the log was archived (its COMPLETION_TIME).
                ArchivelogRange::Completed { .. } => {
                    tfrom.is_none_or(|f| ndt(l.stamp) >= f)
                        && tuntil.is_none_or(|u| ndt(l.stamp) < u)
                }
            };
            if ok && seen.insert((l.thread, l.sequence)) {
                out.push(l);
            }
        }
        out.sort_by_key(|l| (l.thread, l.sequence));
        Ok(out)
    }

    /// Times an archived log was backed up on `device` (completed sets only).
    pub(super) fn log_backup_count(&self, thread: u16, sequence: u32, device: DeviceType) -> u32 {
        let Ok(sets) = catalog::sets(&self.db) else {
            return 0;
        };
        let Ok(pieces) = catalog::pieces(&self.db) else {
            return 0;
        };
        let Ok(rows) = catalog::backup_redologs(&self.db) else {
            return 0;
        };
        rows.iter()
            .filter(|r| r.thread == thread && r.sequence == sequence)
            .filter(|r| {
                sets.iter()
                    .any(|s| s.set_stamp == r.set_stamp && s.set_count == r.set_count)
                    && pieces.iter().any(|p| {
                        p.set_stamp == r.set_stamp
                            && p.set_count == r.set_count
                            && p.status == "A"
                            && p.device_type == device.name()
                    })
            })
            .count() as u32
    }

    fn last_log_backup(&self, thread: u16, sequence: u32) -> Option<NaiveDateTime> {
        let sets = catalog::sets(&self.db).ok()?;
        catalog::backup_redologs(&self.db)
            .ok()?
            .iter()
            .filter(|r| r.thread == thread && r.sequence == sequence)
            .filter_map(|r| {
                sets.iter()
                    .find(|s| s.set_stamp == r.set_stamp && s.set_count == r.set_count)
                    .map(|s| s.completion_time)
            })
            .max()
    }

    #[allow(clippy::too_many_arguments)]
    fn plan(
        &mut self,
        b: &Backup,
        items: &[(BackupObject, BackupOpts)],
        default_tag: &str,
        nchannels: usize,
        device: DeviceType,
        cmd: &'static str,
    ) -> Result<Vec<BackupStep>, CmdError> {
        let mut steps = Vec::new();
        let mut include_cf_spfile = false;
        // An archival backup carries the control file and SPFILE it restores with.
        let mut archival: Option<KeepAttrs> = None;
        let cfg_autobackup = self.config().autobackup;
        let optimization = self.config().backup_optimization();
        for (obj, opts) in items {
            let tag = opts
                .tag
                .clone()
                .or_else(|| b.recover_of_copy.clone().flatten())
                .unwrap_or_else(|| default_tag.to_string());
            let keep = self.keep_attrs(opts)?;
            match obj {
                BackupObject::Archivelog(range) => {
                    let mut logs = self.archived_logs_in(range)?;
                    for l in &logs {
                        let name = l.name.clone().unwrap_or_default();
                        if let Err(e) = std::fs::metadata(&name) {
                            return Err(CmdError::command(
                                cmd,
                                vec![
                                    "RMAN-06059: expected archived log not found, loss of archived log compromises recoverability".into(),
                                    format!("ORA-19625: error identifying file {}", name.display()),
                                    "ORA-27037: unable to obtain file status".into(),
                                    super::channel::os_error_line(&e),
                                    "Additional information: 7".into(),
                                ],
                            ));
                        }
                    }
                    let mut kept = Vec::new();
                    for l in logs.drain(..) {
                        let skip = match &opts.not_backed_up {
                            Some(NotBackedUp::Ever) => {
                                self.log_backup_count(l.thread, l.sequence, device) >= 1
                            }
                            Some(NotBackedUp::Times(n)) => {
                                self.log_backup_count(l.thread, l.sequence, device) >= *n
                            }
                            Some(NotBackedUp::Since(t)) => {
                                let since = self.time(t)?;
                                self.last_log_backup(l.thread, l.sequence)
                                    .is_some_and(|d| d > since)
                            }
                            // BACKUP OPTIMIZATION: a log already backed up to this device
                            // type is not taken again, unless FORCE.
                            None => {
                                optimization
                                    && !opts.force
                                    && self.log_backup_count(l.thread, l.sequence, device) >= 1
                            }
                        };
                        if skip {
                            self.out.line(format!(
                                "skipping archived log of thread {} with sequence {}; already backed up",
                                l.thread, l.sequence
                            ));
                        } else {
                            kept.push(l);
                        }
                    }
                    let per = filesperset(opts.filesperset, kept.len(), nchannels);
                    for chunk in kept.chunks(per.max(1)) {
                        steps.push(BackupStep::Set(SetPlan {
                            kind: SetKind::Archivelog,
                            members: chunk.iter().cloned().map(Member::Archlog).collect(),
                            tag: tag.clone(),
                            formats: opts.formats.clone(),
                            delete_input: opts.delete_input,
                            for_recover_of_copy: false,
                            keep: keep.clone(),
                            pool: opts.pool.unwrap_or(0),
                            section: None,
                            device: None,
                            channel: opts.channel.clone(),
                            compressed: None,
                            copies: opts.copies,
                            encryption: None,
                        }));
                    }
                }
                BackupObject::CurrentControlfile | BackupObject::Spfile => {
                    let member = if *obj == BackupObject::Spfile {
                        Member::Spfile
                    } else {
                        Member::Controlfile
                    };
                    steps.push(BackupStep::Set(SetPlan {
                        kind: SetKind::Datafile {
                            level: None,
                            cumulative: false,
                        },
                        members: vec![member],
                        tag,
                        formats: opts.formats.clone(),
                        delete_input: None,
                        for_recover_of_copy: false,
                        keep: keep.clone(),
                        pool: opts.pool.unwrap_or(0),
                        section: None,
                        device: None,
                        channel: opts.channel.clone(),
                        compressed: None,
                        copies: opts.copies,
                        encryption: None,
                    }));
                }
                _ => {
                    let mut files = self.datafiles_of(obj)?;
                    if *obj == BackupObject::Database && !opts.noexclude {
                        let excluded = self.config().excluded;
                        files.retain(|f| {
                            !excluded
                                .iter()
                                .any(|t| f.tablespace.eq_ignore_ascii_case(t))
                        });
                    }
                    let mut members = Vec::new();
                    for f in files {
                        if let Some(NotBackedUp::Since(t)) = &opts.not_backed_up {
                            let since = self.time(t)?;
                            // Times have one-second resolution: a backup
                            // completed in the very second given counts as
                            // done since then, as a resumed job needs.
                            if let Some(when) = self.last_datafile_backup(
                                f.file_no,
                                b.incremental.is_some_and(|i| i.level > 0),
                            ) && when >= since
                            {
                                self.msg(
                                    6501,
                                    &format!(
                                        "skipping datafile {}; already backed up on {}",
                                        f.file_no,
                                        self.date(when)
                                    ),
                                );
                                continue;
                            }
                        }
                        if let Some(NotBackedUp::Ever) = &opts.not_backed_up
                            && self.last_datafile_backup(f.file_no, true).is_some()
                        {
                            self.msg(
                                6501,
                                &format!(
                                    "skipping datafile {}; already backed up {} time(s)",
                                    f.file_no, 1
                                ),
                            );
                            continue;
                        }
                        if let Some(NotBackedUp::Times(_)) = &opts.not_backed_up {
                            return Err(CmdError::command(
                                cmd,
                                vec!["RMAN-06536: BACKED UP ... TIMES option is supported only for archived logs".into()],
                            ));
                        }
                        if f.file_no == 1 && !cfg_autobackup {
                            include_cf_spfile = true;
                        }
                        members.push(f);
                    }
                    if opts.include_controlfile {
                        include_cf_spfile = true;
                    }
                    if keep.is_some() && !members.is_empty() {
                        include_cf_spfile = true;
                        archival = archival.or(keep);
                    }
                    self.plan_datafiles(b, members, opts, &tag, nchannels, device, &mut steps)?;
                }
            }
        }
        if include_cf_spfile && b.recover_of_copy.is_none() && !b.as_copy {
            steps.push(BackupStep::Set(SetPlan {
                kind: SetKind::Datafile {
                    level: None,
                    cumulative: false,
                },
                members: vec![Member::Controlfile, Member::Spfile],
                tag: items
                    .first()
                    .and_then(|(_, o)| o.tag.clone())
                    .unwrap_or_else(|| default_tag.to_string()),
                formats: items
                    .first()
                    .map(|(_, o)| o.formats.clone())
                    .unwrap_or_default(),
                delete_input: None,
                for_recover_of_copy: false,
                keep: archival,
                pool: 0,
                section: None,
                device: None,
                channel: None,
                compressed: None,
                copies: items.first().and_then(|(_, o)| o.copies),
                encryption: None,
            }));
        }
        Ok(steps)
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_datafiles(
        &mut self,
        b: &Backup,
        files: Vec<DatafileInfo>,
        opts: &BackupOpts,
        tag: &str,
        nchannels: usize,
        device: DeviceType,
        steps: &mut Vec<BackupStep>,
    ) -> Result<(), CmdError> {
        let mut level = b.incremental.map(|i| i.level);
        let cumulative = b.incremental.is_some_and(|i| i.cumulative);
        let mut set_files: Vec<Member> = Vec::new();
        if b.as_copy {
            if device == DeviceType::Sbt {
                return Err(CmdError::command(
                    "backup",
                    vec![
                        "RMAN-06570: datafile copy cannot be created on device type SBT_TAPE"
                            .into(),
                    ],
                ));
            }
            for f in files {
                steps.push(BackupStep::Copy(CopyPlan {
                    info: f,
                    tag: tag.to_string(),
                    format: opts.formats.first().cloned(),
                    level0: level == Some(0),
                }));
            }
            return Ok(());
        }
        for f in files {
            if let Some(copy_tag) = &b.recover_of_copy {
                let copy = catalog::copies(&self.db)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.file_no == f.file_no && c.status == "A")
                    .filter(|c| {
                        copy_tag
                            .as_ref()
                            .is_none_or(|t| c.tag.as_deref() == Some(t.as_str()))
                    })
                    .max_by_key(|c| c.checkpoint_scn);
                match copy {
                    Some(c) => set_files.push(Member::Datafile {
                        info: f,
                        since: Some(c.checkpoint_scn),
                    }),
                    None => {
                        self.out.line(format!(
                            "no parent backup or copy of datafile {} found",
                            f.file_no
                        ));
                        if device == DeviceType::Sbt {
                            return Err(CmdError::command(
                                "backup",
                                vec!["RMAN-06570: datafile copy cannot be created on device type SBT_TAPE".into()],
                            ));
                        }
                        steps.push(BackupStep::Copy(CopyPlan {
                            info: f,
                            tag: tag.to_string(),
                            // The level-0 copy goes where FORMAT says, as Oracle's does;
                            // DATAFILECOPY FORMAT is the more specific of the two.
                            format: b
                                .datafilecopy_format
                                .clone()
                                .or_else(|| opts.formats.first().cloned()),
                            level0: true,
                        }));
                    }
                }
                continue;
            }
            let since = if let Some(n) = b.from_scn {
                Some(Scn(n))
            } else if level == Some(1) {
                match self.parent_scn(f.file_no, cumulative) {
                    Some(s) => Some(s),
                    None => {
                        self.out.line(format!(
                            "no parent backup or copy of datafile {} found",
                            f.file_no
                        ));
                        level = Some(0);
                        None
                    }
                }
            } else {
                None
            };
            set_files.push(Member::Datafile { info: f, since });
        }
        let kind = SetKind::Datafile {
            level: if b.recover_of_copy.is_some() {
                Some(1)
            } else {
                level
            },
            cumulative,
        };
        let base = SetPlan {
            kind,
            members: Vec::new(),
            tag: tag.to_string(),
            formats: opts.formats.clone(),
            delete_input: None,
            for_recover_of_copy: b.recover_of_copy.is_some(),
            keep: self.keep_attrs(opts)?,
            pool: opts.pool.unwrap_or(0),
            section: None,
            device: None,
            channel: opts.channel.clone(),
            compressed: None,
            copies: opts.copies,
            encryption: None,
        };
        let mut plain = Vec::new();
        for m in set_files {
            let Member::Datafile { info, .. } = &m else {
                continue;
            };
            let bytes = (u64::from(info.blocks) + 1) * info.block_size as u64;
            match opts.section_size {
                Some(ss) if bytes > ss => {
                    let total = info.blocks + 1;
                    let mut per = (ss / info.block_size as u64).max(1) as u32;
                    if total.div_ceil(per) > 256 {
                        per = total.div_ceil(256);
                    }
                    let sections: Vec<(u32, u32)> = (0..total.div_ceil(per))
                        .map(|i| (i * per, per.min(total - i * per)))
                        .collect();
                    let multi = Arc::new(Multi {
                        sections: sections.clone(),
                        section_blocks: per,
                        state: Mutex::new(MultiState::default()),
                    });
                    for i in 0..sections.len() {
                        let mut p = base.clone();
                        p.members = vec![m.clone()];
                        p.section = Some((multi.clone(), i));
                        steps.push(BackupStep::Set(p));
                    }
                }
                _ => plain.push(m),
            }
        }
        let per = filesperset(opts.filesperset, plain.len(), nchannels);
        for chunk in plain.chunks(per.max(1)) {
            let mut p = base.clone();
            p.members = chunk.to_vec();
            steps.push(BackupStep::Set(p));
        }
        Ok(())
    }

    /// Control file and SPFILE autobackup after a successful BACKUP.
    pub(super) fn autobackup(
        &mut self,
        device: DeviceType,
        cmd: &'static str,
    ) -> Result<(), CmdError> {
        let key = self.start_recursive("CONTROL FILE AND SPFILE AUTOBACKUP");
        self.out.blank();
        self.out.line(format!(
            "Starting Control File and SPFILE Autobackup at {}",
            self.date(now())
        ));
        let fmt = self.autobackup_format(device);
        let chans = self.job_channels(Some(device), false)?;
        let Some(&first) = chans.first() else {
            return Err(CmdError::command(
                cmd,
                vec!["RMAN-06091: no channel allocated".into()],
            ));
        };
        let day = now().format("%Y%m%d").to_string();
        let seq = catalog::next_autobackup_seq(&self.db, &day).map_err(|e| CmdError::db(cmd, e))?;
        // Encrypted like the backup it follows.
        let encryption = self.backup_encryption(&self.config(), cmd)?;
        let plan = SetPlan {
            kind: SetKind::Datafile {
                level: None,
                cumulative: false,
            },
            members: vec![Member::Spfile, Member::Controlfile],
            tag: format!("TAG{}", now().format("%Y%m%dT%H%M%S")),
            formats: vec![fmt],
            delete_input: None,
            for_recover_of_copy: false,
            keep: None,
            pool: 0,
            section: None,
            device: Some(device),
            channel: None,
            compressed: None,
            copies: None,
            encryption,
        };
        let ctx = JobCtx {
            home: self.home.clone(),
            out: self.out.clone(),
            faults: self.faults.clone(),
            info: self.info.clone(),
            nls: self.nls.clone(),
            command: "Control File and SPFILE Autobackup",
            status: self.current_status.map(|k| (k.recid, k.stamp)),
            decryption: Vec::new(),
        };
        let ch = &mut self.channels[first].1;
        let res = write_set_inner(&ctx, ch, &self.db, plan, Some(seq));
        let mut end = StatusEnd {
            status: "COMPLETED".into(),
            device_type: Some(device.name().into()),
            object_type: Some("CONTROLFILE".into()),
            ..StatusEnd::default()
        };
        match res {
            Ok(done) => {
                end.input_bytes = done.input_bytes;
                end.output_bytes = done.output_bytes;
                if let Some(k) = key {
                    let _ = catalog::finish_status(&self.db, k, &end, true);
                }
                self.out.line(format!(
                    "Finished Control File and SPFILE Autobackup at {}",
                    self.date(now())
                ));
                Ok(())
            }
            Err(e) => {
                end.status = "FAILED".into();
                if let Some(k) = key {
                    let _ = catalog::finish_status(&self.db, k, &end, true);
                }
                let name = ch_name(&self.channels[first].1);
                let mut lines = vec![format!(
                    "RMAN-03009: failure of Control File and SPFILE Autobackup command on {name} channel at {}",
                    super::datetime::error_stamp(now())
                )];
                lines.extend(e.lines);
                Err(CmdError::new(lines))
            }
        }
    }

    /// BACKUP VALIDATE: read the files, write nothing.
    fn backup_validate(&mut self, b: &Backup) -> Result<(), CmdError> {
        let mut files = Vec::new();
        for s in &b.specs {
            files.extend(self.datafiles_of(&s.object)?);
        }
        let nums: Vec<u32> = files.iter().map(|f| f.file_no).collect();
        self.validate_datafiles(&nums, "backup")
    }
}

fn ch_name(c: &Channel) -> String {
    c.name.clone()
}

enum Phase<'a> {
    Main,
    /// The options of PLUS ARCHIVELOG and the logs this pass takes.
    PlusArchivelog(&'a BackupOpts, ArchivelogRange),
}

fn filesperset(given: Option<u32>, files: usize, channels: usize) -> usize {
    match given {
        Some(n) => n as usize,
        None => files.div_ceil(channels.max(1)).clamp(1, 64),
    }
}

fn object_type(b: &Backup) -> String {
    let incr = b.incremental.is_some();
    let objs: Vec<&BackupObject> = b.specs.iter().map(|s| &s.object).collect();
    match objs.first() {
        Some(BackupObject::Database) if incr => "DB INCR".into(),
        Some(BackupObject::Database) => "DB FULL".into(),
        Some(BackupObject::Datafile(_) | BackupObject::Tablespace(_)) if incr => {
            "DATAFILE INCR".into()
        }
        Some(BackupObject::Datafile(_) | BackupObject::Tablespace(_)) => "DATAFILE FULL".into(),
        Some(BackupObject::Archivelog(_)) => "ARCHIVELOG".into(),
        Some(BackupObject::CurrentControlfile) => "CONTROLFILE".into(),
        Some(BackupObject::Spfile) => "SPFILE".into(),
        None => "BACKUPSET".into(),
    }
}

/// Writes one backup set (or one section of a multi-section set) on a channel.
fn write_set(
    ctx: &JobCtx,
    ch: &mut Channel,
    db: &Database,
    plan: SetPlan,
) -> Result<StepDone, StepError> {
    write_set_inner(ctx, ch, db, plan, None)
}

struct Prepared {
    entries: Vec<PieceEntry>,
    cursors: Vec<FileCursor>,
    blobs: Vec<(u32, Vec<u8>)>,
    /// Per entry: the member, the checkpoint read from its header, and the filter.
    meta: Vec<EntryMeta>,
}

#[derive(Debug, Clone)]
struct EntryMeta {
    member: Member,
    checkpoint: Scn,
    checkpoint_time: NaiveDateTime,
    used_bct: bool,
    file_blocks: u64,
}

fn prepare(db: &Database, plan: &SetPlan) -> Result<Prepared, StepError> {
    let mut entries = Vec::new();
    let mut cursors = Vec::new();
    let mut blobs = Vec::new();
    let mut meta = Vec::new();
    for m in &plan.members {
        let idx = entries.len() as u32;
        match m {
            Member::Datafile { info, since } => {
                let io = db.open_datafile(info.file_no, false).map_err(db_error)?;
                // The header first: its checkpoint is where recovery of this backup starts.
                let hdr = io.header().map_err(db_error)?;
                let total = io.block_count() + 1;
                let (first, end) = match &plan.section {
                    Some((multi, i)) => {
                        let (f, n) = multi.sections[*i];
                        (f, (f + n).min(total))
                    }
                    None => (0, total),
                };
                let (filter, used_bct) = match since {
                    None => (Filter::All, false),
                    Some(s) => match db
                        .changed_blocks_since(info.file_no, *s)
                        .map_err(db_error)?
                    {
                        Some(blocks) => (Filter::Tracked { since: *s, blocks }, true),
                        None => (Filter::ChangedSince(*s), false),
                    },
                };
                let mut e = PieceEntry::new(
                    EntryKind::Datafile,
                    io.block_size() as u32,
                    u64::from(total),
                );
                e.file_number = info.file_no;
                e.sequence = info.rfile_no;
                e.creation_change = hdr.creation_scn.0;
                e.checkpoint_change = hdr.checkpoint.scn.0;
                e.checkpoint_time = ndt(hdr.checkpoint.time).and_utc().timestamp();
                e.ts_number = info.ts_no;
                if let Some((multi, i)) = &plan.section {
                    e.section_first_block = u64::from(multi.sections[*i].0);
                    e.section_blocks = u64::from(multi.sections[*i].1);
                }
                meta.push(EntryMeta {
                    member: m.clone(),
                    checkpoint: hdr.checkpoint.scn,
                    checkpoint_time: ndt(hdr.checkpoint.time),
                    used_bct,
                    file_blocks: u64::from(total),
                });
                entries.push(e);
                cursors.push(FileCursor::datafile(idx, io, first, end, filter));
            }
            Member::Archlog(l) => {
                let path: PathBuf = l.name.clone().unwrap_or_default();
                let file = File::open(&path).map_err(|e| {
                    StepError::lines(vec![
                        "RMAN-06059: expected archived log not found, loss of archived log compromises recoverability".into(),
                        format!("ORA-19625: error identifying file {}", path.display()),
                        "ORA-27037: unable to obtain file status".into(),
                        super::channel::os_error_line(&e),
                        "Additional information: 7".into(),
                    ])
                })?;
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                let bs = l.block_size.max(512);
                let blocks = (len / u64::from(bs)) as u32;
                let mut e = PieceEntry::new(EntryKind::ArchivedLog, bs, u64::from(blocks));
                e.file_number = u32::from(l.thread);
                e.sequence = l.sequence;
                e.creation_change = l.resetlogs_scn.0;
                e.checkpoint_change = l.first_scn.0;
                e.checkpoint_time = ndt(l.first_time).and_utc().timestamp();
                e.next_change = l.next_scn.0;
                e.next_time = ndt(l.next_time).and_utc().timestamp();
                e.ts_number = l.resetlogs_id;
                meta.push(EntryMeta {
                    member: m.clone(),
                    checkpoint: l.first_scn,
                    checkpoint_time: ndt(l.first_time),
                    used_bct: false,
                    file_blocks: u64::from(blocks),
                });
                entries.push(e);
                cursors.push(FileCursor::raw(idx, file, path, bs as usize, blocks));
            }
            Member::Controlfile | Member::Spfile => {
                let bytes = if matches!(m, Member::Controlfile) {
                    db.controlfile_bytes()
                } else {
                    db.spfile_bytes()
                }
                .map_err(db_error)?;
                let kind = if matches!(m, Member::Controlfile) {
                    EntryKind::ControlFile
                } else {
                    EntryKind::Spfile
                };
                let mut e = PieceEntry::new(kind, 512, bytes.len() as u64);
                let scn = db.current_scn().map_err(db_error)?;
                e.checkpoint_change = scn.0;
                meta.push(EntryMeta {
                    member: m.clone(),
                    checkpoint: scn,
                    checkpoint_time: now(),
                    used_bct: false,
                    file_blocks: bytes.len() as u64,
                });
                entries.push(e);
                blobs.push((idx, bytes));
            }
        }
    }
    Ok(Prepared {
        entries,
        cursors,
        blobs,
        meta,
    })
}

/// A channel's V$SESSION_LONGOPS row for the set it writes, updated as it reads blocks.
struct Longop {
    id: i64,
    totalwork: u64,
    reported: u64,
}

impl Longop {
    /// Records `sofar` blocks read, about 32 times per set: live enough to watch, few
    /// control-file writes. A failed update loses a progress figure, never the backup.
    fn progress(&mut self, db: &Database, sofar: u64) {
        let sofar = sofar.min(self.totalwork);
        if (sofar >= self.totalwork || sofar >= self.reported + (self.totalwork / 32).max(1))
            && catalog::update_longop(db, self.id, sofar).is_ok()
        {
            self.reported = sofar;
        }
    }
}

/// A set of INCREMENTAL FROM SCN: no level, yet its datafiles have an incremental start.
fn from_scn(plan: &SetPlan) -> bool {
    matches!(plan.kind, SetKind::Datafile { level: None, .. })
        && plan
            .members
            .iter()
            .any(|m| matches!(m, Member::Datafile { since: Some(_), .. }))
}

fn start_lines(ctx: &JobCtx, ch: &Channel, plan: &SetPlan) {
    let name = &ch.name;
    let compressed = if plan.compressed.is_some() {
        "compressed "
    } else {
        ""
    };
    if let Some(k) = &plan.keep {
        match k.until {
            Some(t) => ctx.out.line(format!(
                "backup will be obsolete on date {}",
                ctx.nls.format(t)
            )),
            None => ctx.out.line("backup will never be obsolete"),
        }
        ctx.out.line(if k.options == "NOLOGS" {
            "archived logs will not be kept or backed up"
        } else {
            "archived logs required to recover from this backup will be backed up"
        });
    }
    match plan.kind {
        SetKind::Archivelog => {
            ctx.out.line(format!(
                "channel {name}: starting {compressed}archived log backup set"
            ));
            ctx.out.line(format!(
                "channel {name}: specifying archived log(s) in backup set"
            ));
        }
        SetKind::Datafile { level, cumulative } => {
            let what = match level {
                None if from_scn(plan) => "incremental".to_string(),
                None => "full".to_string(),
                Some(l) => format!(
                    "incremental level {l}{}",
                    if cumulative && l > 0 {
                        " cumulative"
                    } else {
                        ""
                    }
                ),
            };
            ctx.out.line(format!(
                "channel {name}: starting {compressed}{what} datafile backup set"
            ));
            ctx.out.line(format!(
                "channel {name}: specifying datafile(s) in backup set"
            ));
        }
    }
    for m in &plan.members {
        match m {
            Member::Datafile { info, .. } => {
                ctx.out.line(format!(
                    "input datafile file number={:05} name={}",
                    info.file_no,
                    info.path.display()
                ));
                if let Some((multi, i)) = &plan.section {
                    let (f, n) = multi.sections[*i];
                    ctx.out.line(format!(
                        "backing up blocks {} through {}",
                        f.max(1),
                        f + n - 1
                    ));
                }
            }
            Member::Archlog(l) => ctx.out.line(format!(
                "input archived log thread={} sequence={} RECID={} STAMP={}",
                l.thread, l.sequence, l.recid, l.stamp.0
            )),
            Member::Controlfile => ctx.out.line("including current control file in backup set"),
            Member::Spfile => ctx.out.line("including current SPFILE in backup set"),
        }
    }
}

fn write_set_inner(
    ctx: &JobCtx,
    ch: &mut Channel,
    db: &Database,
    plan: SetPlan,
    autobackup_seq: Option<u8>,
) -> Result<StepDone, StepError> {
    let start = now();
    if plan.section.is_some() && ctx.faults.section_must_fail() {
        start_lines(ctx, ch, &plan);
        return Err(StepError {
            lines: ChannelError::Fault {
                handle: "(section)".into(),
                block: 1,
                block_size: ch.blksize(),
                name: "ORACLESIM_FAIL_AFTER_SECTIONS",
                value: ctx.faults.fail_after_sections.unwrap_or(0),
            }
            .ora_lines(),
            fatal: true,
        });
    }
    // A multi-section set gets its SET_COUNT from the first section that starts.
    let (set_stamp, set_count, set_start) = match &plan.section {
        Some((multi, _)) => {
            let mut st = multi
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match st.set {
                Some(s) => s,
                None => {
                    let c = catalog::next_set_count(db).map_err(db_error)?;
                    let s = (catalog::stamp(start), c, start);
                    st.set = Some(s);
                    s
                }
            }
        }
        None => {
            let c = catalog::next_set_count(db).map_err(db_error)?;
            (catalog::stamp(start), c, start)
        }
    };
    start_lines(ctx, ch, &plan);
    let prepared = prepare(db, &plan)?;
    let (backup_type, level) = match plan.kind {
        SetKind::Archivelog => (BackupType::Archivelog, None),
        // INCREMENTAL FROM SCN: incremental, of no level.
        SetKind::Datafile { level: None, .. } if from_scn(&plan) => (BackupType::Incremental, None),
        SetKind::Datafile { level: None, .. } => (BackupType::Full, None),
        SetKind::Datafile { level: Some(l), .. } => (BackupType::Incremental, Some(l)),
    };
    let incremental_change = prepared
        .meta
        .iter()
        .filter_map(|m| match &m.member {
            Member::Datafile { since, .. } => *since,
            _ => None,
        })
        .map(|s| s.0)
        .min()
        .unwrap_or(0);
    let file_type = match plan.kind {
        SetKind::Archivelog => SBTOBJECT_ARCHLOG,
        _ if prepared.cursors.is_empty() => SBTOBJECT_OTHER,
        _ => SBTOBJECT_DATAFILE,
    };
    let object = ObjectInfo {
        db_name: ctx.info.name.clone(),
        dbid: u64::from(ctx.info.dbid),
        file_type,
    };
    let totalwork: u64 = prepared
        .meta
        .iter()
        .filter(|m| matches!(m.member, Member::Datafile { .. }))
        .map(|m| match &plan.section {
            Some((multi, i)) => u64::from(multi.sections[*i].1),
            None => m.file_blocks,
        })
        .sum();
    let mut longop = match plan.kind {
        SetKind::Datafile { level, .. } if totalwork > 0 => {
            let opname = if level.is_some() || from_scn(&plan) {
                "RMAN: incremental datafile backup"
            } else {
                "RMAN: full datafile backup"
            };
            catalog::start_longop(db, ch.sid, opname, set_count, totalwork)
                .ok()
                .map(|id| Longop {
                    id,
                    totalwork,
                    reported: 0,
                })
        }
        _ => None,
    };
    let mut producer = Producer::new(prepared.cursors, prepared.blobs);
    let first_piece = plan.section.as_ref().map_or(1, |(_, i)| *i as u32 + 1);
    let mut piece_no = first_piece;
    let mut pieces_done: Vec<PieceCopy> = Vec::new();
    let copies = plan.copies.unwrap_or(1).max(1);
    // One FORMAT per copy (BACKUP's over the channel's); a copy without its own takes the first.
    let formats = if plan.formats.is_empty() {
        ch.opts.formats.clone()
    } else {
        plan.formats.clone()
    };
    let device = ch.device;
    let fmt_of = |copy: u32| {
        formats
            .get(copy as usize - 1)
            .or_else(|| formats.first())
            .cloned()
            .unwrap_or_else(|| default_format(&ctx.home, device))
    };
    let maxpiece = if plan.section.is_some() {
        None
    } else {
        ch.opts.maxpiecesize
    };
    let mut pending: Option<Chunk> = None;
    let mut output_bytes = 0u64;
    loop {
        let mut fctx = format_ctx(ctx, FormatKind::BackupPiece, set_count, set_stamp, piece_no);
        if let Some(seq) = autobackup_seq {
            fctx.autobackup_seq = seq;
        }
        // An archived-log set names itself after its first log, so %h and %e are valid there.
        if let Some(first) = plan.members.iter().find_map(|m| match m {
            Member::Archlog(l) => Some(l),
            _ => None,
        }) {
            fctx.thread = Some(u32::from(first.thread));
            fctx.sequence = Some(first.sequence);
        }
        let handle_of = |copy: u32| {
            let fmt = fmt_of(copy);
            let mut fctx = fctx.clone();
            fctx.copy_no = copy;
            let name = expand_format(&fmt, &fctx).map_err(|e| format_error(e, &fmt))?;
            Ok::<_, StepError>(match device {
                DeviceType::Disk => disk_path(&ctx.home, &name),
                DeviceType::Sbt => name,
            })
        };
        let handle = handle_of(1)?;
        let piece_start = now();
        ctx.out.line(format!(
            "channel {}: starting piece {piece_no} at {}",
            ch.name,
            ctx.nls.format(piece_start)
        ));
        let mut header = PieceHeader {
            set_stamp,
            set_count,
            piece_number: piece_no,
            copy_number: 1,
            dbid: u64::from(ctx.info.dbid),
            db_name: ctx.info.name.clone(),
            backup_type,
            incremental_level: level,
            multi_section: plan.section.is_some(),
            for_recover_of_copy: plan.for_recover_of_copy,
            incremental_change,
            created: piece_start.and_utc().timestamp(),
            tag: plan.tag.clone(),
            entries: prepared.entries.clone(),
            compressed: plan.compressed.is_some(),
            key_wraps: None,
        };
        let data_key = match &plan.encryption {
            Some(enc) => {
                let (key, wraps) = crate::piece::crypt::new_key(crate::piece::crypt::Secrets {
                    password: enc.password.as_deref(),
                    wallet: enc.wallet.as_ref(),
                })
                .map_err(|_| {
                    StepError::lines(vec!["ORA-19914: unable to encrypt backup".into()])
                })?;
                header.key_wraps = Some(wraps);
                Some(key)
            }
            None => None,
        };
        // Copy 1 also goes to a spool file the other copies are written from, so every
        // copy holds the same blocks (a hot datafile read twice would not).
        let spool_path = (copies > 1).then(|| {
            ctx.home.join(format!(
                ".oraclesim.copies.{}.{set_count}.{piece_no}",
                std::process::id()
            ))
        });
        let spool = match &spool_path {
            Some(p) => Some(std::io::BufWriter::new(File::create(p).map_err(|e| {
                StepError::lines(vec![
                    format!("ORA-19504: failed to create file \"{}\"", p.display()),
                    super::channel::os_error_line(&e),
                ])
            })?)),
            None => None,
        };
        let _spool_guard = spool_path.as_deref().map(RemoveOnDrop);
        let out = ch.create_piece(&handle, &object, 1, plan.pool)?;
        let mut w = match PieceWriter::new(Tee { out, spool }, &header) {
            Ok(w) => w,
            Err(e) => return Err(piece_error(e)),
        };
        if let Some(level) = plan.compressed {
            w.set_level(level);
        }
        if let Some(key) = data_key {
            w.set_key(key);
        }
        let limit = maxpiece.map(|m| {
            let unit = 8192u64;
            (m / unit * unit)
                .max(header.encode().map(|h| h.len() as u64).unwrap_or(8192) + 4 * unit)
        });
        let mut more = false;
        let res: Result<(), StepError> = (|| {
            loop {
                let chunk = match pending.take() {
                    Some(c) => c,
                    None => match producer.next_chunk().map_err(read_error)? {
                        Some(c) => c,
                        None => return Ok(()),
                    },
                };
                match chunk {
                    Chunk::Run {
                        entry,
                        first_block,
                        data,
                        at,
                    } => {
                        let bs = prepared.entries[entry as usize].block_size as u64;
                        let run = &data[at.clone()];
                        if let Some(limit) = limit {
                            let overhead = RECORD_HEADER as u64 + bs + RECORD_HEADER as u64;
                            let room = limit.saturating_sub(w.offset() + overhead);
                            let fit = (room / bs).min(run.len() as u64 / bs);
                            if fit < run.len() as u64 / bs {
                                let cut = (fit * bs) as usize;
                                if fit > 0 {
                                    w.write_run(entry, first_block, &run[..cut])
                                        .map_err(piece_error)?;
                                }
                                // The rest of the run opens the next piece.
                                pending = Some(Chunk::Run {
                                    entry,
                                    first_block: first_block + fit,
                                    at: at.start + cut..at.end,
                                    data,
                                });
                                more = true;
                                return Ok(());
                            }
                        }
                        if let Some(l) = longop.as_mut() {
                            l.progress(db, producer.cursors.iter().map(|c| c.blocks_read).sum());
                        }
                        w.write_run(entry, first_block, run).map_err(piece_error)?;
                        producer.recycle(data);
                    }
                    Chunk::Blob { entry, data } => {
                        w.write_blob(entry, &data).map_err(piece_error)?;
                    }
                }
            }
        })();
        if let Err(e) = res {
            w.into_inner().out.abort();
            return Err(e);
        }
        let last = !more
            && plan
                .section
                .as_ref()
                .is_none_or(|(m, i)| *i + 1 == m.sections.len());
        let (tee, summary) = match w.finish(last) {
            Ok(x) => x,
            Err(e) => return Err(piece_error(e)),
        };
        let Tee { out, spool } = tee;
        if let Some(spool) = spool
            && let Err(e) = spool.into_inner().map_err(|e| e.into_error())
        {
            out.abort();
            return Err(unwrap_io(e).into());
        }
        let done = out.finish()?;
        let mut this_piece = vec![PieceCopy {
            piece: piece_no,
            copy: 1,
            handle,
            done,
            start: piece_start,
            end: now(),
        }];
        for copy in 2..=copies {
            let handle = handle_of(copy)?;
            let spool = spool_path
                .as_deref()
                .expect("a spool for every duplexed piece");
            let input = File::open(spool).map_err(|e| StepError::from(unwrap_io(e)))?;
            let start = now();
            let mut out = ch.create_piece(&handle, &object, copy, plan.pool)?;
            if let Err(e) = crate::piece::recopy(input, summary.length, &mut out, copy) {
                out.abort();
                return Err(piece_error(e));
            }
            let done = out.finish()?;
            this_piece.push(PieceCopy {
                piece: piece_no,
                copy,
                handle,
                done,
                start,
                end: now(),
            });
        }
        let piece_end = now();
        if copies > 1 {
            ctx.out.line(format!(
                "channel {}: finished piece {piece_no} at {} with {copies} copies and tag {}",
                ch.name,
                ctx.nls.format(piece_end),
                plan.tag
            ));
            for c in &this_piece {
                ctx.out.line(format!(
                    "piece handle={} comment={}",
                    c.handle,
                    c.done.comment.as_deref().unwrap_or("NONE")
                ));
            }
        } else {
            ctx.out.line(format!(
                "channel {}: finished piece {piece_no} at {}",
                ch.name,
                ctx.nls.format(piece_end)
            ));
            ctx.out.line(format!(
                "piece handle={} tag={} comment={}",
                this_piece[0].handle,
                plan.tag,
                this_piece[0].done.comment.as_deref().unwrap_or("NONE")
            ));
        }
        output_bytes += this_piece.iter().map(|c| c.done.bytes).sum::<u64>();
        if plan.section.is_some() {
            // Sections are visible as soon as they complete (the set row comes last).
            for c in &this_piece {
                record_piece(ctx, db, &plan, ch, set_stamp, set_count, c).map_err(db_error)?;
            }
        }
        pieces_done.extend(this_piece);
        if !more {
            break;
        }
        piece_no += 1;
    }
    let input_bytes = producer.bytes_read();
    if let Some(l) = longop.as_mut() {
        l.progress(db, l.totalwork);
    }
    let end = now();
    ctx.out.line(format!(
        "channel {}: backup set complete, elapsed time: {}",
        ch.name,
        elapsed((end - start).num_seconds())
    ));
    if plan.section.is_none() {
        for c in &pieces_done {
            record_piece(ctx, db, &plan, ch, set_stamp, set_count, c).map_err(db_error)?;
        }
    }
    let block_size = prepared.entries.first().map_or(8192, |e| e.block_size);
    match &plan.section {
        Some((multi, _)) => {
            ctx.faults.section_done();
            let c = &producer.cursors[0];
            let mut st = multi
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            st.done += 1;
            st.blocks += c.blocks_written;
            st.blocks_read += c.blocks_read;
            st.max_scn = st.max_scn.max(c.max_scn);
            let m = &prepared.meta[0];
            st.checkpoint
                .get_or_insert((m.checkpoint, m.checkpoint_time, Scn(incremental_change)));
            if st.done == multi.sections.len() {
                let (ck, ckt, inc) = st.checkpoint.unwrap_or_default();
                let set = SetRow {
                    recid: 0,
                    set_stamp,
                    set_count,
                    backup_type: (backup_type.code() as char).to_string(),
                    controlfile_included: false,
                    incremental_level: level,
                    pieces: multi.sections.len() as u32,
                    start_time: set_start,
                    completion_time: end,
                    block_size,
                    multi_section: true,
                    keep: plan.keep.is_some(),
                };
                let recid = catalog::insert_set(db, &set).map_err(db_error)?;
                record_keep(db, recid, &plan)?;
                if let Member::Datafile { info, .. } = &m.member {
                    catalog::insert_backup_datafile(
                        db,
                        &BackupDatafileRow {
                            set_stamp,
                            set_count,
                            file_no: info.file_no,
                            creation_scn: info.creation_scn,
                            incremental_level: level,
                            incremental_scn: inc,
                            checkpoint_scn: ck,
                            checkpoint_time: ckt,
                            absolute_fuzzy_scn: st.max_scn.max(ck),
                            datafile_blocks: m.file_blocks.saturating_sub(1),
                            blocks: st.blocks,
                            block_size,
                            completion_time: end,
                            used_change_tracking: m.used_bct,
                            blocks_read: st.blocks_read,
                            section_size: u64::from(multi.section_blocks),
                        },
                    )
                    .map_err(db_error)?;
                }
            }
        }
        None => {
            let set = SetRow {
                recid: 0,
                set_stamp,
                set_count,
                backup_type: (backup_type.code() as char).to_string(),
                controlfile_included: plan
                    .members
                    .iter()
                    .any(|m| matches!(m, Member::Controlfile)),
                incremental_level: level,
                pieces: pieces_done.iter().filter(|c| c.copy == 1).count() as u32,
                start_time: set_start,
                completion_time: end,
                block_size,
                multi_section: false,
                keep: plan.keep.is_some(),
            };
            let recid = catalog::insert_set(db, &set).map_err(db_error)?;
            record_keep(db, recid, &plan)?;
            record_members(
                db,
                &prepared.meta,
                &producer,
                set_stamp,
                set_count,
                level,
                end,
            )
            .map_err(db_error)?;
            if plan.kind == SetKind::Archivelog {
                for m in &plan.members {
                    if let Member::Archlog(l) = m {
                        db.increment_archived_log_backup_count(l.recid)
                            .map_err(db_error)?;
                    }
                }
                if plan.delete_input.is_some() {
                    ctx.out
                        .line(format!("channel {}: deleting archived log(s)", ch.name));
                    for m in &plan.members {
                        if let Member::Archlog(l) = m {
                            let name = l.name.clone().unwrap_or_default();
                            ctx.out.line(format!(
                                "archived log file name={} RECID={} STAMP={}",
                                name.display(),
                                l.recid,
                                l.stamp.0
                            ));
                            let _ = std::fs::remove_file(&name);
                            db.mark_archived_log_deleted(l.recid).map_err(db_error)?;
                        }
                    }
                }
            }
        }
    }
    Ok(StepDone {
        input_bytes,
        output_bytes,
    })
}

/// One copy of one piece, written.
struct PieceCopy {
    piece: u32,
    copy: u32,
    handle: String,
    done: PieceDone,
    start: NaiveDateTime,
    end: NaiveDateTime,
}

/// Where a piece's bytes go: the channel, and for a duplexed piece also the spool file its
/// other copies are written from.
struct Tee<'a> {
    out: PieceOut<'a>,
    spool: Option<std::io::BufWriter<File>>,
}

impl Write for Tee<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.out.write_all(data)?;
        if let Some(s) = &mut self.spool {
            s.write_all(data)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Removes a scratch file when the piece is done, whether it succeeded or not.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

fn record_piece(
    ctx: &JobCtx,
    db: &Database,
    plan: &SetPlan,
    ch: &Channel,
    set_stamp: u32,
    set_count: u32,
    c: &PieceCopy,
) -> crate::db::Result<()> {
    let done = &c.done;
    catalog::insert_piece(
        db,
        &PieceRow {
            recid: 0,
            stamp: 0,
            set_stamp,
            set_count,
            piece: c.piece,
            copy: c.copy,
            device_type: ch.device.name().into(),
            handle: c.handle.clone(),
            comments: done.comment.clone(),
            media: done.media.clone(),
            media_pool: plan.pool,
            tag: Some(plan.tag.clone()),
            status: "A".into(),
            start_time: c.start,
            completion_time: c.end,
            bytes: done.bytes,
            rman_status: ctx.status,
            compressed: plan.compressed.is_some(),
            encrypted: plan.encryption.is_some(),
        },
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
/// KEEP_UNTIL and KEEP_OPTIONS of an archival set's V$BACKUP_SET row.
fn record_keep(db: &Database, recid: i64, plan: &SetPlan) -> Result<(), StepError> {
    match &plan.keep {
        Some(k) => catalog::set_keep(db, recid, Some((k.until, k.options))).map_err(db_error),
        None => Ok(()),
    }
}

fn record_members(
    db: &Database,
    meta: &[EntryMeta],
    producer: &Producer,
    set_stamp: u32,
    set_count: u32,
    level: Option<u8>,
    end: NaiveDateTime,
) -> crate::db::Result<()> {
    for (i, m) in meta.iter().enumerate() {
        match &m.member {
            Member::Datafile { info, since } => {
                let c = producer.cursors.iter().find(|c| c.entry == i as u32);
                let (blocks, read, max_scn) = c.map_or((0, 0, Scn(0)), |c| {
                    (c.blocks_written, c.blocks_read, c.max_scn)
                });
                catalog::insert_backup_datafile(
                    db,
                    &BackupDatafileRow {
                        set_stamp,
                        set_count,
                        file_no: info.file_no,
                        creation_scn: info.creation_scn,
                        incremental_level: level,
                        incremental_scn: since.unwrap_or(Scn(0)),
                        checkpoint_scn: m.checkpoint,
                        checkpoint_time: m.checkpoint_time,
                        absolute_fuzzy_scn: max_scn.max(m.checkpoint),
                        datafile_blocks: m.file_blocks.saturating_sub(1),
                        blocks,
                        block_size: info.block_size as u32,
                        completion_time: end,
                        used_change_tracking: m.used_bct,
                        blocks_read: read,
                        section_size: 0,
                    },
                )?;
            }
            Member::Archlog(l) => catalog::insert_backup_redolog(
                db,
                &BackupRedologRow {
                    set_stamp,
                    set_count,
                    thread: l.thread,
                    sequence: l.sequence,
                    resetlogs_scn: l.resetlogs_scn,
                    first_scn: l.first_scn,
                    first_time: ndt(l.first_time),
                    next_scn: l.next_scn,
                    next_time: ndt(l.next_time),
                    blocks: u64::from(l.blocks),
                    block_size: l.block_size,
                },
            )?,
            Member::Controlfile => catalog::insert_backup_datafile(
                db,
                &BackupDatafileRow {
                    set_stamp,
                    set_count,
                    file_no: 0,
                    creation_scn: Scn(0),
                    incremental_level: None,
                    incremental_scn: Scn(0),
                    checkpoint_scn: m.checkpoint,
                    checkpoint_time: m.checkpoint_time,
                    absolute_fuzzy_scn: Scn(0),
                    datafile_blocks: m.file_blocks.div_ceil(16384),
                    blocks: m.file_blocks.div_ceil(16384),
                    block_size: 16384,
                    completion_time: end,
                    used_change_tracking: false,
                    blocks_read: m.file_blocks.div_ceil(16384),
                    section_size: 0,
                },
            )?,
            Member::Spfile => {
                catalog::insert_backup_spfile(db, set_stamp, set_count, m.file_blocks, end)?
            }
        }
    }
    Ok(())
}

/// Makes an image copy of a datafile (byte for byte) and records it in V$DATAFILE_COPY.
fn write_copy(
    ctx: &JobCtx,
    ch: &mut Channel,
    db: &Database,
    plan: CopyPlan,
) -> Result<StepDone, StepError> {
    let start = now();
    ctx.out
        .line(format!("channel {}: starting datafile copy", ch.name));
    ctx.out.line(format!(
        "input datafile file number={:05} name={}",
        plan.info.file_no,
        plan.info.path.display()
    ));
    let io = db
        .open_datafile(plan.info.file_no, false)
        .map_err(db_error)?;
    let hdr = io.header().map_err(db_error)?;
    let set_count = catalog::next_set_count(db).map_err(db_error)?;
    let mut fctx = format_ctx(
        ctx,
        FormatKind::DatafileCopy,
        set_count,
        catalog::stamp(start),
        1,
    );
    fctx.file_no = Some(plan.info.file_no);
    fctx.tablespace = Some(plan.info.tablespace.clone());
    fctx.file_name = Some(plan.info.path.display().to_string());
    let fmt = plan
        .format
        .clone()
        .or_else(|| ch.opts.formats.first().cloned())
        .unwrap_or_else(|| default_format(&ctx.home, DeviceType::Disk));
    let name = disk_path(
        &ctx.home,
        &expand_format(&fmt, &fctx).map_err(|e| format_error(e, &fmt))?,
    );
    let bs = io.block_size();
    let total = io.block_count() + 1;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&name)
        .map_err(|err| ChannelError::DiskCreate {
            path: name.clone(),
            err,
        })?;
    let mut b = 0u32;
    let mut buf = Vec::new();
    while b < total {
        let n = (total - b).min(128);
        buf.resize(n as usize * bs, 0);
        io.read_blocks(b, &mut buf).map_err(db_error)?;
        use std::io::Write;
        f.write_all(&buf).map_err(|err| ChannelError::DiskWrite {
            path: name.clone(),
            block: u64::from(b),
            block_size: bs,
            err,
        })?;
        b += n;
    }
    f.sync_all().map_err(|err| ChannelError::DiskWrite {
        path: name.clone(),
        block: u64::from(b),
        block_size: bs,
        err,
    })?;
    let end = now();
    let (recid, stamp) = catalog::insert_copy(
        db,
        &CopyRow {
            recid: 0,
            stamp: 0,
            name: name.clone(),
            tag: Some(plan.tag.clone()),
            file_no: plan.info.file_no,
            rfile_no: plan.info.rfile_no,
            creation_scn: hdr.creation_scn,
            incremental_level: plan.level0.then_some(0),
            checkpoint_scn: hdr.checkpoint.scn,
            checkpoint_time: ndt(hdr.checkpoint.time),
            blocks: u64::from(total - 1),
            block_size: bs as u32,
            status: "A".into(),
            completion_time: end,
        },
        ctx.status,
    )
    .map_err(db_error)?;
    ctx.out.line(format!(
        "output file name={name} tag={} RECID={recid} STAMP={stamp}",
        plan.tag
    ));
    ctx.out.line(format!(
        "channel {}: datafile copy complete, elapsed time: {}",
        ch.name,
        elapsed((end - start).num_seconds())
    ));
    let bytes = u64::from(total) * bs as u64;
    Ok(StepDone {
        input_bytes: bytes,
        output_bytes: bytes,
    })
}
