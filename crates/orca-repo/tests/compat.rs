//! Backward compatibility of the repository's formats (docs/design.md, "Versions and
//! compatibility"), in the manner of redb's backward_compatibility tests.
//!
//! `tests/fixtures/v<N>/` holds a small repository as one build wrote it: config, a
//! passphrase key and the key file, packs, manifests (one with a delta chunk, one cut by
//! FastCDC), the SQLite index, the lineage cache, and the hashes of the PostgreSQL
//! migrations. Sets are never edited or removed.
//!
//! - [`every_fixture_set_reads_back`]: every set, read with today's code, gives back the
//!   known input byte for byte, and its index and lineage say what they should.
//! - [`format_changes_need_a_version_bump`]: the newest set is written again by today's
//!   code; every format whose version equals the set's must come out the same, else the test
//!   names the format and asks for a bump and a new set. Nonces, salts, times and random
//!   names differ between runs, so those formats are compared field by field (decrypted
//!   payloads, JSON with those fields masked, SQLite schemas and rows); packs are compared
//!   byte for byte by packing the set's own payloads again.
//! - [`a_changed_format_is_caught`]: the negative control: one changed detail per format
//!   (a trailer field order, a manifest field, an index column, a config field) fails the
//!   comparison with the bump message.
//!
//! A new set, after a version bump:
//! `cargo test -p orca-repo --test compat -- --ignored write_fixtures`.

// Test arithmetic on offsets and lengths of small fixtures (far below every type's range).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orca_repo::Opened;
use orca_repo::Store;
use orca_repo::index::PG_MIGRATIONS as MIGRATIONS;
use orca_repo::{
    Backend, ChunkId, ChunkerSpec, Cipher, Codec, EncodedChunk, FileType, IndexLocation, KeySource,
    Keys, Manifest, PieceFilter, PieceMeta, ReadOptions, RepoConfig, RepoError, Repository,
    WriteOptions,
};
use orca_repo::{CONFIG_VERSION, DEFAULT_ZSTD_LEVEL, KeyStorage};
use orca_repo::{KdfParams, KeyFile, WrappedKey};
use orca_repo::{Lineage, LineageCache};
use orca_testing::fs::{copy_dir, version_dirs};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

// The inputs of every fixture set. Never change them: old sets must keep reading back to them.
const PASSPHRASE: &str = "orca compat fixture";
const REPO_ID: &str = "c0a7f1c5e70000000000000000000001";
const CREATED: i64 = 1_800_000_000;
const CHUNK: u32 = 32 << 10;
const LINEAGE_KEY: &str = "datafile:1234/1";
const KDF: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};
/// Written in this order; the second is the first with one 8 KiB block rewritten, stored as
/// a delta through the lineage of the first.
/// The pieces today's code writes into a set; an older set holds those its pieces.json names.
const PIECES: [&str; 4] = [
    "ORCL/df1_v1",
    "ORCL/df1_v2",
    "ORCL/arch_1_10",
    "ORCL/mux_1_2",
];

/// The piece of a multiplexed backup set as written lane by lane: each part is RMAN's own
/// bytes (`None`, kept in the layout) or a run of one datafile's blocks (its lane).
fn mux_parts() -> Vec<(Option<u32>, Vec<u8>)> {
    let mut parts = vec![(None, b"RMAN set header: files 1 and 2\n".to_vec())];
    for run in 0..3u64 {
        for file in [1u32, 2] {
            let blocks = (0..2).flat_map(|k| block(u64::from(file) * 1000 + run * 2 + k, 1));
            parts.push((Some(file), blocks.collect()));
        }
    }
    parts.push((None, noise(100, "mux trailer")));
    parts
}

fn master() -> [u8; 32] {
    *blake3::hash(b"orca compat fixture master key").as_bytes()
}

fn keys() -> Keys {
    Keys::from_master(master())
}

/// An Oracle-like 8 KiB block: number and version, then rows of text (compresses well).
fn block(n: u64, version: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(8192 + 64);
    b.extend_from_slice(&n.to_le_bytes());
    b.extend_from_slice(&version.to_le_bytes());
    let mut row = 0u64;
    while b.len() < 8192 {
        let value = (n * 7919 + row * 104_729 + version) % 100_000_000;
        b.extend_from_slice(
            format!("{n:06}|{row:04}|ORDER|SMITH|PAID|LONDON|{value:08}\n").as_bytes(),
        );
        row += 1;
    }
    b.truncate(8192);
    b
}

