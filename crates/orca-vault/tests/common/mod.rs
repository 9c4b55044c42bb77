//! What the vault's tests share: a repository served on loopback, raw HTTP requests, pieces.

#![allow(dead_code)] // each test file uses its own part of these helpers

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use orca_repo::{
    Backend, InitOptions, KdfParams, KeySource, NewKey, PieceMeta, ReadOptions, Repository,
    WriteOptions,
};
use orca_testing::http;
use orca_vault::client::VaultClient;
use orca_vault::server::{Limits, Scope, TlsFiles, Tokens, spawn_local_limited};

pub const PASS: &str = "vault test passphrase";

pub fn init(dir: &Path) {
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

/// A repository served on a loopback port for the life of the test.
pub struct Vault {
    _dir: tempfile::TempDir,
    pub data: PathBuf,
    pub url: String,
    pub tokens: Tokens,
    pub rt: tokio::runtime::Runtime,
}

impl Vault {
    pub fn start() -> Vault {
        Vault::start_with(None)
    }

    pub fn start_with(tls: Option<TlsFiles>) -> Vault {
        Vault::start_limited(tls, Limits::default())
    }

    /// A vault over a repository that `prepare` fills before the vault serves it (what an
    /// earlier build left, say).
    pub fn start_prepared(prepare: impl FnOnce(&Path)) -> Vault {
        Vault::start_full(None, Limits::default(), prepare)
    }

    /// A vault that allows each client only `limits`.
    pub fn start_limited(tls: Option<TlsFiles>, limits: Limits) -> Vault {
        Vault::start_full(tls, limits, |_| {})
    }

    fn start_full(tls: Option<TlsFiles>, limits: Limits, prepare: impl FnOnce(&Path)) -> Vault {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("repo");
        init(&data);
        prepare(&data);
        let tokens = Tokens::open(&data).unwrap();
        let url = spawn_local_limited(&data, tls, limits).unwrap();
        Vault {
            _dir: dir,
            data,
            url,
            tokens,
            rt: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    pub fn token(&self, db: &str, scope: Scope) -> String {
        self.tokens.create(db, scope).unwrap()
    }

    pub fn client(&self, token: &str) -> Arc<VaultClient> {
        VaultClient::connect(&self.url, token).unwrap()
    }

    pub fn repo(&self, token: &str) -> Repository {
        let c: Arc<dyn Backend> = self.client(token);
        self.rt
            .block_on(Repository::open(c, &KeySource::Passphrase(PASS.into())))
            .unwrap()
    }

    pub fn raw(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Answer {
        raw(&self.url, method, path, token, body)
    }

    /// The value of a metric.
    pub fn metric(&self, name: &str) -> f64 {
        let m = self.raw("GET", "/metrics", None, b"").body;
        http::metric(&m, name).unwrap_or_else(|| panic!("no metric {name} in\n{m}"))
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    /// The JSON body; fails unless it is the vault's error body when the status is 4xx/5xx.
    pub fn json(&self) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"));
        if self.status >= 400 {
            assert!(
                v["error"].is_string() && v["hint"].is_string(),
                "not an error body: {self:?}"
            );
        }
        v
    }
}

impl From<http::Response> for Answer {
    fn from(r: http::Response) -> Answer {
        Answer {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

/// A raw HTTP/1.1 request.
pub fn raw(url: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Answer {
    http::request(url, method, path, token, body)
        .unwrap_or_else(|e| panic!("{method} {url}{path}: {e}"))
        .into()
}

/// A request that claims a body of `claimed` bytes and sends none.
pub fn claim(url: &str, method: &str, path: &str, token: &str, claimed: u64) -> Answer {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {claimed}\r\n"
    );
    http::exchange(url, &head, b"")
        .unwrap_or_else(|e| panic!("{method} {url}{path}: {e}"))
        .into()
}

pub fn put(repo: &Repository, name: &str, db: &str, data: &[u8]) {
    let meta = PieceMeta {
        database: Some(db.into()),
        created: orca_repo::now_unix(),
        ..Default::default()
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut w = repo.writer(name, meta, &WriteOptions::default()).unwrap();
            w.write(data).unwrap();
            w.finish().unwrap();
        });
    });
}

pub fn read(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    name: &str,
) -> orca_repo::Result<Vec<u8>> {
    let mut r = rt.block_on(repo.reader(name, &ReadOptions::default()))?;
    let mut out = Vec::new();
    std::thread::scope(|s| s.spawn(|| r.read_to_end(&mut out)).join().unwrap())
        .map_err(|e| orca_repo::RepoError::io("read", e))?;
    Ok(out)
}

/// Deterministic piece contents.
pub fn data(len: u32, seed: u32) -> Vec<u8> {
    orca_testing::data::pattern(len, seed)
}
