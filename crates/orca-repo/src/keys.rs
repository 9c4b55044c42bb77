//! Repository keys.
//!
//! One random 32-byte master secret per repository. Three subkeys are derived
//! from it with BLAKE3's key derivation, so no subkey reveals another:
//! the chunk-id key (keyed fingerprints), the encryption key (chunk and key
//! payloads), and the MAC key (manifests, key check).
//!
//! A repository served by a vault to several databases keys chunk ids per dedup
//! group as well ([`Keys::for_group`]): the group's secret, which the vault gives
//! only to tokens of the group's databases, goes into the id key, so a database
//! cannot compute the ids another group's data will get (docs/design.md, "Tenants").
//!
//! The master secret is stored either wrapped by a passphrase (Argon2id →
//! AES-256-GCM, one `keys/<id>` object per passphrase) or in a key file held
//! outside the repository.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::aead::Aead;
use crate::codec::Cipher;
use crate::error::{RepoError, Result};
use crate::id::ChunkId;

const CTX_ID: &str = "orca 2026-11 chunk id key";
const CTX_ENC: &str = "orca 2026-11 chunk encryption key";
const CTX_MAC: &str = "orca 2026-11 manifest mac key";
const CTX_CDC: &str = "orca 2026-11 content-defined chunking seed";
const CTX_GROUP_ID: &str = "orca 2026-12 dedup group chunk id key";
const CTX_ID_PRINT: &str = "orca 2026-12 chunk id key fingerprint";

/// Derived keys of one repository. Never logged: `Debug` prints nothing secret.
#[derive(Clone)]
pub struct Keys {
    master: [u8; 32],
    id_key: [u8; 32],
    enc_key: [u8; 32],
    mac_key: [u8; 32],
    /// The dedup group's secret `id_key` is keyed by; `None` for the repository's own.
    group: Option<[u8; 32]>,
    /// Id keys of other groups a chunk may also be checked against (a deep verify of a
    /// vault's whole repository); never used to compute an id.
    other_ids: Vec<[u8; 32]>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// The keys derived from a 32-byte master secret.
    pub fn from_master(master: [u8; 32]) -> Self {
        Keys {
            master,
            id_key: blake3::derive_key(CTX_ID, &master),
            enc_key: blake3::derive_key(CTX_ENC, &master),
            mac_key: blake3::derive_key(CTX_MAC, &master),
            group: None,
            other_ids: Vec::new(),
        }
    }

