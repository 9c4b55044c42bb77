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
    /// Write every byte of the output file, zeros too. By default runs of zeros (a datafile's
    /// unformatted space) are left as holes that read back as zeros: the restore writes and
    /// syncs only the data. Use this where the file must own all its space at once, as a
    /// datafile that Oracle will extend into on a nearly full disk.
    #[arg(long, requires = "output")]
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
    let no_sparse = a.no_sparse;
    let bar2 = bar.clone();
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
                bar2.inc(chunk.len() as u64);
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
