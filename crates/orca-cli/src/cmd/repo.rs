//! `orca repo init | info | rebuild-index | gc`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use orca_repo::{ChunkerSpec, Cipher, InitOptions, NewKey, Repository};
use serde_json::json;

use crate::common::{self, RepoArgs, human_bytes, print_json};

#[derive(Subcommand, Debug)]
pub enum RepoCmd {
    /// Create a new, empty repository in a directory.
    ///
    /// The repository key is generated here. It is protected by a passphrase
    /// (ORCA_PASSWORD, or asked on the terminal) unless --key-file is given,
    /// in which case it is written to that file (mode 0600) and nothing in the
    /// repository can unlock it: keep the key file safe, without it the
    /// backups cannot be read.
    Init(InitArgs),
    /// Attach a new local directory to a repository that already lives in an
    /// S3 bucket (a second vault server, or a host whose directory was lost):
    /// writes its objects.json and rebuilds the local index from the bucket.
    Attach(AttachArgs),
    /// Show the repository's parameters and what it holds.
    Info(InfoArgs),
    /// Rebuild the local index from the stored packs and manifests (after the
    /// index file was lost or damaged). Needs no key.
    RebuildIndex(InfoArgs),
    /// Reclaim the space of deleted pieces (garbage collection). Needs no key
    /// and is safe while backups run: chunks they sent or found stored are
    /// kept. Interrupted, it resumes where it stopped when run again.
    Gc(GcArgs),
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Repository directory, as created by `orca repo init`.
    #[arg(long, env = "ORCA_REPO", value_name = "DIR")]
    repo: PathBuf,
    #[command(flatten)]
    flags: crate::cmd::gc::GcFlags,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory for the repository (created if missing).
    #[arg(long, env = "ORCA_REPO", value_name = "DIR")]
    repo: PathBuf,
    /// Write the new key to this file instead of protecting it with a passphrase.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Chunk cipher: aes-256-gcm (fastest with AES instructions) or chacha20-poly1305.
    #[arg(long, default_value = "aes-256-gcm")]
    cipher: Cipher,
    /// zstd level for chunks (1 fastest .. 19; negative values are faster still).
    #[arg(long, default_value_t = orca_repo::DEFAULT_ZSTD_LEVEL, allow_negative_numbers = true)]
    compression_level: i32,
    /// Default fixed chunk size in KiB (a multiple of the Oracle block size).
    #[arg(long, default_value_t = 1024, value_name = "KIB")]
    chunk_size_kib: u32,
    /// Target size of pack objects in MiB.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pack_size_mib: u32,
    #[command(flatten)]
    objects: ObjectArgs,
    /// Create the bucket --objects names when it does not exist yet (and delete it again if
    /// init then fails). Without it, a missing bucket is an error.
    #[arg(long, requires = "objects")]
    create_bucket: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Where the repository's objects go when not in its directory.
#[derive(Args, Debug, Clone)]
pub struct ObjectArgs {
    /// Keep the objects (config, keys, packs, manifests) in this S3 bucket,
    /// s3://BUCKET or s3://BUCKET/PREFIX; the directory then holds the local
    /// index and an objects.json naming the bucket. Credentials come from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, --s3-credentials-file, a web
    /// identity or the instance metadata service, never from objects.json.
    #[arg(long, value_name = "S3_URL")]
    objects: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. http://10.0.0.5:9000 (AWS when absent).
    #[arg(long, value_name = "URL", requires = "objects")]
    s3_endpoint: Option<String>,
    /// Bucket region (AWS_REGION wins when set).
    #[arg(long, value_name = "REGION", requires = "objects")]
    s3_region: Option<String>,
    /// Address the bucket as BUCKET.host (AWS) instead of host/BUCKET (most S3-compatible servers).
    #[arg(long, requires = "objects")]
    s3_virtual_hosted: bool,
    /// JSON file {"access_key_id": .., "secret_access_key": ..} to read the credentials from.
    #[arg(long, value_name = "FILE", requires = "objects")]
    s3_credentials_file: Option<PathBuf>,
    /// Keep the index and catalog in this PostgreSQL database (13+) instead
    /// of the directory's SQLite file, so several vault servers on the same
    /// bucket share it: postgresql://USER@HOST:PORT/DATABASE, one database
    /// (or schema, through ?options=-csearch_path=NAME) per repository. The
    /// password comes from --index-password-file or PGPASSWORD.
    #[arg(long, value_name = "URL", requires = "objects")]
    index_url: Option<String>,
    /// File whose first line is the PostgreSQL password (mode 0600).
    #[arg(long, value_name = "FILE", requires = "index_url")]
    index_password_file: Option<PathBuf>,
    /// Reach PostgreSQL over TLS, checking its certificate against this CA
    /// (PEM). `?sslmode=require` in the URL does the same with the system's
    /// CA bundle; without either the connection is plain TCP.
    #[arg(long, value_name = "FILE", requires = "index_url")]
    index_ca_file: Option<PathBuf>,
}

impl ObjectArgs {
    fn remote(&self) -> Option<orca_repo::RemoteObjects> {
        self.objects.as_ref().map(|url| orca_repo::RemoteObjects {
            url: url.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            virtual_hosted: self.s3_virtual_hosted,
            credentials_file: self.s3_credentials_file.clone(),
            credentials: None,
            index: self.index_url.clone().map(|url| orca_repo::PgConfig {
                url,
                password_file: self.index_password_file.clone(),
                ca_file: self.index_ca_file.clone(),
            }),
        })
    }
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Local directory to attach (created if missing; must not hold a repository).
    #[arg(long, env = "ORCA_REPO", value_name = "DIR")]
    repo: PathBuf,
    #[command(flatten)]
    objects: ObjectArgs,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: RepoCmd) -> Result<()> {
    match cmd {
        RepoCmd::Init(a) => init(a).await,
        RepoCmd::Attach(a) => attach(a).await,
        RepoCmd::Info(a) => info(a).await,
        RepoCmd::RebuildIndex(a) => rebuild(a).await,
        RepoCmd::Gc(a) => {
            let store = orca_repo::Store::open_local(&a.repo)
                .await
                .with_context(|| format!("cannot open repository {}", a.repo.display()))?;
            crate::cmd::gc::collect(&store, &a.flags).await.map(|_| ())
        }
    }
}

async fn init(a: InitArgs) -> Result<()> {
    let opts = InitOptions {
        cipher: a.cipher,
        compression_level: a.compression_level,
        chunker: ChunkerSpec::Fixed {
            size: a
                .chunk_size_kib
                .checked_mul(1024)
                .context("chunk size too large")?,
        },
        pack_size: a
            .pack_size_mib
            .checked_mul(1 << 20)
            .context("pack size too large")?,
        ..Default::default()
    };
    let key = match &a.key_file {
        Some(f) => {
            if f.exists() {
                bail!(
                    "key file {} already exists; refusing to overwrite a key",
                    f.display()
                );
            }
            NewKey::KeyFile(f.clone())
        }
        None => NewKey::Passphrase(common::passphrase(true)?),
    };
    let remote = a.objects.remote();
    let mut made_bucket = false;
    if let Some(r) = &remote {
        if a.repo.join(orca_repo::REMOTE_FILE).exists() {
            bail!(
                "{} already names a bucket in {}; pick another directory",
                a.repo.display(),
                orca_repo::REMOTE_FILE
            );
        }
        if a.create_bucket {
            made_bucket = r.create_bucket().await?;
            if made_bucket {
                eprintln!("created the bucket of {}", r.url);
            }
        } else if !r.bucket_exists().await? {
            bail!(
                "the bucket of {} does not exist: create it (e.g. `aws s3 mb s3://BUCKET`) or add \
                 --create-bucket",
                r.url
            );
        }
        r.write(&a.repo)?;
    }
    let created = Repository::init_local(&a.repo, &opts, &key).await;
    if let (Err(_), Some(r)) = (&created, &remote) {
        // Leave the directory as it was: an objects.json naming a bucket that
        // holds someone else's repository would attach this host to it.
        let _ = std::fs::remove_file(a.repo.join(orca_repo::REMOTE_FILE));
        if made_bucket && let Err(e) = r.delete_bucket().await {
            eprintln!("warning: the bucket this init created stays: {e}");
        }
    }
    let (repo, _store) = created.with_context(|| match &remote {
        Some(r) => format!(
            "cannot create a repository in {} (to use one already there, run `orca repo attach`)",
            r.url
        ),
        None => format!("cannot create a repository in {}", a.repo.display()),
    })?;
    let c = repo.config();
    // Where the index is matters as much as where the objects are: a local SQLite file is
    // rebuilt on attach, a shared PostgreSQL one is what every other server will read.
    let index = orca_repo::Store::index_of(&a.repo)?.to_string();
    if a.json {
        print_json(&json!({
            "repository": a.repo,
            "index": index,
            "id": c.id,
            "cipher": c.cipher,
            "compression_level": c.compression_level,
            "chunker": c.chunker,
            "pack_size": c.pack_size,
            "key_storage": c.key_storage,
            "key_file": a.key_file,
            "objects": remote.as_ref().map(|r| &r.url),
        }))?;
    } else {
        println!("created repository {} at {}", c.id, a.repo.display());
        if let Some(r) = &remote {
            println!("  objects in {}", r.url);
        }
        println!("  index in {index}");
        println!(
            "  cipher {}, zstd level {}, chunks {}, packs of {}",
            c.cipher,
            c.compression_level,
            c.chunker,
            human_bytes(c.pack_size as u64)
        );
        match &a.key_file {
            Some(f) => println!(
                "  key written to {} — keep it safe: without it the backups cannot be read",
                f.display()
            ),
            None => println!(
                "  key protected by your passphrase — without it the backups cannot be read"
            ),
        }
    }
    Ok(())
}

async fn attach(a: AttachArgs) -> Result<()> {
    let Some(remote) = a.objects.remote() else {
        bail!("give the bucket to attach to with --objects s3://BUCKET/PREFIX");
    };
    for f in [orca_repo::REMOTE_FILE, orca_repo::CONFIG_KEY] {
        if a.repo.join(f).exists() {
            bail!(
                "{} already holds a repository ({f}); attach a new directory",
                a.repo.display()
            );
        }
    }
    remote.write(&a.repo)?;
    let store = match orca_repo::Store::open_local(&a.repo).await {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(a.repo.join(orca_repo::REMOTE_FILE));
            return Err(e).with_context(|| format!("cannot open the repository in {}", remote.url));
        }
    };
    // A shared index is already whole (opening it filled it if it was new);
    // rebuilding it would make the pieces vanish for every other server
    // until the rebuild ended.
    let (pieces, chunks) = if remote.index.is_some() {
        let s = store.stats().await?;
        (s.pieces, s.chunks)
    } else {
        let r = store.rebuild_index(None).await?;
        (r.pieces, r.chunks)
    };
    println!(
        "attached {} to repository {} in {}: {pieces} pieces, {chunks} chunks indexed",
        a.repo.display(),
        store.config().id,
        remote.url,
    );
    Ok(())
}

