//! The `rman` and `sqlplus` stand-ins driven as a DBA drives Oracle's: through links on PATH
//! made by `oraclesim install-shims`, with ORACLESIM_HOME naming the database.

#[path = "sbt_testlib/mod.rs"]
mod testlib;

use std::path::{Path, PathBuf};

use orca_testing::fs::files_in;
use orca_testing::sim::{DbSpec, TempDb, copy_matches_datafile};

/// A small database (4 datafiles of 4 MiB) in a temporary directory, with the shims.
fn env() -> TempDb {
    TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec::default(),
    )
}

/// Full backup, changes and log switches, loss of every datafile, RESTORE + RECOVER: the
/// datafiles equal a snapshot taken before the loss.
fn backup_lose_restore(env: &TempDb, channel: &str) -> String {
    let alloc = format!("allocate channel c1 {channel};\n  allocate channel c2 {channel};");
    env.db.rman_ok(&format!(
        "run {{\n  {alloc}\n  backup database filesperset 1;\n}}\n"
    ));
    env.db.workload("2", 2);
    let out = env.db.lose_restore_verify(&format!(
        "run {{\n  {alloc}\n  restore database;\n  recover database;\n}}\n"
    ));
    assert!(out.contains("media recovery complete"), "{out}");
    out
}

#[test]
fn disk_backup_restore_recover_reproduces_the_datafiles() {
    let env = env();
    let fmt = env.path("bk");
    std::fs::create_dir(&fmt).unwrap();
    let out = backup_lose_restore(
        &env,
        &format!("device type disk format '{}/%U'", fmt.display()),
    );
    assert!(out.contains("Finished restore at"), "{out}");
}

