//! Channel configuration from the variables RMAN sets for the channel (`ENV=(...)` in PARMS
//! or `SEND 'ENV=(...)'`).
//!
//! | variable | meaning |
//! |---|---|
//! | `ORCA_REPO` | local repository directory (`orca repo init --repo DIR`) |
//! | `ORCA_VAULT` + `ORCA_TOKEN_FILE` | vault URL (`http://host:port`) and a file (mode 0600) holding the database's token; `ORCA_TOKEN`, the token itself, still works but lands in RMAN's logs |
//! | `ORCA_KEY_FILE` / `ORCA_PASSWORD_FILE` | the repository key: a key file, or a file holding the passphrase; `ORCA_PASSWORD`, the passphrase itself, still works |
//! | `ORCA_CACHE_DIR` | fingerprint cache (default `$XDG_CACHE_HOME/orca`, `~/.cache/orca`) |
//! | `ORCA_COMMAND_ID` | the backup's RMAN command id, labelled on each piece (`orca.command_id`) so a piece committed but never catalogued can be found |
//!
//! Memory: a channel's peak RSS stays within 64 MiB whatever the piece and database size
//! (issue 22), from these defaults; each is a knob, in the channel's environment (PARMS
//! `ENV=(...)`), for experiments. Batches, packs and read-ahead are counted in bytes, so the
//! bound holds with any block size and any chunk size.
//!
//! | variable | default | what it bounds |
//! |---|---|---|
//! | `ORCA_SBT_BATCH_MB` | 2 | backup: chunks handed to the pipeline at a time; at most four batches are in memory (one filling, one queued, two in process) |
//! | `ORCA_SBT_BATCHES` | 2 | backup: batches in process at once (hashing, probing, compressing, storing overlap) |
//! | `ORCA_SBT_PACK_MB` | 9 | backup to a local repository: the packs being filled and written; packs are sealed at a third of it, 3 MiB (more objects than the repository's 16 MiB packs; through the vault, the server builds the packs) |
//! | `ORCA_SBT_READ_MB` | 2 | restore: bytes fetched per request |
//! | `ORCA_SBT_READ_AHEAD` | 4 | restore: requests in flight |
//! | `ORCA_SBT_READ_AHEAD_MB` | 4 | restore: decoded bytes held ahead of RMAN in all, the requests in flight included |
//! | `ORCA_SBT_HASH_IN_CHANNEL` | 1 | backup: `0` fingerprints on the pool instead of in RMAN's buffers |
//! | `ORCA_SBT_UNIT_BY_BLOCK` | 1 | backup: `0` detects changes in 8 KiB units in datafiles of 2 and 4 KiB blocks too, instead of one unit a block (docs/design.md, "Chunks and their ids") |
//! | `ORCA_SBT_BY_BLOCK` | 1 | backup: `0` keys a datafile's chunks by stream offset instead of by block number (docs/design.md, "Positions") |
//! | `ORCA_SBT_IO_THREADS` | 4 | threads for blocking calls (index queries, pack reads and writes); hashing and compression run on one thread per core |
//! | `ORCA_SBT_DEMUX` | auto | backup: `1` stores single-file pieces demultiplexed too, `0` never demultiplexes |
//!
//! Besides: up to 16 MiB of a piece's start is held back until its datafile is known, before
//! the pipeline starts. The library allocates with the process's allocator (glibc under
//! Oracle on Linux), whose memory the SQLite and zstd code shares: a second allocator
//! (mimalloc, until 2026-12-08) kept 15-20 MiB more per channel resident at the same speed
//! (docs/bench/README.md). A channel that is a process of its own limits glibc to one malloc
//! arena (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`, overrides it).
//! A restore decodes into reused buffers, and a channel turning from
//! backups to restores (or back) frees the buffers the other kept idle.

use std::path::PathBuf;

#[derive(Clone)]
pub enum Backend {
    Local(PathBuf),
    Vault { url: String, token: String },
}

#[derive(Clone)]
pub struct Config {
    pub backend: Backend,
    pub password: Option<String>,
    pub key_file: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub command_id: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Config {
    /// Reads the settings through `get` (channel overrides, then the environment). The error
    /// names the setting to fix.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let backend = match (get("ORCA_REPO"), get("ORCA_VAULT")) {
            (Some(_), Some(_)) => {
                return Err(
                    "both ORCA_REPO and ORCA_VAULT are set in the channel's ENV: set exactly one"
                        .into(),
                );
            }
            (None, Some(url)) => {
                let Some(token) = secret(&get, "ORCA_TOKEN_FILE")?.or_else(|| get("ORCA_TOKEN"))
                else {
                    return Err(format!(
                        "ORCA_VAULT={url} is set but ORCA_TOKEN_FILE is not: add a file holding the database's vault token (`orca vault token create`) to the channel's ENV"
                    ));
                };
                Backend::Vault { url, token }
            }
            (None, None) => {
                return Err("no ORCA repository configured: add ENV=(ORCA_REPO=<dir>,ORCA_PASSWORD=...) to the channel's PARMS (create the repository with `orca repo init --repo <dir>`)".into());
            }
            (Some(dir), None) => {
                let dir = PathBuf::from(dir);
                if !dir.join("config").exists() && !dir.join("index.sqlite").exists() {
                    return Err(format!(
                        "ORCA_REPO={} is not an ORCA repository: create it with `orca repo init --repo {}`",
                        dir.display(),
                        dir.display()
                    ));
                }
                Backend::Local(dir)
            }
        };
        let password = secret(&get, "ORCA_PASSWORD_FILE")?.or_else(|| get("ORCA_PASSWORD"));
        let key_file = get("ORCA_KEY_FILE").map(PathBuf::from);
        if password.is_none() && key_file.is_none() {
            return Err(
                "no repository key: set ORCA_KEY_FILE or ORCA_PASSWORD_FILE in the channel's ENV"
                    .into(),
            );
        }
        if let Some(f) = &key_file
            && !f.is_file()
        {
            return Err(format!("ORCA_KEY_FILE={} does not exist", f.display()));
        }
        let cache_dir = get("ORCA_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| get("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("orca")))
            .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".cache").join("orca")))
            .unwrap_or_else(|| std::env::temp_dir().join("orca-cache"));
        Ok(Config {
            backend,
            password,
            key_file,
            cache_dir,
            command_id: get("ORCA_COMMAND_ID"),
        })
    }

    /// For the trace: no secrets.
    pub fn describe(&self) -> String {
        let target = match &self.backend {
            Backend::Local(d) => format!("repository {}", d.display()),
            Backend::Vault { url, .. } => format!("vault {url}"),
        };
        format!(
            "{target} key {} cache {}",
            if self.key_file.is_some() {
                "from ORCA_KEY_FILE"
            } else {
                "from ORCA_PASSWORD"
            },
            self.cache_dir.display()
        )
    }
}

