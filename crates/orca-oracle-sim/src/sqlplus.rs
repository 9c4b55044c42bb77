//! The `sqlplus -S / as sysdba [@script]` stand-in.
//!
//! Reads SQL*Plus commands (SET, COLUMN, WHENEVER SQLERROR, PROMPT, EXIT, @file) and SQL
//! statements (ended by `;` or a `/` line) from a script and then standard input, runs
//! queries on the control file's `v$` views through SQLite (see [`sql::rewrite`]) and prints
//! them as SQL*Plus does ([`format::render`]), including `SET MARKUP CSV ON`.

pub mod format;
mod instance;
mod show;
pub mod sql;

use std::io::{BufRead, Write};
use std::process::ExitCode;

use rusqlite::types::Value;

use crate::db::{Database, DbError};
use format::{ColKind, Column, ColumnFormat, Settings};

/// What an error does (`WHENEVER SQLERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnError {
    Continue,
    Exit(u8),
}

struct Session {
    db: Option<Database>,
    settings: Settings,
    on_error: OnError,
    out: std::io::Stdout,
}

/// Why the session ends early.
enum Flow {
    Next,
    Exit(u8),
}

/// Entry point when the binary runs as `sqlplus`.
pub fn main(args: &[String]) -> ExitCode {
    let mut silent = false;
    let mut script: Option<String> = None;
    let mut rest = Vec::new();
    for a in args {
        if a.eq_ignore_ascii_case("-s") || a.eq_ignore_ascii_case("-silent") {
            silent = true;
        } else if let Some(f) = a.strip_prefix('@') {
            script = Some(f.to_string());
        } else {
            rest.push(a.as_str());
        }
    }
    let mut s = Session {
        db: None,
        settings: Settings::default(),
        on_error: OnError::Continue,
        out: std::io::stdout(),
    };
    if !silent {
        s.say("");
        s.say("SQL*Plus: Release 19.0.0.0.0 - Production");
        s.say("Version 19.3.0.0.0");
        s.say("");
    }
    if rest.is_empty() {
        s.say("ERROR:");
        s.say("ORA-01017: invalid username/password; logon denied");
        s.say("");
        s.say("Usage: sqlplus -S / as sysdba [@script.sql]   (ORACLESIM_HOME names the database)");
        return ExitCode::from(1);
    }
    match Database::connect_env() {
        Ok(db) => s.db = Some(db),
        Err(e) => {
            s.say("ERROR:");
            s.say("ORA-01034: ORACLE not available");
            s.say(&format!(
                "ORA-27101: shared memory realm does not exist ({e})"
            ));
            return ExitCode::from(1);
        }
    }
    if !silent {
        if s.is_idle() {
            s.say("Connected to an idle instance.");
        } else {
            s.say("Connected to:");
            s.say("Oracle Database 19c Enterprise Edition Release 19.0.0.0.0 - Production");
        }
        s.say("");
    }
    if let Some(path) = script {
        match run_file(&mut s, &path) {
            Flow::Exit(code) => return ExitCode::from(code),
            Flow::Next => {}
        }
    }
    let stdin = std::io::stdin();
    let lines: Vec<String> = stdin.lock().lines().map_while(Result::ok).collect();
    match run_lines(&mut s, lines.iter().map(String::as_str)) {
        Flow::Exit(code) => ExitCode::from(code),
        Flow::Next => ExitCode::SUCCESS,
    }
}

fn run_file(s: &mut Session, path: &str) -> Flow {
    let candidates = [path.to_string(), format!("{path}.sql")];
    let text = candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok());
    match text {
        Some(t) => run_lines(s, t.lines()),
        None => {
            s.say(&format!("SP2-0310: unable to open file \"{path}\""));
            Flow::Next
        }
    }
}