    /// The keys of a dedup group with this secret: the same encryption and MAC keys, the
    /// chunk-id key derived from the repository's and the group's secret. Without the
    /// secret the ids of the group's chunks cannot be computed, so nobody outside the
    /// group can store a chunk under an id the group will use.
    pub fn for_group(&self, secret: &[u8; 32]) -> Keys {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&blake3::derive_key(CTX_ID, &self.master));
        material[32..].copy_from_slice(secret);
        Keys {
            id_key: blake3::derive_key(CTX_GROUP_ID, &material),
            group: Some(*secret),
            other_ids: Vec::new(),
            ..self.clone()
        }
    }

    /// The keys whose chunk ids are the repository's own (no dedup group).
    pub fn without_group(&self) -> Keys {
        Keys::from_master(self.master)
    }

    /// The group secret sealed for a manifest (hex of nonce, ciphertext and tag, under the
    /// encryption key): any holder of the repository key reads a group's pieces from their
    /// manifests alone, whatever became of the vault's catalog. `None` without a group.
    pub fn sealed_group_secret(&self) -> Result<Option<String>> {
        let Some(secret) = self.group else {
            return Ok(None);
        };
        let nonce: [u8; 12] = random_array()?;
        let mut buf = secret.to_vec();
        let tag = Aead::new(Cipher::Aes256Gcm, &self.enc_key)
            .seal(nonce, CTX_GROUP_ID.as_bytes(), &mut buf)
            .map_err(|_| RepoError::Crypto {
                what: "sealing the group secret",
            })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        Ok(Some(hex::encode(out)))
    }

    /// The keys of the group whose secret [`Keys::sealed_group_secret`] sealed; `object`
    /// names the manifest in errors.
    pub fn for_sealed_group(&self, sealed: &str, object: &str) -> Result<Keys> {
        let bad = || {
            RepoError::corrupt(
                object,
                "the sealed group secret does not open with this key",
            )
        };
        let raw = hex::decode(sealed).map_err(|_| bad())?;
        if raw.len() != 12 + 32 + 16 {
            return Err(bad());
        }
        let nonce: [u8; 12] = raw[..12].try_into().map_err(|_| bad())?;
        let mut buf = raw[12..].to_vec();
        let n = Aead::new(Cipher::Aes256Gcm, &self.enc_key)
            .open(nonce, CTX_GROUP_ID.as_bytes(), &mut buf)
            .map_err(|_| bad())?;
        let secret: [u8; 32] = buf
            .get(..n)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(bad)?;
        Ok(self.for_group(&secret))
    }

    /// The same keys, also accepting chunks whose ids were keyed by one of these groups'
    /// secrets when checking a chunk against its id ([`Keys::id_matches`]): what a deep
    /// verify of a vault's repository, which holds every group's chunks, needs.
    pub fn accepting_groups(mut self, secrets: &[[u8; 32]]) -> Keys {
        let more: Vec<[u8; 32]> = secrets.iter().map(|s| self.for_group(s).id_key).collect();
        self.other_ids.extend(more);
        self
    }

    /// The dedup group's secret these keys key ids by, if any.
    pub fn group_secret(&self) -> Option<[u8; 32]> {
        self.group
    }

    /// Whether chunk ids are keyed by a dedup group's secret ([`Keys::for_group`]).
    pub fn is_group(&self) -> bool {
        self.group.is_some()
    }

    /// A short public fingerprint of the chunk-id key (16 hex digits): a group's manifests
    /// name it beside the secret they seal (a reader checks the one gives the other), and
    /// lineage caches are kept apart by it.
    pub fn id_key_fingerprint(&self) -> String {
        hex::encode(&blake3::derive_key(CTX_ID_PRINT, &self.id_key)[..8])
    }

    /// Whether `id` is the id of `plaintext`, under this id key or one of the groups'
    /// this value accepts.
    pub fn id_matches(&self, plaintext: &[u8], id: &ChunkId) -> bool {
        self.chunk_id(plaintext) == *id
            || self
                .other_ids
                .iter()
                .any(|k| blake3::keyed_hash(k, plaintext).as_bytes() == id.as_bytes())
    }

    /// New keys from a random master secret (the operating system's random source).
    pub fn generate() -> Result<Self> {
        Ok(Self::from_master(random_array()?))
    }

    /// Keyed fingerprint of a chunk.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Keyed fingerprint plus the values of its 8 KiB units (module `hash`).
    pub fn chunk_hash(
        &self,
        plaintext: &[u8],
        with_units: bool,
    ) -> (ChunkId, Option<Vec<crate::hash::UnitCv>>) {
        crate::hash::chunk_hash(&self.id_key, plaintext, crate::hash::UNIT, with_units, None)
    }

    /// The key of chunk ids, for hashing a chunk part by part (see
    /// [`crate::hash::unit_cvs`]).
    pub(crate) fn id_key(&self) -> &[u8; 32] {
        &self.id_key
    }

    pub(crate) fn enc_key(&self) -> &[u8; 32] {
        &self.enc_key
    }

    /// MAC over `parts`, in order.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.mac_key);
        for p in parts {
            h.update(p);
        }
        *h.finalize().as_bytes()
    }

    /// Value stored in the repository config that proves a key belongs to it
    /// without revealing the key.
    pub fn key_check(&self, repo_id: &str) -> String {
        hex::encode(self.mac(&[b"orca key check", repo_id.as_bytes()]))
    }

    /// Seed for the content-defined chunker, so cut points do not leak content.
    pub fn cdc_seed(&self) -> u64 {
        let [a, b, c, d, e, f, g, h, ..] = blake3::derive_key(CTX_CDC, &self.master);
        u64::from_le_bytes([a, b, c, d, e, f, g, h])
    }

    /// The master secret in hex: what a key file holds.
    pub fn master_hex(&self) -> String {
        hex::encode(self.master)
    }
}

pub(crate) fn random_array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(RepoError::Random)?;
    Ok(out)
}

/// Argon2id parameters used to wrap the master secret with a passphrase.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub m_kib: u32,
    /// Time cost (passes).
    pub t: u32,
    /// Parallelism (lanes).
    pub p: u32,
}

impl Default for KdfParams {
    /// OWASP's recommended Argon2id setting: about 30 ms here, paid once per
    /// process that opens the repository (each RMAN channel).
    fn default() -> Self {
        KdfParams {
            m_kib: 19 * 1024,
            t: 2,
            p: 1,
        }
    }
}

/// The master secret wrapped by a passphrase: the body of a `keys/<id>` object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Key derivation function (`argon2id`).
    pub kdf: String,
    /// Its parameters.
    pub params: KdfParams,
    /// Random salt of the derivation, hex.
    pub salt: String,
    /// AEAD nonce of the wrapping, hex.
    pub nonce: String,
    /// The master secret encrypted with the derived key, with its tag, hex.
    pub wrapped: String,
    /// When this passphrase was added (Unix seconds).
    pub created: i64,
}

