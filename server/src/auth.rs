//! Tokens: random, stored only as salted hashes, compared in constant time, with
//! an optional expiry and revocation.
//!
//! A token is `hvs.` followed by 24 random bytes in URL-safe base64, the shape Vault
//! clients expect. The store keeps `SHA-256(salt ‖ token)` under a per-process
//! random salt, so a memory dump of the store does not yield usable tokens.
//! With a barrier (persistent server), the salt and every token's entry are stored
//! sealed under `sys/token-salt` and `sys/tokens/<hash>`, so tokens survive a
//! restart; entries are read on first use and re-read after [`TOKEN_RECHECK`], so
//! servers sharing storage see each other's tokens, renewals and revocations. What a token may do is decided by its policies (`policy.rs`).
//!
//! Renewal follows Vault: a token with a TTL is renewable unless created with
//! `renewable=false`; a renewal sets the expiry to now plus the increment (or the
//! last TTL granted), never beyond the system maximum of 32 days after issue.
//! Tokens without a TTL (root) are not renewable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use encrypted_attr::storage::{Barrier, Update};
use encrypted_attr::{HashAlgorithm, SecretBytes};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// What the store remembers of a token.
#[derive(Clone, Debug)]
pub(crate) struct TokenEntry {
    /// Public identifier of the token (never the token itself).
    pub(crate) accessor: String,
    /// Names of the policies attached.
    pub(crate) policies: Vec<String>,
    /// Creation time.
    pub(crate) issued: SystemTime,
    /// Expiry; `None` for tokens that never expire (root).
    pub(crate) expires: Option<SystemTime>,
    /// The TTL granted last (at creation or renewal): the default increment.
    pub(crate) ttl: Option<Duration>,
    /// Whether `renew-self` / `renew` may extend it.
    pub(crate) renewable: bool,
    /// When it was last renewed, if ever.
    pub(crate) last_renewal: Option<SystemTime>,
    /// Salted hash of the token, checked again in constant time after lookup.
    hash: [u8; 32],
}

/// A token entry as stored (inside the barrier).
#[derive(Serialize, Deserialize)]
struct StoredToken {
    accessor: String,
    policies: Vec<String>,
    issued: u64,
    expires: Option<u64>,
    #[serde(default)]
    ttl: Option<u64>,
    #[serde(default)]
    renewable: bool,
    #[serde(default)]
    last_renewal: Option<u64>,
}

/// The longest a token may live, counted from its issue (Vault's default
/// `max_lease_ttl`, 768 hours).
pub(crate) const MAX_TOKEN_TTL: Duration = Duration::from_secs(768 * 3600);

/// Why a renewal was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RenewError {
    /// No such (valid) token.
    NotFound,
    /// The token has no TTL or was created non-renewable.
    NotRenewable,
    /// Storage refused the new expiry.
    Storage,
}

/// A renewed token's entry, and Vault's warning when the increment was capped.
pub(crate) struct Renewed {
    pub(crate) entry: TokenEntry,
    pub(crate) warning: Option<String>,
}

/// How long a token entry read from storage is trusted before it is read again, so
/// that a revocation or renewal made by another server sharing the storage is seen
/// within this time.
pub(crate) const TOKEN_RECHECK: Duration = Duration::from_secs(2);

/// A token entry and when it was read from storage.
struct Cached {
    entry: TokenEntry,
    fetched: Instant,
}

/// The token store. With a barrier, storage is the truth and the map a cache of
/// entries younger than [`TOKEN_RECHECK`]; a token not in the map is looked up in
/// storage (another server may have made it).
pub(crate) struct TokenStore {
    salt: SecretBytes,
    tokens: RwLock<HashMap<[u8; 32], Cached>>,
    /// Hashes recently looked up in storage and not found, and when.
    misses: Mutex<HashMap<[u8; 32], Instant>>,
    /// Bumped by every revocation (see `fetch`).
    revocations: AtomicU64,
    persist: Option<Barrier>,
}

