//! The vault's client: a repository [`Backend`] (what the SBT library and the CLI write through
//! when `ORCA_VAULT` is set) and the recovery point and job calls of the agent and the appliance.
//!
//! Pooled HTTP/1.1 connections, over TLS for `https://` addresses; at most
//! `ORCA_VAULT_CONCURRENCY` (default 8) requests in flight per client. Transient failures
//! (connection errors, 5xx, timeouts) are retried with backoff; a refusal (4xx) never is.
//! Every error names the vault's address and what to do; none contains the token.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use orca_repo::Manifest;
use orca_repo::WrappedKey;
use orca_repo::{
    Backend, ChunkId, EncodedChunk, PieceFilter, PieceInfo, RepoConfig, RepoError, Result,
    SessionGrant,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::tls;
use crate::wire::{
    self, AgentStatus, ErrorBody, Heartbeat, Ids, Job, JobFilter, JobUpdate, LineageRequest,
    NewJob, NewRecoveryPoint, RecoveryPoint, RecoveryPointFilter, SessionAnswer, SessionGrantBody,
    SessionRequest, WhoAmI,
};

const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONCURRENCY: usize = 8;
/// Upload batches stay well under the vault's body limit.
const UPLOAD_BATCH: usize = 16 << 20;
/// Pooled connections idle longer are closed: before the vault's header timeout (30 s by
/// default) closes them, so that a request is never sent on a connection being closed.
const POOL_IDLE: Duration = Duration::from_secs(20);

/// Why a call to the vault failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A bad setting (address, CA file, environment); nothing was sent.
    #[error("{0}")]
    Config(String),
    #[error(
        "vault at {url} is unreachable or failing after {attempts} attempts: {last}; check that it runs and that ORCA_VAULT names it"
    )]
    /// No usable answer after every retry (connection failures, timeouts, 5xx).
    Unreachable {
        /// The vault.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed.
        #[source]
        last: AttemptError,
    },
    #[error(
        "vault at {url}: {source}; TLS failed: set ORCA_CA_FILE to the CA that signed the vault's certificate, and name the vault as its certificate does"
    )]
    /// The TLS handshake failed: retrying will not help.
    Tls {
        /// The vault.
        url: String,
        /// The TLS error.
        #[source]
        source: AttemptError,
    },
    #[error(
        "vault at {url} refused the token ({status}): {error}; check ORCA_TOKEN in the channel's ENV"
    )]
    /// The vault refused the token (401, 403).
    Refused {
        /// The vault.
        url: String,
        /// The status it answered.
        status: StatusCode,
        /// What it said.
        error: String,
    },
    #[error("vault at {url} answered {status}: {}; {}", .body.error, .body.hint)]
    /// The vault refused the request (4xx); nothing changed.
    Rejected {
        /// The vault.
        url: String,
        /// The status it answered.
        status: StatusCode,
        /// Its error answer.
        body: ErrorBody,
    },
    #[error("vault at {url} sent an unreadable answer to {what}: {message}")]
    /// The answer cannot be parsed.
    BadAnswer {
        /// The vault.
        url: String,
        /// The request it answered.
        what: String,
        /// What is wrong with the answer.
        message: String,
    },
}

/// Why one attempt at a call got no usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// The vault answered with a server error (5xx).
    #[error("{status}: {body}")]
    Server {
        /// The status.
        status: StatusCode,
        /// The body of the answer.
        body: String,
    },
    /// No answer within the client's timeout.
    #[error("no answer within {seconds} s")]
    Timeout {
        /// The timeout.
        seconds: u64,
    },
    /// The connection failed: refused, reset, name resolution, TLS.
    #[error("{message}")]
    Transport {
        /// The error and its causes on one line.
        message: String,
        /// The HTTP client's error; its chain holds the `io::Error` of a refused or reset
        /// connection.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ClientError {
    /// The status of a refusal other than the token's.
    pub fn rejected_with(&self) -> Option<StatusCode> {
        match self {
            ClientError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the same call may succeed later: the vault was unreachable or failing (after
    /// this client's own retries), or asked for a pause (408, 429). Never for a refusal, a
    /// TLS failure, an unreadable answer or a bad setting.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Rejected { status, .. } => matches!(
                *status,
                StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS
            ),
            ClientError::Config(_)
            | ClientError::Tls { .. }
            | ClientError::Refused { .. }
            | ClientError::BadAnswer { .. } => false,
        }
    }
}

