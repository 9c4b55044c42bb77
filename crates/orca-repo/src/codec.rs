//! The chunk codec: zstd, then AEAD with the chunk id bound as associated data.
//!
//! Encoded payload layout (see docs/design.md):
//!
//! ```text
//! +-------+--------------------+------------+----------------------+----------+
//! | flags | base id (32, delta | nonce (12) | ciphertext (n bytes) | tag (16) |
//! |       | payloads only)     |            |                      |          |
//! +-------+--------------------+------------+----------------------+----------+
//! flags: bit 0 = zstd-compressed, bit 1 = delta, bits 4..7 = cipher
//!        (1 AES-256-GCM, 2 ChaCha20-Poly1305)
//! associated data = chunk id (32) || flags || base id (delta only)
//! ```
//! Binding the id means a payload moved under another id fails to decrypt,
//! and binding the flags and base means flipping either is caught too.
//!
//! A delta payload stores only the units (8 KiB, see [`crate::hash`]) that
//! differ from a base chunk of the same length or shorter (a chunk that grew
//! at its end: every unit not wholly inside the base is stored). Its plaintext, before
//! compression, is `u8:unit_shift u32:unit_count bitmap[ceil(unit_count/8)]
//! units...`: the unit is `1 << unit_shift` bytes and bit i set means unit i
//! follows, in order. A base is a full chunk or a delta itself, at most
//! [`crate::MAX_DELTA_DEPTH`] deltas above a full chunk (`chain.rs`).

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use orca_oracle::{LeReader, Truncated};
use serde::{Deserialize, Serialize};

use crate::aead::Aead;
use crate::error::{RepoError, Result};
use crate::hash::{MIN_UNIT, UNIT, UnitCv};
use crate::id::ChunkId;
use crate::keys::{Keys, random_array};
use crate::pool::BufferPool;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes an encoded payload adds around the (possibly compressed) data.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Delta body header: unit shift and unit count.
const DELTA_HEAD: usize = 5;
/// The lowest zstd level a delta's units are compressed at ([`Codec::delta_level`]).
const DELTA_MIN_LEVEL: i32 = 3;
/// Unit sizes a delta may declare: 2 KiB to 64 KiB (4 KiB before units followed
/// the block size).
const MIN_UNIT_SHIFT: u32 = 11;
const MAX_UNIT_SHIFT: u32 = 16;

const FLAG_ZSTD: u8 = 0x01;
const FLAG_DELTA: u8 = 0x02;
/// Flag bits no layout uses (yet): a payload with one set is of a newer format.
const FLAG_UNKNOWN: u8 = 0x0c;
/// Added to the cipher code of a payload that carries unit values ahead of its body. Builds
/// before ignored flag bits 2-3, so a flag would have let them read such a payload as
/// damaged; an unknown cipher code they refuse by name.
const VALUES_CODE: u8 = 2;
/// Bound into a values section's associated data, after the chunk id (and base), so that
/// a section can never pass for a body nor a body for a section.
const VALUES_DOMAIN: &[u8] = b"orca unit values";

/// The unit values (see [`crate::hash`]) a payload carries ahead of its body, so that the
/// next version of the chunk can find which units changed without a local copy of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnitValues {
    /// Every unit's value: a chunk stored whole.
    Every(Vec<UnitCv>),
    /// A version of `units` units whose values are its base's but for the `changed` ones
    /// (unit index, value): a delta.
    Changed {
        /// Units of this version (it may be longer or shorter than its base).
        units: u16,
        /// (unit index, value) of each unit the delta carries, in increasing order.
        changed: Vec<(u16, UnitCv)>,
    },
}

impl UnitValues {
    const EVERY: u8 = 0;
    const CHANGED: u8 = 1;

    /// `u8:kind` then, every unit: `u16:count UnitCv[count]`; changed units:
    /// `u16:units u16:count (u16:unit UnitCv)[count]`, units in increasing order.
    /// `None` past 65535 values (a chunk has at most 4096 units).
    fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            UnitValues::Every(cvs) => {
                out.push(Self::EVERY);
                out.extend_from_slice(&u16::try_from(cvs.len()).ok()?.to_le_bytes());
                cvs.iter().for_each(|cv| out.extend_from_slice(cv));
            }
            UnitValues::Changed { units, changed } => {
                out.push(Self::CHANGED);
                out.extend_from_slice(&units.to_le_bytes());
                out.extend_from_slice(&u16::try_from(changed.len()).ok()?.to_le_bytes());
                for (i, cv) in changed {
                    out.extend_from_slice(&i.to_le_bytes());
                    out.extend_from_slice(cv);
                }
            }
        }
        Some(out)
    }

    fn decode(bytes: &[u8]) -> Option<UnitValues> {
        let mut r = LeReader::new(bytes);
        let v = match r.u8().ok()? {
            Self::EVERY => {
                let n = r.u16().ok()?;
                UnitValues::Every((0..n).map(|_| r.array()).collect::<Result<_, _>>().ok()?)
            }
            Self::CHANGED => {
                let units = r.u16().ok()?;
                let n = r.u16().ok()?;
                let changed: Vec<(u16, UnitCv)> = (0..n)
                    .map(|_| Ok::<_, Truncated>((r.u16()?, r.array()?)))
                    .collect::<Result<_, _>>()
                    .ok()?;
                let ordered = changed.windows(2).all(|w| w[0].0 < w[1].0);
                let inside = changed.last().is_none_or(|(i, _)| *i < units);
                if !ordered || !inside {
                    return None;
                }
                UnitValues::Changed { units, changed }
            }
            _ => return None,
        };
        (r.remaining() == 0).then_some(v)
    }

    /// The values of this version, given its base's (`None` for a chunk stored whole). A
    /// version longer than its base must carry every unit past the base's.
    pub fn resolve(&self, base: Option<&[UnitCv]>) -> Option<Vec<UnitCv>> {
        match (self, base) {
            (UnitValues::Every(cvs), _) => Some(cvs.clone()),
            (UnitValues::Changed { .. }, None) => None,
            (UnitValues::Changed { units, changed }, Some(base)) => {
                let units = usize::from(*units);
                let mut cvs: Vec<Option<UnitCv>> =
                    (0..units).map(|i| base.get(i).copied()).collect();
                for (i, cv) in changed {
                    cvs[usize::from(*i)] = Some(*cv);
                }
                cvs.into_iter().collect()
            }
        }
    }
}

