//! The vault as a repository [`Backend`]: what the SBT library and the CLI write through when
//! `ORCA_VAULT` is set. Pooled HTTP/1.1 connections; transient failures (connection refused,
//! 5xx, timeouts) are retried with backoff; every error names the vault's address.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use orca_repo::keys::WrappedKey;
use orca_repo::{
    Backend, ChunkId, EncodedChunk, PieceFilter, PieceInfo, RepoConfig, RepoError, Result,
};

use crate::wire::{self, ErrorBody, Ids};

const ATTEMPTS: u32 = 5;
const TIMEOUT: Duration = Duration::from_secs(120);
/// Upload batches stay well under the vault's body limit.
const UPLOAD_BATCH: usize = 16 << 20;

pub struct VaultClient {
    base: String,
    token: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultClient({})", self.base)
    }
}

impl VaultClient {
    /// A client for the vault at `url` (`http://host:port`). Nothing is contacted yet.
    pub fn connect(url: &str, token: &str) -> Result<Arc<VaultClient>> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(RepoError::InvalidArgument(format!(
                "ORCA_VAULT={url}: the vault address must start with http:// (TLS is not in this build)"
            )));
        }
        if token.is_empty() {
            return Err(RepoError::InvalidArgument(
                "ORCA_TOKEN is empty: create a token with `orca vault token create`".into(),
            ));
        }
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build_http();
        Ok(Arc::new(VaultClient {
            base,
            token: token.to_string(),
            http,
        }))
    }

    fn err(&self, message: String) -> RepoError {
        RepoError::Backend {
            location: self.base.clone(),
            message,
        }
    }

    /// One request with retries on transient failures; returns status and body.
    async fn call(&self, method: Method, path: &str, body: Bytes) -> Result<(StatusCode, Bytes)> {
        let url = format!("{}{path}", self.base);
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let req = Request::builder()
                .method(method.clone())
                .uri(&url)
                .header("authorization", format!("Bearer {}", self.token))
                .body(Full::new(body.clone()))
                .map_err(|e| self.err(format!("bad request {path}: {e}")))?;
            let sent = tokio::time::timeout(TIMEOUT, async {
                let resp = self.http.request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                let bytes = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                Ok::<_, String>((status, bytes))
            })
            .await;
            match sent {
                Ok(Ok((status, bytes))) if !status.is_server_error() => return Ok((status, bytes)),
                Ok(Ok((status, bytes))) => {
                    last = format!("{status}: {}", String::from_utf8_lossy(&bytes));
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = format!("no answer within {} s", TIMEOUT.as_secs()),
            }
            if attempt < ATTEMPTS {
                tracing::warn!(vault = %self.base, %path, attempt, error = %last, "retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(self.err(format!(
            "vault at {} is unreachable or failing after {ATTEMPTS} attempts: {last}",
            self.base
        )))
    }

    /// A call that must succeed with 2xx; 4xx become clear errors.
    async fn ok(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes> {
        let (status, bytes) = self.call(method, path, body).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        let e: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let (error, hint) = e
            .map(|e| (e.error, e.hint))
            .unwrap_or_else(|| (String::from_utf8_lossy(&bytes).into_owned(), String::new()));
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.err(format!(
                "vault at {} refused the token: {error}; check ORCA_TOKEN in the channel's ENV",
                self.base
            )),
            _ => self.err(format!("{status}: {error}; {hint}")),
        })
    }
}

fn name_query(name: &str) -> String {
    let mut q = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    q
}

fn json<T: serde::Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("serialisable"))
}

#[async_trait]
impl Backend for VaultClient {
    fn location(&self) -> String {
        self.base.clone()
    }

    async fn config(&self) -> Result<RepoConfig> {
        let b = self
            .ok(Method::GET, &format!("{}/config", wire::API), Bytes::new())
            .await?;
        RepoConfig::parse(&b, &format!("{}/config", self.base))
    }

