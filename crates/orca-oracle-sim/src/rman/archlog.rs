//! Maintenance of archived logs: CROSSCHECK ARCHIVELOG checks the log files on disk,
//! DELETE [EXPIRED] ARCHIVELOG removes them and marks their rows deleted (oracle-facts §5.6:
//! STATUS 'X' after a failed crosscheck, 'D' with NAME NULL once deleted).

use std::path::Path;

use super::ast::{ArchivelogRange, DeviceType};
use super::session::{CmdError, Session};
use crate::db::ArchivedLog;

/// Which logs a DELETE ARCHIVELOG takes.
pub(super) struct LogDelete<'a> {
    pub range: &'a ArchivelogRange,
    /// Only EXPIRED rows (DELETE EXPIRED ARCHIVELOG).
    pub expired: bool,
    pub backed_up: Option<(u32, Option<DeviceType>)>,
    pub noprompt: bool,
    pub force: bool,
}

impl Session {
    pub(super) fn crosscheck_archivelog(
        &mut self,
        range: &ArchivelogRange,
    ) -> Result<(), CmdError> {
        let logs = self.archived_logs_where(range, |l| {
            l.name.is_some() && (l.status == "A" || l.status == "X")
        })?;
        if logs.is_empty() {
            self.out
                .line("specification does not match any archived log in the repository");
            return Ok(());
        }
        self.channel_for(DeviceType::Disk.name())?;
        for l in &logs {
            let found = l.name.as_deref().is_some_and(Path::is_file);
            let status = if found { "A" } else { "X" };
            if status != l.status {
                self.db
                    .set_archived_log_status(l.recid, status)
                    .map_err(|e| CmdError::db("crosscheck", e))?;
            }
            self.out.line(if found {
                "validation succeeded for archived log"
            } else {
                "validation failed for archived log"
            });
            self.log_line(l);
        }
        self.out
            .line(format!("Crosschecked {} objects", logs.len()));
        self.out.blank();
        Ok(())
    }

    pub(super) fn delete_archivelog(&mut self, d: &LogDelete<'_>) -> Result<(), CmdError> {
        let (expired, force) = (d.expired, d.force);
        let mut logs = self.archived_logs_where(d.range, |l| {
            l.name.is_some()
                && if expired {
                    l.status == "X"
                } else {
                    l.status == "A" || force && l.status == "X"
                }
        })?;
        if let Some((n, device)) = d.backed_up {
            let device = device.unwrap_or(self.config().default_device);
            logs.retain(|l| self.log_backup_count(l.thread, l.sequence, device) >= n);
        }
        if logs.is_empty() {
            self.out
                .line("specification does not match any archived log in the repository");
            return Ok(());
        }
        self.channel_for(DeviceType::Disk.name())?;
        self.print_logs(&logs);
        if !d.noprompt
            && !self.confirm("Do you really want to delete the above objects (enter YES or NO)?")
        {
            return Ok(());
        }
        let mut deleted = 0;
        let mut mismatched = Vec::new();
        for l in &logs {
            let name = l.name.clone().unwrap_or_default();
            // A log that is gone without a crosscheck is a status mismatch: Oracle leaves
            // its record alone unless FORCE.
            if !expired && !force && !name.is_file() {
                mismatched.push(name);
                continue;
            }
            match std::fs::remove_file(&name) {
                Err(e) if !expired && !force && e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(CmdError::command(
                        "delete",
                        vec![
                            format!("ORA-19504: failed to delete file \"{}\"", name.display()),
                            super::channel::os_error_line(&e),
                        ],
                    ));
                }
                _ => {}
            }
            self.db
                .mark_archived_log_deleted(l.recid)
                .map_err(|e| CmdError::db("delete", e))?;
            self.out.line("deleted archived log");
            self.log_line(l);
            deleted += 1;
        }
        self.out.line(if expired {
            format!("Deleted {deleted} EXPIRED objects")
        } else {
            format!("Deleted {deleted} objects")
        });
        self.out.blank();
        if !mismatched.is_empty() {
            self.out.blank();
            self.out.line(format!(
                "RMAN-06207: WARNING: {} objects could not be deleted for DISK channel(s) due",
                mismatched.len()
            ));
            self.out.line(
                "RMAN-06208:          to mismatched status.  Use CROSSCHECK command to fix status",
            );
            self.out.line("RMAN-06210: List of Mismatched objects");
            self.out.line("RMAN-06211: ==========================");
            self.out.line("RMAN-06212:   Object Type   Filename/Handle");
            self.out.line(
                "RMAN-06213: --------------- ---------------------------------------------------",
            );
            for m in &mismatched {
                self.out
                    .line(format!("RMAN-06214: Archivelog      {}", m.display()));
            }
            self.out.blank();
        }
        Ok(())
    }

    /// Archived logs in LIST's layout.
    pub(super) fn print_logs(&mut self, logs: &[ArchivedLog]) {
        self.print_log_table(logs);
        self.out.blank();
    }

    /// The "List of Archived Log Copies" table, without the blank line that ends LIST's
    /// output (RESTORE ... PREVIEW goes on after it).
    pub(super) fn print_log_table<'a>(&mut self, logs: impl IntoIterator<Item = &'a ArchivedLog>) {
        self.out.blank();
        self.out.line(format!(
            "List of Archived Log Copies for database with db_unique_name {}",
            self.info.name
        ));
        self.out
            .line("=====================================================================");
        self.out.blank();
        self.out.line("Key     Thrd Seq     S Low Time");
        self.out.line("------- ---- ------- - ---------");
        for a in logs {
            let low = a.first_time.to_datetime().unwrap_or_default();
            let line = format!(
                "{:<7} {:<4} {:<7} {} {}",
                a.recid,
                a.thread,
                a.sequence,
                a.status,
                self.date(low)
            );
            self.out.line(line);
            if let Some(n) = &a.name {
                self.out.line(format!("        Name: {}", n.display()));
            }
        }
    }

    fn log_line(&mut self, l: &ArchivedLog) {
        self.out.line(format!(
            "archived log file name={} RECID={} STAMP={}",
            l.name.as_deref().unwrap_or(Path::new("")).display(),
            l.recid,
            l.stamp.0
        ));
    }
}
