//! Typed control-file records for the rman stand-in: backup sets, pieces,
//! datafiles and logs in sets, RMAN status/output rows, datafile copies,
//! configuration and counters.
//!
//! Oracle's rules the caller keeps: insert the [`BackupSetRecord`] only when
//! every piece of the set completed (pieces may be inserted as they finish);
//! a multi-section backup is one set with many pieces; all times are Oracle
//! times (second resolution) and are shown as DATEs in the views.

use super::{Database, DbError, Result, julian_of, oracle_now};
use chrono::Datelike;
use orca_oracle::{OracleTime, Scn};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// A control-file record id (RECID).
pub type Recid = i64;

fn yes_no(b: bool) -> &'static str {
    if b { "YES" } else { "NO" }
}

fn elapsed(start: OracleTime, end: OracleTime) -> i64 {
    match (start.to_datetime(), end.to_datetime()) {
        (Ok(s), Ok(e)) => (e - s).num_seconds().max(0),
        _ => 0,
    }
}

fn scn_i(s: Scn) -> i64 {
    s.0 as i64
}

/// A completed backup set (V$BACKUP_SET).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSetRecord {
    /// SET_STAMP.
    pub set_stamp: OracleTime,
    /// SET_COUNT (from [`Database::next_set_count`]).
    pub set_count: u32,
    /// `D` full datafile, `I` incremental, `L` archived logs.
    pub backup_type: String,
    /// A control file is in the set.
    pub controlfile_included: bool,
    /// 0 or 1 for incrementals, `None` otherwise.
    pub incremental_level: Option<u8>,
    /// Number of distinct pieces.
    pub pieces: u32,
    /// START_TIME.
    pub start_time: OracleTime,
    /// COMPLETION_TIME.
    pub completion_time: OracleTime,
    /// BLOCK_SIZE.
    pub block_size: u32,
    /// BACKUP VALIDATE (no output).
    pub input_file_scan_only: bool,
    /// KEEP.
    pub keep: bool,
    /// KEEP_UNTIL.
    pub keep_until: Option<OracleTime>,
    /// KEEP_OPTIONS (`LOGS`, `NOLOGS`, `BACKUP_LOGS`).
    pub keep_options: Option<String>,
    /// SECTION SIZE was used.
    pub multi_section: bool,
}

/// One piece copy (V$BACKUP_PIECE).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPieceRecord {
    /// SET_STAMP of its set.
    pub set_stamp: OracleTime,
    /// SET_COUNT of its set.
    pub set_count: u32,
    /// PIECE# (1..n).
    pub piece_no: u32,
    /// COPY# (1 unless duplexed).
    pub copy_no: u32,
    /// `SBT_TAPE` or `DISK`.
    pub device_type: String,
    /// HANDLE.
    pub handle: String,
    /// COMMENTS (`API Version 2.0,MMS Version ...` for SBT, None on disk).
    pub comments: Option<String>,
    /// MEDIA (SBTBFINFO_LABEL).
    pub media: Option<String>,
    /// MEDIA_POOL.
    pub media_pool: u32,
    /// CONCUR.
    pub concur: bool,
    /// TAG (upper case).
    pub tag: Option<String>,
    /// STATUS: `A` available, `X` expired, `U` unavailable, `D` deleted.
    pub status: String,
    /// START_TIME.
    pub start_time: OracleTime,
    /// COMPLETION_TIME.
    pub completion_time: OracleTime,
    /// BYTES.
    pub bytes: u64,
    /// RMAN_STATUS_RECID of the owning command row.
    pub rman_status_recid: Option<Recid>,
    /// RMAN_STATUS_STAMP of the owning command row.
    pub rman_status_stamp: Option<OracleTime>,
    /// COMPRESSED.
    pub compressed: bool,
    /// ENCRYPTED.
    pub encrypted: bool,
}

