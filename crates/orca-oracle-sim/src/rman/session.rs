//! One RMAN session: the connection to the target database, allocated channels, the
//! V$RMAN_STATUS rows, and the dispatch of parsed commands.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDateTime;

use super::ast::*;
use super::catalog::{self, StatusEnd, StatusKey};
use super::channel::{AllocSpec, Channel, ChannelError, SbtContext};
use super::config::Config;
use super::datetime::{DateFormat, error_stamp, eval_time};
use super::faults::Faults;
use super::output::Out;
use crate::db::{Database, DatabaseInfo, DbError};

/// A failed command: the lines under the RMAN-00571 banner.
#[derive(Debug, Clone)]
pub struct CmdError {
    pub lines: Vec<String>,
}

impl CmdError {
    pub fn new(lines: Vec<String>) -> Self {
        Self { lines }
    }

    /// `RMAN-03002: failure of <cmd> command at <date>` followed by `detail`.
    pub fn command(cmd: &str, detail: Vec<String>) -> Self {
        let mut lines = vec![format!(
            "RMAN-03002: failure of {cmd} command at {}",
            error_stamp(now())
        )];
        lines.extend(detail);
        Self { lines }
    }

    /// A database error under RMAN-03002.
    pub fn db(cmd: &str, e: DbError) -> Self {
        Self::command(cmd, db_lines(&e))
    }
}

/// ORA-/RMAN- lines for a database error.
pub fn db_lines(e: &DbError) -> Vec<String> {
    match e {
        DbError::Oracle { .. } => vec![e.to_string()],
        DbError::Io { source, context } => vec![
            format!("ORA-19870: error while restoring backup piece: {context}"),
            super::channel::os_error_line(source),
        ],
        DbError::MissingLogs(m) => {
            let mut v = Vec::new();
            for l in m {
                v.push(format!(
                    "RMAN-06054: media recovery requesting unknown archived log for thread {} with sequence {} and starting SCN of {}",
                    l.thread,
                    l.sequence,
                    l.first_scn.map(|s| s.0).unwrap_or(0)
                ));
            }
            v
        }
        other => vec![format!(
            "ORA-00600: internal error code, arguments: [{other}]"
        )],
    }
}

/// Wall-clock now (seconds precision), as the database sees it.
pub fn now() -> NaiveDateTime {
    crate::db::sqlfn::now_local()
}

/// Where a channel came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// ALLOCATE CHANNEL inside RUN.
    Run,
    /// Automatic channel from the configuration (ORA_DISK_n, ORA_SBT_TAPE_n).
    Auto,
    /// ALLOCATE CHANNEL FOR MAINTENANCE.
    Maint,
}

/// The session.
pub struct Session {
    pub db: Database,
    pub home: PathBuf,
    pub out: Out,
    pub faults: Arc<Faults>,
    pub sbt_ctx: SbtContext,
    pub nls: DateFormat,
    pub msgno: bool,
    pub sid: u32,
    pub info: DatabaseInfo,
    pub channels: Vec<(Origin, Channel)>,
    pub in_run: bool,
    /// Inside a RUN block, before its last BACKUP: the control-file autobackup waits.
    pub autobackup_deferred: bool,
    pub command_id: Option<String>,
    pub until: Option<Until>,
    /// SET NEWNAME of the current RUN block: FILE# → where RESTORE writes the file.
    pub newnames: std::collections::BTreeMap<u32, PathBuf>,
    /// SET CONTROLFILE AUTOBACKUP FORMAT inside the current RUN block.
    pub autobackup_formats: BTreeMap<DeviceType, String>,
    /// SET ENCRYPTION of this session (None: as configured; Some(None): SET ENCRYPTION OFF).
    pub encryption: Option<Option<EncryptionSet>>,
    /// SET DECRYPTION IDENTIFIED BY: the passwords RESTORE tries.
    pub decryption: Vec<String>,
    pub session_status: Option<StatusKey>,
    catalog_notice: bool,
    next_channel_sid: u32,
    /// Source of answers to YES/NO questions.
    pub answers: Box<dyn FnMut() -> Option<String>>,
    /// The current command's status row.
    pub current_status: Option<StatusKey>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("home", &self.home).finish()
    }
}

