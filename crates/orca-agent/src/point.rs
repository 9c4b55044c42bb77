//! What a recovery point needs to rebuild its database, beyond its own datafile pieces: the
//! archived logs that make it consistent, the control file and SPFILE autobackup taken with
//! it (`c-<DBID>-...`: a new host's only way to a control file that knows the pieces), the
//! parent chain of an incremental, and the incarnation. Kept in the point's labels, so points
//! recorded before these existed stay readable as they are.

use std::collections::{BTreeMap, BTreeSet};

use orca_vault::client::VaultClient;
use orca_vault::wire::{RecoveryPoint, RecoveryPointFilter, RecoveryPointKind};

use crate::AgentError;
use crate::job::{num, text};
use crate::oracle::{Oracle, Row};

/// Label: the control-file autobackup piece (RMAN's handle) taken with the point.
pub const AUTOBACKUP: &str = "autobackup";
/// Label: the SCN the point recovers to with its archived logs (exclusive).
pub const UNTIL_SCN: &str = "until_scn";
/// Label: the archived logs the point needs, per thread (`1:5-9`).
pub const ARCHIVED_LOGS: &str = "archived_logs";
/// Label: the points an incremental is applied on, oldest (the full) first.
pub const CHAIN: &str = "chain";
/// Label: the incarnation (`V$DATABASE_INCARNATION.INCARNATION#`) the point belongs to.
pub const INCARNATION: &str = "incarnation";

/// Adds to a datafile point being recorded (`handles` are vault names `<ns><handle>`) the
/// pieces of the archived logs from `first_scn` to the end of the logs backed up into `tag`,
/// and the newest control-file autobackup in the vault; labels say what they are.
pub(crate) async fn complete(
    oracle: &Oracle,
    vault: &VaultClient,
    database: &str,
    (kind, tag, first_scn): (RecoveryPointKind, &str, Option<u64>),
    ns: &str,
    handles: &mut Vec<String>,
    labels: &mut BTreeMap<String, String>,
) -> Result<(), AgentError> {
    let incarnation = oracle
        .query(
            "select incarnation#, resetlogs_change# from v$database_incarnation where status = 'CURRENT'",
        )
        .await?;
    let resetlogs = incarnation
        .first()
        .map(|r| num(r, "RESETLOGS_CHANGE#"))
        .unwrap_or(0);
    if let Some(r) = incarnation.first() {
        labels.insert(INCARNATION.into(), num(r, "INCARNATION#").to_string());
    }
    if kind == RecoveryPointKind::Archivelog {
        return Ok(());
    }
    let pieces = oracle
        .query(
            "select set_stamp, set_count, handle, tag from v$backup_piece where status = 'A' \
             and device_type <> 'DISK'",
        )
        .await?;
    let logs = oracle
        .query(
            "select set_stamp, set_count, thread#, sequence#, first_change#, next_change#, \
             resetlogs_change# from v$backup_redolog",
        )
        .await?;
    let key = |r: &Row| (num(r, "SET_STAMP"), num(r, "SET_COUNT"));
    let tagged: BTreeSet<(u64, u64)> = pieces
        .iter()
        .filter(|r| text(r, "TAG") == tag)
        .map(key)
        .collect();
    let until = logs
        .iter()
        .filter(|r| tagged.contains(&key(r)))
        .map(|r| num(r, "NEXT_CHANGE#"))
        .max();
    let Some(until) = until else {
        return Ok(());
    };
    labels.insert(UNTIL_SCN.into(), until.to_string());
    let first = first_scn.unwrap_or(0);
    let needed: Vec<&Row> = logs
        .iter()
        .filter(|r| {
            num(r, "RESETLOGS_CHANGE#") == resetlogs
                && num(r, "NEXT_CHANGE#") > first
                && num(r, "FIRST_CHANGE#") < until
        })
        .collect();
    let sets: BTreeSet<(u64, u64)> = needed.iter().map(|r| key(r)).collect();
    let mut seen: BTreeSet<String> = handles.iter().cloned().collect();
    for p in pieces.iter().filter(|r| sets.contains(&key(r))) {
        let name = format!("{ns}{}", text(p, "HANDLE"));
        if seen.insert(name.clone()) {
            handles.push(name);
        }
    }
    let mut threads: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for r in &needed {
        threads
            .entry(num(r, "THREAD#"))
            .or_default()
            .insert(num(r, "SEQUENCE#"));
    }
    labels.insert(ARCHIVED_LOGS.into(), log_ranges(&threads));
    let autobackup = oracle
        .query(
            "select handle from v$backup_piece where status = 'A' and device_type <> 'DISK' \
             and handle like 'c-%' order by recid desc",
        )
        .await?;
    if let Some(h) = autobackup.first().map(|r| text(r, "HANDLE").to_string()) {
        let name = format!("{ns}{h}");
        if vault.info(&name).await?.is_some() {
            if seen.insert(name.clone()) {
                handles.push(name);
            }
            labels.insert(AUTOBACKUP.into(), h);
        }
    }
    if kind == RecoveryPointKind::Incremental {
        let chain = chain_for_new(vault, database).await?;
        if !chain.is_empty() {
            labels.insert(CHAIN.into(), chain.join(","));
        }
    }
    Ok(())
}

