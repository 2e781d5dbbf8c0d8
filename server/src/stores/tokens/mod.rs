//! Tokens: random, stored only as salted hashes, compared in constant time, with
//! an optional expiry and revocation.
//!
//! A token is `hvs.` followed by 24 random bytes in URL-safe base64, the shape Vault
//! clients expect. The store keeps `SHA-256(salt ‖ token)` under a per-process
//! random salt, so a memory dump of the store does not yield usable tokens.
//! The salt and every token's entry are stored sealed under `sys/token-salt` and `sys/tokens/<hash>`, so tokens survive a
//! restart; entries are read on first use and re-read after [`TOKEN_RECHECK`], so
//! servers sharing storage see each other's tokens, renewals and revocations. What a token may do is decided by its policies (`policy.rs`).
//!
//! Renewal follows Vault: a token with a TTL is renewable unless created with
//! `renewable=false`; a renewal sets the expiry to now plus the increment (or the
//! last TTL granted), never beyond the system maximum of 32 days after issue.
//! Tokens without a TTL (root) are not renewable.
//!
//! Tokens form a tree, as in Vault: a token made by another is its child and lives
//! only as long as every ancestor — a token whose parent has expired or been
//! revoked is refused (checked on every use, so nothing can outlive its creator
//! between clean-ups), and revoking a token revokes its descendants. Orphans
//! (`create-orphan`, `no_parent`) have no parent; `revoke-orphan` revokes a token
//! and makes its children orphans. Every token but a root-policy one gets a TTL:
//! the system default, 768 hours, when none is asked for.
//!
//! Entries are [`SealedRecords`]: `sys/tokens/<hash>`, and the tree's index
//! `sys/token-children/<parent>/<child>`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use encrypted_attr::storage::{Barrier, Update};

use super::{Change, SealedRecords};
use encrypted_attr::{HashAlgorithm, SecretBytes};
use subtle::ConstantTimeEq;

mod entry;
mod issue;
mod tree;

use entry::ChildEntry;
pub(crate) use entry::{
    AccessorLink, ChildLink, StoredToken, TokenEntry, admits, capped_warning, life_ceiling, parse_stored_cidrs,
};
use issue::random;
pub(crate) use issue::{NewTokenRequest, TokenLimits, random_base62};

/// The longest a token may live, counted from its issue (Vault's default
/// `max_lease_ttl`, 768 hours).
pub(crate) const MAX_TOKEN_TTL: Duration = Duration::from_secs(768 * 3600);

/// The TTL a token gets when none is asked for (Vault's default
/// `default_lease_ttl`), except root-policy tokens, which may live forever.
pub(crate) const DEFAULT_TOKEN_TTL: Duration = MAX_TOKEN_TTL;

/// How [`TokenStore`] finds an entry that is not freshly cached.
type Lookup<'a> = dyn FnMut(&[u8; 32]) -> Result<Option<TokenEntry>, encrypted_attr::Error> + 'a;

/// Deepest token tree followed when checking a token's ancestors.
const MAX_TREE_DEPTH: usize = 64;

/// Why a renewal was refused.
#[derive(Debug)]
pub(crate) enum RenewError {
    /// No such (valid) token.
    NotFound,
    /// The token has no TTL or was created non-renewable.
    NotRenewable,
    /// Storage could not be read, or refused the new expiry.
    Storage(encrypted_attr::Error),
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
    /// Set by the one request that re-reads this entry once it is older than
    /// [`TOKEN_REFRESH`]; the others go on with it meanwhile (up to
    /// [`TOKEN_RECHECK`]), instead of all reading storage at once.
    refreshing: AtomicBool,
}

impl Cached {
    fn new(entry: TokenEntry) -> Self {
        Self {
            entry,
            fetched: Instant::now(),
            refreshing: AtomicBool::new(false),
        }
    }
}

/// Age at which a cached token entry is re-read by one request (see `Cached`).
const TOKEN_REFRESH: Duration = Duration::from_millis(1500);

/// Where a token check may look.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Memory only: the caller finds out whether storage is needed, and the first
    /// to find an entry due for a re-read claims that re-read.
    Memory,
    /// Storage for whatever is not fresh.
    Storage,
}

