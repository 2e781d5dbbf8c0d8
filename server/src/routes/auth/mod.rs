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

/// Whether `path` (below `/v1/`, no trailing `/`) is a login: `auth/<mount>/login`
/// or below it, on any mount but `token`.
pub(crate) fn is_login(path: &str, op: Operation) -> bool {
    let Some(rest) = path.strip_prefix("auth/") else {
        return false;
    };
    op == Operation::Update && !rest.starts_with("token/") && (rest.ends_with("/login") || rest.contains("/login/"))
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
        "userpass" => userpass::login(state, &mount_path, &mount, rest, params),
        "approle" if rest == "login" => approle::login(state, &mount_path, &mount, params),
        _ => Err(ApiError::UnsupportedPath(path.to_owned())),
    }
}
