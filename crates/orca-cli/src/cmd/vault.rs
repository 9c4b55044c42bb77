//! `orca vault serve | token create | token list | token revoke | group list | group create |
//! group add | group show | openapi`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use orca_repo::Store;
use orca_vault::server::{GroupInfo, Groups, Scope, TlsFiles, Tokens};

use crate::common::{LimitArgs, format_time, print_json};

#[derive(Subcommand, Debug)]
pub enum VaultCmd {
    /// Serve a repository over HTTP/1.1 and HTTP/2 to SBT channels and other clients.
    ///
    /// DIR is a repository made by `orca repo init --repo DIR` (the vault never needs its
    /// key: clients encrypt). Clients set ORCA_VAULT=http(s)://HOST:PORT and ORCA_TOKEN;
    /// over https they trust the CAs in ORCA_CA_FILE, or the system's.
    Serve(ServeArgs),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage dedup groups: the databases that share chunks.
    ///
    /// Chunks are shared (deduplicated) only between databases of one group, and those
    /// databases trust each other: a token of one can make the others' backups
    /// unrestorable (by storing wrong content under ids they will use). Each database is in
    /// a group of its own, named after it, unless put in another here; databases whose
    /// pieces were in the vault before groups existed are in the legacy group
    /// (legacy-shared), as trusting as every database was then (docs/design.md, "Tenants").
    #[command(subcommand)]
    Group(GroupCmd),
    /// Print the vault's OpenAPI document (what it serves at /api/v1/openapi.json).
    Openapi,
    /// Reclaim the space of deleted pieces, while the vault serves and backups run: chunks
    /// a backup in flight probed, uploaded or relies on through its fingerprint cache are
    /// kept. Interrupted, it resumes where it stopped when run again.
    Gc(GcArgs),
    /// Check stored objects against bit rot, all of them or a sample of those checked
    /// longest ago. Without the key the vault checks what it can: every pack's checksums,
    /// the index against the packs, and that every chunk a manifest names is stored. That a
    /// chunk's content matches its id (what another database of the same dedup group could
    /// falsify) is checked only with the key: `orca verify --repo DIR`.
    Verify(VerifyArgs),
    /// List a database's committed pieces that no recovery point and no RMAN catalog
    /// names (left by failures the agent could not clean up), for the DBA to delete
    /// (`orca rm`) or keep. Runs where the agent does: it asks the vault with the
    /// database's token and RMAN's catalog through sqlplus, as the agent's configuration says.
    Orphans(OrphansArgs),
}

