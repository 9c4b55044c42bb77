//! A repository as a client uses it: a backend plus the keys to read and
//! write it. Creating one (`init`), opening one with a passphrase or a key
//! file, and the factories for piece writers and readers.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use tokio::runtime::Handle;

use crate::backend::Backend;
use crate::chunker::ChunkerSpec;
use crate::codec::{Cipher, Codec};
use crate::config::{DEFAULT_PACK_SIZE, DEFAULT_ZSTD_LEVEL, KeyStorage, RepoConfig};
use crate::error::{RepoError, Result};
use crate::index::{IndexLocation, PieceFilter, PieceInfo};
use crate::keys::{KdfParams, KeyFile, KeySource, Keys, WrappedKey, random_array};
use crate::manifest::{Manifest, PieceMeta};
use crate::reader::{PieceReader, ReadOptions};
use crate::store::Store;
use crate::writer::{PieceWriter, WriteOptions};

/// Choices made once, at `orca repo init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// AEAD cipher of every chunk and manifest.
    pub cipher: Cipher,
    /// zstd level (see [`RepoConfig::compression_level`]).
    pub compression_level: i32,
    /// Default chunker of the pieces that do not choose one.
    pub chunker: ChunkerSpec,
    /// Target size of pack objects.
    pub pack_size: u32,
    /// Argon2id parameters of the passphrase wrapping.
    pub kdf: KdfParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            cipher: Cipher::default(),
            compression_level: DEFAULT_ZSTD_LEVEL,
            chunker: ChunkerSpec::default(),
            pack_size: DEFAULT_PACK_SIZE,
            kdf: KdfParams::default(),
        }
    }
}

/// How the new repository's key is protected.
#[derive(Clone)]
pub enum NewKey {
    /// Wrap the key with this passphrase (not empty), in the repository.
    Passphrase(String),
    /// Write the key to this file (which must not exist yet).
    KeyFile(std::path::PathBuf),
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NewKey::Passphrase(_) => f.write_str("Passphrase(..)"),
            NewKey::KeyFile(p) => write!(f, "KeyFile({})", p.display()),
        }
    }
}

/// A repository opened with its key: the client side that writes and reads pieces
/// through a [`Backend`]. Cheap to clone; bound to the Tokio runtime it was opened in,
/// which runs its pipelines.
#[derive(Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    codec: Arc<Codec>,
    pools: Arc<crate::pool::Pools>,
    config: RepoConfig,
    cdc_seed: u64,
    rt: Handle,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.backend.location())
    }
}

impl Repository {
    /// Create a repository in `dir` (created if missing; refused when a
    /// repository is already there), its objects in the bucket that
    /// `dir/objects.json` names if there is one.
    pub async fn init_local(
        dir: &Path,
        opts: &InitOptions,
        key: &NewKey,
    ) -> Result<(Repository, Arc<Store>)> {
        std::fs::create_dir_all(dir).map_err(|e| {
            RepoError::io(
                format!("cannot create repository directory {}", dir.display()),
                e,
            )
        })?;
        if dir.join(crate::config::CONFIG_KEY).exists() {
            return Err(RepoError::AlreadyInitialised {
                location: dir.display().to_string(),
            });
        }
        let (objects, location) = Store::objects_of(dir)?;
        Self::init(objects, location, &Store::index_of(dir)?, opts, key).await
    }

