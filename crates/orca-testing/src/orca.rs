//! The `orca` command as a test runs it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::http;
use crate::process::{Guard, run_ok, wait_for};

/// The `orca` binary and the repository passphrase it runs with.
#[derive(Debug, Clone)]
pub struct Orca {
    exe: PathBuf,
    password: Option<String>,
}

impl Orca {
    /// The binary at `exe` (in orca-cli's tests: `env!("CARGO_BIN_EXE_orca")`).
    pub fn at(exe: impl Into<PathBuf>) -> Orca {
        Orca {
            exe: exe.into(),
            password: None,
        }
    }

    /// The workspace's binary, built if missing or stale (for tests outside orca-cli).
    pub fn built() -> Orca {
        Orca::at(crate::tools::orca())
    }

    /// Every command gets `ORCA_PASSWORD=password`.
    pub fn with_password(mut self, password: &str) -> Orca {
        self.password = Some(password.to_string());
        self
    }

    /// The binary's path.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// A command line to complete: the passphrase set when there is one, and no
    /// `ORCA_REPO` or `ORCA_KEY_FILE` leaking in from the environment of the test run.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.env_remove("ORCA_REPO").env_remove("ORCA_KEY_FILE");
        if let Some(p) = &self.password {
            c.env("ORCA_PASSWORD", p);
        }
        c
    }

    /// `orca <args> --listen 127.0.0.1:<port>`, a server printing nowhere and killed when
    /// the guard drops, once `GET <ready>` answers 200 (within 20 seconds).
    pub fn serve<S: AsRef<OsStr>>(&self, args: &[S], port: u16, ready: &str) -> Guard {
        let server = Guard::spawn(
            self.cmd()
                .args(args)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let url = format!("http://127.0.0.1:{port}");
        let what: Vec<_> = args
            .iter()
            .take(2)
            .map(|a| a.as_ref().to_string_lossy())
            .collect();
        wait_for(&format!("orca {}", what.join(" ")), 20, || {
            http::get_ok(&url, ready).is_some()
        });
        server
    }

    /// `orca <args>`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        run_ok(self.cmd().args(args))
    }

    /// `orca <args>` printing JSON, which must succeed; the document.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("orca {args:?}: not JSON ({e}): {out}"))
    }

    /// Encoded bytes in the packs of the repository directory `repo` (`orca repo info`).
    pub fn pack_bytes(&self, repo: &Path) -> u64 {
        let out = run_ok(
            self.cmd()
                .args(["repo", "info", "--json", "--repo"])
                .arg(repo),
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("repo info prints JSON");
        v["stats"]["pack_bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("no stats.pack_bytes in {v}"))
    }
}
