//! `auth/token/*`: create (with parent or orphan), lookup, renew, revoke (with
//! descendants or orphaning them) — the token API Vault's clients use.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::encoding::{format_rfc3339 as rfc3339, unix_seconds as unix};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Fields, Params, Reads};
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::tokens::{RenewError, TokenEntry, capped_warning, life_ceiling};

fn lookup_data(entry: &TokenEntry, id: Option<&str>) -> Value {
    let now = SystemTime::now();
    let ttl = entry
        .expires
        .map_or(0, |e| e.duration_since(now).map_or(0, |d| d.as_secs()));
    let creation_ttl = entry
        .expires
        .map_or(0, |e| e.duration_since(entry.issued).map_or(0, |d| d.as_secs()));
    let mut data = json!({
        "accessor": entry.accessor,
        "creation_time": unix(entry.issued),
        "creation_ttl": creation_ttl,
        "display_name": entry.display_name.clone().unwrap_or_else(|| display_name(&entry.path)),
        "entity_id": "",
        "expire_time": entry.expires.map(rfc3339),
        "explicit_max_ttl": entry.explicit_max_ttl.map_or(0, |d| d.as_secs()),
        "id": id.unwrap_or(""),
        "issue_time": rfc3339(entry.issued),
        "meta": entry.meta,
        "num_uses": entry.num_uses,
        "orphan": entry.orphan(),
        "path": entry.path,
        "policies": entry.policies,
        "renewable": entry.renewable,
        "ttl": ttl,
        "type": "service",
    });
    if let Some(period) = entry.period {
        data["period"] = json!(period.as_secs());
    }
    if !entry.bound_cidrs.is_empty() {
        data["bound_cidrs"] = json!(entry.bound_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>());
    }
    if let Some(renewed) = entry.last_renewal {
        data["last_renewal_time"] = json!(unix(renewed));
        data["last_renewal"] = json!(rfc3339(renewed));
    }
    data
}

/// The name Vault shows for a token, from the path that made it: `root` for a root
/// token, `<mount>-<user>` for a login that names a user (`userpass-alice`), the
/// mount for one that does not (`approle`), `token` for one made with the token API.
fn display_name(made_by: &str) -> String {
    if made_by == "auth/token/root" {
        return "root".to_owned();
    }
    // `auth/<mount>/login` or `auth/<mount>/login/<user>`: the login segment is the
    // last or the one before it (a user name has no `/`).
    let Some((mount, user)) = made_by.strip_prefix("auth/").and_then(|below| {
        below.strip_suffix("/login").map(|mount| (mount, "")).or_else(|| {
            let (before, user) = below.rsplit_once('/')?;
            before.strip_suffix("/login").map(|mount| (mount, user))
        })
    }) else {
        return "token".to_owned();
    };
    let source = mount.replace('/', "-");
    if user.is_empty() {
        source
    } else {
        format!("{source}-{user}")
    }
}

/// The `auth` block Vault returns on token creation and renewal.
fn auth_reply(client_token: &str, entry: &TokenEntry, warnings: Vec<String>) -> Reply {
    auth_reply_with(client_token, entry, warnings, Value::Null)
}

/// The `auth` block of a token just made, with the auth method's `metadata`.
pub(crate) fn auth_reply_with(client_token: &str, entry: &TokenEntry, warnings: Vec<String>, metadata: Value) -> Reply {
    let auth = json!({
            "client_token": client_token,
            "accessor": entry.accessor,
            "policies": entry.policies,
            "token_policies": entry.policies,
            "metadata": metadata,
            "lease_duration": entry.ttl.map_or(0, |d| d.as_secs()),
            "renewable": entry.renewable,
            "entity_id": "",
            "token_type": "service",
            "orphan": entry.orphan(),
            "num_uses": entry.num_uses.max(0),
    });
    Reply::Authenticated { auth, warnings }
}

