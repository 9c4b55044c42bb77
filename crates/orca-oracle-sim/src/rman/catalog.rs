//! The control-file records RMAN reads and writes (backup sets, pieces, datafile and redo log
//! members of sets, datafile copies, V$RMAN_STATUS / V$RMAN_OUTPUT, configuration), as typed
//! rows over the `cf_*` tables of the simulator's control file.

use chrono::NaiveDateTime;
use orca_oracle::{OracleTime, Scn};
use rusqlite::{OptionalExtension, Row, params};

use crate::db::sqlfn::{from_julian, julian};
use crate::db::{Database, DbError};

type Result<T> = std::result::Result<T, DbError>;

/// Oracle STAMP of a wall-clock time.
pub fn stamp(t: NaiveDateTime) -> u32 {
    OracleTime::from_datetime(t).map(|o| o.0).unwrap_or(0)
}

fn jd(t: NaiveDateTime) -> f64 {
    julian(t)
}

fn dt(v: Option<f64>) -> NaiveDateTime {
    v.and_then(from_julian).unwrap_or_default()
}

/// A V$BACKUP_SET row.
#[derive(Debug, Clone)]
pub struct SetRow {
    pub recid: i64,
    pub set_stamp: u32,
    pub set_count: u32,
    /// 'D', 'I' or 'L'.
    pub backup_type: String,
    pub controlfile_included: bool,
    pub incremental_level: Option<u8>,
    pub pieces: u32,
    pub start_time: NaiveDateTime,
    pub completion_time: NaiveDateTime,
    pub block_size: u32,
    pub multi_section: bool,
    pub keep: bool,
}

/// A V$BACKUP_PIECE row.
#[derive(Debug, Clone)]
pub struct PieceRow {
    pub recid: i64,
    pub stamp: u32,
    pub set_stamp: u32,
    pub set_count: u32,
    pub piece: u32,
    pub copy: u32,
    pub device_type: String,
    pub handle: String,
    pub comments: Option<String>,
    pub media: Option<String>,
    pub media_pool: u32,
    pub tag: Option<String>,
    pub status: String,
    pub start_time: NaiveDateTime,
    pub completion_time: NaiveDateTime,
    pub bytes: u64,
    pub rman_status: Option<(i64, u32)>,
    /// COMPRESSED: written AS COMPRESSED BACKUPSET.
    pub compressed: bool,
    /// ENCRYPTED: written with SET ENCRYPTION ON or CONFIGURE ENCRYPTION FOR DATABASE ON.
    pub encrypted: bool,
}

/// A V$BACKUP_DATAFILE row (FILE# 0 = control file).
#[derive(Debug, Clone)]
pub struct BackupDatafileRow {
    pub set_stamp: u32,
    pub set_count: u32,
    pub file_no: u32,
    pub creation_scn: Scn,
    pub incremental_level: Option<u8>,
    pub incremental_scn: Scn,
    pub checkpoint_scn: Scn,
    pub checkpoint_time: NaiveDateTime,
    pub absolute_fuzzy_scn: Scn,
    pub datafile_blocks: u64,
    pub blocks: u64,
    pub block_size: u32,
    pub completion_time: NaiveDateTime,
    pub used_change_tracking: bool,
    pub blocks_read: u64,
    pub section_size: u64,
}

impl BackupDatafileRow {
    /// A full or level-0 backup of the file, which RESTORE can start from. A set of
    /// INCREMENTAL FROM SCN has no level either, but an incremental start.
    pub fn is_base(&self) -> bool {
        match self.incremental_level {
            Some(l) => l == 0,
            None => self.incremental_scn == Scn(0),
        }
    }
}

/// A V$BACKUP_REDOLOG row.
#[derive(Debug, Clone)]
pub struct BackupRedologRow {
    pub set_stamp: u32,
    pub set_count: u32,
    pub thread: u16,
    pub sequence: u32,
    pub resetlogs_scn: Scn,
    pub first_scn: Scn,
    pub first_time: NaiveDateTime,
    pub next_scn: Scn,
    pub next_time: NaiveDateTime,
    pub blocks: u64,
    pub block_size: u32,
}

/// A V$DATAFILE_COPY row.
#[derive(Debug, Clone)]
pub struct CopyRow {
    pub recid: i64,
    pub stamp: u32,
    pub name: String,
    pub tag: Option<String>,
    pub file_no: u32,
    pub rfile_no: u32,
    pub creation_scn: Scn,
    pub incremental_level: Option<u8>,
    pub checkpoint_scn: Scn,
    pub checkpoint_time: NaiveDateTime,
    pub blocks: u64,
    pub block_size: u32,
    pub status: String,
    pub completion_time: NaiveDateTime,
}

