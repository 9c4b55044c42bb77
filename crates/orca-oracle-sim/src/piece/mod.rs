//! The simulator's backup-piece container (byte layout in `PIECE.md` at the crate root).
//!
//! Oracle's piece format is undocumented; what matters for ORCA is what a media manager sees in
//! the stream: a small header, then whole Oracle blocks stored at offsets that are multiples of
//! their block size (so a consumer can find and align them), interleaved between files when
//! several files share a set, and a trailer. Only the simulator reads pieces back.
//!
//! ```text
//! [header: 8 KiB units][record]...[record][trailer record]
//! record  = 512-byte record header, zero padding up to the payload's alignment, payload
//! RUN     = consecutive blocks of one file (payload aligned to the file's block size)
//! BLOB    = raw bytes of one entry (control file snapshot, spfile), 512-aligned
//! ZRUN    = a RUN of a compressed piece: the zstd frame of its blocks right after the header
//! ```

mod crc;
pub mod crypt;

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

pub use crc::{Crc32c, crc32c};

/// First 8 bytes of every piece.
pub const MAGIC: [u8; 8] = *b"ORASIMBP";
/// Layout version in the header.
pub const VERSION: u32 = 1;
/// The header is a whole number of these units (one for up to 62 entries).
pub const HEADER_UNIT: usize = 8192;
/// Bytes of the fixed part of the header, before the entries.
pub const FIXED_HEADER: usize = 256;
/// Bytes per entry in the header.
pub const ENTRY_SIZE: usize = 128;
/// Size and alignment of record headers and the trailer.
pub const RECORD_HEADER: usize = 512;
/// Longest tag (V$BACKUP_PIECE.TAG is VARCHAR2(32)).
pub const TAG_MAX: usize = 32;

const RUN_MAGIC: [u8; 4] = *b"RUN\0";
const BLOB_MAGIC: [u8; 4] = *b"BLOB";
const ZRUN_MAGIC: [u8; 4] = *b"ZRUN";
const ERUN_MAGIC: [u8; 4] = *b"ERUN";
const EBLOB_MAGIC: [u8; 4] = *b"EBLB";
/// Where the key slots of an encrypted piece are in the header.
const KEY_WRAPS_AT: usize = 104;
/// zstd level of AS COMPRESSED BACKUPSET with Oracle's default algorithm BASIC.
pub const BASIC_LEVEL: i32 = 3;
const END_MAGIC: [u8; 4] = *b"PEND";

/// Errors reading or writing a piece.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    #[error("I/O error on backup piece: {0}")]
    Io(#[from] io::Error),
    #[error("not a simulator backup piece (bad magic)")]
    BadMagic,
    #[error("backup piece layout version {0} is not supported (expected {VERSION})")]
    Version(u32),
    #[error("backup piece header is corrupt: {0}")]
    Header(String),
    #[error("backup piece is corrupt at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
    #[error("backup piece is truncated at byte {0}: the trailer is missing")]
    Truncated(u64),
    #[error("backup piece is encrypted and no password given nor the wallet opens it")]
    Decrypt,
    #[error("cannot write backup piece: {0}")]
    Invalid(String),
}

/// V$BACKUP_SET.BACKUP_TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupType {
    /// 'D': full datafile backup (also control file / spfile only sets).
    Full,
    /// 'I': incremental (level 0 or 1).
    Incremental,
    /// 'L': archived logs.
    Archivelog,
}

impl BackupType {
    /// The letter Oracle stores.
    pub fn code(self) -> u8 {
        match self {
            BackupType::Full => b'D',
            BackupType::Incremental => b'I',
            BackupType::Archivelog => b'L',
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            b'D' => Some(BackupType::Full),
            b'I' => Some(BackupType::Incremental),
            b'L' => Some(BackupType::Archivelog),
            _ => None,
        }
    }
}

/// What an entry of the set is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    Datafile,
    ArchivedLog,
    ControlFile,
    Spfile,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::Datafile => 1,
            EntryKind::ArchivedLog => 2,
            EntryKind::ControlFile => 3,
            EntryKind::Spfile => 4,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(EntryKind::Datafile),
            2 => Some(EntryKind::ArchivedLog),
            3 => Some(EntryKind::ControlFile),
            4 => Some(EntryKind::Spfile),
            _ => None,
        }
    }
}

/// One file of the set. Field meaning by kind is in PIECE.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceEntry {
    pub kind: EntryKind,
    /// Block size of the file (datafile 8192, redo 512); 512 for blobs.
    pub block_size: u32,
    /// Datafile: FILE#. Archived log: THREAD#. Others: 0.
    pub file_number: u32,
    /// Datafile: RFILE#. Archived log: SEQUENCE#. Others: 0.
    pub sequence: u32,
    /// Datafile / archived log: file length in blocks, block 0 included. Blob: byte length.
    pub file_blocks: u64,
    /// Datafile: CREATION_CHANGE#. Archived log: RESETLOGS_CHANGE#.
    pub creation_change: u64,
    /// Datafile: checkpoint SCN of the backup. Archived log: FIRST_CHANGE#.
    pub checkpoint_change: u64,
    /// Datafile: checkpoint time. Archived log: FIRST_TIME. Unix seconds.
    pub checkpoint_time: i64,
    /// Datafile: absolute fuzzy SCN (highest block SCN seen). Archived log: NEXT_CHANGE#.
    pub next_change: u64,
    /// Archived log: NEXT_TIME (unix seconds). Datafile: 0.
    pub next_time: i64,
    /// Multi-section: first block of this piece's section (0 otherwise).
    pub section_first_block: u64,
    /// Multi-section: blocks in the section (0 = whole file).
    pub section_blocks: u64,
    /// Datafile: TS#. Archived log: RESETLOGS_ID.
    pub ts_number: u32,
}

