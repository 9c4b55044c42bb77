//! RMAN backup semantics DBAs rely on: BACKUP ARCHIVELOG archives the current log first,
//! PLUS ARCHIVELOG's second pass takes only the new logs, one control-file autobackup per
//! RUN block or top-level BACKUP, BACKUP OPTIMIZATION skips logs already backed up (issue 18).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use orca_oracle::BlockHeader;
use orca_oracle_sim::piece::{PieceReader, Record};
use orca_testing::fs::files_in;
use orca_testing::sim::TempDb;

/// A small database with three archived logs.
fn env() -> TempDb {
    TempDb::with_archived_logs(Path::new(env!("CARGO_BIN_EXE_oraclesim")), 3)
}

fn count_files(dir: &str) -> usize {
    files_in(Path::new(dir)).len()
}

fn archived_max_seq(env: &TempDb) -> u64 {
    env.db
        .number("select max(sequence#) from v$archived_log where thread# = 1")
}

#[test]
fn backup_archivelog_all_archives_the_current_log_first() {
    let env = env();
    let arch = env.dir("arch");
    let before = archived_max_seq(&env);
    let out = env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\nbackup format '{arch}/%h_%e_%s.arc' archivelog all;\n"
    ));
    assert!(out.contains("current log archived"), "{out}");
    let after = archived_max_seq(&env);
    assert_eq!(after, before + 1);
    // The log just archived is in the backup, in the FORMAT's directory.
    let backed = env.db.number(&format!(
        "select count(*) from v$backup_redolog where thread# = 1 and sequence# = {after}"
    ));
    assert_eq!(backed, 1, "{out}");
    let handles = env
        .db
        .sql_column("select handle from v$backup_piece where status = 'A'");
    assert!(!handles.is_empty());
    assert!(handles.iter().all(|h| h.starts_with(&arch)), "{handles:?}");
    assert_eq!(count_files(&arch), handles.len());

    // FROM SEQUENCE with no UNTIL also reaches "now"; an UNTIL range does not switch.
    let out = env.db.rman_ok(&format!(
        "backup format '{arch}/%h_%e_%s.arc' archivelog from sequence {after};\n"
    ));
    assert!(out.contains("current log archived"), "{out}");
    assert_eq!(archived_max_seq(&env), after + 1);
    let out = env.db.rman_ok(&format!(
        "backup format '{arch}/%h_%e_%s.arc' archivelog until sequence 2;\n"
    ));
    assert!(!out.contains("current log archived"), "{out}");
    assert_eq!(archived_max_seq(&env), after + 1);
}

#[test]
fn plus_archivelog_second_pass_takes_only_the_logs_since_the_first_switch() {
    let env = env();
    let data = env.dir("data");
    let arch = env.dir("arch");
    let out = env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\n\
         backup database format '{data}/%U' plus archivelog format '{arch}/%U';\n"
    ));
    assert_eq!(out.matches("current log archived").count(), 2, "{out}");
    // Every archived log is in exactly one backup set: the second pass did not take the
    // logs of the first again.
    let rows = env.db.number("select count(*) from v$backup_redolog");
    let logs = env
        .db
        .number("select count(*) from v$archived_log where status = 'A'");
    let distinct = env
        .db
        .number("select count(distinct sequence#) from v$backup_redolog");
    assert_eq!(rows, logs, "{out}");
    assert_eq!(distinct, logs, "{out}");
    // The last log (archived by the second switch) is the second pass's.
    let last = archived_max_seq(&env);
    assert_eq!(last, 5, "{out}");
    let tail = out.rsplit("current log archived").next().unwrap();
    assert!(
        tail.contains(&format!("input archived log thread=1 sequence={last} ")),
        "{tail}"
    );
    assert!(!tail.contains("sequence=1 "), "{tail}");
    let arch_handles = env.db.number(&format!(
        "select count(*) from v$backup_piece where handle like '{arch}/%'"
    ));
    assert_eq!(arch_handles, count_files(&arch) as u64);
    assert!(count_files(&data) >= 1);
}

