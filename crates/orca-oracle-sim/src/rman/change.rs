//! CHANGE BACKUPSET / BACKUPPIECE (status, UNCATALOG, KEEP), DELETE COPY, REPORT
//! UNRECOVERABLE, SHOW of one setting, and BACKUP DATAFILE '<name>' resolved to file numbers.

use super::ast::*;
use super::catalog::{self, PieceRow};
use super::session::{CmdError, Session};

/// The settings SHOW names, as CONFIGURE spells them.
const SHOWABLE: &[&str] = &[
    "RETENTION POLICY",
    "BACKUP OPTIMIZATION",
    "DEFAULT DEVICE TYPE",
    "CONTROLFILE AUTOBACKUP FORMAT",
    "CONTROLFILE AUTOBACKUP",
    "DEVICE TYPE",
    "DATAFILE BACKUP COPIES",
    "ARCHIVELOG BACKUP COPIES",
    "CHANNEL",
    "MAXSETSIZE",
    "EXCLUDE",
    "ENCRYPTION FOR DATABASE",
    "ENCRYPTION ALGORITHM",
    "COMPRESSION ALGORITHM",
    "RMAN OUTPUT",
    "ARCHIVELOG DELETION POLICY",
    "SNAPSHOT CONTROLFILE NAME",
];

impl Session {
    /// SHOW ALL, or SHOW of one setting: the lines of SHOW ALL that configure it.
    pub(super) fn show(&mut self, name: Option<&str>) -> Result<(), CmdError> {
        let Some(name) = name else {
            self.show_all();
            return Ok(());
        };
        let Some(setting) = SHOWABLE
            .iter()
            .find(|s| name == **s || name.strip_prefix(**s).is_some_and(|r| r.starts_with(' ')))
        else {
            return Err(CmdError::new(vec![
                format!(
                    "RMAN-01009: syntax error: found \"identifier\": expecting one of: \"{}\"",
                    SHOWABLE.join(", ").to_ascii_lowercase()
                ),
                format!("RMAN-01008: the bad identifier was: {name}"),
            ]));
        };
        let snapshot = self.home.join("snapcf.f");
        let mut all = self
            .config()
            .show_all(&self.info.name, &snapshot.to_string_lossy());
        let header = all.remove(0);
        let prefix = format!("CONFIGURE {setting} ");
        // CONTROLFILE AUTOBACKUP alone is the ON/OFF line, not its FORMAT.
        let lines: Vec<String> = all
            .into_iter()
            .filter(|l| l.starts_with(&prefix))
            .filter(|l| *setting != "CONTROLFILE AUTOBACKUP" || !l.contains("AUTOBACKUP FORMAT"))
            .collect();
        self.out.line(header);
        if lines.is_empty() {
            self.out
                .line("RMAN configuration has no stored or default parameters");
        }
        for l in lines {
            self.out.line(l);
        }
        Ok(())
    }

    /// BACKUP with every DATAFILE '<name>' replaced by its file number (ORA-01516 for a
    /// name the control file does not know).
    pub(super) fn resolve_datafile_names(&self, b: &Backup) -> Result<Backup, CmdError> {
        let mut b = b.clone();
        if b.specs.iter().all(|s| s.datafile_names.is_empty()) {
            return Ok(b);
        }
        let files = self.db.datafiles().map_err(|e| CmdError::db("backup", e))?;
        for spec in &mut b.specs {
            let BackupObject::Datafile(numbers) = &mut spec.object else {
                continue;
            };
            for name in spec.datafile_names.drain(..) {
                let found = files.iter().find(|f| f.path.to_string_lossy() == name);
                match found {
                    Some(f) => numbers.push(f.file_no),
                    None => {
                        return Err(CmdError::command(
                            "backup",
                            vec![
                                "RMAN-20201: datafile not found in the recovery catalog".into(),
                                format!("RMAN-06010: error while looking up datafile: {name}"),
                            ],
                        ));
                    }
                }
            }
        }
        Ok(b)
    }

