//! A token's entry: what the store remembers of it, as held and as stored, and the
//! checks on its bounds and lifetime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::super::{Record, decode_json, encode_json};
use super::{MAX_TOKEN_TTL, parse_hash};
use crate::encoding::unix_seconds as unix;

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
    pub(super) parent: Option<[u8; 32]>,
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
    pub(super) hash: [u8; 32],
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
fn within(cidrs: &[ipnet::IpNet], address: std::net::IpAddr) -> bool {
    let address = match address {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, std::net::IpAddr::V4),
        v4 => v4,
    };
    cidrs.iter().any(|cidr| cidr.contains(&address))
}

/// A token entry as stored (inside the barrier).
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredToken {
    pub(super) accessor: String,
    pub(super) policies: Vec<String>,
    pub(super) issued: u64,
    pub(super) expires: Option<u64>,
    #[serde(default)]
    pub(super) ttl: Option<u64>,
    #[serde(default)]
    pub(super) renewable: bool,
    #[serde(default)]
    pub(super) last_renewal: Option<u64>,
    /// The parent's hash in hex; absent for orphans (and tokens stored before
    /// tokens had parents, which were all orphans).
    #[serde(default)]
    pub(super) parent: Option<String>,
    #[serde(default)]
    pub(super) path: String,
    #[serde(default)]
    pub(super) max_ttl: Option<u64>,
    #[serde(default)]
    pub(super) num_uses: i64,
    #[serde(default)]
    pub(super) explicit_max_ttl: Option<u64>,
    #[serde(default)]
    pub(super) period: Option<u64>,
    #[serde(default)]
    pub(super) bound_cidrs: Vec<String>,
    #[serde(default)]
    pub(super) display_name: Option<String>,
    #[serde(default)]
    pub(super) meta: Option<std::collections::BTreeMap<String, String>>,
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
pub(super) type ChildEntry = (String, Option<[u8; 32]>);

/// A token's accessor, pointing at the token's salted hash (hex).
pub(crate) struct AccessorLink(pub(super) String);

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
    pub(super) fn into_entry(self, hash: [u8; 32]) -> TokenEntry {
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
