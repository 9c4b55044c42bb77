//! Online redo logs, checkpoints, log switches and archiving.

use super::{
    ArchivedLog, Database, DbError, Result, bct, io_err, julian_of, oracle_now, stamp_of_julian,
};
use orca_oracle::block::FileHeaderBlock;
use orca_oracle::datafile::COMPAT_19;
use orca_oracle::redo::{
    REDO_BLOCK_HEADER_LEN, REDO_FILE_TYPE, RedoBlockWriter, parse_log_headers,
};
use orca_oracle::{OracleTime, RecordKind, RedoLogHeader, RedoRecord, Scn};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const REDO_BS: usize = 512;

/// Fields shared by every log header of a database incarnation.
#[derive(Clone, Debug)]
pub(crate) struct LogIdentity {
    pub dbid: u32,
    pub name: String,
    pub activation_id: u32,
    pub resetlogs_id: u32,
    pub resetlogs_scn: Scn,
    pub file_no: u16,
}

impl LogIdentity {
    fn of(db: &Database, group: u32) -> Result<LogIdentity> {
        let i = db.info()?;
        Ok(LogIdentity {
            dbid: i.dbid,
            name: i.name,
            activation_id: i.activation_id,
            resetlogs_id: i.resetlogs_id,
            resetlogs_scn: i.resetlogs_scn,
            file_no: group as u16,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &self,
        thread: u16,
        sequence: u32,
        first: Scn,
        first_time: OracleTime,
        next: Option<(Scn, OracleTime)>,
        size_blocks: u32,
        nab: u32,
        cf_seq: u32,
    ) -> RedoLogHeader {
        RedoLogHeader {
            compat_version: COMPAT_19,
            dbid: self.dbid,
            db_name: self.name.clone(),
            controlfile_seq: cf_seq,
            file_size_blocks: size_blocks,
            block_size: REDO_BS as u32,
            file_no: self.file_no,
            file_type: REDO_FILE_TYPE,
            activation_id: self.activation_id,
            description: RedoLogHeader::standard_description(
                thread,
                sequence,
                first,
                next.map(|n| n.0),
            ),
            nab,
            resetlogs_id: self.resetlogs_id,
            resetlogs_scn: self.resetlogs_scn,
            hws: nab.saturating_sub(1),
            thread,
            first_scn: first,
            first_time,
            next_scn: next.map(|n| n.0),
            next_time: next.map(|n| n.1).unwrap_or_default(),
            enabled_scn: self.resetlogs_scn,
            enabled_time: OracleTime(self.resetlogs_id),
            thread_closed_scn: Scn(0),
            thread_closed_time: OracleTime(0),
        }
    }
}

/// Writes a fresh online log: block 0, header, an empty block 2, and a
/// sparse tail up to `size_blocks`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn init_online_log(
    db: &Database,
    path: &Path,
    thread: u16,
    sequence: u32,
    first: Scn,
    first_time: OracleTime,
    size_blocks: u32,
    id: &LogIdentity,
) -> Result<()> {
    let cf_seq: i64 = db
        .connection()
        .query_row("SELECT controlfile_seq FROM cf_sim", [], |r| r.get(0))?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_err(format!("cannot create online log {}", path.display()), e))?;
    let mut buf = vec![0u8; 3 * REDO_BS];
    FileHeaderBlock::redo(REDO_BS, size_blocks)?.build(&mut buf[..REDO_BS])?;
    id.header(
        thread,
        sequence,
        first,
        first_time,
        None,
        size_blocks,
        2,
        cf_seq as u32,
    )
    .build(sequence, &mut buf[REDO_BS..2 * REDO_BS])?;
    f.write_all_at(&buf, 0)
        .map_err(|e| io_err(format!("cannot write {}", path.display()), e))?;
    f.set_len((u64::from(size_blocks) + 1) * REDO_BS as u64)
        .map_err(|e| io_err(format!("cannot size {}", path.display()), e))?;
    Ok(())
}

