//! The in-process transit engine: Vault's transit operations over a [`Keyring`],
//! with keys sealed in a keyring file (or memory) under a root key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::{
    BatchResult, DataKey, DataKeyRequest, DecryptItem, EncryptItem, ExportKind, ExportedKey, HmacItem, HmacTag,
    InProcess, RewrapItem, TransitEngine, VerifyHmacItem,
};
use crate::cipher::{self, HashAlgorithm};
use crate::ciphertext::Ciphertext;
use crate::error::{Error, Result};
use crate::keyring::{Budget, EngineOptions, KeyConfig, KeyInfo, KeyOptions, Keyring, LoadedKey, StoredKey, unix_now};
use crate::name::{KeyName, KeyVersion};
use crate::secret::{Plaintext, SecretBytes};
use crate::storage::{Barrier, FileStorage, MemoryStorage, RootKey, Storage};

/// Largest `random_bytes` request, as in Vault.
const MAX_RANDOM_BYTES: usize = 128 * 1024;

/// The in-process transit engine.
///
/// Cheap to share: wrap it in an `Arc` (it is `Send + Sync`); every operation takes
/// `&self`. Expanded ciphers are kept per key version (and per context for derived
/// keys), so no call pays for a key schedule.
///
/// ```
/// use encrypted_attr::{EncryptItem, DecryptItem, KeyName, KeyOptions, LocalEngine, TransitEngine};
///
/// let engine = LocalEngine::ephemeral()?;
/// let key = KeyName::new("users_ssn")?;
/// engine.create_key(&key, KeyOptions::default())?;
/// let ciphertext = engine.encrypt(&key, EncryptItem::new("123-45-6789"))?;
/// assert!(ciphertext.to_string().starts_with("vault:v1:"));
/// let plaintext = engine.decrypt(&key, DecryptItem::new(ciphertext))?;
/// assert_eq!(plaintext.expose_secret(), b"123-45-6789");
/// # Ok::<(), encrypted_attr::Error>(())
/// ```
pub struct LocalEngine {
    keyring: Keyring,
}

impl std::fmt::Debug for LocalEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEngine").finish_non_exhaustive()
    }
}

impl LocalEngine {
    /// Opens the keyring file at `path` (created if missing) with `root_key`.
    ///
    /// # Errors
    /// [`Error::WrongRootKey`] if the file was sealed under another key,
    /// [`Error::CorruptStorage`] if it is damaged (it is then left untouched),
    /// [`Error::Io`] if it cannot be read or created.
    pub fn open(path: impl AsRef<Path>, root_key: &RootKey) -> Result<Self> {
        Self::with_storage(
            Arc::new(FileStorage::open(path.as_ref())?),
            root_key,
            EngineOptions::default(),
        )
    }

