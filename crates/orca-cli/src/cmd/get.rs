//! `orca get`: restore a piece to a file or standard output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use orca_repo::ReadOptions;
use serde_json::json;

use crate::common::{self, RepoArgs, human_bytes, mb_per_s, print_json};

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("to_file").args(["output", "output_dir"]))]
pub struct GetArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Name of the piece; several with --output-dir.
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// Write here instead of standard output. The file appears only once the
    /// whole piece was restored and verified.
    #[arg(short, long, value_name = "FILE", conflicts_with = "output_dir")]
    output: Option<PathBuf>,
    /// Restore each named piece into this directory, as a file named by the last
    /// `/`-separated part of the piece's name, several pieces at once (--parallel): a
    /// restore keeps the disk busy while another one syncs. Each file appears only once its
    /// piece was restored and verified; a piece that fails does not stop the others, and
    /// the command then fails naming it.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Pieces restored at once with --output-dir.
    #[arg(long, default_value_t = 2, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64), requires = "output_dir")]
    parallel: u16,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
    /// Print a JSON summary (needs --output or --output-dir).
    #[arg(long, requires = "to_file")]
    json: bool,
    /// Write every byte of the output file, zeros too. By default runs of zeros (a datafile's
    /// unformatted space) are left as holes that read back as zeros: the restore writes and
    /// syncs only the data. Use this where the file must own all its space at once, as a
    /// datafile that Oracle will extend into on a nearly full disk.
    #[arg(long, requires = "to_file")]
    no_sparse: bool,
}

/// A hole is left for each aligned run of this many zero bytes: a filesystem block.
const HOLE: usize = 4096;
static ZEROS: [u8; HOLE] = [0; HOLE];
/// Data is written in runs of up to this much.
const RUN: usize = 4 << 20;

/// An output file written at offsets, with zero blocks left as holes.
struct SparseFile {
    file: std::fs::File,
    /// Bytes of the file so far, holes included.
    len: u64,
    /// Data not yet written, which ends at `len`.
    run: Vec<u8>,
}

impl SparseFile {
    fn new(file: std::fs::File) -> Self {
        SparseFile {
            file,
            len: 0,
            run: Vec::with_capacity(RUN),
        }
    }

    fn flush_run(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let at = self.len - self.run.len() as u64;
        self.file.write_all_at(&self.run, at)?;
        self.run.clear();
        Ok(())
    }

    /// Append `data`. Zero blocks are skipped only when aligned to the file, so that a hole
    /// is a whole filesystem block.
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let to_edge = HOLE - usize::try_from(self.len % HOLE as u64).unwrap_or(0);
            let (block, tail) = rest.split_at(to_edge.min(rest.len()));
            if block.len() == HOLE && block == &ZEROS[..] {
                if !self.run.is_empty() {
                    self.flush_run()?;
                }
            } else {
                if self.run.len() + block.len() > RUN {
                    self.flush_run()?;
                }
                self.run.extend_from_slice(block);
            }
            self.len += block.len() as u64;
            rest = tail;
        }
        Ok(())
    }

    /// Write what is left, give the file its length (a hole may end it) and sync it.
    fn finish(mut self) -> std::io::Result<()> {
        if !self.run.is_empty() {
            self.flush_run()?;
        }
        self.file.set_len(self.len)?;
        self.file.sync_all()
    }
}

/// Where a restore goes.
enum Sink {
    Stdout(std::io::StdoutLock<'static>),
    Dense(std::io::BufWriter<std::fs::File>),
    Sparse(SparseFile),
}

impl Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout(w) => w.write_all(data),
            Sink::Dense(w) => w.write_all(data),
            Sink::Sparse(f) => f.write(data),
        }
    }

    /// Everything written, and a file synced to its disk.
    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Stdout(mut w) => w.flush(),
            Sink::Dense(w) => w.into_inner().map_err(|e| e.into_error())?.sync_all(),
            Sink::Sparse(f) => f.finish(),
        }
    }
}

/// Where each piece goes: one file, standard output, or a file each in a directory.
fn targets(a: &GetArgs) -> Result<Vec<(String, Option<PathBuf>)>> {
    let Some(dir) = &a.output_dir else {
        if a.names.len() > 1 {
            bail!(
                "{} pieces named: restoring several needs --output-dir DIR (one file each)",
                a.names.len()
            );
        }
        return Ok(vec![(a.names[0].clone(), a.output.clone())]);
    };
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: create it first, or name another with --output-dir",
            dir.display()
        );
    }
    let mut by_file: std::collections::HashMap<String, &str> = Default::default();
    let mut out = Vec::new();
    for name in &a.names {
        let file = name.rsplit('/').next().unwrap_or_default();
        if file.is_empty() || file == "." || file == ".." {
            bail!(
                "piece {name:?} gives no file name (its last `/`-separated part is {file:?}): \
                 restore it alone with -o FILE"
            );
        }
        if let Some(other) = by_file.insert(file.to_string(), name) {
            bail!(
                "pieces {other:?} and {name:?} would both be restored to {}: restore one of \
                 them alone with -o FILE",
                dir.join(file).display()
            );
        }
        out.push((name.clone(), Some(dir.join(file))));
    }
    Ok(out)
}

