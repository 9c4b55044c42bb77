//! CATALOG START WITH / BACKUPPIECE / DATAFILECOPY / ARCHIVELOG: registers disk files the
//! control file does not know, recognised by their own headers (backup pieces, datafile
//! copies, archived logs of this DBID). A backup set whose pieces are all cataloged gets its
//! V$BACKUP_SET row and member rows from the piece headers, so RESTORE can use it: this is
//! how backups taken after a restored control file's time become usable.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime};
use orca_oracle::block::FileHeaderBlock;
use orca_oracle::redo::parse_log_headers;
use orca_oracle::{DatafileHeader, Scn};

use super::ast::Catalog;
use super::catalog::{self, BackupDatafileRow, BackupRedologRow, CopyRow, PieceRow, SetRow};
use super::session::{CmdError, Session, now};
use crate::piece::{BackupType, EntryKind, PieceHeader, PieceReader};

/// What a file turned out to be.
enum Found {
    /// A backup piece; whether it is the last piece of its set.
    Piece(Box<PieceHeader>, bool),
    Copy(Box<DatafileHeader>, u64),
    Archlog,
}

fn unix_time(t: i64) -> NaiveDateTime {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_default()
}

/// Reads a whole piece (the trailer says whether it is the last of its set).
fn read_piece(path: &str) -> Option<(PieceHeader, bool)> {
    let f = File::open(path).ok()?;
    let mut r = PieceReader::open(std::io::BufReader::new(f)).ok()?;
    // An encrypted piece is cataloged without its key, as Oracle catalogs one.
    r.skip_sealed();
    let header = r.header().clone();
    let mut buf = Vec::new();
    while r.next_record(&mut buf).ok()?.is_some() {}
    Some((header, r.summary()?.last))
}

fn read_copy(path: &str) -> Option<(DatafileHeader, u64)> {
    let f = File::open(path).ok()?;
    let mut b0 = [0u8; 512];
    f.read_exact_at(&mut b0, 0).ok()?;
    let fh = FileHeaderBlock::parse(&b0).ok()?;
    let bs = fh.block_size as usize;
    let mut b1 = vec![0u8; bs];
    f.read_exact_at(&mut b1, bs as u64).ok()?;
    let h = DatafileHeader::parse(&b1).ok()?;
    Some((h, u64::from(fh.block_count)))
}

fn is_archlog(path: &str, dbid: u32) -> bool {
    let mut head = vec![0u8; 1024];
    File::open(path)
        .and_then(|f| f.read_exact_at(&mut head, 0))
        .ok()
        .and_then(|()| parse_log_headers(&head).ok())
        .is_some_and(|(_, h, _)| h.dbid == dbid && h.next_scn.is_some())
}

