//! RESTORE SPFILE / CONTROLFILE: from an autobackup found by name (`%F` =
//! `c-<DBID>-<YYYYMMDD>-<QQ>`), from a named piece, or from the backups the mounted control
//! file records. The autobackup search asks the media manager about each candidate name
//! (sbtinfo2 on SBT, the file on disk), newest first: QQ from MAXSEQ (255) down to 00, day
//! by day back over MAXDAYS (7) days from today (or the SET UNTIL TIME day). No catalog,
//! no listing: this is how a database without its control file finds its autobackups.

use chrono::{Duration, NaiveDate};
use orca_oracle::format::autobackup_name;

use super::ast::{DeviceType, FileSource, Until};
use super::backup::disk_path;
use super::catalog::{self, StatusEnd};
use super::channel::Channel;
use super::datetime::elapsed;
use super::job::StepError;
use super::restore::piece_read_error;
use super::session::{CmdError, Session, now};
use crate::db::{Database, Parameters, write_atomic};
use crate::piece::{EntryKind, PieceReader, Record};

/// Which file a RESTORE brings back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Spfile,
    Controlfile,
}

impl FileKind {
    fn entry(self) -> EntryKind {
        match self {
            FileKind::Spfile => EntryKind::Spfile,
            FileKind::Controlfile => EntryKind::ControlFile,
        }
    }
}

/// Default MAXSEQ and MAXDAYS of FROM AUTOBACKUP.
const MAXSEQ: u32 = 255;
const MAXDAYS: u32 = 7;

fn not_found() -> CmdError {
    CmdError::command(
        "restore",
        vec![
            "RMAN-06172: no AUTOBACKUP found or specified handle is not a valid copy or piece"
                .into(),
        ],
    )
}

/// Reads the piece and returns the bytes of its entry of `kind` (None if it has none).
fn read_entry(
    ch: &mut Channel,
    handle: &str,
    kind: EntryKind,
    dbid: Option<u32>,
    (passwords, wallet): (&[String], Option<&[u8; 32]>),
) -> Result<Option<Vec<u8>>, StepError> {
    let input = ch.open_piece(handle)?;
    let mut reader = PieceReader::open(input).map_err(|e| piece_read_error(e, handle))?;
    if let Some(wraps) = reader.header().key_wraps.clone() {
        match crate::piece::crypt::open_key(&wraps, passwords, wallet) {
            Some(key) => reader.set_key(key),
            None => return Err(piece_read_error(crate::piece::PieceError::Decrypt, handle)),
        }
    }
    let header = reader.header().clone();
    let mut found = None;
    let mut buf = Vec::new();
    loop {
        match reader.next_record(&mut buf) {
            Ok(Some(Record::Blob { entry })) => {
                if header.entries.get(entry as usize).map(|e| e.kind) == Some(kind) {
                    found = Some(std::mem::take(&mut buf));
                }
            }
            Ok(Some(Record::Run { .. })) => {}
            Ok(None) => break,
            Err(e) => return Err(piece_read_error(e, handle)),
        }
    }
    reader.into_inner().finish()?;
    if dbid.is_some_and(|d| u64::from(d) != header.dbid) {
        return Ok(None);
    }
    Ok(found)
}

impl Session {
    /// The autobackup format of a device type: SET in this RUN, else CONFIGURE (mounted),
    /// else `%F` (SBT) or `<home>/backup/%F` (disk).
    pub(super) fn autobackup_format(&self, device: DeviceType) -> String {
        self.autobackup_formats
            .get(&device)
            .cloned()
            .or_else(|| {
                self.db
                    .is_mounted()
                    .then(|| self.config().autobackup_format.get(&device).cloned())
                    .flatten()
            })
            .unwrap_or_else(|| match device {
                DeviceType::Disk => format!("{}/backup/%F", self.home.display()),
                DeviceType::Sbt => "%F".into(),
            })
    }

    /// Whether a channel's media manager (or disk) holds a piece of this name.
    fn piece_exists(&mut self, idx: usize, handle: &str) -> Result<bool, CmdError> {
        let ch = &mut self.channels[idx].1;
        let info = ch
            .info(&[handle.to_string()])
            .map_err(|e| CmdError::command("restore", e.ora_lines()))?;
        Ok(info.first().is_some_and(|f| !f.not_found))
    }

