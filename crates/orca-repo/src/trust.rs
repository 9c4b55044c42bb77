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

/// Reads a file holding a secret (a key, a password, credentials), refusing one that group or
/// others may read, as ssh refuses such a private key: a secret others could copy is no secret,
/// and saying so at once beats finding out after a breach. `what` names the file in errors.
pub fn read_secret_file(path: &std::path::Path, what: &str) -> crate::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| crate::RepoError::io(format!("cannot read {what} {}", path.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f
            .metadata()
            .map_err(|e| crate::RepoError::io(format!("cannot read {what} {}", path.display()), e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(crate::RepoError::InvalidArgument(format!(
                "{what} {} is readable or writable by group or others (mode {:04o}): run `chmod 600 {}`",
                path.display(),
                mode & 0o7777,
                path.display()
            )));
        }
    }
    let mut body = Vec::new();
    f.read_to_end(&mut body)
        .map_err(|e| crate::RepoError::io(format!("cannot read {what} {}", path.display()), e))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_secret_file_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "secret\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_secret_file(&path, "the password file")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("chmod 600") && e.contains(&format!("{mode:04o}")),
                "{e}"
            );
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(
                read_secret_file(&path, "the password file").unwrap(),
                b"secret\n"
            );
        }
    }
}