impl WrappedKey {
    /// Wrap the master secret of `keys` with `passphrase`, bound to repository `repo_id`.
    pub fn wrap(keys: &Keys, repo_id: &str, passphrase: &str, params: KdfParams) -> Result<Self> {
        let salt: [u8; 16] = random_array()?;
        let nonce: [u8; 12] = random_array()?;
        let kek = derive_kek(passphrase, &salt, params)?;
        let mut buf = keys.master.to_vec();
        let tag = Aead::new(Cipher::Aes256Gcm, &kek)
            .seal(nonce, repo_id.as_bytes(), &mut buf)
            .map_err(|_| RepoError::Crypto {
                what: "wrapping the master key",
            })?;
        buf.extend_from_slice(&tag);
        Ok(WrappedKey {
            kdf: "argon2id".into(),
            params,
            salt: hex::encode(salt),
            nonce: hex::encode(nonce),
            wrapped: hex::encode(buf),
            created: crate::now_unix(),
        })
    }

    /// Unwrap with a passphrase; `None` when the passphrase does not fit.
    pub fn unwrap(&self, repo_id: &str, passphrase: &str, object: &str) -> Result<Option<Keys>> {
        if self.kdf != "argon2id" {
            return Err(RepoError::corrupt(
                object,
                format!("unknown key derivation {:?}", self.kdf),
            ));
        }
        let bad = |what: &str| RepoError::corrupt(object, format!("malformed {what}"));
        let salt = hex::decode(&self.salt).map_err(|_| bad("salt"))?;
        let nonce: [u8; 12] = hex::decode(&self.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| bad("nonce"))?;
        let mut buf = hex::decode(&self.wrapped).map_err(|_| bad("wrapped key"))?;
        if buf.len() != 32 + 16 {
            return Err(bad("wrapped key length"));
        }
        let kek = derive_kek(passphrase, &salt, self.params)?;
        match Aead::new(Cipher::Aes256Gcm, &kek).open(nonce, repo_id.as_bytes(), &mut buf) {
            Ok(n) => {
                let master: [u8; 32] = buf
                    .get(..n)
                    .and_then(|m| m.try_into().ok())
                    .ok_or_else(|| bad("wrapped key length"))?;
                Ok(Some(Keys::from_master(master)))
            }
            Err(_) => Ok(None),
        }
    }
}

fn derive_kek(passphrase: &str, salt: &[u8], p: KdfParams) -> Result<[u8; 32]> {
    let params = argon2::Params::new(p.m_kib, p.t, p.p, Some(32))
        .map_err(|e| RepoError::InvalidArgument(format!("Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .map_err(|source| RepoError::Kdf { source })?;
    Ok(out)
}

/// A key file: the master secret in the clear, kept outside the repository
/// (e.g. in a vault of the customer's own), mode 0600.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key file format version (1).
    pub orca_key_file: u32,
    /// Id of the repository the key belongs to.
    pub repository: String,
    /// The master secret, hex.
    pub master: String,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFile(repository={})", self.repository)
    }
}

impl KeyFile {
    /// The key file of `keys` for repository `repo_id`.
    pub fn new(keys: &Keys, repo_id: &str) -> Self {
        KeyFile {
            orca_key_file: 1,
            repository: repo_id.to_string(),
            master: keys.master_hex(),
        }
    }

    /// Write the key file, refusing to overwrite an existing one.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let ctx = || format!("cannot create key file {}", path.display());
        let mut f = opts.open(path).map_err(|e| RepoError::io(ctx(), e))?;
        let body = serde_json::to_vec_pretty(self).map_err(|e| RepoError::json("key file", e))?;
        f.write_all(&body).map_err(|e| RepoError::io(ctx(), e))?;
        f.sync_all().map_err(|e| RepoError::io(ctx(), e))
    }

    /// Read the key file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let body = crate::read_secret_file(path, "the key file")?;
        serde_json::from_slice(&body).map_err(|e| {
            RepoError::corrupt(
                path.display().to_string(),
                format!("not an ORCA key file: {e}"),
            )
        })
    }

    /// The keys this file holds; `path` names the file in errors.
    pub fn keys(&self, path: &Path) -> Result<Keys> {
        let master: [u8; 32] = hex::decode(&self.master)
            .ok()
            .and_then(|m| m.try_into().ok())
            .ok_or_else(|| {
                RepoError::corrupt(path.display().to_string(), "malformed master key")
            })?;
        Ok(Keys::from_master(master))
    }
}

