//! RMAN channels: DISK channels write pieces as files; SBT channels drive a media-management
//! library in their own server process (see `crate::sbt`). Both hand out piece writers that
//! cut the stream into buffers (BLKSIZE for SBT) and apply the fault switches.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ast::{ChannelOptions, DeviceType};
use super::faults::Faults;
use crate::sbt::{
    ChannelParms, ErrorSite, FileInfo, ObjectInfo, ReadOutcome, SbtChannel, SbtError, SpawnOptions,
    parse_parms,
};

/// Buffer size for disk pieces; disk pieces end padded to a multiple of 8 KiB.
const DISK_BUFFER: usize = 1 << 20;
const DISK_PAD: usize = 8192;

/// Why a channel operation failed; `ora_lines` renders what RMAN prints under RMAN-03009.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{err}")]
    Sbt {
        err: SbtError,
        handle: Option<String>,
        block: Option<(u64, usize)>,
        command: Option<String>,
    },
    #[error("cannot create {path}: {err}")]
    DiskCreate { path: String, err: io::Error },
    #[error("cannot write {path}: {err}")]
    DiskWrite {
        path: String,
        block: u64,
        block_size: usize,
        err: io::Error,
    },
    #[error("cannot open {path}: {err}")]
    DiskOpen { path: String, err: io::Error },
    #[error("cannot read {path}: {err}")]
    DiskRead { path: String, err: io::Error },
    #[error("simulated fault {name}={value}")]
    Fault {
        handle: String,
        block: u64,
        block_size: usize,
        name: &'static str,
        value: u64,
    },
    #[error("channel server process killed by simulated fault")]
    Killed,
    #[error("instance {0} is not available")]
    Instance(String),
    #[error("{0}")]
    Parms(String),
}

/// `Linux-x86_64 Error: 2: No such file or directory`.
pub fn os_error_line(err: &io::Error) -> String {
    let code = err.raw_os_error().unwrap_or(0);
    let text = io::Error::from_raw_os_error(code).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    format!("Linux-x86_64 Error: {code}: {text}")
}

impl ChannelError {
    /// The ORA- lines RMAN prints for this failure.
    pub fn ora_lines(&self) -> Vec<String> {
        match self {
            ChannelError::Sbt {
                err,
                handle,
                block,
                command,
            } => err.ora_lines(&ErrorSite {
                handle: handle.as_deref(),
                block: *block,
                command: command.as_deref(),
            }),
            ChannelError::DiskCreate { path, err } => vec![
                format!("ORA-19504: failed to create file \"{path}\""),
                "ORA-27040: file create error, unable to create file".into(),
                os_error_line(err),
                "Additional information: 1".into(),
            ],
            ChannelError::DiskWrite {
                path,
                block,
                block_size,
                err,
            } => vec![
                format!(
                    "ORA-19502: write error on file \"{path}\", block number {block} (block size={block_size})"
                ),
                "ORA-27072: File I/O error".into(),
                os_error_line(err),
            ],
            ChannelError::DiskOpen { path, err } => vec![
                format!("ORA-19505: failed to identify file \"{path}\""),
                "ORA-27037: unable to obtain file status".into(),
                os_error_line(err),
                "Additional information: 7".into(),
            ],
            ChannelError::DiskRead { path, err } => vec![
                format!("ORA-19501: read error on file \"{path}\", block number 1 (block size=8192)"),
                "ORA-27072: File I/O error".into(),
                os_error_line(err),
            ],
            ChannelError::Fault {
                handle,
                block,
                block_size,
                name,
                value,
            } => vec![
                format!(
                    "ORA-19502: write error on file \"{handle}\", block number {block} (block size={block_size})"
                ),
                "ORA-27072: File I/O error".into(),
                format!("Additional information: simulated fault {name}={value}"),
            ],
            ChannelError::Killed => vec![
                "ORA-03113: end-of-file on communication channel".into(),
                "Additional information: channel server killed by ORACLESIM_KILL_CHANNEL_AFTER_BYTES"
                    .into(),
            ],
            ChannelError::Instance(name) => vec![
                "ORA-01034: ORACLE not available".into(),
                "ORA-27101: shared memory realm does not exist".into(),
                "Linux-x86_64 Error: 2: No such file or directory".into(),
                format!("Additional information: instance {name} is down"),
            ],
            ChannelError::Parms(reason) => vec![
                "ORA-19554: error allocating device, device type: SBT_TAPE, device name: ".into(),
                "ORA-27023: skgfqsbi: media manager protocol error".into(),
                format!("Additional information: {reason}"),
            ],
        }
    }