impl PieceEntry {
    /// An entry with every optional field zero.
    pub fn new(kind: EntryKind, block_size: u32, file_blocks: u64) -> Self {
        Self {
            kind,
            block_size,
            file_number: 0,
            sequence: 0,
            file_blocks,
            creation_change: 0,
            checkpoint_change: 0,
            checkpoint_time: 0,
            next_change: 0,
            next_time: 0,
            section_first_block: 0,
            section_blocks: 0,
            ts_number: 0,
        }
    }
}

/// The header: set identity and the files the set carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceHeader {
    pub set_stamp: u32,
    pub set_count: u32,
    /// PIECE# (1..n; each section of a multi-section set is a piece).
    pub piece_number: u32,
    /// COPY# (duplexing), 1 when not duplexed.
    pub copy_number: u32,
    pub dbid: u64,
    pub db_name: String,
    pub backup_type: BackupType,
    /// INCREMENTAL_LEVEL (None for full and archivelog sets).
    pub incremental_level: Option<u8>,
    pub multi_section: bool,
    /// Level-1 set made FOR RECOVER OF COPY.
    pub for_recover_of_copy: bool,
    /// INCREMENTAL_CHANGE#: blocks with SCN above it are included (0 for full/level 0).
    pub incremental_change: u64,
    /// Time the piece was started (unix seconds).
    pub created: i64,
    pub tag: String,
    pub entries: Vec<PieceEntry>,
    /// AS COMPRESSED BACKUPSET: runs are stored as ZRUN records.
    pub compressed: bool,
    /// An encrypted piece: the data key's slots ([`crypt::WRAPS`] bytes).
    pub key_wraps: Option<Vec<u8>>,
}

impl PieceHeader {
    /// Header length in bytes for this many entries.
    pub fn encoded_len(entries: usize) -> usize {
        (FIXED_HEADER + ENTRY_SIZE * entries).div_ceil(HEADER_UNIT) * HEADER_UNIT
    }

    /// Encodes the header (checksum included).
    pub fn encode(&self) -> Result<Vec<u8>, PieceError> {
        if self.db_name.len() > 8 {
            return Err(PieceError::Invalid(format!(
                "database name {:?} is longer than 8 bytes",
                self.db_name
            )));
        }
        if self.tag.len() > TAG_MAX {
            return Err(PieceError::Invalid(format!(
                "tag {:?} is longer than {TAG_MAX} bytes",
                self.tag
            )));
        }
        if self.entries.is_empty() {
            return Err(PieceError::Invalid(
                "a backup set needs at least one file".into(),
            ));
        }
        let len = Self::encoded_len(self.entries.len());
        let mut b = vec![0u8; len];
        b[0..8].copy_from_slice(&MAGIC);
        put_u32(&mut b, 8, VERSION);
        put_u32(&mut b, 12, len as u32);
        put_u32(&mut b, 16, self.set_stamp);
        put_u32(&mut b, 20, self.set_count);
        put_u32(&mut b, 24, self.piece_number);
        put_u32(&mut b, 28, self.copy_number);
        put_u64(&mut b, 32, self.dbid);
        b[40..40 + self.db_name.len()].copy_from_slice(self.db_name.as_bytes());
        b[48] = self.backup_type.code();
        b[49] = self.incremental_level.unwrap_or(0xff);
        let flags = u16::from(self.multi_section)
            | (u16::from(self.for_recover_of_copy) << 1)
            | (u16::from(self.compressed) << 2)
            | (u16::from(self.key_wraps.is_some()) << 3);
        b[50..52].copy_from_slice(&flags.to_le_bytes());
        put_u32(&mut b, 52, self.entries.len() as u32);
        put_u64(&mut b, 56, self.incremental_change);
        put_u64(&mut b, 64, self.created as u64);
        b[72..72 + self.tag.len()].copy_from_slice(self.tag.as_bytes());
        if let Some(w) = &self.key_wraps {
            if w.len() != crypt::WRAPS {
                return Err(PieceError::Invalid(format!(
                    "{} bytes of key slots, {} expected",
                    w.len(),
                    crypt::WRAPS
                )));
            }
            b[KEY_WRAPS_AT..KEY_WRAPS_AT + crypt::WRAPS].copy_from_slice(w);
        }
        for (i, e) in self.entries.iter().enumerate() {
            let o = FIXED_HEADER + i * ENTRY_SIZE;
            b[o] = e.kind.code();
            put_u32(&mut b, o + 4, e.block_size);
            put_u32(&mut b, o + 8, e.file_number);
            put_u32(&mut b, o + 12, e.sequence);
            put_u64(&mut b, o + 16, e.file_blocks);
            put_u64(&mut b, o + 24, e.creation_change);
            put_u64(&mut b, o + 32, e.checkpoint_change);
            put_u64(&mut b, o + 40, e.checkpoint_time as u64);
            put_u64(&mut b, o + 48, e.next_change);
            put_u64(&mut b, o + 56, e.next_time as u64);
            put_u64(&mut b, o + 64, e.section_first_block);
            put_u64(&mut b, o + 72, e.section_blocks);
            put_u32(&mut b, o + 80, e.ts_number);
        }
        let crc = crc32c(&b);
        put_u32(&mut b, 248, crc);
        Ok(b)
    }