#[test]
fn one_autobackup_per_run_block_and_per_top_level_backup() {
    let env = env();
    let data = env.dir("data");
    let cf = env.dir("cf");
    let setup = format!(
        "configure controlfile autobackup on;\n\
         configure controlfile autobackup format for device type disk to '{cf}/%F';\n"
    );
    let out = env.db.rman_ok(&format!(
        "{setup}run {{\n\
         backup datafile 4 format '{data}/%U';\n\
         backup archivelog all format '{data}/%U';\n\
         backup datafile 1 format '{data}/%U';\n\
         }}\n"
    ));
    let starts = "Starting Control File and SPFILE Autobackup";
    assert_eq!(out.matches(starts).count(), 1, "{out}");
    // After the block's last BACKUP.
    let last_backup = out.rfind("Finished backup at").unwrap();
    assert!(out.find(starts).unwrap() > last_backup, "{out}");
    assert_eq!(count_files(&cf), 1);
    let out = env.db.rman_ok(&format!(
        "backup datafile 4 format '{data}/%U';\nbackup archivelog all format '{data}/%U';\n"
    ));
    assert_eq!(out.matches(starts).count(), 2, "{out}");
    assert_eq!(count_files(&cf), 3);
    let in_cf = env.db.number(&format!(
        "select count(*) from v$backup_piece where handle like '{cf}/c-%'"
    ));
    assert_eq!(in_cf, 3);
}

#[test]
fn for_recover_of_copy_writes_the_level0_copies_where_format_says() {
    let env = env();
    let copies = env.dir("copies");
    let script = format!(
        "configure controlfile autobackup off;\n\
         backup incremental level 1 for recover of copy with tag 'INCR_UPD' database format '{copies}/%U';\n"
    );
    let out = env.db.rman_ok(&script);
    assert!(
        out.contains("no parent backup or copy of datafile 1 found"),
        "{out}"
    );
    let datafiles = env.db.number("select count(*) from v$datafile");
    let names = env
        .db
        .sql_column("select name from v$datafile_copy where status = 'A' and tag = 'INCR_UPD'");
    assert_eq!(names.len() as u64, datafiles, "{out}");
    assert!(
        names.iter().all(|n| n.starts_with(&format!("{copies}/"))),
        "{names:?}"
    );
    assert_eq!(count_files(&copies) as u64, datafiles);
    // The next run's level-1 sets go there too and roll the copies forward.
    env.db.workload("3", 1);
    env.db.rman_ok(&script);
    let handles = env
        .db
        .sql_column("select handle from v$backup_piece where status = 'A'");
    assert!(!handles.is_empty());
    assert!(
        handles.iter().all(|h| h.starts_with(&copies)),
        "{handles:?}"
    );
    env.db
        .rman_ok("recover copy of database with tag 'INCR_UPD';\n");
}

