//! What travels between the vault and its clients (documented in docs/design.md, "Vault").
//!
//! JSON for requests and answers, except chunk payloads, which go as one binary body:
//!
//! ```text
//! upload  (PUT  /api/v1/chunks):       repeat { id [32] | raw_len u32 LE | payload_len u32 LE | payload }
//! read    (POST /api/v1/chunks/read):  JSON {"ids": [hex, ...]} -> repeat { payload_len u32 LE | payload }
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use orca_repo::{ChunkId, EncodedChunk};
use serde::{Deserialize, Serialize};

pub const API: &str = "/api/v1";

/// Largest body the vault accepts (an upload batch of encoded chunks).
pub const MAX_BODY: usize = 64 << 20;

/// Error answer of every failed request.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub hint: String,
    /// Chunks a refused commit lacks (hex ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Ids {
    pub ids: Vec<String>,
}

pub fn ids_to_hex(ids: &[ChunkId]) -> Vec<String> {
    ids.iter().map(|i| i.to_hex()).collect()
}

pub fn ids_from_hex(ids: &[String]) -> Result<Vec<ChunkId>, String> {
    ids.iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| ChunkId::from_slice(&b))
                .ok_or_else(|| format!("{h:?} is not a 64-digit hex chunk id"))
        })
        .collect()
}

pub fn encode_chunks(chunks: &[EncodedChunk]) -> Bytes {
    let n: usize = chunks.iter().map(|c| 40 + c.payload.len()).sum();
    let mut b = BytesMut::with_capacity(n);
    for c in chunks {
        b.put_slice(c.id.as_bytes());
        b.put_u32_le(c.raw_len);
        b.put_u32_le(c.payload.len() as u32);
        b.put_slice(&c.payload);
    }
    b.freeze()
}

pub fn decode_chunks(mut body: Bytes) -> Result<Vec<EncodedChunk>, String> {
    let mut out = Vec::new();
    while body.has_remaining() {
        if body.remaining() < 40 {
            return Err(format!(
                "truncated chunk record header ({} bytes left)",
                body.remaining()
            ));
        }
        let id = ChunkId::from_slice(&body[..32]).ok_or("bad chunk id")?;
        body.advance(32);
        let raw_len = body.get_u32_le();
        let len = body.get_u32_le() as usize;
        if body.remaining() < len {
            return Err(format!(
                "chunk {} declares {len} payload bytes, {} remain",
                id.short(),
                body.remaining()
            ));
        }
        let payload = body.split_to(len);
        out.push(EncodedChunk {
            id,
            raw_len,
            payload,
        });
    }
    Ok(out)
}

pub fn encode_payloads(payloads: &[Bytes]) -> Bytes {
    let n: usize = payloads.iter().map(|p| 4 + p.len()).sum();
    let mut b = BytesMut::with_capacity(n);
    for p in payloads {
        b.put_u32_le(p.len() as u32);
        b.put_slice(p);
    }
    b.freeze()
}

pub fn decode_payloads(mut body: Bytes, expected: usize) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::with_capacity(expected);
    while body.has_remaining() {
        if body.remaining() < 4 {
            return Err("truncated payload length".into());
        }
        let len = body.get_u32_le() as usize;
        if body.remaining() < len {
            return Err("truncated payload".into());
        }
        out.push(body.split_to(len));
    }
    if out.len() != expected {
        return Err(format!("asked for {expected} chunks, got {}", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_framing_round_trips_and_rejects_truncation() {
        let c = EncodedChunk {
            id: ChunkId::from_slice(&[7u8; 32]).unwrap(),
            raw_len: 10,
            payload: Bytes::from_static(b"payload"),
        };
        let b = encode_chunks(&[c.clone(), c.clone()]);
        let d = decode_chunks(b.clone()).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].payload, c.payload);
        assert!(decode_chunks(b.slice(..b.len() - 1)).is_err());
        assert!(decode_chunks(b.slice(..20)).is_err());
        let p = encode_payloads(&[Bytes::from_static(b"a"), Bytes::new()]);
        assert_eq!(
            decode_payloads(p.clone(), 2).unwrap()[0],
            Bytes::from_static(b"a")
        );
        assert!(decode_payloads(p, 3).is_err());
    }
}
