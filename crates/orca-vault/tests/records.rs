//! Recovery points and job records through the client: they name committed pieces only, a
//! database's token sees only its own, jobs only move forward.

mod common;

use std::collections::BTreeMap;

use orca_vault::client::ClientError;
use orca_vault::server::Scope;
use orca_vault::wire::{
    Heartbeat, JobFilter, JobState, JobTrigger, JobUpdate, NewJob, NewRecoveryPoint,
    RecoveryPointFilter, RecoveryPointKind,
};

use common::{Vault, data, put};

/// The status of a refused call.
fn status_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> u16 {
    match r {
        Err(ClientError::Rejected { status, .. } | ClientError::Refused { status, .. }) => {
            status.as_u16()
        }
        other => panic!("not refused: {other:?}"),
    }
}

fn point(db: &str, pieces: &[&str]) -> NewRecoveryPoint {
    NewRecoveryPoint {
        id: None,
        database: db.into(),
        dbid: Some(1234),
        kind: RecoveryPointKind::Full,
        created: None,
        first_scn: Some(100),
        next_scn: Some(200),
        pieces: pieces.iter().map(|p| p.to_string()).collect(),
        labels: BTreeMap::from([("tag".to_string(), "TAG1".to_string())]),
    }
}

#[test]
fn recovery_points_name_committed_pieces_and_stay_with_their_database() {
    let v = Vault::start();
    let orcl = v.token("ORCL", Scope::Backup);
    let other = v.token("OTHER", Scope::Backup);
    let reader = v.token("ORCL", Scope::Restore);
    let admin = v.token("ops", Scope::Admin);
    put(&v.repo(&orcl), "ORCL/df1", "ORCL", &data(1_500_000, 3));
    put(&v.repo(&orcl), "ORCL/df2", "ORCL", &data(500_000, 4));
    put(&v.repo(&other), "OTHER/df1", "OTHER", &data(10_000, 5));
    let a = v.client(&orcl);
    let b = v.client(&other);

    // Uncommitted pieces, and another database's, are refused and listed.
    let e = v
        .rt
        .block_on(a.create_recovery_point(&point("ORCL", &["ORCL/df1", "ORCL/nope", "OTHER/df1"])))
        .unwrap_err();
    let ClientError::Rejected { status, body, .. } = e else {
        panic!("{e}")
    };
    assert_eq!(status.as_u16(), 409);
    assert_eq!(body.missing_pieces, ["ORCL/nope", "OTHER/df1"]);
    assert_eq!(
        status_of(v.rt.block_on(a.create_recovery_point(&point("ORCL", &[])))),
        422
    );
    let mut backwards = point("ORCL", &["ORCL/df1"]);
    backwards.first_scn = Some(300);
    assert_eq!(
        status_of(v.rt.block_on(a.create_recovery_point(&backwards))),
        422
    );
    // A token may not record another database's point.
    assert_eq!(
        status_of(v.rt.block_on(b.create_recovery_point(&point("ORCL", &["ORCL/df1"])))),
        403
    );
    assert_eq!(
        status_of(
            v.rt.block_on(
                v.client(&reader)
                    .create_recovery_point(&point("ORCL", &["ORCL/df1"]))
            )
        ),
        403
    );
    assert!(
        v.rt.block_on(a.recovery_points(&Default::default()))
            .unwrap()
            .is_empty()
    );

    let full =
        v.rt.block_on(a.create_recovery_point(&point("ORCL", &["ORCL/df1", "ORCL/df2"])))
            .unwrap();
    assert!(full.id.starts_with("rp-"));
    assert_eq!(full.stats.pieces, 2);
    assert_eq!(full.stats.bytes, 2_000_000);
    assert!(full.stats.stored > 0);
    let mut arch = point("ORCL", &["ORCL/df2"]);
    arch.id = Some("arch-1".into());
    arch.kind = RecoveryPointKind::Archivelog;
    let arch = v.rt.block_on(a.create_recovery_point(&arch)).unwrap();
    let mut again = point("ORCL", &["ORCL/df2"]);
    again.id = Some("arch-1".into());
    assert_eq!(
        status_of(v.rt.block_on(a.create_recovery_point(&again))),
        409
    );
    v.rt.block_on(b.create_recovery_point(&point("OTHER", &["OTHER/df1"])))
        .unwrap();

    let all =
        v.rt.block_on(a.recovery_points(&Default::default()))
            .unwrap();
    assert_eq!(all, [full.clone(), arch.clone()]);
    let only_arch = RecoveryPointFilter {
        kind: Some(RecoveryPointKind::Archivelog),
        ..Default::default()
    };
    assert_eq!(
        v.rt.block_on(a.recovery_points(&only_arch)).unwrap(),
        std::slice::from_ref(&arch)
    );
    let read = v.client(&reader);
    assert_eq!(
        v.rt.block_on(read.recovery_point(&full.id)).unwrap(),
        Some(full.clone())
    );
    assert_eq!(v.rt.block_on(read.recovery_point("rp-none")).unwrap(), None);

    // Database B's token: neither sees, reads nor deletes A's; an admin sees all.
    let theirs =
        v.rt.block_on(b.recovery_points(&Default::default()))
            .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].database, "OTHER");
    let asking_for_a = RecoveryPointFilter {
        database: Some("ORCL".into()),
        ..Default::default()
    };
    assert_eq!(
        status_of(v.rt.block_on(b.recovery_points(&asking_for_a))),
        403
    );
    assert_eq!(status_of(v.rt.block_on(b.recovery_point(&full.id))), 403);
    assert_eq!(
        status_of(v.rt.block_on(b.delete_recovery_point(&full.id))),
        403
    );
    assert_eq!(
        status_of(v.rt.block_on(read.delete_recovery_point(&full.id))),
        403
    );
    let every =
        v.rt.block_on(v.client(&admin).recovery_points(&Default::default()));
    assert_eq!(every.unwrap().len(), 3);

    assert!(v.rt.block_on(a.delete_recovery_point(&full.id)).unwrap());
    assert!(!v.rt.block_on(a.delete_recovery_point(&full.id)).unwrap());
    assert_eq!(
        v.rt.block_on(a.recovery_points(&Default::default()))
            .unwrap(),
        [arch]
    );
    // The record is gone; its pieces are not.
    assert!(v.rt.block_on(a.info("ORCL/df1")).unwrap().is_some());
}