fn run_lines<'a>(s: &mut Session, lines: impl Iterator<Item = &'a str>) -> Flow {
    let mut buffer = String::new();
    for line in lines {
        let trimmed = line.trim();
        if buffer.is_empty() {
            if trimmed.is_empty() || trimmed.starts_with("--") || trimmed.starts_with("REM ") {
                continue;
            }
            if let Some(flow) = sqlplus_command(s, trimmed) {
                match flow {
                    Flow::Next => continue,
                    exit => return exit,
                }
            }
        }
        if trimmed == "/" {
            let stmt = std::mem::take(&mut buffer);
            if let Flow::Exit(c) = run_sql(s, &stmt) {
                return Flow::Exit(c);
            }
            continue;
        }
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(line);
        if trimmed.ends_with(';') {
            let stmt = std::mem::take(&mut buffer);
            let stmt = stmt.trim_end().trim_end_matches(';').to_string();
            if let Flow::Exit(c) = run_sql(s, &stmt) {
                return Flow::Exit(c);
            }
        }
    }
    Flow::Next
}

/// A SQL*Plus command line, or `None` when the line starts a SQL statement.
fn sqlplus_command(s: &mut Session, line: &str) -> Option<Flow> {
    let words: Vec<&str> = line.trim_end_matches(';').split_whitespace().collect();
    let first = words.first()?.to_ascii_uppercase();
    let arg = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase());
    match first.as_str() {
        "EXIT" | "QUIT" => Some(Flow::Exit(exit_code(arg(1).as_deref()))),
        "SET" => {
            set_command(s, &words[1..]);
            Some(Flow::Next)
        }
        "COLUMN" | "COL" => {
            column_command(s, &words[1..], line);
            Some(Flow::Next)
        }
        "WHENEVER" if arg(1).as_deref() == Some("SQLERROR") => {
            s.on_error = match arg(2).as_deref() {
                Some("EXIT") => OnError::Exit(exit_code(arg(3).as_deref()).max(1)),
                _ => OnError::Continue,
            };
            Some(Flow::Next)
        }
        "WHENEVER" => Some(Flow::Next),
        "PROMPT" | "PRO" => {
            let text = line.split_once(char::is_whitespace).map_or("", |x| x.1);
            s.say(text);
            Some(Flow::Next)
        }
        "SPOOL" | "TTITLE" | "BTITLE" | "CLEAR" | "BREAK" | "DEFINE" | "UNDEFINE" => {
            Some(Flow::Next)
        }
        "STARTUP" => {
            let up: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
            Some(s.startup(line, &up))
        }
        "SHUTDOWN" => Some(s.shutdown(line)),
        "ARCHIVE" if arg(1).as_deref() == Some("LOG") && arg(2).as_deref() == Some("LIST") => {
            Some(s.archive_log_list())
        }
        "SHOW" | "SHO" if arg(1).is_some_and(|w| w.starts_with("PARAMETER")) => {
            Some(s.show_parameter(words.get(2).copied()))
        }
        f if f.starts_with('@') => Some(run_file(s, f.trim_start_matches('@'))),
        _ => None,
    }
}

fn exit_code(arg: Option<&str>) -> u8 {
    match arg {
        None | Some("SUCCESS") => 0,
        Some("FAILURE") | Some("SQL.SQLCODE") => 1,
        Some("WARNING") => 2,
        Some(n) => n.parse::<u32>().map(|v| (v % 256) as u8).unwrap_or(1),
    }
}

fn on_off(v: Option<&str>) -> bool {
    !matches!(v.map(str::to_ascii_uppercase).as_deref(), Some("OFF"))
}

