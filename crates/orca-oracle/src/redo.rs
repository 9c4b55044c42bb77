//! Redo and archived logs: the 16-byte redo block header, the redo log header
//! (block 1), and the simulator's redo records.
//!
//! File layout (Oracle's): block 0 = [`FileHeaderBlock`] (type 0x22 for
//! 512-byte blocks), block 1 = redo block header + [`RedoLogHeader`], blocks
//! 2.. = redo block header + redo stream. Archived logs are the online log cut
//! after its last used block.
//!
//! Redo records are the simulator's own design (Oracle's change-vector format
//! is not needed to exercise backups): each record is a 32-byte header plus a
//! payload, 4-byte aligned, packed back to back into the bytes that follow
//! each block's 16-byte header, spanning blocks as needed. A block header's
//! "first record offset" names the first record that starts in that block
//! (0 if none does), as Oracle's does. See [`RedoRecord`].

use crate::block::{
    BlockError, FileHeaderBlock, FileKind, compute_checksum, le_u16, le_u32, need, put_u16, put_u32,
};
use crate::datafile::{read_text, write_text};
use crate::scn::Scn;
use crate::time::OracleTime;
use serde::{Deserialize, Serialize};

/// Length of the header at the start of every redo block (blocks >= 1).
pub const REDO_BLOCK_HEADER_LEN: usize = 16;
/// Offset of the checksum inside a redo block header.
pub const REDO_CHECKSUM_OFFSET: usize = 14;
/// The usual redo block size on Linux.
pub const DEFAULT_REDO_BLOCK_SIZE: usize = 512;

/// The 16-byte header of a redo block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedoBlockHeader {
    /// Byte 1: 0x22 (512/1K blocks) or 0x82 (4K blocks).
    pub format: u8,
    /// Block number within the file (1 = log header).
    pub block_no: u32,
    /// Log sequence number (same in every block of a file).
    pub sequence: u32,
    /// Offset of the first record starting in this block, 0 if none
    /// (already masked with 0x7FFF).
    pub first_record_offset: u16,
    /// XOR checksum of the block.
    pub checksum: u16,
}

fn redo_format(block_size: usize) -> Result<u8, BlockError> {
    match block_size {
        512 | 1024 => Ok(0x22),
        4096 => Ok(0x82),
        other => Err(BlockError::BadBlockSize(other)),
    }
}

impl RedoBlockHeader {
    /// Parses the first 16 bytes of a redo block.
    pub fn parse(buf: &[u8]) -> Result<RedoBlockHeader, BlockError> {
        need(buf, REDO_BLOCK_HEADER_LEN)?;
        if buf[0] != 0x01 {
            return Err(BlockError::InvalidField {
                field: "redo block flag byte",
                value: format!("0x{:02x} (expected 0x01)", buf[0]),
            });
        }
        Ok(RedoBlockHeader {
            format: buf[1],
            block_no: le_u32(buf, 4),
            sequence: le_u32(buf, 8),
            first_record_offset: le_u16(buf, 12) & 0x7FFF,
            checksum: le_u16(buf, REDO_CHECKSUM_OFFSET),
        })
    }

    /// Writes the header (checksum left as stored in `self`; use
    /// [`finish_redo_block`] to compute it).
    pub fn write(&self, buf: &mut [u8]) -> Result<(), BlockError> {
        need(buf, REDO_BLOCK_HEADER_LEN)?;
        buf[0] = 0x01;
        buf[1] = self.format;
        buf[2] = 0;
        buf[3] = 0;
        put_u32(buf, 4, self.block_no);
        put_u32(buf, 8, self.sequence);
        put_u16(buf, 12, self.first_record_offset);
        put_u16(buf, REDO_CHECKSUM_OFFSET, self.checksum);
        Ok(())
    }
}

/// Writes the block header and the checksum of a redo block whose body
/// (bytes 16..) is in place.
pub fn finish_redo_block(
    buf: &mut [u8],
    block_no: u32,
    sequence: u32,
    first_record_offset: u16,
) -> Result<(), BlockError> {
    let h = RedoBlockHeader {
        format: redo_format(buf.len())?,
        block_no,
        sequence,
        first_record_offset,
        checksum: 0,
    };
    h.write(buf)?;
    let c = compute_checksum(buf, REDO_CHECKSUM_OFFSET);
    put_u16(buf, REDO_CHECKSUM_OFFSET, c);
    Ok(())
}

