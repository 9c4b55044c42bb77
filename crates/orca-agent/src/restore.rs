//! `orca restore`: the agent looks at the database and writes the RMAN script the situation
//! needs, as a DBA would at the worst moment:
//!
//! - open, some datafiles lost: take them offline, restore and recover them, bring them
//!   online; the rest of the database stays open. A whole restore of an open database is
//!   refused before anything changes: it would overwrite what runs.
//! - not open (shut down, started, mounted): `STARTUP MOUNT`, restore and recover the whole
//!   database (`SET UNTIL` for a point in time), `OPEN` (`RESETLOGS` after a point in time).
//! - `--new-location DIR`: an instance of its own in DIR (an init file naming its control
//!   file there), the control file from the point's autobackup in the vault (`SET DBID`,
//!   `RESTORE CONTROLFILE FROM '<c-...>'`), the online logs renamed into DIR, `SET NEWNAME FOR
//!   DATABASE`, restore, `SWITCH`, recover to the point, `OPEN RESETLOGS`. The original
//!   database is only read from (its archived logs), never written.
//! - `--new-location DIR --virtual-full`: as above up to the mount, then each datafile's
//!   image is built from the point's chain read straight from the vault ([`crate::vfull`]),
//!   `CATALOG DATAFILECOPY` of the images, `SWITCH DATABASE TO COPY`, recover with archived
//!   logs to the point, `OPEN RESETLOGS`: no incremental is replayed.
//! - `--new-host`: the configured home is empty but for an init file: `SET DBID`, SPFILE and
//!   control file from the point's autobackup, restore, recover to the point, `OPEN
//!   RESETLOGS`. The vault URL, the token, DB_NAME and the repository key are all it needs.
//! - `--validate`: `RESTORE DATABASE VALIDATE`: every piece read, every chunk checked, no
//!   datafile written.
//!
//! A restore to a new location runs `rman` and `sqlplus` with every `[database.env]` value
//! equal to `oracle_home` replaced by the new location: the simulator's `ORACLESIM_HOME`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use orca_repo::{Backend, KeySource, ReadOptions, Repository};
use orca_vault::client::VaultClient;
use orca_vault::wire::{
    Job, JobState, JobTrigger, JobUpdate, NewJob, RecoveryPoint, RecoveryPointFilter,
    RecoveryPointKind,
};

use crate::AgentError;
use crate::config::{Config, DatabaseConfig};
use crate::job::{Outcome, num, rman_error, text, write_private};
use crate::oracle::{Oracle, RmanRun, Row};
use crate::script::allocate;
use crate::{point, vfull};

/// A point in time to recover to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Until {
    /// `YYYY-MM-DD HH24:MI:SS`, the database's time.
    Time(String),
    /// Changes below this SCN are applied.
    Scn(u64),
}

impl Until {
    fn rman(&self) -> String {
        match self {
            Until::Time(t) => {
                format!("  set until time \"to_date('{t}','YYYY-MM-DD HH24:MI:SS')\";\n")
            }
            Until::Scn(s) => format!("  set until scn {s};\n"),
        }
    }
}

/// What `orca restore` asks for; a queued restore carries it as JSON in its job's
/// [`REQUEST_DETAIL`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoreRequest {
    /// A recovery point's id.
    #[serde(default)]
    pub point: Option<String>,
    #[serde(default)]
    pub until: Option<Until>,
    /// Restore into this directory; the database itself is left alone.
    #[serde(default)]
    pub new_location: Option<PathBuf>,
    /// The configured home is empty (a new host): SPFILE and control file come from the
    /// point's autobackup in the vault.
    #[serde(default)]
    pub new_host: bool,
    /// Read and check the backups only.
    #[serde(default)]
    pub validate: bool,
    /// With `new_location`: the datafiles are built as images straight from the chain's
    /// pieces in the vault (level 0, then each level 1), and RMAN only recovers them with
    /// archived logs.
    #[serde(default)]
    pub virtual_full: bool,
}

/// The job detail holding a queued restore's [`RestoreRequest`]. The agent takes a queued
/// `restore` job only once it has one: the job is created first and given its request by a
/// second call, and an agent must not start it in between.
pub const REQUEST_DETAIL: &str = "request";

impl RestoreRequest {
    /// What is asked, in words, for the job's first message.
    pub fn describe(&self, database: &str) -> String {
        let mut asked = vec![format!("restore of {database}")];
        if let Some(p) = &self.point {
            asked.push(format!("to point {p}"));
        }
        if let Some(u) = &self.until {
            asked.push(format!("until {}", describe(u)));
        }
        if let Some(d) = &self.new_location {
            asked.push(format!("into {}", d.display()));
        }
        if self.new_host {
            asked.push("onto this new host".into());
        }
        if self.validate {
            asked.push("(validate only)".into());
        }
        if self.virtual_full {
            asked.push("as a virtual full".into());
        }
        asked.join(" ")
    }
}

/// The instance before the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instance {
    Idle,
    Started,
    Mounted,
    Open,
}

