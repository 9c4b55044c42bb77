//! Maintenance commands: CONFIGURE / SHOW, LIST, REPORT OBSOLETE, CROSSCHECK, DELETE,
//! SQL (CATALOG is in `catalog_files.rs`; STARTUP / SHUTDOWN / ALTER DATABASE in
//! `instance.rs`).
//!
//! Obsolescence follows oracle-facts §4.4: with REDUNDANCY n a datafile backup is obsolete
//! when n newer full/level-0 backups of the same file exist; with RECOVERY WINDOW OF n DAYS
//! the newest full/level-0 backup taken before SYSDATE - n is kept with everything after it.
//! Archived-log backups are obsolete when older than the oldest datafile backup kept.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;

use super::archlog::LogDelete;
use super::ast::*;
use super::catalog::{self, BackupDatafileRow, BackupRedologRow, PieceRow, SetRow};
use super::config::{name_value, replaces};
use super::session::{CmdError, Session, db_lines, now};

/// A backup set with its pieces, as LIST and the obsolete rules see it.
struct SetView {
    set: Option<SetRow>,
    pieces: Vec<PieceRow>,
    files: BTreeSet<u32>,
    logs: Vec<(u16, u32)>,
    /// V$BACKUP_DATAFILE rows (FILE# 0: the control file), for LIST's detail.
    df_rows: Vec<BackupDatafileRow>,
    log_rows: Vec<BackupRedologRow>,
    spfile: bool,
}

/// Which sets a LIST shows.
type SetFilter = Box<dyn Fn(&SetView) -> bool>;

impl SetView {
    fn key(&self) -> i64 {
        self.set
            .as_ref()
            .map(|s| s.recid)
            .or_else(|| self.pieces.first().map(|p| p.recid))
            .unwrap_or(0)
    }

    fn completion(&self) -> chrono::NaiveDateTime {
        match &self.set {
            Some(s) => s.completion_time,
            None => self
                .pieces
                .iter()
                .map(|p| p.completion_time)
                .max()
                .unwrap_or_else(now),
        }
    }

    /// Full or level-0 datafile set (the base of a recovery).
    fn is_base(&self) -> bool {
        self.set.as_ref().is_some_and(|s| {
            s.backup_type == "D" || (s.backup_type == "I" && s.incremental_level == Some(0))
        })
    }

    fn keep(&self) -> bool {
        self.set.as_ref().is_some_and(|s| s.keep)
    }
}

impl Session {
    fn cmd_err(&self, cmd: &str, e: crate::db::DbError) -> CmdError {
        CmdError::command(cmd, db_lines(&e))
    }

    /// Every backup set (complete or not) with its live pieces, oldest first.
    fn set_views(&self, cmd: &str) -> Result<Vec<SetView>, CmdError> {
        let sets = catalog::sets(&self.db).map_err(|e| self.cmd_err(cmd, e))?;
        let pieces = catalog::pieces(&self.db).map_err(|e| self.cmd_err(cmd, e))?;
        let dfs = catalog::backup_datafiles(&self.db).map_err(|e| self.cmd_err(cmd, e))?;
        let logs = catalog::backup_redologs(&self.db).map_err(|e| self.cmd_err(cmd, e))?;
        let mut by_key: BTreeMap<(u32, u32), SetView> = BTreeMap::new();
        for p in pieces {
            by_key
                .entry((p.set_stamp, p.set_count))
                .or_insert_with(|| SetView {
                    set: None,
                    pieces: Vec::new(),
                    files: BTreeSet::new(),
                    logs: Vec::new(),
                    df_rows: Vec::new(),
                    log_rows: Vec::new(),
                    spfile: false,
                })
                .pieces
                .push(p);
        }
        for s in sets {
            if let Some(v) = by_key.get_mut(&(s.set_stamp, s.set_count)) {
                v.set = Some(s);
            }
        }
        for d in dfs {
            if let Some(v) = by_key.get_mut(&(d.set_stamp, d.set_count)) {
                v.files.insert(d.file_no);
                v.df_rows.push(d);
            }
        }
        for l in logs {
            if let Some(v) = by_key.get_mut(&(l.set_stamp, l.set_count)) {
                v.logs.push((l.thread, l.sequence));
                v.log_rows.push(l);
            }
        }
        for key in catalog::spfile_sets(&self.db).map_err(|e| self.cmd_err(cmd, e))? {
            if let Some(v) = by_key.get_mut(&key) {
                v.spfile = true;
            }
        }
        let mut v: Vec<SetView> = by_key.into_values().collect();
        v.sort_by_key(|s| (s.completion(), s.key()));
        Ok(v)
    }

