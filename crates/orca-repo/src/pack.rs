//! Pack files: many encoded chunks in one storage object.
//!
//! Packs keep object-store request counts low (one PUT per pack of tens of
//! MiB instead of one per 1 MiB chunk) and are self-describing, so the chunk
//! index can be rebuilt from the packs alone. Byte layout (little-endian; see
//! docs/design.md):
//!
//! ```text
//! pack    := header blob* trailer footer
//! header  := "ORCAPACK" u16:version(=1) u16:0 u32:0                      16 bytes
//! blob    := "ORCB" id[32] u32:payload_len u32:raw_len u32:crc  payload  48 + n bytes
//!            crc = CRC32C(id, payload_len, raw_len, payload)
//! trailer := u32:count entry[count] u32:CRC32C(count, entries)
//! entry   := id[32] base[32] u32:blob_offset u32:payload_len u32:raw_len 76 bytes
//!            base = the full chunk a delta payload builds on, zeros for none
//! footer  := u64:trailer_offset "ORCAPEND"                               16 bytes
//! ```
//! The per-blob magic, id and CRC let a scanner recover every intact blob of a
//! pack whose trailer is damaged, and let a server without the key detect bit
//! rot. The payload itself is the codec's output (authenticated encryption).

use bytes::Bytes;
use orca_oracle::{LeReader, Truncated};

use crate::error::{RepoError, Result};
use crate::id::ChunkId;

pub const PACK_MAGIC: &[u8; 8] = b"ORCAPACK";
pub const PACK_END: &[u8; 8] = b"ORCAPEND";
pub const BLOB_MAGIC: &[u8; 4] = b"ORCB";
pub const HEADER_LEN: usize = 16;
pub const BLOB_HEADER_LEN: usize = 48;
pub const ENTRY_LEN: usize = 76;
pub const FOOTER_LEN: usize = 16;
const VERSION: u16 = 1;
/// Offsets are 32-bit; packs stay far below this.
pub const MAX_PACK_LEN: usize = u32::MAX as usize - (1 << 20);

/// Where one chunk lives inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// The chunk's id.
    pub id: ChunkId,
    /// Base of a delta payload.
    pub base: Option<ChunkId>,
    /// Offset of the blob header within the pack.
    pub offset: u32,
    /// Bytes of its codec payload.
    pub payload_len: u32,
    /// Bytes of its plaintext.
    pub raw_len: u32,
}

impl PackEntry {
    /// Byte range of the whole blob (header and payload) within the pack.
    pub fn blob_range(&self) -> std::ops::Range<u64> {
        let start = self.offset as u64;
        start..start + BLOB_HEADER_LEN as u64 + self.payload_len as u64
    }
}

/// Accumulates blobs into a pack in memory.
#[derive(Debug)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new(1 << 20)
    }
}

impl PackBuilder {
    /// A pack expected to grow to about `target` bytes.
    pub fn new(target: usize) -> Self {
        Self::with_buffer(Vec::with_capacity(Self::capacity_for(target)))
    }

    /// The buffer a pack of about `target` bytes wants: room for the chunk that takes it past
    /// `target` (a pack is sealed once it reaches it), up to 4 MiB. An SBT channel's 3 MiB
    /// packs held 7 MiB buffers each with 4 MiB of room always; a longer chunk grows the
    /// buffer.
    pub fn capacity_for(target: usize) -> usize {
        target + (target / 2).min(4 << 20)
    }

