//! The agent's library below `orca agent run`: the configuration a DBA writes, the RMAN
//! command files made from it, the state kept between attempts, and what `sqlplus` prints.

use std::path::{Path, PathBuf};

use orca_agent::config::{Config, Retention};
use orca_agent::script::{self, BackupWhat};
use orca_agent::state::{Attempt, DbState, PendingFull, PieceStat, StateFile};
use orca_agent::{AgentError, JobKind};
use orca_testing::agent::{AgentConfig, AgentDatabase};

/// A configuration as the agent's end-to-end tests write it, with fixed paths.
fn config() -> AgentConfig {
    AgentConfig {
        name: "testhost".into(),
        state_dir: "/var/lib/orca-agent".into(),
        heartbeat: "1s".into(),
        poll: "200ms".into(),
        vault_url: "http://vault:7400".into(),
        database: AgentDatabase {
            name: "ORCL".into(),
            oracle_sid: "orcl".into(),
            oracle_home: "/u01/db".into(),
            bin: "/u01/db/bin".into(),
            token: "orca_tok".into(),
            password: "pw".into(),
            sbt_library: "/opt/orca/liborca_sbt.so".into(),
            channels: 2,
            section_size: Some("1M".into()),
            retention: Some("{ redundancy = 2 }".into()),
            rac_instances: Vec::new(),
            cache_dir: "/var/cache/orca".into(),
        },
    }
}

fn parse(c: &AgentConfig) -> Result<Config, String> {
    Config::parse(&c.to_toml())
}

mod config {
    use super::*;