/// Regular files whose path starts with `prefix` (a directory prefix or a name prefix).
fn files_with_prefix(prefix: &str) -> Vec<String> {
    let p = Path::new(prefix);
    let (dir, stem) = if prefix.ends_with('/') || p.is_dir() {
        (p.to_path_buf(), String::new())
    } else {
        (
            p.parent().map(Path::to_path_buf).unwrap_or_default(),
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    };
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().starts_with(prefix)
                || (stem.is_empty() && path.starts_with(prefix))
            {
                out.push(path.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

impl Session {
    /// `CATALOG START WITH 'prefix'`, `CATALOG BACKUPPIECE | DATAFILECOPY | ARCHIVELOG '...'`.
    pub(super) fn catalog_cmd(&mut self, c: &Catalog) -> Result<(), CmdError> {
        let err = |e| CmdError::db("catalog", e);
        let (paths, copy_opts) = match c {
            Catalog::StartWith { prefix, .. } => {
                self.out.line(format!(
                    "searching for all files that match the pattern {prefix}"
                ));
                (files_with_prefix(prefix), (false, None))
            }
            Catalog::Backuppiece { handles, .. } => (handles.clone(), (false, None)),
            Catalog::Datafilecopy { paths, level0, tag } => (paths.clone(), (*level0, tag.clone())),
            Catalog::Archivelog(paths) => (paths.clone(), (false, None)),
        };
        let mut known: BTreeSet<String> = catalog::pieces(&self.db)
            .map_err(err)?
            .into_iter()
            .map(|p| p.handle)
            .collect();
        known.extend(
            catalog::copies(&self.db)
                .map_err(err)?
                .into_iter()
                .map(|c| c.name),
        );
        known.extend(
            self.db
                .archived_logs()
                .map_err(err)?
                .into_iter()
                .filter_map(|l| l.name.map(|n| n.display().to_string())),
        );
        let dbid = self.info.dbid;
        let mut found = Vec::new();
        for path in paths.into_iter().filter(|p| !known.contains(p)) {
            if let Some((h, last)) = read_piece(&path).filter(|(h, _)| h.dbid == u64::from(dbid)) {
                found.push((path, Found::Piece(Box::new(h), last)));
            } else if let Some((h, blocks)) = read_copy(&path).filter(|(h, _)| h.dbid == dbid) {
                found.push((path, Found::Copy(Box::new(h), blocks)));
            } else if is_archlog(&path, dbid) {
                found.push((path, Found::Archlog));
            }
        }
        if found.is_empty() {
            self.out.blank();
            self.out
                .line("no files found to be unknown to the database");
            return Ok(());
        }
        self.out.blank();
        self.out.line("List of Files Unknown to the Database");
        self.out.line("=====================================");
        for (p, _) in &found {
            self.out.line(format!("File Name: {p}"));
        }
        self.out.blank();
        self.out.line("cataloging files...");
        let mut sets: BTreeMap<(u32, u32), Vec<(PieceHeader, bool)>> = BTreeMap::new();
        for (path, what) in &found {
            let t = now();
            match what {
                Found::Piece(h, last) => {
                    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    let created = unix_time(h.created);
                    let row = PieceRow {
                        recid: 0,
                        stamp: catalog::stamp(t),
                        set_stamp: h.set_stamp,
                        set_count: h.set_count,
                        piece: h.piece_number,
                        copy: h.copy_number,
                        device_type: "DISK".into(),
                        handle: path.clone(),
                        comments: None,
                        media: None,
                        media_pool: 0,
                        tag: Some(h.tag.clone()).filter(|t| !t.is_empty()),
                        status: "A".into(),
                        start_time: created,
                        completion_time: created,
                        bytes: size,
                        rman_status: None,
                        compressed: h.compressed,
                        encrypted: h.key_wraps.is_some(),
                    };
                    catalog::insert_piece(&self.db, &row).map_err(err)?;
                    sets.entry((h.set_stamp, h.set_count))
                        .or_default()
                        .push(((**h).clone(), *last));
                }
                Found::Copy(h, blocks) => {
                    let info = self.db.datafile(u32::from(h.file_no)).map_err(err)?;
                    let row = CopyRow {
                        recid: 0,
                        stamp: catalog::stamp(t),
                        name: path.clone(),
                        tag: copy_opts.1.clone(),
                        file_no: u32::from(h.file_no),
                        rfile_no: h.rfile_no,
                        creation_scn: h.creation_scn,
                        incremental_level: copy_opts.0.then_some(0),
                        checkpoint_scn: h.checkpoint.scn,
                        checkpoint_time: crate::db::sqlfn::from_julian(crate::db::julian_of(
                            h.checkpoint.time,
                        ))
                        .unwrap_or(t),
                        blocks: *blocks,
                        block_size: info.block_size as u32,
                        status: "A".into(),
                        completion_time: t,
                    };
                    catalog::insert_copy(&self.db, &row, None).map_err(err)?;
                }
                Found::Archlog => {
                    self.db
                        .register_archived_log(Path::new(path), "RMAN")
                        .map_err(err)?;
                }
            }
        }
        for ((stamp, count), pieces) in sets {
            self.complete_cataloged_set(stamp, count, &pieces)?;
        }
        self.out.line("cataloging done");
        self.out.blank();
        self.out.line("List of Cataloged Files");
        self.out.line("=======================");
        for (path, _) in &found {
            self.out.line(format!("File Name: {path}"));
        }
        Ok(())
    }

    /// Records a cataloged set (V$BACKUP_SET and its members) once every piece is known.
    fn complete_cataloged_set(
        &mut self,
        set_stamp: u32,
        set_count: u32,
        new: &[(PieceHeader, bool)],
    ) -> Result<(), CmdError> {
        let err = |e| CmdError::db("catalog", e);
        if catalog::sets(&self.db)
            .map_err(err)?
            .iter()
            .any(|s| s.set_stamp == set_stamp && s.set_count == set_count)
        {
            return Ok(());
        }
        let Some(last) = new.iter().find(|(_, l)| *l).map(|(h, _)| h.piece_number) else {
            return Ok(());
        };
        let have: BTreeSet<u32> = catalog::pieces(&self.db)
            .map_err(err)?
            .into_iter()
            .filter(|p| p.set_stamp == set_stamp && p.set_count == set_count && p.status == "A")
            .map(|p| p.piece)
            .collect();
        if !(1..=last).all(|n| have.contains(&n)) {
            return Ok(());
        }
        let h = &new[0].0;
        let when = unix_time(h.created);
        let level = h.incremental_level;
        let block_size = h
            .entries
            .iter()
            .find(|e| e.kind == EntryKind::Datafile)
            .map_or(8192, |e| e.block_size);
        catalog::insert_set(
            &self.db,
            &SetRow {
                recid: 0,
                set_stamp,
                set_count,
                backup_type: (h.backup_type.code() as char).to_string(),
                controlfile_included: h.entries.iter().any(|e| e.kind == EntryKind::ControlFile),
                incremental_level: level,
                pieces: last,
                start_time: when,
                completion_time: when,
                block_size,
                multi_section: h.multi_section,
                keep: false,
            },
        )
        .map_err(err)?;
        for e in &h.entries {
            match e.kind {
                EntryKind::Datafile => catalog::insert_backup_datafile(
                    &self.db,
                    &BackupDatafileRow {
                        set_stamp,
                        set_count,
                        file_no: e.file_number,
                        creation_scn: Scn(e.creation_change),
                        incremental_level: level,
                        incremental_scn: Scn(if h.backup_type == BackupType::Incremental {
                            h.incremental_change
                        } else {
                            0
                        }),
                        checkpoint_scn: Scn(e.checkpoint_change),
                        checkpoint_time: unix_time(e.checkpoint_time),
                        absolute_fuzzy_scn: Scn(e.next_change.max(e.checkpoint_change)),
                        datafile_blocks: e.file_blocks.saturating_sub(1),
                        blocks: e.file_blocks.saturating_sub(1),
                        block_size: e.block_size,
                        completion_time: when,
                        used_change_tracking: false,
                        blocks_read: e.file_blocks.saturating_sub(1),
                        section_size: e.section_blocks,
                    },
                ),
                EntryKind::ArchivedLog => catalog::insert_backup_redolog(
                    &self.db,
                    &BackupRedologRow {
                        set_stamp,
                        set_count,
                        thread: e.file_number as u16,
                        sequence: e.sequence,
                        resetlogs_scn: Scn(e.creation_change),
                        first_scn: Scn(e.checkpoint_change),
                        first_time: unix_time(e.checkpoint_time),
                        next_scn: Scn(e.next_change),
                        next_time: unix_time(e.next_time),
                        blocks: e.file_blocks,
                        block_size: e.block_size,
                    },
                ),
                EntryKind::ControlFile => catalog::insert_backup_datafile(
                    &self.db,
                    &BackupDatafileRow {
                        set_stamp,
                        set_count,
                        file_no: 0,
                        creation_scn: Scn(0),
                        incremental_level: None,
                        incremental_scn: Scn(0),
                        checkpoint_scn: Scn(e.checkpoint_change),
                        checkpoint_time: when,
                        absolute_fuzzy_scn: Scn(0),
                        datafile_blocks: e.file_blocks.div_ceil(16384),
                        blocks: e.file_blocks.div_ceil(16384),
                        block_size: 16384,
                        completion_time: when,
                        used_change_tracking: false,
                        blocks_read: e.file_blocks.div_ceil(16384),
                        section_size: 0,
                    },
                ),
                EntryKind::Spfile => catalog::insert_backup_spfile(
                    &self.db,
                    set_stamp,
                    set_count,
                    e.file_blocks,
                    when,
                ),
            }
            .map_err(err)?;
        }
        Ok(())
    }
}