/// Name of a CLI command for RMAN-03002 ("backup", "restore", ...).
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Backup(b) if b.plus_archivelog.is_some() => "backup plus archivelog",
        Command::Backup(_) | Command::BackupBackupset { .. } => "backup",
        Command::RecoverCopy { .. } | Command::Recover(_) => "recover",
        Command::Restore(_) => "restore",
        Command::Validate(_) => "validate",
        Command::Delete(_) => "delete",
        Command::Crosscheck(_) => "crosscheck",
        Command::List(_) => "list",
        Command::Report(_) => "report",
        Command::Catalog(_) => "catalog",
        Command::Configure(_) => "configure",
        Command::Sql(_) => "sql",
        Command::Allocate(_) => "allocate",
        Command::Release(_) => "release",
        Command::Send { .. } => "send",
        Command::Startup { .. } => "startup",
        Command::Shutdown { .. } => "shutdown",
        Command::AlterDatabase(_) => "alter db",
        Command::Switch(_) => "switch",
        Command::BlockRecover(_) => "recover",
        Command::Set(_) => "set",
        Command::Show(_) => "show",
        Command::Change(_) => "change",
        Command::Run(_) => "run",
        Command::Exit => "exit",
        Command::Dr(d) => d.command_name(),
    }
}

/// V$RMAN_STATUS.OPERATION of a command, if it gets a row.
fn operation(c: &Command) -> Option<&'static str> {
    Some(match c {
        Command::Backup(_) | Command::BackupBackupset { .. } => "BACKUP",
        Command::RecoverCopy { .. } | Command::Recover(_) | Command::BlockRecover(_) => "RECOVER",
        Command::Restore(_) => "RESTORE",
        Command::Validate(_) => "VALIDATE",
        Command::Delete(_) => "DELETE",
        Command::Crosscheck(_) => "CROSSCHECK",
        Command::List(_) => "LIST",
        Command::Report(_) => "REPORT",
        Command::Catalog(_) => "CATALOG",
        Command::Change(_) => "CHANGE",
        Command::Configure(_) => "CONFIGURE",
        Command::Sql(_) | Command::AlterDatabase(_) => "SQL",
        Command::Dr(d) => return d.operation(),
        _ => return None,
    })
}

impl Session {
    /// Opens the session on a database.
    pub fn new(
        db: Database,
        out: Out,
        faults: Arc<Faults>,
        sbt_ctx: SbtContext,
        msgno: bool,
    ) -> Result<Self, DbError> {
        let info = db.info()?;
        let home = db.home().to_path_buf();
        let sid = 10 + std::process::id() % 700;
        Ok(Self {
            db,
            home,
            out,
            faults,
            sbt_ctx,
            nls: DateFormat::from_env(),
            msgno,
            sid,
            info,
            channels: Vec::new(),
            in_run: false,
            autobackup_deferred: false,
            command_id: None,
            until: None,
            newnames: Default::default(),
            autobackup_formats: BTreeMap::new(),
            encryption: None,
            decryption: Vec::new(),
            session_status: None,
            catalog_notice: false,
            next_channel_sid: sid + 17,
            answers: Box::new(|| None),
            current_status: None,
        })
    }

    /// Date as RMAN displays it (NLS_DATE_FORMAT).
    pub fn date(&self, t: NaiveDateTime) -> String {
        self.nls.format(t)
    }

    /// Evaluates a TIME operand.
    pub fn time(&self, t: &TimeExpr) -> Result<NaiveDateTime, CmdError> {
        eval_time(&t.0, now(), &self.nls).map_err(|e| {
            CmdError::new(vec![
                "RMAN-03002: failure of command at ".to_string() + &error_stamp(now()),
                format!("ORA-01858: a non-numeric character was found where a numeric was expected ({e})"),
            ])
        })
    }

    /// Loads the configuration from the control file.
    pub fn config(&self) -> Config {
        Config::from_rows(&catalog::configuration(&self.db).unwrap_or_default())
    }

