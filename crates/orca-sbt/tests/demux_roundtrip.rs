//! A piece split into Oracle blocks by datafile and RMAN's own bytes, stored lane by lane
//! and read back: byte for byte the piece, whatever the interleaving, the block sizes, and
//! bytes that look like blocks where none is.

mod support;

use std::sync::OnceLock;

use orca_oracle::Scn;
use orca_oracle::block::{BlockHeader, Rdba, finish_block};
use orca_repo::{ChunkerSpec, PieceMeta, ReadOptions, RepoError, Repository, WriteOptions};
use orca_sbt::demux::{Part, Splitter};
use proptest::prelude::*;

const PASSWORD: &str = "demux-test";

struct Repo {
    _tmp: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    repo: Repository,
}

/// One repository for every case: opening one costs a key derivation.
fn repo() -> &'static Repo {
    static REPO: OnceLock<Repo> = OnceLock::new();
    REPO.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        support::init_repo(&dir, PASSWORD);
        let (rt, repo) = support::open_repo(&dir, PASSWORD);
        Repo {
            _tmp: tmp,
            rt,
            repo,
        }
    })
}

fn block(size: usize, file: u32, no: u32, fill: u8) -> Vec<u8> {
    let mut b = vec![fill; size];
    b[20..28].copy_from_slice(&u64::from(no).to_le_bytes());
    let h = BlockHeader::new(
        6,
        size,
        Rdba::new(file, no).unwrap(),
        Scn(100 + u64::from(no)),
        1,
    )
    .unwrap();
    finish_block(&mut b, &h).unwrap();
    b
}

/// A piece as RMAN might lay one out: runs of blocks of several files at their
/// alignment, record headers, padding, and decoys (blocks at offsets no block of their size
/// may start at, blocks inside "header" bytes, RMAN bytes with kcbh format bytes).
#[derive(Debug, Clone)]
enum Item {
    Run {
        size_log: u32,
        file: u32,
        first: u32,
        n: u32,
    },
    Header(usize, u8),
    Decoy(u32, u32),
    Zeros(usize),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => (11u32..=15, 1u32..6, 0u32..1000, 1u32..12).prop_map(|(size_log, file, first, n)| Item::Run { size_log, file, first, n }),
        2 => (1usize..3000, any::<u8>()).prop_map(|(n, b)| Item::Header(n, b)),
        2 => (0u32..4, 1u32..6).prop_map(|(k, f)| Item::Decoy(k, f)),
        1 => (1usize..20000).prop_map(Item::Zeros),
    ]
}

fn lay_out(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::new();
    for it in items {
        match it {
            Item::Run {
                size_log,
                file,
                first,
                n,
            } => {
                let size = 1usize << size_log;
                out.resize(out.len().next_multiple_of(size), 0);
                for no in *first..first + n {
                    out.extend(block(size, *file, no, u8::try_from(no % 251).unwrap()));
                }
            }
            Item::Header(n, b) => {
                let mut h = vec![*b; *n];
                // A kcbh format byte where a scanner looks.
                if *n > 1 {
                    h[1] = 0xa2;
                }
                out.extend(h);
            }
            Item::Decoy(k, file) => {
                // A whole 8 KiB block starting 2 KiB past an 8 KiB boundary, then one in
                // the middle of a 16 KiB slot: neither is at its own alignment or both are
                // taken for blocks; either way they must come back in place.
                out.resize(out.len().next_multiple_of(2048), 0x11);
                if out.len().is_multiple_of(8192) {
                    out.extend(vec![0x22; 2048]);
                }
                out.extend(block(8192, *file, 7 + *k, 0x33));
                out.extend(vec![0x44; 512 * *k as usize]);
            }
            Item::Zeros(n) => out.resize(out.len() + n, 0),
        }
    }
    out
}

/// Stores `stream` demultiplexed, fed in slices of `slice` bytes, and reads it back.
fn round_trip(name: &str, stream: &[u8], slice: usize) -> Vec<u8> {
    let r = repo();
    let opts = WriteOptions {
        chunker: Some(ChunkerSpec::Fixed { size: 12288 }),
        ..Default::default()
    };
    let mut w = r.repo.writer(name, PieceMeta::default(), &opts).unwrap();
    let mut sink = |p: Part<'_>| -> Result<(), RepoError> {
        match p {
            Part::Block { file, bytes } => w.write_lane(file, bytes),
            Part::Other(bytes) => w.write_literal(bytes),
        }
    };
    let mut split = Splitter::default();
    for part in stream.chunks(slice.max(1)) {
        split.feed(part, &mut sink).unwrap();
    }
    split.finish(&mut sink).unwrap();
    let committed = w.finish().unwrap();
    if !stream.is_empty() {
        assert!(committed.manifest.header.demux.is_some());
    }
    let mut reader =
        r.rt.block_on(r.repo.reader(name, &ReadOptions::default()))
            .unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut back).unwrap();
    back
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_demultiplexed_piece_comes_back_byte_for_byte(
        items in proptest::collection::vec(item(), 0..24),
        slice in prop_oneof![Just(262_144usize), 1usize..70_000],
        case in any::<u64>(),
    ) {
        let stream = lay_out(&items);
        let back = round_trip(&format!("case-{case}-{}", stream.len()), &stream, slice);
        prop_assert!(back == stream, "{} bytes back for {}", back.len(), stream.len());
    }
}

/// The same blocks interleaved two ways make the same lanes: the second piece's lanes are
/// all chunks the first stored.
#[test]
fn interleaving_does_not_change_the_lanes() {
    let files: Vec<Vec<Vec<u8>>> = (1..=3)
        .map(|f| {
            (0..200)
                .map(|b| block(8192, f, b, u8::try_from(b % 7 + f).unwrap()))
                .collect()
        })
        .collect();
    let piece = |order: &[(usize, usize)]| {
        let mut out = vec![0x52u8; 8192];
        let mut next = [0usize; 3];
        for &(f, n) in order {
            out.extend(vec![0x52u8; 512]);
            out.resize(out.len().next_multiple_of(8192), 0);
            for _ in 0..n {
                out.extend(&files[f][next[f]]);
                next[f] += 1;
            }
        }
        out
    };
    let a = piece(&[(0, 50), (1, 100), (2, 8), (0, 150), (2, 192), (1, 100)]);
    let b = piece(&[(2, 64), (1, 10), (0, 200), (2, 136), (1, 190)]);
    assert_ne!(a, b);
    assert_eq!(round_trip("order-a", &a, 262_144), a);
    let r = repo();
    let ids = |name: &str| -> Vec<(Option<u32>, orca_repo::ChunkRef)> {
        let m = r.rt.block_on(r.repo.manifest(name)).unwrap();
        let d = m.header.demux.clone().unwrap();
        d.chunk_lanes().zip(m.chunks).collect()
    };
    assert_eq!(round_trip("order-b", &b, 100_000), b);
    let first: std::collections::HashSet<_> =
        ids("order-a").into_iter().map(|(_, c)| c.id).collect();
    let data: Vec<_> = ids("order-b")
        .into_iter()
        .filter(|(l, _)| l.is_some())
        .collect();
    assert!(!data.is_empty());
    for (lane, c) in data {
        assert!(
            first.contains(&c.id),
            "lane {lane:?} chunk {} is new",
            c.id.short()
        );
    }
}