    pub(super) fn change(&mut self, c: &Change) -> Result<(), CmdError> {
        let err = |e| CmdError::db("change", e);
        let sets = catalog::sets(&self.db).map_err(err)?;
        let pieces: Vec<PieceRow> = catalog::pieces(&self.db)
            .map_err(err)?
            .into_iter()
            .filter(|p| p.status != "D")
            .collect();
        let chosen: Vec<PieceRow> = match &c.what {
            ChangeWhat::Backupset(keys) => {
                for k in keys {
                    if !sets.iter().any(|s| s.recid as u64 == *k) {
                        return Err(CmdError::command(
                            "change",
                            vec![format!("RMAN-06160: no backup set found with key {k}")],
                        ));
                    }
                }
                pieces
                    .into_iter()
                    .filter(|p| {
                        sets.iter().any(|s| {
                            keys.contains(&(s.recid as u64))
                                && s.set_stamp == p.set_stamp
                                && s.set_count == p.set_count
                        })
                    })
                    .collect()
            }
            ChangeWhat::Backuppiece(refs) => {
                let v: Vec<PieceRow> = pieces
                    .into_iter()
                    .filter(|p| {
                        refs.iter().any(|r| match r {
                            PieceRef::Handle(h) => &p.handle == h,
                            PieceRef::Key(k) => p.recid as u64 == *k,
                        })
                    })
                    .collect();
                if v.is_empty() {
                    return Err(CmdError::command(
                        "change",
                        vec!["RMAN-06168: no backup pieces with this tag found".into()],
                    ));
                }
                v
            }
        };
        match &c.action {
            ChangeAction::Unavailable | ChangeAction::Available => {
                let (status, word) = if c.action == ChangeAction::Unavailable {
                    ("U", "unavailable")
                } else {
                    ("A", "available")
                };
                for p in &chosen {
                    catalog::set_piece_status(&self.db, p.recid, status).map_err(err)?;
                    self.out.line(format!("changed backup piece {word}"));
                    self.piece_line(p);
                }
                self.out.line(format!(
                    "Changed {} objects to {} status",
                    chosen.len(),
                    word.to_ascii_uppercase()
                ));
            }
            ChangeAction::Uncatalog => {
                for p in &chosen {
                    // The record goes, the file stays: CATALOG brings it back.
                    catalog::set_piece_status(&self.db, p.recid, "D").map_err(err)?;
                    catalog::drop_set_if_empty(&self.db, p.set_stamp, p.set_count).map_err(err)?;
                    self.out.line("uncataloged backup piece");
                    self.piece_line(p);
                }
                self.out
                    .line(format!("Uncataloged {} objects", chosen.len()));
            }
            ChangeAction::Keep(_) | ChangeAction::Nokeep => {
                let until = match &c.action {
                    ChangeAction::Keep(Some(t)) => Some(self.time(t)?),
                    _ => None,
                };
                let keep = matches!(c.action, ChangeAction::Keep(_));
                let mut done = Vec::new();
                for s in &sets {
                    let mine = chosen
                        .iter()
                        .any(|p| p.set_stamp == s.set_stamp && p.set_count == s.set_count);
                    if !mine || done.contains(&s.recid) {
                        continue;
                    }
                    done.push(s.recid);
                    catalog::set_keep(&self.db, s.recid, keep.then_some((until, "BACKUP_LOGS")))
                        .map_err(|e| CmdError::db("change", e))?;
                    if keep {
                        self.out.line("keep attributes for the backup are changed");
                        match until {
                            Some(t) => self
                                .out
                                .line(format!("backup will be obsolete on date {}", self.date(t))),
                            None => self.out.line("backup will never be obsolete"),
                        }
                    } else {
                        self.out.line("keep attributes for the backup are deleted");
                    }
                    self.out.line(format!(
                        "backup set key={} RECID={} STAMP={}",
                        s.recid, s.recid, s.set_stamp
                    ));
                }
            }
        }
        self.out.blank();
        Ok(())
    }

