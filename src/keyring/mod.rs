//! The keyring: every named key, loaded from the barrier, with expanded ciphers ready
//! and the nonce budget of each key version.
//!
//! Reads take a shared lock on the name → key map and clone an `Arc`, so encryption
//! never waits on another encryption. Changes (create, rotate, configure, trim,
//! delete, budget reservations) run as an atomic read-modify-write of the key's
//! storage entry and then replace the loaded key; unchanged versions keep their
//! expanded ciphers, caches and counters.
//!
//! Nonce budget: a key version can safely seal about 2^32 messages with random
//! 96-bit nonces. Each process reserves encryptions in blocks, persisted in the
//! key's entry *before* they are used, so the stored count is an upper bound on
//! what every process together has used, even across crashes. When a version's
//! reservation would pass the budget, the key is rotated instead.

mod policy;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use zeroize::Zeroizing;

pub(crate) use policy::StoredKey;
pub use policy::{KeyConfig, KeyOptions, MIN_AUTO_ROTATE_PERIOD};

use crate::cipher::{self, AeadKey, KeyType};
use crate::error::{Error, Result};
use crate::name::{KeyName, KeyVersion};
use crate::storage::{Barrier, Update};

/// Storage path prefix of named keys.
const KEYS_PREFIX: &str = "keys/";

/// Tunables of the keyring; the defaults suit almost everyone.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Random-nonce encryptions allowed per key version before it is rotated
    /// automatically. Default 2^30; at most 2^31 (NIST's bound for random 96-bit
    /// nonces is 2^32, and reservations over-count).
    pub nonce_budget: u64,
    /// Derived ciphers (one per context) cached per key version. Default 1024.
    pub derived_cache_capacity: usize,
    /// Re-read a key from storage when its loaded copy is older than this, so that
    /// rotations and configuration changes made by other processes sharing the
    /// storage are seen within a bounded time. Default `None`: a process re-reads a
    /// key only when it meets a version newer than it knows (enough for one process).
    pub refresh_interval: Option<Duration>,
    /// Check the process id before every random nonce and reseed the generator in a
    /// forked child (about 140 ns per encryption). Default off: turn it on when the
    /// process may `fork()` without `exec()` after encrypting (pre-fork servers,
    /// embedding in a forking interpreter), or call
    /// [`reseed_nonce_generator_after_fork`](crate::reseed_nonce_generator_after_fork)
    /// in the child.
    pub check_fork: bool,
    /// Batches of at least this many items are split across the machine's cores
    /// (scoped threads, started per call). Default 512, where starting the threads
    /// pays for itself on an idle machine; `None` keeps every batch on the calling
    /// thread, which is better when the process already keeps every core busy
    /// (a server under load: the companion server sets `None`).
    pub parallel_batch_threshold: Option<usize>,
}

/// The highest nonce budget accepted.
pub const MAX_NONCE_BUDGET: u64 = 1 << 31;
/// First reservation block of a process; blocks double up to [`MAX_RESERVATION`].
const FIRST_RESERVATION: u64 = 1 << 12;
const MAX_RESERVATION: u64 = 1 << 20;
/// Reserved encryptions a key must have left to count as fresh (see `is_fresh`):
/// more than a small request can use.
const FRESH_ALLOWANCE: u64 = 1 << 10;

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            nonce_budget: 1 << 30,
            derived_cache_capacity: 1024,
            refresh_interval: None,
            check_fork: false,
            parallel_batch_threshold: Some(512),
        }
    }
}

impl EngineOptions {
    /// Sets the nonce budget per key version.
    #[must_use]
    pub fn nonce_budget(mut self, budget: u64) -> Self {
        self.nonce_budget = budget;
        self
    }

