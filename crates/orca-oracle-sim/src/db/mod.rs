//! The simulated database: a home directory with datafiles, online and
//! archived redo logs in Oracle's on-disk formats, and a control file (an
//! SQLite database whose `v$` views answer SQL).
//!
//! # Home layout
//! ```text
//! <home>/control/control01.ctl        control file (SQLite, WAL mode)
//! <home>/oradata/<NAME>/system01.dbf  datafiles (block 0, header, blocks)
//! <home>/onlinelog/redo<GG>.log       online redo log groups (2 per thread)
//! <home>/arch/<T>_<S>_<RESETLOGS_ID>.arc  archived logs
//! <home>/dbs/spfile<NAME>.ora         server parameter file (text)
//! <home>/bct/change_tracking.ctf      block change tracking file (when enabled)
//! <home>/.oraclesim.lock              lock serialising redo and datafile changes
//! <home>/.oraclesim.instance          instance started but not mounted, or shut down
//! ```
//!
//! # API for the rman stand-in
//! - Open: [`Database::open`] / [`Database::open_env`] (`ORACLESIM_HOME`).
//!   One `Database` per thread (it owns an SQLite connection).
//! - Datafiles: [`Database::datafiles`], [`Database::open_datafile`] →
//!   [`DatafileIo`] (`read_block`, `write_block`, `header`, `resize`,
//!   `update_checkpoint`). Null (never formatted) blocks are all zero:
//!   [`orca_oracle::block::is_null_block`]; [`DatafileInfo::hwm_blocks`] is
//!   the first never-formatted block. A block's SCN is
//!   `BlockHeader::parse(buf)?.scn`. Read block 1 (the header) before the
//!   other blocks of a hot backup: its checkpoint is where recovery starts.
//! - Block change tracking: [`Database::changed_blocks_since`].
//! - SCN and time: [`Database::current_scn`], [`Database::allocate_scn`],
//!   [`oracle_now`].
//! - Logs: [`Database::switch_logfile`] (`ALTER SYSTEM ARCHIVE LOG CURRENT`),
//!   [`Database::archived_logs`], [`Database::mark_archived_log_deleted`],
//!   [`Database::register_archived_log`].
//! - Recovery: [`Database::recovery_plan`], [`Database::recover`].
//! - Control-file records: see `records.rs` ([`BackupSetRecord`],
//!   [`BackupPieceRecord`], ...), configuration, counters, snapshots.
//! - RAC: [`Database::instances`], [`Database::set_instance_state`].
//!
//! Mutating calls that touch redo or datafiles take an exclusive lock on the
//! home, so several processes (workload, rman, sqlplus) can share one home.

mod bct;
pub mod blockgen;
mod create;
mod dictionary;
mod incarnation;
mod instance;
mod io;
mod records;
mod recover;
mod redo;
pub mod schema;
pub mod sqlfn;
mod state;
mod wallet;
mod workload;

pub use bct::BctStatus;
pub use create::{CreateOptions, Fill};
pub use incarnation::Incarnation;
pub use instance::{InstanceStatus, Parameters, create_empty, parameter_file, status_of};
pub use io::DatafileIo;
pub use records::*;
pub use recover::{
    MissingLog, PlannedLog, RecoverOptions, RecoverUntil, RecoveryPlan, RecoveryReport,
};
pub use state::{
    BlockCorruption, FileRef, OfflineMode, StateStatement, corruption_kind, parse_state_statement,
};
pub use wallet::{close_wallet, open_wallet, wallet_key};
pub use workload::{WorkloadOptions, WorkloadReport};

use orca_oracle::{BlockError, OracleTime, Scn};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Environment variable naming the database home the shims act on.
pub const HOME_ENV: &str = "ORACLESIM_HOME";
/// Control file path inside a home.
pub const CONTROLFILE_REL: &str = "control/control01.ctl";

/// Errors of the simulated database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The control file (SQLite) failed.
    #[error("control file: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A block or header is malformed.
    #[error("{0}")]
    Block(#[from] BlockError),
    /// A bad argument; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An Oracle error, printed as Oracle prints it.
    #[error("ORA-{code:05}: {message}")]
    Oracle {
        /// ORA number.
        code: u32,
        /// Message text.
        message: String,
    },
    /// Media recovery needs archived logs that are not on disk.
    #[error("media recovery needs archived logs that are not available: {}",
        .0.iter().map(|m| format!("thread {} sequence {}", m.thread, m.sequence)).collect::<Vec<_>>().join(", "))]
    MissingLogs(Vec<MissingLog>),
}

