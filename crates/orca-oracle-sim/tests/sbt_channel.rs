//! The SBT caller driven directly (no rman): one channel server process per channel, ENV
//! delivered through the process environment, the call sequence of oracle-facts §1.9.

#[path = "sbt_testlib/mod.rs"]
mod testlib;

use std::path::Path;

use orca_oracle_sim::sbt::{ObjectInfo, ReadOutcome, SbtCall, SbtChannel, SbtError, SpawnOptions};

fn spawn(lib: &Path, env: &[(String, String)]) -> Result<SbtChannel, SbtError> {
    spawn_sharing(lib, env, true)
}

fn spawn_sharing(
    lib: &Path,
    env: &[(String, String)],
    shared_buffers: bool,
) -> Result<SbtChannel, SbtError> {
    SbtChannel::spawn(&SpawnOptions {
        exe: Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        library: lib.to_str().unwrap(),
        env,
        trace_name: Some("/tmp/sbtio.log"),
        trace_level: 0,
        shared_buffers,
    })
}

#[test]
fn backup_restore_remove_round_trip_follows_rman_sequence() {
    round_trip(true);
}

/// `ORACLESIM_SBT_SHARED=0`, or a server that cannot open rman's shared file: the buffers
/// cross in the pipe, and the library sees the same calls and the same bytes.
#[test]
fn buffers_in_the_pipe_make_the_same_round_trip() {
    round_trip(false);
}

fn round_trip(shared: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let lib = testlib::build(tmp.path());
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let trace = tmp.path().join("trace.log");
    let env = vec![
        ("SBT_TESTLIB_DIR".to_string(), store.display().to_string()),
        ("SBT_TESTLIB_TRACE".to_string(), trace.display().to_string()),
    ];
    let mut ch = spawn_sharing(&lib, &env, shared).unwrap();
    assert_eq!(ch.shares_buffers(), shared);
    assert_eq!(ch.info().mms_desc, "ORCA test SBT library");
    assert_eq!(ch.info().mms_version_text(), "1.2.3.4");
    assert_eq!(ch.info().comment(), "API Version 2.0,MMS Version 1.2.3.4");

    let obj = ObjectInfo {
        db_name: "ORCL".into(),
        dbid: 1234567890,
        file_type: 1,
    };
    let bs = 16384;
    ch.backup("db/piece_1_1", &obj, bs, 0, 1, 0).unwrap();
    for i in 0..3u8 {
        ch.write(&vec![i; bs]).unwrap();
    }
    // A buffer handed over in two parts is joined in order.
    let (head, tail) = (vec![7u8; 100], vec![8u8; bs - 100]);
    ch.write_parts(&head, &tail).unwrap();
    ch.close(false).unwrap();
    let info = ch
        .info_files(&["db/piece_1_1".into(), "nope".into()])
        .unwrap();
    assert_eq!(info.len(), 2);
    assert!(!info[0].not_found);
    assert_eq!(info[0].label.as_deref(), Some("TESTVOL1"));
    assert_eq!(info[0].comment.as_deref(), Some("sbt_testlib"));
    assert!(info[1].not_found);

    // Same name again: EXISTS (7503) with the library's text.
    match ch.backup("db/piece_1_1", &obj, bs, 0, 1, 0) {
        Err(SbtError::Call { call, code, text }) => {
            assert_eq!(call, SbtCall::Backup);
            assert_eq!(code, 7503);
            assert!(text.contains("already exists"), "{text}");
        }
        other => panic!("expected EXISTS, got {other:?}"),
    }

    ch.restore("db/piece_1_1", bs).unwrap();
    let mut buf = vec![0u8; bs];
    let mut got = Vec::new();
    while ch.read(&mut buf).unwrap() == ReadOutcome::Data {
        got.push(buf.clone());
    }
    ch.close(false).unwrap();
    let mut joined = head.clone();
    joined.extend_from_slice(&tail);
    let want: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; bs]).chain([joined]).collect();
    assert!(got == want, "the bytes read back are not the bytes written");
    ch.command("ENV=(X=1)").unwrap();
    ch.remove(&["db/piece_1_1".into()]).unwrap();
    let pid = ch.pid();
    ch.end(false).unwrap();

    let calls = testlib::read_trace(&trace);
    assert!(
        calls.iter().all(|c| c.pid == pid),
        "one process per channel"
    );
    let names = testlib::collapse(&calls);
    assert_eq!(
        names,
        vec![
            "sbtinit",
            "sbtinit2",
            "sbtbackup",
            "sbtwrite2 x4",
            "sbtclose2",
            "sbtinfo2",
            "sbtbackup",
            "sbterror",
            "sbtrestore",
            "sbtread2 x5",
            "sbterror",
            "sbtclose2",
            "sbtcommand",
            "sbtremove2",
            "sbtend",
        ]
    );
    let init2 = calls.iter().find(|c| c.name == "sbtinit2").unwrap();
    assert!(init2.args.contains("ctxzero=1"), "{}", init2.args);
    assert!(init2.args.contains("client=0x200"), "{}", init2.args);
    let init = calls.iter().find(|c| c.name == "sbtinit").unwrap();
    assert_eq!(init.args, "trace_name=/tmp/sbtio.log");
    let backup = calls.iter().find(|c| c.name == "sbtbackup").unwrap();
    assert!(
        backup.args.starts_with(
            "name=db/piece_1_1 dbname=ORCL dbid=1234567890 filetype=1 block_size=16384"
        ),
        "{}",
        backup.args
    );
}