    pub(super) fn configure(&mut self, c: &Configure) -> Result<(), CmdError> {
        let (name, value) = name_value(c);
        let replaced = catalog::replace_configuration(
            &self.db,
            &name,
            &|stored| replaces(c, stored),
            value.as_deref(),
        )
        .map_err(|e| self.cmd_err("configure", e))?;
        for old in &replaced {
            self.out.line("old RMAN configuration parameters:");
            self.out.line(format!("CONFIGURE {name} {old};"));
        }
        match &value {
            Some(v) => {
                self.out.line("new RMAN configuration parameters:");
                self.out.line(format!("CONFIGURE {name} {v};"));
                self.out
                    .line("new RMAN configuration parameters are successfully stored");
            }
            None => self
                .out
                .line("RMAN configuration parameters are successfully reset to default value"),
        }
        Ok(())
    }

    pub(super) fn show_all(&mut self) {
        let snapshot = self.home.join("snapcf.f");
        for l in self
            .config()
            .show_all(&self.info.name, &snapshot.to_string_lossy())
        {
            self.out.line(l);
        }
    }

    pub(super) fn list(&mut self, l: &List) -> Result<(), CmdError> {
        match l {
            List::Backup {
                summary,
                expired,
                tag,
                sets,
                device,
                of,
                recoverable,
            } => {
                let holds = self.holds(of.as_ref())?;
                let views: Vec<SetView> = self
                    .set_views("list")?
                    .into_iter()
                    .filter(|v| v.set.is_some())
                    .filter(|v| sets.is_empty() || sets.contains(&(v.key() as u64)))
                    .filter(|v| holds(v))
                    .filter(|v| !recoverable || v.pieces.iter().all(|p| p.status == "A"))
                    .filter(|v| {
                        v.pieces.iter().any(|p| {
                            (!expired || p.status == "X")
                                && tag.as_ref().is_none_or(|t| p.tag.as_deref() == Some(t))
                                && device.is_none_or(|d| p.device_type == d.name())
                        })
                    })
                    .collect();
                if views.is_empty() {
                    self.out.blank();
                    self.out
                        .line("specification does not match any backup in the repository");
                    return Ok(());
                }
                if *summary {
                    self.list_summary(&views);
                } else {
                    self.list_detail(&views);
                }
                Ok(())
            }
            List::Copy => {
                let copies = catalog::copies(&self.db).map_err(|e| self.cmd_err("list", e))?;
                self.out.blank();
                self.out.line("List of Datafile Copies");
                self.out.line("=======================");
                self.out.blank();
                self.out
                    .line("Key     File S Completion Time Ckp SCN    Ckp Time        Name");
                self.out
                    .line("------- ---- - --------------- ---------- --------------- ----");
                for c in copies {
                    self.out.line(format!(
                        "{:<7} {:<4} {} {:<15} {:<10} {:<15} {}",
                        c.recid,
                        c.file_no,
                        c.status,
                        self.date(c.completion_time),
                        c.checkpoint_scn.0,
                        self.date(c.checkpoint_time),
                        c.name
                    ));
                    if let Some(t) = &c.tag {
                        self.out.line(format!("        Tag: {t}"));
                    }
                }
                Ok(())
            }
            List::ExpiredArchivelog(range) => {
                let logs = self.archived_logs_where(range, |l| l.status == "X")?;
                if logs.is_empty() {
                    self.out.blank();
                    self.out
                        .line("specification does not match any archived log in the repository");
                    return Ok(());
                }
                self.print_logs(&logs);
                Ok(())
            }
            List::Archivelog(range) => {
                let logs = self.archived_logs_where(range, |l| l.status != "D")?;
                self.print_logs(&logs);
                Ok(())
            }
        }
    }

