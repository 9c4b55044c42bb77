//! One backup job, start to end.
//!
//! Datafile backups: the first of a database is a full (incremental level 0), later ones are
//! level 1. A full that failed is resumed by the next datafile request (the seed's three
//! pillars): its tag, command id and start time are in the state file; the archived-log chain
//! since that start is checked in `v$archived_log` for every thread (a gap means a fresh full,
//! with the reason recorded); pieces of multi-section files left unfinished are deleted from
//! RMAN's catalog and the vault; then `SET COMMAND ID TO '<same>'` and `BACKUP ... DATABASE NOT
//! BACKED UP SINCE TIME '<start>' TAG '<same>'` skip the files that finished. The pieces and
//! statistics of every attempt (`v$backup_piece_details`, `v$rman_status` of the command id)
//! form one recovery point.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use orca_oracle::rman_log::{RmanEvent, RmanSummary, parse_log};
use orca_repo::{Backend, PieceFilter, PieceInfo};
use orca_vault::client::VaultClient;
use orca_vault::wire::{
    COMMAND_ID_LABEL, Job, JobState, JobUpdate, NewRecoveryPoint, RecoveryPointFilter,
    RecoveryPointKind,
};

use crate::AgentError;
use crate::config::{Config, DatabaseConfig};
use crate::oracle::{Oracle, RmanRun, Row, sql_str};
use crate::script::{self, BackupWhat};
use crate::state::{Attempt, PendingFull, PieceStat, StateFile};

/// What a job was asked to do (the job record's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// The first backup a full, later ones incremental.
    Backup,
    Full,
    Incremental,
    Archivelog,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [
        JobKind::Backup,
        JobKind::Full,
        JobKind::Incremental,
        JobKind::Archivelog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Full => "backup-full",
            JobKind::Incremental => "backup-incremental",
            JobKind::Archivelog => "backup-archivelog",
        }
    }

    pub fn parse(kind: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// How a job ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub succeeded: bool,
    pub message: String,
    pub details: BTreeMap<String, String>,
    /// Alerts for the heartbeat (an instance went down).
    pub alerts: Vec<String>,
}

impl Outcome {
    /// The update that records this end in the job.
    pub fn update(&self) -> JobUpdate {
        JobUpdate {
            state: Some(if self.succeeded {
                JobState::Succeeded
            } else {
                JobState::Failed
            }),
            message: Some(self.message.clone()),
            details: self.details.clone(),
            ..Default::default()
        }
    }
}

/// Runs jobs of one configured database.
pub struct Runner {
    cfg: Config,
    db: DatabaseConfig,
    oracle: Oracle,
    vault: Arc<VaultClient>,
    state: StateFile,
}

pub(crate) fn num(r: &Row, k: &str) -> u64 {
    r.get(k).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

pub(crate) fn text<'a>(r: &'a Row, k: &str) -> &'a str {
    r.get(k).map(|s| s.trim()).unwrap_or("")
}

/// `2026-12-02 14:25:09` -> `20261202T142509` (tags are at most 30 characters).
fn compact(time: &str) -> String {
    let digits: String = time.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 14 {
        format!("{}T{}", &digits[..8], &digits[8..14])
    } else {
        digits
    }
}

impl Runner {
    pub fn new(cfg: &Config, db: &DatabaseConfig, vault: Arc<VaultClient>) -> Runner {
        Runner {
            cfg: cfg.clone(),
            db: db.clone(),
            oracle: Oracle::new(db),
            vault,
            state: StateFile::new(&cfg.agent.state_dir, &db.name),
        }
    }

    /// Runs a job taken from the queue (already `running`); never leaves it unrecorded.
    pub async fn run(&self, job: &Job) -> Outcome {
        let mut out = Outcome::default();
        match self.run_inner(job, &mut out).await {
            Ok(message) => {
                out.succeeded = true;
                out.message = message;
            }
            Err(e) => {
                out.succeeded = false;
                out.message = e.to_string();
            }
        }
        out
    }

    async fn run_inner(&self, job: &Job, out: &mut Outcome) -> Result<String, AgentError> {
        let kind = JobKind::parse(&job.kind)
            .ok_or_else(|| AgentError::Job(format!("unknown job kind {:?}", job.kind)))?;
        let instances = self.rac_precheck(out).await?;
        let dbid = self
            .oracle
            .query("select dbid from v$database")
            .await?
            .first()
            .map(|r| num(r, "DBID"));
        let result = match kind {
            JobKind::Archivelog => {
                self.single(job, RecoveryPointKind::Archivelog, dbid, &instances, out)
                    .await
            }
            _ => self.datafiles(job, kind, dbid, &instances, out).await,
        };
        self.rac_postcheck(&instances, out).await;
        if result.is_ok()
            && let Err(e) = self.apply_retention(out).await
        {
            // The backup itself is safe in the vault: the job succeeds, the failure is raised.
            out.alerts.push(e.to_string());
            out.details.insert("alerts".into(), out.alerts.join("; "));
        }
        result
    }

    /// Runs a maintenance RMAN script as `<state dir>/<name>.rman`, its log beside it.
    async fn maintenance(&self, name: &str, script: &str) -> Result<RmanRun, AgentError> {
        let dir = self.state.dir();
        crate::state::private_dir(dir)
            .map_err(AgentError::io(format!("cannot create {}", dir.display())))?;
        script::write_secrets(&self.cfg, &self.db)?;
        let cmd = dir.join(format!("{name}.rman"));
        write_private(&cmd, script)?;
        let log = dir.join(format!("{name}.log"));
        write_private(&log, "")?;
        self.oracle.rman(&cmd, &log)?.finish().await
    }