    /// Decodes and checks a header read from the start of a piece.
    pub fn decode(b: &[u8]) -> Result<Self, PieceError> {
        if b.len() < FIXED_HEADER || b[0..8] != MAGIC {
            return Err(PieceError::BadMagic);
        }
        let version = get_u32(b, 8);
        if version != VERSION {
            return Err(PieceError::Version(version));
        }
        let len = get_u32(b, 12) as usize;
        if len != b.len() {
            return Err(PieceError::Header(format!(
                "declares {len} bytes, {} given",
                b.len()
            )));
        }
        let mut check = b.to_vec();
        put_u32(&mut check, 248, 0);
        if crc32c(&check) != get_u32(b, 248) {
            return Err(PieceError::Header("checksum mismatch".into()));
        }
        let n = get_u32(b, 52) as usize;
        if n == 0 || Self::encoded_len(n) != len {
            return Err(PieceError::Header(format!(
                "{n} entries do not fit a {len}-byte header"
            )));
        }
        let text = |r: std::ops::Range<usize>| {
            let s = &b[r];
            let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
            String::from_utf8_lossy(&s[..end]).into_owned()
        };
        let backup_type = BackupType::from_code(b[48])
            .ok_or_else(|| PieceError::Header(format!("unknown backup type {:#x}", b[48])))?;
        let flags = u16::from_le_bytes([b[50], b[51]]);
        let mut entries = Vec::with_capacity(n);
        for i in 0..n {
            let o = FIXED_HEADER + i * ENTRY_SIZE;
            let kind = EntryKind::from_code(b[o])
                .ok_or_else(|| PieceError::Header(format!("entry {i}: unknown kind {}", b[o])))?;
            let block_size = get_u32(b, o + 4);
            if block_size == 0 || !block_size.is_multiple_of(512) {
                return Err(PieceError::Header(format!(
                    "entry {i}: block size {block_size} is not a multiple of 512"
                )));
            }
            entries.push(PieceEntry {
                kind,
                block_size,
                file_number: get_u32(b, o + 8),
                sequence: get_u32(b, o + 12),
                file_blocks: get_u64(b, o + 16),
                creation_change: get_u64(b, o + 24),
                checkpoint_change: get_u64(b, o + 32),
                checkpoint_time: get_u64(b, o + 40) as i64,
                next_change: get_u64(b, o + 48),
                next_time: get_u64(b, o + 56) as i64,
                section_first_block: get_u64(b, o + 64),
                section_blocks: get_u64(b, o + 72),
                ts_number: get_u32(b, o + 80),
            });
        }
        Ok(Self {
            set_stamp: get_u32(b, 16),
            set_count: get_u32(b, 20),
            piece_number: get_u32(b, 24),
            copy_number: get_u32(b, 28),
            dbid: get_u64(b, 32),
            db_name: text(40..48),
            backup_type,
            incremental_level: (b[49] != 0xff).then_some(b[49]),
            multi_section: flags & 1 != 0,
            for_recover_of_copy: flags & 2 != 0,
            compressed: flags & 4 != 0,
            key_wraps: (flags & 8 != 0)
                .then(|| b[KEY_WRAPS_AT..KEY_WRAPS_AT + crypt::WRAPS].to_vec()),
            incremental_change: get_u64(b, 56),
            created: get_u64(b, 64) as i64,
            tag: text(72..104),
            entries,
        })
    }
}

fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn get_u64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Summary written in the trailer and returned by [`PieceWriter::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceSummary {
    /// RUN records written.
    pub runs: u32,
    /// Blocks written over all RUN records.
    pub blocks: u64,
    /// Piece length up to the end of the trailer (before any padding).
    pub length: u64,
    /// This is the set's last piece (for multi-section sets: its last section).
    pub last: bool,
}

/// Streams a piece into a writer.
#[derive(Debug)]
pub struct PieceWriter<W: Write> {
    w: W,
    offset: u64,
    crc: Crc32c,
    entries: Vec<PieceEntry>,
    runs: u32,
    blocks: u64,
    compressed: bool,
    level: i32,
    key: Option<crypt::DataKey>,
    records: u64,
    /// A compressed run's frame, kept between runs so each run reuses its pages.
    zbuf: Vec<u8>,
}

const ZEROS: [u8; 8192] = [0u8; 8192];

impl<W: Write> PieceWriter<W> {
    /// Writes the header.
    pub fn new(mut w: W, header: &PieceHeader) -> Result<Self, PieceError> {
        let bytes = header.encode()?;
        w.write_all(&bytes)?;
        let mut crc = Crc32c::new();
        crc.update(&bytes);
        Ok(Self {
            w,
            offset: bytes.len() as u64,
            crc,
            entries: header.entries.clone(),
            runs: 0,
            blocks: 0,
            compressed: header.compressed,
            level: BASIC_LEVEL,
            key: None,
            records: 0,
            zbuf: Vec::new(),
        })
    }

    /// Encrypts every record with `key` (the header must carry its slots).
    pub fn set_key(&mut self, key: crypt::DataKey) {
        self.key = Some(key);
    }

    /// The zstd level of the runs of a compressed piece (CONFIGURE COMPRESSION ALGORITHM).
    pub fn set_level(&mut self, level: i32) {
        self.level = level;
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), PieceError> {
        self.w.write_all(bytes)?;
        self.crc.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, align: u64) -> Result<(), PieceError> {
        let mut pad = (align - self.offset % align) % align;
        while pad > 0 {
            let n = pad.min(ZEROS.len() as u64) as usize;
            self.put(&ZEROS[..n])?;
            pad -= n as u64;
        }
        Ok(())
    }

    fn record_header(magic: [u8; 4], entry: u32, a: u64, b: u32, c: u32, crc: u32) -> [u8; 512] {
        let mut h = [0u8; RECORD_HEADER];
        h[0..4].copy_from_slice(&magic);
        put_u32(&mut h, 4, entry);
        put_u64(&mut h, 8, a);
        put_u32(&mut h, 16, b);
        put_u32(&mut h, 20, c);
        put_u32(&mut h, 24, crc);
        let hc = crc32c(&h[..28]);
        put_u32(&mut h, 28, hc);
        h
    }

    /// Writes consecutive blocks `first_block..` of entry `entry`; `data` holds whole blocks.
    pub fn write_run(
        &mut self,
        entry: u32,
        first_block: u64,
        data: &[u8],
    ) -> Result<(), PieceError> {
        let e = self
            .entries
            .get(entry as usize)
            .ok_or_else(|| PieceError::Invalid(format!("no entry {entry} in this set")))?;
        if e.kind == EntryKind::ControlFile || e.kind == EntryKind::Spfile {
            return Err(PieceError::Invalid(format!(
                "entry {entry} is a {:?}; write it as a blob",
                e.kind
            )));
        }
        let bs = e.block_size as usize;
        if data.is_empty() || !data.len().is_multiple_of(bs) {
            return Err(PieceError::Invalid(format!(
                "run of {} bytes is not a whole number of {bs}-byte blocks",
                data.len()
            )));
        }
        let count = (data.len() / bs) as u64;
        if first_block + count > e.file_blocks {
            return Err(PieceError::Invalid(format!(
                "blocks {first_block}..{} lie beyond the file's {} blocks",
                first_block + count,
                e.file_blocks
            )));
        }
        let crc = crc32c(data);
        if let Some(key) = &self.key {
            let plain = if self.compressed {
                zstd::bulk::compress(data, self.level)?
            } else {
                data.to_vec()
            };
            let mut h =
                Self::record_header(ERUN_MAGIC, entry, first_block, count as u32, bs as u32, crc);
            let sealed = key.seal(self.records, &h[..24], &plain);
            put_u64(&mut h, 32, sealed.len() as u64);
            self.pad_to(RECORD_HEADER as u64)?;
            self.put(&h)?;
            self.put(&sealed)?;
        } else if self.compressed {
            let mut z = std::mem::take(&mut self.zbuf);
            z.clear();
            z.reserve(zstd::zstd_safe::compress_bound(data.len()));
            zstd::bulk::Compressor::new(self.level)?.compress_to_buffer(data, &mut z)?;
            let mut h =
                Self::record_header(ZRUN_MAGIC, entry, first_block, count as u32, bs as u32, crc);
            put_u64(&mut h, 32, z.len() as u64);
            self.pad_to(RECORD_HEADER as u64)?;
            self.put(&h)?;
            let res = self.put(&z);
            self.zbuf = z;
            res?;
        } else {
            let h =
                Self::record_header(RUN_MAGIC, entry, first_block, count as u32, bs as u32, crc);
            self.pad_to(RECORD_HEADER as u64)?;
            self.put(&h)?;
            self.pad_to(bs as u64)?;
            // The stream checksum takes the run's from the record's: one pass over the data.
            self.w.write_all(data)?;
            self.crc.append_crc(crc, data.len());
            self.offset += data.len() as u64;
        }
        self.runs += 1;
        self.blocks += count;
        self.records += 1;
        Ok(())
    }

    /// Writes the bytes of a blob entry (control file snapshot, spfile).
    pub fn write_blob(&mut self, entry: u32, data: &[u8]) -> Result<(), PieceError> {
        if self.entries.get(entry as usize).is_none() {
            return Err(PieceError::Invalid(format!("no entry {entry} in this set")));
        }
        if let Some(key) = &self.key {
            let mut h =
                Self::record_header(EBLOB_MAGIC, entry, data.len() as u64, 0, 0, crc32c(data));
            let sealed = key.seal(self.records, &h[..24], data);
            put_u64(&mut h, 32, sealed.len() as u64);
            self.pad_to(RECORD_HEADER as u64)?;
            self.put(&h)?;
            self.put(&sealed)?;
        } else {
            let h = Self::record_header(BLOB_MAGIC, entry, data.len() as u64, 0, 0, crc32c(data));
            self.pad_to(RECORD_HEADER as u64)?;
            self.put(&h)?;
            self.put(data)?;
        }
        self.records += 1;
        Ok(())
    }

    /// Gives the writer back without a trailer (the piece is being aborted).
    pub fn into_inner(self) -> W {
        self.w
    }

    /// Writes the trailer and returns the writer and what was written; `last` marks the set's
    /// final piece.
    pub fn finish(mut self, last: bool) -> Result<(W, PieceSummary), PieceError> {
        self.pad_to(RECORD_HEADER as u64)?;
        let stream_crc = self.crc.finish();
        let length = self.offset + RECORD_HEADER as u64;
        let mut t = [0u8; RECORD_HEADER];
        t[0..4].copy_from_slice(&END_MAGIC);
        put_u32(&mut t, 4, self.runs);
        put_u64(&mut t, 8, self.blocks);
        put_u64(&mut t, 16, length);
        put_u32(&mut t, 24, stream_crc);
        put_u32(&mut t, 32, u32::from(last));
        let tc = crc32c(&t[..28]);
        put_u32(&mut t, 28, tc);
        self.w.write_all(&t)?;
        self.w.flush()?;
        Ok((
            self.w,
            PieceSummary {
                runs: self.runs,
                blocks: self.blocks,
                length,
                last,
            },
        ))
    }
}

/// One record read back; its payload is in the buffer given to [`PieceReader::next_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// `block_count` blocks of entry `entry` starting at `first_block`.
    Run {
        entry: u32,
        first_block: u64,
        block_count: u32,
        block_size: u32,
    },
    /// The bytes of a blob entry.
    Blob { entry: u32 },
}

/// Reads a piece front to back in one pass (as a restore reads a tape).
#[derive(Debug)]
pub struct PieceReader<R: Read> {
    r: R,
    offset: u64,
    crc: Crc32c,
    header: PieceHeader,
    summary: Option<PieceSummary>,
    runs: u32,
    blocks: u64,
    key: Option<crypt::DataKey>,
    records: u64,
    skip_sealed: bool,
    /// A compressed run's frame, kept between records so each reuses its pages.
    zbuf: Vec<u8>,
}