    /// Sets `refresh_interval`.
    #[must_use]
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = Some(interval);
        self
    }

    /// Sets `check_fork`.
    #[must_use]
    pub fn check_fork(mut self, check: bool) -> Self {
        self.check_fork = check;
        self
    }

    /// Sets `parallel_batch_threshold` (`None`: never split a batch across threads).
    #[must_use]
    pub fn parallel_batch_threshold(mut self, min_items: Option<usize>) -> Self {
        self.parallel_batch_threshold = min_items;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.nonce_budget == 0 || self.nonce_budget > MAX_NONCE_BUDGET {
            return Err(Error::invalid("nonce budget must be between 1 and 2^31"));
        }
        Ok(())
    }
}

/// A key's public description: everything but its material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key's name.
    pub name: KeyName,
    /// Its cipher.
    pub key_type: KeyType,
    /// Whether a context is needed and a key derived per context.
    pub derived: bool,
    /// Whether encryption is deterministic.
    pub convergent_encryption: bool,
    /// Whether the material may be exported.
    pub exportable: bool,
    /// Whether a plaintext backup is allowed.
    pub allow_plaintext_backup: bool,
    /// Whether the key may be deleted.
    pub deletion_allowed: bool,
    /// Automatic rotation period (zero: off).
    pub auto_rotate_period: Duration,
    /// The version new encryptions use.
    pub latest_version: KeyVersion,
    /// The oldest version that still decrypts.
    pub min_decryption_version: KeyVersion,
    /// The oldest version a caller may ask to encrypt with (0: only the latest).
    pub min_encryption_version: u32,
    /// Versions below this were deleted by a trim (0: never trimmed).
    pub min_available_version: u32,
    /// Creation time (Unix seconds) of every version still stored.
    pub versions: BTreeMap<KeyVersion, i64>,
}

impl KeyInfo {
    fn of(stored: &StoredKey) -> Self {
        Self {
            name: stored.name.clone(),
            key_type: stored.key_type,
            derived: stored.derived,
            convergent_encryption: stored.convergent_encryption,
            exportable: stored.exportable,
            allow_plaintext_backup: stored.allow_plaintext_backup,
            deletion_allowed: stored.deletion_allowed,
            auto_rotate_period: Duration::from_secs(stored.auto_rotate_period_secs),
            latest_version: KeyVersion::new(stored.latest_version).unwrap_or(KeyVersion::FIRST),
            min_decryption_version: KeyVersion::new(stored.min_decryption_version).unwrap_or(KeyVersion::FIRST),
            min_encryption_version: stored.min_encryption_version,
            min_available_version: stored.min_available_version,
            versions: stored
                .versions
                .iter()
                .filter_map(|(v, s)| KeyVersion::new(*v).map(|v| (v, s.created)))
                .collect(),
        }
    }

    /// The versions that can still decrypt, oldest first: what a lookup on a
    /// convergent column must try so it keeps matching after a rotation.
    pub fn decryptable_versions(&self) -> impl Iterator<Item = KeyVersion> + '_ {
        self.versions
            .keys()
            .copied()
            .filter(|v| *v >= self.min_decryption_version)
    }
}

/// A cipher derived for one context: the AEAD key and, for convergent keys, the
/// key that computes nonces.
pub(crate) struct DerivedCipher {
    pub(crate) aead: AeadKey,
    pub(crate) nonce_key: Option<Zeroizing<Vec<u8>>>,
}

/// One key version, ready to use.
pub(crate) struct VersionState {
    pub(crate) version: KeyVersion,
    key_type: KeyType,
    material: Zeroizing<Vec<u8>>,
    pub(crate) hmac_key: Zeroizing<Vec<u8>>,
    /// The expanded cipher of a non-derived key.
    direct: Option<AeadKey>,
    /// Derived ciphers by context (derived keys only), bounded.
    derived: RwLock<HashMap<Box<[u8]>, Arc<DerivedCipher>>>,
    /// Random-nonce encryptions started by this process.
    used: AtomicU64,
    /// Encryptions this process has reserved in storage.
    allowance: AtomicU64,
    /// Size of this process's next reservation.
    next_block: AtomicU64,
}

