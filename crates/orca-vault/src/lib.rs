//! The ORCA vault: a repository served over HTTP to many clients, and the client that writes
//! through it ([`client::VaultClient`], an `orca_repo::Backend`).
//!
//! - [`wire`]: paths, JSON bodies and the binary chunk framing.
//! - [`server`] (feature `server`): axum router, bearer tokens scoped to a database, metrics.
//! - [`client`]: pooled HTTP client with retries; used by the SBT library and the CLI.

pub mod client;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;