    /// The channel cannot be used any more (its server process is gone or it was failed by
    /// a fault switch).
    pub fn kills_channel(&self) -> bool {
        matches!(
            self,
            ChannelError::Killed
                | ChannelError::Fault { .. }
                | ChannelError::Instance(_)
                | ChannelError::Sbt {
                    err: SbtError::Channel(_),
                    ..
                }
        )
    }

    fn from_io(e: io::Error) -> ChannelError {
        match e.get_ref().and_then(|x| x.downcast_ref::<Boxed>()) {
            Some(_) => match e.into_inner().and_then(|b| b.downcast::<Boxed>().ok()) {
                Some(b) => b.0,
                None => ChannelError::Parms("lost error".into()),
            },
            None => ChannelError::DiskWrite {
                path: String::new(),
                block: 0,
                block_size: 0,
                err: e,
            },
        }
    }
}

/// Carries a ChannelError through `io::Write`.
#[derive(Debug)]
struct Boxed(ChannelError);

impl std::fmt::Display for Boxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Boxed {}

fn to_io(e: ChannelError) -> io::Error {
    io::Error::other(Boxed(e))
}

/// Turns an error that came out of a piece writer back into the channel error inside it.
pub fn unwrap_io(e: io::Error) -> ChannelError {
    ChannelError::from_io(e)
}

/// What is needed to allocate a channel.
#[derive(Debug, Clone)]
pub struct AllocSpec {
    pub name: String,
    pub device: DeviceType,
    pub opts: ChannelOptions,
    pub sid: u32,
}

/// Process-wide context for SBT channel servers.
#[derive(Debug, Clone)]
pub struct SbtContext {
    /// The simulator binary to re-execute.
    pub exe: PathBuf,
    /// Library used when PARMS gives no SBT_LIBRARY.
    pub default_library: PathBuf,
    /// SBTINIT_TRACE_NAME.
    pub trace_name: String,
}

/// An allocated channel.
pub struct Channel {
    pub name: String,
    pub device: DeviceType,
    pub sid: u32,
    pub opts: ChannelOptions,
    pub parms: ChannelParms,
    sbt: Option<SbtChannel>,
    /// Text shown after `comment=` in `piece handle=` lines.
    pub comment: String,
    bytes: u64,
    faults: Arc<Faults>,
    /// The RAC instance of `CONNECT '...@inst'`.
    instance: Option<String>,
    /// The channel failed and takes no more work.
    pub dead: bool,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("device", &self.device)
            .finish()
    }
}

/// A committed piece.
#[derive(Debug, Clone)]
pub struct PieceDone {
    /// Bytes of the piece as stored (padding included).
    pub bytes: u64,
    /// V$BACKUP_PIECE.COMMENTS (None on disk).
    pub comment: Option<String>,
    /// V$BACKUP_PIECE.MEDIA (SBTBFINFO_LABEL).
    pub media: Option<String>,
}

impl Channel {
    /// Allocates a channel; for SBT this starts its server process (sbtinit + sbtinit2).
    pub fn allocate(
        spec: &AllocSpec,
        sbt_ctx: &SbtContext,
        faults: Arc<Faults>,
    ) -> Result<(Channel, Option<String>), ChannelError> {
        let parms = match (&spec.opts.parms, spec.device) {
            (Some(p), DeviceType::Sbt) => {
                parse_parms(p).map_err(|e| ChannelError::Parms(e.to_string()))?
            }
            _ => ChannelParms::default(),
        };
        let mut ch = Channel {
            name: spec.name.clone(),
            device: spec.device,
            sid: spec.sid,
            opts: spec.opts.clone(),
            parms,
            sbt: None,
            comment: "NONE".into(),
            bytes: 0,
            faults,
            instance: spec
                .opts
                .connect
                .as_deref()
                .and_then(|c| c.rsplit_once('@'))
                .map(|(_, i)| i.to_string()),
            dead: false,
        };
        let mut banner = None;
        if spec.device == DeviceType::Sbt {
            let library = ch
                .parms
                .library
                .clone()
                .unwrap_or_else(|| sbt_ctx.default_library.display().to_string());
            let sbt = SbtChannel::spawn(&SpawnOptions {
                exe: &sbt_ctx.exe,
                library: &library,
                env: &ch.parms.env,
                trace_name: Some(&sbt_ctx.trace_name),
                trace_level: spec.opts.trace.unwrap_or(0),
                shared_buffers: SpawnOptions::shared_by_default(),
            })
            .map_err(|err| ChannelError::Sbt {
                err,
                handle: None,
                block: None,
                command: None,
            })?;
            ch.comment = sbt.info().comment();
            banner = Some(format!(
                "{} VER={}",
                sbt.info().mms_desc,
                sbt.info().mms_version_text()
            ));
            ch.sbt = Some(sbt);
            if let Some(send) = spec.opts.send.clone() {
                ch.send(&send)?;
            }
        }
        Ok((ch, banner))
    }

