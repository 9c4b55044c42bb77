//! Listening. Plain TCP speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c); TLS offers
//! h2 and http/1.1 by ALPN. Either way one connection handler picks the protocol it sees,
//! within the timeouts and the connection limit of [`Limits`] (`crate::listen`).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{VaultError, router};
use crate::listen::{self, Handshake, Limits, Stream};
use crate::tls;

/// The server's certificate chain and private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl TlsFiles {
    fn acceptor(&self) -> Result<TlsAcceptor, VaultError> {
        let certs = tls::certificates(&self.cert).map_err(|message| VaultError::TlsFile {
            what: "certificate",
            path: self.cert.clone(),
            message,
        })?;
        let key = tls::private_key(&self.key).map_err(|message| VaultError::TlsFile {
            what: "private key",
            path: self.key.clone(),
            message,
        })?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(cfg)))
    }
}

/// Serves until the process ends.
pub async fn serve(
    data: &Path,
    listen: &str,
    tls: Option<&TlsFiles>,
    limits: Limits,
) -> Result<(), VaultError> {
    let (app, acceptor) = prepare(data, tls).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| VaultError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    tracing::info!(data = %data.display(), %listen, tls = acceptor.is_some(), "vault serving");
    match run(listener, app, acceptor, limits).await {}
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve_on(
    data: &Path,
    listener: TcpListener,
    tls: Option<&TlsFiles>,
    limits: Limits,
) -> Result<(), VaultError> {
    let (app, acceptor) = prepare(data, tls).await?;
    match run(listener, app, acceptor, limits).await {}
}

async fn prepare(
    data: &Path,
    tls: Option<&TlsFiles>,
) -> Result<(Router, Option<TlsAcceptor>), VaultError> {
    let acceptor = tls.map(TlsFiles::acceptor).transpose()?;
    Ok((router(data).await?, acceptor))
}

async fn run(
    listener: TcpListener,
    app: Router,
    acceptor: Option<TlsAcceptor>,
    limits: Limits,
) -> Infallible {
    let handshake = acceptor.map(|a| -> Handshake {
        Arc::new(move |tcp| {
            let a = a.clone();
            Box::pin(async move { Ok(Box::new(a.accept(tcp).await?) as Box<dyn Stream>) })
        })
    });
    listen::serve(listener, app, limits, handshake).await
}

/// Starts a vault on a free loopback port in a background thread; returns its URL.
/// For tests and demos that need a real server without a separate process.
pub fn spawn_local(data: &Path) -> Result<String, VaultError> {
    spawn_local_with(data, None)
}

/// [`spawn_local`], over TLS when `tls` is given (the URL is then `https://`).
pub fn spawn_local_with(data: &Path, tls: Option<TlsFiles>) -> Result<String, VaultError> {
    spawn_local_limited(data, tls, Limits::default())
}

/// [`spawn_local_with`], within `limits` (tests use short timeouts).
pub fn spawn_local_limited(
    data: &Path,
    tls: Option<TlsFiles>,
    limits: Limits,
) -> Result<String, VaultError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let data = data.to_path_buf();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(VaultError::Runtime(e)));
                return;
            }
        };
        rt.block_on(async move {
            let started = async {
                let (app, acceptor) = prepare(&data, tls.as_ref()).await?;
                let listener = TcpListener::bind("127.0.0.1:0").await;
                let listener = listener.map_err(|source| VaultError::Listen {
                    addr: "127.0.0.1:0".into(),
                    source,
                })?;
                let addr = listener.local_addr().map_err(VaultError::Runtime)?;
                let scheme = if acceptor.is_some() { "https" } else { "http" };
                Ok::<_, VaultError>((format!("{scheme}://{addr}"), listener, app, acceptor))
            };
            match started.await {
                Ok((url, listener, app, acceptor)) => {
                    let _ = tx.send(Ok(url));
                    match run(listener, app, acceptor, limits).await {}
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
    });
    rx.recv().unwrap_or_else(|_| {
        Err(VaultError::Runtime(std::io::Error::other(
            "the vault's thread ended before it started",
        )))
    })
}
