//! `auth/*`: the token API (`auth/token/*`, in [`token`]) and the auth methods
//! enabled at other paths (`userpass`, `approle`), including their logins, which
//! are answered without a token.

mod approle;
pub(super) mod token;
mod token_settings;
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

/// Serves a login (see [`is_login`]) from `client`: no token, a new one made on
/// success.
pub(crate) fn login(state: &Unsealed, path: &str, params: &Params<'_>, client: Option<std::net::IpAddr>) -> ApiResult {
    let below_auth = path.strip_prefix("auth/").unwrap_or(path);
    let Some((mount_path, mount)) = state.auth_methods.find(below_auth) else {
        return Err(ApiError::NoRoute(path.trim_end_matches('/').to_owned()));
    };
    let rest = below_auth
        .strip_prefix(mount_path.as_str())
        .unwrap_or_default()
        .trim_start_matches('/');
    match mount.kind.as_str() {
        "userpass" if login_rest("userpass", rest) => userpass::login(state, &mount_path, &mount, rest, params, client),
        "approle" if login_rest("approle", rest) => approle::login(state, &mount_path, &mount, params, client),
        _ => Err(ApiError::UnsupportedPath(path.to_owned())),
    }
}
