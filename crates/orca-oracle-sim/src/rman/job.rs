//! Runs the steps of a command (backup sets, sections, copies, restores) on its channels in
//! parallel, one thread per channel, as RMAN's channel server processes work side by side.
//! A failed step prints RMAN-03009 and the other steps go on ("job failed will not be
//! re-run"); a channel that died takes no more steps.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::ast::DeviceType;
use super::channel::{Channel, ChannelError};
use super::datetime::{DateFormat, error_stamp};
use super::faults::Faults;
use super::output::Out;
use super::session::now;
use crate::db::{Database, DatabaseInfo};

/// What every worker needs (cheap to share).
#[derive(Debug)]
pub struct JobCtx {
    pub home: PathBuf,
    pub out: Out,
    pub faults: Arc<Faults>,
    pub info: DatabaseInfo,
    pub nls: DateFormat,
    /// Command name for RMAN-03009 ("backup", "restore", ...).
    pub command: &'static str,
    /// The command's V$RMAN_STATUS row (RECID, STAMP).
    pub status: Option<(i64, u32)>,
    /// SET DECRYPTION passwords, for encrypted pieces.
    pub decryption: Vec<String>,
}

/// A failed step.
#[derive(Debug)]
pub struct StepError {
    /// ORA-/RMAN- lines under RMAN-03009.
    pub lines: Vec<String>,
    /// The channel is unusable afterwards.
    pub fatal: bool,
}

impl From<ChannelError> for StepError {
    fn from(e: ChannelError) -> Self {
        StepError {
            fatal: e.kills_channel(),
            lines: e.ora_lines(),
        }
    }
}

impl StepError {
    /// A non-fatal failure with these lines.
    pub fn lines(lines: Vec<String>) -> Self {
        StepError {
            lines,
            fatal: false,
        }
    }
}

/// A unit of work that may need a channel of one device type.
pub trait Step: Send {
    fn device(&self) -> Option<DeviceType>;

    /// The one channel (by name) this step must run on, if any.
    fn channel(&self) -> Option<&str> {
        None
    }
}

/// Results and failures of a job.
#[derive(Debug)]
pub struct JobOutcome<R> {
    pub results: Vec<R>,
    /// RMAN-03009 blocks, in the order failures happened.
    pub failures: Vec<Vec<String>>,
    /// Steps never run (no live channel of their device type was left).
    pub not_run: usize,
}

/// Runs `steps` on `channels`; `f` executes one step on one channel with the worker's own
/// control-file connection.
pub fn run<S, R, F>(ctx: &JobCtx, channels: Vec<&mut Channel>, steps: Vec<S>, f: F) -> JobOutcome<R>
where
    S: Step,
    R: Send,
    F: Fn(&JobCtx, &mut Channel, &Database, S) -> Result<R, StepError> + Sync,
{
    let queue: Mutex<VecDeque<S>> = Mutex::new(steps.into());
    let results: Mutex<Vec<R>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for ch in channels {
            let (queue, results, failures, f) = (&queue, &results, &failures, &f);
            scope.spawn(move || {
                let db = match Database::open(&ctx.home) {
                    Ok(db) => db,
                    Err(e) => {
                        failures
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(vec![format!("ORA-00210: cannot open the specified control file ({e})")]);
                        return;
                    }
                };
                loop {
                    if ch.dead {
                        break;
                    }
                    let step = {
                        let mut q = lock(queue);
                        let pos = q
                            .iter()
                            .position(|s| {
                                s.device().is_none_or(|d| d == ch.device)
                                    && s.channel().is_none_or(|c| c.eq_ignore_ascii_case(&ch.name))
                            });
                        pos.and_then(|p| q.remove(p))
                    };
                    let Some(step) = step else { break };
                    match f(ctx, ch, &db, step) {
                        Ok(r) => results
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(r),
                        Err(e) => {
                            let mut lines = vec![format!(
                                "RMAN-03009: failure of {} command on {} channel at {}",
                                ctx.command,
                                ch.name,
                                error_stamp(now())
                            )];
                            if e.lines.first().is_some_and(|l| l.starts_with("ORA-03113")) {
                                lines.push(format!(
                                    "RMAN-10038: database session for channel {} terminated unexpectedly",
                                    ch.name
                                ));
                            }
                            lines.extend(e.lines);
                            if e.fatal {
                                ch.fail();
                            }
                            if !lock(queue).is_empty() {
                                for l in &lines {
                                    ctx.out.line(l);
                                }
                                ctx.out
                                    .line("continuing other job steps, job failed will not be re-run");
                            }
                            failures
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(lines);
                        }
                    }
                }
            });
        }
    });
    let not_run = queue
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len();
    JobOutcome {
        results: results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        failures: failures
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        not_run,
    }
}

/// Locks a queue, ignoring poisoning (a panicking step already reported itself).
fn lock<S>(m: &Mutex<VecDeque<S>>) -> std::sync::MutexGuard<'_, VecDeque<S>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
