//! The ORCA vault: a repository served over HTTP to many clients, and the client that writes
//! through it ([`client::VaultClient`], an `orca_repo::Backend`).
//!
//! - [`wire`]: paths, JSON bodies (with their OpenAPI schemas) and the binary chunk framing.
//! - [`server`] (feature `server`): axum router, bearer tokens scoped to a database, recovery
//!   points and job records, metrics, TLS.
//! - [`listen`] (feature `listen`): serving HTTP within timeouts and a connection limit, for
//!   the vault and the backup store.
//! - [`client`]: pooled HTTP(S) client with bounded concurrency and retries; used by the SBT
//!   library, the CLI, the agent and the appliance.

#![warn(missing_docs)]

pub mod client;
#[cfg(feature = "listen")]
pub mod listen;
#[cfg(feature = "server")]
pub mod server;
mod tls;
pub mod wire;
