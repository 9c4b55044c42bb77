//! Datafile states as Oracle enforces them: online and offline files (V$DATAFILE.STATUS),
//! files that need media recovery (V$RECOVER_FILE), and corrupt blocks found by VALIDATE
//! (V$DATABASE_BLOCK_CORRUPTION).
//!
//! The rules (Oracle Database Administrator's Guide, "Taking Data Files Offline", and the
//! Backup and Recovery User's Guide):
//! - A datafile is *in use* while the database is open and the file is online. RESTORE of a
//!   file in use fails with ORA-19573 and changes nothing. The simulator's instance keeps no
//!   file open between commands, so a file deleted from disk is not in use.
//! - `ALTER DATABASE DATAFILE n OFFLINE` and `ALTER TABLESPACE t OFFLINE IMMEDIATE` take files
//!   offline without a checkpoint: they need media recovery before they come back online
//!   (ORA-01113). `ALTER TABLESPACE t OFFLINE [NORMAL]` checkpoints its files first, so they
//!   come back without recovery.
//! - A restored file needs media recovery (its checkpoint is the backup's); any successful
//!   media recovery of the file clears that.
//! - Offline files are neither checkpointed nor changed by the workload.

use super::{Database, DatafileInfo, DatafileIo, DbError, Result, julian_of, ora, oracle_now};
use orca_oracle::{RecordKind, RedoRecord, Scn};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Tables and views of this module, created in every control file that lacks them.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sim_datafile_state (
    file_no INTEGER PRIMARY KEY,
    needs_recovery INTEGER NOT NULL DEFAULT 0,
    recover_scn INTEGER,
    recover_time DATE,
    offline_normal INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS cf_database_block_corruption (
    "FILE#" NUMBER, "BLOCK#" NUMBER, "BLOCKS" NUMBER, "CORRUPTION_CHANGE#" NUMBER,
    "CORRUPTION_TYPE" VARCHAR2(9), "CON_ID" NUMBER
);

CREATE VIEW IF NOT EXISTS "V$RECOVER_FILE" AS SELECT
    d."FILE#" AS "FILE#",
    CASE WHEN d."STATUS" IN ('OFFLINE', 'RECOVER') THEN 'OFFLINE' ELSE 'ONLINE' END AS "ONLINE",
    CASE WHEN d."STATUS" IN ('OFFLINE', 'RECOVER') THEN 'OFFLINE' ELSE 'ONLINE' END
        AS "ONLINE_STATUS",
    CASE WHEN sim_file_size(d."NAME") IS NULL THEN 'FILE NOT FOUND'
         WHEN coalesce(s.needs_recovery, 0) = 0 THEN 'OFFLINE NORMAL' END AS "ERROR",
    coalesce(s.recover_scn, 0) AS "CHANGE#", s.recover_time AS "TIME", 0 AS "CON_ID"
FROM cf_datafile d LEFT JOIN sim_datafile_state s ON s.file_no = d."FILE#"
WHERE s.needs_recovery = 1 OR s.offline_normal = 1 OR sim_file_size(d."NAME") IS NULL;

CREATE VIEW IF NOT EXISTS "V$DATABASE_BLOCK_CORRUPTION" AS SELECT
    "FILE#", "BLOCK#", "BLOCKS", "CORRUPTION_CHANGE#", "CORRUPTION_TYPE", "CON_ID"
FROM cf_database_block_corruption;
"#;

/// Creates this module's tables and views if the control file lacks them.
pub(crate) fn ensure_schema(conn: &Connection) -> Result<()> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// How `ALTER TABLESPACE ... OFFLINE` takes the files offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfflineMode {
    /// NORMAL (the default): checkpoint every file first.
    Normal,
    /// TEMPORARY: checkpoint the files that can be written, the others need recovery.
    Temporary,
    /// IMMEDIATE: no checkpoint; every file needs media recovery.
    Immediate,
}

/// A datafile named by number or by file name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileRef {
    /// FILE#.
    Number(u32),
    /// NAME as V$DATAFILE shows it.
    Name(String),
}

