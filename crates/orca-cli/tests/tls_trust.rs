//! With no ORCA_CA_FILE, a client trusts the platform's CA certificates wherever the
//! distribution keeps them (found through rustls-native-certs, which honours SSL_CERT_FILE),
//! not a Debian path written into the binary.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use orca_testing::orca::Orca;
use orca_testing::process::{Guard, free_port, output, run_ok, wait_for};

/// A self-signed certificate for 127.0.0.1: (certificate file, key file).
fn certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

#[test]
fn with_no_ca_file_the_platform_certificates_are_trusted_and_only_they() {
    let tmp = tempfile::tempdir().unwrap();
    let orca = Orca::at(env!("CARGO_BIN_EXE_orca")).with_password("test passphrase");
    let data = tmp.path().join("vault");
    run_ok(orca.cmd().args(["repo", "init", "--repo"]).arg(&data));
    let token = run_ok(
        orca.cmd()
            .args(["vault", "token", "create", "--data"])
            .arg(&data)
            .args(["--db", "ORCL", "--scope", "backup"]),
    )
    .trim()
    .to_string();
    let (cert, key) = certificate(tmp.path(), "vault");
    let (stranger, _) = certificate(tmp.path(), "stranger");
    let port = free_port();
    let _vault = Guard::spawn(
        orca.cmd()
            .args(["vault", "serve", "--data"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
    );
    wait_for("orca vault serve over TLS", 20, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let list = |bundle: &Path| -> (bool, String) {
        output(
            Command::new(env!("CARGO_BIN_EXE_orca"))
                .args(["recovery-points", "--json"])
                .env("ORCA_VAULT", format!("https://127.0.0.1:{port}"))
                .env("ORCA_TOKEN", &token)
                .env_remove("ORCA_CA_FILE")
                .env_remove("SSL_CERT_DIR")
                .env("SSL_CERT_FILE", bundle),
        )
    };
    let (ok, text) = list(&cert);
    assert!(ok, "the platform's bundle holds the vault's CA: {text}");
    assert!(text.trim_start().starts_with('['), "{text}");

    // Negative control: a platform bundle without the vault's CA is refused, and the error
    // says how to name one.
    let (ok, text) = list(&stranger);
    assert!(!ok, "a vault signed by no trusted CA was accepted: {text}");
    assert!(text.contains("ORCA_CA_FILE"), "{text}");
}
