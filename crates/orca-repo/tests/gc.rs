//! Garbage collection: deleted pieces' space comes back, every committed piece
//! still restores, and backups running beside a collection lose nothing.

mod common;

use std::time::Duration;

use common::*;
use orca_repo::Lineage;
use orca_repo::Store;
use orca_repo::{GcOptions, KeySource, PieceMeta, RepoError, Repository, WriteOptions};

/// A collection that keeps nothing for its age: only manifests and live
/// writer sessions protect chunks.
fn eager() -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        repack_below: 0.5,
    }
}

/// References are recorded in whole seconds: let the clock pass the ones just made.
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

async fn pack_bytes(store: &Store) -> u64 {
    store.stats().await.unwrap().pack_bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pieces_space_is_reclaimed_and_the_rest_restores() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let shared = blocks(256, 1);
    let mut a = shared.clone();
    a.extend(blocks(512, 2));
    let mut b = shared.clone();
    b.extend(blocks(512, 3));
    put(&repo, "a", a.clone()).await.unwrap();
    put(&repo, "b", b.clone()).await.unwrap();
    let c = blocks(512, 4);
    put(&repo, "c", c.clone()).await.unwrap();
    let before = pack_bytes(&store).await;

    repo.delete("a").await.unwrap();
    repo.delete("c").await.unwrap();
    next_second().await;
    let report = store.gc(&eager(), None).await.unwrap();
    assert_eq!(report.pieces, 1);
    assert!(report.swept_chunks > 0, "{report:?}");
    let after = pack_bytes(&store).await;
    // a's own blocks and all of c are gone; b (and what it shares with a) stays.
    assert!(
        after * 100 <= before * 60,
        "{after} of {before} pack bytes left: {report:?}"
    );
    assert_eq!(report.pack_bytes_after, after);
    assert_eq!(get(&repo, "b").await.unwrap(), b);
    verify_clean(&repo, &store).await;

    // Nothing left to collect: a second run changes nothing.
    next_second().await;
    let again = store.gc(&eager(), None).await.unwrap();
    assert_eq!((again.swept_chunks, again.packs_deleted), (0, 0));
    assert_eq!(pack_bytes(&store).await, after);

    // The index rebuilt from the objects agrees: swept chunks are really gone
    // from every pack that was deleted or rewritten.
    store.rebuild_index(None).await.unwrap();
    assert_eq!(get(&repo, "b").await.unwrap(), b);
    // Re-writing a deleted piece stores its data again, and it restores.
    put(&repo, "a2", a.clone()).await.unwrap();
    assert_eq!(get(&repo, "a2").await.unwrap(), a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_in_flight_keeps_what_it_uploaded_and_probed() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let old = blocks(512, 5);
    put(&repo, "old", old.clone()).await.unwrap();
    repo.delete("old").await.unwrap();
    next_second().await;

    // A writer sends half of its piece (some of it the deleted piece's data,
    // found stored by its probes), then a collection runs, then it finishes.
    let mut data = old.clone();
    data.extend(blocks(512, 6));
    let (half_sent_tx, half_sent_rx) = tokio::sync::oneshot::channel();
    let (gc_done_tx, gc_done_rx) = std::sync::mpsc::channel::<()>();
    let repo2 = repo.clone();
    let payload = data.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut w = repo2
            .writer(
                "new",
                PieceMeta::default(),
                &WriteOptions {
                    batch_bytes: 1 << 20,
                    ..Default::default()
                },
            )
            .unwrap();
        let (first, second) = payload.split_at(payload.len() / 2);
        w.write(first).unwrap();
        w.boundary().unwrap();
        half_sent_tx.send(()).unwrap();
        gc_done_rx.recv().unwrap();
        w.write(second).unwrap();
        w.finish()
    });
    half_sent_rx.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    next_second().await;
    let report = store.gc(&eager(), None).await.unwrap();
    assert_eq!(report.held_back_by.len(), 1, "{report:?}");
    assert_eq!(report.held_back_by[0].0, "new");
    gc_done_tx.send(()).unwrap();
    let committed = writer.await.unwrap().unwrap();
    assert_eq!(committed.info.size, data.len() as u64);
    assert_eq!(get(&repo, "new").await.unwrap(), data);
    verify_clean(&repo, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lineage_older_than_a_collection_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let data = blocks(512, 7);
    let first = put_lineage_of(&repo, "v1", data.clone(), Lineage::default()).await;
    assert!(first.lineage.since > 0);

    // A fresh lineage is trusted: no probes for unchanged chunks.
    let (second, used) = put_lineage_used(&repo, "v2", data.clone(), first.lineage.clone()).await;
    assert!(used);
    assert_eq!(second.manifest.header.meta.stats.unwrap().probes, 0);

    // Both pieces deleted and collected: the lineage names swept chunks.
    repo.delete("v1").await.unwrap();
    repo.delete("v2").await.unwrap();
    next_second().await;
    let report = store.gc(&eager(), None).await.unwrap();
    assert!(report.swept_chunks > 0);
    assert!(store.index().gc_fence().unwrap() > first.lineage.since);

    // The stale lineage is refused, the writer probes and re-sends, and the
    // piece restores instead of failing its commit on missing chunks.
    let (third, used) = put_lineage_used(&repo, "v3", data.clone(), second.lineage).await;
    assert!(!used);
    let s = third.manifest.header.meta.stats.unwrap();
    assert!(s.probes > 0 && s.new_chunks > 0, "{s:?}");
    assert_eq!(get(&repo, "v3").await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_beside_concurrent_writers_in_two_processes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    // A second handle on the same directory, as another process would have.
    let (repo_b, _store_b) =
        Repository::open_local(dir.path(), &KeySource::Passphrase(PASS.into()))
            .await
            .unwrap();
    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    for round in 0..5u64 {
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let repo = if w % 2 == 0 {
                    repo.clone()
                } else {
                    repo_b.clone()
                };
                // Each piece shares blocks with the previous round's pieces.
                let mut data = blocks(96, 100 + w);
                data.extend(blocks(160, round * 10 + w));
                let name = format!("r{round}w{w}");
                let payload = data.clone();
                (
                    name.clone(),
                    data,
                    tokio::spawn(async move { put(&repo, &name, payload).await }),
                )
            })
            .collect();
        let gc = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut runs = 0;
                while runs < 3 {
                    match store.gc(&eager(), None).await {
                        Ok(_) => runs += 1,
                        Err(RepoError::GcRunning { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                Ok(())
            })
        };
        for (name, data, handle) in writers {
            handle.await.unwrap().unwrap();
            expected.push((name, data));
        }
        gc.await.unwrap().unwrap();
        // Delete the oldest pieces as retention would.
        if expected.len() > 8 {
            for (name, _) in expected.drain(..4) {
                repo.delete(&name).await.unwrap();
            }
        }
    }
    next_second().await;
    let before = pack_bytes(&store).await;
    let report = store.gc(&eager(), None).await.unwrap();
    assert!(report.swept_chunks > 0, "{report:?}");
    assert!(pack_bytes(&store).await < before);
    for (name, data) in &expected {
        assert_eq!(&get(&repo_b, name).await.unwrap(), data, "{name}");
    }
    verify_clean(&repo, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_collection_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (_repo, store) = local_repo(dir.path()).await;
    let index = store.index().clone();
    let started = tokio::task::spawn_blocking(move || index.gc_begin(0, orca_repo::now_unix()))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(started, orca_repo::index::GcStart::Started(_)));
    let err = store.gc(&eager(), None).await.unwrap_err();
    assert!(matches!(err, RepoError::GcRunning { .. }), "{err}");
    assert!(err.to_string().contains("another garbage collection"));
}

