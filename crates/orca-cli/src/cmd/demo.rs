//! `orca demo`: the main job on the embedded default, end to end. A simulated Oracle database
//! is backed up by the simulator's `rman` through the ORCA SBT library (two channels) into a
//! local repository, backed up again unchanged, changed by 1% and backed up again; then every
//! datafile is deleted, restored and recovered through SBT and compared with a copy.
//!
//! The programs it drives (`oraclesim` and `liborca_sbt.so`) are found next to the `orca`
//! executable, where `cargo build --release` puts them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use orca_repo::{InitOptions, NewKey, PieceFilter, Repository};
use serde::Serialize;

use crate::common::{human_bytes, mb_per_s, print_json};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Work directory (kept afterwards); a temporary one when not given.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Size of the simulated database in MiB (four datafiles).
    #[arg(long, default_value_t = 256)]
    size_mb: u64,
    /// Print what happened as one JSON object.
    #[arg(long)]
    json: bool,
    /// The simulator binary; by default `oraclesim` next to this program.
    #[arg(long, value_name = "FILE", env = "ORCA_ORACLESIM")]
    oraclesim: Option<PathBuf>,
    /// The SBT library; by default `liborca_sbt.so` next to this program.
    #[arg(long, value_name = "FILE", env = "ORCA_SBT_LIBRARY")]
    sbt_library: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize)]
struct Step {
    step: &'static str,
    pieces: u64,
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
    database_bytes: u64,
    steps: Vec<Step>,
    restore_seconds: f64,
    restore_verified: bool,
    repository_verified: bool,
    stored_bytes: u64,
    reduction: f64,
}

fn beside_me(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join(name);
    p.exists().then_some(p)
}