/// The AEAD a repository uses for chunk payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Cipher {
    /// Fastest where AES-NI exists (every x86-64 server of the last decade).
    #[default]
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// Constant-time in software; the choice on CPUs without AES instructions.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl Cipher {
    fn code(self) -> u8 {
        match self {
            Cipher::Aes256Gcm => 1,
            Cipher::ChaCha20Poly1305 => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Cipher::Aes256Gcm),
            2 => Some(Cipher::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// The cipher of a flags byte, and whether its payload carries unit values.
    fn of_flags(flags: u8) -> Option<(Self, bool)> {
        let code = flags >> 4;
        match code.checked_sub(VALUES_CODE).and_then(Cipher::from_code) {
            Some(c) => Some((c, true)),
            None => Cipher::from_code(code).map(|c| (c, false)),
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
        })
    }
}

impl std::str::FromStr for Cipher {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "aes-256-gcm" | "aes256gcm" | "aes" => Ok(Cipher::Aes256Gcm),
            "chacha20-poly1305" | "chacha20poly1305" | "chacha" => Ok(Cipher::ChaCha20Poly1305),
            other => Err(format!(
                "unknown cipher {other:?}: use aes-256-gcm or chacha20-poly1305"
            )),
        }
    }
}

/// Encodes and decodes chunk payloads for one repository. Cheap to clone
/// behind an `Arc`; safe to use from many threads.
pub struct Codec {
    keys: Keys,
    cipher: Cipher,
    level: i32,
    aead: Aead,
    /// Decoded chunks: a restore decodes and drops one 1 MiB buffer per chunk, and an
    /// allocator keeps such freed blocks for up to a second before returning them, so
    /// without reuse a channel's RSS nearly doubled on a restore of deltas.
    plain: Arc<BufferPool>,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Codec({}, zstd {})", self.cipher, self.level)
    }
}