    /// SBT buffer size (or the disk buffer).
    pub fn blksize(&self) -> usize {
        match self.device {
            DeviceType::Sbt => self.parms.blksize(),
            DeviceType::Disk => DISK_BUFFER,
        }
    }

    fn sbt_err(err: SbtError, handle: Option<&str>, block: Option<(u64, usize)>) -> ChannelError {
        ChannelError::Sbt {
            err,
            handle: handle.map(str::to_string),
            block,
            command: None,
        }
    }

    /// Starts a piece: sbtbackup on SBT, file creation on disk.
    pub fn create_piece(
        &mut self,
        handle: &str,
        object: &ObjectInfo,
        copy_number: u32,
        media_pool: u32,
    ) -> Result<PieceOut<'_>, ChannelError> {
        let ordinal = self.faults.piece_started();
        let unit = self.blksize();
        let max = self.opts.maxpiecesize.unwrap_or(0) as usize;
        let disk = match self.device {
            DeviceType::Sbt => {
                let sbt = self.sbt.as_mut().ok_or(ChannelError::Killed)?;
                sbt.backup(handle, object, unit, max, copy_number, media_pool)
                    .map_err(|e| Self::sbt_err(e, Some(handle), None))?;
                None
            }
            DeviceType::Disk => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(handle)
                    .map_err(|err| ChannelError::DiskCreate {
                        path: handle.to_string(),
                        err,
                    })?;
                Some(f)
            }
        };
        Ok(PieceOut {
            fail_here: self.faults.fail_at_piece == Some(ordinal),
            ch: self,
            handle: handle.to_string(),
            buf: Vec::with_capacity(unit),
            unit,
            disk,
            buffers: 0,
            length: 0,
        })
    }

    fn count_bytes(&mut self, n: u64, handle: &str, buffers: u64) -> Result<(), ChannelError> {
        let unit = self.blksize();
        if let Some(i) = &self.instance
            && self.faults.instance_is_down(i)
        {
            return Err(ChannelError::Instance(i.clone()));
        }
        if let Some(limit) = self.faults.fail_after_bytes
            && self.bytes + n > limit
        {
            return Err(ChannelError::Fault {
                handle: handle.to_string(),
                block: buffers + 1,
                block_size: unit,
                name: "ORACLESIM_FAIL_AFTER_BYTES",
                value: limit,
            });
        }
        if let Some(limit) = self.faults.kill_channel_after_bytes
            && self.bytes + n > limit
        {
            if let Some(sbt) = self.sbt.take() {
                sbt.kill();
            }
            return Err(ChannelError::Killed);
        }
        self.bytes += n;
        self.faults.add_bytes(n);
        Ok(())
    }

    /// sbtinfo2 for a list of handles (disk: whether the files exist).
    pub fn info(&mut self, handles: &[String]) -> Result<Vec<FileInfo>, ChannelError> {
        match self.device {
            DeviceType::Sbt => {
                let sbt = self.sbt.as_mut().ok_or(ChannelError::Killed)?;
                sbt.info_files(handles)
                    .map_err(|e| Self::sbt_err(e, handles.first().map(String::as_str), None))
            }
            DeviceType::Disk => Ok(handles
                .iter()
                .map(|h| FileInfo {
                    name: h.clone(),
                    not_found: !Path::new(h).is_file(),
                    ..FileInfo::default()
                })
                .collect()),
        }
    }

    /// Opens a piece for reading (sbtrestore on SBT).
    pub fn open_piece(&mut self, handle: &str) -> Result<PieceIn<'_>, ChannelError> {
        let unit = self.blksize();
        let disk = match self.device {
            DeviceType::Sbt => {
                let sbt = self.sbt.as_mut().ok_or(ChannelError::Killed)?;
                sbt.restore(handle, unit)
                    .map_err(|e| Self::sbt_err(e, Some(handle), None))?;
                None
            }
            DeviceType::Disk => Some(File::open(handle).map_err(|err| ChannelError::DiskOpen {
                path: handle.to_string(),
                err,
            })?),
        };
        Ok(PieceIn {
            ch: self,
            handle: handle.to_string(),
            buf: vec![0u8; unit],
            pos: unit,
            end: unit,
            eof: false,
            disk,
            reads: 0,
        })
    }

    /// sbtremove2 (disk: unlink).
    pub fn remove(&mut self, handle: &str) -> Result<(), ChannelError> {
        match self.device {
            DeviceType::Sbt => {
                let sbt = self.sbt.as_mut().ok_or(ChannelError::Killed)?;
                sbt.remove(&[handle.to_string()])
                    .map_err(|err| ChannelError::Sbt {
                        err,
                        handle: Some(handle.to_string()),
                        block: None,
                        command: None,
                    })
            }
            DeviceType::Disk => match std::fs::remove_file(handle) {
                Ok(()) => Ok(()),
                Err(err) => Err(ChannelError::DiskOpen {
                    path: handle.to_string(),
                    err,
                }),
            },
        }
    }

    /// SEND: sbtcommand (ignored by disk channels, as Oracle does).
    pub fn send(&mut self, text: &str) -> Result<(), ChannelError> {
        if let Some(sbt) = self.sbt.as_mut() {
            sbt.command(text).map_err(|err| ChannelError::Sbt {
                err,
                handle: None,
                block: None,
                command: Some(text.to_string()),
            })?;
        }
        Ok(())
    }

    /// RELEASE CHANNEL: sbtend.
    pub fn release(mut self) -> Result<(), ChannelError> {
        match self.sbt.take() {
            Some(sbt) => sbt.end(false).map_err(|err| ChannelError::Sbt {
                err,
                handle: None,
                block: None,
                command: None,
            }),
            None => Ok(()),
        }
    }

    /// Marks the channel failed; a dead SBT server is reaped, a live one ended.
    pub fn fail(&mut self) {
        self.dead = true;
        if let Some(sbt) = self.sbt.take() {
            let _ = sbt.end(true);
        }
    }
}

