//! The instance of a home and its states: shut down (idle), started (`NOMOUNT`), mounted,
//! open. A mounted or open instance is described by the control file (`OPEN_MODE`); a
//! started or shut-down one by `<home>/.oraclesim.instance`, because without a mounted
//! control file there is nowhere else to keep it (the simulator has no long-running
//! instance process). A home without a control file and without that file is idle.
//!
//! While not mounted, a [`Database`] is a placeholder: an in-memory control file holding
//! only what an unmounted instance knows (its parameters, `V$INSTANCE`), so the `rman` and
//! `sqlplus` stand-ins can keep one `Database` through every state.

use super::create::validate_name;
use super::{
    CONTROLFILE_REL, Database, DbError, OpenMode, Result, io_err, julian_of, ora, oracle_now,
    schema, write_atomic,
};
use orca_oracle::Scn;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file recording an instance that is started but not mounted, or shut down.
pub const INSTANCE_STATE_REL: &str = ".oraclesim.instance";

/// V$INSTANCE.STATUS, plus the state without an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceStatus {
    /// No instance (shut down, never started, or lost with its control file).
    Idle,
    /// `STARTUP NOMOUNT`: parameters read, no control file open.
    Started,
    /// Control file open, datafiles closed.
    Mounted,
    /// Open read write or read only.
    Open,
}

impl InstanceStatus {
    /// As V$INSTANCE.STATUS shows it (`IDLE` has no row there).
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Idle => "IDLE",
            InstanceStatus::Started => "STARTED",
            InstanceStatus::Mounted => "MOUNTED",
            InstanceStatus::Open => "OPEN",
        }
    }
}

/// What an unmounted placeholder knows.
#[derive(Clone, Debug)]
pub(crate) struct Unmounted {
    status: InstanceStatus,
    params: Parameters,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    status: InstanceStatus,
    parameter_file: Option<PathBuf>,
}

/// Initialization parameters (an spfile or a pfile: `[scope.]name=value` lines).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parameters {
    /// The file they were read from (`None` for the instance RMAN starts without one).
    pub file: Option<PathBuf>,
    /// (name, value) in file order, names lower case, values unquoted.
    pub values: Vec<(String, String)>,
}

impl Parameters {
    /// Parses parameter file text. Lines of other instances (`orcl2.thread=2`) are kept;
    /// the first value of a name wins in [`Parameters::get`].
    pub fn parse(text: &str) -> Parameters {
        let mut values = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let name = key.rsplit_once('.').map_or(key, |(_, n)| n);
            let value = value.trim();
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(value);
            values.push((name.to_ascii_lowercase(), value.to_string()));
        }
        Parameters { file: None, values }
    }

    /// Reads a parameter file.
    pub fn read(path: &Path) -> Result<Parameters> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io_err(format!("cannot read parameter file {}", path.display()), e))?;
        Ok(Parameters {
            file: Some(path.to_path_buf()),
            ..Parameters::parse(&text)
        })
    }

    /// The parameters RMAN starts an instance with when it finds no parameter file, so that
    /// an spfile can be restored (`DB_NAME=DUMMY`).
    pub fn dummy() -> Parameters {
        Parameters {
            file: None,
            values: vec![("db_name".into(), "DUMMY".into())],
        }
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// DB_NAME, upper case.
    pub fn db_name(&self) -> Option<String> {
        self.get("db_name").map(|n| n.to_ascii_uppercase())
    }

    /// Whether they came from a server parameter file (`spfile*.ora`).
    pub fn from_spfile(&self) -> bool {
        self.file
            .as_deref()
            .and_then(|f| f.file_name())
            .is_some_and(|n| n.to_string_lossy().starts_with("spfile"))
    }
}

/// `ORACLE_SID`, if set.
fn oracle_sid() -> Option<String> {
    std::env::var("ORACLE_SID").ok().filter(|s| !s.is_empty())
}

