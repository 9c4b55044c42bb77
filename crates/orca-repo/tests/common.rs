//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use orca_repo::KdfParams;
use orca_repo::Store;
use orca_repo::{
    ChunkerSpec, Cipher, Committed, InitOptions, NewKey, PieceMeta, ReadOptions, Repository,
    Result, WriteOptions,
};

pub const PASS: &str = "correct horse battery staple";

pub fn opts() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            m_kib: 256,
            t: 1,
            p: 1,
        },
        pack_size: 1 << 20,
        ..Default::default()
    }
}

pub async fn mem_repo(cipher: Cipher) -> (Repository, Arc<Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let objects = Arc::new(object_store::memory::InMemory::new());
    let o = InitOptions { cipher, ..opts() };
    let (repo, store) = Repository::init(
        objects,
        "memory".into(),
        &orca_repo::IndexLocation::Sqlite(dir.path().join("index.sqlite")),
        &o,
        &NewKey::Passphrase(PASS.into()),
    )
    .await
    .unwrap();
    (repo, store, dir)
}

pub async fn local_repo(dir: &Path) -> (Repository, Arc<Store>) {
    Repository::init_local(dir, &opts(), &NewKey::Passphrase(PASS.into()))
        .await
        .unwrap()
}

/// Oracle-like data: 8 KiB blocks with a header that varies per block and row text that
/// compresses about 3x.
pub use orca_testing::data::oracle_blocks as blocks;

pub async fn put_with(
    repo: &Repository,
    name: &str,
    data: Vec<u8>,
    wopts: WriteOptions,
) -> Result<Committed> {
    let repo = repo.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let mut w = repo.writer(
            &name,
            PieceMeta {
                created: 1,
                ..Default::default()
            },
            &wopts,
        )?;
        for part in data.chunks(256 * 1024 + 13) {
            w.write(part)?;
        }
        w.finish()
    })
    .await
    .unwrap()
}

pub async fn put(repo: &Repository, name: &str, data: Vec<u8>) -> Result<Committed> {
    put_with(
        repo,
        name,
        data,
        WriteOptions {
            batch_bytes: 4 << 20,
            ..Default::default()
        },
    )
    .await
}

/// Verify of the whole repository, with the key: every chunk read back and rebuilt.
pub async fn verify_clean(repo: &Repository, store: &Store) {
    let report = store
        .verify(Some(repo.codec().clone()), None)
        .await
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

pub async fn get(repo: &Repository, name: &str) -> Result<Vec<u8>> {
    let mut reader = repo
        .reader(
            name,
            &ReadOptions {
                group_bytes: 2 << 20,
                read_ahead: 2,
                // Less than two groups: a group often waits for the one before it to be
                // handed out, and one larger than the budget takes all of it.
                ahead_bytes: 3 << 20,
            },
        )
        .await?;
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        while let Some(c) = reader.next_chunk()? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    })
    .await
    .unwrap()
}

pub fn cdc_small() -> ChunkerSpec {
    ChunkerSpec::Cdc {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
    }
}