thread_local! {
    // One for full chunks, one for deltas (another level): a thread switches between them.
    static COMPRESSOR: RefCell<[Option<(i32, zstd::bulk::Compressor<'static>)>; 2]> = const { RefCell::new([None, None]) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    /// A compressed body, decrypted here before it is decompressed.
    static BODY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Idle decoded-chunk buffers a codec keeps: about what a restore holds ahead of its reader.
const PLAIN_KEEP: usize = 8;

impl Codec {
    /// The codec of a repository: its keys, cipher and zstd level.
    pub fn new(keys: Keys, cipher: Cipher, level: i32) -> Self {
        let aead = Aead::new(cipher, keys.enc_key());
        Codec {
            keys,
            cipher,
            level,
            aead,
            plain: BufferPool::new(PLAIN_KEEP),
        }
    }

    /// Free the decoded-chunk buffers kept idle (a restore's), for a process turning to a backup.
    pub fn clear_idle(&self) {
        self.plain.clear_idle();
    }

    /// A decoded chunk from [`Codec::open`] or [`Codec::apply_delta`] as shared bytes whose
    /// buffer is reused once the last clone is dropped.
    pub fn plain_bytes(&self, plain: Vec<u8>) -> Bytes {
        self.plain.bytes(plain)
    }

    /// The same codec with other keys (a dedup group's, or more ids accepted).
    pub fn with_keys(&self, keys: Keys) -> Codec {
        Codec::new(keys, self.cipher, self.level)
    }

    /// The repository keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The id of a chunk with this plaintext.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        self.keys.chunk_id(plaintext)
    }

    /// Compress (when it pays) and encrypt one chunk.
    pub fn encode(&self, id: &ChunkId, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.seal(Vec::new(), id, plaintext, None, None)
    }

    /// [`Codec::encode`] into `out` (a reused buffer; its contents are replaced).
    pub fn encode_in(&self, out: Vec<u8>, id: &ChunkId, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.seal(out, id, plaintext, None, None)
    }

    /// [`Codec::encode_in`] with the chunk's unit values ahead of its body (`None`: not
    /// known, an empty section).
    pub fn encode_with_values_in(
        &self,
        out: Vec<u8>,
        id: &ChunkId,
        plaintext: &[u8],
        values: Option<&UnitValues>,
    ) -> Result<Vec<u8>> {
        self.seal(out, id, plaintext, None, values)
    }

    /// The largest payload a plaintext of `len` bytes can encode to, its unit values included
    /// (at most 26 bytes a unit, a delta's with their index).
    pub fn max_payload(len: usize) -> usize {
        let values = 4 + NONCE_LEN + 5 + len.div_ceil(MIN_UNIT) * 26 + TAG_LEN;
        1 + 32 + values + NONCE_LEN + zstd::zstd_safe::compress_bound(len).max(len) + TAG_LEN
    }

    /// Encode `plaintext` as the units (indexes `changed`, [`UNIT`] bytes
    /// each) that differ from the chunk `base`, of the same length or shorter:
    /// `changed` must then name every unit not wholly inside the base.
    pub fn encode_delta(
        &self,
        id: &ChunkId,
        plaintext: &[u8],
        base: &ChunkId,
        changed: &[usize],
    ) -> Result<Vec<u8>> {
        self.encode_delta_in(Vec::new(), id, plaintext, base, changed)
    }

    /// [`Codec::encode_delta`] into `out` (a reused buffer; its contents are replaced).
    pub fn encode_delta_in(
        &self,
        out: Vec<u8>,
        id: &ChunkId,
        plaintext: &[u8],
        base: &ChunkId,
        changed: &[usize],
    ) -> Result<Vec<u8>> {
        self.encode_delta_with_values_in(out, id, plaintext, UNIT, base, changed, None)
    }

    /// [`Codec::encode_delta_in`] in units of `unit` bytes (a power of two from
    /// [`MIN_UNIT`] to 64 KiB), with the values of the units the delta carries ahead of its
    /// body (`None`: not known, an empty section).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_delta_with_values_in(
        &self,
        out: Vec<u8>,
        id: &ChunkId,
        plaintext: &[u8],
        unit: usize,
        base: &ChunkId,
        changed: &[usize],
        values: Option<&UnitValues>,
    ) -> Result<Vec<u8>> {
        let shift = unit.trailing_zeros();
        if !unit.is_power_of_two() || !(MIN_UNIT_SHIFT..=MAX_UNIT_SHIFT).contains(&shift) {
            return Err(RepoError::InvalidArgument(format!(
                "a delta in units of {unit} bytes: units are a power of two from 2 to 64 KiB"
            )));
        }
        let units = plaintext.len().div_ceil(unit);
        let mut body = Vec::with_capacity(DELTA_HEAD + units.div_ceil(8) + changed.len() * unit);
        // The shift is at most MAX_UNIT_SHIFT, checked above.
        #[allow(clippy::cast_possible_truncation)]
        body.push(shift as u8);
        let stated = u32::try_from(units).map_err(|_| {
            RepoError::InvalidArgument(format!(
                "a chunk of {} bytes is too large for a delta",
                plaintext.len()
            ))
        })?;
        body.extend_from_slice(&stated.to_le_bytes());
        let mut bitmap = vec![0u8; units.div_ceil(8)];
        for &i in changed {
            if i >= units {
                return Err(RepoError::InvalidArgument(format!(
                    "delta unit {i} is beyond the chunk's {units} units"
                )));
            }
            bitmap[i / 8] |= 1 << (i % 8);
        }
        body.extend_from_slice(&bitmap);
        for i in 0..units {
            if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                body.extend_from_slice(&plaintext[i * unit..((i + 1) * unit).min(plaintext.len())]);
            }
        }
        self.seal(out, id, &body, Some(base), values)
    }

    /// A delta's units are a few scattered blocks, a fraction of a full's bytes: a stronger
    /// level than the full chunks' costs little time and stores them ~4% smaller.
    fn delta_level(&self) -> i32 {
        self.level.max(DELTA_MIN_LEVEL)
    }

    fn seal(
        &self,
        mut out: Vec<u8>,
        id: &ChunkId,
        plaintext: &[u8],
        base: Option<&ChunkId>,
        values: Option<&UnitValues>,
    ) -> Result<Vec<u8>> {
        // Every payload this build writes has the section, empty for a chunk whose values
        // are not known (content-defined chunks), so that a repository's payloads are of
        // one layout.
        let none = UnitValues::Every(Vec::new());
        let section = self.seal_values(id, base, values.unwrap_or(&none))?;
        let at = 1 + if base.is_some() { 32 } else { 0 };
        let head = at + 4 + section.len() + NONCE_LEN;
        let bound = zstd::zstd_safe::compress_bound(plaintext.len());
        // Compress straight into the output after the header, without
        // zero-filling a megabyte per chunk first.
        out.clear();
        out.reserve(head + bound.max(plaintext.len()) + TAG_LEN);
        out.resize(head, 0);
        let mut cursor = std::io::Cursor::new(out);
        cursor.set_position(head as u64);
        let (which, level) = match base {
            Some(_) => (1, self.delta_level()),
            None => (0, self.level),
        };
        let compressed_len = COMPRESSOR.with(|cell| -> Result<usize> {
            let mut slots = cell.borrow_mut();
            let slot = &mut slots[which];
            if slot.as_ref().map(|(l, _)| *l) != Some(level) {
                let c = zstd::bulk::Compressor::new(level).map_err(|source| {
                    RepoError::Compression {
                        what: "compressor set-up",
                        source,
                    }
                })?;
                *slot = Some((level, c));
            }
            let (_, c) = slot.as_mut().expect("compressor initialised above");
            c.compress_to_buffer(plaintext, &mut cursor)
                .map_err(|source| RepoError::Compression {
                    what: "compression",
                    source,
                })
        })?;
        let mut out = cursor.into_inner();
        let (mut flags, body_len) = if compressed_len < plaintext.len() {
            (FLAG_ZSTD, compressed_len)
        } else {
            out.truncate(head);
            out.extend_from_slice(plaintext);
            (0, plaintext.len())
        };
        if let Some(b) = base {
            flags |= FLAG_DELTA;
            out[1..33].copy_from_slice(b.as_bytes());
        }
        let len = u32::try_from(section.len()).expect("at most 65535 values of 24 bytes");
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        out[at + 4..at + 4 + section.len()].copy_from_slice(&section);
        let flags = flags | ((self.cipher.code() + VALUES_CODE) << 4);
        out[0] = flags;
        let nonce: [u8; NONCE_LEN] = random_array()?;
        out[head - NONCE_LEN..head].copy_from_slice(&nonce);
        out.truncate(head + body_len);
        let aad = aad(id, flags, base);
        let body = &mut out[head..];
        let tag = self
            .aead
            .seal(nonce, &aad, body)
            .map_err(|_| RepoError::Crypto {
                what: "encrypting a chunk",
            })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// `nonce | ciphertext | tag` of `values`, bound to the chunk (and its base).
    fn seal_values(
        &self,
        id: &ChunkId,
        base: Option<&ChunkId>,
        values: &UnitValues,
    ) -> Result<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = random_array()?;
        let mut section = nonce.to_vec();
        section.extend_from_slice(&values.encode().ok_or_else(|| {
            RepoError::InvalidArgument("more unit values than a chunk has units".into())
        })?);
        let tag = self
            .aead
            .seal(nonce, &values_aad(id, base), &mut section[NONCE_LEN..])
            .map_err(|_| RepoError::Crypto {
                what: "encrypting unit values",
            })?;
        section.extend_from_slice(&tag);
        Ok(section)
    }

    /// How many bytes from a payload's start hold its unit values (header and section),
    /// from at least its first 37 bytes (no key needed); `None` when it carries none or
    /// the bytes are too few to tell.
    pub fn values_prefix_len(payload: &[u8]) -> Option<usize> {
        let mut r = LeReader::new(payload);
        let flags = r.u8().ok()?;
        if !Cipher::of_flags(flags)?.1 {
            return None;
        }
        let at = 1 + if flags & FLAG_DELTA != 0 { 32 } else { 0 };
        r.take(at - 1).ok()?;
        Some(at + 4 + r.u32().ok()? as usize)
    }

    /// The unit values a payload carries: `Ok(None)` for a payload written without them. Only
    /// [`Codec::values_prefix_len`] bytes of the payload are needed. A section moved from
    /// another chunk, damaged or tampered with fails.
    pub fn open_values(
        &self,
        id: &ChunkId,
        payload: &[u8],
        object: &str,
    ) -> Result<Option<UnitValues>> {
        let corrupt = |reason: &str| corrupt_chunk(id, object, reason);
        let mut r = LeReader::new(payload);
        let flags = r
            .u8()
            .map_err(|_| corrupt("payload shorter than its header"))?;
        match Cipher::of_flags(flags) {
            Some((cipher, values)) if cipher == self.cipher => {
                if !values {
                    return Ok(None);
                }
            }
            Some(_) => return Err(corrupt("payload cipher differs from the repository's")),
            None => return Err(corrupt("unknown cipher code")),
        }
        let base = if flags & FLAG_DELTA != 0 {
            Some(ChunkId(r.array().map_err(|_| {
                corrupt("delta payload shorter than its header")
            })?))
        } else {
            None
        };
        let section = r
            .u32()
            .ok()
            .and_then(|n| r.take(n as usize).ok())
            .filter(|s| s.len() >= NONCE_LEN + TAG_LEN)
            .ok_or_else(|| corrupt("unit values shorter than their header"))?;
        let nonce: [u8; NONCE_LEN] = section[..NONCE_LEN].try_into().expect("checked above");
        let mut sealed = section[NONCE_LEN..].to_vec();
        let n = self
            .aead
            .open(nonce, &values_aad(id, base.as_ref()), &mut sealed)
            .map_err(|_| corrupt("unit values failed authentication (damaged or tampered with)"))?;
        UnitValues::decode(&sealed[..n])
            .map(Some)
            .ok_or_else(|| corrupt("unit values malformed"))
    }

    /// The base a delta payload needs, read from its header (no key needed).
    pub fn payload_base(payload: &[u8]) -> Option<ChunkId> {
        let mut r = LeReader::new(payload);
        let flags = r.u8().ok()?;
        (flags & FLAG_DELTA != 0)
            .then(|| r.array().ok().map(ChunkId))
            .flatten()
    }

    /// Decrypt and decompress a payload. A full chunk is checked against
    /// `id` here; a delta comes back as its body, to be completed with
    /// [`Codec::apply_delta`] once the base is at hand.
    pub fn open(
        &self,
        id: &ChunkId,
        payload: &[u8],
        raw_len: usize,
        object: &str,
    ) -> Result<Opened> {
        self.open_len(id, payload, raw_len, true, object)
    }

    /// [`Codec::open`] of a delta's base, whose length nothing records: at most
    /// `max_len`, the length of the chunk built on it (lengths only grow along a
    /// chain). The fingerprint check covers the length.
    pub fn open_base(
        &self,
        id: &ChunkId,
        payload: &[u8],
        max_len: usize,
        object: &str,
    ) -> Result<Opened> {
        self.open_len(id, payload, max_len, false, object)
    }

    fn open_len(
        &self,
        id: &ChunkId,
        payload: &[u8],
        raw_len: usize,
        exact: bool,
        object: &str,
    ) -> Result<Opened> {
        let corrupt = |reason: &str| corrupt_chunk(id, object, reason);
        let short = |_: Truncated| corrupt("payload shorter than its header");
        let mut r = LeReader::new(payload);
        let flags = r.u8().map_err(short)?;
        if flags & FLAG_UNKNOWN != 0 {
            return Err(corrupt(
                "payload of a newer format: upgrade ORCA to read it",
            ));
        }
        let (cipher, values) =
            Cipher::of_flags(flags).ok_or_else(|| corrupt("unknown cipher code"))?;
        if cipher != self.cipher {
            return Err(corrupt("payload cipher differs from the repository's"));
        }
        let base = if flags & FLAG_DELTA != 0 {
            let base = r
                .array()
                .map_err(|_| corrupt("delta payload shorter than its header"))?;
            Some(ChunkId(base))
        } else {
            None
        };
        if values {
            // Every byte of a payload is authenticated on read, the values too (a few KiB).
            self.open_values(id, payload, object)?;
            r.u32()
                .ok()
                .and_then(|n| r.take(n as usize).ok())
                .ok_or_else(|| corrupt("unit values shorter than their header"))?;
        }
        let nonce: [u8; NONCE_LEN] = r.array().map_err(short)?;
        if r.remaining() < TAG_LEN {
            return Err(corrupt("payload shorter than its header"));
        }
        let aad = aad(id, flags, base.as_ref());
        let limit = match base {
            // The smallest unit a delta may use gives the largest bitmap.
            Some(_) => raw_len + DELTA_HEAD + raw_len.div_ceil(1 << MIN_UNIT_SHIFT).div_ceil(8),
            None => raw_len,
        };
        let rest = r.rest();
        let decrypt = |buf: &mut Vec<u8>| -> Result<usize> {
            buf.clear();
            buf.extend_from_slice(rest);
            self.aead
                .open(nonce, &aad, buf)
                .map_err(|_| corrupt("authentication failed (data damaged or tampered with)"))
        };
        // A full chunk's plaintext goes in a reused buffer; a delta's body is small.
        let output = |capacity: usize| {
            let mut v = match base {
                Some(_) => Vec::with_capacity(capacity),
                None => self.plain.take(capacity),
            };
            v.clear();
            v
        };
        let plain = if flags & FLAG_ZSTD != 0 {
            // The decrypted body is only read by the decompressor: a per-thread buffer.
            BODY.with(|body| -> Result<Vec<u8>> {
                let mut body = body.borrow_mut();
                let body_len = decrypt(&mut body)?;
                // A base's length is only bounded, by the largest chunk: the buffer takes the
                // size the frame states (the compressor always writes it), within the bound.
                let size = match zstd::zstd_safe::get_frame_content_size(&body[..body_len]) {
                    Ok(Some(n)) => usize::try_from(n)
                        .ok()
                        .filter(|&n| n <= limit)
                        .ok_or_else(|| corrupt("decompressed size beyond the chunk's bound"))?,
                    _ => limit,
                };
                let mut plain = output(size);
                DECOMPRESSOR.with(|cell| -> Result<()> {
                    let mut slot = cell.borrow_mut();
                    if slot.is_none() {
                        *slot = Some(zstd::bulk::Decompressor::new().map_err(|source| {
                            RepoError::Compression {
                                what: "decompressor set-up",
                                source,
                            }
                        })?);
                    }
                    let d = slot.as_mut().expect("decompressor initialised above");
                    d.decompress_to_buffer(&body[..body_len], &mut plain)
                        .map_err(|e| corrupt(&format!("decompression failed: {e}")))?;
                    Ok(())
                })?;
                Ok(plain)
            })?
        } else {
            let mut body = output(rest.len());
            let body_len = decrypt(&mut body)?;
            body.truncate(body_len);
            body
        };
        match base {
            Some(base) => Ok(Opened::Delta { base, body: plain }),
            None => {
                let len = if exact {
                    raw_len
                } else {
                    plain.len().min(raw_len)
                };
                self.check(id, &plain, len, object)?;
                Ok(Opened::Full(plain))
            }
        }
    }

    /// The length of the chunk a delta `body` rebuilds on a base of `base_len` bytes, for
    /// a chunk whose length nothing else records (a link of a chain): its last unit's
    /// length when that unit travels in the body, else the base's. `None` when the body is
    /// damaged; [`Codec::apply_delta`] checks the rest.
    pub fn delta_len(body: &[u8], base_len: usize) -> Option<usize> {
        let mut r = LeReader::new(body);
        let shift = u32::from(r.u8().ok()?);
        if !(MIN_UNIT_SHIFT..=MAX_UNIT_SHIFT).contains(&shift) {
            return None;
        }
        let unit = 1usize << shift;
        let units = usize::try_from(r.u32().ok()?).ok().filter(|&n| n > 0)?;
        let bitmap = r.take(units.div_ceil(8)).ok()?;
        let set = |i: usize| bitmap[i / 8] & (1 << (i % 8)) != 0;
        let last = units - 1;
        if !set(last) {
            return Some(base_len);
        }
        let before = (0..last).filter(|&i| set(i)).count();
        let last_len = r.remaining().checked_sub(before * unit)?;
        (1..=unit)
            .contains(&last_len)
            .then_some(last * unit + last_len)
    }

    /// Rebuild a delta chunk from its base's plaintext and check it.
    pub fn apply_delta(
        &self,
        id: &ChunkId,
        base: &[u8],
        body: &[u8],
        raw_len: usize,
        object: &str,
    ) -> Result<Vec<u8>> {
        let corrupt = |reason: &str| corrupt_chunk(id, object, reason);
        let damaged = |_: Truncated| corrupt("delta header damaged");
        let mut r = LeReader::new(body);
        let shift = r.u8().map(u32::from).map_err(damaged)?;
        if !(MIN_UNIT_SHIFT..=MAX_UNIT_SHIFT).contains(&shift) {
            return Err(corrupt("delta header damaged (unit size)"));
        }
        let unit = 1usize << shift;
        let units = raw_len.div_ceil(unit);
        let stated = r.u32().map_err(damaged)?;
        if usize::try_from(stated).ok() != Some(units) {
            return Err(corrupt("delta header damaged"));
        }
        let bitmap = r.take(units.div_ceil(8)).map_err(damaged)?;
        // A chunk that grew at its end builds on its shorter last version, one that lost
        // bytes at its end on its longer one: then it carries its last unit, whose length
        // is the chunk's end ([`Codec::delta_len`]).
        let last_set = units
            .checked_sub(1)
            .is_some_and(|l| bitmap[l / 8] & (1 << (l % 8)) != 0);
        if base.len() > raw_len && !last_set {
            return Err(corrupt(
                "delta on a longer base does not carry its last unit",
            ));
        }
        let mut out = self.plain.take(raw_len);
        out.clear();
        out.extend_from_slice(&base[..base.len().min(raw_len)]);
        out.resize(raw_len, 0);
        for (i, start) in (0..raw_len).step_by(unit).enumerate() {
            let range = start..(start + unit).min(raw_len);
            if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                let changed = r
                    .take(range.len())
                    .map_err(|_| corrupt("delta body truncated"))?;
                out[range].copy_from_slice(changed);
            } else if range.end > base.len() {
                return Err(corrupt("delta leaves bytes past its base unset"));
            }
        }
        if r.remaining() != 0 {
            return Err(corrupt("delta body has trailing bytes"));
        }
        self.check(id, &out, raw_len, object)?;
        Ok(out)
    }

    fn check(&self, id: &ChunkId, plain: &[u8], raw_len: usize, object: &str) -> Result<()> {
        if plain.len() != raw_len {
            return Err(corrupt_chunk(
                id,
                object,
                &format!("decoded {} bytes, expected {raw_len}", plain.len()),
            ));
        }
        if !self.keys.id_matches(plain, id) {
            return Err(corrupt_chunk(
                id,
                object,
                "content does not match its fingerprint",
            ));
        }
        Ok(())
    }

    /// Decode a payload that must be a full chunk.
    pub fn decode(
        &self,
        id: &ChunkId,
        payload: &[u8],
        raw_len: usize,
        object: &str,
    ) -> Result<Vec<u8>> {
        match self.open(id, payload, raw_len, object)? {
            Opened::Full(p) => Ok(p),
            Opened::Delta { .. } => Err(corrupt_chunk(id, object, "unexpected delta payload")),
        }
    }
}

