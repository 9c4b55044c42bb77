//! Oracle on-disk formats and RMAN conventions, shared by the ORCA product
//! and the Oracle simulator.
//!
//! - [`scn`]: system change numbers and the 8-byte `kscn` encoding.
//! - [`time`]: Oracle time (STAMP / `kcvtime`).
//! - [`block`]: the generic block header `kcbh`, RDBAs, the XOR checksum,
//!   the block tail, and block 0 of every Oracle file.
//! - [`datafile`]: the datafile header block (`kcvfh`).
//! - [`redo`]: redo blocks, the redo log header, and the simulator's redo
//!   records with a block writer and a log parser.
//! - [`format`]: RMAN `FORMAT` expansion (`%U`, `%u`, `%F`, ...).
//! - [`rman_log`]: RMAN output parsed into typed events.
//! - [`bytes`]: a bounds-checked reader of little-endian fixed layouts, for
//!   every decoder of the workspace (this crate, the repository's packs and
//!   manifests, the simulator's pieces).
//!
//! Integers are little-endian (x86-64 Linux). Facts and their sources are in
//! `shared/spec/oracle-facts.md` sections 2 and 4.5.

pub mod block;
pub mod bytes;
pub mod datafile;
pub mod format;
pub mod redo;
pub mod rman_log;
pub mod scn;
pub mod time;

pub use block::{BlockError, BlockHeader, FileHeaderBlock, Rdba};
pub use bytes::{LeReader, Truncated};
pub use datafile::{Checkpoint, DatafileHeader, Rba};
pub use format::{FormatContext, FormatError, FormatKind, expand_format};
pub use redo::{RecordKind, RedoLogHeader, RedoRecord};
pub use rman_log::{RmanEvent, RmanSummary, parse_log};
pub use scn::Scn;
pub use time::{OracleTime, TimeError};