/// A bad setting becomes [`RepoError::InvalidArgument`]; every other failure
/// [`RepoError::Backend`] with this error as its source (downcast it to read the status) and
/// [`ClientError::is_transient`] as its verdict.
impl From<ClientError> for RepoError {
    fn from(e: ClientError) -> Self {
        let location = match &e {
            ClientError::Config(m) => return RepoError::InvalidArgument(m.clone()),
            ClientError::Unreachable { url, .. }
            | ClientError::Tls { url, .. }
            | ClientError::Refused { url, .. }
            | ClientError::Rejected { url, .. }
            | ClientError::BadAnswer { url, .. } => url.clone(),
        };
        let transient = e.is_transient();
        RepoError::backend(location, e, transient)
    }
}

/// How a client connects; [`ClientOptions::from_env`] reads the environment.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// PEM bundle of the certificate authorities trusted for `https://` (default: the
    /// platform's, wherever the distribution keeps them).
    pub ca_file: Option<PathBuf>,
    /// Requests in flight at once (default 8).
    pub concurrency: Option<usize>,
    /// The backup (RMAN command id) this client's uploads belong to, so the vault counts
    /// what each backup sent.
    pub command_id: Option<String>,
}

impl ClientOptions {
    /// `ORCA_CA_FILE` and `ORCA_VAULT_CONCURRENCY`.
    pub fn from_env() -> std::result::Result<ClientOptions, ClientError> {
        let concurrency = match std::env::var("ORCA_VAULT_CONCURRENCY") {
            Ok(v) => Some(
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or_else(|| {
                        ClientError::Config(format!(
                            "ORCA_VAULT_CONCURRENCY={v:?}: give a number of requests from 1 to 1024"
                        ))
                    })?,
            ),
            Err(_) => None,
        };
        Ok(ClientOptions {
            ca_file: std::env::var_os("ORCA_CA_FILE").map(PathBuf::from),
            concurrency,
            command_id: None,
        })
    }
}

/// The roots an `https://` client trusts.
fn roots(ca_file: Option<&Path>) -> std::result::Result<rustls::RootCertStore, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let Some(file) = ca_file else {
        return orca_repo::system_ca_roots().map_err(|why| {
            ClientError::Config(format!(
                "{why} to check the vault's certificate: set ORCA_CA_FILE to the PEM file of the CA that signed it"
            ))
        });
    };
    let certs = tls::certificates(file).map_err(|m| {
        ClientError::Config(format!("CA file {} (ORCA_CA_FILE): {m}", file.display()))
    })?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(ClientError::Config(format!(
            "CA file {} (ORCA_CA_FILE) holds no usable certificate",
            file.display()
        )));
    }
    Ok(roots)
}

/// A request body and its type.
struct Payload {
    content_type: Option<&'static str>,
    bytes: Bytes,
}

impl Payload {
    fn none() -> Payload {
        Payload {
            content_type: None,
            bytes: Bytes::new(),
        }
    }

    fn json<T: Serialize>(v: &T) -> Payload {
        Payload {
            content_type: Some("application/json"),
            bytes: Bytes::from(serde_json::to_vec(v).expect("request bodies serialise")),
        }
    }

    fn binary(bytes: Bytes) -> Payload {
        Payload {
            content_type: Some("application/octet-stream"),
            bytes,
        }
    }
}

/// A client of one vault with one token: pooled HTTP(S) connections, bounded
/// concurrency, retries of transient failures. It is the [`orca_repo::Backend`] a
/// [`orca_repo::Repository`] opens over the vault, and also reads and writes its records.
pub struct VaultClient {
    base: String,
    token: String,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    in_flight: Semaphore,
    command_id: Option<String>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultClient({})", self.base)
    }
}

/// Percent-encodes a query value or path segment.
fn encode(s: &str) -> String {
    let mut q = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    q
}

/// `path?k=v&...` from the fields a filter sets.
fn with_query<T: Serialize>(path: &str, filter: &T) -> String {
    let serde_json::Value::Object(fields) =
        serde_json::to_value(filter).expect("filters serialise")
    else {
        return path.to_string();
    };
    let pairs: Vec<String> = fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={}", encode(s)),
            other => format!("{k}={}", encode(&other.to_string())),
        })
        .collect();
    if pairs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", pairs.join("&"))
    }
}