/// The token store. Storage is the truth and the map a cache of entries younger
/// than [`TOKEN_RECHECK`]; a token not in the map is looked up in storage (another
/// server may have made it).
pub(crate) struct TokenStore {
    salt: SecretBytes,
    tokens: RwLock<HashMap<[u8; 32], Cached>>,
    /// Hashes recently looked up in storage and not found, and when.
    misses: Mutex<HashMap<[u8; 32], Instant>>,
    /// Bumped by every revocation (see `fetch`).
    revocations: AtomicU64,
    /// `sys/tokens/<hash>`.
    entries: SealedRecords<StoredToken>,
    /// `sys/token-children/<parent>/<child>`.
    children: SealedRecords<ChildLink>,
    /// `sys/token-accessors/<accessor>`: the token each accessor names.
    accessors: SealedRecords<AccessorLink>,
    /// The holders ([`TokenEntry::holder`]) of the tokens this server revoked
    /// since the lease manager last took them, so their leases go too.
    revoked: Mutex<Vec<String>>,
}

/// Most revoked holders kept for the lease manager; past it the rest are found
/// by its sweep of the tokens leases name.
const MAX_REMEMBERED_REVOCATIONS: usize = 100_000;

/// Most unknown-token hashes remembered at once (then the memory is cleared).
const MAX_REMEMBERED_MISSES: usize = 4096;

const SALT_PATH: &str = "sys/token-salt";
const TOKENS_PREFIX: &str = "sys/tokens/";
/// The tree's index, for revocation.
const CHILDREN_PREFIX: &str = "sys/token-children/";
/// Accessors, for `lookup-accessor` and `revoke-accessor`.
const ACCESSORS_PREFIX: &str = "sys/token-accessors/";
/// Present once the tokens stored before accessors were indexed have been.
const ACCESSORS_INDEXED_PATH: &str = "sys/token-accessors-indexed";

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenStore { .. }")
    }
}

impl TokenStore {
    /// A store kept in `barrier`: loads the salt (made on first use); token entries
    /// are read when first presented.
    pub(crate) fn open(barrier: std::sync::Arc<Barrier>) -> Result<Self, encrypted_attr::Error> {
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
        let indexed = barrier.get(ACCESSORS_INDEXED_PATH)?.is_some();
        let store = Self {
            salt,
            tokens: RwLock::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            revocations: AtomicU64::new(0),
            entries: SealedRecords::new(barrier.clone(), TOKENS_PREFIX),
            children: SealedRecords::new(barrier.clone(), CHILDREN_PREFIX),
            accessors: SealedRecords::new(barrier.clone(), ACCESSORS_PREFIX),
            revoked: Mutex::new(Vec::new()),
        };
        if !indexed {
            store.index_accessors()?;
            barrier.update(ACCESSORS_INDEXED_PATH, &mut |_| Ok(Update::Put(b"1".to_vec())))?;
        }
        Ok(store)
    }

    /// Indexes the accessor of every stored token that has none yet (tokens made
    /// before accessors were indexed, such as an existing server's root token).
    /// Runs once per storage: a marker records that it has.
    fn index_accessors(&self) -> Result<(), encrypted_attr::Error> {
        for name in self.entries.names_under("")? {
            let Some(stored) = self.entries.get(&name)? else {
                continue;
            };
            if stored.accessor.is_empty() || stored.accessor.contains('/') {
                continue;
            }
            self.accessors.put_if_absent(&stored.accessor, &AccessorLink(name))?;
        }
        Ok(())
    }

    /// A token's name in storage: its salted hash in hex.
    fn name(hash: &[u8; 32]) -> String {
        crate::encoding::encode_hex(hash)
    }