/// A statement that changes datafile states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateStatement {
    /// `ALTER DATABASE DATAFILE f OFFLINE [FOR DROP]`.
    DatafileOffline {
        /// The file.
        file: FileRef,
        /// FOR DROP (allowed in NOARCHIVELOG mode).
        for_drop: bool,
    },
    /// `ALTER DATABASE DATAFILE f ONLINE`.
    DatafileOnline(FileRef),
    /// `ALTER TABLESPACE t OFFLINE [NORMAL | TEMPORARY | IMMEDIATE]`.
    TablespaceOffline {
        /// Tablespace name (upper case).
        name: String,
        /// How.
        mode: OfflineMode,
    },
    /// `ALTER TABLESPACE t ONLINE`.
    TablespaceOnline(String),
}

impl StateStatement {
    /// What SQL*Plus prints when the statement succeeds.
    pub fn feedback(&self) -> &'static str {
        match self {
            StateStatement::DatafileOffline { .. } | StateStatement::DatafileOnline(_) => {
                "Database altered."
            }
            _ => "Tablespace altered.",
        }
    }
}

/// Words of an SQL statement: quoted strings keep their text (without quotes), other words
/// are upper-cased; a trailing `;` is dropped.
fn sql_words(stmt: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut chars = stmt.trim().trim_end_matches(';').chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::new();
            for x in chars.by_ref() {
                if x == c {
                    break;
                }
                s.push(x);
            }
            out.push((s, c == '\''));
        } else {
            let mut s = String::new();
            while let Some(&x) = chars.peek() {
                if x.is_whitespace() || x == '\'' {
                    break;
                }
                s.push(x.to_ascii_uppercase());
                chars.next();
            }
            out.push((s, false));
        }
    }
    out
}

