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
use crate::stores::mounts::MountEntry;

/// Every kind of auth method `sys/auth` enables (the token method is built in at
/// `auth/token/`, in [`token`]).
static METHODS: [&dyn AuthMethod; 2] = [&userpass::Userpass, &approle::AppRole];

/// What the core asks of a kind of auth method, for each of its mounts.
pub(crate) trait AuthMethod: Sync {
    /// The kind's `type` in `sys/auth`.
    fn kind(&self) -> &'static str;

    /// Whether `rest` (the path below the mount) is this method's login, which
    /// is answered without a token.
    fn is_login(&self, rest: &str) -> bool;

    /// Serves an authorised request for `rest` below a mount of this method.
    fn handle(&self, state: &Unsealed, op: Operation, mount: &MountEntry, rest: &str, params: &Params<'_>)
    -> ApiResult;

    /// Serves a login at `rest` from `client`: a new token on success.
    fn login(&self, state: &Unsealed, at: LoginAt<'_>, params: &Params<'_>) -> ApiResult;

    /// The metric family of its requests (`login`: of its logins).
    fn family(&self, login: bool) -> &'static str;
}

/// Where a login arrived: the method's mount and path, what follows it, and the
/// client's address (for CIDR bindings).
pub(crate) struct LoginAt<'a> {
    pub(crate) mount_path: &'a str,
    pub(crate) mount: &'a MountEntry,
    pub(crate) rest: &'a str,
    pub(crate) client: Option<std::net::IpAddr>,
}

/// The auth method serving mounts of `kind`.
pub(crate) fn method_of(kind: &str) -> Option<&'static dyn AuthMethod> {
    METHODS.iter().copied().find(|method| method.kind() == kind)
}

/// Whether `kind` is one of this server's auth methods.
pub(crate) fn is_known(kind: &str) -> bool {
    method_of(kind).is_some()
}

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
    method_of(&mount.kind).is_some_and(|method| method.is_login(rest.strip_prefix('/').unwrap_or(rest)))
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
    match method_of(&mount.kind) {
        Some(method) => method.handle(state, op, &mount, rest, params),
        None => Err(ApiError::UnsupportedPath(format!("auth/{path}"))),
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
    match method_of(&mount.kind) {
        Some(method) if method.is_login(rest) => method.login(
            state,
            LoginAt {
                mount_path: &mount_path,
                mount: &mount,
                rest,
                client,
            },
            params,
        ),
        _ => Err(ApiError::UnsupportedPath(path.to_owned())),
    }
}
