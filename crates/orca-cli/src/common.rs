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

/// What a server allows each client (`orca vault serve`, `orca store serve`).
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// A client must send each request's headers (and finish a TLS handshake) within this;
    /// HTTP/1.1 connections idle longer between requests are closed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// A request body must arrive within this once its headers have (else 408).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    body_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Connections served at once; more wait until one closes. Keep it under the open files
    /// limit (`ulimit -n`), which the server's own files count against too.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> Result<orca_vault::listen::Limits> {
        let l = orca_vault::listen::Limits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        };
        l.check().map_err(anyhow::Error::msg)?;
        Ok(l)
    }
}

/// `s` with every control character written as an escape (`\r`, `\n`, `\u{1b}`, ...).
fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            let plain = (!c.is_control()).then_some(c);
            escaped.into_iter().flatten().chain(plain)
        })
        .collect::<String>()
        .into()
}

/// How log fields are written: as the default formatter does, but with every control
/// character escaped, so that a client's string (a piece name, a path) that reaches a log line
/// can neither end it nor forge another (CR/LF) nor drive the terminal (ESC).
pub fn log_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static
{
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = escape_controls(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Every log line a subscriber with [`log_fields`] writes.
    fn logged(f: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(log_fields())
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_client_string_cannot_forge_a_log_line() {
        let name =
            "ORCL/x\r\n2026-01-01T00:00:00Z  INFO piece committed piece=ORCL/forged\u{1b}[2J";
        let out = logged(|| {
            tracing::info!(piece = %name, "piece deleted");
            tracing::warn!(path = ?name, "skipping a file");
            tracing::info!("a message naming {name}");
        });
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(!out.contains('\r') && !out.contains('\u{1b}'), "{out:?}");
        assert!(out.contains("piece=ORCL/x\\r\\n2026"), "{out}");
        // A negative control: the default formatter writes the name as it is.
        let plain = Arc::new(Mutex::new(Vec::new()));
        let sink = plain.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(
            subscriber,
            || tracing::info!(piece = %name, "piece deleted"),
        );
        let plain = String::from_utf8(plain.lock().unwrap().clone()).unwrap();
        assert_eq!(plain.lines().count(), 2, "{plain}");
    }
}
