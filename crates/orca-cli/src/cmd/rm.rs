//! `orca rm`: delete pieces.

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;

use crate::common::{RepoArgs, print_json};

#[derive(Args, Debug)]
pub struct RmArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Names of the pieces to delete.
    #[arg(required = true)]
    names: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: RmArgs) -> Result<()> {
    let store = a.repo.open_store().await?;
    let mut deleted = Vec::new();
    let mut missing = Vec::new();
    for name in &a.names {
        if orca_repo::Backend::delete(store.as_ref(), name).await? {
            deleted.push(name.clone());
        } else {
            missing.push(name.clone());
        }
    }
    if a.json {
        print_json(&json!({ "deleted": deleted, "not_found": missing }))?;
    } else {
        for n in &deleted {
            println!("deleted {n:?}");
        }
        for n in &missing {
            eprintln!("not found: {n:?}");
        }
        if !deleted.is_empty() {
            println!(
                "space is reclaimed by garbage collection once no other piece uses the chunks"
            );
        }
    }
    if !missing.is_empty() {
        bail!("{} piece(s) not found", missing.len());
    }
    Ok(())
}
