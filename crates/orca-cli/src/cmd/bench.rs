//! `orca bench`: what this machine can do, measured in one run.
//!
//! The primitives (memcpy, keyed BLAKE3, zstd, AEAD) set the ceiling; the
//! pipeline figures (ingest of new data, ingest of data already stored,
//! restore) are reported as ratios to memcpy and to their bottleneck
//! primitive on the same number of cores, so the result means something on
//! a shared, noisy machine.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use orca_repo::{InitOptions, NewKey, PieceMeta, ReadOptions, Repository, WriteOptions};
use rayon::prelude::*;
use serde::Serialize;

use crate::cmd::put::{Input, ingest};
use crate::common::{human_bytes, print_json};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Size of the test data in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mb: u64,
    /// Use this file as test data instead of generated Oracle-like blocks.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Directory for the temporary repository (on the disk to measure).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// zstd level, as a repository would use it.
    #[arg(long, default_value_t = orca_repo::DEFAULT_ZSTD_LEVEL)]
    compression_level: i32,
    /// Print the results as JSON; with a path, also write them there.
    #[arg(long, num_args = 0..=1, default_missing_value = "-", value_name = "FILE")]
    json: Option<String>,
}

#[derive(Debug, Serialize)]
struct Figure {
    name: &'static str,
    threads: usize,
    mb_per_s: f64,
    ratio_to_memcpy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bottleneck: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_to_bottleneck: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    data_bytes: u64,
    data: String,
    cores_used: usize,
    compression_level: i32,
    compression_ratio: f64,
    figures: Vec<Figure>,
}

/// Run `f` on `bytes` of work until at least `min` has passed; MB/s.
fn rate(bytes: u64, min: Duration, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut rounds = 0u64;
    while rounds == 0 || started.elapsed() < min {
        f();
        rounds += 1;
    }
    (bytes * rounds) as f64 / 1e6 / started.elapsed().as_secs_f64()
}

/// Oracle-like 8 KiB blocks: a block header, then rows of numbers, dates,
/// codes and words, compressing about 2.5-3x with zstd -1.
pub fn oracle_like(bytes: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "SMITH",
        "JOHNSON",
        "WILLIAMS",
        "BROWN",
        "JONES",
        "GARCIA",
        "MILLER",
        "DAVIS",
        "LONDON",
        "PARIS",
        "BERLIN",
        "MADRID",
        "ROME",
        "OSLO",
        "SHIPPED",
        "PENDING",
        "INVOICED",
        "CANCELLED",
        "WIDGET",
        "GADGET",
        "SPROCKET",
        "BOLT",
        "ACME CORP",
        "GLOBEX",
    ];
    let mut out = Vec::with_capacity(bytes + 8192);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut block = 0u32;
    while out.len() < bytes {
        let start = out.len();
        out.push(0x06);
        out.push(0xA2);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&((1u32 << 22) | block).to_le_bytes());
        out.extend_from_slice(&next().to_le_bytes()[..4]);
        out.extend_from_slice(&[0u8; 8]);
        while out.len() - start < 8192 - 4 {
            let r = next();
            let [b0, b1, _, _, _, b5, b6, _] = r.to_le_bytes();
            out.extend_from_slice(&(u16::from_le_bytes([b0, b1]) % 40000 + 10000).to_le_bytes());
            out.extend_from_slice(WORDS[(r >> 16) as usize % WORDS.len()].as_bytes());
            out.push(b',');
            out.extend_from_slice(
                format!("2026-{:02}-{:02}", (r >> 24) % 12 + 1, (r >> 28) % 28 + 1).as_bytes(),
            );
            out.extend_from_slice(&((r >> 32) as u32 % 100_000).to_le_bytes());
            out.extend_from_slice(&[b5, b6]);
        }
        out.truncate(start + 8192 - 4);
        out.extend_from_slice(&block.to_le_bytes());
        block += 1;
    }
    out.truncate(bytes);
    out
}

