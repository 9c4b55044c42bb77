//! The datafile header block (block 1, `kcvfh`).

use crate::block::{
    BlockError, BlockHeader, KCBH_LEN, Rdba, block_type, check_block, finish_block, le_u16, le_u32,
    need, put_u16, put_u32,
};
use crate::scn::Scn;
use crate::time::OracleTime;
use serde::{Deserialize, Serialize};

/// `kcvfhsta` bit: the file is open and may hold changes newer than its
/// checkpoint (online fuzzy).
pub const STATUS_ONLINE_FUZZY: u16 = 0x0004;
/// `kcvfhsta` bit: the file is in hot-backup mode (BEGIN BACKUP).
pub const STATUS_HOT_BACKUP: u16 = 0x0001;
/// `kcvfhsta` bit seen on every 11g+ header (meaning undocumented).
pub const STATUS_11G: u16 = 0x2000;
/// `kccfhtyp` of a datafile.
pub const FILE_TYPE_DATAFILE: u16 = 3;
/// Compatibility version 19.0.0.0 as stored in `kccfhcvn`.
pub const COMPAT_19: u32 = 0x1300_0000;

/// Redo byte address: where in the redo stream a checkpoint lies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rba {
    /// Log sequence number.
    pub sequence: u32,
    /// Block within the log.
    pub block: u32,
    /// Byte offset within the block.
    pub offset: u16,
}

/// A checkpoint (`kcvfhckp`): SCN, time, thread and redo address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Checkpoint SCN (`kcvcpscn`, V$DATAFILE_HEADER.CHECKPOINT_CHANGE#).
    pub scn: Scn,
    /// Checkpoint time (`kcvcptim`).
    pub time: OracleTime,
    /// Thread that took the checkpoint (`kcvcpthr`).
    pub thread: u16,
    /// Redo address of the checkpoint (`kcvcprba`).
    pub rba: Rba,
}

/// The fields of the datafile header that Oracle tools read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatafileHeader {
    /// Block size (taken from the block, not stored in `kccfhbsz`).
    pub block_size: u32,
    /// `kccfhcvn` compatibility version (see [`COMPAT_19`]).
    pub compat_version: u32,
    /// `kccfhdbi` DBID.
    pub dbid: u32,
    /// `kccfhdbn` DB_NAME (at most 8 bytes).
    pub db_name: String,
    /// `kccfhcsq` control file sequence at the last header write.
    pub controlfile_seq: u32,
    /// `kccfhfsz` file size in blocks (= V$DATAFILE.BLOCKS).
    pub file_size_blocks: u32,
    /// `kccfhfno` absolute file number (FILE#).
    pub file_no: u16,
    /// `kccfhtyp` file type (3 = datafile).
    pub file_type: u16,
    /// `kccfhacid` activation id.
    pub activation_id: u32,
    /// `kcvfhrdb` root DBA (SYSTEM bootstrap; 0 in other files).
    pub root_dba: u32,
    /// `kcvfhcrs` creation SCN.
    pub creation_scn: Scn,
    /// `kcvfhcrt` creation time.
    pub creation_time: OracleTime,
    /// `kcvfhrlc` resetlogs count (the resetlogs time).
    pub resetlogs_time: OracleTime,
    /// `kcvfhrls` resetlogs SCN.
    pub resetlogs_scn: Scn,
    /// `kcvfhsta` status flags.
    pub status: u16,
    /// `kcvfhcpc` checkpoint count.
    pub checkpoint_count: u32,
    /// `kcvfhccc` control-file checkpoint count.
    pub cf_checkpoint_count: u32,
    /// `kcvfhtsn` tablespace number (TS#).
    pub tablespace_no: u32,
    /// `kcvfhtnm` tablespace name (at most 30 bytes).
    pub tablespace_name: String,
    /// `kcvfhrfn` relative file number (RFILE#).
    pub rfile_no: u32,
    /// `kcvfhafs` absolute fuzzy SCN.
    pub absolute_fuzzy_scn: Scn,
    /// `kcvfhckp` checkpoint.
    pub checkpoint: Checkpoint,
}

