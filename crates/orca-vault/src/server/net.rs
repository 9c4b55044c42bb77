//! Listening. Plain TCP speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c); TLS offers
//! h2 and http/1.1 by ALPN. Either way one connection handler picks the protocol it sees.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{VaultError, router};
use crate::tls;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

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
pub async fn serve(data: &Path, listen: &str, tls: Option<&TlsFiles>) -> Result<(), VaultError> {
    let (app, acceptor) = prepare(data, tls).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| VaultError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    tracing::info!(data = %data.display(), %listen, tls = acceptor.is_some(), "vault serving");
    match run(listener, app, acceptor).await {}
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve_on(
    data: &Path,
    listener: TcpListener,
    tls: Option<&TlsFiles>,
) -> Result<(), VaultError> {
    let (app, acceptor) = prepare(data, tls).await?;
    match run(listener, app, acceptor).await {}
}

async fn prepare(
    data: &Path,
    tls: Option<&TlsFiles>,
) -> Result<(Router, Option<TlsAcceptor>), VaultError> {
    let acceptor = tls.map(TlsFiles::acceptor).transpose()?;
    Ok((router(data).await?, acceptor))
}

async fn run(listener: TcpListener, app: Router, acceptor: Option<TlsAcceptor>) -> Infallible {
    let mut http = auto::Builder::new(TokioExecutor::new());
    // Upload bodies are megabytes: let HTTP/2 windows grow with the link instead of stalling
    // every stream at the default 64 KiB.
    http.http2().adaptive_window(true);
    let http = Arc::new(http);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait for connections to close, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let http = http.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let served = match acceptor {
                None => http.serve_connection(TokioIo::new(tcp), service).await,
                Some(a) => match tokio::time::timeout(HANDSHAKE, a.accept(tcp)).await {
                    Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Starts a vault on a free loopback port in a background thread; returns its URL.
/// For tests and demos that need a real server without a separate process.
pub fn spawn_local(data: &Path) -> Result<String, VaultError> {
    spawn_local_with(data, None)
}

/// [`spawn_local`], over TLS when `tls` is given (the URL is then `https://`).
pub fn spawn_local_with(data: &Path, tls: Option<TlsFiles>) -> Result<String, VaultError> {
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
                    match run(listener, app, acceptor).await {}
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