/// Allocates the next SET_COUNT (counted even if the set never completes).
pub fn next_set_count(db: &Database) -> Result<u32> {
    let v: i64 = db.connection().query_row(
        "UPDATE cf_sim SET next_set_count = next_set_count + 1 RETURNING next_set_count - 1",
        [],
        |r| r.get(0),
    )?;
    Ok(v as u32)
}

/// Inserts a V$BACKUP_SET row (only when the whole set completed).
pub fn insert_set(db: &Database, s: &SetRow) -> Result<i64> {
    let now = crate::db::sqlfn::now_local();
    db.connection().execute(
        r#"INSERT INTO cf_backup_set ("STAMP","SET_STAMP","SET_COUNT","BACKUP_TYPE",
            "CONTROLFILE_INCLUDED","INCREMENTAL_LEVEL","PIECES","START_TIME","COMPLETION_TIME",
            "ELAPSED_SECONDS","BLOCK_SIZE","INPUT_FILE_SCAN_ONLY","KEEP","KEEP_OPTIONS",
            "MULTI_SECTION","CON_ID")
           VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,'NO',?12,NULL,?13,0)"#,
        params![
            stamp(now),
            s.set_stamp,
            s.set_count,
            s.backup_type,
            if s.controlfile_included { "YES" } else { "NO" },
            s.incremental_level,
            s.pieces,
            jd(s.start_time),
            jd(s.completion_time),
            (s.completion_time - s.start_time).num_seconds().max(0),
            s.block_size,
            if s.keep { "YES" } else { "NO" },
            if s.multi_section { "YES" } else { "NO" },
        ],
    )?;
    Ok(db.connection().last_insert_rowid())
}

/// Sets or clears (None) the KEEP attributes of a V$BACKUP_SET row: KEEP_UNTIL (None:
/// forever) and KEEP_OPTIONS.
pub fn set_keep(
    db: &Database,
    recid: i64,
    keep: Option<(Option<NaiveDateTime>, &str)>,
) -> Result<()> {
    db.connection().execute(
        r#"UPDATE cf_backup_set SET "KEEP" = ?1, "KEEP_UNTIL" = ?2, "KEEP_OPTIONS" = ?3
           WHERE "RECID" = ?4"#,
        params![
            if keep.is_some() { "YES" } else { "NO" },
            keep.and_then(|(until, _)| until).map(jd),
            keep.map(|(_, options)| options),
            recid
        ],
    )?;
    Ok(())
}

/// KEEP_UNTIL (None: forever) and KEEP_OPTIONS of a set whose keep is in force.
pub fn keep_of(db: &Database, recid: i64) -> Result<Option<(Option<NaiveDateTime>, String)>> {
    Ok(db
        .connection()
        .query_row(
            r#"SELECT "KEEP_UNTIL", "KEEP_OPTIONS" FROM cf_backup_set WHERE "RECID" = ?1
               AND "KEEP" = 'YES' AND ("KEEP_UNTIL" IS NULL OR "KEEP_UNTIL" > SYSDATE())"#,
            params![recid],
            |r| {
                Ok((
                    r.get::<_, Option<f64>>(0)?.and_then(from_julian),
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            },
        )
        .optional()?)
}

/// Starts a V$SESSION_LONGOPS row of a channel's backup set; returns its id.
pub fn start_longop(
    db: &Database,
    sid: u32,
    opname: &str,
    set_count: u32,
    totalwork: u64,
) -> Result<i64> {
    let t = jd(crate::db::sqlfn::now_local());
    db.connection().execute(
        "INSERT INTO sim_longops (sid, opname, set_count, sofar, totalwork, start_time, \
         last_update) VALUES (?1, ?2, ?3, 0, ?4, ?5, ?5)",
        params![sid, opname, set_count, totalwork as i64, t],
    )?;
    Ok(db.connection().last_insert_rowid())
}

/// Records how far a V$SESSION_LONGOPS row got.
pub fn update_longop(db: &Database, id: i64, sofar: u64) -> Result<()> {
    db.connection().execute(
        "UPDATE sim_longops SET sofar = ?1, last_update = ?2 WHERE id = ?3",
        params![sofar as i64, jd(crate::db::sqlfn::now_local()), id],
    )?;
    Ok(())
}

/// Inserts a V$BACKUP_PIECE row; returns (RECID, STAMP).
pub fn insert_piece(db: &Database, p: &PieceRow) -> Result<(i64, u32)> {
    let st = stamp(p.completion_time);
    db.connection().execute(
        r#"INSERT INTO cf_backup_piece ("STAMP","SET_STAMP","SET_COUNT","PIECE#","COPY#",
            "DEVICE_TYPE","HANDLE","COMMENTS","MEDIA","MEDIA_POOL","CONCUR","TAG","STATUS",
            "START_TIME","COMPLETION_TIME","ELAPSED_SECONDS","DELETED","BYTES",
            "IS_RECOVERY_DEST_FILE","RMAN_STATUS_RECID","RMAN_STATUS_STAMP","COMPRESSED",
            "BACKED_BY_VSS","ENCRYPTED","BACKED_BY_OSB","FOR_XTTS","CON_ID")
           VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,'NO',?11,'A',?12,?13,?14,'NO',?15,'NO',?16,?17,
                   ?18,'NO',?19,'NO','NO',0)"#,
        params![
            st,
            p.set_stamp,
            p.set_count,
            p.piece,
            p.copy,
            p.device_type,
            p.handle,
            p.comments,
            p.media,
            p.media_pool,
            p.tag,
            jd(p.start_time),
            jd(p.completion_time),
            (p.completion_time - p.start_time).num_seconds().max(0),
            p.bytes as i64,
            p.rman_status.map(|s| s.0),
            p.rman_status.map(|s| s.1),
            if p.compressed { "YES" } else { "NO" },
            if p.encrypted { "YES" } else { "NO" },
        ],
    )?;
    Ok((db.connection().last_insert_rowid(), st))
}

