//! `auth/*`: the token API (`auth/token/*`, in [`token`]) and the auth methods
//! enabled at other paths (`userpass`, `approle`), including their logins, which
//! are answered without a token.

mod approle;
pub(super) mod token;
mod userpass;

use crate::http::{ApiError, ApiResult};
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;

/// Whether `path` (below `/v1/`, no trailing `/`) is a login of an enabled auth
/// method: exactly `auth/<userpass mount>/login/<name>` (or `/login`), or
/// `auth/<approle mount>/login`. Nothing else skips the token check.
pub(crate) fn is_login(state: &Unsealed, path: &str, op: Operation) -> bool {
    let Some(below) = path.strip_prefix("auth/") else {
        return false;
    };
    if op != Operation::Update {
        return false;
    }
    let Some((mount_path, mount)) = state.auth_methods.find(below) else {
        return false;
    };
    let rest = below.strip_prefix(mount_path.as_str()).unwrap_or_default();
    login_rest(&mount.kind, rest.strip_prefix('/').unwrap_or(rest))
}

/// Whether `rest` (inside a mount of `kind`) is that method's login path.
fn login_rest(kind: &str, rest: &str) -> bool {
    match kind {
        "userpass" => rest == "login" || rest.strip_prefix("login/").is_some_and(|name| !name.contains('/')),
        "approle" => rest == "login",
        _ => false,
    }
}

/// `token_policies` (or the older `policies`): a list, or comma-separated text,
/// lower-cased. `root` is refused: an auth method never makes a root token.
pub(super) fn policies_param(params: &Params<'_>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = params.raw("token_policies").or_else(|| params.raw("policies")) else {
        return Ok(None);
    };
    let names: Vec<String> = match raw {
        serde_json::Value::Array(list) => list
            .iter()
            .filter_map(serde_json::Value::as_str)
            .map(str::to_owned)
            .collect(),
        serde_json::Value::String(text) => text.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let mut names: Vec<String> = names
        .into_iter()
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.iter().any(|n| n == "root") {
        return Err(ApiError::BadRequest("auth methods cannot create root tokens".into()));
    }
    names.sort();
    names.dedup();
    Ok(Some(names))
}

/// The token settings a user or role read shows (those not offered are shown
/// with Vault's defaults).
pub(super) fn token_fields(policies: &[String], ttl: u64, max_ttl: u64) -> serde_json::Map<String, serde_json::Value> {
    let fields = serde_json::json!({
        "token_policies": policies,
        "policies": policies,
        "token_ttl": ttl,
        "token_max_ttl": max_ttl,
        "token_explicit_max_ttl": 0,
        "token_no_default_policy": false,
        "token_num_uses": 0,
        "token_period": 0,
        "period": 0,
        "token_type": "default",
        "token_bound_cidrs": [],
        "token_strictly_bind_ip": false,
    });
    match fields {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The token of a successful login: the user's or role's policies plus
/// `default` (never `root`), its TTL (or the system's), renewable up to its
/// `token_max_ttl`, made on `path`; answered with Vault's `auth` block.
pub(super) fn login_token(
    state: &Unsealed,
    policies: &[String],
    (token_ttl, token_max_ttl): (u64, u64),
    path: &str,
    metadata: serde_json::Value,
) -> ApiResult {
    use std::time::Duration;

    use crate::stores::tokens::{DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL, NewTokenRequest};
    let mut policies = policies.to_vec();
    if policies.iter().any(|p| p == "root") {
        return Err(ApiError::BadRequest("auth methods cannot create root tokens".into()));
    }
    if !policies.iter().any(|p| p == "default") {
        policies.push("default".into());
    }
    policies.sort();
    let max_ttl = match token_max_ttl {
        0 => MAX_TOKEN_TTL,
        secs => Duration::from_secs(secs).min(MAX_TOKEN_TTL),
    };
    let ttl = match token_ttl {
        0 => DEFAULT_TOKEN_TTL,
        secs => Duration::from_secs(secs),
    }
    .min(max_ttl);
    let made = state.tokens.create(NewTokenRequest {
        policies,
        ttl: Some(ttl),
        renewable: true,
        id: None,
        parent: None,
        path,
        max_ttl: (token_max_ttl != 0).then_some(max_ttl),
    })?;
    let client_token = String::from_utf8_lossy(made.token.expose_secret()).into_owned();
    Ok(token::auth_reply_with(&client_token, &made.entry, vec![], metadata))
}

/// Serves an authorised request below `auth/<mount>/` for a mount other than
/// `token` (`path` is below `auth/`).
pub(super) fn route(state: &Unsealed, op: Operation, path: &str, params: &Params<'_>) -> ApiResult {
    let Some((mount_path, mount)) = state.auth_methods.find(path) else {
        return Err(ApiError::NoRoute(format!("auth/{}", path.trim_end_matches('/'))));
    };
    let rest = path
        .strip_prefix(mount_path.as_str())
        .unwrap_or_default()
        .trim_start_matches('/');
    match mount.kind.as_str() {
        "userpass" => userpass::route(state, op, &mount, rest, params),
        "approle" => approle::route(state, op, &mount, rest, params),
        _ => Err(ApiError::UnsupportedPath(format!("auth/{path}"))),
    }
}

/// Serves a login (see [`is_login`]): no token, a new one made on success.
pub(crate) fn login(state: &Unsealed, path: &str, params: &Params<'_>) -> ApiResult {
    let below_auth = path.strip_prefix("auth/").unwrap_or(path);
    let Some((mount_path, mount)) = state.auth_methods.find(below_auth) else {
        return Err(ApiError::NoRoute(path.trim_end_matches('/').to_owned()));
    };
    let rest = below_auth
        .strip_prefix(mount_path.as_str())
        .unwrap_or_default()
        .trim_start_matches('/');
    match mount.kind.as_str() {
        "userpass" if login_rest("userpass", rest) => userpass::login(state, &mount_path, &mount, rest, params),
        "approle" if login_rest("approle", rest) => approle::login(state, &mount_path, &mount, params),
        _ => Err(ApiError::UnsupportedPath(path.to_owned())),
    }
}