#[derive(Args, Debug)]
pub struct OrphansArgs {
    /// The agent's TOML configuration (see docs/agent.example.toml).
    #[arg(long, value_name = "FILE", env = "ORCA_AGENT_CONFIG")]
    config: PathBuf,
    /// The database (DB_NAME) as the configuration names it.
    #[arg(long)]
    db: String,
    /// Print the pieces as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    data: DataArg,
    #[command(flatten)]
    flags: crate::cmd::gc::GcFlags,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    data: DataArg,
    /// Read only this percentage of the packs: never checked first, then checked longest
    /// ago (when each was checked is remembered).
    #[arg(long, value_name = "PERCENT")]
    sample: Option<f64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArg,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: String,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Collect garbage on this schedule while serving (e.g. 24h); off when not given.
    #[arg(long, value_name = "INTERVAL", value_parser = humantime::parse_duration)]
    gc_every: Option<std::time::Duration>,
    /// Grace period of the scheduled collections.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    gc_grace: std::time::Duration,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Args, Debug)]
pub struct DataArg {
    /// The repository directory the vault serves.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
}

impl DataArg {
    fn tokens(&self) -> Result<Tokens> {
        let dir = &self.data;
        if !dir.join(orca_repo::CONFIG_KEY).exists() && !dir.join(orca_repo::REMOTE_FILE).exists() {
            bail!(
                "{} is not a repository: create it with `orca repo init --repo {}`",
                dir.display(),
                dir.display()
            );
        }
        Tokens::open(dir).with_context(|| format!("cannot open the tokens of {}", dir.display()))
    }
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token for one database (printed once; only its hash is stored).
    Create(CreateArgs),
    /// List the tokens: id, database, scope, creation time (never the secret).
    List(ListArgs),
    /// Revoke a token: requests with it are refused from now on.
    Revoke(RevokeArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    data: DataArg,
    /// Database (DB_NAME) whose pieces, recovery points and jobs the token may touch.
    #[arg(long)]
    db: String,
    /// backup (write, read and delete its database's data), restore (read only) or
    /// admin (everything, every database).
    #[arg(long, default_value = "backup")]
    scope: Scope,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    data: DataArg,
    /// Print the tokens as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    #[command(flatten)]
    data: DataArg,
    /// The token's id as `orca vault token list` shows it (a unique prefix will do).
    id: String,
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// List the groups and their databases.
    List(ListArgs),
    /// Create an empty group with a new random secret.
    Create(GroupArgs),
    /// Put databases in a group, so that they share chunks (and trust each other). Refused,
    /// changing nothing, for a database with committed pieces in another group: their chunk
    /// ids are bound to it.
    Add(GroupAddArgs),
    /// Show a group and its databases.
    Show(GroupShowArgs),
}

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    data: DataArg,
    /// The group's name (DB_NAME rules: letters, digits, _ $ #, at most 30).
    name: String,
}

#[derive(Args, Debug)]
pub struct GroupShowArgs {
    #[command(flatten)]
    group: GroupArgs,
    /// Print the group as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct GroupAddArgs {
    #[command(flatten)]
    group: GroupArgs,
    /// The databases (DB_NAME) to put in it.
    #[arg(required = true, value_name = "DB")]
    dbs: Vec<String>,
}

impl DataArg {
    fn groups(&self) -> Result<Groups> {
        self.tokens()?;
        Groups::open(&self.data)
            .with_context(|| format!("cannot open the groups of {}", self.data.display()))
    }
}

fn print_group(g: &GroupInfo) {
    let kind = if g.legacy {
        "legacy: ids keyed by the repository key alone"
    } else {
        "own secret"
    };
    println!(
        "{:<16}  {:<44}  {}",
        g.name,
        kind,
        if g.members.is_empty() {
            "-".to_string()
        } else {
            g.members.join(" ")
        }
    );
}

async fn group(c: GroupCmd) -> Result<()> {
    // A shared catalog's PostgreSQL client blocks: keep it off the async threads.
    let blocking = |f: Box<dyn FnOnce() -> Result<()> + Send>| async move {
        tokio::task::spawn_blocking(f)
            .await
            .context("the group command's worker failed")?
    };
    match c {
        GroupCmd::List(a) => {
            blocking(Box::new(move || {
                let groups = a.data.groups()?.list().context("cannot list the groups")?;
                if a.json {
                    return print_json(&groups);
                }
                println!("{:<16}  {:<44}  DATABASES", "GROUP", "CHUNK IDS");
                groups.iter().for_each(print_group);
                Ok(())
            }))
            .await
        }
        GroupCmd::Create(a) => {
            blocking(Box::new(move || {
                let g = a
                    .data
                    .groups()?
                    .create(&a.name)
                    .context("cannot create the group")?;
                println!(
                    "created group {}: put databases in it with `orca vault group add {} DB...`",
                    g.name, g.name
                );
                Ok(())
            }))
            .await
        }
        GroupCmd::Show(a) => {
            blocking(Box::new(move || {
                let g = a.group.data.groups()?.show(&a.group.name)?;
                if a.json {
                    return print_json(&g);
                }
                println!("{:<16}  {:<44}  DATABASES", "GROUP", "CHUNK IDS");
                print_group(&g);
                Ok(())
            }))
            .await
        }
        GroupCmd::Add(a) => {
            let store = open_store(&a.group.data).await?;
            let mut with_pieces = std::collections::HashSet::new();
            for db in &a.dbs {
                let filter = orca_repo::PieceFilter {
                    database: Some(db.clone()),
                    limit: Some(1),
                    ..Default::default()
                };
                if !orca_repo::Backend::list(&store, &filter).await?.is_empty() {
                    with_pieces.insert(db.clone());
                }
            }
            blocking(Box::new(move || {
                let g = a
                    .group
                    .data
                    .groups()?
                    .add(&a.group.name, &a.dbs, &|db| Ok(with_pieces.contains(db)))
                    .with_context(|| format!("cannot add to group {}", a.group.name))?;
                println!(
                    "group {} now holds {}: they share chunks and trust each other",
                    g.name,
                    g.members.join(" ")
                );
                Ok(())
            }))
            .await
        }
    }
}

fn tls_files(a: &ServeArgs) -> Option<TlsFiles> {
    Some(TlsFiles {
        cert: a.tls_cert.clone()?,
        key: a.tls_key.clone()?,
    })
}

async fn serve(a: ServeArgs) -> Result<()> {
    let limits = a.limits.limits()?;
    let tls = tls_files(&a);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let dir: &Path = &a.data.data;
    eprintln!(
        "vault: serving {} on {scheme}://{}",
        dir.display(),
        a.listen
    );
    if let Some(every) = a.gc_every {
        let opts = orca_repo::GcOptions {
            grace: a.gc_grace,
            ..Default::default()
        };
        let store = Store::open_local(dir)
            .await
            .with_context(|| format!("cannot open {}", dir.display()))?;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match store.gc(&opts, None).await {
                    Ok(r) => tracing::info!(
                        swept = r.swept_chunks,
                        reclaimed = r.reclaimed_bytes(),
                        "scheduled garbage collection done"
                    ),
                    Err(e) => tracing::warn!(error = %e, "scheduled garbage collection failed"),
                }
            }
        });
    }
    orca_vault::server::serve(dir, &a.listen, tls.as_ref(), limits)
        .await
        .with_context(|| format!("cannot serve {}", dir.display()))
}