/// Incompressible bytes: the chunk the codec stores without zstd.
fn noise(len: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// What each piece restores to.
fn input(name: &str) -> Vec<u8> {
    match name {
        // Two 32 KiB chunks of blocks and a 4 KiB incompressible tail.
        "ORCL/df1_v1" => {
            let mut d: Vec<u8> = (0..8).flat_map(|n| block(n, 1)).collect();
            d.extend(noise(4096, "df1 tail"));
            d
        }
        // Block 2 (a unit of chunk 0) rewritten: chunk 0 becomes a delta, the rest is unchanged.
        "ORCL/df1_v2" => {
            let mut d = input("ORCL/df1_v1");
            d[2 * 8192..3 * 8192].copy_from_slice(&block(2, 2));
            d
        }
        "ORCL/arch_1_10" => (0..600u64)
            .map(|i| {
                format!(
                    "{i:05} redo change vector for object {} at scn {}\n",
                    i % 37,
                    5_000_000 + i * 3
                )
            })
            .collect::<String>()
            .into_bytes(),
        // Six blocks of each of two files, interleaved two by two, between RMAN's bytes.
        "ORCL/mux_1_2" => mux_parts().into_iter().flat_map(|(_, d)| d).collect(),
        other => panic!("no input is defined for piece {other}"),
    }
}

fn meta(name: &str) -> PieceMeta {
    let created = CREATED + PIECES.iter().position(|p| *p == name).unwrap() as i64;
    let mut meta = PieceMeta {
        database: Some("ORCL".into()),
        dbid: Some(1234),
        created,
        ..Default::default()
    };
    if name.contains("arch") {
        meta.file_type = FileType::Archivelog;
        meta.labels.insert("tag".into(), "ARCH_1".into());
    } else {
        meta.file_type = FileType::Datafile;
        meta.labels.insert("file#".into(), "1".into());
    }
    meta
}

fn chunker(name: &str) -> Option<ChunkerSpec> {
    name.contains("arch").then_some(ChunkerSpec::Cdc {
        min: 2048,
        avg: 8192,
        max: 16384,
    })
}

fn uses_lineage(name: &str) -> bool {
    name.contains("df1")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- writing a set

/// Writes a fixture set into `dir` (created) with today's code: the repository through
/// `Store::create` and the piece writer, the lineage through `LineageCache`, as a client does.
fn write_set(dir: &Path) {
    let repo_dir = dir.join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let keys = keys();
    let key_file = dir.join("key.json");
    KeyFile::new(&keys, REPO_ID).write_new(&key_file).unwrap();
    let config = RepoConfig {
        version: CONFIG_VERSION,
        id: REPO_ID.into(),
        created: CREATED,
        cipher: Cipher::Aes256Gcm,
        compression_level: DEFAULT_ZSTD_LEVEL,
        chunker: ChunkerSpec::Fixed { size: CHUNK },
        pack_size: 1 << 20,
        key_storage: KeyStorage::Passphrase,
        key_check: keys.key_check(REPO_ID),
    };
    let wrapped = WrappedKey::wrap(&keys, REPO_ID, PASSPHRASE, KDF).unwrap();
    let rt = runtime();
    let store = Arc::new(
        rt.block_on(Store::create(
            Store::local_objects(&repo_dir).unwrap(),
            repo_dir.display().to_string(),
            &IndexLocation::Sqlite(Store::local_index_path(&repo_dir)),
            &config,
            Some(&wrapped),
        ))
        .unwrap(),
    );
    let repo = rt
        .block_on(Repository::open(
            store.clone(),
            &KeySource::KeyFile(key_file),
        ))
        .unwrap();
    let cache = LineageCache::open(&dir.join("cache"), REPO_ID).unwrap();
    let mut pieces = BTreeMap::new();
    for name in PIECES {
        let data = input(name);
        let opts = WriteOptions {
            chunker: chunker(name),
            ..Default::default()
        };
        let mut w = repo.writer(name, meta(name), &opts).unwrap();
        if uses_lineage(name) {
            w.set_lineage(cache.load(LINEAGE_KEY).unwrap());
        }
        if name.contains("mux") {
            for (lane, part) in mux_parts() {
                match lane {
                    Some(lane) => w.write_lane(lane, &part).unwrap(),
                    None => w.write_literal(&part).unwrap(),
                }
            }
        } else {
            w.write(&data).unwrap();
        }
        let committed = w.finish().unwrap();
        if uses_lineage(name) {
            cache.store(LINEAGE_KEY, &committed.lineage).unwrap();
        }
        pieces.insert(
            name.to_string(),
            serde_json::json!({"size": data.len(), "blake3": blake3::hash(&data).to_hex().as_str()}),
        );
    }
    // Fills the index's pack_checks, so the set holds a row of every table that has one.
    let report = rt
        .block_on(store.verify(Some(repo.codec().clone()), None))
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    drop((repo, store, cache));
    drop(rt);
    for db in [
        "repo/index.sqlite",
        &format!("cache/lineage-{REPO_ID}.sqlite"),
    ] {
        for side in ["-wal", "-shm"] {
            let f = dir.join(format!("{db}{side}"));
            assert!(!f.exists(), "{} left open", f.display());
        }
    }
    let hashes: String = MIGRATIONS
        .iter()
        .enumerate()
        .map(|(n, sql)| format!("{} {}\n", n + 1, blake3::hash(sql.as_bytes()).to_hex()))
        .collect();
    std::fs::write(dir.join("postgres-migrations.txt"), hashes).unwrap();
    write_json(
        &dir.join("pieces.json"),
        &serde_json::to_value(pieces).unwrap(),
    );
    write_json(
        &dir.join("versions.json"),
        &serde_json::to_value(versions_of(dir)).unwrap(),
    );
}

fn write_json(path: &Path, v: &Value) {
    let mut text = serde_json::to_string_pretty(v).unwrap();
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// Adds `fixtures/v<newest + 1>` when a format's version moved past the newest set's.
#[test]
#[ignore = "writes a new fixture set into the source tree; run after a version bump"]
fn write_fixtures() {
    let newest = sets().last().cloned();
    let tmp = tempfile::tempdir().unwrap();
    write_set(tmp.path());
    let next = match &newest {
        Some((n, dir)) => {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(dir, copy.path());
            assert_ne!(
                versions_of(tmp.path()),
                versions_of(copy.path()),
                "every format still has the version fixtures/v{n} records: a new set needs a version bump"
            );
            n + 1
        }
        None => 1,
    };
    let dest = Path::new(FIXTURES).join(format!("v{next}"));
    assert!(!dest.exists(), "{} exists", dest.display());
    write_set(&dest);
    println!("wrote {}", dest.display());
}

// ---------------------------------------------------------------- reading sets

/// The fixture sets, oldest first.
fn sets() -> Vec<(u32, PathBuf)> {
    version_dirs(Path::new(FIXTURES))
}

/// Files under `dir/sub`, sorted.
fn files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.join(sub)];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn manifest_path(set: &Path, name: &str) -> PathBuf {
    set.join("repo").join(orca_repo::manifest_key(name))
}

/// Rows of a query, each value as text (blobs in hex, NULL as "NULL").
fn rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    use rusqlite::types::ValueRef;
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare(sql)
        .unwrap_or_else(|e| panic!("{}: {sql}: {e}", db.display()));
    let n = st.column_count();
    st.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    ValueRef::Null => "NULL".to_string(),
                    ValueRef::Integer(v) => v.to_string(),
                    ValueRef::Real(v) => v.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => hex::encode(b),
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// The pieces a set holds, as its pieces.json names them.
fn pieces_in(set: &Path) -> Vec<String> {
    json(&set.join("pieces.json"))
        .as_object()
        .expect("pieces.json is an object")
        .keys()
        .cloned()
        .collect()
}

fn index_db(set: &Path) -> PathBuf {
    set.join("repo/index.sqlite")
}

fn lineage_db(set: &Path) -> PathBuf {
    set.join(format!("cache/lineage-{REPO_ID}.sqlite"))
}

/// The version of every format, as the set's own bytes say (the SQLite files of a set are
/// opened, so pass a copy).
fn versions_of(set: &Path) -> BTreeMap<String, Value> {
    let num = |v: &Value| v.as_u64().expect("a version is a number");
    let one = |what: &str, found: Vec<u64>| -> Value {
        assert!(!found.is_empty(), "the set holds no {what}");
        assert!(
            found.windows(2).all(|w| w[0] == w[1]),
            "{what}s of several versions: {found:?}"
        );
        found[0].into()
    };
    let packs: Vec<Vec<u8>> = files(set, "repo/packs")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let pack_versions = packs
        .iter()
        .map(|b| u16::from_le_bytes([b[8], b[9]]) as u64)
        .collect();
    let ciphers = packs
        .iter()
        .filter_map(|b| parse_pack(b).ok())
        .flat_map(|p| p.blobs.into_iter().map(|b| (b.payload[0] >> 4) as u64))
        .collect();
    let wrapped = files(set, "repo/keys");
    // A build writes each manifest in the oldest version that holds it: the set records the
    // newest it wrote.
    let manifest = pieces_in(set)
        .iter()
        .map(|name| {
            let m = parse_manifest(&std::fs::read(manifest_path(set, name)).unwrap()).unwrap();
            num(&m.header["version"])
        })
        .max()
        .expect("the set holds no manifest");
    let meta = |db: &Path, k: &str| -> Value {
        rows(db, &format!("SELECT v FROM meta WHERE k = '{k}'"))[0][0]
            .parse::<u64>()
            .unwrap()
            .into()
    };
    let migrations = std::fs::read_to_string(set.join("postgres-migrations.txt"))
        .map(|t| t.lines().count() as u64)
        .unwrap_or(MIGRATIONS.len() as u64);
    BTreeMap::from([
        (
            CONFIG.key.into(),
            num(&json(&set.join("repo/config"))["version"]).into(),
        ),
        (
            KEY_FILE.key.into(),
            num(&json(&set.join("key.json"))["orca_key_file"]).into(),
        ),
        (WRAPPED_KEY.key.into(), json(&wrapped[0])["kdf"].clone()),
        (PACK.key.into(), one("pack", pack_versions)),
        (PAYLOAD.key.into(), one("payload cipher code", ciphers)),
        (MANIFEST.key.into(), manifest.into()),
        (INDEX.key.into(), meta(&index_db(set), "schema")),
        (LINEAGE.key.into(), meta(&lineage_db(set), "layout")),
        ("postgres_migrations".into(), migrations.into()),
    ])
}

// ---------------------------------------------------------------- the documented layouts

/// A pack parsed by the layout docs/design.md draws, independently of orca-repo's parser.
#[derive(Debug)]
struct Pack {
    header: Vec<u8>,
    blobs: Vec<Blob>,
    entries: Vec<Entry>,
}

/// A trailer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    id: [u8; 32],
    base: [u8; 32],
    offset: u32,
    payload_len: u32,
    raw_len: u32,
}

#[derive(Debug)]
struct Blob {
    id: [u8; 32],
    raw_len: u32,
    payload: Vec<u8>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn parse_pack(b: &[u8]) -> Result<Pack, String> {
    if b.len() < 32 || &b[..8] != b"ORCAPACK" || &b[b.len() - 8..] != b"ORCAPEND" {
        return Err("magic".into());
    }
    let trailer = u64::from_le_bytes(b[b.len() - 16..b.len() - 8].try_into().unwrap()) as usize;
    let mut blobs = Vec::new();
    let mut pos = 16;
    while pos < trailer {
        if &b[pos..pos + 4] != b"ORCB" {
            return Err(format!("no blob magic at {pos}"));
        }
        let id: [u8; 32] = b[pos + 4..pos + 36].try_into().unwrap();
        let (payload_len, raw_len, crc) = (le32(b, pos + 36), le32(b, pos + 40), le32(b, pos + 44));
        let payload = b[pos + 48..pos + 48 + payload_len as usize].to_vec();
        if crc32c::crc32c_append(crc32c::crc32c(&b[pos + 4..pos + 44]), &payload) != crc {
            return Err(format!("blob CRC at {pos}"));
        }
        blobs.push(Blob {
            id,
            raw_len,
            payload,
        });
        pos += 48 + payload_len as usize;
    }
    if pos != trailer {
        return Err("blobs overrun the trailer".into());
    }
    let count = le32(b, trailer) as usize;
    let end = trailer + 4 + count * 76;
    if end + 4 + 16 != b.len() || crc32c::crc32c(&b[trailer..end]) != le32(b, end) {
        return Err("trailer length or CRC".into());
    }
    let entries: Vec<_> = b[trailer + 4..end]
        .chunks_exact(76)
        .map(|e| Entry {
            id: e[..32].try_into().unwrap(),
            base: e[32..64].try_into().unwrap(),
            offset: le32(e, 64),
            payload_len: le32(e, 68),
            raw_len: le32(e, 72),
        })
        .collect();
    Ok(Pack {
        header: b[..16].to_vec(),
        blobs,
        entries,
    })
}

/// What design.md says beyond where the bytes are: zero padding, one trailer entry per blob
/// in order, naming its offset, lengths and the base a delta payload names.
fn check_layout(p: &Pack) -> Result<(), String> {
    if p.header[10..16] != [0; 6] {
        return Err("header padding is not zero".into());
    }
    if p.entries.len() != p.blobs.len() {
        return Err("trailer count differs from the blobs".into());
    }
    let mut at = 16u32;
    for (blob, e) in p.blobs.iter().zip(&p.entries) {
        if (e.id, e.offset, e.payload_len, e.raw_len)
            != (blob.id, at, blob.payload.len() as u32, blob.raw_len)
        {
            return Err(format!(
                "trailer entry at offset {} disagrees with its blob",
                e.offset
            ));
        }
        let base = match blob.payload[0] & 0x02 {
            0 => [0u8; 32],
            _ => blob.payload[1..33].try_into().unwrap(),
        };
        if e.base != base {
            return Err(format!(
                "trailer entry at offset {} names another base",
                e.offset
            ));
        }
        at += 48 + blob.payload.len() as u32;
    }
    Ok(())
}

/// A manifest parsed by the documented layout (the MAC is checked by `Manifest::decode`).
struct ParsedManifest {
    header: Value,
    header_bytes: Vec<u8>,
    table: Vec<u8>,
}

fn parse_manifest(b: &[u8]) -> Result<ParsedManifest, String> {
    if b.len() < 52 || &b[..8] != b"ORCAMAN1" {
        return Err("magic".into());
    }
    let hlen = le32(b, 8) as usize;
    let header_bytes = b[12..12 + hlen].to_vec();
    let header = serde_json::from_slice(&header_bytes).map_err(|e| e.to_string())?;
    let count = u64::from_le_bytes(b[12 + hlen..20 + hlen].try_into().unwrap()) as usize;
    let table = b[20 + hlen..b.len() - 32].to_vec();
    if table.len() != count * 36 {
        return Err("chunk table length differs from its count".into());
    }
    Ok(ParsedManifest {
        header,
        header_bytes,
        table,
    })
}

/// `v` with the values under each of `paths` (JSON pointers) replaced by their type: what
/// differs between two writes of the same content.
fn masked(v: &Value, paths: &[&str]) -> Value {
    let mut v = v.clone();
    for p in paths {
        if let Some(x) = v.pointer_mut(p) {
            *x = shape(x);
        }
    }
    v
}

/// The keys and value types of `v`, without its values.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => Value::Null,
    }
}