#[test]
fn missing_env_fails_allocation_with_library_text() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = testlib::build(tmp.path());
    let err = spawn(&lib, &[]).unwrap_err();
    assert!(err.is_allocation());
    let lines = err.ora_lines(&Default::default());
    assert_eq!(
        lines[0],
        "ORA-19554: error allocating device, device type: SBT_TAPE, device name: "
    );
    assert!(
        lines.last().unwrap().contains("SBT_TESTLIB_DIR is not set"),
        "{lines:?}"
    );
}

#[test]
fn unloadable_library_is_reported_as_load_failure() {
    let err = spawn(Path::new("/nonexistent/libobk.so"), &[]).unwrap_err();
    assert!(matches!(err, SbtError::Load { .. }), "{err:?}");
    assert!(err.ora_lines(&Default::default())[1].starts_with("ORA-27211"));
}

#[test]
fn two_channels_run_in_their_own_processes_with_their_own_env() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = testlib::build(tmp.path());
    let mut chans = Vec::new();
    for i in 0..2 {
        let store = tmp.path().join(format!("store{i}"));
        std::fs::create_dir(&store).unwrap();
        let env = vec![("SBT_TESTLIB_DIR".to_string(), store.display().to_string())];
        chans.push(spawn(&lib, &env).unwrap());
    }
    assert_ne!(chans[0].pid(), chans[1].pid());
    let obj = ObjectInfo {
        db_name: "ORCL".into(),
        dbid: 1,
        file_type: 2,
    };
    for (i, ch) in chans.iter_mut().enumerate() {
        ch.backup(&format!("p{i}"), &obj, 512, 0, 1, 0).unwrap();
        ch.write(&[7u8; 512]).unwrap();
        ch.close(false).unwrap();
    }
    assert!(tmp.path().join("store0/p0").exists());
    assert!(tmp.path().join("store1/p1").exists());
    assert!(!tmp.path().join("store0/p1").exists());
    // A killed channel leaves its open file uncommitted.
    let mut ch = chans.pop().unwrap();
    ch.backup("dying", &obj, 512, 0, 1, 0).unwrap();
    ch.write(&[1u8; 512]).unwrap();
    ch.kill();
    assert!(!tmp.path().join("store1/dying").exists());
    for ch in chans {
        ch.end(false).unwrap();
    }
}