/// A piece being written.
pub struct PieceOut<'a> {
    ch: &'a mut Channel,
    handle: String,
    buf: Vec<u8>,
    unit: usize,
    disk: Option<File>,
    buffers: u64,
    length: u64,
    fail_here: bool,
}

impl PieceOut<'_> {
    fn flush_buffer(&mut self) -> Result<(), ChannelError> {
        self.flush_with(&[])
    }

    /// Sends one buffer: the bytes held in `buf` followed by `tail`, which the caller would
    /// otherwise copy into `buf` first.
    fn flush_with(&mut self, tail: &[u8]) -> Result<(), ChannelError> {
        if self.fail_here && self.buffers >= 1 {
            return Err(ChannelError::Fault {
                handle: self.handle.clone(),
                block: self.buffers + 1,
                block_size: self.unit,
                name: "ORACLESIM_FAIL_AT_PIECE",
                value: self.ch.faults.fail_at_piece.unwrap_or(0),
            });
        }
        let n = (self.buf.len() + tail.len()) as u64;
        let handle = self.handle.clone();
        self.ch.count_bytes(n, &handle, self.buffers)?;
        match &mut self.disk {
            Some(f) => {
                write_all_parts(f, &self.buf, tail).map_err(|err| ChannelError::DiskWrite {
                    path: self.handle.clone(),
                    block: self.buffers + 1,
                    block_size: self.unit,
                    err,
                })?
            }
            None => {
                let sbt = self.ch.sbt.as_mut().ok_or(ChannelError::Killed)?;
                sbt.write_parts(&self.buf, tail).map_err(|e| {
                    Channel::sbt_err(e, Some(&self.handle), Some((self.buffers + 1, self.unit)))
                })?;
            }
        }
        self.buffers += 1;
        self.length += n;
        self.buf.clear();
        Ok(())
    }

    /// Bytes accepted so far (before padding).
    pub fn written(&self) -> u64 {
        self.length + self.buf.len() as u64
    }

    /// Pads and commits the piece: sbtclose2 then sbtinfo2 on SBT.
    pub fn finish(mut self) -> Result<PieceDone, ChannelError> {
        let pad_to = if self.disk.is_some() {
            DISK_PAD
        } else {
            self.unit
        };
        if !self.buf.is_empty() || self.buffers == 0 {
            let len = self.buf.len().div_ceil(pad_to).max(1) * pad_to;
            self.buf.resize(len, 0);
            self.flush_buffer()?;
        }
        if self.fail_here {
            return Err(ChannelError::Fault {
                handle: self.handle.clone(),
                block: self.buffers,
                block_size: self.unit,
                name: "ORACLESIM_FAIL_AT_PIECE",
                value: self.ch.faults.fail_at_piece.unwrap_or(0),
            });
        }
        match self.disk.take() {
            Some(f) => {
                f.sync_all().map_err(|err| ChannelError::DiskWrite {
                    path: self.handle.clone(),
                    block: self.buffers,
                    block_size: self.unit,
                    err,
                })?;
                Ok(PieceDone {
                    bytes: self.length,
                    comment: None,
                    media: None,
                })
            }
            None => {
                let handle = self.handle.clone();
                let sbt = self.ch.sbt.as_mut().ok_or(ChannelError::Killed)?;
                sbt.close(false).map_err(|e| {
                    Channel::sbt_err(e, Some(&handle), Some((self.buffers, self.unit)))
                })?;
                self.ch.faults.sbt_closed();
                let info = sbt
                    .info_files(std::slice::from_ref(&handle))
                    .map_err(|e| Channel::sbt_err(e, Some(&handle), None))?;
                let g = info.into_iter().find(|g| g.name == handle);
                Ok(PieceDone {
                    bytes: self.length,
                    comment: Some(
                        g.as_ref()
                            .and_then(|g| g.comment.clone())
                            .unwrap_or_else(|| self.ch.comment.clone()),
                    ),
                    media: g.and_then(|g| g.label),
                })
            }
        }
    }

    /// Discards the piece: sbtclose2(SBTCLOSE2_ABORT) on SBT, file removed on disk.
    pub fn abort(mut self) {
        match self.disk.take() {
            Some(f) => {
                drop(f);
                let _ = std::fs::remove_file(&self.handle);
            }
            None => {
                if let Some(sbt) = self.ch.sbt.as_mut() {
                    let _ = sbt.close(true);
                }
            }
        }
    }
}