impl VersionState {
    fn new(stored: &StoredKey, version: u32) -> Result<Self> {
        let sv = stored.versions.get(&version).ok_or_else(|| Error::CorruptStorage {
            location: format!("{KEYS_PREFIX}{}", stored.name),
            reason: "key version missing",
        })?;
        Ok(Self {
            version: KeyVersion::try_from(version)?,
            key_type: stored.key_type,
            direct: if stored.derived {
                None
            } else {
                Some(AeadKey::new(stored.key_type, &sv.key.0)?)
            },
            material: sv.key.0.clone(),
            hmac_key: sv.hmac_key.0.clone(),
            derived: RwLock::new(HashMap::new()),
            used: AtomicU64::new(0),
            allowance: AtomicU64::new(0),
            next_block: AtomicU64::new(FIRST_RESERVATION),
        })
    }

    /// The cipher for `context`: the version's own for a plain key, a cached
    /// HKDF-derived one for a derived key.
    pub(crate) fn cipher_for(
        &self,
        key: &LoadedKey,
        context: Option<&[u8]>,
        cache_capacity: usize,
    ) -> Result<CipherRef<'_>> {
        match (&self.direct, context) {
            (Some(aead), None) => Ok(CipherRef::Direct(aead)),
            (Some(_), Some(_)) => Err(Error::ContextNotAllowed {
                name: key.info.name.clone(),
            }),
            (None, None) => Err(Error::MissingContext),
            (None, Some([])) => Err(Error::MissingContext),
            (None, Some(context)) => self
                .derived_cipher(key, context, cache_capacity)
                .map(CipherRef::Derived),
        }
    }

    fn derived_cipher(&self, key: &LoadedKey, context: &[u8], capacity: usize) -> Result<Arc<DerivedCipher>> {
        if let Some(found) = read_lock(&self.derived).get(context) {
            return Ok(found.clone());
        }
        let key_len = self.key_type.key_len();
        let derived = if key.info.convergent_encryption {
            let out = cipher::derive_convergent(&self.material, key_len, context)?;
            DerivedCipher {
                aead: AeadKey::new(self.key_type, &out[..key_len])?,
                nonce_key: Some(Zeroizing::new(out[key_len..].to_vec())),
            }
        } else {
            let mut out = Zeroizing::new(vec![0u8; key_len]);
            cipher::hkdf_sha256(&self.material, context, &mut out)?;
            DerivedCipher {
                aead: AeadKey::new(self.key_type, &out)?,
                nonce_key: None,
            }
        };
        let derived = Arc::new(derived);
        let mut cache = write_lock(&self.derived);
        if cache.len() >= capacity.max(1) {
            // Evict an arbitrary entry: cheap, and good enough for a cache whose
            // working set normally fits (contexts are usually per column, not per row).
            if let Some(victim) = cache.keys().next().cloned() {
                cache.remove(&victim);
            }
        }
        cache.insert(context.into(), derived.clone());
        Ok(derived)
    }

    pub(crate) fn material(&self) -> &[u8] {
        &self.material
    }
}

/// A borrowed or shared cipher.
pub(crate) enum CipherRef<'a> {
    Direct(&'a AeadKey),
    Derived(Arc<DerivedCipher>),
}

impl CipherRef<'_> {
    pub(crate) fn aead(&self) -> &AeadKey {
        match self {
            Self::Direct(a) => a,
            Self::Derived(d) => &d.aead,
        }
    }

    pub(crate) fn nonce_key(&self) -> Option<&[u8]> {
        match self {
            Self::Direct(_) => None,
            Self::Derived(d) => d.nonce_key.as_deref().map(Vec::as_slice),
        }
    }
}

/// A named key, ready to use.
pub(crate) struct LoadedKey {
    pub(crate) info: KeyInfo,
    versions: BTreeMap<KeyVersion, Arc<VersionState>>,
    /// Unix second at which automatic rotation is due (`i64::MAX`: never).
    rotate_at: i64,
    /// Serialises this process's budget reservations for the key.
    reserving: Mutex<()>,
    /// When this copy was read from storage.
    loaded_at: std::time::Instant,
}