    /// Create a repository on any object store, with its index at `index`.
    pub async fn init(
        objects: Arc<dyn ObjectStore>,
        location: String,
        index: &IndexLocation,
        opts: &InitOptions,
        key: &NewKey,
    ) -> Result<(Repository, Arc<Store>)> {
        let keys = Keys::generate()?;
        let id = hex::encode(random_array::<16>()?);
        let config = RepoConfig {
            version: crate::config::CONFIG_VERSION,
            id: id.clone(),
            created: crate::now_unix(),
            cipher: opts.cipher,
            compression_level: opts.compression_level,
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            key_storage: match key {
                NewKey::Passphrase(_) => KeyStorage::Passphrase,
                NewKey::KeyFile(_) => KeyStorage::Keyfile,
            },
            key_check: keys.key_check(&id),
        };
        config.validate("new repository config")?;
        let wrapped = match key {
            NewKey::Passphrase(p) => {
                if p.is_empty() {
                    return Err(RepoError::InvalidArgument("the passphrase is empty".into()));
                }
                Some(WrappedKey::wrap(&keys, &id, p, opts.kdf)?)
            }
            NewKey::KeyFile(path) => {
                KeyFile::new(&keys, &id).write_new(path)?;
                None
            }
        };
        let store = match Store::create(objects, location, index, &config, wrapped.as_ref()).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                // The key file belongs to a repository that was never made; left behind it
                // would block the next `init` with the same --key-file.
                if let NewKey::KeyFile(path) = key {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e);
            }
        };
        let repo = Repository::with_keys(store.clone(), config, keys)?;
        Ok((repo, store))
    }

    /// Open the local repository in `dir`.
    pub async fn open_local(dir: &Path, key: &KeySource) -> Result<(Repository, Arc<Store>)> {
        let store = Arc::new(Store::open_local(dir).await?);
        let repo = Repository::open(store.clone(), key).await?;
        Ok((repo, store))
    }

    /// Open a repository through any backend, unlocking its key.
    pub async fn open(backend: Arc<dyn Backend>, key: &KeySource) -> Result<Repository> {
        let config = backend.config().await?;
        let location = backend.location();
        let keys = match key {
            KeySource::KeyFile(path) => {
                let kf = KeyFile::read(path)?;
                if kf.repository != config.id {
                    return Err(RepoError::WrongKey {
                        location,
                        detail: format!(
                            "key file {} belongs to repository {}, not {}",
                            path.display(),
                            kf.repository,
                            config.id
                        ),
                    });
                }
                kf.keys(path)?
            }
            KeySource::Passphrase(p) => {
                if config.key_storage == KeyStorage::Keyfile {
                    return Err(RepoError::WrongKey {
                        location,
                        detail: "this repository's key is held in a key file: pass --key-file (ORCA_KEY_FILE)".into(),
                    });
                }
                let wrapped = backend.wrapped_keys().await?;
                if wrapped.is_empty() {
                    return Err(RepoError::corrupt(
                        format!("{location}/keys"),
                        "the repository holds no keys",
                    ));
                }
                let mut found = None;
                for (n, w) in wrapped.iter().enumerate() {
                    if let Some(k) = w.unwrap(&config.id, p, &format!("keys #{n}"))? {
                        found = Some(k);
                        break;
                    }
                }
                found.ok_or_else(|| RepoError::WrongKey {
                    location: location.clone(),
                    detail: "the passphrase unlocks none of its keys; check ORCA_PASSWORD".into(),
                })?
            }
        };
        if keys.key_check(&config.id) != config.key_check {
            return Err(RepoError::WrongKey {
                location,
                detail: "the key does not match the repository's key check".into(),
            });
        }
        let keys = match backend.group_secret().await? {
            Some(secret) => keys.for_group(&secret),
            None => keys,
        };
        Repository::with_keys(backend, config, keys)
    }

    fn with_keys(backend: Arc<dyn Backend>, config: RepoConfig, keys: Keys) -> Result<Repository> {
        let rt = Handle::try_current().map_err(|_| RepoError::NoRuntime)?;
        let cdc_seed = keys.cdc_seed();
        let codec = Arc::new(Codec::new(keys, config.cipher, config.compression_level));
        Ok(Repository {
            backend,
            codec,
            pools: Arc::default(),
            config,
            cdc_seed,
            rt,
        })
    }

    /// The repository configuration.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// What names this repository's fingerprint (lineage) cache: the repository's id, and
    /// the fingerprint of a dedup group's id key, so that a cache never offers chunk ids
    /// keyed by another group (or by the repository's own key) to a writer.
    pub fn cache_id(&self) -> String {
        let keys = self.codec.keys();
        if keys.is_group() {
            format!("{}-{}", self.config.id, keys.id_key_fingerprint())
        } else {
            self.config.id.clone()
        }
    }

    /// The backend it writes and reads through.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The chunk codec (holds the keys): what a deep [`crate::Store::verify`] needs.
    pub fn codec(&self) -> &Arc<Codec> {
        &self.codec
    }

    pub(crate) fn pools(&self) -> &Arc<crate::pool::Pools> {
        &self.pools
    }

    /// The pool writers take chunk buffers from (1 MiB with the default chunker), for a
    /// caller that holds bytes back before a writer starts (an SBT channel, until it knows
    /// the datafile): buffers handed back after use become the writer's chunks, so the bytes
    /// held back and the pipeline they feed share one set of buffers.
    pub fn chunk_buffers(&self) -> Arc<crate::pool::BufferPool> {
        self.pools.chunks.clone()
    }

    /// Free the buffers writers keep idle between pieces, for a process turning to restores;
    /// [`Codec::clear_idle`] is the other way round.
    pub fn clear_idle_write_buffers(&self) {
        self.pools.chunks.clear_idle();
        self.pools.payloads.clear_idle();
    }

    /// The runtime its pipelines run on.
    pub fn runtime(&self) -> &Handle {
        &self.rt
    }

    pub(crate) fn cdc_seed(&self) -> u64 {
        self.cdc_seed
    }

    /// Start writing a piece. The writer is driven from a blocking thread.
    pub fn writer(&self, name: &str, meta: PieceMeta, opts: &WriteOptions) -> Result<PieceWriter> {
        PieceWriter::new(self, name, meta, opts)
    }

    /// The verified manifest of a piece.
    pub async fn manifest(&self, name: &str) -> Result<Manifest> {
        let bytes = self
            .backend
            .manifest(name)
            .await?
            .ok_or_else(|| RepoError::PieceNotFound {
                name: name.to_string(),
            })?;
        Manifest::decode(
            &bytes,
            self.codec.keys(),
            &crate::manifest::object_key(name),
        )
    }

    /// Start reading a piece back, its chunks checked against the ids of the key that wrote
    /// it: the dedup group its manifest names, whichever group this client writes in.
    pub async fn reader(&self, name: &str, opts: &ReadOptions) -> Result<PieceReader> {
        let m = self.manifest(name).await?;
        let keys = m.keys(self.codec.keys(), &crate::manifest::object_key(name))?;
        let codec = if keys.id_key_fingerprint() == self.codec.keys().id_key_fingerprint() {
            self.codec.clone()
        } else {
            Arc::new(self.codec.with_keys(keys))
        };
        Ok(PieceReader::start(
            m,
            self.backend.clone(),
            codec,
            &self.rt,
            opts,
        ))
    }

    /// The committed pieces `filter` selects.
    pub async fn list(&self, filter: &PieceFilter) -> Result<Vec<PieceInfo>> {
        self.backend.list(filter).await
    }

    /// Delete piece `name`; its chunks become garbage once nothing else references them.
    pub async fn delete(&self, name: &str) -> Result<()> {
        if self.backend.delete(name).await? {
            Ok(())
        } else {
            Err(RepoError::PieceNotFound {
                name: name.to_string(),
            })
        }
    }
}