/// Verifies a redo block: header, block number, sequence (if given) and checksum.
pub fn check_redo_block(
    buf: &[u8],
    block_no: u32,
    sequence: Option<u32>,
) -> Result<RedoBlockHeader, BlockError> {
    let h = RedoBlockHeader::parse(buf)?;
    if h.format != redo_format(buf.len())? {
        return Err(BlockError::Format {
            format: h.format,
            block_size: buf.len(),
        });
    }
    if h.block_no != block_no {
        return Err(BlockError::InvalidField {
            field: "redo block number",
            value: format!("{} (expected {block_no})", h.block_no),
        });
    }
    if let Some(s) = sequence
        && h.sequence != s
    {
        return Err(BlockError::InvalidField {
            field: "redo block sequence",
            value: format!("{} (expected {s})", h.sequence),
        });
    }
    let computed = compute_checksum(buf, REDO_CHECKSUM_OFFSET);
    if computed != h.checksum {
        return Err(BlockError::Checksum {
            stored: h.checksum,
            computed,
        });
    }
    Ok(h)
}

/// The redo log header in block 1 (offsets from the start of block 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedoLogHeader {
    /// Compatibility version (0x13000000 = 19.0).
    pub compat_version: u32,
    /// DBID.
    pub dbid: u32,
    /// DB_NAME (at most 8 bytes).
    pub db_name: String,
    /// Control file sequence.
    pub controlfile_seq: u32,
    /// File size in blocks (excluding block 0).
    pub file_size_blocks: u32,
    /// Redo block size.
    pub block_size: u32,
    /// Log group member number.
    pub file_no: u16,
    /// File type.
    pub file_type: u16,
    /// Activation id.
    pub activation_id: u32,
    /// Description text (at most 64 bytes).
    pub description: String,
    /// Next available block: one past the last block holding redo.
    pub nab: u32,
    /// Resetlogs id (= V$ARCHIVED_LOG.RESETLOGS_ID).
    pub resetlogs_id: u32,
    /// Resetlogs SCN.
    pub resetlogs_scn: Scn,
    /// High-water block.
    pub hws: u32,
    /// Redo thread.
    pub thread: u16,
    /// First (low) SCN of the log = FIRST_CHANGE#.
    pub first_scn: Scn,
    /// Time of the first SCN.
    pub first_time: OracleTime,
    /// Next SCN = NEXT_CHANGE#; `None` while the log is current.
    pub next_scn: Option<Scn>,
    /// Time of the next SCN.
    pub next_time: OracleTime,
    /// SCN at which the thread was enabled.
    pub enabled_scn: Scn,
    /// Time the thread was enabled.
    pub enabled_time: OracleTime,
    /// SCN at which the thread was last closed.
    pub thread_closed_scn: Scn,
    /// Time the thread was last closed.
    pub thread_closed_time: OracleTime,
}

/// Redo log header `file_type` the simulator writes for log files.
pub const REDO_FILE_TYPE: u16 = 2;

impl RedoLogHeader {
    /// The description Oracle writes ("Thread 0001, Seq# 0000000015, SCN
    /// 0x0000000f1d52-0xffffffffffff").
    pub fn standard_description(
        thread: u16,
        sequence: u32,
        first: Scn,
        next: Option<Scn>,
    ) -> String {
        let next = next.map_or("0xffffffffffff".to_string(), |s| format!("0x{:012x}", s.0));
        format!(
            "Thread {thread:04}, Seq# {sequence:010}, SCN 0x{:012x}-{next}",
            first.0
        )
    }

