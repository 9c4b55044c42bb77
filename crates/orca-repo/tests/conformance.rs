//! One conformance suite for every object backend a repository runs on: in
//! memory, a local directory, and an S3-compatible server (moto, started here:
//! `pip install 'moto[server]'`). Each backend must give the same answers to
//! the same operations, including the create-only write that keeps two
//! concurrent `init`s (or two vault servers) from both succeeding.

mod common;
#[path = "support/pg.rs"]
mod pg;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{PASS, blocks, get, opts, put};
use object_store::ObjectStore;
use orca_repo::PgConfig;
use orca_repo::RemoteObjects;
use orca_repo::Store;
use orca_repo::{GcOptions, IndexLocation, KeySource, NewKey, RepoError, Repository};

/// Where the suite keeps its indexes: the first client's, a second client's
/// (another vault server: its own SQLite file, or the same shared database).
struct Indexes {
    first: IndexLocation,
    second: IndexLocation,
}

impl Indexes {
    fn sqlite(state: &Path) -> Indexes {
        Indexes {
            first: IndexLocation::Sqlite(state.join("index.sqlite")),
            second: IndexLocation::Sqlite(state.join("second.sqlite")),
        }
    }
}

/// What every backend must do, from `init` to garbage collection.
async fn suite(objects: Arc<dyn ObjectStore>, indexes: &Indexes) {
    let (repo, store) = Repository::init(
        objects.clone(),
        "suite".into(),
        &indexes.first,
        &opts(),
        &NewKey::Passphrase(PASS.into()),
    )
    .await
    .unwrap();
    // Create-only: a second init on the same objects must fail, not overwrite.
    let again = Repository::init(
        objects.clone(),
        "suite".into(),
        &indexes.second,
        &opts(),
        &NewKey::Passphrase(PASS.into()),
    )
    .await;
    assert!(
        matches!(again, Err(RepoError::AlreadyInitialised { .. })),
        "{:?}",
        again.err()
    );

    let data = blocks(600, 7);
    let first = put(&repo, "db/df1", data.clone()).await.unwrap();
    assert!(first.manifest.header.meta.stats.as_ref().unwrap().new_bytes > 0);
    let second = put(&repo, "db/df1-again", data.clone()).await.unwrap();
    assert_eq!(
        second
            .manifest
            .header
            .meta
            .stats
            .as_ref()
            .unwrap()
            .new_bytes,
        0,
        "the same data twice stores nothing new"
    );
    let mut changed = data.clone();
    changed[8192 * 300 + 100] ^= 0xff;
    put(&repo, "db/df1-changed", changed.clone()).await.unwrap();
    put(&repo, "db/other", blocks(300, 9)).await.unwrap();

    let out = get(&repo, "db/df1-changed").await.unwrap();
    assert!(out == changed, "restored bytes differ");
    assert_eq!(repo.list(&Default::default()).await.unwrap().len(), 4);

    // Another client opening the same objects (a second vault server) sees it all.
    let other = Arc::new(
        Store::open(objects.clone(), "suite".into(), &indexes.second)
            .await
            .unwrap(),
    );
    let r2 = Repository::open(other.clone(), &KeySource::Passphrase(PASS.into()))
        .await
        .unwrap();
    let out = get(&r2, "db/df1").await.unwrap();
    assert!(out == data, "the second client restores the same bytes");
    // A piece committed through the first client after the second opened: a
    // second SQLite index has never seen the name, so only the create-only
    // write of the manifest object (If-None-Match on S3) keeps it from
    // replacing the piece; a shared index refuses it first.
    let late = blocks(20, 4);
    put(&repo, "db/late", late.clone()).await.unwrap();
    let err = put(&r2, "db/late", blocks(20, 5)).await.unwrap_err();
    assert!(matches!(err, RepoError::PieceExists { .. }), "{err}");
    let out = get(&repo, "db/late").await.unwrap();
    assert!(out == late, "the first commit stands");
    repo.delete("db/late").await.unwrap();

    repo.delete("db/other").await.unwrap();
    // References are timed to the second: what was written this second is kept.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    repo.delete("db/df1-again").await.unwrap();
    let gc = store
        .gc(
            &GcOptions {
                grace: Duration::ZERO,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert!(gc.swept_chunks > 0, "{gc:?}");
    let report = store
        .verify(Some(repo.codec().clone()), None)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    let out = get(&repo, "db/df1-changed").await.unwrap();
    assert!(out == changed, "what GC kept still restores");

    // The index is a cache of the objects: rebuilt from them, nothing is lost.
    let rebuilt = store.rebuild_index(None).await.unwrap();
    assert_eq!(rebuilt.pieces, 2, "{rebuilt:?}");
    let out = get(&repo, "db/df1-changed").await.unwrap();
    assert!(out == changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() {
    let dir = tempfile::tempdir().unwrap();
    suite(
        Arc::new(object_store::memory::InMemory::new()),
        &Indexes::sqlite(dir.path()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    suite(
        Store::local_objects(&objects).unwrap(),
        &Indexes::sqlite(dir.path()),
    )
    .await;
}

/// A moto S3 server on a free port, stopped when dropped.
struct S3Server {
    child: Child,
    endpoint: String,
    creds: tempfile::TempDir,
}

impl S3Server {
    fn start(bucket: &str) -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): the S3 conformance tests need it; install it with pip install 'moto[server]'"
                )
            });
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            creds: tempfile::tempdir().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if create_bucket(port, bucket) {
                return server;
            }
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl S3Server {
    /// Objects at `url` on this server, its credentials in a file as a vault
    /// service would keep them.
    fn remote(&self, url: &str) -> RemoteObjects {
        let path = self.creds.path().join("s3.json");
        std::fs::write(
            &path,
            r#"{"access_key_id": "test", "secret_access_key": "testtest"}"#,
        )
        .unwrap();
        RemoteObjects {
            url: url.into(),
            endpoint: Some(self.endpoint.clone()),
            region: None,
            virtual_hosted: false,
            credentials_file: Some(path),
            credentials: None,
            index: None,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CreateBucket by hand: object_store has no bucket administration.
fn create_bucket(port: u16, bucket: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let req = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_compatible_server() {
    let server = S3Server::start("orca-suite");
    let remote = server.remote("s3://orca-suite/site1/repo");
    let dir = tempfile::tempdir().unwrap();
    suite(remote.objects().unwrap(), &Indexes::sqlite(dir.path())).await;
}

/// A repository directory whose `objects.json` names a bucket opens like any
/// other: the path the CLI, the vault server and the SBT library all take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_with_objects_json_keeps_its_objects_in_the_bucket() {
    let server = S3Server::start("orca-dir");
    let remote = server.remote("s3://orca-dir/r");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    remote.write(&a).unwrap();
    let (repo, _) = Repository::init_local(&a, &opts(), &NewKey::Passphrase(PASS.into()))
        .await
        .unwrap();
    let data = blocks(200, 3);
    put(&repo, "p1", data.clone()).await.unwrap();
    assert!(
        !a.join("config").exists() && !a.join("packs").exists(),
        "objects went to the bucket, not the directory"
    );
    // A second directory on the same bucket (another vault server) opens it.
    let b = dir.path().join("b");
    remote.write(&b).unwrap();
    let (r2, store2) = Repository::open_local(&b, &KeySource::Passphrase(PASS.into()))
        .await
        .unwrap();
    store2.rebuild_index(None).await.unwrap();
    let out = get(&r2, "p1").await.unwrap();
    assert!(out == data);
    let e = Repository::init_local(&b, &opts(), &NewKey::Passphrase(PASS.into()))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, RepoError::AlreadyInitialised { .. }), "{e}");
}

fn pg_index(url: String) -> IndexLocation {
    IndexLocation::Postgres(PgConfig {
        url,
        password_file: None,
        ca_file: None,
    })
}

/// The scale-out backend: objects in a bucket, the index in PostgreSQL,
/// shared by the second client as a second vault server shares it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_compatible_server_with_a_postgresql_index() {
    let server = S3Server::start("orca-pg-suite");
    let pg = pg::PgServer::start();
    let url = pg.database("suite");
    let remote = server.remote("s3://orca-pg-suite/repo");
    let indexes = Indexes {
        first: pg_index(url.clone()),
        second: pg_index(url),
    };
    suite(remote.objects().unwrap(), &indexes).await;
}

/// PostgreSQL that takes only TLS: the index connects with the CA given and
/// checks the certificate; without TLS, or with another CA, it is refused
/// with a message that says so.
#[test]
fn a_postgresql_index_over_tls_checks_the_server_certificate() {
    let pg = pg::PgServer::start();
    let url = pg.database("tls");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    pg.require_tls(&cert.cert.pem(), &cert.signing_key.serialize_pem());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let wrong = dir.path().join("other.pem");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let at = |ca_file: Option<&Path>| {
        IndexLocation::Postgres(PgConfig {
            url: url.clone(),
            password_file: None,
            ca_file: ca_file.map(Path::to_path_buf),
        })
    };
    let (index, fresh) = orca_repo::Index::open(&at(Some(&ca)), "repo-tls").unwrap();
    assert!(fresh);
    assert_eq!(index.stats().unwrap().pieces, 0);
    drop(index);
    let plain = orca_repo::Index::open(&at(None), "repo-tls").unwrap_err();
    assert!(plain.to_string().contains("no encryption"), "{plain}");
    let impostor = orca_repo::Index::open(&at(Some(&wrong)), "repo-tls").unwrap_err();
    assert!(impostor.to_string().contains("certificate"), "{impostor}");
    let missing =
        orca_repo::Index::open(&at(Some(&dir.path().join("nope.pem"))), "repo-tls").unwrap_err();
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
    eprintln!("without TLS: {plain}\nanother CA: {impostor}\nno CA file: {missing}");
}

/// Two directories naming one bucket and one PostgreSQL index (two vault
/// servers' state directories) see each other's pieces at once, with no
/// rebuild; a PostgreSQL restart between calls is ridden out by reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_directories_share_one_postgresql_index() {
    let server = S3Server::start("orca-pg-dirs");
    let pg = pg::PgServer::start();
    let mut remote = server.remote("s3://orca-pg-dirs/r");
    remote.index = Some(PgConfig {
        url: pg.database("shared"),
        password_file: None,
        ca_file: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    remote.write(&a).unwrap();
    remote.write(&b).unwrap();
    let (ra, _) = Repository::init_local(&a, &opts(), &NewKey::Passphrase(PASS.into()))
        .await
        .unwrap();
    let (rb, _) = Repository::open_local(&b, &KeySource::Passphrase(PASS.into()))
        .await
        .unwrap();
    let data = blocks(200, 3);
    put(&ra, "p1", data.clone()).await.unwrap();
    assert!(!a.join("index.sqlite").exists() && !b.join("index.sqlite").exists());
    assert_eq!(rb.list(&Default::default()).await.unwrap().len(), 1);
    assert!(get(&rb, "p1").await.unwrap() == data);
    // The same data through the other server stores nothing new: one index.
    let again = put(&rb, "p2", data.clone()).await.unwrap();
    assert_eq!(again.manifest.header.meta.stats.unwrap().new_bytes, 0);

    // PostgreSQL goes away while a backup writes and comes back: the index
    // reconnects and the backup commits.
    pg.down();
    let writer = tokio::spawn({
        let ra = ra.clone();
        async move { put(&ra, "p3", blocks(50, 8)).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.up();
    writer.await.unwrap().unwrap();
    assert_eq!(rb.list(&Default::default()).await.unwrap().len(), 3);

    // A database that belongs to another repository is refused by name.
    let other = Repository::init(
        Arc::new(object_store::memory::InMemory::new()),
        "other".into(),
        &IndexLocation::Postgres(remote.index.clone().unwrap()),
        &opts(),
        &NewKey::Passphrase(PASS.into()),
    )
    .await;
    let e = other.err().unwrap().to_string();
    assert!(e.contains("belongs to repository"), "{e}");
}