fn tool(explicit: &Option<PathBuf>, name: &str) -> Result<PathBuf> {
    if let Some(p) = explicit {
        ensure!(p.exists(), "{} does not exist", p.display());
        return Ok(p.clone());
    }
    match beside_me(name) {
        Some(p) => Ok(p),
        None => bail!(
            "{name} was not found next to this program: build everything with `cargo build --release` \
             (or pass --oraclesim / --sbt-library)"
        ),
    }
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{what} failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

pub async fn run(a: DemoArgs) -> Result<()> {
    let sim = tool(&a.oraclesim, "oraclesim")?;
    let lib = tool(&a.sbt_library, "liborca_sbt.so")?;
    let temp;
    let work = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.canonicalize()?
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
    let home = work.join("db");
    ensure!(
        !repo_dir.exists() && !home.exists(),
        "{} already holds a demo; pick another --dir",
        work.display()
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

    let bin = work.join("bin");
    run_checked(
        Command::new(&sim).arg("install-shims").arg(&bin),
        "oraclesim install-shims",
    )?;
    let per_file = (a.size_mb / 4).max(4);
    run_checked(
        Command::new(&sim)
            .args(["create", "--home"])
            .arg(&home)
            .args(["--name", "DEMO", "--datafiles", "4", "--size-mb"])
            .arg(per_file.to_string()),
        "oraclesim create",
    )?;
    let db_bytes = datafile_bytes(&home)?;
    say(format!(
        "simulated database DEMO in {}: 4 datafiles, {}",
        home.display(),
        human_bytes(db_bytes)
    ));

    let channel = format!(
        "device type sbt parms 'SBT_LIBRARY={}, ENV=(ORCA_REPO={}, ORCA_KEY_FILE={}, ORCA_CACHE_DIR={})'",
        lib.display(),
        repo_dir.display(),
        key.display(),
        work.join("cache").display()
    );
    let rman = |body: &str| -> Result<(String, f64)> {
        let script = work.join("job.rman");
        std::fs::write(
            &script,
            format!(
                "run {{\n allocate channel c1 {channel};\n allocate channel c2 {channel};\n{body}}}\n"
            ),
        )?;
        let started = Instant::now();
        let out = run_checked(
            Command::new(bin.join("rman"))
                .arg("target")
                .arg("/")
                .arg(format!("cmdfile={}", script.display()))
                .env("ORACLESIM_HOME", &home),
            "rman",
        )?;
        Ok((out, started.elapsed().as_secs_f64()))
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut steps = Vec::new();
    let show = |s: &Step| {
        format!(
            "{:<30} {} pieces, read {:>10}, stored {:>10} new ({} chunks, {} deltas, {} cache hits, {} probes), {:.1} s",
            s.step,
            s.pieces,
            human_bytes(s.bytes_read),
            human_bytes(s.new_bytes_stored),
            s.chunks,
            s.delta_chunks,
            s.cache_hits,
            s.probes,
            s.seconds
        )
    };
    for (name, body) in [
        ("full backup", " backup database filesperset 1;\n"),
        (
            "backup, nothing changed",
            " backup database filesperset 1;\n",
        ),
        (
            "backup after 1% changed",
            " backup incremental level 0 database filesperset 1;\n",
        ),
    ] {
        if name == "backup after 1% changed" {
            run_checked(
                Command::new(&sim)
                    .args(["workload", "--home"])
                    .arg(&home)
                    .args(["--change-pct", "1", "--log-switches", "2"]),
                "oraclesim workload",
            )?;
        }
        let (_, secs) = rman(body)?;
        let s = step_stats(&repo, &mut seen, name, secs).await?;
        say(show(&s));
        steps.push(s);
    }

    // Lose every datafile, restore and recover through SBT, compare with a copy.
    let reference = work.join("reference");
    copy_datafiles(&home, &reference)?;
    for f in datafiles(&home)? {
        std::fs::remove_file(&f).with_context(|| format!("cannot delete {}", f.display()))?;
    }
    say("all datafiles deleted; restoring and recovering through SBT".into());
    let (_, restore_seconds) = rman(" restore database;\n recover database;\n")?;
    let verify = Command::new(&sim)
        .args(["verify", "--home"])
        .arg(&home)
        .arg("--against")
        .arg(&reference)
        .output()
        .context("cannot run oraclesim verify")?;
    let restore_verified = verify.status.success();
    say(format!(
        "restore + recover: {} in {restore_seconds:.1} s ({:.0} MB/s), oraclesim verify: {}",
        human_bytes(db_bytes),
        mb_per_s(
            db_bytes,
            std::time::Duration::from_secs_f64(restore_seconds)
        ),
        String::from_utf8_lossy(&verify.stdout).trim()
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
    let read: u64 = steps.iter().map(|s| s.bytes_read).sum();
    let result = DemoReport {
        work_dir: work.clone(),
        repository: repo_dir,
        database_bytes: db_bytes,
        steps,
        restore_seconds,
        restore_verified,
        repository_verified: report.is_clean(),
        stored_bytes: st.pack_bytes,
        reduction: read as f64 / st.pack_bytes.max(1) as f64,
    };
    if a.json {
        print_json(&result)?;
    } else {
        println!(
            "RMAN sent {} in 3 backups, {} stored: {:.1}x reduction",
            human_bytes(read),
            human_bytes(st.pack_bytes),
            result.reduction
        );
    }
    ensure!(
        restore_verified && report.is_clean(),
        "the demo found a problem: restore verified {restore_verified}, repository clean {}",
        report.is_clean()
    );
    Ok(())
}

/// Sums the statistics the SBT library recorded for the pieces this step committed.
async fn step_stats(
    repo: &Repository,
    seen: &mut BTreeSet<String>,
    step: &'static str,
    seconds: f64,
) -> Result<Step> {
    let mut s = Step {
        step,
        seconds,
        ..Default::default()
    };
    for p in repo.list(&PieceFilter::default()).await? {
        if !seen.insert(p.name.clone()) {
            continue;
        }
        s.pieces += 1;
        if let Some(w) = &p.meta.stats {
            s.bytes_read += w.bytes_in;
            s.new_bytes_stored += w.new_bytes;
            s.chunks += w.chunks;
            s.delta_chunks += w.delta_chunks;
            s.cache_hits += w.cache_hits;
            s.probes += w.probes;
        }
    }
    s.mb_per_s = mb_per_s(s.bytes_read, std::time::Duration::from_secs_f64(seconds));
    Ok(s)
}

fn datafiles(home: &Path) -> Result<Vec<PathBuf>> {
    let dir = home.join("oradata").join("DEMO");
    let mut v = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "dbf") {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

fn datafile_bytes(home: &Path) -> Result<u64> {
    let mut n = 0;
    for f in datafiles(home)? {
        n += std::fs::metadata(&f)?.len();
    }
    Ok(n)
}

/// A copy of the home with its datafiles, for `oraclesim verify --against`.
fn copy_datafiles(home: &Path, to: &Path) -> Result<()> {
    fn copy_dir(from: &Path, to: &Path) -> Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            let target = to.join(e.file_name());
            if e.file_type()?.is_dir() {
                copy_dir(&e.path(), &target)?;
            } else {
                std::fs::copy(e.path(), &target)?;
            }
        }
        Ok(())
    }
    copy_dir(home, to)
        .with_context(|| format!("cannot copy {} to {}", home.display(), to.display()))
}