    /// Builds block 1 of a log: redo block header (sequence `sequence`) and
    /// the header fields, with checksum.
    pub fn build(&self, sequence: u32, buf: &mut [u8]) -> Result<(), BlockError> {
        redo_format(buf.len())?;
        need(buf, 256)?;
        buf.fill(0);
        put_u32(buf, 20, self.compat_version);
        put_u32(buf, 24, self.dbid);
        write_text(&mut buf[28..36], &self.db_name, "db name")?;
        put_u32(buf, 36, self.controlfile_seq);
        put_u32(buf, 40, self.file_size_blocks);
        put_u32(buf, 44, self.block_size);
        put_u16(buf, 48, self.file_no);
        put_u16(buf, 50, self.file_type);
        put_u32(buf, 52, self.activation_id);
        write_text(&mut buf[92..156], &self.description, "log description")?;
        put_u32(buf, 156, self.nab);
        put_u32(buf, 160, self.resetlogs_id);
        put_scn(buf, 164, Some(self.resetlogs_scn));
        put_u32(buf, 172, self.hws);
        put_u16(buf, 176, self.thread);
        put_scn(buf, 180, Some(self.first_scn));
        put_u32(buf, 188, self.first_time.0);
        put_scn(buf, 192, self.next_scn);
        put_u32(buf, 200, self.next_time.0);
        put_scn(buf, 208, Some(self.enabled_scn));
        put_u32(buf, 216, self.enabled_time.0);
        put_scn(buf, 220, Some(self.thread_closed_scn));
        put_u32(buf, 228, self.thread_closed_time.0);
        finish_redo_block(buf, 1, sequence, 0)
    }

    /// Parses and verifies block 1 of a log. Returns the header and the
    /// sequence number from the block header.
    pub fn parse(buf: &[u8]) -> Result<(RedoLogHeader, u32), BlockError> {
        need(buf, 256)?;
        let bh = check_redo_block(buf, 1, None)?;
        let h = RedoLogHeader {
            compat_version: le_u32(buf, 20),
            dbid: le_u32(buf, 24),
            db_name: read_text(&buf[28..36]),
            controlfile_seq: le_u32(buf, 36),
            file_size_blocks: le_u32(buf, 40),
            block_size: le_u32(buf, 44),
            file_no: le_u16(buf, 48),
            file_type: le_u16(buf, 50),
            activation_id: le_u32(buf, 52),
            description: read_text(&buf[92..156]),
            nab: le_u32(buf, 156),
            resetlogs_id: le_u32(buf, 160),
            resetlogs_scn: Scn::read_kscn(&buf[164..172]).unwrap_or_default(),
            hws: le_u32(buf, 172),
            thread: le_u16(buf, 176),
            first_scn: Scn::read_kscn(&buf[180..188]).unwrap_or_default(),
            first_time: OracleTime(le_u32(buf, 188)),
            next_scn: Scn::read_kscn(&buf[192..200]),
            next_time: OracleTime(le_u32(buf, 200)),
            enabled_scn: Scn::read_kscn(&buf[208..216]).unwrap_or_default(),
            enabled_time: OracleTime(le_u32(buf, 216)),
            thread_closed_scn: Scn::read_kscn(&buf[220..228]).unwrap_or_default(),
            thread_closed_time: OracleTime(le_u32(buf, 228)),
        };
        Ok((h, bh.sequence))
    }
}

fn put_scn(buf: &mut [u8], off: usize, scn: Option<Scn>) {
    let mut k = [0u8; 8];
    match scn {
        Some(s) => s.write_kscn(&mut k),
        None => Scn::write_none(&mut k),
    }
    buf[off..off + 8].copy_from_slice(&k);
}

/// Kind of a simulator redo record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordKind {
    /// Full image of a datafile block after a change (payload = the block).
    BlockImage,
    /// A checkpoint was taken at `scn` (no payload; the datafile header
    /// images of that checkpoint follow as block images of block 1).
    Checkpoint,
    /// Datafile `file_no` was resized to `block_no` blocks (no payload).
    FileResize,
    /// The thread was closed (instance shut down) at `scn` (no payload).
    ThreadClose,
}

impl RecordKind {
    fn code(self) -> u8 {
        match self {
            RecordKind::BlockImage => 1,
            RecordKind::Checkpoint => 2,
            RecordKind::FileResize => 3,
            RecordKind::ThreadClose => 4,
        }
    }

    fn from_code(c: u8) -> Option<RecordKind> {
        Some(match c {
            1 => RecordKind::BlockImage,
            2 => RecordKind::Checkpoint,
            3 => RecordKind::FileResize,
            4 => RecordKind::ThreadClose,
            _ => return None,
        })
    }
}

/// Length of a redo record header.
pub const RECORD_HEADER_LEN: usize = 32;
/// Version byte written in every record.
pub const RECORD_VERSION: u8 = 1;
/// Upper bound on a record payload (one 32K block).
pub const MAX_RECORD_PAYLOAD: usize = 32768;

