//! Piece manifests: the ordered chunk recipe of a named byte stream plus its
//! metadata, authenticated with the repository's MAC key.
//!
//! ```text
//! manifest := "ORCAMAN1" u32:header_len header(JSON) u64:count chunk[count] mac[32]
//! chunk    := id[32] u32:len
//! mac      := keyed BLAKE3 (MAC key) of every byte before it
//! ```
//! The header and the chunk table are readable without the key, so a vault
//! can check that every referenced chunk exists and can run garbage
//! collection; only a key holder can produce or verify the MAC, so a
//! manifest altered in storage is refused on restore.

use std::collections::BTreeMap;

use bytes::Bytes;
use orca_oracle::{LeReader, Truncated};
use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerSpec;
use crate::error::{RepoError, Result};
use crate::id::ChunkId;
use crate::keys::Keys;

/// First bytes of an encoded manifest.
pub const MAGIC: &[u8; 8] = b"ORCAMAN1";
/// Newest manifest format this build reads: 3 = a demultiplexed piece ([`Demux`]), whose
/// chunks are lanes to be woven back together, so a build from before lanes refuses it
/// instead of restoring the lanes as if they were the piece.
pub const VERSION: u32 = 3;
/// The format of a demultiplexed piece (any chunk-id key).
pub const VERSION_DEMUX: u32 = 3;
/// The format of a piece whose header names the dedup group's chunk-id key (`id_key`) and
/// seals its secret (`group_secret`), so a build from before groups refuses the piece
/// instead of failing every chunk's id check.
pub const VERSION_GROUP_IDS: u32 = 2;
/// The format of a piece whose chunk ids are keyed by the repository key alone: written
/// byte for byte as before groups.
pub const VERSION_REPOSITORY_IDS: u32 = 1;
const MAX_HEADER: usize = 1 << 20;
/// A demultiplexed piece's header names the lane of every chunk (about 6 bytes a chunk in
/// the worst interleaving): this bounds it to pieces of some ten million chunks. A build
/// from before lanes reports a larger header as damaged rather than newer.
const MAX_HEADER_DEMUX: usize = 64 << 20;
const ENTRY: usize = 36;
const MAC_LEN: usize = 32;

/// What kind of content a piece holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// An Oracle datafile, or a backup piece of datafiles.
    Datafile,
    /// Archived redo logs.
    Archivelog,
    /// A control file.
    Controlfile,
    /// A server parameter file.
    Spfile,
    /// Anything else (and any type a newer build names).
    #[default]
    #[serde(other)]
    Other,
}

impl FileType {
    /// The lowercase name, as stored and parsed.
    pub fn as_str(&self) -> &'static str {
        match self {
            FileType::Datafile => "datafile",
            FileType::Archivelog => "archivelog",
            FileType::Controlfile => "controlfile",
            FileType::Spfile => "spfile",
            FileType::Other => "other",
        }
    }
}

impl std::str::FromStr for FileType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "datafile" => Ok(FileType::Datafile),
            "archivelog" | "archlog" => Ok(FileType::Archivelog),
            "controlfile" => Ok(FileType::Controlfile),
            "spfile" => Ok(FileType::Spfile),
            "other" | "file" => Ok(FileType::Other),
            o => Err(format!(
                "unknown file type {o:?}: use datafile, archivelog, controlfile, spfile or other"
            )),
        }
    }
}

/// Figures recorded when a piece is written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteStats {
    /// Bytes of the stream.
    pub bytes_in: u64,
    /// Chunks in the stream.
    pub chunks: u64,
    /// Chunks this write had to upload, and their encoded size.
    pub new_chunks: u64,
    /// Encoded bytes of the new chunks.
    pub new_bytes: u64,
    /// New chunks stored as block-level deltas of an earlier version.
    #[serde(default)]
    pub delta_chunks: u64,
    /// Chunks known from a local cache without asking the repository.
    pub cache_hits: u64,
    /// Requests asking the repository which ids it holds, and ids asked about.
    pub probes: u64,
    /// Ids asked about in those requests.
    pub probed_ids: u64,
    /// Chunks hashed in place whose skipped units were read back from the
    /// previous version to store them whole.
    #[serde(default)]
    pub anchor_reads: u64,
    /// How long the write took.
    pub elapsed_ms: u64,
}

