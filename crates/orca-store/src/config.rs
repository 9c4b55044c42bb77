//! The store's configuration file (TOML), and what `orca store serve` flags override.
//!
//! ```toml
//! root = "/srv/orca-store"          # mounts live in <root>/<mount>/
//! listen = "0.0.0.0:9090"
//! max_pending = 5                   # recovery points per mount waiting for upload
//! export_command = ["exportfs", "-o", "rw,sync,no_root_squash", "*:{path}"]
//! upload_limit_mb_per_s = 0         # 0: no limit
//! admin_token_file = "/etc/orca/store-admin.token"   # needed unless listening on loopback
//! snapshot = "auto"                 # reflink | ingest | auto (reflink where the mount's
//!                                   # filesystem clones files: XFS, btrfs)
//! [nfs]                             # the mount options POST tells the database host
//! timeo = 1200                      # tenths of a second before an NFS retry (default 1200)
//! retrans = 5                       # retries before an error (default 5)
//! [vault]
//! url = "https://vault:7400"
//! token_file = "/etc/orca/store.token"   # mode 0600; `token = "orca_..."` also works
//! key_file = "/etc/orca/repo.key"   # else the passphrase from ORCA_PASSWORD
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::StoreError;

/// Recovery points a mount may hold waiting for upload, unless configured.
pub const DEFAULT_MAX_PENDING: usize = 5;
/// Address of the REST API unless configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9090";

/// The store's configuration (TOML, `orca store serve --config`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The directory holding the mounts and the store's own files.
    pub root: PathBuf,
    /// Address of the REST API (`127.0.0.1:9090` by default).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Recovery points a mount may have waiting for upload; POST is refused beyond that.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// Run to export a mount's data directory over NFS (`{path}` is replaced by it) when the
    /// mount is created and at each start of a backup; none: the operator exports it.
    #[serde(default)]
    pub export_command: Vec<String>,
    /// Cap on upload bandwidth to the vault, so the store does not saturate a WAN link.
    #[serde(default)]
    pub upload_limit_mb_per_s: f64,
    /// The admin surface (`/orca/v1/admin/...`) takes requests bearing this token only. The
    /// contract's endpoints stay open to the DBAs' scripts, as the contract has them.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// How PUT makes a recovery point immutable.
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// The admin token itself (set from ORCA_STORE_ADMIN_TOKEN); prefer the file.
    #[serde(skip)]
    pub admin_token: Option<String>,
    /// The vault recovery points are uploaded to; none: they stay local.
    #[serde(default)]
    pub vault: Option<VaultConfig>,
    /// The NFS mount options POST answers with (`[nfs]`).
    #[serde(default)]
    pub nfs: NfsOptions,
}

/// The NFS mount options the database host is told to use (`timeo`, `retrans`), as the
/// store's administrator set them for this network; the backup-store contract's example
/// values (1200, 5) otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsOptions {
    /// Tenths of a second the client waits for an answer before it retries.
    #[serde(default = "default_timeo")]
    pub timeo: u32,
    /// Retries before the client reports an error.
    #[serde(default = "default_retrans")]
    pub retrans: u32,
}

impl Default for NfsOptions {
    fn default() -> Self {
        NfsOptions {
            timeo: default_timeo(),
            retrans: default_retrans(),
        }
    }
}

fn default_timeo() -> u32 {
    1200
}

fn default_retrans() -> u32 {
    5
}

/// How PUT makes a recovery point immutable before the next RMAN run rewrites the copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Clone each changed file copy-on-write (the `FICLONE` ioctl): PUT costs metadata
    /// only; the clone is ingested into the local chunk store when its upload starts.
    Reflink,
    /// Read each changed file into the local chunk store during PUT.
    Ingest,
    /// Reflink where the mount's filesystem can clone files, else ingest.
    #[default]
    Auto,
}

