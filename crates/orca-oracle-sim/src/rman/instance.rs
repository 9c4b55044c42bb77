//! The instance as RMAN drives it: what the connect line says, which commands an idle or
//! NOMOUNT instance accepts, STARTUP / SHUTDOWN / ALTER DATABASE MOUNT | OPEN [RESETLOGS],
//! SET DBID, and the incarnation commands (RESET DATABASE TO INCARNATION, LIST INCARNATION).

use super::ast::*;
use super::catalog::{self, StatusEnd};
use super::datetime::error_stamp;
use super::session::{CmdError, Origin, Session, db_lines, now};
use crate::db::{Database, DbError, InstanceStatus};

/// The SGA lines RMAN prints after starting an instance.
const SGA: [&str; 6] = [
    "Total System Global Area    2147483648 bytes",
    "",
    "Fixed Size                     8898896 bytes",
    "Variable Size                486539440 bytes",
    "Database Buffers            1644167168 bytes",
    "Redo Buffers                   7876608 bytes",
];

/// What `rman target /` prints once connected: `connected to target database (not
/// started)`, `...: ORCL (not mounted)`, `...: ORCL (DBID=n, not open)` or `...: ORCL
/// (DBID=n)`.
pub fn connect_line(db: &Database) -> Result<String, DbError> {
    let info = db.info()?;
    Ok(match db.instance_status()? {
        InstanceStatus::Idle => "connected to target database (not started)".into(),
        InstanceStatus::Started => {
            format!("connected to target database: {} (not mounted)", info.name)
        }
        InstanceStatus::Mounted => format!(
            "connected to target database: {} (DBID={}, not open)",
            info.name, info.dbid
        ),
        InstanceStatus::Open => format!(
            "connected to target database: {} (DBID={})",
            info.name, info.dbid
        ),
    })
}

fn failure(lines: &[&str]) -> CmdError {
    let mut v = vec![format!(
        "RMAN-03002: failure of command at {}",
        error_stamp(now())
    )];
    v.extend(lines.iter().map(|l| l.to_string()));
    CmdError::new(v)
}

impl Session {
    /// Refuses what an instance that is not mounted cannot do: ORA-01034 when there is no
    /// instance, ORA-01507 when it is started without a control file.
    pub(super) fn check_instance(&self, cmd: &Command) -> Result<(), CmdError> {
        if self.db.is_mounted() {
            return Ok(());
        }
        let started = self
            .db
            .instance_status()
            .map_err(|e| CmdError::db("command", e))?
            == InstanceStatus::Started;
        let allowed = match cmd {
            Command::Run(_)
            | Command::Exit
            | Command::Startup { .. }
            | Command::Shutdown { .. }
            | Command::AlterDatabase(_)
            | Command::Set(_) => true,
            Command::Allocate(_)
            | Command::Release(_)
            | Command::Send { .. }
            | Command::Dr(DrCommand::RestoreSpfile { .. })
            | Command::Dr(DrCommand::RestoreControlfile { .. }) => started,
            _ => false,
        };
        match (allowed, started) {
            (true, _) => Ok(()),
            (false, true) => Err(failure(&["ORA-01507: database not mounted"])),
            (false, false) => Err(failure(&[
                "RMAN-06403: could not obtain a fully authorized session",
                "ORA-01034: ORACLE not available",
                "ORA-27101: shared memory realm does not exist",
                "Linux-x86_64 Error: 2: No such file or directory",
            ])),
        }
    }

    /// Replaces the session's database after a state change. The V$RMAN_STATUS rows of the
    /// old one are closed (an unmounted instance keeps none); automatic channels configured
    /// by the old one are released; a DBID set before STARTUP NOMOUNT is kept.
    fn swap_db(&mut self, next: Database) -> Result<(), CmdError> {
        if self.db.is_mounted() {
            let done = StatusEnd {
                status: "COMPLETED".into(),
                ..StatusEnd::default()
            };
            for k in [self.current_status.take(), self.session_status.take()]
                .into_iter()
                .flatten()
            {
                let _ = catalog::finish_status(&self.db, k, &done, true);
            }
        }
        self.session_status = None;
        self.current_status = None;
        let dbid = self.info.dbid;
        if !self.db.is_mounted() && !next.is_mounted() && dbid != 0 {
            next.set_unmounted_dbid(dbid)
                .map_err(|e| CmdError::db("startup", e))?;
        }
        if next.is_mounted() != self.db.is_mounted() {
            self.release_origin(Origin::Auto);
        }
        self.db = next;
        self.info = self.db.info().map_err(|e| CmdError::db("startup", e))?;
        Ok(())
    }

    /// `SET DBID n`: only for an instance without a mounted control file.
    pub(super) fn set_dbid(&mut self, n: u64) -> Result<(), CmdError> {
        self.out.blank();
        self.out.line("executing command: SET DBID");
        if self.db.is_mounted() {
            return Err(CmdError::command(
                "set",
                vec![
                    "RMAN-06188: cannot use command when connected to a mounted target database"
                        .into(),
                ],
            ));
        }
        let dbid = u32::try_from(n).map_err(|_| {
            CmdError::command(
                "set",
                vec![format!(
                    "RMAN-06004: DBID {n} is not a database identifier (they are below 4294967296)"
                )],
            )
        })?;
        self.db
            .set_unmounted_dbid(dbid)
            .map_err(|e| CmdError::db("set", e))?;
        self.info = self.db.info().map_err(|e| CmdError::db("set", e))?;
        Ok(())
    }