/// A simulator redo record.
///
/// ```text
/// off size field
///   0 u32  total length (header + payload, padded to 4)
///   4 u8   kind: 1 block image, 2 checkpoint, 3 file resize, 4 thread close
///   5 u8   version (1)
///   6 u16  thread
///   8 kscn SCN of the change (8 bytes)
///  16 u32  Oracle time of the change
///  20 u16  absolute file number (0 if none)
///  22 u16  flags (0)
///  24 u32  block number (block image) / new size in blocks (resize) / 0
///  28 u32  payload length
///  32 ...  payload, then zero padding to a multiple of 4
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedoRecord {
    /// What the record describes.
    pub kind: RecordKind,
    /// Redo thread that generated it.
    pub thread: u16,
    /// SCN of the change.
    pub scn: Scn,
    /// Time of the change.
    pub time: OracleTime,
    /// Absolute file number.
    pub file_no: u16,
    /// Block number, or the new size for [`RecordKind::FileResize`].
    pub block_no: u32,
    /// Block image for [`RecordKind::BlockImage`], empty otherwise.
    pub payload: Vec<u8>,
}

impl RedoRecord {
    /// Encoded length (header + payload, padded to 4).
    pub fn encoded_len(&self) -> usize {
        (RECORD_HEADER_LEN + self.payload.len()).div_ceil(4) * 4
    }

    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), BlockError> {
        if self.payload.len() > MAX_RECORD_PAYLOAD {
            return Err(BlockError::InvalidField {
                field: "redo record payload length",
                value: self.payload.len().to_string(),
            });
        }
        let len = self.encoded_len();
        let start = out.len();
        out.resize(start + len, 0);
        let b = &mut out[start..];
        put_u32(
            b,
            0,
            u32::try_from(len).map_err(|_| too_long("redo record length", len))?,
        );
        b[4] = self.kind.code();
        b[5] = RECORD_VERSION;
        put_u16(b, 6, self.thread);
        let mut k = [0u8; 8];
        self.scn.write_kscn(&mut k);
        b[8..16].copy_from_slice(&k);
        put_u32(b, 16, self.time.0);
        put_u16(b, 20, self.file_no);
        put_u16(b, 22, 0);
        put_u32(b, 24, self.block_no);
        let payload_len = u32::try_from(self.payload.len())
            .map_err(|_| too_long("redo payload length", self.payload.len()))?;
        put_u32(b, 28, payload_len);
        b[RECORD_HEADER_LEN..RECORD_HEADER_LEN + self.payload.len()].copy_from_slice(&self.payload);
        Ok(())
    }

    /// Decodes one record from the start of `buf`. Returns `Ok(None)` at the
    /// end of the redo (a zero length word, or fewer than 4 bytes left) and
    /// the record with its encoded length otherwise.
    pub fn decode(buf: &[u8]) -> Result<Option<(RedoRecord, usize)>, BlockError> {
        if buf.len() < 4 || le_u32(buf, 0) == 0 {
            return Ok(None);
        }
        need(buf, RECORD_HEADER_LEN)?;
        let len = le_u32(buf, 0) as usize;
        let kind = RecordKind::from_code(buf[4]).ok_or_else(|| BlockError::InvalidField {
            field: "redo record kind",
            value: buf[4].to_string(),
        })?;
        if buf[5] != RECORD_VERSION {
            return Err(BlockError::InvalidField {
                field: "redo record version",
                value: buf[5].to_string(),
            });
        }
        let plen = le_u32(buf, 28) as usize;
        if plen > MAX_RECORD_PAYLOAD || len != (RECORD_HEADER_LEN + plen).div_ceil(4) * 4 {
            return Err(BlockError::InvalidField {
                field: "redo record length",
                value: format!("{len} (payload {plen})"),
            });
        }
        need(buf, len)?;
        let rec = RedoRecord {
            kind,
            thread: le_u16(buf, 6),
            scn: Scn::read_kscn(&buf[8..16]).unwrap_or_default(),
            time: OracleTime(le_u32(buf, 16)),
            file_no: le_u16(buf, 20),
            block_no: le_u32(buf, 24),
            payload: buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + plen].to_vec(),
        };
        Ok(Some((rec, len)))
    }
}

/// Packs redo records into redo blocks of one log.
///
/// Blocks are handed out through [`RedoBlockWriter::append`] as they fill;
/// [`RedoBlockWriter::partial_block`] gives the finished form of the block
/// being filled so it can be written (and rewritten) in place.
#[derive(Clone, Debug)]
pub struct RedoBlockWriter {
    block_size: usize,
    sequence: u32,
    block_no: u32,
    offset: usize,
    first_record_offset: u16,
    block: Vec<u8>,
}

