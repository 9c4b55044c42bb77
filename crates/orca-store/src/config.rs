//! The store's configuration file (TOML), and what `orca store serve` flags override.
//!
//! ```toml
//! root = "/srv/orca-store"          # mounts live in <root>/<mount>/
//! listen = "0.0.0.0:9090"
//! max_pending = 5                   # recovery points per mount waiting for upload
//! export_command = ["exportfs", "-o", "rw,sync,no_root_squash", "*:{path}"]
//! upload_limit_mb_per_s = 0         # 0: no limit
//! [vault]
//! url = "https://vault:7400"
//! token = "orca_..."                # or token_file = "/etc/orca/store.token"
//! key_file = "/etc/orca/repo.key"   # else the passphrase from ORCA_PASSWORD
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::StoreError;

/// Recovery points a mount may hold waiting for upload, unless configured.
pub const DEFAULT_MAX_PENDING: usize = 5;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9090";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub root: PathBuf,
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// Run to export a mount's data directory over NFS (`{path}` is replaced by it) when the
    /// mount is created and at each start of a backup; none: the operator exports it.
    #[serde(default)]
    pub export_command: Vec<String>,
    /// Cap on upload bandwidth to the vault, so the store does not saturate a WAN link.
    #[serde(default)]
    pub upload_limit_mb_per_s: f64,
    #[serde(default)]
    pub vault: Option<VaultConfig>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Key file of the vault's repository; else ORCA_PASSWORD unlocks it.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl std::fmt::Debug for VaultConfig {
    // The token is a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConfig")
            .field("url", &self.url)
            .field("token_file", &self.token_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}

fn default_max_pending() -> usize {
    DEFAULT_MAX_PENDING
}

impl StoreConfig {
    /// The quick-start configuration: a root and defaults.
    pub fn with_root(root: PathBuf) -> StoreConfig {
        StoreConfig {
            root,
            listen: default_listen(),
            max_pending: DEFAULT_MAX_PENDING,
            export_command: Vec::new(),
            upload_limit_mb_per_s: 0.0,
            vault: None,
        }
    }

    pub fn read(path: &Path) -> Result<StoreConfig, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| StoreError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let c: StoreConfig = toml::from_str(&text).map_err(|e| StoreError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        c.check().map_err(|message| StoreError::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(c)
    }

    pub fn check(&self) -> Result<(), String> {
        if self.max_pending == 0 {
            return Err("max_pending must be at least 1".into());
        }
        if !(self.upload_limit_mb_per_s >= 0.0 && self.upload_limit_mb_per_s.is_finite()) {
            return Err("upload_limit_mb_per_s must be 0 (no limit) or a positive number".into());
        }
        if let Some(v) = &self.vault
            && v.token.is_none()
            && v.token_file.is_none()
        {
            return Err("[vault] needs token or token_file".into());
        }
        Ok(())
    }
}

impl VaultConfig {
    pub fn token(&self) -> Result<String, StoreError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let path = self.token_file.clone().unwrap_or_default();
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_string())
            .map_err(|e| StoreError::Config {
                path,
                message: format!("cannot read the vault token: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_defaults_parses_and_bad_values_are_refused() {
        let c: StoreConfig = toml::from_str("root = \"/srv/s\"\n").unwrap();
        assert_eq!(c.max_pending, 5);
        assert_eq!(c.listen, "127.0.0.1:9090");
        c.check().unwrap();
        let c: StoreConfig = toml::from_str("root = \"/s\"\nmax_pending = 0\n").unwrap();
        assert!(c.check().is_err());
        let c: StoreConfig =
            toml::from_str("root = \"/s\"\n[vault]\nurl = \"http://v\"\n").unwrap();
        assert!(c.check().is_err());
        assert!(toml::from_str::<StoreConfig>("root = \"/s\"\nmax_pendin = 3\n").is_err());
    }
}