    fn ensure_session_row(&mut self) {
        // An unmounted instance has no control file to keep the rows in.
        if self.session_status.is_some() || !self.db.is_mounted() {
            return;
        }
        let start = now();
        let id = self
            .command_id
            .clone()
            .unwrap_or_else(|| start.format("%Y-%m-%dT%H:%M:%S").to_string());
        if let Ok(k) = catalog::start_status(&self.db, self.sid, None, None, 0, "RMAN", &id, start)
        {
            self.session_status = Some(k);
        }
    }

    /// Command id for new V$RMAN_STATUS rows.
    pub fn command_id_text(&self, start: NaiveDateTime) -> String {
        self.command_id
            .clone()
            .unwrap_or_else(|| start.format("%Y-%m-%dT%H:%M:%S").to_string())
    }

    /// Ends the session row (COMPLETED or FAILED) and writes the remaining output lines.
    pub fn finish(&mut self, failed: bool) {
        self.release_all();
        if let Some(k) = self.session_status {
            let lines = self.out.take_lines();
            let _ = catalog::add_output(&self.db, self.sid, k, k, &lines);
            let _ = catalog::finish_status(
                &self.db,
                k,
                &StatusEnd {
                    status: if failed { "FAILED" } else { "COMPLETED" }.into(),
                    ..StatusEnd::default()
                },
                true,
            );
        }
    }

    /// Runs one top-level statement; errors are printed by the caller.
    pub fn execute(&mut self, stmt: &Stmt) -> Result<(), CmdError> {
        if !self.catalog_notice && !matches!(stmt.cmd, Command::Exit) {
            self.catalog_notice = true;
            self.out
                .line("using target database control file instead of recovery catalog");
        }
        self.ensure_session_row();
        match &stmt.cmd {
            Command::Run(body) => {
                self.in_run = true;
                // One autobackup per RUN block, after its last BACKUP.
                let last_backup = body
                    .iter()
                    .rposition(|s| matches!(&s.cmd, Command::Backup(b) if !b.validate));
                let mut result = Ok(());
                for (i, s) in body.iter().enumerate() {
                    self.autobackup_deferred = last_backup.is_some_and(|last| i < last);
                    result = self.execute_one(&s.cmd);
                    if result.is_err() {
                        break;
                    }
                }
                self.autobackup_deferred = false;
                self.in_run = false;
                self.until = None;
                self.newnames.clear();
                self.autobackup_formats.clear();
                self.release_origin(Origin::Run);
                result
            }
            other => self.execute_one(other),
        }
    }

    fn execute_one(&mut self, cmd: &Command) -> Result<(), CmdError> {
        let op = operation(cmd).filter(|_| self.db.is_mounted());
        let start = now();
        let key = match (op, self.session_status) {
            (Some(op), Some(sess)) => catalog::start_status(
                &self.db,
                self.sid,
                Some(sess),
                Some(sess),
                1,
                op,
                &self.command_id_text(start),
                start,
            )
            .ok(),
            _ => None,
        };
        self.current_status = key;
        let mut end = StatusEnd::default();
        let result = self.dispatch(cmd, &mut end);
        if let Some(k) = key {
            end.status = if result.is_ok() {
                "COMPLETED".into()
            } else {
                "FAILED".into()
            };
            let lines = self.out.take_lines();
            if let Some(sess) = self.session_status {
                let _ = catalog::add_output(&self.db, self.sid, sess, k, &lines);
            }
            let _ = catalog::finish_status(&self.db, k, &end, true);
        }
        self.current_status = None;
        result.map_err(|e| {
            if e.lines
                .first()
                .is_some_and(|l| l.starts_with("RMAN-03002: failure of command"))
            {
                let mut lines = e.lines;
                lines[0] = format!(
                    "RMAN-03002: failure of {} command at {}",
                    command_name(cmd),
                    error_stamp(now())
                );
                CmdError::new(lines)
            } else {
                e
            }
        })
    }

