//! A pack write that fails on the disk reaches the caller typed: `RepoError::PackWrite`, with
//! the storage error and the operating system's `io::Error` in its chain (so a full disk is
//! ENOSPC to whoever reports it), not a message.

use std::error::Error;

use bytes::Bytes;
use orca_repo::{Backend, ChunkId, EncodedChunk, InitOptions, NewKey, RepoError, Repository};

/// The `io::Error`s in the chain of `e`, outermost first.
fn io_errors(e: &RepoError) -> Vec<std::io::ErrorKind> {
    let mut kinds = Vec::new();
    let mut cause: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            kinds.push(io.kind());
        }
        cause = c.source();
    }
    kinds
}

fn chunk(n: u8) -> EncodedChunk {
    // The store never opens payloads: any bytes of a plausible size do.
    let mut payload = vec![n; 200];
    payload[0] = 0x10;
    EncodedChunk {
        id: ChunkId([n; 32]),
        raw_len: 1000,
        payload: Bytes::from(payload),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_the_disk_refuses_is_a_typed_error_with_its_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let key = NewKey::KeyFile(tmp.path().join("key.json"));
    let (_repo, store) = Repository::init_local(&dir, &InitOptions::default(), &key)
        .await
        .unwrap();

    // Negative control: with the disk fine, the same write succeeds.
    store.put_chunks(vec![chunk(1)]).await.unwrap();
    store.flush().await.unwrap();

    // A file where the pack directories go: the write fails with ENOTDIR, a disk error as
    // real as ENOSPC and one a test can cause without filling a disk.
    std::fs::remove_dir_all(dir.join("packs")).unwrap();
    std::fs::write(dir.join("packs"), b"in the way").unwrap();
    store.put_chunks(vec![chunk(2)]).await.unwrap();
    let e = store.flush().await.unwrap_err();

    let RepoError::PackWrite { location, source } = &e else {
        panic!("not a PackWrite: {e:?}")
    };
    assert_eq!(location, &dir.display().to_string());
    assert!(matches!(**source, RepoError::Storage { .. }), "{source:?}");
    assert_eq!(io_errors(&e), [std::io::ErrorKind::NotADirectory], "{e:?}");
    assert!(e.to_string().contains("writing a pack"), "{e}");
}