fn set_command(s: &mut Session, words: &[&str]) {
    let mut i = 0;
    while i < words.len() {
        let name = words[i].to_ascii_uppercase();
        let v = words.get(i + 1).copied();
        let unq = |v: Option<&str>| v.map(|x| x.trim_matches('\'').trim_matches('"').to_string());
        let st = &mut s.settings;
        match name.as_str() {
            "MARKUP" => {
                if v.is_some_and(|x| x.eq_ignore_ascii_case("CSV")) {
                    st.csv = on_off(words.get(i + 2).copied());
                    i += 3;
                    while i + 1 < words.len() {
                        match words[i].to_ascii_uppercase().as_str() {
                            "DELIMITER" | "DELIM" => {
                                st.csv_delimiter =
                                    unq(words.get(i + 1).copied()).unwrap_or_default()
                            }
                            "QUOTE" => st.csv_quote = on_off(words.get(i + 1).copied()),
                            _ => break,
                        }
                        i += 2;
                    }
                    continue;
                }
                i += words.len();
                continue;
            }
            n if n.starts_with("HEA") => st.heading = on_off(v),
            n if n.starts_with("PAGES") => {
                st.pagesize = v.and_then(|x| x.parse().ok()).unwrap_or(14)
            }
            n if n.starts_with("LIN") => st.linesize = v.and_then(|x| x.parse().ok()).unwrap_or(80),
            n if n.starts_with("FEED") => {
                st.feedback = match v.map(str::to_ascii_uppercase).as_deref() {
                    Some("OFF") => None,
                    Some("ON") | None => Some(1),
                    Some(n) => n.parse().ok().filter(|&n: &u64| n > 0),
                }
            }
            "COLSEP" => st.colsep = unq(v).unwrap_or_else(|| " ".into()),
            "NULL" => st.null_text = unq(v).unwrap_or_default(),
            n if n.starts_with("NUMW") => {
                st.numwidth = v.and_then(|x| x.parse().ok()).unwrap_or(10)
            }
            n if n.starts_with("UND") => {
                st.underline = match v {
                    Some(x) if x.eq_ignore_ascii_case("OFF") => None,
                    Some(x) if x.eq_ignore_ascii_case("ON") => Some('-'),
                    Some(x) => x.chars().next(),
                    None => Some('-'),
                }
            }
            n if n.starts_with("WRA") => st.wrap = on_off(v),
            "ECHO" => st.echo = on_off(v),
            n if n.starts_with("VER") => st.verify = on_off(v),
            n if n.starts_with("TERM") => st.termout = on_off(v),
            n if n.starts_with("TIMI") => st.timing = on_off(v),
            n if n.starts_with("NEWP") => st.newpage = v.and_then(|x| x.parse().ok()).unwrap_or(1),
            _ => {}
        }
        i += 2;
    }
}

fn column_command(s: &mut Session, words: &[&str], line: &str) {
    let Some(name) = words.first() else {
        return;
    };
    let cmd = s
        .settings
        .columns
        .entry(name.trim_matches('"').to_ascii_uppercase())
        .or_default();
    let mut i = 1;
    while i < words.len() {
        match words[i].to_ascii_uppercase().as_str() {
            "FORMAT" | "FOR" | "FORMA" => {
                if let Some(f) = words.get(i + 1) {
                    let up = f.to_ascii_uppercase();
                    cmd.format = Some(match up.strip_prefix('A').and_then(|w| w.parse().ok()) {
                        Some(w) => ColumnFormat::Text(w),
                        None => ColumnFormat::Number(up),
                    });
                }
                i += 2;
            }
            "HEADING" | "HEA" | "HEAD" => {
                let after = line
                    .to_ascii_uppercase()
                    .find("HEA")
                    .map(|p| &line[p..])
                    .and_then(|t| t.split_once(char::is_whitespace).map(|x| x.1.trim()))
                    .unwrap_or("");
                let text = after
                    .strip_prefix('\'')
                    .and_then(|t| t.split_once('\'').map(|x| x.0))
                    .or_else(|| {
                        after
                            .strip_prefix('"')
                            .and_then(|t| t.split_once('"').map(|x| x.0))
                    })
                    .unwrap_or_else(|| after.split_whitespace().next().unwrap_or(""));
                cmd.heading = Some(text.to_string());
                return;
            }
            "NOPRINT" | "NOPRI" => {
                cmd.noprint = true;
                i += 1;
            }
            _ => i += 1,
        }
    }
}