    async fn wrapped_keys(&self) -> Result<Vec<WrappedKey>> {
        let b = self
            .ok(Method::GET, &format!("{}/keys", wire::API), Bytes::new())
            .await?;
        serde_json::from_slice(&b).map_err(|e| self.err(format!("bad keys answer: {e}")))
    }

    async fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let body = json(&Ids {
            ids: wire::ids_to_hex(ids),
        });
        let b = self
            .ok(Method::POST, &format!("{}/chunks/missing", wire::API), body)
            .await?;
        let ids: Ids =
            serde_json::from_slice(&b).map_err(|e| self.err(format!("bad probe answer: {e}")))?;
        wire::ids_from_hex(&ids.ids).map_err(|e| self.err(e))
    }

    async fn put_chunks(&self, chunks: Vec<EncodedChunk>) -> Result<()> {
        let mut start = 0;
        while start < chunks.len() {
            let mut end = start;
            let mut size = 0;
            while end < chunks.len()
                && (end == start || size + chunks[end].payload.len() < UPLOAD_BATCH)
            {
                size += chunks[end].payload.len() + 40;
                end += 1;
            }
            let body = wire::encode_chunks(&chunks[start..end]);
            self.ok(Method::PUT, &format!("{}/chunks", wire::API), body)
                .await?;
            start = end;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        self.ok(Method::POST, &format!("{}/flush", wire::API), Bytes::new())
            .await
            .map(|_| ())
    }

    async fn commit(&self, manifest: Bytes) -> Result<PieceInfo> {
        let (status, b) = self
            .call(
                Method::POST,
                &format!("{}/pieces", wire::API),
                manifest.clone(),
            )
            .await?;
        if status == StatusCode::CONFLICT {
            let e: ErrorBody = serde_json::from_slice(&b)
                .map_err(|e| self.err(format!("bad conflict answer: {e}")))?;
            let name = orca_repo::manifest::Manifest::decode_unverified(&manifest, "manifest")?
                .header
                .name;
            if e.missing.is_empty() {
                return Err(RepoError::PieceExists { name });
            }
            let missing = wire::ids_from_hex(&e.missing).map_err(|e| self.err(e))?;
            return Err(RepoError::MissingChunks { name, missing });
        }
        if !status.is_success() {
            return self
                .ok(Method::POST, &format!("{}/pieces", wire::API), manifest)
                .await
                .and_then(|_| Err(self.err(format!("commit answered {status}"))));
        }
        serde_json::from_slice(&b).map_err(|e| self.err(format!("bad commit answer: {e}")))
    }

    async fn manifest(&self, name: &str) -> Result<Option<Bytes>> {
        let path = format!("{}/pieces/manifest?name={}", wire::API, name_query(name));
        let (status, b) = self.call(Method::GET, &path, Bytes::new()).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            self.ok(Method::GET, &path, Bytes::new()).await?;
        }
        Ok(Some(b))
    }

    async fn list(&self, filter: &PieceFilter) -> Result<Vec<PieceInfo>> {
        let mut q = Vec::new();
        if let Some(p) = &filter.name_prefix {
            q.push(format!("name_prefix={}", name_query(p)));
        }
        if let Some(d) = &filter.database {
            q.push(format!("database={}", name_query(d)));
        }
        let path = format!("{}/pieces?{}", wire::API, q.join("&"));
        let b = self.ok(Method::GET, &path, Bytes::new()).await?;
        serde_json::from_slice(&b).map_err(|e| self.err(format!("bad list answer: {e}")))
    }

    async fn delete(&self, name: &str) -> Result<bool> {
        let path = format!("{}/pieces?name={}", wire::API, name_query(name));
        let (status, _) = self.call(Method::DELETE, &path, Bytes::new()).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => self
                .ok(Method::DELETE, &path, Bytes::new())
                .await
                .map(|_| true),
        }
    }

    async fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Bytes>> {
        let body = json(&Ids {
            ids: wire::ids_to_hex(ids),
        });
        let b = self
            .ok(Method::POST, &format!("{}/chunks/read", wire::API), body)
            .await?;
        wire::decode_payloads(b, ids.len()).map_err(|e| self.err(e))
    }
}