// ---------------------------------------------------------------- (a) reading every set

#[test]
fn every_fixture_set_reads_back() {
    let sets = sets();
    assert!(!sets.is_empty(), "no fixture set under {FIXTURES}");
    for (n, set) in &sets {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(set, tmp.path());
        read_set(*n, tmp.path());
    }
}

fn read_set(n: u32, set: &Path) {
    let recorded: BTreeMap<String, Value> =
        serde_json::from_value(json(&set.join("versions.json"))).unwrap();
    assert_eq!(versions_of(set), recorded, "fixtures/v{n}/versions.json");
    for line in std::fs::read_to_string(set.join("postgres-migrations.txt"))
        .unwrap()
        .lines()
    {
        let (k, hash) = line.split_once(' ').unwrap();
        let k: usize = k.parse().unwrap();
        assert_eq!(
            blake3::hash(MIGRATIONS[k - 1].as_bytes()).to_hex().as_str(),
            hash,
            "PostgreSQL index migration {k} changed after its release (fixtures/v{n}): \
             restore it and add the change as migration {}",
            MIGRATIONS.len() + 1
        );
    }

    let rt = runtime();
    let store = Arc::new(rt.block_on(Store::open_local(&set.join("repo"))).unwrap());
    // Git keeps the fixture 0644; a key file others can read is refused, so read a 0600 copy.
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("key.json");
    std::fs::copy(set.join("key.json"), &key_file).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let by_file = rt
        .block_on(Repository::open(
            store.clone(),
            &KeySource::KeyFile(key_file),
        ))
        .unwrap();
    let by_passphrase = rt
        .block_on(Repository::open(
            store.clone(),
            &KeySource::Passphrase(PASSPHRASE.into()),
        ))
        .unwrap();
    let keys = keys();
    assert_eq!(by_file.config().id, REPO_ID);
    assert_eq!(by_file.config().key_check, keys.key_check(REPO_ID));

    let expected = json(&set.join("pieces.json"));
    let listed = rt.block_on(by_file.list(&PieceFilter::default())).unwrap();
    let names = pieces_in(set);
    assert_eq!(listed.len(), names.len(), "fixtures/v{n}: {listed:?}");
    let mut manifests = BTreeMap::new();
    for name in names.iter().map(String::as_str) {
        let want = input(name);
        assert_eq!(
            expected[name]["blake3"].as_str(),
            Some(blake3::hash(&want).to_hex().as_str()),
            "the input of {name} changed: it must stay what fixtures/v{n} recorded"
        );
        for repo in [&by_file, &by_passphrase] {
            assert!(
                read_piece(&rt, repo, name) == want,
                "fixtures/v{n}: {name} does not read back byte for byte"
            );
        }
        let m = rt.block_on(by_file.manifest(name)).unwrap();
        assert_eq!(m.header.size, want.len() as u64);
        assert_eq!(
            m.header.chunker,
            chunker(name).unwrap_or(ChunkerSpec::Fixed { size: CHUNK })
        );
        let mut want_meta = meta(name);
        want_meta.stats = m.header.meta.stats.clone();
        assert_eq!(m.header.meta, want_meta, "fixtures/v{n}: {name}");
        assert!(m.header.meta.stats.is_some());
        let info = listed.iter().find(|i| i.name == name).unwrap();
        assert_eq!(
            (info.size, info.chunks, info.file_type, info.created),
            (
                want.len() as u64,
                m.chunks.len() as u64,
                want_meta.file_type,
                want_meta.created
            )
        );
        manifests.insert(name, m);
    }
    let (v1, v2) = (&manifests["ORCL/df1_v1"], &manifests["ORCL/df1_v2"]);
    assert_eq!(v1.chunks.len(), 3);
    assert!(
        manifests["ORCL/arch_1_10"].chunks.len() > 2,
        "CDC cuts the log"
    );
    // A multiplexed piece (from sets of manifest version 3) is stored as each file's lane
    // of blocks and a layout lane.
    if let Some(mux) = manifests.get("ORCL/mux_1_2") {
        assert_eq!(
            mux.header.version, 3,
            "fixtures/v{n}: a demultiplexed manifest"
        );
        let demux = mux.header.demux.as_ref().expect("a lane table");
        let lanes: std::collections::BTreeSet<_> = demux.runs.iter().map(|r| r.0).collect();
        assert_eq!(lanes, [None, Some(1), Some(2)].into(), "fixtures/v{n}");
        assert!(demux.stored > 2 * 6 * 8192, "fixtures/v{n}: {demux:?}");
    }

    // The index holds every chunk; chunk 0 of v2 is a delta on chunk 0 of v1, the tail is
    // stored without zstd, and the payloads have the documented layout.
    let ids: Vec<ChunkId> = manifests
        .values()
        .flat_map(|m| m.chunks.iter().map(|c| c.id))
        .collect();
    assert!(rt.block_on(store.missing(&ids)).unwrap().is_empty());
    let payloads = rt.block_on(store.get_chunks(&ids)).unwrap();
    let payload = |id: &ChunkId| &payloads[ids.iter().position(|i| i == id).unwrap()];
    assert_ne!(v1.chunks[0].id, v2.chunks[0].id);
    assert_eq!(v1.chunks[1..], v2.chunks[1..]);
    assert_eq!(
        Codec::payload_base(payload(&v2.chunks[0].id)),
        Some(v1.chunks[0].id)
    );
    // From set 5 on, payloads carry their unit values ahead of the body: cipher code 3 is
    // AES-256-GCM with values.
    let values = if n >= 5 { 0x20 } else { 0 };
    assert_eq!(
        payload(&v2.chunks[0].id)[0],
        0x13 + values,
        "zstd | delta | AES-256-GCM"
    );
    assert_eq!(
        payload(&v1.chunks[0].id)[0],
        0x11 + values,
        "zstd | AES-256-GCM"
    );
    let tail = payload(&v1.chunks[2].id);
    let head = Codec::values_prefix_len(tail).unwrap_or(1);
    assert_eq!(
        head > 1,
        n >= 5,
        "fixtures/v{n}: unit values ahead of the body"
    );
    assert_eq!(
        (tail[0], tail.len() - head),
        (0x10 + values, 12 + 4096 + 16),
        "stored tail"
    );
    if n >= 5 {
        // A 32 KiB chunk stored whole carries its 4 units' values; the delta on it its one
        // rewritten unit's; a chunk of one unit or less has none (its id is its only value).
        let values_of = |id: &ChunkId| {
            let p = payload(id);
            let prefix = Codec::values_prefix_len(p).expect("a values section");
            by_file
                .codec()
                .open_values(id, &p[..prefix], "fixture")
                .unwrap()
        };
        use orca_repo::UnitValues::{Changed, Every};
        assert!(matches!(values_of(&v1.chunks[0].id), Some(Every(v)) if v.len() == 4));
        assert!(matches!(
            values_of(&v2.chunks[0].id),
            Some(Changed { units: 4, changed }) if changed.len() == 1
        ));
        assert_eq!(values_of(&v1.chunks[2].id), Some(Every(Vec::new())));
    }

    let report = rt
        .block_on(store.verify(Some(by_file.codec().clone()), None))
        .unwrap();
    assert!(report.is_clean(), "fixtures/v{n}: {:?}", report.problems);
    for p in files(set, "repo/packs") {
        parse_pack(&std::fs::read(&p).unwrap())
            .and_then(|pack| check_layout(&pack))
            .unwrap_or_else(|e| panic!("{} is not laid out as design.md says: {e}", p.display()));
    }
    drop((by_file, by_passphrase, store));

    // The committed index says what the objects say: an index rebuilt from them agrees.
    let rebuilt = tempfile::tempdir().unwrap();
    copy_dir(&set.join("repo"), rebuilt.path());
    std::fs::remove_file(rebuilt.path().join("index.sqlite")).unwrap();
    let again = Arc::new(rt.block_on(Store::open_local(rebuilt.path())).unwrap());
    let mut relisted = rt.block_on(again.list(&PieceFilter::default())).unwrap();
    drop(again);
    let strip = |v: &mut Vec<orca_repo::PieceInfo>| {
        v.sort_by(|a, b| a.name.cmp(&b.name));
        for i in v.iter_mut() {
            i.stored = 0;
        }
    };
    let mut listed = listed;
    strip(&mut listed);
    strip(&mut relisted);
    assert_eq!(
        listed, relisted,
        "fixtures/v{n}: the index and the objects disagree"
    );
    let placed = "SELECT hex(c.id), hex(c.base), p.name, c.offset, c.payload_len, c.raw_len \
                  FROM chunks c JOIN packs p ON p.pk = c.pack ORDER BY c.id";
    assert_eq!(
        rows(&index_db(set), placed),
        rows(&rebuilt.path().join("index.sqlite"), placed),
        "fixtures/v{n}: the index places chunks where the packs do not"
    );

    // The lineage cache: kept when its layout is today's (else dropped whole, by design).
    let layout = |db: &Path| rows(db, "SELECT v FROM meta WHERE k = 'layout'")[0][0].clone();
    let stored_layout = layout(&lineage_db(set));
    let cache = LineageCache::open(&set.join("cache"), REPO_ID)
        .unwrap()
        .with_limits(Duration::from_secs(100 * 365 * 86400), u64::MAX);
    let lineage = cache.load(LINEAGE_KEY).unwrap();
    drop(cache);
    if layout(&lineage_db(set)) != stored_layout {
        assert!(lineage.is_empty(), "a cache of another layout is dropped");
        return;
    }
    assert_eq!(lineage, expected_lineage(&keys, v1, v2, lineage.since));
    assert!(
        lineage.since > 0,
        "the session time vouches for the lineage"
    );
}