pub(crate) fn io_err(context: impl Into<String>, source: std::io::Error) -> DbError {
    DbError::Io {
        context: context.into(),
        source,
    }
}

pub(crate) fn ora(code: u32, message: impl Into<String>) -> DbError {
    DbError::Oracle {
        code,
        message: message.into(),
    }
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, DbError>;

/// The current Oracle time (local wall clock).
pub fn oracle_now() -> OracleTime {
    OracleTime::from_datetime(sqlfn::now_local()).unwrap_or_default()
}

/// Julian day (control-file DATE) of an Oracle time.
pub fn julian_of(t: OracleTime) -> f64 {
    sqlfn::julian_of_stamp(t)
}

/// Oracle time of a control-file DATE (Julian day).
pub fn stamp_of_julian(j: f64) -> OracleTime {
    sqlfn::from_julian(j)
        .and_then(|d| OracleTime::from_datetime(d).ok())
        .unwrap_or_default()
}

/// Database open mode (V$DATABASE.OPEN_MODE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpenMode {
    /// Mounted, not open.
    Mounted,
    /// Open read write.
    ReadWrite,
    /// Open read only.
    ReadOnly,
}

impl OpenMode {
    /// As shown in V$DATABASE.OPEN_MODE.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenMode::Mounted => "MOUNTED",
            OpenMode::ReadWrite => "READ WRITE",
            OpenMode::ReadOnly => "READ ONLY",
        }
    }

    fn parse(s: &str) -> OpenMode {
        match s {
            "MOUNTED" => OpenMode::Mounted,
            "READ ONLY" => OpenMode::ReadOnly,
            _ => OpenMode::ReadWrite,
        }
    }
}

/// Database-wide facts (V$DATABASE and friends).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    /// DBID.
    pub dbid: u32,
    /// DB_NAME.
    pub name: String,
    /// Creation time.
    pub created: OracleTime,
    /// Datafile block size.
    pub block_size: usize,
    /// Redo block size.
    pub redo_block_size: usize,
    /// `ARCHIVELOG` or `NOARCHIVELOG`.
    pub log_mode: String,
    /// Open mode.
    pub open_mode: OpenMode,
    /// CONTROLFILE_TYPE (`CURRENT`, `BACKUP`).
    pub controlfile_type: String,
    /// RESETLOGS_CHANGE# of the current incarnation.
    pub resetlogs_scn: Scn,
    /// RESETLOGS_TIME (also the RESETLOGS_ID).
    pub resetlogs_time: OracleTime,
    /// RESETLOGS_ID (= resetlogs time as Oracle time).
    pub resetlogs_id: u32,
    /// ACTIVATION#.
    pub activation_id: u32,
    /// Database checkpoint SCN.
    pub checkpoint_scn: Scn,
    /// Number of redo threads.
    pub threads: u16,
}

/// One datafile (V$DATAFILE plus what the simulator tracks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatafileInfo {
    /// FILE#.
    pub file_no: u32,
    /// RFILE#.
    pub rfile_no: u32,
    /// NAME.
    pub path: PathBuf,
    /// Tablespace name.
    pub tablespace: String,
    /// TS#.
    pub ts_no: u32,
    /// BLOCK_SIZE.
    pub block_size: usize,
    /// BLOCKS (size in blocks, block 0 excluded).
    pub blocks: u32,
    /// CREATION_CHANGE#.
    pub creation_scn: Scn,
    /// CREATION_TIME.
    pub creation_time: OracleTime,
    /// CHECKPOINT_CHANGE# (control file's view).
    pub checkpoint_scn: Scn,
    /// CHECKPOINT_TIME.
    pub checkpoint_time: OracleTime,
    /// First never-formatted block: blocks `hwm_blocks..=blocks` are null.
    pub hwm_blocks: u32,
    /// STATUS (`SYSTEM`, `ONLINE`, ...).
    pub status: String,
}

/// A tablespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablespaceInfo {
    /// TS#.
    pub ts_no: u32,
    /// NAME.
    pub name: String,
    /// `SYSTEM`, `SYSAUX`, `UNDO` or `USERS`.
    pub contents: String,
}

