//! `orca verify`: re-read and check every chunk and manifest.

use std::time::Instant;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use orca_repo::{Codec, IndexLocation, Repository, Store};
use orca_vault::server::Groups;

use crate::common::{self, RepoArgs, human_bytes, mb_per_s, print_json};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Only check stored checksums (no key needed, faster); by default every
    /// chunk is decrypted, decompressed and re-hashed against its id.
    #[arg(long)]
    checksums_only: bool,
    /// Read only this percentage of the packs: those never checked, then
    /// those checked longest ago (when each was checked is remembered), so
    /// that a daily `--sample 10` covers the repository every ten days.
    #[arg(long, value_name = "PERCENT")]
    sample: Option<f64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The codec that checks every chunk against its id. A vault's repository also holds the
/// chunks of its dedup groups, whose ids are keyed by each group's secret beside the
/// repository key: they are accepted under any of the groups' keys the vault's catalog holds.
async fn deep_codec(repo: &Repository, dir: &Path) -> Result<Arc<Codec>> {
    let vault = match Store::index_of(dir)? {
        IndexLocation::Sqlite(_) => dir.join("vault.sqlite").exists(),
        IndexLocation::Postgres(_) => true,
    };
    if !vault {
        return Ok(repo.codec().clone());
    }
    let at = dir.to_path_buf();
    let secrets = tokio::task::spawn_blocking(move || Groups::open(&at)?.secrets())
        .await
        .context("the catalog's worker failed")?
        .with_context(|| format!("cannot read the dedup groups of {}", dir.display()))?;
    let config = repo.config();
    Ok(Arc::new(Codec::new(
        repo.codec().keys().clone().accepting_groups(&secrets),
        config.cipher,
        config.compression_level,
    )))
}

pub async fn run(a: VerifyArgs) -> Result<()> {
    let (codec, store) = if a.checksums_only {
        (None, a.repo.open_store().await?)
    } else {
        let (repo, store) = a.repo.open().await?;
        (Some(deep_codec(&repo, &a.repo.repo).await?), store)
    };
    let bar = common::byte_bar(0, "verifying");
    let total = store.stats().await?.pack_bytes;
    bar.set_length(total);
    let progress = |p: &orca_repo::Progress| {
        if p.phase == "packs" {
            bar.set_position(p.bytes);
        } else {
            bar.set_message(format!("reading manifests {}/{}", p.done, p.total));
        }
    };
    let started = Instant::now();
    let report = store
        .verify_sample(codec, a.sample.unwrap_or(100.0), Some(&progress))
        .await?;
    bar.finish_and_clear();
    if a.json {
        print_json(&report)?;
    } else {
        println!(
            "checked {} pieces, {} chunks in {} packs ({}), {} ({:.0} MB/s)",
            report.pieces,
            report.chunks,
            report.packs,
            human_bytes(report.bytes),
            if report.deep {
                "decrypted and re-hashed"
            } else {
                "checksums only"
            },
            mb_per_s(report.bytes, started.elapsed())
        );
        if report.sample_percent < 100.0 {
            println!(
                "  a {}% sample; {} pack(s) had never been checked{}",
                report.sample_percent,
                report.never_checked,
                report
                    .oldest_unchecked_since
                    .map(|t| format!(
                        ", every other pack was checked since {}",
                        common::format_time(t)
                    ))
                    .unwrap_or_default()
            );
        }
        if report.garbage_chunks > 0 {
            println!(
                "  {} swept chunk(s) still in packs (nothing uses them; `orca repo gc` rewrites those packs)",
                report.garbage_chunks
            );
        }
        for p in &report.problems {
            let chunk = p
                .chunk
                .map(|c| format!(" chunk {}", c.short()))
                .unwrap_or_default();
            println!("PROBLEM in {}{chunk}: {}", p.object, p.reason);
            for (piece, pos) in &p.pieces {
                println!("    affects piece {piece:?}, chunk #{pos}");
            }
        }
    }
    if !report.is_clean() {
        bail!("verification found {} problem(s)", report.problems.len());
    }
    if !a.json {
        println!("repository is healthy");
    }
    Ok(())
}