/// Most unknown-token hashes remembered at once (then the memory is cleared).
const MAX_REMEMBERED_MISSES: usize = 4096;

const SALT_PATH: &str = "sys/token-salt";
const TOKENS_PREFIX: &str = "sys/tokens/";

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenStore { .. }")
    }
}

/// A freshly made token: shown once to whoever asked for it.
pub(crate) struct NewToken {
    pub(crate) token: SecretBytes,
    pub(crate) entry: TokenEntry,
}

/// `len` bytes from the OS; empty if the OS random source fails (callers then
/// refuse to make a token rather than make a guessable one).
fn random(len: usize) -> SecretBytes {
    let mut bytes = vec![0u8; len];
    if getrandom::fill(&mut bytes).is_err() {
        bytes.clear();
    }
    SecretBytes::new(bytes)
}

impl TokenStore {
    /// A store in memory only.
    pub(crate) fn new() -> Self {
        Self {
            salt: random(32),
            tokens: RwLock::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            revocations: AtomicU64::new(0),
            persist: None,
        }
    }

    /// A store kept in `barrier`: loads the salt (made on first use); token entries
    /// are read when first presented.
    pub(crate) fn persistent(barrier: Barrier) -> Result<Self, encrypted_attr::Error> {
        let salt = match barrier.get(SALT_PATH)? {
            Some(salt) => SecretBytes::copy_from(&salt),
            None => {
                let salt = random(32);
                if salt.is_empty() {
                    return Err(encrypted_attr::Error::RandomSource);
                }
                let bytes = salt.expose_secret().to_vec();
                barrier.update(SALT_PATH, &mut |_| Ok(Update::Put(bytes.clone())))?;
                salt
            }
        };
        Ok(Self {
            salt,
            tokens: RwLock::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            revocations: AtomicU64::new(0),
            persist: Some(barrier),
        })
    }

    fn path(hash: &[u8; 32]) -> String {
        format!("{TOKENS_PREFIX}{}", crate::http::encode_hex(hash))
    }

    fn store(&self, entry: &TokenEntry) -> bool {
        let Some(barrier) = &self.persist else { return true };
        let Ok(json) = serde_json::to_vec(&StoredToken::from(entry)) else {
            return false;
        };
        barrier
            .update(&Self::path(&entry.hash), &mut |_| Ok(Update::Put(json.clone())))
            .is_ok()
    }

    fn misses_lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.misses.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads a token's entry from storage into the cache; `None` (and out of the
    /// cache) if storage has no such token. A hash found missing is not looked up
    /// again for [`TOKEN_RECHECK`], so a flood of made-up tokens costs one storage
    /// read per token, not per request.
    ///
    /// # Errors
    /// Storage cannot be read: the caller fails closed with a 5xx, never with
    /// "permission denied" (clients would take the token for bad and not retry).
    fn fetch(&self, hash: &[u8; 32]) -> Result<Option<TokenEntry>, encrypted_attr::Error> {
        let Some(barrier) = self.persist.as_ref() else {
            return Ok(None);
        };
        if self
            .misses_lock()
            .get(hash)
            .is_some_and(|at| at.elapsed() < TOKEN_RECHECK)
        {
            return Ok(None);
        }
        let generation = self.revocations.load(Ordering::SeqCst);
        let stored = barrier
            .get(&Self::path(hash))?
            .and_then(|raw| serde_json::from_slice::<StoredToken>(&raw).ok());
        let mut tokens = self.tokens.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(stored) = stored else {
            tokens.remove(hash);
            let mut misses = self.misses_lock();
            if misses.len() >= MAX_REMEMBERED_MISSES {
                misses.clear();
            }
            misses.insert(*hash, Instant::now());
            return Ok(None);
        };
        let entry = stored.into_entry(*hash);
        // A revocation that ran while storage was read may have deleted this very
        // entry: answer this once, but do not cache what may be stale.
        if self.revocations.load(Ordering::SeqCst) == generation {
            tokens.insert(
                *hash,
                Cached {
                    entry: entry.clone(),
                    fetched: Instant::now(),
                },
            );
        }
        Ok(Some(entry))
    }

