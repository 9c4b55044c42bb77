//! The channel server: one process per SBT channel, as Oracle runs one server process per
//! RMAN channel on Unix. It holds the loaded library and the channel's context, and executes
//! the calls `rman` sends over its stdin/stdout pipes.
//!
//! The channel's `ENV=(...)` values are this process's environment, so a library reading them
//! with `getenv` at sbtinit2/sbtbackup time sees exactly what it would see under Oracle.

// The only unsafe code here moves the protocol off fd 1 (libc dup/dup2).
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::ExitCode;

use super::error::{SbtCall, SbtError};
use super::library::{ReadOutcome, SbtLibrary, SbtSession};
use super::protocol::{MAX_PART, Request, Response, read_frame, write_frame};

/// argv[1] that turns `rman` into a channel server.
pub const CHANNEL_SERVER_ARG: &str = "--oraclesim-channel-server";

/// Gives the protocol a private copy of stdout and points fd 1 at stderr, so a library that
/// prints to stdout cannot corrupt the frames.
fn take_stdout() -> std::io::Result<File> {
    // SAFETY: dup on fd 1, which every process has open; the result is checked.
    let fd = unsafe { libc::dup(1) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: dup2 of the always-open fd 2 over fd 1; the result is checked.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor from dup that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Pipe capacity asked for: a whole sbtwrite2/sbtread2 buffer (256 KiB by default) then
/// crosses in one write instead of four 64 KiB rounds of waking the other side.
const PIPE_SIZE: usize = 1 << 20;

/// Grows the pipe behind `fd`; a kernel that refuses (not a pipe, above pipe-max-size)
/// leaves it as it was, which is only slower.
fn grow_pipe(fd: impl std::os::fd::AsFd) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
}

/// Runs the server until `End` or until the parent closes the pipe.
pub fn run() -> ExitCode {
    let out = match take_stdout() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("oraclesim channel server: cannot set up its pipe: {e}");
            return ExitCode::FAILURE;
        }
    };
    grow_pipe(&out);
    grow_pipe(std::io::stdin());
    let mut w = BufWriter::new(out);
    let mut r = BufReader::new(std::io::stdin().lock());
    let mut session: Option<SbtSession> = None;
    // rman's shared file, once sbtinit succeeded and it could be opened.
    let mut shared: Option<File> = None;
    let mut data = Vec::new();
    let mut buf = Vec::new();
    loop {
        let req: Request = match read_frame(&mut r, &mut data) {
            Ok(req) => req,
            // The parent went away: end the session as Oracle does for a dead channel.
            Err(_) => {
                if let Some(s) = session.take() {
                    let _ = s.end(true);
                }
                return ExitCode::SUCCESS;
            }
        };
        let mut reply_data: &[u8] = &[];
        let resp = match req {
            Request::Init {
                library,
                trace_name,
                trace_level,
                shared: path,
            } => match SbtLibrary::load(Path::new(&library), trace_name.as_deref())
                .and_then(|lib| SbtSession::start(lib, trace_level))
            {
                Ok(s) => {
                    let info = s.library().info().clone();
                    session = Some(s);
                    // A file that cannot be opened leaves the buffers in the frames.
                    shared = path.and_then(|p| {
                        std::fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(p)
                            .ok()
                    });
                    Response::Inited {
                        info,
                        shared: shared.is_some(),
                    }
                }
                Err(e) => Response::Err(e),
            },
            Request::End { abend } => {
                let resp = match session.take() {
                    Some(s) => s.end(abend).map_or_else(Response::Err, |_| Response::Ok),
                    None => Response::Ok,
                };
                let _ = write_frame(&mut w, &resp, &[]);
                return ExitCode::SUCCESS;
            }
            other => match session.as_mut() {
                None => Response::Err(SbtError::Protocol(
                    "channel server used before sbtinit".into(),
                )),
                Some(s) => match other {
                    Request::Backup {
                        name,
                        object,
                        block_size,
                        max_size,
                        copy_number,
                        media_pool,
                    } => ok(s.backup(
                        &name,
                        &object,
                        block_size,
                        max_size,
                        copy_number,
                        media_pool,
                    )),
                    Request::Write { shared: None } => ok(s.write(&data)),
                    Request::Write { shared: Some(len) } => match &shared {
                        Some(_) if len > MAX_PART => Response::Err(SbtError::Protocol(format!(
                            "sbtwrite2 buffer of {len} bytes exceeds {MAX_PART}"
                        ))),
                        Some(f) => {
                            data.resize(len, 0);
                            match f.read_exact_at(&mut data, 0) {
                                Ok(()) => ok(s.write(&data)),
                                Err(e) => Response::Err(SbtError::Protocol(format!(
                                    "cannot read the sbtwrite2 buffer from the shared file: {e}"
                                ))),
                            }
                        }
                        None => Response::Err(SbtError::Protocol(
                            "sbtwrite2 buffer in a shared file this channel has not opened".into(),
                        )),
                    },
                    Request::Close { abort } => ok(s.close(abort)),
                    Request::Info { names } => {
                        s.info(&names).map_or_else(Response::Err, Response::Info)
                    }
                    Request::Restore { name, block_size } => ok(s.restore(&name, block_size)),
                    Request::Read { block_size } => {
                        buf.resize(block_size, 0);
                        match s.read(&mut buf) {
                            Ok(ReadOutcome::Data) => match &shared {
                                Some(f) if f.write_all_at(&buf, 0).is_ok() => Response::SharedData,
                                _ => {
                                    reply_data = &buf;
                                    Response::Data
                                }
                            },
                            Ok(ReadOutcome::Eof) => Response::Eof,
                            Err(e) => Response::Err(e),
                        }
                    }
                    Request::Remove { names } => ok(s.remove(&names)),
                    Request::Command { text } => ok(s.command(&text)),
                    Request::Init { .. } | Request::End { .. } => {
                        Response::Err(SbtError::Argument {
                            call: SbtCall::Init,
                            reason: "repeated request".into(),
                        })
                    }
                },
            },
        };
        if write_frame(&mut w, &resp, reply_data).is_err() {
            return ExitCode::FAILURE;
        }
    }
}

fn ok(r: Result<(), SbtError>) -> Response {
    r.map_or_else(Response::Err, |_| Response::Ok)
}