impl RedoBlockWriter {
    /// A writer starting at block 2 of an empty log.
    pub fn new(block_size: usize, sequence: u32) -> Result<RedoBlockWriter, BlockError> {
        redo_format(block_size)?;
        Ok(RedoBlockWriter {
            block_size,
            sequence,
            block_no: 2,
            offset: REDO_BLOCK_HEADER_LEN,
            first_record_offset: 0,
            block: vec![0; block_size],
        })
    }

    /// A writer continuing a log whose next free position is `block_no`,
    /// byte `offset`, with `partial` the current content of that block (only
    /// bytes before `offset` are used).
    pub fn resume(
        block_size: usize,
        sequence: u32,
        block_no: u32,
        offset: usize,
        partial: &[u8],
    ) -> Result<RedoBlockWriter, BlockError> {
        let mut w = RedoBlockWriter::new(block_size, sequence)?;
        if block_no < 2 || !(REDO_BLOCK_HEADER_LEN..=block_size).contains(&offset) {
            return Err(BlockError::InvalidField {
                field: "redo write position",
                value: format!("block {block_no} offset {offset}"),
            });
        }
        w.block_no = block_no;
        w.offset = offset;
        if offset > REDO_BLOCK_HEADER_LEN {
            let h = RedoBlockHeader::parse(partial)?;
            need(partial, offset)?;
            w.first_record_offset = h.first_record_offset;
            w.block[REDO_BLOCK_HEADER_LEN..offset]
                .copy_from_slice(&partial[REDO_BLOCK_HEADER_LEN..offset]);
        }
        Ok(w)
    }

    /// Block being filled.
    pub fn block_no(&self) -> u32 {
        self.block_no
    }

    /// Next free byte in the block being filled.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Next available block once the partial block is written: the block
    /// after the last one holding any redo.
    pub fn nab(&self) -> u32 {
        if self.offset > REDO_BLOCK_HEADER_LEN {
            self.block_no + 1
        } else {
            self.block_no
        }
    }

    /// Appends one record; every block that becomes full is passed to `sink`
    /// as `(block_no, finished block bytes)`.
    pub fn append<F>(&mut self, record: &RedoRecord, mut sink: F) -> Result<(), BlockError>
    where
        F: FnMut(u32, &[u8]) -> Result<(), BlockError>,
    {
        let mut enc = Vec::with_capacity(record.encoded_len());
        record.encode(&mut enc)?;
        if self.first_record_offset == 0 {
            self.first_record_offset = u16::try_from(self.offset)
                .map_err(|_| too_long("first record offset", self.offset))?;
        }
        let mut rest = &enc[..];
        while !rest.is_empty() {
            let room = self.block_size - self.offset;
            let n = room.min(rest.len());
            self.block[self.offset..self.offset + n].copy_from_slice(&rest[..n]);
            self.offset += n;
            rest = &rest[n..];
            if self.offset == self.block_size {
                finish_redo_block(
                    &mut self.block,
                    self.block_no,
                    self.sequence,
                    self.first_record_offset,
                )?;
                sink(self.block_no, &self.block)?;
                self.block_no += 1;
                self.offset = REDO_BLOCK_HEADER_LEN;
                self.block.fill(0);
                self.first_record_offset = 0;
            }
        }
        Ok(())
    }

    /// The block being filled, finished (header + checksum), or `None` if it
    /// holds no redo yet.
    pub fn partial_block(&mut self) -> Result<Option<(u32, &[u8])>, BlockError> {
        if self.offset == REDO_BLOCK_HEADER_LEN {
            return Ok(None);
        }
        let mut b = self.block.clone();
        finish_redo_block(
            &mut b,
            self.block_no,
            self.sequence,
            self.first_record_offset,
        )?;
        self.block = b;
        Ok(Some((self.block_no, &self.block)))
    }
}

/// A parsed redo or archived log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLog {
    /// Block 0.
    pub file_header: FileHeaderBlock,
    /// Block 1.
    pub header: RedoLogHeader,
    /// Sequence from the block headers.
    pub sequence: u32,
    /// Records in file order.
    pub records: Vec<RedoRecord>,
}

