//! `orca vault serve` as its own process: a repository served on a loopback port, its
//! tokens, its metrics.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::http;
use crate::orca::Orca;
use crate::process::{Guard, free_port, run_ok};

/// A vault process serving the repository directory `data` on 127.0.0.1:`port`; killed
/// when dropped.
#[derive(Debug)]
pub struct VaultServer {
    orca: Orca,
    /// The repository directory it serves.
    pub data: PathBuf,
    /// Its port; the same across [`VaultServer::kill`] and [`VaultServer::start`].
    pub port: u16,
    child: Guard,
}

impl VaultServer {
    /// `orca repo init` of `<root>/vault`, served.
    pub fn init(orca: &Orca, root: &Path) -> VaultServer {
        let data = root.join("vault");
        run_ok(orca.cmd().args(["repo", "init", "--repo"]).arg(&data));
        VaultServer::serve(orca, data)
    }

    /// Serves the repository directory `data`, made or attached already.
    pub fn serve(orca: &Orca, data: PathBuf) -> VaultServer {
        let mut v = VaultServer {
            orca: orca.clone(),
            data,
            port: free_port(),
            child: Guard::default(),
        };
        v.start();
        v
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again) and waits until `/healthz` answers.
    pub fn start(&mut self) {
        let args: [&OsStr; 4] = [
            "vault".as_ref(),
            "serve".as_ref(),
            "--data".as_ref(),
            self.data.as_os_str(),
        ];
        self.child = self.orca.serve(&args, self.port, "/healthz");
    }

    /// kill -9.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// A new token of scope `backup` for database `db`.
    pub fn token(&self, db: &str) -> String {
        run_ok(
            self.orca
                .cmd()
                .args(["vault", "token", "create", "--data"])
                .arg(&self.data)
                .args(["--db", db, "--scope", "backup"]),
        )
        .trim()
        .to_string()
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        http::get_ok(&self.url(), "/metrics").expect("the vault's metrics")
    }

    /// A metric summed over its label sets; 0 when the vault has not counted it yet.
    pub fn metric(&self, name: &str) -> f64 {
        http::metric(&self.metrics(), name).unwrap_or(0.0)
    }

    /// The vault's requests to its object store per operation (put, get, list, ...).
    pub fn object_requests(&self) -> BTreeMap<String, u64> {
        self.metrics()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("orca_vault_object_requests_total{op=\"")?;
                let (op, n) = rest.split_once("\"} ")?;
                Some((op.to_string(), n.parse().ok()?))
            })
            .collect()
    }

    /// Requests answered per route (`METHOD /route/template`), from the latency histogram.
    pub fn requests(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for l in self.metrics().lines() {
            let Some(rest) = l.strip_prefix("orca_vault_request_duration_seconds_count{") else {
                continue;
            };
            let (labels, value) = rest.rsplit_once("} ").expect("a labelled sample");
            let get = |k: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                    .map(|v| v.trim_end_matches('"').to_string())
                    .unwrap_or_default()
            };
            *out.entry(format!("{} {}", get("method"), get("route")))
                .or_default() += value.parse::<f64>().expect("a number");
        }
        out
    }

    /// The recovery points `token` sees (`GET /api/v1/recovery-points`).
    pub fn recovery_points(&self, token: &str) -> Vec<serde_json::Value> {
        let r = http::request(
            &self.url(),
            "GET",
            "/api/v1/recovery-points",
            Some(token),
            b"",
        )
        .expect("the vault answers");
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
    }

    /// Encoded bytes in the repository's packs (`orca repo info`).
    pub fn pack_bytes(&self) -> u64 {
        self.orca.pack_bytes(&self.data)
    }
}
