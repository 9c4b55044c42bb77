//! BACKUP BACKUPSET ALL | n[, ...] [FORMAT 'fmt']: another copy of each piece of disk
//! backup sets, as Oracle makes one: the same records under a header naming the next COPY#,
//! recorded as a new V$BACKUP_PIECE row of the same set.

use std::fs::File;
use std::io::BufReader;

use orca_oracle::OracleTime;
use orca_oracle::format::{FormatContext, FormatKind, expand_format};

use super::ast::DeviceType;
use super::backup::{default_format, disk_path};
use super::catalog::{self, PieceRow};
use super::session::{CmdError, Session, now};
use crate::piece::PieceReader;

/// Length of a piece up to the end of its trailer (a disk piece may be padded after it).
fn piece_length(path: &str) -> Option<u64> {
    let f = File::open(path).ok()?;
    let mut r = PieceReader::open(BufReader::new(f)).ok()?;
    r.skip_sealed();
    let mut buf = Vec::new();
    while r.next_record(&mut buf).ok()?.is_some() {}
    Some(r.summary()?.length)
}

impl Session {
    pub(super) fn backup_backupset(
        &mut self,
        keys: Option<&[u64]>,
        formats: &[String],
    ) -> Result<(), CmdError> {
        let cmd = "backup";
        let err = |e| CmdError::db(cmd, e);
        let sets = catalog::sets(&self.db).map_err(err)?;
        if let Some(keys) = keys {
            for k in keys {
                if !sets.iter().any(|s| s.recid as u64 == *k) {
                    return Err(CmdError::command(
                        cmd,
                        vec![format!("RMAN-06160: no backup set found with key {k}")],
                    ));
                }
            }
        }
        let all = catalog::pieces(&self.db).map_err(err)?;
        let chans = self.job_channels(Some(DeviceType::Disk), false)?;
        let idx = chans[0];
        let name = self.channels[idx].1.name.clone();
        let channel_format = self.channels[idx].1.opts.formats.first().cloned();
        let start = now();
        self.out.blank();
        self.out
            .line(format!("Starting backup at {}", self.date(start)));
        let fmt = formats
            .first()
            .cloned()
            .or(channel_format)
            .unwrap_or_else(|| default_format(&self.home, DeviceType::Disk));
        let mut done = 0;
        for s in sets
            .iter()
            .filter(|s| keys.is_none_or(|k| k.contains(&(s.recid as u64))))
        {
            let mine: Vec<&PieceRow> = all
                .iter()
                .filter(|p| p.set_stamp == s.set_stamp && p.set_count == s.set_count)
                .collect();
            for piece_no in 1..=s.pieces {
                let copies: Vec<&&PieceRow> = mine.iter().filter(|p| p.piece == piece_no).collect();
                let Some(src) = copies
                    .iter()
                    .filter(|p| p.status == "A" && p.device_type == DeviceType::Disk.name())
                    .min_by_key(|p| p.copy)
                else {
                    continue;
                };
                let copy = copies.iter().map(|p| p.copy).max().unwrap_or(1) + 1;
                let fctx = FormatContext {
                    kind: FormatKind::BackupPiece,
                    db_name: self.info.name.clone(),
                    dbid: self.info.dbid,
                    set_count: s.set_count,
                    set_stamp: OracleTime(s.set_stamp),
                    piece_no,
                    copy_no: copy,
                    activation_id: self.info.activation_id,
                    file_no: None,
                    tablespace: None,
                    file_name: None,
                    thread: None,
                    sequence: None,
                    date: start,
                    autobackup_seq: 0,
                };
                let handle = expand_format(&fmt, &fctx)
                    .map(|h| disk_path(&self.home, &h))
                    .map_err(|e| {
                        CmdError::command(cmd, vec![format!("ORA-19508: {e} in format {fmt}")])
                    })?;
                self.out.line(format!(
                    "channel {name}: input backup set: count={}, stamp={}, piece={piece_no}",
                    s.set_count, s.set_stamp
                ));
                self.out.line(format!(
                    "channel {name}: starting piece {piece_no} at {}",
                    self.date(now())
                ));
                self.out
                    .line(format!("channel {name}: backup piece {}", src.handle));
                let t0 = now();
                let len = piece_length(&src.handle).ok_or_else(|| {
                    CmdError::command(
                        cmd,
                        vec![format!(
                            "ORA-19870: error while restoring backup piece {}",
                            src.handle
                        )],
                    )
                })?;
                if std::path::Path::new(&handle).exists() {
                    return Err(CmdError::command(
                        cmd,
                        vec![
                            format!("ORA-19504: failed to create file \"{handle}\""),
                            "ORA-27038: created file already exists".into(),
                        ],
                    ));
                }
                let written = File::open(&src.handle)
                    .map_err(crate::piece::PieceError::Io)
                    .and_then(|input| {
                        let out = File::create(&handle).map_err(crate::piece::PieceError::Io)?;
                        crate::piece::recopy(BufReader::new(input), len, out, copy)
                    });
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&handle);
                    return Err(CmdError::command(
                        cmd,
                        vec![format!("ORA-19502: write error on file \"{handle}\": {e}")],
                    ));
                }
                let end = now();
                let row = PieceRow {
                    recid: 0,
                    stamp: catalog::stamp(end),
                    copy,
                    handle: handle.clone(),
                    start_time: t0,
                    completion_time: end,
                    bytes: len,
                    status: "A".into(),
                    rman_status: self.current_status.map(|k| (k.recid, k.stamp)),
                    ..(**src).clone()
                };
                catalog::insert_piece(&self.db, &row).map_err(err)?;
                self.out.line(format!("piece handle={handle} comment=NONE"));
                self.out.line(format!(
                    "channel {name}: finished piece {piece_no} at {}",
                    self.date(end)
                ));
                done += 1;
            }
        }
        if done == 0 {
            self.out
                .line("specification does not match any backup in the repository");
        }
        self.out
            .line(format!("Finished backup at {}", self.date(now())));
        Ok(())
    }
}
