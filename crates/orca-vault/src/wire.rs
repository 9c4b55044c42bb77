//! What travels between the vault and its clients (served as OpenAPI at `/api/v1/openapi.json`,
//! printed by `orca vault openapi`).
//!
//! JSON for requests and answers, except chunk payloads and manifests, which go as binary bodies:
//!
//! ```text
//! upload  (PUT  /api/v1/chunks):       repeat { id [32] | raw_len u32 LE | payload_len u32 LE | payload }
//! read    (POST /api/v1/chunks/read):  JSON {"ids": [hex, ...]} -> repeat { payload_len u32 LE | payload }
//! ```
//!
//! The JSON types derive their OpenAPI schemas (feature `server`), so the server, the client
//! and the published document share one definition.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use orca_repo::{ChunkId, EncodedChunk};
use serde::{Deserialize, Serialize};

pub(crate) const API: &str = "/api/v1";

/// The piece label the SBT library sets to the RMAN command id of the backup that wrote the
/// piece (`ORCA_COMMAND_ID` in the channel's ENV): a piece committed but never catalogued by
/// RMAN is found by it.
pub const COMMAND_ID_LABEL: &str = "orca.command_id";

/// Request header naming the backup (RMAN command id) the chunks of an upload belong to; the
/// vault counts what it receives per command id ([`Transfer`]).
pub const COMMAND_ID_HEADER: &str = "x-orca-command-id";

/// What the vault received for one backup (an RMAN command id, kept across a full's
/// attempts), counted as the chunks arrived, pieces committed or not. Counted in memory: a
/// vault restart starts the figures again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Transfer {
    /// The RMAN command id.
    pub command_id: String,
    /// Chunks received.
    pub received_chunks: u64,
    /// Encoded bytes received.
    pub received_bytes: u64,
    /// Chunks received that the vault already held: sent twice.
    pub resent_chunks: u64,
    /// Encoded bytes of the chunks sent twice.
    pub resent_bytes: u64,
    /// Encoded bytes the backup added to the vault (received less sent twice).
    pub stored_bytes: u64,
}

/// Largest body the vault accepts: an upload batch of encoded chunks, or a manifest.
pub const MAX_BODY: usize = 64 << 20;
/// Largest JSON request body (a probe or read of [`MAX_IDS`] ids fits with room to spare).
pub const MAX_JSON_BODY: usize = 2 << 20;
/// Most chunk ids one probe (`POST /chunks/missing`) may ask about, and most chunks one upload
/// batch (`PUT /chunks`) may hold.
pub const MAX_IDS: usize = 16384;
/// Most chunk ids one read (`POST /chunks/read`) may ask for.
pub const MAX_READ_IDS: usize = 1024;
/// Most bytes one read's answer may hold (its payloads and their length prefixes); a read
/// over it is refused with 413, and the client asks again for fewer ids.
pub const MAX_READ_BYTES: usize = 64 << 20;
/// Longest piece name, in bytes.
pub const MAX_PIECE_NAME: usize = 1024;
/// Longest database name (Oracle's `DB_UNIQUE_NAME`; `DB_NAME` itself has at most 8).
pub const MAX_DATABASE_NAME: usize = 30;

/// Whether `db` may name a database: Oracle's rules for `DB_NAME`, 1 to 30 ASCII letters,
/// digits, `_`, `$` or `#`, starting with a letter. A database name never holds `/`, so the
/// database a piece name or a writer session's holder starts with is unambiguous.
pub fn check_database_name(db: &str) -> Result<(), String> {
    let ok = db.len() <= MAX_DATABASE_NAME
        && db.starts_with(|c: char| c.is_ascii_alphabetic())
        && db
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_$#".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{db:?} is not a database name: use Oracle's DB_NAME rules, 1 to \
             {MAX_DATABASE_NAME} letters, digits, '_', '$' or '#', starting with a letter"
        ))
    }
}

/// The database a piece name stored through the vault starts with (`DBNAME/handle`), once
/// the name is checked ([`check_piece_name`]).
pub fn piece_database(name: &str) -> Result<&str, String> {
    check_piece_name(name)?;
    let Some((db, rest)) = name.split_once('/') else {
        return Err(format!(
            "piece name {name:?} does not start with its database: the vault keeps pieces \
             as DBNAME/handle"
        ));
    };
    if rest.is_empty() {
        return Err(format!(
            "piece name {name:?} has nothing after its database"
        ));
    }
    check_database_name(db).map_err(|e| format!("piece name {name:?}: {e}"))?;
    Ok(db)
}

