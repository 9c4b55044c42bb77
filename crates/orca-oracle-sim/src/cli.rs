//! `oraclesim` admin commands: create, workload, instance, snapshot, verify,
//! install-shims, and inspection helpers (info, dbv, switch, checkpoint,
//! recover, bct).

use crate::db::{
    CreateOptions, Database, DbError, Fill, HOME_ENV, RecoverOptions, RecoverUntil, WorkloadOptions,
};
use crate::verify;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use orca_oracle::{OracleTime, Scn};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "oraclesim",
    about = "A simulated Oracle database for testing ORCA",
    long_about = "A simulated Oracle database: datafiles and archived logs in Oracle's on-disk \
                  formats, a control file with v$ views, and rman/sqlplus stand-ins \
                  (see `oraclesim install-shims`)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Debug)]
struct HomeArg {
    /// Database home directory.
    #[arg(long, env = HOME_ENV)]
    home: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a database (ARCHIVELOG mode, SYSTEM/SYSAUX/UNDOTBS1/USERS), or with --empty a
    /// home to restore one into.
    Create {
        #[command(flatten)]
        home: HomeArg,
        /// DB_NAME (1-8 characters).
        #[arg(long, default_value = "ORCL")]
        name: String,
        /// No database: only the directories and dbs/init<NAME>.ora, so that an instance can
        /// be started NOMOUNT and the database restored from backups (a new host).
        #[arg(long, conflicts_with_all = ["datafiles", "size_mb", "block_size", "block_sizes", "threads", "seed", "online_log_mb", "fill", "json"])]
        empty: bool,
        /// Number of datafiles.
        #[arg(long, default_value_t = 4)]
        datafiles: u32,
        /// Size of each datafile in MiB.
        #[arg(long = "size-mb", default_value_t = 64)]
        size_mb: u64,
        /// Datafile block size.
        #[arg(long = "block-size", default_value_t = 8192)]
        block_size: usize,
        /// Other block sizes in KiB (2,4,16,32): one tablespace TS_<n>K with one datafile of
        /// --size-mb for each, after the --datafiles ones.
        #[arg(long = "block-sizes", value_delimiter = ',')]
        block_sizes: Vec<usize>,
        /// Redo threads (RAC instances).
        #[arg(long, default_value_t = 1)]
        threads: u16,
        /// Seed for generated content.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Size of each online redo log in MiB.
        #[arg(long = "online-log-mb", default_value_t = 64)]
        online_log_mb: u64,
        /// What the blocks hold: rows (compressible like table data) or random bytes
        /// (incompressible; headers, tails and checksums stay valid).
        #[arg(long, value_enum, default_value = "rows")]
        fill: FillArg,
        /// Also write the timing as JSON to this file (the create benchmark:
        /// `scripts/bench-sim-create`).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Change blocks, grow files, checkpoint and switch logs.
    Workload {
        #[command(flatten)]
        home: HomeArg,
        /// Percentage of formatted blocks to change in each file.
        #[arg(long = "change-pct")]
        change_pct: f64,
        /// MiB to add to the USERS datafiles.
        #[arg(long = "grow-mb", default_value_t = 0)]
        grow_mb: u64,
        /// Log switches (with archiving) during the run.
        #[arg(long = "log-switches", default_value_t = 0)]
        log_switches: u32,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Bring a RAC instance down or up.
    Instance {
        #[command(flatten)]
        home: HomeArg,
        /// Redo thread of the instance.
        #[arg(long)]
        thread: u16,
        /// New state.
        state: InstanceState,
    },
    /// Compare every block of a home's datafiles with a reference (prove a restore).
    Verify {
        #[command(flatten)]
        home: HomeArg,
        /// Reference: a snapshot (`oraclesim snapshot`) or a copy of a home; its datafiles
        /// are read from this directory, matched by FILE#.
        #[arg(long)]
        against: PathBuf,
        /// Only require identity for changes before this SCN (the reference is newer).
        #[arg(long = "up-to-scn", conflicts_with = "at_scn")]
        up_to_scn: Option<u64>,
        /// The reference must be a snapshot taken at this SCN.
        #[arg(long = "at-scn")]
        at_scn: Option<u64>,
    },
    /// Copy the datafiles and control file into DIR as a reference for `verify`.
    Snapshot {
        #[command(flatten)]
        home: HomeArg,
        /// New directory for the snapshot.
        #[arg(long)]
        to: PathBuf,
    },
    /// Put `rman` and `sqlplus` links to this binary into DIR.
    InstallShims {
        /// Directory to put on PATH.
        dir: PathBuf,
    },
    /// Check every block of every datafile and redo log (like DBVERIFY).
    Dbv {
        #[command(flatten)]
        home: HomeArg,
    },
    /// Print database, datafile and log facts.
    Info {
        #[command(flatten)]
        home: HomeArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// ALTER SYSTEM ARCHIVE LOG CURRENT.
    Switch {
        #[command(flatten)]
        home: HomeArg,
    },
    /// ALTER SYSTEM CHECKPOINT.
    Checkpoint {
        #[command(flatten)]
        home: HomeArg,
    },
    /// Media recovery of the datafiles in place.
    Recover {
        #[command(flatten)]
        home: HomeArg,
        /// Stop before this SCN.
        #[arg(long = "until-scn", conflicts_with_all = ["until_time", "until_sequence"])]
        until_scn: Option<u64>,
        /// Stop before this time ("YYYY-MM-DD HH24:MI:SS").
        #[arg(long = "until-time", conflicts_with = "until_sequence")]
        until_time: Option<String>,
        /// Stop before this log sequence (with --thread).
        #[arg(long = "until-sequence", requires = "thread")]
        until_sequence: Option<u32>,
        /// Thread of --until-sequence.
        #[arg(long)]
        thread: Option<u16>,
    },
    /// Block change tracking on or off.
    Bct {
        #[command(flatten)]
        home: HomeArg,
        /// enable or disable.
        state: BctState,
        /// Tracking file (enable only).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Open (creating its master key the first time) or close the keystore that transparent
    /// backup encryption needs (ADMINISTER KEY MANAGEMENT SET KEYSTORE OPEN | CLOSE).
    Wallet {
        #[command(flatten)]
        home: HomeArg,
        /// open or close.
        state: WalletState,
    },
}

#[derive(ValueEnum, Clone, Debug)]
enum WalletState {
    Open,
    Close,
}

#[derive(ValueEnum, Clone, Debug)]
enum InstanceState {
    Up,
    Down,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FillArg {
    Rows,
    Random,
}

impl From<FillArg> for Fill {
    fn from(f: FillArg) -> Fill {
        match f {
            FillArg::Rows => Fill::Rows,
            FillArg::Random => Fill::Random,
        }
    }
}

#[derive(ValueEnum, Clone, Debug)]
enum BctState {
    Enable,
    Disable,
}

/// Entry point when the binary runs as `oraclesim`.
pub fn main(args: &[String]) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let cli = match Cli::try_parse_from(
        std::iter::once("oraclesim".to_string()).chain(args.iter().cloned()),
    ) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("oraclesim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn open(home: &HomeArg) -> Result<Database> {
    Database::open(&home.home).with_context(|| format!("opening {}", home.home.display()))
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Create {
            home,
            name,
            empty: true,
            ..
        } => {
            let init =
                crate::db::create_empty(&home.home, &name).context("creating the empty home")?;
            println!(
                "Empty home {} for database {}: parameter file {}; no control file, no datafiles \
                 (`rman target /`, `startup nomount`, then restore)",
                home.home.display(),
                name.to_ascii_uppercase(),
                init.display()
            );
        }
        Cmd::Create {
            home,
            name,
            empty: false,
            datafiles,
            size_mb,
            block_size,
            block_sizes,
            threads,
            seed,
            online_log_mb,
            fill,
            json,
        } => {
            let t = Instant::now();
            let opts = CreateOptions {
                home: home.home.clone(),
                name,
                datafiles,
                size_mb,
                block_size,
                threads,
                seed,
                online_log_mb,
                fill: fill.into(),
                extra_block_sizes: block_sizes.iter().map(|k| k * 1024).collect(),
            };
            let db = Database::create(&opts).context("creating the database")?;
            let info = db.info()?;
            println!(
                "Database {} (DBID {}) created in {}: {} datafiles x {} MiB, {} thread(s), {:.1} s",
                info.name,
                info.dbid,
                db.home().display(),
                datafiles,
                size_mb,
                threads,
                t.elapsed().as_secs_f64()
            );
            if let Some(path) = json {
                let secs = t.elapsed().as_secs_f64();
                let bytes = (u64::from(datafiles) * size_mb) << 20;
                let report = serde_json::json!({
                    "benchmark": "oraclesim create",
                    "datafiles": datafiles,
                    "bytes": bytes,
                    "seconds": (secs * 1000.0).round() / 1000.0,
                    "mb_per_s": (bytes as f64 / 1e6 / secs).round(),
                    "target_seconds_for_2gib": 60,
                });
                std::fs::write(&path, format!("{report:#}\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Cmd::Workload {
            home,
            change_pct,
            grow_mb,
            log_switches,
            seed,
        } => {
            let db = open(&home)?;
            let t = Instant::now();
            let r = db.workload(&WorkloadOptions {
                change_pct,
                grow_mb,
                log_switches,
                seed,
            })?;
            println!(
                "changed {} blocks, formatted {} new, grew {} blocks, {} redo records, archived {} logs, SCN {} -> {} ({:.1} s)",
                r.blocks_changed,
                r.blocks_formatted,
                r.blocks_grown,
                r.redo_records,
                r.archived.len(),
                r.start_scn,
                r.end_scn,
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::Instance {
            home,
            thread,
            state,
        } => {
            let db = open(&home)?;
            let up = matches!(state, InstanceState::Up);
            db.set_instance_state(thread, up)?;
            println!(
                "instance of thread {thread} is {}",
                if up { "up" } else { "down" }
            );
        }
        Cmd::Verify {
            home,
            against,
            up_to_scn,
            at_scn,
        } => {
            let opts = verify::VerifyOptions {
                up_to: up_to_scn.map(Scn),
                at_scn: at_scn.map(Scn),
            };
            let r = verify::verify_homes(&home.home, &against, &opts)?;
            for m in &r.mismatches {
                match m.block {
                    Some(b) => println!("file {} block {}: {}", m.file_no, b, m.what),
                    None => println!("file {}: {}", m.file_no, m.what),
                }
            }
            if r.ok() {
                println!(
                    "OK: {} datafiles, {} blocks identical{}{}",
                    r.files,
                    r.blocks - r.blocks_newer,
                    if r.blocks_newer > 0 {
                        format!(" ({} changed after the SCN bound)", r.blocks_newer)
                    } else {
                        String::new()
                    },
                    r.reference_scn
                        .map(|s| format!(" to the snapshot at SCN {s}"))
                        .unwrap_or_default()
                );
            } else {
                println!("MISMATCH: {} difference(s)", r.mismatches.len());
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Snapshot { home, to } => {
            let m = verify::snapshot(&home.home, &to)
                .with_context(|| format!("taking a snapshot of {}", home.home.display()))?;
            let blocks: u64 = m.datafiles.iter().map(|f| u64::from(f.blocks)).sum();
            println!(
                "snapshot of {} (DBID {}) at SCN {}: {} datafiles, {} blocks in {}",
                m.name,
                m.dbid,
                m.scn,
                m.datafiles.len(),
                blocks,
                to.display()
            );
        }
        Cmd::InstallShims { dir } => install_shims(&dir)?,
        Cmd::Dbv { home } => {
            let db = open(&home)?;
            let mut bad = 0;
            for f in verify::dbv(&db)? {
                println!(
                    "DBVERIFY - Verification starting : FILE = {}",
                    f.path.display()
                );
                for e in &f.errors {
                    println!("  {e}");
                }
                println!("DBVERIFY - Verification complete");
                println!("Total Pages Examined         : {}", f.examined);
                println!("Total Pages Processed        : {}", f.processed);
                println!("Total Pages Failing          : {}", f.failing);
                println!("Total Pages Empty            : {}", f.empty);
                println!(
                    "Highest block SCN            : {} ({}.{})",
                    f.highest_scn,
                    f.highest_scn.wrap(),
                    f.highest_scn.base()
                );
                println!();
                bad += f.failing;
            }
            if bad > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Info { home, json } => {
            let db = open(&home)?;
            let info = db.info()?;
            let files = db.datafiles()?;
            let logs = db.archived_logs()?;
            let inst = db.instances()?;
            if json {
                let v = serde_json::json!({
                    "database": info, "datafiles": files, "archived_logs": logs,
                    "instances": inst, "current_scn": db.current_scn()?,
                    "block_change_tracking": db.block_change_tracking()?,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{} DBID {} {} {} SCN {}",
                    info.name,
                    info.dbid,
                    info.log_mode,
                    info.open_mode.as_str(),
                    db.current_scn()?
                );
                for d in files {
                    println!(
                        "  file {:>3} {:<10} {:>8} blocks (hwm {:>8}) ckpt {:>12} {}",
                        d.file_no,
                        d.tablespace,
                        d.blocks,
                        d.hwm_blocks,
                        d.checkpoint_scn,
                        d.path.display()
                    );
                }
                for i in inst {
                    println!("  instance {} thread {} {}", i.name, i.thread, i.status);
                }
                println!("  {} archived log rows", logs.len());
            }
        }
        Cmd::Switch { home } => {
            let db = open(&home)?;
            for a in db.switch_logfile()? {
                println!(
                    "archived thread {} sequence {} {}",
                    a.thread,
                    a.sequence,
                    a.name.map(|p| p.display().to_string()).unwrap_or_default()
                );
            }
        }
        Cmd::Checkpoint { home } => {
            let db = open(&home)?;
            println!("checkpoint at SCN {}", db.checkpoint()?);
        }
        Cmd::Recover {
            home,
            until_scn,
            until_time,
            until_sequence,
            thread,
        } => {
            let db = open(&home)?;
            let until = if let Some(s) = until_scn {
                Some(RecoverUntil::Scn(Scn(s)))
            } else if let Some(t) = until_time {
                let dt = crate::db::sqlfn::parse_date(&t, "YYYY-MM-DD HH24:MI:SS")
                    .map_err(|e| anyhow::anyhow!("--until-time {t:?}: {e}"))?;
                Some(RecoverUntil::Time(OracleTime::from_datetime(dt)?))
            } else {
                until_sequence.map(|s| RecoverUntil::Sequence {
                    thread: thread.unwrap_or(1),
                    sequence: s,
                })
            };
            match db.recover(&RecoverOptions {
                until,
                ..Default::default()
            }) {
                Ok(r) => println!(
                    "media recovery complete: {} records from {} logs, SCN {} -> {}",
                    r.records_applied,
                    r.logs_applied.len(),
                    r.start_scn,
                    r.end_scn
                ),
                Err(DbError::MissingLogs(m)) => {
                    for l in &m {
                        println!(
                            "missing archived log thread {} sequence {}{}",
                            l.thread,
                            l.sequence,
                            l.name
                                .as_ref()
                                .map(|p| format!(" ({})", p.display()))
                                .unwrap_or_default()
                        );
                    }
                    bail!("media recovery needs {} missing archived log(s)", m.len());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Cmd::Bct { home, state, file } => {
            let db = open(&home)?;
            match state {
                BctState::Enable => db.enable_block_change_tracking(file.as_deref())?,
                BctState::Disable => db.disable_block_change_tracking()?,
            }
            let s = db.block_change_tracking()?;
            println!(
                "block change tracking {} {}",
                s.status,
                s.file.map(|f| f.display().to_string()).unwrap_or_default()
            );
        }
        Cmd::Wallet { home, state } => {
            let (res, word) = match state {
                WalletState::Open => (crate::db::open_wallet(&home.home), "open"),
                WalletState::Close => (crate::db::close_wallet(&home.home), "closed"),
            };
            res.with_context(|| format!("wallet of {}", home.home.display()))?;
            println!("keystore {word}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn install_shims(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let exe = std::env::current_exe().context("locating the oraclesim binary")?;
    for name in ["rman", "sqlplus"] {
        let link = dir.join(name);
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).with_context(|| format!("replacing {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("linking {} to {}", link.display(), exe.display()))?;
        println!("{} -> {}", link.display(), exe.display());
    }
    println!(
        "Put {} on PATH and set {HOME_ENV} to a database home.",
        dir.display()
    );
    Ok(())
}
