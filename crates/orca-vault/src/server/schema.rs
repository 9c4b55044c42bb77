//! The `orca_repo` catalog types as the vault sends them. They live in a crate without
//! `utoipa`, so the vault answers with these copies, which derive their OpenAPI schema; the
//! conversions take the originals apart field by field, so a field added there does not
//! compile here until it is added to the copy (and to the document), and a test checks that
//! both serialise alike.

use std::collections::BTreeMap;

use orca_repo::{FileType, PieceFilter, PieceInfo};
use orca_repo::{PieceMeta, WriteStats};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What kind of content a piece holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[schema(as = FileType)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileTypeSchema {
    Datafile,
    Archivelog,
    Controlfile,
    Spfile,
    Other,
}

impl From<FileType> for FileTypeSchema {
    fn from(t: FileType) -> Self {
        match t {
            FileType::Datafile => FileTypeSchema::Datafile,
            FileType::Archivelog => FileTypeSchema::Archivelog,
            FileType::Controlfile => FileTypeSchema::Controlfile,
            FileType::Spfile => FileTypeSchema::Spfile,
            FileType::Other => FileTypeSchema::Other,
        }
    }
}

impl From<FileTypeSchema> for FileType {
    fn from(t: FileTypeSchema) -> Self {
        match t {
            FileTypeSchema::Datafile => FileType::Datafile,
            FileTypeSchema::Archivelog => FileType::Archivelog,
            FileTypeSchema::Controlfile => FileType::Controlfile,
            FileTypeSchema::Spfile => FileType::Spfile,
            FileTypeSchema::Other => FileType::Other,
        }
    }
}

/// Figures recorded when a piece is written.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WriteStats)]
pub(crate) struct WriteStatsSchema {
    /// Bytes of the stream.
    bytes_in: u64,
    chunks: u64,
    /// Chunks the write had to upload.
    new_chunks: u64,
    /// Encoded size of the uploaded chunks.
    new_bytes: u64,
    /// New chunks stored as block-level deltas of an earlier version.
    delta_chunks: u64,
    /// Chunks known from the writer's local cache without a probe.
    cache_hits: u64,
    probes: u64,
    probed_ids: u64,
    /// Changed chunks completed from their previous version to be stored whole.
    anchor_reads: u64,
    elapsed_ms: u64,
}

impl From<WriteStats> for WriteStatsSchema {
    fn from(s: WriteStats) -> Self {
        let WriteStats {
            bytes_in,
            chunks,
            new_chunks,
            new_bytes,
            delta_chunks,
            cache_hits,
            probes,
            probed_ids,
            anchor_reads,
            elapsed_ms,
        } = s;
        WriteStatsSchema {
            bytes_in,
            chunks,
            new_chunks,
            new_bytes,
            delta_chunks,
            cache_hits,
            probes,
            probed_ids,
            anchor_reads,
            elapsed_ms,
        }
    }
}

/// Metadata of a piece, as its writer recorded it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PieceMeta)]
pub(crate) struct PieceMetaSchema {
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dbid: Option<u64>,
    file_type: FileTypeSchema,
    /// Unix seconds.
    created: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<WriteStatsSchema>,
    /// Free-form attributes (RMAN tag, SBT comment, datafile identity, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

impl From<PieceMeta> for PieceMetaSchema {
    fn from(m: PieceMeta) -> Self {
        let PieceMeta {
            database,
            dbid,
            file_type,
            created,
            stats,
            labels,
        } = m;
        PieceMetaSchema {
            database,
            dbid,
            file_type: file_type.into(),
            created,
            stats: stats.map(Into::into),
            labels,
        }
    }
}

/// A committed piece, as the catalog lists it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PieceInfo)]
pub(crate) struct PieceInfoSchema {
    name: String,
    database: Option<String>,
    dbid: Option<u64>,
    file_type: FileTypeSchema,
    /// Unix seconds.
    created: i64,
    size: u64,
    chunks: u64,
    /// Encoded bytes this piece added to the repository when written.
    stored: u64,
    meta: PieceMetaSchema,
}

impl From<PieceInfo> for PieceInfoSchema {
    fn from(p: PieceInfo) -> Self {
        let PieceInfo {
            name,
            database,
            dbid,
            file_type,
            created,
            size,
            chunks,
            stored,
            meta,
        } = p;
        PieceInfoSchema {
            name,
            database,
            dbid,
            file_type: file_type.into(),
            created,
            size,
            chunks,
            stored,
            meta: meta.into(),
        }
    }
}

/// Which pieces to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PieceQuery {
    /// Only pieces whose name starts with this.
    name_prefix: Option<String>,
    /// Only this database's; a database's token sees only its own anyway.
    pub database: Option<String>,
    dbid: Option<u64>,
    /// Unknown kinds are refused (a stored piece of an unknown kind lists as `other`).
    file_type: Option<FileTypeSchema>,
    /// Created at or after (Unix seconds).
    since: Option<i64>,
    /// Created before (Unix seconds).
    until: Option<i64>,
    /// At most this many.
    limit: Option<u64>,
}

impl From<PieceQuery> for PieceFilter {
    fn from(q: PieceQuery) -> Self {
        PieceFilter {
            name_prefix: q.name_prefix,
            database: q.database,
            dbid: q.dbid,
            file_type: q.file_type.map(Into::into),
            since: q.since,
            until: q.until,
            limit: q.limit,
        }
    }
}

/// The piece a request is about.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct NameQuery {
    /// The piece's name, `DBNAME/handle` (URL-encoded: names contain `/`).
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copies_serialise_like_the_originals() {
        let stats = WriteStats {
            bytes_in: 1,
            chunks: 2,
            new_chunks: 3,
            new_bytes: 4,
            delta_chunks: 5,
            cache_hits: 6,
            probes: 7,
            probed_ids: 8,
            anchor_reads: 10,
            elapsed_ms: 9,
        };
        let full = PieceMeta {
            database: Some("ORCL".into()),
            dbid: Some(42),
            file_type: FileType::Datafile,
            created: 10,
            stats: Some(stats),
            labels: [("tag".to_string(), "T1".to_string())].into(),
        };
        for (meta, file_type) in [
            (full, FileType::Archivelog),
            (PieceMeta::default(), FileType::Controlfile),
            (PieceMeta::default(), FileType::Spfile),
            (PieceMeta::default(), FileType::Other),
        ] {
            let info = PieceInfo {
                name: "orcl/p1".into(),
                database: meta.database.clone(),
                dbid: meta.dbid,
                file_type,
                created: 10,
                size: 11,
                chunks: 12,
                stored: 13,
                meta,
            };
            let original = serde_json::to_value(&info).unwrap();
            let copy = serde_json::to_value(PieceInfoSchema::from(info)).unwrap();
            assert_eq!(original, copy);
        }
    }
}
