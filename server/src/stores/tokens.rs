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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use encrypted_attr::storage::{Barrier, Update};

use super::{Change, Record, SealedRecords, decode_json, encode_json};
use crate::encoding::unix_seconds as unix;
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
    /// Salted hash of the parent token; `None` for an orphan.
    parent: Option<[u8; 32]>,
    /// The path that made it (`auth/token/create`, `auth/token/create-orphan`).
    pub(crate) path: String,
    /// The longest it may live from issue, when shorter than the system's (a
    /// login's user or role `token_max_ttl`, or its `explicit_max_ttl`): renewals
    /// stop there.
    pub(crate) max_ttl: Option<Duration>,
    /// Uses left: 0 for no limit; -1 once its last use has been taken (it is
    /// then refused, and revoked when that last request ends).
    pub(crate) num_uses: i64,
    /// The hard limit asked for at creation (`explicit_max_ttl`), shown by lookups.
    pub(crate) explicit_max_ttl: Option<Duration>,
    /// A periodic token's period: each renewal sets its TTL to this, with no
    /// maximum but `explicit_max_ttl`.
    pub(crate) period: Option<Duration>,
    /// Where it may be used from (empty: anywhere).
    pub(crate) bound_cidrs: Vec<ipnet::IpNet>,
    /// The name asked for at creation (`display_name`), already in Vault's form.
    pub(crate) display_name: Option<String>,
    /// `meta` given at creation, shown by lookups.
    pub(crate) meta: Option<std::collections::BTreeMap<String, String>>,
    /// Salted hash of the token, checked again in constant time after lookup.
    hash: [u8; 32],
}

impl TokenEntry {
    /// What names the token in records that belong to it (a lease's owner): its
    /// salted hash in hex, the name its own entry is stored under. Never the token.
    pub(crate) fn holder(&self) -> String {
        crate::encoding::encode_hex(&self.hash)
    }

    /// Whether the token has no parent.
    pub(crate) fn orphan(&self) -> bool {
        self.parent.is_none()
    }

    /// Whether a request from `client` may use it: anywhere if it has no bound
    /// CIDRs; otherwise only from an address inside one, and never from an address
    /// not known (fail closed).
    pub(crate) fn usable_from(&self, client: Option<std::net::IpAddr>) -> bool {
        admits(&self.bound_cidrs, client)
    }
}

/// Whether bounds `cidrs` admit a request from `client`: any client when there
/// are none; otherwise only a known address inside one of them (fail closed).
pub(crate) fn admits(cidrs: &[ipnet::IpNet], client: Option<std::net::IpAddr>) -> bool {
    cidrs.is_empty() || client.is_some_and(|address| within(cidrs, address))
}

/// The longest a token may live from its issue: a periodic token only as long as
/// its explicit maximum allows (else without end); any other up to the least of
/// its own maximum, its explicit one and the system's.
pub(crate) fn life_ceiling(
    period: Option<Duration>,
    explicit_max_ttl: Option<Duration>,
    max_ttl: Option<Duration>,
) -> Duration {
    match period {
        Some(_) => explicit_max_ttl.unwrap_or(Duration::MAX),
        None => [max_ttl, explicit_max_ttl]
            .into_iter()
            .flatten()
            .fold(MAX_TOKEN_TTL, Duration::min),
    }
}

/// Vault's warning when a TTL asked for was cut to `granted`.
pub(crate) fn capped_warning(wanted: Duration, granted: Duration) -> String {
    format!(
        "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
        crate::encoding::format_duration(wanted),
        crate::encoding::format_duration(granted)
    )
}

/// Whether `address` is inside one of `cidrs` (an IPv4 address mapped into IPv6
/// counts as the IPv4 address).
pub(crate) fn within(cidrs: &[ipnet::IpNet], address: std::net::IpAddr) -> bool {
    let address = match address {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, std::net::IpAddr::V4),
        v4 => v4,
    };
    cidrs.iter().any(|cidr| cidr.contains(&address))
}

