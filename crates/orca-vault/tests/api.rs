//! The vault served for real on loopback: a client writes and reads through it; tokens keep
//! databases apart; bad requests get 4xx with a JSON error and change nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use orca_repo::{
    Backend, InitOptions, KdfParams, KeySource, NewKey, PieceFilter, PieceMeta, ReadOptions,
    Repository, WriteOptions,
};
use orca_vault::client::VaultClient;
use orca_vault::server::{Scope, Tokens, spawn_local};

const PASS: &str = "vault test passphrase";

fn init(dir: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(Repository::init_local(
        dir,
        &InitOptions {
            kdf: KdfParams {
                m_kib: 256,
                t: 1,
                p: 1,
            },
            ..Default::default()
        },
        &NewKey::Passphrase(PASS.into()),
    ))
    .unwrap();
}

/// A raw HTTP/1.1 request; returns (status, body).
fn raw(url: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn put(repo: &Repository, name: &str, db: &str, data: &[u8]) {
    let meta = PieceMeta {
        database: Some(db.into()),
        created: orca_repo::now_unix(),
        ..Default::default()
    };
    let mut w = repo.writer(name, meta, &WriteOptions::default()).unwrap();
    w.write(data).unwrap();
    w.finish().unwrap();
}

#[test]
fn pieces_round_trip_and_tokens_keep_databases_apart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("repo");
    init(&data);
    let tokens = Tokens::open(&data).unwrap();
    let orcl = tokens.create("ORCL", Scope::Backup).unwrap();
    let other = tokens.create("OTHER", Scope::Backup).unwrap();
    let reader = tokens.create("ORCL", Scope::Restore).unwrap();
    let url = spawn_local(&data).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = KeySource::Passphrase(PASS.into());
    let open = |t: &str| {
        let c: Arc<dyn Backend> = VaultClient::connect(&url, t).unwrap();
        rt.block_on(Repository::open(c, &key)).unwrap()
    };
    let a = open(&orcl);
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 / 13) as u8).collect();
    std::thread::scope(|s| {
        s.spawn(|| put(&a, "orcl/piece1", "ORCL", &bytes));
    });
    let read = |repo: &Repository, name: &str| -> orca_repo::Result<Vec<u8>> {
        let mut r = rt.block_on(repo.reader(name, &ReadOptions::default()))?;
        let mut out = Vec::new();
        std::thread::scope(|s| s.spawn(|| r.read_to_end(&mut out)).join().unwrap())
            .map_err(|e| orca_repo::RepoError::io("read", e))?;
        Ok(out)
    };
    assert_eq!(read(&a, "orcl/piece1").unwrap(), bytes);
    // A second write of the same data sends nothing new.
    std::thread::scope(|s| {
        s.spawn(|| put(&a, "orcl/piece2", "ORCL", &bytes));
    });

    // The restore token reads; it may not write.
    let r = open(&reader);
    assert_eq!(read(&r, "orcl/piece1").unwrap(), bytes);

    // Another database's token sees nothing and may neither read nor delete.
    let b = open(&other);
    assert!(
        rt.block_on(b.list(&PieceFilter::default()))
            .unwrap()
            .is_empty()
    );
    let e = read(&b, "orcl/piece1").unwrap_err().to_string();
    assert!(e.contains("refused the token"), "{e}");
    let e = rt
        .block_on(b.delete("orcl/piece1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused the token"), "{e}");
    assert_eq!(
        rt.block_on(a.list(&PieceFilter::default())).unwrap().len(),
        2
    );

    // No token: 401 with a JSON error; a wrong one too.
    let (st, body) = raw(&url, "GET", "/api/v1/pieces", None, b"");
    assert_eq!(st, 401);
    assert!(body.contains("\"hint\""), "{body}");
    let (st, _) = raw(&url, "GET", "/api/v1/pieces", Some("orca_nope"), b"");
    assert_eq!(st, 401);
    let (st, body) = raw(
        &url,
        "GET",
        "/api/v1/pieces/manifest?name=orcl%2Fpiece1",
        Some(&other),
        b"",
    );
    assert_eq!(st, 403, "{body}");

    // Malformed bodies: 400 and nothing changes.
    let (st, body) = raw(
        &url,
        "POST",
        "/api/v1/chunks/missing",
        Some(&orcl),
        b"{not json",
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = raw(&url, "PUT", "/api/v1/chunks", Some(&orcl), &[1u8; 50]);
    assert_eq!(st, 400, "{body}");
    let (st, body) = raw(
        &url,
        "POST",
        "/api/v1/pieces",
        Some(&orcl),
        b"garbage manifest",
    );
    assert_eq!(st, 400, "{body}");
    let unknown = format!("{{\"ids\": [\"{}\"]}}", "ab".repeat(32));
    let (st, body) = raw(
        &url,
        "POST",
        "/api/v1/chunks/read",
        Some(&orcl),
        unknown.as_bytes(),
    );
    assert_eq!(st, 404, "{body}");
    assert_eq!(
        rt.block_on(a.list(&PieceFilter::default())).unwrap().len(),
        2
    );

    let (st, metrics) = raw(&url, "GET", "/metrics", None, b"");
    assert_eq!(st, 200);
    assert!(metrics.contains("orca_vault_commits_total 2"), "{metrics}");
    let (st, _) = raw(&url, "GET", "/healthz", None, b"");
    assert_eq!(st, 200);
}

#[test]
fn an_unreachable_vault_is_named_in_the_error() {
    let c: Arc<dyn Backend> = VaultClient::connect("http://127.0.0.1:9", "orca_x").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(Repository::open(c, &KeySource::Passphrase("x".into())))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("127.0.0.1:9") && e.contains("unreachable"),
        "{e}"
    );
}