impl std::str::FromStr for SnapshotMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reflink" => Ok(SnapshotMode::Reflink),
            "ingest" => Ok(SnapshotMode::Ingest),
            "auto" => Ok(SnapshotMode::Auto),
            other => Err(format!(
                "unknown snapshot mode {other:?}: use reflink, ingest or auto"
            )),
        }
    }
}

/// How the store reaches its vault (`[vault]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// The vault's URL.
    pub url: String,
    /// A backup token of the vault; prefer `token_file`.
    #[serde(default)]
    pub token: Option<String>,
    /// A file (mode 0600) holding the token.
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
            admin_token_file: None,
            snapshot: SnapshotMode::default(),
            admin_token: None,
            vault: None,
            nfs: NfsOptions::default(),
        }
    }

    /// Read and check the configuration file at `path`.
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

    /// Refuse values out of range, saying which.
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
        if self.admin_token.is_none() && self.admin_token_file.is_none() && !self.loopback() {
            return Err(format!(
                "listening on {} would open the admin routes (mounts, restores, decommission) to \
                 anyone who reaches it: set admin_token_file in the configuration (or \
                 ORCA_STORE_ADMIN_TOKEN), or listen on 127.0.0.1",
                self.listen
            ));
        }
        Ok(())
    }

    /// Listening on a loopback address only, where the admin surface needs no token.
    pub fn loopback(&self) -> bool {
        self.listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
            || self.listen.starts_with("localhost:")
    }

    /// The admin token, read from its file when one is named.
    pub fn admin_token(&self) -> Result<Option<String>, StoreError> {
        if let Some(t) = &self.admin_token {
            return Ok(Some(t.clone()));
        }
        let Some(path) = &self.admin_token_file else {
            return Ok(None);
        };
        let t = std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| StoreError::Config {
                path: path.clone(),
                message: format!("cannot read the admin token: {e}"),
            })?;
        if t.is_empty() {
            return Err(StoreError::Config {
                path: path.clone(),
                message: "the admin token file is empty".into(),
            });
        }
        Ok(Some(t))
    }
}

impl VaultConfig {
    /// The token, from `token` or else `token_file`.
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

    #[test]
    fn nfs_options_default_to_the_contracts_and_can_be_set() {
        let c: StoreConfig = toml::from_str("root = \"/s\"\n").unwrap();
        assert_eq!(
            c.nfs,
            NfsOptions {
                timeo: 1200,
                retrans: 5
            }
        );
        let c: StoreConfig =
            toml::from_str("root = \"/s\"\n[nfs]\ntimeo = 600\nretrans = 3\n").unwrap();
        assert_eq!(
            c.nfs,
            NfsOptions {
                timeo: 600,
                retrans: 3
            }
        );
        let c: StoreConfig = toml::from_str("root = \"/s\"\n[nfs]\nretrans = 2\n").unwrap();
        assert_eq!(
            c.nfs,
            NfsOptions {
                timeo: 1200,
                retrans: 2
            }
        );
        assert!(toml::from_str::<StoreConfig>("root = \"/s\"\n[nfs]\ntimeout = 6\n").is_err());
    }

    #[test]
    fn the_admin_surface_is_never_open_to_the_network() {
        let c: StoreConfig = toml::from_str("root = \"/s\"\nlisten = \"0.0.0.0:9090\"\n").unwrap();
        let e = c.check().unwrap_err();
        assert!(e.contains("admin_token_file"), "{e}");
        let c: StoreConfig =
            toml::from_str("root = \"/s\"\nlisten = \"0.0.0.0:9090\"\nadmin_token_file = \"/t\"\n")
                .unwrap();
        c.check().unwrap();
        for l in ["127.0.0.1:9090", "[::1]:9090", "localhost:9090"] {
            let c: StoreConfig =
                toml::from_str(&format!("root = \"/s\"\nlisten = \"{l}\"\n")).unwrap();
            c.check().unwrap();
        }
    }
}
