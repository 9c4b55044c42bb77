//! A client of the store's API, for `orca store ...` admin commands.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
pub use hyper::Method;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::server::NATIVE_BASE;

/// Why a call to the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "backup store at {url} is unreachable: {message}; check that `orca store serve` runs there"
    )]
    /// No answer.
    Unreachable {
        /// The store.
        url: String,
        /// Why.
        message: String,
    },
    #[error("backup store at {url} answered something that is not its JSON envelope: {message}")]
    /// The answer is not the store's JSON envelope.
    BadAnswer {
        /// The store.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The store refused: its code and message.
    #[error("error {code}: {message}")]
    Refused {
        /// The envelope's error code ([`crate::Code::value`]).
        code: u64,
        /// The envelope's message.
        message: String,
    },
}

/// A client of a backup store's REST API, for `orca store ...`.
#[derive(Debug, Clone)]
pub struct StoreClient {
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
    admin_token: Option<String>,
}

impl StoreClient {
    /// A client for the store at `url` (`http://host:9090`).
    pub fn new(url: &str) -> StoreClient {
        StoreClient {
            base: url.trim_end_matches('/').to_string(),
            http: Client::builder(TokioExecutor::new()).build_http(),
            admin_token: None,
        }
    }

    /// Sends `Authorization: Bearer <token>`, which the admin routes need when the store
    /// has an admin token.
    pub fn with_admin_token(mut self, token: Option<String>) -> StoreClient {
        self.admin_token = token;
        self
    }

    /// Calls `method` on `path` under `/orca/v1`; the envelope's `result` on success.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let (url, bytes) = self.send(method, path, body).await?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let code = v.get("error_code").and_then(Value::as_u64);
        match code {
            Some(0) => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
            Some(code) => Err(ClientError::Refused {
                code,
                message: v
                    .get("error_msg")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            }),
            None => Err(ClientError::BadAnswer {
                url,
                message: "no error_code".into(),
            }),
        }
    }

    /// The body of `path` under `/orca/v1` as text (the OpenAPI document).
    pub async fn raw(&self, method: Method, path: &str) -> Result<String, ClientError> {
        let (_, bytes) = self.send(method, path, None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(String, Bytes), ClientError> {
        let url = format!("{}{NATIVE_BASE}{path}", self.base);
        let mut req = Request::builder().method(method).uri(&url);
        if let Some(t) = &self.admin_token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let payload = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(v).unwrap_or_default())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|e| ClientError::BadAnswer {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        Ok((url, bytes))
    }
}