/// Parses a whole log file (block 0, header, every block up to the header's
/// next available block), verifying every block, and decodes its records.
pub fn parse_log(bytes: &[u8]) -> Result<ParsedLog, BlockError> {
    let (file_header, header, sequence) = parse_log_headers(bytes)?;
    let bs = file_header.block_size as usize;
    let nab = header.nab.max(2) as usize;
    let blocks = bytes.len() / bs;
    if nab > blocks {
        return Err(BlockError::TooShort {
            len: bytes.len(),
            need: nab * bs,
        });
    }
    let mut stream = Vec::with_capacity((nab - 2) * (bs - REDO_BLOCK_HEADER_LEN));
    let mut starts = Vec::new();
    for n in 2..nab {
        let blk = &bytes[n * bs..(n + 1) * bs];
        let block_no = u32::try_from(n).map_err(|_| too_long("redo block number", n))?;
        let h = check_redo_block(blk, block_no, Some(sequence))?;
        if h.first_record_offset != 0 {
            let off = usize::from(h.first_record_offset);
            if !(REDO_BLOCK_HEADER_LEN..bs).contains(&off) {
                return Err(BlockError::InvalidField {
                    field: "first record offset",
                    value: off.to_string(),
                });
            }
            starts.push(stream.len() + off - REDO_BLOCK_HEADER_LEN);
        }
        stream.extend_from_slice(&blk[REDO_BLOCK_HEADER_LEN..]);
    }
    let mut records = Vec::new();
    let mut record_starts = std::collections::HashSet::new();
    let mut pos = 0;
    while pos < stream.len() {
        let Some((rec, len)) = RedoRecord::decode(&stream[pos..])? else {
            break;
        };
        record_starts.insert(pos);
        records.push(rec);
        pos += len;
    }
    // Every block that announces a record start must agree with where the
    // records actually begin.
    if let Some(s) = starts
        .iter()
        .find(|&&s| s < pos && !record_starts.contains(&s))
    {
        return Err(BlockError::InvalidField {
            field: "first record offset",
            value: format!("stream position {s} is not the start of a record"),
        });
    }
    Ok(ParsedLog {
        file_header,
        header,
        sequence,
        records,
    })
}

/// Parses block 0 and block 1 of a log (the first two blocks of `bytes`).
pub fn parse_log_headers(
    bytes: &[u8],
) -> Result<(FileHeaderBlock, RedoLogHeader, u32), BlockError> {
    let fh = FileHeaderBlock::parse(bytes)?;
    if fh.kind() != FileKind::Redo {
        return Err(BlockError::InvalidField {
            field: "file type",
            value: format!("0x{:02x} is not a redo log", fh.file_type),
        });
    }
    let bs = fh.block_size as usize;
    need(bytes, 2 * bs)?;
    let (h, seq) = RedoLogHeader::parse(&bytes[bs..2 * bs])?;
    Ok((fh, h, seq))
}