/// Whether `e` is a TLS error. The connector hands it over wrapped in io::Errors, whose
/// `source()` skips the wrapped error.
fn is_tls(mut e: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if e.is::<rustls::Error>() {
            return true;
        }
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => e = inner,
            None => return false,
        }
    }
}

/// Why an attempt got no answer.
enum Failure {
    /// Another attempt may get one: connection refused or reset, timeout.
    Transient(AttemptError),
    /// The vault's certificate is not trusted or does not name it: retrying will not help.
    Tls(AttemptError),
    /// The request cannot be made (a malformed address).
    Invalid(String),
}

impl Failure {
    /// A transport error, kept as the source, with its causes on one line.
    fn of(e: impl std::error::Error + Send + Sync + 'static) -> Failure {
        let mut message = e.to_string();
        let mut tls = false;
        let mut cause = e.source();
        while let Some(c) = cause {
            message.push_str(&format!(": {c}"));
            tls |= is_tls(c);
            cause = c.source();
        }
        let error = AttemptError::Transport {
            message,
            source: Box::new(e),
        };
        if tls {
            Failure::Tls(error)
        } else {
            Failure::Transient(error)
        }
    }
}

impl VaultClient {
    /// A client for the vault at `url` (`http://host:port` or `https://host:port`), configured
    /// from the environment ([`ClientOptions::from_env`]). Nothing is contacted yet.
    pub fn connect(url: &str, token: &str) -> Result<Arc<VaultClient>> {
        let opts = ClientOptions::from_env()?;
        Ok(VaultClient::with_options(url, token, &opts)?)
    }