async fn put_lineage_used(
    repo: &Repository,
    name: &str,
    data: Vec<u8>,
    lineage: Lineage,
) -> (orca_repo::Committed, bool) {
    let repo = repo.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let mut w = repo
            .writer(&name, PieceMeta::default(), &WriteOptions::default())
            .unwrap();
        let used = w.set_lineage(lineage);
        w.write(&data).unwrap();
        (w.finish().unwrap(), used)
    })
    .await
    .unwrap()
}

async fn put_lineage_of(
    repo: &Repository,
    name: &str,
    data: Vec<u8>,
    lineage: Lineage,
) -> orca_repo::Committed {
    put_lineage_used(repo, name, data, lineage).await.0
}

/// Blocks of `data` changed at a few places in each chunk: the next version
/// stores them as deltas on `data`'s chunks.
fn touched(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for b in (3..data.len() / 8192).step_by(40) {
        out[b * 8192 + 100] ^= 0x5a;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swept_deltas_left_in_a_kept_pack_are_neither_problems_nor_reindexed() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let v1 = blocks(512, 20);
    let first = put_lineage_of(&repo, "v1", v1.clone(), Lineage::default()).await;
    // v2's deltas share a pack with blocks that `keeper` still uses.
    let fresh = blocks(512, 21);
    let mut v2 = touched(&v1);
    v2.extend_from_slice(&fresh);
    let second = put_lineage_of(&repo, "v2", v2, first.lineage).await;
    assert!(second.manifest.header.meta.stats.unwrap().delta_chunks > 0);
    put(&repo, "keeper", fresh.clone()).await.unwrap();

    repo.delete("v1").await.unwrap();
    repo.delete("v2").await.unwrap();
    next_second().await;
    let report = store.gc(&eager(), None).await.unwrap();
    assert!(report.swept_chunks > 0, "{report:?}");

    let verified = store
        .verify(Some(repo.codec().clone()), None)
        .await
        .unwrap();
    assert!(verified.is_clean(), "{:?}", verified.problems);
    assert!(verified.garbage_chunks > 0, "{verified:?}");

    // A rebuilt index must not take the swept deltas back: a probe would
    // answer "stored" for chunks nobody can rebuild.
    let rebuilt = store.rebuild_index(None).await.unwrap();
    assert!(rebuilt.dropped_deltas > 0, "{rebuilt:?}");
    let v3 = touched(&v1);
    put(&repo, "v3", v3.clone()).await.unwrap();
    assert_eq!(get(&repo, "v3").await.unwrap(), v3);
    assert_eq!(get(&repo, "keeper").await.unwrap(), fresh);
    verify_clean(&repo, &store).await;
}
