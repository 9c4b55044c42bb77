//! The certificate authorities a TLS client trusts when it is given no CA file.

/// The platform's CA certificates, found wherever the distribution keeps them
/// (Debian's `/etc/ssl/certs`, RHEL's and Oracle Linux's `/etc/pki/tls`, ...;
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` override), through `rustls-native-certs`.
///
/// The error says where the certificates were looked for; callers add which
/// setting names a CA file instead.
pub fn system_ca_roots() -> std::result::Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), ToString::to_string);
        return Err(format!(
            "no usable system CA certificate ({why}; looked where openssl does, and in SSL_CERT_FILE / SSL_CERT_DIR)"
        ));
    }
    Ok(roots)
}
