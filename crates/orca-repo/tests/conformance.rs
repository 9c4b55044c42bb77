//! One conformance suite for every backend a repository runs on: in memory
//! (`conformance::memory`), a local directory (`conformance::dir`), an S3-compatible
//! server (`conformance::s3`: moto, started here, `pip install 'moto[server]'`), S3 with
//! the index in PostgreSQL (`conformance::s3_pg`) and a local directory served by a vault
//! (`conformance::vault`: the clients reach it over HTTP, as the SBT library and the agent
//! do). Each property is its own test, run against every backend, so one failure hides no
//! other: `cargo test -p orca-repo conformance::s3::` runs one backend, `cargo test -p
//! orca-repo gc_fence` one property. The tests of a binary share one moto and one
//! PostgreSQL server, each test with a bucket and a database of its own.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{PASS, blocks, get, opts, put};
use object_store::ObjectStore;
use orca_repo::PgConfig;
use orca_repo::RemoteObjects;
use orca_repo::Store;
use orca_repo::{
    Backend, GcOptions, IndexLocation, KeySource, NewKey, PieceFilter, RepoError, Repository,
};
use orca_testing::moto::S3Server;
use orca_testing::pg::PgServer;
use orca_vault::client::VaultClient;
use orca_vault::server::{Scope, Tokens, spawn_local};

/// A backend under test: its objects, and where each of two clients keeps its index (the
/// second is another vault server: its own SQLite file, or the same shared database).
/// Through a vault, the clients are two connections to the server and the [`Store`]
/// [`Target::init`] returns is the maintenance side beside it (`orca repo gc` on its data).
struct Target {
    objects: Arc<dyn ObjectStore>,
    first: IndexLocation,
    second: IndexLocation,
    /// The repository directory a vault serves, when the clients go through one.
    vault_data: Option<PathBuf>,
    /// The served vault's URL and the second client's token, once [`Target::init`] ran.
    vault: OnceLock<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Target {
    fn memory() -> Target {
        Target::with_sqlite(Arc::new(object_store::memory::InMemory::new()))
    }

    fn dir() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        Target::sqlite_in(dir, Store::local_objects(&objects).unwrap())
    }

    fn s3() -> Target {
        Target::with_sqlite(s3_objects())
    }

    fn s3_pg() -> Target {
        let url = PgServer::shared().fresh_database();
        Target {
            first: pg_index(url.clone()),
            second: pg_index(url),
            ..Target::with_sqlite(s3_objects())
        }
    }

    /// A repository directory laid out as `orca repo init` lays it out, to be served.
    fn vault() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("repo");
        std::fs::create_dir_all(&data).unwrap();
        Target {
            objects: Store::local_objects(&data).unwrap(),
            first: IndexLocation::Sqlite(Store::local_index_path(&data)),
            second: IndexLocation::Sqlite(dir.path().join("second.sqlite")),
            vault_data: Some(data),
            vault: OnceLock::new(),
            _dir: dir,
        }
    }

    fn with_sqlite(objects: Arc<dyn ObjectStore>) -> Target {
        Target::sqlite_in(tempfile::tempdir().unwrap(), objects)
    }

    /// Each client's index a SQLite file in `dir`.
    fn sqlite_in(dir: tempfile::TempDir, objects: Arc<dyn ObjectStore>) -> Target {
        Target {
            objects,
            first: IndexLocation::Sqlite(dir.path().join("index.sqlite")),
            second: IndexLocation::Sqlite(dir.path().join("second.sqlite")),
            vault_data: None,
            vault: OnceLock::new(),
            _dir: dir,
        }
    }

    /// A new repository on the backend, through the first client, and the store beside it.
    async fn init(&self) -> (Repository, Arc<Store>) {
        let (repo, store) = Repository::init(
            self.objects.clone(),
            "suite".into(),
            &self.first,
            &opts(),
            &NewKey::Passphrase(PASS.into()),
        )
        .await
        .unwrap();
        let Some(data) = &self.vault_data else {
            return (repo, store);
        };
        // Admin tokens: the suite's pieces belong to no database.
        let tokens = Tokens::open(data).unwrap();
        let first = tokens.create("SUITE", Scope::Admin).unwrap();
        let second = tokens.create("SUITE", Scope::Admin).unwrap();
        let url = spawn_local(data).unwrap();
        let repo = open_through(&url, &first).await;
        assert!(self.vault.set((url, second)).is_ok(), "one init per target");
        (repo, store)
    }

    /// The repository opened by a second client (another vault server, or another
    /// connection to the one vault).
    async fn second_client(&self) -> Repository {
        if let Some((url, token)) = self.vault.get() {
            return open_through(url, token).await;
        }
        let other = Arc::new(
            Store::open(self.objects.clone(), "suite".into(), &self.second)
                .await
                .unwrap(),
        );
        Repository::open(other, &KeySource::Passphrase(PASS.into()))
            .await
            .unwrap()
    }
}

