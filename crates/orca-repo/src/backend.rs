//! The storage side of a repository, as a client sees it.
//!
//! Writers and readers work against this trait so the same pipeline runs
//! over a local repository ([`crate::store::Store`]) or a remote vault. The
//! operations are chosen for a high-latency link: batched probes, batched
//! uploads and reads, one commit per piece.

use async_trait::async_trait;
use bytes::Bytes;

use crate::codec::Codec;
use crate::config::RepoConfig;
use crate::error::Result;
use crate::id::ChunkId;
use crate::index::{PieceFilter, PieceInfo, SessionGrant};
use crate::keys::WrappedKey;

/// A chunk as the client encoded it: id, plaintext length, codec payload.
/// A delta payload names its base inside (see [`crate::Codec`]); servers
/// read it with `Codec::payload_base`, no key needed.
#[derive(Clone, Debug)]
pub struct EncodedChunk {
    /// The chunk's id (keyed hash of its plaintext).
    pub id: ChunkId,
    /// Length of the plaintext chunk.
    pub raw_len: u32,
    /// The codec payload: compressed and encrypted, full or delta.
    pub payload: Bytes,
}

impl EncodedChunk {
    /// The full chunk a delta payload builds on; `None` for a full chunk.
    pub fn base(&self) -> Option<ChunkId> {
        crate::codec::Codec::payload_base(&self.payload)
    }
}

/// What a client needs from the storage side: a local [`crate::Store`] or the vault over
/// HTTP. Every method is safe to retry: uploads are idempotent and a commit either lands
/// whole or changes nothing.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// Human-readable location for messages (a path or a URL).
    fn location(&self) -> String;

    /// The repository configuration.
    async fn config(&self) -> Result<RepoConfig>;

    /// Passphrase-wrapped copies of the master key.
    async fn wrapped_keys(&self) -> Result<Vec<WrappedKey>>;

    /// The secret of the dedup group the caller writes and reads in: chunk ids are keyed by
    /// it beside the repository key ([`crate::Keys::for_group`]). `None` where ids are the
    /// repository's own: a local repository, a vault from before groups, a legacy group.
    async fn group_secret(&self) -> Result<Option<[u8; 32]>> {
        Ok(None)
    }

    /// Which of `ids` the repository does not hold ("probe").
    async fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>>;

    /// Store chunks. Idempotent: chunks already held are ignored.
    async fn put_chunks(&self, chunks: Vec<EncodedChunk>) -> Result<()>;

    /// Make every chunk accepted so far durable.
    async fn flush(&self) -> Result<()>;

    /// Commit a manifest atomically. Fails with `MissingChunks` (listing them)
    /// when a referenced chunk is not stored, and with `PieceExists` when the
    /// name is taken; in both cases nothing changes.
    async fn commit(&self, manifest: Bytes) -> Result<PieceInfo>;

    /// The encoded manifest of a piece, if it exists.
    async fn manifest(&self, name: &str) -> Result<Option<Bytes>>;

    /// The committed pieces `filter` selects, in name order.
    async fn list(&self, filter: &PieceFilter) -> Result<Vec<PieceInfo>>;

    /// Delete a piece; `false` when it did not exist. Its chunks become
    /// garbage for the collector once nothing else references them.
    async fn delete(&self, name: &str) -> Result<bool>;

    /// Codec payloads of `ids`, in order.
    async fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Bytes>>;

    /// The first bytes of each payload of `ids` that hold its unit values
    /// ([`Codec::values_prefix_len`]), in order; `None` for a payload written without them.
    /// What a writer reads to learn an anchor's values without its body. The bytes are
    /// checked by [`Codec::open_values`] (authenticated), not here. This default reads whole
    /// payloads; a backend that can read part of one overrides it.
    async fn get_values(&self, ids: &[ChunkId]) -> Result<Vec<Option<Bytes>>> {
        Ok(self
            .get_chunks(ids)
            .await?
            .into_iter()
            .map(|p| {
                Codec::values_prefix_len(&p)
                    .filter(|&n| n <= p.len())
                    .map(|n| p.slice(..n))
            })
            .collect())
    }

    /// Announce a writer: until it ends or stops renewing (10 minutes), the
    /// garbage collector keeps every chunk referenced since the session
    /// began, or since `lineage_since` (the `started` time of the session
    /// that recorded the lineage the writer will rely on) when the grant says
    /// that lineage is still trustworthy.
    async fn begin_session(&self, holder: &str, lineage_since: Option<i64>)
    -> Result<SessionGrant>;

    /// Extend a session to a lineage recorded at `since`; `false` when that
    /// lineage must not be trusted (a collection may have swept its chunks).
    async fn adopt_lineage(&self, session: u64, since: i64) -> Result<bool>;

    /// Keep a session alive; `false` when it expired.
    async fn renew_session(&self, session: u64) -> Result<bool>;

    /// End a writer session: it no longer holds garbage collection back.
    async fn end_session(&self, session: u64) -> Result<()>;
}
