//! The repository config object (`config`, JSON, plaintext): parameters every
//! client needs before it can open the keys.

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerSpec;
use crate::codec::Cipher;
use crate::error::{RepoError, Result};

/// Object key of the repository configuration; its presence in a directory marks a repository.
pub const CONFIG_KEY: &str = "config";
/// Newest configuration format this build writes and reads; a newer one is refused.
pub const CONFIG_VERSION: u32 = 1;
/// Default target size of a pack object (16 MiB).
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;
/// Default zstd level: fast, since backup throughput is bound by compression.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// How the master key is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStorage {
    /// Wrapped by one or more passphrases in `keys/`.
    Passphrase,
    /// In a key file outside the repository.
    Keyfile,
}

/// The repository configuration (`config` object): fixed at init, readable without
/// the key, validated on every read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Format version ([`CONFIG_VERSION`] when written by this build).
    pub version: u32,
    /// Random 128-bit id, hex.
    pub id: String,
    /// When the repository was created (Unix seconds).
    pub created: i64,
    /// AEAD cipher of every chunk and manifest.
    pub cipher: Cipher,
    /// zstd level chunks are compressed with (1..=22, or -7..=-1 for the fast levels).
    pub compression_level: i32,
    /// Default chunker of pieces that do not choose one.
    pub chunker: ChunkerSpec,
    /// Target size of pack objects.
    pub pack_size: u32,
    /// Whether the master key is wrapped in `keys/` or held in a key file.
    pub key_storage: KeyStorage,
    /// Proves a key belongs to this repository (see `Keys::key_check`).
    pub key_check: String,
}

impl RepoConfig {
    /// Parse and validate the `config` object read from `object`; refuses a version newer
    /// than [`CONFIG_VERSION`].
    pub fn parse(bytes: &[u8], object: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            version: u32,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| {
            RepoError::corrupt(object, format!("repository config unreadable: {e}"))
        })?;
        if probe.version > CONFIG_VERSION {
            return Err(RepoError::UnsupportedVersion {
                what: "repository",
                found: probe.version,
                supported: CONFIG_VERSION,
            });
        }
        let cfg: RepoConfig = serde_json::from_slice(bytes).map_err(|e| {
            RepoError::corrupt(object, format!("repository config unreadable: {e}"))
        })?;
        cfg.validate(object)?;
        Ok(cfg)
    }

    /// Check every field is in range; `object` names the configuration in the error.
    pub fn validate(&self, object: &str) -> Result<()> {
        let bad = |r: String| RepoError::corrupt(object, r);
        if self.id.len() != 32 || !self.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!(
                "repository id {:?} is not 32 hex digits",
                self.id
            )));
        }
        if !(1..=22).contains(&self.compression_level)
            && !(-7..=-1).contains(&self.compression_level)
        {
            return Err(bad(format!(
                "zstd level {} out of range",
                self.compression_level
            )));
        }
        if !((1 << 20)..=(1 << 30)).contains(&self.pack_size) {
            return Err(bad(format!(
                "pack size {} out of range (1 MiB..1 GiB)",
                self.pack_size
            )));
        }
        self.chunker.validate().map_err(|e| bad(e.to_string()))
    }

    /// The configuration as stored (pretty JSON).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("config serialises")
    }
}
