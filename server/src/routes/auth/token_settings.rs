//! The token settings a userpass user or an AppRole role gives the tokens its
//! logins make, as Vault's `tokenutil` declares them: policies, TTLs, the hard
//! maximum, uses, period, bound CIDRs, type. Read, shown and applied in one place,
//! so both methods enforce every one they accept; what this server does not do
//! (batch tokens, `token_strictly_bind_ip`) is refused with a 400 naming it.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::policies_param;
use crate::http::{ApiError, ApiResult};
use crate::params::{Fields, Params};
use crate::seal::Unsealed;
use crate::stores::tokens::{
    DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL, NewTokenRequest, TokenLimits, life_ceiling, parse_stored_cidrs,
};

/// The settings as stored inside a user or role (flattened into it: the names
/// of the fields stored before the others existed are unchanged).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct TokenSettings {
    pub(crate) token_policies: Vec<String>,
    /// Seconds; 0: the system's.
    pub(crate) token_ttl: u64,
    pub(crate) token_max_ttl: u64,
    pub(crate) token_explicit_max_ttl: u64,
    /// 0: no limit.
    pub(crate) token_num_uses: u32,
    /// Seconds; non-zero makes the tokens periodic.
    pub(crate) token_period: u64,
    /// Checked networks, written as `a.b.c.d/n`.
    pub(crate) token_bound_cidrs: Vec<String>,
    pub(crate) token_no_default_policy: bool,
}

/// What [`TokenSettings::update`] reads: a user's or role's token settings, by
/// their names and their older ones.
pub(crate) const TOKEN_SETTINGS_FIELDS: Fields = &[
    "token_policies",
    "policies",
    "token_ttl",
    "ttl",
    "token_max_ttl",
    "max_ttl",
    "token_explicit_max_ttl",
    "token_period",
    "period",
    "token_num_uses",
    "token_bound_cidrs",
    "token_no_default_policy",
    "token_type",
    "token_strictly_bind_ip",
];

impl TokenSettings {
    /// Applies the settings present in `params` (a create or an update: what is
    /// absent stays as it is), then checks them together.
    ///
    /// # Errors
    /// A value that cannot be read, a setting this server does not support, or
    /// a TTL above the maximum.
    pub(crate) fn update(&mut self, params: &Params<'_>) -> Result<(), ApiError> {
        if let Some(policies) = policies_param(params)? {
            self.token_policies = policies;
        }
        if let Some(ttl) = seconds(params, ["token_ttl", "ttl"])? {
            self.token_ttl = ttl;
        }
        if let Some(max) = seconds(params, ["token_max_ttl", "max_ttl"])? {
            self.token_max_ttl = max;
        }
        if let Some(explicit) = params.duration("token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = explicit.as_secs();
        }
        if let Some(period) = seconds(params, ["token_period", "period"])? {
            self.token_period = period;
        }
        if let Some(uses) = params.int("token_num_uses")? {
            self.token_num_uses =
                u32::try_from(uses).map_err(|_| ApiError::BadRequest("token_num_uses cannot be negative".into()))?;
        }
        if let Some(cidrs) = cidrs_param(params, "token_bound_cidrs")? {
            self.token_bound_cidrs = cidrs.iter().map(ToString::to_string).collect();
        }
        if let Some(no_default) = params.bool("token_no_default_policy")? {
            self.token_no_default_policy = no_default;
        }
        super::token::check_token_type(params, "token_type")?;
        if params.bool("token_strictly_bind_ip")? == Some(true) {
            return Err(ApiError::BadRequest(
                "token_strictly_bind_ip is not supported by this server (tokens are bound by token_bound_cidrs)".into(),
            ));
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(ApiError::BadRequest(
                "\"token_ttl\" value must be less than \"token_max_ttl\" value".into(),
            ));
        }
        Ok(())
    }

    /// The settings as a user's or role's read shows them.
    pub(crate) fn fields(&self) -> Map<String, Value> {
        let fields = json!({
            "token_policies": self.token_policies,
            "policies": self.token_policies,
            "token_ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_period": self.token_period,
            "period": self.token_period,
            "token_type": "default",
            "token_bound_cidrs": self.token_bound_cidrs,
            "token_strictly_bind_ip": false,
        });
        match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// The bound CIDRs, parsed (a stored one that cannot be read binds to
    /// nothing: fail closed).
    pub(crate) fn bound_cidrs(&self) -> Vec<ipnet::IpNet> {
        parse_stored_cidrs(&self.token_bound_cidrs)
    }
}

fn seconds(params: &Params<'_>, names: [&'static str; 2]) -> Result<Option<u64>, ApiError> {
    for name in names {
        if let Some(duration) = params.duration(name)? {
            return Ok(Some(duration.as_secs()));
        }
    }
    Ok(None)
}