/// A piece, where it went, and its size and restore time or why it failed.
type Outcome = (String, Option<PathBuf>, Result<(u64, Duration)>);

pub async fn run(a: GetArgs) -> Result<()> {
    let targets = targets(&a)?;
    if !a.force {
        for (_, out) in &targets {
            if let Some(out) = out.as_ref().filter(|o| o.exists()) {
                bail!("{} exists; pass --force to replace it", out.display());
            }
        }
    }
    let (repo, _store) = a.repo.open().await?;
    let started = Instant::now();
    let bar = if targets.iter().all(|(_, out)| out.is_some()) {
        common::byte_bar(0, "restoring")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let many = a.output_dir.is_some();
    let results: Vec<Outcome> = futures::stream::iter(targets)
        .map(|(name, out)| {
            let (repo, bar) = (&repo, bar.clone());
            async move {
                let r = restore_one(repo, &name, out.clone(), a.no_sparse, bar.clone()).await;
                // Each piece is told as it lands: a set of large datafiles takes a while.
                match (&r, &out) {
                    (Ok((size, took)), Some(out)) if !a.json => bar.suspend(|| {
                        eprintln!(
                            "restored {name:?} to {}: {} verified, {:.0} MB/s",
                            out.display(),
                            human_bytes(*size),
                            mb_per_s(*size, *took)
                        )
                    }),
                    (Err(e), _) if many => {
                        bar.suspend(|| eprintln!("cannot restore {name:?}: {e:#}"))
                    }
                    _ => {}
                }
                (name, out, r)
            }
        })
        // One target unless --output-dir, which --parallel requires.
        .buffered(usize::from(a.parallel))
        .collect()
        .await;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let mut failed = Vec::new();
    let mut done = Vec::new();
    for (name, out, r) in results {
        match r {
            Ok((size, took)) => done.push((name, out, size, took)),
            Err(e) => failed.push((name, e)),
        }
    }
    if !many && let Some((_, e)) = failed.pop() {
        return Err(e);
    }
    let summary = |name: &str, out: &Path, size: u64, took: Duration| {
        json!({
            "name": name, "output": out, "size": size,
            "elapsed_ms": u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "mb_per_s": mb_per_s(size, took),
        })
    };
    if a.json {
        if many {
            let total: u64 = done.iter().map(|d| d.2).sum();
            let pieces: Vec<_> = done
                .iter()
                .map(|(n, o, s, t)| summary(n, o.as_deref().unwrap_or(Path::new("")), *s, *t))
                .collect();
            let failed: Vec<_> = failed
                .iter()
                .map(|(n, e)| json!({"name": n, "error": format!("{e:#}")}))
                .collect();
            print_json(&json!({
                "pieces": pieces,
                "failed": failed,
                "size": total,
                "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                "mb_per_s": mb_per_s(total, elapsed),
            }))?;
        } else if let Some((n, Some(o), s, t)) = done.first() {
            print_json(&summary(n, o, *s, *t))?;
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} pieces not restored: {}; the others are in place, verified",
            failed.len(),
            failed.len() + done.len(),
            failed
                .iter()
                .map(|(n, _)| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Restores piece `name` to `output` (standard output when `None`): written beside it as a
/// partial file, verified chunk by chunk, synced, then renamed into place. Its size and how
/// long it took.
async fn restore_one(
    repo: &orca_repo::Repository,
    name: &str,
    output: Option<PathBuf>,
    no_sparse: bool,
    bar: indicatif::ProgressBar,
) -> Result<(u64, Duration)> {
    let mut reader = repo.reader(name, &ReadOptions::default()).await?;
    let size = reader.size();
    bar.inc_length(size);
    let started = Instant::now();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let (mut sink, tmp) = match &output {
            Some(path) => {
                let tmp = partial_name(path);
                let f = std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                let sink = if no_sparse {
                    Sink::Dense(std::io::BufWriter::with_capacity(RUN, f))
                } else {
                    Sink::Sparse(SparseFile::new(f))
                };
                (sink, Some(tmp))
            }
            None => (Sink::Stdout(std::io::stdout().lock()), None),
        };
        let result = (|| -> Result<()> {
            while let Some(chunk) = reader.next_chunk()? {
                sink.write(&chunk).context("cannot write the output")?;
                bar.inc(chunk.len() as u64);
            }
            sink.finish().context("cannot write the output")?;
            Ok(())
        })();
        match (result, tmp, &output) {
            (Ok(()), Some(tmp), Some(path)) => {
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("cannot move the restore to {}", path.display()))?;
                // The rename is durable once its directory is.
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => std::path::Path::new("."),
                };
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .with_context(|| format!("cannot sync {}", dir.display()))
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
    Ok((size, started.elapsed()))
}

fn partial_name(path: &std::path::Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".orca-partial");
    PathBuf::from(s)
}