    #[test]
    fn the_example_file_loads_and_names_every_setting_it_documents() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/agent.example.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.agent_name(), "dbhost1");
        assert_eq!(
            c.vault.ca_file.as_deref(),
            Some(Path::new("/etc/orca/ca.pem"))
        );
        let db = c
            .database("orcl")
            .expect("looked up without regard to case");
        assert_eq!(db.channels, 4);
        assert_eq!(db.section_size.as_deref(), Some("32G"));
        assert_eq!(db.retention, Some(Retention::RecoveryWindowDays(7)));
        assert_eq!(db.rac.as_ref().unwrap().instances, ["orcl1", "orcl2"]);
        assert_eq!(db.env["NLS_LANG"], "AMERICAN_AMERICA.AL32UTF8");
        assert!(c.database("SALES").is_none());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let e = Config::load(Path::new("/nonexistent/agent.toml")).unwrap_err();
        assert!(matches!(e, AgentError::Config { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/agent.toml"), "{e}");
    }

    #[test]
    fn the_end_to_end_configuration_parses_with_its_defaults() {
        let c = parse(&config()).unwrap();
        let db = &c.databases[0];
        assert_eq!(c.agent_name(), "testhost");
        assert_eq!(c.agent.heartbeat, std::time::Duration::from_secs(1));
        assert_eq!(db.connect, "/", "the default connect string");
        assert_eq!(db.rman_path(), PathBuf::from("/u01/db/bin/rman"));
        assert_eq!(db.retention, Some(Retention::Redundancy(2)));
        assert_eq!(db.retention.unwrap().rman(), "redundancy 2");
        assert!(db.schedule.full.is_none(), "no schedule unless configured");
        assert!(db.rac.is_none());
    }

    #[test]
    fn a_misspelt_key_is_named() {
        let text = config().to_toml().replace("channels = 2", "chanels = 2");
        let e = Config::parse(&text).unwrap_err();
        assert!(e.contains("chanels"), "{e}");
    }

    #[test]
    fn a_duration_that_does_not_parse_is_refused() {
        let text = config().to_toml().replace("\"200ms\"", "\"soon\"");
        let e = Config::parse(&text).unwrap_err();
        assert!(e.contains("soon") || e.contains("poll"), "{e}");
    }

    /// A mistake a DBA could make in the file.
    type Change = fn(&mut AgentConfig);

    #[test]
    fn mistakes_are_refused_with_the_setting_to_fix() {
        let cases: [(&str, Change); 5] = [
            ("channels must be 1 to 64", |c| c.database.channels = 0),
            ("channels must be 1 to 64", |c| c.database.channels = 65),
            ("retention must keep at least", |c| {
                c.database.retention = Some("{ redundancy = 0 }".into())
            }),
            ("cannot go into a channel's ENV", |c| {
                c.database.password = "a,b".into()
            }),
            ("cannot go into a channel's ENV", |c| {
                c.database.token = "orca_(x)".into()
            }),
        ];
        for (expected, change) in cases {
            let mut c = config();
            change(&mut c);
            let e = parse(&c).unwrap_err();
            assert!(e.contains(expected), "{expected}: {e}");
        }
        assert!(
            parse(&config()).is_ok(),
            "the unchanged configuration parses"
        );
    }

    #[test]
    fn a_database_twice_no_database_or_no_key_is_refused() {
        let text = config().to_toml();
        let at = text.find("[[database]]").unwrap();
        let db = &text[at..];
        let twice = format!(
            "{text}\n{}",
            db.replace("name = \"ORCL\"", "name = \"orcl\"")
        );
        assert!(
            Config::parse(&twice)
                .unwrap_err()
                .contains("configured twice")
        );
        let none = &text[..at];
        assert!(Config::parse(none).is_err(), "no [[database]] parses");
        let keyless = text.replace("password = \"pw\"\n", "");
        assert!(Config::parse(&keyless).unwrap_err().contains("key_file"));
        let both = text.replace(
            "password = \"pw\"\n",
            "password = \"pw\"\nkey_file = \"/k\"\n",
        );
        assert!(Config::parse(&both).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn a_rac_connect_string_must_name_the_instance() {
        let mut c = config();
        c.database.rac_instances = vec!["orcl1".into(), "orcl2".into()];
        let ok = parse(&c).unwrap();
        assert_eq!(ok.databases[0].rac.as_ref().unwrap().instances.len(), 2);
        let text = c.to_toml().replace("sys/pw@{instance}", "sys/pw@orcl1");
        let e = Config::parse(&text).unwrap_err();
        assert!(e.contains("{instance}"), "{e}");
    }
}

mod scripts {
    use super::*;

    const PARMS: &str = "SBT_LIBRARY=/opt/orca/liborca_sbt.so, ENV=(ORCA_VAULT=http://vault:7400, ORCA_TOKEN_FILE=/var/lib/orca-agent/ORCL/token, ORCA_PASSWORD_FILE=/var/lib/orca-agent/ORCL/password, ORCA_CACHE_DIR=/var/cache/orca, ORCA_SBT_BATCH_MB=1)";

    /// A backup's channels also label their pieces with the command id.
    const BACKUP_PARMS: &str = "SBT_LIBRARY=/opt/orca/liborca_sbt.so, ENV=(ORCA_COMMAND_ID=orca-job-1, ORCA_VAULT=http://vault:7400, ORCA_TOKEN_FILE=/var/lib/orca-agent/ORCL/token, ORCA_PASSWORD_FILE=/var/lib/orca-agent/ORCL/password, ORCA_CACHE_DIR=/var/cache/orca, ORCA_SBT_BATCH_MB=1)";

    fn backup(c: &Config, what: BackupWhat) -> String {
        script::backup(c, &c.databases[0], &[], "orca-job-1", "ORCA_L0_1", &what)
    }

    /// The whole database at `level`, only what was not backed up since `since` when given.
    fn database(c: &Config, level: u8, since: Option<&str>) -> String {
        let since = since.map(str::to_string);
        backup(c, BackupWhat::Database { level, since })
    }

    /// What RMAN gets: the control file autobackup on and a crosscheck of the archived logs,
    /// then the RUN block: the command id, two SBT channels, then `command`.
    fn golden(command: &str) -> String {
        format!(
            "configure controlfile autobackup on;\ncrosscheck archivelog all;\nrun {{\n  set command id to 'orca-job-1';\n  allocate channel c1 device type sbt parms '{BACKUP_PARMS}';\n  allocate channel c2 device type sbt parms '{BACKUP_PARMS}';\n  {command}\n}}\n"
        )
    }

    /// A datafile backup followed by the archived logs it needs, into the same tag.
    fn with_logs(command: &str) -> String {
        format!("{command}\n  backup filesperset 1 tag 'ORCA_L0_1' archivelog all not backed up;")
    }

    #[test]
    fn the_channels_carry_the_vault_settings() {
        let c = parse(&config()).unwrap();
        assert_eq!(script::channel_parms(&c, &c.databases[0]), PARMS);
    }

    #[test]
    fn the_channels_secrets_are_files_only_the_agent_reads() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let mut c = parse(&config()).unwrap();
        c.agent.state_dir = d.path().join("state");
        let db = &c.databases[0];
        let parms = script::channel_parms(&c, db);
        assert!(
            !parms.contains("orca_tok") && !parms.contains("=pw"),
            "{parms}"
        );
        script::write_secrets(&c, db).unwrap();
        let dir = c.agent.state_dir.join("ORCL");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for (file, secret) in [("token", "orca_tok"), ("password", "pw")] {
            let p = dir.join(file);
            assert!(parms.contains(&format!("={}", p.display())), "{parms}");
            assert_eq!(std::fs::read_to_string(&p).unwrap(), secret);
            assert_eq!(mode(&p), 0o600, "{file}");
        }
    }

    #[test]
    fn a_full_backup_is_level_0_in_sections_one_file_per_set_with_its_tag() {
        let c = parse(&config()).unwrap();
        let s = database(&c, 0, None);
        assert_eq!(
            s,
            golden(&with_logs(
                "backup incremental level 0 section size 1M filesperset 1 tag 'ORCA_L0_1' database;"
            ))
        );
    }

    #[test]
    fn an_incremental_is_level_1() {
        let c = parse(&config()).unwrap();
        let s = database(&c, 1, None);
        assert_eq!(
            s,
            golden(&with_logs(
                "backup incremental level 1 section size 1M filesperset 1 tag 'ORCA_L0_1' database;"
            ))
        );
    }

    #[test]
    fn archived_logs_are_backed_up_once_and_without_sections() {
        let c = parse(&config()).unwrap();
        let s = backup(&c, BackupWhat::Archivelog);
        assert_eq!(
            s,
            golden("backup filesperset 1 tag 'ORCA_L0_1' archivelog all not backed up;")
        );
        assert!(!s.contains("section size"), "{s}");
    }

    #[test]
    fn a_resume_skips_what_the_failed_attempts_finished() {
        let c = parse(&config()).unwrap();
        let s = database(&c, 0, Some("2026-12-02 10:00:00"));
        assert_eq!(
            s,
            golden(&with_logs(
                "backup incremental level 0 section size 1M filesperset 1 tag 'ORCA_L0_1' database not backed up since time \"to_date('2026-12-02 10:00:00','YYYY-MM-DD HH24:MI:SS')\";"
            ))
        );
        let files = backup(
            &c,
            BackupWhat::Datafiles {
                level: 0,
                files: vec![4, 7],
            },
        );
        assert!(
            files.contains("filesperset 1 tag 'ORCA_L0_1' datafile 4, 7;"),
            "{files}"
        );
    }

    #[test]
    fn without_a_section_size_no_file_is_split() {
        let mut a = config();
        a.database.section_size = None;
        let c = parse(&a).unwrap();
        let s = database(&c, 0, None);
        assert!(!s.contains("section size"), "{s}");
        assert!(s.contains("level 0 filesperset 1 tag"), "{s}");
    }

    #[test]
    fn rac_channels_go_round_the_open_instances() {
        let mut a = config();
        a.database.channels = 3;
        a.database.rac_instances = vec!["orcl1".into(), "orcl2".into()];
        let c = parse(&a).unwrap();
        let instances = ["orcl1".to_string(), "orcl2".to_string()];
        let s = script::backup(
            &c,
            &c.databases[0],
            &instances,
            "id",
            "T",
            &BackupWhat::Archivelog,
        );
        let connects: Vec<&str> = s
            .lines()
            .filter_map(|l| l.split(" connect '").nth(1))
            .collect();
        assert_eq!(
            connects,
            ["sys/pw@orcl1';", "sys/pw@orcl2';", "sys/pw@orcl1';"]
        );
        // Only the instances still open: none names the one left out.
        let s = script::backup(
            &c,
            &c.databases[0],
            &instances[..1],
            "id",
            "T",
            &BackupWhat::Archivelog,
        );
        assert!(!s.contains("@orcl2"), "{s}");
    }

    #[test]
    fn maintenance_runs_on_one_sbt_channel() {
        let c = parse(&config()).unwrap();
        let db = &c.databases[0];
        let one = |command: &str| {
            format!(
                "run {{\n  allocate channel c1 device type sbt parms '{PARMS}';\n  {command}\n}}\n"
            )
        };
        assert_eq!(
            script::delete_pieces(&c, db, &["a".into(), "b".into()]),
            one("delete noprompt backuppiece 'a', 'b';")
        );
        assert_eq!(
            script::crosscheck_tag(&c, db, "ORCA_L0_1"),
            one("crosscheck backup tag 'ORCA_L0_1' device type sbt;")
        );
        assert_eq!(
            script::delete_obsolete(&c, db, "redundancy 2"),
            one("delete noprompt obsolete redundancy 2 device type sbt;")
        );
    }
}

mod state {
    use super::*;

    fn pending() -> DbState {
        DbState {
            pending_full: Some(PendingFull {
                tag: "ORCA_L0_1".into(),
                command_id: "orca-job-1".into(),
                start_time: "2026-12-02 10:00:00".into(),
                attempts: vec![Attempt {
                    job: "j1".into(),
                    succeeded: false,
                    message: "killed".into(),
                    pieces: vec![PieceStat {
                        handle: "ORCL_1_1".into(),
                        section: Some((1, 1)),
                        bytes_in: 8192,
                        new_bytes: 4096,
                    }],
                    started: vec![(1, 1), (2, 1)],
                    skipped_datafiles: Vec::new(),
                    cleaned_up: Vec::new(),
                }],
            }),
        }
    }

    #[test]
    fn no_file_is_no_pending_full() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path(), "orcl");
        assert_eq!(
            f.dir(),
            dir.path().join("ORCL"),
            "one directory per DB_NAME"
        );
        assert!(f.load().unwrap().pending_full.is_none());
    }

    #[test]
    fn what_is_saved_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path(), "ORCL");
        f.save(&pending()).unwrap();
        let back = f.load().unwrap().pending_full.unwrap();
        assert_eq!(back.tag, "ORCA_L0_1");
        assert_eq!(back.attempts[0].started, [(1, 1), (2, 1)]);
        assert_eq!(back.attempts[0].pieces[0].section, Some((1, 1)));
        let names: Vec<String> = std::fs::read_dir(f.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["state.json"], "no temporary file left");
        // Saved again without the full: the pending full is gone.
        f.save(&DbState::default()).unwrap();
        assert!(f.load().unwrap().pending_full.is_none());
    }

    #[test]
    fn a_write_cut_short_leaves_the_state_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path(), "ORCL");
        f.save(&pending()).unwrap();
        // A crash during the next save: its temporary file holds half a document.
        let tmp = f.dir().join("state.json.tmp");
        let whole = std::fs::read(f.dir().join("state.json")).unwrap();
        std::fs::write(&tmp, &whole[..whole.len() / 2]).unwrap();
        let back = f.load().unwrap();
        assert_eq!(back.pending_full.unwrap().command_id, "orca-job-1");
        f.save(&DbState::default()).unwrap();
        assert!(!tmp.exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path(), "ORCL");
        std::fs::create_dir_all(f.dir()).unwrap();
        std::fs::write(f.dir().join("state.json"), b"{\"pending_full\": {\"tag\"").unwrap();
        let e = f.load().unwrap_err();
        assert!(matches!(e, AgentError::State { .. }), "{e}");
        assert!(e.to_string().contains("state.json"), "{e}");
    }
}

