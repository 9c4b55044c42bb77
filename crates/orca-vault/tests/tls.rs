//! TLS and HTTP/2: a client round trip over https with a certificate made here, h2 chosen by
//! ALPN and h2c by prior knowledge, and TLS files that are wrong named in the error.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use orca_repo::{Backend, KeySource, Repository};
use orca_vault::client::{ClientOptions, VaultClient};
use orca_vault::server::{Scope, TlsFiles, spawn_local_with};
use rustls::pki_types::{CertificateDer, ServerName};

use common::{PASS, Vault, data, put, read};

/// A self-signed certificate for 127.0.0.1, written as PEM files; returns its DER too.
fn certificate(dir: &Path, name: &str) -> (TlsFiles, CertificateDer<'static>) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let files = TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.cert, c.cert.pem()).unwrap();
    std::fs::write(&files.key, c.signing_key.serialize_pem()).unwrap();
    (files, c.cert.der().clone())
}

fn client(url: &str, token: &str, ca: &Path) -> Arc<VaultClient> {
    let opts = ClientOptions {
        ca_file: Some(ca.to_path_buf()),
        ..Default::default()
    };
    VaultClient::with_options(url, token, &opts).unwrap()
}

#[test]
fn a_client_round_trip_over_https_with_a_self_signed_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, _) = certificate(certs.path(), "vault");
    let v = Vault::start_with(Some(tls.clone()));
    assert!(v.url.starts_with("https://127.0.0.1:"), "{}", v.url);
    let token = v.token("ORCL", Scope::Backup);

    let c: Arc<dyn Backend> = client(&v.url, &token, &tls.cert);
    let repo =
        v.rt.block_on(Repository::open(c, &KeySource::Passphrase(PASS.into())))
            .unwrap();
    let bytes = data(2_000_000, 9);
    put(&repo, "ORCL/tls", "ORCL", &bytes);
    assert_eq!(read(&v.rt, &repo, "ORCL/tls").unwrap(), bytes);

    // A certificate the client does not trust fails at once, not after retries.
    let (stranger, _) = certificate(certs.path(), "stranger");
    let untrusting = client(&v.url, &token, &stranger.cert);
    let start = Instant::now();
    let e = v.rt.block_on(untrusting.config()).unwrap_err().to_string();
    assert!(e.contains("ORCA_CA_FILE") && e.contains(&v.url), "{e}");
    assert!(!e.contains(&token), "{e}");
    assert!(start.elapsed().as_secs() < 2, "retried: {e}");
}

#[test]
fn the_server_speaks_http2_chosen_by_alpn_and_by_prior_knowledge() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, der) = certificate(certs.path(), "vault");
    let secure = Vault::start_with(Some(tls));
    let clear = Vault::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let addr = secure.url.trim_start_matches("https://");
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        healthz_over_h2(TokioIo::new(stream), &secure.url).await;

        let addr = clear.url.trim_start_matches("http://");
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        healthz_over_h2(TokioIo::new(tcp), &clear.url).await;
    });
}

async fn healthz_over_h2<T>(io: TokioIo<T>, url: &str)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("{url}/healthz"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
}

#[test]
fn wrong_tls_files_are_named_without_quoting_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("repo");
    common::init(&data);
    let (good, _) = certificate(dir.path(), "good");
    let secret = "c2VjcmV0IGtleSBtYXRlcmlhbA";
    let bad_key = dir.path().join("bad.key");
    std::fs::write(
        &bad_key,
        format!("-----BEGIN PRIVATE KEY-----\n{secret}!!\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let cases = [
        (dir.path().join("none.crt"), good.key.clone(), "none.crt"),
        (good.cert.clone(), bad_key, "bad.key"),
        (good.key.clone(), good.key.clone(), "certificate"),
    ];
    for (cert, key, named) in cases {
        let e = spawn_local_with(&data, Some(TlsFiles { cert, key }))
            .unwrap_err()
            .to_string();
        assert!(e.contains(named), "{e}");
        assert!(!e.contains(secret), "{e}");
    }
}
