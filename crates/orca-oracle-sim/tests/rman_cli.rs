//! What DBAs type around RMAN (issue 18): `rman target / @file USING a b` with `&1` `&2`,
//! `msglog=` / `log=` with `append`, and SQL*Plus's `archive log list` and `show parameter`.

use std::path::Path;

use orca_testing::fs::files_in;
use orca_testing::process::output;
use orca_testing::sim::{DbSpec, TempDb};

fn env() -> TempDb {
    TempDb::new(
        Path::new(env!("CARGO_BIN_EXE_oraclesim")),
        &DbSpec::default(),
    )
}

#[test]
fn command_file_using_values_fills_substitution_variables_and_msglog_appends() {
    let env = env();
    let bk = env.dir("bk");
    let script = env.path("daily.rman");
    std::fs::write(
        &script,
        "configure controlfile autobackup off;\nbackup datafile 4 format '&1/%U' tag &2.;\n",
    )
    .unwrap();
    let log = env.path("rman.log");
    std::fs::write(&log, "earlier run\n").unwrap();
    let mut c = env.db.tool("rman");
    c.args(["target", "/"])
        .arg(format!("@{}", script.display()))
        .args(["USING", &bk, "nightly"])
        .arg(format!("msglog={}", log.display()))
        .arg("append");
    let (ok, printed) = output(&mut c);
    assert!(ok, "{printed}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("earlier run\n"), "{text}");
    assert!(
        text.contains(&format!("backup datafile 4 format '{bk}/%U' tag nightly;")),
        "{text}"
    );
    assert!(text.contains("tag=NIGHTLY"), "{text}");
    assert_eq!(files_in(Path::new(&bk)).len(), 1);
    let tags = env.db.sql_column("select tag from v$backup_piece");
    assert_eq!(tags, ["NIGHTLY"]);

    // A variable without a USING value is asked for on stdin.
    let mut c = env.db.tool("rman");
    c.args(["target", "/"])
        .arg(format!("@{}", script.display()))
        .args(["using", &bk]);
    let (ok, printed) = output_with_stdin(&mut c, "weekly\n");
    assert!(ok, "{printed}");
    assert!(printed.contains("Enter value for 2: "), "{printed}");
    assert!(printed.contains("tag=WEEKLY"), "{printed}");
}

/// Runs `c` with `input` on stdin: whether it succeeded, and stdout then stderr.
fn output_with_stdin(c: &mut std::process::Command, input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn sqlplus_archive_log_list_and_show_parameter_print_oracle_layout() {
    let env = env();
    env.db.switch();
    env.db.switch();
    let (ok, out) = env
        .db
        .sqlplus("archive log list\nshow parameter db_block_size\nshow parameter log_archive\n");
    assert!(ok, "{out}");
    let arch = env.db.home.join("arch").display().to_string();
    let current = env
        .db
        .sql_column("select sequence# from v$log where status = 'CURRENT'");
    let oldest = env
        .db
        .sql_column("select min(sequence#) from v$log where sequence# > 0");
    for line in [
        "Database log mode              Archive Mode".to_string(),
        "Automatic archival             Enabled".to_string(),
        format!("Archive destination            {arch}"),
        format!("Oldest online log sequence     {}", oldest[0]),
        format!("Next log sequence to archive   {}", current[0]),
        format!("Current log sequence           {}", current[0]),
        format!("{:<36} {:<11} {}", "NAME", "TYPE", "VALUE"),
        format!("{:<36} {:<11} {}", "db_block_size", "integer", "8192"),
        format!(
            "{:<36} {:<11} {}",
            "log_archive_format", "string", "%t_%s_%r.arc"
        ),
    ] {
        assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
    }
    assert!(!out.contains("db_name "), "{out}");
}

#[test]
fn report_need_backup_lists_the_files_short_of_backups() {
    let env = env();
    let bk = env.dir("bk");
    let files: Vec<String> = env
        .db
        .sql_column("select name from v$datafile order by file#");
    let row = |file_no: usize, n: u32| format!("{file_no:<4} {n:<5} {}", files[file_no - 1]);
    let out = env
        .db
        .rman_ok("configure controlfile autobackup off;\nreport need backup;\n");
    assert!(
        out.contains("RMAN retention policy is set to redundancy 1\nReport of files with less than 1 redundant backups\nFile #bkps Name\n"),
        "{out}"
    );
    for f in 1..=4 {
        assert!(out.lines().any(|l| l == row(f, 0)), "{out}");
    }

    env.db
        .rman_ok(&format!("backup datafile 4 format '{bk}/%U';\n"));
    let out = env.db.rman_ok("report need backup;\n");
    for f in 1..=3 {
        assert!(out.lines().any(|l| l == row(f, 0)), "{out}");
    }
    assert!(!out.contains(&files[3]), "{out}");
    let out = env
        .db
        .rman_ok("report need backup redundancy 2 database;\n");
    assert!(!out.contains("retention policy"), "{out}");
    assert!(out.lines().any(|l| l == row(4, 1)), "{out}");
    let out = env.db.rman_ok("report need backup days 1;\n");
    assert!(
        out.contains("Report of files whose recovery needs more than 1 days of archived logs\nFile Days  Name\n"),
        "{out}"
    );
    assert!(!out.contains(&files[3]), "{out}");
}