const OFF_SWV: usize = 20;
const OFF_CVN: usize = 24;
const OFF_DBID: usize = 28;
const OFF_DBNAME: usize = 32;
const OFF_CSQ: usize = 40;
const OFF_FSZ: usize = 44;
const OFF_FNO: usize = 52;
const OFF_TYP: usize = 54;
const OFF_ACID: usize = 56;
const OFF_RDB: usize = 96;
const OFF_CRS: usize = 100;
const OFF_CRT: usize = 108;
const OFF_RLC: usize = 112;
const OFF_RLS: usize = 116;
const OFF_STA: usize = 138;
const OFF_CPC: usize = 140;
const OFF_CCC: usize = 148;
const OFF_TSN: usize = 332;
const OFF_TLN: usize = 336;
const OFF_TNM: usize = 338;
const OFF_RFN: usize = 368;
const OFF_AFS: usize = 384;
const OFF_CKP_SCN: usize = 484;
const OFF_CKP_TIM: usize = 492;
const OFF_CKP_THR: usize = 496;
const OFF_CKP_SEQ: usize = 500;
const OFF_CKP_BNO: usize = 504;
const OFF_CKP_BOF: usize = 508;
/// Bytes of the header in use (`kcvfh` is 860 bytes).
pub const KCVFH_LEN: usize = 860;

fn read_scn(b: &[u8], off: usize) -> Scn {
    Scn::read_kscn(&b[off..off + 8]).unwrap_or_default()
}

fn write_scn(b: &mut [u8], off: usize, scn: Scn) {
    let mut k = [0u8; 8];
    scn.write_kscn(&mut k);
    b[off..off + 8].copy_from_slice(&k);
}

pub(crate) fn read_text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

pub(crate) fn write_text(b: &mut [u8], text: &str, field: &'static str) -> Result<(), BlockError> {
    if text.len() > b.len() {
        return Err(BlockError::InvalidField {
            field,
            value: format!("{text:?} is longer than {} bytes", b.len()),
        });
    }
    b.fill(0);
    b[..text.len()].copy_from_slice(text.as_bytes());
    Ok(())
}

impl DatafileHeader {
    /// The RDBA of this file's header block.
    pub fn rdba(&self) -> Result<Rdba, BlockError> {
        Rdba::new(self.rfile_no, 1)
    }

