//! What an uploaded RMAN log says about the coming recovery point: the database and the files
//! RMAN wrote into the mount, so a restore can show which files belong to which database.

use orca_oracle::rman_log::{RmanEvent, RmanSummary, parse_log};
use serde::{Deserialize, Serialize};

/// The RMAN log stored with a recovery point, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogSummary {
    /// DB_NAME from `connected to target database: ...`.
    pub database: Option<String>,
    /// DBID from the same line.
    pub dbid: Option<u64>,
    /// Image copies RMAN created (`output file name=`), as the database host names them.
    pub datafile_copies: Vec<String>,
    /// Backup pieces (level-1 sets, archived-log sets, control file autobackups).
    pub backup_pieces: Vec<String>,
    /// Archived logs backed up, as `thread_sequence`.
    pub archived_logs: Vec<String>,
    /// Datafiles RMAN read, as `file#=name`.
    pub datafiles: Vec<String>,
    /// RMAN printed `Recovery Manager complete.` and no error stack.
    pub succeeded: bool,
    /// The first line of each error stack (`RMAN-03009: ...`).
    pub errors: Vec<String>,
}

impl LogSummary {
    /// Parse an RMAN log; what it does not recognise is ignored.
    pub fn parse(text: &str) -> LogSummary {
        let events = parse_log(text);
        let summary = RmanSummary::from_events(&events);
        let mut out = LogSummary {
            succeeded: summary.succeeded(),
            datafile_copies: summary.output_files.clone(),
            backup_pieces: summary.pieces.iter().map(|p| p.handle.clone()).collect(),
            errors: summary
                .errors
                .iter()
                .filter_map(|stack| stack.iter().find(|l| !l.is_banner()))
                .map(|l| format!("{}: {}", l.id(), l.message))
                .collect(),
            ..LogSummary::default()
        };
        for ev in &events {
            match ev {
                RmanEvent::ConnectedTarget { db_name, dbid } if out.database.is_none() => {
                    out.database = Some(db_name.clone());
                    out.dbid = *dbid;
                }
                RmanEvent::InputArchivedLog {
                    thread, sequence, ..
                } => out.archived_logs.push(format!("{thread}_{sequence}")),
                RmanEvent::InputDatafile { file_no, name } => {
                    let d = format!("{file_no}={name}");
                    if !out.datafiles.contains(&d) {
                        out.datafiles.push(d);
                    }
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_log_names_the_database_and_its_files() {
        let log = "\
Recovery Manager: Release 19.0.0.0.0 - Production on Wed Mar 4 09:17:00 2026
connected to target database: ORCL (DBID=1000593576)
channel c1: starting datafile copy
input datafile file number=00001 name=/u01/oradata/ORCL/system01.dbf
output file name=/local/m/data_D-ORCL_I-1000593576_TS-SYSTEM_FNO-1_01 tag=MERGE RECID=1 STAMP=1100000000
channel c1: datafile copy complete, elapsed time: 00:00:01
channel c1: starting archived log backup set
input archived log thread=1 sequence=7 RECID=5 STAMP=1100000000
channel c1: starting piece 1 at 04-MAR-26
channel c1: finished piece 1 at 04-MAR-26
piece handle=/local/m/archivelogs/ORCL_1_7.arc tag=TAG1 comment=NONE
Recovery Manager complete.
";
        let s = LogSummary::parse(log);
        assert_eq!(s.database.as_deref(), Some("ORCL"));
        assert_eq!(s.dbid, Some(1000593576));
        assert_eq!(s.datafile_copies.len(), 1, "{s:?}");
        assert_eq!(s.backup_pieces, ["/local/m/archivelogs/ORCL_1_7.arc"]);
        assert_eq!(s.archived_logs, ["1_7"]);
        assert_eq!(s.datafiles, ["1=/u01/oradata/ORCL/system01.dbf"]);
        assert!(s.succeeded);
    }

    #[test]
    fn garbage_is_an_empty_unsuccessful_summary() {
        let s = LogSummary::parse("\u{0}\u{1}not a log\n/home/x.log");
        assert_eq!(s.database, None);
        assert!(!s.succeeded);
    }
}
