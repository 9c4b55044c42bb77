//! placeholder: filled by its owner
use std::process::ExitCode;

/// Entry point when the binary runs as `sqlplus`.
pub fn main(_args: &[String]) -> ExitCode {
    ExitCode::FAILURE
}