    /// An engine over any [`Storage`], with explicit options.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn with_storage(storage: Arc<dyn Storage>, root_key: &RootKey, options: EngineOptions) -> Result<Self> {
        let barrier = Barrier::open(storage, root_key)?;
        Ok(Self {
            keyring: Keyring::load(barrier, options)?,
        })
    }

    /// An engine in memory under a random root key, for tests and examples: every key
    /// is lost when it drops.
    ///
    /// # Errors
    /// [`Error::RandomSource`] if the OS random source fails.
    pub fn ephemeral() -> Result<Self> {
        Self::ephemeral_with(EngineOptions::default())
    }

    /// [`ephemeral`](Self::ephemeral) with explicit options.
    ///
    /// # Errors
    /// [`Error::RandomSource`], or invalid options.
    pub fn ephemeral_with(options: EngineOptions) -> Result<Self> {
        Self::with_storage(Arc::new(MemoryStorage::new()), &RootKey::generate()?, options)
    }

    /// Whether using the key `name` now reads or writes no storage: in memory and
    /// fresh, no automatic rotation about to fall due, and enough encryptions
    /// reserved for a small request. A server answers requests on such keys on its
    /// async threads and sends the others, which may wait on storage, to blocking
    /// ones.
    #[must_use]
    pub fn is_key_fresh(&self, name: &KeyName) -> bool {
        self.keyring.is_fresh(name)
    }

    /// Re-reads from storage every key this engine holds that was loaded more than
    /// `age` ago, and forgets those deleted meanwhile; returns how many were read.
    /// A server calls this in the background, so that requests find their keys
    /// fresh instead of all re-reading them at once when the refresh interval
    /// passes.
    ///
    /// # Errors
    /// Storage failed (the keys not yet re-read stay as they were).
    pub fn refresh_keys_older_than(&self, age: std::time::Duration) -> Result<usize> {
        self.keyring.refresh_older_than(age)
    }

    /// The key to use now: loaded, and rotated first if its auto-rotation is due.
    fn key(&self, name: &KeyName) -> Result<Arc<LoadedKey>> {
        self.keyring.rotate_if_due(self.keyring.get(name)?)
    }

    /// The key, reloaded from storage if some item names a version newer than this
    /// process knows (another process rotated it).
    fn key_for_versions(&self, name: &KeyName, newest: Option<KeyVersion>) -> Result<Arc<LoadedKey>> {
        let key = self.keyring.get(name)?;
        match newest {
            Some(v) if v > key.info.latest_version => self.keyring.reload(name),
            _ => Ok(key),
        }
    }

    fn seal_one(&self, key: &mut Arc<LoadedKey>, item: &EncryptItem) -> Result<Ciphertext> {
        loop {
            let version = key.encryption_version(item.key_version)?.clone();
            let cipher = version.cipher_for(
                key,
                item.context.as_deref(),
                self.keyring.options.derived_cache_capacity,
            )?;
            let aad = item.associated_data.as_deref().unwrap_or_default();
            let plaintext = item.plaintext.expose_secret();
            let nonce = match cipher.nonce_key() {
                Some(nonce_key) => cipher::convergent_nonce(nonce_key, aad, plaintext),
                None => match self.keyring.take_budget(key, &version)? {
                    Budget::Granted => cipher::random_nonce(self.keyring.options.check_fork)?,
                    Budget::Rotated => {
                        *key = self.keyring.get(&key.info.name)?;
                        continue;
                    }
                },
            };
            let payload = cipher.aead().seal(&nonce, aad, plaintext);
            if payload.is_empty() {
                return Err(Error::invalid("plaintext too long"));
            }
            return Ok(Ciphertext::from_parts(version.version, payload));
        }
    }

    fn open_one(
        key: &LoadedKey,
        capacity: usize,
        ct: &Ciphertext,
        context: Option<&[u8]>,
        aad: Option<&[u8]>,
    ) -> Result<Plaintext> {
        let version = key.decryption_version(ct.version())?;
        let cipher = version.cipher_for(key, context, capacity)?;
        cipher.aead().open(aad.unwrap_or_default(), ct)
    }

    fn modify_existing(&self, name: &KeyName, change: &mut dyn FnMut(&mut StoredKey) -> Result<()>) -> Result<KeyInfo> {
        let loaded = self.keyring.modify(name, &mut |stored| {
            let mut stored = stored.ok_or_else(|| Error::KeyNotFound { name: name.clone() })?;
            change(&mut stored)?;
            Ok(Some(stored))
        })?;
        loaded
            .map(|k| k.info.clone())
            .ok_or_else(|| Error::KeyNotFound { name: name.clone() })
    }
}

impl TransitEngine for LocalEngine {
    fn encrypt_batch(&self, key: &KeyName, items: Vec<EncryptItem>) -> BatchResult<Ciphertext> {
        let loaded = self.key(key)?;
        Ok(parallel_map(
            self.keyring.options.parallel_batch_threshold,
            &items,
            |chunk| {
                let mut loaded = loaded.clone();
                chunk.iter().map(|item| self.seal_one(&mut loaded, item)).collect()
            },
        ))
    }