/// Recognises the statements that take datafiles or tablespaces offline or online; `None`
/// for any other statement.
pub fn parse_state_statement(stmt: &str) -> Option<StateStatement> {
    let w = sql_words(stmt);
    let word = |i: usize| w.get(i).filter(|x| !x.1).map(|x| x.0.as_str());
    match (word(0), word(1)) {
        (Some("ALTER"), Some("DATABASE")) => {
            if word(2) != Some("DATAFILE") {
                return None;
            }
            let (text, quoted) = w.get(3)?;
            let file = if *quoted {
                FileRef::Name(text.clone())
            } else {
                FileRef::Number(text.parse().ok()?)
            };
            match (word(4), word(5), word(6), w.len()) {
                (Some("OFFLINE"), None, _, 5) => Some(StateStatement::DatafileOffline {
                    file,
                    for_drop: false,
                }),
                (Some("OFFLINE"), Some("FOR"), Some("DROP"), 7) => {
                    Some(StateStatement::DatafileOffline {
                        file,
                        for_drop: true,
                    })
                }
                (Some("ONLINE"), None, _, 5) => Some(StateStatement::DatafileOnline(file)),
                _ => None,
            }
        }
        (Some("ALTER"), Some("TABLESPACE")) => {
            let name = w.get(2)?.0.to_ascii_uppercase();
            match (word(3), word(4), w.len()) {
                (Some("OFFLINE"), None, 4) | (Some("OFFLINE"), Some("NORMAL"), 5) => {
                    Some(StateStatement::TablespaceOffline {
                        name,
                        mode: OfflineMode::Normal,
                    })
                }
                (Some("OFFLINE"), Some("TEMPORARY"), 5) => {
                    Some(StateStatement::TablespaceOffline {
                        name,
                        mode: OfflineMode::Temporary,
                    })
                }
                (Some("OFFLINE"), Some("IMMEDIATE"), 5) => {
                    Some(StateStatement::TablespaceOffline {
                        name,
                        mode: OfflineMode::Immediate,
                    })
                }
                (Some("ONLINE"), None, 4) => Some(StateStatement::TablespaceOnline(name)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// One row of V$DATABASE_BLOCK_CORRUPTION.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCorruption {
    /// FILE#.
    pub file_no: u32,
    /// First corrupt block of the range.
    pub block: u32,
    /// Corrupt blocks in the range.
    pub blocks: u32,
    /// CORRUPTION_TYPE: `ALL ZERO`, `CHECKSUM`, `FRACTURED` or `CORRUPT`.
    pub kind: String,
}

/// What is wrong with one block, as V$DATABASE_BLOCK_CORRUPTION.CORRUPTION_TYPE says it.
pub fn corruption_kind(e: &orca_oracle::BlockError) -> &'static str {
    match e {
        orca_oracle::BlockError::Checksum { .. } => "CHECKSUM",
        orca_oracle::BlockError::Tail { .. } => "FRACTURED",
        _ => "CORRUPT",
    }
}

impl DatafileInfo {
    /// Whether the file is online (STATUS `ONLINE` or `SYSTEM`).
    pub fn is_online(&self) -> bool {
        self.status == "ONLINE" || self.status == "SYSTEM"
    }
}

fn datafile_line(d: &DatafileInfo) -> String {
    format!("ORA-01110: data file {}: '{}'", d.file_no, d.path.display())
}

impl Database {
    /// Whether this process's instance has the database open (read write or read only).
    pub fn is_open(&self) -> Result<bool> {
        Ok(
            self.instance_status()? == super::InstanceStatus::Open
                && self.local_instance()?.is_up(),
        )
    }

    /// Whether an open instance uses the datafile: the database is open, the file online and
    /// on disk. RESTORE of such a file fails with ORA-19573.
    pub fn datafile_in_use(&self, d: &DatafileInfo) -> Result<bool> {
        Ok(d.is_online() && d.path.exists() && self.is_open()?)
    }

    /// Whether the datafile needs media recovery before it may be used: it was restored or
    /// taken offline without a checkpoint since its last recovery, its header is missing or
    /// damaged, or its checkpoint is older than the control file's.
    pub fn datafile_needs_recovery(&self, d: &DatafileInfo) -> Result<bool> {
        Ok(self.recovery_error(d)?.is_some())
    }

    /// Why the datafile cannot be brought online (ORA- text), if it cannot.
    fn recovery_error(&self, d: &DatafileInfo) -> Result<Option<DbError>> {
        let io = match DatafileIo::open(&d.path, false) {
            Ok(io) => io,
            Err(_) => {
                return Ok(Some(ora(
                    1157,
                    format!(
                        "cannot identify/lock data file {} - see DBWR trace file\n{}",
                        d.file_no,
                        datafile_line(d)
                    ),
                )));
            }
        };
        let h = match io.header() {
            Ok(h) => h,
            Err(_) => {
                return Ok(Some(ora(
                    1122,
                    format!(
                        "database file {} failed verification check\n{}\nORA-01210: data file header is media corrupt",
                        d.file_no,
                        datafile_line(d)
                    ),
                )));
            }
        };
        let info = self.info()?;
        if h.dbid != info.dbid {
            return Ok(Some(ora(
                1122,
                format!(
                    "database file {} failed verification check\n{}\nORA-01206: file is not part of this database - wrong database id",
                    d.file_no,
                    datafile_line(d)
                ),
            )));
        }
        if u32::from(h.file_no) != d.file_no || h.creation_scn != d.creation_scn {
            return Ok(Some(ora(
                1122,
                format!(
                    "database file {} failed verification check\n{}\nORA-01203: wrong incarnation of this file - wrong creation SCN",
                    d.file_no,
                    datafile_line(d)
                ),
            )));
        }
        let flagged: bool = self
            .connection()
            .query_row(
                "SELECT needs_recovery FROM sim_datafile_state WHERE file_no = ?1",
                [d.file_no],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .is_some_and(|v| v != 0);
        if flagged || h.checkpoint.scn < d.checkpoint_scn {
            return Ok(Some(ora(
                1113,
                format!(
                    "file {} needs media recovery\n{}",
                    d.file_no,
                    datafile_line(d)
                ),
            )));
        }
        Ok(None)
    }

    /// The datafile a statement names.
    fn datafile_ref(&self, f: &FileRef) -> Result<DatafileInfo> {
        match f {
            FileRef::Number(n) => self.datafile(*n),
            FileRef::Name(name) => self
                .datafiles()?
                .into_iter()
                .find(|d| d.path == Path::new(name))
                .ok_or_else(|| {
                    ora(
                        1516,
                        format!("nonexistent log file, data file, or temporary file \"{name}\""),
                    )
                }),
        }
    }

    fn is_system_file(&self, d: &DatafileInfo) -> Result<bool> {
        Ok(self
            .tablespaces()?
            .iter()
            .any(|t| t.ts_no == d.ts_no && t.contents == "SYSTEM"))
    }

    /// Runs a statement that changes datafile states (see [`parse_state_statement`]).
    pub fn alter_state(&self, stmt: &StateStatement) -> Result<()> {
        match stmt {
            StateStatement::DatafileOffline { file, for_drop } => {
                let d = self.datafile_ref(file)?;
                self.datafiles_offline(&[d], *for_drop)
            }
            StateStatement::DatafileOnline(file) => {
                let d = self.datafile_ref(file)?;
                self.datafiles_online(&[d])
            }
            StateStatement::TablespaceOffline { name, mode } => {
                self.tablespace_offline(name, *mode)
            }
            StateStatement::TablespaceOnline(name) => {
                let files = self.tablespace_files(name)?;
                self.datafiles_online(&files)
            }
        }
    }

    /// Parses and runs a state statement; `None` if `sql` is not one.
    pub fn execute_state_sql(&self, sql: &str) -> Option<Result<&'static str>> {
        let stmt = parse_state_statement(sql)?;
        Some(self.alter_state(&stmt).map(|_| stmt.feedback()))
    }

    fn tablespace_files(&self, name: &str) -> Result<Vec<DatafileInfo>> {
        if !self
            .tablespaces()?
            .iter()
            .any(|t| t.name.eq_ignore_ascii_case(name))
        {
            return Err(ora(959, format!("tablespace '{name}' does not exist")));
        }
        Ok(self
            .datafiles()?
            .into_iter()
            .filter(|d| d.tablespace.eq_ignore_ascii_case(name))
            .collect())
    }

    /// Takes datafiles offline without a checkpoint: they need media recovery afterwards.
    fn datafiles_offline(&self, files: &[DatafileInfo], for_drop: bool) -> Result<()> {
        let info = self.info()?;
        let open = self.is_open()?;
        for d in files {
            if open && self.is_system_file(d)? {
                return Err(ora(
                    1541,
                    "system tablespace cannot be brought offline; shut down if necessary",
                ));
            }
            if !for_drop && info.log_mode != "ARCHIVELOG" {
                return Err(ora(
                    1145,
                    "offline immediate disallowed unless media recovery enabled",
                ));
            }
        }
        let _lock = self.lock()?;
        let scn = if open {
            self.allocate_scn()?
        } else {
            self.current_scn()?
        };
        for d in files.iter().filter(|d| d.is_online()) {
            let ckpt = DatafileIo::open(&d.path, false)
                .and_then(|io| io.header())
                .map(|h| (h.checkpoint.scn, h.checkpoint.time))
                .unwrap_or((d.checkpoint_scn, d.checkpoint_time));
            self.connection().execute(
                r#"UPDATE cf_datafile SET "STATUS" = 'RECOVER', "OFFLINE_CHANGE#" = ?1
                   WHERE "FILE#" = ?2"#,
                params![scn.0 as i64, d.file_no],
            )?;
            self.set_file_state(d.file_no, true, Some(ckpt), false)?;
        }
        Ok(())
    }

    /// Brings datafiles online; every one must be usable first (nothing changes otherwise).
    fn datafiles_online(&self, files: &[DatafileInfo]) -> Result<()> {
        let offline: Vec<&DatafileInfo> = files.iter().filter(|d| !d.is_online()).collect();
        for d in &offline {
            if let Some(e) = self.recovery_error(d)? {
                return Err(e);
            }
        }
        if offline.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let scn = if self.is_open()? {
            self.allocate_scn()?
        } else {
            self.current_scn()?
        };
        let now = julian_of(oracle_now());
        for d in offline {
            let status = if self.is_system_file(d)? {
                "SYSTEM"
            } else {
                "ONLINE"
            };
            self.connection().execute(
                r#"UPDATE cf_datafile SET "STATUS" = ?1, "ONLINE_CHANGE#" = ?2, "ONLINE_TIME" = ?3
                   WHERE "FILE#" = ?4"#,
                params![status, scn.0 as i64, now, d.file_no],
            )?;
            self.connection().execute(
                "DELETE FROM sim_datafile_state WHERE file_no = ?1",
                [d.file_no],
            )?;
        }
        Ok(())
    }

    fn tablespace_offline(&self, name: &str, mode: OfflineMode) -> Result<()> {
        let files = self.tablespace_files(name)?;
        let upper = name.to_ascii_uppercase();
        let ts = self
            .tablespaces()?
            .into_iter()
            .find(|t| t.name == upper)
            .ok_or_else(|| ora(959, format!("tablespace '{name}' does not exist")))?;
        if ts.contents == "SYSTEM" {
            return Err(ora(
                1541,
                "system tablespace cannot be brought offline; shut down if necessary",
            ));
        }
        if ts.contents == "UNDO" {
            return Err(ora(30042, "Cannot offline the undo tablespace"));
        }
        self.require_open()?;
        if files.iter().all(|d| !d.is_online()) {
            return Err(ora(1539, format!("tablespace '{upper}' is not online")));
        }
        if mode == OfflineMode::Immediate {
            return self.datafiles_offline(&files, false);
        }
        let mut writable = Vec::new();
        let mut damaged = Vec::new();
        for d in files.iter().filter(|d| d.is_online()) {
            match DatafileIo::open(&d.path, true).and_then(|io| io.header().map(|_| ())) {
                Ok(()) => writable.push(d.clone()),
                Err(_) if mode == OfflineMode::Temporary => damaged.push(d.clone()),
                Err(_) => {
                    return Err(ora(
                        1116,
                        format!(
                            "error in opening database file {}\n{}\nORA-27041: unable to open file",
                            d.file_no,
                            datafile_line(d)
                        ),
                    ));
                }
            }
        }
        if !damaged.is_empty() {
            self.datafiles_offline(&damaged, false)?;
        }
        let _lock = self.lock()?;
        let scn = self.checkpoint_files(&writable)?;
        for d in &writable {
            self.connection().execute(
                r#"UPDATE cf_datafile SET "STATUS" = 'OFFLINE', "OFFLINE_CHANGE#" = ?1
                   WHERE "FILE#" = ?2"#,
                params![scn.0 as i64, d.file_no],
            )?;
            self.set_file_state(d.file_no, false, None, true)?;
        }
        Ok(())
    }

    /// Checkpoints some datafiles (their headers get a new checkpoint, logged in the redo as
    /// a full checkpoint logs them); the caller holds the home lock.
    fn checkpoint_files(&self, files: &[DatafileInfo]) -> Result<Scn> {
        let mut writers = super::redo::Writers::open_all(self)?;
        let scn = self.allocate_scn()?;
        let now = oracle_now();
        let mut tracker = super::bct::Tracker::load(self)?;
        let w = writers.pick(0)?;
        let thread = w.thread;
        for d in files {
            let io = DatafileIo::open(&d.path, true)?;
            let mut h = io.header()?;
            h.checkpoint = orca_oracle::Checkpoint {
                scn,
                time: now,
                thread,
                rba: w.rba(),
            };
            h.checkpoint_count = h.checkpoint_count.wrapping_add(1);
            let img = io.write_header(&h)?;
            w.append_record(
                self,
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
            if let Some(t) = tracker.as_mut() {
                t.record(d.file_no, 1, scn);
            }
            self.connection().execute(
                r#"UPDATE cf_datafile SET "CHECKPOINT_CHANGE#" = ?1, "CHECKPOINT_TIME" = ?2,
                       checkpoint_stamp = ?3 WHERE "FILE#" = ?4"#,
                params![scn.0 as i64, julian_of(now), now.0, d.file_no],
            )?;
        }
        writers.flush(self)?;
        if let Some(t) = tracker {
            t.save()?;
        }
        Ok(scn)
    }

    fn set_file_state(
        &self,
        file_no: u32,
        needs_recovery: bool,
        from: Option<(Scn, orca_oracle::OracleTime)>,
        offline_normal: bool,
    ) -> Result<()> {
        self.connection().execute(
            r#"INSERT INTO sim_datafile_state (file_no, needs_recovery, recover_scn, recover_time,
                   offline_normal) VALUES (?1, ?2, ?3, ?4, ?5)
               ON CONFLICT(file_no) DO UPDATE SET needs_recovery = ?2,
                   recover_scn = coalesce(?3, recover_scn),
                   recover_time = coalesce(?4, recover_time), offline_normal = ?5"#,
            params![
                file_no,
                i64::from(needs_recovery),
                from.map(|f| f.0.0 as i64),
                from.map(|f| julian_of(f.1)),
                i64::from(offline_normal)
            ],
        )?;
        Ok(())
    }

    /// Records that RMAN restored a datafile in place: it needs media recovery from the
    /// restored checkpoint.
    pub fn mark_restored(&self, file_no: u32) -> Result<()> {
        let d = self.datafile(file_no)?;
        let from = DatafileIo::open(&d.path, false)
            .and_then(|io| io.header())
            .map(|h| (h.checkpoint.scn, h.checkpoint.time))
            .ok();
        if d.status == "OFFLINE" {
            self.connection().execute(
                r#"UPDATE cf_datafile SET "STATUS" = 'RECOVER' WHERE "FILE#" = ?1"#,
                [file_no],
            )?;
        }
        self.set_file_state(file_no, true, from, false)
    }

    /// Records that media recovery brought these datafiles up to date: offline ones may
    /// come back online.
    pub(crate) fn mark_recovered(&self, files: &[u32]) -> Result<()> {
        for f in files {
            self.connection().execute(
                r#"UPDATE cf_datafile SET "STATUS" = 'OFFLINE' WHERE "FILE#" = ?1
                     AND "STATUS" = 'RECOVER'"#,
                [f],
            )?;
            self.connection().execute(
                "UPDATE sim_datafile_state SET needs_recovery = 0 WHERE file_no = ?1",
                [f],
            )?;
            self.connection().execute(
                "DELETE FROM sim_datafile_state WHERE file_no = ?1 AND offline_normal = 0",
                [f],
            )?;
        }
        Ok(())
    }

    /// Makes `path` (a datafile copy) the datafile FILE# `file_no` (`SWITCH`): the control
    /// file names it, and it needs media recovery if it is older than the control file says
    /// the datafile is.
    pub fn switch_datafile(&self, file_no: u32, path: &Path) -> Result<()> {
        let io = DatafileIo::open(path, false)?;
        let h = io.header()?;
        if u32::from(h.file_no) != file_no || h.dbid != self.info()?.dbid {
            return Err(ora(
                19625,
                format!("error identifying file {}", path.display()),
            ));
        }
        let before = self.datafile(file_no)?;
        self.connection().execute(
            r#"UPDATE cf_datafile SET "NAME" = ?1 WHERE "FILE#" = ?2"#,
            params![path.to_string_lossy(), file_no],
        )?;
        if h.checkpoint.scn < before.checkpoint_scn {
            self.mark_restored(file_no)?;
        }
        Ok(())
    }

    /// Fails with ORA-01113 if an online datafile needs media recovery (ALTER DATABASE OPEN).
    pub fn check_online_files_recovered(&self) -> Result<()> {
        for d in self.datafiles()?.iter().filter(|d| d.is_online()) {
            if let Some(e) = self.recovery_error(d)? {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Replaces the V$DATABASE_BLOCK_CORRUPTION rows of a file with what a validation found
    /// (block number and corruption type, any order).
    pub fn record_block_corruption(&self, file_no: u32, found: &[(u32, &str)]) -> Result<()> {
        let mut found = found.to_vec();
        found.sort();
        self.connection().execute(
            r#"DELETE FROM cf_database_block_corruption WHERE "FILE#" = ?1"#,
            [file_no],
        )?;
        let mut ranges: Vec<BlockCorruption> = Vec::new();
        for (b, kind) in found {
            match ranges.last_mut() {
                Some(r) if r.block + r.blocks == b && r.kind == kind => r.blocks += 1,
                _ => ranges.push(BlockCorruption {
                    file_no,
                    block: b,
                    blocks: 1,
                    kind: kind.to_string(),
                }),
            }
        }
        for r in ranges {
            self.connection().execute(
                r#"INSERT INTO cf_database_block_corruption VALUES (?1, ?2, ?3, 0, ?4, 0)"#,
                params![r.file_no, r.block, r.blocks, r.kind],
            )?;
        }
        Ok(())
    }

    /// V$DATABASE_BLOCK_CORRUPTION, by file and block.
    pub fn block_corruptions(&self) -> Result<Vec<BlockCorruption>> {
        let mut st = self.connection().prepare(
            r#"SELECT "FILE#", "BLOCK#", "BLOCKS", "CORRUPTION_TYPE"
               FROM cf_database_block_corruption ORDER BY "FILE#", "BLOCK#""#,
        )?;
        let rows = st.query_map([], |r| {
            Ok(BlockCorruption {
                file_no: r.get(0)?,
                block: r.get(1)?,
                blocks: r.get(2)?,
                kind: r.get(3)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(DbError::from)
    }

    /// Removes repaired blocks from V$DATABASE_BLOCK_CORRUPTION.
    pub fn clear_block_corruption(&self, file_no: u32, repaired: &[u32]) -> Result<()> {
        let left: Vec<(u32, String)> = self
            .block_corruptions()?
            .into_iter()
            .filter(|c| c.file_no == file_no)
            .flat_map(|c| (c.block..c.block + c.blocks).map(move |b| (b, c.kind.clone())))
            .filter(|(b, _)| !repaired.contains(b))
            .collect();
        let refs: Vec<(u32, &str)> = left.iter().map(|(b, k)| (*b, k.as_str())).collect();
        self.record_block_corruption(file_no, &refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_state_statements() {
        assert_eq!(
            parse_state_statement("alter database datafile 4 offline"),
            Some(StateStatement::DatafileOffline {
                file: FileRef::Number(4),
                for_drop: false
            })
        );
        assert_eq!(
            parse_state_statement("ALTER DATABASE DATAFILE '/u01/users01.dbf' ONLINE;"),
            Some(StateStatement::DatafileOnline(FileRef::Name(
                "/u01/users01.dbf".into()
            )))
        );
        assert_eq!(
            parse_state_statement("alter database datafile 5 offline for drop"),
            Some(StateStatement::DatafileOffline {
                file: FileRef::Number(5),
                for_drop: true
            })
        );
        assert_eq!(
            parse_state_statement("alter tablespace users offline immediate"),
            Some(StateStatement::TablespaceOffline {
                name: "USERS".into(),
                mode: OfflineMode::Immediate
            })
        );
        assert_eq!(
            parse_state_statement("alter tablespace users offline"),
            Some(StateStatement::TablespaceOffline {
                name: "USERS".into(),
                mode: OfflineMode::Normal
            })
        );
        assert_eq!(
            parse_state_statement("alter tablespace \"USERS\" online"),
            Some(StateStatement::TablespaceOnline("USERS".into()))
        );
        assert_eq!(parse_state_statement("alter system checkpoint"), None);
        assert_eq!(
            parse_state_statement("alter database datafile 4 resize 10m"),
            None
        );
        assert_eq!(parse_state_statement("alter database open"), None);
    }
}