    fn dispatch(&mut self, cmd: &Command, end: &mut StatusEnd) -> Result<(), CmdError> {
        self.check_instance(cmd)?;
        match cmd {
            Command::Run(_) => Err(CmdError::new(vec![
                "RMAN-01009: syntax error: found \"run\": RUN blocks cannot be nested".into(),
            ])),
            Command::Allocate(a) => self.allocate_cmd(a),
            Command::Release(name) => self.release_cmd(name.as_deref()),
            Command::Set(s) => self.set_cmd(s),
            Command::Send {
                channel,
                device,
                text,
            } => self.send_cmd(channel.as_deref(), *device, text),
            Command::Configure(c) => self.configure(c),
            Command::Show(name) => self.show(name.as_deref()),
            Command::Change(c) => self.change(c),
            Command::BackupBackupset { sets, formats } => {
                self.backup_backupset(sets.as_deref(), formats)
            }
            Command::Backup(b) => {
                let b = self.resolve_datafile_names(b)?;
                self.backup(&b, end)
            }
            Command::RecoverCopy {
                datafiles,
                tag,
                until,
            } => self.recover_copy(datafiles.as_deref(), tag.as_deref(), until.as_ref(), end),
            Command::Restore(r) => self.restore(r, end),
            Command::Recover(r) => self.recover(r, end),
            Command::Validate(v) => self.validate(v, end),
            Command::Delete(d) => self.delete(d),
            Command::Crosscheck(c) => self.crosscheck(c),
            Command::List(l) => self.list(l),
            Command::Report(r) => self.report(r),
            Command::Catalog(c) => self.catalog_cmd(c),
            Command::Sql(s) => self.sql(s),
            Command::Startup {
                force,
                mount_only,
                nomount,
            } => self.startup(*force, *mount_only, *nomount),
            Command::Shutdown { abort } => self.shutdown(*abort),
            Command::AlterDatabase(a) => self.alter_database(a),
            Command::Switch(sw) => self.switch(sw),
            Command::BlockRecover(b) => self.block_recover(b, end),
            Command::Exit => Ok(()),
            Command::Dr(d) => self.dr(d, end),
        }
    }

    fn set_cmd(&mut self, s: &SetCmd) -> Result<(), CmdError> {
        match s {
            SetCmd::CommandId(id) => {
                self.out.blank();
                self.out.line("executing command: SET COMMAND ID");
                self.command_id = Some(id.clone());
                if let Some(k) = self.session_status {
                    let _ = catalog::set_status_command_id(&self.db, k, id);
                }
            }
            SetCmd::Until(u) => {
                self.out.blank();
                self.out.line("executing command: SET until clause");
                self.until = Some(u.clone());
            }
            SetCmd::Dbid(n) => self.set_dbid(*n)?,
            SetCmd::AutobackupFormat { device, format } => {
                self.out.blank();
                self.out
                    .line("executing command: SET CONTROLFILE AUTOBACKUP FORMAT");
                self.autobackup_formats.insert(*device, format.clone());
            }
            SetCmd::Echo(_) => {
                self.out.line("echo set on");
            }
            SetCmd::Newname(n) => self.set_newname(n)?,
            SetCmd::Encryption(e) => {
                self.out.blank();
                self.out.line("executing command: SET encryption");
                self.encryption = Some(e.clone());
            }
            SetCmd::Decryption(v) => {
                self.out.blank();
                self.out.line("executing command: SET decryption");
                self.decryption = v.clone();
            }
        }
        Ok(())
    }

    /// `ALLOCATE CHANNEL`.
    fn allocate_cmd(&mut self, a: &Allocate) -> Result<(), CmdError> {
        let (name, origin) = match &a.name {
            Some(n) => (n.clone(), Origin::Run),
            None => {
                let n = self
                    .channels
                    .iter()
                    .filter(|(o, c)| *o == Origin::Maint && c.device == a.device)
                    .count()
                    + 1;
                let dev = match a.device {
                    DeviceType::Disk => "DISK",
                    DeviceType::Sbt => "SBT_TAPE",
                };
                (format!("ORA_MAINT_{dev}_{n}"), Origin::Maint)
            }
        };
        if self
            .channels
            .iter()
            .any(|(_, c)| c.name.eq_ignore_ascii_case(&name))
        {
            return Err(CmdError::new(vec![
                format!(
                    "RMAN-03009: failure of allocate command on {name} channel at {}",
                    error_stamp(now())
                ),
                format!("RMAN-06030: channel {name} is already allocated"),
            ]));
        }
        let base = self.config().channel_options(a.device, 1);
        let opts = if origin == Origin::Run {
            a.opts.clone()
        } else {
            a.opts.over(&base)
        };
        self.allocate(&name, a.device, opts, origin).map(|_| ())
    }

