//! Parsing of the disaster-recovery commands (see [`DrCommand`]).

use super::super::ast::*;
use super::{Parser, R};

impl Parser<'_> {
    /// After RESTORE: `CONTROLFILE|SPFILE [TO [PFILE] 'path'] [FROM AUTOBACKUP [MAXSEQ n]
    /// [MAXDAYS n] | FROM 'handle'];`
    pub(super) fn restore_file(&mut self) -> R<DrCommand> {
        let spfile = if self.accept_kw("SPFILE") {
            true
        } else {
            self.expect_kw("CONTROLFILE")?;
            false
        };
        let mut to = None;
        let mut from = FileSource::Repository;
        loop {
            if self.accept_kw("TO") {
                if spfile {
                    let _ = self.accept_kw("PFILE");
                }
                to = Some(self.expect_string()?);
            } else if self.accept_kw("FROM") {
                from = if self.accept_kw("AUTOBACKUP") {
                    let mut maxseq = None;
                    let mut maxdays = None;
                    loop {
                        if self.accept_kw("MAXSEQ") {
                            let _ = self.accept_sym('=');
                            maxseq = Some(self.expect_u32()?);
                        } else if self.accept_kw("MAXDAYS") {
                            let _ = self.accept_sym('=');
                            maxdays = Some(self.expect_u32()?);
                        } else {
                            break;
                        }
                    }
                    FileSource::Autobackup { maxseq, maxdays }
                } else if let Ok(h) = self.expect_string() {
                    FileSource::Handle(h)
                } else {
                    return Err(self.error(&["autobackup", "single-quoted-string"]));
                };
            } else {
                break;
            }
        }
        self.expect_end()?;
        Ok(if spfile {
            DrCommand::RestoreSpfile { to, from }
        } else {
            DrCommand::RestoreControlfile { to, from }
        })
    }

    /// After RESET: `DATABASE TO INCARNATION n;`
    pub(super) fn reset(&mut self) -> R<DrCommand> {
        self.expect_kw("DATABASE")?;
        self.expect_kw("TO")?;
        self.expect_kw("INCARNATION")?;
        let n = self.expect_u32()?;
        self.expect_end()?;
        Ok(DrCommand::ResetIncarnation(n))
    }

    /// After LIST: `INCARNATION [OF DATABASE [name]];`
    pub(super) fn list_incarnation(&mut self) -> R<DrCommand> {
        self.expect_kw("INCARNATION")?;
        if self.accept_kw("OF") {
            self.expect_kw("DATABASE")?;
            if !self.is_sym(';') {
                self.expect_name()?;
            }
        }
        self.expect_end()?;
        Ok(DrCommand::ListIncarnation)
    }

    /// After SET: `CONTROLFILE AUTOBACKUP FORMAT FOR DEVICE TYPE d TO 'fmt';`
    pub(super) fn set_autobackup_format(&mut self) -> R<SetCmd> {
        self.expect_kw("CONTROLFILE")?;
        self.expect_kw("AUTOBACKUP")?;
        self.expect_kw("FORMAT")?;
        self.expect_kw("FOR")?;
        let device = self.device_clause()?;
        self.expect_kw("TO")?;
        let format = self.expect_string()?;
        self.expect_end()?;
        Ok(SetCmd::AutobackupFormat { device, format })
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn one(s: &str) -> Command {
        let mut v = parse(s).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0).cmd
    }

    #[test]
    fn restore_from_autobackup_and_handle() {
        assert_eq!(
            one("restore controlfile from autobackup maxseq 10 maxdays 3;"),
            Command::Dr(DrCommand::RestoreControlfile {
                to: None,
                from: FileSource::Autobackup {
                    maxseq: Some(10),
                    maxdays: Some(3)
                }
            })
        );
        assert_eq!(
            one("RESTORE SPFILE TO PFILE '/tmp/init.ora' FROM AUTOBACKUP;"),
            Command::Dr(DrCommand::RestoreSpfile {
                to: Some("/tmp/init.ora".into()),
                from: FileSource::Autobackup {
                    maxseq: None,
                    maxdays: None
                }
            })
        );
        assert_eq!(
            one("restore controlfile from 'c-1-20260101-00';"),
            Command::Dr(DrCommand::RestoreControlfile {
                to: None,
                from: FileSource::Handle("c-1-20260101-00".into())
            })
        );
        assert_eq!(
            one("restore controlfile;"),
            Command::Dr(DrCommand::RestoreControlfile {
                to: None,
                from: FileSource::Repository
            })
        );
        assert!(parse("restore controlfile from;").is_err());
    }

    #[test]
    fn incarnation_commands_and_set_format() {
        assert_eq!(
            one("reset database to incarnation 2;"),
            Command::Dr(DrCommand::ResetIncarnation(2))
        );
        assert!(parse("run { reset database to incarnation 2; }").is_err());
        assert_eq!(
            one("list incarnation of database orcl;"),
            Command::Dr(DrCommand::ListIncarnation)
        );
        assert_eq!(
            one("list incarnation;"),
            Command::Dr(DrCommand::ListIncarnation)
        );
        let c = one("run { set controlfile autobackup format for device type sbt to 'cf_%F'; }");
        let Command::Run(body) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            body[0].cmd,
            Command::Set(SetCmd::AutobackupFormat {
                device: DeviceType::Sbt,
                format: "cf_%F".into()
            })
        );
    }
}