/// Restores of one configured database.
pub struct Restorer {
    cfg: Config,
    db: DatabaseConfig,
    oracle: Oracle,
    vault: Arc<VaultClient>,
    dir: PathBuf,
}

/// The job kind of a restore.
pub const KIND: &str = "restore";

/// Runs a restore of `db`, recorded in the vault as a job of kind `restore`; the job at its
/// end.
pub async fn run(
    cfg: &Config,
    db: &DatabaseConfig,
    vault: Arc<VaultClient>,
    req: &RestoreRequest,
) -> Result<Job, AgentError> {
    recorded(
        &vault.clone(),
        &db.name,
        KIND,
        req.describe(&db.name),
        |job| async move { perform(cfg, db, vault, &job, req).await },
    )
    .await
}

/// Runs the restore `req` as `job` (one this agent took from the queue, or made itself).
pub async fn perform(
    cfg: &Config,
    db: &DatabaseConfig,
    vault: Arc<VaultClient>,
    job: &Job,
    req: &RestoreRequest,
) -> Outcome {
    let restorer = Restorer::new(cfg, db, vault);
    let mut out = Outcome::default();
    let r = restorer.run(job, req, &mut out).await;
    ended(r, out)
}

/// Records a job of `kind` for `database` in the vault, runs `work` as it (`running`), and
/// records how it ended; the job as the vault has it at the end.
pub async fn recorded<F, Fut>(
    vault: &VaultClient,
    database: &str,
    kind: &str,
    message: String,
    work: F,
) -> Result<Job, AgentError>
where
    F: FnOnce(Job) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let job = vault
        .create_job(&NewJob {
            id: None,
            database: database.to_string(),
            kind: kind.to_string(),
            message,
            bytes_estimated: None,
            trigger: JobTrigger::Manual,
            deadline: None,
        })
        .await?;
    let job = vault
        .update_job(
            &job.id,
            &JobUpdate {
                state: Some(JobState::Running),
                message: Some("running".into()),
                ..Default::default()
            },
        )
        .await?;
    let out = work(job.clone()).await;
    let update = out.update();
    Ok(vault.update_job(&job.id, &update).await?)
}

/// An [`Outcome`] from how the work ended, with the details `out` gathered.
pub fn ended(result: Result<String, AgentError>, mut out: Outcome) -> Outcome {
    match result {
        Ok(m) => {
            out.succeeded = true;
            out.message = m;
        }
        Err(e) => {
            out.succeeded = false;
            out.message = e.to_string();
        }
    }
    out
}

impl Restorer {
    pub fn new(cfg: &Config, db: &DatabaseConfig, vault: Arc<VaultClient>) -> Restorer {
        Restorer {
            cfg: cfg.clone(),
            db: db.clone(),
            oracle: Oracle::new(db),
            vault,
            dir: cfg.agent.state_dir.join(&db.name),
        }
    }

    /// The database's recovery points, oldest first.
    pub async fn points(&self) -> Result<Vec<RecoveryPoint>, AgentError> {
        Ok(self
            .vault
            .recovery_points(&RecoveryPointFilter {
                database: Some(self.db.name.clone()),
                ..Default::default()
            })
            .await?)
    }

    /// The point a restore elsewhere starts from: the one asked for; for an SCN the first
    /// whose logs reach it (its control file knows every older backup); else the newest.
    /// It must be restorable.
    pub async fn choose(
        &self,
        point: Option<&str>,
        until: Option<&Until>,
    ) -> Result<RecoveryPoint, AgentError> {
        let points = self.points().await?;
        let datafile_points = || {
            points.iter().filter(|p| {
                matches!(
                    p.kind,
                    RecoveryPointKind::Full | RecoveryPointKind::Incremental
                )
            })
        };
        let rp = match (point, until) {
            (Some(id), _) => points.iter().find(|p| p.id == id).ok_or_else(|| {
                AgentError::Job(format!(
                    "no recovery point {id} of database {}: see `orca recovery-points`",
                    self.db.name
                ))
            })?,
            (None, Some(Until::Scn(s))) => datafile_points()
                .find(|p| point::until_scn(p).is_some_and(|u| u >= *s))
                .ok_or_else(|| {
                    AgentError::Job(format!(
                        "no recovery point of database {} reaches SCN {s}",
                        self.db.name
                    ))
                })?,
            (None, _) => datafile_points().next_back().ok_or_else(|| {
                AgentError::Job(format!(
                    "database {} has no recovery point to restore from",
                    self.db.name
                ))
            })?,
        };
        if let Some(why) = point::not_restorable(&self.vault, rp, &points).await? {
            return Err(AgentError::Job(format!(
                "recovery point {} cannot be restored: {why}",
                rp.id
            )));
        }
        Ok(rp.clone())
    }