impl<R: Read> PieceReader<R> {
    /// Reads and checks the header.
    pub fn open(mut r: R) -> Result<Self, PieceError> {
        let mut first = vec![0u8; HEADER_UNIT];
        read_exact_or(&mut r, &mut first, 0)?;
        if first[0..8] != MAGIC {
            return Err(PieceError::BadMagic);
        }
        let len = get_u32(&first, 12) as usize;
        if len < HEADER_UNIT || !len.is_multiple_of(HEADER_UNIT) || len > 64 * HEADER_UNIT {
            return Err(PieceError::Header(format!(
                "implausible header length {len}"
            )));
        }
        first.resize(len, 0);
        read_exact_or(&mut r, &mut first[HEADER_UNIT..], HEADER_UNIT as u64)?;
        let header = PieceHeader::decode(&first)?;
        let mut crc = Crc32c::new();
        crc.update(&first);
        Ok(Self {
            r,
            offset: len as u64,
            crc,
            header,
            summary: None,
            runs: 0,
            blocks: 0,
            key: None,
            records: 0,
            skip_sealed: false,
            zbuf: Vec::new(),
        })
    }

    /// Without a key, passes over an encrypted piece's records (their payloads come back
    /// empty) instead of failing: enough to reach the trailer, as CATALOG needs.
    pub fn skip_sealed(&mut self) {
        self.skip_sealed = true;
    }

    /// The key that decrypts an encrypted piece's records.
    pub fn set_key(&mut self, key: crypt::DataKey) {
        self.key = Some(key);
    }

    /// The piece header.
    pub fn header(&self) -> &PieceHeader {
        &self.header
    }

    /// Gives the underlying reader back (to finish reading or close it).
    pub fn into_inner(self) -> R {
        self.r
    }

    /// The trailer's summary, once [`next_record`](Self::next_record) returned `None`.
    pub fn summary(&self) -> Option<PieceSummary> {
        self.summary
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<(), PieceError> {
        read_exact_or(&mut self.r, buf, self.offset)?;
        self.crc.update(buf);
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Reads a payload whose checksum is `crc32c(buf)`, returned; the stream checksum takes
    /// it from there, so the payload is read once.
    fn take_payload(&mut self, buf: &mut [u8]) -> Result<u32, PieceError> {
        read_exact_or(&mut self.r, buf, self.offset)?;
        let crc = crc32c(buf);
        self.crc.append_crc(crc, buf.len());
        self.offset += buf.len() as u64;
        Ok(crc)
    }

    fn skip_to(&mut self, align: u64) -> Result<(), PieceError> {
        let mut pad = (align - self.offset % align) % align;
        let mut z = [0u8; 8192];
        while pad > 0 {
            let n = pad.min(z.len() as u64) as usize;
            self.take(&mut z[..n])?;
            if z[..n].iter().any(|&b| b != 0) {
                return Err(self.corrupt("non-zero padding"));
            }
            pad -= n as u64;
        }
        Ok(())
    }

    fn corrupt(&self, reason: &str) -> PieceError {
        PieceError::Corrupt {
            offset: self.offset,
            reason: reason.to_string(),
        }
    }

    /// Reads the next record into `buf`; `None` once the trailer was read and checked.
    pub fn next_record(&mut self, buf: &mut Vec<u8>) -> Result<Option<Record>, PieceError> {
        if self.summary.is_some() {
            return Ok(None);
        }
        self.skip_to(RECORD_HEADER as u64)?;
        let crc_before = self.crc;
        let mut h = [0u8; RECORD_HEADER];
        read_exact_or(&mut self.r, &mut h, self.offset)?;
        if crc32c(&h[..28]) != get_u32(&h, 28) {
            return Err(self.corrupt("record header checksum mismatch"));
        }
        let magic: [u8; 4] = h[0..4].try_into().expect("4 bytes");
        if magic == END_MAGIC {
            let runs = get_u32(&h, 4);
            let blocks = get_u64(&h, 8);
            let length = get_u64(&h, 16);
            if crc_before.finish() != get_u32(&h, 24) {
                return Err(self.corrupt("piece checksum mismatch"));
            }
            if length != self.offset + RECORD_HEADER as u64
                || runs != self.runs
                || blocks != self.blocks
            {
                return Err(self.corrupt("trailer does not match the records read"));
            }
            self.offset += RECORD_HEADER as u64;
            self.summary = Some(PieceSummary {
                runs,
                blocks,
                length,
                last: get_u32(&h, 32) & 1 != 0,
            });
            return Ok(None);
        }
        self.crc.update(&h);
        self.offset += RECORD_HEADER as u64;
        let entry = get_u32(&h, 4);
        let e = self
            .header
            .entries
            .get(entry as usize)
            .cloned()
            .ok_or_else(|| self.corrupt("record names an entry the header lacks"))?;
        let payload_crc = get_u32(&h, 24);
        let (record, crc) = match magic {
            RUN_MAGIC => {
                let first_block = get_u64(&h, 8);
                let block_count = get_u32(&h, 16);
                let block_size = get_u32(&h, 20);
                if block_size != e.block_size
                    || block_count == 0
                    || first_block + u64::from(block_count) > e.file_blocks
                {
                    return Err(self.corrupt("run does not fit its file"));
                }
                self.skip_to(u64::from(block_size))?;
                buf.resize(block_count as usize * block_size as usize, 0);
                let crc = self.take_payload(buf)?;
                self.runs += 1;
                self.blocks += u64::from(block_count);
                let run = Record::Run {
                    entry,
                    first_block,
                    block_count,
                    block_size,
                };
                (run, crc)
            }
            ZRUN_MAGIC => {
                let first_block = get_u64(&h, 8);
                let block_count = get_u32(&h, 16);
                let block_size = get_u32(&h, 20);
                let zlen = get_u64(&h, 32);
                let want = block_count as usize * block_size as usize;
                if !self.header.compressed
                    || block_size != e.block_size
                    || block_count == 0
                    || first_block + u64::from(block_count) > e.file_blocks
                    || zlen == 0
                    || zlen > want as u64 + want as u64 / 64 + 4096
                {
                    return Err(self.corrupt("compressed run does not fit its file"));
                }
                let mut z = std::mem::take(&mut self.zbuf);
                z.resize(zlen as usize, 0);
                let taken = self.take(&mut z);
                buf.clear();
                buf.reserve(want);
                let unpacked = taken.map(|()| {
                    zstd::bulk::Decompressor::new()
                        .and_then(|mut d| d.decompress_to_buffer(&z, buf))
                });
                self.zbuf = z;
                if unpacked?.is_err() {
                    return Err(self.corrupt("compressed run does not decompress"));
                }
                if buf.len() != want {
                    return Err(self.corrupt("compressed run has the wrong length"));
                }
                self.runs += 1;
                self.blocks += u64::from(block_count);
                let run = Record::Run {
                    entry,
                    first_block,
                    block_count,
                    block_size,
                };
                (run, crc32c(buf))
            }
            ERUN_MAGIC | EBLOB_MAGIC => {
                let sealed_len = get_u64(&h, 32);
                let blob = magic == EBLOB_MAGIC;
                let (first_block, block_count, block_size) =
                    (get_u64(&h, 8), get_u32(&h, 16), get_u32(&h, 20));
                let want = if blob {
                    first_block
                } else {
                    u64::from(block_count) * u64::from(block_size)
                };
                let fits = if blob {
                    first_block == e.file_blocks
                } else {
                    block_size == e.block_size
                        && block_count > 0
                        && first_block + u64::from(block_count) <= e.file_blocks
                };
                if self.header.key_wraps.is_none()
                    || !fits
                    || sealed_len < 16
                    || sealed_len > want + want / 64 + 4096 + 16
                {
                    return Err(self.corrupt("encrypted record does not fit its file"));
                }
                let mut sealed = vec![0u8; sealed_len as usize];
                self.take(&mut sealed)?;
                if self.key.is_none() && self.skip_sealed {
                    // Only the trailer's checks: the payload stays sealed and empty.
                    buf.clear();
                    self.records += 1;
                    return Ok(Some(if blob {
                        Record::Blob { entry }
                    } else {
                        self.runs += 1;
                        self.blocks += u64::from(block_count);
                        Record::Run {
                            entry,
                            first_block,
                            block_count,
                            block_size,
                        }
                    }));
                }
                let key = self.key.as_ref().ok_or(PieceError::Decrypt)?;
                let plain = key
                    .open(self.records, &h[..24], sealed)
                    .ok_or(PieceError::Decrypt)?;
                *buf = if self.header.compressed && !blob {
                    zstd::bulk::decompress(&plain, want as usize)
                        .map_err(|_| self.corrupt("compressed run does not decompress"))?
                } else {
                    plain
                };
                if buf.len() as u64 != want {
                    return Err(self.corrupt("encrypted record has the wrong length"));
                }
                let record = if blob {
                    Record::Blob { entry }
                } else {
                    self.runs += 1;
                    self.blocks += u64::from(block_count);
                    Record::Run {
                        entry,
                        first_block,
                        block_count,
                        block_size,
                    }
                };
                (record, crc32c(buf))
            }
            BLOB_MAGIC => {
                let len = get_u64(&h, 8);
                if len != e.file_blocks {
                    return Err(self.corrupt("blob length differs from its entry"));
                }
                buf.resize(len as usize, 0);
                let crc = self.take_payload(buf)?;
                (Record::Blob { entry }, crc)
            }
            _ => return Err(self.corrupt("unknown record type")),
        };
        if crc != payload_crc {
            return Err(self.corrupt("record payload checksum mismatch"));
        }
        self.records += 1;
        Ok(Some(record))
    }
}

fn read_exact_or<R: Read>(r: &mut R, buf: &mut [u8], offset: u64) -> Result<(), PieceError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            PieceError::Truncated(offset)
        } else {
            PieceError::Io(e)
        }
    })
}

