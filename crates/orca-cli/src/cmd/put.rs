//! `orca put`: store a file or standard input as a named piece.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use orca_repo::LineageCache;
use orca_repo::{ChunkerSpec, FileType, PieceMeta, WriteOptions};
use serde_json::json;

use crate::common::{self, RepoArgs, human_bytes, mb_per_s, print_json};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChunkerKind {
    /// Fixed-size chunks from the start of the stream (Oracle files and
    /// streams: block-aligned, changed blocks stored as deltas).
    Fixed,
    /// Content-defined chunks (logs and other files where data shifts).
    Cdc,
}

#[derive(Args, Debug)]
pub struct PutArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Name of the new piece (must not exist yet).
    #[arg(long)]
    name: String,
    /// File to store, or `-` for standard input. A datafile of 2 or 4 KiB blocks (its block 0
    /// says so) has its changes found block by block; anything else in 8 KiB units.
    file: String,
    /// Database the piece belongs to (for listings).
    #[arg(long)]
    database: Option<String>,
    /// Database id (DBID).
    #[arg(long)]
    dbid: Option<u64>,
    /// What the piece holds.
    #[arg(long, default_value = "other")]
    file_type: FileType,
    /// Chunker; the repository default (fixed) when not given.
    #[arg(long)]
    chunker: Option<ChunkerKind>,
    /// Extra label KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = common::parse_label)]
    labels: Vec<(String, String)>,
    /// Key under which this source's previous backup is remembered, so
    /// unchanged chunks need no lookup and changed ones are stored as deltas.
    /// Defaults to the file's absolute path; none for standard input.
    #[arg(long)]
    lineage: Option<String>,
    /// Do not use or update the lineage cache.
    #[arg(long)]
    no_lineage: bool,
    /// Directory of the lineage cache.
    #[arg(long, env = "ORCA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What `put` reads: a regular file is read in parallel at its chunk offsets,
/// anything else (standard input, a pipe, a device) as a stream.
pub enum Input {
    File(std::fs::File),
    Stream(Box<dyn Read + Send>),
}

/// Feed the input into a piece writer and commit; on any error the piece is
/// aborted (nothing becomes visible). Runs on a blocking thread.
pub fn ingest(
    mut writer: orca_repo::PieceWriter,
    input: Input,
    progress: impl FnMut(u64),
) -> Result<orca_repo::Committed> {
    let read = match input {
        Input::File(f) => writer.write_file(&f, progress),
        Input::Stream(mut s) => writer.write_from(&mut s, progress),
    };
    if let Err(e) = read {
        writer.abort();
        return Err(e).context("cannot store the input");
    }
    Ok(writer.finish()?)
}

/// The first bytes of a stream, read ahead (as many as come, up to `n`), and the stream
/// again from its start.
fn peek(mut s: Box<dyn Read + Send>, n: usize) -> Result<(Vec<u8>, Input)> {
    let mut head = Vec::with_capacity(n);
    s.by_ref()
        .take(n as u64)
        .read_to_end(&mut head)
        .context("cannot read the input")?;
    let again = std::io::Cursor::new(head.clone()).chain(s);
    Ok((head, Input::Stream(Box::new(again))))
}

/// Enough of a file's start to tell a datafile's block size ([`orca_repo::unit_for_file`]).
const HEAD: usize = 32;

pub async fn run(a: PutArgs) -> Result<()> {
    let (repo, _store) = a.repo.open().await?;
    let (input, size, lineage_key): (Input, Option<u64>, Option<String>) = if a.file == "-" {
        (
            Input::Stream(Box::new(std::io::stdin())),
            None,
            a.lineage.clone(),
        )
    } else {
        let path = PathBuf::from(&a.file);
        let f = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let meta = f.metadata().ok();
        let len = meta.as_ref().map(|m| m.len());
        let f = match meta {
            Some(m) if m.is_file() => Input::File(f),
            _ => Input::Stream(Box::new(f)),
        };
        let key = a.lineage.clone().or_else(|| {
            std::fs::canonicalize(&path)
                .ok()
                .map(|p| format!("file:{}", p.display()))
        });
        (f, len, key)
    };
    // A datafile of 2 or 4 KiB blocks has its changes found block by block.
    let (head, input) = match input {
        Input::File(f) => {
            use std::os::unix::fs::FileExt;
            let mut head = vec![0u8; HEAD];
            let n = f.read_at(&mut head, 0).context("cannot read the input")?;
            head.truncate(n);
            (head, Input::File(f))
        }
        Input::Stream(s) => peek(s, HEAD)?,
    };
    let lineage_key = lineage_key.filter(|_| !a.no_lineage);
    let cache = match &lineage_key {
        Some(_) => {
            let dir = common::cache_dir(a.cache_dir.as_ref());
            match LineageCache::open(&dir, &repo.cache_id()) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "lineage cache unavailable; storing without it");
                    None
                }
            }
        }
        None => None,
    };
    let meta = PieceMeta {
        database: a.database.clone(),
        dbid: a.dbid,
        file_type: a.file_type,
        created: orca_repo::now_unix(),
        stats: None,
        labels: a.labels.iter().cloned().collect(),
    };
    let opts = WriteOptions {
        chunker: a.chunker.map(|k| match k {
            ChunkerKind::Fixed => repo.config().chunker,
            ChunkerKind::Cdc => ChunkerSpec::default_cdc(),
        }),
        unit: orca_repo::unit_for_file(&head),
        ..Default::default()
    };
    let mut writer = repo.writer(&a.name, meta, &opts)?;
    let lineage = match (&cache, &lineage_key) {
        (Some(c), Some(k)) => Some(c.load(k)?),
        _ => None,
    };
    let bar = common::byte_bar(size.unwrap_or(0), "storing");
    let started = Instant::now();
    let bar2 = bar.clone();
    let committed = tokio::task::spawn_blocking(move || {
        if let Some(l) = lineage {
            writer.set_lineage(l);
        }
        ingest(writer, input, |n| bar2.inc(n))
    })
    .await??;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    if let (Some(c), Some(k)) = (&cache, &lineage_key)
        && let Err(e) = c.update(k, &committed.lineage, committed.lineage_unchanged)
    {
        tracing::warn!(error = %e, "could not update the lineage cache");
    }
    let stats = committed
        .manifest
        .header
        .meta
        .stats
        .clone()
        .unwrap_or_default();
    if a.json {
        print_json(&json!({
            "name": committed.info.name,
            "size": committed.info.size,
            "chunks": stats.chunks,
            "new_chunks": stats.new_chunks,
            "delta_chunks": stats.delta_chunks,
            "new_bytes": stats.new_bytes,
            "cache_hits": stats.cache_hits,
            "probes": stats.probes,
            "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "mb_per_s": mb_per_s(committed.info.size, elapsed),
        }))?;
    } else {
        println!(
            "stored {:?}: {} in {} chunks, {} new ({} chunks, {} as deltas), {:.0} MB/s",
            committed.info.name,
            human_bytes(committed.info.size),
            stats.chunks,
            human_bytes(stats.new_bytes),
            stats.new_chunks,
            stats.delta_chunks,
            mb_per_s(committed.info.size, elapsed)
        );
    }
    Ok(())
}