#[test]
fn sbt_backup_restore_recover_follows_the_rman_call_sequence() {
    let env = env();
    let lib = testlib::build(env.tmp.path());
    let store = env.path("store");
    std::fs::create_dir(&store).unwrap();
    let trace = env.path("calls.log");
    let channel = format!(
        "device type sbt parms 'SBT_LIBRARY={}, ENV=(SBT_TESTLIB_DIR={}, SBT_TESTLIB_TRACE={})'",
        lib.display(),
        store.display(),
        trace.display()
    );
    backup_lose_restore(&env, &channel);
    let calls = testlib::read_trace(&trace);
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    // Every channel starts with sbtinit, sbtinit2 and ends with sbtend (oracle-facts §1.9).
    let per_pid = |pid: u32| -> Vec<String> {
        testlib::collapse(
            &calls
                .iter()
                .filter(|c| c.pid == pid)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let pids: std::collections::BTreeSet<u32> = calls.iter().map(|c| c.pid).collect();
    assert!(pids.len() >= 4, "two channels in each of two sessions");
    for pid in pids {
        let seq = per_pid(pid);
        assert_eq!(&seq[..2], ["sbtinit", "sbtinit2"], "{seq:?}");
        assert_eq!(seq.last().map(String::as_str), Some("sbtend"), "{seq:?}");
    }
    // A backup writes a piece as sbtbackup, sbtwrite2 x N, sbtclose2, sbtinfo2; a restore
    // reads it as sbtrestore, sbtread2 to EOF (then sbterror), sbtclose2.
    let text = names.join(" ");
    assert!(
        text.contains("sbtbackup sbtwrite2") && text.contains("sbtclose2 sbtinfo2"),
        "{text}"
    );
    assert!(
        text.contains("sbtrestore sbtread2") && text.contains("sbterror sbtclose2"),
        "{text}"
    );
}

#[test]
fn multiplexed_pieces_differ_and_single_file_pieces_carry_identical_blocks() {
    let env = env();
    let run = |dir: &str, fps: u32| -> Vec<Vec<u8>> {
        let d = env.path(dir);
        std::fs::create_dir(&d).unwrap();
        env.db.rman_ok(&format!(
                "run {{\n allocate channel c1 device type disk format '{}/%U';\n backup database filesperset {fps};\n}}\n",
                d.display()
            ));
        files_in(&d)
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    let a = run("m1", 4);
    let b = run("m2", 4);
    assert_eq!(a.len(), b.len());
    assert_ne!(
        a, b,
        "two multiplexed backups must interleave blocks differently"
    );

    let c = run("s1", 1);
    let d = run("s2", 1);
    assert_eq!(c.len(), d.len());
    // The datafile block runs are equal: compare each piece without its header and trailer
    // by the longest common 64 KiB-aligned middle.
    for (x, y) in c.iter().zip(&d) {
        assert_eq!(x.len(), y.len());
        let blocks_equal = x
            .chunks(8192)
            .zip(y.chunks(8192))
            .filter(|(p, q)| p == q)
            .count();
        let total = x.len() / 8192;
        assert!(
            blocks_equal + 4 >= total,
            "{blocks_equal} of {total} blocks equal"
        );
    }
}

#[test]
fn interrupted_multi_section_backup_keeps_finished_sections_only() {
    let env = env();
    let bk = env.path("bk");
    std::fs::create_dir(&bk).unwrap();
    // 4 MiB files in 1 MiB sections: datafile 1 completes (5 sections with its header), the
    // first section of datafile 2 completes, then the channel fails.
    let script = format!(
        "run {{\n allocate channel c1 device type disk format '{}/%U';\n backup section size 1M database;\n}}\n",
        bk.display()
    );
    let (ok, out) = env
        .db
        .rman(&script, &[("ORACLESIM_FAIL_AFTER_SECTIONS", "6")]);
    assert!(!ok, "the backup must fail:\n{out}");
    assert!(out.contains("RMAN-03009"), "{out}");
    let (_, q) = env.db.sqlplus("set heading off feedback off\nselect count(*) from v$backup_piece;\nselect count(*) from v$backup_set;\nselect count(*) from v$backup_set where multi_section = 'YES';\n",
    );
    let counts: Vec<u64> = q
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(counts.len(), 3, "{q}");
    assert_eq!(counts[0], 6, "every finished section is a piece: {q}");
    assert_eq!(counts[1], 1, "only the finished file's set has a row: {q}");
    assert_eq!(counts[2], 1, "{q}");

    // The re-run skips the file that finished and backs up the rest.
    let rerun = format!(
        "run {{\n allocate channel c1 device type disk format '{}/%U';\n backup section size 1M database not backed up since time 'SYSDATE-1';\n}}\n",
        bk.display()
    );
    let out = env.db.rman_ok(&rerun);
    assert!(
        out.contains("skipping datafile 1; already backed up on"),
        "{out}"
    );
    assert!(!out.contains("skipping datafile 2"), "{out}");
}

#[test]
fn incremental_merge_keeps_copies_equal_to_the_datafiles() {
    let env = env();
    let copies = env.path("copies");
    std::fs::create_dir(&copies).unwrap();
    let script = format!(
        "run {{\n allocate channel c1 device type disk format '{}/%U';\n backup incremental level 1 for recover of copy with tag 'MERGE' database;\n recover copy of database with tag 'MERGE';\n}}\n",
        copies.display()
    );
    // First run creates the level-0 copies; each later run rolls them forward.
    env.db.rman_ok(&script);
    env.db.workload("3", 1);
    env.db.rman_ok(&script);
    // The copies now equal the datafiles as of the level-1 checkpoint.
    let (_, q) = env.db.sqlplus("set heading off feedback off pagesize 0\nselect name from v$datafile_copy where status = 'A' order by file#;\n",
    );
    let copy_paths: Vec<PathBuf> = q.split_whitespace().map(PathBuf::from).collect();
    assert_eq!(copy_paths.len(), 4, "{q}");
    let (_, q) = env.db.sqlplus(
        "set heading off feedback off pagesize 0\nselect name from v$datafile order by file#;\n",
    );
    let files: Vec<PathBuf> = q.split_whitespace().map(PathBuf::from).collect();
    assert_eq!(files.len(), 4, "{q}");
    let mut checked = 0;
    for (df, cp) in files.iter().zip(&copy_paths) {
        let a = std::fs::read(df).unwrap();
        let b = std::fs::read(cp).unwrap();
        assert!(
            copy_matches_datafile(&b, &a),
            "{} differs from {}",
            cp.display(),
            df.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn a_failing_channel_prints_an_error_stack_and_fails() {
    let env = env();
    let bk = env.path("bk");
    std::fs::create_dir(&bk).unwrap();
    let script = format!(
        "run {{\n allocate channel c1 device type disk format '{}/%U';\n backup database;\n}}\n",
        bk.display()
    );
    let (ok, out) = env
        .db
        .rman(&script, &[("ORACLESIM_FAIL_AFTER_BYTES", "100000")]);
    assert!(!ok);
    assert!(out.contains("RMAN-00571"), "{out}");
    assert!(out.contains("RMAN-03009"), "{out}");
    let (ok, out) = env
        .db
        .rman(&script, &[("ORACLESIM_KILL_AFTER_BYTES", "100000")]);
    assert!(!ok, "{out}");
}

#[test]
fn crosscheck_marks_removed_pieces_expired_and_delete_expired_drops_them() {
    let env = env();
    let bk = env.path("bk");
    std::fs::create_dir(&bk).unwrap();
    env.db.rman_ok(&format!(
        "configure channel device type disk format '{}/%U';\nbackup database filesperset 1;\n",
        bk.display()
    ));
    let pieces = files_in(&bk);
    assert_eq!(pieces.len(), 4);
    std::fs::remove_file(&pieces[0]).unwrap();
    let out = env.db.rman_ok("crosscheck backup;\n");
    assert!(out.contains("found to be 'EXPIRED'"), "{out}");
    let list = env.db.rman_ok("list backup summary;\n");
    assert!(list.contains(" X DISK"), "{list}");
    let out = env.db.rman_ok("delete noprompt expired backup;\n");
    assert!(out.contains("Deleted 1 objects"), "{out}");
    let out = env.db.rman_ok(&format!(
        "delete noprompt backuppiece '{}';\n",
        pieces[1].display()
    ));
    assert!(out.contains("Deleted 1 objects"), "{out}");
    assert!(!pieces[1].exists());
}

#[test]
fn sqlplus_lists_three_archived_logs_after_three_switches() {
    let env = env();
    for _ in 0..3 {
        let (ok, out) = env.db.sqlplus("alter system archive log current;\n");
        assert!(ok && out.contains("System altered."), "{out}");
    }
    let (ok, csv) = env.db.sqlplus("set markup csv on\nselect thread#, sequence#, first_change#, next_change# from v$archived_log order by sequence#;\nexit\n",
    );
    assert!(ok);
    let lines: Vec<&str> = csv.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "\"THREAD#\",\"SEQUENCE#\",\"FIRST_CHANGE#\",\"NEXT_CHANGE#\""
    );
    let rows: Vec<Vec<u64>> = lines[1..]
        .iter()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{csv}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], 1);
        assert_eq!(r[1], i as u64 + 1);
        assert!(r[2] < r[3], "first_change# < next_change#");
        if i > 0 {
            assert_eq!(r[2], rows[i - 1][3], "logs are contiguous");
        }
    }
    let (_, plain) = env
        .db
        .sqlplus("select thread#, sequence# from v$archived_log order by sequence#;\n");
    assert!(plain.contains("   THREAD#  SEQUENCE#"), "{plain}");
    assert!(plain.contains("---------- ----------"), "{plain}");
}

#[test]
fn sqlplus_prints_ora_errors_and_honours_whenever_sqlerror() {
    let env = env();
    let (ok, out) = env
        .db
        .sqlplus("select * from no_such_view;\nselect 1 from dual;\n");
    assert!(ok);
    assert!(
        out.contains("ORA-00942: table or view does not exist"),
        "{out}"
    );
    assert!(out.contains("ERROR at line 1:"), "{out}");
    let (ok, out) = env.db.sqlplus(
        "whenever sqlerror exit failure\nselect nosuchcol from v$database;\nprompt unreachable\n",
    );
    assert!(!ok);
    assert!(
        out.contains("ORA-00904: \"NOSUCHCOL\": invalid identifier"),
        "{out}"
    );
    assert!(!out.contains("unreachable"));
}