    fn decrypt_batch(&self, key: &KeyName, items: Vec<DecryptItem>) -> BatchResult<Plaintext> {
        let newest = items.iter().map(|i| i.ciphertext.version()).max();
        let loaded = self.key_for_versions(key, newest)?;
        let capacity = self.keyring.options.derived_cache_capacity;
        Ok(parallel_map(
            self.keyring.options.parallel_batch_threshold,
            &items,
            |chunk| {
                chunk
                    .iter()
                    .map(|i| {
                        Self::open_one(
                            &loaded,
                            capacity,
                            &i.ciphertext,
                            i.context.as_deref(),
                            i.associated_data.as_deref(),
                        )
                    })
                    .collect()
            },
        ))
    }

    fn rewrap_batch(&self, key: &KeyName, items: Vec<RewrapItem>) -> BatchResult<Ciphertext> {
        let newest = items.iter().map(|i| i.ciphertext.version()).max();
        self.key_for_versions(key, newest)?;
        let mut loaded = self.key(key)?;
        let capacity = self.keyring.options.derived_cache_capacity;
        Ok(items
            .into_iter()
            .map(|i| {
                let plaintext = Self::open_one(
                    &loaded,
                    capacity,
                    &i.ciphertext,
                    i.context.as_deref(),
                    i.associated_data.as_deref(),
                )?;
                let item = EncryptItem {
                    plaintext,
                    context: i.context,
                    associated_data: i.associated_data,
                    key_version: i.key_version,
                };
                self.seal_one(&mut loaded, &item)
            })
            .collect())
    }

    fn hmac_batch(&self, key: &KeyName, algorithm: HashAlgorithm, items: Vec<HmacItem>) -> BatchResult<HmacTag> {
        let loaded = self.key(key)?;
        Ok(items
            .iter()
            .map(|item| {
                let version = match item.key_version {
                    Some(v)
                        if v.get() < loaded.info.min_encryption_version || v < loaded.info.min_decryption_version =>
                    {
                        return Err(Error::invalid(
                            "cannot generate HMAC: version is too old (disallowed by policy)",
                        ));
                    }
                    Some(v) if v > loaded.info.latest_version => {
                        return Err(Error::invalid("cannot generate HMAC: version is too new"));
                    }
                    requested => loaded.encryption_version(requested)?,
                };
                Ok(HmacTag::new(
                    version.version,
                    algorithm.hmac(&version.hmac_key, item.input.expose_secret()),
                ))
            })
            .collect())
    }

    fn verify_hmac_batch(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<VerifyHmacItem>,
    ) -> BatchResult<bool> {
        let newest = items.iter().map(|i| i.hmac.version()).max();
        let loaded = self.key_for_versions(key, newest)?;
        Ok(items
            .iter()
            .map(|item| {
                let v = item.hmac.version();
                if v > loaded.info.latest_version {
                    return Err(Error::invalid("invalid HMAC: version is too new"));
                }
                if v < loaded.info.min_decryption_version {
                    return Err(Error::invalid("cannot verify HMAC: version is too old"));
                }
                let version = loaded.version(v)?;
                Ok(algorithm.verify_hmac(&version.hmac_key, item.input.expose_secret(), item.hmac.tag()))
            })
            .collect())
    }

    fn datakey(&self, key: &KeyName, request: DataKeyRequest) -> Result<DataKey> {
        let mut loaded = self.key(key)?;
        let data_key = cipher::os_random(request.bits.bytes())?;
        let item = EncryptItem {
            plaintext: data_key,
            context: request.context,
            associated_data: request.associated_data,
            key_version: request.key_version,
        };
        let ciphertext = self.seal_one(&mut loaded, &item)?;
        Ok(DataKey {
            ciphertext,
            plaintext: (!request.wrapped_only).then_some(item.plaintext),
        })
    }

    fn create_key(&self, key: &KeyName, options: KeyOptions) -> Result<KeyInfo> {
        let now = unix_now();
        let loaded = self.keyring.modify(key, &mut |existing| match existing {
            Some(existing) => Ok(Some(existing)),
            None => StoredKey::create(key.clone(), &options, now).map(Some),
        })?;
        loaded
            .map(|k| k.info.clone())
            .ok_or_else(|| Error::KeyNotFound { name: key.clone() })
    }