fn job(db: &str) -> NewJob {
    NewJob {
        id: None,
        database: db.into(),
        kind: "backup-full".into(),
        message: String::new(),
        bytes_estimated: Some(1000),
        trigger: JobTrigger::Manual,
        deadline: None,
    }
}

fn to(state: JobState) -> JobUpdate {
    JobUpdate {
        state: Some(state),
        ..Default::default()
    }
}

#[test]
fn jobs_move_forward_only_and_stay_with_their_database() {
    let v = Vault::start();
    let orcl = v.token("ORCL", Scope::Backup);
    let other = v.token("OTHER", Scope::Backup);
    let reader = v.token("ORCL", Scope::Restore);
    let a = v.client(&orcl);
    let b = v.client(&other);

    let j = v.rt.block_on(a.create_job(&job("ORCL"))).unwrap();
    assert_eq!(j.state, JobState::Queued);
    assert!(j.started.is_none() && j.finished.is_none());
    assert_eq!(j.progress.bytes_estimated, Some(1000));
    let mut bad = job("ORCL");
    bad.kind = "Backup Full".into();
    assert_eq!(status_of(v.rt.block_on(a.create_job(&bad))), 422);
    assert_eq!(status_of(v.rt.block_on(b.create_job(&job("ORCL")))), 403);
    assert_eq!(
        status_of(v.rt.block_on(v.client(&reader).create_job(&job("ORCL")))),
        403
    );
    // Queued jobs cannot succeed without running.
    assert_eq!(
        status_of(v.rt.block_on(a.update_job(&j.id, &to(JobState::Succeeded)))),
        409
    );

    let running =
        v.rt.block_on(a.update_job(&j.id, &to(JobState::Running)))
            .unwrap();
    assert_eq!(running.state, JobState::Running);
    assert!(running.started.is_some());
    let progress = JobUpdate {
        bytes_done: Some(400),
        message: Some("datafile 3 of 8".into()),
        ..Default::default()
    };
    let p = v.rt.block_on(a.update_job(&j.id, &progress)).unwrap();
    assert_eq!(
        (p.progress.bytes_done, p.message.as_str()),
        (400, "datafile 3 of 8")
    );
    assert_eq!(p.state, JobState::Running);
    assert_eq!(
        status_of(v.rt.block_on(b.update_job(&j.id, &progress))),
        403
    );
    assert_eq!(status_of(v.rt.block_on(b.job(&j.id))), 403);
    assert_eq!(
        status_of(v.rt.block_on(a.update_job(&j.id, &to(JobState::Queued)))),
        409
    );
    let done =
        v.rt.block_on(a.update_job(&j.id, &to(JobState::Succeeded)))
            .unwrap();
    assert!(done.finished.is_some());
    // A finished job stays as it is.
    assert_eq!(
        status_of(v.rt.block_on(a.update_job(&j.id, &progress))),
        409
    );
    assert_eq!(
        status_of(v.rt.block_on(a.update_job(&j.id, &to(JobState::Failed)))),
        409
    );
    assert_eq!(
        status_of(v.rt.block_on(a.update_job("job-none", &progress))),
        404
    );

    // A queued job fails at once when its agent is down.
    let mut named = job("ORCL");
    named.id = Some("nightly-1".into());
    let k = v.rt.block_on(a.create_job(&named)).unwrap();
    assert_eq!(status_of(v.rt.block_on(a.create_job(&named))), 409);
    let failed = JobUpdate {
        state: Some(JobState::Failed),
        message: Some("the agent is not running".into()),
        ..Default::default()
    };
    v.rt.block_on(a.update_job(&k.id, &failed)).unwrap();
    v.rt.block_on(b.create_job(&job("OTHER"))).unwrap();

    let mine = v.rt.block_on(a.jobs(&Default::default())).unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|j| j.database == "ORCL"));
    let failed_only = JobFilter {
        state: Some(JobState::Failed),
        ..Default::default()
    };
    let f = v.rt.block_on(a.jobs(&failed_only)).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].message, "the agent is not running");
    assert_eq!(
        v.rt.block_on(v.client(&reader).job(&k.id))
            .unwrap()
            .unwrap()
            .id,
        "nightly-1"
    );
    let asking_for_a = JobFilter {
        database: Some("ORCL".into()),
        ..Default::default()
    };
    assert_eq!(status_of(v.rt.block_on(b.jobs(&asking_for_a))), 403);
    assert_eq!(v.rt.block_on(b.jobs(&Default::default())).unwrap().len(), 1);
}