/// The repository a vault at `url` serves, reached with `token`.
async fn open_through(url: &str, token: &str) -> Repository {
    let client: Arc<dyn Backend> = VaultClient::connect(url, token).unwrap();
    Repository::open(client, &KeySource::Passphrase(PASS.into()))
        .await
        .unwrap()
}

/// Objects in a new bucket of the shared moto server.
fn s3_objects() -> Arc<dyn ObjectStore> {
    let server = S3Server::shared();
    let bucket = server.fresh_bucket();
    remote(server, &format!("s3://{bucket}/site1/repo"))
        .objects()
        .unwrap()
}

/// Objects at `url` on `server`, its credentials in a file as a vault service keeps them.
fn remote(server: &S3Server, url: &str) -> RemoteObjects {
    RemoteObjects {
        url: url.into(),
        endpoint: Some(server.endpoint()),
        region: None,
        virtual_hosted: false,
        credentials_file: Some(server.credentials_file()),
        credentials: None,
        index: None,
    }
}

fn pg_index(url: String) -> IndexLocation {
    IndexLocation::Postgres(PgConfig {
        url,
        password_file: None,
        ca_file: None,
    })
}

/// Every property, as a test function per backend: `conformance::<backend>::<property>`.
macro_rules! conformance {
    ($($backend:ident),+ ; $properties:tt) => {
        mod conformance {
            $(conformance!(@backend $backend $properties);)+
        }
    };
    (@backend $backend:ident [$($property:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $property() {
                    crate::$property(crate::Target::$backend()).await;
                }
            )*
        }
    };
}

conformance!(memory, dir, s3, s3_pg, vault; [
    init_is_create_only,
    a_piece_reads_back_as_written,
    the_same_data_twice_stores_nothing_new,
    list_shows_committed_pieces_and_filters_them,
    a_second_client_sees_every_piece,
    a_name_committed_through_one_client_cannot_be_replaced_through_another,
    delete_removes_the_piece_and_only_it,
    gc_sweeps_deleted_pieces_and_what_is_kept_restores,
    the_index_rebuilt_from_the_objects_loses_nothing,
    writer_sessions_begin_renew_and_end,
    gc_fence_refuses_a_lineage_older_than_a_collection,
    unit_values_read_without_the_body,
]);

/// Create-only: a second init on the same objects fails, it does not overwrite.
async fn init_is_create_only(t: Target) {
    t.init().await;
    let again = Repository::init(
        t.objects.clone(),
        "suite".into(),
        &t.second,
        &opts(),
        &NewKey::Passphrase(PASS.into()),
    )
    .await;
    assert!(
        matches!(again, Err(RepoError::AlreadyInitialised { .. })),
        "{:?}",
        again.err()
    );
}

/// Two pieces that differ in one byte each read back as written.
async fn a_piece_reads_back_as_written(t: Target) {
    let (repo, _) = t.init().await;
    let data = blocks(600, 7);
    let mut changed = data.clone();
    changed[8192 * 300 + 100] ^= 0xff;
    put(&repo, "db/df1", data.clone()).await.unwrap();
    put(&repo, "db/df1-changed", changed.clone()).await.unwrap();
    let out = get(&repo, "db/df1-changed").await.unwrap();
    assert!(out == changed, "restored bytes differ");
    let out = get(&repo, "db/df1").await.unwrap();
    assert!(out == data, "restored bytes differ");
}

