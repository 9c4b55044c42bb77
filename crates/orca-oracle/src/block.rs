//! Datafile blocks: the generic block header (`kcbh`), relative data block
//! addresses, the XOR checksum, the block tail and the block-0 file header
//! shared by datafiles, control files and redo logs.
//!
//! All integers are little-endian (x86-64 Linux). A big-endian file is
//! recognised by its block-0 magic and rejected with a clear error.

use crate::scn::Scn;
use serde::{Deserialize, Serialize};

/// Length of the generic block header.
pub const KCBH_LEN: usize = 20;
/// Offset of `chkval_kcbh` in a datafile block.
pub const CHECKSUM_OFFSET: usize = 16;
/// `flg_kcbh` bit: the block carries a checksum (KCBHFCKV).
pub const FLG_CHECKSUM: u8 = 0x04;
/// Block-0 magic as a little-endian u32 (bytes `7D 7C 7B 7A` on disk).
pub const FILE_MAGIC: u32 = 0x7A7B7C7D;
/// The RDBA Oracle writes into block 0 (`0xFFC00000`).
pub const BLOCK0_RDBA: u32 = 0xFFC0_0000;
/// Largest block number of a smallfile datafile (22 bits).
pub const MAX_BLOCK_NO: u32 = (1 << 22) - 1;
/// Largest relative file number (10 bits).
pub const MAX_RFILE_NO: u32 = (1 << 10) - 1;

/// `type_kcbh` values used by the simulator (Oracle has many more).
pub mod block_type {
    /// Undo segment header.
    pub const UNDO_HEADER: u8 = 0x01;
    /// Undo data block.
    pub const UNDO: u8 = 0x02;
    /// Data segment header (freelist managed).
    pub const SEGMENT_HEADER: u8 = 0x05;
    /// KTB managed data block (table or index).
    pub const DATA: u8 = 0x06;
    /// Datafile header (block 1).
    pub const FILE_HEADER: u8 = 0x0B;
    /// Locally managed file space header (block 2).
    pub const KTFB_HEADER: u8 = 0x1D;
    /// Locally managed file space bitmap.
    pub const KTFB_BITMAP: u8 = 0x1E;
    /// ASSM first-level bitmap block.
    pub const PAGETABLE_L1: u8 = 0x20;
    /// ASSM second-level bitmap block.
    pub const PAGETABLE_L2: u8 = 0x21;
    /// ASSM segment header.
    pub const PAGETABLE_SEGMENT_HEADER: u8 = 0x23;
}

/// Errors of block and header parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The buffer is shorter than the structure being parsed.
    #[error("buffer of {len} bytes is too short: need at least {need}")]
    TooShort {
        /// Bytes available.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// A block size that Oracle does not support.
    #[error("unsupported block size {0}: expected a power of two from 512 to 32768")]
    BadBlockSize(usize),
    /// The block's checksum does not match its content.
    #[error("checksum mismatch: stored 0x{stored:04x}, computed 0x{computed:04x}")]
    Checksum {
        /// `chkval_kcbh` as stored.
        stored: u16,
        /// Checksum computed over the block.
        computed: u16,
    },
    /// The tail does not match the header: a fractured (split) block.
    #[error("fractured block: tail 0x{tail:08x} does not match header (expected 0x{expected:08x})")]
    Tail {
        /// Tail value stored.
        tail: u32,
        /// Tail value derived from the header.
        expected: u32,
    },
    /// The block is not the block it should be.
    #[error("wrong block address: rdba 0x{found:08x}, expected 0x{expected:08x}")]
    Rdba {
        /// RDBA stored in the block.
        found: u32,
        /// RDBA expected at this position.
        expected: u32,
    },
    /// `frmt_kcbh` is not valid for this block size.
    #[error("block format byte 0x{format:02x} does not match block size {block_size}")]
    Format {
        /// `frmt_kcbh`.
        format: u8,
        /// Block size checked against.
        block_size: usize,
    },
    /// The block-0 magic is missing.
    #[error("not an Oracle file: block-0 magic 0x{0:08x} is not 0x7a7b7c7d")]
    BadMagic(u32),
    /// The file was written on a big-endian platform.
    #[error("big-endian Oracle file: only little-endian (x86-64) files are supported")]
    BigEndian,
    /// A field holds a value the format does not allow.
    #[error("invalid {field}: {value}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// Offending value, as text.
        value: String,
    },
}