#[test]
fn a_scheduled_job_fails_when_its_window_closes_and_heartbeats_tell_if_an_agent_runs() {
    let v = Vault::start();
    let orcl = v.token("ORCL", Scope::Backup);
    let other = v.token("OTHER", Scope::Backup);
    let a = v.client(&orcl);
    let b = v.client(&other);

    let mut scheduled = job("ORCL");
    scheduled.trigger = JobTrigger::Scheduled;
    scheduled.deadline = Some(orca_repo::now_unix() - 1);
    let j = v.rt.block_on(a.create_job(&scheduled)).unwrap();
    let seen = v.rt.block_on(a.job(&j.id)).unwrap().unwrap();
    assert_eq!(seen.state, JobState::Failed);
    assert!(
        seen.message.contains("agent is not running"),
        "{}",
        seen.message
    );
    assert_eq!(seen.trigger, JobTrigger::Scheduled);
    let queued = JobFilter {
        state: Some(JobState::Queued),
        ..Default::default()
    };
    assert!(v.rt.block_on(a.jobs(&queued)).unwrap().is_empty());
    // Details merge.
    let k = v.rt.block_on(a.create_job(&job("ORCL"))).unwrap();
    let d = |k: &str, val: &str| JobUpdate {
        details: BTreeMap::from([(k.to_string(), val.to_string())]),
        ..Default::default()
    };
    v.rt.block_on(a.update_job(&k.id, &d("tag", "T1"))).unwrap();
    let k =
        v.rt.block_on(a.update_job(&k.id, &d("bytes_sent", "5")))
            .unwrap();
    assert_eq!(k.details.len(), 2);

    assert!(v.rt.block_on(a.agent("ORCL")).unwrap().is_none());
    let beat = Heartbeat {
        agent: "host1".into(),
        version: "1".into(),
        interval_secs: 5,
        alerts: vec![],
        rpo_secs: Some(3600),
    };
    v.rt.block_on(a.heartbeat("ORCL", &beat)).unwrap();
    v.rt.block_on(a.heartbeat("ORCL", &beat)).unwrap();
    let s = v.rt.block_on(a.agent("ORCL")).unwrap().unwrap();
    assert!(s.alive && s.agent == "host1");
    assert!(!s.alive_at(s.seen + 16));
    assert_eq!(status_of(v.rt.block_on(b.heartbeat("ORCL", &beat))), 403);
    assert_eq!(status_of(v.rt.block_on(b.agent("ORCL"))), 403);
}