async fn info(a: InfoArgs) -> Result<()> {
    let store = a.repo.open_store().await?;
    let c = store.config().clone();
    let s = store.stats().await?;
    let remote = orca_repo::RemoteObjects::read(&a.repo.repo)?;
    let objects = remote.as_ref().map(|r| r.url.clone());
    let index = orca_repo::Store::index_of(&a.repo.repo)?.to_string();
    if a.json {
        print_json(&json!({
            "repository": a.repo.repo, "objects": objects, "index": index, "config": c, "stats": s
        }))?;
    } else {
        println!("repository {} at {}", c.id, a.repo.repo.display());
        if let Some(url) = &objects {
            println!("  objects in    {url}");
        }
        println!("  index         {index}");
        println!("  created       {}", common::format_time(c.created));
        println!(
            "  cipher        {}, zstd level {}",
            c.cipher, c.compression_level
        );
        println!(
            "  chunks        {} by default, packs of {}",
            c.chunker,
            human_bytes(c.pack_size as u64)
        );
        println!("  key           {:?}", c.key_storage);
        println!(
            "  pieces        {} holding {}",
            s.pieces,
            human_bytes(s.piece_bytes)
        );
        println!(
            "  chunks stored {} ({} plain, {} encoded)",
            s.chunks,
            human_bytes(s.raw_bytes),
            human_bytes(s.chunk_bytes)
        );
        println!(
            "  packs         {} ({})",
            s.packs,
            human_bytes(s.pack_bytes)
        );
        if s.pack_bytes > 0 {
            println!(
                "  reduction     {:.1}x (piece bytes / stored bytes)",
                s.piece_bytes as f64 / s.pack_bytes as f64
            );
        }
    }
    Ok(())
}

async fn rebuild(a: InfoArgs) -> Result<()> {
    let store = a.repo.open_store().await?;
    let bar = common::count_bar(0, "reading packs");
    let progress = |p: &orca_repo::Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    };
    let report = store.rebuild_index(Some(&progress)).await?;
    bar.finish_and_clear();
    if a.json {
        print_json(&report)?;
    } else {
        println!(
            "index rebuilt: {} packs, {} chunks, {} pieces",
            report.packs, report.chunks, report.pieces
        );
        if report.dropped_deltas > 0 {
            println!(
                "  {} swept delta chunk(s) left out: their bases were collected",
                report.dropped_deltas
            );
        }
        for (obj, why) in &report.damaged {
            println!("  damaged: {obj}: {why}");
        }
    }
    if !report.damaged.is_empty() {
        bail!(
            "{} object(s) could not be read; run `orca verify` for details",
            report.damaged.len()
        );
    }
    Ok(())
}
