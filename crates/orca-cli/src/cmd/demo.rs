//! `orca demo`: the main job on the embedded default, end to end. A simulated Oracle database
//! is backed up by the simulator's `rman` through the ORCA SBT library (two channels) into a
//! local repository, backed up again unchanged, changed by 1% and backed up again; then every
//! datafile is deleted, restored and recovered through SBT (the database mounted, as Oracle
//! requires) and compared block by block with a snapshot taken before the loss. Beside those
//! FILESPERSET 1 figures, a full and its unchanged repeat AS COMPRESSED BACKUPSET and with
//! FILESPERSET 4 (multiplexed), each into a scratch repository, show what those DBAs get.
//!
//! Then the agent's way: a vault server and `orca agent run` start, a full backup is killed
//! halfway (the simulator's `ORACLESIM_KILL_AFTER_BYTES`), the next request resumes it, and
//! `orca restore --new-location` brings the one consolidated recovery point up beside the
//! running database (verified against a snapshot), then `orca drill` proves it again.
//!
//! The programs it drives (`oraclesim` and `liborca_sbt.so`) are found next to the `orca`
//! executable, where `cargo build --release` puts them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use orca_repo::{InitOptions, NewKey, PieceFilter, Repository};
use serde::Serialize;

use orca_vault::wire::JobState;

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
    /// Repeat fulls of the database as DBAs who do not use FILESPERSET 1 take them.
    repeat_fulls: Vec<RepeatFull>,
    resume: ResumeReport,
}

/// A full of one kind into a repository of its own, then the same full of the unchanged
/// database: what dedup makes of that kind of backup.
#[derive(Debug, Serialize)]
struct RepeatFull {
    variant: &'static str,
    full_stored: u64,
    repeat_stored: u64,
    /// The line the demo prints.
    line: String,
}

/// The agent part: a full killed halfway, resumed, one recovery point.
#[derive(Debug, Default, Serialize)]
struct ResumeReport {
    killed_job: String,
    killed_message: String,
    resumed_job: String,
    tag: String,
    recovery_point: String,
    recovery_points: usize,
    attempts: u64,
    skipped_datafiles: String,
    cleaned_up_sections: u64,
    bytes_read: u64,
    bytes_sent: u64,
    bytes_resent: u64,
    bytes_stored: u64,
    seconds: f64,
    /// `orca restore --new-location` of the resumed full verified against a snapshot.
    restore_verified: bool,
    /// `orca drill` of the resumed full passed.
    drill_passed: bool,
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

