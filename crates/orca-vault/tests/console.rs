//! The web console in a real headless Chromium (the distribution's package): it logs in with a
//! token, and what the page shows is checked against the API's own answer; another database's
//! token shows only its database, and a forged token shows nothing. Screenshots go to the
//! target directory (`console-admin.png`, `console-hr.png`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use orca_vault::server::Scope;
use orca_vault::wire::{
    Heartbeat, JobState, JobUpdate, NewJob, NewRecoveryPoint, RecoveryPointKind,
};

use common::{Vault, data, put};

fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty() || v == "false"),
            "CI is set and chromium is missing: scripts/test-deps installs it"
        );
        eprintln!("SKIPPED: no chromium (apt-get install chromium)");
    }
    found
}

/// The page's DOM after its scripts ran, and a screenshot of it.
fn render(browser: &Path, url: &str, shot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[String]| {
        let out = Command::new(browser)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--virtual-time-budget=6000",
                "--window-size=1280,1400",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[format!("--screenshot={}", shot.display())]);
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    run(&["--dump-dom".to_string()])
}

fn shot(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[test]
fn the_console_shows_what_the_api_says_to_whom_the_token_allows() {
    let Some(browser) = chromium() else { return };
    let v = Vault::start();
    let admin = v.token("ADMIN", Scope::Admin);
    let orcl = v.token("ORCL", Scope::Backup);
    let hr = v.token("HR", Scope::Backup);

    // ORCL: two recovery points, a live agent on a one-hour schedule that raised an alert.
    put(&v.repo(&orcl), "ORCL/df1_a", "ORCL", &data(3_000_000, 1));
    put(&v.repo(&orcl), "ORCL/df1_b", "ORCL", &data(3_000_000, 1));
    // HR: one point three days old, and its last job failed.
    put(&v.repo(&hr), "HR/df1_a", "HR", &data(2_000_000, 2));
    let now = orca_repo::now_unix();
    let point = |db: &str, piece: &str, created: i64| NewRecoveryPoint {
        id: None,
        database: db.into(),
        dbid: Some(42),
        kind: RecoveryPointKind::Full,
        created: Some(created),
        first_scn: Some(100),
        next_scn: Some(200),
        pieces: vec![piece.into()],
        labels: BTreeMap::new(),
    };
    let (co, ch) = (v.client(&orcl), v.client(&hr));
    v.rt.block_on(co.create_recovery_point(&point("ORCL", "ORCL/df1_a", now - 7200)))
        .unwrap();
    v.rt.block_on(co.create_recovery_point(&point("ORCL", "ORCL/df1_b", now - 60)))
        .unwrap();
    v.rt.block_on(ch.create_recovery_point(&point("HR", "HR/df1_a", now - 3 * 86_400)))
        .unwrap();
    let beat = Heartbeat {
        agent: "dbhost1".into(),
        version: "1".into(),
        interval_secs: 60,
        alerts: vec!["RAC instance ORCL2 went down during the backup".into()],
        rpo_secs: Some(3600),
    };
    v.rt.block_on(co.heartbeat("ORCL", &beat)).unwrap();
    let job =
        v.rt.block_on(ch.create_job(&NewJob {
            id: None,
            database: "HR".into(),
            kind: "backup-full".into(),
            message: String::new(),
            bytes_estimated: Some(1000),
            trigger: Default::default(),
            deadline: None,
        }))
        .unwrap();
    for (state, message) in [
        (JobState::Running, "running"),
        (JobState::Failed, "ORA-19511: media manager error"),
    ] {
        v.rt.block_on(ch.update_job(
            &job.id,
            &JobUpdate {
                state: Some(state),
                message: Some(message.into()),
                ..Default::default()
            },
        ))
        .unwrap();
    }

    let api = v.raw("GET", "/api/v1/overview", Some(&admin), b"").json();
    let stored = api["storage"]["stored_bytes"].as_u64().unwrap();
    let logical = api["storage"]["logical_bytes"].as_u64().unwrap();
    assert!(stored > 0 && logical == 8_000_000, "{api}");

    // The admin sees both databases, the figures the API gives, and every alert.
    let dom = render(
        &browser,
        &format!("{}/ui#token={admin}", v.url),
        &shot("console-admin.png"),
    );
    assert!(
        dom.contains(r#"data-loaded="true""#),
        "the page did not load its data:\n{dom}"
    );
    assert!(
        dom.contains(&format!(r#"data-stored-bytes="{stored}""#)),
        "stored bytes differ from the API's {stored}:\n{dom}"
    );
    assert!(
        dom.contains(&format!(r#"data-logical-bytes="{logical}""#)),
        "{dom}"
    );
    for db in ["ORCL", "HR"] {
        let bytes = api["databases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["database"] == db)
            .unwrap()["stored_bytes"]
            .as_u64()
            .unwrap();
        assert!(
            dom.contains(&format!(r#"<tr data-db="{db}">"#)),
            "no row for {db}:\n{dom}"
        );
        assert!(
            dom.contains(&format!(r#"data-bytes="{bytes}""#)),
            "{db}'s stored bytes ({bytes}) not shown:\n{dom}"
        );
    }
    assert!(
        dom.contains(r#"data-exposed="true""#) && dom.contains(r#"data-exposed="false""#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"data-db="HR" data-severity="critical""#),
        "HR's exposure is not an alert:\n{dom}"
    );
    assert!(dom.contains("RAC instance ORCL2 went down"), "{dom}");
    assert!(dom.contains("last job failed: ORA-19511"), "{dom}");
    assert!(dom.contains(&format!(r#"data-job="{}""#, job.id)), "{dom}");
    assert!(dom.contains("<polyline"), "no chart:\n{dom}");
    assert!(!dom.contains(&admin), "the token stayed in the page");

    // Negative controls: HR's token shows HR only; a forged token shows no data at all.
    let dom = render(
        &browser,
        &format!("{}/ui#token={hr}", v.url),
        &shot("console-hr.png"),
    );
    assert!(dom.contains(r#"<tr data-db="HR">"#), "{dom}");
    assert!(
        !dom.contains("ORCL"),
        "HR's token showed another database:\n{dom}"
    );
    let forged = format!("{}x", &hr[..hr.len() - 1]);
    let dom = render(
        &browser,
        &format!("{}/ui#token={forged}", v.url),
        &shot("console-forged.png"),
    );
    assert!(
        !dom.contains(r#"data-loaded="true""#),
        "a forged token loaded data:\n{dom}"
    );
    assert!(!dom.contains(r#"<tr data-db="#), "{dom}");
    assert!(
        dom.contains("unknown token") || dom.contains("refused"),
        "no reason shown:\n{dom}"
    );
}

#[test]
fn the_console_files_are_served_with_a_strict_policy_and_hold_no_data() {
    let v = Vault::start();
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let a = v.raw("GET", path, None, b"");
        assert_eq!(a.status, 200, "{path}: {a:?}");
        let headers = a.headers.to_ascii_lowercase();
        assert!(headers.contains(kind), "{path}: {headers}");
        assert!(
            headers.contains("frame-ancestors 'none'"),
            "{path}: {headers}"
        );
        assert!(headers.contains("nosniff"), "{path}: {headers}");
    }
    // The data needs a token.
    assert_eq!(v.raw("GET", "/api/v1/overview", None, b"").status, 401);
}
