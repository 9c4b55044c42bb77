//! A simulated Oracle database for testing ORCA without Oracle.
//!
//! The simulator writes datafiles and archived logs in Oracle's real on-disk
//! formats (see the `orca-oracle` crate), keeps a control file whose `v$`
//! views answer SQL, and provides `rman` and `sqlplus` stand-ins that accept
//! the command lines a DBA types. It depends only on `orca-oracle`: it must
//! not borrow product logic it is meant to test.
//!
//! Module map:
//! - `db`: the database home: create, datafiles, redo threads, archived logs,
//!   workload, control file (SQLite) and its `v$` views, block change tracking.
//! - `sqlplus`: the `sqlplus -S / as sysdba` stand-in.
//! - `verify`: `oraclesim verify` (prove a restore).
//! - `cli`: the `oraclesim` subcommands.
//! - `rman`: the `rman target /` stand-in: parser, channels, backup, restore.
//! - `sbt`: loading an SBT library with `dlopen` and calling it as RMAN does.
//! - `piece`: the simulator's backup-piece container format.

// Test tooling, not product code: it fabricates Oracle's fixed-width fields from test
// sizes by design, so the workspace's cast lints are off here.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

pub mod cli;
pub mod db;
pub mod piece;
pub mod rman;
pub mod sbt;
pub mod sqlplus;
pub mod verify;