/// `1:5-9,2:3-4`: sequences per thread, a range where they follow each other.
fn log_ranges(threads: &BTreeMap<u64, BTreeSet<u64>>) -> String {
    let mut parts = Vec::new();
    for (t, seqs) in threads {
        let mut it = seqs.iter().copied();
        let Some(mut lo) = it.next() else { continue };
        let mut hi = lo;
        for s in it {
            if s == hi + 1 {
                hi = s;
            } else {
                parts.push(range(*t, lo, hi));
                lo = s;
                hi = s;
            }
        }
        parts.push(range(*t, lo, hi));
    }
    parts.join(",")
}

fn range(thread: u64, lo: u64, hi: u64) -> String {
    if lo == hi {
        format!("{thread}:{lo}")
    } else {
        format!("{thread}:{lo}-{hi}")
    }
}

/// The points a new level 1 applies on: the newest full and the incrementals after it.
async fn chain_for_new(vault: &VaultClient, database: &str) -> Result<Vec<String>, AgentError> {
    let points = vault
        .recovery_points(&RecoveryPointFilter {
            database: Some(database.to_string()),
            ..Default::default()
        })
        .await?;
    let Some(full) = points
        .iter()
        .rposition(|p| p.kind == RecoveryPointKind::Full)
    else {
        return Ok(Vec::new());
    };
    Ok(points[full..]
        .iter()
        .filter(|p| {
            matches!(
                p.kind,
                RecoveryPointKind::Full | RecoveryPointKind::Incremental
            )
        })
        .map(|p| p.id.clone())
        .collect())
}

/// The points `rp` is applied on (its chain), oldest first.
pub fn chain(rp: &RecoveryPoint) -> Vec<String> {
    rp.labels
        .get(CHAIN)
        .map(|c| {
            c.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The SCN `rp` recovers to on its own (its archived logs' end), else its datafiles' end.
pub fn until_scn(rp: &RecoveryPoint) -> Option<u64> {
    rp.labels
        .get(UNTIL_SCN)
        .and_then(|s| s.parse().ok())
        .or(rp.next_scn)
}

/// Why `rp` cannot rebuild its database now (a chain point gone, a piece not in the vault),
/// or `None` when every piece it needs is committed in the vault. `points` are the
/// database's points.
pub async fn not_restorable(
    vault: &VaultClient,
    rp: &RecoveryPoint,
    points: &[RecoveryPoint],
) -> Result<Option<String>, AgentError> {
    if rp.kind == RecoveryPointKind::Archivelog || rp.kind == RecoveryPointKind::ImageCopy {
        return Ok(Some(format!(
            "a {} point restores no datafiles by itself",
            rp.kind.as_str()
        )));
    }
    if !rp.labels.contains_key(AUTOBACKUP) {
        return Ok(Some(
            "no control-file autobackup was recorded with the point".into(),
        ));
    }
    let mut needed: Vec<&RecoveryPoint> = Vec::new();
    for id in chain(rp) {
        match points.iter().find(|p| p.id == id) {
            Some(p) => needed.push(p),
            None => return Ok(Some(format!("its chain's point {id} is gone"))),
        }
    }
    needed.push(rp);
    for p in needed {
        for piece in &p.pieces {
            if vault.info(piece).await?.is_none() {
                return Ok(Some(format!(
                    "piece {piece} of point {} is not in the vault",
                    p.id
                )));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ranges_join_consecutive_sequences() {
        let mut t = BTreeMap::new();
        t.insert(1, BTreeSet::from([5, 6, 7, 9]));
        t.insert(2, BTreeSet::from([3]));
        assert_eq!(log_ranges(&t), "1:5-7,1:9,2:3");
    }
}
