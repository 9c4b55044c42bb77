//! `orca vault serve | token create`.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use orca_vault::server::{Scope, Tokens};

#[derive(Subcommand, Debug)]
pub enum VaultCmd {
    /// Serve a repository over HTTP to SBT channels and other clients.
    ///
    /// DIR is a repository made by `orca repo init --repo DIR` (the vault never needs its
    /// key: clients encrypt). Clients set ORCA_VAULT=http://HOST:PORT and ORCA_TOKEN.
    Serve(ServeArgs),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The repository directory the vault serves.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: String,
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token for one database (printed once; only its hash is stored).
    Create(TokenArgs),
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The repository directory the vault serves.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Database (DB_NAME) whose pieces the token may touch.
    #[arg(long)]
    db: String,
    /// backup (write, read and delete its database's pieces), restore (read only) or
    /// admin (everything, every database).
    #[arg(long, default_value = "backup")]
    scope: String,
}

pub async fn run(c: VaultCmd) -> Result<()> {
    match c {
        VaultCmd::Serve(a) => {
            eprintln!("vault serving {} on http://{}", a.data.display(), a.listen);
            orca_vault::server::serve(&a.data, &a.listen)
                .await
                .map_err(|e| anyhow!(e))
        }
        VaultCmd::Token(TokenCmd::Create(a)) => {
            let Some(scope) = Scope::parse(&a.scope) else {
                bail!("unknown scope {:?}: use backup, restore or admin", a.scope);
            };
            if !a.data.join("config").exists() {
                bail!(
                    "{} is not a repository: create it with `orca repo init --repo {}`",
                    a.data.display(),
                    a.data.display()
                );
            }
            let token = Tokens::open(&a.data)
                .and_then(|t| t.create(&a.db, scope))
                .map_err(|e| anyhow!(e))?;
            println!("{token}");
            Ok(())
        }
    }
}