/// Reads only the header of a piece (CATALOG, crosscheck of disk pieces).
pub fn read_header<R: Read>(r: R) -> Result<PieceHeader, PieceError> {
    Ok(PieceReader::open(r)?.header)
}

/// Writes another copy (BACKUP COPIES) of the piece `r` holds, `len` bytes up to the end of
/// its trailer, into `w`: the same records under a header naming `copy_number`, and the
/// trailer's stream checksum redone for that header. Returns the bytes written.
pub fn recopy<R: Read, W: Write>(
    mut r: R,
    len: u64,
    mut w: W,
    copy_number: u32,
) -> Result<u64, PieceError> {
    let mut first = vec![0u8; HEADER_UNIT];
    read_exact_or(&mut r, &mut first, 0)?;
    let hlen = get_u32(&first, 12) as usize;
    if first[0..8] != MAGIC || !(HEADER_UNIT..=64 * HEADER_UNIT).contains(&hlen) {
        return Err(PieceError::BadMagic);
    }
    first.resize(hlen, 0);
    read_exact_or(&mut r, &mut first[HEADER_UNIT..], HEADER_UNIT as u64)?;
    let mut header = PieceHeader::decode(&first)?;
    header.copy_number = copy_number;
    let bytes = header.encode()?;
    let body = len
        .checked_sub(hlen as u64 + RECORD_HEADER as u64)
        .ok_or(PieceError::Truncated(len))?;
    let mut crc = Crc32c::new();
    crc.update(&bytes);
    w.write_all(&bytes)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = body;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        read_exact_or(&mut r, &mut buf[..n], len - left)?;
        crc.update(&buf[..n]);
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    let mut t = [0u8; RECORD_HEADER];
    read_exact_or(&mut r, &mut t, len - RECORD_HEADER as u64)?;
    if t[0..4] != END_MAGIC {
        return Err(PieceError::Truncated(len));
    }
    put_u32(&mut t, 24, crc.finish());
    let tc = crc32c(&t[..28]);
    put_u32(&mut t, 28, tc);
    w.write_all(&t)?;
    w.flush()?;
    Ok(len)
}