    /// Which sets LIST BACKUP OF <object> shows: those holding what was asked.
    fn holds(&self, of: Option<&BackupObject>) -> Result<SetFilter, CmdError> {
        Ok(match of {
            None => Box::new(|_| true),
            Some(BackupObject::CurrentControlfile) => Box::new(|v| v.files.contains(&0)),
            Some(BackupObject::Spfile) => Box::new(|v| v.spfile),
            Some(BackupObject::Archivelog(range)) => {
                let wanted: BTreeSet<(u16, u32)> = self
                    .archived_logs_where(range, |_| true)?
                    .iter()
                    .map(|l| (l.thread, l.sequence))
                    .collect();
                Box::new(move |v| v.logs.iter().any(|l| wanted.contains(l)))
            }
            Some(obj) => {
                let wanted: BTreeSet<u32> =
                    self.datafiles_of(obj)?.iter().map(|d| d.file_no).collect();
                Box::new(move |v| v.files.iter().any(|f| wanted.contains(f)))
            }
        })
    }

    /// The live pieces of the sets holding `of` (every live piece without it): what DELETE
    /// BACKUP OF and CROSSCHECK BACKUP OF act on, the sets LIST BACKUP OF shows.
    fn pieces_holding(
        &self,
        cmd: &str,
        of: Option<&BackupObject>,
    ) -> Result<Vec<PieceRow>, CmdError> {
        if of.is_none() {
            return catalog::pieces(&self.db).map_err(|e| self.cmd_err(cmd, e));
        }
        let holds = self.holds(of)?;
        let mut pieces: Vec<PieceRow> = self
            .set_views(cmd)?
            .into_iter()
            .filter(|v| holds(v))
            .flat_map(|v| v.pieces)
            .collect();
        pieces.sort_by_key(|p| p.recid);
        Ok(pieces)
    }

    fn list_summary(&self, views: &[SetView]) {
        self.out.blank();
        self.out.blank();
        self.out.line("List of Backups");
        self.out.line("===============");
        self.out
            .line("Key     TY LV S Device Type Completion Time #Pieces #Copies Compressed Tag");
        self.out
            .line("------- -- -- - ----------- --------------- ------- ------- ---------- ---");
        for v in views {
            let s = v.set.as_ref().expect("filtered to complete sets");
            let lv = match (s.backup_type.as_str(), s.incremental_level) {
                ("L", _) => "A".to_string(),
                (_, Some(l)) => l.to_string(),
                ("I", None) => "I".to_string(),
                _ => "F".to_string(),
            };
            let status = if v.pieces.iter().all(|p| p.status == "X") {
                "X"
            } else {
                "A"
            };
            let first = &v.pieces[0];
            self.out.line(format!(
                "{:<7} B  {:<2} {} {:<11} {:<15} {:<7} {:<7} {:<10} {}",
                v.key(),
                lv,
                status,
                first.device_type,
                self.date(s.completion_time),
                v.pieces.iter().filter(|p| p.copy == 1).count().max(1),
                v.pieces.iter().map(|p| p.copy).max().unwrap_or(1),
                if first.compressed { "YES" } else { "NO" },
                first.tag.as_deref().unwrap_or("")
            ));
        }
    }