/// Inserts a V$BACKUP_DATAFILE row.
pub fn insert_backup_datafile(db: &Database, d: &BackupDatafileRow) -> Result<()> {
    let info = db.info()?;
    db.connection().execute(
        r#"INSERT INTO cf_backup_datafile ("STAMP","SET_STAMP","SET_COUNT","FILE#",
            "CREATION_CHANGE#","CREATION_TIME","RESETLOGS_CHANGE#","RESETLOGS_TIME",
            "INCREMENTAL_LEVEL","INCREMENTAL_CHANGE#","CHECKPOINT_CHANGE#","CHECKPOINT_TIME",
            "ABSOLUTE_FUZZY_CHANGE#","MARKED_CORRUPT","MEDIA_CORRUPT","LOGICALLY_CORRUPT",
            "DATAFILE_BLOCKS","BLOCKS","BLOCK_SIZE","OLDEST_OFFLINE_RANGE","COMPLETION_TIME",
            "CONTROLFILE_TYPE","USED_CHANGE_TRACKING","BLOCKS_READ","USED_OPTIMIZATION",
            "SECTION_SIZE","UNDO_OPTIMIZED","BLOCKS_SKIPPED_IN_CELL","SPARSE_BACKUP","CON_ID")
           VALUES (?1,?2,?3,?4,?5,NULL,?6,?7,?8,?9,?10,?11,?12,0,0,0,?13,?14,?15,0,?16,?17,?18,?19,
                   'NO',?20,'NO',0,'NONSPARSE',0)"#,
        params![
            stamp(d.completion_time),
            d.set_stamp,
            d.set_count,
            d.file_no,
            d.creation_scn.0 as i64,
            info.resetlogs_scn.0 as i64,
            crate::db::julian_of(info.resetlogs_time),
            d.incremental_level,
            d.incremental_scn.0 as i64,
            d.checkpoint_scn.0 as i64,
            jd(d.checkpoint_time),
            if d.absolute_fuzzy_scn.0 == 0 {
                None
            } else {
                Some(d.absolute_fuzzy_scn.0 as i64)
            },
            d.datafile_blocks as i64,
            d.blocks as i64,
            d.block_size,
            jd(d.completion_time),
            if d.file_no == 0 { Some("B") } else { None },
            if d.used_change_tracking { "YES" } else { "NO" },
            d.blocks_read as i64,
            d.section_size as i64,
        ],
    )?;
    Ok(())
}