impl Write for PieceOut<'_> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let room = self.unit - self.buf.len();
            if data.len() < room {
                self.buf.extend_from_slice(data);
                break;
            }
            let (fill, rest) = data.split_at(room);
            self.flush_with(fill).map_err(to_io)?;
            data = rest;
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `a` then `b` to the file, in as few writes as the kernel takes.
fn write_all_parts(f: &mut File, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        match f.write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let from_a = n.min(a.len());
                a = &a[from_a..];
                b = &b[n - from_a..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A piece being read (sbtread2 buffers, or the disk file).
pub struct PieceIn<'a> {
    ch: &'a mut Channel,
    handle: String,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    disk: Option<File>,
    reads: u64,
}

impl PieceIn<'_> {
    /// Reads to the end of the file (RMAN reads SBT pieces until sbtread2 reports EOF), then
    /// closes it (sbtclose2).
    pub fn finish(mut self) -> Result<(), ChannelError> {
        let mut sink = [0u8; 65536];
        loop {
            match self.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(unwrap_io_read(e, &self.handle)),
            }
        }
        if self.disk.is_none() {
            let handle = self.handle.clone();
            let sbt = self.ch.sbt.as_mut().ok_or(ChannelError::Killed)?;
            sbt.close(false)
                .map_err(|e| Channel::sbt_err(e, Some(&handle), None))?;
        }
        Ok(())
    }

    /// Closes without draining (after an error).
    pub fn abandon(self) {
        if self.disk.is_none()
            && let Some(sbt) = self.ch.sbt.as_mut()
        {
            let _ = sbt.close(false);
        }
    }
}

/// Maps a read error from a PieceIn back into a channel error.
pub fn unwrap_io_read(e: io::Error, handle: &str) -> ChannelError {
    match e.get_ref().and_then(|x| x.downcast_ref::<Boxed>()) {
        Some(_) => ChannelError::from_io(e),
        None => ChannelError::DiskRead {
            path: handle.to_string(),
            err: e,
        },
    }
}

impl Read for PieceIn<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &mut self.disk {
            return f.read(out);
        }
        if self.pos == self.end {
            if self.eof {
                return Ok(0);
            }
            let sbt = self
                .ch
                .sbt
                .as_mut()
                .ok_or_else(|| to_io(ChannelError::Killed))?;
            self.reads += 1;
            match sbt.read(&mut self.buf) {
                Ok(ReadOutcome::Data) => {
                    self.pos = 0;
                    self.end = self.buf.len();
                }
                Ok(ReadOutcome::Eof) => {
                    self.eof = true;
                    return Ok(0);
                }
                Err(e) => {
                    return Err(to_io(Channel::sbt_err(
                        e,
                        Some(&self.handle),
                        Some((self.reads, self.buf.len())),
                    )));
                }
            }
        }
        let n = (self.end - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
