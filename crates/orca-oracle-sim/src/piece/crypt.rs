//! Encrypted backup sets (SET ENCRYPTION, CONFIGURE ENCRYPTION FOR DATABASE): every piece
//! has its own random AES-256-GCM data key, stored in the header wrapped under a key derived
//! from the password, under one derived from the wallet's master key, or both (Oracle's
//! password, transparent and dual modes). Layout in `PIECE.md`.

use std::num::NonZeroU32;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of one key slot: salt, wrapped data key, GCM tag.
pub const SLOT: usize = 16 + 32 + 16;
/// Bytes of the two slots (password, wallet) in the header.
pub const WRAPS: usize = 2 * SLOT;

/// PBKDF2 rounds for a password; the wallet's master key is random and needs only one.
const PASSWORD_ROUNDS: u32 = 4096;

/// How a piece's data key may be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secrets<'a> {
    pub password: Option<&'a str>,
    pub wallet: Option<&'a [u8; 32]>,
}

/// The data key of one piece.
pub struct DataKey(LessSafeKey);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn wrapping_key(secret: &[u8], salt: &[u8], rounds: u32) -> LessSafeKey {
    let mut k = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(rounds).expect("rounds > 0"),
        salt,
        secret,
        &mut k,
    );
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).expect("a 32-byte AES-256 key"))
}

fn aead(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key"))
}

/// A new random data key and its header slots (a slot stays zero without its secret).
pub fn new_key(secrets: Secrets<'_>) -> Result<(DataKey, Vec<u8>), ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let mut key = [0u8; 32];
    rng.fill(&mut key)?;
    let mut wraps = vec![0u8; WRAPS];
    let password = secrets.password.map(|p| (0, p.as_bytes(), PASSWORD_ROUNDS));
    let wallet = secrets.wallet.map(|w| (SLOT, &w[..], 1));
    for (at, secret, rounds) in password.into_iter().chain(wallet) {
        let slot = &mut wraps[at..at + SLOT];
        rng.fill(&mut slot[..16])?;
        let mut sealed = key.to_vec();
        // Each wrapping key is new (fresh salt), so a zero nonce is used once only.
        wrapping_key(secret, &slot[..16], rounds).seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
            Aad::empty(),
            &mut sealed,
        )?;
        slot[16..].copy_from_slice(&sealed);
    }
    Ok((DataKey(aead(&key)), wraps))
}

/// The data key, if one of the passwords or the wallet opens a slot.
pub fn open_key(wraps: &[u8], passwords: &[String], wallet: Option<&[u8; 32]>) -> Option<DataKey> {
    let try_slot = |at: usize, secret: &[u8], rounds: u32| -> Option<DataKey> {
        let slot = wraps.get(at..at + SLOT)?;
        if slot.iter().all(|&b| b == 0) {
            return None;
        }
        let mut sealed = slot[16..].to_vec();
        let key = wrapping_key(secret, &slot[..16], rounds)
            .open_in_place(
                Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
                Aad::empty(),
                &mut sealed,
            )
            .ok()?;
        let key: [u8; 32] = key.try_into().ok()?;
        Some(DataKey(aead(&key)))
    };
    passwords
        .iter()
        .find_map(|p| try_slot(0, p.as_bytes(), PASSWORD_ROUNDS))
        .or_else(|| wallet.and_then(|w| try_slot(SLOT, w, 1)))
}

fn nonce(record: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&record.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

impl DataKey {
    /// Encrypts the payload of record number `record` (unique in the piece), bound to `aad`.
    pub fn seal(&self, record: u64, aad: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        self.0
            .seal_in_place_append_tag(nonce(record), Aad::from(aad), &mut v)
            .expect("AES-GCM sealing of a record");
        v
    }

    /// Decrypts what [`DataKey::seal`] made; None if it was changed or the key is wrong.
    pub fn open(&self, record: u64, aad: &[u8], mut data: Vec<u8>) -> Option<Vec<u8>> {
        let n = self
            .0
            .open_in_place(nonce(record), Aad::from(aad), &mut data)
            .ok()?
            .len();
        data.truncate(n);
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_opens_with_its_secret_only() {
        let wallet = [7u8; 32];
        let (key, wraps) = new_key(Secrets {
            password: Some("pw"),
            wallet: None,
        })
        .unwrap();
        let sealed = key.seal(3, b"aad", b"blocks");
        let opened = open_key(&wraps, &["pw".into()], None).unwrap();
        assert_eq!(opened.open(3, b"aad", sealed.clone()).unwrap(), b"blocks");
        assert!(opened.open(4, b"aad", sealed.clone()).is_none());
        assert!(open_key(&wraps, &["other".into()], Some(&wallet)).is_none());

        let (_, wraps) = new_key(Secrets {
            password: None,
            wallet: Some(&wallet),
        })
        .unwrap();
        assert!(open_key(&wraps, &["pw".into()], None).is_none());
        assert!(open_key(&wraps, &[], Some(&wallet)).is_some());
        assert!(open_key(&wraps, &[], Some(&[8u8; 32])).is_none());
    }
}
