//! The local repository the SBT library's tests back up into. It lives here rather than in
//! orca-testing, which depends on no workspace crate.

use std::path::Path;

/// Makes a repository in `dir` locked by `password`, with a key derivation cheap enough
/// for tests.
pub fn init_repo(dir: &Path, password: &str) {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(orca_repo::Repository::init_local(
            dir,
            &orca_repo::InitOptions {
                kdf: orca_repo::KdfParams {
                    m_kib: 256,
                    t: 1,
                    p: 1,
                },
                ..Default::default()
            },
            &orca_repo::NewKey::Passphrase(password.into()),
        ))
        .unwrap();
}

/// The repository in `dir` opened in-process, and the runtime its calls run on.
pub fn open_repo(dir: &Path, password: &str) -> (tokio::runtime::Runtime, orca_repo::Repository) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (repo, _) = rt
        .block_on(orca_repo::Repository::open_local(
            dir,
            &orca_repo::KeySource::Passphrase(password.into()),
        ))
        .unwrap();
    (rt, repo)
}