/// A chunk's unit values come back from the first bytes of its payload: the same bytes as
/// the whole payload's prefix, opening to one value per 8 KiB unit (a 1 MiB chunk: 128), the
/// short last chunk's too; an id the repository does not hold is an error, not `None`.
async fn unit_values_read_without_the_body(t: Target) {
    let (repo, _) = t.init().await;
    let data = blocks(300, 9);
    let len = data.len();
    let c = put(&repo, "db/df1", data).await.unwrap();
    let ids: Vec<_> = c.manifest.chunks.iter().map(|r| r.id).collect();
    let backend = repo.backend();
    let values = backend.get_values(&ids).await.unwrap();
    let payloads = backend.get_chunks(&ids).await.unwrap();
    assert_eq!(ids.len(), 3);
    for (i, ((id, v), p)) in ids.iter().zip(&values).zip(&payloads).enumerate() {
        let v = v
            .as_ref()
            .expect("a chunk written today carries its values");
        assert!(
            v.len() < p.len() && p.starts_with(v),
            "a prefix of the payload"
        );
        let opened = repo.codec().open_values(id, v, "t").unwrap();
        let Some(orca_repo::UnitValues::Every(cvs)) = opened else {
            panic!("a whole chunk's values: {opened:?}")
        };
        let chunk = (len - i * (1 << 20)).min(1 << 20);
        assert_eq!(cvs.len(), chunk.div_ceil(8192), "chunk {i}");
    }
    let mut forged = ids[0].as_bytes().to_owned();
    forged[0] ^= 1;
    let forged = orca_repo::ChunkId::from_slice(&forged).unwrap();
    assert!(backend.get_values(&[forged]).await.is_err());
}

async fn the_same_data_twice_stores_nothing_new(t: Target) {
    let (repo, _) = t.init().await;
    let data = blocks(600, 7);
    let first = put(&repo, "db/df1", data.clone()).await.unwrap();
    assert!(first.manifest.header.meta.stats.as_ref().unwrap().new_bytes > 0);
    let second = put(&repo, "db/df1-again", data).await.unwrap();
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
}