    /// The entry of a known, unexpired token with this hash: from the cache while
    /// fresh (and, with storage, unexpired: another server may have renewed it),
    /// otherwise from storage.
    fn valid(&self, hash: &[u8; 32]) -> Result<Option<TokenEntry>, encrypted_attr::Error> {
        let now = SystemTime::now();
        let expired = |e: &TokenEntry| e.expires.is_some_and(|x| now >= x);
        let cached = {
            let tokens = self.tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            tokens
                .get(hash)
                .filter(|c| self.persist.is_none() || (c.fetched.elapsed() < TOKEN_RECHECK && !expired(&c.entry)))
                .map(|c| c.entry.clone())
        };
        let entry = match cached {
            Some(entry) => entry,
            None => match self.fetch(hash)? {
                Some(entry) => entry,
                None => return Ok(None),
            },
        };
        Ok((bool::from(entry.hash.ct_eq(hash)) && !expired(&entry)).then_some(entry))
    }

    fn cache(&self, entry: &TokenEntry) {
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                entry.hash,
                Cached {
                    entry: entry.clone(),
                    fetched: Instant::now(),
                },
            );
    }

    fn hash(&self, token: &[u8]) -> [u8; 32] {
        let mut input = Vec::with_capacity(self.salt.len() + token.len());
        input.extend_from_slice(self.salt.expose_secret());
        input.extend_from_slice(token);
        let input = SecretBytes::new(input);
        let digest = HashAlgorithm::Sha2_256.digest(input.expose_secret());
        let mut out = [0u8; 32];
        out.copy_from_slice(&digest[..32]);
        out
    }

    /// Creates a token; `id` sets its value (dev mode's `--dev-root-token-id`).
    /// A TTL makes it expire (and renewable, unless `renewable` is false).
    pub(crate) fn create(
        &self,
        policies: Vec<String>,
        ttl: Option<Duration>,
        renewable: bool,
        id: Option<&str>,
    ) -> Option<NewToken> {
        let token = match id {
            Some(id) => SecretBytes::from(id),
            None => {
                let raw = random(24);
                if raw.is_empty() {
                    return None;
                }
                SecretBytes::from(format!("hvs.{}", URL_SAFE_NO_PAD.encode(raw.expose_secret())))
            }
        };
        let accessor_bytes = random(18);
        if accessor_bytes.is_empty() {
            return None;
        }
        let now = SystemTime::now();
        let hash = self.hash(token.expose_secret());
        let entry = TokenEntry {
            accessor: URL_SAFE_NO_PAD.encode(accessor_bytes.expose_secret()),
            policies,
            issued: now,
            expires: ttl.map(|ttl| now + ttl),
            ttl,
            renewable: renewable && ttl.is_some(),
            last_renewal: None,
            hash,
        };
        if !self.store(&entry) {
            return None;
        }
        self.cache(&entry);
        self.misses_lock().remove(&hash);
        Some(NewToken { token, entry })
    }

    /// The answer of [`check`](Self::check) when memory alone can give it (a fresh
    /// cached entry, a recent miss, or a store without storage); `None` when
    /// storage must be read.
    pub(crate) fn check_cached(&self, token: &str) -> Option<Result<Option<TokenEntry>, encrypted_attr::Error>> {
        let hash = self.hash(token.as_bytes());
        if self.persist.is_none() {
            return Some(self.valid(&hash));
        }
        let now = SystemTime::now();
        let tokens = self.tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = tokens.get(&hash)
            && cached.fetched.elapsed() < TOKEN_RECHECK
            && cached.entry.expires.is_none_or(|x| now < x)
        {
            return Some(Ok(
                bool::from(cached.entry.hash.ct_eq(&hash)).then(|| cached.entry.clone())
            ));
        }
        drop(tokens);
        self.misses_lock()
            .get(&hash)
            .is_some_and(|at| at.elapsed() < TOKEN_RECHECK)
            .then_some(Ok(None))
    }

    /// The entry of a valid (known, unexpired) token.
    ///
    /// # Errors
    /// Storage could not be read (see `fetch`).
    pub(crate) fn check(&self, token: &str) -> Result<Option<TokenEntry>, encrypted_attr::Error> {
        self.valid(&self.hash(token.as_bytes()))
    }

    /// Extends a valid token's life to now plus `increment` (or its last TTL),
    /// capped at [`MAX_TOKEN_TTL`] after issue. With storage, the renewal is made on
    /// the stored entry in one atomic update, so it can never bring back a token
    /// that another server revoked.
    pub(crate) fn renew(&self, token: &str, increment: Option<Duration>) -> Result<Renewed, RenewError> {
        let hash = self.hash(token.as_bytes());
        let now = SystemTime::now();
        let Some(barrier) = &self.persist else {
            let mut tokens = self.tokens.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let cached = tokens
                .get_mut(&hash)
                .filter(|c| bool::from(c.entry.hash.ct_eq(&hash)))
                .ok_or(RenewError::NotFound)?;
            let renewed = extend(&cached.entry, increment, now)?;
            cached.entry = renewed.entry.clone();
            return Ok(renewed);
        };
        let mut outcome = Err(RenewError::NotFound);
        barrier
            .update(&Self::path(&hash), &mut |current| {
                let Some(stored) = current.and_then(|raw| serde_json::from_slice::<StoredToken>(raw).ok()) else {
                    outcome = Err(RenewError::NotFound);
                    return Ok(Update::Keep);
                };
                outcome = extend(&stored.into_entry(hash), increment, now);
                match &outcome {
                    Ok(renewed) => match serde_json::to_vec(&StoredToken::from(&renewed.entry)) {
                        Ok(json) => Ok(Update::Put(json)),
                        Err(_) => {
                            outcome = Err(RenewError::Storage);
                            Ok(Update::Keep)
                        }
                    },
                    Err(_) => Ok(Update::Keep),
                }
            })
            .map_err(|_| RenewError::Storage)?;
        let renewed = outcome?;
        self.cache(&renewed.entry);
        Ok(renewed)
    }

    /// Revokes a token: true if it was known. Fails (and the caller must answer
    /// 500) when storage cannot delete it, since storage is what other servers and
    /// later lookups read.
    pub(crate) fn revoke(&self, token: &str) -> Result<bool, RenewError> {
        let hash = self.hash(token.as_bytes());
        if let Some(barrier) = &self.persist {
            barrier
                .update(&Self::path(&hash), &mut |_| Ok(Update::Delete))
                .map_err(|e| {
                    tracing::error!(error = %e, "could not remove a revoked token from storage");
                    RenewError::Storage
                })?;
        }
        // After the delete, so a storage read racing it either misses the entry or
        // sees the generation change and does not cache it (see `fetch`).
        self.revocations.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&hash)
            .is_some())
    }
}