impl Session {
    fn say(&mut self, line: &str) {
        // A closed stdout (e.g. `| head`) leaves nobody to tell.
        let _ = writeln!(self.out, "{line}");
    }

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("connected before any statement runs")
    }

    /// Prints an ORA- error the way SQL*Plus does, then applies WHENEVER SQLERROR.
    fn ora_error(&mut self, stmt: &str, position: Option<usize>, ora: &str) -> Flow {
        let (line_no, col, text) = match position {
            Some(p) => {
                let before = &stmt[..p.min(stmt.len())];
                let line_no = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let text = stmt[line_start..].lines().next().unwrap_or("").to_string();
                (line_no, Some(p - line_start), text)
            }
            None => (1, None, String::new()),
        };
        if let Some(c) = col {
            self.say(&text);
            self.say(&format!("{}*", " ".repeat(c)));
        }
        self.say(&format!("ERROR at line {line_no}:"));
        self.say(ora);
        self.say("");
        let _ = self.out.flush();
        match self.on_error {
            OnError::Continue => Flow::Next,
            OnError::Exit(code) => Flow::Exit(code),
        }
    }

    fn feedback(&mut self, text: &str) {
        if self.settings.feedback.is_some() {
            self.say("");
            self.say(text);
            self.say("");
        }
    }
}

fn run_sql(s: &mut Session, stmt: &str) -> Flow {
    let stmt = stmt.trim();
    if stmt.is_empty() {
        return Flow::Next;
    }
    let words: Vec<String> = sql::words(stmt);
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match (w(0), w(1)) {
        ("SELECT", _) | ("WITH", _) => match s.unmounted_error(stmt) {
            Some(e) => s.ora_error(stmt, None, e),
            None => query(s, stmt),
        },
        ("ALTER", "SYSTEM") if s.not_mounted_error().is_some() => {
            let e = s.not_mounted_error().unwrap_or_default();
            s.ora_error(stmt, None, e)
        }
        ("ALTER", "SYSTEM") => {
            let rest = words[2..].join(" ");
            let r = match rest.as_str() {
                "ARCHIVE LOG CURRENT" | "SWITCH LOGFILE" => s.db().switch_logfile().map(|_| ()),
                "CHECKPOINT" => s.db().checkpoint().map(|_| ()),
                _ => return s.ora_error(stmt, None, "ORA-02065: illegal option for ALTER SYSTEM"),
            };
            done(s, stmt, r, "System altered.")
        }
        ("ALTER", "DATABASE") => {
            let rest = words[2..].join(" ");
            if let Some(flow) = s.alter_database_state(stmt, &rest) {
                return flow;
            }
            if let Some(e) = s.not_mounted_error() {
                return s.ora_error(stmt, None, e);
            }
            let r = if rest.starts_with("ENABLE BLOCK CHANGE TRACKING") {
                let file = stmt.split('\'').nth(1).map(std::path::PathBuf::from);
                s.db().enable_block_change_tracking(file.as_deref())
            } else if rest.starts_with("DISABLE BLOCK CHANGE TRACKING") {
                s.db().disable_block_change_tracking()
            } else if let Some(r) = s.db().execute_state_sql(stmt) {
                r.map(|_| ())
            } else {
                return s.ora_error(
                    stmt,
                    None,
                    "ORA-02231: missing or invalid option to ALTER DATABASE",
                );
            };
            done(s, stmt, r, "Database altered.")
        }
        ("ALTER", "TABLESPACE") => match s.db().execute_state_sql(stmt) {
            Some(r) => done(s, stmt, r.map(|_| ()), "Tablespace altered."),
            None => s.ora_error(
                stmt,
                None,
                "ORA-02142: missing or invalid ALTER TABLESPACE option",
            ),
        },
        ("ALTER", "SESSION") => {
            let up = stmt.to_ascii_uppercase();
            if up.contains("NLS_DATE_FORMAT")
                && let Some(fmt) = stmt.split('\'').nth(1)
            {
                s.settings.date_format = fmt.to_string();
                if let Ok(mut n) = s.db().nls().lock() {
                    n.date_format = fmt.to_string();
                }
            }
            s.feedback("Session altered.");
            Flow::Next
        }
        ("INSERT", _)
        | ("UPDATE", _)
        | ("DELETE", _)
        | ("CREATE", _)
        | ("DROP", _)
        | ("TRUNCATE", _)
        | ("MERGE", _) => s.ora_error(stmt, None, "ORA-01031: insufficient privileges"),
        ("COMMIT", _) => {
            s.feedback("Commit complete.");
            Flow::Next
        }
        _ => s.ora_error(stmt, Some(0), "ORA-00900: invalid SQL statement"),
    }
}