/// A token entry as stored (inside the barrier).
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredToken {
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
    /// The parent's hash in hex; absent for orphans (and tokens stored before
    /// tokens had parents, which were all orphans).
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    path: String,
    #[serde(default)]
    max_ttl: Option<u64>,
    #[serde(default)]
    num_uses: i64,
    #[serde(default)]
    explicit_max_ttl: Option<u64>,
    #[serde(default)]
    period: Option<u64>,
    #[serde(default)]
    bound_cidrs: Vec<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    meta: Option<std::collections::BTreeMap<String, String>>,
}

impl Record for StoredToken {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        encode_json(self)
    }
    /// A damaged entry counts as no token: it grants nothing.
    fn decode(bytes: &[u8]) -> Option<Self> {
        decode_json(bytes)
    }
}

/// An index entry's name, and the hash of the child it names (`None` if the
/// name is damaged: the entry is removed all the same).
type ChildEntry = (String, Option<[u8; 32]>);

/// A token's accessor, pointing at the token's salted hash (hex).
pub(crate) struct AccessorLink(String);

impl Record for AccessorLink {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        Ok(self.0.as_bytes().to_vec())
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        std::str::from_utf8(bytes).ok().map(|s| Self(s.to_owned()))
    }
}

/// An entry of the token tree's index: its presence is the link.
pub(crate) struct ChildLink;

impl Record for ChildLink {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        Ok(b"1".to_vec())
    }
    fn decode(_: &[u8]) -> Option<Self> {
        Some(Self)
    }
}

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

/// What a new token is to be.
pub(crate) struct NewTokenRequest<'a> {
    pub(crate) policies: Vec<String>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) renewable: bool,
    /// A fixed value (dev mode's root token id).
    pub(crate) id: Option<&'a str>,
    /// The creator, unless the token is an orphan.
    pub(crate) parent: Option<&'a TokenEntry>,
    /// The path that makes it.
    pub(crate) path: &'a str,
    /// The longest it may live from issue, if shorter than the system's.
    pub(crate) max_ttl: Option<Duration>,
    /// Its limits and labels beyond those (uses, period, CIDRs, names).
    pub(crate) limits: TokenLimits,
}