/// Inserts a V$BACKUP_REDOLOG row.
pub fn insert_backup_redolog(db: &Database, r: &BackupRedologRow) -> Result<()> {
    let info = db.info()?;
    // The log's own incarnation (an older one's logs are backed up too).
    let resetlogs_time: f64 = db
        .connection()
        .query_row(
            r#"SELECT "RESETLOGS_TIME" FROM cf_database_incarnation
               WHERE "RESETLOGS_CHANGE#" = ?1 ORDER BY "STATUS" = 'CURRENT' DESC LIMIT 1"#,
            [r.resetlogs_scn.0 as i64],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or_else(|| crate::db::julian_of(info.resetlogs_time));
    db.connection().execute(
        r#"INSERT INTO cf_backup_redolog ("STAMP","SET_STAMP","SET_COUNT","THREAD#","SEQUENCE#",
            "RESETLOGS_CHANGE#","RESETLOGS_TIME","FIRST_CHANGE#","FIRST_TIME","NEXT_CHANGE#",
            "NEXT_TIME","BLOCKS","BLOCK_SIZE","TERMINAL","CON_ID")
           VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,'NO',0)"#,
        params![
            stamp(crate::db::sqlfn::now_local()),
            r.set_stamp,
            r.set_count,
            r.thread,
            r.sequence,
            r.resetlogs_scn.0 as i64,
            resetlogs_time,
            r.first_scn.0 as i64,
            jd(r.first_time),
            r.next_scn.0 as i64,
            jd(r.next_time),
            r.blocks as i64,
            r.block_size,
        ],
    )?;
    Ok(())
}

/// Inserts a V$BACKUP_SPFILE row.
pub fn insert_backup_spfile(
    db: &Database,
    set_stamp: u32,
    set_count: u32,
    bytes: u64,
    completion: NaiveDateTime,
) -> Result<()> {
    let name = db.info()?.name;
    db.connection().execute(
        r#"INSERT INTO cf_backup_spfile ("STAMP","SET_STAMP","SET_COUNT","MODIFICATION_TIME",
            "BYTES","COMPLETION_TIME","DB_UNIQUE_NAME","CON_ID")
           VALUES (?1,?2,?3,?4,?5,?6,?7,0)"#,
        params![
            stamp(completion),
            set_stamp,
            set_count,
            jd(completion),
            bytes as i64,
            jd(completion),
            name
        ],
    )?;
    Ok(())
}

fn set_row(r: &Row<'_>) -> rusqlite::Result<SetRow> {
    Ok(SetRow {
        recid: r.get(0)?,
        set_stamp: r.get(1)?,
        set_count: r.get(2)?,
        backup_type: r.get(3)?,
        controlfile_included: r.get::<_, Option<String>>(4)?.as_deref() == Some("YES"),
        incremental_level: r.get(5)?,
        pieces: r.get(6)?,
        start_time: dt(r.get(7)?),
        completion_time: dt(r.get(8)?),
        block_size: r.get::<_, Option<u32>>(9)?.unwrap_or(8192),
        multi_section: r.get::<_, Option<String>>(10)?.as_deref() == Some("YES"),
        keep: r.get::<_, Option<String>>(11)?.as_deref() == Some("YES"),
    })
}

/// KEEP reads YES only while the keep is in force: a KEEP UNTIL time that has passed ends it.
const SET_COLS: &str = r#""RECID","SET_STAMP","SET_COUNT","BACKUP_TYPE","CONTROLFILE_INCLUDED",
    "INCREMENTAL_LEVEL","PIECES","START_TIME","COMPLETION_TIME","BLOCK_SIZE","MULTI_SECTION",
    CASE WHEN "KEEP" = 'YES' AND ("KEEP_UNTIL" IS NULL OR "KEEP_UNTIL" > SYSDATE())
         THEN 'YES' ELSE 'NO' END"#;

