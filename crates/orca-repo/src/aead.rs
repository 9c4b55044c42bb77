//! The AEAD ciphers, through ring: its AES-256-GCM uses the CPU's AES, carry-less multiply
//! and vector units (about 4x RustCrypto's `aes-gcm` on this project's machines), and both
//! ciphers are the standard constructions, so payloads are the same bytes whichever
//! library wrote them (the known-answer tests in `codec` and `keys` hold this).

use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use crate::codec::Cipher;

/// Authentication failed, or the cipher refused its input.
#[derive(Debug)]
pub struct Unauthentic;

/// One key of one cipher; safe to use from many threads.
pub struct Aead(LessSafeKey);

impl Aead {
    /// A key of `cipher`.
    pub fn new(cipher: Cipher, key: &[u8; 32]) -> Aead {
        let alg = match cipher {
            Cipher::Aes256Gcm => &AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        };
        Aead(LessSafeKey::new(
            UnboundKey::new(alg, key).expect("a 32-byte key fits both ciphers"),
        ))
    }

    /// Encrypts `in_out` in place; the 16-byte tag.
    pub fn seal(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; 16], Unauthentic> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map_err(|_| Unauthentic)?;
        tag.as_ref().try_into().map_err(|_| Unauthentic)
    }

    /// Decrypts ciphertext followed by its tag in place; the plaintext's length.
    pub fn open(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, Unauthentic> {
        self.0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map(|plain| plain.len())
            .map_err(|_| Unauthentic)
    }
}