    /// Runs a restore as job `job`.
    pub async fn run(
        &self,
        job: &Job,
        req: &RestoreRequest,
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        if req.virtual_full && req.new_location.is_none() {
            return Err(AgentError::Job(
                "a virtual full is built into a new location: add --new-location DIR".into(),
            ));
        }
        if req.new_location.is_some() || req.new_host {
            let rp = self
                .choose(req.point.as_deref(), req.until.as_ref())
                .await?;
            let until = req
                .until
                .clone()
                .or_else(|| point::until_scn(&rp).map(Until::Scn))
                .ok_or_else(|| {
                    AgentError::Job(format!("recovery point {} has no SCN to recover to", rp.id))
                })?;
            return match &req.new_location {
                Some(dir) if req.virtual_full => {
                    self.virtual_full(job, &rp, &until, dir, out).await
                }
                Some(dir) => self.relocate(job, &rp, &until, dir, out).await,
                None => self.new_host(job, &rp, &until, out).await,
            };
        }
        let until = match (&req.point, &req.until) {
            (Some(id), None) => {
                let rp = self.choose(Some(id), None).await?;
                out.details.insert("recovery_point".into(), rp.id.clone());
                point::until_scn(&rp).map(Until::Scn)
            }
            (_, u) => u.clone(),
        };
        if req.validate {
            return self.validate(job, until.as_ref(), out).await;
        }
        self.in_place(job, until.as_ref(), out).await
    }