/// The secret in the file the variable `var` names (its first line), when it is set: read
/// rather than passed in the channel's ENV, which RMAN echoes into its logs. The error names
/// the variable and the file, never the secret.
fn secret(get: &impl Fn(&str) -> Option<String>, var: &str) -> Result<Option<String>, String> {
    let Some(path) = get(var) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{var}={path}: {e}"))?;
    match text.lines().next().map(str::trim).filter(|l| !l.is_empty()) {
        Some(s) => Ok(Some(s.to_string())),
        None => Err(format!("{var}={path} is empty")),
    }
}

/// `ENV=(A=1, B=2)` inside a SEND text, as (name, value) pairs.
pub fn parse_env_command(text: &str) -> Option<Vec<(String, String)>> {
    let up = text.to_ascii_uppercase();
    let start = up.find("ENV=(")? + 5;
    let end = start + text[start..].find(')')?;
    Some(
        text[start..end]
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn errors_name_the_setting() {
        assert!(cfg(&[]).unwrap_err().contains("ORCA_REPO"));
        assert!(
            cfg(&[("ORCA_REPO", "/a"), ("ORCA_VAULT", "http://x")])
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(
            cfg(&[("ORCA_REPO", "/nonexistent")])
                .unwrap_err()
                .contains("orca repo init")
        );
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config"), "x").unwrap();
        let dir = d.path().to_str().unwrap();
        assert!(
            cfg(&[("ORCA_REPO", dir)])
                .unwrap_err()
                .contains("ORCA_PASSWORD")
        );
        let c = cfg(&[("ORCA_REPO", dir), ("ORCA_PASSWORD", "p"), ("HOME", "/h")]).unwrap();
        assert_eq!(c.cache_dir, PathBuf::from("/h/.cache/orca"));
        assert!(!c.describe().contains('p') || !c.describe().contains("=p"));
    }

    #[test]
    fn secrets_come_from_files_and_the_plain_variables_still_work() {
        let d = tempfile::tempdir().unwrap();
        let (token, pass) = (d.path().join("token"), d.path().join("password"));
        std::fs::write(&token, "orca_secret_token\n").unwrap();
        std::fs::write(&pass, "a long passphrase\n").unwrap();
        let (t, p) = (token.to_str().unwrap(), pass.to_str().unwrap());
        let c = cfg(&[
            ("ORCA_VAULT", "http://v"),
            ("ORCA_TOKEN_FILE", t),
            ("ORCA_PASSWORD_FILE", p),
        ])
        .unwrap();
        assert!(matches!(&c.backend, Backend::Vault { token, .. } if token == "orca_secret_token"));
        assert_eq!(c.password.as_deref(), Some("a long passphrase"));
        assert!(!format!("{c:?}").contains("secret") && !format!("{c:?}").contains("long"));
        let c = cfg(&[
            ("ORCA_VAULT", "http://v"),
            ("ORCA_TOKEN", "orca_plain"),
            ("ORCA_PASSWORD", "x"),
        ])
        .unwrap();
        assert!(matches!(&c.backend, Backend::Vault { token, .. } if token == "orca_plain"));
        let missing = d.path().join("none");
        let e = cfg(&[
            ("ORCA_VAULT", "http://v"),
            ("ORCA_TOKEN_FILE", missing.to_str().unwrap()),
            ("ORCA_PASSWORD", "x"),
        ])
        .unwrap_err();
        assert!(
            e.starts_with("ORCA_TOKEN_FILE=") && e.contains("none"),
            "{e}"
        );
        std::fs::write(&token, "\n").unwrap();
        let e = cfg(&[("ORCA_VAULT", "http://v"), ("ORCA_TOKEN_FILE", t)]).unwrap_err();
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn send_env() {
        assert_eq!(
            parse_env_command("ENV=(ORCA_REPO=/r, ORCA_PASSWORD=x)").unwrap(),
            vec![
                ("ORCA_REPO".to_string(), "/r".to_string()),
                ("ORCA_PASSWORD".to_string(), "x".to_string())
            ]
        );
        assert!(parse_env_command("hello").is_none());
    }
}
