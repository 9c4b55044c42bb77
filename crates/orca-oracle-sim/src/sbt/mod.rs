//! The SBT caller: loads a media-management library with `dlopen` and drives it exactly as
//! RMAN does (oracle-facts §1.6–§1.9).
//!
//! Layout:
//! - [`ffi`]: C types and constants of `skgfqsbt.h` on LP64 (`c_ulong` tags, 16-byte pairs).
//! - [`library`]: `dlopen` + `sbtinit` ([`SbtLibrary`]) and one session with its zeroed context
//!   of CTXSIZE bytes ([`SbtSession`]): sbtinit2, sbtbackup, sbtwrite2, sbtclose2, sbtinfo2,
//!   sbtrestore, sbtread2, sbtremove2, sbtcommand, sbtend, with `sbterror` after every -1.
//! - [`server`] / [`client`]: each SBT channel runs in its own child process (the simulator
//!   binary re-executed as `rman --oraclesim-channel-server`) whose environment carries the
//!   channel's `ENV=(...)`; `rman` talks to it over pipes, the sbtwrite2/sbtread2 buffers
//!   crossing in an in-memory file both open ([`protocol`]). A library crash kills
//!   only that channel, and killing the process models a dying Oracle server process.
//! - [`parms`]: the PARMS string (`SBT_LIBRARY=`, `ENV=(...)`, `SBT_PARMS=(...)`, `BLKSIZE=`).
//! - [`error`]: failures and the ORA- lines RMAN prints for them (ORA-19511 with the library's
//!   sbterror text).
//!
//! Call sequences (one channel):
//! ```text
//! ALLOCATE:  sbtinit -> (context of CTXSIZE bytes, zeroed) -> sbtinit2
//! per piece: sbtbackup -> sbtwrite2 x N (BLKSIZE bytes each, last one padded) -> sbtclose2
//!            -> sbtinfo2([handle])
//! restore:   sbtinfo2([handles]) -> per piece: sbtrestore -> sbtread2 ... -1 (7504)
//!            -> sbterror -> sbtclose2
//! delete:    sbtremove2([handle])        crosscheck: sbtinfo2([handles])
//! SEND:      sbtcommand(text)
//! RELEASE:   sbtend
//! on any -1: sbterror
//! ```

pub mod client;
pub mod error;
pub mod ffi;
pub mod library;
pub mod parms;
pub mod process;
pub mod protocol;
pub mod server;

pub use client::{SbtChannel, SpawnOptions};
pub use error::{ErrorSite, SbtCall, SbtError};
pub use library::{FileInfo, InitInfo, ObjectInfo, ReadOutcome, SbtLibrary, SbtSession};
pub use parms::{ChannelParms, DEFAULT_BLKSIZE, ParmsError, parse_parms};