/// The `Piece Name:` values a LIST printed.
fn piece_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Piece Name: "))
        .map(|n| n.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn list_backup_of_an_object_lists_only_the_sets_holding_it() {
    let env = env();
    let df4 = env.dir("df4");
    let df1 = env.dir("df1");
    let arch = env.dir("arch");
    env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\n\
         backup datafile 4 format '{df4}/%U';\n\
         backup datafile 1 format '{df1}/%U';\n\
         backup archivelog all format '{arch}/%U';\n"
    ));
    let users = env
        .db
        .sql_column("select name from v$datafile where file# = 4")
        .remove(0);
    for of in ["datafile 4", "tablespace users"] {
        let out = env.db.rman_ok(&format!("list backup of {of};\n"));
        assert!(
            out.contains("List of Backup Sets\n==================="),
            "{out}"
        );
        assert!(
            out.contains("  File LV Type Ckp SCN    Ckp Time        Name"),
            "{out}"
        );
        let names = piece_names(&out);
        assert!(!names.is_empty(), "{out}");
        assert!(names.iter().all(|n| n.starts_with(&df4)), "{of}: {out}");
        let row = out
            .lines()
            .find(|l| l.starts_with("  4 "))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(row.trim_end().ends_with(&users), "{row}");
        assert!(!out.contains("Control File Included"), "{out}");
        assert!(!out.contains("List of Archived Logs"), "{out}");
    }
    let out = env.db.rman_ok("list backup of controlfile;\n");
    assert!(out.contains("  Control File Included: Ckp SCN: "), "{out}");
    assert!(out.contains("Ckp time: "), "{out}");
    assert!(
        piece_names(&out).iter().all(|n| n.starts_with(&df1)),
        "{out}"
    );
    let out = env.db.rman_ok("list backup of spfile;\n");
    assert!(
        out.contains("  SPFILE Included: Modification time: "),
        "{out}"
    );
    assert!(
        piece_names(&out).iter().all(|n| n.starts_with(&df1)),
        "{out}"
    );
    let out = env.db.rman_ok("list backup of archivelog all;\n");
    assert!(out.contains("List of Archived Logs in backup set"), "{out}");
    assert!(
        out.contains("  Thrd Seq     Low SCN    Low Time        Next SCN   Next Time"),
        "{out}"
    );
    assert!(!out.contains("List of Datafiles"), "{out}");
    let names = piece_names(&out);
    assert_eq!(names.len(), count_files(&arch), "{out}");
    assert!(names.iter().all(|n| n.starts_with(&arch)), "{out}");

    // The summary table, every set, then only datafile 4's.
    let sets = env.db.number("select count(*) from v$backup_set");
    let out = env.db.rman_ok("list backup summary;\n");
    assert!(out.contains("List of Backups\n==============="), "{out}");
    assert!(
        out.contains("Key     TY LV S Device Type Completion Time #Pieces #Copies Compressed Tag"),
        "{out}"
    );
    let rows = |out: &str| {
        out.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("B") && l.contains(" DISK "))
            .count()
    };
    assert_eq!(rows(&out) as u64, sets, "{out}");
    let out = env.db.rman_ok("list backup of datafile 4 summary;\n");
    assert_eq!(rows(&out), 1, "{out}");
    // A datafile that no set holds: Oracle's message, not every set.
    let out = env.db.rman_ok("list backup of datafile 3;\n");
    assert!(
        out.contains("specification does not match any backup in the repository"),
        "{out}"
    );
}

#[test]
fn backup_optimization_on_skips_logs_already_backed_up_to_the_device_unless_force() {
    let env = env();
    let a = env.dir("a");
    let b = env.dir("b");
    let c = env.dir("c");
    env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\nbackup archivelog all format '{a}/%U';\n"
    ));
    let backed = archived_max_seq(&env);
    let out = env.db.rman_ok(&format!(
        "configure backup optimization on;\nbackup archivelog all format '{b}/%U';\n"
    ));
    for seq in 1..=backed {
        assert!(
            out.contains(&format!(
                "skipping archived log of thread 1 with sequence {seq}; already backed up"
            )),
            "{out}"
        );
    }
    // Only the log the backup archived first is new.
    let logs = env.db.sql_column(&format!(
        "select r.sequence# from v$backup_redolog r, v$backup_piece p \
         where p.set_count = r.set_count and p.handle like '{b}/%'"
    ));
    assert_eq!(logs, [(backed + 1).to_string()]);
    let out = env
        .db
        .rman_ok(&format!("backup archivelog all format '{c}/%U' force;\n"));
    assert!(!out.contains("skipping archived log"), "{out}");
    assert!(count_files(&c) >= 1);
    let out = env.db.rman_ok("show all;\n");
    assert!(out.contains("CONFIGURE BACKUP OPTIMIZATION ON;"), "{out}");
}