fn read_piece(rt: &tokio::runtime::Runtime, repo: &Repository, name: &str) -> Vec<u8> {
    let mut reader = rt
        .block_on(repo.reader(name, &ReadOptions::default()))
        .unwrap();
    let mut out = Vec::new();
    while let Some(c) = reader.next_chunk().unwrap() {
        out.extend_from_slice(&c);
    }
    out
}

/// After v2: each position names v2's chunk. Its anchor is v2's chunk where v2 changed it,
/// else v1's: a chunk of more than one unit (the 4 KiB tail has none), with the length of
/// that position.
fn expected_lineage(keys: &Keys, v1: &Manifest, v2: &Manifest, since: i64) -> Lineage {
    let (data1, data2) = (input("ORCL/df1_v1"), input("ORCL/df1_v2"));
    let mut offset = 0u64;
    let mut entries = std::collections::HashMap::new();
    for (old, new) in v1.chunks.iter().zip(&v2.chunks) {
        let range = offset as usize..offset as usize + old.len as usize;
        let (id1, cvs1) = keys.chunk_hash(&data1[range.clone()], true);
        let (id2, cvs2) = keys.chunk_hash(&data2[range], true);
        assert_eq!((id1, id2), (old.id, new.id));
        let anchor = if old.id == new.id {
            cvs1.map(|_| old.id)
        } else {
            cvs2.map(|_| new.id)
        }
        .map(|id| orca_repo::AnchorRef { id, len: old.len });
        entries.insert(
            offset,
            orca_repo::LineageEntry {
                chunk: new.id,
                anchor,
            },
        );
        offset += old.len as u64;
    }
    Lineage { entries, since }
}