/// Renews `token` by `increment` (`renew-self` and `renew`).
fn renew_token(state: &Unsealed, token: &str, params: &Params<'_>) -> ApiResult {
    if let Some(Value::Number(n)) = params.raw("increment")
        && n.as_i64().is_some_and(|n| n < 0)
    {
        return Err(ApiError::BadRequest(format!(
            "Field validation failed: error converting input for field \"increment\": cannot provide negative value '{n}'"
        )));
    }
    let increment = params.duration("increment")?;
    match state.tokens.renew(token, increment) {
        Ok(renewed) => Ok(auth_reply(token, &renewed.entry, renewed.warning.into_iter().collect())),
        Err(RenewError::NotFound) => Err(ApiError::BadRequest("token not found".into())),
        Err(RenewError::NotRenewable) => Err(ApiError::BadRequest("lease is not renewable".into())),
        Err(RenewError::Storage(error)) => Err(ApiError::from(error)),
    }
}

/// Whether the token has the root policy or `sudo` on `path`.
fn privileged(state: &Unsealed, entry: &TokenEntry, path: &str) -> bool {
    entry.policies.iter().any(|p| p == "root")
        || state
            .policies
            .check(&entry.policies, path)
            .allows(crate::policy::Capability::Sudo)
}

/// The parameters `auth/token/create` reads; anything else sent is named in
/// Vault's "ignored parameters" warning.
const CREATE_FIELDS: Fields = &[
    "policies",
    "no_parent",
    "no_default_policy",
    "renewable",
    "ttl",
    "lease",
    "explicit_max_ttl",
    "period",
    "num_uses",
    "display_name",
    "meta",
    "type",
    "id",
    "role_name",
    "entity_alias",
];

/// `auth/token/create` and `create-orphan`: a token with the creator's policies
/// (or fewer), every limit asked for enforced — `num_uses`, `explicit_max_ttl`,
/// `period` — and what this server does not make refused with a 400 naming it
/// (batch tokens, token roles, entity aliases, chosen token values).
fn create(state: &Unsealed, orphan_path: bool, params: &Params<'_>, entry: &TokenEntry) -> ApiResult {
    for (name, what) in [
        ("role_name", "token roles"),
        ("entity_alias", "entity aliases"),
        ("id", "tokens with a chosen value"),
    ] {
        if params.raw(name).is_some_and(|v| v.as_str() != Some("")) {
            return Err(ApiError::BadRequest(format!(
                "{name}: {what} are not supported by this server"
            )));
        }
    }
    check_token_type(params, "type")?;
    // A token with a limited number of uses may not make others: they would
    // outlive its count (Vault's rule; here also when its last use is this one).
    if entry.num_uses != 0 {
        return Err(ApiError::BadRequest(
            "restricted use token cannot generate child tokens".into(),
        ));
    }
    let ttl = match params.duration("ttl")? {
        Some(ttl) => Some(ttl),
        None => params.duration("lease")?,
    };
    // `no_parent` takes root or sudo; `create-orphan` only its own ACL, as in Vault.
    let no_parent = params.bool("no_parent")?.unwrap_or(false);
    if no_parent && !orphan_path && !privileged(state, entry, "auth/token/create") {
        return Err(ApiError::BadRequest(
            "root or sudo privileges required to create orphan token".into(),
        ));
    }
    let mut policies: Vec<String> = match params.raw("policies") {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => entry.policies.clone(),
    };
    // A token can only hand out policies it has itself (root excepted).
    let creator_is_root = entry.policies.iter().any(|p| p == "root");
    if !creator_is_root && policies.iter().any(|p| p != "default" && !entry.policies.contains(p)) {
        return Err(ApiError::BadRequest("child policies must be subset of parent".into()));
    }
    let no_default = params.bool("no_default_policy")?.unwrap_or(false);
    if !no_default && !policies.iter().any(|p| p == "default" || p == "root") {
        policies.push("default".into());
    }
    policies.sort();
    policies.dedup();
    let renewable = params.bool("renewable")?.unwrap_or(true);
    let num_uses = match params.int("num_uses")? {
        None => 0,
        Some(n) if n < 0 => return Err(ApiError::BadRequest("number of uses cannot be negative".into())),
        Some(n) => u32::try_from(n).map_err(|_| ApiError::BadRequest("num_uses is too large".into()))?,
    };
    let explicit_max_ttl = params.duration("explicit_max_ttl")?.filter(|d| !d.is_zero());
    let period = params.duration("period")?.filter(|d| !d.is_zero());
    if period.is_some() && !privileged(state, entry, "auth/token/create") {
        return Err(ApiError::BadRequest(
            "root or sudo privileges required to create periodic token".into(),
        ));
    }
    let meta = match params.raw("meta") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(
            map.iter()
                .map(|(k, v)| match v {
                    Value::String(text) => Ok((k.clone(), text.clone())),
                    _ => Err(ApiError::BadRequest(format!(
                        "meta: the value of {k:?} must be a string"
                    ))),
                })
                .collect::<Result<std::collections::BTreeMap<_, _>, _>>()?,
        ),
        Some(_) => return Err(ApiError::BadRequest("meta must be an object of strings".into())),
    };
    let display_name = params
        .string("display_name")?
        .filter(|name| !name.is_empty())
        .map(|name| sanitised_display_name(&name));
    // Every token but a root one gets a TTL: the system default when none is
    // asked; a periodic token's TTL is its period.
    let has_root = policies.iter().any(|p| p == "root");
    let ttl = ttl.filter(|d| !d.is_zero());
    let ttl = match period {
        Some(period) => Some(period),
        None if has_root && explicit_max_ttl.is_none() => ttl,
        None => Some(ttl.unwrap_or(crate::stores::tokens::DEFAULT_TOKEN_TTL)),
    };
    let mut warnings = Vec::new();
    let ttl = ttl.map(|wanted| {
        let granted = wanted.min(life_ceiling(period, explicit_max_ttl, None));
        if granted < wanted {
            warnings.push(capped_warning(wanted, granted));
        }
        granted
    });
    let made = state.tokens.create(crate::stores::tokens::NewTokenRequest {
        policies,
        ttl,
        renewable,
        id: None,
        parent: (!orphan_path && !no_parent).then_some(entry),
        path: if orphan_path {
            "auth/token/create-orphan"
        } else {
            "auth/token/create"
        },
        max_ttl: None,
        limits: crate::stores::tokens::TokenLimits {
            num_uses,
            explicit_max_ttl,
            period,
            bound_cidrs: Vec::new(),
            display_name,
            meta,
        },
    })?;
    let client_token = String::from_utf8_lossy(made.token.expose_secret()).into_owned();
    Ok(auth_reply(&client_token, &made.entry, warnings))
}

