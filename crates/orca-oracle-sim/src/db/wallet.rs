//! The keystore stand-in behind transparent backup encryption (CONFIGURE ENCRYPTION FOR
//! DATABASE ON, SET ENCRYPTION ON without ONLY): a random 256-bit master key in
//! `<home>/wallet/ewallet.key` (hex), usable while `<home>/wallet/open` exists, as
//! Oracle's keystore is usable once `ADMINISTER KEY MANAGEMENT SET KEYSTORE OPEN`.

use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

fn dir(home: &Path) -> PathBuf {
    home.join("wallet")
}

/// The master key while the keystore is open; None when closed or never created.
pub fn wallet_key(home: &Path) -> Option<[u8; 32]> {
    let d = dir(home);
    if !d.join("open").is_file() {
        return None;
    }
    let text = std::fs::read_to_string(d.join("ewallet.key")).ok()?;
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

/// Opens the keystore, creating its master key the first time.
pub fn open_wallet(home: &Path) -> std::io::Result<()> {
    let d = dir(home);
    std::fs::create_dir_all(&d)?;
    let key_file = d.join("ewallet.key");
    if !key_file.is_file() {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| std::io::Error::other("no random bytes for the wallet's master key"))?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&key_file, format!("{hex}\n"))?;
    }
    std::fs::write(d.join("open"), b"")
}

/// Closes the keystore: encrypted backups that need it no longer restore.
pub fn close_wallet(home: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir(home).join("open")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
