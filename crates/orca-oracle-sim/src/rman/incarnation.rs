//! Which backups a RESTORE / RECOVER may use: those of the recovery target incarnation's
//! branch, taken before the point the branch's child split off and before SET UNTIL.
//! Without this, a backup of an abandoned branch whose SCNs overlap the target's would be
//! restored as if it belonged to it.

use std::collections::HashMap;

use orca_oracle::Scn;

use super::ast::Until;
use super::catalog::{BackupDatafileRow, CopyRow};
use super::session::{CmdError, Session};
use crate::db::{Database, DbError, julian_of};

/// An incarnation is named by its RESETLOGS_CHANGE# and RESETLOGS_TIME (a Julian day).
type IncKey = (u64, i64);

fn inc_key(scn: i64, time: Option<f64>) -> IncKey {
    // Julian days to whole seconds: the control file stores them as REAL.
    (
        scn as u64,
        time.map_or(0, |t| (t * 86_400.0).round() as i64),
    )
}

/// The bounds a restore works within.
#[derive(Debug)]
pub(super) struct RestorePoint {
    /// SET UNTIL SCN / SEQUENCE as an SCN: backups must be older (checkpoint below it).
    until_scn: Option<Scn>,
    /// Incarnations of the branch and the SCN where each one's child split off.
    branch: HashMap<IncKey, Option<Scn>>,
    /// (SET_STAMP, SET_COUNT, FILE#) of V$BACKUP_DATAFILE rows -> their incarnation.
    set_inc: HashMap<(u32, u32, u32), IncKey>,
    /// RECID of V$DATAFILE_COPY rows -> their incarnation.
    copy_inc: HashMap<i64, IncKey>,
}

impl RestorePoint {
    fn fits(&self, inc: Option<&IncKey>, checkpoint: Scn) -> bool {
        let Some(end) = inc.and_then(|k| self.branch.get(k)) else {
            return false;
        };
        end.is_none_or(|e| checkpoint < e) && self.until_scn.is_none_or(|u| checkpoint < u)
    }

    /// Whether a backup set member may be restored (or applied).
    pub(super) fn admits(&self, d: &BackupDatafileRow) -> bool {
        self.fits(
            self.set_inc.get(&(d.set_stamp, d.set_count, d.file_no)),
            d.checkpoint_scn,
        )
    }

    /// Whether a datafile copy may be restored.
    pub(super) fn admits_copy(&self, c: &CopyRow) -> bool {
        self.fits(self.copy_inc.get(&c.recid), c.checkpoint_scn)
    }
}

fn load(db: &Database, until_scn: Option<Scn>) -> Result<RestorePoint, DbError> {
    let c = db.connection();
    let keys: HashMap<u32, IncKey> = {
        let mut st = c.prepare(
            r#"SELECT "INCARNATION#", "RESETLOGS_CHANGE#", "RESETLOGS_TIME"
               FROM cf_database_incarnation"#,
        )?;
        st.query_map([], |r| Ok((r.get(0)?, inc_key(r.get(1)?, r.get(2)?))))?
            .collect::<rusqlite::Result<_>>()?
    };
    let branch = db
        .incarnation_branch()?
        .into_iter()
        .filter_map(|s| keys.get(&s.number).map(|k| (*k, s.end)))
        .collect();
    let set_inc = {
        let mut st = c.prepare(
            r#"SELECT "SET_STAMP", "SET_COUNT", "FILE#", "RESETLOGS_CHANGE#", "RESETLOGS_TIME"
               FROM cf_backup_datafile"#,
        )?;
        st.query_map([], |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?),
                inc_key(r.get::<_, Option<i64>>(3)?.unwrap_or(0), r.get(4)?),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    let copy_inc = {
        let mut st = c.prepare(
            r#"SELECT "RECID", "RESETLOGS_CHANGE#", "RESETLOGS_TIME" FROM cf_datafile_copy"#,
        )?;
        st.query_map([], |r| {
            Ok((
                r.get(0)?,
                inc_key(r.get::<_, Option<i64>>(1)?.unwrap_or(0), r.get(2)?),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    Ok(RestorePoint {
        until_scn,
        branch,
        set_inc,
        copy_inc,
    })
}

impl Session {
    /// The restore point of a RESTORE / RECOVER: RMAN-20208 / RMAN-20207 when SET UNTIL
    /// lies before the RESETLOGS of the recovery target incarnation (RESET DATABASE TO
    /// INCARNATION first).
    pub(super) fn restore_point(
        &self,
        until: Option<&Until>,
        cmd: &'static str,
    ) -> Result<RestorePoint, CmdError> {
        let err = |e| CmdError::db(cmd, e);
        let info = self.db.info().map_err(err)?;
        let until_scn = match until {
            Some(Until::Scn(n)) => {
                if *n < info.resetlogs_scn.0 {
                    return Err(CmdError::command(
                        cmd,
                        vec!["RMAN-20208: UNTIL CHANGE is before RESETLOGS change".into()],
                    ));
                }
                Some(Scn(*n))
            }
            Some(Until::Sequence { sequence, thread }) => {
                let logs = self.db.archived_logs().map_err(err)?;
                let of = |seq: u64| {
                    logs.iter().find(|l| {
                        l.resetlogs_id == info.resetlogs_id
                            && u64::from(l.sequence) == seq
                            && u32::from(l.thread) == *thread
                    })
                };
                of(*sequence)
                    .map(|l| l.first_scn)
                    .or_else(|| of(sequence.wrapping_sub(1)).map(|l| l.next_scn))
            }
            Some(Until::Time(t)) => {
                let at = self.time(t)?;
                let rs = crate::db::sqlfn::from_julian(julian_of(info.resetlogs_time));
                if rs.is_some_and(|r| at < r) {
                    return Err(CmdError::command(
                        cmd,
                        vec![
                            "RMAN-20207: UNTIL TIME or RECOVERY WINDOW is before RESETLOGS time"
                                .into(),
                        ],
                    ));
                }
                None
            }
            None => None,
        };
        load(&self.db, until_scn).map_err(err)
    }
}