/// An instance of the (RAC) database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// INST_ID = INSTANCE_NUMBER.
    pub number: u32,
    /// INSTANCE_NAME (`orcl1`).
    pub name: String,
    /// THREAD#.
    pub thread: u16,
    /// STATUS: `OPEN`, `MOUNTED` or `DOWN`.
    pub status: String,
    /// HOST_NAME.
    pub host: String,
}

impl InstanceInfo {
    /// Whether the instance is running (can run channels).
    pub fn is_up(&self) -> bool {
        self.status != "DOWN"
    }
}

/// An archived log row (V$ARCHIVED_LOG).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedLog {
    /// RECID.
    pub recid: i64,
    /// STAMP.
    pub stamp: OracleTime,
    /// NAME (None once deleted).
    pub name: Option<PathBuf>,
    /// THREAD#.
    pub thread: u16,
    /// SEQUENCE#.
    pub sequence: u32,
    /// RESETLOGS_CHANGE#.
    pub resetlogs_scn: Scn,
    /// RESETLOGS_ID.
    pub resetlogs_id: u32,
    /// FIRST_CHANGE#.
    pub first_scn: Scn,
    /// FIRST_TIME.
    pub first_time: OracleTime,
    /// NEXT_CHANGE#.
    pub next_scn: Scn,
    /// NEXT_TIME.
    pub next_time: OracleTime,
    /// BLOCKS (redo blocks after block 0).
    pub blocks: u32,
    /// BLOCK_SIZE.
    pub block_size: u32,
    /// STATUS (`A`, `D`, `X`, `U`).
    pub status: String,
    /// DELETED.
    pub deleted: bool,
    /// BACKUP_COUNT.
    pub backup_count: u32,
    /// CREATOR (`ARCH`, `RMAN`...).
    pub creator: String,
}

/// A held lock on the home (released on drop).
#[derive(Debug)]
pub struct HomeLock {
    _file: File,
}

/// An open database home.
#[derive(Debug)]
pub struct Database {
    home: PathBuf,
    conn: Connection,
    nls: sqlfn::Nls,
    /// Set for the placeholder of an instance that is not mounted.
    unmounted: Option<instance::Unmounted>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    Ok(conn)
}

impl Database {
    /// Creates a new database home (see [`CreateOptions`]).
    pub fn create(opts: &CreateOptions) -> Result<Database> {
        create::create(opts)
    }

    /// Opens an existing home.
    pub fn open(home: impl AsRef<Path>) -> Result<Database> {
        let home = home.as_ref().to_path_buf();
        let cf = home.join(CONTROLFILE_REL);
        if !cf.is_file() {
            return Err(DbError::NotFound(format!(
                "no database at {}: {} does not exist (create one with `oraclesim create --home {}`)",
                home.display(),
                cf.display(),
                home.display()
            )));
        }
        let conn = open_connection(&cf)?;
        let db = Database {
            home,
            conn,
            nls: Arc::new(Mutex::new(sqlfn::NlsSettings::default())),
            unmounted: None,
        };
        db.register_functions()?;
        let version: i64 = db
            .conn
            .query_row("SELECT schema_version FROM cf_sim", [], |r| r.get(0))
            .map_err(|e| {
                DbError::Invalid(format!(
                    "{} is not a simulator control file: {e}",
                    cf.display()
                ))
            })?;
        if version != schema::SCHEMA_VERSION {
            return Err(DbError::Invalid(format!(
                "control file schema version {version}, this simulator reads version {}",
                schema::SCHEMA_VERSION
            )));
        }
        state::ensure_schema(&db.conn)?;
        dictionary::ensure_schema(&db.conn)?;
        Ok(db)
    }

    /// Opens the home named by `ORACLESIM_HOME`.
    pub fn open_env() -> Result<Database> {
        let home = std::env::var_os(HOME_ENV).ok_or_else(|| {
            DbError::Invalid(format!(
                "{HOME_ENV} is not set: point it at a database home made by `oraclesim create`"
            ))
        })?;
        Database::open(PathBuf::from(home))
    }

    pub(crate) fn from_parts(home: PathBuf, conn: Connection) -> Result<Database> {
        let db = Database {
            home,
            conn,
            nls: Arc::new(Mutex::new(sqlfn::NlsSettings::default())),
            unmounted: None,
        };
        db.register_functions()?;
        Ok(db)
    }

    fn register_functions(&self) -> Result<()> {
        let local = self.local_instance_number().unwrap_or(1);
        sqlfn::register(&self.conn, self.nls.clone(), i64::from(local))?;
        Ok(())
    }