/// A length or position that does not fit its fixed-width field.
fn too_long(field: &'static str, value: usize) -> BlockError {
    BlockError::InvalidField {
        field,
        value: value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::xor_fold;
    use proptest::prelude::*;

    fn header(nab: u32) -> RedoLogHeader {
        RedoLogHeader {
            compat_version: 0x1300_0000,
            dbid: 77,
            db_name: "ORCL".into(),
            controlfile_seq: 5,
            file_size_blocks: nab - 1,
            block_size: 512,
            file_no: 1,
            file_type: REDO_FILE_TYPE,
            activation_id: 9,
            description: RedoLogHeader::standard_description(1, 12, Scn(100), Some(Scn(200))),
            nab,
            resetlogs_id: 1_000,
            resetlogs_scn: Scn(1),
            hws: 1,
            thread: 1,
            first_scn: Scn(100),
            first_time: OracleTime(5),
            next_scn: Some(Scn(200)),
            next_time: OracleTime(6),
            enabled_scn: Scn(1),
            enabled_time: OracleTime(1),
            thread_closed_scn: Scn(0),
            thread_closed_time: OracleTime(0),
        }
    }

    fn build_log(records: &[RedoRecord]) -> Vec<u8> {
        let mut w = RedoBlockWriter::new(512, 12).unwrap();
        let mut blocks: Vec<(u32, Vec<u8>)> = Vec::new();
        for r in records {
            w.append(r, |n: u32, b: &[u8]| {
                blocks.push((n, b.to_vec()));
                Ok(())
            })
            .unwrap();
        }
        if let Some((n, b)) = w.partial_block().unwrap() {
            blocks.push((n, b.to_vec()));
        }
        let nab = w.nab();
        let mut out = vec![0u8; nab as usize * 512];
        FileHeaderBlock::redo(512, nab - 1)
            .unwrap()
            .build(&mut out[..512])
            .unwrap();
        header(nab).build(12, &mut out[512..1024]).unwrap();
        for (n, b) in blocks {
            out[n as usize * 512..(n as usize + 1) * 512].copy_from_slice(&b);
        }
        out
    }

    fn rec(i: u32, payload: usize) -> RedoRecord {
        RedoRecord {
            kind: RecordKind::BlockImage,
            thread: 1,
            scn: Scn(100 + u64::from(i)),
            time: OracleTime(i),
            file_no: 4,
            block_no: i,
            // The low bytes: test data, wrapping on purpose.
            payload: (0..payload)
                .map(|x| x.to_le_bytes()[0] ^ i.to_le_bytes()[0])
                .collect(),
        }
    }

    #[test]
    fn description() {
        assert_eq!(
            RedoLogHeader::standard_description(1, 15, Scn(0xf1d52), None),
            "Thread 0001, Seq# 0000000015, SCN 0x0000000f1d52-0xffffffffffff"
        );
    }

    #[test]
    fn log_roundtrip() {
        let recs: Vec<_> = (0..20).map(|i| rec(i, (i as usize * 397) % 9000)).collect();
        let log = build_log(&recs);
        for (n, blk) in log.chunks(512).enumerate().skip(1) {
            assert_eq!(xor_fold(blk), 0, "block {n}");
        }
        let p = parse_log(&log).unwrap();
        assert_eq!(p.sequence, 12);
        assert_eq!(p.header, header(p.header.nab));
        assert_eq!(p.records, recs);
    }

    #[test]
    fn resume_continues_partial_block() {
        let recs: Vec<_> = (0..6).map(|i| rec(i, 100 + i as usize * 50)).collect();
        let mut w = RedoBlockWriter::new(512, 12).unwrap();
        let mut blocks: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut push = |n: u32, b: &[u8]| {
            blocks.push((n, b.to_vec()));
            Ok(())
        };
        for r in &recs[..3] {
            w.append(r, &mut push).unwrap();
        }
        let (pn, pb) = w
            .partial_block()
            .unwrap()
            .map(|(n, b)| (n, b.to_vec()))
            .unwrap();
        let mut w2 = RedoBlockWriter::resume(512, 12, w.block_no(), w.offset(), &pb).unwrap();
        assert_eq!(pn, w2.block_no());
        for r in &recs[3..] {
            w2.append(r, &mut push).unwrap();
        }
        let mut direct = RedoBlockWriter::new(512, 12).unwrap();
        let mut blocks2: Vec<(u32, Vec<u8>)> = Vec::new();
        for r in &recs {
            direct
                .append(r, |n: u32, b: &[u8]| {
                    blocks2.push((n, b.to_vec()));
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(blocks, blocks2);
        assert_eq!(
            w2.partial_block().unwrap().map(|(n, b)| (n, b.to_vec())),
            direct
                .partial_block()
                .unwrap()
                .map(|(n, b)| (n, b.to_vec()))
        );
    }

    #[test]
    fn corrupt_block_detected() {
        let log = build_log(&[rec(1, 2000)]);
        let mut bad = log.clone();
        bad[3 * 512 + 100] ^= 0x10;
        assert!(matches!(parse_log(&bad), Err(BlockError::Checksum { .. })));
        let mut bad = log;
        bad[512 + 24] ^= 1;
        assert!(parse_log(&bad).is_err());
    }

    proptest! {
        #[test]
        fn records_roundtrip(sizes in proptest::collection::vec(0usize..3000, 0..12)) {
            let recs: Vec<_> = sizes.iter().enumerate().map(|(i, &s)| rec(u32::try_from(i).unwrap(), s)).collect();
            let log = build_log(&recs);
            prop_assert_eq!(parse_log(&log).unwrap().records, recs);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = parse_log(&b);
            let _ = RedoRecord::decode(&b);
            let _ = RedoBlockHeader::parse(&b);
        }
    }
}