/// The redo writer of one thread's current online log.
pub(crate) struct LogWriter {
    pub thread: u16,
    pub sequence: u32,
    pub group: u32,
    path: PathBuf,
    file: File,
    writer: RedoBlockWriter,
    capacity: u32,
    first_scn: Scn,
    first_time: OracleTime,
    pending_first: u32,
    pending: Vec<u8>,
    id: LogIdentity,
}

impl LogWriter {
    /// Opens the current log of `thread` where the last writer left it.
    pub fn open(db: &Database, thread: u16) -> Result<LogWriter> {
        let c = db.connection();
        let (group, sequence, wb, wo, first, first_stamp): (u32, u32, u32, u32, i64, u32) = c
            .query_row(
                r#"SELECT "CURRENT_GROUP#", "SEQUENCE#", write_block, write_offset, first_change,
                          first_stamp FROM cf_thread WHERE "THREAD#" = ?1"#,
                [thread],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()?
            .ok_or_else(|| DbError::NotFound(format!("redo thread {thread} does not exist")))?;
        let path: String = c.query_row(
            r#"SELECT "MEMBER" FROM cf_logfile WHERE "GROUP#" = ?1"#,
            [group],
            |r| r.get(0),
        )?;
        let capacity: u32 =
            c.query_row("SELECT online_log_blocks FROM cf_sim", [], |r| r.get(0))?;
        let path = PathBuf::from(path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(format!("cannot open online log {}", path.display()), e))?;
        let mut partial = vec![0u8; REDO_BS];
        if wo as usize > REDO_BLOCK_HEADER_LEN {
            file.read_exact_at(&mut partial, u64::from(wb) * REDO_BS as u64)
                .map_err(|e| io_err(format!("cannot read {}", path.display()), e))?;
        }
        let writer = RedoBlockWriter::resume(REDO_BS, sequence, wb, wo as usize, &partial)?;
        Ok(LogWriter {
            thread,
            sequence,
            group,
            path,
            file,
            writer,
            capacity,
            first_scn: Scn(first as u64),
            first_time: OracleTime(first_stamp),
            pending_first: wb,
            pending: Vec::new(),
            id: LogIdentity::of(db, group)?,
        })
    }

    /// Position of the next record (for checkpoint RBAs).
    pub fn rba(&self) -> orca_oracle::Rba {
        orca_oracle::Rba {
            sequence: self.sequence,
            block: self.writer.block_no(),
            offset: self.writer.offset() as u16,
        }
    }

    fn has_room(&self, rec: &RedoRecord) -> bool {
        let body = (REDO_BS - REDO_BLOCK_HEADER_LEN) as u64;
        let blocks = (rec.encoded_len() as u64).div_ceil(body) + 1;
        u64::from(self.writer.block_no()) + blocks <= u64::from(self.capacity)
    }

    fn append_raw(&mut self, rec: &RedoRecord) -> Result<()> {
        let pending_first = &mut self.pending_first;
        let pending = &mut self.pending;
        self.writer.append(rec, |n: u32, b: &[u8]| {
            if pending.is_empty() {
                *pending_first = n;
            }
            pending.extend_from_slice(b);
            Ok(())
        })?;
        if self.pending.len() >= 1 << 20 {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(
                &self.pending,
                u64::from(self.pending_first) * REDO_BS as u64,
            )
            .map_err(|e| io_err(format!("cannot write {}", self.path.display()), e))?;
        self.pending.clear();
        Ok(())
    }

    /// Appends a record, switching to the next log first if this one is full.
    pub fn append_record(&mut self, db: &Database, rec: &RedoRecord) -> Result<()> {
        if !self.has_room(rec) {
            self.flush(db)?;
            let next_scn = db.allocate_scn()?;
            switch_thread(db, self, next_scn, oracle_now())?;
            *self = LogWriter::open(db, self.thread)?;
        }
        self.append_raw(rec)
    }

    /// Writes buffered blocks, the partial block and the header, and records
    /// the write position in the control file.
    pub fn flush(&mut self, db: &Database) -> Result<()> {
        self.write_pending()?;
        if let Some((n, b)) = self.writer.partial_block()? {
            self.file
                .write_all_at(b, u64::from(n) * REDO_BS as u64)
                .map_err(|e| io_err(format!("cannot write {}", self.path.display()), e))?;
        }
        let nab = self.writer.nab();
        let cf_seq: i64 =
            db.connection()
                .query_row("SELECT controlfile_seq FROM cf_sim", [], |r| r.get(0))?;
        let mut hb = vec![0u8; REDO_BS];
        self.id
            .header(
                self.thread,
                self.sequence,
                self.first_scn,
                self.first_time,
                None,
                self.capacity,
                nab,
                cf_seq as u32,
            )
            .build(self.sequence, &mut hb)?;
        self.file
            .write_all_at(&hb, REDO_BS as u64)
            .map_err(|e| io_err(format!("cannot write {}", self.path.display()), e))?;
        db.connection().execute(
            r#"UPDATE cf_thread SET write_block = ?1, write_offset = ?2,
                   "LAST_REDO_SEQUENCE#" = ?3, "LAST_REDO_BLOCK" = ?4
               WHERE "THREAD#" = ?5"#,
            params![
                self.writer.block_no(),
                self.writer.offset() as u32,
                self.sequence,
                nab.saturating_sub(1),
                self.thread
            ],
        )?;
        Ok(())
    }

    /// Whether the log holds any record.
    pub fn is_empty(&self) -> bool {
        self.writer.block_no() == 2 && self.writer.offset() == REDO_BLOCK_HEADER_LEN
    }
}

/// Writers of all threads, keyed by thread.
pub(crate) struct Writers {
    pub map: BTreeMap<u16, LogWriter>,
    pub open_threads: Vec<u16>,
}

impl Writers {
    /// Opens the writers of every thread (open and closed).
    pub fn open_all(db: &Database) -> Result<Writers> {
        let mut st = db
            .connection()
            .prepare(r#"SELECT "THREAD#", "STATUS" FROM cf_thread ORDER BY "THREAD#""#)?;
        let rows: Vec<(u16, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut map = BTreeMap::new();
        let mut open_threads = Vec::new();
        for (t, status) in rows {
            if status == "OPEN" {
                open_threads.push(t);
            }
            map.insert(t, LogWriter::open(db, t)?);
        }
        if open_threads.is_empty() {
            return Err(super::ora(1034, "ORACLE not available"));
        }
        Ok(Writers { map, open_threads })
    }

    /// The writer of an open thread, round-robin by `n`.
    pub fn pick(&mut self, n: usize) -> Result<&mut LogWriter> {
        let t = self.open_threads[n % self.open_threads.len()];
        self.map
            .get_mut(&t)
            .ok_or_else(|| DbError::NotFound(format!("redo thread {t}")))
    }

    /// Flushes every writer.
    pub fn flush(&mut self, db: &Database) -> Result<()> {
        for w in self.map.values_mut() {
            w.flush(db)?;
        }
        Ok(())
    }
}

/// Takes a checkpoint: new checkpoint SCN in every datafile header (logged
/// as block images in the first open thread), control file updated.
pub(crate) fn checkpoint(db: &Database, writers: &mut Writers) -> Result<Scn> {
    let scn = db.allocate_scn()?;
    let now = oracle_now();
    let cf_seq = db.bump_cf_seq()?;
    let mut bct = bct::Tracker::load(db)?;
    let w = writers.pick(0)?;
    let thread = w.thread;
    w.append_record(
        db,
        &RedoRecord {
            kind: RecordKind::Checkpoint,
            thread,
            scn,
            time: now,
            file_no: 0,
            block_no: 0,
            payload: Vec::new(),
        },
    )?;
    // Offline files keep the checkpoint they went offline with.
    for d in db.datafiles()?.into_iter().filter(|d| d.is_online()) {
        let io = super::DatafileIo::open(&d.path, true)?;
        let mut h = io.header()?;
        h.checkpoint = orca_oracle::Checkpoint {
            scn,
            time: now,
            thread,
            rba: w.rba(),
        };
        h.checkpoint_count = h.checkpoint_count.wrapping_add(1);
        h.cf_checkpoint_count = h.cf_checkpoint_count.wrapping_add(1);
        h.controlfile_seq = cf_seq;
        let img = io.write_header(&h)?;
        w.append_record(
            db,
            &RedoRecord {
                kind: RecordKind::BlockImage,
                thread,
                scn,
                time: now,
                file_no: d.file_no as u16,
                block_no: 1,
                payload: img,
            },
        )?;
        if let Some(t) = bct.as_mut() {
            t.record(d.file_no, 1, scn);
        }
    }
    if let Some(t) = bct {
        t.save()?;
    }
    let c = db.connection();
    let j = julian_of(now);
    c.execute(
        r#"UPDATE cf_datafile SET "CHECKPOINT_CHANGE#" = ?1, "CHECKPOINT_TIME" = ?2,
               checkpoint_stamp = ?3 WHERE "STATUS" IN ('ONLINE', 'SYSTEM')"#,
        params![scn.0 as i64, j, now.0],
    )?;
    c.execute(
        r#"UPDATE cf_database SET "CHECKPOINT_CHANGE#" = ?1, "CONTROLFILE_CHANGE#" = ?1,
               "CONTROLFILE_TIME" = ?2"#,
        params![scn.0 as i64, j],
    )?;
    c.execute(
        r#"UPDATE cf_thread SET "CHECKPOINT_CHANGE#" = ?1, "CHECKPOINT_TIME" = ?2
           WHERE "STATUS" = 'OPEN'"#,
        params![scn.0 as i64, j],
    )?;
    Ok(scn)
}

/// Switches every open thread (and closed threads holding redo), archiving
/// the old logs.
pub(crate) fn switch_all(db: &Database, writers: &mut Writers) -> Result<Vec<ArchivedLog>> {
    writers.flush(db)?;
    let next_scn = db.allocate_scn()?;
    let now = oracle_now();
    let mut out = Vec::new();
    let threads: Vec<u16> = writers.map.keys().copied().collect();
    for t in threads {
        let open = writers.open_threads.contains(&t);
        let Some(w) = writers.map.get_mut(&t) else {
            continue;
        };
        if !open && w.is_empty() {
            continue;
        }
        out.push(switch_thread(db, w, next_scn, now)?);
        *w = LogWriter::open(db, t)?;
    }
    Ok(out)
}

/// Closes the current log of one thread at `next_scn`, archives it, and
/// makes the thread's other group current.
pub(crate) fn switch_thread(
    db: &Database,
    w: &mut LogWriter,
    next_scn: Scn,
    now: OracleTime,
) -> Result<ArchivedLog> {
    w.flush(db)?;
    let c = db.connection();
    let nab = w.writer.nab();
    let cf_seq = db.bump_cf_seq()?;
    // Close the online log: header gets NEXT_CHANGE# and NEXT_TIME.
    let mut hb = vec![0u8; REDO_BS];
    let closed_header = w.id.header(
        w.thread,
        w.sequence,
        w.first_scn,
        w.first_time,
        Some((next_scn, now)),
        w.capacity,
        nab,
        cf_seq,
    );
    closed_header.build(w.sequence, &mut hb)?;
    w.file
        .write_all_at(&hb, REDO_BS as u64)
        .map_err(|e| io_err(format!("cannot write {}", w.path.display()), e))?;
    // Archive: the log cut after its last used block.
    let mut arch = vec![0u8; nab as usize * REDO_BS];
    w.file
        .read_exact_at(&mut arch, 0)
        .map_err(|e| io_err(format!("cannot read {}", w.path.display()), e))?;
    FileHeaderBlock::redo(REDO_BS, nab - 1)?.build(&mut arch[..REDO_BS])?;
    let mut ah = closed_header.clone();
    ah.file_size_blocks = nab - 1;
    ah.build(w.sequence, &mut arch[REDO_BS..2 * REDO_BS])?;
    let arch_path = db.archived_log_path(w.thread, w.sequence)?;
    super::write_atomic(&arch_path, &arch)?;
    let stamp = oracle_now();
    let info = db.info()?;
    c.execute(
        r#"INSERT INTO cf_archived_log ("STAMP", "NAME", "DEST_ID", "THREAD#", "SEQUENCE#",
            "RESETLOGS_CHANGE#", "RESETLOGS_TIME", "RESETLOGS_ID", "FIRST_CHANGE#", "FIRST_TIME",
            "NEXT_CHANGE#", "NEXT_TIME", "BLOCKS", "BLOCK_SIZE", "CREATOR", "REGISTRAR",
            "STANDBY_DEST", "ARCHIVED", "APPLIED", "DELETED", "STATUS", "COMPLETION_TIME",
            "DICTIONARY_BEGIN", "DICTIONARY_END", "END_OF_REDO", "BACKUP_COUNT",
            "ARCHIVAL_THREAD#", "ACTIVATION#", "IS_RECOVERY_DEST_FILE", "COMPRESSED", "FAL",
            "END_OF_REDO_TYPE", "BACKED_BY_VSS", "CON_ID")
           VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 512, 'ARCH', 'ARCH',
            'NO', 'YES', 'NO', 'NO', 'A', ?13, 'NO', 'NO', 'NO', 0, ?3, ?14, 'NO', 'NO', 'NO',
            NULL, 'NO', 0)"#,
        params![
            stamp.0,
            arch_path.to_string_lossy(),
            w.thread,
            w.sequence,
            info.resetlogs_scn.0 as i64,
            julian_of(info.resetlogs_time),
            info.resetlogs_id,
            w.first_scn.0 as i64,
            julian_of(w.first_time),
            next_scn.0 as i64,
            julian_of(now),
            nab - 1,
            julian_of(stamp),
            info.activation_id,
        ],
    )?;
    let recid = c.last_insert_rowid();
    // The other group of the thread becomes current.
    let (next_group, next_path): (u32, String) = c.query_row(
        r#"SELECT l."GROUP#", f."MEMBER" FROM cf_log l JOIN cf_logfile f ON f."GROUP#" = l."GROUP#"
           WHERE l."THREAD#" = ?1 AND l."GROUP#" <> ?2 ORDER BY l."GROUP#" LIMIT 1"#,
        params![w.thread, w.group],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let new_seq = w.sequence + 1;
    init_online_log(
        db,
        Path::new(&next_path),
        w.thread,
        new_seq,
        next_scn,
        now,
        w.capacity,
        &LogIdentity::of(db, next_group)?,
    )?;
    c.execute(
        r#"UPDATE cf_log SET "STATUS" = 'INACTIVE', "ARCHIVED" = 'YES', "NEXT_CHANGE#" = ?1,
               "NEXT_TIME" = ?2 WHERE "GROUP#" = ?3"#,
        params![next_scn.0 as i64, julian_of(now), w.group],
    )?;
    c.execute(
        r#"UPDATE cf_log SET "STATUS" = 'CURRENT', "ARCHIVED" = 'NO', "SEQUENCE#" = ?1,
               "FIRST_CHANGE#" = ?2, "FIRST_TIME" = ?3, "NEXT_CHANGE#" = NULL, "NEXT_TIME" = NULL
           WHERE "GROUP#" = ?4"#,
        params![new_seq, next_scn.0 as i64, julian_of(now), next_group],
    )?;
    c.execute(
        r#"UPDATE cf_thread SET "SEQUENCE#" = ?1, "CURRENT_GROUP#" = ?2, first_change = ?3,
               first_stamp = ?4, write_block = 2, write_offset = 16, "LAST_REDO_SEQUENCE#" = ?1,
               "LAST_REDO_BLOCK" = 1, "LAST_REDO_CHANGE#" = ?3, "LAST_REDO_TIME" = ?5
           WHERE "THREAD#" = ?6"#,
        params![
            new_seq,
            next_group,
            next_scn.0 as i64,
            now.0,
            julian_of(now),
            w.thread
        ],
    )?;
    c.execute(
        r#"UPDATE cf_database SET "ARCHIVE_CHANGE#" = ?1, "ARCHIVELOG_CHANGE#" = ?1"#,
        [next_scn.0 as i64],
    )?;
    db.archived_log(recid)
}

pub(crate) fn archived_logs(db: &Database, recid: Option<i64>) -> Result<Vec<ArchivedLog>> {
    let sql = format!(
        r#"SELECT "RECID", "STAMP", "NAME", "THREAD#", "SEQUENCE#", "RESETLOGS_CHANGE#",
                  "RESETLOGS_ID", "FIRST_CHANGE#", "FIRST_TIME", "NEXT_CHANGE#", "NEXT_TIME",
                  "BLOCKS", "BLOCK_SIZE", "STATUS", "DELETED", "BACKUP_COUNT", "CREATOR"
           FROM cf_archived_log {} ORDER BY "RECID""#,
        if recid.is_some() {
            r#"WHERE "RECID" = ?1"#
        } else {
            ""
        }
    );
    let mut st = db.connection().prepare(&sql)?;
    let map = |r: &rusqlite::Row<'_>| {
        Ok(ArchivedLog {
            recid: r.get(0)?,
            stamp: OracleTime(r.get(1)?),
            name: r.get::<_, Option<String>>(2)?.map(PathBuf::from),
            thread: r.get(3)?,
            sequence: r.get(4)?,
            resetlogs_scn: Scn(r.get::<_, i64>(5)? as u64),
            resetlogs_id: r.get(6)?,
            first_scn: Scn(r.get::<_, i64>(7)? as u64),
            first_time: stamp_of_julian(r.get(8)?),
            next_scn: Scn(r.get::<_, i64>(9)? as u64),
            next_time: stamp_of_julian(r.get(10)?),
            blocks: r.get(11)?,
            block_size: r.get(12)?,
            status: r.get(13)?,
            deleted: r.get::<_, String>(14)? == "YES",
            backup_count: r.get(15)?,
            creator: r.get(16)?,
        })
    };
    let rows = match recid {
        Some(id) => st
            .query_map([id], map)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => st
            .query_map([], map)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    Ok(rows)
}

pub(crate) fn register_archived_log(
    db: &Database,
    path: &Path,
    creator: &str,
) -> Result<ArchivedLog> {
    let mut head = vec![0u8; 2 * REDO_BS];
    let f = File::open(path)
        .map_err(|e| io_err(format!("cannot open archived log {}", path.display()), e))?;
    f.read_exact_at(&mut head, 0)
        .map_err(|e| io_err(format!("cannot read {}", path.display()), e))?;
    let (fh, h, seq) = parse_log_headers(&head)
        .map_err(|e| DbError::Invalid(format!("{} is not an archived log: {e}", path.display())))?;
    let info = db.info()?;
    if h.dbid != info.dbid {
        return Err(super::ora(
            19_563,
            format!(
                "archived log {} belongs to database {} (DBID {}), not {} (DBID {})",
                path.display(),
                h.db_name,
                h.dbid,
                info.name,
                info.dbid
            ),
        ));
    }
    let next = h.next_scn.ok_or_else(|| {
        DbError::Invalid(format!(
            "{} is an online log (no NEXT_CHANGE#), not an archived log",
            path.display()
        ))
    })?;
    let stamp = oracle_now();
    let creator = creator.to_ascii_uppercase();
    db.connection().execute(
        r#"INSERT INTO cf_archived_log ("STAMP", "NAME", "DEST_ID", "THREAD#", "SEQUENCE#",
            "RESETLOGS_CHANGE#", "RESETLOGS_TIME", "RESETLOGS_ID", "FIRST_CHANGE#", "FIRST_TIME",
            "NEXT_CHANGE#", "NEXT_TIME", "BLOCKS", "BLOCK_SIZE", "CREATOR", "REGISTRAR",
            "STANDBY_DEST", "ARCHIVED", "APPLIED", "DELETED", "STATUS", "COMPLETION_TIME",
            "DICTIONARY_BEGIN", "DICTIONARY_END", "END_OF_REDO", "BACKUP_COUNT",
            "ARCHIVAL_THREAD#", "ACTIVATION#", "IS_RECOVERY_DEST_FILE", "COMPRESSED", "FAL",
            "END_OF_REDO_TYPE", "BACKED_BY_VSS", "CON_ID")
           VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, 'NO',
            'YES', 'NO', 'NO', 'A', ?15, 'NO', 'NO', 'NO', 0, ?3, ?16, 'NO', 'NO', 'NO', NULL,
            'NO', 0)"#,
        params![
            stamp.0,
            path.to_string_lossy(),
            h.thread,
            seq,
            h.resetlogs_scn.0 as i64,
            julian_of(OracleTime(h.resetlogs_id)),
            h.resetlogs_id,
            h.first_scn.0 as i64,
            julian_of(h.first_time),
            next.0 as i64,
            julian_of(h.next_time),
            fh.block_count,
            fh.block_size,
            creator,
            julian_of(stamp),
            h.activation_id,
        ],
    )?;
    db.archived_log(db.connection().last_insert_rowid())
}

/// `ALTER DATABASE OPEN RESETLOGS` with the new incarnation beginning at `scn`: the SCN
/// counter restarts there, the recovery target becomes a PARENT (orphans stay ORPHAN).
pub(crate) fn open_resetlogs(db: &Database, scn: Scn) -> Result<()> {
    let c = db.connection();
    let info = db.info()?;
    let now = oracle_now();
    let last_rid: u32 = c.query_row(
        r#"SELECT max("RESETLOGS_ID") FROM cf_database_incarnation"#,
        [],
        |r| r.get(0),
    )?;
    let rid = now.0.max(last_rid.max(info.resetlogs_id) + 1);
    let j = julian_of(OracleTime(rid));
    let inc: i64 = c.query_row(
        r#"SELECT max("INCARNATION#") FROM cf_database_incarnation"#,
        [],
        |r| r.get(0),
    )?;
    let prior = db.current_incarnation()?.number;
    c.execute(
        r#"UPDATE cf_database_incarnation SET "STATUS" = 'PARENT' WHERE "STATUS" = 'CURRENT'"#,
        [],
    )?;
    c.execute(
        r#"INSERT INTO cf_database_incarnation VALUES (?1, ?2, ?3, ?4, ?5, 'CURRENT', ?6, ?7,
            'NO', 0)"#,
        params![
            inc + 1,
            scn.0 as i64,
            j,
            info.resetlogs_scn.0 as i64,
            julian_of(info.resetlogs_time),
            rid,
            prior
        ],
    )?;
    c.execute("UPDATE cf_sim SET current_scn = ?1", [scn.0 as i64])?;
    c.execute(
        r#"UPDATE cf_database SET "PRIOR_RESETLOGS_CHANGE#" = "RESETLOGS_CHANGE#",
               "PRIOR_RESETLOGS_TIME" = "RESETLOGS_TIME", "RESETLOGS_CHANGE#" = ?1,
               "RESETLOGS_TIME" = ?2, resetlogs_id = ?3, "CONTROLFILE_TYPE" = 'CURRENT',
               "OPEN_MODE" = 'READ WRITE', "RECOVERY_TARGET_INCARNATION#" = ?4,
               "LAST_OPEN_INCARNATION#" = ?4, "OPEN_RESETLOGS" = 'NOT ALLOWED',
               "CHECKPOINT_CHANGE#" = ?1, "CONTROLFILE_CHANGE#" = ?1"#,
        params![scn.0 as i64, j, rid, inc + 1],
    )?;
    c.execute(
        r#"UPDATE cf_instance SET "STATUS" = 'OPEN' WHERE "STATUS" <> 'DOWN'"#,
        [],
    )?;
    // Every datafile header joins the new incarnation; the new headers are the first redo
    // of the incarnation, so recovery through this RESETLOGS rewrites them the same way.
    let mut images = Vec::new();
    for d in db.datafiles()? {
        let io = super::DatafileIo::open(&d.path, true)?;
        let mut h = io.header()?;
        h.resetlogs_scn = scn;
        h.resetlogs_time = OracleTime(rid);
        h.checkpoint.scn = scn;
        h.checkpoint.time = now;
        h.checkpoint.rba = orca_oracle::Rba {
            sequence: 1,
            block: 2,
            offset: 16,
        };
        images.push((d.file_no, io.write_header(&h)?));
    }
    c.execute(
        r#"UPDATE cf_datafile SET "CHECKPOINT_CHANGE#" = ?1, "CHECKPOINT_TIME" = ?2,
               checkpoint_stamp = ?3, "LAST_CHANGE#" = NULL"#,
        params![scn.0 as i64, julian_of(now), now.0],
    )?;
    // Online logs restart at sequence 1.
    let capacity: u32 = c.query_row("SELECT online_log_blocks FROM cf_sim", [], |r| r.get(0))?;
    let threads: Vec<(u16, u32)> = {
        let mut st = c.prepare(r#"SELECT "THREAD#", "CURRENT_GROUP#" FROM cf_thread"#)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    for (t, g) in threads {
        let mut st = c.prepare(
            r#"SELECT l."GROUP#", f."MEMBER" FROM cf_log l JOIN cf_logfile f ON f."GROUP#" = l."GROUP#"
               WHERE l."THREAD#" = ?1"#,
        )?;
        let groups: Vec<(u32, String)> = st
            .query_map([t], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (grp, member) in groups {
            let current = grp == g;
            init_online_log(
                db,
                Path::new(&member),
                t,
                if current { 1 } else { 0 },
                scn,
                now,
                capacity,
                &LogIdentity::of(db, grp)?,
            )?;
            c.execute(
                r#"UPDATE cf_log SET "SEQUENCE#" = ?1, "STATUS" = ?2, "ARCHIVED" = ?3,
                       "FIRST_CHANGE#" = ?4, "FIRST_TIME" = ?5, "NEXT_CHANGE#" = NULL,
                       "NEXT_TIME" = NULL WHERE "GROUP#" = ?6"#,
                params![
                    if current { 1 } else { 0 },
                    if current { "CURRENT" } else { "UNUSED" },
                    if current { "NO" } else { "YES" },
                    if current { scn.0 as i64 } else { 0 },
                    if current { Some(julian_of(now)) } else { None },
                    grp
                ],
            )?;
        }
        c.execute(
            r#"UPDATE cf_thread SET "SEQUENCE#" = 1, first_change = ?1, first_stamp = ?2,
                   write_block = 2, write_offset = 16 WHERE "THREAD#" = ?3"#,
            params![scn.0 as i64, now.0, t],
        )?;
    }
    let first_thread: u16 =
        c.query_row(r#"SELECT min("THREAD#") FROM cf_thread"#, [], |r| r.get(0))?;
    let mut w = LogWriter::open(db, first_thread)?;
    for (file_no, img) in images {
        w.append_record(
            db,
            &RedoRecord {
                kind: RecordKind::BlockImage,
                thread: first_thread,
                scn,
                time: now,
                file_no: file_no as u16,
                block_no: 1,
                payload: img,
            },
        )?;
    }
    w.flush(db)
}