/// A datafile (or control file, `file_no` 0) in a backup set
/// (V$BACKUP_DATAFILE).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupDatafileRecord {
    /// SET_STAMP.
    pub set_stamp: OracleTime,
    /// SET_COUNT.
    pub set_count: u32,
    /// FILE# (0 = control file).
    pub file_no: u32,
    /// CREATION_CHANGE#.
    pub creation_scn: Scn,
    /// CREATION_TIME.
    pub creation_time: OracleTime,
    /// RESETLOGS_CHANGE#.
    pub resetlogs_scn: Scn,
    /// RESETLOGS_TIME.
    pub resetlogs_time: OracleTime,
    /// INCREMENTAL_LEVEL (None for full).
    pub incremental_level: Option<u8>,
    /// INCREMENTAL_CHANGE# (blocks with a higher SCN are in the backup; 0 for full).
    pub incremental_scn: Scn,
    /// CHECKPOINT_CHANGE# (header checkpoint read at backup start).
    pub checkpoint_scn: Scn,
    /// CHECKPOINT_TIME.
    pub checkpoint_time: OracleTime,
    /// ABSOLUTE_FUZZY_CHANGE# (highest block SCN seen).
    pub absolute_fuzzy_scn: Scn,
    /// MARKED_CORRUPT.
    pub marked_corrupt: u64,
    /// DATAFILE_BLOCKS (file size at backup time).
    pub datafile_blocks: u32,
    /// BLOCKS written.
    pub blocks: u64,
    /// BLOCK_SIZE.
    pub block_size: u32,
    /// COMPLETION_TIME.
    pub completion_time: OracleTime,
    /// CONTROLFILE_TYPE (`B` / `S`) for control file rows.
    pub controlfile_type: Option<String>,
    /// USED_CHANGE_TRACKING.
    pub used_change_tracking: bool,
    /// BLOCKS_READ.
    pub blocks_read: u64,
    /// SECTION_SIZE in blocks (0 unless multi-section).
    pub section_size: u64,
}

/// An archived log in a backup set (V$BACKUP_REDOLOG).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRedologRecord {
    /// SET_STAMP.
    pub set_stamp: OracleTime,
    /// SET_COUNT.
    pub set_count: u32,
    /// THREAD#.
    pub thread: u16,
    /// SEQUENCE#.
    pub sequence: u32,
    /// RESETLOGS_CHANGE#.
    pub resetlogs_scn: Scn,
    /// RESETLOGS_TIME.
    pub resetlogs_time: OracleTime,
    /// FIRST_CHANGE#.
    pub first_scn: Scn,
    /// FIRST_TIME.
    pub first_time: OracleTime,
    /// NEXT_CHANGE#.
    pub next_scn: Scn,
    /// NEXT_TIME.
    pub next_time: OracleTime,
    /// BLOCKS.
    pub blocks: u32,
    /// BLOCK_SIZE.
    pub block_size: u32,
    /// TERMINAL.
    pub terminal: bool,
}

/// An spfile in a backup set (V$BACKUP_SPFILE).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSpfileRecord {
    /// SET_STAMP.
    pub set_stamp: OracleTime,
    /// SET_COUNT.
    pub set_count: u32,
    /// MODIFICATION_TIME.
    pub modification_time: OracleTime,
    /// BYTES.
    pub bytes: u64,
    /// COMPLETION_TIME.
    pub completion_time: OracleTime,
    /// DB_UNIQUE_NAME.
    pub db_unique_name: String,
}

/// A new V$RMAN_STATUS row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmanStatusRecord {
    /// SID of the session.
    pub sid: u32,
    /// Parent row (RECID, STAMP); None for a session row.
    pub parent: Option<(Recid, OracleTime)>,
    /// Session row (RECID, STAMP); None for a session row itself.
    pub session: Option<(Recid, OracleTime)>,
    /// ROW_LEVEL (0 session, 1 command, 2+ recursive).
    pub row_level: u32,
    /// `SESSION`, `COMMAND` or `RECURSIVE OPERATION`.
    pub row_type: String,
    /// COMMAND_ID.
    pub command_id: String,
    /// OPERATION (`RMAN`, `BACKUP`, `RESTORE`, ...).
    pub operation: String,
    /// STATUS (`RUNNING`, ...).
    pub status: String,
    /// START_TIME.
    pub start_time: OracleTime,
    /// OBJECT_TYPE (`DB FULL`, `DB INCR`, `ARCHIVELOG`, `DATAFILE FULL`, ...).
    pub object_type: Option<String>,
    /// OUTPUT_DEVICE_TYPE.
    pub output_device_type: Option<String>,
}