    /// DELETE [NOPROMPT] COPY [OF DATABASE | OF DATAFILE n] [TAG t]: the datafile copies
    /// listed as LIST COPY lists them, then removed with their V$DATAFILE_COPY rows.
    pub(super) fn delete_copies(
        &mut self,
        d: &Delete,
        tag: Option<&str>,
        files: Option<&[u32]>,
    ) -> Result<(), CmdError> {
        let copies: Vec<_> = catalog::copies(&self.db)
            .map_err(|e| CmdError::db("delete", e))?
            .into_iter()
            .filter(|c| tag.is_none_or(|t| c.tag.as_deref() == Some(t)))
            .filter(|c| files.is_none_or(|f| f.contains(&c.file_no)))
            .collect();
        if copies.is_empty() {
            self.out
                .line("specification does not match any datafile copy in the repository");
            return Ok(());
        }
        self.out.blank();
        self.out.line("List of Datafile Copies");
        self.out.line("=======================");
        self.out.blank();
        self.out
            .line("Key     File S Completion Time Ckp SCN    Ckp Time        Sparse");
        self.out
            .line("------- ---- - --------------- ---------- --------------- ------");
        for c in &copies {
            self.out.line(format!(
                "{:<7} {:<4} {} {:<15} {:<10} {:<15} NO",
                c.recid,
                c.file_no,
                c.status,
                self.date(c.completion_time),
                c.checkpoint_scn.0,
                self.date(c.checkpoint_time)
            ));
            self.out.line(format!("        Name: {}", c.name));
            if let Some(t) = &c.tag {
                self.out.line(format!("        Tag: {t}"));
            }
            self.out.blank();
        }
        if !d.noprompt
            && !self.confirm("Do you really want to delete the above objects (enter YES or NO)?")
        {
            return Ok(());
        }
        for c in &copies {
            match std::fs::remove_file(&c.name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound || d.force => {}
                Err(e) => {
                    return Err(CmdError::command(
                        "delete",
                        vec![
                            format!("ORA-27056: could not delete file {}", c.name),
                            super::channel::os_error_line(&e),
                        ],
                    ));
                }
            }
            catalog::set_copy_status(&self.db, c.recid, "D")
                .map_err(|e| CmdError::db("delete", e))?;
            self.out.line("deleted datafile copy");
            self.out.line(format!(
                "datafile copy file name={} RECID={} STAMP={}",
                c.name, c.recid, c.stamp
            ));
        }
        self.out.line(format!("Deleted {} objects", copies.len()));
        self.out.blank();
        Ok(())
    }

    /// REPORT UNRECOVERABLE: files whose V$DATAFILE.UNRECOVERABLE_CHANGE# is newer than
    /// the checkpoint of their newest full or level-0 backup (set or copy).
    pub(super) fn report_unrecoverable(&mut self) -> Result<(), CmdError> {
        let rows: Vec<(u32, u64, u64, String)> = (|| -> rusqlite::Result<_> {
            let mut st = self.db.connection().prepare(
                r#"SELECT d."FILE#", coalesce(d."UNRECOVERABLE_CHANGE#", 0),
                     max(coalesce((SELECT max(b."CHECKPOINT_CHANGE#") FROM cf_backup_datafile b
                                   WHERE b."FILE#" = d."FILE#"
                                     AND coalesce(b."INCREMENTAL_LEVEL", 0) = 0), 0),
                         coalesce((SELECT max(c."CHECKPOINT_CHANGE#") FROM cf_datafile_copy c
                                   WHERE c."FILE#" = d."FILE#" AND c."STATUS" = 'A'), 0)),
                     d."NAME"
                   FROM cf_datafile d ORDER BY d."FILE#""#,
            )?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })()
        .map_err(|e| CmdError::db("report", e.into()))?;
        self.out
            .line("Report of files that need backup due to unrecoverable operations");
        self.out.line("File Type of Backup Required Name");
        self.out
            .line("---- ----------------------- -----------------------------------");
        for (file, unrecoverable, backed_up, name) in rows {
            if unrecoverable > 0 && unrecoverable > backed_up {
                let kind = if backed_up > 0 {
                    "full or incremental"
                } else {
                    "full"
                };
                self.out.line(format!("{file:<4} {kind:<23} {name}"));
            }
        }
        self.out.blank();
        Ok(())
    }

    fn piece_line(&self, p: &PieceRow) {
        self.out.line(format!(
            "backup piece handle={} RECID={} STAMP={}",
            p.handle, p.recid, p.stamp
        ));
    }
}