/// Whether `name` may name a piece at all: 1 to [`MAX_PIECE_NAME`] bytes and no control
/// character (RMAN handles never hold one, and a name reaches log lines).
pub fn check_piece_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a piece name cannot be empty".into());
    }
    if name.len() > MAX_PIECE_NAME {
        return Err(format!(
            "a piece name of {} bytes is over the limit of {MAX_PIECE_NAME}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "piece name {name:?} holds a control character, which RMAN handles never do"
        ));
    }
    Ok(())
}

/// Error answer of every failed request; a refused request changed nothing.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// What to do about it.
    pub hint: String,
    /// Chunks a refused piece commit lacks (hex ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Pieces a refused recovery point names that are not committed for its database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_pieces: Vec<String>,
}

/// Chunk ids, 64 hex digits each.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub(crate) struct Ids {
    pub ids: Vec<String>,
}

impl Ids {
    pub fn of(ids: &[ChunkId]) -> Ids {
        Ids {
            ids: ids_to_hex(ids),
        }
    }
}

/// Who a token is (`GET /api/v1/whoami`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// The database whose pieces the token may touch (every database for admin).
    pub database: String,
    /// backup, restore or admin.
    pub scope: String,
    /// The dedup group of that database (for an admin token: of the database it was made
    /// for); absent from a vault older than groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The group's secret, 64 hex digits, which the client keys chunk ids with beside the
    /// repository key; absent for the legacy group (ids keyed by the repository key alone).
    /// Only tokens of the group's databases (and admin tokens) are told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_secret: Option<String>,
}

/// A writer announcing itself (`POST /api/v1/sessions`): garbage collection
/// keeps what it relies on until it ends.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub(crate) struct SessionRequest {
    /// What the writer writes (a piece name), shown by `orca vault gc`.
    pub holder: String,
    /// `since` of the lineage (fingerprint cache entry) the writer wants to
    /// rely on, in the vault's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage_since: Option<i64>,
}

/// The vault's answer to a new session.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub(crate) struct SessionGrantBody {
    pub id: u64,
    /// The vault's clock when the session began (Unix seconds).
    pub started: i64,
    /// Whether the lineage asked for may be trusted (no collection since it
    /// was recorded could have swept its chunks).
    pub lineage_ok: bool,
}

/// A lineage a running session wants to rely on.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub(crate) struct LineageRequest {
    pub since: i64,
}

/// Whether a session request took effect.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub(crate) struct SessionAnswer {
    pub ok: bool,
}

/// What a recovery point restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryPointKind {
    /// A level 0 (or full) backup.
    Full,
    /// A level 1 incremental backup.
    Incremental,
    /// Archived redo logs.
    Archivelog,
    /// Image copies (the backup-store appliance).
    ImageCopy,
}

impl RecoveryPointKind {
    /// The name as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryPointKind::Full => "full",
            RecoveryPointKind::Incremental => "incremental",
            RecoveryPointKind::Archivelog => "archivelog",
            RecoveryPointKind::ImageCopy => "image-copy",
        }
    }
}

/// A recovery point as its creator (the agent, the appliance) submits it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct NewRecoveryPoint {
    /// Unique id (letters, digits, `-`, `_`, `.`); the vault makes one up when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The database's name.
    pub database: String,
    /// The database's id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbid: Option<u64>,
    /// What the point restores.
    pub kind: RecoveryPointKind,
    /// Unix seconds; the vault's clock when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    /// Lowest SCN the backup needs (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_scn: Option<u64>,
    /// SCN the database is consistent at after recovery (exclusive end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scn: Option<u64>,
    /// Committed pieces of `database` that make up the point.
    pub pieces: Vec<String>,
    /// Free-form attributes (RMAN tag, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Figures the vault adds up from the recovery point's pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RecoveryPointStats {
    /// Pieces in the point.
    pub pieces: u64,
    /// Bytes of the pieces as RMAN wrote them.
    pub bytes: u64,
    /// Encoded bytes the pieces added to the repository when written.
    pub stored: u64,
}

/// A recovery point as the vault keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RecoveryPoint {
    /// The point's id.
    pub id: String,
    /// The database's name.
    pub database: String,
    /// The database's id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbid: Option<u64>,
    /// What the point restores.
    pub kind: RecoveryPointKind,
    /// Unix seconds.
    pub created: i64,
    /// Lowest SCN the backup needs (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_scn: Option<u64>,
    /// SCN the database is consistent at after recovery (exclusive end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scn: Option<u64>,
    /// The committed pieces that make up the point.
    pub pieces: Vec<String>,
    /// Free-form attributes (RMAN tag, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Figures added up from the pieces.
    pub stats: RecoveryPointStats,
}

/// Which recovery points to list (oldest first, then in the order recorded).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct RecoveryPointFilter {
    /// Only this database's; a database's token sees only its own anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Only points of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RecoveryPointKind>,
    /// Created at or after (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Created before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// Where a job is. `queued` -> `running` -> `succeeded` | `failed`; a queued job may also fail