pub async fn run(a: BenchArgs) -> Result<()> {
    let threads = rayon::current_num_threads();
    let min = Duration::from_millis(1500);
    let quiet = a.json.as_deref() == Some("-");
    let say = |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };

    // Test data, in a file the pipeline reads like any input.
    let base = a.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("orca-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a work directory in {}", base.display()))?;
    let (data_path, description) = match &a.input {
        Some(p) => (p.clone(), format!("file {}", p.display())),
        None => {
            let p = work.path().join("data");
            say(format!(
                "generating {} of Oracle-like blocks",
                human_bytes(a.size_mb << 20)
            ));
            let data = oracle_like(usize::try_from(a.size_mb << 20)?, 1);
            std::fs::File::create(&p)?.write_all(&data)?;
            (p, "generated Oracle-like 8 KiB blocks".to_string())
        }
    };
    let data_bytes = std::fs::metadata(&data_path)?.len();

    // Primitives on up to 128 MiB of 1 MiB chunks taken evenly across the
    // data, so the sample compresses like the whole.
    let sample = sample_chunks(&data_path, data_bytes, 128)?;
    let chunks: Vec<&[u8]> = sample.iter().map(|c| c.as_slice()).collect();
    let sb: u64 = chunks.iter().map(|c| c.len() as u64).sum();

    say("measuring primitives".into());
    let mut dst = vec![0u8; 256 << 20];
    let src = vec![1u8; 256 << 20];
    let memcpy = rate(256 << 20, min, || {
        dst.copy_from_slice(&src);
        std::hint::black_box(&dst);
    });
    drop((dst, src));
    let keys = orca_repo::Keys::from_master([7u8; 32]);
    // The bottleneck is the plain keyed BLAKE3 at full SIMD width; the
    // pipeline's variant with unit chaining values is shown beside it.
    let hash1 = rate(sb, min, || {
        for c in &chunks {
            std::hint::black_box(keys.chunk_id(c));
        }
    });
    let hash_n_now = |min| {
        rate(sb, min, || {
            chunks.par_iter().for_each(|c| {
                std::hint::black_box(keys.chunk_id(c));
            })
        })
    };
    let hash_n = hash_n_now(min);
    let hash_units_n = rate(sb, min, || {
        chunks.par_iter().for_each(|c| {
            std::hint::black_box(keys.chunk_hash(c, true));
        })
    });
    let level = a.compression_level;
    let mut compressed_total = 0usize;
    let zstd_n_now = |min| {
        rate(sb, min, || {
            chunks.par_iter().for_each_init(
                || zstd::bulk::Compressor::new(level).expect("zstd"),
                |c, ch| {
                    std::hint::black_box(c.compress(ch).expect("zstd"));
                },
            )
        })
    };
    let zstd1 = rate(sb, min, || {
        let mut c = zstd::bulk::Compressor::new(level).expect("zstd");
        compressed_total = chunks
            .iter()
            .map(|ch| c.compress(ch).expect("zstd").len())
            .sum();
    });
    let zstd_n = zstd_n_now(min);
    let packed: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| zstd::bulk::compress(c, level).expect("zstd"))
        .collect();
    let unzstd_n_now = |min| {
        rate(sb, min, || {
            packed.par_iter().for_each_init(
                || zstd::bulk::Decompressor::new().expect("zstd"),
                |d, p| {
                    std::hint::black_box(d.decompress(p, 1 << 20).expect("zstd"));
                },
            )
        })
    };
    let unzstd_n = unzstd_n_now(min);
    // The repository's own AEAD, as the codec calls it.
    let aes = orca_repo::Aead::new(orca_repo::Cipher::Aes256Gcm, &[3u8; 32]);
    let nonce = [0u8; 12];
    let aead1 = rate(sb, min, || {
        let mut buf = vec![0u8; 1 << 20];
        for c in &chunks {
            buf[..c.len()].copy_from_slice(c);
            std::hint::black_box(aes.seal(nonce, b"", &mut buf[..c.len()]).expect("aead"));
        }
    });
    let aead_n = rate(sb, min, || {
        chunks.par_iter().for_each(|c| {
            let mut buf = c.to_vec();
            std::hint::black_box(aes.seal(nonce, b"", &mut buf).expect("aead"));
        })
    });

    // The pipeline, on a real local repository.
    say(format!("ingesting {} of new data", human_bytes(data_bytes)));
    let key_file = work.path().join("key");
    let repo_dir = work.path().join("repo");
    let opts = InitOptions {
        compression_level: level,
        ..Default::default()
    };
    let (repo, _store) =
        Repository::init_local(&repo_dir, &opts, &NewKey::KeyFile(key_file)).await?;
    let put = |name: &'static str| {
        let repo = repo.clone();
        let path = data_path.clone();
        async move {
            tokio::task::spawn_blocking(move || -> Result<(Duration, u64)> {
                let meta = PieceMeta {
                    created: orca_repo::now_unix(),
                    ..Default::default()
                };
                let w = repo.writer(name, meta, &WriteOptions::default())?;
                let f = std::fs::File::open(&path)?;
                let started = Instant::now();
                let c = ingest(w, Input::File(f), |_| {})?;
                Ok((
                    started.elapsed(),
                    c.manifest.header.meta.stats.unwrap_or_default().new_bytes,
                ))
            })
            .await?
        }
    };
    // Each pipeline stage is compared with its bottleneck measured right
    // before and right after it, so load from other processes on this shared
    // machine affects both sides alike.
    let short = Duration::from_millis(700);
    let z_before = zstd_n_now(short);
    let (t_new, new_bytes) = put("bench-new").await?;
    let zstd_around = (z_before + zstd_n_now(short)) / 2.0;
    say("ingesting the same data again (already stored)".into());
    let h_before = hash_n_now(short);
    let (t_known, _) = put("bench-known").await?;
    let hash_around = (h_before + hash_n_now(short)) / 2.0;
    say(format!(
        "ingesting it again as {threads} SBT channels do, with their fingerprint caches"
    ));
    let data = std::fs::read(&data_path)
        .with_context(|| format!("cannot read {}", data_path.display()))?;
    let streams = Streams::new(data, threads, repo.config().chunker);
    // The first run records the lineages the timed one uses.
    streams.run(&repo, "bench-stream-first").await?;
    let h_before = hash_n_now(short);
    let t_stream = streams.run(&repo, "bench-stream").await?;
    let hash_around_stream = (h_before + hash_n_now(short)) / 2.0;
    say("restoring".into());
    let u_before = unzstd_n_now(short);
    let mut reader = repo.reader("bench-new", &ReadOptions::default()).await?;
    let t_restore = tokio::task::spawn_blocking(move || -> Result<Duration> {
        let started = Instant::now();
        let mut n = 0u64;
        while let Some(c) = reader.next_chunk()? {
            n += c.len() as u64;
            std::hint::black_box(&c);
        }
        anyhow::ensure!(
            n == data_bytes,
            "restore returned {n} of {data_bytes} bytes"
        );
        Ok(started.elapsed())
    })
    .await??;
    let unzstd_around = (u_before + unzstd_n_now(short)) / 2.0;
    let mbps = |d: Duration| data_bytes as f64 / 1e6 / d.as_secs_f64();

    let fig = |name, threads, v: f64, bottleneck: Option<(&'static str, f64)>| Figure {
        name,
        threads,
        mb_per_s: round(v),
        ratio_to_memcpy: round3(v / memcpy),
        bottleneck: bottleneck.map(|b| b.0),
        ratio_to_bottleneck: bottleneck.map(|b| round3(v / b.1)),
    };
    let report = Report {
        data_bytes,
        data: description,
        cores_used: threads,
        compression_level: level,
        compression_ratio: round3(sb as f64 / compressed_total.max(1) as f64),
        figures: vec![
            fig("memcpy", 1, memcpy, None),
            fig("keyed BLAKE3", 1, hash1, None),
            fig("keyed BLAKE3", threads, hash_n, None),
            fig(
                "keyed BLAKE3 with 8 KiB unit values",
                threads,
                hash_units_n,
                None,
            ),
            fig("zstd compress", 1, zstd1, None),
            fig("zstd compress", threads, zstd_n, None),
            fig("zstd decompress", threads, unzstd_n, None),
            fig("AES-256-GCM", 1, aead1, None),
            fig("AES-256-GCM", threads, aead_n, None),
            fig(
                "ingest new data",
                threads,
                mbps(t_new),
                Some(("zstd compress", zstd_around)),
            ),
            fig(
                "ingest already-stored data",
                threads,
                mbps(t_known),
                Some(("keyed BLAKE3", hash_around)),
            ),
            fig(
                "  same, as SBT channels with cache",
                threads,
                mbps(t_stream),
                Some(("keyed BLAKE3", hash_around_stream)),
            ),
            fig(
                "restore (decrypt, decompress, verify)",
                threads,
                mbps(t_restore),
                Some(("zstd decompress", unzstd_around)),
            ),
        ],
    };
    match a.json.as_deref() {
        Some("-") => print_json(&report)?,
        Some(path) => {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("cannot write {path}"))?;
            print_table(&report, new_bytes);
        }
        None => print_table(&report, new_bytes),
    }
    Ok(())
}

