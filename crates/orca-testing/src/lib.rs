//! What ORCA's tests share, so no test file carries a copy of another's harness.
//!
//! Every item here panics instead of returning an error: a helper that fails is a test
//! that fails, and the panic message says which command, with what it printed.
//!
//! - [`process`]: run a command and get its output or a panic naming it, wait with a
//!   deadline, free loopback ports, children killed when dropped;
//! - [`http`]: raw HTTP/1.1 requests and Prometheus metrics;
//! - [`fs`]: directory copies, file listings, fixture version directories, a flipped byte;
//! - [`tools`]: the one routine that finds `orca`, `oraclesim` (and its `rman`/`sqlplus`
//!   shims) and `liborca_sbt.so`, building them when missing or older than their sources;
//! - [`orca`]: the `orca` command with a repository passphrase;
//! - [`pg`]: a throwaway PostgreSQL server;
//! - [`moto`]: an S3-compatible server (moto) with buckets;
//! - [`vault`]: `orca vault serve` on a repository, its tokens and metrics;
//! - [`store`]: `orca store serve`, the backup-store appliance, and `curl` as its docs call it;
//! - [`agent`]: an agent configuration file and `orca agent run`;
//! - [`sim`]: a simulated database home (`oraclesim create`), its `rman` and `sqlplus`,
//!   and the restore proof: `oraclesim snapshot`, `verify --at-scn` and its negative control;
//! - [`data`]: deterministic data: Oracle-like blocks, byte patterns.
//!
//! A test in `orca-cli` names its own `orca` (`Orca::at(env!("CARGO_BIN_EXE_orca"))`);
//! any other test gets every program from [`tools`].

pub mod agent;
pub mod data;
pub mod fs;
pub mod http;
pub mod moto;
pub mod orca;
pub mod pg;
pub mod process;
pub mod sim;
pub mod store;
pub mod tools;
pub mod vault;
