//! SET NEWNAME and SWITCH: restoring datafiles to another location and making the restored
//! copies the database's datafiles (Backup and Recovery Reference, SET and SWITCH).

use std::path::{Path, PathBuf};

use super::ast::BackupObject;
use super::catalog;
use super::session::{CmdError, Session};
use crate::db::DatafileInfo;

/// What SET NEWNAME renames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewnameTarget {
    /// FOR DATAFILE n.
    Datafile(u32),
    /// FOR DATAFILE 'name'.
    DatafileName(String),
    /// FOR TABLESPACE t (upper case).
    Tablespace(String),
    /// FOR DATABASE.
    Database,
}

/// `SET NEWNAME FOR ... TO 'name' | NEW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newname {
    pub target: NewnameTarget,
    /// The name or format; None for TO NEW (an Oracle-managed name).
    pub to: Option<String>,
}

/// SWITCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    /// SWITCH DATAFILE ALL (None) or SWITCH DATAFILE n: to the names SET NEWNAME gave.
    Newnames(Option<Vec<u32>>),
    /// SWITCH DATABASE TO COPY (None) or SWITCH DATAFILE n TO COPY: to the newest copies.
    ToCopy(Option<Vec<u32>>),
}

/// Expands a SET NEWNAME name for one datafile: %b (file name without directories), %f
/// (FILE#), %I (DBID), %N (tablespace), %d (DB_NAME), %U (`data-D-%d_id-%I_TS-%N_FNO-%f`),
/// %% (a percent sign).
pub fn expand(format: &str, d: &DatafileInfo, dbid: u32, db_name: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push_str(
                &d.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            Some('f') => out.push_str(&d.file_no.to_string()),
            Some('I') => out.push_str(&dbid.to_string()),
            Some('N') => out.push_str(&d.tablespace),
            Some('d') => out.push_str(db_name),
            Some('U') => out.push_str(&format!(
                "data-D-{db_name}_id-{dbid}_TS-{}_FNO-{}",
                d.tablespace, d.file_no
            )),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

impl Session {
    /// `SET NEWNAME`: remembers where RESTORE writes each file of the target.
    pub(super) fn set_newname(&mut self, n: &Newname) -> Result<(), CmdError> {
        let files: Vec<DatafileInfo> = match &n.target {
            NewnameTarget::Datafile(f) => self.datafiles_of(&BackupObject::Datafile(vec![*f]))?,
            NewnameTarget::Tablespace(t) => {
                self.datafiles_of(&BackupObject::Tablespace(vec![t.clone()]))?
            }
            NewnameTarget::Database => self.datafiles_of(&BackupObject::Database)?,
            NewnameTarget::DatafileName(name) => {
                let all = self.datafiles_of(&BackupObject::Database)?;
                match all.into_iter().find(|d| d.path == Path::new(name)) {
                    Some(d) => vec![d],
                    None => {
                        return Err(CmdError::command(
                            "set",
                            vec![
                                "RMAN-20201: datafile not found in the recovery catalog".into(),
                                format!("RMAN-06010: error while looking up datafile: {name}"),
                            ],
                        ));
                    }
                }
            }
        };
        for d in files {
            let name = match &n.to {
                Some(fmt) => expand(fmt, &d, self.info.dbid, &self.info.name),
                None => format!(
                    "o1_mf_{}_{:08x}_.dbf",
                    d.tablespace.to_ascii_lowercase(),
                    crate::db::blockgen::mix(&[u64::from(d.file_no), u64::from(self.info.dbid)])
                        as u32
                ),
            };
            let p = PathBuf::from(&name);
            // A relative name lands where Oracle puts it: under the home's dbs directory,
            // and Oracle-managed names under oradata/<DB_NAME>/datafile.
            let path = if p.is_absolute() {
                p
            } else if n.to.is_none() {
                self.home
                    .join("oradata")
                    .join(&self.info.name)
                    .join("datafile")
                    .join(p)
            } else {
                self.home.join("dbs").join(p)
            };
            self.newnames.insert(d.file_no, path);
        }
        self.out.blank();
        self.out.line("executing command: SET NEWNAME");
        Ok(())
    }

    /// `SWITCH`: the control file names the copies; each needs media recovery if it is older
    /// than the datafile it replaces.
    pub(super) fn switch(&mut self, s: &Switch) -> Result<(), CmdError> {
        let all = self.datafiles_of(&BackupObject::Database)?;
        let copies = catalog::copies(&self.db).map_err(|e| CmdError::db("switch", e))?;
        let pick = |nums: &Option<Vec<u32>>,
                    default: Vec<u32>|
         -> Result<Vec<DatafileInfo>, CmdError> {
            let nums = nums.clone().unwrap_or(default);
            nums.iter()
                .map(|n| {
                    all.iter()
                        .find(|d| d.file_no == *n)
                        .cloned()
                        .ok_or_else(|| {
                            CmdError::command(
                                "switch",
                                vec![
                                    "RMAN-20201: datafile not found in the recovery catalog".into(),
                                    format!("RMAN-06010: error while looking up datafile: {n}"),
                                ],
                            )
                        })
                })
                .collect()
        };
        let no_copy = |n: u32| {
            CmdError::command(
                "switch",
                vec![format!(
                    "RMAN-06571: datafile {n} does not have recoverable copy"
                )],
            )
        };
        let mut plan: Vec<(DatafileInfo, catalog::CopyRow)> = Vec::new();
        match s {
            Switch::Newnames(nums) => {
                for d in pick(nums, self.newnames.keys().copied().collect())? {
                    let Some(target) = self.newnames.get(&d.file_no) else {
                        return Err(no_copy(d.file_no));
                    };
                    let copy = copies
                        .iter()
                        .filter(|c| c.file_no == d.file_no && Path::new(&c.name) == target)
                        .max_by_key(|c| c.recid)
                        .cloned()
                        .ok_or_else(|| no_copy(d.file_no))?;
                    plan.push((d, copy));
                }
            }
            Switch::ToCopy(nums) => {
                for d in pick(nums, all.iter().map(|d| d.file_no).collect())? {
                    let copy = copies
                        .iter()
                        .filter(|c| c.file_no == d.file_no && c.status == "A")
                        .filter(|c| Path::new(&c.name) != d.path && Path::new(&c.name).is_file())
                        .max_by_key(|c| (c.checkpoint_scn, c.recid))
                        .cloned()
                        .ok_or_else(|| no_copy(d.file_no))?;
                    plan.push((d, copy));
                }
            }
        }
        let open = self.db.is_open().map_err(|e| CmdError::db("switch", e))?;
        if let Some((d, _)) = plan.iter().find(|(d, _)| open && d.is_online()) {
            return Err(CmdError::command(
                "switch",
                vec![format!(
                    "RMAN-06572: database is open and datafile {} is not offline",
                    d.file_no
                )],
            ));
        }
        self.out.blank();
        for (d, c) in plan {
            self.db
                .switch_datafile(d.file_no, Path::new(&c.name))
                .and_then(|_| {
                    self.db.connection().execute(
                        r#"DELETE FROM cf_datafile_copy WHERE "RECID" = ?1"#,
                        [c.recid],
                    )?;
                    Ok(())
                })
                .map_err(|e| CmdError::db("switch", e))?;
            match s {
                Switch::Newnames(_) => {
                    self.out
                        .line(format!("datafile {} switched to datafile copy", d.file_no));
                    self.out.line(format!(
                        "input datafile copy RECID={} STAMP={} file name={}",
                        c.recid, c.stamp, c.name
                    ));
                }
                Switch::ToCopy(_) => self.out.line(format!(
                    "datafile {} switched to datafile copy \"{}\"",
                    d.file_no, c.name
                )),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orca_oracle::{OracleTime, Scn};

    fn users() -> DatafileInfo {
        DatafileInfo {
            file_no: 4,
            rfile_no: 4,
            path: PathBuf::from("/u01/oradata/ORCL/users01.dbf"),
            tablespace: "USERS".into(),
            ts_no: 4,
            block_size: 8192,
            blocks: 100,
            creation_scn: Scn(1),
            creation_time: OracleTime(0),
            checkpoint_scn: Scn(2),
            checkpoint_time: OracleTime(0),
            hwm_blocks: 50,
            status: "ONLINE".into(),
        }
    }

    #[test]
    fn set_newname_and_switch_parse() {
        use crate::rman::ast::{Command, SetCmd};
        let stmts = crate::rman::parser::parse(
            "run { set newname for database to '/x/%b'; set newname for datafile 4 to new;\n\
             set newname for tablespace users to '/y/%U'; restore database preview summary;\n\
             switch datafile all; switch datafile 4 to copy; switch database to copy; }",
        )
        .unwrap();
        let Command::Run(body) = &stmts[0].cmd else {
            panic!("{stmts:?}")
        };
        let cmds: Vec<&Command> = body.iter().map(|s| &s.cmd).collect();
        assert_eq!(
            cmds[0],
            &Command::Set(SetCmd::Newname(Newname {
                target: NewnameTarget::Database,
                to: Some("/x/%b".into())
            }))
        );
        assert_eq!(
            cmds[1],
            &Command::Set(SetCmd::Newname(Newname {
                target: NewnameTarget::Datafile(4),
                to: None
            }))
        );
        assert_eq!(
            cmds[2],
            &Command::Set(SetCmd::Newname(Newname {
                target: NewnameTarget::Tablespace("USERS".into()),
                to: Some("/y/%U".into())
            }))
        );
        let Command::Restore(r) = cmds[3] else {
            panic!("{cmds:?}")
        };
        assert!(r.preview && r.preview_summary);
        assert_eq!(cmds[4], &Command::Switch(Switch::Newnames(None)));
        assert_eq!(cmds[5], &Command::Switch(Switch::ToCopy(Some(vec![4]))));
        assert_eq!(cmds[6], &Command::Switch(Switch::ToCopy(None)));
        assert!(crate::rman::parser::parse("switch database;").is_err());
    }

    #[test]
    fn newname_variables_expand_as_documented() {
        let d = users();
        assert_eq!(expand("/u02/%b", &d, 42, "ORCL"), "/u02/users01.dbf");
        assert_eq!(expand("/u02/%N_%f.dbf", &d, 42, "ORCL"), "/u02/USERS_4.dbf");
        assert_eq!(
            expand("/u02/%U", &d, 42, "ORCL"),
            "/u02/data-D-ORCL_id-42_TS-USERS_FNO-4"
        );
        assert_eq!(
            expand("/u02/%I/%d/100%%", &d, 42, "ORCL"),
            "/u02/42/ORCL/100%"
        );
    }
}