/// Every V$BACKUP_SET row, oldest first.
pub fn sets(db: &Database) -> Result<Vec<SetRow>> {
    let mut st = db.connection().prepare(&format!(
        r#"SELECT {SET_COLS} FROM cf_backup_set ORDER BY "RECID""#
    ))?;
    let v = st
        .query_map([], set_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// The V$BACKUP_SET row of a set, if the set completed.
pub fn set_by_key(db: &Database, set_stamp: u32, set_count: u32) -> Result<Option<SetRow>> {
    Ok(db
        .connection()
        .query_row(
            &format!(
                r#"SELECT {SET_COLS} FROM cf_backup_set WHERE "SET_STAMP" = ?1 AND "SET_COUNT" = ?2"#
            ),
            params![set_stamp, set_count],
            set_row,
        )
        .optional()?)
}

fn piece_row(r: &Row<'_>) -> rusqlite::Result<PieceRow> {
    let rs_recid: Option<i64> = r.get(15)?;
    let rs_stamp: Option<u32> = r.get(16)?;
    Ok(PieceRow {
        recid: r.get(0)?,
        stamp: r.get(1)?,
        set_stamp: r.get(2)?,
        set_count: r.get(3)?,
        piece: r.get(4)?,
        copy: r.get(5)?,
        device_type: r.get(6)?,
        handle: r.get(7)?,
        comments: r.get(8)?,
        media: r.get(9)?,
        media_pool: r.get::<_, Option<u32>>(10)?.unwrap_or(0),
        tag: r.get(11)?,
        status: r.get(12)?,
        start_time: dt(r.get(13)?),
        completion_time: dt(r.get(14)?),
        bytes: r.get::<_, Option<i64>>(17)?.unwrap_or(0) as u64,
        rman_status: rs_recid.zip(rs_stamp),
        compressed: r.get::<_, Option<String>>(18)?.as_deref() == Some("YES"),
        encrypted: r.get::<_, Option<String>>(19)?.as_deref() == Some("YES"),
    })
}

/// Every V$BACKUP_PIECE row not deleted, oldest first (including pieces of sets that never
/// completed).
pub fn pieces(db: &Database) -> Result<Vec<PieceRow>> {
    let mut st = db.connection().prepare(
        r#"SELECT "RECID","STAMP","SET_STAMP","SET_COUNT","PIECE#","COPY#","DEVICE_TYPE","HANDLE",
            "COMMENTS","MEDIA","MEDIA_POOL","TAG","STATUS","START_TIME","COMPLETION_TIME",
            "RMAN_STATUS_RECID","RMAN_STATUS_STAMP","BYTES","COMPRESSED","ENCRYPTED"
           FROM cf_backup_piece WHERE "STATUS" <> 'D' ORDER BY "RECID""#,
    )?;
    let v = st
        .query_map([], piece_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Sets a piece's STATUS ('A', 'X', 'U'); 'D' also sets DELETED=YES.
pub fn set_piece_status(db: &Database, recid: i64, status: &str) -> Result<()> {
    db.connection().execute(
        r#"UPDATE cf_backup_piece SET "STATUS" = ?1,
             "DELETED" = CASE WHEN ?1 = 'D' THEN 'YES' ELSE "DELETED" END
           WHERE "RECID" = ?2"#,
        params![status, recid],
    )?;
    Ok(())
}

/// Removes the V$BACKUP_SET row of a set whose pieces are all deleted.
pub fn drop_set_if_empty(db: &Database, set_stamp: u32, set_count: u32) -> Result<()> {
    let live: i64 = db.connection().query_row(
        r#"SELECT count(*) FROM cf_backup_piece
           WHERE "SET_STAMP" = ?1 AND "SET_COUNT" = ?2 AND "STATUS" <> 'D'"#,
        params![set_stamp, set_count],
        |r| r.get(0),
    )?;
    if live == 0 {
        for t in [
            "cf_backup_set",
            "cf_backup_datafile",
            "cf_backup_redolog",
            "cf_backup_spfile",
        ] {
            db.connection().execute(
                &format!(r#"DELETE FROM {t} WHERE "SET_STAMP" = ?1 AND "SET_COUNT" = ?2"#),
                params![set_stamp, set_count],
            )?;
        }
    }
    Ok(())
}

/// V$BACKUP_DATAFILE rows, oldest first.
pub fn backup_datafiles(db: &Database) -> Result<Vec<BackupDatafileRow>> {
    let mut st = db.connection().prepare(
        r#"SELECT "SET_STAMP","SET_COUNT","FILE#","CREATION_CHANGE#","INCREMENTAL_LEVEL",
            "INCREMENTAL_CHANGE#","CHECKPOINT_CHANGE#","CHECKPOINT_TIME","ABSOLUTE_FUZZY_CHANGE#",
            "DATAFILE_BLOCKS","BLOCKS","BLOCK_SIZE","COMPLETION_TIME","USED_CHANGE_TRACKING",
            "BLOCKS_READ","SECTION_SIZE"
           FROM cf_backup_datafile ORDER BY "RECID""#,
    )?;
    let v = st
        .query_map([], |r| {
            Ok(BackupDatafileRow {
                set_stamp: r.get(0)?,
                set_count: r.get(1)?,
                file_no: r.get(2)?,
                creation_scn: Scn(r.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64),
                incremental_level: r.get(4)?,
                incremental_scn: Scn(r.get::<_, Option<i64>>(5)?.unwrap_or(0) as u64),
                checkpoint_scn: Scn(r.get::<_, Option<i64>>(6)?.unwrap_or(0) as u64),
                checkpoint_time: dt(r.get(7)?),
                absolute_fuzzy_scn: Scn(r.get::<_, Option<i64>>(8)?.unwrap_or(0) as u64),
                datafile_blocks: r.get::<_, Option<i64>>(9)?.unwrap_or(0) as u64,
                blocks: r.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
                block_size: r.get::<_, Option<u32>>(11)?.unwrap_or(8192),
                completion_time: dt(r.get(12)?),
                used_change_tracking: r.get::<_, Option<String>>(13)?.as_deref() == Some("YES"),
                blocks_read: r.get::<_, Option<i64>>(14)?.unwrap_or(0) as u64,
                section_size: r.get::<_, Option<i64>>(15)?.unwrap_or(0) as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// V$BACKUP_REDOLOG rows, oldest first.
pub fn backup_redologs(db: &Database) -> Result<Vec<BackupRedologRow>> {
    let mut st = db.connection().prepare(
        r#"SELECT "SET_STAMP","SET_COUNT","THREAD#","SEQUENCE#","RESETLOGS_CHANGE#",
            "FIRST_CHANGE#","FIRST_TIME","NEXT_CHANGE#","NEXT_TIME","BLOCKS","BLOCK_SIZE"
           FROM cf_backup_redolog ORDER BY "RECID""#,
    )?;
    let v = st
        .query_map([], |r| {
            Ok(BackupRedologRow {
                set_stamp: r.get(0)?,
                set_count: r.get(1)?,
                thread: r.get(2)?,
                sequence: r.get(3)?,
                resetlogs_scn: Scn(r.get::<_, Option<i64>>(4)?.unwrap_or(0) as u64),
                first_scn: Scn(r.get::<_, Option<i64>>(5)?.unwrap_or(0) as u64),
                first_time: dt(r.get(6)?),
                next_scn: Scn(r.get::<_, Option<i64>>(7)?.unwrap_or(0) as u64),
                next_time: dt(r.get(8)?),
                blocks: r.get::<_, Option<i64>>(9)?.unwrap_or(0) as u64,
                block_size: r.get::<_, Option<u32>>(10)?.unwrap_or(512),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// (SET_STAMP, SET_COUNT) of sets holding an spfile.
pub fn spfile_sets(db: &Database) -> Result<Vec<(u32, u32)>> {
    let mut st = db
        .connection()
        .prepare(r#"SELECT "SET_STAMP","SET_COUNT" FROM cf_backup_spfile ORDER BY "RECID""#)?;
    let v = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Inserts a V$DATAFILE_COPY row; returns (RECID, STAMP).
pub fn insert_copy(
    db: &Database,
    c: &CopyRow,
    rman_status: Option<(i64, u32)>,
) -> Result<(i64, u32)> {
    let info = db.info()?;
    let st = stamp(c.completion_time);
    db.connection().execute(
        r#"INSERT INTO cf_datafile_copy ("STAMP","NAME","TAG","FILE#","RFILE#","CREATION_CHANGE#",
            "RESETLOGS_CHANGE#","RESETLOGS_TIME","INCREMENTAL_LEVEL","CHECKPOINT_CHANGE#",
            "CHECKPOINT_TIME","ONLINE_FUZZY","BACKUP_FUZZY","MARKED_CORRUPT","MEDIA_CORRUPT",
            "LOGICALLY_CORRUPT","BLOCKS","BLOCK_SIZE","DELETED","STATUS","COMPLETION_TIME",
            "KEEP","SCANNED","IS_RECOVERY_DEST_FILE","RMAN_STATUS_RECID","RMAN_STATUS_STAMP",
            "CONVERTED_FILE","SAME_ENDIAN","BLOCKS_READ","CON_ID")
           VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,'NO','NO',0,0,0,?12,?13,'NO','A',?14,'NO','NO',
                   'NO',?15,?16,'NO','YES',?12,0)"#,
        params![
            st,
            c.name,
            c.tag,
            c.file_no,
            c.rfile_no,
            c.creation_scn.0 as i64,
            info.resetlogs_scn.0 as i64,
            crate::db::julian_of(info.resetlogs_time),
            c.incremental_level,
            c.checkpoint_scn.0 as i64,
            jd(c.checkpoint_time),
            c.blocks as i64,
            c.block_size,
            jd(c.completion_time),
            rman_status.map(|s| s.0),
            rman_status.map(|s| s.1),
        ],
    )?;
    Ok((db.connection().last_insert_rowid(), st))
}

/// Live V$DATAFILE_COPY rows, oldest first.
pub fn copies(db: &Database) -> Result<Vec<CopyRow>> {
    let mut st = db.connection().prepare(
        r#"SELECT "RECID","STAMP","NAME","TAG","FILE#","RFILE#","CREATION_CHANGE#",
            "INCREMENTAL_LEVEL","CHECKPOINT_CHANGE#","CHECKPOINT_TIME","BLOCKS","BLOCK_SIZE",
            "STATUS","COMPLETION_TIME"
           FROM cf_datafile_copy WHERE "STATUS" <> 'D' ORDER BY "RECID""#,
    )?;
    let v = st
        .query_map([], |r| {
            Ok(CopyRow {
                recid: r.get(0)?,
                stamp: r.get(1)?,
                name: r.get(2)?,
                tag: r.get(3)?,
                file_no: r.get(4)?,
                rfile_no: r.get(5)?,
                creation_scn: Scn(r.get::<_, Option<i64>>(6)?.unwrap_or(0) as u64),
                incremental_level: r.get(7)?,
                checkpoint_scn: Scn(r.get::<_, Option<i64>>(8)?.unwrap_or(0) as u64),
                checkpoint_time: dt(r.get(9)?),
                blocks: r.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
                block_size: r.get::<_, Option<u32>>(11)?.unwrap_or(8192),
                status: r.get(12)?,
                completion_time: dt(r.get(13)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Records a datafile copy's new checkpoint after RECOVER COPY.
pub fn update_copy_checkpoint(
    db: &Database,
    recid: i64,
    scn: Scn,
    time: NaiveDateTime,
    blocks: u64,
) -> Result<()> {
    db.connection().execute(
        r#"UPDATE cf_datafile_copy SET "CHECKPOINT_CHANGE#" = ?1, "CHECKPOINT_TIME" = ?2,
             "BLOCKS" = ?3 WHERE "RECID" = ?4"#,
        params![scn.0 as i64, jd(time), blocks as i64, recid],
    )?;
    Ok(())
}

/// Sets a copy's STATUS ('A', 'X'; 'D' also DELETED=YES).
pub fn set_copy_status(db: &Database, recid: i64, status: &str) -> Result<()> {
    db.connection().execute(
        r#"UPDATE cf_datafile_copy SET "STATUS" = ?1,
             "DELETED" = CASE WHEN ?1 = 'D' THEN 'YES' ELSE "DELETED" END WHERE "RECID" = ?2"#,
        params![status, recid],
    )?;
    Ok(())
}

/// A V$RMAN_STATUS row being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusKey {
    pub recid: i64,
    pub stamp: u32,
}

/// Inserts a RUNNING V$RMAN_STATUS row. `parent` None = the session row (ROW_LEVEL 0).
#[allow(clippy::too_many_arguments)]
pub fn start_status(
    db: &Database,
    sid: u32,
    parent: Option<StatusKey>,
    session: Option<StatusKey>,
    level: u32,
    operation: &str,
    command_id: &str,
    start: NaiveDateTime,
) -> Result<StatusKey> {
    let st = stamp(start);
    let row_type = match level {
        0 => "SESSION",
        1 => "COMMAND",
        _ => "RECURSIVE OPERATION",
    };
    db.connection().execute(
        r#"INSERT INTO cf_rman_status ("SID","STAMP","PARENT_RECID","PARENT_STAMP","SESSION_RECID",
            "SESSION_STAMP","ROW_LEVEL","ROW_TYPE","COMMAND_ID","OPERATION","STATUS",
            "MBYTES_PROCESSED","START_TIME","END_TIME","INPUT_BYTES","OUTPUT_BYTES","OPTIMIZED",
            "OBJECT_TYPE","OUTPUT_DEVICE_TYPE","OSB_ALLOCATED","CON_ID")
           VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,'RUNNING',0,?11,NULL,0,0,'NO',NULL,NULL,'NO',0)"#,
        params![
            sid,
            st,
            parent.map(|p| p.recid),
            parent.map(|p| p.stamp),
            session.map(|p| p.recid),
            session.map(|p| p.stamp),
            level,
            row_type,
            command_id,
            operation,
            jd(start),
        ],
    )?;
    let recid = db.connection().last_insert_rowid();
    if session.is_none() {
        db.connection().execute(
            r#"UPDATE cf_rman_status SET "SESSION_RECID" = ?1, "SESSION_STAMP" = ?2 WHERE "RECID" = ?1"#,
            params![recid, st],
        )?;
    }
    Ok(StatusKey { recid, stamp: st })
}

/// What a finished V$RMAN_STATUS row says.
#[derive(Debug, Clone, Default)]
pub struct StatusEnd {
    pub status: String,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub object_type: Option<String>,
    pub device_type: Option<String>,
}

/// Updates a V$RMAN_STATUS row (status, bytes, END_TIME when finished).
pub fn finish_status(db: &Database, key: StatusKey, end: &StatusEnd, finished: bool) -> Result<()> {
    let now = crate::db::sqlfn::now_local();
    db.connection().execute(
        r#"UPDATE cf_rman_status SET "STATUS" = ?1, "INPUT_BYTES" = ?2, "OUTPUT_BYTES" = ?3,
             "MBYTES_PROCESSED" = ?4, "OBJECT_TYPE" = coalesce(?5, "OBJECT_TYPE"),
             "OUTPUT_DEVICE_TYPE" = coalesce(?6, "OUTPUT_DEVICE_TYPE"),
             "END_TIME" = CASE WHEN ?7 THEN ?8 ELSE "END_TIME" END
           WHERE "RECID" = ?9"#,
        params![
            end.status,
            end.input_bytes as i64,
            end.output_bytes as i64,
            (end.input_bytes as f64 / 1_048_576.0).round(),
            end.object_type,
            end.device_type,
            finished,
            jd(now),
            key.recid
        ],
    )?;
    Ok(())
}

/// Sets COMMAND_ID on a status row.
pub fn set_status_command_id(db: &Database, key: StatusKey, command_id: &str) -> Result<()> {
    db.connection().execute(
        r#"UPDATE cf_rman_status SET "COMMAND_ID" = ?1 WHERE "RECID" = ?2"#,
        params![command_id, key.recid],
    )?;
    Ok(())
}

/// Appends V$RMAN_OUTPUT lines for a status row.
pub fn add_output(
    db: &Database,
    sid: u32,
    session: StatusKey,
    status: StatusKey,
    lines: &[String],
) -> Result<()> {
    let now = stamp(crate::db::sqlfn::now_local());
    let mut st = db.connection().prepare(
        r#"INSERT INTO cf_rman_output ("SID","STAMP","SESSION_RECID","SESSION_STAMP","OUTPUT",
            "RMAN_STATUS_RECID","RMAN_STATUS_STAMP","SESSION_KEY","CON_ID")
           VALUES (?1,?2,?3,?4,?5,?6,?7,?3,0)"#,
    )?;
    for l in lines {
        let text: String = l.chars().take(129).collect();
        st.execute(params![
            sid,
            now,
            session.recid,
            session.stamp,
            text,
            status.recid,
            status.stamp
        ])?;
    }
    Ok(())
}

/// V$RMAN_CONFIGURATION rows (NAME, VALUE).
pub fn configuration(db: &Database) -> Result<Vec<(String, String)>> {
    let mut st = db
        .connection()
        .prepare(r#"SELECT "NAME","VALUE" FROM cf_rman_configuration ORDER BY "CONF#""#)?;
    let v = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Replaces the configuration rows whose (NAME, VALUE) satisfy `matches` with `new`
/// (None = CLEAR). Returns the values replaced.
pub fn replace_configuration(
    db: &Database,
    name: &str,
    matches: &dyn Fn(&str) -> bool,
    new: Option<&str>,
) -> Result<Vec<String>> {
    let old: Vec<(i64, String)> = {
        let mut st = db.connection().prepare(
            r#"SELECT "CONF#","VALUE" FROM cf_rman_configuration WHERE "NAME" = ?1 ORDER BY "CONF#""#,
        )?;
        st.query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut replaced = Vec::new();
    for (conf, value) in old {
        if matches(&value) {
            db.connection().execute(
                r#"DELETE FROM cf_rman_configuration WHERE "CONF#" = ?1"#,
                [conf],
            )?;
            replaced.push(value);
        }
    }
    if let Some(v) = new {
        db.connection().execute(
            r#"INSERT INTO cf_rman_configuration ("NAME","VALUE","CON_ID") VALUES (?1,?2,0)"#,
            params![name, v],
        )?;
    }
    Ok(replaced)
}

/// Next control file autobackup sequence for `day` (YYYYMMDD): 0..=255, then wraps.
pub fn next_autobackup_seq(db: &Database, day: &str) -> Result<u8> {
    let cur: (Option<String>, i64) = db.connection().query_row(
        "SELECT autobackup_seq_date, autobackup_seq FROM cf_sim",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let seq = if cur.0.as_deref() == Some(day) {
        (cur.1 + 1) % 256
    } else {
        0
    };
    db.connection().execute(
        "UPDATE cf_sim SET autobackup_seq_date = ?1, autobackup_seq = ?2",
        params![day, seq],
    )?;
    Ok(seq as u8)
}
