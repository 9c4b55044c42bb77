//! `orca get`: restore a piece to a file or standard output.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use orca_repo::ReadOptions;
use serde_json::json;

use crate::common::{self, RepoArgs, human_bytes, mb_per_s, print_json};

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Name of the piece.
    name: String,
    /// Write here instead of standard output. The file appears only once the
    /// whole piece was restored and verified.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
    /// Print a JSON summary (needs --output).
    #[arg(long, requires = "output")]
    json: bool,
}

pub async fn run(a: GetArgs) -> Result<()> {
    let (repo, _store) = a.repo.open().await?;
    if let Some(out) = &a.output
        && out.exists()
        && !a.force
    {
        bail!("{} exists; pass --force to replace it", out.display());
    }
    let mut reader = repo.reader(&a.name, &ReadOptions::default()).await?;
    let size = reader.size();
    let started = Instant::now();
    let bar = if a.output.is_some() {
        common::byte_bar(size, "restoring")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let output = a.output.clone();
    let bar2 = bar.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let (mut sink, tmp): (Box<dyn Write>, Option<PathBuf>) = match &output {
            Some(path) => {
                let tmp = partial_name(path);
                let f = std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                (
                    Box::new(std::io::BufWriter::with_capacity(4 << 20, f)),
                    Some(tmp),
                )
            }
            None => (Box::new(std::io::stdout().lock()), None),
        };
        let result = (|| -> Result<()> {
            while let Some(chunk) = reader.next_chunk()? {
                sink.write_all(&chunk).context("cannot write the output")?;
                bar2.inc(chunk.len() as u64);
            }
            sink.flush().context("cannot write the output")?;
            Ok(())
        })();
        drop(sink);
        match (result, tmp, &output) {
            (Ok(()), Some(tmp), Some(path)) => {
                std::fs::File::open(&tmp).and_then(|f| f.sync_all()).ok();
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("cannot move the restore to {}", path.display()))
            }
            (Ok(()), _, _) => Ok(()),
            (Err(e), tmp, _) => {
                if let Some(t) = tmp {
                    let _ = std::fs::remove_file(t);
                }
                Err(e)
            }
        }
    })
    .await??;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    if let Some(out) = &a.output {
        if a.json {
            print_json(&json!({
                "name": a.name, "output": out, "size": size,
                "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX), "mb_per_s": mb_per_s(size, elapsed),
            }))?;
        } else {
            eprintln!(
                "restored {:?} to {}: {} verified, {:.0} MB/s",
                a.name,
                out.display(),
                human_bytes(size),
                mb_per_s(size, elapsed)
            );
        }
    }
    Ok(())
}

fn partial_name(path: &std::path::Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".orca-partial");
    PathBuf::from(s)
}
