//! `orca`: the ORCA command line.

mod cmd;
mod common;

use std::process::ExitCode;

use std::io::IsTerminal;

use clap::{CommandFactory, Parser, Subcommand};

/// Chunk, pack and payload buffers of 1-16 MiB are allocated and freed at
/// stream speed; glibc hands them back to the kernel, which zeroes fresh
/// pages on every reuse (a tenth of the CPU time of an ingest), mimalloc keeps them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ORCA (Oracle Resumable Cloud Archive): deduplicated, compressed and
/// encrypted backups of Oracle databases.
///
/// A repository stores named pieces (RMAN backup pieces, image copies, any
/// file) split into chunks; a chunk already stored is never stored or sent
/// again, and a changed chunk of a file backed up before is stored as the
/// blocks that changed. Every chunk read back is verified.
///
/// The repository key is unlocked with ORCA_PASSWORD (or a prompt) or with
/// --key-file / ORCA_KEY_FILE; the repository directory can be given with
/// ORCA_REPO instead of --repo.
#[derive(Parser, Debug)]
#[command(name = "orca", version, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the main job end to end on a local repository and show what happened.
    Demo(cmd::demo::DemoArgs),
    /// Create a repository, show it, rebuild its index.
    #[command(subcommand)]
    Repo(cmd::repo::RepoCmd),
    /// Store a file, or standard input, as a named piece.
    Put(cmd::put::PutArgs),
    /// Restore a piece to a file or standard output, or several into a directory at once,
    /// verifying every chunk.
    Get(cmd::get::GetArgs),
    /// List pieces, by name, database and time.
    Ls(cmd::ls::LsArgs),
    /// Delete pieces.
    Rm(cmd::rm::RmArgs),
    /// Re-read every pack and manifest and check every chunk.
    Verify(cmd::verify::VerifyArgs),
    /// Measure hashing, compression, encryption and the whole pipeline here.
    Bench(cmd::bench::BenchArgs),
    /// Serve a repository over HTTP (the vault) and manage its tokens.
    #[command(subcommand)]
    Vault(cmd::vault::VaultCmd),
    /// The backup-store appliance (RMAN image copies over NFS, the backup-store REST API).
    #[command(subcommand)]
    Store(cmd::store::StoreCmd),
    /// The agent that runs a database's backup jobs.
    #[command(subcommand)]
    Agent(cmd::agent::AgentCmd),
    /// Ask the database's agent for a backup (through the vault's job queue).
    Backup(cmd::backup::BackupArgs),
    /// List backup jobs.
    Jobs(cmd::jobs::JobsArgs),
    /// Show a backup job.
    #[command(subcommand)]
    Job(cmd::jobs::JobCmd),
    /// List recovery points: SCN range, chain, whether they restore, their last drill.
    RecoveryPoints(cmd::jobs::RecoveryPointsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::CompletionsArgs),
    /// Write man pages, one per command, into a directory.
    Man(cmd::completions::ManArgs),
    /// Restore a database from the vault (in place, to a point in time, or elsewhere).
    Restore(cmd::restore::RestoreArgs),
    /// Restore a recovery point into scratch space, check it, record the result.
    Drill(cmd::drill::DrillArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes only on a terminal: logs redirected to a file or a journal stay plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(common::log_fields())
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Demo(a) => cmd::demo::run(a).await,
            Command::Repo(c) => cmd::repo::run(c).await,
            Command::Put(a) => cmd::put::run(a).await,
            Command::Get(a) => cmd::get::run(a).await,
            Command::Ls(a) => cmd::ls::run(a).await,
            Command::Rm(a) => cmd::rm::run(a).await,
            Command::Verify(a) => cmd::verify::run(a).await,
            Command::Bench(a) => cmd::bench::run(a).await,
            Command::Vault(c) => cmd::vault::run(c).await,
            Command::Store(c) => cmd::store::run(c).await,
            Command::Agent(c) => cmd::agent::run(c).await,
            Command::Backup(a) => cmd::backup::run(a).await,
            Command::Jobs(a) => cmd::jobs::jobs(a).await,
            Command::Job(c) => cmd::jobs::job(c).await,
            Command::RecoveryPoints(a) => cmd::jobs::recovery_points(a).await,
            Command::Completions(a) => cmd::completions::completions(Cli::command(), a),
            Command::Man(a) => cmd::completions::man(Cli::command(), a),
            Command::Restore(a) => cmd::restore::run(a).await,
            Command::Drill(a) => cmd::drill::run(a).await,
        }
    });
    report(result)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
