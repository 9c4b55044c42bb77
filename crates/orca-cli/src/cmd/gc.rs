//! `orca repo gc` (and `orca vault gc`): reclaim the space of deleted pieces.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use orca_repo::{GcOptions, GcReport, Store};

use crate::common::{self, human_bytes, print_json};

/// How a collection runs; shared by `orca repo gc` and `orca vault gc`.
#[derive(Args, Debug, Clone)]
pub struct GcFlags {
    /// Keep chunks referenced within this long even when no piece uses them
    /// (e.g. 1h, 30m, 0s). Backups running during the collection are
    /// protected whatever this says: their writer sessions hold it back.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Rewrite packs whose live data fell below this percentage of their
    /// size, so that space shared with other chunks is reclaimed too.
    #[arg(long, default_value_t = 50.0, value_name = "PERCENT")]
    pub repack_below: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl GcFlags {
    pub fn options(&self) -> Result<GcOptions> {
        anyhow::ensure!(
            (0.0..=100.0).contains(&self.repack_below),
            "--repack-below {} is not a percentage between 0 and 100",
            self.repack_below
        );
        Ok(GcOptions {
            grace: self.grace,
            repack_below: self.repack_below / 100.0,
        })
    }
}

/// Run one collection on `store` with a progress bar, then print the report.
pub async fn collect(store: &Store, flags: &GcFlags) -> Result<GcReport> {
    let opts = flags.options()?;
    let bar = common::count_bar(0, "collecting");
    let progress = |p: &orca_repo::Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(match p.phase.as_str() {
            "mark" => "reading manifests".to_string(),
            _ => format!("sweeping packs, {} swept", human_bytes(p.bytes)),
        });
    };
    let report = store
        .gc(&opts, Some(&progress))
        .await
        .context("garbage collection failed")?;
    bar.finish_and_clear();
    if flags.json {
        print_json(&report)?;
    } else {
        print(&report);
    }
    Ok(report)
}

fn print(r: &GcReport) {
    println!(
        "{}collected: {} pieces kept, {} chunks swept ({}); packs {} deleted, {} rewritten into {}, {} orphaned removed",
        if r.resumed { "resumed and " } else { "" },
        r.pieces,
        r.swept_chunks,
        human_bytes(r.swept_bytes),
        r.packs_deleted,
        r.packs_rewritten,
        r.packs_written,
        r.orphans_deleted,
    );
    println!(
        "  pack space {} -> {} ({} reclaimed) in {:.1} s; chunks referenced since {} kept",
        human_bytes(r.pack_bytes_before),
        human_bytes(r.pack_bytes_after),
        human_bytes(r.reclaimed_bytes()),
        r.elapsed_ms as f64 / 1000.0,
        common::format_time(r.fence),
    );
    for (piece, since) in &r.held_back_by {
        println!(
            "  held back by the backup writing {piece:?} (running since {})",
            common::format_time(*since)
        );
    }
    for (object, why) in &r.damaged {
        println!("  left unreadable pack {object} as it is: {why} (run `orca verify`)");
    }
}
