//! `liborca_sbt.so`: an Oracle SBT 2.0 media-management library that stores RMAN backup pieces
//! in an ORCA repository, deduplicated at the source.
//!
//! - [`ffi`]: the C ABI (`sbtinit` and the 2.0 function table); the only unsafe code.
//! - [`session`]: one channel's state machine over the repository (write, commit on close,
//!   restore, remove, info), safe Rust.
//! - [`config`]: the channel's `ENV=(...)` settings.
//! - [`demux`]: a piece split into Oracle blocks by datafile and RMAN's own bytes, so a
//!   multiplexed piece is stored demultiplexed, one lane per datafile.
//! - [`stream`]: Oracle blocks found in the stream; the datafile a piece holds keys the
//!   fingerprint cache, so an unchanged datafile is backed up without asking the repository.
//! - [`trace`]: the `sbtio.log`-style trace with per-piece statistics.

pub mod config;
pub mod demux;
pub mod ffi;
pub mod session;
pub mod stream;
pub mod trace;
