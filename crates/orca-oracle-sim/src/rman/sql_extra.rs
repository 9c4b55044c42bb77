//! SQL statements of production RMAN scripts beyond log switches and datafile states:
//! ALTER SYSTEM ARCHIVE LOG ALL, ALTER DATABASE BEGIN/END BACKUP, ALTER SESSION SET,
//! CREATE PFILE FROM SPFILE, ALTER DATABASE BACKUP CONTROLFILE TO TRACE.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::db::{Database, Result, io_err, ora};

/// Runs `sql` (normalised: lower case, single spaces, no `;`) if it is one of these
/// statements; None when it is not.
pub fn run(db: &Database, norm: &str, sql: &str) -> Option<Result<()>> {
    Some(match norm {
        // Every full online log is archived as it fills: nothing is left to archive.
        "alter system archive log all" => db.info().map(|_| ()),
        "alter database begin backup" | "alter database end backup" => begin_end_backup(db),
        n if n.starts_with("alter session set ") => Ok(()),
        n if n.starts_with("create pfile") && n.ends_with("from spfile") => create_pfile(db, sql),
        n if n.starts_with("alter database backup controlfile to trace") => trace(db, sql),
        _ => return None,
    })
}

/// The text between the first pair of single quotes.
fn quoted(sql: &str) -> Option<PathBuf> {
    // Inside RMAN's double-quoted SQL string a quote is written twice.
    let sql = sql.replace("''", "'");
    sql.split('\'').nth(1).map(PathBuf::from)
}

/// Oracle refuses BEGIN/END BACKUP unless the database runs in ARCHIVELOG mode (ORA-01123);
/// the simulator's backups read consistent blocks, so the mode itself changes nothing.
fn begin_end_backup(db: &Database) -> Result<()> {
    db.require_open()?;
    if db.info()?.log_mode != "ARCHIVELOG" {
        return Err(ora(
            1123,
            "cannot start online backup; media recovery not enabled",
        ));
    }
    Ok(())
}

/// CREATE PFILE ['path'] FROM SPFILE: the spfile's parameters as `name=value` lines, by
/// default in `dbs/init<NAME>.ora`.
fn create_pfile(db: &Database, sql: &str) -> Result<()> {
    let spfile = db.spfile_bytes()?;
    let to = quoted(sql).unwrap_or_else(|| {
        db.home().join("dbs").join(format!(
            "init{}.ora",
            db.info().map(|i| i.name).unwrap_or_default()
        ))
    });
    std::fs::write(&to, spfile).map_err(|e| io_err(format!("cannot write {}", to.display()), e))
}

/// ALTER DATABASE BACKUP CONTROLFILE TO TRACE [AS 'path']: the CREATE CONTROLFILE script
/// that rebuilds this control file, in the trace directory unless AS names a file.
fn trace(db: &Database, sql: &str) -> Result<()> {
    let info = db.info()?;
    let mut logs: Vec<(u32, String)> = {
        let mut st = db
            .connection()
            .prepare(r#"SELECT "GROUP#", "MEMBER" FROM v$logfile ORDER BY "GROUP#""#)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    logs.sort();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "-- The following commands will create a new control file and use it"
    );
    let _ = writeln!(s, "-- to open the database.");
    let _ = writeln!(s, "STARTUP NOMOUNT");
    let _ = writeln!(
        s,
        "CREATE CONTROLFILE REUSE DATABASE \"{}\" NORESETLOGS  {}",
        info.name, info.log_mode
    );
    let _ = writeln!(s, "LOGFILE");
    for (i, (group, member)) in logs.iter().enumerate() {
        let sep = if i + 1 == logs.len() { "" } else { "," };
        let _ = writeln!(s, "  GROUP {group} '{member}'{sep}");
    }
    let _ = writeln!(s, "DATAFILE");
    let files = db.datafiles()?;
    for (i, f) in files.iter().enumerate() {
        let sep = if i + 1 == files.len() { "" } else { "," };
        let _ = writeln!(s, "  '{}'{sep}", f.path.display());
    }
    let _ = writeln!(s, "CHARACTER SET AL32UTF8");
    let _ = writeln!(s, ";");
    let _ = writeln!(s, "RECOVER DATABASE");
    let _ = writeln!(s, "ALTER SYSTEM ARCHIVE LOG ALL;");
    let _ = writeln!(s, "ALTER DATABASE OPEN;");
    let to = match quoted(sql) {
        Some(p) => p,
        None => {
            let dir = db.home().join("trace");
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_err(format!("cannot create {}", dir.display()), e))?;
            dir.join(format!(
                "{}_ora_{}.trc",
                info.name.to_ascii_lowercase(),
                std::process::id()
            ))
        }
    };
    std::fs::write(&to, s).map_err(|e| io_err(format!("cannot write {}", to.display()), e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_quoted_path_names_the_file() {
        assert_eq!(
            super::quoted("create pfile='/x/y' from spfile"),
            Some("/x/y".into())
        );
        assert_eq!(
            super::quoted("create pfile=''/x/y'' from spfile"),
            Some("/x/y".into())
        );
        assert_eq!(super::quoted("create pfile from spfile"), None);
    }
}
