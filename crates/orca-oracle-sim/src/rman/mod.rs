//! The `rman` stand-in (in progress).
use std::process::ExitCode;

/// Entry point when the binary runs as `rman`.
pub fn main(args: &[String]) -> ExitCode {
    if args.first().map(String::as_str) == Some(crate::sbt::server::CHANNEL_SERVER_ARG) {
        return crate::sbt::server::run();
    }
    ExitCode::FAILURE
}