/// Up to `max` 1 MiB chunks spread evenly over the file.
/// The data split into one stream per core at chunk boundaries, written
/// the way SBT channels write a repeat backup: from memory in RMAN-sized
/// buffers, hashed in the caller's thread, with the lineage of the previous
/// run so unchanged chunks are neither copied nor probed.
struct Streams {
    data: std::sync::Arc<Vec<u8>>,
    ranges: Vec<std::ops::Range<usize>>,
    lineages: std::sync::Mutex<Vec<orca_repo::Lineage>>,
}

impl Streams {
    fn new(data: Vec<u8>, n: usize, chunker: orca_repo::ChunkerSpec) -> Self {
        let chunk = match chunker {
            orca_repo::ChunkerSpec::Fixed { size } => size as usize,
            _ => 1 << 20,
        };
        let per = data.len().div_ceil(n.max(1)).div_ceil(chunk) * chunk;
        let ranges: Vec<_> = (0..n.max(1))
            .map(|i| (i * per).min(data.len())..((i + 1) * per).min(data.len()))
            .collect();
        let lineages = std::sync::Mutex::new(vec![Default::default(); ranges.len()]);
        Streams {
            data: std::sync::Arc::new(data),
            ranges,
            lineages,
        }
    }

    /// Write every stream at once; how long the slowest took.
    async fn run(&self, repo: &Repository, prefix: &str) -> Result<Duration> {
        let started = Instant::now();
        let handles: Vec<_> = self
            .ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let repo = repo.clone();
                let data = self.data.clone();
                let r = r.clone();
                let name = format!("{prefix}-{i}");
                let lineage = self.lineages.lock().expect("lineages")[i].clone();
                tokio::task::spawn_blocking(move || -> Result<orca_repo::Committed> {
                    let opts = WriteOptions {
                        hash_in_caller: true,
                        ..Default::default()
                    };
                    let mut w = repo.writer(&name, PieceMeta::default(), &opts)?;
                    w.set_lineage(lineage);
                    for part in data[r].chunks(256 << 10) {
                        w.write(part)?;
                    }
                    Ok(w.finish()?)
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let committed = h.await??;
            self.lineages.lock().expect("lineages")[i] = committed.lineage;
        }
        Ok(started.elapsed())
    }
}

fn sample_chunks(path: &std::path::Path, len: u64, max: u64) -> Result<Vec<Vec<u8>>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let total = len.div_ceil(1 << 20).max(1);
    let n = total.min(max);
    // A capacity hint only.
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for i in 0..n {
        let start = (i * total / n) << 20;
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity(1 << 20);
        Read::by_ref(&mut f).take(1 << 20).read_to_end(&mut buf)?;
        if !buf.is_empty() {
            out.push(buf);
        }
    }
    Ok(out)
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn print_table(r: &Report, new_bytes: u64) {
    println!(
        "data: {} ({}), zstd -{} ratio {:.2}x, {} core(s); first ingest stored {}",
        human_bytes(r.data_bytes),
        r.data,
        r.compression_level,
        r.compression_ratio,
        r.cores_used,
        human_bytes(new_bytes)
    );
    println!(
        "{:<42} {:>7} {:>10} {:>9}  vs bottleneck",
        "", "threads", "MB/s", "x memcpy"
    );
    for f in &r.figures {
        let b = match (f.bottleneck, f.ratio_to_bottleneck) {
            (Some(name), Some(ratio)) => {
                format!("{:.0}% of {name} on {} core(s)", ratio * 100.0, f.threads)
            }
            _ => String::new(),
        };
        println!(
            "{:<42} {:>7} {:>10.0} {:>9.3}  {b}",
            f.name, f.threads, f.mb_per_s, f.ratio_to_memcpy
        );
    }
}