    /// A client for the vault at `url` with `token`, configured by `opts`.
    pub fn with_options(
        url: &str,
        token: &str,
        opts: &ClientOptions,
    ) -> std::result::Result<Arc<VaultClient>, ClientError> {
        let base = url.trim_end_matches('/').to_string();
        let https = base.starts_with("https://");
        if !https && !base.starts_with("http://") {
            return Err(ClientError::Config(format!(
                "ORCA_VAULT={url}: the vault address must start with http:// or https://"
            )));
        }
        if token.is_empty() {
            return Err(ClientError::Config(
                "ORCA_TOKEN is empty: create a token with `orca vault token create`".into(),
            ));
        }
        let roots = if https {
            roots(opts.ca_file.as_deref())?
        } else {
            rustls::RootCertStore::empty()
        };
        let tls = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        let permits = opts.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1);
        Ok(Arc::new(VaultClient {
            base,
            token: token.to_string(),
            http,
            in_flight: Semaphore::new(permits),
            command_id: opts.command_id.clone(),
        }))
    }

    /// One attempt: status and body.
    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        body: &Payload,
    ) -> std::result::Result<(StatusCode, Bytes), Failure> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if let Some(t) = body.content_type {
            req = req.header(header::CONTENT_TYPE, t);
        }
        if let Some(id) = &self.command_id {
            req = req.header(wire::COMMAND_ID_HEADER, id.as_str());
        }
        let req = req
            .body(Full::new(body.bytes.clone()))
            .map_err(|e| Failure::Invalid(format!("cannot make a request of {url}: {e}")))?;
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let sent = tokio::time::timeout(TIMEOUT, async {
            let resp = self.http.request(req).await.map_err(Failure::of)?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(Failure::of)?
                .to_bytes();
            Ok((status, bytes))
        })
        .await;
        sent.unwrap_or_else(|_| {
            Err(Failure::Transient(AttemptError::Timeout {
                seconds: TIMEOUT.as_secs(),
            }))
        })
    }

    /// A request, retried on transient failures; a 2xx answer's body, or the refusal.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Payload,
    ) -> std::result::Result<Bytes, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut delay = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let last = match self.attempt(&method, &url, &body).await {
                Ok((status, bytes)) if status.is_success() => return Ok(bytes),
                // A full disk (507) stays full through the retries: said at once.
                Ok((status, bytes))
                    if !status.is_server_error() || status == StatusCode::INSUFFICIENT_STORAGE =>
                {
                    return Err(self.refusal(status, &bytes));
                }
                Ok((status, bytes)) => AttemptError::Server {
                    status,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                },
                Err(Failure::Transient(e)) => e,
                Err(Failure::Tls(source)) => {
                    return Err(ClientError::Tls {
                        url: self.base.clone(),
                        source,
                    });
                }
                Err(Failure::Invalid(m)) => return Err(ClientError::Config(m)),
            };
            if attempt == ATTEMPTS {
                return Err(ClientError::Unreachable {
                    url: self.base.clone(),
                    attempts: ATTEMPTS,
                    last,
                });
            }
            tracing::warn!(vault = %self.base, %path, attempt, error = %last, "retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    fn refusal(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        let body = serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_else(|_| ErrorBody {
            error: String::from_utf8_lossy(bytes).into_owned(),
            ..Default::default()
        });
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientError::Refused {
                url: self.base.clone(),
                status,
                error: body.error,
            },
            _ => ClientError::Rejected {
                url: self.base.clone(),
                status,
                body,
            },
        }
    }

    fn bad_answer(&self, what: &str, message: impl ToString) -> ClientError {
        ClientError::BadAnswer {
            url: self.base.clone(),
            what: what.to_string(),
            message: message.to_string(),
        }
    }

    /// A call answering JSON.
    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Payload,
    ) -> std::result::Result<T, ClientError> {
        let b = self.call(method, path, body).await?;
        serde_json::from_slice(&b).map_err(|e| self.bad_answer(path, e))
    }

    /// `None` for 404.
    async fn json_or_none<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> std::result::Result<Option<T>, ClientError> {
        match self.json(Method::GET, path, Payload::none()).await {
            Err(e) if e.rejected_with() == Some(StatusCode::NOT_FOUND) => Ok(None),
            other => other.map(Some),
        }
    }

    /// `false` for 404.
    async fn delete_or_absent(&self, path: &str) -> std::result::Result<bool, ClientError> {
        match self.call(Method::DELETE, path, Payload::none()).await {
            Ok(_) => Ok(true),
            Err(e) if e.rejected_with() == Some(StatusCode::NOT_FOUND) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The database and scope of this client's token.
    pub async fn whoami(&self) -> std::result::Result<WhoAmI, ClientError> {
        let path = format!("{}/whoami", wire::API);
        self.json(Method::GET, &path, Payload::none()).await
    }

    /// A piece's catalog entry.
    pub async fn info(&self, name: &str) -> std::result::Result<Option<PieceInfo>, ClientError> {
        self.json_or_none(&format!("{}/pieces/info?name={}", wire::API, encode(name)))
            .await
    }

    /// What the vault received for the backup `command_id` (uploads that named it).
    pub async fn transfer(
        &self,
        command_id: &str,
    ) -> std::result::Result<wire::Transfer, ClientError> {
        let path = format!("{}/transfers/{}", wire::API, encode(command_id));
        self.json(Method::GET, &path, Payload::none()).await
    }

    /// Records a recovery point; refused (409, `missing_pieces`) when a piece is not committed.
    pub async fn create_recovery_point(
        &self,
        rp: &NewRecoveryPoint,
    ) -> std::result::Result<RecoveryPoint, ClientError> {
        let path = format!("{}/recovery-points", wire::API);
        self.json(Method::POST, &path, Payload::json(rp)).await
    }

    /// The recovery points `filter` selects (only the token's database's).
    pub async fn recovery_points(
        &self,
        filter: &RecoveryPointFilter,
    ) -> std::result::Result<Vec<RecoveryPoint>, ClientError> {
        let path = with_query(&format!("{}/recovery-points", wire::API), filter);
        self.json(Method::GET, &path, Payload::none()).await
    }

    /// Recovery point `id`; `None` when it does not exist.
    pub async fn recovery_point(
        &self,
        id: &str,
    ) -> std::result::Result<Option<RecoveryPoint>, ClientError> {
        self.json_or_none(&format!("{}/recovery-points/{}", wire::API, encode(id)))
            .await
    }

    /// Deletes the record (not its pieces); `false` when it did not exist.
    pub async fn delete_recovery_point(&self, id: &str) -> std::result::Result<bool, ClientError> {
        self.delete_or_absent(&format!("{}/recovery-points/{}", wire::API, encode(id)))
            .await
    }

    /// Records a job; it starts queued.
    pub async fn create_job(&self, job: &NewJob) -> std::result::Result<Job, ClientError> {
        let path = format!("{}/jobs", wire::API);
        self.json(Method::POST, &path, Payload::json(job)).await
    }

    /// The jobs `filter` selects.
    pub async fn jobs(&self, filter: &JobFilter) -> std::result::Result<Vec<Job>, ClientError> {
        let path = with_query(&format!("{}/jobs", wire::API), filter);
        self.json(Method::GET, &path, Payload::none()).await
    }

    /// Job `id`; `None` when it does not exist.
    pub async fn job(&self, id: &str) -> std::result::Result<Option<Job>, ClientError> {
        self.json_or_none(&format!("{}/jobs/{}", wire::API, encode(id)))
            .await
    }

    /// Changes job `id`; refused when the state change is not allowed.
    pub async fn update_job(
        &self,
        id: &str,
        update: &JobUpdate,
    ) -> std::result::Result<Job, ClientError> {
        let path = format!("{}/jobs/{}", wire::API, encode(id));
        self.json(Method::PATCH, &path, Payload::json(update)).await
    }

    /// Says that an agent serves `database`.
    pub async fn heartbeat(
        &self,
        database: &str,
        beat: &Heartbeat,
    ) -> std::result::Result<AgentStatus, ClientError> {
        let path = format!("{}/agents/{}", wire::API, encode(database));
        self.json(Method::PUT, &path, Payload::json(beat)).await
    }

    /// The last heartbeat for `database`; `None` when no agent ever served it.
    pub async fn agent(
        &self,
        database: &str,
    ) -> std::result::Result<Option<AgentStatus>, ClientError> {
        self.json_or_none(&format!("{}/agents/{}", wire::API, encode(database)))
            .await
    }
}

#[async_trait]
impl Backend for VaultClient {
    fn location(&self) -> String {
        self.base.clone()
    }

    async fn config(&self) -> Result<RepoConfig> {
        let path = format!("{}/config", wire::API);
        let b = self.call(Method::GET, &path, Payload::none()).await?;
        RepoConfig::parse(&b, &format!("{}{path}", self.base))
    }

    async fn wrapped_keys(&self) -> Result<Vec<WrappedKey>> {
        let path = format!("{}/keys", wire::API);
        Ok(self.json(Method::GET, &path, Payload::none()).await?)
    }

    async fn group_secret(&self) -> Result<Option<[u8; 32]>> {
        let path = format!("{}/whoami", wire::API);
        let me = self.whoami().await?;
        let secret = me
            .group_secret
            .map(|hex_secret| {
                hex::decode(&hex_secret)
                    .ok()
                    .and_then(|s| <[u8; 32]>::try_from(s).ok())
                    .ok_or_else(|| self.bad_answer(&path, "group_secret is not 64 hex digits"))
            })
            .transpose()?;
        Ok(secret)
    }

    async fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let path = format!("{}/chunks/missing", wire::API);
        let mut missing = Vec::new();
        for batch in ids.chunks(wire::MAX_IDS) {
            let body = Payload::json(&Ids::of(batch));
            let answer: Ids = self.json(Method::POST, &path, body).await?;
            missing.extend(wire::ids_from_hex(&answer.ids).map_err(|e| self.bad_answer(&path, e))?);
        }
        Ok(missing)
    }

    async fn put_chunks(&self, chunks: Vec<EncodedChunk>) -> Result<()> {
        let path = format!("{}/chunks", wire::API);
        let mut start = 0;
        while start < chunks.len() {
            let mut end = start;
            let mut size = 0;
            while end < chunks.len()
                && end - start < wire::MAX_IDS
                && (end == start || size + chunks[end].payload.len() < UPLOAD_BATCH)
            {
                size += chunks[end].payload.len() + 40;
                end += 1;
            }
            let body = wire::encode_chunks(&chunks[start..end]);
            self.call(Method::PUT, &path, Payload::binary(body)).await?;
            start = end;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        let path = format!("{}/flush", wire::API);
        self.call(Method::POST, &path, Payload::none()).await?;
        Ok(())
    }

    async fn commit(&self, manifest: Bytes) -> Result<PieceInfo> {
        let path = format!("{}/pieces", wire::API);
        let refused = match self
            .call(Method::POST, &path, Payload::binary(manifest.clone()))
            .await
        {
            Ok(b) => {
                return serde_json::from_slice(&b).map_err(|e| self.bad_answer(&path, e).into());
            }
            Err(e) => e,
        };
        let ClientError::Rejected {
            status: StatusCode::CONFLICT,
            body,
            ..
        } = refused
        else {
            return Err(refused.into());
        };
        let name = Manifest::decode_unverified(&manifest, "manifest")?
            .header
            .name;
        if !body.missing.is_empty() {
            let missing =
                wire::ids_from_hex(&body.missing).map_err(|e| self.bad_answer(&path, e))?;
            return Err(RepoError::MissingChunks { name, missing });
        }
        // A retried commit whose first attempt went through but whose answer was lost finds
        // its own manifest: that is success.
        if self.manifest(&name).await?.as_ref() == Some(&manifest)
            && let Some(info) = self.info(&name).await?
        {
            return Ok(info);
        }
        Err(RepoError::PieceExists { name })
    }

    async fn manifest(&self, name: &str) -> Result<Option<Bytes>> {
        let path = format!("{}/pieces/manifest?name={}", wire::API, encode(name));
        match self.call(Method::GET, &path, Payload::none()).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.rejected_with() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self, filter: &PieceFilter) -> Result<Vec<PieceInfo>> {
        let path = with_query(&format!("{}/pieces", wire::API), filter);
        Ok(self.json(Method::GET, &path, Payload::none()).await?)
    }

    async fn delete(&self, name: &str) -> Result<bool> {
        let path = format!("{}/pieces?name={}", wire::API, encode(name));
        Ok(self.delete_or_absent(&path).await?)
    }

    async fn get_chunks(&self, ids: &[ChunkId]) -> Result<Vec<Bytes>> {
        let path = format!("{}/chunks/read", wire::API);
        let mut payloads = Vec::with_capacity(ids.len());
        // Reads of at most MAX_READ_IDS ids; one whose answer would pass MAX_READ_BYTES (only
        // the vault knows the payloads' sizes) is refused with 413 and asked again in halves.
        let mut todo: Vec<&[ChunkId]> = ids.chunks(wire::MAX_READ_IDS).rev().collect();
        while let Some(batch) = todo.pop() {
            let body = Payload::json(&Ids::of(batch));
            match self.call(Method::POST, &path, body).await {
                Ok(b) => payloads.extend(
                    wire::decode_payloads(b, batch.len()).map_err(|e| self.bad_answer(&path, e))?,
                ),
                Err(e)
                    if e.rejected_with() == Some(StatusCode::PAYLOAD_TOO_LARGE)
                        && batch.len() > 1 =>
                {
                    let (first, second) = batch.split_at(batch.len() / 2);
                    todo.push(second);
                    todo.push(first);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(payloads)
    }

    async fn get_values(&self, ids: &[ChunkId]) -> Result<Vec<Option<Bytes>>> {
        let path = format!("{}/chunks/values", wire::API);
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(wire::MAX_READ_IDS) {
            let body = Payload::json(&Ids::of(batch));
            let b = self.call(Method::POST, &path, body).await?;
            let prefixes =
                wire::decode_payloads(b, batch.len()).map_err(|e| self.bad_answer(&path, e))?;
            out.extend(prefixes.into_iter().map(|p| (!p.is_empty()).then_some(p)));
        }
        Ok(out)
    }

    async fn begin_session(
        &self,
        holder: &str,
        lineage_since: Option<i64>,
    ) -> Result<SessionGrant> {
        let path = format!("{}/sessions", wire::API);
        let body = Payload::json(&SessionRequest {
            holder: holder.to_string(),
            lineage_since,
        });
        let g: SessionGrantBody = self.json(Method::POST, &path, body).await?;
        Ok(SessionGrant {
            id: g.id,
            started: g.started,
            lineage_ok: g.lineage_ok,
        })
    }

    async fn adopt_lineage(&self, session: u64, since: i64) -> Result<bool> {
        let path = format!("{}/sessions/{session}/lineage", wire::API);
        let body = Payload::json(&LineageRequest { since });
        self.session_answer(&path, body).await
    }

    async fn renew_session(&self, session: u64) -> Result<bool> {
        let path = format!("{}/sessions/{session}/renew", wire::API);
        self.session_answer(&path, Payload::none()).await
    }

    async fn end_session(&self, session: u64) -> Result<()> {
        self.delete_or_absent(&format!("{}/sessions/{session}", wire::API))
            .await?;
        Ok(())
    }
}

impl VaultClient {
    /// A session request's answer; a session the vault no longer knows is `false`.
    async fn session_answer(&self, path: &str, body: Payload) -> Result<bool> {
        match self.json::<SessionAnswer>(Method::POST, path, body).await {
            Ok(a) => Ok(a.ok),
            Err(e) if e.rejected_with() == Some(StatusCode::NOT_FOUND) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_query_strings() {
        let f = PieceFilter {
            name_prefix: Some("orcl/a b".into()),
            dbid: Some(7),
            ..Default::default()
        };
        assert_eq!(with_query("/p", &f), "/p?dbid=7&name_prefix=orcl%2Fa%20b");
        assert_eq!(with_query("/p", &PieceFilter::default()), "/p");
    }

    #[test]
    fn bad_addresses_and_settings_are_refused_before_any_request() {
        let opts = ClientOptions::default();
        let e = VaultClient::with_options("ftp://x", "t", &opts).unwrap_err();
        assert!(e.to_string().contains("http:// or https://"), "{e}");
        let e = VaultClient::with_options("http://x", "", &opts).unwrap_err();
        assert!(e.to_string().contains("ORCA_TOKEN"), "{e}");
        let opts = ClientOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = VaultClient::with_options("https://x", "t", &opts).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    fn rejected(status: StatusCode) -> ClientError {
        ClientError::Rejected {
            url: "http://vault:8700".into(),
            status,
            body: ErrorBody::default(),
        }
    }

    #[test]
    fn only_failures_a_retry_may_cure_are_transient_through_repo_error() {
        let unreachable = ClientError::Unreachable {
            url: "http://vault:8700".into(),
            attempts: ATTEMPTS,
            last: AttemptError::Server {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: "{}".into(),
            },
        };
        let cases = [
            (unreachable, true),
            (rejected(StatusCode::TOO_MANY_REQUESTS), true),
            (rejected(StatusCode::REQUEST_TIMEOUT), true),
            (rejected(StatusCode::BAD_REQUEST), false),
            (rejected(StatusCode::NOT_FOUND), false),
            (
                ClientError::Refused {
                    url: "http://vault:8700".into(),
                    status: StatusCode::UNAUTHORIZED,
                    error: "unknown token".into(),
                },
                false,
            ),
        ];
        for (e, transient) in cases {
            let message = e.to_string();
            let status = e.rejected_with();
            let repo = RepoError::from(e);
            assert_eq!(repo.is_transient(), transient, "{repo}");
            let RepoError::Backend {
                location, source, ..
            } = &repo
            else {
                panic!("{repo:?}")
            };
            assert_eq!(location, "http://vault:8700");
            // The client's own error, status and all, is still there to read.
            let client = source.downcast_ref::<ClientError>().unwrap();
            assert_eq!(client.to_string(), message);
            assert_eq!(client.rejected_with(), status);
        }
        let e = RepoError::from(ClientError::Config("ORCA_VAULT=x".into()));
        assert!(matches!(e, RepoError::InvalidArgument(_)), "{e:?}");
    }

    /// A vault that answers 403: refused at once, and no retry will change that.
    #[test]
    fn a_forbidden_answer_is_permanent_through_repo_error() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move {
            let body = r#"{"error":"token may not read this"}"#;
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        let client = VaultClient::with_options(
            &format!("http://127.0.0.1:{port}"),
            "t",
            &ClientOptions::default(),
        )
        .unwrap();
        let e = rt.block_on(client.whoami()).unwrap_err();
        assert!(
            matches!(e, ClientError::Refused { status, .. } if status == StatusCode::FORBIDDEN),
            "{e:?}"
        );
        let e = RepoError::from(e);
        assert!(!e.is_transient(), "{e}");
    }

    /// A vault that is not listening: the refused connection is retried, then reported as
    /// transient through `RepoError`, with the `io::Error` of the refusal in the chain.
    #[test]
    fn a_refused_connection_is_transient_and_keeps_its_io_error() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = VaultClient::with_options(
            &format!("http://127.0.0.1:{port}"),
            "t",
            &ClientOptions::default(),
        )
        .unwrap();
        let e: RepoError = rt.block_on(client.config()).unwrap_err();
        assert!(e.is_transient(), "{e}");
        let mut kinds = Vec::new();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                kinds.push(io.kind());
            }
            cause = c.source();
        }
        assert!(
            kinds.contains(&std::io::ErrorKind::ConnectionRefused),
            "{e}: {kinds:?}"
        );
    }
}
