//! Where each path goes: one match from the URL (after `/v1/`) to the room that
//! serves it: `auth/token/*` in [`auth::token`], other `auth/*` in [`auth`],
//! `sys/*` in [`sys`], and everything else to the secrets engine mounted there
//! (`crate::engines`). The pipeline (`crate::pipeline`) answers `sys/health` and the
//! unauthenticated `sys/` paths before any token check, and `sys/seal` after it.

pub(crate) mod auth;
pub(crate) mod sys;

use crate::http::ApiResult;
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::tokens::TokenEntry;

/// Serves an authorised request for `path`, whose engine and mount, if any, are
/// `resolved` (`crate::engines::resolve_request`).
pub(crate) fn route(
    state: &Unsealed,
    op: Operation,
    path: &str,
    params: &Params<'_>,
    token: &str,
    entry: &TokenEntry,
    resolved: Option<&crate::engines::Resolved>,
) -> ApiResult {
    let mut segments = path.split('/');
    match (segments.next(), segments.next()) {
        (Some("auth"), Some("token")) => {
            let rest: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
            auth::token::route(state, op, &rest, params, token, entry)
        }
        (Some("auth"), Some(_)) => auth::route(state, op, path.strip_prefix("auth/").unwrap_or_default(), params),
        (Some("sys"), _) => {
            let rest: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
            sys::route(state, op, path, &rest, params, entry)
        }
        _ => match resolved {
            Some(resolved) => resolved
                .engine
                .handle(state, &resolved.mounted(), op, resolved.rest(path), params),
            // A list's path ends in `/` in Vault's texts.
            None => Err(crate::http::ApiError::NoRoute(match op {
                Operation::List => format!("{}/", path.trim_end_matches('/')),
                _ => path.trim_end_matches('/').to_owned(),
            })),
        },
    }
}

/// The type of the mount serving `path` (`transit`, `kv`, `system`, `userpass`…),
/// as the audit log records it: a secrets engine's from `resolved` (the request's
/// own resolution, so no second lookup), `sys/` and `auth/` from their paths;
/// empty for paths no mount serves.
pub(crate) fn mount_type(
    state: &Unsealed,
    path: &str,
    resolved: Option<&crate::engines::Resolved>,
) -> std::borrow::Cow<'static, str> {
    if let Some(resolved) = resolved {
        return resolved.engine.kind().into();
    }
    match path.split('/').next().unwrap_or_default() {
        "sys" => "system".into(),
        "auth" => {
            let below = path.strip_prefix("auth/").unwrap_or_default();
            state
                .auth_methods
                .find(below)
                .map_or_else(|| "token".into(), |(_, mount)| mount.kind.into())
        }
        _ => "".into(),
    }
}

/// The metric family of a request for `path`: the mount's type and the operation
/// below it, from fixed sets only (`transit/encrypt`, `kv/data`, `auth/userpass/login`,
/// `sys/policies`…); anything else is `other`.
pub(crate) fn family(open: Option<&Unsealed>, path: &str) -> &'static str {
    let mut segments = path.trim_end_matches('/').split('/');
    let first = segments.next().unwrap_or_default();
    let second = segments.next().unwrap_or_default();
    match first {
        "sys" => SYS_FAMILIES
            .iter()
            .find(|(segment, _)| *segment == second)
            .map_or("sys/other", |(_, family)| family),
        // The built-in token method is a path, not a mount of a kind.
        "auth" if second == "token" => "auth/token",
        "auth" => {
            let below = path.strip_prefix("auth/").unwrap_or_default();
            let method = open
                .and_then(|open| open.auth_methods.find(below))
                .and_then(|(_, mount)| auth::method_of(&mount.kind));
            let login = path.split('/').any(|s| s == "login");
            method.map_or("auth/other", |method| method.family(login))
        }
        // The built-in `transit/` is known sealed or not (no table lookup).
        crate::stores::mounts::TRANSIT_PATH => {
            crate::engines::SecretsEngine::family(&crate::engines::transit::Transit, second)
        }
        _ => match open.and_then(|open| crate::engines::resolve(open, path)) {
            Some(resolved) => resolved.engine.family(resolved.rest(path)),
            None => "other",
        },
    }
}

/// `sys/<segment>` paths and their families.
const SYS_FAMILIES: &[(&str, &str)] = &[
    ("health", "sys/health"),
    ("seal-status", "sys/seal"),
    ("seal", "sys/seal"),
    ("unseal", "sys/seal"),
    ("init", "sys/init"),
    ("policy", "sys/policies"),
    ("policies", "sys/policies"),
    ("audit", "sys/audit"),
    ("audit-hash", "sys/audit"),
    ("capabilities-self", "sys/capabilities"),
    ("mounts", "sys/mounts"),
    ("auth", "sys/auth"),
    ("leases", "sys/leases"),
    ("internal", "sys/internal"),
    ("metrics", "sys/metrics"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_come_from_fixed_sets_never_from_the_path() {
        assert_eq!(family(None, "transit/encrypt/customer-email"), "transit/encrypt");
        assert_eq!(family(None, "transit/keys/x/rotate"), "transit/keys");
        assert_eq!(family(None, "transit/made-up-1234"), "transit/other");
        assert_eq!(family(None, "sys/seal-status"), "sys/seal");
        assert_eq!(family(None, "sys/anything-else"), "sys/other");
        assert_eq!(family(None, "auth/token/lookup-self"), "auth/token");
        assert_eq!(family(None, "secret/data/a/b"), "other");
        assert_eq!(family(None, "9f8e7d"), "other");
    }
}