    /// `STARTUP [FORCE] [NOMOUNT | MOUNT]`. Without a parameter file, `STARTUP NOMOUNT`
    /// starts the instance RMAN uses to restore an spfile (DB_NAME=DUMMY).
    pub(super) fn startup(
        &mut self,
        force: bool,
        mount_only: bool,
        nomount: bool,
    ) -> Result<(), CmdError> {
        let err = |e: DbError| CmdError::db("startup", e);
        let status = self.db.instance_status().map_err(err)?;
        if status != InstanceStatus::Idle {
            if !force {
                return Err(CmdError::command(
                    "startup",
                    vec![
                        "ORA-01081: cannot start already-running ORACLE - shut it down first"
                            .into(),
                    ],
                ));
            }
            let idle = self.db.shutdown().map_err(err)?;
            self.swap_db(idle)?;
        }
        self.out.blank();
        let started = match self.db.startup_nomount() {
            Ok(db) => db,
            Err(DbError::Oracle {
                code: 1078,
                message,
            }) if nomount => {
                self.out
                    .line(format!("startup failed: ORA-01078: {message}"));
                self.out.blank();
                self.out.line(
                    "starting Oracle instance without parameter file for retrieval of spfile",
                );
                self.db.startup_dummy().map_err(err)?
            }
            Err(e) => return Err(err(e)),
        };
        self.swap_db(started)?;
        self.out.line("Oracle instance started");
        if !nomount {
            let mounted = self.db.mount().map_err(err)?;
            self.swap_db(mounted)?;
            self.out.line("database mounted");
            if !mount_only {
                self.db.open_database(false).map_err(err)?;
                self.out.line("database opened");
            }
        }
        self.out.blank();
        for l in SGA {
            self.out.line(l);
        }
        self.info = self.db.info().map_err(err)?;
        Ok(())
    }

    /// `SHUTDOWN [IMMEDIATE | ABORT | ...]`.
    pub(super) fn shutdown(&mut self, _abort: bool) -> Result<(), CmdError> {
        let err = |e: DbError| CmdError::db("shutdown", e);
        let status = self.db.instance_status().map_err(err)?;
        let idle = self.db.shutdown().map_err(err)?;
        self.out.blank();
        match status {
            InstanceStatus::Open => {
                self.out.line("database closed");
                self.out.line("database dismounted");
            }
            InstanceStatus::Mounted => self.out.line("database dismounted"),
            InstanceStatus::Started | InstanceStatus::Idle => {}
        }
        self.swap_db(idle)?;
        self.out.line("Oracle instance shut down");
        Ok(())
    }

    /// `ALTER DATABASE MOUNT | OPEN [RESETLOGS]`.
    pub(super) fn alter_database(&mut self, a: &AlterDatabase) -> Result<(), CmdError> {
        let err = |e: DbError| CmdError::command("alter db", db_lines(&e));
        match a {
            AlterDatabase::Mount => {
                let mounted = self.db.mount().map_err(err)?;
                self.swap_db(mounted)?;
            }
            AlterDatabase::Open { resetlogs } => {
                self.db.open_database(*resetlogs).map_err(err)?;
            }
        }
        self.out.blank();
        self.out.line("Statement processed");
        self.info = self.db.info().map_err(err)?;
        Ok(())
    }

    /// The commands of [`DrCommand`].
    pub(super) fn dr(&mut self, d: &DrCommand, end: &mut StatusEnd) -> Result<(), CmdError> {
        match d {
            DrCommand::RestoreSpfile { to, from } => self.restore_file(
                super::autobackup::FileKind::Spfile,
                to.as_deref(),
                from,
                end,
            ),
            DrCommand::RestoreControlfile { to, from } => self.restore_file(
                super::autobackup::FileKind::Controlfile,
                to.as_deref(),
                from,
                end,
            ),
            DrCommand::ResetIncarnation(n) => self.reset_incarnation(*n),
            DrCommand::ListIncarnation => self.list_incarnation(),
        }
    }

    fn reset_incarnation(&mut self, n: u32) -> Result<(), CmdError> {
        match self.db.reset_to_incarnation(n) {
            Ok(()) => {}
            Err(DbError::NotFound(_)) => {
                return Err(CmdError::command(
                    "reset",
                    vec![
                        "RMAN-20003: target database incarnation not found in recovery catalog"
                            .into(),
                    ],
                ));
            }
            Err(e) => return Err(CmdError::db("reset", e)),
        }
        self.info = self.db.info().map_err(|e| CmdError::db("reset", e))?;
        self.out.blank();
        self.out.line(format!("database reset to incarnation {n}"));
        Ok(())
    }

    fn list_incarnation(&mut self) -> Result<(), CmdError> {
        let incs = self
            .db
            .incarnations()
            .map_err(|e| CmdError::db("list", e))?;
        self.out.blank();
        self.out.line("List of Database Incarnations");
        self.out
            .line("DB Key  Inc Key DB Name  DB ID            STATUS  Reset SCN  Reset Time");
        self.out
            .line("------- ------- -------- ---------------- --- ---------- ----------");
        for i in incs {
            let time = crate::db::sqlfn::from_julian(crate::db::julian_of(i.resetlogs_time))
                .map(|t| self.date(t))
                .unwrap_or_default();
            self.out.line(format!(
                "{:<7} {:<7} {:<8} {:<16} {:<7} {:<10} {}",
                i.number,
                i.number,
                self.info.name,
                self.info.dbid,
                i.status,
                i.resetlogs_scn.0,
                time
            ));
        }
        self.out.blank();
        Ok(())
    }
}
