//! RMAN command files generated from the settings.

use std::path::PathBuf;

use crate::AgentError;
use crate::config::{Config, DatabaseConfig};
use crate::state::{StateFile, private_dir, write_private};

/// What a backup command backs up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupWhat {
    /// `INCREMENTAL LEVEL n ... DATABASE`, optionally `NOT BACKED UP SINCE TIME` (a resume).
    Database { level: u8, since: Option<String> },
    /// `INCREMENTAL LEVEL n ... DATAFILE f, g, ...`: files a full must still cover.
    Datafiles { level: u8, files: Vec<u32> },
    /// `ARCHIVELOG ALL NOT BACKED UP`.
    Archivelog,
}

/// The files the channels read the database's vault token and passphrase from, in its state
/// directory: RMAN echoes a channel's PARMS into its logs, so they name files, never secrets.
fn secret_files(cfg: &Config, db: &DatabaseConfig) -> (PathBuf, PathBuf) {
    let dir = StateFile::new(&cfg.agent.state_dir, &db.name)
        .dir()
        .to_path_buf();
    (dir.join("token"), dir.join("password"))
}

/// Writes the files [`channel_parms`] names (0600, in a 0700 directory); before each RMAN run,
/// so a token changed in the configuration takes effect.
pub fn write_secrets(cfg: &Config, db: &DatabaseConfig) -> Result<(), AgentError> {
    let (token, password) = secret_files(cfg, db);
    let err = |p: &PathBuf| AgentError::io(format!("writing {}", p.display()));
    if let Some(dir) = token.parent() {
        private_dir(dir).map_err(AgentError::io(format!("cannot create {}", dir.display())))?;
    }
    write_private(&token, db.token.as_bytes()).map_err(err(&token))?;
    if let Some(p) = &db.password {
        write_private(&password, p.as_bytes()).map_err(err(&password))?;
    }
    Ok(())
}

/// The `PARMS` of an SBT channel: the library and the ENV it reads its vault settings from
/// (secrets through the files [`write_secrets`] writes).
pub fn channel_parms(cfg: &Config, db: &DatabaseConfig) -> String {
    parms_with(cfg, db, None)
}

/// The PARMS of a backup's channels: the library labels each piece with `command_id`, so a
/// piece it committed that RMAN never recorded (killed in between) is found at resume.
fn parms_with(cfg: &Config, db: &DatabaseConfig, command_id: Option<&str>) -> String {
    let (token, password) = secret_files(cfg, db);
    let mut env: Vec<String> = command_id
        .map(|id| format!("ORCA_COMMAND_ID={id}"))
        .into_iter()
        .collect();
    env.push(format!("ORCA_VAULT={}", cfg.vault.url));
    env.push(format!("ORCA_TOKEN_FILE={}", token.display()));
    if let Some(k) = &db.key_file {
        env.push(format!("ORCA_KEY_FILE={}", k.display()));
    }
    if db.password.is_some() {
        env.push(format!("ORCA_PASSWORD_FILE={}", password.display()));
    }
    if let Some(ca) = &cfg.vault.ca_file {
        env.push(format!("ORCA_CA_FILE={}", ca.display()));
    }
    env.extend(db.channel_env.iter().map(|(k, v)| format!("{k}={v}")));
    format!(
        "SBT_LIBRARY={}, ENV=({})",
        db.sbt_library.display(),
        env.join(", ")
    )
}

/// `ALLOCATE CHANNEL` lines: `channels` of them, spread over `instances` (RAC) when given;
/// a backup's channels carry its `command_id`.
pub(crate) fn allocate(
    cfg: &Config,
    db: &DatabaseConfig,
    instances: &[String],
    command_id: Option<&str>,
) -> String {
    let parms = parms_with(cfg, db, command_id);
    let mut s = String::new();
    for i in 0..db.channels as usize {
        let connect = match (&db.rac, instances.is_empty()) {
            (Some(r), false) => format!(
                " connect '{}'",
                r.channel_connect
                    .replace("{instance}", &instances[i % instances.len()])
            ),
            _ => String::new(),
        };
        s.push_str(&format!(
            "  allocate channel c{} device type sbt parms '{parms}'{connect};\n",
            i + 1
        ));
    }
    s
}