impl LoadedKey {
    fn build(stored: &StoredKey, previous: Option<&LoadedKey>) -> Result<Self> {
        let mut versions = BTreeMap::new();
        for version in stored.versions.keys() {
            let kv = KeyVersion::try_from(*version)?;
            let state = match previous.and_then(|p| p.versions.get(&kv)) {
                Some(existing) => existing.clone(),
                None => Arc::new(VersionState::new(stored, *version)?),
            };
            versions.insert(kv, state);
        }
        let rotate_at = match stored.auto_rotate_period_secs {
            0 => i64::MAX,
            secs => stored
                .versions
                .get(&stored.latest_version)
                .map_or(i64::MIN, |v| v.created)
                .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
        };
        Ok(Self {
            info: KeyInfo::of(stored),
            versions,
            rotate_at,
            reserving: Mutex::new(()),
            loaded_at: std::time::Instant::now(),
        })
    }

    /// The state of `version`, which must be stored (not trimmed).
    pub(crate) fn version(&self, version: KeyVersion) -> Result<&Arc<VersionState>> {
        self.versions.get(&version).ok_or(Error::VersionRetired {
            version,
            min_decryption_version: self.info.min_decryption_version,
        })
    }

    /// Checks `version` may decrypt (or verify): not newer than the latest, not older
    /// than `min_decryption_version`.
    pub(crate) fn decryption_version(&self, version: KeyVersion) -> Result<&Arc<VersionState>> {
        if version > self.info.latest_version {
            return Err(Error::VersionTooNew {
                version,
                latest: self.info.latest_version,
            });
        }
        if version < self.info.min_decryption_version {
            return Err(Error::VersionRetired {
                version,
                min_decryption_version: self.info.min_decryption_version,
            });
        }
        self.version(version)
    }

    /// The version to encrypt (or HMAC) with: `requested`, or the latest.
    pub(crate) fn encryption_version(&self, requested: Option<KeyVersion>) -> Result<&Arc<VersionState>> {
        let Some(version) = requested else {
            return self.version(self.info.latest_version);
        };
        if version > self.info.latest_version {
            return Err(Error::invalid(
                "requested version for encryption is higher than the latest key version",
            ));
        }
        if version.get() < self.info.min_encryption_version {
            return Err(Error::invalid(
                "requested version for encryption is less than the minimum encryption key version",
            ));
        }
        self.version(version)
    }
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a budget check decided.
pub(crate) enum Budget {
    /// The encryption may go ahead with the version it asked for.
    Granted,
    /// The version is spent and the key was rotated (by us or another process):
    /// look the key up again and use its new latest version.
    Rotated,
}

/// All named keys of one engine.
pub(crate) struct Keyring {
    barrier: Barrier,
    keys: RwLock<HashMap<KeyName, Arc<LoadedKey>>>,
    pub(crate) options: EngineOptions,
}

impl Keyring {
    /// Loads every key behind `barrier`.
    pub(crate) fn load(barrier: Barrier, options: EngineOptions) -> Result<Self> {
        options.validate()?;
        let keyring = Self {
            barrier,
            keys: RwLock::new(HashMap::new()),
            options,
        };
        let mut keys = HashMap::new();
        for path in keyring.barrier.list(KEYS_PREFIX)? {
            if let Some(stored) = keyring.read_stored(&path)? {
                keys.insert(stored.name.clone(), Arc::new(LoadedKey::build(&stored, None)?));
            }
        }
        *write_lock(&keyring.keys) = keys;
        Ok(keyring)
    }

    fn read_stored(&self, path: &str) -> Result<Option<StoredKey>> {
        self.barrier.get(path)?.map(|plain| decode(path, &plain)).transpose()
    }

    /// The loaded key `name`, without touching storage.
    pub(crate) fn cached(&self, name: &KeyName) -> Option<Arc<LoadedKey>> {
        read_lock(&self.keys).get(name).cloned()
    }