    /// Searches one channel for the newest autobackup of `dbid`.
    fn search_autobackup(
        &mut self,
        idx: usize,
        dbid: u32,
        start: NaiveDate,
        maxseq: u32,
        maxdays: u32,
    ) -> Result<Option<String>, CmdError> {
        let (name, device) = {
            let ch = &self.channels[idx].1;
            (ch.name.clone(), ch.device)
        };
        let fmt = self.autobackup_format(device);
        if !fmt.contains("%F") {
            self.out.line(format!(
                "channel {name}: autobackup format {fmt} has no %F: cannot search for AUTOBACKUP"
            ));
            return Ok(None);
        }
        for d in 0..maxdays {
            let day = start - Duration::days(i64::from(d));
            self.out.line(format!(
                "channel {name}: looking for AUTOBACKUP on day: {}",
                day.format("%Y%m%d")
            ));
            let at = day.and_hms_opt(0, 0, 0).unwrap_or_default();
            for seq in (0..=maxseq.min(255)).rev() {
                let piece = fmt.replace("%F", &autobackup_name(dbid, at, seq as u8));
                let handle = match device {
                    DeviceType::Disk => disk_path(&self.home, &piece),
                    DeviceType::Sbt => piece,
                };
                if self.piece_exists(idx, &handle)? {
                    self.out
                        .line(format!("channel {name}: AUTOBACKUP found: {handle}"));
                    return Ok(Some(handle));
                }
            }
        }
        self.out.line(format!(
            "channel {name}: no AUTOBACKUP in {maxdays} days found"
        ));
        Ok(None)
    }

    /// `RESTORE SPFILE | CONTROLFILE [TO 'path'] [FROM AUTOBACKUP | FROM 'handle']`.
    pub(super) fn restore_file(
        &mut self,
        kind: FileKind,
        to: Option<&str>,
        from: &FileSource,
        end: &mut StatusEnd,
    ) -> Result<(), CmdError> {
        self.out.blank();
        self.out
            .line(format!("Starting restore at {}", self.date(now())));
        let mounted = self.db.is_mounted();
        if to.is_none() {
            if kind == FileKind::Controlfile && mounted {
                return Err(CmdError::command(
                    "restore",
                    vec![
                        "RMAN-06496: must use the TO clause when the database is mounted or open"
                            .into(),
                    ],
                ));
            }
            let spfile_in_use = match self.db.instance_parameters() {
                Some(p) => p.from_spfile(),
                None => true,
            };
            if kind == FileKind::Spfile && spfile_in_use {
                return Err(CmdError::command(
                    "restore",
                    vec!["RMAN-06564: must use the TO clause when the instance is started with SPFILE".into()],
                ));
            }
        }
        if matches!(from, FileSource::Repository) && !mounted {
            return Err(CmdError::command(
                "restore",
                vec![
                    "RMAN-06563: control file or SPFILE must be restored using FROM AUTOBACKUP"
                        .into(),
                ],
            ));
        }
        let chans = self.job_channels(None, false)?;
        let (idx, handle, autobackup) = match from {
            FileSource::Autobackup { maxseq, maxdays } => {
                let dbid = self.info.dbid;
                if dbid == 0 {
                    return Err(CmdError::command(
                        "restore",
                        vec![
                            "RMAN-06495: must explicitly specify DBID with SET DBID command".into(),
                        ],
                    ));
                }
                let maxdays = maxdays.unwrap_or(MAXDAYS);
                if !(1..=366).contains(&maxdays) {
                    return Err(CmdError::command(
                        "restore",
                        vec![format!(
                            "RMAN-06494: MAXDAYS = {maxdays} is out of range (1-366)"
                        )],
                    ));
                }
                let maxseq = maxseq.unwrap_or(MAXSEQ);
                if maxseq > 255 {
                    return Err(CmdError::command(
                        "restore",
                        vec![format!(
                            "RMAN-06493: MAXSEQ = {maxseq} is out of range (0-255)"
                        )],
                    ));
                }
                let start = match self.until.clone() {
                    Some(Until::Time(t)) => self.time(&t)?.date(),
                    _ => now().date(),
                };
                let mut hit = None;
                for &i in &chans {
                    if let Some(h) = self.search_autobackup(i, dbid, start, maxseq, maxdays)? {
                        hit = Some((i, h));
                        break;
                    }
                }
                let (i, h) = hit.ok_or_else(not_found)?;
                (i, h, Some(dbid))
            }
            FileSource::Handle(h) => {
                let mut hit = None;
                for &i in &chans {
                    let handle = match self.channels[i].1.device {
                        DeviceType::Disk => disk_path(&self.home, h),
                        DeviceType::Sbt => h.clone(),
                    };
                    if self.piece_exists(i, &handle)? {
                        hit = Some((i, handle));
                        break;
                    }
                }
                let (i, h) = hit.ok_or_else(not_found)?;
                (i, h, None)
            }
            FileSource::Repository => {
                let handle = self.recorded_piece(kind)?;
                let device = if handle.1 == "DISK" {
                    DeviceType::Disk
                } else {
                    DeviceType::Sbt
                };
                let i = chans
                    .iter()
                    .copied()
                    .find(|&i| self.channels[i].1.device == device)
                    .ok_or_else(|| {
                        CmdError::command(
                            "restore",
                            vec![format!(
                                "RMAN-06100: no channel to restore a backup or copy of the {}",
                                match kind {
                                    FileKind::Spfile => "spfile",
                                    FileKind::Controlfile => "control file",
                                }
                            )],
                        )
                    })?;
                (i, handle.0, None)
            }
        };
        let name = self.channels[idx].1.name.clone();
        let what = match kind {
            FileKind::Spfile => "spfile",
            FileKind::Controlfile => "control file",
        };
        let started = now();
        if autobackup.is_some() {
            self.out.line(format!(
                "channel {name}: restoring {what} from AUTOBACKUP {handle}"
            ));
        } else {
            self.out.line(format!("channel {name}: restoring {what}"));
        }
        let bytes = {
            let wallet = crate::db::wallet_key(&self.home);
            let secrets = (&self.decryption[..], wallet.as_ref());
            let ch = &mut self.channels[idx].1;
            read_entry(ch, &handle, kind.entry(), autobackup, secrets).map_err(|e| {
                let mut lines = vec![format!(
                    "RMAN-03009: failure of restore command on {name} channel at {}",
                    super::datetime::error_stamp(now())
                )];
                lines.extend(e.lines);
                CmdError::new(lines)
            })?
        };
        let Some(bytes) = bytes else {
            return Err(not_found());
        };
        let target = self.write_restored(kind, to, &bytes)?;
        match (autobackup.is_some(), kind) {
            (true, FileKind::Controlfile) => self.out.line(format!(
                "channel {name}: control file restore from AUTOBACKUP complete"
            )),
            (true, FileKind::Spfile) => self.out.line(format!(
                "channel {name}: SPFILE restore from AUTOBACKUP complete"
            )),
            (false, _) => self.out.line(format!(
                "channel {name}: restore complete, elapsed time: {}",
                elapsed((now() - started).num_seconds())
            )),
        }
        if kind == FileKind::Controlfile || to.is_some() {
            self.out
                .line(format!("output file name={}", target.display()));
        }
        end.input_bytes = bytes.len() as u64;
        end.output_bytes = bytes.len() as u64;
        self.out
            .line(format!("Finished restore at {}", self.date(now())));
        Ok(())
    }

