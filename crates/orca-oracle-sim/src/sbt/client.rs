//! `rman`'s side of an SBT channel: spawns the channel server and forwards calls to it.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::error::SbtError;
use super::library::{FileInfo, InitInfo, ObjectInfo, ReadOutcome};
use super::protocol::{Request, Response, read_frame, write_frame, write_frame_parts};
use super::server::CHANNEL_SERVER_ARG;

/// How to start a channel server.
#[derive(Debug, Clone)]
pub struct SpawnOptions<'a> {
    /// The simulator binary (re-executed as `rman --oraclesim-channel-server`).
    pub exe: &'a Path,
    /// Library path to dlopen.
    pub library: &'a str,
    /// Environment of the channel process on top of rman's own: the channel's ENV values.
    pub env: &'a [(String, String)],
    /// `SBTINIT_TRACE_NAME`.
    pub trace_name: Option<&'a str>,
    /// `SBTINIT2_TRACE_LEVEL`.
    pub trace_level: u64,
    /// Buffers cross in a shared in-memory file ([`super::protocol`]); `false`, or a server
    /// that cannot open it, keeps them in the pipe.
    pub shared_buffers: bool,
}

impl SpawnOptions<'_> {
    /// What `rman` uses: a shared file unless `ORACLESIM_SBT_SHARED=0`.
    pub fn shared_by_default() -> bool {
        std::env::var("ORACLESIM_SBT_SHARED").as_deref() != Ok("0")
    }
}

/// A live SBT channel: a server process with an initialised session.
#[derive(Debug)]
pub struct SbtChannel {
    child: Child,
    w: BufWriter<ChildStdin>,
    r: BufReader<ChildStdout>,
    info: InitInfo,
    data: Vec<u8>,
    /// The file the buffers cross in ([`super::protocol`]), once the server opened it.
    shared: Option<File>,
    ended: bool,
}

/// A fresh in-memory file for a channel's buffers; none where memfd is missing (the pipe
/// then carries them).
fn shared_file() -> Option<File> {
    rustix::fs::memfd_create("oraclesim-sbt", rustix::fs::MemfdFlags::CLOEXEC)
        .ok()
        .map(File::from)
}

fn lost(e: impl std::fmt::Display) -> SbtError {
    SbtError::Channel(format!("channel server process: {e}"))
}

