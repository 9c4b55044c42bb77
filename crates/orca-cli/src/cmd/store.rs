//! `orca store serve | mount | points | restore | uploads | decommission | register | openapi`:
//! the backup-store appliance and its admin commands (which talk to a running store).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use orca_store::client::Method;
use orca_store::client::StoreClient;
use orca_store::{Appliance, StoreConfig};
use serde_json::{Value, json};

use crate::common::{LimitArgs, format_time, human_bytes, print_json};

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Serve the backup-store REST API (and its admin surface) and upload recovery points to
    /// the vault in the background.
    ///
    /// With --config F everything comes from the TOML file (see the orca-store crate docs);
    /// the flags override it. The vault's repository key is ORCA_PASSWORD, or `key_file` in
    /// the file / --key-file.
    Serve(ServeArgs),
    /// Create, list and delete backup mounts.
    #[command(subcommand)]
    Mount(MountCmd),
    /// List recovery points, per mount and per database.
    Points(PointsArgs),
    /// Download a recovery point into <root>/<mount>/restores/<jobid>/, show a restore,
    /// remove one.
    #[command(subcommand)]
    Restore(RestoreCmd),
    /// Show what the upload queue is doing.
    Uploads(StoreArg),
    /// Stop taking backups; decommissioned once every pending recovery point is uploaded.
    Decommission(StoreArg),
    /// Take backups again after a decommission.
    Register(StoreArg),
    /// Print the store's OpenAPI document.
    Openapi(StoreArg),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data root: mounts are <root>/<mount>/.
    #[arg(long, value_name = "DIR", required_unless_present = "config")]
    root: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:9090).
    #[arg(long)]
    listen: Option<String>,
    /// The vault recovery points are uploaded to; needs --token-file (or --token).
    #[arg(long, value_name = "URL")]
    vault: Option<String>,
    /// File holding the vault token (`orca vault token create`), readable by the store's
    /// user only.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The vault token itself (ORCA_TOKEN also works). On the command line it is visible to
    /// every local user (ps, /proc): prefer --token-file.
    #[arg(long, env = "ORCA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Key file of the vault's repository, instead of ORCA_PASSWORD.
    #[arg(long, env = "ORCA_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Recovery points a mount may hold waiting for upload.
    #[arg(long)]
    max_pending: Option<usize>,
    /// Upload bandwidth cap in MB/s.
    #[arg(long)]
    upload_limit_mb_per_s: Option<f64>,
    /// File holding the admin token the admin routes (and `orca store` admin commands)
    /// need; required unless listening on loopback.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// How PUT freezes a recovery point: reflink (copy-on-write clones: XFS, btrfs), ingest
    /// (read changed files into the local chunk store) or auto (reflink where it works).
    #[arg(long, value_name = "MODE")]
    snapshot: Option<orca_store::SnapshotMode>,
    /// The admin token itself, instead of a file.
    #[arg(long, env = "ORCA_STORE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Args, Debug, Clone)]
