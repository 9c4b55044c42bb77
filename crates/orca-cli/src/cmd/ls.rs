//! `orca ls`: list pieces.

use anyhow::Result;
use clap::Args;
use orca_repo::{FileType, PieceFilter};

use crate::common::{self, RepoArgs, human_bytes, print_json};

#[derive(Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Only pieces whose name starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Only pieces of this database.
    #[arg(long)]
    database: Option<String>,
    /// Only pieces of this DBID.
    #[arg(long)]
    dbid: Option<u64>,
    /// Only pieces of this type.
    #[arg(long)]
    file_type: Option<FileType>,
    /// Created at or after (2026-11-22, "2026-11-22 10:00:00", RFC 3339, or an age like 7d).
    #[arg(long, value_parser = common::parse_time)]
    since: Option<i64>,
    /// Created before (same forms as --since).
    #[arg(long, value_parser = common::parse_time)]
    until: Option<i64>,
    /// Print the pieces as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: LsArgs) -> Result<()> {
    let store = a.repo.open_store().await?;
    let filter = PieceFilter {
        name_prefix: a.prefix,
        database: a.database,
        dbid: a.dbid,
        file_type: a.file_type,
        since: a.since,
        until: a.until,
        limit: None,
    };
    let pieces = orca_repo::Backend::list(store.as_ref(), &filter).await?;
    if a.json {
        return print_json(&pieces);
    }
    if pieces.is_empty() {
        println!("no pieces");
        return Ok(());
    }
    println!(
        "{:<19}  {:>10}  {:>10}  {:<11}  {:<8}  NAME",
        "CREATED", "SIZE", "NEW", "TYPE", "DATABASE"
    );
    for p in &pieces {
        println!(
            "{:<19}  {:>10}  {:>10}  {:<11}  {:<8}  {}",
            common::format_time(p.created),
            human_bytes(p.size),
            human_bytes(p.stored),
            p.file_type.as_str(),
            p.database.as_deref().unwrap_or("-"),
            p.name
        );
    }
    let total: u64 = pieces.iter().map(|p| p.size).sum();
    let stored: u64 = pieces.iter().map(|p| p.stored).sum();
    println!(
        "{} piece(s), {} written, {} new when written",
        pieces.len(),
        human_bytes(total),
        human_bytes(stored)
    );
    Ok(())
}