async fn open_store(d: &DataArg) -> Result<Store> {
    Store::open_local(&d.data)
        .await
        .with_context(|| format!("cannot open the vault's repository {}", d.data.display()))
}

async fn verify(a: VerifyArgs) -> Result<()> {
    let store = open_store(&a.data).await?;
    let bar = crate::common::byte_bar(store.stats().await?.pack_bytes, "verifying");
    let progress = |p: &orca_repo::Progress| bar.set_position(p.bytes);
    let report = store
        .verify_sample(None, a.sample.unwrap_or(100.0), Some(&progress))
        .await?;
    bar.finish_and_clear();
    if a.json {
        print_json(&report)?;
    } else {
        println!(
            "checked {} chunks in {} packs ({}), checksums only ({}% sample, {} never checked before)",
            report.chunks,
            report.packs,
            crate::common::human_bytes(report.bytes),
            report.sample_percent,
            report.never_checked
        );
        println!(
            "  checked without the key: pack checksums, the index against the packs, {} piece(s)' \
             chunks stored; chunk contents against their ids need the key: `orca verify --repo {}`",
            report.pieces,
            a.data.data.display()
        );
        for p in &report.problems {
            let chunk = p
                .chunk
                .map(|c| format!(" chunk {}", c.short()))
                .unwrap_or_default();
            println!("PROBLEM in {}{chunk}: {}", p.object, p.reason);
            for (piece, pos) in &p.pieces {
                println!("    affects piece {piece:?}, chunk #{pos}");
            }
        }
    }
    if !report.is_clean() {
        bail!("verification found {} problem(s)", report.problems.len());
    }
    Ok(())
}