    /// The index entries under `parent`, with the child each names.
    fn children_of(&self, parent: &[u8; 32]) -> Result<Vec<ChildEntry>, encrypted_attr::Error> {
        let under = format!("{}/", Self::name(parent));
        Ok(self
            .children
            .names_under(&under)?
            .into_iter()
            .map(|link| {
                let child = link.strip_prefix(&under).and_then(parse_hash);
                (link, child)
            })
            .collect())
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
        if self
            .misses_lock()
            .get(hash)
            .is_some_and(|at| at.elapsed() < TOKEN_RECHECK)
        {
            return Ok(None);
        }
        let generation = self.revocations.load(Ordering::SeqCst);
        let stored = self.entries.get(&Self::name(hash))?;
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
            tokens.insert(*hash, Cached::new(entry.clone()));
        }
        Ok(Some(entry))
    }

    /// The entry of a known, unexpired token with this hash whose ancestors are
    /// all valid too: from the cache while fresh and unexpired (another server may
    /// have renewed it), otherwise from storage.
    fn valid(&self, hash: &[u8; 32]) -> Result<Option<TokenEntry>, encrypted_attr::Error> {
        self.valid_at_depth(hash, 0, Reach::Storage, &mut |hash| self.fetch(hash))
    }

    /// [`valid`](Self::valid), with `lookup` called for entries not freshly cached.
    fn valid_at_depth(
        &self,
        hash: &[u8; 32],
        depth: usize,
        reach: Reach,
        lookup: &mut Lookup<'_>,
    ) -> Result<Option<TokenEntry>, encrypted_attr::Error> {
        if depth > MAX_TREE_DEPTH {
            return Ok(None);
        }
        let now = SystemTime::now();
        let expired = |e: &TokenEntry| e.expires.is_some_and(|x| now >= x);
        let cached = {
            let tokens = self.tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            tokens
                .get(hash)
                .filter(|c| {
                    let age = c.fetched.elapsed();
                    let usable = age < TOKEN_RECHECK && !expired(&c.entry);
                    match reach {
                        _ if !usable => false,
                        _ if age < TOKEN_REFRESH => true,
                        // Due for a re-read: the first caller claims it, the others
                        // use the entry until the hard limit.
                        Reach::Memory => c.refreshing.swap(true, Ordering::SeqCst),
                        Reach::Storage => false,
                    }
                })
                .map(|c| c.entry.clone())
        };
        let entry = match cached {
            Some(entry) => entry,
            None => match lookup(hash)? {
                Some(entry) => entry,
                None => return Ok(None),
            },
        };
        // A token whose last use was taken is gone, though its entry may stay
        // until the request that took it has ended.
        if !bool::from(entry.hash.ct_eq(hash)) || expired(&entry) || entry.num_uses < 0 {
            return Ok(None);
        }
        // A child lives only as long as its parent (and so every ancestor).
        if let Some(parent) = &entry.parent
            && self.valid_at_depth(parent, depth + 1, reach, lookup)?.is_none()
        {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    fn cache(&self, entry: &TokenEntry) {
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(entry.hash, Cached::new(entry.clone()));
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

    /// The answer of [`check`](Self::check) when memory alone can give it (fresh
    /// cached entries for the token and its ancestors, or a recent miss); `None`
    /// when storage must be read.
    pub(crate) fn check_cached(&self, token: &str) -> Option<Result<Option<TokenEntry>, encrypted_attr::Error>> {
        let hash = self.hash(token.as_bytes());
        let recent_miss = |hash: &[u8; 32]| {
            self.misses_lock()
                .get(hash)
                .is_some_and(|at| at.elapsed() < TOKEN_RECHECK)
        };
        let mut needs_storage = false;
        let answer = self.valid_at_depth(&hash, 0, Reach::Memory, &mut |hash| {
            if !recent_miss(hash) {
                needs_storage = true;
            }
            Ok(None)
        });
        (!needs_storage).then_some(answer)
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
        // A token whose ancestor is gone is gone too, even if its own entry is
        // still in storage.
        match self.valid(&hash) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(RenewError::NotFound),
            Err(error) => return Err(RenewError::Storage(error)),
        }
        let generation = self.revocations.load(Ordering::SeqCst);
        let now = SystemTime::now();
        let mut outcome = Err(RenewError::NotFound);
        self.entries
            .update(&Self::name(&hash), &mut |current| {
                let Some(stored) = current else {
                    outcome = Err(RenewError::NotFound);
                    return Change::Keep;
                };
                outcome = extend(&stored.into_entry(hash), increment, now);
                match &outcome {
                    Ok(renewed) => Change::Put(StoredToken::from(&renewed.entry)),
                    Err(_) => Change::Keep,
                }
            })
            .map_err(RenewError::Storage)?;
        let renewed = outcome?;
        // Not cached if a revocation ran meanwhile: it may have removed this very
        // token after the renewal was written (see `fetch`).
        if self.revocations.load(Ordering::SeqCst) == generation {
            self.cache(&renewed.entry);
        }
        Ok(renewed)
    }

    /// Takes one use of a token with a use limit, in one atomic update of its
    /// stored entry, so that servers sharing storage never grant more uses than
    /// it has: its entry after the use (`num_uses` -1 when this was the last: the
    /// caller revokes it once the request is done), or `None` if it has none left
    /// or is gone. A token without a limit is answered as it is stored.
    ///
    /// # Errors
    /// Storage could not be read or written.
    pub(crate) fn use_once(&self, token: &str) -> Result<Option<TokenEntry>, encrypted_attr::Error> {
        let hash = self.hash(token.as_bytes());
        let now = SystemTime::now();
        let mut outcome = None;
        self.entries.update(&Self::name(&hash), &mut |current| {
            outcome = None;
            let Some(stored) = current else { return Change::Keep };
            let mut entry = stored.into_entry(hash);
            if entry.expires.is_some_and(|x| now >= x) || entry.num_uses < 0 {
                return Change::Keep;
            }
            if entry.num_uses == 0 {
                outcome = Some(entry);
                return Change::Keep;
            }
            entry.num_uses = if entry.num_uses == 1 { -1 } else { entry.num_uses - 1 };
            let stored = StoredToken::from(&entry);
            outcome = Some(entry);
            Change::Put(stored)
        })?;
        if let Some(entry) = &outcome {
            self.cache(entry);
        }
        Ok(outcome)
    }
}

/// A token hash from its hex form in a storage path.
fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    crate::encoding::decode_hex(hex)?.try_into().ok()
}