    /// Allocates a channel and prints RMAN's lines; returns its index in `channels`.
    pub fn allocate(
        &mut self,
        name: &str,
        device: DeviceType,
        opts: ChannelOptions,
        origin: Origin,
    ) -> Result<usize, CmdError> {
        let fail = |lines: Vec<String>| {
            let mut v = vec![format!(
                "RMAN-03009: failure of allocate command on {name} channel at {}",
                error_stamp(now())
            )];
            v.extend(lines);
            CmdError::new(v)
        };
        if let Some(conn) = &opts.connect {
            let inst = conn.rsplit_once('@').map(|(_, i)| i.to_string());
            if let Some(inst) = inst {
                let instances = self.db.instances().map_err(|e| fail(db_lines(&e)))?;
                match instances
                    .iter()
                    .find(|i| i.name.eq_ignore_ascii_case(&inst))
                {
                    Some(i) if i.is_up() => {}
                    Some(i) => {
                        return Err(fail(ChannelError::Instance(i.name.clone()).ora_lines()));
                    }
                    None => {
                        return Err(fail(vec![
                            "ORA-12154: TNS:could not resolve the connect identifier specified"
                                .into(),
                        ]));
                    }
                }
            }
        }
        self.next_channel_sid += 11;
        let spec = AllocSpec {
            name: name.to_string(),
            device,
            opts,
            sid: self.next_channel_sid,
        };
        let (ch, banner) = Channel::allocate(&spec, &self.sbt_ctx, self.faults.clone())
            .map_err(|e| fail(e.ora_lines()))?;
        self.out.line(format!("allocated channel: {name}"));
        self.out.line(format!(
            "channel {name}: SID={} device type={}",
            spec.sid,
            device.name()
        ));
        if let Some(b) = banner {
            self.out.line(format!("channel {name}: {b}"));
        }
        self.channels.push((origin, ch));
        Ok(self.channels.len() - 1)
    }

    fn release_cmd(&mut self, name: Option<&str>) -> Result<(), CmdError> {
        let idx = match name {
            Some(n) => self
                .channels
                .iter()
                .position(|(_, c)| c.name.eq_ignore_ascii_case(n)),
            None => self.channels.iter().position(|(o, _)| *o == Origin::Maint),
        };
        let Some(idx) = idx else {
            return Err(CmdError::new(vec![
                format!(
                    "RMAN-03002: failure of release command at {}",
                    error_stamp(now())
                ),
                format!(
                    "RMAN-06012: channel: {} not allocated",
                    name.unwrap_or("maintenance")
                ),
            ]));
        };
        let (_, ch) = self.channels.remove(idx);
        let cname = ch.name.clone();
        let r = ch.release();
        self.out.blank();
        self.out.line(format!("released channel: {cname}"));
        r.map_err(|e| {
            let mut v = vec![format!(
                "RMAN-03009: failure of release command on {cname} channel at {}",
                error_stamp(now())
            )];
            v.extend(e.ora_lines());
            CmdError::new(v)
        })
    }

    pub(super) fn release_origin(&mut self, origin: Origin) {
        let mut i = 0;
        while i < self.channels.len() {
            if self.channels[i].0 == origin {
                let (_, ch) = self.channels.remove(i);
                let name = ch.name.clone();
                let _ = ch.release();
                self.out.line(format!("released channel: {name}"));
            } else {
                i += 1;
            }
        }
    }

    /// Releases every channel (end of session); automatic channels are released silently.
    pub fn release_all(&mut self) {
        self.release_origin(Origin::Run);
        for (_, ch) in self.channels.drain(..) {
            let _ = ch.release();
        }
    }