fn token(c: TokenCmd) -> Result<()> {
    match c {
        TokenCmd::Create(a) => {
            let token = a
                .data
                .tokens()?
                .create(&a.db, a.scope)
                .context("cannot create the token")?;
            println!("{token}");
            Ok(())
        }
        TokenCmd::List(a) => {
            let tokens = a.data.tokens()?.list().context("cannot list the tokens")?;
            if a.json {
                return print_json(&tokens);
            }
            println!("{:<16}  {:<12}  {:<7}  CREATED", "ID", "DATABASE", "SCOPE");
            for t in tokens {
                println!(
                    "{:<16}  {:<12}  {:<7}  {}",
                    t.id,
                    t.db,
                    t.scope,
                    format_time(t.created)
                );
            }
            Ok(())
        }
        TokenCmd::Revoke(a) => {
            let t = a
                .data
                .tokens()?
                .revoke(&a.id)
                .context("cannot revoke the token")?;
            println!("revoked {} ({} token of {})", t.id, t.scope, t.db);
            Ok(())
        }
    }
}

async fn orphans(a: OrphansArgs) -> Result<()> {
    let cfg = orca_agent::Config::load(&a.config)?;
    let db = cfg.database(&a.db).with_context(|| {
        format!(
            "{} names no database {:?}: add a [[database]] with name = {:?}",
            a.config.display(),
            a.db,
            a.db
        )
    })?;
    let vault = orca_agent::daemon::vault_for(&cfg, db)?;
    let pieces = orca_agent::job::Runner::new(&cfg, db, vault)
        .orphans()
        .await
        .context("listing the orphaned pieces")?;
    if a.json {
        return print_json(&pieces);
    }
    if pieces.is_empty() {
        println!("no orphaned pieces of {}", a.db);
        return Ok(());
    }
    println!("{:<40} {:>14} {:<20}", "PIECE", "BYTES", "CREATED");
    for p in &pieces {
        println!(
            "{:<40} {:>14} {:<20}",
            p.name,
            p.size,
            format_time(p.created)
        );
    }
    println!(
        "{} orphaned piece(s): no recovery point and no RMAN catalog names them",
        pieces.len()
    );
    Ok(())
}

pub async fn run(c: VaultCmd) -> Result<()> {
    match c {
        VaultCmd::Serve(a) => serve(a).await,
        // A shared catalog's PostgreSQL client blocks: keep it off the async threads.
        VaultCmd::Token(t) => tokio::task::spawn_blocking(move || token(t))
            .await
            .context("the token command's worker failed")?,
        VaultCmd::Gc(a) => {
            let store = open_store(&a.data).await?;
            crate::cmd::gc::collect(&store, &a.flags).await.map(|_| ())
        }
        VaultCmd::Verify(a) => verify(a).await,
        VaultCmd::Group(g) => group(g).await,
        VaultCmd::Orphans(a) => orphans(a).await,
        VaultCmd::Openapi => {
            let doc = orca_vault::server::openapi();
            println!("{}", doc.to_pretty_json()?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        c: VaultCmd,
    }

    #[test]
    fn tls_needs_both_files_and_scopes_are_checked() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["orca"], args].concat());
        assert!(parse(&["serve", "--data", "d", "--tls-cert", "c"]).is_err());
        let ok = parse(&["serve", "--data", "d", "--tls-cert", "c", "--tls-key", "k"]).unwrap();
        let VaultCmd::Serve(a) = ok.c else {
            panic!("not serve")
        };
        assert_eq!(tls_files(&a).unwrap().key, PathBuf::from("k"));
        let e = parse(&[
            "token", "create", "--data", "d", "--db", "X", "--scope", "root",
        ]);
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("use backup, restore or admin")
        );
        assert!(parse(&["token", "revoke", "--data", "d", "ab12"]).is_ok());
    }

    #[test]
    fn the_limit_flags_default_to_the_documented_limits() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["orca"], args].concat());
        let VaultCmd::Serve(a) = parse(&["serve", "--data", "d"]).unwrap().c else {
            panic!("not serve")
        };
        assert_eq!(
            a.limits.limits().unwrap(),
            orca_vault::listen::Limits::default()
        );
        let VaultCmd::Serve(a) = parse(&["serve", "--data", "d", "--max-connections", "0"])
            .unwrap()
            .c
        else {
            panic!("not serve")
        };
        assert!(a.limits.limits().is_err());
    }
}