/// `entry` renewed at `now` by `increment` (or its last TTL), within the maximum.
fn extend(entry: &TokenEntry, increment: Option<Duration>, now: SystemTime) -> Result<Renewed, RenewError> {
    if entry.expires.is_some_and(|x| now >= x) {
        return Err(RenewError::NotFound);
    }
    let (Some(last_ttl), true) = (entry.ttl, entry.renewable) else {
        return Err(RenewError::NotRenewable);
    };
    // A periodic token gets its period again, whatever was asked, and has no
    // maximum but its explicit one.
    let wanted = match entry.period {
        Some(period) => period,
        None => increment.filter(|d| !d.is_zero()).unwrap_or(last_ttl),
    };
    let ceiling = life_ceiling(entry.period, entry.explicit_max_ttl, entry.max_ttl);
    let room = entry
        .issued
        .checked_add(ceiling)
        .map_or(Duration::MAX, |end| end.duration_since(now).unwrap_or(Duration::ZERO));
    let granted = wanted.min(room);
    let warning = (granted < wanted).then(|| capped_warning(wanted, granted));
    let mut renewed = entry.clone();
    renewed.expires = Some(now + granted);
    renewed.ttl = Some(granted);
    renewed.last_renewal = Some(now);
    Ok(Renewed {
        entry: renewed,
        warning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(
        store: &TokenStore,
        ttl: Option<u64>,
        renewable: bool,
        id: &str,
        parent: Option<&TokenEntry>,
    ) -> TokenEntry {
        store
            .create(NewTokenRequest {
                policies: vec!["default".into()],
                ttl: ttl.map(Duration::from_secs),
                renewable,
                id: Some(id),
                parent,
                path: "auth/token/create",
                max_ttl: None,
                limits: TokenLimits::default(),
            })
            .expect("token")
            .entry
    }

    fn valid(store: &TokenStore, token: &str) -> bool {
        store.check(token).expect("memory storage").is_some()
    }

    #[test]
    fn accessors_are_alphanumeric_as_vaults_so_the_cli_never_reads_one_as_a_flag() {
        // `bao token lookup -accessor <accessor>` takes an accessor that starts with
        // `-` for a flag; Vault's accessors are 24 base62 characters.
        let store = TokenStore::open(super::super::memory_barrier().expect("barrier")).expect("store");
        // Tokens as `create` makes them, and the generator's output in bulk.
        let made = (0..20).map(|i| make(&store, None, false, &format!("hvs.t{i}"), None).accessor);
        let accessors = made.chain((0..2_000).map(|_| random_base62(24)));
        for accessor in accessors {
            assert_eq!(accessor.len(), 24, "{accessor}");
            assert!(accessor.bytes().all(|b| b.is_ascii_alphanumeric()), "{accessor}");
        }
    }

    #[test]
    fn tokens_check_expire_and_revoke() {
        let store = TokenStore::open(super::super::memory_barrier().expect("barrier")).expect("store");
        let made = store
            .create(NewTokenRequest {
                policies: vec!["root".into()],
                ttl: None,
                renewable: false,
                id: None,
                parent: None,
                path: "",
                max_ttl: None,
                limits: TokenLimits::default(),
            })
            .expect("token");
        let token = String::from_utf8(made.token.expose_secret().to_vec()).expect("ascii");
        assert!(token.starts_with("hvs."));
        assert!(valid(&store, &token));
        assert!(!valid(&store, "hvs.nope"));
        make(&store, Some(0), true, "short", None);
        assert!(!valid(&store, "short"), "expired");
        assert!(store.revoke(&token).expect("revoked"));
        assert!(!valid(&store, &token));
    }

    #[test]
    fn children_live_only_as_long_as_their_parent() {
        let store = TokenStore::open(super::super::memory_barrier().expect("barrier")).expect("store");
        let parent = make(&store, Some(3600), true, "parent", None);
        let child = make(&store, None, true, "child", Some(&parent));
        let grandchild = make(&store, None, true, "grandchild", Some(&child));
        assert!(!child.orphan() && parent.orphan());
        assert!(valid(&store, "grandchild"));
        // Revoking the parent takes the whole tree, from the cache and storage.
        assert!(store.revoke("parent").expect("revoked"));
        assert!(!valid(&store, "child") && !valid(&store, "grandchild"));
        assert!(store.entries.names_under("").expect("list").is_empty());
        assert!(store.children.names_under("").expect("list").is_empty());
        drop(grandchild);

        // An expired parent: its child is refused at once, whatever its own TTL.
        let brief = make(&store, Some(0), true, "brief", None);
        make(&store, Some(3600), true, "left", Some(&brief));
        assert!(!valid(&store, "left"));

        // revoke-orphan: the children stay, as orphans.
        let parent = make(&store, Some(3600), true, "parent2", None);
        make(&store, Some(3600), true, "kept", Some(&parent));
        assert!(store.revoke_orphan("parent2").expect("revoked"));
        assert!(!valid(&store, "parent2"));
        let kept = store.check("kept").expect("memory").expect("still valid");
        assert!(kept.orphan());
        assert!(!store.revoke_orphan("unknown").expect("storage"));
    }

    #[test]
    fn renewal_extends_caps_and_refuses() {
        let store = TokenStore::open(super::super::memory_barrier().expect("barrier")).expect("store");
        make(&store, None, true, "root", None);
        assert!(matches!(store.renew("root", None), Err(RenewError::NotRenewable)));
        make(&store, Some(60), false, "fixed", None);
        assert!(matches!(store.renew("fixed", None), Err(RenewError::NotRenewable)));
        assert!(matches!(store.renew("unknown", None), Err(RenewError::NotFound)));

        make(&store, Some(60), true, "app", None);
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
        assert!(valid(&store, "app"));
    }

    #[test]
    fn a_renewal_storage_cannot_serve_is_a_storage_error_not_an_unknown_token() {
        let (barrier, storage) = super::super::testing::flaky_barrier();
        let ours = TokenStore::open(barrier.clone()).expect("store");
        make(&ours, Some(3600), true, "t1", None);
        storage.writes_fail.store(true, Ordering::SeqCst);
        assert!(matches!(ours.renew("t1", None), Err(RenewError::Storage(_))));
        storage.writes_fail.store(false, Ordering::SeqCst);
        // Another server, which must read the token from storage first.
        let theirs = TokenStore::open(barrier).expect("store");
        storage.reads_fail.store(true, Ordering::SeqCst);
        assert!(matches!(theirs.renew("t1", None), Err(RenewError::Storage(_))));
        storage.reads_fail.store(false, Ordering::SeqCst);
        assert!(theirs.renew("t1", None).is_ok());
    }

    #[test]
    fn a_tokens_own_max_ttl_caps_its_renewals() {
        let store = TokenStore::open(super::super::memory_barrier().expect("barrier")).expect("store");
        let made = store
            .create(NewTokenRequest {
                policies: vec!["default".into()],
                ttl: Some(Duration::from_secs(60)),
                renewable: true,
                id: Some("capped"),
                parent: None,
                path: "auth/userpass/login/u",
                max_ttl: Some(Duration::from_secs(120)),
                limits: TokenLimits::default(),
            })
            .expect("token");
        let renewed = store.renew("capped", Some(Duration::from_secs(3600))).expect("renews");
        let granted = renewed.entry.ttl.expect("a TTL");
        assert!(granted <= Duration::from_secs(120), "{granted:?}");
        assert!(renewed.warning.is_some(), "Vault's warning when capped");
        assert_eq!(made.entry.max_ttl, Some(Duration::from_secs(120)));
    }

    #[test]
    fn tokens_stored_before_the_accessor_index_are_indexed_once() {
        let barrier = super::super::memory_barrier().expect("barrier");
        let first = TokenStore::open(barrier.clone()).expect("store");
        let old = make(&first, Some(3600), true, "older", None);
        // As a token stored before accessors were indexed: link and marker gone.
        first.accessors.delete(&old.accessor).expect("delete link");
        barrier
            .update(ACCESSORS_INDEXED_PATH, &mut |_| Ok(Update::Delete))
            .expect("delete marker");
        assert!(first.lookup_accessor(&old.accessor).expect("reads").is_none());
        let reopened = TokenStore::open(barrier).expect("store");
        let found = reopened
            .lookup_accessor(&old.accessor)
            .expect("reads")
            .expect("indexed");
        assert_eq!(found.accessor, old.accessor);
    }
}