mod sqlplus {
    use orca_agent::oracle::{parse_csv, sql_str};

    #[test]
    fn csv_rows_are_keyed_by_upper_case_column() {
        let text = "\n\"HANDLE\",\"bytes\",\"Tag\"\n\"ORCL_1_1\",8192,\"T1\"\n\"ORCL_2_1\",,\"T, \"\"2\"\"\"\n";
        let rows = parse_csv(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["HANDLE"], "ORCL_1_1");
        assert_eq!(rows[0]["BYTES"], "8192");
        assert_eq!(rows[1]["BYTES"], "", "NULL is empty");
        assert_eq!(rows[1]["TAG"], "T, \"2\"");
    }

    #[test]
    fn lines_that_are_not_rows_of_the_header_are_dropped() {
        assert!(parse_csv("").is_empty());
        assert!(parse_csv("\"A\",\"B\"\n").is_empty(), "a header alone");
        let rows = parse_csv("\"A\",\"B\"\n1,2\nno rows selected\n3,4,5\n");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["B"], "2");
    }

    #[test]
    fn sql_strings_double_their_quotes() {
        assert_eq!(sql_str("ORCA_L0_1"), "'ORCA_L0_1'");
        assert_eq!(sql_str("it's"), "'it''s'");
    }
}

#[test]
fn job_kinds_round_trip_and_unknown_kinds_are_refused() {
    for k in JobKind::ALL {
        assert_eq!(JobKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(JobKind::parse("backup-everything"), None);
}
