//! Messages between `rman` and its channel server processes.
//!
//! Every frame is `[u32 LE json length][json][u32 LE data length][data]`; the data part carries
//! the sbtwrite2/sbtread2 buffers when there is no shared file, and is empty otherwise.
//!
//! The shared file is an in-memory file of `rman`'s (memfd) that the channel server opens as
//! `/proc/<rman's pid>/fd/<n>`: a buffer written there lands in pages the file keeps, where a
//! pipe allocates, charges and frees a page for every 4 KiB that crosses it (a third of the
//! CPU time of an unchanged backup through SBT went to that).

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::error::SbtError;
use super::library::{FileInfo, InitInfo, ObjectInfo};

/// Largest frame part accepted (a BLKSIZE buffer is at most a few MiB).
pub const MAX_PART: usize = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// dlopen + sbtinit + context + sbtinit2.
    Init {
        library: String,
        trace_name: Option<String>,
        trace_level: u64,
        /// Path of the shared file; `None` keeps the buffers in the frames.
        shared: Option<String>,
    },
    Backup {
        name: String,
        object: ObjectInfo,
        block_size: usize,
        max_size: usize,
        copy_number: u32,
        media_pool: u32,
    },
    /// One sbtwrite2; the buffer is the frame's data, or the shared file's first `shared`
    /// bytes.
    Write {
        shared: Option<usize>,
    },
    Close {
        abort: bool,
    },
    Info {
        names: Vec<String>,
    },
    Restore {
        name: String,
        block_size: usize,
    },
    /// One sbtread2; the buffer comes back as the response's data.
    Read {
        block_size: usize,
    },
    Remove {
        names: Vec<String>,
    },
    Command {
        text: String,
    },
    End {
        abend: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Ok,
    /// sbtinit's answer, and whether the server opened the shared file.
    Inited {
        info: InitInfo,
        shared: bool,
    },
    Info(Vec<FileInfo>),
    /// The sbtread2 buffer is the frame's data.
    Data,
    /// The sbtread2 buffer is the shared file's first `block_size` bytes.
    SharedData,
    Eof,
    Err(SbtError),
}

pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T, data: &[u8]) -> io::Result<()> {
    write_frame_parts(w, msg, data, &[])
}

/// A frame whose data part is `head` then `tail`: a buffer the caller holds in two pieces
/// goes out without being joined first.
pub fn write_frame_parts<W: Write, T: Serialize>(
    w: &mut W,
    msg: &T,
    head: &[u8],
    tail: &[u8],
) -> io::Result<()> {
    let json = serde_json::to_vec(msg).map_err(io::Error::other)?;
    w.write_all(&(json.len() as u32).to_le_bytes())?;
    w.write_all(&json)?;
    w.write_all(&((head.len() + tail.len()) as u32).to_le_bytes())?;
    w.write_all(head)?;
    w.write_all(tail)?;
    w.flush()
}

fn read_part<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_PART {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame part of {len} bytes exceeds {MAX_PART}"),
        ));
    }
    buf.resize(len, 0);
    r.read_exact(buf)
}

/// Reads one frame; the data part is left in `data`.
pub fn read_frame<R: Read, T: for<'de> Deserialize<'de>>(
    r: &mut R,
    data: &mut Vec<u8>,
) -> io::Result<T> {
    let mut json = Vec::new();
    read_part(r, &mut json)?;
    let msg =
        serde_json::from_slice(&json).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    read_part(r, data)?;
    Ok(msg)
}