pub(crate) fn le_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn need(buf: &[u8], n: usize) -> Result<(), BlockError> {
    if buf.len() < n {
        Err(BlockError::TooShort {
            len: buf.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

/// Checks that `block_size` is one Oracle supports (512..=32768, power of 2).
pub fn check_block_size(block_size: usize) -> Result<(), BlockError> {
    if block_size.is_power_of_two() && (512..=32768).contains(&block_size) {
        Ok(())
    } else {
        Err(BlockError::BadBlockSize(block_size))
    }
}

/// `frmt_kcbh` for a block size: `((log2(bs) - 8) << 5) | 0x02`
/// (0x22 = 512, 0x82 = 4K, 0xA2 = 8K, 0xC2 = 16K).
pub fn format_byte(block_size: usize) -> Result<u8, BlockError> {
    check_block_size(block_size)?;
    let log2 = u8::try_from(block_size.trailing_zeros())
        .map_err(|_| BlockError::BadBlockSize(block_size))?;
    Ok(((log2 - 8) << 5) | 0x02)
}

/// Block size encoded in a format byte, if the byte uses the size-bearing form.
pub fn block_size_from_format(format: u8) -> Option<usize> {
    if format & 0x1F != 0x02 || format >> 5 == 0 {
        return None;
    }
    let size = 1usize << ((format >> 5) + 8);
    check_block_size(size).ok().map(|_| size)
}

/// A relative data block address: `(rfile# << 22) | block#`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rdba(pub u32);

impl Rdba {
    /// Builds an RDBA; fails if the file or block number does not fit.
    pub fn new(rfile: u32, block: u32) -> Result<Rdba, BlockError> {
        if rfile > MAX_RFILE_NO {
            return Err(BlockError::InvalidField {
                field: "relative file number",
                value: rfile.to_string(),
            });
        }
        if block > MAX_BLOCK_NO {
            return Err(BlockError::InvalidField {
                field: "block number",
                value: block.to_string(),
            });
        }
        Ok(Rdba((rfile << 22) | block))
    }

    /// Relative file number (top 10 bits).
    pub fn rfile(self) -> u32 {
        self.0 >> 22
    }

    /// Block number (low 22 bits).
    pub fn block(self) -> u32 {
        self.0 & MAX_BLOCK_NO
    }
}

/// XOR of every 16-bit word of `buf`. For a finished block this is 0.
pub fn xor_fold(buf: &[u8]) -> u16 {
    let mut acc = 0u64;
    let mut chunks = buf.chunks_exact(8);
    for c in &mut chunks {
        acc ^= u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    }
    acc ^= acc >> 32;
    acc ^= acc >> 16;
    let mut x = (acc & 0xFFFF) as u16;
    let rest = chunks.remainder();
    for w in rest.chunks(2) {
        let lo = w[0];
        let hi = w.get(1).copied().unwrap_or(0);
        x ^= u16::from_le_bytes([lo, hi]);
    }
    x
}

/// The checksum a block should carry in the 2 bytes at `field_offset`:
/// the XOR of all 16-bit words with that field counted as 0.
pub fn compute_checksum(buf: &[u8], field_offset: usize) -> u16 {
    let stored = le_u16(buf, field_offset);
    xor_fold(buf) ^ stored
}

/// The tail a block with this header must end with:
/// `(bas & 0xFFFF) << 16 | type << 8 | seq`.
pub fn tail_value(scn: Scn, block_type: u8, seq: u8) -> u32 {
    ((scn.base() & 0xFFFF) << 16) | (u32::from(block_type) << 8) | u32::from(seq)
}

/// Whether a block was never formatted (all zero bytes).
pub fn is_null_block(buf: &[u8]) -> bool {
    // A formatted block starts with a nonzero type byte, so the scan ends in
    // the first 64 bytes for almost every block: the backup stream is checked
    // at the cost of its headers, not of a pass over every byte.
    buf.chunks(64)
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// The generic block header `kcbh` (first 20 bytes of a datafile block).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// `type_kcbh`, see [`block_type`].
    pub block_type: u8,
    /// `frmt_kcbh`, see [`format_byte`].
    pub format: u8,
    /// `rdba_kcbh`.
    pub rdba: Rdba,
    /// SCN of the last change (`bas_kcbh` + `wrp_kcbh`).
    pub scn: Scn,
    /// `seq_kcbh`: change sequence within the SCN (1..=0xFE).
    pub seq: u8,
    /// `flg_kcbh`.
    pub flags: u8,
    /// `chkval_kcbh`.
    pub checksum: u16,
}

impl BlockHeader {
    /// A header for a formatted block with the checksum flag set (the
    /// checksum itself is filled in by [`finish_block`]).
    pub fn new(
        block_type: u8,
        block_size: usize,
        rdba: Rdba,
        scn: Scn,
        seq: u8,
    ) -> Result<BlockHeader, BlockError> {
        Ok(BlockHeader {
            block_type,
            format: format_byte(block_size)?,
            rdba,
            scn,
            seq,
            flags: FLG_CHECKSUM,
            checksum: 0,
        })
    }

    /// Parses the first 20 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<BlockHeader, BlockError> {
        need(buf, KCBH_LEN)?;
        Ok(BlockHeader {
            block_type: buf[0],
            format: buf[1],
            rdba: Rdba(le_u32(buf, 4)),
            scn: Scn::from_parts(le_u32(buf, 8), le_u16(buf, 12)),
            seq: buf[14],
            flags: buf[15],
            checksum: le_u16(buf, 16),
        })
    }

    /// Writes the header into the first 20 bytes of `buf`.
    pub fn write(&self, buf: &mut [u8]) -> Result<(), BlockError> {
        need(buf, KCBH_LEN)?;
        buf[0] = self.block_type;
        buf[1] = self.format;
        buf[2] = 0;
        buf[3] = 0;
        put_u32(buf, 4, self.rdba.0);
        put_u32(buf, 8, self.scn.base());
        put_u16(buf, 12, self.scn.wrap());
        buf[14] = self.seq;
        buf[15] = self.flags;
        put_u16(buf, 16, self.checksum);
        put_u16(buf, 18, 0);
        Ok(())
    }

    /// The tail value matching this header.
    pub fn tail(&self) -> u32 {
        tail_value(self.scn, self.block_type, self.seq)
    }
}

/// Writes the header, the tail and the checksum of a block whose body is
/// already in place. This is the last step of every block write.
pub fn finish_block(buf: &mut [u8], header: &BlockHeader) -> Result<(), BlockError> {
    check_block_size(buf.len())?;
    let mut h = *header;
    h.checksum = 0;
    h.write(buf)?;
    let n = buf.len();
    put_u32(buf, n - 4, h.tail());
    if h.flags & FLG_CHECKSUM != 0 {
        let c = compute_checksum(buf, CHECKSUM_OFFSET);
        put_u16(buf, CHECKSUM_OFFSET, c);
    }
    Ok(())
}

/// Re-stamps an existing formatted block with a new SCN and sequence (as a
/// change does) and recomputes tail and checksum.
pub fn restamp_block(buf: &mut [u8], scn: Scn, seq: u8) -> Result<BlockHeader, BlockError> {
    let mut h = BlockHeader::parse(buf)?;
    h.scn = scn;
    h.seq = seq;
    finish_block(buf, &h)?;
    BlockHeader::parse(buf)
}

/// Verifies a formatted datafile block: size, format byte (if it carries a
/// size), RDBA (if `expected` is given), tail, and checksum (if flagged).
/// Returns the parsed header.
pub fn check_block(buf: &[u8], expected: Option<Rdba>) -> Result<BlockHeader, BlockError> {
    check_block_size(buf.len())?;
    let h = BlockHeader::parse(buf)?;
    if let Some(size) = block_size_from_format(h.format)
        && size != buf.len()
    {
        return Err(BlockError::Format {
            format: h.format,
            block_size: buf.len(),
        });
    }
    if h.format & 0x0F != 0x02 {
        return Err(BlockError::Format {
            format: h.format,
            block_size: buf.len(),
        });
    }
    if let Some(e) = expected
        && e != h.rdba
    {
        return Err(BlockError::Rdba {
            found: h.rdba.0,
            expected: e.0,
        });
    }
    let tail = le_u32(buf, buf.len() - 4);
    if tail != h.tail() {
        return Err(BlockError::Tail {
            tail,
            expected: h.tail(),
        });
    }
    if h.flags & FLG_CHECKSUM != 0 {
        let computed = compute_checksum(buf, CHECKSUM_OFFSET);
        if computed != h.checksum {
            return Err(BlockError::Checksum {
                stored: h.checksum,
                computed,
            });
        }
    }
    Ok(h)
}

/// Kind of Oracle file, from the block-0 file type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// Redo log or archived log.
    Redo,
    /// Datafile.
    Datafile,
    /// Control file.
    Controlfile,
    /// Any other type byte.
    Other(u8),
}

/// Block 0 of every Oracle file ("OS block header"): type, block size and
/// number of blocks (block 0 excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHeaderBlock {
    /// File type byte (0x22 redo 512/1K, 0x82 redo 4K, 0xA2 8K datafile...).
    pub file_type: u8,
    /// Block size in bytes.
    pub block_size: u32,
    /// Number of blocks after block 0.
    pub block_count: u32,
}

/// Length of the meaningful part of block 0.
pub const BLOCK0_LEN: usize = 32;

impl FileHeaderBlock {
    /// Block 0 of a datafile: the type byte equals the format byte of its
    /// block size (0xA2 for 8K).
    pub fn datafile(block_size: usize, block_count: u32) -> Result<FileHeaderBlock, BlockError> {
        Ok(FileHeaderBlock {
            file_type: format_byte(block_size)?,
            block_size: u32::try_from(block_size)
                .map_err(|_| BlockError::BadBlockSize(block_size))?,
            block_count,
        })
    }

    /// Block 0 of a redo or archived log (0x22 for 512/1K blocks, 0x82 for 4K).
    pub fn redo(block_size: usize, block_count: u32) -> Result<FileHeaderBlock, BlockError> {
        let file_type = match block_size {
            512 | 1024 => 0x22,
            4096 => 0x82,
            other => return Err(BlockError::BadBlockSize(other)),
        };
        Ok(FileHeaderBlock {
            file_type,
            block_size: u32::try_from(block_size)
                .map_err(|_| BlockError::BadBlockSize(block_size))?,
            block_count,
        })
    }

    /// What kind of file the type byte announces. 0x22/0x82 are redo only
    /// for block sizes 512/1K/4K; 0xC2 is a control file (16K).
    pub fn kind(&self) -> FileKind {
        match (self.file_type, self.block_size) {
            (0x22, 512 | 1024) | (0x82, 4096) => FileKind::Redo,
            (0xC2, 16384) => FileKind::Controlfile,
            (t, bs) if block_size_from_format(t) == Some(bs as usize) => FileKind::Datafile,
            (t, _) => FileKind::Other(t),
        }
    }

    /// Parses block 0. `buf` may be just the first 32 bytes.
    pub fn parse(buf: &[u8]) -> Result<FileHeaderBlock, BlockError> {
        need(buf, BLOCK0_LEN)?;
        let magic = le_u32(buf, 28);
        if magic == FILE_MAGIC.swap_bytes() {
            return Err(BlockError::BigEndian);
        }
        if magic != FILE_MAGIC {
            return Err(BlockError::BadMagic(magic));
        }
        if buf[0] != 0 {
            return Err(BlockError::InvalidField {
                field: "block-0 first byte",
                value: format!("0x{:02x}", buf[0]),
            });
        }
        let block_size = le_u32(buf, 20);
        check_block_size(block_size as usize)?;
        Ok(FileHeaderBlock {
            file_type: buf[1],
            block_size,
            block_count: le_u32(buf, 24),
        })
    }

    /// Writes a whole block 0 (zeros, the fields, the magic and an XOR
    /// checksum at offset 16). `buf` must be exactly one block.
    pub fn build(&self, buf: &mut [u8]) -> Result<(), BlockError> {
        check_block_size(buf.len())?;
        buf.fill(0);
        buf[1] = self.file_type;
        put_u32(buf, 4, BLOCK0_RDBA);
        put_u32(buf, 20, self.block_size);
        put_u32(buf, 24, self.block_count);
        put_u32(buf, 28, FILE_MAGIC);
        let c = compute_checksum(buf, 16);
        put_u16(buf, 16, c);
        Ok(())
    }

    /// Total file size in bytes: `(block_count + 1) * block_size`.
    pub fn file_size(&self) -> u64 {
        (u64::from(self.block_count) + 1) * u64::from(self.block_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn format_bytes() {
        assert_eq!(format_byte(512).unwrap(), 0x22);
        assert_eq!(format_byte(2048).unwrap(), 0x62);
        assert_eq!(format_byte(4096).unwrap(), 0x82);
        assert_eq!(format_byte(8192).unwrap(), 0xA2);
        assert_eq!(format_byte(16384).unwrap(), 0xC2);
        assert_eq!(format_byte(32768).unwrap(), 0xE2);
        assert!(format_byte(1000).is_err());
        assert_eq!(block_size_from_format(0xA2), Some(8192));
        assert_eq!(block_size_from_format(0x02), None);
    }

    #[test]
    fn rdba_examples() {
        assert_eq!(Rdba::new(1, 1).unwrap().0, 0x0040_0001);
        assert_eq!(Rdba::new(5, 623).unwrap().0, 0x0140_026F);
        let r = Rdba(0x0140_026F);
        assert_eq!((r.rfile(), r.block()), (5, 623));
        assert!(Rdba::new(1024, 0).is_err());
        assert!(Rdba::new(1, 1 << 22).is_err());
    }

    #[test]
    fn tail_examples() {
        // Real dump: scn base 0x3e20db7a, type 0x1d, seq 3.
        assert_eq!(tail_value(Scn(0x3e20db7a), 0x1d, 3), 0xdb7a1d03);
        // Datafile header: bas 0, type 0x0B, seq 1.
        assert_eq!(tail_value(Scn(0), 0x0B, 1), 0x00000B01);
    }

    #[test]
    fn finish_and_check() {
        let mut b = vec![0x5Au8; 8192];
        let h = BlockHeader::new(
            block_type::DATA,
            8192,
            Rdba::new(4, 100).unwrap(),
            Scn(0x1_0000_1234),
            1,
        )
        .unwrap();
        finish_block(&mut b, &h).unwrap();
        assert_eq!(xor_fold(&b), 0);
        let p = check_block(&b, Some(Rdba::new(4, 100).unwrap())).unwrap();
        assert_eq!(p.scn, Scn(0x1_0000_1234));
        assert!(matches!(
            check_block(&b, Some(Rdba::new(4, 101).unwrap())),
            Err(BlockError::Rdba { .. })
        ));
        b[100] ^= 1;
        assert!(matches!(
            check_block(&b, None),
            Err(BlockError::Checksum { .. })
        ));
        b[100] ^= 1;
        restamp_block(&mut b, Scn(0x1_0000_2000), 2).unwrap();
        check_block(&b, None).unwrap();
        // Tear the block: new header, old tail.
        let old_tail = le_u32(&b, 8188) ^ 0x0001_0000;
        put_u32(&mut b, 8188, old_tail);
        assert!(matches!(
            check_block(&b, None),
            Err(BlockError::Tail { .. })
        ));
    }

    #[test]
    fn block0() {
        let mut b = vec![0u8; 8192];
        let f = FileHeaderBlock::datafile(8192, 12800).unwrap();
        f.build(&mut b).unwrap();
        assert_eq!(&b[28..32], &[0x7D, 0x7C, 0x7B, 0x7A]);
        assert_eq!(b[1], 0xA2);
        assert_eq!(xor_fold(&b), 0);
        let p = FileHeaderBlock::parse(&b).unwrap();
        assert_eq!(p, f);
        assert_eq!(p.kind(), FileKind::Datafile);
        assert_eq!(p.file_size(), 12801 * 8192);
        let r = FileHeaderBlock::redo(512, 100).unwrap();
        assert_eq!(r.kind(), FileKind::Redo);
        b[28..32].copy_from_slice(&[0x7A, 0x7B, 0x7C, 0x7D]);
        assert_eq!(FileHeaderBlock::parse(&b), Err(BlockError::BigEndian));
    }

    #[test]
    fn null_blocks() {
        assert!(is_null_block(&[0u8; 8192]));
        let mut b = [0u8; 8192];
        b[8191] = 1;
        assert!(!is_null_block(&b));
    }

    proptest! {
        #[test]
        fn checksum_zero_after_finish(body in proptest::collection::vec(any::<u8>(), 2048),
                                      scn in 0u64..(1u64<<48), seq in 1u8..0xFF, t in any::<u8>()) {
            let mut b = body.clone();
            let h = BlockHeader::new(t, 2048, Rdba(7), Scn(scn), seq).unwrap();
            finish_block(&mut b, &h).unwrap();
            prop_assert_eq!(xor_fold(&b), 0);
            prop_assert_eq!(check_block(&b, Some(Rdba(7))).unwrap().scn, Scn(scn));
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = BlockHeader::parse(&b);
            let _ = check_block(&b, None);
            let _ = FileHeaderBlock::parse(&b);
        }
    }
}