    /// After a successful backup: RMAN deletes what the retention policy no longer needs
    /// (the SBT library removes those pieces from the vault), then the recovery points that
    /// named a deleted piece are dropped, as a restore to them could no longer complete.
    async fn apply_retention(&self, out: &mut Outcome) -> Result<(), AgentError> {
        let Some(policy) = self.db.retention else {
            return Ok(());
        };
        let script = script::delete_obsolete(&self.cfg, &self.db, &policy.rman());
        let run = self.maintenance("retention", &script).await?;
        if !run.success {
            return Err(AgentError::Job(format!(
                "retention ({}) failed, nothing more was deleted: {}",
                policy.rman(),
                rman_error(&run.log)
            )));
        }
        let deleted = deleted_handles(&run.log);
        out.details.insert("retention".into(), policy.rman());
        out.details
            .insert("retention_deleted_pieces".into(), deleted.len().to_string());
        if deleted.is_empty() {
            return Ok(());
        }
        let ns = self.vault_namespace().await?;
        let deleted: BTreeSet<String> = deleted.iter().map(|h| format!("{ns}{h}")).collect();
        let f = RecoveryPointFilter {
            database: Some(self.db.name.clone()),
            ..Default::default()
        };
        let mut dropped = Vec::new();
        for rp in self.vault.recovery_points(&f).await? {
            if rp.pieces.iter().any(|p| deleted.contains(p)) {
                self.vault.delete_recovery_point(&rp.id).await?;
                dropped.push(rp.id);
            }
        }
        tracing::info!(pieces = deleted.len(), points = dropped.len(), policy = %policy.rman(), "retention applied");
        if !dropped.is_empty() {
            out.details
                .insert("retention_dropped_points".into(), dropped.join(","));
        }
        Ok(())
    }

    /// RAC: the configured instances that are open; the job fails when the primary (the
    /// first) is not.
    async fn rac_precheck(&self, out: &mut Outcome) -> Result<Vec<String>, AgentError> {
        let Some(rac) = &self.db.rac else {
            return Ok(Vec::new());
        };
        let open = self.open_instances().await?;
        let mut eligible = Vec::new();
        for (i, name) in rac.instances.iter().enumerate() {
            if open.contains(&name.to_ascii_lowercase()) {
                eligible.push(name.clone());
            } else if i == 0 {
                return Err(AgentError::Job(format!(
                    "the primary instance {name} is not open (gv$instance): the backup cannot start"
                )));
            } else {
                out.alerts.push(format!(
                    "instance {name} is down: the backup runs on the other instances"
                ));
            }
        }
        out.details.insert("instances".into(), eligible.join(","));
        Ok(eligible)
    }

    async fn open_instances(&self) -> Result<BTreeSet<String>, AgentError> {
        Ok(self
            .oracle
            .query("select instance_name, status from gv$instance")
            .await?
            .iter()
            .filter(|r| text(r, "STATUS") == "OPEN")
            .map(|r| text(r, "INSTANCE_NAME").to_ascii_lowercase())
            .collect())
    }

    /// An instance that went down while the job ran is an alert, whatever the job's result.
    async fn rac_postcheck(&self, instances: &[String], out: &mut Outcome) {
        if instances.is_empty() {
            return;
        }
        let Ok(open) = self.open_instances().await else {
            return;
        };
        for name in instances {
            let alert = went_down(name);
            if !open.contains(&name.to_ascii_lowercase()) && !out.alerts.contains(&alert) {
                out.alerts.push(alert);
            }
        }
        if !out.alerts.is_empty() {
            out.details.insert("alerts".into(), out.alerts.join("; "));
        }
    }

    /// Through the vault the SBT library names a piece `<token's database>/<handle>`.
    async fn vault_namespace(&self) -> Result<String, AgentError> {
        Ok(format!("{}/", self.vault.whoami().await?.database))
    }

    async fn db_now(&self) -> Result<String, AgentError> {
        let rows = self
            .oracle
            .query("select to_char(sysdate, 'YYYY-MM-DD HH24:MI:SS') now from dual")
            .await?;
        rows.first()
            .map(|r| text(r, "NOW").to_string())
            .ok_or_else(|| AgentError::Job("the database did not tell its time".into()))
    }

    async fn has_full(&self) -> Result<bool, AgentError> {
        let f = RecoveryPointFilter {
            database: Some(self.db.name.clone()),
            kind: Some(RecoveryPointKind::Full),
            ..Default::default()
        };
        Ok(!self.vault.recovery_points(&f).await?.is_empty())
    }