/// `entry` renewed at `now` by `increment` (or its last TTL), within the maximum.
fn extend(entry: &TokenEntry, increment: Option<Duration>, now: SystemTime) -> Result<Renewed, RenewError> {
    if entry.expires.is_some_and(|x| now >= x) {
        return Err(RenewError::NotFound);
    }
    let (Some(last_ttl), true) = (entry.ttl, entry.renewable) else {
        return Err(RenewError::NotRenewable);
    };
    let wanted = increment.filter(|d| !d.is_zero()).unwrap_or(last_ttl);
    let room = (entry.issued + MAX_TOKEN_TTL)
        .duration_since(now)
        .unwrap_or(Duration::ZERO);
    let granted = wanted.min(room);
    let warning = (granted < wanted).then(|| {
        format!(
            "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
            crate::http::format_duration(wanted),
            crate::http::format_duration(granted)
        )
    });
    let mut renewed = entry.clone();
    renewed.expires = Some(now + granted);
    renewed.ttl = Some(granted);
    renewed.last_renewal = Some(now);
    Ok(Renewed {
        entry: renewed,
        warning,
    })
}

impl From<&TokenEntry> for StoredToken {
    fn from(entry: &TokenEntry) -> Self {
        Self {
            accessor: entry.accessor.clone(),
            policies: entry.policies.clone(),
            issued: unix(entry.issued),
            expires: entry.expires.map(unix),
            ttl: entry.ttl.map(|t| t.as_secs()),
            renewable: entry.renewable,
            last_renewal: entry.last_renewal.map(unix),
        }
    }
}

