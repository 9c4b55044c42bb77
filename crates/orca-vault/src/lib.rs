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

/// What the fuzz targets (fuzz/) feed arbitrary bytes to.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz {
    use bytes::Bytes;

    /// Every decoder of a body the vault or its client reads from the other side: an upload
    /// batch, a read's answer (the first byte saying how many payloads are expected) and a
    /// list of ids in JSON.
    pub fn wire(data: &[u8]) {
        let _ = crate::wire::decode_chunks(Bytes::copy_from_slice(data));
        if let Some((n, rest)) = data.split_first() {
            let _ = crate::wire::decode_payloads(Bytes::copy_from_slice(rest), usize::from(*n));
        }
        if let Ok(ids) = serde_json::from_slice::<crate::wire::Ids>(data) {
            let _ = crate::wire::ids_from_hex(&ids.ids);
        }
    }
}