/// (file#, block#) -> block SCN of every block after the datafile header (block 1) in the
/// pieces of the sets `where_set` selects (an SQL condition on V$BACKUP_PIECE).
fn piece_blocks(env: &TempDb, where_set: &str) -> BTreeMap<(u32, u64), u64> {
    let mut blocks = BTreeMap::new();
    let handles = env.db.sql_column(&format!(
        "select handle from v$backup_piece where status = 'A' and {where_set}"
    ));
    assert!(!handles.is_empty(), "no piece where {where_set}");
    for h in handles {
        let mut r = PieceReader::open(std::fs::File::open(&h).unwrap()).unwrap();
        let entries = r.header().entries.clone();
        let mut buf = Vec::new();
        while let Some(rec) = r.next_record(&mut buf).unwrap() {
            if let Record::Run {
                entry,
                first_block,
                block_size,
                ..
            } = rec
            {
                let file = entries[entry as usize].file_number;
                for (i, b) in buf.chunks(block_size as usize).enumerate() {
                    let n = first_block + i as u64;
                    if n >= 2 {
                        blocks.insert((file, n), BlockHeader::parse(b).unwrap().scn.0);
                    }
                }
            }
        }
    }
    blocks
}

/// (file#, block#) of the blocks of every datafile, after the header, whose SCN is above `scn`.
/// There are sets whose SET_COUNT `sets` (a query) selects, and every one of them has `holds`.
fn assert_every_set(env: &TempDb, sets: &str, holds: &str) {
    let all = env.db.number(&format!(
        "select count(*) from v$backup_set where set_count in ({sets})"
    ));
    assert!(all > 0, "no set in {sets}");
    assert_eq!(
        env.db.number(&format!(
            "select count(*) from v$backup_set where set_count in ({sets}) and {holds}"
        )),
        all,
        "not every set of {sets} has {holds}"
    );
}

fn blocks_changed_after(env: &TempDb, scn: u64) -> BTreeSet<(u32, u64)> {
    let mut out = BTreeSet::new();
    for row in env
        .db
        .sql_column("select file# || ' ' || block_size || ' ' || name from v$datafile")
    {
        let mut it = row.splitn(3, ' ');
        let file: u32 = it.next().unwrap().parse().unwrap();
        let bs: usize = it.next().unwrap().parse().unwrap();
        let data = std::fs::read(it.next().unwrap()).unwrap();
        for (n, b) in data.chunks(bs).enumerate().skip(2) {
            if b.iter().any(|&x| x != 0) && BlockHeader::parse(b).unwrap().scn.0 > scn {
                out.insert((file, n as u64));
            }
        }
    }
    out
}

