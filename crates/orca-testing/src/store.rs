//! The backup-store appliance as its own process (`orca store serve`), its admin commands,
//! and `curl` exactly as the backup-store documentation calls it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::orca::Orca;
use crate::process::{Guard, free_port, run, run_ok, wait_for};

/// A store serving `<root>/store` on 127.0.0.1:`port`; killed (-9) when dropped.
#[derive(Debug)]
pub struct StoreServer {
    orca: Orca,
    /// The store's root: mounts are `<root>/<mount>/`.
    pub root: PathBuf,
    /// Its port; the same across [`StoreServer::kill`] and [`StoreServer::start`].
    pub port: u16,
    /// More `orca store serve` flags, used by the next [`StoreServer::start`].
    pub args: Vec<String>,
    child: Guard,
}

impl StoreServer {
    /// `orca store serve --root <dir>/store` with `args`, started.
    pub fn start_in(orca: &Orca, dir: &Path, args: &[String]) -> StoreServer {
        let mut s = StoreServer {
            orca: orca.clone(),
            root: dir.join("store"),
            port: free_port(),
            args: args.to_vec(),
            child: Guard::default(),
        };
        s.start();
        s
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The contract's base URL of `mount`.
    pub fn api(&self, mount: &str) -> String {
        format!("{}/druva-phoenix/v1/mounts/{mount}", self.url())
    }

    /// Starts the process (again) with [`StoreServer::args`]; waits until it answers.
    pub fn start(&mut self) {
        let mut args: Vec<&OsStr> = vec!["store".as_ref(), "serve".as_ref(), "--root".as_ref()];
        args.push(self.root.as_os_str());
        args.extend(self.args.iter().map(OsStr::new));
        // Not an admin route: it answers whether or not the store has an admin token.
        self.child = self.orca.serve(&args, self.port, "/orca/v1/openapi.json");
    }

    /// kill -9.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// `orca store <args> --json --store <url>`, which must succeed; its JSON.
    pub fn admin(&self, args: &[&str]) -> Value {
        let out = run_ok(self.orca.cmd().args(["store"]).args(args).args([
            "--json",
            "--store",
            &self.url(),
        ]));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// The recovery points of `mount`, oldest first.
    pub fn points(&self, mount: &str) -> Vec<Value> {
        match self.admin(&["points", "--mount", mount]) {
            Value::Array(points) => points,
            other => panic!("not a list of points: {other}"),
        }
    }

    /// How many points of `mount` wait for upload.
    pub fn pending(&self, mount: &str) -> usize {
        self.points(mount)
            .iter()
            .filter(|p| p["status"] == "pending")
            .count()
    }

    /// Waits (at most `secs` seconds) until no point of `mount` waits for upload.
    pub fn drained(&self, mount: &str, secs: u64) {
        wait_for("the uploads", secs, || self.pending(mount) == 0);
    }
}

/// `curl -s <args>` as the documentation writes it; the JSON envelope it prints.
pub fn curl(args: &[&str]) -> Value {
    let out = run(Command::new("curl").arg("-s").args(args));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "curl {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The envelope's `error_code`.
pub fn code(v: &Value) -> u64 {
    v["error_code"]
        .as_u64()
        .unwrap_or_else(|| panic!("no error_code in {v}"))
}

/// A recovery point's `snap_name`.
pub fn snap(point: &Value) -> String {
    point["snap_name"]
        .as_str()
        .unwrap_or_else(|| panic!("no snap_name in {point}"))
        .to_string()
}