    fn read_key(&self, key: &KeyName) -> Result<KeyInfo> {
        Ok(self.keyring.get(key)?.info.clone())
    }

    fn list_keys(&self) -> Result<Vec<KeyName>> {
        self.keyring.list()
    }

    fn rotate_key(&self, key: &KeyName) -> Result<KeyInfo> {
        let now = unix_now();
        self.modify_existing(key, &mut |stored| stored.rotate(now).map(drop))
    }

    fn configure_key(&self, key: &KeyName, config: KeyConfig) -> Result<KeyInfo> {
        self.modify_existing(key, &mut |stored| stored.configure(&config).map(drop))
    }

    fn trim_key(&self, key: &KeyName, min_available_version: KeyVersion) -> Result<KeyInfo> {
        self.modify_existing(key, &mut |stored| stored.trim(min_available_version.get()))
    }

    fn delete_key(&self, key: &KeyName) -> Result<()> {
        self.keyring.modify(key, &mut |stored| match stored {
            None => Err(Error::KeyNotFound { name: key.clone() }),
            Some(s) if !s.deletion_allowed => Err(Error::NotAllowed(format!(
                "error deleting policy {key}: deletion is not allowed for this key"
            ))),
            Some(_) => Ok(None),
        })?;
        Ok(())
    }

    fn export_key(&self, key: &KeyName, kind: ExportKind, version: Option<KeyVersion>) -> Result<ExportedKey> {
        let loaded = self.keyring.get(key)?;
        if !loaded.info.exportable {
            return Err(Error::NotAllowed("private key material is not exportable".into()));
        }
        let versions: Vec<KeyVersion> = match version {
            Some(v) => {
                loaded.decryption_version(v)?;
                vec![v]
            }
            None => loaded.info.decryptable_versions().collect(),
        };
        let mut keys = BTreeMap::new();
        for v in versions {
            let state = loaded.version(v)?;
            let material = match kind {
                ExportKind::EncryptionKey => state.material(),
                ExportKind::HmacKey => &state.hmac_key[..],
            };
            keys.insert(v, SecretBytes::copy_from(material));
        }
        Ok(ExportedKey {
            name: key.clone(),
            keys,
        })
    }

    fn random_bytes(&self, len: usize) -> Result<Vec<u8>> {
        if len == 0 || len > MAX_RANDOM_BYTES {
            return Err(Error::invalid(format!(
                "number of bytes to generate must be between 1 and {MAX_RANDOM_BYTES}"
            )));
        }
        cipher::random_bytes(len)
    }

    fn hash(&self, algorithm: HashAlgorithm, input: &[u8]) -> Result<Vec<u8>> {
        Ok(algorithm.digest(input))
    }

    // The single-item operations run the same per-item code as the batches, without
    // allocating a one-element request and result vector.

    fn encrypt(&self, key: &KeyName, item: EncryptItem) -> Result<Ciphertext> {
        self.seal_one(&mut self.key(key)?, &item)
    }

    fn decrypt(&self, key: &KeyName, item: DecryptItem) -> Result<Plaintext> {
        let loaded = self.key_for_versions(key, Some(item.ciphertext.version()))?;
        Self::open_one(
            &loaded,
            self.keyring.options.derived_cache_capacity,
            &item.ciphertext,
            item.context.as_deref(),
            item.associated_data.as_deref(),
        )
    }
}

impl InProcess for LocalEngine {}

