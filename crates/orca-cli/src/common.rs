//! What every repository command shares: where the repository is, how its key
//! is unlocked, and how sizes, rates and progress are shown.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use orca_repo::{KeySource, Repository, Store};

#[derive(Args, Debug, Clone)]
pub struct RepoArgs {
    /// Repository directory, as created by `orca repo init`.
    #[arg(long, env = "ORCA_REPO", value_name = "DIR")]
    pub repo: PathBuf,

    /// Key file holding the repository key, for repositories created with
    /// `--key-file`. Otherwise the passphrase is read from ORCA_PASSWORD, or
    /// asked for on the terminal.
    #[arg(long, env = "ORCA_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

impl RepoArgs {
    pub fn key_source(&self) -> Result<KeySource> {
        if let Some(f) = &self.key_file {
            return Ok(KeySource::KeyFile(f.clone()));
        }
        Ok(KeySource::Passphrase(passphrase(false)?))
    }

    pub async fn open(&self) -> Result<(Repository, Arc<Store>)> {
        let key = self.key_source()?;
        Repository::open_local(&self.repo, &key)
            .await
            .with_context(|| format!("cannot open repository {}", self.repo.display()))
    }

    /// The store alone, for commands that need no key.
    pub async fn open_store(&self) -> Result<Arc<Store>> {
        Ok(Arc::new(Store::open_local(&self.repo).await.with_context(
            || format!("cannot open repository {}", self.repo.display()),
        )?))
    }
}

/// The passphrase from ORCA_PASSWORD, or asked on the terminal.
pub fn passphrase(confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("ORCA_PASSWORD") {
        if p.is_empty() {
            bail!("ORCA_PASSWORD is set but empty");
        }
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no repository key given: set ORCA_PASSWORD, or pass --key-file (ORCA_KEY_FILE)");
    }
    let p = rpassword::prompt_password("Repository passphrase: ")
        .context("cannot read the passphrase")?;
    if confirm {
        let again = rpassword::prompt_password("Repeat passphrase: ")
            .context("cannot read the passphrase")?;
        if again != p {
            bail!("the passphrases differ");
        }
    }
    if p.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(p)
}

/// Where lineage (fingerprint cache) files live: ORCA_CACHE_DIR, else the
/// user's cache directory.
pub fn cache_dir(explicit: Option<&PathBuf>) -> PathBuf {
    if let Some(d) = explicit {
        return d.clone();
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("orca");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("orca");
    }
    std::env::temp_dir().join("orca-cache")
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s <= 0.0 {
        0.0
    } else {
        bytes as f64 / 1e6 / s
    }
}

/// A byte progress bar on stderr, hidden when stderr is not a terminal.
pub fn byte_bar(total: u64, what: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A count progress bar on stderr, hidden when stderr is not a terminal.
pub fn count_bar(total: u64, what: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn format_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Parse a point in time: RFC 3339, `YYYY-MM-DD[ HH:MM:SS]` (local time), or
/// an age such as `36h` or `7d` meaning that long ago.
pub fn parse_time(s: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return local_ts(t);
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local_ts(d.and_hms_opt(0, 0, 0).expect("midnight"));
    }
    if let Ok(age) = humantime::parse_duration(s) {
        let age = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        return Ok(orca_repo::now_unix().saturating_sub(age));
    }
    bail!(
        "cannot read {s:?} as a time: use 2026-11-22, \"2026-11-22 10:00:00\", RFC 3339, or an age like 36h or 7d"
    )
}

fn local_ts(t: chrono::NaiveDateTime) -> Result<i64> {
    t.and_local_timezone(chrono::Local)
        .earliest()
        .map(|t| t.timestamp())
        .context("that local time does not exist (daylight saving change)")
}

/// A `key=value` label.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("label {s:?} is not KEY=VALUE")),
    }
}