    async fn datafiles(
        &self,
        job: &Job,
        kind: JobKind,
        dbid: Option<u64>,
        instances: &[String],
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        let estimate: u64 = self
            .oracle
            .query("select sum(bytes) bytes from v$datafile")
            .await?
            .first()
            .map(|r| num(r, "BYTES"))
            .unwrap_or(0);
        self.progress(job, 0, Some(estimate)).await;
        let mut st = self.state.load()?;
        let mut resumed = false;
        let pending = match st.pending_full.take() {
            Some(p) => match self.chain_gap(&p.start_time).await? {
                None => {
                    resumed = true;
                    out.details
                        .insert("resumed_attempts".into(), p.attempts.len().to_string());
                    Some(p)
                }
                Some(reason) => {
                    let uncatalogued = self.delete_uncatalogued(&p.command_id).await?;
                    if !uncatalogued.is_empty() {
                        out.details
                            .insert("uncatalogued_deleted".into(), uncatalogued.join(","));
                    }
                    let cleaned = self.cleanup(&p.tag).await?;
                    out.details.insert(
                        "fresh_full_reason".into(),
                        format!("{reason}: the failed full {} cannot be resumed", p.tag),
                    );
                    if !cleaned.is_empty() {
                        out.details.insert("cleaned_up".into(), cleaned.join(","));
                    }
                    Some(self.new_full(job).await?)
                }
            },
            None if kind == JobKind::Full || !self.has_full().await? => {
                Some(self.new_full(job).await?)
            }
            None => None,
        };
        let Some(mut full) = pending else {
            return self
                .single(job, RecoveryPointKind::Incremental, dbid, instances, out)
                .await;
        };
        let cleaned = if resumed {
            let uncatalogued = self.delete_uncatalogued(&full.command_id).await?;
            if !uncatalogued.is_empty() {
                out.details
                    .insert("uncatalogued_deleted".into(), uncatalogued.join(","));
            }
            let cleaned = self.cleanup(&full.tag).await?;
            let expired = self.crosscheck(&full.tag).await?;
            if !expired.is_empty() {
                out.details
                    .insert("expired_pieces".into(), expired.join(","));
            }
            cleaned
        } else {
            Vec::new()
        };
        if !cleaned.is_empty() {
            out.details.insert("cleaned_up".into(), cleaned.join(","));
        }
        out.details.insert("level".into(), "0".into());
        out.details.insert("tag".into(), full.tag.clone());
        out.details
            .insert("command_id".into(), full.command_id.clone());
        out.details
            .insert("start_time".into(), full.start_time.clone());
        out.details.insert("resumed".into(), resumed.to_string());
        // Recorded before RMAN starts: an agent that dies mid-backup resumes it too.
        st.pending_full = Some(full.clone());
        self.state.save(&st)?;
        let what = BackupWhat::Database {
            level: 0,
            since: resumed.then(|| full.start_time.clone()),
        };
        let mut runs = self
            .runs_with_failover(
                job,
                (&full.command_id, &full.tag),
                &what,
                &full.start_time,
                instances,
                out,
            )
            .await?;
        runs[0].cleaned_up.splice(0..0, cleaned);
        let last = runs.last().expect("at least one run");
        let ok = last.succeeded;
        let message = last.message.clone();
        let skipped: BTreeSet<u32> = runs
            .iter()
            .flat_map(|a| a.skipped_datafiles.iter().copied())
            .collect();
        out.details
            .insert("skipped_datafiles".into(), comma_list(&skipped));
        let job_runs = runs.len();
        full.attempts.extend(runs);
        // Saved before the recovery point is made: if that fails, the next request resumes
        // (skipping every file) and records all attempts.
        st.pending_full = Some(full.clone());
        self.state.save(&st)?;
        if !ok {
            out.details
                .insert("attempts".into(), full.attempts.len().to_string());
            return Err(AgentError::Job(message));
        }
        // The point must restore every datafile from its own pieces in the vault. A piece
        // RMAN counts that the vault lacks (a commit lost with a crashed host) is
        // crosschecked EXPIRED; a file NOT BACKED UP SINCE skipped because of another
        // backup (another tag, another media, finished in the start's second) has no piece
        // of this tag. Such files are backed up again, by number, into the same tag.
        let absent = self.absent_in_vault(&full.tag).await?;
        if !absent.is_empty() {
            tracing::warn!(job = %job.id, pieces = ?absent, "pieces RMAN lists are not in the vault: backing their files up again");
            out.details
                .insert("expired_pieces".into(), absent.join(","));
            self.crosscheck(&full.tag).await?;
        }
        let uncovered = self.uncovered_datafiles(&full.tag).await?;
        if !uncovered.is_empty() {
            tracing::warn!(job = %job.id, files = ?uncovered, "datafiles without a piece of the tag: backing them up");
            out.details
                .insert("backed_up_again".into(), comma_list(&uncovered));
            let again = BackupWhat::Datafiles {
                level: 0,
                files: uncovered,
            };
            let run = self
                .attempt(
                    job,
                    job_runs + 1,
                    &full.command_id,
                    &full.tag,
                    &again,
                    instances,
                )
                .await?;
            let ok = run.succeeded;
            let message = run.message.clone();
            full.attempts.push(run);
            st.pending_full = Some(full.clone());
            self.state.save(&st)?;
            if !ok {
                return Err(AgentError::Job(message));
            }
        }
        let rp = self
            .record(
                dbid,
                RecoveryPointKind::Full,
                &full.tag,
                &full.command_id,
                &full.attempts,
                out,
            )
            .await?;
        st.pending_full = None;
        self.state.save(&st)?;
        // The estimate is the datafiles' size; the pieces hold less (unused blocks, pieces of
        // earlier attempts): done is done.
        self.progress(job, estimate, Some(estimate)).await;
        Ok(format!(
            "full backup {} done in {} attempt(s): recovery point {rp}",
            full.tag,
            full.attempts.len()
        ))
    }

    async fn new_full(&self, job: &Job) -> Result<PendingFull, AgentError> {
        let (tag, now) = self.unused_tag("ORCA_L0").await?;
        Ok(PendingFull {
            tag,
            command_id: format!("orca-{}", job.id),
            start_time: now,
            attempts: Vec::new(),
        })
    }