    /// Builds the whole header block (kcbh, fields, tail, checksum).
    /// `buf` must be exactly one block of `self.block_size` bytes.
    pub fn build(&self, buf: &mut [u8]) -> Result<(), BlockError> {
        if buf.len() != self.block_size as usize {
            return Err(BlockError::InvalidField {
                field: "header buffer length",
                value: format!("{} (block size {})", buf.len(), self.block_size),
            });
        }
        need(buf, KCVFH_LEN + 4)?;
        buf.fill(0);
        put_u32(buf, OFF_SWV, 0);
        put_u32(buf, OFF_CVN, self.compat_version);
        put_u32(buf, OFF_DBID, self.dbid);
        write_text(
            &mut buf[OFF_DBNAME..OFF_DBNAME + 8],
            &self.db_name,
            "db name",
        )?;
        put_u32(buf, OFF_CSQ, self.controlfile_seq);
        put_u32(buf, OFF_FSZ, self.file_size_blocks);
        put_u16(buf, OFF_FNO, self.file_no);
        put_u16(buf, OFF_TYP, self.file_type);
        put_u32(buf, OFF_ACID, self.activation_id);
        put_u32(buf, OFF_RDB, self.root_dba);
        write_scn(buf, OFF_CRS, self.creation_scn);
        put_u32(buf, OFF_CRT, self.creation_time.0);
        put_u32(buf, OFF_RLC, self.resetlogs_time.0);
        write_scn(buf, OFF_RLS, self.resetlogs_scn);
        put_u16(buf, OFF_STA, self.status);
        put_u32(buf, OFF_CPC, self.checkpoint_count);
        put_u32(buf, OFF_CCC, self.cf_checkpoint_count);
        put_u32(buf, OFF_TSN, self.tablespace_no);
        write_text(
            &mut buf[OFF_TNM..OFF_TNM + 30],
            &self.tablespace_name,
            "tablespace name",
        )?;
        let tln =
            u16::try_from(self.tablespace_name.len()).map_err(|_| BlockError::InvalidField {
                field: "tablespace name",
                value: self.tablespace_name.clone(),
            })?;
        put_u16(buf, OFF_TLN, tln);
        put_u32(buf, OFF_RFN, self.rfile_no);
        write_scn(buf, OFF_AFS, self.absolute_fuzzy_scn);
        write_scn(buf, OFF_CKP_SCN, self.checkpoint.scn);
        put_u32(buf, OFF_CKP_TIM, self.checkpoint.time.0);
        put_u16(buf, OFF_CKP_THR, self.checkpoint.thread);
        put_u32(buf, OFF_CKP_SEQ, self.checkpoint.rba.sequence);
        put_u32(buf, OFF_CKP_BNO, self.checkpoint.rba.block);
        put_u16(buf, OFF_CKP_BOF, self.checkpoint.rba.offset);
        // The header block carries no change SCN in its kcbh: bas/wrp 0, seq 1.
        let h = BlockHeader::new(block_type::FILE_HEADER, buf.len(), self.rdba()?, Scn(0), 1)?;
        finish_block(buf, &h)
    }

    /// Parses and verifies a header block (checksum, tail, type).
    pub fn parse(buf: &[u8]) -> Result<DatafileHeader, BlockError> {
        need(buf, KCVFH_LEN + 4)?;
        let h = check_block(buf, None)?;
        if h.block_type != block_type::FILE_HEADER {
            return Err(BlockError::InvalidField {
                field: "header block type",
                value: format!("0x{:02x} (expected 0x0b)", h.block_type),
            });
        }
        let tln = usize::from(le_u16(buf, OFF_TLN)).min(30);
        let hdr = DatafileHeader {
            block_size: u32::try_from(buf.len())
                .map_err(|_| BlockError::BadBlockSize(buf.len()))?,
            compat_version: le_u32(buf, OFF_CVN),
            dbid: le_u32(buf, OFF_DBID),
            db_name: read_text(&buf[OFF_DBNAME..OFF_DBNAME + 8]),
            controlfile_seq: le_u32(buf, OFF_CSQ),
            file_size_blocks: le_u32(buf, OFF_FSZ),
            file_no: le_u16(buf, OFF_FNO),
            file_type: le_u16(buf, OFF_TYP),
            activation_id: le_u32(buf, OFF_ACID),
            root_dba: le_u32(buf, OFF_RDB),
            creation_scn: read_scn(buf, OFF_CRS),
            creation_time: OracleTime(le_u32(buf, OFF_CRT)),
            resetlogs_time: OracleTime(le_u32(buf, OFF_RLC)),
            resetlogs_scn: read_scn(buf, OFF_RLS),
            status: le_u16(buf, OFF_STA),
            checkpoint_count: le_u32(buf, OFF_CPC),
            cf_checkpoint_count: le_u32(buf, OFF_CCC),
            tablespace_no: le_u32(buf, OFF_TSN),
            tablespace_name: read_text(&buf[OFF_TNM..OFF_TNM + tln]),
            rfile_no: le_u32(buf, OFF_RFN),
            absolute_fuzzy_scn: read_scn(buf, OFF_AFS),
            checkpoint: Checkpoint {
                scn: read_scn(buf, OFF_CKP_SCN),
                time: OracleTime(le_u32(buf, OFF_CKP_TIM)),
                thread: le_u16(buf, OFF_CKP_THR),
                rba: Rba {
                    sequence: le_u32(buf, OFF_CKP_SEQ),
                    block: le_u32(buf, OFF_CKP_BNO),
                    offset: le_u16(buf, OFF_CKP_BOF),
                },
            },
        };
        if h.rdba != hdr.rdba()? {
            return Err(BlockError::Rdba {
                found: h.rdba.0,
                expected: hdr.rdba()?.0,
            });
        }
        Ok(hdr)
    }
}