/// Where the secret comes from when opening a repository.
#[derive(Clone)]
pub enum KeySource {
    /// Unwrap the key stored in the repository with this passphrase.
    Passphrase(String),
    /// Read the key from this key file.
    KeyFile(std::path::PathBuf),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Passphrase(_) => f.write_str("Passphrase(..)"),
            KeySource::KeyFile(p) => write!(f, "KeyFile({})", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        }
    }

    /// A key wrapped before the AEAD library changed still unwraps.
    #[test]
    fn a_key_wrapped_by_the_earlier_aead_library_unwraps() {
        let w: WrappedKey = serde_json::from_str(
            r#"{"kdf":"argon2id","params":{"m_kib":64,"t":1,"p":1},"salt":"2e5bec144934ee0ec3a1eff136691636","nonce":"fddfbae577ebc899929be9a9","wrapped":"99af6ff1d1bca15a48075a467853f4f7ff10be1485d3c7aba771235205d289fc9a215308f60488014845674915675301","created":1796282413}"#,
        )
        .unwrap();
        let keys = w
            .unwrap("repo-kat", "kat passphrase", "keys/kat")
            .unwrap()
            .unwrap();
        assert_eq!(keys.master, [5u8; 32]);
        assert!(w.unwrap("repo-kat", "other", "keys/kat").unwrap().is_none());
    }

    #[test]
    fn wrap_unwrap() {
        let keys = Keys::generate().unwrap();
        let w = WrappedKey::wrap(&keys, "repo1", "secret", fast()).unwrap();
        let back = w.unwrap("repo1", "secret", "keys/x").unwrap().unwrap();
        assert_eq!(back.master, keys.master);
        assert!(w.unwrap("repo1", "wrong", "keys/x").unwrap().is_none());
        assert!(w.unwrap("repo2", "secret", "keys/x").unwrap().is_none());
    }

    #[test]
    fn subkeys_differ_and_ids_are_keyed() {
        let a = Keys::generate().unwrap();
        let b = Keys::generate().unwrap();
        assert_ne!(a.id_key, a.enc_key);
        assert_ne!(a.enc_key, a.mac_key);
        assert_ne!(a.chunk_id(b"x"), b.chunk_id(b"x"));
        assert_eq!(a.chunk_id(b"x"), a.chunk_id(b"x"));
        assert_ne!(a.key_check("r"), b.key_check("r"));
    }

    /// A group's ids differ from the repository's and from another group's; encryption and
    /// MAC keys are shared, and a verify that accepts the groups matches their ids.
    #[test]
    fn group_keys_key_ids_by_the_secret_and_nothing_else() {
        let k = Keys::from_master([3u8; 32]);
        let (a, b) = (k.for_group(&[1u8; 32]), k.for_group(&[2u8; 32]));
        let ids = [k.chunk_id(b"x"), a.chunk_id(b"x"), b.chunk_id(b"x")];
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert_eq!(a.chunk_id(b"x"), k.for_group(&[1u8; 32]).chunk_id(b"x"));
        assert_eq!(a.for_group(&[2u8; 32]).chunk_id(b"x"), ids[2]);
        assert_eq!((a.enc_key, a.mac_key), (k.enc_key, k.mac_key));
        assert!(a.is_group() && !k.is_group());
        let prints = [&k, &a, &b].map(Keys::id_key_fingerprint);
        assert!(prints[0] != prints[1] && prints[1] != prints[2] && prints[0].len() == 16);
        assert!(!k.id_matches(b"x", &ids[1]));
        let all = k.clone().accepting_groups(&[[1u8; 32], [2u8; 32]]);
        assert!(ids.iter().all(|id| all.id_matches(b"x", id)));
        assert!(!all.id_matches(b"y", &ids[1]));
        assert_eq!(all.chunk_id(b"x"), ids[0]);
        let sealed = a.sealed_group_secret().unwrap().unwrap();
        let opened = k.for_sealed_group(&sealed, "m").unwrap();
        assert_eq!(opened.chunk_id(b"x"), ids[1]);
        assert!(
            Keys::from_master([4u8; 32])
                .for_sealed_group(&sealed, "m")
                .is_err()
        );
        assert!(k.sealed_group_secret().unwrap().is_none());
        assert_eq!(a.without_group().chunk_id(b"x"), ids[0]);
    }

    #[test]
    fn key_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let keys = Keys::generate().unwrap();
        KeyFile::new(&keys, "r").write_new(&path).unwrap();
        assert!(KeyFile::new(&keys, "r").write_new(&path).is_err());
        let kf = KeyFile::read(&path).unwrap();
        assert_eq!(kf.keys(&path).unwrap().master, keys.master);
    }
}
