//! Block media recovery: `RECOVER DATAFILE n BLOCK m[, ...]`, `RECOVER CORRUPTION LIST` (the
//! blocks V$DATABASE_BLOCK_CORRUPTION lists) and the older `BLOCKRECOVER`. The datafile
//! stays online: the newest backup of the file is restored into a scratch copy, media
//! recovery brings that copy up to date, and only the named blocks are written back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::ast::BackupObject;
use super::catalog::StatusEnd;
use super::session::{CmdError, Session, now};
use crate::db::{DatafileIo, RecoverOptions};

/// What block media recovery repairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockRecover {
    /// DATAFILE n BLOCK m[, ...] [DATAFILE ...].
    Blocks(Vec<(u32, Vec<u32>)>),
    /// CORRUPTION LIST.
    CorruptionList,
}

/// Scratch copies of datafiles, removed however the command ends.
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Session {
    pub(super) fn block_recover(
        &mut self,
        b: &BlockRecover,
        end: &mut StatusEnd,
    ) -> Result<(), CmdError> {
        self.out.blank();
        self.out
            .line(format!("Starting recover at {}", self.date(now())));
        let mut wanted: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        match b {
            BlockRecover::Blocks(list) => {
                for (f, blocks) in list {
                    wanted.entry(*f).or_default().extend(blocks);
                }
            }
            BlockRecover::CorruptionList => {
                let rows = self
                    .db
                    .block_corruptions()
                    .map_err(|e| CmdError::db("recover", e))?;
                for r in rows {
                    wanted
                        .entry(r.file_no)
                        .or_default()
                        .extend(r.block..r.block + r.blocks);
                }
            }
        }
        let files = self.datafiles_of(&BackupObject::Datafile(wanted.keys().copied().collect()))?;
        for f in &files {
            if let Some(b) = wanted[&f.file_no].iter().find(|&&b| b < 2 || b > f.blocks) {
                return Err(CmdError::db(
                    "recover",
                    crate::db::DbError::Invalid(format!(
                        "block {b} of datafile {} cannot be repaired by block media recovery: \
                         name data blocks 2 to {}",
                        f.file_no, f.blocks
                    )),
                ));
            }
        }
        let mut scratch = Scratch(Vec::new());
        let mut opts = RecoverOptions {
            files: Some(files.iter().map(|f| f.file_no).collect()),
            ..RecoverOptions::default()
        };
        let mut bytes = 0;
        for f in &files {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = f
                .path
                .with_file_name(format!(".{name}.bmr{}", std::process::id()));
            scratch.0.push(tmp.clone());
            bytes += self.restore_for_block_recovery(f, &tmp)?;
            opts.paths.insert(f.file_no, tmp);
        }
        if !files.is_empty() {
            bytes += self.media_recovery(&opts, end)?;
        }
        for f in &files {
            let blocks: Vec<u32> = wanted[&f.file_no].iter().copied().collect();
            let from = &opts.paths[&f.file_no];
            let copy = || -> crate::db::Result<()> {
                let _lock = self.db.lock()?;
                let src = DatafileIo::open(from, false)?;
                let dst = DatafileIo::open(&f.path, true)?;
                let mut buf = vec![0u8; src.block_size()];
                for &blk in &blocks {
                    src.read_block(blk, &mut buf)?;
                    dst.write_block(blk, &buf)?;
                }
                dst.sync()
            };
            copy()
                .and_then(|_| self.db.clear_block_corruption(f.file_no, &blocks))
                .map_err(|e| CmdError::db("recover", e))?;
        }
        end.input_bytes = bytes;
        self.out.blank();
        self.out
            .line(format!("Finished recover at {}", self.date(now())));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rman::ast::{Command, Recover, RecoverObject};
    use crate::rman::parser::parse;

    fn one(s: &str) -> Command {
        parse(s).unwrap().remove(0).cmd
    }

    #[test]
    fn block_media_recovery_parses() {
        assert_eq!(
            one("recover datafile 4 block 10, 11 datafile 5 block 3;"),
            Command::BlockRecover(BlockRecover::Blocks(vec![(4, vec![10, 11]), (5, vec![3])]))
        );
        assert_eq!(
            one("blockrecover datafile 4 block 2;"),
            Command::BlockRecover(BlockRecover::Blocks(vec![(4, vec![2])]))
        );
        assert_eq!(
            one("recover corruption list;"),
            Command::BlockRecover(BlockRecover::CorruptionList)
        );
        // A plain RECOVER DATAFILE is still media recovery of whole files.
        assert_eq!(
            one("recover datafile 4, 5;"),
            Command::Recover(Recover {
                object: RecoverObject::Datafile(vec![4, 5]),
                until: None,
                noredo: false,
                delete_archivelog: false,
            })
        );
        assert!(parse("recover datafile 4 block;").is_err());
        assert!(parse("recover corruption;").is_err());
        assert!(matches!(
            one("validate check logical database;"),
            Command::Validate(_)
        ));
        let Command::Backup(b) = one("backup validate check logical database;") else {
            panic!()
        };
        assert!(b.validate);
    }
}