impl SbtChannel {
    /// Spawns the channel server, which loads the library and runs sbtinit + sbtinit2.
    pub fn spawn(opts: &SpawnOptions<'_>) -> Result<Self, SbtError> {
        let mut child = Command::new(opts.exe)
            .arg0("rman")
            .arg(CHANNEL_SERVER_ARG)
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| SbtError::Channel(format!("cannot start channel server: {e}")))?;
        super::process::register_child(child.id());
        let w = BufWriter::new(child.stdin.take().expect("piped stdin"));
        let r = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut ch = Self {
            child,
            w,
            r,
            info: InitInfo {
                api_version: 0,
                mms_desc: String::new(),
                mms_version: 0,
                ctx_size: 0,
                max_size: None,
                proxy: false,
            },
            data: Vec::new(),
            shared: None,
            ended: false,
        };
        let shared = opts.shared_buffers.then(shared_file).flatten();
        let resp = ch.call(
            &Request::Init {
                library: opts.library.to_string(),
                trace_name: opts.trace_name.map(str::to_string),
                trace_level: opts.trace_level,
                shared: shared
                    .as_ref()
                    .map(|f| format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd())),
            },
            &[],
        );
        match resp {
            Ok(Response::Inited { info, shared: open }) => {
                ch.info = info;
                ch.shared = shared.filter(|_| open);
                Ok(ch)
            }
            Ok(Response::Err(e)) | Err(e) => {
                ch.reap();
                Err(e)
            }
            Ok(other) => {
                ch.reap();
                Err(lost(format!("unexpected answer {other:?}")))
            }
        }
    }

    fn reap(&mut self) {
        self.ended = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
        super::process::unregister_child(self.child.id());
    }

    /// What sbtinit reported.
    pub fn info(&self) -> &InitInfo {
        &self.info
    }

    /// Process id of the channel server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether buffers cross in the shared file rather than the pipe.
    pub fn shares_buffers(&self) -> bool {
        self.shared.is_some()
    }

    fn call(&mut self, req: &Request, data: &[u8]) -> Result<Response, SbtError> {
        write_frame(&mut self.w, req, data).map_err(lost)?;
        read_frame(&mut self.r, &mut self.data).map_err(lost)
    }

    fn unit(&mut self, req: &Request, data: &[u8]) -> Result<(), SbtError> {
        match self.call(req, data)? {
            Response::Ok => Ok(()),
            Response::Err(e) => Err(e),
            other => Err(lost(format!("unexpected answer {other:?}"))),
        }
    }

    /// sbtbackup.
    pub fn backup(
        &mut self,
        name: &str,
        object: &ObjectInfo,
        block_size: usize,
        max_size: usize,
        copy_number: u32,
        media_pool: u32,
    ) -> Result<(), SbtError> {
        self.unit(
            &Request::Backup {
                name: name.to_string(),
                object: object.clone(),
                block_size,
                max_size,
                copy_number,
                media_pool,
            },
            &[],
        )
    }

    /// sbtwrite2 of one full buffer.
    pub fn write(&mut self, buf: &[u8]) -> Result<(), SbtError> {
        self.write_parts(buf, &[])
    }

    /// sbtwrite2 of one full buffer made of `head` then `tail` (the server joins them).
    pub fn write_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), SbtError> {
        match &self.shared {
            Some(f) => {
                f.write_all_at(head, 0)
                    .and_then(|()| f.write_all_at(tail, head.len() as u64))
                    .map_err(lost)?;
                let req = Request::Write {
                    shared: Some(head.len() + tail.len()),
                };
                write_frame(&mut self.w, &req, &[])
            }
            None => write_frame_parts(&mut self.w, &Request::Write { shared: None }, head, tail),
        }
        .map_err(lost)?;
        match read_frame(&mut self.r, &mut self.data).map_err(lost)? {
            Response::Ok => Ok(()),
            Response::Err(e) => Err(e),
            other => Err(lost(format!("unexpected answer {other:?}"))),
        }
    }

    /// sbtclose2.
    pub fn close(&mut self, abort: bool) -> Result<(), SbtError> {
        self.unit(&Request::Close { abort }, &[])
    }

    /// sbtinfo2.
    pub fn info_files(&mut self, names: &[String]) -> Result<Vec<FileInfo>, SbtError> {
        match self.call(
            &Request::Info {
                names: names.to_vec(),
            },
            &[],
        )? {
            Response::Info(v) => Ok(v),
            Response::Err(e) => Err(e),
            other => Err(lost(format!("unexpected answer {other:?}"))),
        }
    }

    /// sbtrestore.
    pub fn restore(&mut self, name: &str, block_size: usize) -> Result<(), SbtError> {
        self.unit(
            &Request::Restore {
                name: name.to_string(),
                block_size,
            },
            &[],
        )
    }

    /// sbtread2 into `buf` (its length is the block size given to sbtrestore). A buffer that
    /// came off the pipe is swapped in, not copied.
    pub fn read(&mut self, buf: &mut Vec<u8>) -> Result<ReadOutcome, SbtError> {
        match self.call(
            &Request::Read {
                block_size: buf.len(),
            },
            &[],
        )? {
            Response::Data if self.data.len() == buf.len() => {
                std::mem::swap(buf, &mut self.data);
                Ok(ReadOutcome::Data)
            }
            Response::SharedData => match &self.shared {
                Some(f) => {
                    f.read_exact_at(buf, 0).map_err(lost)?;
                    Ok(ReadOutcome::Data)
                }
                None => Err(lost("answered through a shared file it was not given")),
            },
            Response::Eof => Ok(ReadOutcome::Eof),
            Response::Err(e) => Err(e),
            other => Err(lost(format!("unexpected answer {other:?}"))),
        }
    }

    /// sbtremove2.
    pub fn remove(&mut self, names: &[String]) -> Result<(), SbtError> {
        self.unit(
            &Request::Remove {
                names: names.to_vec(),
            },
            &[],
        )
    }

    /// sbtcommand.
    pub fn command(&mut self, text: &str) -> Result<(), SbtError> {
        self.unit(
            &Request::Command {
                text: text.to_string(),
            },
            &[],
        )
    }

    /// sbtend, then the server process exits.
    pub fn end(mut self, abend: bool) -> Result<(), SbtError> {
        self.ended = true;
        let r = self.unit(&Request::End { abend }, &[]);
        let _ = self.child.wait();
        super::process::unregister_child(self.child.id());
        r
    }

    /// SIGKILL the channel server: the library gets no sbtclose2 and no sbtend, as when an
    /// Oracle server process dies.
    pub fn kill(mut self) {
        self.reap();
    }
}

impl Drop for SbtChannel {
    fn drop(&mut self) {
        if !self.ended {
            // Closing the pipe makes the server end its session with SBTEND_ABEND and exit.
            let _ = write_frame(&mut self.w, &Request::End { abend: true }, &[]);
            let _ = self.child.wait();
            super::process::unregister_child(self.child.id());
        }
    }
}