    async fn instance(&self, oracle: &Oracle) -> Result<Instance, AgentError> {
        match oracle.query("select status from v$instance").await {
            Ok(rows) => Ok(match rows.first().map(|r| text(r, "STATUS")) {
                Some("OPEN") => Instance::Open,
                Some("MOUNTED") => Instance::Mounted,
                _ => Instance::Started,
            }),
            Err(AgentError::Tool { message, .. }) if message.contains("ORA-01034") => {
                Ok(Instance::Idle)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `script` as `<state dir>/<job>.<step>.rman`, its log beside it.
    async fn rman(
        &self,
        oracle: &Oracle,
        job: &Job,
        step: &str,
        script: &str,
    ) -> Result<RmanRun, AgentError> {
        // The channels read the token and password from files (never from PARMS): a restore
        // on a new host, or after the state directory was lost, writes them first.
        crate::script::write_secrets(&self.cfg, &self.db)?;
        crate::state::private_dir(&self.dir).map_err(AgentError::io(format!(
            "cannot create {}",
            self.dir.display()
        )))?;
        let cmd = self.dir.join(format!("{}.{step}.rman", job.id));
        write_private(&cmd, script)?;
        let log = self.dir.join(format!("{}.{step}.log", job.id));
        oracle.rman(&cmd, &log)?.finish().await
    }

    async fn rman_ok(
        &self,
        oracle: &Oracle,
        job: &Job,
        step: &str,
        script: &str,
    ) -> Result<RmanRun, AgentError> {
        let run = self.rman(oracle, job, step, script).await?;
        if run.success {
            Ok(run)
        } else {
            Err(AgentError::Job(format!(
                "rman failed ({step}): {}",
                failure(&run.log)
            )))
        }
    }

    fn channels(&self) -> String {
        allocate(&self.cfg, &self.db, &[], None)
    }

    async fn validate(
        &self,
        job: &Job,
        until: Option<&Until>,
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        out.details.insert("mode".into(), "validate".into());
        let script = format!(
            "run {{\n{}{}  restore database validate;\n  restore archivelog all validate;\n}}\n",
            self.channels(),
            until.map(Until::rman).unwrap_or_default()
        );
        let run = self.rman_ok(&self.oracle, job, "validate", &script).await?;
        self.account(job, &run.log, out).await?;
        let sets = run
            .log
            .lines()
            .filter(|l| l.contains("starting validation of"))
            .count();
        out.details
            .insert("validated_sets".into(), sets.to_string());
        Ok(format!(
            "every backup the restore needs was read and checked ({sets} sets); nothing was written"
        ))
    }

    async fn in_place(
        &self,
        job: &Job,
        until: Option<&Until>,
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        let state = self.instance(&self.oracle).await?;
        out.details
            .insert("instance".into(), format!("{state:?}").to_ascii_lowercase());
        if state == Instance::Open {
            let lost = if until.is_some() {
                Vec::new()
            } else {
                self.lost_datafiles().await?
            };
            if lost.is_empty() {
                let why = if until.is_some() {
                    "a point-in-time restore replaces every datafile"
                } else {
                    "no datafile of it is lost, so the restore would replace every datafile"
                };
                return Err(AgentError::Job(format!(
                    "database {} is open and {why}: restoring it in place would overwrite the \
                     running database. Restore it elsewhere with --new-location DIR, or shut it \
                     down first (SHUTDOWN IMMEDIATE) and run the restore again",
                    self.db.name
                )));
            }
            return self.datafiles(job, &lost, out).await;
        }
        let mut script = match state {
            Instance::Idle => "startup mount;\n".to_string(),
            Instance::Started => "alter database mount;\n".to_string(),
            _ => String::new(),
        };
        script.push_str(&format!(
            "run {{\n{}{}  restore database;\n  recover database;\n}}\nalter database open{};\n",
            self.channels(),
            until.map(Until::rman).unwrap_or_default(),
            if until.is_some() { " resetlogs" } else { "" }
        ));
        out.details.insert("mode".into(), "database".into());
        let run = self
            .rman_ok(&self.oracle, job, "restore", &script)
            .await
            .map_err(|e| match e {
                AgentError::Job(m) if m.contains("ORA-00205") => AgentError::Job(format!(
                    "{m}. The control file is gone: on an empty home restore with --new-host"
                )),
                e => e,
            })?;
        self.account(job, &run.log, out).await?;
        Ok(match until {
            Some(u) => format!(
                "database {} restored and recovered until {}, opened with RESETLOGS",
                self.db.name,
                describe(u)
            ),
            None => format!(
                "database {} restored, recovered completely and opened",
                self.db.name
            ),
        })
    }

    /// (FILE#, whether it is still online) of the datafiles the open database lost or that
    /// need media recovery.
    async fn lost_datafiles(&self) -> Result<Vec<(u32, bool)>, AgentError> {
        let status: BTreeMap<u64, String> = self
            .oracle
            .query("select file#, status from v$datafile")
            .await?
            .iter()
            .map(|r| (num(r, "FILE#"), text(r, "STATUS").to_string()))
            .collect();
        let lost: BTreeSet<u64> = self
            .oracle
            .query("select file#, error from v$recover_file")
            .await?
            .iter()
            .filter(|r| text(r, "ERROR") != "OFFLINE NORMAL")
            .map(|r| num(r, "FILE#"))
            .collect();
        lost.into_iter()
            .map(|f| {
                let online = status
                    .get(&f)
                    .is_some_and(|s| s == "ONLINE" || s == "SYSTEM");
                u32::try_from(f)
                    .map(|f| (f, online))
                    .map_err(|_| AgentError::Job(format!("v$recover_file lists file# {f}")))
            })
            .collect()
    }

    async fn datafiles(
        &self,
        job: &Job,
        lost: &[(u32, bool)],
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        let files: Vec<String> = lost.iter().map(|(f, _)| f.to_string()).collect();
        let list = files.join(", ");
        let mut script = String::new();
        for (f, online) in lost {
            if *online {
                script.push_str(&format!("sql 'alter database datafile {f} offline';\n"));
            }
        }
        script.push_str(&format!(
            "run {{\n{}  restore datafile {list};\n  recover datafile {list};\n}}\n",
            self.channels()
        ));
        for (f, _) in lost {
            script.push_str(&format!("sql 'alter database datafile {f} online';\n"));
        }
        out.details.insert("mode".into(), "datafiles".into());
        out.details.insert("datafiles".into(), files.join(","));
        let run = self
            .rman_ok(&self.oracle, job, "restore", &script)
            .await
            .map_err(|e| {
                AgentError::Job(format!(
                    "{e}. A file that cannot go offline (SYSTEM, undo) needs the database shut \
                     down and a whole restore"
                ))
            })?;
        self.account(job, &run.log, out).await?;
        Ok(format!(
            "datafile(s) {list} of the open database {} restored, recovered and back online",
            self.db.name
        ))
    }

    /// Bytes of the pieces RMAN read from the vault (`reading from backup piece H`), as the
    /// job's progress and its `bytes_read` detail.
    async fn account(&self, job: &Job, log: &str, out: &mut Outcome) -> Result<(), AgentError> {
        let ns = format!("{}/", self.vault.whoami().await?.database);
        let mut read = out
            .details
            .get("bytes_read")
            .and_then(|b| b.parse().ok())
            .unwrap_or(0u64);
        let handles: BTreeSet<&str> = log
            .lines()
            .filter_map(|l| l.split_once("reading from backup piece "))
            .filter_map(|(_, h)| h.split_whitespace().next())
            .collect();
        for h in handles {
            if let Some(p) = self.vault.info(&format!("{ns}{h}")).await? {
                read += p.size;
            }
        }
        out.details.insert("bytes_read".into(), read.to_string());
        self.progress(job, read, read).await;
        Ok(())
    }

    /// The control-file autobackup and the DBID a restore from nothing needs.
    fn rebuild_needs<'a>(&self, rp: &'a RecoveryPoint) -> Result<(&'a str, u64), AgentError> {
        let autobackup = rp.labels.get(point::AUTOBACKUP).ok_or_else(|| {
            AgentError::Job(format!(
                "recovery point {} names no control-file autobackup",
                rp.id
            ))
        })?;
        let dbid = rp
            .dbid
            .ok_or_else(|| AgentError::Job(format!("recovery point {} has no DBID", rp.id)))?;
        Ok((autobackup, dbid))
    }

    /// Bare metal: the configured home has an init file and nothing else. SPFILE, control
    /// file, datafiles and archived logs come from the vault; the database opens with
    /// RESETLOGS at the point.
    async fn new_host(
        &self,
        job: &Job,
        rp: &RecoveryPoint,
        until: &Until,
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        let (autobackup, dbid) = self.rebuild_needs(rp)?;
        point_details(out, "new-host", rp, until);
        let start = match self.instance(&self.oracle).await? {
            Instance::Idle => "startup nomount;\n",
            Instance::Started => "",
            state => {
                return Err(AgentError::Job(format!(
                    "--new-host is for an empty Oracle home, but database {} is {} here: \
                     restore in place, or with --new-location DIR",
                    self.db.name,
                    format!("{state:?}").to_ascii_lowercase()
                )));
            }
        };
        self.progress(job, 0, rp.stats.bytes).await;
        let ch = self.channels();
        let script = format!(
            "{start}set dbid {dbid};\nrun {{\n{ch}  restore spfile from '{autobackup}';\n}}\nstartup force nomount;\nrun {{\n{ch}  restore controlfile from '{autobackup}';\n  alter database mount;\n}}\nrun {{\n{ch}{}  restore database;\n  recover database;\n}}\nalter database open resetlogs;\n",
            until.rman()
        );
        let run = self.rman_ok(&self.oracle, job, "restore", &script).await?;
        self.account(job, &run.log, out).await?;
        Ok(format!(
            "database {} rebuilt on this host from recovery point {} (SPFILE, control file, \
             datafiles, archived logs from the vault), recovered until {}, opened with RESETLOGS",
            self.db.name,
            rp.id,
            describe(until)
        ))
    }

    /// The point restored into `dir`, recovered until `until`, opened: a database of its own.
    /// Returns the message; `out` gets the details (location, SCN).
    pub async fn relocate(
        &self,
        job: &Job,
        rp: &RecoveryPoint,
        until: &Until,
        dir: &Path,
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        point_details(out, "new-location", rp, until);
        let (oracle, renames) = self.mount_copy(job, rp, dir, out).await?;
        let mut script = String::from("run {\n");
        script.push_str(&self.channels());
        script.push_str(&renames);
        script.push_str(&until.rman());
        script.push_str(&format!(
            "  set newname for database to '{}/%b';\n  restore database;\n  switch datafile all;\n  recover database;\n}}\nalter database open resetlogs;\n",
            dir.join("oradata").join(&self.db.name).display()
        ));
        let run = self.rman_ok(&oracle, job, "restore", &script).await?;
        self.account(job, &run.log, out).await?;
        Ok(format!(
            "recovery point {} of {} restored into {}, recovered until {} and opened with RESETLOGS",
            rp.id,
            self.db.name,
            dir.display(),
            describe(until)
        ))
    }

    /// An instance of its own in `dir`, mounted with the control file of `rp`'s autobackup;
    /// the tools pointed at it, and the RMAN commands that rename its online log members
    /// into `dir` (before `OPEN RESETLOGS` creates them).
    async fn mount_copy(
        &self,
        job: &Job,
        rp: &RecoveryPoint,
        dir: &Path,
        out: &mut Outcome,
    ) -> Result<(Oracle, String), AgentError> {
        let (autobackup, dbid) = self.rebuild_needs(rp)?;
        out.details
            .insert("location".into(), dir.display().to_string());
        self.progress(job, 0, rp.stats.bytes).await;
        let oracle = self.prepare(dir)?;
        let script = format!(
            "startup nomount;\nset dbid {dbid};\nrun {{\n{}  restore controlfile from '{autobackup}';\n  alter database mount;\n}}\n",
            self.channels()
        );
        let run = self.rman_ok(&oracle, job, "controlfile", &script).await?;
        self.account(job, &run.log, out).await?;
        let members = oracle.query("select member from v$logfile").await?;
        let mut renames = String::new();
        for m in members.iter().map(|r| text(r, "MEMBER")) {
            let name = Path::new(m)
                .file_name()
                .ok_or_else(|| AgentError::Job(format!("online log member {m:?} has no name")))?;
            let to = dir.join("onlinelog").join(name);
            renames.push_str(&format!(
                "  sql \"alter database rename file '{m}' to '{}'\";\n",
                to.display()
            ));
        }
        Ok((oracle, renames))
    }

    /// `rp` restored into `dir` as a virtual full: each datafile's image built from the
    /// pieces of `rp`'s chain read from the vault ([`crate::vfull`]), cataloged as a datafile
    /// copy, switched to, recovered until `until` with archived logs, opened.
    async fn virtual_full(
        &self,
        job: &Job,
        rp: &RecoveryPoint,
        until: &Until,
        dir: &Path,
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        point_details(out, "virtual-full", rp, until);
        let (oracle, renames) = self.mount_copy(job, rp, dir, out).await?;
        let data = dir
            .canonicalize()
            .map_err(AgentError::io(format!("cannot resolve {}", dir.display())))?
            .join("oradata")
            .join(&self.db.name);
        let targets = self.targets(&oracle, &data).await?;
        let pieces = self.chain_pieces(&oracle, rp, until).await?;
        out.details.insert(
            "levels".into(),
            pieces
                .iter()
                .map(|p| p.point.as_str())
                .collect::<BTreeSet<_>>()
                .len()
                .to_string(),
        );
        let (made, read) = self.build_images(job, &pieces, &targets, out).await?;
        let paths: Vec<String> = made
            .iter()
            .map(|m| format!("'{}'", m.image.display()))
            .collect();
        out.details.insert(
            "image_checkpoint".into(),
            made.iter()
                .map(|m| m.checkpoint.0)
                .min()
                .unwrap_or(0)
                .to_string(),
        );
        let script = format!(
            "catalog datafilecopy {};\nrun {{\n{}{renames}{}  switch database to copy;\n  recover database;\n}}\nalter database open resetlogs;\n",
            paths.join(", "),
            self.channels(),
            until.rman()
        );
        let run = self.rman_ok(&oracle, job, "recover", &script).await?;
        self.account(job, &run.log, out).await?;
        Ok(format!(
            "recovery point {} of {} built into {} as a virtual full ({} datafile images, {read} \
             bytes of {} pieces read from the vault), recovered until {} and opened with \
             RESETLOGS",
            rp.id,
            self.db.name,
            dir.display(),
            made.len(),
            pieces.len(),
            describe(until)
        ))
    }

    /// Where each datafile the mounted control file of `oracle` names gets its image: in
    /// `data`, under its own file name.
    async fn targets(
        &self,
        oracle: &Oracle,
        data: &Path,
    ) -> Result<Vec<vfull::Target>, AgentError> {
        let rows = oracle
            .query("select file#, rfile#, block_size, name from v$datafile")
            .await?;
        rows.iter()
            .map(|r| {
                let name = text(r, "NAME");
                let base = Path::new(name).file_name().ok_or_else(|| {
                    AgentError::Job(format!("datafile name {name:?} has no file name"))
                })?;
                let int = |k: &str| {
                    u32::try_from(num(r, k))
                        .map_err(|_| AgentError::Job(format!("v$datafile {k} of {name}")))
                };
                Ok(vfull::Target {
                    file_no: int("FILE#")?,
                    rfile_no: int("RFILE#")?,
                    block_size: usize::try_from(num(r, "BLOCK_SIZE"))
                        .map_err(|_| AgentError::Job(format!("v$datafile BLOCK_SIZE of {name}")))?,
                    image: data.join(base),
                })
            })
            .collect()
    }

    /// The datafile pieces of `rp`'s chain in the order their blocks are placed: the level
    /// 0's, then each level 1's, up to the last level whose checkpoint is before `until`.
    /// One copy of each piece. A compressed or encrypted piece is refused: its blocks are not
    /// visible in its stream.
    async fn chain_pieces(
        &self,
        oracle: &Oracle,
        rp: &RecoveryPoint,
        until: &Until,
    ) -> Result<Vec<ChainPiece>, AgentError> {
        let set = |r: &Row| (num(r, "SET_STAMP"), num(r, "SET_COUNT"));
        let mut checkpoints: BTreeMap<(u64, u64), (u64, String)> = BTreeMap::new();
        for r in oracle
            .query(
                "select set_stamp, set_count, file#, checkpoint_change#, \
                 to_char(checkpoint_time, 'YYYY-MM-DD HH24:MI:SS') checkpoint_time \
                 from v$backup_datafile",
            )
            .await?
            .iter()
            .filter(|r| num(r, "FILE#") > 0)
        {
            let e = checkpoints.entry(set(r)).or_default();
            if num(r, "CHECKPOINT_CHANGE#") >= e.0 {
                *e = (
                    num(r, "CHECKPOINT_CHANGE#"),
                    text(r, "CHECKPOINT_TIME").to_string(),
                );
            }
        }
        let mut by_handle: BTreeMap<String, (Row, (u64, u64, u64))> = BTreeMap::new();
        for r in oracle
            .query(
                "select set_stamp, set_count, piece#, handle, compressed, encrypted \
                 from v$backup_piece where status = 'A'",
            )
            .await?
        {
            if checkpoints.contains_key(&set(&r)) {
                let id = (
                    num(&r, "SET_STAMP"),
                    num(&r, "SET_COUNT"),
                    num(&r, "PIECE#"),
                );
                by_handle.insert(text(&r, "HANDLE").to_string(), (r, id));
            }
        }
        let ns = format!("{}/", self.vault.whoami().await?.database);
        let points = self.points().await?;
        let mut ids = point::chain(rp);
        ids.push(rp.id.clone());
        let mut pieces = Vec::new();
        let mut seen = BTreeSet::new();
        for id in ids {
            let p = points.iter().find(|p| p.id == id).ok_or_else(|| {
                AgentError::Job(format!("point {id} of the chain of {} is gone", rp.id))
            })?;
            let mut level = Vec::new();
            let mut beyond = false;
            for name in &p.pieces {
                let handle = name.strip_prefix(&ns).unwrap_or(name);
                let Some((row, piece)) = by_handle.get(handle) else {
                    continue;
                };
                if !seen.insert(*piece) {
                    continue;
                }
                for (flag, what) in [("COMPRESSED", "compressed"), ("ENCRYPTED", "encrypted")] {
                    if text(row, flag) == "YES" {
                        return Err(AgentError::Job(format!(
                            "backup piece {handle} of point {id} is {what}: its Oracle blocks \
                             are not visible to the media manager, so no virtual full can be \
                             built from it; restore normally (without --virtual-full)"
                        )));
                    }
                }
                let (scn, time) = &checkpoints[&set(row)];
                beyond |= match until {
                    Until::Scn(s) => scn >= s,
                    // One-second times: a level checkpointed within the second asked for
                    // may hold changes after it.
                    Until::Time(t) => time.as_str() >= t.as_str(),
                };
                level.push(ChainPiece {
                    point: id.clone(),
                    name: name.clone(),
                    handle: handle.to_string(),
                });
            }
            if beyond {
                break;
            }
            pieces.extend(level);
        }
        if pieces.is_empty() {
            return Err(AgentError::Job(format!(
                "no level of the chain of recovery point {} has its datafiles' checkpoint \
                 before {}: nothing to build a virtual full from",
                rp.id,
                describe(until)
            )));
        }
        Ok(pieces)
    }

    /// Reads `pieces` in order from the vault and places their blocks into an image of each
    /// target; the images and the bytes read. Nothing is left in place when it fails.
    async fn build_images(
        &self,
        job: &Job,
        pieces: &[ChainPiece],
        targets: &[vfull::Target],
        out: &mut Outcome,
    ) -> Result<(Vec<vfull::Made>, u64), AgentError> {
        let key = match (&self.db.key_file, &self.db.password) {
            (Some(f), _) => KeySource::KeyFile(f.clone()),
            (None, Some(p)) => KeySource::Passphrase(p.clone()),
            (None, None) => {
                return Err(AgentError::Job(format!(
                    "database {}: no repository key (key_file or password)",
                    self.db.name
                )));
            }
        };
        let repo_err = |context: String| {
            move |source| AgentError::Repo {
                context,
                source: Box::new(source),
            }
        };
        let counted = vfull::Counted::new(self.vault.clone());
        let backend: Arc<dyn Backend> = counted.clone();
        let repo = Repository::open(backend, &key)
            .await
            .map_err(repo_err("opening the repository in the vault".into()))?;
        let mut estimated = 0;
        for p in pieces {
            if let Some(i) = self.vault.info(&p.name).await? {
                estimated += i.size;
            }
        }
        let images = Arc::new(std::sync::Mutex::new(vfull::Images::create(targets)?));
        let before = out
            .details
            .get("bytes_read")
            .and_then(|b| b.parse().ok())
            .unwrap_or(0u64);
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut failed = None;
        // A level's pieces hold other files or other blocks, so they are read
        // VFULL_READERS at a time; the levels in order, so a later level's blocks win.
        'levels: for level in pieces.chunk_by(|a, b| a.point == b.point) {
            for batch in level.chunks(VFULL_READERS) {
                let mut tasks = Vec::new();
                for p in batch {
                    let reader = match repo.reader(&p.name, &ReadOptions::default()).await {
                        Ok(r) => r,
                        Err(e) => {
                            failed =
                                Some(repo_err(format!("reading backup piece {}", p.handle))(e));
                            break;
                        }
                    };
                    let (vault, id, rt, handle) = (
                        self.vault.clone(),
                        job.id.clone(),
                        tokio::runtime::Handle::current(),
                        p.handle.clone(),
                    );
                    let (images, total) = (images.clone(), read.clone());
                    // A datafile's piece can take long: its progress is recorded as it is read.
                    let report = move |all: u64| {
                        let u = JobUpdate {
                            bytes_done: Some(all),
                            bytes_estimated: Some(estimated),
                            ..Default::default()
                        };
                        if let Err(e) = rt.block_on(vault.update_job(&id, &u)) {
                            tracing::warn!(job = %id, error = %e, "progress not recorded");
                        }
                    };
                    tasks.push(tokio::task::spawn_blocking(move || {
                        let mut told = 0u64;
                        let done = vfull::read_piece(reader, &images, &handle, |n| {
                            let all = total.fetch_add(n - told, Ordering::Relaxed) + n - told;
                            told = n;
                            report(all);
                        });
                        // What the last progress report did not count yet.
                        if let Ok(n) = &done {
                            total.fetch_add(n - told, Ordering::Relaxed);
                        }
                        done
                    }));
                }
                for t in tasks {
                    let done = t.await.map_err(|source| AgentError::Task {
                        what: "building the images",
                        source,
                    })?;
                    if let (Err(e), None) = (done, &failed) {
                        failed = Some(e);
                    }
                }
                if failed.is_some() {
                    break 'levels;
                }
                let n = read.load(Ordering::Relaxed);
                out.details
                    .insert("bytes_read".into(), (before + n).to_string());
                out.details.insert("image_bytes_read".into(), n.to_string());
                out.details
                    .insert("vault_bytes_read".into(), counted.bytes().to_string());
                self.progress(job, n, estimated).await;
            }
        }
        let images = Arc::try_unwrap(images)
            .ok()
            .expect("every reader is done")
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(e) = failed {
            images.discard();
            return Err(e);
        }
        let read = read.load(Ordering::Relaxed);
        out.details
            .insert("blocks_placed".into(), images.blocks().to_string());
        Ok((images.finish()?, read))
    }
    /// Stops the instance of a copy in `dir` (a drill's, before its files are removed).
    pub(crate) async fn shut_down_copy(&self, job: &Job, dir: &Path) -> Result<(), AgentError> {
        self.rman_ok(&self.located(dir), job, "shutdown", "shutdown abort;\n")
            .await
            .map(|_| ())
    }

    async fn progress(&self, job: &Job, done: u64, estimated: u64) {
        let u = JobUpdate {
            bytes_done: Some(done),
            bytes_estimated: Some(estimated),
            ..Default::default()
        };
        if let Err(e) = self.vault.update_job(&job.id, &u).await {
            tracing::warn!(job = %job.id, error = %e, "progress not recorded");
        }
    }

    /// The tools pointed at `dir` (see the module's documentation).
    pub fn located(&self, dir: &Path) -> Oracle {
        let mut db = self.db.clone();
        for v in db.env.values_mut() {
            if Path::new(v.as_str()) == self.db.oracle_home {
                *v = dir.display().to_string();
            }
        }
        Oracle::new(&db)
    }

    /// Makes `dir` a place for an instance of the database: the directories and an init file
    /// naming its control file, archive destination and DB_NAME. `dir` must be new or empty.
    fn prepare(&self, dir: &Path) -> Result<Oracle, AgentError> {
        if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(AgentError::Job(format!(
                "{} is not empty: a restore to a new location needs an empty directory",
                dir.display()
            )));
        }
        for sub in ["control", "onlinelog", "arch", "dbs", "trace", "backup"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d)
                .map_err(AgentError::io(format!("cannot create {}", d.display())))?;
        }
        let data = dir.join("oradata").join(&self.db.name);
        std::fs::create_dir_all(&data)
            .map_err(AgentError::io(format!("cannot create {}", data.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(AgentError::io(format!("cannot resolve {}", dir.display())))?;
        let init = format!(
            "*.db_name='{}'\n*.control_files='{}'\n*.db_block_size=8192\n*.compatible='19.0.0'\n*.log_archive_dest_1='LOCATION={}'\n*.log_archive_format='%t_%s_%r.arc'\n*.undo_management='AUTO'\n",
            self.db.name,
            dir.join("control/control01.ctl").display(),
            dir.join("arch").display()
        );
        let path = dir
            .join("dbs")
            .join(format!("init{}.ora", self.db.oracle_sid));
        std::fs::write(&path, init)
            .map_err(AgentError::io(format!("cannot write {}", path.display())))?;
        Ok(self.located(&dir))
    }
}

/// A datafile piece of a virtual full's chain.
struct ChainPiece {
    /// The recovery point it belongs to.
    point: String,
    /// Its name in the vault.
    name: String,
    /// RMAN's handle.
    handle: String,
}

/// Pieces of one level a virtual full reads at once: RMAN's two channels make two pieces a
/// level, and reading them one after the other left a core idle.
const VFULL_READERS: usize = 2;

/// The job details every restore from a whole recovery point records.
fn point_details(out: &mut Outcome, mode: &str, rp: &RecoveryPoint, until: &Until) {
    out.details.insert("mode".into(), mode.into());
    out.details.insert("recovery_point".into(), rp.id.clone());
    out.details.insert("until".into(), describe(until));
}

fn describe(u: &Until) -> String {
    match u {
        Until::Time(t) => format!("time {t}"),
        Until::Scn(s) => format!("SCN {s}"),
    }
}

/// The error lines of a failed RMAN log that say what could not be read: the piece
/// (ORA-19870) and the media manager's text under ORA-19511 (the chunk and where it is).
pub(crate) fn failure(log: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    let mut it = log.lines().map(str::trim).peekable();
    while let Some(l) = it.next() {
        if l.starts_with("ORA-19870") {
            lines.push(l);
        } else if l.starts_with("ORA-19511") {
            lines.push(l);
            while let Some(n) = it.peek() {
                if n.is_empty() || n.starts_with("RMAN-") || n.starts_with("ORA-") {
                    break;
                }
                lines.push(n);
                it.next();
            }
        }
    }
    if lines.is_empty() {
        rman_error(log)
    } else {
        let mut seen = BTreeSet::new();
        lines.retain(|l| seen.insert(*l));
        lines.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_names_the_piece_and_the_media_managers_text() {
        let log = "channel c1: reading from backup piece 0a_1_1\n\
                   RMAN-00571: ===\n\
                   RMAN-03002: failure of restore command at 12/06/2026 10:00:00\n\
                   ORA-19870: error while restoring backup piece 0a_1_1\n\
                   ORA-19511: non RMAN, but media manager or vendor specific failure, error text:\n\
                   \x20  corrupt chunk 459d in packs/96/9678: checksum mismatch\n\
                   ORA-19870: error while restoring backup piece 0a_1_1\n";
        assert_eq!(
            failure(log),
            "ORA-19870: error while restoring backup piece 0a_1_1 ORA-19511: non RMAN, but media \
             manager or vendor specific failure, error text: corrupt chunk 459d in packs/96/9678: \
             checksum mismatch"
        );
    }
}