/// Quick check that a block starts like a datafile header (type 0x0B),
/// without verifying it.
pub fn looks_like_header(buf: &[u8]) -> bool {
    buf.len() > KCBH_LEN && buf[0] == block_type::FILE_HEADER
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::xor_fold;
    use proptest::prelude::*;

    pub(crate) fn sample() -> DatafileHeader {
        DatafileHeader {
            block_size: 8192,
            compat_version: COMPAT_19,
            dbid: 1_000_593_576,
            db_name: "ORCL".into(),
            controlfile_seq: 42,
            file_size_blocks: 12800,
            file_no: 4,
            file_type: FILE_TYPE_DATAFILE,
            activation_id: 0x1234_5678,
            root_dba: 0,
            creation_scn: Scn(1_000_123),
            creation_time: OracleTime(1_100_000_000),
            resetlogs_time: OracleTime(1_099_000_000),
            resetlogs_scn: Scn(1),
            status: STATUS_11G | STATUS_ONLINE_FUZZY,
            checkpoint_count: 17,
            cf_checkpoint_count: 16,
            tablespace_no: 4,
            tablespace_name: "USERS".into(),
            rfile_no: 4,
            absolute_fuzzy_scn: Scn(0),
            checkpoint: Checkpoint {
                scn: Scn(0x1_0000_0042),
                time: OracleTime(1_100_000_100),
                thread: 1,
                rba: Rba {
                    sequence: 7,
                    block: 2,
                    offset: 16,
                },
            },
        }
    }

    #[test]
    fn roundtrip_and_offsets() {
        let h = sample();
        let mut b = vec![0u8; 8192];
        h.build(&mut b).unwrap();
        assert_eq!(b[0], 0x0B);
        assert_eq!(b[1], 0xA2);
        assert_eq!(le_u32(&b, 4), 0x0100_0001);
        assert_eq!(le_u32(&b, 8188), 0x0000_0B01);
        assert_eq!(xor_fold(&b), 0);
        assert_eq!(&b[32..36], b"ORCL");
        assert_eq!(le_u32(&b, 484), 0x42);
        assert_eq!(le_u16(&b, 488), 1);
        assert_eq!(DatafileHeader::parse(&b).unwrap(), h);
    }

    #[test]
    fn rejects_long_names() {
        let mut h = sample();
        h.db_name = "TOOLONGNAME".into();
        assert!(h.build(&mut vec![0u8; 8192]).is_err());
        let mut h = sample();
        h.block_size = 4096;
        assert!(h.build(&mut vec![0u8; 8192]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip_any(dbid in any::<u32>(), fno in 1u16..1023, size in 2u32..(1<<22),
                         ckp in 0u64..(1u64<<47), name in "[A-Z]{1,8}", ts in "[A-Z_0-9]{1,30}") {
            let mut h = sample();
            h.dbid = dbid; h.file_no = fno; h.rfile_no = u32::from(fno); h.file_size_blocks = size;
            h.checkpoint.scn = Scn(ckp); h.db_name = name; h.tablespace_name = ts;
            let mut b = vec![0u8; 8192];
            h.build(&mut b).unwrap();
            prop_assert_eq!(DatafileHeader::parse(&b).unwrap(), h);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..9000)) {
            let _ = DatafileHeader::parse(&b);
        }
    }
}