/// A configuration or manifest newer than this build is refused, not misread.
#[test]
fn newer_versions_are_refused() {
    let (_, set) = sets().pop().expect("a fixture set");
    let mut config = json(&set.join("repo/config"));
    config["version"] = (CONFIG_VERSION + 1).into();
    let err = RepoConfig::parse(&serde_json::to_vec(&config).unwrap(), "config").unwrap_err();
    assert!(
        matches!(err, RepoError::UnsupportedVersion { what: "repository", found, .. } if found == CONFIG_VERSION + 1),
        "{err}"
    );

    let keys = keys();
    let bytes = std::fs::read(manifest_path(&set, PIECES[0])).unwrap();
    let mut m = Manifest::decode(&bytes, &keys, "m").unwrap();
    m.header.version = orca_repo::MANIFEST_VERSION + 1;
    let err = Manifest::decode(&m.encode(&keys).unwrap(), &keys, "m").unwrap_err();
    assert!(
        matches!(
            err,
            RepoError::UnsupportedVersion {
                what: "manifest",
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------- (b) writing it again

/// One persistent format: its key in versions.json, its name in messages, what to bump.
struct Format {
    key: &'static str,
    name: &'static str,
    bump: &'static str,
}

const CONFIG: Format = Format {
    key: "config",
    name: "config",
    bump: "CONFIG_VERSION (orca-repo src/config.rs)",
};
const KEY_FILE: Format = Format {
    key: "key_file",
    name: "key file",
    bump: "the key file's orca_key_file (orca-repo src/keys.rs)",
};
const WRAPPED_KEY: Format = Format {
    key: "passphrase_key_kdf",
    name: "passphrase key (keys/<id>)",
    bump: "its kdf name, which this build refuses (orca-repo src/keys.rs)",
};
const PACK: Format = Format {
    key: "pack",
    name: "pack",
    bump: "pack VERSION (orca-repo src/pack.rs)",
};
const PAYLOAD: Format = Format {
    key: "payload_cipher_code",
    name: "chunk payload",
    bump: "the cipher code in its flags to one this build refuses (orca-repo src/codec.rs)",
};
const MANIFEST: Format = Format {
    key: "manifest",
    name: "manifest",
    bump: "manifest VERSION (orca-repo src/manifest.rs)",
};
const INDEX: Format = Format {
    key: "index_schema",
    name: "index (index.sqlite)",
    bump: "SCHEMA_VERSION (orca-repo src/index/mod.rs)",
};
const LINEAGE: Format = Format {
    key: "lineage_layout",
    name: "lineage cache",
    bump: "LAYOUT (orca-repo src/lineage.rs)",
};

/// Collects the differences between a fixture set and a fresh write of it.
struct Diff {
    n: u32,
    bumped: BTreeSet<String>,
    found: Vec<String>,
}

impl Diff {
    /// Records a difference in `f`, unless its version moved (then a new set is asked for).
    fn check(&mut self, f: &Format, same: bool, detail: impl FnOnce() -> String) {
        if !same && !self.bumped.contains(f.key) {
            self.found.push(format!(
                "format {} changed without a version bump: bump {} and add fixtures/v{} ({})",
                f.name,
                f.bump,
                self.n + 1,
                detail()
            ));
        }
    }
}

/// Every difference between fixture set `n` (a copy at `set`) and `fresh`, written by today's
/// code, in a format whose version did not change; and a request for a new set for each
/// format whose version did.
fn differences(n: u32, set: &Path, fresh: &Path) -> Vec<String> {
    let (was, now) = (versions_of(set), versions_of(fresh));
    let mut d = Diff {
        n,
        bumped: BTreeSet::new(),
        found: Vec::new(),
    };
    for (k, v) in &now {
        let old = was.get(k).unwrap_or(&Value::Null);
        if v != old {
            d.found.push(format!(
                "{k} is version {v} now and {old} in fixtures/v{n}: add fixtures/v{} with \
                 `cargo test -p orca-repo --test compat -- --ignored write_fixtures` (keep v{n})",
                n + 1
            ));
            d.bumped.insert(k.clone());
        }
    }
    let read = |dir: &Path, p: &str| std::fs::read(dir.join(p)).unwrap();

    d.check(
        &CONFIG,
        read(set, "repo/config") == read(fresh, "repo/config"),
        || {
            format!(
                "repo/config was {} and is {}",
                String::from_utf8_lossy(&read(set, "repo/config")),
                String::from_utf8_lossy(&read(fresh, "repo/config"))
            )
        },
    );
    d.check(
        &KEY_FILE,
        read(set, "key.json") == read(fresh, "key.json"),
        || "key.json differs".into(),
    );
    let wrapped = |dir: &Path| {
        let f = files(dir, "repo/keys");
        assert_eq!(f.len(), 1);
        let v = json(&f[0]);
        let lens: Vec<usize> = ["salt", "nonce", "wrapped"]
            .iter()
            .map(|k| v[k].as_str().map_or(0, str::len))
            .collect();
        (
            masked(&v, &["/salt", "/nonce", "/wrapped", "/created"]),
            lens,
        )
    };
    let (w_set, w_fresh) = (wrapped(set), wrapped(fresh));
    d.check(&WRAPPED_KEY, w_set == w_fresh, || {
        format!("{w_set:?} became {w_fresh:?}")
    });

    compare_packs(&mut d, set, fresh);
    compare_manifests(&mut d, set, fresh);
    compare_sqlite(&mut d, &INDEX, &index_db(set), &index_db(fresh), INDEX_ROWS);
    compare_sqlite(
        &mut d,
        &LINEAGE,
        &lineage_db(set),
        &lineage_db(fresh),
        LINEAGE_ROWS,
    );
    d.found
}

/// Packs: the set's payloads packed again by today's store give the set's pack bytes; a
/// fresh write holds the same chunks, flags and content in the same packs.
fn compare_packs(d: &mut Diff, set: &Path, fresh: &Path) {
    let parsed = |dir: &Path| -> Vec<(Vec<u8>, Result<Pack, String>)> {
        files(dir, "repo/packs")
            .into_iter()
            .map(|p| {
                let b = std::fs::read(p).unwrap();
                let parsed = parse_pack(&b);
                (b, parsed)
            })
            .collect()
    };
    let mut old = parsed(set);
    let new = parsed(fresh);
    let unreadable: Vec<&String> = old
        .iter()
        .chain(&new)
        .filter_map(|(_, p)| p.as_ref().err())
        .collect();
    if !unreadable.is_empty() {
        d.check(&PACK, false, || {
            format!("packs not laid out as design.md says: {unreadable:?}")
        });
        return;
    }
    // Packs with deltas after the packs of their bases.
    old.sort_by_key(|(_, p)| {
        let p = p.as_ref().unwrap();
        p.blobs.iter().filter(|b| b.payload[0] & 2 != 0).count()
    });

    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let config =
        RepoConfig::parse(&std::fs::read(set.join("repo/config")).unwrap(), "config").unwrap();
    let store = rt
        .block_on(Store::create(
            Store::local_objects(tmp.path()).unwrap(),
            "repack".into(),
            &IndexLocation::Sqlite(tmp.path().join("index.sqlite")),
            &config,
            None,
        ))
        .unwrap();
    for (bytes, pack) in &old {
        let chunks = pack
            .as_ref()
            .unwrap()
            .blobs
            .iter()
            .map(|b| EncodedChunk {
                id: ChunkId(b.id),
                raw_len: b.raw_len,
                payload: b.payload.clone().into(),
            })
            .collect();
        let before = files(tmp.path(), "packs");
        rt.block_on(store.put_chunks(chunks)).unwrap();
        rt.block_on(store.flush()).unwrap();
        let written: Vec<_> = files(tmp.path(), "packs")
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        let again = std::fs::read(&written[0]).unwrap();
        d.check(&PACK, written.len() == 1 && again == *bytes, || {
            let at = bytes.iter().zip(&again).position(|(a, b)| a != b);
            format!(
                "the same payloads packed again give {} bytes instead of {}, first difference at {at:?}",
                again.len(),
                bytes.len()
            )
        });
    }
    drop(store);

    let codec = Codec::new(keys(), config.cipher, config.compression_level);
    let open = |id: &[u8; 32], b: &Blob| match codec.open(
        &ChunkId(*id),
        &b.payload,
        b.raw_len as usize,
        "p",
    ) {
        Ok(Opened::Full(p)) => Ok((None, p)),
        Ok(Opened::Delta { base, body }) => Ok((Some(base), body)),
        Err(e) => Err(e.to_string()),
    };
    for (_, p) in &old {
        let p = p.as_ref().unwrap();
        let first = p.entries[0].id;
        let Some(q) = new
            .iter()
            .filter_map(|(_, q)| q.as_ref().ok())
            .find(|q| q.entries[0].id == first)
        else {
            d.check(&PACK, false, || {
                format!("no fresh pack starts with chunk {}", hex::encode(first))
            });
            continue;
        };
        let layout = |p: &Pack| -> Vec<_> {
            p.entries
                .iter()
                .map(|e| (e.id, e.base, e.raw_len))
                .collect()
        };
        d.check(
            &PACK,
            p.header == q.header && layout(p) == layout(q),
            || {
                let diff = layout(p)
                    .into_iter()
                    .zip(layout(q))
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| {
                        format!(
                            "raw_len {} became {} in the trailer entry of chunk {}",
                            a.2,
                            b.2,
                            hex::encode(&a.0[..8])
                        )
                    });
                format!(
                    "a fresh write has header {} (was {}) and {}",
                    hex::encode(&q.header),
                    hex::encode(&p.header),
                    diff.unwrap_or_else(|| "other chunks".into())
                )
            },
        );
        for (a, b) in p.blobs.iter().zip(&q.blobs) {
            let stored_len = |b: &Blob| (b.payload[0] & 1 == 0).then_some(b.payload.len());
            let same = a.payload[0] == b.payload[0]
                && Codec::payload_base(&a.payload) == Codec::payload_base(&b.payload)
                && stored_len(a) == stored_len(b)
                && open(&a.id, a) == open(&b.id, b);
            d.check(&PAYLOAD, same, || {
                format!(
                    "chunk {}: flags {:#04x} became {:#04x}, or its base, length or content changed",
                    hex::encode(&a.id[..8]),
                    a.payload[0],
                    b.payload[0]
                )
            });
        }
    }
}

/// Manifests: today's code encodes the set's manifests to the same bytes, and a fresh write
/// gives the same header (write statistics aside) and chunk table.
fn compare_manifests(d: &mut Diff, set: &Path, fresh: &Path) {
    let keys = keys();
    for name in &pieces_in(set) {
        let old = std::fs::read(manifest_path(set, name)).unwrap();
        let again = Manifest::decode(&old, &keys, name)
            .and_then(|m| m.encode(&keys))
            .map(|b| b.to_vec());
        d.check(
            &MANIFEST,
            again.as_ref().ok() == Some(&old),
            || match &again {
                Ok(b) => format!(
                    "{name}: header {} is encoded as {}",
                    String::from_utf8_lossy(&parse_manifest(&old).unwrap().header_bytes),
                    String::from_utf8_lossy(&parse_manifest(b).unwrap().header_bytes)
                ),
                Err(e) => format!("{name}: {e}"),
            },
        );
        let new = std::fs::read(manifest_path(fresh, name)).unwrap();
        match (parse_manifest(&old), parse_manifest(&new)) {
            (Ok(a), Ok(b)) => {
                let (ha, hb) = (
                    masked(&a.header, &["/meta/stats"]),
                    masked(&b.header, &["/meta/stats"]),
                );
                d.check(&MANIFEST, ha == hb && a.table == b.table, || {
                    format!("{name}: header {ha} became {hb}, or the chunk table changed")
                });
            }
            (a, b) => d.check(&MANIFEST, false, || {
                format!("{name}: {:?} / {:?}", a.err(), b.err())
            }),
        }
    }
}

/// The rows of the index that a write of the same content reproduces (times, pack names
/// and sizes that depend on compression are compared by type).
const INDEX_ROWS: &[&str] = &[
    "SELECT k, CASE WHEN k IN ('repo_id', 'schema') THEN v ELSE typeof(v) END FROM meta ORDER BY k",
    "SELECT typeof(pk), length(name), typeof(size), chunks, typeof(created) FROM packs ORDER BY chunks",
    "SELECT hex(id), hex(base), typeof(pack), typeof(offset), typeof(payload_len), raw_len, typeof(last_ref) FROM chunks ORDER BY id",
    "SELECT name, database, dbid, file_type, created, size, chunks, typeof(stored), meta FROM pieces ORDER BY name",
    "SELECT count(*) FROM commits_in_flight",
    "SELECT count(*) FROM sessions",
    "SELECT length(name), typeof(checked), ok FROM pack_checks ORDER BY 1, 3",
];

const LINEAGE_ROWS: &[&str] = &[
    "SELECT k, v FROM meta ORDER BY k",
    "SELECT key, typeof(updated), typeof(since), bytes, hex(positions) FROM sources ORDER BY key",
];

/// A SQLite format: the same schema (`sqlite_master`) and the same rows.
fn compare_sqlite(d: &mut Diff, f: &Format, old: &Path, new: &Path, queries: &[&str]) {
    let schema =
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name";
    let (a, b) = (rows(old, schema), rows(new, schema));
    d.check(f, a == b, || {
        let gone: Vec<_> = a
            .iter()
            .filter(|r| !b.contains(r))
            .map(|r| r[3].clone())
            .collect();
        let came: Vec<_> = b
            .iter()
            .filter(|r| !a.contains(r))
            .map(|r| r[3].clone())
            .collect();
        format!("schema {gone:?} became {came:?}")
    });
    if a != b {
        return;
    }
    for q in queries {
        let (mut a, mut b) = (rows(old, q), rows(new, q));
        for r in a.iter_mut().chain(b.iter_mut()) {
            for v in r.iter_mut() {
                // A piece's metadata holds its write statistics, which are not format.
                if let Ok(j @ Value::Object(_)) = serde_json::from_str::<Value>(v) {
                    *v = masked(&j, &["/stats"]).to_string();
                }
            }
        }
        d.check(f, a == b, || format!("{q}: {a:?} became {b:?}"));
    }
}

#[test]
fn format_changes_need_a_version_bump() {
    let (n, newest) = sets().pop().expect("a fixture set");
    let tmp = tempfile::tempdir().unwrap();
    let (set, fresh) = (tmp.path().join("set"), tmp.path().join("fresh"));
    copy_dir(&newest, &set);
    write_set(&fresh);
    let found = differences(n, &set, &fresh);
    assert!(found.is_empty(), "\n{}\n", found.join("\n"));
}

// ---------------------------------------------------------------- negative control

/// One changed detail per format, applied to a copy of the newest set (as if the set had
/// been written by a build with that change), fails the comparison with the bump message.
#[test]
fn a_changed_format_is_caught() {
    let (n, newest) = sets().pop().expect("a fixture set");
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("fresh");
    write_set(&fresh);
    let keys = keys();
    type Change = Box<dyn Fn(&Path)>;
    let changes: Vec<(&str, &str, Change)> = vec![
        (
            "payload_len and raw_len swapped in the pack trailer",
            "format pack changed without a version bump: bump pack VERSION",
            Box::new(|set| {
                let path = &files(set, "repo/packs")[0];
                let mut b = std::fs::read(path).unwrap();
                let t =
                    u64::from_le_bytes(b[b.len() - 16..b.len() - 8].try_into().unwrap()) as usize;
                let count = le32(&b, t) as usize;
                for e in 0..count {
                    let at = t + 4 + e * 76 + 68;
                    let (pl, rl) = (b[at..at + 4].to_vec(), b[at + 4..at + 8].to_vec());
                    b[at..at + 4].copy_from_slice(&rl);
                    b[at + 4..at + 8].copy_from_slice(&pl);
                }
                let end = t + 4 + count * 76;
                let crc = crc32c::crc32c(&b[t..end]);
                b[end..end + 4].copy_from_slice(&crc.to_le_bytes());
                std::fs::write(path, b).unwrap();
            }),
        ),
        (
            "a field added to the manifest header",
            "format manifest changed without a version bump: bump manifest VERSION",
            Box::new(move |set| {
                let path = manifest_path(set, PIECES[0]);
                let m = parse_manifest(&std::fs::read(&path).unwrap()).unwrap();
                let mut header = m.header.clone();
                header["compression"] = "zstd".into();
                let header = serde_json::to_vec(&header).unwrap();
                let mut out = b"ORCAMAN1".to_vec();
                out.extend_from_slice(&(header.len() as u32).to_le_bytes());
                out.extend_from_slice(&header);
                out.extend_from_slice(&((m.table.len() / 36) as u64).to_le_bytes());
                out.extend_from_slice(&m.table);
                let mac = keys.mac(&[&out]);
                out.extend_from_slice(&mac);
                std::fs::write(&path, out).unwrap();
            }),
        ),
        (
            "a column added to the index",
            "format index (index.sqlite) changed without a version bump: bump SCHEMA_VERSION",
            Box::new(|set| {
                rusqlite::Connection::open(index_db(set))
                    .unwrap()
                    .execute_batch("ALTER TABLE pieces ADD COLUMN incarnation INTEGER")
                    .unwrap();
            }),
        ),
        (
            "a field added to the config",
            "format config changed without a version bump: bump CONFIG_VERSION",
            Box::new(|set| {
                let mut c = json(&set.join("repo/config"));
                c["dedup"] = true.into();
                std::fs::write(
                    set.join("repo/config"),
                    serde_json::to_vec_pretty(&c).unwrap(),
                )
                .unwrap();
            }),
        ),
    ];
    for (i, (what, message, change)) in changes.iter().enumerate() {
        let set = tmp.path().join(format!("changed{i}"));
        copy_dir(&newest, &set);
        change(&set);
        let found = differences(n, &set, &fresh);
        assert!(
            found.iter().any(|f| f.contains(message)),
            "{what} went unnoticed: {found:#?}"
        );
        assert!(
            found
                .iter()
                .all(|f| f.contains(&format!("add fixtures/v{}", n + 1))),
            "{found:#?}"
        );
    }
}
