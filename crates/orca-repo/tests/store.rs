//! The repository engine end to end: write, dedup, read, commit rules,
//! corruption detection, index rebuild, keys.

// Test arithmetic on offsets and lengths of small fixtures (far below every type's range).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

mod common;

use bytes::Bytes;
use common::*;
use orca_repo::{
    Backend, ChunkId, ChunkerSpec, Cipher, KeySource, Manifest, PieceFilter, PieceMeta, RepoError,
    Repository, WriteOptions,
};
use orca_repo::{ChunkRef, ManifestHeader};
use orca_testing::fs::files_under;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_every_cipher_and_chunker() {
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        let (repo, _store, _dir) = mem_repo(cipher).await;
        let data = blocks(700, 1);
        for (name, chunker) in [("fixed", ChunkerSpec::default()), ("cdc", cdc_small())] {
            let w = WriteOptions {
                chunker: Some(chunker),
                batch_bytes: 1 << 20,
                concurrency: 3,
                ..Default::default()
            };
            let c = put_with(&repo, name, data.clone(), w).await.unwrap();
            assert_eq!(c.info.size, data.len() as u64);
            assert_eq!(get(&repo, name).await.unwrap(), data, "{cipher} {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_tiny_pieces() {
    let (repo, _s, _d) = mem_repo(Cipher::Aes256Gcm).await;
    put(&repo, "empty", Vec::new()).await.unwrap();
    assert!(get(&repo, "empty").await.unwrap().is_empty());
    put(&repo, "one", vec![42]).await.unwrap();
    assert_eq!(get(&repo, "one").await.unwrap(), vec![42]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_put_stores_nothing_and_small_changes_store_little() {
    let (repo, store, _d) = mem_repo(Cipher::Aes256Gcm).await;
    let data = blocks(2048, 2);
    let first = put(&repo, "a", data.clone()).await.unwrap();
    let s1 = first.manifest.header.meta.stats.clone().unwrap();
    assert_eq!(s1.new_chunks, s1.chunks);
    let second = put(&repo, "b", data.clone()).await.unwrap();
    let s2 = second.manifest.header.meta.stats.clone().unwrap();
    assert_eq!(s2.new_bytes, 0);
    assert_eq!(s2.new_chunks, 0);

    // Rewrite 1% of the 8 KiB blocks at pseudo-random places.
    let mut changed = data.clone();
    let mut x = 99u64;
    for _ in 0..(2048 / 100) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = (x >> 33) as usize % 2048;
        changed[b * 8192 + 100] ^= 0xFF;
    }
    let third = put(&repo, "c", changed.clone()).await.unwrap();
    let s3 = third.manifest.header.meta.stats.clone().unwrap();
    assert!(
        s3.new_chunks <= s3.chunks * 3 / 100 + 20,
        "{} of {} chunks new",
        s3.new_chunks,
        s3.chunks
    );
    assert_eq!(get(&repo, "c").await.unwrap(), changed);
    let st = store.stats().await.unwrap();
    assert_eq!(st.pieces, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_names_are_refused_and_nothing_changes() {
    let (repo, _s, _d) = mem_repo(Cipher::Aes256Gcm).await;
    put(&repo, "x", blocks(10, 1)).await.unwrap();
    let err = put(&repo, "x", blocks(10, 2)).await.unwrap_err();
    assert!(matches!(err, RepoError::PieceExists { .. }), "{err}");
    assert_eq!(get(&repo, "x").await.unwrap(), blocks(10, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_refuses_a_missing_chunk() {
    let (repo, store, _d) = mem_repo(Cipher::Aes256Gcm).await;
    let ghost = ChunkId([0xAB; 32]);
    let m = Manifest {
        header: ManifestHeader {
            version: 1,
            name: "ghost".into(),
            size: 10,
            chunker: ChunkerSpec::default(),
            meta: PieceMeta::default(),
            id_key: None,
            group_secret: None,
            demux: None,
        },
        chunks: vec![ChunkRef { id: ghost, len: 10 }],
    };
    let err = store
        .commit(m.encode(repo.codec().keys()).unwrap())
        .await
        .unwrap_err();
    match err {
        RepoError::MissingChunks { missing, .. } => assert_eq!(missing, vec![ghost]),
        e => panic!("unexpected {e}"),
    }
    assert!(
        store
            .list(&PieceFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        get(&repo, "ghost").await.unwrap_err(),
        RepoError::PieceNotFound { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_uploads_are_rejected() {
    let (_repo, store, _d) = mem_repo(Cipher::Aes256Gcm).await;
    assert!(store.commit(Bytes::from_static(b"garbage")).await.is_err());
    let bad = orca_repo::EncodedChunk {
        id: ChunkId([1; 32]),
        raw_len: 5,
        payload: Bytes::from_static(b"x"),
    };
    assert!(store.put_chunks(vec![bad]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_filters_and_delete() {
    let (repo, _s, _d) = mem_repo(Cipher::Aes256Gcm).await;
    for (name, db, created) in [
        ("p1", "ORCL", 100),
        ("p2", "ORCL", 200),
        ("p3", "TEST", 300),
    ] {
        let repo2 = repo.clone();
        let data = blocks(4, created as u64);
        tokio::task::spawn_blocking(move || {
            let meta = PieceMeta {
                database: Some(db.into()),
                created,
                ..Default::default()
            };
            let mut w = repo2.writer(name, meta, &WriteOptions::default()).unwrap();
            w.write(&data).unwrap();
            w.finish().unwrap();
        })
        .await
        .unwrap();
    }
    let by_db = repo
        .list(&PieceFilter {
            database: Some("ORCL".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_db.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["p1", "p2"]
    );
    let since = repo
        .list(&PieceFilter {
            since: Some(150),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(since.len(), 2);
    let prefix = repo
        .list(&PieceFilter {
            name_prefix: Some("p3".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(prefix.len(), 1);
    repo.delete("p2").await.unwrap();
    assert!(matches!(
        repo.delete("p2").await.unwrap_err(),
        RepoError::PieceNotFound { .. }
    ));
    assert_eq!(repo.list(&PieceFilter::default()).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_wrong_passphrase_and_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("r");
    let (repo, store) = local_repo(&repo_dir).await;
    put(&repo, "p", blocks(3, 3)).await.unwrap();
    drop((repo, store));
    let err = Repository::open_local(&repo_dir, &KeySource::Passphrase("nope".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("ORCA_PASSWORD"));
    let (repo, _) = Repository::open_local(&repo_dir, &KeySource::Passphrase(PASS.into()))
        .await
        .unwrap();
    assert_eq!(get(&repo, "p").await.unwrap(), blocks(3, 3));

    // A key-file repository refuses a passphrase and a foreign key file.
    let kf_dir = dir.path().join("k");
    let kf = dir.path().join("k.key");
    Repository::init_local(&kf_dir, &opts(), &orca_repo::NewKey::KeyFile(kf.clone()))
        .await
        .unwrap();
    let err = Repository::open_local(&kf_dir, &KeySource::Passphrase(PASS.into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key file"), "{err}");
    Repository::open_local(&kf_dir, &KeySource::KeyFile(kf.clone()))
        .await
        .unwrap();
    let other_dir = dir.path().join("o");
    let other_kf = dir.path().join("o.key");
    Repository::init_local(
        &other_dir,
        &opts(),
        &orca_repo::NewKey::KeyFile(other_kf.clone()),
    )
    .await
    .unwrap();
    let err = Repository::open_local(&kf_dir, &KeySource::KeyFile(other_kf))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::WrongKey { .. }), "{err}");
    assert!(
        Repository::init_local(
            &kf_dir,
            &opts(),
            &orca_repo::NewKey::KeyFile(dir.path().join("z"))
        )
        .await
        .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_anywhere_in_chunk_data_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let data = blocks(400, 4);
    put(&repo, "db/piece-1", data.clone()).await.unwrap();
    let packs = files_under(&dir.path().join("packs"));
    assert!(!packs.is_empty());
    let clean = store
        .verify(Some(repo.codec().clone()), None)
        .await
        .unwrap();
    assert!(clean.is_clean(), "{:?}", clean.problems);
    assert_eq!(clean.pieces, 1);

    // Flip bytes at several places inside blobs: header fields and payload.
    for (n, frac) in [0.01f64, 0.33, 0.5, 0.77, 0.999].iter().enumerate() {
        let pack = &packs[n % packs.len()];
        let original = std::fs::read(pack).unwrap();
        let entries_end = original.len() - 16;
        let pos = 16 + ((entries_end - 16 - 1000) as f64 * frac) as usize;
        let mut bad = original.clone();
        bad[pos] ^= 0x20;
        std::fs::write(pack, &bad).unwrap();

        let err = get(&repo, "db/piece-1").await.unwrap_err();
        match &err {
            RepoError::CorruptChunk { piece, index, .. } => {
                assert_eq!(piece.as_deref(), Some("db/piece-1"));
                assert!(index.is_some());
            }
            e => panic!("flip at {pos}: unexpected {e}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("db/piece-1") && msg.contains("chunk #"),
            "{msg}"
        );
        let report = store
            .verify(Some(repo.codec().clone()), None)
            .await
            .unwrap();
        assert!(!report.is_clean(), "verify missed flip at {pos}");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.pieces.iter().any(|(name, _)| name == "db/piece-1"))
        );
        // Without the key (what a vault runs), checksums still catch it.
        let shallow = store.verify(None, None).await.unwrap();
        assert!(!shallow.is_clean());
        std::fs::write(pack, &original).unwrap();
    }
    assert_eq!(get(&repo, "db/piece-1").await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    put(&repo, "m", blocks(20, 5)).await.unwrap();
    let manifest = files_under(&dir.path().join("pieces")).pop().unwrap();
    let original = std::fs::read(&manifest).unwrap();
    let mut bad = original.clone();
    let pos = original.len() - 40;
    bad[pos] ^= 1;
    std::fs::write(&manifest, &bad).unwrap();
    let err = get(&repo, "m").await.unwrap_err();
    assert!(err.to_string().contains("\"m\""), "{err}");
    let report = store
        .verify(Some(repo.codec().clone()), None)
        .await
        .unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.pieces.iter().any(|(n, _)| n == "m"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_is_rebuilt_from_objects() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let data = blocks(300, 6);
    put(&repo, "keep", data.clone()).await.unwrap();
    drop((repo, store));
    for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    let (repo, store) = Repository::open_local(dir.path(), &KeySource::Passphrase(PASS.into()))
        .await
        .unwrap();
    assert_eq!(repo.list(&PieceFilter::default()).await.unwrap().len(), 1);
    assert_eq!(get(&repo, "keep").await.unwrap(), data);
    let second = put(&repo, "again", data).await.unwrap();
    assert_eq!(second.manifest.header.meta.stats.unwrap().new_bytes, 0);
    let report = store.rebuild_index(None).await.unwrap();
    assert_eq!(report.pieces, 2);
    assert!(report.damaged.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_catalog_row_heals_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    put(&repo, "p", blocks(5, 7)).await.unwrap();
    store.index().remove_piece("p").unwrap();
    assert!(repo.list(&PieceFilter::default()).await.unwrap().is_empty());
    assert_eq!(get(&repo, "p").await.unwrap(), blocks(5, 7));
    assert_eq!(repo.list(&PieceFilter::default()).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_manifest_and_catalog_row_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    put(&repo, "p", blocks(5, 7)).await.unwrap();
    // The state a kill leaves after the manifest write, before the row.
    store.index().remove_piece("p").unwrap();
    store.index().begin_commit("p", 0).unwrap();
    let listed = repo.list(&PieceFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "the committed piece is listed again");
    assert!(store.index().commits_in_flight().unwrap().is_empty());

    // A re-run under the same name is refused, and the row stays.
    store.index().remove_piece("p").unwrap();
    assert!(matches!(
        put(&repo, "p", blocks(5, 7)).await,
        Err(RepoError::PieceExists { .. })
    ));
    assert!(store.index().piece("p").unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_chunks_skip_probes_and_boundaries_align() {
    let (repo, _s, _d) = mem_repo(Cipher::Aes256Gcm).await;
    let body = blocks(512, 8);
    let first = put(&repo, "full-1", body.clone()).await.unwrap();
    let lineage = first.lineage.clone();
    let repo2 = repo.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let mut w = repo2
            .writer("full-2", PieceMeta::default(), &WriteOptions::default())
            .unwrap();
        w.set_lineage(lineage);
        // A header that differs per backup, then the same blocks: with a
        // boundary after the header, only the header chunk is new.
        w.write(b"piece header of backup 2").unwrap();
        w.boundary().unwrap();
        w.write(&body).unwrap();
        w.finish().unwrap()
    })
    .await
    .unwrap();
    let s = committed.manifest.header.meta.stats.unwrap();
    assert_eq!(s.cache_hits, first.manifest.chunks.len() as u64);
    assert_eq!(s.new_chunks, 1);
    assert_eq!(s.probed_ids, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_directory_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _store) = local_repo(dir.path()).await;
    let (repo2, _store2) = Repository::open_local(dir.path(), &KeySource::Passphrase(PASS.into()))
        .await
        .unwrap();
    let shared = blocks(600, 9);
    let mut a = shared.clone();
    a.extend(blocks(200, 10));
    let mut b = shared;
    b.extend(blocks(200, 11));
    let (ra, rb) = tokio::join!(put(&repo, "a", a.clone()), put(&repo2, "b", b.clone()));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(get(&repo2, "a").await.unwrap(), a);
    assert_eq!(get(&repo, "b").await.unwrap(), b);
}

async fn put_lineage(
    repo: &Repository,
    name: &str,
    data: Vec<u8>,
    lineage: orca_repo::Lineage,
) -> orca_repo::Committed {
    put_parts(repo, name, data, lineage, 256 << 10, false).await
}

/// A writer with 4 MiB batches, `lineage` set, hashing in the caller's buffers or not.
fn lineage_writer(
    repo: &Repository,
    name: &str,
    lineage: orca_repo::Lineage,
    hash_in_caller: bool,
    unit: usize,
) -> orca_repo::PieceWriter {
    let mut w = repo
        .writer(
            name,
            PieceMeta::default(),
            &WriteOptions {
                batch_bytes: 4 << 20,
                hash_in_caller,
                unit,
                ..Default::default()
            },
        )
        .unwrap();
    w.set_lineage(lineage);
    w
}

/// Writes `data` in parts of `part` bytes from one buffer that is
/// overwritten after every call, as RMAN does.
async fn put_parts(
    repo: &Repository,
    name: &str,
    data: Vec<u8>,
    lineage: orca_repo::Lineage,
    part: usize,
    hash_in_caller: bool,
) -> orca_repo::Committed {
    put_units(
        repo,
        name,
        data,
        lineage,
        part,
        hash_in_caller,
        orca_repo::UNIT,
    )
    .await
}

/// [`put_parts`] with changes detected in units of `unit` bytes.
async fn put_units(
    repo: &Repository,
    name: &str,
    data: Vec<u8>,
    lineage: orca_repo::Lineage,
    part: usize,
    hash_in_caller: bool,
    unit: usize,
) -> orca_repo::Committed {
    let repo = repo.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let mut w = lineage_writer(&repo, &name, lineage, hash_in_caller, unit);
        let mut buf = vec![0u8; part];
        for p in data.chunks(part) {
            buf[..p.len()].copy_from_slice(p);
            w.write(&buf[..p.len()]).unwrap();
            buf.fill(0xEE);
        }
        w.finish().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scattered_block_changes_are_stored_as_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let n = 4096; // 32 MiB of 8 KiB blocks
    let data = blocks(n, 12);
    let first = put_lineage(&repo, "v1", data.clone(), Default::default()).await;
    // 1% of the blocks rewritten at random places: with 1 MiB chunks most
    // chunks change, but only the changed blocks may be stored.
    let mut changed = data.clone();
    let mut x = 7u64;
    for _ in 0..n / 100 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = (x >> 33) as usize % n;
        for byte in &mut changed[b * 8192 + 64..b * 8192 + 4096] {
            *byte = byte.wrapping_add(1);
        }
    }
    let second = put_lineage(&repo, "v2", changed.clone(), first.lineage.clone()).await;
    let s = second.manifest.header.meta.stats.clone().unwrap();
    assert!(s.delta_chunks > 0);
    assert_eq!(s.cache_hits + s.new_chunks, s.chunks, "{s:?}");
    assert!(
        s.new_bytes * 100 <= data.len() as u64 * 3,
        "{} new bytes for {} bytes with 1% of blocks changed",
        s.new_bytes,
        data.len()
    );
    assert_eq!(get(&repo, "v2").await.unwrap(), changed);
    assert_eq!(get(&repo, "v1").await.unwrap(), data);

    // A third version builds on the second: a delta on a delta, storing only its own change.
    let mut third = changed.clone();
    third[100 * 8192 + 10] ^= 1;
    let t = put_lineage(&repo, "v3", third.clone(), second.lineage.clone()).await;
    assert!(t.manifest.header.meta.stats.unwrap().new_bytes < 64 * 1024);
    assert_eq!(get(&repo, "v3").await.unwrap(), third);

    verify_clean(&repo, &store).await;
    // An unchanged re-run probes nothing at all.
    let again = put_lineage(&repo, "v4", third, t.lineage.clone()).await;
    let s4 = again.manifest.header.meta.stats.unwrap();
    assert_eq!((s4.probes, s4.new_chunks), (0, 0));
    // ... and says its lineage is the one it was given, which a changed version does not.
    assert!(again.lineage_unchanged);
    assert_eq!(again.lineage.entries, t.lineage.entries);
    assert!(!t.lineage_unchanged && !second.lineage_unchanged && !first.lineage_unchanged);
}

/// Daily versions of a 4 MiB source, each changing 2 new blocks (units) in each 1 MiB chunk:
/// every day's delta builds on the day before (a chain), so each day stores its own changes
/// and not all since the first full; at the chain's depth limit one version is a delta on
/// the full chunk of all the units changed since it, and a new chain starts. Every version
/// reads back, verify rebuilds every chain, a collection keeps the chains of what it keeps,
/// and a damaged link fails the reads above it, naming the chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_versions_chain_their_deltas_and_each_day_costs_its_own_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let chunks = 4;
    let mut data = blocks(chunks * 128, 44);
    let mut lineage = put_parts(
        &repo,
        "day0",
        data.clone(),
        Default::default(),
        1 << 20,
        true,
    )
    .await
    .lineage;
    let mut versions = vec![data.clone()];
    let mut cost = vec![0u64];
    for day in 1..=12usize {
        for c in 0..chunks {
            for k in 0..2 {
                let block = c * 128 + (day * 2 + k) * 2;
                for byte in &mut data[block * 8192 + 64..block * 8192 + 2048] {
                    *byte = byte.wrapping_add(day as u8);
                }
            }
        }
        // Both write paths: hashing in the caller's buffer (the SBT library's) and in chunks.
        let w = put_parts(
            &repo,
            &format!("day{day}"),
            data.clone(),
            lineage,
            256 << 10,
            day % 2 == 0,
        )
        .await;
        let s = w.manifest.header.meta.stats.clone().unwrap();
        assert_eq!((s.delta_chunks, s.new_chunks), (4, 4), "day {day}: {s:?}");
        cost.push(s.new_bytes);
        lineage = w.lineage;
        versions.push(data.clone());
    }
    eprintln!("bytes stored per day: {cost:?}");
    // Days 1-8 and 10-12 each store one day of changes: flat. Day 8's chains are as deep
    // as allowed, so day 9 stores the 9 days since the full chunks, on them.
    for day in (2..=8).chain(10..=12) {
        assert!(
            cost[day] * 2 < cost[1] * 3,
            "day {day} stored {} bytes, day 1 {}: {cost:?}",
            cost[day],
            cost[1]
        );
    }
    assert!(cost[9] > cost[1] * 6 && cost[9] < cost[1] * 11, "{cost:?}");
    for (day, v) in versions.iter().enumerate() {
        assert_eq!(
            &get(&repo, &format!("day{day}")).await.unwrap(),
            v,
            "day {day}"
        );
    }
    verify_clean(&repo, &store).await;

    // Rewriting most of chunk 0 stores it whole: the units the caller's buffer did not copy
    // are read back through its anchor's chain.
    for block in 20..120 {
        data[block * 8192 + 100] ^= 0x77;
    }
    let w = put_parts(&repo, "day13", data.clone(), lineage, 1 << 20, true).await;
    let s = w.manifest.header.meta.stats.clone().unwrap();
    assert!(
        (s.anchor_reads, s.new_chunks, s.delta_chunks) == (1, 1, 0),
        "{s:?}"
    );
    assert_eq!(get(&repo, "day13").await.unwrap(), data);

    // A collection after every version but the last two is gone keeps their chains whole.
    for day in 0..=11 {
        repo.delete(&format!("day{day}")).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let gc = store
        .gc(
            &orca_repo::GcOptions {
                grace: std::time::Duration::ZERO,
                repack_below: 0.5,
            },
            None,
        )
        .await
        .unwrap();
    assert!(gc.swept_chunks > 0, "{gc:?}");
    assert_eq!(get(&repo, "day12").await.unwrap(), versions[12]);
    assert_eq!(get(&repo, "day13").await.unwrap(), data);
    verify_clean(&repo, &store).await;

    // Negative control: one byte of day 10's delta of chunk 1 (a link of day 12's chain)
    // flipped in its pack fails day 12's read and verify, naming the damaged chunk.
    let m = repo.manifest("day12").await.unwrap();
    let top = m.chunks[1].id;
    let mut link = top;
    let mut chain = vec![top];
    while let Some(Some(base)) = store.index().kinds(&[link]).unwrap()[0].map(|k| k.base()) {
        chain.push(base);
        link = base;
    }
    assert_eq!(
        chain.len(),
        5,
        "day 12's chunk 1 sits on a 4-deep chain: {chain:?}"
    );
    let damaged = chain[2];
    let at = store.index().locate(&[damaged]).unwrap()[0]
        .clone()
        .unwrap();
    let pack = dir.path().join("packs").join(&at.pack[..2]).join(&at.pack);
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[at.entry.offset as usize + 48 + at.entry.payload_len as usize / 2] ^= 0x20;
    std::fs::write(&pack, &bytes).unwrap();
    let err = get(&repo, "day12").await.unwrap_err().to_string();
    assert!(err.contains(&damaged.short()), "{err}");
    let report = store
        .verify(Some(repo.codec().clone()), None)
        .await
        .unwrap();
    assert!(!report.is_clean(), "verify missed a damaged link");
}

/// An anchor's unit values come from the repository (the cache keeps chunk ids only): one
/// whose values do not open (a flipped byte) or that the repository does not hold (a
/// forged id) costs its position a whole chunk, never a wrong delta, and the other
/// positions stay deltas; every version reads back equal to what was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anchor_whose_values_cannot_be_read_costs_a_whole_chunk_not_a_wrong_delta() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let mut data = blocks(4 * 128, 45);
    let change = |data: &mut Vec<u8>, day: usize| {
        for c in 0..4 {
            let block = c * 128 + day * 3;
            data[block * 8192 + 100] ^= 0x5a;
        }
    };
    let v1 = put_parts(&repo, "v1", data.clone(), Default::default(), 1 << 20, true).await;
    change(&mut data, 1);
    let v2 = put_parts(&repo, "v2", data.clone(), v1.lineage, 256 << 10, true).await;
    let s = v2.manifest.header.meta.stats.clone().unwrap();
    assert_eq!((s.new_chunks, s.delta_chunks), (4, 4), "{s:?}");

    // Position 0's anchor (v2's delta): a byte of its values flipped in the pack.
    let damaged = v2.manifest.chunks[0].id;
    let at = store.index().locate(&[damaged]).unwrap()[0]
        .clone()
        .unwrap();
    let pack = dir.path().join("packs").join(&at.pack[..2]).join(&at.pack);
    let mut bytes = std::fs::read(&pack).unwrap();
    // blob header (48) | flags | base id (32) | u32 values_len | nonce (12) | values …
    bytes[at.entry.offset as usize + 48 + 1 + 32 + 4 + 12 + 3] ^= 0x01;
    std::fs::write(&pack, &bytes).unwrap();
    // Position 1's anchor: an id the repository never held.
    let mut lineage = v2.lineage.clone();
    let at1 = v2.manifest.chunks[0].len as u64;
    lineage.entries.get_mut(&at1).unwrap().anchor = Some(orca_repo::AnchorRef {
        id: ChunkId([9; 32]),
        len: 1 << 20,
    });

    // Both write paths: hashing in the caller's buffer (the SBT library's) and in chunks.
    for (day, hash_in_caller) in [(2, true), (3, false)] {
        let mut next = data.clone();
        change(&mut next, day);
        let name = format!("v3-{hash_in_caller}");
        let v3 = put_parts(
            &repo,
            &name,
            next.clone(),
            lineage.clone(),
            256 << 10,
            hash_in_caller,
        )
        .await;
        let s = v3.manifest.header.meta.stats.clone().unwrap();
        assert_eq!((s.new_chunks, s.delta_chunks), (4, 2), "{s:?}");
        assert_eq!(get(&repo, &name).await.unwrap(), next);
    }
}

/// Blocks of 2 and 4 KiB: with units of the block size, a changed block costs itself in a
/// delta, where 8 KiB units store the blocks around it too (the negative control, at the
/// default unit). A lineage written with another unit is no anchor: the next version is
/// stored whole, not as a delta in the wrong units. Every version reads back equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_blocks_are_changed_units_of_their_own() {
    for block in [2048usize, 4096] {
        let mut stored = Vec::new();
        for unit in [block, orca_repo::UNIT] {
            for hash_in_caller in [true, false] {
                let dir = tempfile::tempdir().unwrap();
                let (repo, store) = local_repo(dir.path()).await;
                let mut data = orca_testing::data::noise(4 << 20, block as u64);
                let put = |name: &'static str, data: &[u8], lineage, part, unit| {
                    put_units(
                        &repo,
                        name,
                        data.to_vec(),
                        lineage,
                        part,
                        hash_in_caller,
                        unit,
                    )
                };
                let stored_as = |c: &orca_repo::Committed| {
                    let s = c.manifest.header.meta.stats.clone().unwrap();
                    (s.new_chunks, s.delta_chunks, s.new_bytes)
                };
                let v1 = put("v1", &data, Default::default(), 1 << 20, unit).await;
                // 64 blocks, 16 a chunk, none beside another: each in a unit of 8 KiB of its own.
                for b in 0..64 {
                    data[(b * ((4 << 20) / block / 64) + 5) * block + 100] ^= 0x5a;
                }
                let v2 = put("v2", &data, v1.lineage.clone(), 256 << 10, unit).await;
                let (new, deltas, bytes) = stored_as(&v2);
                assert_eq!((new, deltas), (4, 4), "block {block} unit {unit}");
                assert_eq!(get(&repo, "v2").await.unwrap(), data);
                stored.push((unit, hash_in_caller, bytes));

                // v2's lineage, to a writer of the other unit: the changed chunk whole.
                let other = if unit == block {
                    orca_repo::UNIT
                } else {
                    block
                };
                data[7 * block] ^= 1;
                let v3 = put("v3", &data, v2.lineage, 256 << 10, other).await;
                let (new, deltas, _) = stored_as(&v3);
                assert_eq!(
                    (new, deltas),
                    (1, 0),
                    "block {block} unit {other} on {unit}"
                );
                assert_eq!(get(&repo, "v3").await.unwrap(), data);
                verify_clean(&repo, &store).await;
            }
        }
        eprintln!("blocks of {block} B, 64 changed: stored {stored:?}");
        // 64 changed blocks of random bytes cost about 64 blocks, where 8 KiB units cost
        // 64 × 8 KiB.
        for &(unit, _, bytes) in &stored {
            let blocks = 64
                * if unit == block {
                    block
                } else {
                    orca_repo::UNIT
                } as u64;
            assert!(
                bytes >= blocks && bytes < blocks + blocks / 4 + (16 << 10),
                "block {block} unit {unit}: {stored:?}"
            );
        }
    }
}

/// A backup without a lineage (a lost cache, a new host) finds its unchanged chunks by probing;
/// they still become the positions' anchors, their values being in their payloads, so the
/// next change is stored as deltas, not whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_found_by_probing_anchor_the_next_version() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _store) = local_repo(dir.path()).await;
    let mut data = blocks(4 * 128, 46);
    put_parts(&repo, "v1", data.clone(), Default::default(), 1 << 20, true).await;
    let again = put_parts(
        &repo,
        "v1-again",
        data.clone(),
        Default::default(),
        1 << 20,
        true,
    )
    .await;
    let s = again.manifest.header.meta.stats.clone().unwrap();
    assert_eq!((s.new_chunks, s.cache_hits), (0, 0), "{s:?}");
    for c in 0..4 {
        data[(c * 128 + 7) * 8192 + 100] ^= 0x5a;
    }
    let v2 = put_parts(&repo, "v2", data.clone(), again.lineage, 256 << 10, true).await;
    let s = v2.manifest.header.meta.stats.clone().unwrap();
    assert_eq!((s.new_chunks, s.delta_chunks), (4, 4), "{s:?}");
    assert_eq!(get(&repo, "v2").await.unwrap(), data);
}

/// Reading a file in parallel parts gives the same chunks as streaming it,
/// at every awkward length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_read_in_parallel_chunk_like_streams() {
    let (repo, _s, dir) = mem_repo(Cipher::Aes256Gcm).await;
    let data = blocks(400, 31);
    for len in [
        0usize,
        1,
        16383,
        16385,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        data.len() - 5,
    ] {
        let path = dir.path().join(format!("f{len}"));
        std::fs::write(&path, &data[..len]).unwrap();
        let streamed = put(&repo, &format!("s{len}"), data[..len].to_vec())
            .await
            .unwrap();
        let r = repo.clone();
        let name = format!("f{len}");
        let from_file = tokio::task::spawn_blocking(move || {
            let mut w = r
                .writer(&name, PieceMeta::default(), &WriteOptions::default())
                .unwrap();
            let f = std::fs::File::open(&path).unwrap();
            assert_eq!(w.write_file(&f, |_| {}).unwrap(), len as u64);
            w.finish().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            from_file.manifest.chunks, streamed.manifest.chunks,
            "length {len}"
        );
        assert_eq!(get(&repo, &format!("f{len}")).await.unwrap(), &data[..len]);
    }
}

/// A file many read-ahead windows long (2 chunks each) keeps its chunks in order, and its
/// repeat finds each position's last version: unchanged chunks are cache hits, the two
/// changed ones deltas on the chunk at their own position, not a neighbour's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_read_ahead_keep_each_chunk_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _store) = local_repo(dir.path()).await;
    let mut data = blocks(1216, 51);
    let path = dir.path().join("datafile");
    let store = |name: &'static str, data: Vec<u8>, lineage: Option<orca_repo::Lineage>| {
        let (r, path) = (repo.clone(), path.clone());
        async move {
            std::fs::write(&path, &data).unwrap();
            tokio::task::spawn_blocking(move || {
                let mut w = r
                    .writer(
                        name,
                        PieceMeta::default(),
                        &WriteOptions {
                            batch_bytes: 2 << 20,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                if let Some(l) = lineage {
                    w.set_lineage(l);
                }
                let f = std::fs::File::open(&path).unwrap();
                assert_eq!(w.write_file(&f, |_| {}).unwrap(), data.len() as u64);
                w.finish().unwrap()
            })
            .await
            .unwrap()
        }
    };
    let first = store("day1", data.clone(), None).await;
    assert_eq!(first.manifest.chunks.len(), 10);
    for chunk in [1usize, 6] {
        data[(chunk << 20) + 8192 * 3 + 100] ^= 0x5a;
    }
    let second = store("day2", data.clone(), Some(first.lineage.clone())).await;
    let stats = second.manifest.header.meta.stats.clone().unwrap();
    assert_eq!(stats.cache_hits, 8);
    assert_eq!(stats.delta_chunks, 2);
    for (i, (a, b)) in first
        .manifest
        .chunks
        .iter()
        .zip(&second.manifest.chunks)
        .enumerate()
    {
        assert_eq!(a.id == b.id, i != 1 && i != 6, "chunk {i}");
    }
    assert_eq!(get(&repo, "day2").await.unwrap(), data);
    assert_ne!(get(&repo, "day1").await.unwrap(), data);
}

/// A piece that ends inside the first chunk of the last one (a level 1 after a level 0 of the
/// same datafile) with units equal to that chunk's and others changed: the short chunk is
/// stored whole, its skipped units read back from the longer anchor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_piece_hashed_in_place_completes_from_a_longer_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _store) = local_repo(dir.path()).await;
    let data = blocks(256, 41);
    let first = put_parts(
        &repo,
        "full",
        data.clone(),
        Default::default(),
        256 << 10,
        true,
    )
    .await;
    let mut short = data[..600 << 10].to_vec();
    for b in short.iter_mut().skip(64 << 10).take(400 << 10) {
        *b = b.wrapping_add(1);
    }
    put_parts(
        &repo,
        "incr",
        short.clone(),
        first.lineage.clone(),
        256 << 10,
        true,
    )
    .await;
    assert_eq!(get(&repo, "incr").await.unwrap(), short);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_in_the_callers_buffers_stores_what_copying_stores() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    // 6 MiB and a bit, so the last chunk is short and ends mid-unit.
    let n = 770;
    let data = blocks(n, 31);
    let first = put_parts(
        &repo,
        "v1",
        data.clone(),
        Default::default(),
        256 << 10,
        true,
    )
    .await;
    assert_eq!(get(&repo, "v1").await.unwrap(), data);

    // Unchanged: every chunk a cache hit, nothing copied or probed.
    let same = put_parts(
        &repo,
        "v2",
        data.clone(),
        first.lineage.clone(),
        256 << 10,
        true,
    )
    .await;
    let s = same.manifest.header.meta.stats.clone().unwrap();
    assert_eq!((s.new_chunks, s.probes, s.anchor_reads), (0, 0, 0), "{s:?}");
    assert_eq!(same.manifest.chunks, first.manifest.chunks);

    // Scattered blocks changed: deltas built from the copied units only.
    let mut scattered = data.clone();
    for b in (5..n).step_by(97) {
        scattered[b * 8192 + 300] ^= 0x33;
    }
    // Chunk 2 rewritten entirely, chunk 4 more than half: stored whole, the
    // skipped units of the first read back from the anchor.
    for byte in &mut scattered[2 << 20..3 << 20] {
        *byte = byte.wrapping_add(7);
    }
    for byte in &mut scattered[(4 << 20) + (1 << 18)..5 << 20] {
        *byte = byte.wrapping_add(9);
    }
    // Odd write sizes split units across calls.
    for (k, (name, part)) in [("v3", 256 << 10), ("v3odd", 100_003)]
        .into_iter()
        .enumerate()
    {
        let mut scattered = scattered.clone();
        for b in (11 + k..n).step_by(89) {
            scattered[b * 8192 + 1000] ^= 0x5c;
        }
        let c = put_parts(
            &repo,
            name,
            scattered.clone(),
            first.lineage.clone(),
            part,
            true,
        )
        .await;
        let s = c.manifest.header.meta.stats.clone().unwrap();
        assert!(s.delta_chunks > 0, "{name}: {s:?}");
        // Whole units inside one write are skipped when unchanged, so chunk 4
        // must be completed from its anchor.
        assert!(k == 1 || s.anchor_reads > 0, "{name}: {s:?}");
        assert_eq!(get(&repo, name).await.unwrap(), scattered, "{name}");
        // Same fingerprints as plain ingest of the same bytes.
        let plain = put_lineage(
            &repo,
            &format!("{name}-plain"),
            scattered.clone(),
            first.lineage.clone(),
        )
        .await;
        assert_eq!(c.manifest.chunks, plain.manifest.chunks, "{name}");
    }

    // A later version builds on the lineage the in-place writer recorded.
    let mut third = scattered.clone();
    third[(4 << 20) + 8192 * 3 + 5] ^= 1;
    let t = put_parts(
        &repo,
        "v4",
        third.clone(),
        same.lineage.clone(),
        256 << 10,
        true,
    )
    .await;
    assert!(t.manifest.header.meta.stats.unwrap().new_bytes < 2 << 20);
    assert_eq!(get(&repo, "v4").await.unwrap(), third);

    verify_clean(&repo, &store).await;
}

/// An object store that, once armed, holds the first manifest read that finds nothing until
/// the test lets it go: the window in which another writer commits that very piece.
#[derive(Debug)]
struct HeldRead {
    inner: std::sync::Arc<dyn object_store::ObjectStore>,
    armed: std::sync::atomic::AtomicBool,
    missed: tokio::sync::Notify,
    go: tokio::sync::Notify,
}

impl std::fmt::Display for HeldRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeldRead({})", self.inner)
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for HeldRead {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        let r = self.inner.get_opts(location, options).await;
        let manifest = location.as_ref().starts_with("pieces/");
        if manifest
            && matches!(r, Err(object_store::Error::NotFound { .. }))
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            self.missed.notify_one();
            self.go.notified().await;
        }
        r
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A read of a piece that finds no manifest, racing a commit of that piece (another channel
/// asking whether the name is free, a listing settling commits in flight) must not take away
/// the catalog row the commit writes a moment later: RMAN would then fail to delete a piece
/// it recorded as AVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_misses_a_manifest_leaves_a_concurrent_commit_listed() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::sync::Arc::new(HeldRead {
        inner: std::sync::Arc::new(object_store::memory::InMemory::new()),
        armed: false.into(),
        missed: tokio::sync::Notify::new(),
        go: tokio::sync::Notify::new(),
    });
    let (repo, store) = Repository::init(
        held.clone(),
        "memory".into(),
        &orca_repo::IndexLocation::Sqlite(dir.path().join("index.sqlite")),
        &opts(),
        &orca_repo::NewKey::Passphrase(PASS.into()),
    )
    .await
    .unwrap();
    held.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.manifest("p").await })
    };
    held.missed.notified().await;
    put(&repo, "p", blocks(5, 7)).await.unwrap();
    held.go.notify_one();
    assert!(reader.await.unwrap().unwrap().is_none());
    assert!(
        store.index().piece("p").unwrap().is_some(),
        "the committed piece lost its catalog row"
    );
    assert_eq!(get(&repo, "p").await.unwrap(), blocks(5, 7));
    assert!(store.delete("p").await.unwrap());
}

/// Writes a demultiplexed piece: each part is a literal (`None`) or a run of a lane, and
/// each lane starts from `lanes`' lineage of it, in the unit `units` gives it (`None`: the
/// writer's, the layout's and that of lanes not given one; 8 KiB by default).
async fn put_lanes(
    repo: &Repository,
    name: &str,
    parts: Vec<(Option<u32>, Vec<u8>)>,
    lanes: std::collections::BTreeMap<u32, orca_repo::Lineage>,
    units: &[(Option<u32>, usize)],
) -> orca_repo::Committed {
    let repo = repo.clone();
    let name = name.to_string();
    let mut units: std::collections::BTreeMap<_, _> = units.iter().copied().collect();
    let unit = units.remove(&None).unwrap_or(orca_repo::UNIT);
    tokio::task::spawn_blocking(move || {
        let wopts = WriteOptions {
            unit,
            ..Default::default()
        };
        let mut w = repo.writer(&name, PieceMeta::default(), &wopts).unwrap();
        for (lane, unit) in units.into_iter().filter_map(|(l, u)| Some((l?, u))) {
            w.set_lane_unit(lane, unit).unwrap();
        }
        for (lane, lineage) in lanes {
            w.set_lane_lineage(lane, lineage);
        }
        for (lane, part) in parts {
            match lane {
                Some(lane) => w.write_lane(lane, &part).unwrap(),
                None => w.write_literal(&part).unwrap(),
            }
        }
        w.finish().unwrap()
    })
    .await
    .unwrap()
}

/// Two datafiles multiplexed in runs of 16 blocks, between RMAN's bytes.
fn multiplexed(file1: &[u8], file2: &[u8]) -> Vec<(Option<u32>, Vec<u8>)> {
    let mut parts = vec![(None, b"set header".to_vec())];
    let run = 16 * 8192;
    for i in 0..file1.len().max(file2.len()).div_ceil(run) {
        for (lane, file) in [(1, file1), (2, file2)] {
            if let Some(r) = file.get(i * run..((i + 1) * run).min(file.len())) {
                parts.push((Some(lane), r.to_vec()));
            }
        }
    }
    parts.push((None, b"set trailer".to_vec()));
    parts
}

/// A multiplexed piece of a file of 8 KiB blocks (lane 1) and one of 2 KiB blocks (lane 2),
/// in a writer whose unit is the smallest block size, as the SBT library's: each lane set
/// to its file's block size carries one value a block, where the 8 KiB file in 2 KiB units
/// carries four (the negative control: no lane units). Changed blocks of both files are
/// deltas on their lane's last version either way. A lane lineage recorded in 2 KiB units
/// is no anchor for the lane now in 8 KiB units: its changed chunks go whole once, never as
/// a delta in the wrong units. Every version reads back equal and the repository verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lane_takes_the_unit_of_its_blocks() {
    let by_lane = [(None, 2048), (Some(1), 8192), (Some(2), 2048)];
    let file1 = blocks(4 * 128, 81);
    let file2 = orca_testing::data::noise(1 << 20, 82);
    // Blocks changed as DML changes them: header, a row, tail.
    let change = |f1: &mut Vec<u8>, f2: &mut Vec<u8>, day: usize| {
        for b in 0..16 {
            let at = (b * 32 + day) * 8192;
            for o in [20, 3000 + day, 8190] {
                f1[at + o] ^= 0x5a;
            }
            f2[(b * 32 + day) * 2048 + 100] ^= 0x5a;
        }
    };
    let mut stored = Vec::new();
    for units in [&by_lane[..], &by_lane[..1]] {
        let dir = tempfile::tempdir().unwrap();
        let (repo, store) = local_repo(dir.path()).await;
        let (mut f1, mut f2) = (file1.clone(), file2.clone());
        let day0 = put_lanes(
            &repo,
            "day0",
            multiplexed(&f1, &f2),
            Default::default(),
            units,
        )
        .await;
        change(&mut f1, &mut f2, 1);
        let day1 = put_lanes(
            &repo,
            "day1",
            multiplexed(&f1, &f2),
            day0.lanes.clone(),
            units,
        )
        .await;
        let s = day1.manifest.header.meta.stats.clone().unwrap();
        assert_eq!((s.new_chunks, s.delta_chunks), (5, 5), "{units:?}: {s:?}");
        assert_eq!(
            get(&repo, "day1").await.unwrap(),
            flat(&multiplexed(&f1, &f2))
        );
        let full = day0.manifest.header.meta.stats.unwrap().new_bytes;
        stored.push((full, s.new_bytes));

        // The next day in lane units, on a lineage in the writer's unit (or in its own).
        change(&mut f1, &mut f2, 2);
        let day2 = put_lanes(
            &repo,
            "day2",
            multiplexed(&f1, &f2),
            day1.lanes.clone(),
            &by_lane,
        )
        .await;
        let s = day2.manifest.header.meta.stats.clone().unwrap();
        let deltas = if units.len() == 1 { 1 } else { 5 };
        assert_eq!(
            (s.new_chunks, s.delta_chunks),
            (5, deltas),
            "{units:?}: {s:?}"
        );
        assert_eq!(
            get(&repo, "day2").await.unwrap(),
            flat(&multiplexed(&f1, &f2))
        );
        assert_eq!(
            get(&repo, "day0").await.unwrap(),
            flat(&multiplexed(&file1, &file2))
        );
        verify_clean(&repo, &store).await;
    }
    eprintln!("(full, day 1) stored, by lane and in 2 KiB units: {stored:?}");
    // 512 blocks of 8 KiB: 512 values of 24 bytes, not 2048.
    let values = (2048 - 512) * 24;
    assert!(
        stored[0].0 + values * 9 / 10 <= stored[1].0,
        "the 8 KiB lane's values: {stored:?}"
    );
    // 16 changed 8 KiB blocks (compressed) and 16 of 2 KiB (not), with their heads.
    assert!(stored[0].1 < 16 * (8192 + 2048), "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_unit_is_set_before_its_bytes_and_is_a_unit() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _store) = local_repo(dir.path()).await;
    let r = repo.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = r
            .writer("p", PieceMeta::default(), &WriteOptions::default())
            .unwrap();
        for bad in [1024, 3072, 16384] {
            let e = w.set_lane_unit(1, bad).unwrap_err().to_string();
            assert!(e.contains(&format!("unit {bad} is not")), "{e}");
        }
        w.set_lane_unit(1, 2048).unwrap();
        w.write_lane(1, &[7; 4096]).unwrap();
        let e = w.set_lane_unit(1, 4096).unwrap_err().to_string();
        assert!(e.contains("lane 1 already has bytes"), "{e}");
        w.set_lane_unit(2, 4096).unwrap();
        w.write_lane(2, &[8; 4096]).unwrap();
        w.finish().unwrap();
    })
    .await
    .unwrap();
    assert_eq!(
        get(&repo, "p").await.unwrap(),
        [[7u8; 4096], [8u8; 4096]].concat()
    );
}

/// A datafile that grows at its end (blocks newly formatted join the next full) lengthens
/// its lane's last chunk; that chunk goes as granules at fixed lane offsets, so the next
/// full stores the grown granule and not the whole tail, and a tail region that fills up
/// stays in granules instead of being stored again whole as one chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_that_grows_at_its_end_costs_its_last_granule_not_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _store) = local_repo(dir.path()).await;
    // File 1: 3 whole chunks and a tail of 124 blocks (7 granules of 16 blocks and one of
    // 12); file 2: 3 whole chunks and a tail of 4 granules.
    let file1 = blocks(508, 71);
    let mut file2 = blocks(448, 72);
    let day0 = put_lanes(
        &repo,
        "day0",
        multiplexed(&file1, &file2),
        Default::default(),
        &[],
    )
    .await;
    let chunks = &day0.manifest.chunks;
    let tails: Vec<u32> = chunks[chunks.len() - 13..chunks.len() - 1]
        .iter()
        .map(|c| c.len / 8192)
        .collect();
    assert_eq!(
        tails,
        [16, 16, 16, 16, 16, 16, 16, 12, 16, 16, 16, 16],
        "tails in granules, then the layout"
    );

    // File 1 gains 6 blocks at its end, which fill its tail region and start another; one
    // block of file 2 changes in its first chunk.
    let grown = blocks(514, 71);
    assert_eq!(grown[..file1.len()], file1[..]);
    file2[100 * 8192 + 50] ^= 0x5A;
    let day1 = put_lanes(
        &repo,
        "day1",
        multiplexed(&grown, &file2),
        day0.lanes.clone(),
        &[],
    )
    .await;
    let s = day1.manifest.header.meta.stats.clone().unwrap();
    // Stored: file 1's grown granule (a delta of its 4 new blocks on its last version) and
    // its new tail, file 2's changed chunk as a delta, the layout. The filled region as one
    // chunk would compress to about 350 KB.
    assert_eq!((s.new_chunks, s.delta_chunks), (4, 2), "{s:?}");
    assert!(s.new_bytes < 64 << 10, "{s:?}");
    assert_eq!(
        get(&repo, "day0").await.unwrap(),
        flat(&multiplexed(&file1, &blocks(448, 72)))
    );
    assert_eq!(
        get(&repo, "day1").await.unwrap(),
        flat(&multiplexed(&grown, &file2))
    );
    assert!(day1.lanes_unchanged.is_empty(), "both lanes changed");

    // Day 2 changes one block of file 2 only: file 1's lane is reported unchanged (its
    // cache entry need only be touched), file 2's is not.
    file2[5 * 8192 + 9] ^= 0x11;
    let day2 = put_lanes(
        &repo,
        "day2",
        multiplexed(&grown, &file2),
        day1.lanes.clone(),
        &[],
    )
    .await;
    assert_eq!(day2.lanes_unchanged, [1].into());
    assert_eq!(day2.lanes[&1].entries, day1.lanes[&1].entries);
    assert_ne!(day2.lanes[&2].entries, day1.lanes[&2].entries);
    assert!(
        !day2.lineage_unchanged,
        "a demultiplexed piece has no whole lineage"
    );
}

/// A source that grows at its end every day (a datafile's newly formatted blocks, RMAN's
/// piece trailer after them) keeps its last chunk a delta on that chunk's last version:
/// each day stores its new blocks and its changed one, not the whole tail again, through
/// the depth limit (day 9 rebuilds on the first full tail, shorter by all the growth
/// since) and on both write paths. Every version reads back and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_that_grows_every_day_is_a_delta_on_its_last_version() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    // Two whole chunks and a tail of 80 blocks, then a block more a day and one block of
    // the tail rewritten; the trailer is RMAN's: it moves to the new end.
    let trailer = b"piece trailer".repeat(100);
    let mut data = blocks(2 * 128 + 100, 91);
    let piece = |blocks: usize, data: &[u8]| [&data[..blocks * 8192], &trailer[..]].concat();
    let first = put_parts(
        &repo,
        "day0",
        piece(336, &data),
        Default::default(),
        256 << 10,
        true,
    )
    .await;
    let mut lineage = first.lineage;
    let mut versions = vec![piece(336, &data)];
    let mut cost = vec![0];
    for day in 1..=11usize {
        let rewritten = 256 + day;
        for byte in &mut data[rewritten * 8192 + 64..rewritten * 8192 + 2048] {
            *byte = byte.wrapping_add(day as u8);
        }
        let v = piece(336 + day, &data);
        let w = put_parts(
            &repo,
            &format!("day{day}"),
            v.clone(),
            lineage,
            256 << 10,
            day % 2 == 0,
        )
        .await;
        let s = w.manifest.header.meta.stats.clone().unwrap();
        assert_eq!(
            (s.chunks, s.cache_hits, s.new_chunks, s.delta_chunks),
            (3, 2, 1, 1),
            "day {day}: the tail is a delta: {s:?}"
        );
        cost.push(s.new_bytes);
        lineage = w.lineage;
        versions.push(v);
    }
    eprintln!("bytes stored per day: {cost:?}");
    // A day's delta: the new block, the rewritten one, the one the trailer was in (about
    // 10 KB compressed); the tail stored whole would be twenty times that.
    for day in (1..=8).chain(10..=11) {
        assert!(cost[day] < 24 << 10, "day {day}: {cost:?}");
    }
    assert!(
        cost[9] < 100 << 10,
        "day 9 rebuilds on day 0's tail: {cost:?}"
    );

    // A tail that more than doubles (40 blocks, then 100): its new blocks outnumber the
    // units it keeps, yet only those it keeps decide between a delta and a whole chunk.
    let short = put_parts(
        &repo,
        "short",
        piece(296, &data),
        Default::default(),
        1 << 20,
        true,
    )
    .await;
    data[257 * 8192 + 100] ^= 0x33;
    let long = piece(356, &data);
    let w = put_parts(&repo, "long", long.clone(), short.lineage, 1 << 20, true).await;
    let s = w.manifest.header.meta.stats.clone().unwrap();
    assert_eq!(
        (s.new_chunks, s.delta_chunks, s.anchor_reads),
        (1, 1, 0),
        "{s:?}"
    );
    versions.push(long);
    for (day, v) in versions.iter().enumerate() {
        let name = if day == 12 {
            "long".to_string()
        } else {
            format!("day{day}")
        };
        assert_eq!(&get(&repo, &name).await.unwrap(), v, "{name}");
    }
    verify_clean(&repo, &store).await;
}

fn flat(parts: &[(Option<u32>, Vec<u8>)]) -> Vec<u8> {
    parts.iter().flat_map(|(_, d)| d.iter().copied()).collect()
}

/// A datafile as RMAN streams it: a header that differs per backup, then the formatted blocks
/// of `blocks` (8 KiB each) with the never-formatted ones (`holes`) left out. With
/// `by_block`, each run of 128 block numbers is a region of its own ([`PieceWriter::realign`]),
/// as the SBT library writes a datafile.
async fn put_datafile(
    repo: &Repository,
    name: &str,
    blocks: &[u8],
    holes: &[usize],
    lineage: orca_repo::Lineage,
    by_block: bool,
    hash_in_caller: bool,
) -> (orca_repo::Committed, Vec<u8>) {
    let (repo, name) = (repo.clone(), name.to_string());
    let mut stream = format!("RMAN piece header of {name}").into_bytes();
    stream.resize(16 << 10, 0x5a);
    let mut parts = vec![(0u64, stream.clone())];
    for (no, block) in blocks.chunks(8192).enumerate() {
        if holes.contains(&no) {
            continue;
        }
        let region = no as u64 / 128 + 1;
        if parts.last().unwrap().0 != region {
            parts.push((region, Vec::new()));
        }
        parts.last_mut().unwrap().1.extend_from_slice(block);
        stream.extend_from_slice(block);
    }
    let committed = tokio::task::spawn_blocking(move || {
        let mut w = lineage_writer(&repo, &name, lineage, hash_in_caller, orca_repo::UNIT);
        for (region, bytes) in &parts {
            if by_block && *region > 0 {
                w.realign(*region).unwrap();
            }
            for p in bytes.chunks(256 << 10) {
                w.write(p).unwrap();
            }
        }
        w.finish().unwrap()
    })
    .await
    .unwrap();
    (committed, stream)
}

/// RMAN leaves never-formatted blocks out of a backup: when one in the middle of a datafile is
/// formatted, every later block moves up in the stream. Keyed by stream offset, every later
/// chunk is new (the negative control); keyed by block number, only the chunk that holds the
/// block is stored, on both write paths, and so when a block leaves the stream again. Every
/// version reads back as its stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_formatted_mid_file_costs_its_own_chunk_not_the_rest_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let chunks_of = |c: &orca_repo::Committed| c.manifest.header.meta.stats.clone().unwrap();
    for (seed, by_block, hash_in_caller) in [(31, true, true), (32, true, false), (33, false, true)]
    {
        // Data of its own per case: the repository is shared.
        let data = blocks(1024, seed);
        let tag = format!("{by_block}-{hash_in_caller}");
        // Blocks 300 and 301 never formatted; then 300 is; then 700 is freed.
        let mut lineage = orca_repo::Lineage::default();
        let mut streams = Vec::new();
        for (v, holes) in [&[300, 301][..], &[301], &[301, 700]]
            .into_iter()
            .enumerate()
        {
            let (c, stream) = put_datafile(
                &repo,
                &format!("v{v}-{tag}"),
                &data,
                holes,
                lineage,
                by_block,
                hash_in_caller,
            )
            .await;
            let st = chunks_of(&c);
            eprintln!("{tag} v{v}, blocks {holes:?} left out: {st:?}");
            match (v, by_block) {
                // The header's chunk and the one of blocks 256-383, which holds more than
                // half of its blocks past the new one, so is stored whole: at most one
                // chunk's bytes.
                (1, true) => {
                    assert_eq!(st.new_chunks, 2, "{tag}: {st:?}");
                    assert!(st.new_bytes < 1 << 20, "{tag}: {st:?}");
                }
                (1, false) => assert!(st.new_chunks >= 6, "{tag}: {st:?}"),
                (2, true) => assert_eq!(st.new_chunks, 2, "{tag}: {st:?}"),
                _ => {}
            }
            lineage = c.lineage;
            streams.push(stream);
        }
        for (v, s) in streams.into_iter().enumerate() {
            assert_eq!(
                get(&repo, &format!("v{v}-{tag}")).await.unwrap(),
                s,
                "v{v} {tag}"
            );
        }
    }
    verify_clean(&repo, &store).await;
}

/// Regions only go forward and start at 1, in a plain piece or a lane; a demultiplexed
/// piece has no plain regions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_must_increase() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _store) = local_repo(dir.path()).await;
    tokio::task::spawn_blocking(move || {
        let mut w = repo
            .writer("r", PieceMeta::default(), &WriteOptions::default())
            .unwrap();
        assert!(w.realign(0).is_err());
        w.realign(2).unwrap();
        w.write(b"blocks").unwrap();
        let e = w.realign(1).unwrap_err().to_string();
        assert!(e.contains("does not follow"), "{e}");
        assert!(
            w.realign(1 << 24)
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        w.realign(3).unwrap();
        w.abort();
        let mut w = repo
            .writer("l", PieceMeta::default(), &WriteOptions::default())
            .unwrap();
        w.write_lane(1, b"lane").unwrap();
        assert!(w.realign(1).is_err());
        w.realign_lane(1, 2).unwrap();
        w.write_lane(1, b"region 2").unwrap();
        let e = w.realign_lane(1, 2).unwrap_err().to_string();
        assert!(e.contains("does not follow"), "{e}");
        assert!(w.realign_lane(1, 1 << 16).is_err());
        assert!(w.realign_lane(1, 0).is_err());
        w.abort();
    })
    .await
    .unwrap();
}

/// A chunk that loses bytes at its end (a datafile region whose trailing RMAN bytes moved on
/// to the next region, or blocks freed at a file's end) is a delta on its longer last
/// version, and a chain of such versions, shrinking and growing across the depth limit's
/// re-root, reads back whole on both write paths; verify rebuilds every chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_that_shrinks_and_grows_is_a_delta_on_its_last_version() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let all = blocks(300, 57);
    let mut lineage = orca_repo::Lineage::default();
    let mut versions = Vec::new();
    for day in 0..12usize {
        // 1 MiB, then a tail of 100 blocks on even days and 60 on odd ones, one block of it
        // changed each day.
        let tail = if day % 2 == 0 { 100 } else { 60 };
        let mut data = all[..(128 + tail) * 8192].to_vec();
        data[(130 + day) * 8192 + 99] ^= day as u8 + 1;
        let w = put_parts(
            &repo,
            &format!("day{day}"),
            data.clone(),
            lineage,
            256 << 10,
            day % 3 != 0,
        )
        .await;
        let s = w.manifest.header.meta.stats.clone().unwrap();
        eprintln!("day {day}: {s:?}");
        if day > 0 && day % 2 == 1 {
            assert_eq!((s.delta_chunks, s.new_chunks), (1, 1), "day {day}: {s:?}");
            assert!(s.new_bytes < 64 << 10, "day {day}: {s:?}");
        }
        lineage = w.lineage;
        versions.push(data);
    }
    for (day, v) in versions.iter().enumerate() {
        assert_eq!(
            &get(&repo, &format!("day{day}")).await.unwrap(),
            v,
            "day {day}"
        );
    }
    verify_clean(&repo, &store).await;
}

/// A piece far longer than the window of anchors a writer reads at once (256 positions, or
/// twice the chunks it reads ahead of the one it hands on) finds each position's anchor as
/// its stream reaches it: every changed chunk is a delta, on each write path (copying,
/// hashing in the caller's buffers, a file read ahead in parallel), and reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_read_a_window_at_a_time_reach_the_end_of_a_long_piece() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, store) = local_repo(dir.path()).await;
    let chunk = 16384usize;
    let n = 1100; // chunks of 2 units: more than four windows of 256, two of 512
    let opts = |hash_in_caller| WriteOptions {
        chunker: Some(ChunkerSpec::Fixed { size: chunk as u32 }),
        batch_bytes: 4 << 20,
        hash_in_caller,
        ..Default::default()
    };
    let write = |name: String, data: Vec<u8>, lineage: orca_repo::Lineage, mode: usize| {
        let (repo, opts, file) = (repo.clone(), opts(mode == 1), dir.path().join(&name));
        tokio::task::spawn_blocking(move || {
            let mut w = repo.writer(&name, PieceMeta::default(), &opts).unwrap();
            w.set_lineage(lineage);
            if mode == 2 {
                std::fs::write(&file, &data).unwrap();
                w.write_file(&std::fs::File::open(&file).unwrap(), |_| {})
                    .unwrap();
            } else {
                let mut buf = vec![0u8; 256 << 10];
                for p in data.chunks(buf.len()) {
                    buf[..p.len()].copy_from_slice(p);
                    w.write(&buf[..p.len()]).unwrap();
                    buf.fill(0xEE);
                }
            }
            w.finish().unwrap()
        })
    };
    let data = blocks(n * 2, 5);
    let first = write("v1".into(), data.clone(), Default::default(), 0)
        .await
        .unwrap();
    for mode in 0..3 {
        // One block of every third chunk, changed otherwise on each path so that no path
        // finds what another stored.
        let mut changed = data.clone();
        let mut count = 0;
        for c in (mode..n).step_by(3) {
            for byte in &mut changed[c * chunk + 64..c * chunk + 2048] {
                *byte = byte.wrapping_add(mode as u8 + 1);
            }
            count += 1;
        }
        let name = format!("v2-{mode}");
        let w = write(name.clone(), changed.clone(), first.lineage.clone(), mode)
            .await
            .unwrap();
        let s = w.manifest.header.meta.stats.clone().unwrap();
        assert_eq!(
            (s.new_chunks, s.delta_chunks),
            (count, count),
            "path {mode}: every changed chunk a delta on its anchor: {s:?}"
        );
        assert!(get(&repo, &name).await.unwrap() == changed, "path {mode}");
    }
    verify_clean(&repo, &store).await;
}