    fn list_detail(&self, views: &[SetView]) {
        let names: BTreeMap<u32, String> = self
            .db
            .datafiles()
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.file_no, d.path.display().to_string()))
            .collect();
        self.out.blank();
        self.out.blank();
        self.out.line("List of Backup Sets");
        self.out.line("===================");
        self.out.blank();
        for v in views {
            let s = v.set.as_ref().expect("filtered to complete sets");
            let kind = match (s.backup_type.as_str(), s.incremental_level) {
                ("L", _) => "Archive".to_string(),
                (_, Some(l)) => format!("Incr {l}"),
                ("I", None) => "Incr".to_string(),
                _ => "Full".to_string(),
            };
            let bytes: u64 = v.pieces.iter().map(|p| p.bytes).sum();
            let elapsed = (s.completion_time - s.start_time).num_seconds().max(0);
            self.out.blank();
            self.out
                .line("BS Key  Type LV Size       Device Type Elapsed Time Completion Time");
            self.out
                .line("------- ---- -- ---------- ----------- ------------ ---------------");
            self.out.line(format!(
                "{:<7} {:<7} {:<10} {:<11} {:02}:{:02}:{:02}     {}",
                v.key(),
                kind,
                super::config::size_text(bytes),
                v.pieces[0].device_type,
                elapsed / 3600,
                elapsed / 60 % 60,
                elapsed % 60,
                self.date(s.completion_time)
            ));
            for p in &v.pieces {
                self.out.line(format!(
                    "        BP Key: {}   Status: {}  Compressed: {}  Tag: {}",
                    p.recid,
                    status_word(&p.status),
                    if p.compressed { "YES" } else { "NO" },
                    p.tag.as_deref().unwrap_or("")
                ));
                self.out.line(format!(
                    "        Piece Name: {}{}",
                    p.handle,
                    p.media
                        .as_ref()
                        .map(|m| format!("   Media: {m}"))
                        .unwrap_or_default()
                ));
            }
            if let Ok(Some((until, options))) = catalog::keep_of(&self.db, s.recid) {
                self.out.line(format!(
                    "  Keep: {options:<18} Until: {}",
                    until.map_or_else(|| "FOREVER".to_string(), |t| self.date(t))
                ));
            }
            let datafiles: Vec<&BackupDatafileRow> =
                v.df_rows.iter().filter(|d| d.file_no > 0).collect();
            if !datafiles.is_empty() {
                self.out
                    .line(format!("  List of Datafiles in backup set {}", v.key()));
                self.out
                    .line("  File LV Type Ckp SCN    Ckp Time        Name");
                self.out
                    .line("  ---- -- ---- ---------- --------------- ----");
                for d in datafiles {
                    let lv = d
                        .incremental_level
                        .map(|l| l.to_string())
                        .unwrap_or_default();
                    let ty = if s.backup_type == "I" { "Incr" } else { "Full" };
                    self.out.line(format!(
                        "  {:<4} {lv:<2} {ty:<4} {:<10} {:<15} {}",
                        d.file_no,
                        d.checkpoint_scn.0,
                        self.date(d.checkpoint_time),
                        names.get(&d.file_no).map(String::as_str).unwrap_or("")
                    ));
                }
            }
            if !v.log_rows.is_empty() {
                self.out
                    .line(format!("  List of Archived Logs in backup set {}", v.key()));
                self.out
                    .line("  Thrd Seq     Low SCN    Low Time        Next SCN   Next Time");
                self.out
                    .line("  ---- ------- ---------- --------------- ---------- ---------");
                for l in &v.log_rows {
                    self.out.line(format!(
                        "  {:<4} {:<7} {:<10} {:<15} {:<10} {}",
                        l.thread,
                        l.sequence,
                        l.first_scn.0,
                        self.date(l.first_time),
                        l.next_scn.0,
                        self.date(l.next_time)
                    ));
                }
            }
            if v.spfile {
                // The simulator records the SPFILE's modification time as the set's completion.
                self.out.line(format!(
                    "  SPFILE Included: Modification time: {}",
                    self.date(s.completion_time)
                ));
                self.out
                    .line(format!("  SPFILE db_unique_name: {}", self.info.name));
            }
            if let Some(cf) = v.df_rows.iter().find(|d| d.file_no == 0) {
                self.out.line(format!(
                    "  Control File Included: Ckp SCN: {:<12} Ckp time: {}",
                    cf.checkpoint_scn.0,
                    self.date(cf.checkpoint_time)
                ));
            }
        }
    }

    /// Sets that the retention policy no longer needs, oldest first.
    /// REPORT NEED BACKUP: the datafiles the measure (or the retention policy) finds short of
    /// backups, in Oracle's layout.
    fn report_need_backup(&mut self, need: Option<NeedBackup>) -> Result<(), CmdError> {
        let need = match need {
            Some(n) => n,
            None => {
                let policy = self.config().retention.clone();
                self.out
                    .line("RMAN retention policy will be applied to the command");
                self.out.line(format!(
                    "RMAN retention policy is set to {}",
                    super::config::retention_text(&policy).to_lowercase()
                ));
                match policy {
                    RetentionPolicy::Redundancy(n) => NeedBackup::Redundancy(n),
                    RetentionPolicy::RecoveryWindow(n) => NeedBackup::Window(n),
                    RetentionPolicy::None => return Ok(()),
                }
            }
        };
        let views = self.set_views("report")?;
        let copies = catalog::copies(&self.db).map_err(|e| self.cmd_err("report", e))?;
        let files = self.db.datafiles().map_err(|e| self.cmd_err("report", e))?;
        // Usable full or level-0 backups of a file: complete sets with every piece available,
        // and image copies; their completion times.
        let backups_of = |file_no: u32| -> Vec<chrono::NaiveDateTime> {
            let mut v: Vec<chrono::NaiveDateTime> = views
                .iter()
                .filter(|v| v.is_base() && v.files.contains(&file_no))
                .filter(|v| {
                    let have: BTreeSet<u32> = v
                        .pieces
                        .iter()
                        .filter(|p| p.status == "A")
                        .map(|p| p.piece)
                        .collect();
                    v.set
                        .as_ref()
                        .is_some_and(|s| have.len() as u32 == s.pieces)
                })
                .map(SetView::completion)
                .chain(
                    copies
                        .iter()
                        .filter(|c| c.file_no == file_no && c.status == "A")
                        .map(|c| c.completion_time),
                )
                .collect();
            v.sort();
            v
        };
        let now = now();
        let days_since = |t: chrono::NaiveDateTime| (now - t).num_days().max(0);
        let (title, heading, short): (String, &str, Vec<(u32, i64, String)>) = match need {
            NeedBackup::Redundancy(n) => (
                format!("Report of files with less than {n} redundant backups"),
                "File #bkps Name",
                files
                    .iter()
                    .filter_map(|f| {
                        let count = backups_of(f.file_no).len() as i64;
                        (count < i64::from(n))
                            .then(|| (f.file_no, count, f.path.display().to_string()))
                    })
                    .collect(),
            ),
            NeedBackup::Days(n) | NeedBackup::Window(n) => {
                let title = match need {
                    NeedBackup::Days(_) => {
                        format!(
                            "Report of files whose recovery needs more than {n} days of archived logs"
                        )
                    }
                    _ => format!(
                        "Report of files that must be backed up to satisfy {n} days recovery window"
                    ),
                };
                let created =
                    |f: &crate::db::DatafileInfo| f.creation_time.to_datetime().unwrap_or(now);
                (
                    title,
                    "File Days  Name",
                    files
                        .iter()
                        .filter_map(|f| {
                            let newest = backups_of(f.file_no)
                                .last()
                                .copied()
                                .unwrap_or_else(|| created(f));
                            let days = days_since(newest);
                            let stale = match need {
                                NeedBackup::Days(_) => days > i64::from(n),
                                // Some backup must be older than the window's start, and none
                                // may leave a gap: a file never backed up always needs one.
                                _ => backups_of(f.file_no).is_empty() || days > i64::from(n),
                            };
                            stale.then(|| (f.file_no, days, f.path.display().to_string()))
                        })
                        .collect(),
                )
            }
        };
        self.out.line(title);
        self.out.line(heading);
        self.out
            .line("---- ----- -----------------------------------------------------");
        for (file_no, n, name) in short {
            self.out.line(format!("{file_no:<4} {n:<5} {name}"));
        }
        Ok(())
    }

    fn obsolete(&self, policy: Option<&RetentionPolicy>) -> Result<Vec<SetView>, CmdError> {
        let policy = policy
            .cloned()
            .unwrap_or_else(|| self.config().retention.clone());
        let views = self.set_views("report")?;
        let mut keep: BTreeSet<i64> = BTreeSet::new();
        let mut oldest_kept: Option<chrono::NaiveDateTime> = None;
        let files: BTreeSet<u32> = views.iter().flat_map(|v| v.files.clone()).collect();
        for f in &files {
            // Archival (KEEP) backups are outside the retention policy: they neither count
            // towards it nor become obsolete while kept.
            let bases: Vec<&SetView> = views
                .iter()
                .filter(|v| v.is_base() && !v.keep() && v.files.contains(f))
                .collect();
            let kept_from = match &policy {
                RetentionPolicy::None => return Ok(Vec::new()),
                RetentionPolicy::Redundancy(n) => {
                    let n = (*n).max(1) as usize;
                    bases
                        .len()
                        .checked_sub(n)
                        .and_then(|i| bases.get(i))
                        .map(|v| v.completion())
                }
                RetentionPolicy::RecoveryWindow(days) => {
                    let point = now() - Duration::days(i64::from(*days));
                    bases
                        .iter()
                        .rev()
                        .find(|v| v.completion() <= point)
                        .map(|v| v.completion())
                }
            };
            let Some(from) = kept_from else {
                // Not enough backups of this file yet: keep all of them.
                for v in views.iter().filter(|v| v.files.contains(f)) {
                    keep.insert(v.key());
                }
                oldest_kept = Some(chrono::NaiveDateTime::MIN);
                continue;
            };
            oldest_kept = Some(oldest_kept.map_or(from, |o| o.min(from)));
            for v in views.iter().filter(|v| v.files.contains(f)) {
                if v.completion() >= from {
                    keep.insert(v.key());
                }
            }
        }
        let Some(floor) = oldest_kept else {
            return Ok(Vec::new());
        };
        Ok(views
            .into_iter()
            .filter(|v| v.set.is_some() && !v.keep() && !keep.contains(&v.key()))
            .filter(|v| !v.files.is_empty() || v.completion() < floor)
            .filter(|v| !v.files.is_empty() || !v.logs.is_empty())
            .collect())
    }

    pub(super) fn report(&mut self, r: &Report) -> Result<(), CmdError> {
        match r {
            Report::Obsolete { policy, .. } => {
                let obsolete = self.obsolete(policy.as_ref())?;
                let policy_text = super::config::retention_text(
                    &policy
                        .clone()
                        .unwrap_or_else(|| self.config().retention.clone()),
                );
                self.out
                    .line("RMAN retention policy will be applied to the command");
                self.out.line(format!(
                    "RMAN retention policy is set to {}",
                    policy_text.to_lowercase()
                ));
                if obsolete.is_empty() {
                    self.out.line("no obsolete backups found");
                    return Ok(());
                }
                self.print_obsolete(&obsolete);
                Ok(())
            }
            Report::NeedBackup(need) => self.report_need_backup(*need),
            Report::Unrecoverable => self.report_unrecoverable(),
            Report::Schema => {
                let files = self.db.datafiles().map_err(|e| self.cmd_err("report", e))?;
                self.out.line(format!(
                    "Report of database schema for database with db_unique_name {}",
                    self.info.name
                ));
                self.out.blank();
                self.out.line("List of Permanent Datafiles");
                self.out.line("===========================");
                self.out
                    .line("File Size(MB) Tablespace           RB segs Datafile Name");
                self.out
                    .line("---- -------- -------------------- ------- ------------------------");
                for f in files {
                    self.out.line(format!(
                        "{:<4} {:<8} {:<20} {:<7} {}",
                        f.file_no,
                        (u64::from(f.blocks) * f.block_size as u64) >> 20,
                        f.tablespace,
                        "***",
                        f.path.display()
                    ));
                }
                Ok(())
            }
        }
    }

    fn print_obsolete(&self, obsolete: &[SetView]) {
        self.out.line("Report of obsolete backups and copies");
        self.out
            .line("Type                 Key    Completion Time    Filename/Handle");
        self.out
            .line("-------------------- ------ ------------------ --------------------");
        for v in obsolete {
            self.out.line(format!(
                "Backup Set           {:<6} {:<18}",
                v.key(),
                self.date(v.completion())
            ));
            for p in &v.pieces {
                self.out.line(format!(
                    "  Backup Piece       {:<6} {:<18} {}",
                    p.recid,
                    self.date(p.completion_time),
                    p.handle
                ));
            }
        }
    }

    /// A channel index for pieces of `device`: the job's channels, or an automatic one.
    pub(super) fn channel_for(&mut self, device: &str) -> Result<usize, CmdError> {
        let d = if device == DeviceType::Sbt.name() {
            DeviceType::Sbt
        } else {
            DeviceType::Disk
        };
        let v = self.job_channels(Some(d), true)?;
        Ok(v[0])
    }

    pub(super) fn crosscheck(&mut self, c: &Crosscheck) -> Result<(), CmdError> {
        if let ListKind::Archivelog(range) = &c.kind {
            return self.crosscheck_archivelog(range);
        }
        let mut pieces = self.pieces_holding("crosscheck", c.of.as_ref())?;
        pieces.retain(|p| {
            (c.pieces.is_empty()
                || c.pieces.iter().any(|r| match r {
                    PieceRef::Handle(h) => &p.handle == h,
                    PieceRef::Key(k) => p.recid as u64 == *k,
                }))
                && c.tag.as_ref().is_none_or(|t| p.tag.as_deref() == Some(t))
                && c.device.is_none_or(|d| p.device_type == d.name())
        });
        if pieces.is_empty() {
            self.out
                .line("specification does not match any backup in the repository");
            return Ok(());
        }
        let mut by_device: BTreeMap<String, Vec<PieceRow>> = BTreeMap::new();
        for p in pieces {
            by_device.entry(p.device_type.clone()).or_default().push(p);
        }
        let mut count = 0;
        for (device, list) in by_device {
            let idx = self.channel_for(&device)?;
            let handles: Vec<String> = list.iter().map(|p| p.handle.clone()).collect();
            let name = self.channels[idx].1.name.clone();
            let infos = self.channels[idx].1.info(&handles).map_err(|e| {
                let mut v = vec![format!(
                    "RMAN-03009: failure of crosscheck command on {name} channel at {}",
                    super::datetime::error_stamp(now())
                )];
                v.extend(e.ora_lines());
                CmdError::new(v)
            })?;
            for (p, info) in list.iter().zip(infos) {
                let status = if info.not_found { "X" } else { "A" };
                if status != p.status {
                    catalog::set_piece_status(&self.db, p.recid, status)
                        .map_err(|e| self.cmd_err("crosscheck", e))?;
                }
                let word = if info.not_found {
                    "crosschecked backup piece: found to be 'EXPIRED'"
                } else {
                    "crosschecked backup piece: found to be 'AVAILABLE'"
                };
                self.out.line(word);
                self.out.line(format!(
                    "backup piece handle={} RECID={} STAMP={}",
                    p.handle, p.recid, p.stamp
                ));
                count += 1;
            }
        }
        self.out.line(format!("Crosschecked {count} objects"));
        self.out.blank();
        Ok(())
    }

    pub(super) fn delete(&mut self, d: &Delete) -> Result<(), CmdError> {
        let logs = match &d.what {
            DeleteWhat::Expired(ListKind::Archivelog(range)) => Some((range, true, None)),
            DeleteWhat::Archivelog { range, backed_up } => Some((range, false, *backed_up)),
            _ => None,
        };
        if let Some((range, expired, backed_up)) = logs {
            return self.delete_archivelog(&LogDelete {
                range,
                expired,
                backed_up,
                noprompt: d.noprompt,
                force: d.force,
            });
        }
        let chosen: Vec<PieceRow> = match &d.what {
            DeleteWhat::Backuppiece(refs) => self
                .pieces_holding("delete", None)?
                .into_iter()
                .filter(|p| {
                    refs.iter().any(|r| match r {
                        PieceRef::Handle(h) => &p.handle == h,
                        PieceRef::Key(k) => p.recid as u64 == *k,
                    })
                })
                .collect(),
            DeleteWhat::Backupset(keys) => {
                let views = self.set_views("delete")?;
                views
                    .into_iter()
                    .filter(|v| keys.contains(&(v.key() as u64)))
                    .flat_map(|v| v.pieces)
                    .collect()
            }
            DeleteWhat::Expired(_) => self
                .pieces_holding("delete", None)?
                .into_iter()
                .filter(|p| p.status == "X")
                .collect(),
            DeleteWhat::Backup { tag, of } => self
                .pieces_holding("delete", of.as_ref())?
                .into_iter()
                .filter(|p| tag.as_ref().is_none_or(|t| p.tag.as_deref() == Some(t)))
                .collect(),
            DeleteWhat::Obsolete(policy) => {
                let obsolete = self.obsolete(policy.as_ref())?;
                if !obsolete.is_empty() {
                    self.print_obsolete(&obsolete);
                }
                obsolete.into_iter().flat_map(|v| v.pieces).collect()
            }
            DeleteWhat::Copy { tag, files } => {
                return self.delete_copies(d, tag.as_deref(), files.as_deref());
            }
            DeleteWhat::Archivelog { .. } => unreachable!("archived logs are deleted above"),
        };
        let chosen: Vec<PieceRow> = chosen
            .into_iter()
            .filter(|p| d.device.is_none_or(|dev| p.device_type == dev.name()))
            .collect();
        if chosen.is_empty() {
            self.out
                .line("specification does not match any backup in the repository");
            return Ok(());
        }
        self.out.blank();
        self.out.line("List of Backup Pieces");
        self.out
            .line("BP Key  BS Key  Pc# Cp# Status      Device Type Piece Name");
        self.out
            .line("------- ------- --- --- ----------- ----------- ----------");
        for p in &chosen {
            self.out.line(format!(
                "{:<7} {:<7} {:<3} {:<3} {:<11} {:<11} {}",
                p.recid,
                p.set_count,
                p.piece,
                p.copy,
                status_word(&p.status),
                p.device_type,
                p.handle
            ));
        }
        if !d.noprompt
            && !self.confirm("Do you really want to delete the above objects (enter YES or NO)?")
        {
            return Ok(());
        }
        let mut deleted = 0;
        for p in &chosen {
            let idx = self.channel_for(&p.device_type)?;
            let removed = if p.status == "X" {
                Ok(())
            } else {
                self.channels[idx].1.remove(&p.handle)
            };
            match removed {
                Ok(()) => {}
                Err(_) if d.force => {}
                Err(e) => {
                    let name = self.channels[idx].1.name.clone();
                    let mut v = vec![format!(
                        "RMAN-03009: failure of delete command on {name} channel at {}",
                        super::datetime::error_stamp(now())
                    )];
                    v.extend(e.ora_lines());
                    return Err(CmdError::new(v));
                }
            }
            catalog::set_piece_status(&self.db, p.recid, "D")
                .map_err(|e| self.cmd_err("delete", e))?;
            catalog::drop_set_if_empty(&self.db, p.set_stamp, p.set_count)
                .map_err(|e| self.cmd_err("delete", e))?;
            self.out.line("deleted backup piece");
            self.out.line(format!(
                "backup piece handle={} RECID={} STAMP={}",
                p.handle, p.recid, p.stamp
            ));
            deleted += 1;
        }
        self.out.line(format!("Deleted {deleted} objects"));
        self.out.blank();
        Ok(())
    }

    pub(super) fn sql(&mut self, s: &str) -> Result<(), CmdError> {
        self.out.blank();
        self.out.line(format!("sql statement: {s}"));
        let norm = s
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
        let norm = norm.trim_end_matches(';');
        let extra = super::sql_extra::run(&self.db, norm, s);
        let r = match norm {
            _ if extra.is_some() => extra.unwrap_or(Ok(())),
            "alter system archive log current" | "alter system switch logfile" => {
                self.db.switch_logfile().map(|_| ())
            }
            "alter system checkpoint" => self.db.checkpoint().map(|_| ()),
            "alter database disable block change tracking" => {
                self.db.disable_block_change_tracking()
            }
            n if n.starts_with("alter database enable block change tracking") => {
                let file = s.split('\'').nth(1).map(std::path::PathBuf::from);
                self.db.enable_block_change_tracking(file.as_deref())
            }
            _ if crate::db::parse_state_statement(s).is_some() => {
                self.db.execute_state_sql(s).unwrap_or(Ok("")).map(|_| ())
            }
            _ => {
                return Err(CmdError::command(
                    "sql",
                    vec![
                        "RMAN-11003: failure during parse/execution of SQL statement: ".to_string()
                            + s,
                        "ORA-00900: invalid SQL statement".into(),
                    ],
                ));
            }
        };
        r.map_err(|e| {
            let mut v = vec![format!(
                "RMAN-11003: failure during parse/execution of SQL statement: {s}"
            )];
            v.extend(db_lines(&e));
            CmdError::command("sql", v)
        })
    }
}

fn status_word(s: &str) -> &'static str {
    match s {
        "X" => "EXPIRED",
        "U" => "UNAVAILABLE",
        "D" => "DELETED",
        _ => "AVAILABLE",
    }
}