/// Length of `len` bytes padded up to a multiple of `unit` (how SBT and disk pieces end).
pub fn padded_len(len: u64, unit: u64) -> u64 {
    len.div_ceil(unit) * unit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(entries: Vec<PieceEntry>) -> PieceHeader {
        PieceHeader {
            set_stamp: 1_200_000_000,
            set_count: 7,
            piece_number: 1,
            copy_number: 1,
            dbid: 1_234_567_890,
            db_name: "ORCL".into(),
            backup_type: BackupType::Full,
            incremental_level: None,
            multi_section: false,
            for_recover_of_copy: false,
            incremental_change: 0,
            created: 1_790_000_000,
            tag: "TAG20261122T100000".into(),
            entries,
            compressed: false,
            key_wraps: None,
        }
    }

    #[test]
    fn a_compressed_piece_is_smaller_and_reads_back_the_same_blocks() {
        let df = PieceEntry::new(EntryKind::Datafile, 8192, 16);
        let mut h = header(vec![df]);
        let data: Vec<u8> = (0..8192 * 16).map(|i| (i % 251) as u8 & 0x0f).collect();
        let mut plain = PieceWriter::new(Vec::new(), &h).unwrap();
        plain.write_run(0, 0, &data).unwrap();
        let (plain, _) = plain.finish(true).unwrap();
        h.compressed = true;
        let mut w = PieceWriter::new(Vec::new(), &h).unwrap();
        w.write_run(0, 0, &data[..8192 * 10]).unwrap();
        w.write_run(0, 10, &data[8192 * 10..]).unwrap();
        let (bytes, sum) = w.finish(true).unwrap();
        assert_eq!(sum.blocks, 16);
        assert!(
            bytes.len() * 4 < plain.len(),
            "{} {}",
            bytes.len(),
            plain.len()
        );
        let mut r = PieceReader::open(&bytes[..]).unwrap();
        assert!(r.header().compressed);
        let mut got = Vec::new();
        let mut buf = Vec::new();
        while let Some(rec) = r.next_record(&mut buf).unwrap() {
            assert!(matches!(rec, Record::Run { entry: 0, .. }));
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, data);
        // One flipped byte of the compressed data is found.
        let mut bad = bytes.clone();
        bad[8192 + 512 + 10] ^= 0x40;
        let mut r = PieceReader::open(&bad[..]).unwrap();
        let mut err = None;
        loop {
            match r.next_record(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert!(matches!(err, Some(PieceError::Corrupt { .. })), "{err:?}");
    }

    /// Every record of a piece: its blocks or bytes, or the error that stopped the reading.
    fn read_all(bytes: &[u8], key: Option<crypt::DataKey>) -> Result<Vec<u8>, PieceError> {
        let mut r = PieceReader::open(bytes)?;
        if let Some(k) = key {
            r.set_key(k);
        }
        let mut got = Vec::new();
        let mut buf = Vec::new();
        while r.next_record(&mut buf)?.is_some() {
            got.extend_from_slice(&buf);
        }
        Ok(got)
    }

    #[test]
    fn an_encrypted_piece_reads_back_only_with_its_key_and_hides_its_blocks() {
        let df = PieceEntry::new(EntryKind::Datafile, 8192, 4);
        let cf = PieceEntry::new(EntryKind::ControlFile, 512, 100);
        let mut h = header(vec![df, cf]);
        h.compressed = true;
        let (key, wraps) = crypt::new_key(crypt::Secrets {
            password: Some("pw"),
            wallet: None,
        })
        .unwrap();
        h.key_wraps = Some(wraps.clone());
        let data: Vec<u8> = (0..8192 * 4).map(|i| (i % 7) as u8 + 1).collect();
        let mut w = PieceWriter::new(Vec::new(), &h).unwrap();
        w.set_key(key);
        w.write_run(0, 0, &data).unwrap();
        w.write_blob(1, &[9u8; 100]).unwrap();
        let (bytes, _) = w.finish(true).unwrap();
        assert!(!bytes.windows(64).any(|x| x == &data[..64]));
        let opens = || crypt::open_key(&wraps, &["pw".into()], None);
        let mut want = data.clone();
        want.extend_from_slice(&[9u8; 100]);
        assert_eq!(read_all(&bytes, opens()).unwrap(), want);
        assert!(matches!(read_all(&bytes, None), Err(PieceError::Decrypt)));
        let mut r = PieceReader::open(&bytes[..]).unwrap();
        r.skip_sealed();
        let mut buf = Vec::new();
        while r.next_record(&mut buf).unwrap().is_some() {
            assert!(buf.is_empty());
        }
        assert_eq!(r.summary().map(|s| (s.blocks, s.last)), Some((4, true)));
        // The header says encrypted; a changed ciphertext byte does not open.
        assert_eq!(
            PieceReader::open(&bytes[..]).unwrap().header().key_wraps,
            Some(wraps.clone())
        );
        let mut bad = bytes.clone();
        bad[8192 + 512 + 40] ^= 1;
        assert!(matches!(read_all(&bad, opens()), Err(PieceError::Decrypt)));

        // Another copy: the same records under COPY# 2, and it checks out.
        let mut copy = Vec::new();
        recopy(&bytes[..], bytes.len() as u64, &mut copy, 2).unwrap();
        assert_eq!(copy.len(), bytes.len());
        assert_eq!(
            PieceReader::open(&copy[..]).unwrap().header().copy_number,
            2
        );
        assert_eq!(read_all(&copy, opens()).unwrap(), want);
        assert_eq!(
            copy[HEADER_UNIT..copy.len() - RECORD_HEADER],
            bytes[HEADER_UNIT..bytes.len() - RECORD_HEADER]
        );
    }

    /// The bytes of a plain piece (a datafile of 2 KiB and 8 KiB runs, an archived log of
    /// 512-byte blocks, a blob) summed up, as the simulator wrote them before its writer was
    /// made faster: a change in the layout or in a checksum's value shows here.
    #[test]
    fn a_plain_piece_is_byte_for_byte_what_it_was() {
        let mut df = PieceEntry::new(EntryKind::Datafile, 8192, 400);
        df.file_number = 4;
        let mut log = PieceEntry::new(EntryKind::ArchivedLog, 512, 3000);
        log.sequence = 9;
        let cf = PieceEntry::new(EntryKind::ControlFile, 512, 5000);
        let mut w = PieceWriter::new(Vec::new(), &header(vec![df, log, cf])).unwrap();
        let fill = |n: usize, seed: u32| -> Vec<u8> {
            (0..n as u32)
                .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8)
                .collect()
        };
        w.write_run(0, 2, &fill(8192 * 128, 1)).unwrap();
        w.write_run(1, 0, &fill(512 * 3000, 2)).unwrap();
        w.write_run(0, 300, &fill(8192 * 7, 3)).unwrap();
        w.write_blob(2, &fill(5000, 4)).unwrap();
        let (bytes, sum) = w.finish(true).unwrap();
        assert_eq!(
            (sum.runs, sum.blocks, sum.length),
            (3, 3135, bytes.len() as u64)
        );
        assert_eq!((bytes.len(), crc32c(&bytes)), (2_668_544, 1_995_941_566));
    }

    #[test]
    fn blocks_land_on_block_size_multiples() {
        let mut df = PieceEntry::new(EntryKind::Datafile, 8192, 10);
        df.file_number = 1;
        let mut log = PieceEntry::new(EntryKind::ArchivedLog, 512, 20);
        log.sequence = 5;
        let h = header(vec![df, log]);
        let mut w = PieceWriter::new(Vec::new(), &h).unwrap();
        w.write_run(0, 2, &[0xAB; 8192 * 3]).unwrap();
        w.write_run(1, 0, &[0xCD; 512 * 4]).unwrap();
        w.write_run(0, 7, &[0xEF; 8192]).unwrap();
        let (bytes, sum) = w.finish(true).unwrap();
        assert_eq!(sum.length, bytes.len() as u64);
        assert_eq!(sum.blocks, 8);
        // Header 8192, run header 512 + pad to 16384: first datafile block at 16384.
        assert_eq!(&bytes[16384..16384 + 8192], &[0xAB; 8192][..]);
        let pos = bytes.windows(512).position(|w| w == [0xCD; 512]).unwrap();
        assert_eq!(pos % 512, 0);
        let pos = bytes.windows(8192).position(|w| w == [0xEF; 8192]).unwrap();
        assert_eq!(pos % 8192, 0);

        let mut r = PieceReader::open(&bytes[..]).unwrap();
        assert_eq!(r.header(), &h);
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        while let Some(rec) = r.next_record(&mut buf).unwrap() {
            seen.push((rec, buf[0]));
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[0].0,
            Record::Run {
                entry: 0,
                first_block: 2,
                block_count: 3,
                block_size: 8192
            }
        );
        assert_eq!(r.summary().unwrap().runs, 3);
    }

    #[test]
    fn truncation_and_corruption_are_detected() {
        let h = header(vec![PieceEntry::new(EntryKind::Datafile, 8192, 4)]);
        let mut w = PieceWriter::new(Vec::new(), &h).unwrap();
        w.write_run(0, 0, &[1u8; 8192 * 4]).unwrap();
        let (bytes, _) = w.finish(true).unwrap();
        let drain = |b: &[u8]| -> Result<(), PieceError> {
            let mut r = PieceReader::open(b)?;
            let mut buf = Vec::new();
            while r.next_record(&mut buf)?.is_some() {}
            Ok(())
        };
        assert!(drain(&bytes).is_ok());
        assert!(matches!(
            drain(&bytes[..bytes.len() - 512]),
            Err(PieceError::Truncated(_))
        ));
        let mut bad = bytes.clone();
        bad[20000] ^= 1;
        assert!(matches!(drain(&bad), Err(PieceError::Corrupt { .. })));
        let mut bad = bytes.clone();
        bad[300] ^= 1;
        assert!(matches!(drain(&bad), Err(PieceError::Header(_))));
        assert!(matches!(drain(&[0u8; 9000]), Err(PieceError::BadMagic)));
    }

    #[test]
    fn padding_after_the_trailer_is_ignored() {
        let h = header(vec![PieceEntry::new(EntryKind::Spfile, 512, 5)]);
        let mut w = PieceWriter::new(Vec::new(), &h).unwrap();
        w.write_blob(0, b"hello").unwrap();
        let (mut bytes, sum) = w.finish(true).unwrap();
        bytes.resize(padded_len(sum.length, 262_144) as usize, 0);
        let mut r = PieceReader::open(&bytes[..]).unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            r.next_record(&mut buf).unwrap(),
            Some(Record::Blob { entry: 0 })
        );
        assert_eq!(buf, b"hello");
        assert_eq!(r.next_record(&mut buf).unwrap(), None);
    }

    #[test]
    fn bad_writes_are_refused() {
        let h = header(vec![PieceEntry::new(EntryKind::Datafile, 8192, 4)]);
        let mut w = PieceWriter::new(Vec::new(), &h).unwrap();
        assert!(w.write_run(0, 0, &[0u8; 100]).is_err());
        assert!(w.write_run(0, 3, &[0u8; 16384]).is_err());
        assert!(w.write_run(1, 0, &[0u8; 8192]).is_err());
        let mut long = header(vec![PieceEntry::new(EntryKind::Datafile, 8192, 4)]);
        long.tag = "X".repeat(33);
        assert!(long.encode().is_err());
    }
}