/// Changes to a V$RMAN_STATUS row (None = unchanged).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RmanStatusUpdate {
    /// STATUS.
    pub status: Option<String>,
    /// END_TIME.
    pub end_time: Option<OracleTime>,
    /// INPUT_BYTES.
    pub input_bytes: Option<u64>,
    /// OUTPUT_BYTES.
    pub output_bytes: Option<u64>,
    /// MBYTES_PROCESSED.
    pub mbytes_processed: Option<f64>,
    /// OPTIMIZED.
    pub optimized: Option<bool>,
    /// OBJECT_TYPE.
    pub object_type: Option<String>,
    /// OUTPUT_DEVICE_TYPE.
    pub output_device_type: Option<String>,
}

/// A datafile image copy (V$DATAFILE_COPY).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatafileCopyRecord {
    /// NAME.
    pub name: String,
    /// TAG.
    pub tag: Option<String>,
    /// FILE#.
    pub file_no: u32,
    /// RFILE#.
    pub rfile_no: u32,
    /// CREATION_CHANGE#.
    pub creation_scn: Scn,
    /// CREATION_TIME.
    pub creation_time: OracleTime,
    /// RESETLOGS_CHANGE#.
    pub resetlogs_scn: Scn,
    /// RESETLOGS_TIME.
    pub resetlogs_time: OracleTime,
    /// INCREMENTAL_LEVEL (0 for a level-0 copy).
    pub incremental_level: Option<u8>,
    /// CHECKPOINT_CHANGE#.
    pub checkpoint_scn: Scn,
    /// CHECKPOINT_TIME.
    pub checkpoint_time: OracleTime,
    /// ABSOLUTE_FUZZY_CHANGE#.
    pub absolute_fuzzy_scn: Scn,
    /// BLOCKS.
    pub blocks: u32,
    /// BLOCK_SIZE.
    pub block_size: u32,
    /// COMPLETION_TIME.
    pub completion_time: OracleTime,
    /// RMAN_STATUS_RECID.
    pub rman_status_recid: Option<Recid>,
    /// RMAN_STATUS_STAMP.
    pub rman_status_stamp: Option<OracleTime>,
}

/// A V$RMAN_CONFIGURATION row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmanConfigEntry {
    /// CONF#.
    pub conf_no: i64,
    /// NAME (`RETENTION POLICY`, `CHANNEL`, `DEVICE TYPE`, ...).
    pub name: String,
    /// VALUE (`TO RECOVERY WINDOW OF 7 DAYS`, ...).
    pub value: String,
}

impl Database {
    /// Hands out the next SET_COUNT (Oracle counts sets as they start; a set
    /// that never completes leaves a gap).
    pub fn next_set_count(&self) -> Result<u32> {
        let v: i64 = self.connection().query_row(
            "UPDATE cf_sim SET next_set_count = next_set_count + 1 RETURNING next_set_count - 1",
            [],
            |r| r.get(0),
        )?;
        Ok(v as u32)
    }