/// The parameter file `STARTUP` reads, in Oracle's order: `spfile<SID>.ora`, `spfile.ora`,
/// `init<SID>.ora` in `<home>/dbs` (the SID in either case). Without `ORACLE_SID` the
/// home's only `spfile*.ora`, else its only `init*.ora`.
pub fn parameter_file(home: &Path) -> Option<PathBuf> {
    let dbs = home.join("dbs");
    if let Some(sid) = oracle_sid() {
        let names = [
            format!("spfile{sid}.ora"),
            format!("spfile{}.ora", sid.to_ascii_uppercase()),
            "spfile.ora".to_string(),
            format!("init{sid}.ora"),
            format!("init{}.ora", sid.to_ascii_uppercase()),
        ];
        return names.iter().map(|n| dbs.join(n)).find(|p| p.is_file());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dbs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "ora"))
        .collect();
    files.sort();
    for prefix in ["spfile", "init"] {
        let found: Vec<&PathBuf> = files
            .iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect();
        if found.len() == 1 {
            return Some(found[0].clone());
        }
    }
    None
}

/// Where Oracle looked last for a parameter file (named in LRM-00109).
pub fn default_pfile(home: &Path) -> PathBuf {
    let sid = oracle_sid().unwrap_or_else(|| "orcl".into());
    home.join("dbs").join(format!("init{sid}.ora"))
}

fn state_path(home: &Path) -> PathBuf {
    home.join(INSTANCE_STATE_REL)
}

fn read_state(home: &Path) -> Result<Option<StateFile>> {
    let p = state_path(home);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            DbError::Invalid(format!(
                "{} is damaged ({e}): remove it to shut the instance down",
                p.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("cannot read {}", p.display()), e)),
    }
}

fn write_state(home: &Path, status: InstanceStatus, params: &Parameters) -> Result<()> {
    let s = StateFile {
        status,
        parameter_file: params.file.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&s)
        .map_err(|e| DbError::Invalid(format!("cannot encode the instance state: {e}")))?;
    write_atomic(&state_path(home), &bytes)
}

fn clear_state(home: &Path) -> Result<()> {
    match std::fs::remove_file(state_path(home)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(
            format!("cannot remove {}", state_path(home).display()),
            e,
        )),
    }
}

/// The state of a home's instance, without opening anything.
pub fn status_of(home: &Path) -> Result<InstanceStatus> {
    if let Some(s) = read_state(home)? {
        return Ok(s.status);
    }
    if !home.join(CONTROLFILE_REL).is_file() {
        return Ok(InstanceStatus::Idle);
    }
    let db = Database::open(home)?;
    db.instance_status()
}

/// Forgets a recorded NOMOUNT or shut-down state (a new database in the home).
pub(crate) fn reset_state(home: &Path) -> Result<()> {
    clear_state(home)
}

impl Database {
    /// The database as a connecting tool finds it: mounted or open (the control file), or a
    /// placeholder for an instance that is started but not mounted, or not started at all.
    pub fn connect(home: impl AsRef<Path>) -> Result<Database> {
        let home = home.as_ref();
        if !home.is_dir() {
            return Err(DbError::NotFound(format!(
                "{} does not exist (create a database with `oraclesim create --home {}`, or an empty home with `--empty`)",
                home.display(),
                home.display()
            )));
        }
        match read_state(home)? {
            Some(s) => {
                let params = match &s.parameter_file {
                    Some(f) if f.is_file() => Parameters::read(f)?,
                    _ => Parameters::dummy(),
                };
                Database::unmounted(home, s.status, params)
            }
            None if home.join(CONTROLFILE_REL).is_file() => Database::open(home),
            None => Database::unmounted(home, InstanceStatus::Idle, Parameters::default()),
        }
    }

    /// [`Database::connect`] on the home named by `ORACLESIM_HOME`.
    pub fn connect_env() -> Result<Database> {
        let home = std::env::var_os(super::HOME_ENV).ok_or_else(|| {
            DbError::Invalid(format!(
                "{} is not set: point it at a database home made by `oraclesim create`",
                super::HOME_ENV
            ))
        })?;
        Database::connect(PathBuf::from(home))
    }

