//! A lease as stored (a sealed JSON record), its revocation state, and the
//! time and name helpers the manager and its schedule share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use encrypted_attr::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stores::{Record, decode_json, encode_json};

/// One lease, as stored.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub(crate) struct LeaseRecord {
    pub(crate) id: String,
    /// The request path that issued it (`database/creds/app`).
    pub(crate) path: String,
    /// The mount that issued it, without slashes: its engine renews and revokes.
    pub(crate) mount: String,
    /// The token that obtained it ([`TokenEntry::holder`](crate::stores::tokens::TokenEntry::holder)):
    /// revoked with it.
    pub(crate) holder: String,
    /// Milliseconds since the Unix epoch.
    pub(crate) issued_ms: u64,
    pub(crate) expires_ms: u64,
    #[serde(default)]
    pub(crate) last_renewal_ms: Option<u64>,
    /// The TTL asked for at issue: a renewal's default increment.
    pub(crate) ttl_secs: u64,
    /// The longest it may live from issue.
    pub(crate) max_ttl_secs: u64,
    pub(crate) renewable: bool,
    /// The engine's own data about the secret.
    pub(crate) internal: Value,
    #[serde(default)]
    pub(crate) revocation: Revocation,
}

/// Where a lease's revocation stands.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug, Default)]
pub(crate) struct Revocation {
    /// Failed attempts so far.
    pub(crate) attempts: u32,
    /// When the next attempt is due after a failure (ms since the epoch).
    pub(crate) retry_at_ms: Option<u64>,
    /// Why the last attempt failed.
    pub(crate) last_error: Option<String>,
    /// While a revocation is under way (on this server or another): until
    /// when its claim holds. A claimer that stopped is taken over after it.
    pub(crate) claimed_until_ms: Option<u64>,
}

impl Revocation {
    /// Whether revocation failed so often that it is only retried hourly.
    pub(crate) fn is_irrevocable(&self) -> bool {
        self.attempts >= super::MAX_REVOCATION_ATTEMPTS
    }
}

/// Never the engine's `internal` data, which may name what the secret is.
impl std::fmt::Debug for LeaseRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseRecord")
            .field("id", &self.id)
            .field("expires_ms", &self.expires_ms)
            .field("renewable", &self.renewable)
            .field("revocation", &self.revocation)
            .finish_non_exhaustive()
    }
}

impl Record for LeaseRecord {
    fn encode(&self) -> Result<Vec<u8>, Error> {
        encode_json(self)
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        decode_json(bytes)
    }
}

impl LeaseRecord {
    /// When the schedule should next look at this lease: at expiry, or when a
    /// failed revocation is due again.
    pub(super) fn due_ms(&self) -> u64 {
        self.revocation.retry_at_ms.unwrap_or(self.expires_ms)
    }

    /// Whether a revocation of it is under way: a live claim, this server's
    /// or another's, so it is never revoked twice at once.
    pub(super) fn being_revoked(&self, now_ms: u64) -> bool {
        self.revocation.claimed_until_ms.is_some_and(|until| until > now_ms)
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms)).unwrap_or(UNIX_EPOCH)
}

pub(super) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Up to a tenth of `wait`, fixed per lease, so that leases failing together
/// are not all retried in the same instant.
pub(super) fn jitter_ms(id: &str, wait: Duration) -> u64 {
    let spread = duration_ms(wait) / 10;
    if spread == 0 {
        return 0;
    }
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % spread
}

/// `prefix` as a folder: empty, or ending in one `/`.
pub(super) fn folder(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// Whether `id` can name a lease: not empty, not a folder, no `.` or `..`
/// segment (which storage paths must not hold).
pub(super) fn is_lease_id(id: &str) -> bool {
    !id.is_empty()
        && !id.ends_with('/')
        && !id.starts_with('/')
        && id
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}