#[test]
fn incremental_from_scn_takes_exactly_the_blocks_changed_after_the_scn() {
    let env = env();
    let full = env.dir("full");
    let inc = env.dir("inc");
    env.db.rman_ok(&format!(
        "configure controlfile autobackup off;\nbackup database format '{full}/%U' tag FULL;\n"
    ));
    let scn = env.db.number("select current_scn from v$database");
    env.db.workload("2", 1);
    let out = env.db.rman_ok(&format!(
        "backup incremental from scn {scn} database format '{inc}/%U' tag FROMSCN;\n"
    ));
    assert!(
        out.contains("starting incremental datafile backup set"),
        "{out}"
    );
    // Every piece of it where FORMAT says, and nothing else there.
    let handles = env
        .db
        .sql_column("select handle from v$backup_piece where tag = 'FROMSCN'");
    assert!(!handles.is_empty(), "{out}");
    assert!(handles.iter().all(|h| h.starts_with(&inc)), "{handles:?}");
    assert_eq!(count_files(&inc), handles.len());
    // Catalog: the datafile sets are incrementals of no level, INCREMENTAL_CHANGE# the SCN
    // given (the control file and SPFILE, included with file 1, make a set of their own).
    let sets = "select set_count from v$backup_datafile where file# > 0 and set_count in \
                (select set_count from v$backup_piece where tag = 'FROMSCN')";
    assert_every_set(
        &env,
        sets,
        "backup_type = 'I' and incremental_level is null",
    );
    let files = env.db.number("select count(*) from v$datafile");
    assert_eq!(
        env.db.number(&format!(
            "select count(*) from v$backup_datafile where set_count in ({sets}) \
             and file# > 0 and incremental_level is null and incremental_change# = {scn}"
        )),
        files
    );
    // The blocks: exactly those whose SCN is above the one given, all newer than it; the
    // full of the same files holds many more.
    let taken = piece_blocks(&env, "tag = 'FROMSCN'");
    assert!(taken.values().all(|&s| s > scn), "{taken:?}");
    let changed = blocks_changed_after(&env, scn);
    assert!(!changed.is_empty());
    assert_eq!(taken.keys().copied().collect::<BTreeSet<_>>(), changed);
    let in_full = piece_blocks(&env, "tag = 'FULL'");
    assert!(
        taken.len() * 5 < in_full.len(),
        "{} vs {}",
        taken.len(),
        in_full.len()
    );
    // LIST: type Incr with no level, the file rows too.
    let key = env.db.number(&format!(
        "select min(recid) from v$backup_set where set_count in ({sets})"
    ));
    let list = env.db.rman_ok(&format!("list backupset {key};\n"));
    assert!(
        list.lines()
            .any(|l| l.starts_with(&format!("{key:<7} Incr    "))),
        "{list}"
    );
    let file_row = format!("  {:<4} {:<2} {:<4} ", 4, "", "Incr");
    assert!(list.contains(&file_row), "{list}");
    // Of one datafile: that file only, from the same SCN.
    let one = env.dir("one");
    env.db.rman_ok(&format!(
        "backup incremental from scn {scn} datafile 4 format '{one}/%U' tag FROMSCN4;\n"
    ));
    let rows = env.db.sql_column(
        "select file# || ' ' || incremental_change# from v$backup_datafile where set_count in \
         (select set_count from v$backup_piece where tag = 'FROMSCN4')",
    );
    assert_eq!(rows, [format!("4 {scn}")]);
    assert_eq!(count_files(&one), 1);
    let four: BTreeSet<(u32, u64)> = changed.iter().filter(|(f, _)| *f == 4).copied().collect();
    assert_eq!(
        piece_blocks(&env, "tag = 'FROMSCN4'")
            .keys()
            .copied()
            .collect::<BTreeSet<_>>(),
        four
    );
    // It is no base for RESTORE: the datafile is restored from the full.
    let preview = env.db.rman_ok("restore datafile 4 preview;\n");
    assert!(preview.contains("Tag: FULL"), "{preview}");
    assert!(!preview.contains("FROMSCN"), "{preview}");
}