    /// A tag `<prefix>_<database time>` no backup piece carries yet, and that time. A backup
    /// that ends within the second it began (a small database) would otherwise give the next
    /// one its tag: that one's recovery point would list both backups' pieces, and a clean-up
    /// of a failed full by its tag would delete the other's. Waits for the database's clock
    /// to move on, at most a few seconds.
    async fn unused_tag(&self, prefix: &str) -> Result<(String, String), AgentError> {
        const TRIES: usize = 25;
        for _ in 0..TRIES {
            let now = self.db_now().await?;
            let tag = format!("{prefix}_{}", compact(&now));
            let taken = self
                .oracle
                .query(&format!(
                    "select count(*) n from v$backup_piece_details where tag = {}",
                    sql_str(&tag)
                ))
                .await?
                .first()
                .is_some_and(|r| num(r, "N") > 0);
            if !taken {
                return Ok((tag, now));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Err(AgentError::Job(format!(
            "every {prefix} tag of the last {} seconds is taken by backup pieces: is the database's clock stopped (select sysdate from dual)?",
            TRIES / 5
        )))
    }

    /// A level 1 or archived-log backup: one RMAN run, one recovery point (nothing to resume).
    async fn single(
        &self,
        job: &Job,
        kind: RecoveryPointKind,
        dbid: Option<u64>,
        instances: &[String],
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        let (prefix, what, name) = if kind == RecoveryPointKind::Archivelog {
            ("ORCA_ARC", BackupWhat::Archivelog, "archived log backup")
        } else {
            out.details.insert("level".into(), "1".into());
            let what = BackupWhat::Database {
                level: 1,
                since: None,
            };
            ("ORCA_L1", what, "incremental backup")
        };
        let (tag, now) = self.unused_tag(prefix).await?;
        let command_id = format!("orca-{}", job.id);
        out.details.insert("tag".into(), tag.clone());
        out.details.insert("command_id".into(), command_id.clone());
        let runs = self
            .runs_with_failover(job, (&command_id, &tag), &what, &now, instances, out)
            .await?;
        let last = runs.last().expect("at least one run");
        if !last.succeeded {
            return Err(AgentError::Job(last.message.clone()));
        }
        if runs.iter().all(|a| a.pieces.is_empty()) {
            return Ok(format!("{name}: nothing needed a backup"));
        }
        let rp = self
            .record(dbid, kind, &tag, &command_id, &runs, out)
            .await?;
        Ok(format!("{name} {tag} done: recovery point {rp}"))
    }

    async fn progress(&self, job: &Job, done: u64, estimated: Option<u64>) {
        let u = JobUpdate {
            bytes_done: Some(done),
            bytes_estimated: estimated,
            ..Default::default()
        };
        // Progress is advisory: a vault that is briefly away must not fail the backup.
        if let Err(e) = self.vault.update_job(&job.id, &u).await {
            tracing::warn!(job = %job.id, error = %e, "progress not recorded");
        }
    }

    /// The first missing archived log of any thread since `start`, as a reason; `None` when
    /// every thread's sequence is complete from the log holding `start` to the newest.
    async fn chain_gap(&self, start: &str) -> Result<Option<String>, AgentError> {
        let rows = self
            .oracle
            .query(
                "select thread#, sequence#, to_char(next_time, 'YYYY-MM-DD HH24:MI:SS') next_time, \
                 status, name from v$archived_log",
            )
            .await?;
        let mut threads: BTreeMap<u64, BTreeMap<u64, (String, bool)>> = BTreeMap::new();
        for r in &rows {
            let name = text(r, "NAME");
            let usable = text(r, "STATUS") == "A" && !name.is_empty() && Path::new(name).exists();
            let e = threads
                .entry(num(r, "THREAD#"))
                .or_default()
                .entry(num(r, "SEQUENCE#"))
                .or_insert((text(r, "NEXT_TIME").to_string(), false));
            // A log archived to several destinations is there if one copy is.
            e.1 |= usable;
        }
        for (thread, seqs) in &threads {
            let Some(first) = seqs
                .iter()
                .find(|(_, (next, _))| next.as_str() >= start)
                .map(|(s, _)| *s)
            else {
                continue;
            };
            let last = *seqs.keys().next_back().expect("non-empty");
            for seq in first..=last {
                if !seqs.get(&seq).is_some_and(|(_, usable)| *usable) {
                    return Ok(Some(format!(
                        "archived log thread {thread} sequence {seq} is missing since the failed attempt's start {start}"
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Precision cleanup: pieces of `tag` whose backup set never completed (sections of a
    /// multi-section file) are deleted in RMAN, which removes them from the vault through the
    /// SBT library; what RMAN could not remove there is deleted directly. Complete sets stay.
    async fn cleanup(&self, tag: &str) -> Result<Vec<String>, AgentError> {
        let pieces = self
            .tag_pieces("handle, set_stamp, set_count", tag, " and status = 'A'")
            .await?;
        let sets: BTreeSet<(u64, u64)> = self
            .oracle
            .query("select set_stamp, set_count from v$backup_set")
            .await?
            .iter()
            .map(|r| (num(r, "SET_STAMP"), num(r, "SET_COUNT")))
            .collect();
        let orphans: Vec<String> = pieces
            .iter()
            .filter(|r| !sets.contains(&(num(r, "SET_STAMP"), num(r, "SET_COUNT"))))
            .map(|r| text(r, "HANDLE").to_string())
            .collect();
        if orphans.is_empty() {
            return Ok(orphans);
        }
        let script = script::delete_pieces(&self.cfg, &self.db, &orphans);
        let run = self.maintenance("cleanup", &script).await?;
        if !run.success {
            return Err(AgentError::Job(format!(
                "deleting the unfinished sections {} failed: {}",
                orphans.join(", "),
                rman_error(&run.log)
            )));
        }
        let ns = self.vault_namespace().await?;
        for h in &orphans {
            let name = format!("{ns}{h}");
            if self.vault.info(&name).await?.is_some() {
                self.vault
                    .delete(&name)
                    .await
                    .map_err(|source| AgentError::Repo {
                        context: format!("deleting piece {h} in the vault"),
                        source: Box::new(source),
                    })?;
            }
        }
        tracing::info!(tag, pieces = orphans.len(), "unfinished sections deleted");
        Ok(orphans)
    }

    /// The handles RMAN's catalog knows (every piece not deleted).
    async fn catalogued(&self) -> Result<BTreeSet<String>, AgentError> {
        Ok(self
            .oracle
            .query("select handle, status from v$backup_piece")
            .await?
            .iter()
            .filter(|r| text(r, "STATUS") != "D")
            .map(|r| text(r, "HANDLE").to_string())
            .collect())
    }

    /// The committed pieces of this database in the vault, as (handle, piece).
    async fn vault_pieces(&self) -> Result<Vec<(String, PieceInfo)>, AgentError> {
        let ns = self.vault_namespace().await?;
        let filter = PieceFilter {
            name_prefix: Some(ns.clone()),
            ..Default::default()
        };
        let list = self
            .vault
            .list(&filter)
            .await
            .map_err(|source| AgentError::Repo {
                context: "listing the database's pieces in the vault".into(),
                source: Box::new(source),
            })?;
        Ok(list
            .into_iter()
            .filter_map(|p| Some((p.name.strip_prefix(&ns)?.to_string(), p)))
            .collect())
    }

    /// Pieces the SBT library committed for `command_id` that RMAN never recorded (the
    /// backup died between the vault's commit and RMAN's catalog record) are deleted from
    /// the vault: no recovery point can name them and no RMAN command can remove them.
    async fn delete_uncatalogued(&self, command_id: &str) -> Result<Vec<String>, AgentError> {
        let known = self.catalogued().await?;
        let mut deleted = Vec::new();
        for (handle, p) in self.vault_pieces().await? {
            let mine = p.meta.labels.get(COMMAND_ID_LABEL).map(String::as_str) == Some(command_id);
            if !mine || known.contains(&handle) {
                continue;
            }
            self.vault
                .delete(&p.name)
                .await
                .map_err(|source| AgentError::Repo {
                    context: format!("deleting the uncatalogued piece {handle} in the vault"),
                    source: Box::new(source),
                })?;
            deleted.push(handle);
        }
        if !deleted.is_empty() {
            tracing::info!(command_id, pieces = ?deleted, "pieces RMAN never recorded deleted from the vault");
        }
        Ok(deleted)
    }

    /// Committed pieces of this database no recovery point and no RMAN catalog names: left
    /// by failures the agent could not clean up, for the DBA to delete or keep.
    pub async fn orphans(&self) -> Result<Vec<PieceInfo>, AgentError> {
        let known = self.catalogued().await?;
        let f = RecoveryPointFilter {
            database: Some(self.db.name.clone()),
            ..Default::default()
        };
        let named: BTreeSet<String> = self
            .vault
            .recovery_points(&f)
            .await?
            .into_iter()
            .flat_map(|rp| rp.pieces)
            .collect();
        Ok(self
            .vault_pieces()
            .await?
            .into_iter()
            .filter(|(h, p)| !known.contains(h) && !named.contains(&p.name))
            .map(|(_, p)| p)
            .collect())
    }

    /// The RMAN runs of one job. RAC: when a secondary instance went down during a run (its
    /// channels failed, the others finished their steps), an alert is raised and the backup
    /// runs again on the instances left, skipping what is done (`NOT BACKED UP SINCE TIME
    /// '<since>'`, same tag and command id) after unfinished sections are cleaned up. The
    /// primary going down fails the job.
    async fn runs_with_failover(
        &self,
        job: &Job,
        (command_id, tag): (&str, &str),
        what: &BackupWhat,
        since: &str,
        instances: &[String],
        out: &mut Outcome,
    ) -> Result<Vec<Attempt>, AgentError> {
        let mut eligible = instances.to_vec();
        let mut what = what.clone();
        let mut runs = Vec::new();
        let mut cleaned = Vec::new();
        loop {
            let mut run = self
                .attempt(job, runs.len() + 1, command_id, tag, &what, &eligible)
                .await?;
            run.cleaned_up = std::mem::take(&mut cleaned);
            if run.succeeded || eligible.is_empty() {
                runs.push(run);
                return Ok(runs);
            }
            let lost: Vec<String> = match self.open_instances().await {
                Ok(open) => eligible
                    .iter()
                    .filter(|i| !open.contains(&i.to_ascii_lowercase()))
                    .cloned()
                    .collect(),
                Err(_) => Vec::new(),
            };
            let primary_lost = lost.contains(&eligible[0]);
            if primary_lost {
                run.message = format!(
                    "the primary instance {} went down during the backup: {}",
                    eligible[0], run.message
                );
            }
            runs.push(run);
            if lost.is_empty() || primary_lost {
                return Ok(runs);
            }
            for l in &lost {
                out.alerts.push(went_down(l));
                tracing::warn!(job = %job.id, instance = %l, "instance went down: the backup goes on without it");
            }
            out.details.insert("alerts".into(), out.alerts.join("; "));
            eligible.retain(|i| !lost.contains(i));
            out.details.insert("instances".into(), eligible.join(","));
            cleaned = self.cleanup(tag).await?;
            if let BackupWhat::Database { since: s, .. } = &mut what {
                *s = Some(since.to_string());
            }
        }
    }

    /// Crosschecks the pieces of `tag` against the vault; the handles found EXPIRED.
    async fn crosscheck(&self, tag: &str) -> Result<Vec<String>, AgentError> {
        let run = self
            .maintenance(
                "crosscheck",
                &script::crosscheck_tag(&self.cfg, &self.db, tag),
            )
            .await?;
        if !run.success {
            return Err(AgentError::Job(format!(
                "crosschecking the pieces of {tag} against the vault failed: {}",
                rman_error(&run.log)
            )));
        }
        Ok(expired_handles(&run.log))
    }

    /// `columns` of the `v$backup_piece` rows of `tag`, `and_where` narrowing them.
    async fn tag_pieces(
        &self,
        columns: &str,
        tag: &str,
        and_where: &str,
    ) -> Result<Vec<Row>, AgentError> {
        self.oracle
            .query(&format!(
                "select {columns} from v$backup_piece where tag = {}{and_where}",
                sql_str(tag)
            ))
            .await
    }

    /// Datafiles no complete set of `tag` holds with all its pieces available.
    async fn uncovered_datafiles(&self, tag: &str) -> Result<Vec<u32>, AgentError> {
        let pieces = self
            .tag_pieces("set_stamp, set_count, status", tag, "")
            .await?;
        let key = |r: &Row| (num(r, "SET_STAMP"), num(r, "SET_COUNT"));
        let unavailable: BTreeSet<(u64, u64)> = pieces
            .iter()
            .filter(|r| text(r, "STATUS") != "A")
            .map(key)
            .collect();
        let usable: BTreeSet<(u64, u64)> = pieces
            .iter()
            .map(key)
            .filter(|k| !unavailable.contains(k))
            .collect();
        let covered: BTreeSet<u64> = self
            .oracle
            .query("select set_stamp, set_count, file# from v$backup_datafile where file# > 0")
            .await?
            .iter()
            .filter(|r| usable.contains(&key(r)))
            .map(|r| num(r, "FILE#"))
            .collect();
        self.oracle
            .query("select file# from v$datafile")
            .await?
            .iter()
            .map(|r| num(r, "FILE#"))
            .filter(|f| !covered.contains(f))
            .map(|f| {
                u32::try_from(f).map_err(|_| {
                    AgentError::Job(format!(
                        "v$datafile lists file# {f}, beyond any Oracle file"
                    ))
                })
            })
            .collect()
    }

    /// The pieces of `tag` RMAN lists as available that the vault does not hold.
    async fn absent_in_vault(&self, tag: &str) -> Result<Vec<String>, AgentError> {
        let pieces = self
            .oracle
            .query(&format!(
                "select handle from v$backup_piece_details where tag = {} and status = 'A'",
                sql_str(tag)
            ))
            .await?;
        let ns = self.vault_namespace().await?;
        let mut absent = Vec::new();
        for r in &pieces {
            let h = text(r, "HANDLE");
            if self.vault.info(&format!("{ns}{h}")).await?.is_none() {
                absent.push(h.to_string());
            }
        }
        Ok(absent)
    }

    /// One RMAN run of a backup; what it did, from its log and the SBT trace. The first run
    /// of a job logs to `<job>.log`, later ones (RAC failover) to `<job>.<n>.log`.
    async fn attempt(
        &self,
        job: &Job,
        run_no: usize,
        command_id: &str,
        tag: &str,
        what: &BackupWhat,
        instances: &[String],
    ) -> Result<Attempt, AgentError> {
        let dir = self.state.dir().to_path_buf();
        crate::state::private_dir(&dir)
            .map_err(AgentError::io(format!("cannot create {}", dir.display())))?;
        script::write_secrets(&self.cfg, &self.db)?;
        let name = if run_no == 1 {
            job.id.clone()
        } else {
            format!("{}.{run_no}", job.id)
        };
        let cmd = dir.join(format!("{name}.rman"));
        let log = dir.join(format!("{name}.log"));
        write_private(
            &cmd,
            &script::backup(&self.cfg, &self.db, instances, command_id, tag, what),
        )?;
        // RMAN keeps the mode of a log that exists: owner only.
        write_private(&log, "")?;
        let trace_from = self
            .db
            .sbt_trace
            .as_ref()
            .and_then(|t| std::fs::metadata(t).ok())
            .map_or(0, |m| m.len());
        let progress_sql = format!(
            "select nvl(sum(bytes), 0) bytes from v$backup_piece where tag = {} and status = 'A'",
            sql_str(tag)
        );
        let mut rman = self.oracle.rman(&cmd, &log)?;
        let run = loop {
            if let Some(run) = rman.wait(std::time::Duration::from_secs(1)).await? {
                break run;
            }
            if let Ok(rows) = self.oracle.query(&progress_sql).await {
                let done = rows.first().map(|r| num(r, "BYTES")).unwrap_or(0);
                self.progress(job, done, None).await;
            }
        };
        let events = parse_log(&run.log);
        let summary = RmanSummary::from_events(&events);
        let sections = sections_of(&events);
        let stats = self.trace_stats(trace_from);
        let pieces = summary
            .pieces
            .iter()
            .map(|p| {
                let (bytes_in, new_bytes) = stats.get(&p.handle).copied().unwrap_or((0, 0));
                PieceStat {
                    handle: p.handle.clone(),
                    section: sections.handles.get(&p.handle).copied(),
                    bytes_in,
                    new_bytes,
                }
            })
            .collect();
        let succeeded = run.success && summary.succeeded();
        let message = if succeeded {
            String::new()
        } else {
            format!(
                "rman failed (exit {}): {}",
                run.exit_code
                    .map_or_else(|| "by a signal".to_string(), |c| c.to_string()),
                rman_error(&run.log)
            )
        };
        tracing::info!(job = %job.id, tag, succeeded, skipped = ?summary.skipped_datafiles, "rman finished");
        Ok(Attempt {
            job: job.id.clone(),
            succeeded,
            message,
            pieces,
            started: sections.started,
            skipped_datafiles: summary.skipped_datafiles,
            cleaned_up: Vec::new(),
        })
    }

    /// Per piece handle, (bytes_in, new_bytes) from the SBT trace lines written since `from`.
    fn trace_stats(&self, from: u64) -> BTreeMap<String, (u64, u64)> {
        let Some(path) = &self.db.sbt_trace else {
            return BTreeMap::new();
        };
        let Ok(bytes) = std::fs::read(path) else {
            return BTreeMap::new();
        };
        let seen = usize::try_from(from)
            .ok()
            .and_then(|from| bytes.get(from..))
            .unwrap_or_default();
        let tail = String::from_utf8_lossy(seen).into_owned();
        parse_trace(&tail)
    }

    /// Creates the recovery point of `tag` from the views, with the statistics of `attempts`.
    async fn record(
        &self,
        dbid: Option<u64>,
        kind: RecoveryPointKind,
        tag: &str,
        command_id: &str,
        attempts: &[Attempt],
        out: &mut Outcome,
    ) -> Result<String, AgentError> {
        let pieces = self
            .oracle
            .query(&format!(
                "select handle, bytes, set_stamp, set_count, session_key from v$backup_piece_details \
                 where tag = {} and status = 'A'",
                sql_str(tag)
            ))
            .await?;
        if pieces.is_empty() {
            return Err(AgentError::Job(format!(
                "RMAN reported success but v$backup_piece_details has no piece tagged {tag}"
            )));
        }
        let sets: BTreeSet<(u64, u64)> = pieces
            .iter()
            .map(|r| (num(r, "SET_STAMP"), num(r, "SET_COUNT")))
            .collect();
        let sessions: BTreeSet<u64> = pieces.iter().map(|r| num(r, "SESSION_KEY")).collect();
        let (first_scn, next_scn) = self.scn_range(kind, &sets).await?;
        let status = self
            .oracle
            .query(&format!(
                "select row_type, operation, status, input_bytes, output_bytes from v$rman_status \
                 where command_id = {}",
                sql_str(command_id)
            ))
            .await?;
        let commands: Vec<&Row> = status
            .iter()
            .filter(|r| text(r, "ROW_TYPE") == "COMMAND" && text(r, "OPERATION") == "BACKUP")
            .collect();
        let rman_in: u64 = commands.iter().map(|r| num(r, "INPUT_BYTES")).sum();
        let rman_out: u64 = commands.iter().map(|r| num(r, "OUTPUT_BYTES")).sum();
        let read: u64 = attempts
            .iter()
            .flat_map(|a| &a.pieces)
            .map(|p| p.bytes_in)
            .sum();
        // Sent bytes as the vault counted them, over every attempt, pieces finished or not:
        // the SBT trace only knows the pieces that committed.
        let transfer = self.vault.transfer(command_id).await?;
        let ns = self.vault_namespace().await?;
        let mut handles: Vec<String> = pieces
            .iter()
            .map(|r| format!("{ns}{}", text(r, "HANDLE")))
            .collect();
        let mut seen = BTreeSet::new();
        handles.retain(|h| seen.insert(h.clone()));
        let mut labels = BTreeMap::new();
        crate::point::complete(
            &self.oracle,
            &self.vault,
            &self.db.name,
            (kind, tag, first_scn),
            &ns,
            &mut handles,
            &mut labels,
        )
        .await?;
        labels.insert("tag".to_string(), tag.to_string());
        labels.insert("command_id".into(), command_id.to_string());
        labels.insert("attempts".into(), attempts.len().to_string());
        labels.insert(
            "jobs".into(),
            attempts
                .iter()
                .map(|a| a.job.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        labels.insert("rman_sessions".into(), sessions.len().to_string());
        labels.insert("rman_input_bytes".into(), rman_in.to_string());
        labels.insert("rman_output_bytes".into(), rman_out.to_string());
        if self.db.sbt_trace.is_some() {
            labels.insert("bytes_read".into(), read.to_string());
        }
        labels.insert("bytes_sent".into(), transfer.received_bytes.to_string());
        labels.insert("bytes_resent".into(), transfer.resent_bytes.to_string());
        labels.insert("bytes_stored".into(), transfer.stored_bytes.to_string());
        let cleaned: Vec<&str> = attempts
            .iter()
            .flat_map(|a| &a.cleaned_up)
            .map(String::as_str)
            .collect();
        if !cleaned.is_empty() {
            labels.insert("cleaned_up".into(), cleaned.join(","));
        }
        // Tags have one-second resolution and two jobs can start within one
        // second; the command id (one per job, kept across a full's
        // attempts) makes the point's id unique and stable on retry.
        let job_part = command_id.rsplit('-').next().unwrap_or(command_id);
        let rp_id = format!(
            "rp-{}-{job_part}",
            tag.to_ascii_lowercase().replace('_', "-")
        );
        let new = NewRecoveryPoint {
            id: Some(rp_id),
            database: self.db.name.clone(),
            dbid,
            kind,
            created: None,
            first_scn,
            next_scn,
            pieces: handles,
            labels: labels.clone(),
        };
        let rp = self.vault.create_recovery_point(&new).await?;
        out.details.extend(labels);
        out.details.insert("recovery_point".into(), rp.id.clone());
        Ok(rp.id)
    }

    /// Datafile sets: the lowest checkpoint SCN and the highest SCN in them; archived-log
    /// sets: the first and next SCN of the logs.
    async fn scn_range(
        &self,
        kind: RecoveryPointKind,
        sets: &BTreeSet<(u64, u64)>,
    ) -> Result<(Option<u64>, Option<u64>), AgentError> {
        let (sql, lo, hi) = if kind == RecoveryPointKind::Archivelog {
            (
                "select set_stamp, set_count, first_change# lo, next_change# hi from v$backup_redolog",
                "LO",
                "HI",
            )
        } else {
            (
                "select set_stamp, set_count, checkpoint_change# lo, absolute_fuzzy_change# hi from v$backup_datafile where file# > 0",
                "LO",
                "HI",
            )
        };
        let rows = self.oracle.query(sql).await?;
        let mine: Vec<&Row> = rows
            .iter()
            .filter(|r| sets.contains(&(num(r, "SET_STAMP"), num(r, "SET_COUNT"))))
            .collect();
        let first = mine.iter().map(|r| num(r, lo)).filter(|v| *v > 0).min();
        let next = mine.iter().map(|r| num(r, hi).max(num(r, lo))).max();
        Ok((first, next))
    }
}

/// An RMAN command file or log: owner only, like the directory it is in.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), AgentError> {
    crate::state::write_private(path, text.as_bytes())
        .map_err(AgentError::io(format!("writing {}", path.display())))
}

/// The handles RMAN names on the `backup piece handle=H RECID=.. STAMP=..` line after each
/// line `marker` accepts.
fn handles_after(log: &str, marker: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = log.lines().map(str::trim);
    while let Some(l) = lines.next() {
        if marker(l)
            && let Some(h) = lines
                .next()
                .and_then(|n| n.strip_prefix("backup piece handle="))
                .and_then(|r| r.split_whitespace().next())
        {
            out.push(h.to_string());
        }
    }
    out
}

/// The handles RMAN's `DELETE` reports as deleted.
fn deleted_handles(log: &str) -> Vec<String> {
    handles_after(log, |l| l == "deleted backup piece")
}

/// The handles RMAN's `CROSSCHECK` found EXPIRED.
fn expired_handles(log: &str) -> Vec<String> {
    handles_after(log, |l| l.ends_with("found to be 'EXPIRED'"))
}

fn went_down(instance: &str) -> String {
    format!("instance {instance} went down during the backup")
}

/// The error lines of an RMAN log (RMAN-, ORA-, ORA-19511 media manager text), joined.
pub(crate) fn rman_error(log: &str) -> String {
    let stacks = RmanSummary::from_events(&parse_log(log)).errors;
    let lines: Vec<String> = stacks
        .iter()
        .flatten()
        .filter(|e| !e.is_banner())
        .map(|e| format!("{}: {}", e.id(), e.message.lines().next().unwrap_or("")))
        .take(6)
        .collect();
    if lines.is_empty() {
        "the log ends without an error stack (rman was killed)".into()
    } else {
        lines.join("; ")
    }
}

/// Which datafile sections an RMAN run started, and which section each handle holds.
#[derive(Debug, Default)]
struct Sections {
    started: Vec<(u32, u32)>,
    handles: BTreeMap<String, (u32, u32)>,
}

fn sections_of(events: &[RmanEvent]) -> Sections {
    let mut s = Sections::default();
    let mut file_of: BTreeMap<String, u32> = BTreeMap::new();
    let mut specifying: Option<String> = None;
    let mut finished: Option<(u32, u32)> = None;
    for e in events {
        match e {
            RmanEvent::BackupSetStarted { channel, .. } => {
                file_of.remove(channel);
            }
            RmanEvent::Specifying { channel, .. } => specifying = Some(channel.clone()),
            // `input datafile` lines carry no channel: they follow that channel's
            // `specifying datafile(s)` line.
            RmanEvent::InputDatafile { file_no, .. } => {
                if let Some(c) = &specifying {
                    file_of.entry(c.clone()).or_insert(*file_no);
                }
            }
            RmanEvent::PieceStarted { channel, piece, .. } => {
                if let Some(f) = file_of.get(channel) {
                    s.started.push((*f, *piece));
                }
            }
            RmanEvent::PieceFinished { channel, piece, .. } => {
                finished = file_of.get(channel).map(|f| (*f, *piece));
            }
            RmanEvent::PieceHandle {
                channel: None,
                handle,
                ..
            } => {
                if let Some(sec) = finished.take() {
                    s.handles.insert(handle.clone(), sec);
                }
            }
            _ => {}
        }
    }
    s
}

/// `piece <name> committed: bytes_in=N new_bytes=M ...` lines of the SBT trace.
fn parse_trace(text: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once(" piece ") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(" committed: ") else {
            continue;
        };
        let field = |k: &str| {
            stats
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.insert(name.to_string(), (field("bytes_in"), field("new_bytes")));
    }
    out
}

/// File numbers as a job detail: `2,3,7`.
fn comma_list<'a>(files: impl IntoIterator<Item = &'a u32>) -> String {
    files
        .into_iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines_give_bytes_per_piece() {
        let t = "SBT-1 12/02/26 14:00:00 sbtbackup x\nSBT-1 12/02/26 14:00:01 piece 0a_1_1 committed: bytes_in=100 new_bytes=40 chunks=1\n";
        assert_eq!(parse_trace(t)["0a_1_1"], (100, 40));
    }

    #[test]
    fn deleted_pieces_are_read_from_rmans_delete_output() {
        let log = "List of Backup Pieces\nBP Key  BS Key\n12 3 1 1 AVAILABLE SBT_TAPE 0a_1_1\n\
                   deleted backup piece\nbackup piece handle=0a_1_1 RECID=12 STAMP=99\n\
                   deleted backup piece\nbackup piece handle=0b_1_1 RECID=13 STAMP=99\nDeleted 2 objects\n";
        assert_eq!(deleted_handles(log), ["0a_1_1", "0b_1_1"]);
        assert!(deleted_handles("specification does not match any backup").is_empty());
    }

    #[test]
    fn expired_pieces_are_read_from_rmans_crosscheck_output() {
        let log = "crosschecked backup piece: found to be 'AVAILABLE'\n\
                   backup piece handle=0a_1_1 RECID=12 STAMP=99\n\
                   crosschecked backup piece: found to be 'EXPIRED'\n\
                   backup piece handle=0b_1_1 RECID=13 STAMP=99\nCrosschecked 2 objects\n";
        assert_eq!(expired_handles(log), ["0b_1_1"]);
    }

    #[test]
    fn tags_fit_in_thirty_characters() {
        assert_eq!(compact("2026-12-02 14:25:09"), "20261202T142509");
        assert!(format!("ORCA_ARC_{}", compact("2026-12-02 14:25:09")).len() <= 30);
    }
}