pub struct StoreArg {
    /// The store's address.
    #[arg(long, env = "ORCA_STORE", default_value = "http://127.0.0.1:9090")]
    store: String,
    /// The store's admin token (its `admin_token_file`), for a store not on loopback.
    #[arg(long, env = "ORCA_STORE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum MountCmd {
    /// Create a mount: <root>/<NAME>/oracle_data (exported) and <root>/<NAME>/restores.
    Create {
        name: String,
        #[command(flatten)]
        store: StoreArg,
    },
    List(StoreArg),
    /// Mark a mount for deletion: it goes once its pending points are in the vault.
    Delete {
        name: String,
        /// Delete at once, dropping the points not yet uploaded.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Set how many recovery points the vault keeps for the mount (independent of RMAN's
    /// retention); all zero keeps only the newest, --clear keeps every point.
    Retention {
        name: String,
        #[arg(long, default_value_t = 0)]
        daily: u32,
        #[arg(long, default_value_t = 0)]
        weekly: u32,
        #[arg(long, default_value_t = 0)]
        monthly: u32,
        #[arg(long, default_value_t = 0)]
        yearly: u32,
        #[arg(long, conflicts_with_all = ["daily", "weekly", "monthly", "yearly"])]
        clear: bool,
        #[command(flatten)]
        store: StoreArg,
    },
}

#[derive(Args, Debug)]
pub struct PointsArgs {
    #[arg(long)]
    mount: Option<String>,
    /// DB_NAME, as the uploaded RMAN log names it.
    #[arg(long)]
    database: Option<String>,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(Subcommand, Debug)]
pub enum RestoreCmd {
    /// Start downloading a recovery point, or what recovers the database to a time; prints
    /// the restore job id, and once it is done (`--wait`) the RMAN commands that bring the
    /// database back from the restore area.
    #[command(group = clap::ArgGroup::new("what").required(true).args(["snap_name", "until_time"]))]
    Start {
        mount: String,
        /// The recovery point (its snap_name, as `orca store points` shows).
        snap_name: Option<String>,
        /// Recover to this time instead (the database's, `YYYY-MM-DD HH:MM:SS`, in the
        /// store's time zone): the image copies of the newest point taken at or before it and
        /// the archived logs of the first point taken after it.
        #[arg(long, conflicts_with = "snap_name")]
        until_time: Option<String>,
        /// Wait until the restore finished.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    Show {
        jobid: u64,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Remove a downloaded restore (what the contract's DELETE does).
    Delete {
        mount: String,
        jobid: u64,
        #[command(flatten)]
        store: StoreArg,
    },
}

pub async fn run(c: StoreCmd) -> Result<()> {
    match c {
        StoreCmd::Serve(a) => serve(a).await,
        StoreCmd::Mount(MountCmd::Create { name, store }) => {
            let r = call(
                &store,
                Method::POST,
                "/admin/mounts",
                Some(json!({ "name": name })),
            )
            .await?;
            show(&store, &r, || {
                println!("created mount {name}");
            })
        }
        StoreCmd::Mount(MountCmd::List(store)) => {
            let r = call(&store, Method::GET, "/admin/mounts", None).await?;
            show(&store, &r, || {
                for m in r.as_array().into_iter().flatten() {
                    let points = m["points"].as_array().map(Vec::len).unwrap_or(0);
                    let pending = m["points"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| p["status"] == "pending")
                        .count();
                    println!(
                        "{}\t{}\t{points} recovery points, {pending} pending",
                        m["name"].as_str().unwrap_or_default(),
                        m["status"].as_str().unwrap_or_default()
                    );
                }
            })
        }
        StoreCmd::Mount(MountCmd::Delete { name, force, store }) => {
            let path = format!("/admin/mounts/{name}?force={force}");
            let r = call(&store, Method::DELETE, &path, None).await?;
            show(&store, &r, || println!("mount {name} marked for deletion"))
        }
        StoreCmd::Mount(MountCmd::Retention {
            name,
            daily,
            weekly,
            monthly,
            yearly,
            clear,
            store,
        }) => {
            let body = if clear {
                Value::Null
            } else {
                json!({ "daily": daily, "weekly": weekly, "monthly": monthly, "yearly": yearly })
            };
            let r = call(
                &store,
                Method::PUT,
                &format!("/admin/mounts/{name}/retention"),
                Some(body),
            )
            .await?;
            show(&store, &r, || {
                println!("retention of {name}: {}", r["retention"])
            })
        }
        StoreCmd::Points(a) => {
            let mut q = Vec::new();
            if let Some(m) = &a.mount {
                q.push(format!("mount={m}"));
            }
            if let Some(d) = &a.database {
                q.push(format!("database={d}"));
            }
            let path = format!("/admin/recovery-points?{}", q.join("&"));
            let r = call(&a.store, Method::GET, &path, None).await?;
            show(&a.store, &r, || {
                for p in r.as_array().into_iter().flatten() {
                    let bytes: u64 = p["files"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f["stamp"]["size"].as_u64())
                        .sum();
                    let log = &p["log"]["summary"];
                    println!(
                        "{}\t{}\t{}\t{}\t{} files, {}\tdatabase {} (DBID {})",
                        p["mount"].as_str().unwrap_or_default(),
                        p["snap_name"].as_str().unwrap_or_default(),
                        format_time(p["created"].as_i64().unwrap_or(0)),
                        p["status"].as_str().unwrap_or_default(),
                        p["files"].as_array().map(Vec::len).unwrap_or(0),
                        human_bytes(bytes),
                        log["database"].as_str().unwrap_or("?"),
                        log["dbid"]
                            .as_u64()
                            .map(|d| d.to_string())
                            .unwrap_or("?".into()),
                    );
                }
            })
        }
        StoreCmd::Restore(RestoreCmd::Start {
            mount,
            snap_name,
            until_time,
            wait,
            store,
        }) => {
            let mut r = match (snap_name, until_time) {
                (_, Some(t)) => {
                    let path = format!("/admin/mounts/{mount}/restore");
                    let body = serde_json::json!({ "until_time": t });
                    call(&store, Method::POST, &path, Some(body)).await?
                }
                (Some(snap), None) => {
                    let path = format!("/admin/mounts/{mount}/recovery-points/{snap}/restore");
                    call(&store, Method::POST, &path, None).await?
                }
                (None, None) => bail!("name a recovery point or give --until-time"),
            };
            let jobid = r["jobid"].as_u64().unwrap_or_default();
            while wait && r["status"] == "running" {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                r = call(
                    &store,
                    Method::GET,
                    &format!("/admin/restores/{jobid}"),
                    None,
                )
                .await?;
            }
            if r["status"] == "failed" {
                bail!(
                    "restore {jobid} failed: {}",
                    r["message"].as_str().unwrap_or_default()
                );
            }
            show(&store, &r, || {
                println!("{jobid}");
                let said = r["message"].as_str().unwrap_or_default();
                if !said.is_empty() {
                    eprintln!("note: {said}");
                }
                if wait {
                    eprintln!(
                        "restored into {}; with the database mounted and that directory \
                         reachable at the same path, run in rman:\n{}",
                        r["path"].as_str().unwrap_or_default(),
                        r["rman"].as_str().unwrap_or_default()
                    );
                }
            })
        }
        StoreCmd::Restore(RestoreCmd::Show { jobid, store }) => {
            let r = call(
                &store,
                Method::GET,
                &format!("/admin/restores/{jobid}"),
                None,
            )
            .await?;
            show(&store, &r, || {
                println!(
                    "restore {jobid} of {} {}: {} into {} {}",
                    r["mount"].as_str().unwrap_or_default(),
                    r["snap_name"].as_str().unwrap_or_default(),
                    r["status"].as_str().unwrap_or_default(),
                    r["path"].as_str().unwrap_or_default(),
                    r["message"].as_str().unwrap_or_default()
                )
            })
        }
        StoreCmd::Restore(RestoreCmd::Delete {
            mount,
            jobid,
            store,
        }) => {
            let r = call(
                &store,
                Method::DELETE,
                &format!("/mounts/{mount}/restores/{jobid}"),
                None,
            )
            .await?;
            show(&store, &r, || println!("restore {jobid} removed"))
        }
        StoreCmd::Uploads(store) => {
            let r = call(&store, Method::GET, "/admin/uploads", None).await?;
            show(&store, &r, || {
                if let Some(c) = r["current"].as_object() {
                    println!(
                        "uploading {} {}: {}/{} files, {} of {}",
                        c["mount"].as_str().unwrap_or_default(),
                        c["snap_name"].as_str().unwrap_or_default(),
                        c["files_done"],
                        c["files_total"],
                        human_bytes(c["bytes_done"].as_u64().unwrap_or(0)),
                        human_bytes(c["bytes_total"].as_u64().unwrap_or(0)),
                    );
                }
                for p in r["pending"].as_array().into_iter().flatten() {
                    println!(
                        "pending {} {}{}",
                        p["mount"].as_str().unwrap_or_default(),
                        p["snap_name"].as_str().unwrap_or_default(),
                        p["last_error"]
                            .as_str()
                            .map(|e| format!(" (last error: {e})"))
                            .unwrap_or_default()
                    );
                }
            })
        }
        StoreCmd::Decommission(store) => {
            let r = call(&store, Method::POST, "/admin/store/decommission", None).await?;
            show(&store, &r, || {
                println!("store {}", r.as_str().unwrap_or_default())
            })
        }
        StoreCmd::Register(store) => {
            let r = call(&store, Method::POST, "/admin/store/register", None).await?;
            show(&store, &r, || {
                println!("store {}", r.as_str().unwrap_or_default())
            })
        }
        StoreCmd::Openapi(store) => {
            let doc = client(&store).raw(Method::GET, "/openapi.json").await?;
            println!("{doc}");
            Ok(())
        }
    }
}

fn client(store: &StoreArg) -> StoreClient {
    StoreClient::new(&store.store).with_admin_token(store.admin_token.clone())
}

async fn call(store: &StoreArg, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
    let client = client(store);
    Ok(client.call(method, path, body.as_ref()).await?)
}

fn show(store: &StoreArg, v: &Value, text: impl FnOnce()) -> Result<()> {
    if store.json {
        print_json(v)
    } else {
        text();
        Ok(())
    }
}

async fn serve(a: ServeArgs) -> Result<()> {
    let mut config = match &a.config {
        Some(f) => StoreConfig::read(f)?,
        None => StoreConfig::with_root(a.root.clone().context("--root or --config is needed")?),
    };
    if let Some(r) = a.root {
        config.root = r;
    }
    if let Some(l) = a.listen {
        config.listen = l;
    }
    if let Some(n) = a.max_pending {
        config.max_pending = n;
    }
    if let Some(l) = a.upload_limit_mb_per_s {
        config.upload_limit_mb_per_s = l;
    }
    if let Some(m) = a.snapshot {
        config.snapshot = m;
    }
    if let Some(f) = a.admin_token_file {
        config.admin_token_file = Some(f);
    }
    if a.admin_token.is_some() {
        config.admin_token = a.admin_token;
    }
    if let Some(url) = a.vault {
        // The file wins over ORCA_TOKEN.
        let (token, token_file) = match (a.token_file, a.token) {
            (Some(f), _) => (None, Some(f)),
            (None, Some(t)) => (Some(t), None),
            (None, None) => bail!("--vault needs the vault's token: give --token-file FILE"),
        };
        config.vault = Some(orca_store::VaultConfig {
            url,
            token,
            token_file,
            key_file: a.key_file.clone(),
        });
    }
    let limits = a.limits.limits()?;
    config.check().map_err(anyhow::Error::msg)?;
    let key = match (&config.vault, &a.key_file) {
        (None, _) => None,
        (Some(_), Some(f)) => Some(orca_repo::KeySource::KeyFile(f.clone())),
        (Some(v), None) if v.key_file.is_some() => None,
        (Some(_), None) => Some(orca_repo::KeySource::Passphrase(crate::common::passphrase(
            false,
        )?)),
    };
    let listen = config.listen.clone();
    let app = Appliance::open(config, key)
        .await
        .context("cannot open the backup store")?;
    eprintln!(
        "backup store {} listening on {listen}",
        app.root().display()
    );
    orca_store::serve(app, &listen, limits).await?;
    Ok(())
}