    /// A pack built in `buf` (a reused buffer; its contents are replaced).
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(PACK_MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&[0u8; 6]);
        PackBuilder {
            buf,
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(
        &mut self,
        id: ChunkId,
        base: Option<ChunkId>,
        raw_len: u32,
        payload: &[u8],
    ) -> Result<()> {
        let size = self.buf.len() + BLOB_HEADER_LEN + payload.len();
        if size > MAX_PACK_LEN {
            return Err(RepoError::PackTooLarge { size });
        }
        let offset = u32::try_from(self.buf.len()).map_err(|_| RepoError::PackTooLarge { size })?;
        let payload_len = u32::try_from(payload.len())
            .map_err(|_| RepoError::InvalidArgument("chunk payload larger than 4 GiB".into()))?;
        let crc = blob_crc(&id, payload_len, raw_len, payload);
        self.buf.extend_from_slice(BLOB_MAGIC);
        self.buf.extend_from_slice(id.as_bytes());
        self.buf.extend_from_slice(&payload_len.to_le_bytes());
        self.buf.extend_from_slice(&raw_len.to_le_bytes());
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(payload);
        self.entries.push(PackEntry {
            id,
            base,
            offset,
            payload_len,
            raw_len,
        });
        Ok(())
    }

    /// Seal the pack: append trailer and footer. Returns the bytes, the
    /// entries, and a fresh random pack id (64 hex digits). Packs are never
    /// rewritten in place, so a random name is as good as a content hash and
    /// saves hashing every pack.
    pub fn finish(self) -> Result<(Bytes, Vec<PackEntry>, String)> {
        let (buf, entries, id) = self.finish_vec()?;
        Ok((Bytes::from(buf), entries, id))
    }

    /// [`PackBuilder::finish`], handing back the buffer itself (to return it
    /// to a pool once written).
    pub fn finish_vec(mut self) -> Result<(Vec<u8>, Vec<PackEntry>, String)> {
        let trailer_offset = self.buf.len() as u64;
        let count = u32::try_from(self.entries.len()).map_err(|_| RepoError::PackTooLarge {
            size: self.buf.len(),
        })?;
        let start = self.buf.len();
        self.buf.extend_from_slice(&count.to_le_bytes());
        for e in &self.entries {
            self.buf.extend_from_slice(e.id.as_bytes());
            self.buf
                .extend_from_slice(e.base.as_ref().map_or(&[0u8; 32], |b| b.as_bytes()));
            self.buf.extend_from_slice(&e.offset.to_le_bytes());
            self.buf.extend_from_slice(&e.payload_len.to_le_bytes());
            self.buf.extend_from_slice(&e.raw_len.to_le_bytes());
        }
        let crc = crc32c::crc32c(&self.buf[start..]);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(&trailer_offset.to_le_bytes());
        self.buf.extend_from_slice(PACK_END);
        let id = hex::encode(crate::keys::random_array::<32>()?);
        Ok((self.buf, self.entries, id))
    }
}

fn blob_crc(id: &ChunkId, payload_len: u32, raw_len: u32, payload: &[u8]) -> u32 {
    let mut crc = crc32c::crc32c(id.as_bytes());
    crc = crc32c::crc32c_append(crc, &payload_len.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &raw_len.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// The fixed part in front of every blob's payload.
struct BlobHeader {
    magic: [u8; 4],
    id: ChunkId,
    payload_len: u32,
    raw_len: u32,
    crc: u32,
}

impl BlobHeader {
    fn read(r: &mut LeReader<'_>) -> std::result::Result<BlobHeader, Truncated> {
        Ok(BlobHeader {
            magic: r.array()?,
            id: ChunkId(r.array()?),
            payload_len: r.u32()?,
            raw_len: r.u32()?,
            crc: r.u32()?,
        })
    }
}

/// The blob header at the start of `blob` (a blob or its first bytes) and where its payload
/// starts, once its magic and chunk id are checked.
fn checked_header(blob: &[u8], expected: &ChunkId, object: &str) -> Result<(BlobHeader, usize)> {
    let mut r = LeReader::new(blob);
    let h = BlobHeader::read(&mut r)
        .map_err(|t| corrupt_blob(expected, object, &format!("blob header {t}")))?;
    if &h.magic != BLOB_MAGIC {
        return Err(corrupt_blob(expected, object, "blob header magic damaged"));
    }
    if h.id != *expected {
        return Err(corrupt_blob(
            expected,
            object,
            "blob header names another chunk",
        ));
    }
    Ok((h, r.position()))
}

fn corrupt_blob(id: &ChunkId, object: &str, reason: &str) -> RepoError {
    RepoError::CorruptChunk {
        piece: None,
        index: None,
        id: *id,
        object: object.to_string(),
        reason: reason.to_string(),
    }
}

/// Where the payload starts in `blob`, the first bytes of a blob (a ranged read of its
/// header and the payload's start), once the header's magic and chunk id are checked; the
/// payload's checksum needs the whole payload.
pub fn blob_head(blob: &[u8], expected: &ChunkId, object: &str) -> Result<usize> {
    checked_header(blob, expected, object).map(|(_, at)| at)
}

/// Check one blob read back from a pack (header and payload) and return its
/// payload. `expected` is the id the index promised at this offset.
pub fn open_blob(blob: Bytes, expected: &ChunkId, object: &str) -> Result<Bytes> {
    let (h, at) = checked_header(&blob, expected, object)?;
    if usize::try_from(h.payload_len).ok() != Some(blob.len() - at) {
        return Err(corrupt_blob(
            expected,
            object,
            "blob length differs from the index",
        ));
    }
    let payload = blob.slice(at..);
    if blob_crc(&h.id, h.payload_len, h.raw_len, &payload) != h.crc {
        return Err(corrupt_blob(
            expected,
            object,
            "checksum mismatch (bit rot or tampering)",
        ));
    }
    Ok(payload)
}

/// Offset of the trailer, from the last `FOOTER_LEN` bytes of a pack.
pub fn parse_footer(footer: &[u8], pack_len: u64, object: &str) -> Result<u64> {
    let mut r = LeReader::new(footer);
    let off = match (r.u64(), r.array::<8>(), r.remaining()) {
        (Ok(off), Ok(end), 0) if &end == PACK_END => off,
        _ => return Err(RepoError::corrupt(object, "pack footer damaged")),
    };
    // Saturating: a damaged offset near u64::MAX must read as "outside", not overflow.
    if off < HEADER_LEN as u64 || off.saturating_add(8 + FOOTER_LEN as u64) > pack_len {
        return Err(RepoError::corrupt(
            object,
            "pack footer points outside the pack",
        ));
    }
    Ok(off)
}

/// Parse a trailer (from its offset up to, not including, the footer).
pub fn parse_trailer(trailer: &[u8], trailer_offset: u64, object: &str) -> Result<Vec<PackEntry>> {
    let bad = |r: &str| RepoError::corrupt(object, format!("pack trailer: {r}"));
    let truncated = |t: Truncated| bad(&t.to_string());
    let mut r = LeReader::new(trailer);
    let count = r.u32().map_err(truncated)?;
    let need = usize::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(ENTRY_LEN))
        .and_then(|n| n.checked_add(8))
        .ok_or_else(|| bad("count overflow"))?;
    if trailer.len() != need {
        return Err(bad("length does not match its entry count"));
    }
    let mut entries = LeReader::new(r.take(need - 8).map_err(truncated)?);
    let covered = r.consumed();
    let crc = r.u32().map_err(truncated)?;
    if crc32c::crc32c(covered) != crc {
        return Err(bad("checksum mismatch"));
    }
    let mut out = Vec::with_capacity(entries.remaining() / ENTRY_LEN);
    while entries.remaining() > 0 {
        let id = ChunkId(entries.array().map_err(truncated)?);
        let base = ChunkId(entries.array().map_err(truncated)?);
        let entry = PackEntry {
            id,
            base: (base.0 != [0u8; 32]).then_some(base),
            offset: entries.u32().map_err(truncated)?,
            payload_len: entries.u32().map_err(truncated)?,
            raw_len: entries.u32().map_err(truncated)?,
        };
        if entry.blob_range().end > trailer_offset {
            return Err(bad("entry points past the blobs"));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Result of scanning a whole pack blob by blob.
#[derive(Debug, Default)]
pub struct PackScan {
    /// Blobs whose header and CRC are intact.
    pub good: Vec<PackEntry>,
    /// Problems found, with the chunk id when the header still names one.
    pub damaged: Vec<(Option<ChunkId>, String)>,
    /// Entries listed in the trailer (empty when the trailer is unreadable).
    pub trailer: Vec<PackEntry>,
}

/// Walk every blob of a pack, checking magic and CRC, and cross-check the
/// trailer. Used by verify and by index rebuild when a trailer is damaged.
pub fn scan(pack: &[u8], object: &str) -> PackScan {
    let mut scan = PackScan::default();
    if pack.len() < HEADER_LEN + FOOTER_LEN || &pack[..8] != PACK_MAGIC {
        scan.damaged.push((None, "pack header damaged".into()));
    }
    let end = match parse_footer(
        &pack[pack.len().saturating_sub(FOOTER_LEN)..],
        pack.len() as u64,
        object,
    ) {
        Ok(off) => {
            // parse_footer checked that the trailer lies inside `pack`, so this never falls
            // back; if it did, the trailer would read as empty rather than panic.
            let start = usize::try_from(off).unwrap_or(pack.len() - FOOTER_LEN);
            match parse_trailer(&pack[start..pack.len() - FOOTER_LEN], off, object) {
                Ok(t) => scan.trailer = t,
                Err(e) => scan.damaged.push((None, e.to_string())),
            }
            start
        }
        Err(e) => {
            scan.damaged.push((None, e.to_string()));
            pack.len()
        }
    };
    let mut pos = HEADER_LEN.min(pack.len());
    while pos + BLOB_HEADER_LEN <= end {
        if &pack[pos..pos + 4] != BLOB_MAGIC {
            scan.damaged
                .push((None, format!("blob magic damaged at offset {pos}")));
            match find_next_blob(pack, pos + 1, end) {
                Some(next) => {
                    pos = next;
                    continue;
                }
                None => break,
            }
        }
        let Ok(BlobHeader {
            id,
            payload_len,
            raw_len,
            crc,
            ..
        }) = BlobHeader::read(&mut LeReader::new(&pack[pos..end]))
        else {
            // The loop's bound leaves room for a header; stop rather than trust a short one.
            scan.damaged
                .push((None, format!("blob header at offset {pos} truncated")));
            break;
        };
        let pend = usize::try_from(payload_len)
            .ok()
            .and_then(|n| (pos + BLOB_HEADER_LEN).checked_add(n))
            .unwrap_or(usize::MAX);
        if pend > end {
            scan.damaged
                .push((Some(id), format!("blob at offset {pos} runs past the end")));
            match find_next_blob(pack, pos + 1, end) {
                Some(next) => {
                    pos = next;
                    continue;
                }
                None => break,
            }
        }
        let Ok(offset) = u32::try_from(pos) else {
            scan.damaged
                .push((Some(id), format!("blob at offset {pos} lies beyond 4 GiB")));
            break;
        };
        let entry = PackEntry {
            id,
            base: crate::codec::Codec::payload_base(&pack[pos + BLOB_HEADER_LEN..pend]),
            offset,
            payload_len,
            raw_len,
        };
        if blob_crc(
            &id,
            payload_len,
            raw_len,
            &pack[pos + BLOB_HEADER_LEN..pend],
        ) == crc
        {
            scan.good.push(entry);
        } else {
            // The header may be damaged; prefer the trailer's id for this offset.
            let named = scan
                .trailer
                .iter()
                .find(|e| e.offset as usize == pos)
                .map(|e| e.id)
                .unwrap_or(id);
            scan.damaged.push((
                Some(named),
                format!("checksum mismatch in blob at offset {pos}"),
            ));
        }
        pos = pend;
    }
    for t in &scan.trailer {
        if !scan.good.iter().any(|g| g.offset == t.offset)
            && !scan.damaged.iter().any(|(id, _)| *id == Some(t.id))
        {
            scan.damaged.push((
                Some(t.id),
                format!("blob listed at offset {} is unreadable", t.offset),
            ));
        }
    }
    scan
}

fn find_next_blob(pack: &[u8], from: usize, end: usize) -> Option<usize> {
    pack[from.min(end)..end]
        .windows(4)
        .position(|w| w == BLOB_MAGIC)
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us(x: u64) -> usize {
        usize::try_from(x).unwrap()
    }

    fn build(n: usize) -> (Bytes, Vec<PackEntry>) {
        let mut b = PackBuilder::new(1 << 20);
        for i in 0..n {
            let n = u8::try_from(i).unwrap();
            let mut payload = vec![n; 100 + i * 10];
            payload[0] = 0x10;
            b.add(ChunkId([n; 32]), None, 1000, &payload).unwrap();
        }
        let (bytes, entries, _) = b.finish().unwrap();
        (bytes, entries)
    }

    #[test]
    fn round_trip() {
        let (bytes, entries) = build(5);
        let len = bytes.len() as u64;
        let off = parse_footer(&bytes[bytes.len() - FOOTER_LEN..], len, "p").unwrap();
        let trailer = parse_trailer(&bytes[us(off)..bytes.len() - FOOTER_LEN], off, "p").unwrap();
        assert_eq!(trailer, entries);
        for e in &entries {
            let r = e.blob_range();
            let payload = open_blob(bytes.slice(us(r.start)..us(r.end)), &e.id, "p").unwrap();
            assert_eq!(payload.len(), e.payload_len as usize);
        }
        let s = scan(&bytes, "p");
        assert_eq!(s.good, entries);
        assert!(s.damaged.is_empty());
    }

    #[test]
    fn every_flipped_byte_is_noticed() {
        let (bytes, entries) = build(3);
        for pos in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[pos] ^= 0x01;
            let s = scan(&bad, "p");
            let blob_hit = entries
                .iter()
                .any(|e| e.blob_range().contains(&(pos as u64)));
            let header = pos < HEADER_LEN;
            if blob_hit || !header {
                assert!(!s.damaged.is_empty(), "flip at {pos} went unnoticed");
            }
            if let Some(e) = entries
                .iter()
                .find(|e| e.blob_range().contains(&(pos as u64)))
            {
                let r = e.blob_range();
                let blob = Bytes::from(bad[us(r.start)..us(r.end)].to_vec());
                assert!(open_blob(blob, &e.id, "p").is_err());
            }
        }
    }

    /// A pack cut short anywhere (a partial upload, a short read) is reported damaged,
    /// and its footer, trailer and blobs are refused as corrupt, never a panic.
    #[test]
    fn every_truncation_is_refused() {
        let (bytes, entries) = build(3);
        let len = bytes.len();
        for cut in 0..len {
            let short = &bytes[..cut];
            assert!(!scan(short, "packs/p").damaged.is_empty(), "cut at {cut}");
            let footer = &short[cut.saturating_sub(FOOTER_LEN)..];
            let e = parse_footer(footer, cut as u64, "packs/p").unwrap_err();
            assert!(
                matches!(&e, RepoError::CorruptObject { object, .. } if object == "packs/p"),
                "cut at {cut}: {e:?}"
            );
        }
        let off = parse_footer(&bytes[len - FOOTER_LEN..], len as u64, "p").unwrap();
        let trailer = &bytes[us(off)..len - FOOTER_LEN];
        for cut in 0..trailer.len() {
            let e = parse_trailer(&trailer[..cut], off, "packs/p").unwrap_err();
            assert!(matches!(e, RepoError::CorruptObject { .. }), "{e:?}");
        }
        for e in &entries {
            let r = e.blob_range();
            let blob = bytes.slice(us(r.start)..us(r.end));
            for cut in 0..blob.len() {
                let err = open_blob(blob.slice(..cut), &e.id, "packs/p").unwrap_err();
                assert!(matches!(err, RepoError::CorruptChunk { .. }), "{err:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn scan_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = scan(&data, "p");
            let _ = parse_footer(&data[data.len().saturating_sub(FOOTER_LEN)..], data.len() as u64, "p");
            let _ = parse_trailer(&data, data.len() as u64, "p");
        }
    }
}
