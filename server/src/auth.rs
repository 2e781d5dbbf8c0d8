//! Tokens: random, stored only as salted hashes, compared in constant time, with
//! an optional expiry and revocation.
//!
//! A token is `hvs.` followed by 24 random bytes in URL-safe base64, the shape Vault
//! clients expect. The store keeps `SHA-256(salt ‖ token)` under a per-process
//! random salt, so a memory dump of the store does not yield usable tokens.
//! With a barrier (persistent server), the salt and every token's entry are stored
//! sealed under `sys/token-salt` and `sys/tokens/<hash>`, so tokens survive a
//! restart. Policies (what a token may do) are not implemented yet: every valid
//! token may do everything, as Vault's root token does.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Policies attached (only `root` is meaningful until policies exist).
    pub(crate) policies: Vec<String>,
    /// Creation time.
    pub(crate) issued: SystemTime,
    /// Expiry; `None` for tokens that never expire (root).
    pub(crate) expires: Option<SystemTime>,
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
}

/// The token store.
pub(crate) struct TokenStore {
    salt: SecretBytes,
    tokens: RwLock<HashMap<[u8; 32], TokenEntry>>,
    persist: Option<Barrier>,
}

const SALT_PATH: &str = "sys/token-salt";
const TOKENS_PREFIX: &str = "sys/tokens/";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
            persist: None,
        }
    }

    /// A store kept in `barrier`: loads the salt (made on first use) and every token.
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
        let mut tokens = HashMap::new();
        for path in barrier.list(TOKENS_PREFIX)? {
            let Some(raw) = barrier.get(&path)? else { continue };
            let Ok(stored) = serde_json::from_slice::<StoredToken>(&raw) else {
                continue;
            };
            let Some(hash) = parse_hex(path.trim_start_matches(TOKENS_PREFIX)) else {
                continue;
            };
            tokens.insert(
                hash,
                TokenEntry {
                    accessor: stored.accessor,
                    policies: stored.policies,
                    issued: UNIX_EPOCH + Duration::from_secs(stored.issued),
                    expires: stored.expires.map(|e| UNIX_EPOCH + Duration::from_secs(e)),
                    hash,
                },
            );
        }
        Ok(Self {
            salt,
            tokens: RwLock::new(tokens),
            persist: Some(barrier),
        })
    }

    fn store(&self, entry: &TokenEntry) -> bool {
        let Some(barrier) = &self.persist else { return true };
        let stored = StoredToken {
            accessor: entry.accessor.clone(),
            policies: entry.policies.clone(),
            issued: unix(entry.issued),
            expires: entry.expires.map(unix),
        };
        let Ok(json) = serde_json::to_vec(&stored) else {
            return false;
        };
        let path = format!("{TOKENS_PREFIX}{}", hex(&entry.hash));
        barrier.update(&path, &mut |_| Ok(Update::Put(json.clone()))).is_ok()
    }

    fn forget(&self, hash: &[u8; 32]) {
        if let Some(barrier) = &self.persist {
            let path = format!("{TOKENS_PREFIX}{}", hex(hash));
            if barrier.update(&path, &mut |_| Ok(Update::Delete)).is_err() {
                tracing::error!("could not remove a revoked token from storage");
            }
        }
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
    pub(crate) fn create(&self, policies: Vec<String>, ttl: Option<Duration>, id: Option<&str>) -> Option<NewToken> {
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
            hash,
        };
        if !self.store(&entry) {
            return None;
        }
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(hash, entry.clone());
        Some(NewToken { token, entry })
    }

    /// The entry of a valid (known, unexpired) token.
    pub(crate) fn check(&self, token: &str) -> Option<TokenEntry> {
        let hash = self.hash(token.as_bytes());
        let tokens = self.tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = tokens.get(&hash)?;
        if !bool::from(entry.hash.ct_eq(&hash)) {
            return None;
        }
        match entry.expires {
            Some(expires) if SystemTime::now() >= expires => None,
            _ => Some(entry.clone()),
        }
    }

    /// Revokes a token; true if it existed.
    pub(crate) fn revoke(&self, token: &str) -> bool {
        let hash = self.hash(token.as_bytes());
        self.forget(&hash);
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&hash)
            .is_some()
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_check_expire_and_revoke() {
        let store = TokenStore::new();
        let made = store.create(vec!["root".into()], None, None).expect("token");
        let token = String::from_utf8(made.token.expose_secret().to_vec()).expect("ascii");
        assert!(token.starts_with("hvs."));
        assert!(store.check(&token).is_some());
        assert!(store.check("hvs.nope").is_none());
        let short = store
            .create(vec![], Some(Duration::ZERO), Some("short"))
            .expect("token");
        assert!(store.check("short").is_none(), "expired");
        drop(short);
        assert!(store.revoke(&token));
        assert!(store.check(&token).is_none());
    }
}