/// Four pieces: all listed, ordered by creation then name; a prefix and a limit narrow.
async fn list_shows_committed_pieces_and_filters_them(t: Target) {
    let (repo, _) = t.init().await;
    let data = blocks(60, 7);
    for name in ["db/df1", "db/df1-again", "db/df1-changed"] {
        put(&repo, name, data.clone()).await.unwrap();
    }
    put(&repo, "db/other", blocks(30, 9)).await.unwrap();
    let names = |f: PieceFilter| {
        let repo = repo.clone();
        async move {
            repo.list(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(PieceFilter::default()).await.len(), 4);
    let df1 = PieceFilter {
        name_prefix: Some("db/df1".into()),
        ..Default::default()
    };
    assert_eq!(
        names(df1.clone()).await,
        ["db/df1", "db/df1-again", "db/df1-changed"]
    );
    assert_eq!(
        names(PieceFilter {
            limit: Some(2),
            ..df1
        })
        .await,
        ["db/df1", "db/df1-again"]
    );
    let none = PieceFilter {
        name_prefix: Some("db/nothing".into()),
        ..Default::default()
    };
    assert!(names(none).await.is_empty());
}

/// Another client opening the same objects (a second vault server) sees it all.
async fn a_second_client_sees_every_piece(t: Target) {
    let (repo, _) = t.init().await;
    let data = blocks(600, 7);
    put(&repo, "db/df1", data.clone()).await.unwrap();
    let r2 = t.second_client().await;
    let out = get(&r2, "db/df1").await.unwrap();
    assert!(out == data, "the second client restores the same bytes");
    assert_eq!(r2.list(&Default::default()).await.unwrap().len(), 1);
}

/// A piece committed through the first client after the second opened: a second SQLite
/// index has never seen the name, so only the create-only write of the manifest object
/// (If-None-Match on S3) keeps it from replacing the piece; a shared index refuses it first.
async fn a_name_committed_through_one_client_cannot_be_replaced_through_another(t: Target) {
    let (repo, _) = t.init().await;
    let r2 = t.second_client().await;
    let late = blocks(20, 4);
    put(&repo, "db/late", late.clone()).await.unwrap();
    let err = put(&r2, "db/late", blocks(20, 5)).await.unwrap_err();
    assert!(matches!(err, RepoError::PieceExists { .. }), "{err}");
    let out = get(&repo, "db/late").await.unwrap();
    assert!(out == late, "the first commit stands");
}

async fn delete_removes_the_piece_and_only_it(t: Target) {
    let (repo, _) = t.init().await;
    let kept = blocks(40, 1);
    put(&repo, "db/kept", kept.clone()).await.unwrap();
    put(&repo, "db/late", blocks(20, 4)).await.unwrap();
    repo.delete("db/late").await.unwrap();
    let listed = repo.list(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, "db/kept");
    assert!(
        get(&repo, "db/late").await.is_err(),
        "a deleted piece reads"
    );
    let again = repo.delete("db/late").await.unwrap_err();
    assert!(matches!(again, RepoError::PieceNotFound { .. }), "{again}");
    assert!(get(&repo, "db/kept").await.unwrap() == kept);
}

/// Pieces written, some deleted, a collection run: what is left.
struct Collected {
    repo: Repository,
    store: Arc<Store>,
    changed: Vec<u8>,
}

/// Four pieces; two deleted (one sharing every chunk with a kept piece); a collection.
async fn collected(t: &Target) -> Collected {
    let (repo, store) = t.init().await;
    let data = blocks(600, 7);
    put(&repo, "db/df1", data.clone()).await.unwrap();
    put(&repo, "db/df1-again", data.clone()).await.unwrap();
    let mut changed = data;
    changed[8192 * 300 + 100] ^= 0xff;
    put(&repo, "db/df1-changed", changed.clone()).await.unwrap();
    put(&repo, "db/other", blocks(300, 9)).await.unwrap();
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
    Collected {
        repo,
        store,
        changed,
    }
}

async fn gc_sweeps_deleted_pieces_and_what_is_kept_restores(t: Target) {
    let c = collected(&t).await;
    let report = c
        .store
        .verify(Some(c.repo.codec().clone()), None)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    let out = get(&c.repo, "db/df1-changed").await.unwrap();
    assert!(out == c.changed, "what GC kept still restores");
}

/// The index is a cache of the objects: rebuilt from them, nothing is lost.
async fn the_index_rebuilt_from_the_objects_loses_nothing(t: Target) {
    let c = collected(&t).await;
    let rebuilt = c.store.rebuild_index(None).await.unwrap();
    assert_eq!(rebuilt.pieces, 2, "{rebuilt:?}");
    let out = get(&c.repo, "db/df1-changed").await.unwrap();
    assert!(out == c.changed);
}

async fn writer_sessions_begin_renew_and_end(t: Target) {
    let (repo, _) = t.init().await;
    let store = repo.backend();
    let grant = store.begin_session("piece1", None).await.unwrap();
    assert!(grant.lineage_ok);
    assert!(store.renew_session(grant.id).await.unwrap());
    store.end_session(grant.id).await.unwrap();
    assert!(
        !store.renew_session(grant.id).await.unwrap(),
        "an ended session renews"
    );
}

/// A piece is written and deleted, a collection sweeps its chunks: a lineage from before
/// those chunks were last referenced is refused, a newer one accepted.
async fn gc_fence_refuses_a_lineage_older_than_a_collection(t: Target) {
    let (repo, store) = t.init().await;
    let sessions = repo.backend();
    let before = sessions.begin_session("probe", None).await.unwrap();
    sessions.end_session(before.id).await.unwrap();
    put(&repo, "p", blocks(384, 1)).await.unwrap();
    repo.delete("p").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let opts = GcOptions {
        grace: Duration::ZERO,
        ..Default::default()
    };
    let report = store.gc(&opts, None).await.unwrap();
    assert!(report.swept_chunks > 0, "{report:?}");
    let stale = sessions
        .begin_session("p2", Some(before.started))
        .await
        .unwrap();
    assert!(!stale.lineage_ok);
    assert!(
        !sessions
            .adopt_lineage(stale.id, before.started)
            .await
            .unwrap()
    );
    let now = orca_repo::now_unix();
    assert!(sessions.adopt_lineage(stale.id, now).await.unwrap());
}

/// A repository directory whose `objects.json` names a bucket opens like any other: the
/// path the CLI, the vault server and the SBT library all take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_with_objects_json_keeps_its_objects_in_the_bucket() {
    let server = S3Server::shared();
    let remote = remote(server, &format!("s3://{}/r", server.fresh_bucket()));
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

/// PostgreSQL that takes only TLS: the index connects with the CA given and checks the
/// certificate; without TLS, or with another CA, it is refused with a message that says so.
#[test]
fn a_postgresql_index_over_tls_checks_the_server_certificate() {
    let pg = PgServer::start();
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

/// Two directories naming one bucket and one PostgreSQL index (two vault servers' state
/// directories) see each other's pieces at once, with no rebuild; a PostgreSQL restart
/// between calls is ridden out by reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_directories_share_one_postgresql_index() {
    let server = S3Server::shared();
    let pg = PgServer::start();
    let mut remote = remote(server, &format!("s3://{}/r", server.fresh_bucket()));
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