fn done(s: &mut Session, stmt: &str, r: Result<(), DbError>, ok: &str) -> Flow {
    match r {
        Ok(()) => {
            s.feedback(ok);
            Flow::Next
        }
        Err(e) => {
            let text = match &e {
                DbError::Oracle { .. } => e.to_string(),
                other => format!("ORA-00600: internal error code, arguments: [{other}]"),
            };
            s.ora_error(stmt, None, &text)
        }
    }
}

/// Maps an SQLite failure to the ORA- error Oracle gives for the same mistake.
fn translate(stmt: &str, msg: &str) -> (Option<usize>, String) {
    // Newer SQLite appends " in <sql> at offset N" to name errors.
    let named = |rest: &str| rest.split_whitespace().next().unwrap_or("").to_string();
    if let Some(name) = msg.strip_prefix("no such table: ").map(named) {
        let name = name.as_str();
        let pos = sql::find_ident(stmt, name);
        return (pos, "ORA-00942: table or view does not exist".into());
    }
    if let Some(name) = msg.strip_prefix("no such column: ").map(named) {
        let name = name.as_str();
        let pos = sql::find_ident(stmt, name);
        let shown = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
        return (
            pos,
            format!(
                "ORA-00904: \"{}\": invalid identifier",
                shown.to_ascii_uppercase()
            ),
        );
    }
    if let Some(name) = msg.strip_prefix("no such function: ").map(named) {
        let name = name.as_str();
        let pos = sql::find_ident(stmt, name);
        return (
            pos,
            format!(
                "ORA-00904: \"{}\": invalid identifier",
                name.to_ascii_uppercase()
            ),
        );
    }
    if msg.contains("syntax error") || msg.contains("incomplete input") {
        return (None, "ORA-00933: SQL command not properly ended".into());
    }
    (
        None,
        format!("ORA-00600: internal error code, arguments: [{msg}]"),
    )
}

/// A result column's heading and, when the view declares it, its kind.
type Heading = (String, Option<ColKind>);

fn query(s: &mut Session, stmt: &str) -> Flow {
    let rewritten = sql::rewrite(stmt);
    let result = (|| -> rusqlite::Result<(Vec<Heading>, Vec<Vec<Value>>)> {
        let conn = s.db().connection();
        let mut st = conn.prepare(&rewritten)?;
        let headings = sql::select_headings(stmt);
        let cols: Vec<Heading> = st
            .columns()
            .enumerate()
            .map(|(i, c)| {
                let heading = headings
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|_| headings.len() == st.column_count())
                    .unwrap_or_else(|| c.name().trim_matches('"').to_ascii_uppercase());
                (heading, format::kind_of_decl(c.decl_type()))
            })
            .collect();
        let n = cols.len();
        let rows = st
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
            .collect::<rusqlite::Result<Vec<Vec<Value>>>>()?;
        Ok((cols, rows))
    })();
    match result {
        Ok((cols, rows)) => {
            let columns: Vec<Column> = cols
                .into_iter()
                .enumerate()
                .map(|(i, (heading, kind))| Column {
                    heading,
                    kind: kind
                        .unwrap_or_else(|| format::kind_of_values(rows.iter().map(|r| &r[i]))),
                })
                .collect();
            for l in format::render(&columns, &rows, &s.settings) {
                s.say(&l);
            }
            let _ = s.out.flush();
            Flow::Next
        }
        Err(e) => {
            let (pos, ora) = translate(stmt, &e.to_string());
            s.ora_error(stmt, pos, &ora)
        }
    }
}