/// A list of CIDR blocks (a JSON list, or comma-separated text; a bare address
/// is its own block), as Vault's `TypeCommaStringSlice` reads them.
///
/// # Errors
/// A block that is not one: 400 naming it.
pub(crate) fn cidrs_param(params: &Params<'_>, name: &'static str) -> Result<Option<Vec<ipnet::IpNet>>, ApiError> {
    let texts: Vec<String> = match params.raw(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).unwrap_or_else(|| item.to_string()))
            .collect(),
        Some(Value::String(text)) => text.split(',').map(str::to_owned).collect(),
        Some(other) => vec![other.to_string()],
    };
    texts
        .iter()
        .map(|text| text.trim())
        .filter(|text| !text.is_empty())
        .map(|text| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map(|cidr| cidr.trunc())
                .map_err(|_| ApiError::BadRequest(format!("invalid CIDR block {text:?} in {name}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Whether every block of `inner` lies inside some block of `outer` (an empty
/// `outer` allows anything).
pub(crate) fn is_subset(inner: &[ipnet::IpNet], outer: &[ipnet::IpNet]) -> bool {
    outer.is_empty() || inner.iter().all(|block| outer.iter().any(|o| o.contains(block)))
}

/// The token of a successful login, as `settings` say: their policies plus
/// `default` (unless `token_no_default_policy`; never `root`), their TTL (or the
/// system's) up to their maximum, and every limit they set; answered with Vault's
/// `auth` block. `bound_cidrs` overrides the settings' when given (a secret ID's
/// own `token_bound_cidrs`).
pub(crate) fn login_token(
    state: &Unsealed,
    settings: &TokenSettings,
    bound_cidrs: Option<Vec<ipnet::IpNet>>,
    path: &str,
    metadata: Value,
    warnings: Vec<String>,
) -> ApiResult {
    let mut policies = settings.token_policies.clone();
    if policies.iter().any(|p| p == "root") {
        return Err(ApiError::BadRequest("auth methods cannot create root tokens".into()));
    }
    if !settings.token_no_default_policy && !policies.iter().any(|p| p == "default") {
        policies.push("default".into());
    }
    policies.sort();
    let max_ttl = (settings.token_max_ttl != 0).then(|| Duration::from_secs(settings.token_max_ttl));
    let explicit_max_ttl =
        (settings.token_explicit_max_ttl > 0).then(|| Duration::from_secs(settings.token_explicit_max_ttl));
    let period = (settings.token_period > 0).then(|| Duration::from_secs(settings.token_period));
    let wanted = match (period, settings.token_ttl) {
        (Some(period), _) => period,
        (None, 0) => DEFAULT_TOKEN_TTL,
        (None, secs) => Duration::from_secs(secs),
    };
    let ttl = wanted.min(life_ceiling(period, explicit_max_ttl, max_ttl));
    let made = state.tokens.create(NewTokenRequest {
        policies,
        ttl: Some(ttl),
        renewable: true,
        id: None,
        parent: None,
        path,
        max_ttl: max_ttl.filter(|_| period.is_none()).map(|own| own.min(MAX_TOKEN_TTL)),
        limits: TokenLimits {
            num_uses: settings.token_num_uses,
            explicit_max_ttl,
            period,
            bound_cidrs: bound_cidrs.unwrap_or_else(|| settings.bound_cidrs()),
            display_name: None,
            meta: None,
        },
    })?;
    let client_token = String::from_utf8_lossy(made.token.expose_secret()).into_owned();
    Ok(super::token::auth_reply_with(
        &client_token,
        &made.entry,
        warnings,
        metadata,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(texts: &[&str]) -> Vec<ipnet::IpNet> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn cidr_lists_are_read_as_vault_reads_them() {
        let params = Params::new(
            json!({"a": "10.0.0.0/8, 127.0.0.1", "b": ["192.168.1.7/16"], "c": "nope"})
                .as_object()
                .unwrap()
                .clone(),
        );
        params.declare(&crate::params::Reads(&[&["a", "b", "c", "absent"]]));
        assert_eq!(
            cidrs_param(&params, "a").unwrap().unwrap(),
            cidrs(&["10.0.0.0/8", "127.0.0.1/32"])
        );
        assert_eq!(cidrs_param(&params, "b").unwrap().unwrap(), cidrs(&["192.168.0.0/16"]));
        assert!(cidrs_param(&params, "c").is_err());
        assert!(cidrs_param(&params, "absent").unwrap().is_none());
    }

    #[test]
    fn subsets_and_damaged_bounds() {
        assert!(is_subset(&cidrs(&["10.1.0.0/16"]), &cidrs(&["10.0.0.0/8"])));
        assert!(!is_subset(&cidrs(&["192.168.0.0/16"]), &cidrs(&["10.0.0.0/8"])));
        assert!(is_subset(&cidrs(&["192.168.0.0/16"]), &[]));
        // A damaged stored bound admits no client.
        let damaged = parse_stored_cidrs(&["not a cidr".to_owned()]);
        assert!(!crate::stores::tokens::admits(
            &damaged,
            Some("127.0.0.1".parse().unwrap())
        ));
        assert!(!crate::stores::tokens::admits(
            &damaged,
            Some("8.8.8.8".parse().unwrap())
        ));
    }
}
