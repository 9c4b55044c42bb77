//! One binary, three personalities: `oraclesim` (admin commands), and `rman` /
//! `sqlplus` when invoked through the links `oraclesim install-shims` creates.

// Test tooling, not product code: it fabricates Oracle's fixed-width fields from test
// sizes by design, so the workspace's cast lints are off here.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let invoked_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("oraclesim")
        .to_ascii_lowercase();
    match invoked_as.as_str() {
        "rman" => orca_oracle_sim::rman::main(&args[1..]),
        "sqlplus" => orca_oracle_sim::sqlplus::main(&args[1..]),
        _ => orca_oracle_sim::cli::main(&args[1..]),
    }
}
