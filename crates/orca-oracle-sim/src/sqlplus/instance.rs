//! SQL*Plus and the instance: STARTUP, SHUTDOWN, ALTER DATABASE MOUNT | OPEN [RESETLOGS],
//! and what a query gets from an instance that is not mounted (ORA-01034, ORA-01507).

use super::{Flow, Session, sql};
use crate::db::{Database, DbError, InstanceStatus};

/// Views an instance started NOMOUNT answers from memory.
const NOMOUNT_VIEWS: &[&str] = &["V$INSTANCE", "GV$INSTANCE", "V$PARAMETER", "V$VERSION"];

const SGA: [&str; 5] = [
    "Total System Global Area 2147483648 bytes",
    "Fixed Size                  8898896 bytes",
    "Variable Size             486539440 bytes",
    "Database Buffers         1644167168 bytes",
    "Redo Buffers                7876608 bytes",
];

fn ora_text(e: &DbError) -> String {
    match e {
        DbError::Oracle { .. } => e.to_string(),
        other => format!("ORA-00600: internal error code, arguments: [{other}]"),
    }
}

impl Session {
    fn status(&self) -> InstanceStatus {
        self.db
            .as_ref()
            .and_then(|d| d.instance_status().ok())
            .unwrap_or(InstanceStatus::Idle)
    }

    /// The error a query gets when the instance cannot answer it.
    pub(super) fn unmounted_error(&self, stmt: &str) -> Option<&'static str> {
        match self.status() {
            InstanceStatus::Mounted | InstanceStatus::Open => None,
            InstanceStatus::Idle => Some("ORA-01034: ORACLE not available"),
            InstanceStatus::Started => sql::words(stmt)
                .iter()
                .any(|w| {
                    let w = w.trim_matches('"');
                    (w.starts_with("V$") || w.starts_with("GV$")) && !NOMOUNT_VIEWS.contains(&w)
                })
                .then_some("ORA-01507: database not mounted"),
        }
    }

    /// The error a statement that needs a mounted database gets.
    pub(super) fn not_mounted_error(&self) -> Option<&'static str> {
        match self.status() {
            InstanceStatus::Mounted | InstanceStatus::Open => None,
            InstanceStatus::Idle => Some("ORA-01034: ORACLE not available"),
            InstanceStatus::Started => Some("ORA-01507: database not mounted"),
        }
    }

    /// Whether the instance is not started.
    pub(super) fn is_idle(&self) -> bool {
        self.status() == InstanceStatus::Idle
    }

    fn replace_db(&mut self, db: Database) {
        self.db = Some(db);
    }

    fn fail(&mut self, line: &str, e: &DbError) -> Flow {
        self.ora_error(line, None, &ora_text(e))
    }

    /// `STARTUP [FORCE] [NOMOUNT | MOUNT]`.
    pub(super) fn startup(&mut self, line: &str, words: &[String]) -> Flow {
        let has = |w: &str| words.iter().any(|x| x == w);
        let Some(db) = self.db.take() else {
            return Flow::Next;
        };
        let db = if has("FORCE") && self.status_of(&db) != InstanceStatus::Idle {
            match db.shutdown() {
                Ok(idle) => idle,
                Err(e) => {
                    self.replace_db(db);
                    return self.fail(line, &e);
                }
            }
        } else {
            db
        };
        let started = match db.startup_nomount() {
            Ok(s) => s,
            Err(e) => {
                self.replace_db(db);
                return self.fail(line, &e);
            }
        };
        self.replace_db(started);
        self.say("ORACLE instance started.");
        self.say("");
        for l in SGA {
            self.say(l);
        }
        if has("NOMOUNT") {
            return Flow::Next;
        }
        match self.db.as_ref().map(Database::mount) {
            Some(Ok(m)) => self.replace_db(m),
            Some(Err(e)) => return self.fail(line, &e),
            None => return Flow::Next,
        }
        self.say("Database mounted.");
        if has("MOUNT") {
            return Flow::Next;
        }
        if let Some(Err(e)) = self.db.as_ref().map(|d| d.open_database(false)) {
            return self.fail(line, &e);
        }
        self.say("Database opened.");
        Flow::Next
    }

    fn status_of(&self, db: &Database) -> InstanceStatus {
        db.instance_status().unwrap_or(InstanceStatus::Idle)
    }

    /// `SHUTDOWN [IMMEDIATE | ABORT | NORMAL | TRANSACTIONAL]`.
    pub(super) fn shutdown(&mut self, line: &str) -> Flow {
        let Some(db) = self.db.take() else {
            return Flow::Next;
        };
        let status = self.status_of(&db);
        match db.shutdown() {
            Ok(idle) => {
                self.replace_db(idle);
                match status {
                    InstanceStatus::Open => {
                        self.say("Database closed.");
                        self.say("Database dismounted.");
                    }
                    InstanceStatus::Mounted => {
                        self.say("ORA-01109: database not open");
                        self.say("");
                        self.say("");
                        self.say("Database dismounted.");
                    }
                    InstanceStatus::Started => {
                        self.say("ORA-01507: database not mounted");
                        self.say("");
                        self.say("");
                    }
                    InstanceStatus::Idle => {}
                }
                self.say("ORACLE instance shut down.");
                Flow::Next
            }
            Err(e) => {
                self.replace_db(db);
                self.fail(line, &e)
            }
        }
    }

    /// `ALTER DATABASE MOUNT | OPEN [RESETLOGS]`; `None` for other ALTER DATABASE statements.
    pub(super) fn alter_database_state(&mut self, stmt: &str, rest: &str) -> Option<Flow> {
        let r = match rest {
            "MOUNT" => self
                .db
                .as_ref()
                .map(Database::mount)
                .map(|r| r.map(|m| self.replace_db(m))),
            "OPEN" | "OPEN NORESETLOGS" => self.db.as_ref().map(|d| d.open_database(false)),
            "OPEN RESETLOGS" => self.db.as_ref().map(|d| d.open_database(true)),
            _ => return None,
        };
        Some(match r {
            Some(Err(e)) => self.fail(stmt, &e),
            _ => {
                self.feedback("Database altered.");
                Flow::Next
            }
        })
    }
}