/// A payload after decryption.
#[derive(Debug)]
pub enum Opened {
    /// The whole chunk's plaintext, checked against its id.
    Full(Vec<u8>),
    /// A delta: complete it with [`Codec::apply_delta`] once the base is at hand.
    Delta {
        /// The full chunk it builds on.
        base: ChunkId,
        /// The delta's decompressed body.
        body: Vec<u8>,
    },
}

fn corrupt_chunk(id: &ChunkId, object: &str, reason: &str) -> RepoError {
    RepoError::CorruptChunk {
        piece: None,
        index: None,
        id: *id,
        object: object.to_string(),
        reason: reason.to_string(),
    }
}

fn values_aad(id: &ChunkId, base: Option<&ChunkId>) -> Vec<u8> {
    let mut a = Vec::with_capacity(64 + VALUES_DOMAIN.len());
    a.extend_from_slice(id.as_bytes());
    if let Some(b) = base {
        a.extend_from_slice(b.as_bytes());
    }
    a.extend_from_slice(VALUES_DOMAIN);
    a
}

fn aad(id: &ChunkId, flags: u8, base: Option<&ChunkId>) -> Vec<u8> {
    let mut a = Vec::with_capacity(65);
    a.extend_from_slice(id.as_bytes());
    a.push(flags);
    if let Some(b) = base {
        a.extend_from_slice(b.as_bytes());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec(cipher: Cipher) -> Codec {
        Codec::new(Keys::from_master([9u8; 32]), cipher, 1)
    }

    fn cv(n: u8) -> UnitCv {
        [n; 24]
    }

    /// Unit values travel ahead of the body: the body opens as before, and the values are read
    /// from the payload's first bytes alone, whole chunk and delta alike.
    #[test]
    fn unit_values_ride_ahead_of_the_body_and_read_alone() {
        for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
            let c = codec(cipher);
            let plain: Vec<u8> = (0..3 * UNIT).map(|i| (i % 251).to_le_bytes()[0]).collect();
            let id = c.chunk_id(&plain);
            let every = UnitValues::Every(vec![cv(1), cv(2), cv(3)]);
            let enc = c
                .encode_with_values_in(Vec::new(), &id, &plain, Some(&every))
                .unwrap();
            assert!(enc.len() <= Codec::max_payload(plain.len()));
            let Opened::Full(back) = c.open(&id, &enc, plain.len(), "t").unwrap() else {
                panic!("a whole chunk")
            };
            assert_eq!(back, plain);
            // What a build from before reads of the flags byte: a cipher it does not know.
            assert_eq!(Cipher::from_code(enc[0] >> 4), None);
            let prefix = Codec::values_prefix_len(&enc[..37]).unwrap();
            assert!(prefix < enc.len() && prefix == 1 + 4 + NONCE_LEN + 1 + 2 + 3 * 24 + TAG_LEN);
            assert_eq!(
                c.open_values(&id, &enc[..prefix], "t").unwrap(),
                Some(every.clone())
            );

            let mut next = plain.clone();
            next[UNIT + 7] ^= 1;
            let next_id = c.chunk_id(&next);
            let changed = UnitValues::Changed {
                units: 3,
                changed: vec![(1, cv(9))],
            };
            let enc = c
                .encode_delta_with_values_in(
                    Vec::new(),
                    &next_id,
                    &next,
                    UNIT,
                    &id,
                    &[1],
                    Some(&changed),
                )
                .unwrap();
            assert_eq!(Codec::payload_base(&enc), Some(id));
            let Opened::Delta { base, body } = c.open(&next_id, &enc, next.len(), "t").unwrap()
            else {
                panic!("a delta")
            };
            assert_eq!(base, id);
            assert_eq!(
                c.apply_delta(&next_id, &plain, &body, next.len(), "t")
                    .unwrap(),
                next
            );
            let prefix = Codec::values_prefix_len(&enc).unwrap();
            let got = c
                .open_values(&next_id, &enc[..prefix], "t")
                .unwrap()
                .unwrap();
            assert_eq!(got, changed);
            assert_eq!(
                got.resolve(Some(&[cv(1), cv(2), cv(3)])),
                Some(vec![cv(1), cv(9), cv(3)])
            );

            let unknown = c.encode(&id, &plain).unwrap();
            let prefix = Codec::values_prefix_len(&unknown).unwrap();
            assert_eq!(
                c.open_values(&id, &unknown[..prefix], "t").unwrap(),
                Some(UnitValues::Every(Vec::new()))
            );
        }
    }

    /// Negative controls: a flipped byte of the values, values moved onto another chunk's
    /// payload, a cleared values flag and an unknown flag all fail; none reads wrong values.
    #[test]
    fn unit_values_damaged_moved_or_unflagged_fail() {
        let c = codec(Cipher::Aes256Gcm);
        let a: Vec<u8> = (0..2 * UNIT).map(|i| (i % 13).to_le_bytes()[0]).collect();
        let b: Vec<u8> = (0..2 * UNIT).map(|i| (i % 17).to_le_bytes()[0]).collect();
        let (ia, ib) = (c.chunk_id(&a), c.chunk_id(&b));
        let va = UnitValues::Every(vec![cv(1), cv(2)]);
        let vb = UnitValues::Every(vec![cv(3), cv(4)]);
        let ea = c
            .encode_with_values_in(Vec::new(), &ia, &a, Some(&va))
            .unwrap();
        let eb = c
            .encode_with_values_in(Vec::new(), &ib, &b, Some(&vb))
            .unwrap();
        let prefix = Codec::values_prefix_len(&ea).unwrap();
        assert_eq!(prefix, Codec::values_prefix_len(&eb).unwrap());

        for at in [5 + 3, 5 + NONCE_LEN + 4, prefix - 1] {
            let mut bad = ea.clone();
            bad[at] ^= 0x10;
            let e = c.open_values(&ia, &bad, "t").unwrap_err();
            assert!(
                e.to_string().contains("unit values failed authentication"),
                "{e}"
            );
            assert!(
                c.open(&ia, &bad, a.len(), "t").is_err(),
                "a read of the body too"
            );
        }
        let mut moved = eb.clone();
        moved[..prefix].copy_from_slice(&ea[..prefix]);
        assert!(
            c.open_values(&ib, &moved, "t").is_err(),
            "values of chunk a pass for b's"
        );
        assert!(
            c.open_values(&ib, &ea, "t").is_err(),
            "payload read under another id"
        );

        let mut unflagged = ea.clone();
        unflagged[0] -= VALUES_CODE << 4;
        assert!(c.open(&ia, &unflagged, a.len(), "t").is_err());
        let mut newer = ea.clone();
        newer[0] |= 0x04;
        let e = c.open(&ia, &newer, a.len(), "t").unwrap_err();
        assert!(e.to_string().contains("newer format"), "{e}");
        assert!(
            c.open(&ia, &ea[..prefix + 3], a.len(), "t").is_err(),
            "a truncated body"
        );
    }

    #[test]
    fn values_of_a_grown_version_must_carry_its_new_units() {
        let grown = UnitValues::Changed {
            units: 3,
            changed: vec![(0, cv(7))],
        };
        assert_eq!(grown.resolve(Some(&[cv(1), cv(2)])), None);
        let carried = UnitValues::Changed {
            units: 3,
            changed: vec![(2, cv(7))],
        };
        assert_eq!(
            carried.resolve(Some(&[cv(1), cv(2)])),
            Some(vec![cv(1), cv(2), cv(7)])
        );
        let shrunk = UnitValues::Changed {
            units: 1,
            changed: vec![],
        };
        assert_eq!(shrunk.resolve(Some(&[cv(1), cv(2)])), Some(vec![cv(1)]));
        assert_eq!(shrunk.resolve(None), None);
        assert_eq!(
            UnitValues::decode(&[1, 1, 0, 2, 0, 1, 0]),
            None,
            "truncated"
        );
        let mut out_of_order = vec![1u8, 4, 0, 2, 0, 2, 0];
        out_of_order.extend_from_slice(&cv(1));
        out_of_order.extend_from_slice(&[1, 0]);
        out_of_order.extend_from_slice(&cv(2));
        assert_eq!(UnitValues::decode(&out_of_order), None);
    }

    /// Payloads written before the AEAD library changed (RustCrypto's `aes-gcm` and
    /// `chacha20poly1305`) open byte for byte: stored and raw, under both ciphers.
    #[test]
    fn payloads_of_the_earlier_aead_library_open() {
        let plain = b"ORCA known-answer chunk: the same bytes after a change of AEAD library, again and again and again.".repeat(3);
        let id = ChunkId::from_slice(
            &hex::decode("90cb247955db4c670fd88ff9df0e4cb3c2ac73ba68589778edfa2f5dc15b58bf")
                .unwrap(),
        )
        .unwrap();
        let raw_id = ChunkId::from_slice(
            &hex::decode("fa85a28de82a747420c050299915d512ba206ed8cc3bc8f76476d775a3ece282")
                .unwrap(),
        )
        .unwrap();
        let vectors = [
            (
                Cipher::Aes256Gcm,
                "10b96db03afd23ccc82b2034c1a9e72c45f4498c632bce581dd1171946dadbeed547f5d4ac3d5cf8e4df207bbb70acb304",
                "11ede8c5555b5cd51974a5b40824e5dce8605a782008d730c154fc97e486d027cc0e539b706d106c009d87e854c899915d267b64de5854e0f7bca67cdf1946ee614c2550496ea3a3146ac8ba7c7f5f607688bb46b943ae0c65329d19605e8ccba5543cd1109f75a5998aa3c68990b09e6cbe6a1ec731aeab95793c55",
            ),
            (
                Cipher::ChaCha20Poly1305,
                "20050ebc5943f6047e4a7f96c16acecfd7416f51f90e99101e69f6fe0ff46d865522c2b89d94b4c3f4792ee4c510cd066f",
                "213568344d5e4253e160d7dd837e816d41ac713b4d793a16d5612964a960624576186ed630fd0bc6198e655cd4f927ca8792770c6afdd2321d59c1cae18255089b7989cec3736ebb6987a83df2c2808467e5f5130418849d07c856e6fe710d8ef6a3997fcf68617fceaf8a648f0507f9261154655bec555aba97ce49",
            ),
        ];
        for (cipher, raw, zstd) in vectors {
            let c = codec(cipher);
            assert_eq!(c.chunk_id(&plain), id);
            let opened = |id: &ChunkId, hex_payload: &str, len: usize| match c
                .open(id, &hex::decode(hex_payload).unwrap(), len, "kat")
                .unwrap()
            {
                Opened::Full(p) => p,
                Opened::Delta { .. } => panic!("not a delta"),
            };
            assert_eq!(opened(&raw_id, raw, 20), plain[..20], "{cipher} raw");
            assert_eq!(opened(&id, zstd, plain.len()), plain, "{cipher} zstd");
            // Written before unit values: none to read, and no prefix to ask for.
            let old = hex::decode(zstd).unwrap();
            assert_eq!(Codec::values_prefix_len(&old), None);
            assert_eq!(c.open_values(&id, &old, "kat").unwrap(), None);
        }
    }

    #[test]
    fn compressible_and_incompressible() {
        for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
            let c = codec(cipher);
            let text = b"ORACLE ROW DATA ".repeat(4096);
            let id = c.chunk_id(&text);
            let enc = c.encode(&id, &text).unwrap();
            assert!(enc.len() < text.len() / 10);
            assert_eq!(c.decode(&id, &enc, text.len(), "t").unwrap(), text);

            let noise: Vec<u8> = (0..65536u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13).to_le_bytes()[0])
                .collect();
            let id = c.chunk_id(&noise);
            let enc = c.encode(&id, &noise).unwrap();
            assert_eq!(c.decode(&id, &enc, noise.len(), "t").unwrap(), noise);
        }
    }

    #[test]
    fn tamper_is_detected() {
        let c = codec(Cipher::Aes256Gcm);
        let data = vec![1u8; 10_000];
        let id = c.chunk_id(&data);
        let enc = c.encode(&id, &data).unwrap();
        for pos in [0, 5, enc.len() / 2, enc.len() - 1] {
            let mut bad = enc.clone();
            bad[pos] ^= 0x40;
            assert!(
                c.decode(&id, &bad, data.len(), "t").is_err(),
                "flip at {pos}"
            );
        }
        let other = c.chunk_id(b"other");
        assert!(c.decode(&other, &enc, data.len(), "t").is_err());
        assert!(c.decode(&id, &enc[..10], data.len(), "t").is_err());
    }

    #[test]
    fn wrong_key_fails() {
        let a = codec(Cipher::Aes256Gcm);
        let b = Codec::new(Keys::from_master([8u8; 32]), Cipher::Aes256Gcm, 1);
        let data = b"hello".to_vec();
        let id = a.chunk_id(&data);
        let enc = a.encode(&id, &data).unwrap();
        assert!(b.decode(&id, &enc, data.len(), "t").is_err());
    }

    #[test]
    fn delta_round_trip_and_tamper() {
        let c = codec(Cipher::Aes256Gcm);
        let base: Vec<u8> = (0..(1u32 << 20) + 100)
            .map(|i| (i % 251).to_le_bytes()[0])
            .collect();
        let mut new = base.clone();
        new[3 * UNIT + 5] ^= 0xFF;
        new[(1 << 20) + 50] ^= 0xFF;
        let base_id = c.chunk_id(&base);
        let id = c.chunk_id(&new);
        let enc = c
            .encode_delta(&id, &new, &base_id, &[3, (1 << 20) / UNIT])
            .unwrap();
        assert!(enc.len() < 4 * UNIT);
        assert_eq!(Codec::payload_base(&enc), Some(base_id));
        let Opened::Delta { base: b, body } = c.open(&id, &enc, new.len(), "t").unwrap() else {
            panic!("expected a delta")
        };
        assert_eq!(b, base_id);
        assert_eq!(
            c.apply_delta(&id, &base, &body, new.len(), "t").unwrap(),
            new
        );
        // A delta that forgot a changed block fails the fingerprint check.
        let short = c.encode_delta(&id, &new, &base_id, &[3]).unwrap();
        let Opened::Delta { body, .. } = c.open(&id, &short, new.len(), "t").unwrap() else {
            panic!()
        };
        assert!(c.apply_delta(&id, &base, &body, new.len(), "t").is_err());
        // The base id is authenticated.
        let mut bad = enc.clone();
        bad[5] ^= 1;
        assert!(c.open(&id, &bad, new.len(), "t").is_err());
        assert!(c.decode(&id, &enc, new.len(), "t").is_err());
    }

    /// A chunk that grew at its end is a delta on its shorter last version: the units past
    /// the base (the base's short last one included) travel in it. One that leaves any of
    /// them out, or a base longer than the chunk, is refused before its fingerprint is.
    #[test]
    fn a_grown_chunk_is_a_delta_on_its_shorter_last_version() {
        let c = codec(Cipher::Aes256Gcm);
        let base: Vec<u8> = (0..12 * UNIT + 100)
            .map(|i| (i % 253).to_le_bytes()[0])
            .collect();
        let mut new = base.clone();
        new.extend((0..3 * UNIT).map(|i| (i % 7).to_le_bytes()[0]));
        new[2 * UNIT] ^= 1;
        let (base_id, id) = (c.chunk_id(&base), c.chunk_id(&new));
        let open = |enc: &[u8]| match c.open(&id, enc, new.len(), "t").unwrap() {
            Opened::Delta { body, .. } => body,
            Opened::Full(_) => panic!("expected a delta"),
        };
        let body = open(
            &c.encode_delta(&id, &new, &base_id, &[2, 12, 13, 14, 15])
                .unwrap(),
        );
        let rebuilt = c.apply_delta(&id, &base, &body, new.len(), "t").unwrap();
        assert_eq!(rebuilt, new);
        // A link of a chain has no recorded length: its body and its base's tell it.
        assert_eq!(Codec::delta_len(&body, base.len()), Some(new.len()));
        assert_eq!(
            Codec::delta_len(&body[..body.len() - 1], base.len()),
            Some(new.len() - 1)
        );
        assert_eq!(
            Codec::delta_len(&body[..body.len() - 3 * UNIT], base.len()),
            None
        );
        let same = open(&c.encode_delta(&id, &new, &base_id, &[2]).unwrap());
        assert_eq!(
            Codec::delta_len(&same, 77),
            Some(77),
            "last unit from the base"
        );

        // Unit 12 is the base's short last unit: without it, bytes past the base stay unset.
        let body = open(
            &c.encode_delta(&id, &new, &base_id, &[2, 13, 14, 15])
                .unwrap(),
        );
        let err = c
            .apply_delta(&id, &base, &body, new.len(), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("past its base"), "{err}");
        // On a longer base the delta must carry its last unit: this one leaves it out.
        let longer = [new.clone(), vec![0; 10]].concat();
        let same = open(&c.encode_delta(&id, &new, &base_id, &[2]).unwrap());
        let err = c
            .apply_delta(&id, &longer, &same, new.len(), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not carry its last unit"), "{err}");
    }

    /// Deltas in units of a small block's size: only the changed units travel, the chunk
    /// rebuilds from its base, `delta_len` reads the last unit's length at that unit; a
    /// unit outside 2-64 KiB, or not a power of two, is refused when encoding.
    #[test]
    fn deltas_in_units_of_2_and_4_kib() {
        let c = codec(Cipher::Aes256Gcm);
        let base: Vec<u8> = (0..64 * 1024 + 100)
            .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect();
        let base_id = c.chunk_id(&base);
        for unit in [MIN_UNIT, 4096] {
            let mut new = base.clone();
            new[3 * unit + 5] ^= 0x40;
            let last = new.len().div_ceil(unit) - 1;
            new[last * unit + 1] ^= 0x01;
            let id = c.chunk_id(&new);
            let enc = c
                .encode_delta_with_values_in(
                    Vec::new(),
                    &id,
                    &new,
                    unit,
                    &base_id,
                    &[3, last],
                    None,
                )
                .unwrap();
            assert!(
                enc.len() < 2 * unit + 200,
                "unit {unit}: {} bytes",
                enc.len()
            );
            let Opened::Delta { body, .. } = c.open(&id, &enc, new.len(), "t").unwrap() else {
                panic!("expected a delta");
            };
            assert_eq!(Codec::delta_len(&body, base.len()), Some(new.len()));
            assert_eq!(
                c.apply_delta(&id, &base, &body, new.len(), "t").unwrap(),
                new
            );
            // Unit 3 left out: the base's bytes there fail the fingerprint.
            let enc = c
                .encode_delta_with_values_in(Vec::new(), &id, &new, unit, &base_id, &[last], None)
                .unwrap();
            let Opened::Delta { body, .. } = c.open(&id, &enc, new.len(), "t").unwrap() else {
                panic!("expected a delta");
            };
            assert!(c.apply_delta(&id, &base, &body, new.len(), "t").is_err());
        }
        for unit in [1024, 3072, 128 << 10] {
            let err = c
                .encode_delta_with_values_in(
                    Vec::new(),
                    &base_id,
                    &base,
                    unit,
                    &base_id,
                    &[0],
                    None,
                )
                .unwrap_err()
                .to_string();
            assert!(err.contains("power of two from 2 to 64 KiB"), "{err}");
        }
    }

    /// A chunk that lost bytes at its end (a region of a datafile whose trailing RMAN bytes
    /// moved to the next region) is a delta on its longer last version, carrying its last
    /// unit so that a link of a chain knows its length; a wrong unit fails the fingerprint.
    #[test]
    fn a_shrunk_chunk_is_a_delta_on_its_longer_last_version() {
        let c = codec(Cipher::Aes256Gcm);
        let base: Vec<u8> = (0..16 * UNIT).map(|i| (i % 251).to_le_bytes()[0]).collect();
        for len in [12 * UNIT, 12 * UNIT + 300] {
            let mut new = base[..len].to_vec();
            new[3 * UNIT + 5] ^= 0x40;
            let (base_id, id) = (c.chunk_id(&base), c.chunk_id(&new));
            let last = len.div_ceil(UNIT) - 1;
            let enc = c.encode_delta(&id, &new, &base_id, &[3, last]).unwrap();
            let Opened::Delta { body, .. } = c.open(&id, &enc, new.len(), "t").unwrap() else {
                panic!("expected a delta");
            };
            assert_eq!(Codec::delta_len(&body, base.len()), Some(len));
            assert_eq!(c.apply_delta(&id, &base, &body, len, "t").unwrap(), new);
            // The base's unit 3 in place of the chunk's: the fingerprint refuses it.
            let enc = c
                .encode_delta(&id, &base[..len], &base_id, &[last])
                .unwrap();
            let Opened::Delta { body, .. } = c.open(&id, &enc, len, "t").unwrap() else {
                panic!("expected a delta");
            };
            let err = c
                .apply_delta(&id, &base, &body, len, "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains("fingerprint"), "{err}");
        }
    }

    /// A full chunk opened as a base has only a bound on its length: the buffer is the size
    /// its frame states, and a frame stating more than the bound is refused.
    #[test]
    fn a_base_is_sized_by_its_frame_within_the_bound() {
        let c = codec(Cipher::Aes256Gcm);
        let data: Vec<u8> = (0..5 * UNIT).map(|i| (i % 9).to_le_bytes()[0]).collect();
        let id = c.chunk_id(&data);
        let enc = c.encode(&id, &data).unwrap();
        let Opened::Full(p) = c.open_base(&id, &enc, 16 << 20, "t").unwrap() else {
            panic!("expected a full chunk");
        };
        assert_eq!(p, data);
        assert!(p.capacity() < 2 * data.len(), "{}", p.capacity());
        let err = c
            .open_base(&id, &enc, data.len() - 1, "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("beyond the chunk's bound"), "{err}");
    }

    proptest! {
        #[test]
        fn unit_values_round_trip(
            every in proptest::collection::vec(any::<[u8; 24]>(), 0..200),
            changed in proptest::collection::btree_map(0u16..300, any::<[u8; 24]>(), 0..40),
        ) {
            let every = UnitValues::Every(every);
            prop_assert_eq!(UnitValues::decode(&every.encode().unwrap()), Some(every));
            let changed = UnitValues::Changed { units: 300, changed: changed.into_iter().collect() };
            prop_assert_eq!(UnitValues::decode(&changed.encode().unwrap()), Some(changed));
        }

        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..20_000), level in 1i32..4) {
            let c = Codec::new(Keys::from_master([3u8; 32]), Cipher::Aes256Gcm, level);
            let id = c.chunk_id(&data);
            let enc = c.encode(&id, &data).unwrap();
            prop_assert_eq!(c.decode(&id, &enc, data.len(), "t").unwrap(), data);
        }
    }
}