#[test]
fn backup_keep_is_an_archival_backup_obsolete_never_takes_while_kept() {
    let env = env();
    let keep = env.dir("keep");
    let bk = env.dir("bk");
    env.db.rman_ok("configure controlfile autobackup off;\n");
    let out = env.db.rman_ok(&format!(
        "backup datafile 4 format '{keep}/%U' tag ARCHIVAL keep until time 'sysdate+30';\n"
    ));
    assert!(out.contains("backup will be obsolete on date"), "{out}");
    assert!(
        out.contains("archived logs required to recover from this backup will be backed up"),
        "{out}"
    );
    // The archival backup holds the datafile, the control file and SPFILE, and the logs of
    // its time, all kept until the date given, all where FORMAT says.
    let archival = "select set_count from v$backup_piece where tag = 'ARCHIVAL'";
    let kept = env.db.number(&format!(
        "select count(*) from v$backup_set where set_count in ({archival}) and keep = 'YES' \
         and keep_options = 'BACKUP_LOGS' and keep_until > sysdate + 29 and keep_until < sysdate + 31"
    ));
    let sets = env.db.number(&format!(
        "select count(*) from v$backup_set where set_count in ({archival})"
    ));
    assert_eq!(kept, sets);
    assert_eq!(sets, 3, "{out}");
    for what in [
        "select count(*) from v$backup_datafile where file# = 4",
        "select count(*) from v$backup_datafile where file# = 0",
        "select count(*) from v$backup_redolog where 1 = 1",
    ] {
        assert_eq!(
            env.db
                .number(&format!("{what} and set_count in ({archival})"))
                .min(1),
            1,
            "{what}\n{out}"
        );
    }
    let handles = env
        .db
        .sql_column("select handle from v$backup_piece where tag = 'ARCHIVAL'");
    assert!(handles.iter().all(|h| h.starts_with(&keep)), "{handles:?}");
    assert_eq!(count_files(&keep), handles.len());
    let key = env.db.number(&format!(
        "select min(s.recid) from v$backup_set s join v$backup_datafile d \
         on d.set_stamp = s.set_stamp and d.set_count = s.set_count \
         where d.file# = 4 and s.set_count in ({archival})"
    ));
    let list = env.db.rman_ok("list backup of datafile 4;\n");
    let until = list
        .lines()
        .find(|l| l.trim_start().starts_with("Keep: BACKUP_LOGS"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(until.contains("Until: "), "{list}");
    assert!(!until.contains("FOREVER"), "{list}");

    // Two newer ordinary backups: REDUNDANCY 1 makes the older of them obsolete, never the
    // archival one, and DELETE OBSOLETE leaves it.
    for tag in ["N1", "N2"] {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        env.db
            .rman_ok(&format!("backup datafile 4 format '{bk}/%U' tag {tag};\n"));
    }
    let n1 = env.db.number(
        "select s.recid from v$backup_set s join v$backup_piece p \
         on p.set_stamp = s.set_stamp and p.set_count = s.set_count where p.tag = 'N1'",
    );
    let report = env.db.rman_ok("report obsolete redundancy 1;\n");
    assert!(
        report.contains(&format!("Backup Set           {n1:<6} ")),
        "{report}"
    );
    assert!(
        !report.contains(&format!("Backup Set           {key:<6} ")),
        "{report}"
    );
    env.db.rman_ok("delete noprompt obsolete redundancy 1;\n");
    assert!(handles.iter().all(|h| Path::new(h).exists()), "{handles:?}");
    assert_eq!(
        env.db
            .number("select count(*) from v$backup_piece where tag = 'ARCHIVAL' and status = 'A'"),
        handles.len() as u64
    );
    assert_eq!(
        env.db
            .number("select count(*) from v$backup_piece where tag = 'N1' and status = 'A'"),
        0
    );

    // Once its KEEP UNTIL time has passed, it is an ordinary, obsolete backup.
    let cf = rusqlite::Connection::open(env.db.home.join("control/control01.ctl")).unwrap();
    cf.execute(
        r#"UPDATE cf_backup_set SET "KEEP_UNTIL" = "KEEP_UNTIL" - 31 WHERE "KEEP" = 'YES'"#,
        [],
    )
    .unwrap();
    drop(cf);
    let report = env.db.rman_ok("report obsolete redundancy 1;\n");
    assert!(
        report.contains(&format!("Backup Set           {key:<6} ")),
        "{report}"
    );
}

#[test]
fn backup_keep_forever_and_nokeep() {
    let env = env();
    let bk = env.dir("bk");
    env.db.rman_ok("configure controlfile autobackup off;\n");
    let out = env.db.rman_ok(&format!(
        "backup datafile 4 format '{bk}/%U' tag FOREVER keep forever restore point yearend;\n"
    ));
    assert!(out.contains("backup will never be obsolete"), "{out}");
    let forever = "select set_count from v$backup_piece where tag = 'FOREVER'";
    assert_every_set(&env, forever, "keep = 'YES' and keep_until is null");
    let list = env.db.rman_ok("list backup of datafile 4;\n");
    assert!(
        list.lines()
            .any(|l| l.trim_start().starts_with("Keep: BACKUP_LOGS") && l.contains("FOREVER")),
        "{list}"
    );
    env.db.rman_ok(&format!(
        "backup datafile 4 format '{bk}/%U' tag ORDINARY nokeep;\n"
    ));
    assert_eq!(
        env.db.sql_column(
            "select distinct keep from v$backup_set \
             where set_count in (select set_count from v$backup_piece where tag = 'ORDINARY')"
        ),
        ["NO"]
    );
}