    /// A placeholder control file in memory for an instance that is not mounted.
    fn unmounted(home: &Path, status: InstanceStatus, params: Parameters) -> Result<Database> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(schema::SCHEMA)?;
        let name = params.db_name().unwrap_or_default();
        let block_size: i64 = params
            .get("db_block_size")
            .and_then(|v| v.parse().ok())
            .unwrap_or(8192);
        let now = julian_of(oracle_now());
        conn.execute(
            "INSERT INTO cf_sim (schema_version, current_scn, next_set_count, controlfile_seq,
                redo_block_size, online_log_blocks, seed, bct_status)
             VALUES (?1, 0, 1, 0, 512, 0, 0, 'DISABLED')",
            [schema::SCHEMA_VERSION],
        )?;
        conn.execute(
            r#"INSERT INTO cf_database ("DBID", "NAME", "CREATED", "OPEN_MODE", "CONTROLFILE_TYPE",
                "RESETLOGS_CHANGE#", "CHECKPOINT_CHANGE#", "ACTIVATION#", "LOG_MODE",
                resetlogs_id, block_size)
               VALUES (0, ?1, ?2, 'MOUNTED', 'CURRENT', 0, 0, 0, 'NOARCHIVELOG', 0, ?3)"#,
            params![name, now, block_size],
        )?;
        if status == InstanceStatus::Started {
            let inst = oracle_sid().unwrap_or_else(|| name.to_ascii_lowercase());
            conn.execute(
                r#"INSERT INTO cf_instance VALUES (1, 1, ?1, ?2, '19.0.0.0.0', '19.3.0.0.0', ?3,
                    'STARTED', 'NO', 1, 'STOPPED', NULL, 'ALLOWED', 'NO', 'ACTIVE',
                    'PRIMARY_INSTANCE', 'NORMAL', 'NO', 0, 'REGULAR', 'EE', NULL, 'SINGLE')"#,
                params![inst, super::create::hostname(), now],
            )?;
            for (i, (n, v)) in params.values.iter().enumerate() {
                conn.execute(
                    r#"INSERT OR IGNORE INTO cf_parameter VALUES (?1, ?2, 2, ?3, ?3, 'FALSE', 0)"#,
                    params![i as i64 + 1, n, v],
                )?;
            }
        }
        let mut db = Database::from_parts(home.to_path_buf(), conn)?;
        db.unmounted = Some(Unmounted { status, params });
        Ok(db)
    }

    /// The instance's state.
    pub fn instance_status(&self) -> Result<InstanceStatus> {
        if let Some(u) = &self.unmounted {
            return Ok(u.status);
        }
        if let Some(s) = read_state(&self.home)? {
            return Ok(s.status);
        }
        Ok(match self.info()?.open_mode {
            OpenMode::Mounted => InstanceStatus::Mounted,
            _ => InstanceStatus::Open,
        })
    }

    /// Whether this is a mounted control file (not an unmounted instance's placeholder).
    pub fn is_mounted(&self) -> bool {
        self.unmounted.is_none()
    }

    /// The parameters an unmounted instance was started with (`None` once mounted: read
    /// `V$PARAMETER`).
    pub fn instance_parameters(&self) -> Option<&Parameters> {
        self.unmounted.as_ref().map(|u| &u.params)
    }

    /// `SET DBID` on an unmounted instance: the DBID the autobackup search uses.
    pub fn set_unmounted_dbid(&self, dbid: u32) -> Result<()> {
        if self.is_mounted() {
            return Err(DbError::Invalid(
                "SET DBID applies to an instance that is not mounted".into(),
            ));
        }
        self.conn
            .execute(r#"UPDATE cf_database SET "DBID" = ?1"#, [dbid])?;
        Ok(())
    }

    /// `STARTUP NOMOUNT` from an idle instance: reads the parameter file (see
    /// [`parameter_file`]). ORA-01081 if an instance is running; ORA-01078 if there is no
    /// parameter file (RMAN then falls back to [`Database::startup_dummy`]).
    pub fn startup_nomount(&self) -> Result<Database> {
        self.require_idle()?;
        let Some(file) = parameter_file(&self.home) else {
            return Err(ora(
                1078,
                format!(
                    "failure in processing system parameters\nLRM-00109: could not open parameter file '{}'",
                    default_pfile(&self.home).display()
                ),
            ));
        };
        let params = Parameters::read(&file)?;
        if params.db_name().is_none() {
            return Err(ora(
                1078,
                format!(
                    "failure in processing system parameters\nLRM-00101: unknown parameter name 'db_name' missing in {}",
                    file.display()
                ),
            ));
        }
        write_state(&self.home, InstanceStatus::Started, &params)?;
        Database::unmounted(&self.home, InstanceStatus::Started, params)
    }

    /// The instance RMAN starts without a parameter file to restore an spfile.
    pub fn startup_dummy(&self) -> Result<Database> {
        self.require_idle()?;
        let params = Parameters::dummy();
        write_state(&self.home, InstanceStatus::Started, &params)?;
        Database::unmounted(&self.home, InstanceStatus::Started, params)
    }

    fn require_idle(&self) -> Result<()> {
        if self.instance_status()? != InstanceStatus::Idle {
            return Err(ora(
                1081,
                "cannot start already-running ORACLE - shut it down first",
            ));
        }
        Ok(())
    }

    /// `ALTER DATABASE MOUNT`: opens the control file named by the home (ORA-00205 if it is
    /// missing, ORA-01103 if it belongs to another DB_NAME) and returns the mounted database.
    pub fn mount(&self) -> Result<Database> {
        let params = match &self.unmounted {
            Some(u) if u.status == InstanceStatus::Started => u.params.clone(),
            Some(_) => return Err(ora(1034, "ORACLE not available")),
            None => return Err(ora(1100, "database already mounted")),
        };
        let cf = self.home.join(CONTROLFILE_REL);
        if !cf.is_file() {
            return Err(ora(
                205,
                format!(
                    "error in identifying control file, check alert log for more info\nORA-00202: control file: '{}'\nORA-27037: unable to obtain file status\nLinux-x86_64 Error: 2: No such file or directory",
                    cf.display()
                ),
            ));
        }
        let db = Database::open(&self.home)?;
        let info = db.info()?;
        let wanted = params.db_name().unwrap_or_default();
        if info.name != wanted {
            return Err(ora(
                1103,
                format!(
                    "database name '{}' in control file is not '{wanted}'",
                    info.name
                ),
            ));
        }
        clear_state(&self.home)?;
        db.set_open_mode(OpenMode::Mounted)?;
        Ok(db)
    }

    /// `ALTER DATABASE OPEN [RESETLOGS]` on a mounted database, with Oracle's checks:
    /// ORA-01589 when a backup control file or an incomplete recovery requires RESETLOGS,
    /// ORA-01139 when RESETLOGS is not allowed, ORA-01157 for a missing datafile, ORA-01113
    /// for a datafile that needs media recovery, ORA-01194 for one that is not recovered
    /// to the same point as the others.
    pub fn open_database(&self, resetlogs: bool) -> Result<()> {
        match self.instance_status()? {
            InstanceStatus::Idle => return Err(ora(1034, "ORACLE not available")),
            InstanceStatus::Started => return Err(ora(1507, "database not mounted")),
            InstanceStatus::Open => {
                return Err(ora(1531, "a database already open by the instance"));
            }
            InstanceStatus::Mounted => {}
        }
        let required: String =
            self.conn
                .query_row(r#"SELECT "OPEN_RESETLOGS" FROM cf_database"#, [], |r| {
                    r.get(0)
                })?;
        if !resetlogs && required == "REQUIRED" {
            return Err(ora(
                1589,
                "must use RESETLOGS or NORESETLOGS option for database open",
            ));
        }
        if resetlogs && required == "NOT ALLOWED" {
            return Err(ora(
                1139,
                "RESETLOGS option only valid after an incomplete database recovery",
            ));
        }
        let info = self.info()?;
        let mut headers = Vec::new();
        for d in self
            .datafiles()?
            .into_iter()
            .filter(|d| d.status == "SYSTEM" || d.status == "ONLINE")
        {
            let h = super::DatafileIo::open(&d.path, false)
                .and_then(|io| io.header())
                .map_err(|_| {
                    ora(
                        1157,
                        format!(
                            "cannot identify/lock data file {} - see DBWR trace file\nORA-01110: data file {}: '{}'",
                            d.file_no,
                            d.file_no,
                            d.path.display()
                        ),
                    )
                })?;
            let stale = if resetlogs {
                false
            } else {
                h.checkpoint.scn < d.checkpoint_scn || h.resetlogs_scn != info.resetlogs_scn
            };
            if stale {
                return Err(ora(
                    1113,
                    format!(
                        "file {} needs media recovery\nORA-01110: data file {}: '{}'",
                        d.file_no,
                        d.file_no,
                        d.path.display()
                    ),
                ));
            }
            headers.push((d, h));
        }
        if !resetlogs {
            self.check_online_files_recovered()?;
        }
        if resetlogs {
            let last: HashMap<u32, Option<i64>> = {
                let mut st = self
                    .conn
                    .prepare(r#"SELECT "FILE#", "LAST_CHANGE#" FROM cf_datafile"#)?;
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let point = headers
                .iter()
                .filter_map(|(d, _)| last.get(&d.file_no).copied().flatten())
                .max();
            let behind = headers.iter().find(|(d, h)| {
                let l = last.get(&d.file_no).copied().flatten();
                l.is_none() || l != point || h.checkpoint.scn != d.checkpoint_scn
            });
            if let Some((d, _)) = behind {
                return Err(ora(
                    1194,
                    format!(
                        "file {} needs more recovery to be consistent\nORA-01110: data file {}: '{}'",
                        d.file_no,
                        d.file_no,
                        d.path.display()
                    ),
                ));
            }
            let point = point.map_or(info.checkpoint_scn, |p| Scn(p as u64));
            return self.open_resetlogs_at(point);
        }
        self.conn
            .execute(r#"UPDATE cf_datafile SET "LAST_CHANGE#" = NULL"#, [])?;
        self.set_open_mode(OpenMode::ReadWrite)
    }

    /// `SHUTDOWN`: the instance goes away; returns the idle placeholder.
    pub fn shutdown(&self) -> Result<Database> {
        match self.instance_status()? {
            InstanceStatus::Idle => return Err(ora(1034, "ORACLE not available")),
            InstanceStatus::Started => {}
            InstanceStatus::Mounted | InstanceStatus::Open => {
                self.set_open_mode(OpenMode::Mounted)?;
            }
        }
        write_state(&self.home, InstanceStatus::Idle, &Parameters::default())?;
        Database::unmounted(&self.home, InstanceStatus::Idle, Parameters::default())
    }
}

/// `oraclesim create --empty`: a home for a database that will be restored into it (a new
/// host): the directories, and `dbs/init<NAME>.ora` naming the control file, the archive
/// destination and DB_NAME, so that `STARTUP NOMOUNT` works. Returns the init file.
pub fn create_empty(home: &Path, name: &str) -> Result<PathBuf> {
    let name = validate_name(name)?;
    if home.join(CONTROLFILE_REL).exists() {
        return Err(DbError::Invalid(format!(
            "{} already holds a database; remove it or choose another --home",
            home.display()
        )));
    }
    if let Some(p) = parameter_file(home) {
        return Err(DbError::Invalid(format!(
            "{} already has a parameter file ({}); remove it or choose another --home",
            home.display(),
            p.display()
        )));
    }
    for d in [
        home.join("control"),
        home.join("oradata").join(&name),
        home.join("onlinelog"),
        home.join("arch"),
        home.join("dbs"),
        home.join("backup"),
        home.join("trace"),
    ] {
        std::fs::create_dir_all(&d)
            .map_err(|e| io_err(format!("cannot create {}", d.display()), e))?;
    }
    let home = home
        .canonicalize()
        .map_err(|e| io_err(format!("cannot resolve {}", home.display()), e))?;
    let text = format!(
        "*.db_name='{name}'\n*.control_files='{}'\n*.db_block_size=8192\n*.compatible='19.0.0'\n*.log_archive_dest_1='LOCATION={}'\n*.log_archive_format='%t_%s_%r.arc'\n*.undo_management='AUTO'\n",
        home.join(CONTROLFILE_REL).display(),
        home.join("arch").display()
    );
    let init = home.join("dbs").join(format!("init{name}.ora"));
    write_atomic(&init, text.as_bytes())?;
    clear_state(&home)?;
    Ok(init)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_text_is_parsed_as_oracle_writes_it() {
        let p = Parameters::parse(
            "*.db_name='ORCL'\norcl1.thread=1\n# comment\n*.control_files=\"/a/b.ctl\"\ndb_block_size=8192\n",
        );
        assert_eq!(p.db_name().as_deref(), Some("ORCL"));
        assert_eq!(p.get("thread"), Some("1"));
        assert_eq!(p.get("CONTROL_FILES"), Some("/a/b.ctl"));
        assert_eq!(p.get("db_block_size"), Some("8192"));
        assert_eq!(p.get("missing"), None);
    }

    #[test]
    fn only_spfiles_count_as_spfiles() {
        let mut p = Parameters::parse("db_name=X");
        assert!(!p.from_spfile());
        p.file = Some(PathBuf::from("/h/dbs/spfileX.ora"));
        assert!(p.from_spfile());
        p.file = Some(PathBuf::from("/h/dbs/initX.ora"));
        assert!(!p.from_spfile());
    }
}