/// at once (its agent is down). A finished job does not change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for an agent.
    Queued,
    /// An agent is running it.
    Running,
    /// Finished without error.
    Succeeded,
    /// Finished with an error (in its message).
    Failed,
}

impl JobState {
    /// The name as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }

    /// Succeeded or failed: the job changes no more.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }

    /// Whether a job in this state may be moved to `next`.
    pub fn may_become(self, next: JobState) -> bool {
        match self {
            JobState::Queued => next != JobState::Succeeded,
            JobState::Running => next != JobState::Queued,
            JobState::Succeeded | JobState::Failed => false,
        }
    }
}

/// A job as its requester submits it; it starts `queued`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct NewJob {
    /// Unique id (letters, digits, `-`, `_`, `.`); the vault makes one up when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The database the job is for.
    pub database: String,
    /// What the job does, e.g. `backup-full`, `backup-incremental`, `archivelog`, `restore`.
    pub kind: String,
    /// A first message, shown with the job.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Bytes the job is expected to read, when estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_estimated: Option<u64>,
    /// Who asked: a manual request fails at once when no agent runs; a scheduled one waits.
    #[serde(default)]
    pub trigger: JobTrigger,
    /// Unix seconds: a job still queued then fails (the end of a scheduled job's window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
}

/// Who asked for a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobTrigger {
    /// Asked for by a person (`orca agent backup`, the API).
    #[default]
    Manual,
    /// Started by an agent's schedule.
    Scheduled,
}

impl JobTrigger {
    /// The name as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            JobTrigger::Manual => "manual",
            JobTrigger::Scheduled => "scheduled",
        }
    }
}

/// How far a job got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct JobProgress {
    /// Bytes read so far.
    pub bytes_done: u64,
    /// Bytes the job is expected to read, when estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_estimated: Option<u64>,
}

/// A job record. Times are Unix seconds, from the vault's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Job {
    /// The job's id.
    pub id: String,
    /// The database the job is for.
    pub database: String,
    /// What the job does (see [`NewJob::kind`]).
    pub kind: String,
    /// Where the job is.
    pub state: JobState,
    /// When the job was asked for.
    pub requested: i64,
    /// When an agent started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<i64>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    /// The latest message: what it is doing, or why it failed.
    #[serde(default)]
    pub message: String,
    /// How far it got.
    pub progress: JobProgress,
    /// Who asked for it.
    #[serde(default)]
    pub trigger: JobTrigger,
    /// A job still queued then fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
    /// What the job found and did, for people and tools (tag, resume, bytes sent...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

/// A change to a job: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct JobUpdate {
    /// The new state; it must be one the job may move to ([`JobState::may_become`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// The new message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Bytes read so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<u64>,
    /// Bytes the job is expected to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_estimated: Option<u64>,
    /// Merged into the job's details (a key given again is replaced).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

/// Which jobs to list (oldest request first, then in the order recorded).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct JobFilter {
    /// Only this database's; a database's token sees only its own anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Only jobs in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Requested at or after (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

/// Chunk ids as 64-digit lowercase hex.
pub fn ids_to_hex(ids: &[ChunkId]) -> Vec<String> {
    ids.iter().map(|i| i.to_hex()).collect()
}

pub(crate) fn ids_from_hex(ids: &[String]) -> Result<Vec<ChunkId>, String> {
    ids.iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| ChunkId::from_slice(&b))
                .ok_or_else(|| format!("{h:?} is not a 64-digit hex chunk id"))
        })
        .collect()
}

pub(crate) fn encode_chunks(chunks: &[EncodedChunk]) -> Bytes {
    let n: usize = chunks.iter().map(|c| 40 + c.payload.len()).sum();
    let mut b = BytesMut::with_capacity(n);
    for c in chunks {
        b.put_slice(c.id.as_bytes());
        b.put_u32_le(c.raw_len);
        b.put_u32_le(payload_len(&c.payload));
        b.put_slice(&c.payload);
    }
    b.freeze()
}

/// Parse an upload body (see the module documentation); an error names what is malformed.
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

/// A payload's length on the wire: a payload is one encoded chunk (at most a 16 MiB chunk
/// plus codec overhead, and a pack entry's u32 length when read back), far below u32::MAX.
#[allow(clippy::cast_possible_truncation)]
fn payload_len(p: &[u8]) -> u32 {
    p.len() as u32
}

/// The body answering a chunk read: each payload with its length, in order.
pub fn encode_payloads(payloads: &[Bytes]) -> Bytes {
    let n: usize = payloads.iter().map(|p| 4 + p.len()).sum();
    let mut b = BytesMut::with_capacity(n);
    for p in payloads {
        b.put_u32_le(payload_len(p));
        b.put_slice(p);
    }
    b.freeze()
}