    let channel_to = |repo: &Path, key: &Path, cache: &Path| {
        format!(
            "device type sbt parms 'SBT_LIBRARY={}, ENV=(ORCA_REPO={}, ORCA_KEY_FILE={}, ORCA_CACHE_DIR={})'",
            lib.display(),
            repo.display(),
            key.display(),
            cache.display()
        )
    };
    let channel = channel_to(&repo_dir, &key, &work.join("cache"));
    // `body` runs in a RUN block with two SBT channels on `channel`, between `before` and
    // `after`.
    let rman_on = |channel: &str, before: &str, body: &str, after: &str| -> Result<(String, f64)> {
        let script = work.join("job.rman");
        std::fs::write(
            &script,
            format!(
                "{before}run {{\n allocate channel c1 {channel};\n allocate channel c2 {channel};\n{body}}}\n{after}"
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
    let rman_around =
        |before: &str, body: &str, after: &str| rman_on(&channel, before, body, after);
    let rman = |body: &str| rman_around("", body, "");
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

    // Lose every datafile, restore and recover through SBT, compare with a snapshot.
    let snapshot = take_snapshot(&sim, &home, &work.join("snapshot"))?;
    for f in datafiles(&home)? {
        std::fs::remove_file(&f).with_context(|| format!("cannot delete {}", f.display()))?;
    }
    say("all datafiles deleted; restoring and recovering through SBT".into());
    let (_, restore_seconds) = rman_around(
        RESTORE_BEFORE,
        " restore database;\n recover database;\n",
        RESTORE_AFTER,
    )?;
    let proof = prove_restore(&sim, &home, &snapshot)?;
    let restore_verified = proof.verified;
    say(format!(
        "restore + recover: {} in {restore_seconds:.1} s ({:.0} MB/s), oraclesim verify: {}",
        human_bytes(db_bytes),
        mb_per_s(
            db_bytes,
            std::time::Duration::from_secs_f64(restore_seconds)
        ),
        proof.output.trim()
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
    say(format!(
        "RMAN sent {} in 3 backups, {} stored: {:.1}x reduction",
        human_bytes(read),
        human_bytes(st.pack_bytes),
        read as f64 / st.pack_bytes.max(1) as f64
    ));

    // Beside FILESPERSET 1: what a DBA who compresses, or who multiplexes, gets from a
    // repeat full, each in a repository of its own so nothing dedups against the others.
    let mut repeat_fulls = Vec::new();
    for (variant, slug, body) in [
        (
            "AS COMPRESSED BACKUPSET",
            "compressed",
            " backup as compressed backupset database filesperset 1;\n",
        ),
        (
            "FILESPERSET 4 (multiplexed)",
            "multiplexed",
            " backup database filesperset 4;\n",
        ),
    ] {
        let dir = work.join(format!("repo-{slug}"));
        let vkey = work.join(format!("repo-{slug}.key"));
        let (vrepo, _) = Repository::init_local(
            &dir,
            &InitOptions::default(),
            &NewKey::KeyFile(vkey.clone()),
        )
        .await?;
        let vchannel = channel_to(&dir, &vkey, &work.join(format!("cache-{slug}")));
        let mut vseen = BTreeSet::new();
        let mut stored = Vec::new();
        for step in ["full", "unchanged repeat"] {
            let (_, secs) = rman_on(&vchannel, "", body, "")?;
            stored.push(
                step_stats(&vrepo, &mut vseen, step, secs)
                    .await?
                    .new_bytes_stored,
            );
        }
        let (full_stored, repeat_stored) = (stored[0], stored[1]);
        let line = format!(
            "{variant}: full {} stored, unchanged repeat {} stored ({:.0}% of the full; \
             with FILESPERSET 1: {})",
            human_bytes(full_stored),
            human_bytes(repeat_stored),
            repeat_stored as f64 * 100.0 / full_stored.max(1) as f64,
            human_bytes(steps[1].new_bytes_stored)
        );
        say(line.clone());
        repeat_fulls.push(RepeatFull {
            variant,
            full_stored,
            repeat_stored,
            line,
        });
    }
    // The agent's resume relies on NOT BACKED UP SINCE, whose times have one-second
    // resolution: its first attempt must not start in the second these backups ended.
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos();
    std::thread::sleep(Duration::from_nanos(u64::from(
        1_000_000_000u32.saturating_sub(into_second),
    )));

    let tools = Tools {
        sim: &sim,
        lib: &lib,
        bin: &bin,
        home: &home,
        work: &work,
    };
    let resume = agent_resume(&tools, db_bytes, &say).await?;
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
        repeat_fulls,
        resume,
    };
    if a.json {
        print_json(&result)?;
    }
    ensure!(
        restore_verified
            && report.is_clean()
            && result.resume.restore_verified
            && result.resume.drill_passed,
        "the demo found a problem: restore verified {restore_verified}, repository clean {}, \
         resumed full restore verified {}, its drill passed {}",
        report.is_clean(),
        result.resume.restore_verified,
        result.resume.drill_passed
    );
    Ok(())
}

/// Oracle restores the datafiles of a mounted database, never under an open instance.
const RESTORE_BEFORE: &str = "shutdown abort;\nstartup mount;\n";
/// And opens it once they are recovered.
const RESTORE_AFTER: &str = "alter database open;\n";

/// A reference taken with `oraclesim snapshot` before the loss.
#[derive(Debug, Clone)]
struct Snapshot {
    dir: PathBuf,
    scn: u64,
}

/// `oraclesim snapshot --home HOME --to DIR`: a self-consistent copy of the datafiles and the
/// SCN it was taken at.
fn take_snapshot(sim: &Path, home: &Path, dir: &Path) -> Result<Snapshot> {
    run_checked(
        Command::new(sim)
            .args(["snapshot", "--home"])
            .arg(home)
            .arg("--to")
            .arg(dir),
        "oraclesim snapshot",
    )?;
    let manifest = dir.join("snapshot.json");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", manifest.display()))?;
    let scn = v["scn"]
        .as_u64()
        .with_context(|| format!("{} names no SCN", manifest.display()))?;
    Ok(Snapshot {
        dir: dir.to_path_buf(),
        scn,
    })
}

/// What `oraclesim verify` said of a restored home.
#[derive(Debug)]
struct RestoreProof {
    verified: bool,
    output: String,
}

/// The restore proof: every block of every datafile of `home` equals the snapshot taken at
/// its SCN before the loss (`oraclesim verify --at-scn`). One wrong byte fails it.
fn prove_restore(sim: &Path, home: &Path, snapshot: &Snapshot) -> Result<RestoreProof> {
    let out = Command::new(sim)
        .args(["verify", "--home"])
        .arg(home)
        .arg("--against")
        .arg(&snapshot.dir)
        .arg("--at-scn")
        .arg(snapshot.scn.to_string())
        .output()
        .context("cannot run oraclesim verify")?;
    Ok(RestoreProof {
        verified: out.status.success(),
        output: String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr),
    })
}

/// The programs and places of a demo run.
struct Tools<'a> {
    sim: &'a Path,
    lib: &'a Path,
    bin: &'a Path,
    home: &'a Path,
    work: &'a Path,
}

/// Child processes (the vault, the agent) killed when the demo ends, however it ends.
struct Children(Vec<Child>);

impl Children {
    fn kill_last(&mut self) {
        if let Some(mut c) = self.0.pop() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        while !self.0.is_empty() {
            self.kill_last();
        }
    }
}

fn me() -> Result<Command> {
    Ok(Command::new(
        std::env::current_exe().context("cannot find this program")?,
    ))
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        ensure!(Instant::now() < deadline, "{what} did not come up in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A job's record as `orca job show ID --json` prints it.
fn job_json(config: &Path, id: &str) -> Result<serde_json::Value> {
    let out = run_checked(
        me()?
            .args(["job", "show", id, "--json", "--config"])
            .arg(config),
        "orca job show",
    )?;
    serde_json::from_str(&out).context("orca job show printed no JSON")
}

fn detail<'a>(job: &'a serde_json::Value, key: &str) -> &'a str {
    job["details"][key].as_str().unwrap_or("")
}

fn detail_u64(job: &serde_json::Value, key: &str) -> u64 {
    detail(job, key).parse().unwrap_or(0)
}

/// The agent's way: a vault server and `orca agent run` as a DBA starts them, a full backup
/// killed halfway, resumed by the next request, restored from its one recovery point.
async fn agent_resume(t: &Tools<'_>, db_bytes: u64, say: &impl Fn(String)) -> Result<ResumeReport> {
    let vault_dir = t.work.join("vault");
    let vault_key = t.work.join("vault.key");
    Repository::init_local(
        &vault_dir,
        &InitOptions::default(),
        &NewKey::KeyFile(vault_key.clone()),
    )
    .await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut children = Children(Vec::new());
    let log =
        |name: &str| -> Result<std::fs::File> { Ok(std::fs::File::create(t.work.join(name))?) };
    children.0.push(
        me()?
            .args(["vault", "serve", "--data"])
            .arg(&vault_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log("vault.log")?)
            .spawn()
            .context("cannot start orca vault serve")?,
    );
    wait_until("the vault", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    let token = run_checked(
        me()?
            .args(["vault", "token", "create", "--data"])
            .arg(&vault_dir)
            .args(["--db", "DEMO", "--scope", "backup"]),
        "orca vault token create",
    )?
    .trim()
    .to_string();
    let config = t.work.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"[agent]
name = "demo"
state_dir = "{state}"
heartbeat = "1s"
poll = "200ms"

[vault]
url = "http://127.0.0.1:{port}"

[[database]]
name = "DEMO"
oracle_sid = "demo"
oracle_home = "{home}"
rman = "{bin}/rman"
sqlplus = "{bin}/sqlplus"
token = "{token}"
key_file = "{key}"
sbt_library = "{lib}"
sbt_trace = "{home}/trace/sbtio.log"
channels = 2
section_size = "{section}M"

[database.channel_env]
ORCA_CACHE_DIR = "{cache}"
# Small upload batches: a killed backup loses at most what was in flight, per channel.
ORCA_SBT_BATCH_MB = "1"

[database.env]
ORACLESIM_HOME = "{home}"
"#,
            state = t.work.join("agent-state").display(),
            home = t.home.display(),
            bin = t.bin.display(),
            key = vault_key.display(),
            lib = t.lib.display(),
            section = ((db_bytes / 16) >> 20).max(1),
            cache = t.work.join("agent-cache").display(),
        ),
    )?;
    say(format!(
        "vault serving {} on 127.0.0.1:{port}; agent configuration {}",
        vault_dir.display(),
        config.display()
    ));
    let agent_cfg = orca_agent::Config::load(&config)?;
    let db_cfg = agent_cfg
        .database("DEMO")
        .context("DEMO is not in the demo's agent configuration")?;
    let vault = orca_agent::daemon::vault_for(&agent_cfg, db_cfg)?;
    let start_agent = |children: &mut Children, env: &[(&str, String)]| -> Result<()> {
        let mut c = me()?;
        c.args(["agent", "run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log("agent.log")?)
            .envs(env.iter().map(|(k, v)| (k, v)));
        children
            .0
            .push(c.spawn().context("cannot start orca agent run")?);
        Ok(())
    };
    let alive = |vault: &orca_vault::client::VaultClient| {
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            rt.block_on(vault.agent("DEMO"))
                .ok()
                .flatten()
                .is_some_and(|a| a.alive)
        })
    };
    let backup = || -> Result<(String, bool)> {
        let out = me()?
            .args(["backup", "--db", "DEMO", "--wait", "--config"])
            .arg(&config)
            .output()
            .context("cannot run orca backup")?;
        let id = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        ensure!(
            !id.is_empty(),
            "orca backup gave no job id: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((id, out.status.success()))
    };

    let started = Instant::now();
    let kill_at = db_bytes / 2;
    start_agent(
        &mut children,
        &[("ORACLESIM_KILL_AFTER_BYTES", kill_at.to_string())],
    )?;
    wait_until("the agent's heartbeat", || alive(&vault))?;
    let (killed, ok) = backup()?;
    let j1 = job_json(&config, &killed)?;
    ensure!(
        !ok,
        "the full backup was meant to be killed halfway but succeeded"
    );
    let mut r = ResumeReport {
        killed_job: killed.clone(),
        killed_message: j1["message"].as_str().unwrap_or("").to_string(),
        ..Default::default()
    };
    say(format!(
        "agent full backup {killed} killed after {} (rman and its channels, SIGKILL): {}",
        human_bytes(kill_at),
        r.killed_message
    ));
    children.kill_last();
    start_agent(&mut children, &[])?;
    wait_until("the agent's heartbeat", || alive(&vault))?;
    let (resumed, ok) = backup()?;
    let j2 = job_json(&config, &resumed)?;
    ensure!(
        ok,
        "the resumed full backup {resumed} failed: {}",
        j2["message"].as_str().unwrap_or("")
    );
    r.resumed_job = resumed.clone();
    r.tag = detail(&j2, "tag").to_string();
    r.recovery_point = detail(&j2, "recovery_point").to_string();
    r.attempts = detail_u64(&j2, "attempts");
    r.skipped_datafiles = detail(&j2, "skipped_datafiles").to_string();
    r.cleaned_up_sections = detail(&j2, "cleaned_up")
        .split(',')
        .filter(|s| !s.is_empty())
        .count() as u64;
    r.bytes_read = detail_u64(&j2, "bytes_read");
    r.bytes_sent = detail_u64(&j2, "bytes_sent");
    r.bytes_resent = detail_u64(&j2, "bytes_resent");
    r.bytes_stored = detail_u64(&j2, "bytes_stored");
    r.seconds = started.elapsed().as_secs_f64();
    let points = vault
        .recovery_points(&orca_vault::wire::RecoveryPointFilter {
            database: Some("DEMO".into()),
            ..Default::default()
        })
        .await?;
    r.recovery_points = points.len();
    say(format!(
        "job {resumed} resumed the full (tag {}, same command id, datafiles skipped: {}, {} unfinished sections cleaned up)",
        r.tag,
        if r.skipped_datafiles.is_empty() {
            "none"
        } else {
            &r.skipped_datafiles
        },
        r.cleaned_up_sections
    ));
    say(format!(
        "both attempts: read {}; the vault received {}, {} of it twice, and stored {}; {} recovery point in the vault: {} ({} attempts)",
        human_bytes(r.bytes_read),
        human_bytes(r.bytes_sent),
        human_bytes(r.bytes_resent),
        human_bytes(r.bytes_stored),
        r.recovery_points,
        r.recovery_point,
        r.attempts
    ));
    children.kill_last();

    // The agent restores the resumed full into a new location while the database runs on,
    // then drills it: restored into scratch space, recovered, opened, removed, recorded.
    let snapshot = take_snapshot(t.sim, t.home, &t.work.join("snapshot-resumed"))?;
    let copy = t.work.join("restored-copy");
    let restore_started = Instant::now();
    let req = orca_agent::restore::RestoreRequest {
        point: Some(r.recovery_point.clone()),
        new_location: Some(copy.clone()),
        ..Default::default()
    };
    let job = orca_agent::restore::run(&agent_cfg, db_cfg, vault.clone(), &req).await?;
    ensure!(
        job.state == JobState::Succeeded,
        "orca restore --new-location failed: {}",
        job.message
    );
    let proof = prove_restore(t.sim, &copy, &snapshot)?;
    r.restore_verified = proof.verified;
    say(format!(
        "orca restore --new-location {}: recovery point {} restored from the vault in {:.1} s while DEMO kept running, oraclesim verify of the copy: {}",
        copy.display(),
        r.recovery_point,
        restore_started.elapsed().as_secs_f64(),
        proof.output.trim()
    ));
    let drill = orca_agent::drill::run(
        &agent_cfg,
        db_cfg,
        vault.clone(),
        &orca_agent::drill::DrillRequest {
            point: Some(r.recovery_point.clone()),
            scratch: Some(t.work.join("drill")),
        },
    )
    .await?;
    r.drill_passed = drill.state == JobState::Succeeded;
    say(format!(
        "orca drill of {}: {} in {} s: {}",
        r.recovery_point,
        if r.drill_passed { "passed" } else { "FAILED" },
        drill
            .details
            .get("duration_secs")
            .map_or("?", String::as_str),
        drill.message
    ));
    Ok(r)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use std::time::SystemTime;

    fn newest(path: &Path) -> SystemTime {
        let mut t = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            t = t.max(newest(&e.path()));
        }
        t
    }

    /// `oraclesim` from this workspace's target directory, built when missing or older than
    /// the simulator's sources.
    fn oraclesim() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let sim = exe.parent().unwrap().parent().unwrap().join("oraclesim");
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let sources = ["orca-oracle-sim", "orca-oracle"]
            .iter()
            .map(|c| newest(&crates.join(c).join("src")))
            .max()
            .unwrap();
        let fresh = std::fs::metadata(&sim)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= sources);
        if !fresh {
            let ok = Command::new(env!("CARGO"))
                .args(["build", "-p", "orca-oracle-sim"])
                .status()
                .unwrap()
                .success();
            assert!(ok, "building oraclesim failed");
        }
        sim
    }

    #[test]
    fn the_restore_proof_fails_on_one_wrong_byte() {
        let sim = oraclesim();
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("db");
        run_checked(
            Command::new(&sim)
                .args([
                    "create",
                    "--name",
                    "DEMO",
                    "--datafiles",
                    "2",
                    "--size-mb",
                    "2",
                ])
                .args(["--online-log-mb", "1", "--home"])
                .arg(&home),
            "oraclesim create",
        )
        .unwrap();
        let snapshot = take_snapshot(&sim, &home, &tmp.path().join("snapshot")).unwrap();
        let proof = prove_restore(&sim, &home, &snapshot).unwrap();
        assert!(proof.verified, "{}", proof.output);

        // One flipped bit in block 10 of the SYSTEM datafile.
        let system = datafiles(&home)
            .unwrap()
            .into_iter()
            .find(|p| p.ends_with("system01.dbf"))
            .unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&system)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, 10 * 8192 + 500).unwrap();
        f.write_all_at(&[b[0] ^ 0x10], 10 * 8192 + 500).unwrap();
        let proof = prove_restore(&sim, &home, &snapshot).unwrap();
        assert!(!proof.verified, "{}", proof.output);
        assert!(
            proof.output.contains("file 1 block 10: content differs"),
            "{}",
            proof.output
        );

        // A snapshot of another SCN is refused rather than compared.
        let other = Snapshot {
            scn: snapshot.scn + 1,
            ..snapshot
        };
        let proof = prove_restore(&sim, &home, &other).unwrap();
        assert!(!proof.verified, "{}", proof.output);
    }
}