/// `type` / `token_type`: `service` and `default` are what this server makes;
/// batch tokens are refused by name.
pub(crate) fn check_token_type(params: &Params<'_>, name: &'static str) -> Result<(), ApiError> {
    match params.string(name)?.as_deref() {
        None | Some("" | "service" | "default" | "default-service") => Ok(()),
        Some("batch" | "default-batch") => Err(ApiError::BadRequest(format!(
            "{name} {:?}: batch tokens are not supported by this server; use \"service\"",
            params.string(name)?.unwrap_or_default()
        ))),
        Some(_) => Err(ApiError::BadRequest(format!("invalid '{name}' value"))),
    }
}

/// A `display_name` as Vault keeps it: `token-` and the name, every run of
/// characters other than letters, digits and `-` made one `-`, no `-` at the end.
fn sanitised_display_name(asked: &str) -> String {
    let mut out = String::from("token-");
    let mut in_run = false;
    for c in asked.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// `auth/token/*`: the minimum to make and inspect tokens.
pub(crate) fn route(
    state: &Unsealed,
    op: Operation,
    rest: &[&str],
    params: &Params<'_>,
    token: &str,
    entry: &TokenEntry,
) -> ApiResult {
    // Each endpoint's fields, as Vault declares them (`token` on the `-self`
    // forms too, where it is unused).
    params.declare(match rest {
        ["create" | "create-orphan"] => &Reads(&[CREATE_FIELDS]),
        ["renew" | "renew-self"] => &Reads(&[&["token", "increment"]]),
        ["lookup-accessor" | "revoke-accessor"] => &Reads(&[&["accessor"]]),
        _ => &Reads(&[&["token"]]),
    });
    match (rest, op) {
        (["lookup-self"], Operation::Read | Operation::Update) => {
            Ok(Reply::data(lookup_data(entry, Some(token)), vec![]))
        }
        (["create"] | ["create-orphan"], Operation::Update) => create(state, rest == ["create-orphan"], params, entry),
        (["renew-self"], Operation::Update) => renew_token(state, token, params),
        (["renew"], Operation::Update) => {
            let other = params.string("token")?.unwrap_or_default();
            if other.is_empty() {
                return Err(ApiError::BadRequest("missing token ID".into()));
            }
            renew_token(state, &other, params)
        }
        (["lookup-accessor"], Operation::Update) => {
            let accessor = params.string("accessor")?.unwrap_or_default();
            if accessor.is_empty() {
                return Err(ApiError::BadRequest(
                    "1 error occurred:\n\t* missing accessor\n\n".into(),
                ));
            }
            match state.tokens.lookup_accessor(&accessor)? {
                Some(found) => Ok(Reply::data(lookup_data(&found, None), vec![])),
                None => Err(ApiError::BadRequest(
                    "1 error occurred:\n\t* invalid accessor\n\n".into(),
                )),
            }
        }
        (["revoke-accessor"], Operation::Update) => {
            let accessor = params.string("accessor")?.unwrap_or_default();
            if accessor.is_empty() {
                return Err(ApiError::BadRequest(
                    "1 error occurred:\n\t* missing accessor\n\n".into(),
                ));
            }
            if state.tokens.revoke_accessor(&accessor)? {
                Ok(Reply::NoContent)
            } else {
                // Vault answers 200 with a warning, not an error.
                Ok(Reply::data(
                    Value::Null,
                    vec!["No token found with this accessor".into()],
                ))
            }
        }
        (["lookup"], Operation::Update) => {
            let other = params.string("token")?.unwrap_or_default();
            match state.tokens.check(&other)? {
                Some(found) => Ok(Reply::data(lookup_data(&found, Some(&other)), vec![])),
                None => Err(ApiError::BadRequest("bad token".into())),
            }
        }
        (["revoke-self"], Operation::Update) => {
            state.tokens.revoke(token)?;
            Ok(Reply::NoContent)
        }
        (["revoke"], Operation::Update) => {
            let other = params.string("token")?.unwrap_or_default();
            if other.is_empty() {
                return Err(ApiError::BadRequest("missing token ID".into()));
            }
            state.tokens.revoke(&other)?;
            Ok(Reply::NoContent)
        }
        (["revoke-orphan"], Operation::Update) => {
            let other = params.string("token")?.unwrap_or_default();
            if other.is_empty() {
                return Err(ApiError::BadRequest("missing token ID".into()));
            }
            if !privileged(state, entry, "auth/token/revoke-orphan") {
                return Err(ApiError::BadRequest(
                    "root or sudo privileges required to revoke and orphan".into(),
                ));
            }
            if !state.tokens.revoke_orphan(&other)? {
                return Err(ApiError::BadRequest("token to revoke not found".into()));
            }
            Ok(Reply::NoContent)
        }
        _ => Err(ApiError::UnsupportedPath(format!("auth/token/{}", rest.join("/")))),
    }
}

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn asked_display_names_are_sanitised_as_vaults() {
        assert_eq!(super::sanitised_display_name("My App!"), "token-My-App");
        assert_eq!(super::sanitised_display_name("a  b__c"), "token-a-b-c");
        assert_eq!(super::sanitised_display_name("ok-1"), "token-ok-1");
    }

    #[test]
    fn display_names_follow_vaults() {
        assert_eq!(display_name("auth/token/root"), "root");
        assert_eq!(display_name("auth/token/create"), "token");
        assert_eq!(display_name("auth/userpass/login/alice"), "userpass-alice");
        assert_eq!(display_name("auth/team/users/login/bob"), "team-users-bob");
        assert_eq!(display_name("auth/approle/login"), "approle");
        // A mount whose name merely starts with `login` is not the login segment.
        assert_eq!(display_name("auth/team/loginx/login/bob"), "team-loginx-bob");
        assert_eq!(display_name("auth/loginx/login"), "loginx");
    }
}