    /// The `QQ` of `%F` for an autobackup taken at `at`: 0 for the first of
    /// the day, then 1, 2, ... (hex in the name, up to 0xFF).
    pub fn next_autobackup_sequence(&self, at: OracleTime) -> Result<u8> {
        let day = at
            .to_datetime()
            .map(|d| format!("{:04}{:02}{:02}", d.year(), d.month(), d.day()))
            .map_err(|e| DbError::Invalid(e.to_string()))?;
        let (last_day, last): (Option<String>, i64) = self.connection().query_row(
            "SELECT autobackup_seq_date, autobackup_seq FROM cf_sim",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let next = if last_day.as_deref() == Some(day.as_str()) {
            last + 1
        } else {
            0
        };
        if next > 255 {
            return Err(DbError::Invalid(format!(
                "more than 256 control file autobackups on {day}"
            )));
        }
        self.connection().execute(
            "UPDATE cf_sim SET autobackup_seq_date = ?1, autobackup_seq = ?2",
            params![day, next],
        )?;
        Ok(next as u8)
    }

    /// Inserts a completed backup set; returns (RECID, STAMP).
    pub fn insert_backup_set(&self, r: &BackupSetRecord) -> Result<(Recid, OracleTime)> {
        if !["D", "I", "L"].contains(&r.backup_type.as_str()) {
            return Err(DbError::Invalid(format!(
                "backup type {:?}: expected D, I or L",
                r.backup_type
            )));
        }
        let stamp = oracle_now();
        self.connection().execute(
            r#"INSERT INTO cf_backup_set ("STAMP", "SET_STAMP", "SET_COUNT", "BACKUP_TYPE",
                "CONTROLFILE_INCLUDED", "INCREMENTAL_LEVEL", "PIECES", "START_TIME",
                "COMPLETION_TIME", "ELAPSED_SECONDS", "BLOCK_SIZE", "INPUT_FILE_SCAN_ONLY", "KEEP",
                "KEEP_UNTIL", "KEEP_OPTIONS", "MULTI_SECTION", "GUID", "CON_ID")
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, NULL, 0)"#,
            params![
                stamp.0,
                r.set_stamp.0,
                r.set_count,
                r.backup_type,
                yes_no(r.controlfile_included),
                r.incremental_level,
                r.pieces,
                julian_of(r.start_time),
                julian_of(r.completion_time),
                elapsed(r.start_time, r.completion_time),
                r.block_size,
                yes_no(r.input_file_scan_only),
                yes_no(r.keep),
                r.keep_until.map(julian_of),
                r.keep_options,
                yes_no(r.multi_section),
            ],
        )?;
        Ok((self.connection().last_insert_rowid(), stamp))
    }

    /// Inserts a piece copy; returns (RECID, STAMP).
    pub fn insert_backup_piece(&self, r: &BackupPieceRecord) -> Result<(Recid, OracleTime)> {
        if r.handle.is_empty() || r.handle.len() > 512 {
            return Err(DbError::Invalid(format!(
                "piece handle of {} bytes: must be 1 to 512 bytes",
                r.handle.len()
            )));
        }
        let status = if r.status.is_empty() {
            "A"
        } else {
            r.status.as_str()
        };
        let stamp = oracle_now();
        self.connection().execute(
            r#"INSERT INTO cf_backup_piece ("STAMP", "SET_STAMP", "SET_COUNT", "PIECE#", "COPY#",
                "DEVICE_TYPE", "HANDLE", "COMMENTS", "MEDIA", "MEDIA_POOL", "CONCUR", "TAG",
                "STATUS", "START_TIME", "COMPLETION_TIME", "ELAPSED_SECONDS", "DELETED", "BYTES",
                "IS_RECOVERY_DEST_FILE", "RMAN_STATUS_RECID", "RMAN_STATUS_STAMP", "COMPRESSED",
                "BACKED_BY_VSS", "ENCRYPTED", "BACKED_BY_OSB", "FOR_XTTS", "GUID", "CON_ID")
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, 'NO', ?19, ?20, ?21, 'NO', ?22, 'NO', 'NO', NULL, 0)"#,
            params![
                stamp.0,
                r.set_stamp.0,
                r.set_count,
                r.piece_no,
                r.copy_no.max(1),
                r.device_type,
                r.handle,
                r.comments,
                r.media,
                r.media_pool,
                yes_no(r.concur),
                r.tag.as_ref().map(|t| t.to_ascii_uppercase()),
                status,
                julian_of(r.start_time),
                julian_of(r.completion_time),
                elapsed(r.start_time, r.completion_time),
                yes_no(status == "D"),
                r.bytes as i64,
                r.rman_status_recid,
                r.rman_status_stamp.map(|s| s.0),
                yes_no(r.compressed),
                yes_no(r.encrypted),
            ],
        )?;
        Ok((self.connection().last_insert_rowid(), stamp))
    }

    /// Sets a piece's STATUS (`A`, `X`, `U`, `D`); `D` also sets DELETED=YES.
    pub fn set_backup_piece_status(&self, recid: Recid, status: &str) -> Result<()> {
        if !["A", "X", "U", "D"].contains(&status) {
            return Err(DbError::Invalid(format!(
                "piece status {status:?}: expected A, X, U or D"
            )));
        }
        let n = self.connection().execute(
            r#"UPDATE cf_backup_piece SET "STATUS" = ?1, "DELETED" = ?2 WHERE "RECID" = ?3"#,
            params![status, yes_no(status == "D"), recid],
        )?;
        if n == 0 {
            return Err(DbError::NotFound(format!(
                "no backup piece with RECID {recid}"
            )));
        }
        Ok(())
    }

    /// Inserts a datafile (or control file) row of a set.
    pub fn insert_backup_datafile(&self, r: &BackupDatafileRecord) -> Result<(Recid, OracleTime)> {
        let stamp = oracle_now();
        self.connection().execute(
            r#"INSERT INTO cf_backup_datafile ("STAMP", "SET_STAMP", "SET_COUNT", "FILE#",
                "CREATION_CHANGE#", "CREATION_TIME", "RESETLOGS_CHANGE#", "RESETLOGS_TIME",
                "INCREMENTAL_LEVEL", "INCREMENTAL_CHANGE#", "CHECKPOINT_CHANGE#",
                "CHECKPOINT_TIME", "ABSOLUTE_FUZZY_CHANGE#", "MARKED_CORRUPT", "MEDIA_CORRUPT",
                "LOGICALLY_CORRUPT", "DATAFILE_BLOCKS", "BLOCKS", "BLOCK_SIZE",
                "OLDEST_OFFLINE_RANGE", "COMPLETION_TIME", "CONTROLFILE_TYPE",
                "USED_CHANGE_TRACKING", "BLOCKS_READ", "USED_OPTIMIZATION", "FOREIGN_DBID",
                "PLUGGED_READONLY", "PLUGIN_CHANGE#", "PLUGIN_RESETLOGS_CHANGE#",
                "PLUGIN_RESETLOGS_TIME", "SECTION_SIZE", "UNDO_OPTIMIZED",
                "BLOCKS_SKIPPED_IN_CELL", "GUID", "SPARSE_BACKUP", "CON_ID")
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 0, 0, ?15,
                ?16, ?17, 0, ?18, ?19, ?20, ?21, 'NO', 0, 'NO', 0, 0, NULL, ?22, 'NO', 0, NULL,
                'NONSPARSE', 0)"#,
            params![
                stamp.0,
                r.set_stamp.0,
                r.set_count,
                r.file_no,
                scn_i(r.creation_scn),
                julian_of(r.creation_time),
                scn_i(r.resetlogs_scn),
                julian_of(r.resetlogs_time),
                r.incremental_level,
                scn_i(r.incremental_scn),
                scn_i(r.checkpoint_scn),
                julian_of(r.checkpoint_time),
                scn_i(r.absolute_fuzzy_scn),
                r.marked_corrupt as i64,
                r.datafile_blocks,
                r.blocks as i64,
                r.block_size,
                julian_of(r.completion_time),
                r.controlfile_type,
                yes_no(r.used_change_tracking),
                r.blocks_read as i64,
                r.section_size as i64,
            ],
        )?;
        Ok((self.connection().last_insert_rowid(), stamp))
    }

    /// Inserts an archived-log row of a set.
    pub fn insert_backup_redolog(&self, r: &BackupRedologRecord) -> Result<(Recid, OracleTime)> {
        let stamp = oracle_now();
        self.connection().execute(
            r#"INSERT INTO cf_backup_redolog ("STAMP", "SET_STAMP", "SET_COUNT", "THREAD#",
                "SEQUENCE#", "RESETLOGS_CHANGE#", "RESETLOGS_TIME", "FIRST_CHANGE#", "FIRST_TIME",
                "NEXT_CHANGE#", "NEXT_TIME", "BLOCKS", "BLOCK_SIZE", "TERMINAL", "CON_ID")
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 0)"#,
            params![
                stamp.0,
                r.set_stamp.0,
                r.set_count,
                r.thread,
                r.sequence,
                scn_i(r.resetlogs_scn),
                julian_of(r.resetlogs_time),
                scn_i(r.first_scn),
                julian_of(r.first_time),
                scn_i(r.next_scn),
                julian_of(r.next_time),
                r.blocks,
                r.block_size,
                yes_no(r.terminal),
            ],
        )?;
        Ok((self.connection().last_insert_rowid(), stamp))
    }

    /// Inserts an spfile row of a set.
    pub fn insert_backup_spfile(&self, r: &BackupSpfileRecord) -> Result<(Recid, OracleTime)> {
        let stamp = oracle_now();
        self.connection().execute(
            r#"INSERT INTO cf_backup_spfile ("STAMP", "SET_STAMP", "SET_COUNT",
                "MODIFICATION_TIME", "BYTES", "COMPLETION_TIME", "DB_UNIQUE_NAME", "CON_ID")
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)"#,
            params![
                stamp.0,
                r.set_stamp.0,
                r.set_count,
                julian_of(r.modification_time),
                r.bytes as i64,
                julian_of(r.completion_time),
                r.db_unique_name,
            ],
        )?;
        Ok((self.connection().last_insert_rowid(), stamp))
    }

    /// Inserts a V$RMAN_STATUS row; returns (RECID, STAMP). A session row
    /// (`session: None`) points SESSION_RECID/STAMP at itself.
    pub fn insert_rman_status(&self, r: &RmanStatusRecord) -> Result<(Recid, OracleTime)> {
        let stamp = oracle_now();
        let c = self.connection();
        c.execute(
            r#"INSERT INTO cf_rman_status ("SID", "STAMP", "PARENT_RECID", "PARENT_STAMP",
                "SESSION_RECID", "SESSION_STAMP", "ROW_LEVEL", "ROW_TYPE", "COMMAND_ID",
                "OPERATION", "STATUS", "MBYTES_PROCESSED", "START_TIME", "END_TIME",
                "INPUT_BYTES", "OUTPUT_BYTES", "OPTIMIZED", "OBJECT_TYPE", "OUTPUT_DEVICE_TYPE",
                "OSB_ALLOCATED", "CON_ID")
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, NULL, 0, 0, 'NO',
                ?13, ?14, 'NO', 0)"#,
            params![
                r.sid,
                stamp.0,
                r.parent.map(|p| p.0),
                r.parent.map(|p| p.1.0),
                r.session.map(|p| p.0),
                r.session.map(|p| p.1.0),
                r.row_level,
                r.row_type,
                r.command_id,
                r.operation,
                r.status,
                julian_of(r.start_time),
                r.object_type,
                r.output_device_type,
            ],
        )?;
        let recid = c.last_insert_rowid();
        if r.session.is_none() {
            c.execute(
                r#"UPDATE cf_rman_status SET "SESSION_RECID" = ?1, "SESSION_STAMP" = ?2
                   WHERE "RECID" = ?1"#,
                params![recid, stamp.0],
            )?;
        }
        Ok((recid, stamp))
    }

    /// Updates a V$RMAN_STATUS row.
    pub fn update_rman_status(&self, recid: Recid, u: &RmanStatusUpdate) -> Result<()> {
        let n = self.connection().execute(
            r#"UPDATE cf_rman_status SET
                "STATUS" = coalesce(?1, "STATUS"),
                "END_TIME" = coalesce(?2, "END_TIME"),
                "INPUT_BYTES" = coalesce(?3, "INPUT_BYTES"),
                "OUTPUT_BYTES" = coalesce(?4, "OUTPUT_BYTES"),
                "MBYTES_PROCESSED" = coalesce(?5, "MBYTES_PROCESSED"),
                "OPTIMIZED" = coalesce(?6, "OPTIMIZED"),
                "OBJECT_TYPE" = coalesce(?7, "OBJECT_TYPE"),
                "OUTPUT_DEVICE_TYPE" = coalesce(?8, "OUTPUT_DEVICE_TYPE")
               WHERE "RECID" = ?9"#,
            params![
                u.status,
                u.end_time.map(julian_of),
                u.input_bytes.map(|b| b as i64),
                u.output_bytes.map(|b| b as i64),
                u.mbytes_processed,
                u.optimized.map(yes_no),
                u.object_type,
                u.output_device_type,
                recid,
            ],
        )?;
        if n == 0 {
            return Err(DbError::NotFound(format!(
                "no RMAN status row with RECID {recid}"
            )));
        }
        Ok(())
    }

    /// Appends a line of RMAN output (V$RMAN_OUTPUT) for a session/command.
    pub fn insert_rman_output(
        &self,
        sid: u32,
        session: (Recid, OracleTime),
        status_row: (Recid, OracleTime),
        line: &str,
    ) -> Result<Recid> {
        let text: String = line.chars().take(129).collect();
        self.connection().execute(
            r#"INSERT INTO cf_rman_output ("SID", "STAMP", "SESSION_RECID", "SESSION_STAMP",
                "OUTPUT", "RMAN_STATUS_RECID", "RMAN_STATUS_STAMP", "SESSION_KEY", "CON_ID")
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?3, 0)"#,
            params![
                sid,
                oracle_now().0,
                session.0,
                session.1.0,
                text,
                status_row.0,
                status_row.1.0
            ],
        )?;
        Ok(self.connection().last_insert_rowid())
    }

    /// Inserts a datafile copy; returns (RECID, STAMP).
    pub fn insert_datafile_copy(&self, r: &DatafileCopyRecord) -> Result<(Recid, OracleTime)> {
        let stamp = oracle_now();
        self.connection().execute(
            r#"INSERT INTO cf_datafile_copy ("STAMP", "NAME", "TAG", "FILE#", "RFILE#",
                "CREATION_CHANGE#", "CREATION_TIME", "RESETLOGS_CHANGE#", "RESETLOGS_TIME",
                "INCREMENTAL_LEVEL", "CHECKPOINT_CHANGE#", "CHECKPOINT_TIME",
                "ABSOLUTE_FUZZY_CHANGE#", "RECOVERY_FUZZY_CHANGE#", "RECOVERY_FUZZY_TIME",
                "ONLINE_FUZZY", "BACKUP_FUZZY", "MARKED_CORRUPT", "MEDIA_CORRUPT",
                "LOGICALLY_CORRUPT", "BLOCKS", "BLOCK_SIZE", "OLDEST_OFFLINE_RANGE", "DELETED",
                "STATUS", "COMPLETION_TIME", "CONTROLFILE_TYPE", "KEEP", "KEEP_UNTIL",
                "KEEP_OPTIONS", "SCANNED", "IS_RECOVERY_DEST_FILE", "RMAN_STATUS_RECID",
                "RMAN_STATUS_STAMP", "CONVERTED_FILE", "SAME_ENDIAN", "BLOCKS_READ", "CON_ID")
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, NULL, 'NO', 'NO',
                0, 0, 0, ?14, ?15, 0, 'NO', 'A', ?16, 'B', 'NO', NULL, NULL, 'NO', 'NO', ?17, ?18,
                'NO', 'YES', ?14, 0)"#,
            params![
                stamp.0,
                r.name,
                r.tag.as_ref().map(|t| t.to_ascii_uppercase()),
                r.file_no,
                r.rfile_no,
                scn_i(r.creation_scn),
                julian_of(r.creation_time),
                scn_i(r.resetlogs_scn),
                julian_of(r.resetlogs_time),
                r.incremental_level,
                scn_i(r.checkpoint_scn),
                julian_of(r.checkpoint_time),
                scn_i(r.absolute_fuzzy_scn),
                r.blocks,
                r.block_size,
                julian_of(r.completion_time),
                r.rman_status_recid,
                r.rman_status_stamp.map(|s| s.0),
            ],
        )?;
        Ok((self.connection().last_insert_rowid(), stamp))
    }

    /// After `RECOVER COPY`: the copy's new checkpoint.
    pub fn update_datafile_copy_checkpoint(
        &self,
        recid: Recid,
        scn: Scn,
        time: OracleTime,
    ) -> Result<()> {
        let n = self.connection().execute(
            r#"UPDATE cf_datafile_copy SET "CHECKPOINT_CHANGE#" = ?1, "CHECKPOINT_TIME" = ?2,
                   "INCREMENTAL_LEVEL" = coalesce("INCREMENTAL_LEVEL", 0) WHERE "RECID" = ?3"#,
            params![scn_i(scn), julian_of(time), recid],
        )?;
        if n == 0 {
            return Err(DbError::NotFound(format!(
                "no datafile copy with RECID {recid}"
            )));
        }
        Ok(())
    }

    /// Sets a datafile copy's STATUS (`A`, `X`, `U`, `D`; `D` sets DELETED).
    pub fn set_datafile_copy_status(&self, recid: Recid, status: &str) -> Result<()> {
        if !["A", "X", "U", "D"].contains(&status) {
            return Err(DbError::Invalid(format!(
                "datafile copy status {status:?}: expected A, X, U or D"
            )));
        }
        self.connection().execute(
            r#"UPDATE cf_datafile_copy SET "STATUS" = ?1, "DELETED" = ?2 WHERE "RECID" = ?3"#,
            params![status, yes_no(status == "D"), recid],
        )?;
        Ok(())
    }

    /// V$RMAN_CONFIGURATION rows.
    pub fn rman_config(&self) -> Result<Vec<RmanConfigEntry>> {
        let mut st = self.connection().prepare(
            r#"SELECT "CONF#", "NAME", "VALUE" FROM cf_rman_configuration ORDER BY "CONF#""#,
        )?;
        let rows = st.query_map([], |r| {
            Ok(RmanConfigEntry {
                conf_no: r.get(0)?,
                name: r.get(1)?,
                value: r.get(2)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(DbError::from)
    }

    /// Sets a configuration value, replacing every row of that NAME
    /// (`CONFIGURE RETENTION POLICY ...`). Returns CONF#.
    pub fn set_rman_config(&self, name: &str, value: &str) -> Result<i64> {
        self.clear_rman_config(name)?;
        self.add_rman_config(name, value)
    }

    /// Adds a configuration row (several `CHANNEL` rows may coexist).
    pub fn add_rman_config(&self, name: &str, value: &str) -> Result<i64> {
        self.connection().execute(
            r#"INSERT INTO cf_rman_configuration ("NAME", "VALUE", "CON_ID") VALUES (?1, ?2, 0)"#,
            params![name, value],
        )?;
        Ok(self.connection().last_insert_rowid())
    }

    /// Deletes one configuration row.
    pub fn delete_rman_config(&self, conf_no: i64) -> Result<()> {
        self.connection().execute(
            r#"DELETE FROM cf_rman_configuration WHERE "CONF#" = ?1"#,
            [conf_no],
        )?;
        Ok(())
    }

    /// Deletes every row of a NAME (`CONFIGURE ... CLEAR`).
    pub fn clear_rman_config(&self, name: &str) -> Result<()> {
        self.connection().execute(
            r#"DELETE FROM cf_rman_configuration WHERE "NAME" = ?1"#,
            [name],
        )?;
        Ok(())
    }

    /// The value of a configuration NAME (first row), if set.
    pub fn rman_config_value(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .connection()
            .query_row(
                r#"SELECT "VALUE" FROM cf_rman_configuration WHERE "NAME" = ?1 ORDER BY "CONF#" LIMIT 1"#,
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }
}