    /// Writes a restored file where it belongs: TO 'path', else the home's control file or
    /// `dbs/spfile<DB_NAME>.ora` (DB_NAME read from the restored spfile).
    fn write_restored(
        &self,
        kind: FileKind,
        to: Option<&str>,
        bytes: &[u8],
    ) -> Result<std::path::PathBuf, CmdError> {
        let err = |e| CmdError::db("restore", e);
        if let Some(p) = to {
            let p = std::path::PathBuf::from(p);
            write_atomic(&p, bytes).map_err(err)?;
            return Ok(p);
        }
        match kind {
            FileKind::Controlfile => {
                Database::restore_controlfile(&self.home, bytes).map_err(err)?;
                Ok(self.home.join(crate::db::CONTROLFILE_REL))
            }
            FileKind::Spfile => {
                let params = Parameters::parse(&String::from_utf8_lossy(bytes));
                let name = params.db_name().unwrap_or_else(|| self.info.name.clone());
                let p = self.home.join("dbs").join(format!("spfile{name}.ora"));
                write_atomic(&p, bytes).map_err(err)?;
                Ok(p)
            }
        }
    }

    /// The newest available piece of a set holding the control file (V$BACKUP_DATAFILE
    /// FILE# 0) or the spfile (V$BACKUP_SPFILE): (handle, device type).
    fn recorded_piece(&self, kind: FileKind) -> Result<(String, String), CmdError> {
        let err = |e| CmdError::db("restore", e);
        let sets: Vec<(u32, u32)> = match kind {
            FileKind::Controlfile => catalog::backup_datafiles(&self.db)
                .map_err(err)?
                .into_iter()
                .filter(|d| d.file_no == 0)
                .map(|d| (d.set_stamp, d.set_count))
                .collect(),
            FileKind::Spfile => catalog::spfile_sets(&self.db).map_err(err)?,
        };
        let pieces = catalog::pieces(&self.db).map_err(err)?;
        pieces
            .into_iter()
            .filter(|p| p.status == "A" && sets.contains(&(p.set_stamp, p.set_count)))
            .max_by_key(|p| (p.completion_time, p.recid))
            .map(|p| (p.handle, p.device_type))
            .ok_or_else(|| {
                CmdError::command(
                    "restore",
                    vec![
                        "RMAN-06026: some targets not found - aborting restore".into(),
                        format!(
                            "RMAN-06024: no backup or copy of the {} found to restore",
                            match kind {
                                FileKind::Spfile => "spfile",
                                FileKind::Controlfile => "control file",
                            }
                        ),
                    ],
                )
            })
    }
}
