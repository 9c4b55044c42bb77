//! `orca demo`: the main job on the embedded default, end to end, in one
//! command: a repository is created, an Oracle-like datafile is backed up,
//! changed, backed up again, restored and verified bit for bit.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Args;
use orca_repo::lineage::LineageCache;
use orca_repo::{FileType, InitOptions, NewKey, PieceMeta, ReadOptions, Repository, WriteOptions};
use serde::Serialize;

use crate::cmd::bench::oracle_like;
use crate::cmd::put::ingest;
use crate::common::{human_bytes, mb_per_s, print_json};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Work directory (kept afterwards); a temporary one when not given.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Size of the datafile in MiB.
    #[arg(long, default_value_t = 256)]
    size_mb: u64,
    /// Print what happened as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Step {
    step: &'static str,
    bytes_read: u64,
    new_bytes_stored: u64,
    chunks: u64,
    delta_chunks: u64,
    cache_hits: u64,
    probes: u64,
    seconds: f64,
    mb_per_s: f64,
}

#[derive(Debug, Serialize)]
struct DemoReport {
    work_dir: PathBuf,
    repository: PathBuf,
    datafile_bytes: u64,
    steps: Vec<Step>,
    restore_mb_per_s: f64,
    restore_verified: bool,
    repository_verified: bool,
    stored_bytes: u64,
    reduction: f64,
}

pub async fn run(a: DemoArgs) -> Result<()> {
    let temp;
    let work = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("orca-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let say = |s: String| {
        if !a.json {
            println!("{s}");
        }
    };
    let repo_dir = work.join("repo");
    let key = work.join("repo.key");
    ensure!(
        !repo_dir.exists(),
        "{} already holds a repository; pick another --dir",
        repo_dir.display()
    );
    let (repo, store) = Repository::init_local(
        &repo_dir,
        &InitOptions::default(),
        &NewKey::KeyFile(key.clone()),
    )
    .await?;
    say(format!(
        "repository created at {} (key in {})",
        repo_dir.display(),
        key.display()
    ));
    let cache = LineageCache::open(&work.join("cache"), &repo.config().id)?;

    let size = (a.size_mb << 20) as usize;
    let datafile = work.join("users01.dbf");
    let mut data = oracle_like(size, 42);
    std::fs::write(&datafile, &data)?;
    say(format!(
        "datafile {} ({})",
        datafile.display(),
        human_bytes(size as u64)
    ));

    let mut steps = Vec::new();
    let backup = |step: &'static str, name: String, data: &[u8]| {
        let repo = repo.clone();
        let lineage = cache.load("demo:users01.dbf");
        let path = datafile.clone();
        let bytes = data.to_vec();
        async move {
            std::fs::write(&path, &bytes)?;
            let lineage = lineage?;
            let started = Instant::now();
            let committed = tokio::task::spawn_blocking(move || -> Result<orca_repo::Committed> {
                let meta = PieceMeta {
                    database: Some("DEMO".into()),
                    file_type: FileType::Datafile,
                    created: orca_repo::now_unix(),
                    ..Default::default()
                };
                let w = repo.writer(&name, meta, &WriteOptions::default())?;
                w.set_lineage(lineage);
                ingest(w, std::fs::File::open(&path)?, |_| {})
            })
            .await??;
            let elapsed = started.elapsed();
            let s = committed
                .manifest
                .header
                .meta
                .stats
                .clone()
                .unwrap_or_default();
            Ok::<_, anyhow::Error>((
                Step {
                    step,
                    bytes_read: s.bytes_in,
                    new_bytes_stored: s.new_bytes,
                    chunks: s.chunks,
                    delta_chunks: s.delta_chunks,
                    cache_hits: s.cache_hits,
                    probes: s.probes,
                    seconds: elapsed.as_secs_f64(),
                    mb_per_s: mb_per_s(s.bytes_in, elapsed),
                },
                committed.lineage,
            ))
        }
    };

    let show = |s: &Step| {
        format!(
            "{:<34} read {:>10}, stored {:>10} new ({} chunks, {} deltas, {} cache hits, {} probes), {:.0} MB/s",
            s.step,
            human_bytes(s.bytes_read),
            human_bytes(s.new_bytes_stored),
            s.chunks,
            s.delta_chunks,
            s.cache_hits,
            s.probes,
            s.mb_per_s
        )
    };
    let (s, l) = backup("full backup", "demo/users01.dbf/1".into(), &data).await?;
    cache.store("demo:users01.dbf", &l)?;
    say(show(&s));
    steps.push(s);

    // Change 1% of the 8 KiB blocks, scattered.
    let blocks = size / 8192;
    let mut x = 7u64;
    for _ in 0..blocks.div_ceil(100) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = (x >> 33) as usize % blocks;
        let fresh = oracle_like(8192, x);
        data[b * 8192..(b + 1) * 8192].copy_from_slice(&fresh);
    }
    let (s, l) = backup(
        "backup after 1% of blocks changed",
        "demo/users01.dbf/2".into(),
        &data,
    )
    .await?;
    cache.store("demo:users01.dbf", &l)?;
    say(show(&s));
    steps.push(s);
    let (s, l) = backup(
        "backup of the unchanged file",
        "demo/users01.dbf/3".into(),
        &data,
    )
    .await?;
    cache.store("demo:users01.dbf", &l)?;
    say(show(&s));
    steps.push(s);

    let restored = work.join("users01.dbf.restored");
    let mut reader = repo
        .reader("demo/users01.dbf/2", &ReadOptions::default())
        .await?;
    let out = restored.clone();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || -> Result<()> {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&out)?);
        while let Some(c) = reader.next_chunk()? {
            f.write_all(&c)?;
        }
        f.flush()?;
        Ok(())
    })
    .await??;
    let restore_rate = mb_per_s(size as u64, started.elapsed());
    let restore_verified = std::fs::read(&restored)? == data;
    say(format!(
        "restore of backup 2: {} at {restore_rate:.0} MB/s, {}",
        human_bytes(size as u64),
        if restore_verified {
            "identical to the datafile"
        } else {
            "DIFFERS from the datafile"
        }
    ));
    let report = store.verify(Some(repo.codec().clone()), None).await?;
    say(format!(
        "repository verify: {} chunks decrypted and re-hashed, {}",
        report.chunks,
        if report.is_clean() {
            "no problems"
        } else {
            "PROBLEMS FOUND"
        }
    ));
    let st = store.stats().await?;
    let written: u64 = steps.iter().map(|s| s.bytes_read).sum();
    let result = DemoReport {
        work_dir: work.clone(),
        repository: repo_dir,
        datafile_bytes: size as u64,
        steps,
        restore_mb_per_s: restore_rate,
        restore_verified,
        repository_verified: report.is_clean(),
        stored_bytes: st.pack_bytes,
        reduction: written as f64 / st.pack_bytes.max(1) as f64,
    };
    if a.json {
        print_json(&result)?;
    } else {
        println!(
            "{} backed up in 3 backups, {} stored: {:.1}x reduction",
            human_bytes(written),
            human_bytes(st.pack_bytes),
            result.reduction
        );
    }
    ensure!(
        restore_verified && report.is_clean(),
        "the demo's restore or verify failed"
    );
    Ok(())
}