    /// The instance this process is "connected to": the one whose
    /// INSTANCE_NAME equals `ORACLE_SID` (case-insensitive), else the lowest.
    fn local_instance_number(&self) -> Result<u32> {
        let sid = std::env::var("ORACLE_SID").unwrap_or_default();
        let by_sid: Option<u32> = self
            .conn
            .query_row(
                r#"SELECT "INSTANCE_NUMBER" FROM cf_instance WHERE lower("INSTANCE_NAME") = lower(?1)"#,
                [sid],
                |r| r.get(0),
            )
            .optional()
            .unwrap_or(None);
        if let Some(n) = by_sid {
            return Ok(n);
        }
        Ok(self
            .conn
            .query_row(
                r#"SELECT min("INSTANCE_NUMBER") FROM cf_instance"#,
                [],
                |r| r.get::<_, Option<u32>>(0),
            )
            .optional()?
            .flatten()
            .unwrap_or(1))
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Path of the control file.
    pub fn controlfile_path(&self) -> PathBuf {
        self.home.join(CONTROLFILE_REL)
    }

    /// Raw access to the control file (with the Oracle SQL functions
    /// registered). Prefer the typed helpers for writes.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The session's NLS settings (shared with `TO_CHAR`/`TO_DATE`).
    pub fn nls(&self) -> sqlfn::Nls {
        self.nls.clone()
    }

    /// Takes the exclusive home lock (blocks until free).
    pub fn lock(&self) -> Result<HomeLock> {
        let p = self.home.join(".oraclesim.lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| io_err(format!("cannot open lock file {}", p.display()), e))?;
        f.lock()
            .map_err(|e| io_err(format!("cannot lock {}", p.display()), e))?;
        Ok(HomeLock { _file: f })
    }

    /// Database-wide facts.
    pub fn info(&self) -> Result<DatabaseInfo> {
        let threads: u16 = self
            .conn
            .query_row("SELECT count(*) FROM cf_thread", [], |r| r.get(0))?;
        let (redo_bs,): (i64,) =
            self.conn
                .query_row("SELECT redo_block_size FROM cf_sim", [], |r| {
                    Ok((r.get(0)?,))
                })?;
        self.conn
            .query_row(
                r#"SELECT "DBID", "NAME", "CREATED", block_size, "LOG_MODE", "OPEN_MODE",
                          "CONTROLFILE_TYPE", "RESETLOGS_CHANGE#", resetlogs_id, "ACTIVATION#",
                          "CHECKPOINT_CHANGE#"
                   FROM cf_database"#,
                [],
                |r| {
                    let rid: u32 = r.get(8)?;
                    Ok(DatabaseInfo {
                        dbid: r.get(0)?,
                        name: r.get(1)?,
                        created: stamp_of_julian(r.get(2)?),
                        block_size: r.get::<_, i64>(3)? as usize,
                        redo_block_size: redo_bs as usize,
                        log_mode: r.get(4)?,
                        open_mode: OpenMode::parse(&r.get::<_, String>(5)?),
                        controlfile_type: r.get(6)?,
                        resetlogs_scn: Scn(r.get::<_, i64>(7)? as u64),
                        resetlogs_time: OracleTime(rid),
                        resetlogs_id: rid,
                        activation_id: r.get(9)?,
                        checkpoint_scn: Scn(r.get::<_, i64>(10)? as u64),
                        threads,
                    })
                },
            )
            .map_err(DbError::from)
    }

    /// All datafiles, by FILE#.
    pub fn datafiles(&self) -> Result<Vec<DatafileInfo>> {
        let mut st = self.conn.prepare(
            r#"SELECT d."FILE#", d."RFILE#", d."NAME", t."NAME", d."TS#", d."BLOCK_SIZE",
                      d."BLOCKS", d."CREATION_CHANGE#", d.creation_stamp, d."CHECKPOINT_CHANGE#",
                      d.checkpoint_stamp, d.hwm_blocks, d."STATUS"
               FROM cf_datafile d JOIN cf_tablespace t ON t."TS#" = d."TS#"
               ORDER BY d."FILE#""#,
        )?;
        let rows = st.query_map([], |r| {
            Ok(DatafileInfo {
                file_no: r.get(0)?,
                rfile_no: r.get(1)?,
                path: PathBuf::from(r.get::<_, String>(2)?),
                tablespace: r.get(3)?,
                ts_no: r.get(4)?,
                block_size: r.get::<_, i64>(5)? as usize,
                blocks: r.get(6)?,
                creation_scn: Scn(r.get::<_, i64>(7)? as u64),
                creation_time: OracleTime(r.get(8)?),
                checkpoint_scn: Scn(r.get::<_, i64>(9)? as u64),
                checkpoint_time: OracleTime(r.get(10)?),
                hwm_blocks: r.get(11)?,
                status: r.get(12)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(DbError::from)
    }

    /// One datafile by FILE#.
    pub fn datafile(&self, file_no: u32) -> Result<DatafileInfo> {
        self.datafiles()?
            .into_iter()
            .find(|d| d.file_no == file_no)
            .ok_or_else(|| {
                ora(
                    1516,
                    format!("nonexistent log file, data file, or temporary file \"{file_no}\""),
                )
            })
    }

    /// Opens a datafile of this database for block I/O.
    pub fn open_datafile(&self, file_no: u32, writable: bool) -> Result<DatafileIo> {
        let d = self.datafile(file_no)?;
        DatafileIo::open(&d.path, writable)
    }

    /// Tablespaces.
    pub fn tablespaces(&self) -> Result<Vec<TablespaceInfo>> {
        let mut st = self
            .conn
            .prepare(r#"SELECT "TS#", "NAME", contents FROM cf_tablespace ORDER BY "TS#""#)?;
        let rows = st.query_map([], |r| {
            Ok(TablespaceInfo {
                ts_no: r.get(0)?,
                name: r.get(1)?,
                contents: r.get(2)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(DbError::from)
    }

    /// The current SCN (the last one handed out).
    pub fn current_scn(&self) -> Result<Scn> {
        let v: i64 = self
            .conn
            .query_row("SELECT current_scn FROM cf_sim", [], |r| r.get(0))?;
        Ok(Scn(v as u64))
    }

    /// Hands out the next SCN.
    pub fn allocate_scn(&self) -> Result<Scn> {
        self.allocate_scns(1)
    }

    /// Hands out `n` consecutive SCNs; returns the first.
    pub fn allocate_scns(&self, n: u64) -> Result<Scn> {
        let n = n.max(1);
        let last: i64 = self.conn.query_row(
            "UPDATE cf_sim SET current_scn = current_scn + ?1 RETURNING current_scn",
            [n as i64],
            |r| r.get(0),
        )?;
        let first = last as u64 - n + 1;
        if Scn(last as u64) > Scn::MAX {
            return Err(DbError::Invalid("SCN space exhausted".into()));
        }
        Ok(Scn(first))
    }

    /// Raises the current SCN to at least `scn` (never lowers it).
    pub fn advance_scn_to(&self, scn: Scn) -> Result<()> {
        self.conn.execute(
            "UPDATE cf_sim SET current_scn = max(current_scn, ?1)",
            [scn.0 as i64],
        )?;
        Ok(())
    }

    /// Instances (one per thread), including those that are down.
    pub fn instances(&self) -> Result<Vec<InstanceInfo>> {
        let mut st = self.conn.prepare(
            r#"SELECT "INSTANCE_NUMBER", "INSTANCE_NAME", "THREAD#", "STATUS", "HOST_NAME"
               FROM cf_instance ORDER BY "INSTANCE_NUMBER""#,
        )?;
        let rows = st.query_map([], |r| {
            Ok(InstanceInfo {
                number: r.get(0)?,
                name: r.get(1)?,
                thread: r.get(2)?,
                status: r.get(3)?,
                host: r.get(4)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(DbError::from)
    }

    /// The instance this process is connected to (see `ORACLE_SID`).
    pub fn local_instance(&self) -> Result<InstanceInfo> {
        let n = self.local_instance_number()?;
        self.instances()?
            .into_iter()
            .find(|i| i.number == n)
            .ok_or_else(|| DbError::NotFound(format!("instance {n} does not exist")))
    }

    /// Brings the instance of `thread` up (`OPEN`, thread opened) or down
    /// (`DOWN`, thread closed with a close record in its redo).
    pub fn set_instance_state(&self, thread: u16, up: bool) -> Result<()> {
        let _lock = self.lock()?;
        let exists: Option<String> = self
            .conn
            .query_row(
                r#"SELECT "STATUS" FROM cf_instance WHERE "THREAD#" = ?1"#,
                [thread],
                |r| r.get(0),
            )
            .optional()?;
        let Some(status) = exists else {
            return Err(DbError::NotFound(format!(
                "thread {thread} does not exist (the database has {} threads)",
                self.info()?.threads
            )));
        };
        let now = oracle_now();
        if up {
            if status != "DOWN" {
                return Ok(());
            }
            let open_mode = self.info()?.open_mode;
            let inst_status = if open_mode == OpenMode::Mounted {
                "MOUNTED"
            } else {
                "OPEN"
            };
            self.conn.execute(
                r#"UPDATE cf_instance SET "STATUS" = ?1, "STARTUP_TIME" = ?2 WHERE "THREAD#" = ?3"#,
                params![inst_status, julian_of(now), thread],
            )?;
            self.conn.execute(
                r#"UPDATE cf_thread SET "STATUS" = 'OPEN', "OPEN_TIME" = ?1 WHERE "THREAD#" = ?2"#,
                params![julian_of(now), thread],
            )?;
        } else {
            if status == "DOWN" {
                return Ok(());
            }
            let scn = self.allocate_scn()?;
            let mut w = redo::LogWriter::open(self, thread)?;
            w.append_record(
                self,
                &orca_oracle::RedoRecord {
                    kind: orca_oracle::RecordKind::ThreadClose,
                    thread,
                    scn,
                    time: now,
                    file_no: 0,
                    block_no: 0,
                    payload: Vec::new(),
                },
            )?;
            w.flush(self)?;
            self.conn.execute(
                r#"UPDATE cf_instance SET "STATUS" = 'DOWN' WHERE "THREAD#" = ?1"#,
                [thread],
            )?;
            self.conn.execute(
                r#"UPDATE cf_thread SET "STATUS" = 'CLOSED', closed_change = ?1, closed_stamp = ?2
                   WHERE "THREAD#" = ?3"#,
                params![scn.0 as i64, now.0, thread],
            )?;
        }
        Ok(())
    }

    /// Sets the open mode (`STARTUP MOUNT`, `ALTER DATABASE OPEN`, ...).
    /// Instances that are up follow (`MOUNTED` / `OPEN`).
    pub fn set_open_mode(&self, mode: OpenMode) -> Result<()> {
        self.conn.execute(
            r#"UPDATE cf_database SET "OPEN_MODE" = ?1"#,
            [mode.as_str()],
        )?;
        let inst = if mode == OpenMode::Mounted {
            "MOUNTED"
        } else {
            "OPEN"
        };
        self.conn.execute(
            r#"UPDATE cf_instance SET "STATUS" = ?1 WHERE "STATUS" <> 'DOWN'"#,
            [inst],
        )?;
        Ok(())
    }

    /// Checks that the database is open read write (for changes).
    pub fn require_open(&self) -> Result<()> {
        match self.instance_status()? {
            InstanceStatus::Idle => return Err(ora(1034, "ORACLE not available")),
            InstanceStatus::Started => return Err(ora(1507, "database not mounted")),
            InstanceStatus::Mounted | InstanceStatus::Open => {}
        }
        let local = self.local_instance()?;
        if !local.is_up() {
            return Err(ora(1034, "ORACLE not available"));
        }
        if self.info()?.open_mode != OpenMode::ReadWrite {
            return Err(ora(1109, "database not open"));
        }
        Ok(())
    }

    /// Takes a checkpoint (`ALTER SYSTEM CHECKPOINT`): every datafile header
    /// gets a new checkpoint SCN; the headers are logged in the redo.
    pub fn checkpoint(&self) -> Result<Scn> {
        self.require_open()?;
        let _lock = self.lock()?;
        let mut writers = redo::Writers::open_all(self)?;
        let scn = redo::checkpoint(self, &mut writers)?;
        writers.flush(self)?;
        Ok(scn)
    }

    /// `ALTER SYSTEM ARCHIVE LOG CURRENT`: checkpoint, then switch and
    /// archive the current log of every open thread (and of closed threads
    /// whose current log holds redo). Returns the new archived logs.
    pub fn switch_logfile(&self) -> Result<Vec<ArchivedLog>> {
        let info = self.info()?;
        if info.log_mode != "ARCHIVELOG" {
            return Err(ora(
                258,
                "manual archiving in NOARCHIVELOG mode must identify log",
            ));
        }
        self.require_open()?;
        let _lock = self.lock()?;
        let mut writers = redo::Writers::open_all(self)?;
        redo::checkpoint(self, &mut writers)?;
        redo::switch_all(self, &mut writers)
    }

    /// Archived log rows, in RECID order.
    pub fn archived_logs(&self) -> Result<Vec<ArchivedLog>> {
        redo::archived_logs(self, None)
    }

    /// One archived log row.
    pub fn archived_log(&self, recid: i64) -> Result<ArchivedLog> {
        redo::archived_logs(self, Some(recid))?
            .pop()
            .ok_or_else(|| DbError::NotFound(format!("no archived log with RECID {recid}")))
    }

    /// Records that an archived log file was deleted by RMAN (`DELETE
    /// INPUT`, `DELETE ARCHIVELOG`): NAME NULL, DELETED YES, STATUS D. The
    /// file itself is the caller's to remove.
    pub fn mark_archived_log_deleted(&self, recid: i64) -> Result<()> {
        let n = self.conn.execute(
            r#"UPDATE cf_archived_log SET "NAME" = NULL, "DELETED" = 'YES', "STATUS" = 'D'
               WHERE "RECID" = ?1"#,
            [recid],
        )?;
        if n == 0 {
            return Err(DbError::NotFound(format!(
                "no archived log with RECID {recid}"
            )));
        }
        Ok(())
    }

    /// Sets the STATUS of an archived log row (`A`, `X` after a failed
    /// crosscheck, `U`).
    pub fn set_archived_log_status(&self, recid: i64, status: &str) -> Result<()> {
        if !["A", "X", "U", "D"].contains(&status) {
            return Err(DbError::Invalid(format!(
                "archived log status {status:?}: expected A, X, U or D"
            )));
        }
        if status == "D" {
            return self.mark_archived_log_deleted(recid);
        }
        self.conn.execute(
            r#"UPDATE cf_archived_log SET "STATUS" = ?1 WHERE "RECID" = ?2"#,
            params![status, recid],
        )?;
        Ok(())
    }

    /// Adds one to BACKUP_COUNT of an archived log row.
    pub fn increment_archived_log_backup_count(&self, recid: i64) -> Result<()> {
        self.conn.execute(
            r#"UPDATE cf_archived_log SET "BACKUP_COUNT" = min(15, "BACKUP_COUNT" + 1)
               WHERE "RECID" = ?1"#,
            [recid],
        )?;
        Ok(())
    }

    /// Registers an archived log file that RMAN restored (or a DBA
    /// cataloged): reads its header and inserts a V$ARCHIVED_LOG row
    /// (CREATOR/REGISTRAR = `creator`, e.g. `RMAN`).
    pub fn register_archived_log(&self, path: &Path, creator: &str) -> Result<ArchivedLog> {
        redo::register_archived_log(self, path, creator)
    }

    /// Path an archived log of (thread, sequence) gets in this home.
    pub fn archived_log_path(&self, thread: u16, sequence: u32) -> Result<PathBuf> {
        let rid = self.info()?.resetlogs_id;
        Ok(self
            .home
            .join("arch")
            .join(format!("{thread}_{sequence}_{rid}.arc")))
    }

    /// Changes the database (see [`WorkloadOptions`]).
    pub fn workload(&self, opts: &WorkloadOptions) -> Result<WorkloadReport> {
        workload::run(self, opts)
    }

    /// Works out which logs a recovery needs and which are missing.
    pub fn recovery_plan(&self, opts: &RecoverOptions) -> Result<RecoveryPlan> {
        recover::plan(self, opts)
    }

    /// Media recovery: applies archived and online redo to the datafiles
    /// (restored ones included) up to the target. Fails with
    /// [`DbError::MissingLogs`] before changing anything if logs are missing.
    pub fn recover(&self, opts: &RecoverOptions) -> Result<RecoveryReport> {
        let report = recover::recover(self, opts)?;
        let in_place: Vec<u32> = match &opts.files {
            Some(f) => f.clone(),
            None => self.datafiles()?.iter().map(|d| d.file_no).collect(),
        };
        let in_place: Vec<u32> = in_place
            .into_iter()
            .filter(|f| !opts.paths.contains_key(f))
            .collect();
        self.mark_recovered(&in_place)?;
        Ok(report)
    }

    /// Enables block change tracking (`ALTER DATABASE ENABLE BLOCK CHANGE
    /// TRACKING [USING FILE 'path']`).
    pub fn enable_block_change_tracking(&self, file: Option<&Path>) -> Result<()> {
        let _lock = self.lock()?;
        bct::enable(self, file)
    }

    /// Disables block change tracking and deletes the tracking file.
    pub fn disable_block_change_tracking(&self) -> Result<()> {
        let _lock = self.lock()?;
        bct::disable(self)
    }

    /// Block change tracking status (V$BLOCK_CHANGE_TRACKING).
    pub fn block_change_tracking(&self) -> Result<BctStatus> {
        bct::status(self)
    }

    /// Blocks of `file_no` changed after `scn`, from the change tracking
    /// file, in block order. `None` when tracking is disabled or started
    /// after `scn` (then every block must be read, as Oracle does).
    pub fn changed_blocks_since(&self, file_no: u32, scn: Scn) -> Result<Option<Vec<u32>>> {
        bct::changed_since(self, file_no, scn)
    }

    /// The spfile path (`dbs/spfile<NAME>.ora`).
    pub fn spfile_path(&self) -> Result<PathBuf> {
        Ok(self
            .home
            .join("dbs")
            .join(format!("spfile{}.ora", self.info()?.name)))
    }

    /// The spfile content.
    pub fn spfile_bytes(&self) -> Result<Vec<u8>> {
        let p = self.spfile_path()?;
        std::fs::read(&p).map_err(|e| io_err(format!("cannot read {}", p.display()), e))
    }

    /// Replaces the spfile (`RESTORE SPFILE`).
    pub fn restore_spfile(&self, bytes: &[u8]) -> Result<()> {
        let p = self.spfile_path()?;
        write_atomic(&p, bytes)
    }

    /// A consistent copy of the control file (`BACKUP CURRENT CONTROLFILE`,
    /// autobackup).
    pub fn controlfile_bytes(&self) -> Result<Vec<u8>> {
        let tmp = self.home.join(format!(
            "control/.snapshot-{}-{}.ctl",
            std::process::id(),
            oracle_now().0
        ));
        let _ = std::fs::remove_file(&tmp);
        self.conn
            .execute("VACUUM INTO ?1", [tmp.to_string_lossy().as_ref()])?;
        let bytes =
            std::fs::read(&tmp).map_err(|e| io_err(format!("cannot read {}", tmp.display()), e));
        let _ = std::fs::remove_file(&tmp);
        bytes
    }

    /// Writes a control file from a backup into `home` (`RESTORE
    /// CONTROLFILE`). The restored control file says CONTROLFILE_TYPE
    /// `BACKUP`, OPEN_MODE `MOUNTED` for when it is mounted, and OPEN_RESETLOGS
    /// `REQUIRED`. Close every `Database` on this home first; open it again
    /// afterwards.
    pub fn restore_controlfile(home: &Path, bytes: &[u8]) -> Result<()> {
        let cf = home.join(CONTROLFILE_REL);
        if bytes.len() < 100 || &bytes[..16] != b"SQLite format 3\0" {
            return Err(DbError::Invalid(
                "the data is not a simulator control file backup".into(),
            ));
        }
        for suffix in ["-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", cf.display()));
            let _ = std::fs::remove_file(p);
        }
        write_atomic(&cf, bytes)?;
        let conn = open_connection(&cf)?;
        conn.execute(
            r#"UPDATE cf_database SET "CONTROLFILE_TYPE" = 'BACKUP', "OPEN_MODE" = 'MOUNTED',
                   "OPEN_RESETLOGS" = 'REQUIRED'"#,
            [],
        )?;
        conn.execute(
            r#"UPDATE cf_instance SET "STATUS" = 'MOUNTED' WHERE "STATUS" <> 'DOWN'"#,
            [],
        )?;
        Ok(())
    }

    /// Increments CONTROLFILE_SEQUENCE# and returns the new value.
    pub(crate) fn bump_cf_seq(&self) -> Result<u32> {
        let v: i64 = self.conn.query_row(
            "UPDATE cf_sim SET controlfile_seq = controlfile_seq + 1 RETURNING controlfile_seq",
            [],
            |r| r.get(0),
        )?;
        Ok(v as u32)
    }
}

/// Writes a file through a temporary name and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| io_err(format!("cannot create {}", dir.display()), e))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp{}", path.display(), std::process::id()));
    std::fs::write(&tmp, bytes)
        .map_err(|e| io_err(format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| io_err(format!("cannot rename to {}", path.display()), e))
}