pub(crate) fn decode_payloads(mut body: Bytes, expected: usize) -> Result<Vec<Bytes>, String> {
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
    fn database_names_follow_oracle_and_piece_names_start_with_one() {
        for ok in ["ORCL", "a", "DB_1$#", &"X".repeat(30)] {
            check_database_name(ok).unwrap();
        }
        for bad in [
            "",
            "1DB",
            "_DB",
            "DBS/x",
            "DB-1",
            "DB 1",
            "DB\n",
            &"X".repeat(31),
            "ÉTÉ",
        ] {
            assert!(check_database_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(piece_database("ORCL/a/../b").unwrap(), "ORCL");
        for bad in [
            "ORCL",
            "ORCL/",
            "/x",
            "../x",
            "or-cl/x",
            "ORCL/a\r\nb",
            "ORCL/\u{85}",
            &format!("ORCL/{}", "x".repeat(1020)),
        ] {
            assert!(piece_database(bad).is_err(), "{bad:?}");
        }
    }

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

/// What an agent says every few seconds for a database it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    /// The agent's name (its host, by default).
    pub agent: String,
    /// The agent's version.
    pub version: String,
    /// Seconds until the next heartbeat; the agent counts as down after three missed.
    pub interval_secs: u64,
    /// Alerts the agent raises (a RAC instance went down during a backup...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    /// The longest the database should go without a new recovery point, from its schedule
    /// (shortest backup interval plus the start window); none when nothing is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_secs: Option<u64>,
}

/// The last heartbeat for a database, as the vault saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AgentStatus {
    /// The database.
    pub database: String,
    /// The agent's name.
    pub agent: String,
    /// The agent's version.
    pub version: String,
    /// Seconds between its heartbeats.
    pub interval_secs: u64,
    /// Unix seconds of the last heartbeat, by the vault's clock.
    pub seen: i64,
    /// Whether a heartbeat arrived within three intervals of now.
    pub alive: bool,
    /// Alerts the agent raised in its last heartbeat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    /// The recovery point objective the agent's schedule implies, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_secs: Option<u64>,
}

impl AgentStatus {
    /// Alive when the last heartbeat is at most three intervals old at `now`.
    pub fn alive_at(&self, now: i64) -> bool {
        let interval = i64::try_from(self.interval_secs.max(1)).unwrap_or(i64::MAX);
        now - self.seen <= interval.saturating_mul(3)
    }
}

/// What the web console shows: every database the token may see, with its agent, jobs,
/// recovery points and exposure, the repository's savings, and what needs attention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Overview {
    /// Unix seconds when this was computed, by the vault's clock.
    pub generated: i64,
    /// The repository as a whole (all databases: chunks are shared).
    pub storage: StorageOverview,
    /// One entry per database, by name.
    pub databases: Vec<DatabaseOverview>,
    /// What needs attention, most severe first.
    pub alerts: Vec<Alert>,
    /// Bytes protected and stored over time, one entry per recovery point, oldest first.
    pub history: Vec<HistoryPoint>,
    /// The most recent jobs (at most 50), newest first.
    pub jobs: Vec<Job>,
}

/// The repository's size and savings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct StorageOverview {
    /// Bytes of every committed piece, as RMAN wrote them.
    pub logical_bytes: u64,
    /// Bytes the repository's packs take.
    pub stored_bytes: u64,
    /// Committed pieces.
    pub pieces: u64,
    /// Distinct chunks stored.
    pub chunks: u64,
}

/// One database as the console shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DatabaseOverview {
    /// DB_NAME.
    pub database: String,
    /// Its agent's last heartbeat, if an agent ever served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentStatus>,
    /// Recovery points held.
    pub recovery_points: u64,
    /// Unix seconds of the newest recovery point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_point: Option<i64>,
    /// Seconds since the newest recovery point (since never: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure_secs: Option<i64>,
    /// The objective the exposure is measured against: the agent's schedule, else one day.
    pub rpo_secs: u64,
    /// Whether the exposure exceeds the objective (or no point exists).
    pub exposed: bool,
    /// Bytes of its recovery points' pieces, as RMAN wrote them.
    pub logical_bytes: u64,
    /// Bytes its recovery points added to the repository.
    pub stored_bytes: u64,
    /// The state of its newest job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<JobState>,
}

/// Something that needs an administrator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Alert {
    /// The database concerned.
    pub database: String,
    /// `critical` or `warning`.
    pub severity: String,
    /// What is wrong, in words.
    pub message: String,
}

/// Totals after one recovery point.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct HistoryPoint {
    /// Unix seconds.
    pub time: i64,
    /// Bytes protected so far (sum of the recovery points' logical bytes).
    pub logical_bytes: u64,
    /// Bytes stored for them so far.
    pub stored_bytes: u64,
}
