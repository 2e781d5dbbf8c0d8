//! Making tokens: what is asked for, the limits a token may carry, and the random
//! values a token and its accessor are made of.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use encrypted_attr::SecretBytes;

use super::{AccessorLink, ChildLink, StoredToken, TokenEntry, TokenStore};

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
pub(super) fn random(len: usize) -> SecretBytes {
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
}
