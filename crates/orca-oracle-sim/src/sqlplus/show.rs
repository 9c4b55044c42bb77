//! SQL*Plus commands that report on the instance: `ARCHIVE LOG LIST` and
//! `SHOW PARAMETER[S] [name]`, in SQL*Plus's layout.

use super::{Flow, Session};

/// A V$PARAMETER value's SHOW PARAMETER type (the simulator stores every value as text).
fn parameter_type(name: &str, value: &str) -> &'static str {
    if value.eq_ignore_ascii_case("TRUE") || value.eq_ignore_ascii_case("FALSE") {
        "boolean"
    } else if value.parse::<u64>().is_ok() {
        // Oracle's sizes (cache sizes, sga_target, ...) are big integers.
        if name.ends_with("_size") && name != "db_block_size" || name.ends_with("_target") {
            "big integer"
        } else {
            "integer"
        }
    } else {
        "string"
    }
}

impl Session {
    /// `SHOW PARAMETER [name]`: the parameters whose name contains `name` (all without one).
    pub(super) fn show_parameter(&mut self, pattern: Option<&str>) -> Flow {
        if self.is_idle() {
            return self.ora_error("", None, "ORA-01034: ORACLE not available");
        }
        let rows: Vec<(String, String)> = {
            let conn = self.db().connection();
            let st = conn.prepare(
                r#"SELECT "NAME", COALESCE("VALUE", '') FROM v$parameter
                   WHERE instr(lower("NAME"), lower(?1)) > 0 ORDER BY "NAME""#,
            );
            match st.and_then(|mut st| {
                st.query_map([pattern.unwrap_or("")], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }) {
                Ok(v) => v,
                Err(e) => {
                    let text = format!("ORA-00600: internal error code, arguments: [{e}]");
                    return self.ora_error("", None, &text);
                }
            }
        };
        if rows.is_empty() {
            return Flow::Next;
        }
        self.say("");
        self.say(&format!("{:<36} {:<11} {}", "NAME", "TYPE", "VALUE"));
        self.say(&format!(
            "{} {} {}",
            "-".repeat(36),
            "-".repeat(11),
            "-".repeat(30)
        ));
        for (name, value) in rows {
            let t = parameter_type(&name, &value);
            self.say(&format!("{name:<36} {t:<11} {value}"));
        }
        Flow::Next
    }

    /// `ARCHIVE LOG LIST`: the log mode, the archive destination and the local thread's
    /// log sequences.
    pub(super) fn archive_log_list(&mut self) -> Flow {
        if let Some(e) = self.not_mounted_error() {
            return self.ora_error("", None, e);
        }
        let facts = (|| -> crate::db::Result<(String, String, u32, u32)> {
            let db = self.db();
            let info = db.info()?;
            let thread = db.local_instance()?.thread;
            let dest: String = db
                .connection()
                .query_row(
                    r#"SELECT "VALUE" FROM v$parameter WHERE "NAME" = 'log_archive_dest_1'"#,
                    [],
                    |r| r.get(0),
                )
                .unwrap_or_default();
            let dest = dest
                .split_once('=')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("LOCATION"))
                .map_or(dest.clone(), |(_, v)| v.trim().to_string());
            let (oldest, current): (u32, u32) = db.connection().query_row(
                r#"SELECT min(CASE WHEN "SEQUENCE#" > 0 THEN "SEQUENCE#" END),
                          max(CASE WHEN "STATUS" = 'CURRENT' THEN "SEQUENCE#" END)
                   FROM v$log WHERE "THREAD#" = ?1"#,
                [thread],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((info.log_mode, dest, oldest, current))
        })();
        let (mode, dest, oldest, current) = match facts {
            Ok(f) => f,
            Err(e) => {
                let text = match &e {
                    crate::db::DbError::Oracle { .. } => e.to_string(),
                    other => format!("ORA-00600: internal error code, arguments: [{other}]"),
                };
                return self.ora_error("", None, &text);
            }
        };
        let archive = mode == "ARCHIVELOG";
        let line = |label: &str, value: String| format!("{label:<31}{value}");
        self.say(&line(
            "Database log mode",
            if archive {
                "Archive Mode"
            } else {
                "No Archive Mode"
            }
            .into(),
        ));
        self.say(&line(
            "Automatic archival",
            if archive { "Enabled" } else { "Disabled" }.into(),
        ));
        self.say(&line("Archive destination", dest));
        self.say(&line("Oldest online log sequence", oldest.to_string()));
        if archive {
            self.say(&line("Next log sequence to archive", current.to_string()));
        }
        self.say(&line("Current log sequence", current.to_string()));
        Flow::Next
    }
}

#[cfg(test)]
mod tests {
    use super::parameter_type;

    #[test]
    fn parameter_types() {
        assert_eq!(parameter_type("db_block_size", "8192"), "integer");
        assert_eq!(
            parameter_type("db_16k_cache_size", "16777216"),
            "big integer"
        );
        assert_eq!(parameter_type("cluster_database", "FALSE"), "boolean");
        assert_eq!(parameter_type("db_name", "ORCL"), "string");
    }
}