/// A backup job's command file. FILESPERSET 1 keeps one datafile per piece, so the SBT
/// library's fingerprint cache recognises each file and sets are the unit of resume.
/// A datafile backup also backs up, into its tag, the archived logs not backed up yet (the
/// current log archived first): with them the point recovers to a consistent state on its
/// own. The control file autobackup after the RUN block (`c-<DBID>-...`) lands in the vault
/// too, so a new host finds a control file that knows the point's pieces. A log deleted from
/// disk is crosschecked EXPIRED first, so it does not fail the backup (the chain check of a
/// resume still sees it missing).
pub fn backup(
    cfg: &Config,
    db: &DatabaseConfig,
    instances: &[String],
    command_id: &str,
    tag: &str,
    what: &BackupWhat,
) -> String {
    let section = db
        .section_size
        .as_ref()
        .map(|s| format!(" section size {s}"))
        .unwrap_or_default();
    let body = match what {
        BackupWhat::Datafiles { level, files } => {
            let files: Vec<String> = files.iter().map(u32::to_string).collect();
            format!(
                "  backup incremental level {level}{section} filesperset 1 tag '{tag}' datafile {};\n{}",
                files.join(", "),
                archivelog(tag)
            )
        }
        BackupWhat::Database { level, since } => {
            let since = since
                .as_ref()
                .map(|t| {
                    format!(" not backed up since time \"to_date('{t}','YYYY-MM-DD HH24:MI:SS')\"")
                })
                .unwrap_or_default();
            format!(
                "  backup incremental level {level}{section} filesperset 1 tag '{tag}' database{since};\n{}",
                archivelog(tag)
            )
        }
        BackupWhat::Archivelog => archivelog(tag),
    };
    format!(
        "configure controlfile autobackup on;\ncrosscheck archivelog all;\nrun {{\n  set command id to '{command_id}';\n{}{body}}}\n",
        allocate(cfg, db, instances, Some(command_id))
    )
}

fn archivelog(tag: &str) -> String {
    format!("  backup filesperset 1 tag '{tag}' archivelog all not backed up;\n")
}

/// Deletes pieces from RMAN's catalog and, through the SBT library, from the vault.
pub fn delete_pieces(cfg: &Config, db: &DatabaseConfig, handles: &[String]) -> String {
    let list: Vec<String> = handles.iter().map(|h| format!("'{h}'")).collect();
    format!(
        "run {{\n  allocate channel c1 device type sbt parms '{}';\n  delete noprompt backuppiece {};\n}}\n",
        channel_parms(cfg, db),
        list.join(", ")
    )
}

/// Checks the pieces of `tag` against the vault: those it lacks become EXPIRED in RMAN's
/// catalog, so `NOT BACKED UP SINCE` backs their files up again.
pub fn crosscheck_tag(cfg: &Config, db: &DatabaseConfig, tag: &str) -> String {
    format!(
        "run {{\n  allocate channel c1 device type sbt parms '{}';\n  crosscheck backup tag '{tag}' device type sbt;\n}}\n",
        channel_parms(cfg, db)
    )
}

/// Deletes what `policy` no longer needs, on SBT, from RMAN's catalog and the vault.
pub fn delete_obsolete(cfg: &Config, db: &DatabaseConfig, policy: &str) -> String {
    format!(
        "run {{\n  allocate channel c1 device type sbt parms '{}';\n  delete noprompt obsolete {policy} device type sbt;\n}}\n",
        channel_parms(cfg, db)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(include_str!("../../../docs/agent.example.toml")).unwrap()
    }

    #[test]
    fn a_resume_reuses_command_id_tag_and_start_time() {
        let c = cfg();
        let db = &c.databases[0];
        let s = backup(
            &c,
            db,
            &["orcl1".into(), "orcl2".into()],
            "orca-job-1",
            "ORCA_L0_1",
            &BackupWhat::Database {
                level: 0,
                since: Some("2026-12-02 10:00:00".into()),
            },
        );
        assert!(s.contains("set command id to 'orca-job-1';"), "{s}");
        assert!(s.contains("backup incremental level 0 section size 32G filesperset 1 tag 'ORCA_L0_1' database not backed up since time \"to_date('2026-12-02 10:00:00','YYYY-MM-DD HH24:MI:SS')\";"), "{s}");
        assert!(
            s.contains("backup filesperset 1 tag 'ORCA_L0_1' archivelog all not backed up;"),
            "{s}"
        );
        assert!(
            s.starts_with("configure controlfile autobackup on;\n"),
            "{s}"
        );
        assert_eq!(s.matches("allocate channel").count(), 4);
        assert!(s.contains("connect 'sys/secret@orcl2'"), "{s}");
        assert!(s.contains("ORCA_KEY_FILE=/etc/orca/repo.key, ORCA_CA_FILE=/etc/orca/ca.pem, ORCA_CACHE_DIR=/var/cache/orca, ORCA_SBT_BATCH_MB=4)"));
    }
}
