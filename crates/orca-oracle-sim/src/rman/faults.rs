//! Fault switches: environment variables that make `rman` fail the way production failures
//! look (documented in PIECE.md, "Fault switches").

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The switches, read once per rman process.
#[derive(Debug, Default)]
pub struct Faults {
    /// `ORACLESIM_FAIL_AFTER_BYTES`: a channel fails after writing this many piece bytes.
    pub fail_after_bytes: Option<u64>,
    /// `ORACLESIM_FAIL_AT_PIECE`: the K-th piece of this process fails (1-based).
    pub fail_at_piece: Option<u64>,
    /// `ORACLESIM_FAIL_AFTER_SECTIONS`: sections after the first K fail.
    pub fail_after_sections: Option<u64>,
    /// `ORACLESIM_KILL_CHANNEL_AFTER_BYTES`: the channel server process is killed.
    pub kill_channel_after_bytes: Option<u64>,
    /// `ORACLESIM_KILL_AFTER_BYTES`: the whole rman process tree is killed.
    pub kill_after_bytes: Option<u64>,
    /// `ORACLESIM_INSTANCE_DOWN_AFTER_BYTES`: the RAC instance of
    /// `ORACLESIM_INSTANCE_DOWN_THREAD` goes down (as `oraclesim instance down` does) once
    /// the channels wrote this many bytes; channels connected to it fail at their next buffer.
    pub instance_down_after_bytes: Option<u64>,
    pub instance_down_thread: Option<u64>,
    /// `ORACLESIM_FAULT=die-after-sbtclose2:N`: the process tree dies by SIGKILL right after
    /// the N-th piece of this process was committed by the media manager (sbtclose2
    /// returned), before RMAN records it: the media manager holds a piece no catalog names.
    pub die_after_sbtclose2: Option<u64>,
    sbt_closes: AtomicU64,
    instance_taken_down: AtomicBool,
    /// The name of the instance the switch took down.
    downed_instance: Mutex<Option<String>>,
    pieces_started: AtomicU64,
    sections_done: AtomicU64,
    total_bytes: AtomicU64,
}

/// A variable that is set but unusable is an error rather than silently ignored: a test that
/// meant to inject a fault must not pass because of a typo.
pub fn read_var(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v:?} is not a non-negative integer")),
    }
}

/// `ORACLESIM_FAULT=die-after-sbtclose2:N`, the only named fault so far.
fn read_fault() -> Result<Option<u64>, String> {
    let Ok(v) = std::env::var("ORACLESIM_FAULT") else {
        return Ok(None);
    };
    if v.trim().is_empty() {
        return Ok(None);
    }
    v.trim()
        .strip_prefix("die-after-sbtclose2:")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| format!("ORACLESIM_FAULT={v:?}: expected die-after-sbtclose2:N (N >= 1)"))
}

impl Faults {
    /// Reads the switches from the environment.
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            fail_after_bytes: read_var("ORACLESIM_FAIL_AFTER_BYTES")?,
            fail_at_piece: read_var("ORACLESIM_FAIL_AT_PIECE")?,
            fail_after_sections: read_var("ORACLESIM_FAIL_AFTER_SECTIONS")?,
            kill_channel_after_bytes: read_var("ORACLESIM_KILL_CHANNEL_AFTER_BYTES")?,
            kill_after_bytes: read_var("ORACLESIM_KILL_AFTER_BYTES")?,
            instance_down_after_bytes: read_var("ORACLESIM_INSTANCE_DOWN_AFTER_BYTES")?,
            instance_down_thread: read_var("ORACLESIM_INSTANCE_DOWN_THREAD")?,
            die_after_sbtclose2: read_fault()?,
            ..Self::default()
        })
    }

    /// Counts a new piece; returns its ordinal (1-based) in this process.
    pub fn piece_started(&self) -> u64 {
        self.pieces_started.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// True when a section about to start must fail.
    pub fn section_must_fail(&self) -> bool {
        self.fail_after_sections
            .is_some_and(|k| self.sections_done.load(Ordering::SeqCst) >= k)
    }

    /// Counts a piece the media manager committed; the process tree dies at the switch's.
    pub fn sbt_closed(&self) {
        let n = self.sbt_closes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.die_after_sbtclose2 == Some(n) {
            crate::sbt::process::kill_process_tree();
        }
    }

    /// Counts a completed section.
    pub fn section_done(&self) {
        self.sections_done.fetch_add(1, Ordering::SeqCst);
    }

    /// Adds bytes written by any channel; kills the process tree once the total passes the
    /// `ORACLESIM_KILL_AFTER_BYTES` threshold.
    pub fn add_bytes(&self, n: u64) {
        let total = self.total_bytes.fetch_add(n, Ordering::SeqCst) + n;
        if self.kill_after_bytes.is_some_and(|k| total > k) {
            crate::sbt::process::kill_process_tree();
        }
        if self.instance_down_after_bytes.is_some_and(|k| total > k)
            && !self.instance_taken_down.swap(true, Ordering::SeqCst)
        {
            self.take_instance_down();
        }
    }

    /// Brings the switch's instance down in the database, so `gv$instance` shows it, and
    /// remembers its name for the channels connected to it.
    fn take_instance_down(&self) {
        let thread = self.instance_down_thread.unwrap_or(2);
        let name = (|| -> Result<String, crate::db::DbError> {
            let db = crate::db::Database::open_env()?;
            db.set_instance_state(thread as u16, false)?;
            Ok(db
                .instances()?
                .into_iter()
                .find(|i| u64::from(i.thread) == thread)
                .map(|i| i.name)
                .unwrap_or_default())
        })();
        match name {
            Ok(n) => {
                *self
                    .downed_instance
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(n)
            }
            Err(e) => eprintln!(
                "ORACLESIM_INSTANCE_DOWN_AFTER_BYTES: cannot take thread {thread} down: {e}"
            ),
        }
    }

    /// True once the switch took down the instance named `name`.
    pub fn instance_is_down(&self, name: &str) -> bool {
        self.downed_instance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(name))
    }
}