    fn send_cmd(
        &mut self,
        channel: Option<&str>,
        device: Option<DeviceType>,
        text: &str,
    ) -> Result<(), CmdError> {
        let targets: Vec<usize> = self
            .channels
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| {
                !c.dead
                    && channel.is_none_or(|n| c.name.eq_ignore_ascii_case(n))
                    && device.is_none_or(|d| c.device == d)
            })
            .map(|(i, _)| i)
            .collect();
        if targets.is_empty() {
            return Err(CmdError::new(vec![
                format!(
                    "RMAN-03002: failure of send command at {}",
                    error_stamp(now())
                ),
                "RMAN-06091: no channel allocated for maintenance (of an appropriate type)".into(),
            ]));
        }
        for i in targets {
            let name = self.channels[i].1.name.clone();
            if let Err(e) = self.channels[i].1.send(text) {
                let mut v = vec![format!(
                    "RMAN-03009: failure of send command on {name} channel at {}",
                    error_stamp(now())
                )];
                v.extend(e.ora_lines());
                return Err(CmdError::new(v));
            }
            self.out.line(format!("sent command to channel: {name}"));
        }
        Ok(())
    }

    /// Channels a job uses: the RUN block's (of `device` if given), else maintenance channels
    /// (for maintenance commands), else automatic channels of `device` (default device type).
    pub fn job_channels(
        &mut self,
        device: Option<DeviceType>,
        maintenance: bool,
    ) -> Result<Vec<usize>, CmdError> {
        let pick = |s: &Self, origin: Origin| -> Vec<usize> {
            s.channels
                .iter()
                .enumerate()
                .filter(|(_, (o, c))| {
                    *o == origin && !c.dead && device.is_none_or(|d| c.device == d)
                })
                .map(|(i, _)| i)
                .collect()
        };
        if self.in_run && self.channels.iter().any(|(o, _)| *o == Origin::Run) {
            let v = pick(self, Origin::Run);
            if v.is_empty() {
                return Err(CmdError::command(
                    "command",
                    vec![format!(
                        "RMAN-06091: no channel allocated for maintenance (of an appropriate type)"
                    )],
                ));
            }
            return Ok(v);
        }
        if maintenance {
            let v = pick(self, Origin::Maint);
            if !v.is_empty() {
                return Ok(v);
            }
        }
        let device = device.unwrap_or_else(|| self.config().default_device);
        self.auto_channels(device)
    }

    /// Automatic channels of a device type (allocated on first use, reused afterwards).
    pub fn auto_channels(&mut self, device: DeviceType) -> Result<Vec<usize>, CmdError> {
        let existing: Vec<usize> = self
            .channels
            .iter()
            .enumerate()
            .filter(|(_, (o, c))| *o == Origin::Auto && c.device == device && !c.dead)
            .map(|(i, _)| i)
            .collect();
        if !existing.is_empty() {
            for &i in &existing {
                self.out
                    .line(format!("using channel {}", self.channels[i].1.name));
            }
            return Ok(existing);
        }
        let cfg = self.config();
        let n = cfg.parallelism(device);
        let prefix = match device {
            DeviceType::Disk => "ORA_DISK",
            DeviceType::Sbt => "ORA_SBT_TAPE",
        };
        let mut v = Vec::new();
        for k in 1..=n {
            let opts = cfg.channel_options(device, k);
            v.push(self.allocate(&format!("{prefix}_{k}"), device, opts, Origin::Auto)?);
        }
        Ok(v)
    }

    /// Asks a YES/NO question (DELETE without NOPROMPT).
    pub fn confirm(&mut self, question: &str) -> bool {
        self.out.prompt(&format!("{question} "));
        let answer = (self.answers)();
        self.out.blank();
        answer.is_some_and(|a| {
            let a = a.trim().to_ascii_uppercase();
            a == "YES" || a == "Y"
        })
    }

    /// A recursive (ROW_LEVEL 2) status row under the current command.
    pub fn start_recursive(&mut self, operation: &str) -> Option<StatusKey> {
        let start = now();
        catalog::start_status(
            &self.db,
            self.sid,
            self.current_status,
            self.session_status,
            2,
            operation,
            &self.command_id_text(start),
            start,
        )
        .ok()
    }

    /// Prints a message with its RMAN number when `msgno` was given.
    pub fn msg(&self, number: u32, text: &str) {
        if self.msgno {
            self.out.line(format!("RMAN-{number:05}: {text}"));
        } else {
            self.out.line(text);
        }
    }
}
