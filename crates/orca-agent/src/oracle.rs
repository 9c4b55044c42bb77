//! Talking to the database the way a DBA's scripts do: `sqlplus -S <connect> as sysdba` for
//! the `v$` views (CSV markup) and `rman target <connect> cmdfile=... log=...` for the work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::AgentError;
use crate::config::DatabaseConfig;

/// One row of a query, by upper-case column name.
pub type Row = BTreeMap<String, String>;

/// A configured database's tools.
#[derive(Debug, Clone)]
pub struct Oracle {
    db: DatabaseConfig,
}

/// How an RMAN run ended.
#[derive(Debug)]
pub struct RmanRun {
    pub success: bool,
    pub exit_code: Option<i32>,
    pub log: String,
}

impl Oracle {
    pub fn new(db: &DatabaseConfig) -> Oracle {
        Oracle { db: db.clone() }
    }

    fn command(&self, program: PathBuf) -> Command {
        let mut c = Command::new(program);
        c.env("ORACLE_SID", &self.db.oracle_sid)
            .env("ORACLE_HOME", &self.db.oracle_home)
            // Dates in and out of RMAN in one unambiguous format (NOT BACKED UP SINCE TIME).
            .env("NLS_DATE_FORMAT", "YYYY-MM-DD HH24:MI:SS")
            .envs(&self.db.env)
            .kill_on_drop(true);
        c
    }

    /// Runs one query; the rows of its CSV output.
    pub async fn query(&self, sql: &str) -> Result<Vec<Row>, AgentError> {
        let mut c = self.command(self.db.sqlplus_path());
        c.arg("-S")
            .args(self.db.connect.split_whitespace())
            .args(["as", "sysdba"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(AgentError::io(format!(
            "sqlplus: cannot start {}",
            self.db.sqlplus_path().display()
        )))?;
        let script = format!(
            "whenever sqlerror exit failure\nset markup csv on\nset feedback off\nset pagesize 50000\n{sql};\nexit\n"
        );
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(AgentError::io("sqlplus: writing the query"))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(AgentError::io("sqlplus: waiting for it"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let errors: Vec<&str> = text
                .lines()
                .chain(stderr.lines())
                .filter(|l| l.starts_with("ORA-") || l.starts_with("SP2-"))
                .collect();
            return Err(AgentError::Tool {
                tool: "sqlplus",
                message: format!("{sql}: {}", errors.join("; ")),
            });
        }
        Ok(parse_csv(&text))
    }

    /// Starts RMAN on a command file, logging to `log`; [`Rman::wait`] ends it.
    pub fn rman(&self, cmdfile: &Path, log: &Path) -> Result<Rman, AgentError> {
        let mut c = self.command(self.db.rman_path());
        c.arg("target")
            .arg(&self.db.connect)
            .arg(format!("cmdfile={}", cmdfile.display()))
            .arg(format!("log={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = c.spawn().map_err(AgentError::io(format!(
            "rman: cannot start {}",
            self.db.rman_path().display()
        )))?;
        Ok(Rman {
            child,
            log: log.to_path_buf(),
        })
    }
}

/// A running RMAN.
#[derive(Debug)]
pub struct Rman {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Rman {
    /// Waits at most `tick`; `None` while RMAN still runs.
    pub async fn wait(&mut self, tick: std::time::Duration) -> Result<Option<RmanRun>, AgentError> {
        let status = tokio::select! {
            s = self.child.wait() => s.map_err(AgentError::io("rman: waiting for it"))?,
            _ = tokio::time::sleep(tick) => return Ok(None),
        };
        Ok(Some(RmanRun {
            success: status.success(),
            exit_code: status.code(),
            log: std::fs::read_to_string(&self.log).unwrap_or_default(),
        }))
    }

    /// Waits for the end.
    pub async fn finish(mut self) -> Result<RmanRun, AgentError> {
        loop {
            if let Some(r) = self.wait(std::time::Duration::from_secs(3600)).await? {
                return Ok(r);
            }
        }
    }
}

/// SQL*Plus `SET MARKUP CSV ON` output: a quoted header line, then rows; strings quoted with
/// `"` (doubled inside), numbers bare, NULL empty.
pub fn parse_csv(text: &str) -> Vec<Row> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<String> = fields(header)
        .into_iter()
        .map(|n| n.to_ascii_uppercase())
        .collect();
    lines
        .map(fields)
        .filter(|f| f.len() == names.len())
        .map(|f| names.iter().cloned().zip(f).collect())
        .collect()
}

fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A quoted SQL string literal.
pub fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_keep_commas_and_quotes_inside_strings() {
        let rows = parse_csv("\"A\",\"B\"\n1,\"x, \"\"y\"\"\"\n\n2,\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["B"], "x, \"y\"");
        assert_eq!(rows[1]["A"], "2");
        assert_eq!(rows[1]["B"], "");
    }
}