    /// Whether using `name` now will not touch storage: loaded and younger than the
    /// refresh interval, its automatic rotation not about to fall due, and its
    /// latest version holding at least [`FRESH_ALLOWANCE`] reserved encryptions.
    pub(crate) fn is_fresh(&self, name: &KeyName) -> bool {
        self.cached(name).is_some_and(|key| {
            let loaded_recently = self
                .options
                .refresh_interval
                .is_none_or(|d| key.loaded_at.elapsed() < d);
            let no_rotation_due = key.rotate_at == i64::MAX || unix_now().saturating_add(5) < key.rotate_at;
            let reserved = key.versions.get(&key.info.latest_version).is_some_and(|v| {
                v.used.load(Ordering::Relaxed).saturating_add(FRESH_ALLOWANCE) < v.allowance.load(Ordering::Acquire)
            });
            loaded_recently && no_rotation_due && reserved
        })
    }

    /// Re-reads every loaded key older than `age` (a key deleted elsewhere is
    /// dropped); returns how many were re-read. Stops at the first storage error.
    pub(crate) fn refresh_older_than(&self, age: Duration) -> Result<usize> {
        let due: Vec<KeyName> = read_lock(&self.keys)
            .iter()
            .filter(|(_, key)| key.loaded_at.elapsed() >= age)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &due {
            match self.reload(name) {
                Ok(_) | Err(Error::KeyNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(due.len())
    }

    /// The key `name`; reads storage when this process does not know it yet (another
    /// process may have created it).
    pub(crate) fn get(&self, name: &KeyName) -> Result<Arc<LoadedKey>> {
        match self.cached(name) {
            Some(key)
                if self
                    .options
                    .refresh_interval
                    .is_none_or(|d| key.loaded_at.elapsed() < d) =>
            {
                Ok(key)
            }
            _ => self.reload(name),
        }
    }

    /// Reads `name` again from storage (after another process changed it).
    pub(crate) fn reload(&self, name: &KeyName) -> Result<Arc<LoadedKey>> {
        let path = key_path(name);
        let stored = self.read_stored(&path)?;
        self.install(name, stored.as_ref())?
            .ok_or_else(|| Error::KeyNotFound { name: name.clone() })
    }

    fn install(&self, name: &KeyName, stored: Option<&StoredKey>) -> Result<Option<Arc<LoadedKey>>> {
        let mut keys = write_lock(&self.keys);
        match stored {
            Some(stored) => {
                let loaded = Arc::new(LoadedKey::build(stored, keys.get(name).map(|k| &**k))?);
                keys.insert(name.clone(), loaded.clone());
                Ok(Some(loaded))
            }
            None => {
                keys.remove(name);
                Ok(None)
            }
        }
    }

    /// Names of every key, sorted.
    pub(crate) fn list(&self) -> Result<Vec<KeyName>> {
        let mut names = Vec::new();
        for path in self.barrier.list(KEYS_PREFIX)? {
            if let Some(name) = path.strip_prefix(KEYS_PREFIX).and_then(|n| KeyName::new(n).ok()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Applies `change` to the stored key atomically and installs the result.
    /// `change` gets `None` when the key does not exist and returns the new state
    /// (`None` deletes it).
    pub(crate) fn modify(
        &self,
        name: &KeyName,
        change: &mut dyn FnMut(Option<StoredKey>) -> Result<Option<StoredKey>>,
    ) -> Result<Option<Arc<LoadedKey>>> {
        let path = key_path(name);
        let mut result: Option<StoredKey> = None;
        self.barrier.update(&path, &mut |current| {
            let current = current.map(|plain| decode(&path, plain)).transpose()?;
            let existed = current.is_some();
            let unchanged = current.clone();
            let next = change(current)?;
            result = next.clone();
            match (&next, existed) {
                (None, false) => Ok(Update::Keep),
                (None, true) => Ok(Update::Delete),
                (Some(next), _) if unchanged.as_ref() == Some(next) => Ok(Update::Keep),
                (Some(next), _) => encode(next).map(Update::Put),
            }
        })?;
        self.install(name, result.as_ref())
    }

    /// Takes one random-nonce encryption from `version`'s budget.
    pub(crate) fn take_budget(&self, key: &LoadedKey, version: &VersionState) -> Result<Budget> {
        if version.used.fetch_add(1, Ordering::Relaxed) < version.allowance.load(Ordering::Acquire) {
            return Ok(Budget::Granted);
        }
        self.reserve(key, version)
    }

    /// Slow path of [`take_budget`](Self::take_budget): reserves another block in
    /// storage, or rotates the key when the version's budget is spent.
    #[cold]
    fn reserve(&self, key: &LoadedKey, version: &VersionState) -> Result<Budget> {
        let _one_at_a_time = key.reserving.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if version.used.load(Ordering::Relaxed) < version.allowance.load(Ordering::Acquire) {
            return Ok(Budget::Granted);
        }
        let block = version.next_block.load(Ordering::Relaxed);
        let budget = self.options.nonce_budget;
        let number = version.version.get();
        let now = unix_now();
        let mut outcome = Budget::Granted;
        let mut granted = 0;
        self.modify(&key.info.name, &mut |stored| {
            let mut stored = stored.ok_or_else(|| Error::KeyNotFound {
                name: key.info.name.clone(),
            })?;
            let latest = stored.latest_version;
            let sv = stored.versions.get_mut(&number).ok_or(Error::VersionRetired {
                version: version.version,
                min_decryption_version: key.info.min_decryption_version,
            })?;
            let remaining = budget.saturating_sub(sv.encryptions_reserved);
            if remaining == 0 {
                if number == latest {
                    stored.rotate(now)?;
                    outcome = Budget::Rotated;
                } else if key.info.latest_version.get() < latest {
                    outcome = Budget::Rotated;
                } else {
                    return Err(Error::NotAllowed(format!(
                        "key version {number} has used its encryption budget; encrypt with the latest version"
                    )));
                }
            } else {
                granted = block.min(remaining);
                sv.encryptions_reserved += granted;
                outcome = Budget::Granted;
            }
            Ok(Some(stored))
        })?;
        if let Budget::Granted = outcome {
            version.allowance.fetch_add(granted, Ordering::Release);
            version
                .next_block
                .store((block * 2).min(MAX_RESERVATION), Ordering::Relaxed);
        }
        Ok(outcome)
    }

    /// Rotates `key` if its `auto_rotate_period` has passed; returns the key to use.
    pub(crate) fn rotate_if_due(&self, key: Arc<LoadedKey>) -> Result<Arc<LoadedKey>> {
        if key.rotate_at == i64::MAX {
            return Ok(key);
        }
        let now = unix_now();
        if now < key.rotate_at {
            return Ok(key);
        }
        let rotated = self.modify(&key.info.name, &mut |stored| {
            let mut stored = stored.ok_or_else(|| Error::KeyNotFound {
                name: key.info.name.clone(),
            })?;
            // Re-checked on the stored state: another process may have rotated first.
            if stored.rotation_due(now) {
                stored.rotate(now)?;
            }
            Ok(Some(stored))
        })?;
        rotated.ok_or_else(|| Error::KeyNotFound {
            name: key.info.name.clone(),
        })
    }
}

/// The storage path of key `name`.
fn key_path(name: &KeyName) -> String {
    format!("{KEYS_PREFIX}{name}")
}

fn decode(path: &str, plain: &[u8]) -> Result<StoredKey> {
    let stored: StoredKey = serde_json::from_slice(plain).map_err(|_| Error::CorruptStorage {
        location: path.to_owned(),
        reason: "key entry is not valid",
    })?;
    stored.validate(path)?;
    if key_path(&stored.name) != path {
        return Err(Error::CorruptStorage {
            location: path.to_owned(),
            reason: "key entry names another key",
        });
    }
    Ok(stored)
}

fn encode(stored: &StoredKey) -> Result<Vec<u8>> {
    // The JSON holds key material; it is sealed by the barrier right away, and the
    // barrier wipes its copy. Vec is handed over without an extra copy.
    serde_json::to_vec(stored).map_err(|e| Error::Storage(Box::new(e)))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