/// Metadata of a piece.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PieceMeta {
    /// Oracle database name (`DB_NAME`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Oracle database id (`DBID`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbid: Option<u64>,
    /// What the piece holds.
    #[serde(default)]
    pub file_type: FileType,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// Figures of the write that stored the piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<WriteStats>,
    /// Free-form attributes (RMAN tag, SBT comment, datafile identity, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The authenticated header of a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestHeader {
    /// Manifest format version ([`VERSION`] when written by this build).
    pub version: u32,
    /// The piece's name (any bytes a name may hold: RMAN handles contain `/`).
    pub name: String,
    /// Bytes of the piece.
    pub size: u64,
    /// How the piece was cut into chunks.
    pub chunker: ChunkerSpec,
    /// The piece's metadata.
    pub meta: PieceMeta,
    /// Fingerprint of the dedup group's chunk-id key that wrote the piece
    /// ([`Keys::id_key_fingerprint`]); absent when ids are the repository's own (local
    /// repositories, legacy groups, every piece from before groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_key: Option<String>,
    /// That group's secret, sealed with the repository's encryption key
    /// ([`Keys::sealed_group_secret`]): a holder of the repository key reads the piece
    /// from its manifest alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_secret: Option<String>,
    /// Present when the piece was stored demultiplexed (version 3): which lane each chunk
    /// belongs to. The chunks then add up to [`Demux::stored`] bytes and the layout lane
    /// says how they make the piece's `size` bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demux: Option<Demux>,
}

/// The lane table of a demultiplexed piece (docs/design.md, "Demultiplexed pieces").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demux {
    /// Bytes of all lanes: what the chunks add up to.
    pub stored: u64,
    /// The lane of each chunk in manifest order, run-length coded as (lane, chunks);
    /// `None` is the layout lane.
    pub runs: Vec<(Option<u32>, u32)>,
}

impl Demux {
    /// The lane of each chunk, in manifest order.
    pub fn chunk_lanes(&self) -> impl Iterator<Item = Option<u32>> + '_ {
        self.runs
            .iter()
            .flat_map(|&(lane, n)| std::iter::repeat_n(lane, n as usize))
    }
}

/// One chunk of a piece, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    /// The chunk's id.
    pub id: ChunkId,
    /// Its plaintext length.
    pub len: u32,
}

/// The recipe of a piece: its header and chunk list, MAC'd with the repository key
/// (see `docs/design.md` for the layout).
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The header.
    pub header: ManifestHeader,
    /// The chunks, in stream order; their lengths add up to the header's size.
    pub chunks: Vec<ChunkRef>,
}

/// Object key of a piece's manifest: names may hold any bytes (RMAN handles
/// contain '/'), so the key is a hash of the name, never the name itself.
pub fn object_key(name: &str) -> String {
    let h = blake3::hash(name.as_bytes()).to_hex();
    format!("pieces/{}/{}", &h[..2], h)
}

pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(RepoError::InvalidArgument("piece name is empty".into()));
    }
    if name.len() > 1024 {
        return Err(RepoError::InvalidArgument(format!(
            "piece name is {} bytes long; the limit is 1024",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(RepoError::InvalidArgument(
            "piece name contains a NUL byte".into(),
        ));
    }
    Ok(())
}

impl Manifest {
    /// The keys whose chunk ids are this piece's: the dedup group's its manifest seals, or
    /// the repository's own; `object` names the manifest in errors.
    pub fn keys(&self, keys: &Keys, object: &str) -> Result<Keys> {
        let found = match (&self.header.group_secret, &self.header.id_key) {
            (Some(sealed), Some(_)) => keys.for_sealed_group(sealed, object)?,
            (None, None) => keys.without_group(),
            _ => {
                return Err(RepoError::corrupt(
                    object,
                    "the manifest names a group id key without its sealed secret, or the reverse",
                ));
            }
        };
        if found.is_group() && self.header.id_key != Some(found.id_key_fingerprint()) {
            return Err(RepoError::corrupt(
                object,
                "the manifest's group secret does not give the id key it names",
            ));
        }
        Ok(found)
    }

    /// The manifest's bytes, with its MAC.
    pub fn encode(&self, keys: &Keys) -> Result<Bytes> {
        let header =
            serde_json::to_vec(&self.header).map_err(|e| RepoError::json("manifest header", e))?;
        let mut out = Vec::with_capacity(8 + 4 + header.len() + 8 + self.chunks.len() * ENTRY + 32);
        out.extend_from_slice(MAGIC);
        let max = if self.header.demux.is_some() {
            MAX_HEADER_DEMUX
        } else {
            MAX_HEADER
        };
        let hlen = u32::try_from(header.len())
            .ok()
            .filter(|&n| n as usize <= max)
            .ok_or_else(|| {
                RepoError::InvalidArgument(format!(
                    "the manifest header of piece {:?} is {} bytes, beyond the {max} a manifest holds",
                    self.header.name,
                    header.len()
                ))
            })?;
        out.extend_from_slice(&hlen.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.chunks.len() as u64).to_le_bytes());
        for c in &self.chunks {
            out.extend_from_slice(c.id.as_bytes());
            out.extend_from_slice(&c.len.to_le_bytes());
        }
        let mac = keys.mac(&[&out]);
        out.extend_from_slice(&mac);
        Ok(Bytes::from(out))
    }

    /// Parse without checking the MAC (for a server that holds no key).
    pub fn decode_unverified(bytes: &[u8], object: &str) -> Result<Manifest> {
        let bad = |r: &str| RepoError::corrupt(object, format!("manifest {r}"));
        let truncated = |t: Truncated| bad(&t.to_string());
        let mut r = LeReader::new(bytes);
        if r.array::<8>().ok().as_ref() != Some(MAGIC) {
            return Err(bad("magic missing"));
        }
        let hlen = r.u32().map_err(truncated)?;
        let header = usize::try_from(hlen)
            .ok()
            .filter(|&n| n <= MAX_HEADER_DEMUX)
            .and_then(|n| r.take(n).ok())
            .ok_or_else(|| bad("header length out of range"))?;
        let header_len = header.len();
        let header: ManifestHeader =
            serde_json::from_slice(header).map_err(|e| bad(&format!("header: {e}")))?;
        if header.demux.is_none() && header_len > MAX_HEADER {
            return Err(bad("header length out of range"));
        }
        if header.version > VERSION {
            return Err(RepoError::UnsupportedVersion {
                what: "manifest",
                found: header.version,
                supported: VERSION,
            });
        }
        let count = r.u64().map_err(truncated)?;
        let table = r
            .remaining()
            .checked_sub(MAC_LEN)
            .ok_or_else(|| bad("MAC missing"))?;
        if count.checked_mul(ENTRY as u64) != u64::try_from(table).ok() {
            return Err(bad("chunk table length does not match its count"));
        }
        let mut chunks = Vec::with_capacity(table / ENTRY);
        for _ in 0..count {
            chunks.push(ChunkRef {
                id: ChunkId(r.array().map_err(truncated)?),
                len: r.u32().map_err(truncated)?,
            });
        }
        let total: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
        match &header.demux {
            None if total != header.size => {
                return Err(bad("chunk lengths do not add up to the piece size"));
            }
            None => {}
            Some(_) if header.version < VERSION_DEMUX => {
                return Err(bad("a lane table in a manifest older than version 3"));
            }
            Some(d) => {
                if total != d.stored {
                    return Err(bad("chunk lengths do not add up to the lanes' size"));
                }
                let counted = d
                    .runs
                    .iter()
                    .try_fold(0u64, |n, &(_, k)| n.checked_add(u64::from(k)));
                if counted != Some(count) {
                    return Err(bad("the lane table does not name one lane per chunk"));
                }
            }
        }
        validate_name(&header.name).map_err(|e| bad(&e.to_string()))?;
        Ok(Manifest { header, chunks })
    }

    /// Parse and check the MAC with the repository keys.
    pub fn decode(bytes: &[u8], keys: &Keys, object: &str) -> Result<Manifest> {
        let m = Self::decode_unverified(bytes, object)?;
        // decode_unverified found the MAC's bytes at the end.
        let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        if keys.mac(&[body]) != mac {
            return Err(RepoError::corrupt(
                object,
                format!(
                    "manifest of piece {:?} failed authentication (damaged or tampered with)",
                    m.header.name
                ),
            ));
        }
        Ok(m)
    }

    /// The piece's name.
    pub fn name(&self) -> &str {
        &self.header.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(n: usize) -> Manifest {
        let chunks: Vec<ChunkRef> = (0..n)
            .map(|i| ChunkRef {
                id: ChunkId([u8::try_from(i).unwrap(); 32]),
                len: 1000 + u32::try_from(i).unwrap(),
            })
            .collect();
        Manifest {
            header: ManifestHeader {
                version: VERSION,
                name: "db/ORCL/piece_1".into(),
                size: chunks.iter().map(|c| c.len as u64).sum(),
                chunker: ChunkerSpec::default(),
                meta: PieceMeta {
                    database: Some("ORCL".into()),
                    dbid: Some(1234),
                    file_type: FileType::Datafile,
                    created: 1_700_000_000,
                    ..Default::default()
                },
                id_key: None,
                group_secret: None,
                demux: None,
            },
            chunks,
        }
    }

    #[test]
    fn round_trip_and_mac() {
        let keys = Keys::from_master([1u8; 32]);
        let m = sample(10);
        let bytes = m.encode(&keys).unwrap();
        assert_eq!(Manifest::decode(&bytes, &keys, "o").unwrap(), m);
        let other = Keys::from_master([2u8; 32]);
        assert!(Manifest::decode(&bytes, &other, "o").is_err());
        for pos in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[pos] ^= 0x10;
            assert!(Manifest::decode(&bad, &keys, "o").is_err(), "flip at {pos}");
        }
    }

    /// A manifest cut short anywhere (a partial upload, a short read) is a corrupt object
    /// named in the error, never a panic; the whole manifest still decodes.
    #[test]
    fn every_truncation_is_a_corrupt_object() {
        let keys = Keys::from_master([1u8; 32]);
        for n in [0, 1, 3] {
            let bytes = sample(n).encode(&keys).unwrap();
            assert!(Manifest::decode(&bytes, &keys, "pieces/x").is_ok());
            for cut in 0..bytes.len() {
                let e = Manifest::decode(&bytes[..cut], &keys, "pieces/x").unwrap_err();
                assert!(
                    matches!(&e, RepoError::CorruptObject { object, .. } if object == "pieces/x"),
                    "{n} chunks cut at {cut}: {e:?}"
                );
            }
        }
    }

    /// A lane table must name one lane per chunk, and the chunks add up to the lanes' size,
    /// not the piece's; only version 3 may carry one.
    #[test]
    fn a_lane_table_is_checked() {
        let keys = Keys::from_master([1u8; 32]);
        let mut m = sample(3);
        let stored = m.header.size;
        m.header.version = VERSION_DEMUX;
        m.header.size = 5;
        m.header.demux = Some(Demux {
            stored,
            runs: vec![(Some(7), 2), (None, 1)],
        });
        let back = Manifest::decode(&m.encode(&keys).unwrap(), &keys, "o").unwrap();
        assert_eq!(back, m);
        let lanes: Vec<_> = back.header.demux.unwrap().chunk_lanes().collect();
        assert_eq!(lanes, vec![Some(7), Some(7), None]);
        for bad in [
            |m: &mut Manifest| m.header.demux.as_mut().unwrap().runs[0].1 = 3,
            |m: &mut Manifest| m.header.demux.as_mut().unwrap().stored += 1,
            |m: &mut Manifest| m.header.version = VERSION_GROUP_IDS,
            |m: &mut Manifest| m.header.demux = None,
        ] {
            let mut b = m.clone();
            bad(&mut b);
            let e = Manifest::decode(&b.encode(&keys).unwrap(), &keys, "o").unwrap_err();
            assert!(matches!(e, RepoError::CorruptObject { .. }), "{e:?}");
        }
    }

    #[test]
    fn object_keys_hide_names() {
        let k = object_key("a/b/../c");
        assert!(k.starts_with("pieces/"));
        assert!(!k.contains(".."));
        assert_ne!(object_key("a"), object_key("b"));
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Manifest::decode_unverified(&data, "o");
        }
    }
}