/// What a new token may be limited to, besides its TTLs (all off by default).
#[derive(Clone, Default)]
pub(crate) struct TokenLimits {
    /// Uses allowed (0: no limit).
    pub(crate) num_uses: u32,
    /// Hard limit on its life from issue, renewals included.
    pub(crate) explicit_max_ttl: Option<Duration>,
    /// Makes it periodic: its TTL is this, and each renewal sets it again.
    pub(crate) period: Option<Duration>,
    pub(crate) bound_cidrs: Vec<ipnet::IpNet>,
    pub(crate) display_name: Option<String>,
    pub(crate) meta: Option<std::collections::BTreeMap<String, String>>,
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

/// `len` random characters of `[0-9A-Za-z]`, as Vault's accessors: never a `-` that a
/// command line would take for a flag. Bytes of 248 or more are drawn again, so every
/// character is uniform. Empty if the random source failed.
pub(crate) fn random_base62(len: usize) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let bytes = random(len * 2);
        if bytes.is_empty() {
            return String::new();
        }
        for &byte in bytes.expose_secret().iter().filter(|&&b| b < 248) {
            if out.len() < len {
                out.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    out
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

    /// Creates a token; `id` sets its value (dev mode's `--dev-root-token-id`).
    /// A TTL makes it expire (and renewable, unless `renewable` is false); a
    /// `parent` makes it that token's child (recorded in the tree's index).
    ///
    /// # Errors
    /// The random source or storage failed.
    pub(crate) fn create(&self, request: NewTokenRequest<'_>) -> Result<NewToken, encrypted_attr::Error> {
        let token = match request.id {
            Some(id) => SecretBytes::from(id),
            None => {
                let raw = random(24);
                if raw.is_empty() {
                    return Err(encrypted_attr::Error::RandomSource);
                }
                SecretBytes::from(format!("hvs.{}", URL_SAFE_NO_PAD.encode(raw.expose_secret())))
            }
        };
        let accessor = random_base62(24);
        if accessor.is_empty() {
            return Err(encrypted_attr::Error::RandomSource);
        }
        let now = SystemTime::now();
        let hash = self.hash(token.expose_secret());
        let limits = request.limits;
        // The hard limit caps the maximum renewals reach.
        let max_ttl = match (request.max_ttl, limits.explicit_max_ttl) {
            (Some(own), Some(explicit)) => Some(own.min(explicit)),
            (own, explicit) => own.or(explicit),
        };
        let entry = TokenEntry {
            accessor,
            policies: request.policies,
            issued: now,
            expires: request.ttl.map(|ttl| now + ttl),
            ttl: request.ttl,
            renewable: request.renewable && request.ttl.is_some(),
            last_renewal: None,
            parent: request.parent.map(|p| p.hash),
            path: request.path.to_owned(),
            max_ttl,
            num_uses: i64::from(limits.num_uses),
            explicit_max_ttl: limits.explicit_max_ttl,
            period: limits.period,
            bound_cidrs: limits.bound_cidrs,
            display_name: limits.display_name,
            meta: limits.meta,
            hash,
        };
        // The index first: a child in storage is always findable from its parent.
        if let Some(parent) = &entry.parent {
            let link = format!("{}/{}", Self::name(parent), Self::name(&hash));
            self.children.put(&link, &ChildLink)?;
        }
        self.accessors.put(&entry.accessor, &AccessorLink(Self::name(&hash)))?;
        self.entries.put(&Self::name(&hash), &StoredToken::from(&entry))?;
        self.cache(&entry);
        self.misses_lock().remove(&hash);
        Ok(NewToken { token, entry })
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

    /// Revokes a token and, with it, its descendants: true if it was known.
    /// Fails (and the caller must answer 5xx) when storage cannot delete it, since
    /// storage is what other servers and later lookups read. The token goes first:
    /// its descendants are refused from that moment (their ancestry is checked on
    /// every use), and their entries are then removed.
    pub(crate) fn revoke(&self, token: &str) -> Result<bool, encrypted_attr::Error> {
        let hash = self.hash(token.as_bytes());
        let known = self.entries.exists(&Self::name(&hash))?;
        self.forget(&hash)?;
        self.revoke_descendants(&hash, 0)?;
        Ok(known)
    }

    /// Whether the token whose [`holder`](TokenEntry::holder) is `holder` is still
    /// valid (stored, unexpired, its ancestors too). A storage failure is an
    /// error, never a "no": its leases must not be revoked for an outage.
    pub(crate) fn holds(&self, holder: &str) -> Result<bool, encrypted_attr::Error> {
        match parse_hash(holder) {
            Some(hash) => Ok(self.valid(&hash)?.is_some()),
            None => Ok(false),
        }
    }

    /// The holders of the tokens revoked here since the last call.
    pub(crate) fn take_revoked(&self) -> Vec<String> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The token an accessor names, if it names one still stored.
    fn hash_of_accessor(&self, accessor: &str) -> Result<Option<[u8; 32]>, encrypted_attr::Error> {
        if accessor.is_empty() || accessor.contains('/') || accessor == "." || accessor == ".." {
            return Ok(None);
        }
        Ok(self.accessors.get(accessor)?.and_then(|link| parse_hash(&link.0)))
    }

    /// The entry of the valid token an accessor names (`lookup-accessor`).
    pub(crate) fn lookup_accessor(&self, accessor: &str) -> Result<Option<TokenEntry>, encrypted_attr::Error> {
        match self.hash_of_accessor(accessor)? {
            Some(hash) => self.valid(&hash),
            None => Ok(None),
        }
    }

    /// Revokes the token an accessor names, and its descendants: true if known.
    pub(crate) fn revoke_accessor(&self, accessor: &str) -> Result<bool, encrypted_attr::Error> {
        let Some(hash) = self.hash_of_accessor(accessor)? else {
            return Ok(false);
        };
        self.forget(&hash)?;
        self.revoke_descendants(&hash, 0)?;
        Ok(true)
    }

    /// Revokes every token made on `prefix` or a path below it (whole segments:
    /// `auth/userpass` does not take `auth/userpass2/…`), and their descendants;
    /// returns how many. Reads every stored token: an operator's action, not a
    /// request path.
    pub(crate) fn revoke_prefix(&self, prefix: &str) -> Result<usize, encrypted_attr::Error> {
        let prefix = prefix.trim_end_matches('/');
        let below = format!("{prefix}/");
        let mut revoked = 0;
        for name in self.entries.names_under("")? {
            let Some(stored) = self.entries.get(&name)? else {
                continue;
            };
            let Some(hash) = parse_hash(&name) else { continue };
            if !prefix.is_empty() && (stored.path == prefix || stored.path.starts_with(&below)) {
                self.forget(&hash)?;
                self.revoke_descendants(&hash, 0)?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Revokes a token but not its children, which become orphans (`revoke-orphan`).
    pub(crate) fn revoke_orphan(&self, token: &str) -> Result<bool, encrypted_attr::Error> {
        let hash = self.hash(token.as_bytes());
        if !self.entries.exists(&Self::name(&hash))? {
            return Ok(false);
        }
        // Children first: were this interrupted, they would still have a parent.
        for (link, child) in self.children_of(&hash)? {
            if let Some(child) = child {
                self.entries.update(&Self::name(&child), &mut |current| match current {
                    Some(mut stored) => {
                        stored.parent = None;
                        Change::Put(stored)
                    }
                    None => Change::Keep,
                })?;
                self.tokens
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&child);
            }
            self.children.delete(&link)?;
        }
        self.forget(&hash)?;
        Ok(true)
    }

    /// Deletes one token's entry from storage and the cache.
    fn forget(&self, hash: &[u8; 32]) -> Result<(), encrypted_attr::Error> {
        let accessor = self.entries.get(&Self::name(hash))?.map(|stored| stored.accessor);
        self.entries.delete(&Self::name(hash))?;
        if let Some(accessor) = accessor.filter(|a| !a.is_empty()) {
            self.accessors.delete(&accessor)?;
        }
        // After the delete, so a storage read racing it either misses the entry or
        // sees the generation change and does not cache it (see `fetch`).
        self.revocations.fetch_add(1, Ordering::SeqCst);
        {
            let mut revoked = self.revoked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if revoked.len() < MAX_REMEMBERED_REVOCATIONS {
                revoked.push(Self::name(hash));
            }
        }
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(hash);
        Ok(())
    }

    /// Removes the entries of every descendant of `parent` (already refused, as
    /// `parent` is gone) and the tree's index under it.
    fn revoke_descendants(&self, parent: &[u8; 32], depth: usize) -> Result<(), encrypted_attr::Error> {
        if depth > MAX_TREE_DEPTH {
            return Ok(());
        }
        for (link, child) in self.children_of(parent)? {
            if let Some(child) = child {
                self.forget(&child)?;
                self.revoke_descendants(&child, depth + 1)?;
            }
            self.children.delete(&link)?;
        }
        Ok(())
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
            parent: entry.parent.as_ref().map(|p| crate::encoding::encode_hex(p)),
            path: entry.path.clone(),
            max_ttl: entry.max_ttl.map(|d| d.as_secs()),
            num_uses: entry.num_uses,
            explicit_max_ttl: entry.explicit_max_ttl.map(|d| d.as_secs()),
            period: entry.period.map(|d| d.as_secs()),
            bound_cidrs: entry.bound_cidrs.iter().map(ToString::to_string).collect(),
            display_name: entry.display_name.clone(),
            meta: entry.meta.clone(),
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
            parent: self.parent.as_deref().and_then(parse_hash),
            path: self.path,
            max_ttl: self.max_ttl.map(Duration::from_secs),
            num_uses: self.num_uses,
            explicit_max_ttl: self.explicit_max_ttl.map(Duration::from_secs),
            period: self.period.map(Duration::from_secs),
            bound_cidrs: parse_stored_cidrs(&self.bound_cidrs),
            display_name: self.display_name,
            meta: self.meta,
            hash,
        }
    }
}

/// CIDR blocks as stored, parsed. One that cannot be read becomes a block no
/// client is in (`0.0.0.0/32`): a damaged bound restricts, never frees.
pub(crate) fn parse_stored_cidrs(cidrs: &[String]) -> Vec<ipnet::IpNet> {
    // Not `Ipv4Net::default()`, which is `0.0.0.0/0`: every address.
    let nowhere = ipnet::IpNet::V4(ipnet::Ipv4Net::from(std::net::Ipv4Addr::UNSPECIFIED));
    cidrs.iter().map(|cidr| cidr.parse().unwrap_or(nowhere)).collect()
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