impl StoredToken {
    fn into_entry(self, hash: [u8; 32]) -> TokenEntry {
        TokenEntry {
            accessor: self.accessor,
            policies: self.policies,
            issued: UNIX_EPOCH + Duration::from_secs(self.issued),
            expires: self.expires.map(|e| UNIX_EPOCH + Duration::from_secs(e)),
            ttl: self.ttl.map(Duration::from_secs),
            renewable: self.renewable,
            last_renewal: self.last_renewal.map(|t| UNIX_EPOCH + Duration::from_secs(t)),
            hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_check_expire_and_revoke() {
        let store = TokenStore::new();
        let made = store.create(vec!["root".into()], None, true, None).expect("token");
        let token = String::from_utf8(made.token.expose_secret().to_vec()).expect("ascii");
        assert!(token.starts_with("hvs."));
        assert!(store.check(&token).expect("memory").is_some());
        assert!(store.check("hvs.nope").expect("memory").is_none());
        let short = store
            .create(vec![], Some(Duration::ZERO), true, Some("short"))
            .expect("token");
        assert!(store.check("short").expect("memory").is_none(), "expired");
        drop(short);
        assert_eq!(store.revoke(&token), Ok(true));
        assert!(store.check(&token).expect("memory").is_none());
    }

    #[test]
    fn renewal_extends_caps_and_refuses() {
        let store = TokenStore::new();
        let root = store
            .create(vec!["root".into()], None, true, Some("root"))
            .expect("token");
        drop(root);
        assert_eq!(store.renew("root", None).err(), Some(RenewError::NotRenewable));
        let fixed = store
            .create(vec![], Some(Duration::from_secs(60)), false, Some("fixed"))
            .expect("token");
        drop(fixed);
        assert_eq!(store.renew("fixed", None).err(), Some(RenewError::NotRenewable));
        assert_eq!(store.renew("unknown", None).err(), Some(RenewError::NotFound));

        let app = store
            .create(vec![], Some(Duration::from_secs(60)), true, Some("app"))
            .expect("token");
        drop(app);
        let renewed = store.renew("app", Some(Duration::from_secs(7200))).expect("renewed");
        assert_eq!(renewed.entry.ttl, Some(Duration::from_secs(7200)));
        assert!(renewed.warning.is_none());
        assert!(renewed.entry.last_renewal.is_some());
        // Without an increment, the last TTL granted is granted again.
        let again = store.renew("app", None).expect("renewed");
        assert_eq!(again.entry.ttl, Some(Duration::from_secs(7200)));
        // Beyond the maximum: capped, with a warning.
        let capped = store.renew("app", Some(MAX_TOKEN_TTL * 2)).expect("renewed");
        let granted = capped.entry.ttl.expect("ttl");
        assert!(granted <= MAX_TOKEN_TTL && granted > MAX_TOKEN_TTL - Duration::from_secs(60));
        assert!(capped.warning.is_some_and(|w| w.contains("capped")));
        assert!(store.check("app").expect("memory").is_some());
    }
}