/// Applies `f` to `items`, in chunks on scoped threads when the batch reaches
/// `threshold` (large enough to repay starting them: tens of microseconds) and the
/// machine has more than one core; results keep the items' order.
fn parallel_map<T: Sync, R: Send>(threshold: Option<usize>, items: &[T], f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
    // `max(2)`: a threshold of 0 or 1 would ask to split empty or one-item batches.
    if threshold.is_none_or(|min| items.len() < min.max(2)) || cores < 2 {
        return f(items);
    }
    let chunk = items.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.chunks(chunk).skip(1).map(|c| scope.spawn(|| f(c))).collect();
        let mut out = f(&items[..chunk.min(items.len())]);
        for handle in handles {
            match handle.join() {
                Ok(part) => out.extend(part),
                // A panic in `f` is a bug; re-raise it on the caller's thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn refresh_interval_sees_changes_made_through_other_engines() -> Result<()> {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let root = RootKey::generate()?;
        let key = KeyName::new("shared")?;
        let writer = LocalEngine::with_storage(storage.clone(), &root, EngineOptions::default())?;
        writer.create_key(&key, KeyOptions::default())?;
        let fresh = EngineOptions::default().refresh_interval(Duration::ZERO);
        let refreshing = LocalEngine::with_storage(storage.clone(), &root, fresh)?;
        let stale = LocalEngine::with_storage(storage, &root, EngineOptions::default())?;
        assert_eq!(stale.read_key(&key)?.latest_version.get(), 1);
        writer.rotate_key(&key)?;
        assert_eq!(refreshing.read_key(&key)?.latest_version.get(), 2);
        assert_eq!(refreshing.encrypt(&key, EncryptItem::new("x"))?.version().get(), 2);
        // Without a refresh interval the cached copy stays until something newer is met.
        assert_eq!(stale.read_key(&key)?.latest_version.get(), 1);
        Ok(())
    }

    #[test]
    fn batches_keep_their_order_split_across_threads_or_not() -> Result<()> {
        let key = KeyName::new("ordered")?;
        // Degenerate thresholds split nothing (and must not panic on empty batches).
        for threshold in [Some(0), Some(1)] {
            let engine = LocalEngine::ephemeral_with(EngineOptions::default().parallel_batch_threshold(threshold))?;
            engine.create_key(&key, KeyOptions::default())?;
            assert!(engine.encrypt_batch(&key, Vec::new())?.is_empty());
            assert_eq!(engine.encrypt_batch(&key, vec![EncryptItem::new("one")])?.len(), 1);
        }
        for threshold in [Some(4), None] {
            let engine = LocalEngine::ephemeral_with(EngineOptions::default().parallel_batch_threshold(threshold))?;
            engine.create_key(&key, KeyOptions::default())?;
            let items: Vec<EncryptItem> = (0..600).map(|i| EncryptItem::new(format!("value {i}"))).collect();
            let sealed: Vec<DecryptItem> = engine
                .encrypt_batch(&key, items)?
                .into_iter()
                .map(|c| c.map(DecryptItem::new))
                .collect::<Result<_>>()?;
            let opened = engine.decrypt_batch(&key, sealed)?;
            for (i, plaintext) in opened.into_iter().enumerate() {
                assert_eq!(
                    plaintext?.expose_secret(),
                    format!("value {i}").as_bytes(),
                    "{threshold:?}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn auto_rotate_period_is_honoured_on_use() -> Result<()> {
        let engine = LocalEngine::ephemeral()?;
        let key = KeyName::new("auto")?;
        engine.create_key(
            &key,
            KeyOptions::default().auto_rotate_period(Duration::from_secs(3600)),
        )?;
        assert_eq!(engine.encrypt(&key, EncryptItem::new("a"))?.version().get(), 1);
        // Pretend version 1 was created two hours ago.
        engine.keyring.modify(&key, &mut |stored| {
            let mut stored = stored.ok_or(Error::DecryptionFailed)?;
            for v in stored.versions.values_mut() {
                v.created -= 7200;
            }
            Ok(Some(stored))
        })?;
        assert_eq!(engine.encrypt(&key, EncryptItem::new("b"))?.version().get(), 2);
        // The new version is fresh: no further rotation.
        assert_eq!(engine.encrypt(&key, EncryptItem::new("c"))?.version().get(), 2);
        Ok(())
    }
}
