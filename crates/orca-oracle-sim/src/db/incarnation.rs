//! Database incarnations (V$DATABASE_INCARNATION): OPEN RESETLOGS starts one, RESET DATABASE
//! TO INCARNATION makes an older one the recovery target. Redo of an incarnation is only
//! valid on its branch: an ancestor's redo up to the SCN where its child branched off.

use super::{Database, DbError, Result, julian_of, ora, stamp_of_julian};
use orca_oracle::{OracleTime, Scn};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One row of V$DATABASE_INCARNATION.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incarnation {
    /// INCARNATION# (RMAN's "Inc Key").
    pub number: u32,
    /// RESETLOGS_CHANGE#.
    pub resetlogs_scn: Scn,
    /// RESETLOGS_TIME.
    pub resetlogs_time: OracleTime,
    /// RESETLOGS_ID (what archived logs carry).
    pub resetlogs_id: u32,
    /// PRIOR_INCARNATION# (`None` for the first).
    pub prior: Option<u32>,
    /// `CURRENT`, `PARENT` or `ORPHAN`.
    pub status: String,
}

/// An incarnation on the recovery branch and the SCNs whose redo it owns there:
/// `[resetlogs_scn, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub number: u32,
    pub resetlogs_id: u32,
    pub resetlogs_scn: Scn,
    /// RESETLOGS_CHANGE# of the child on the branch (`None` for the target incarnation).
    pub end: Option<Scn>,
}

impl Database {
    /// Every incarnation, by INCARNATION#.
    pub fn incarnations(&self) -> Result<Vec<Incarnation>> {
        let mut st = self.conn.prepare(
            r#"SELECT "INCARNATION#", "RESETLOGS_CHANGE#", "RESETLOGS_TIME", "RESETLOGS_ID",
                      "PRIOR_INCARNATION#", "STATUS"
               FROM cf_database_incarnation ORDER BY "INCARNATION#""#,
        )?;
        let rows = st.query_map([], |r| {
            let prior: Option<u32> = r.get(4)?;
            Ok(Incarnation {
                number: r.get(0)?,
                resetlogs_scn: Scn(r.get::<_, i64>(1)? as u64),
                resetlogs_time: stamp_of_julian(r.get(2)?),
                resetlogs_id: r.get(3)?,
                prior: prior.filter(|&p| p > 0),
                status: r.get(5)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(DbError::from)
    }

    /// The recovery target incarnation (STATUS `CURRENT`).
    pub fn current_incarnation(&self) -> Result<Incarnation> {
        let rid = self.info()?.resetlogs_id;
        self.incarnations()?
            .into_iter()
            .find(|i| i.resetlogs_id == rid)
            .ok_or_else(|| {
                DbError::Invalid(format!(
                    "the control file has no incarnation with RESETLOGS_ID {rid}"
                ))
            })
    }

    /// The current incarnation and its ancestors, oldest first, each with the SCN range
    /// whose redo belongs to the branch.
    pub(crate) fn incarnation_branch(&self) -> Result<Vec<Segment>> {
        let all = self.incarnations()?;
        let mut chain = Vec::new();
        let mut next = Some(self.current_incarnation()?);
        while let Some(inc) = next {
            next = inc
                .prior
                .and_then(|p| all.iter().find(|i| i.number == p).cloned());
            if chain.len() > all.len() {
                return Err(DbError::Invalid(
                    "the incarnation records of the control file form a loop".into(),
                ));
            }
            chain.push(inc);
        }
        chain.reverse();
        let mut out: Vec<Segment> = Vec::with_capacity(chain.len());
        for (k, inc) in chain.iter().enumerate() {
            out.push(Segment {
                number: inc.number,
                resetlogs_id: inc.resetlogs_id,
                resetlogs_scn: inc.resetlogs_scn,
                end: chain.get(k + 1).map(|c| c.resetlogs_scn),
            });
        }
        Ok(out)
    }

    /// RESETLOGS_ID of the incarnation on the recovery branch that began at `resetlogs_scn`
    /// (how V$BACKUP_REDOLOG rows, which carry only the SCN, name their incarnation).
    pub fn branch_resetlogs_id(&self, resetlogs_scn: Scn) -> Result<Option<u32>> {
        Ok(self
            .incarnation_branch()?
            .into_iter()
            .find(|s| s.resetlogs_scn == resetlogs_scn)
            .map(|s| s.resetlogs_id))
    }

    /// Path an archived log of (thread, sequence) of the incarnation `resetlogs_id` gets in
    /// this home (log_archive_format `%t_%s_%r.arc`).
    pub fn archived_log_path_in(&self, thread: u16, sequence: u32, resetlogs_id: u32) -> PathBuf {
        self.home
            .join("arch")
            .join(format!("{thread}_{sequence}_{resetlogs_id}.arc"))
    }

    /// `RESET DATABASE TO INCARNATION n` (mounted, not open): `n` becomes the recovery
    /// target; its ancestors are PARENT, every other incarnation ORPHAN.
    pub fn reset_to_incarnation(&self, number: u32) -> Result<()> {
        if self.instance_status()? == super::InstanceStatus::Open {
            return Err(ora(
                19_910,
                "can not change recovery target incarnation in control file",
            ));
        }
        let all = self.incarnations()?;
        let target = all
            .iter()
            .find(|i| i.number == number)
            .cloned()
            .ok_or_else(|| {
                DbError::NotFound(format!(
                    "incarnation {number} is not in the control file (LIST INCARNATION shows them)"
                ))
            })?;
        let mut ancestors = Vec::new();
        let mut p = target.prior;
        while let Some(n) = p {
            if ancestors.contains(&n) {
                break;
            }
            ancestors.push(n);
            p = all.iter().find(|i| i.number == n).and_then(|i| i.prior);
        }
        let prior = target
            .prior
            .and_then(|n| all.iter().find(|i| i.number == n).cloned());
        let c = &self.conn;
        for i in &all {
            let status = if i.number == number {
                "CURRENT"
            } else if ancestors.contains(&i.number) {
                "PARENT"
            } else {
                "ORPHAN"
            };
            c.execute(
                r#"UPDATE cf_database_incarnation SET "STATUS" = ?1 WHERE "INCARNATION#" = ?2"#,
                params![status, i.number],
            )?;
        }
        c.execute(
            r#"UPDATE cf_database SET "RESETLOGS_CHANGE#" = ?1, "RESETLOGS_TIME" = ?2,
                   resetlogs_id = ?3, "PRIOR_RESETLOGS_CHANGE#" = ?4,
                   "PRIOR_RESETLOGS_TIME" = ?5, "RECOVERY_TARGET_INCARNATION#" = ?6"#,
            params![
                target.resetlogs_scn.0 as i64,
                julian_of(target.resetlogs_time),
                target.resetlogs_id,
                prior.as_ref().map_or(0, |p| p.resetlogs_scn.0 as i64),
                prior.as_ref().map(|p| julian_of(p.resetlogs_time)),
                number
            ],
        )?;
        Ok(())
    }

    /// OPEN RESETLOGS of datafiles recovered up to `point` (inclusive): the new incarnation
    /// begins at `point + 1`, and so does the SCN counter, so the new incarnation reuses
    /// SCNs the abandoned branch had already used.
    pub(crate) fn open_resetlogs_at(&self, point: Scn) -> Result<()> {
        let _lock = self.lock()?;
        super::redo::open_resetlogs(self, Scn(point.0 + 1))
    }
}
