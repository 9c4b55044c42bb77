//! The SBT trace file (`SBTINIT_TRACE_NAME`, default `sbtio.log` in the temp directory):
//! lines `SBT-<pid> <date> <text>` appended, as Oracle's reference library writes them.
//! Level 0 traces errors and per-piece statistics, 1 adds every call, 2 adds parameters.

use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Trace {
    path: PathBuf,
    pub level: u64,
}

impl Trace {
    pub fn new(path: PathBuf) -> Trace {
        Trace { path, level: 0 }
    }

    pub fn line(&self, level: u64, text: &str) {
        if level > self.level {
            return;
        }
        let stamp = chrono::Local::now().format("%m/%d/%y %H:%M:%S");
        let line = format!("SBT-{} {stamp} {text}\n", std::process::id());
        // Tracing must never fail a backup: an unwritable trace file is ignored.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
