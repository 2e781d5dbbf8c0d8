//! Where each path goes: one match from the URL (after `/v1/`) to the room that
//! serves it, laid out as the URL is: `transit/*` in [`transit`], `auth/token/*`
//! in [`auth::token`], `sys/*` in [`sys`] (`sys/health` in [`sys::health`], seal
//! and status in [`sys::seal`]). The dispatcher in `crate::app` answers
//! `sys/health` and the unauthenticated `sys/` paths before any token check, and
//! `sys/seal` after it.

pub(crate) mod auth;
pub(crate) mod kv;
pub(crate) mod sys;
pub(crate) mod transit;

use crate::http::ApiResult;
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::tokens::TokenEntry;

/// Serves an authorised request for `path`.
pub(crate) fn route(
    state: &Unsealed,
    op: Operation,
    path: &str,
    params: &Params<'_>,
    token: &str,
    entry: &TokenEntry,
) -> ApiResult {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        ["transit", rest @ ..] => {
            let default = transit::Transit {
                engine: &state.engine,
                shared_cache_lifetime: state.shared_cache_lifetime,
                mount_path: "transit",
            };
            transit::route(&default, op, rest, params)
        }
        ["auth", "token", rest @ ..] => auth::token::route(state, op, rest, params, token, entry),
        ["auth", _, ..] => auth::route(state, op, path.strip_prefix("auth/").unwrap_or_default(), params),
        ["sys", rest @ ..] => sys::route(state, op, path, rest, params, entry),
        _ => match state.mounts.find(path) {
            Some((mount_path, mount)) if mount.kind == "kv" => {
                let rest = path.strip_prefix(mount_path.as_str()).unwrap_or_default();
                kv::route(state, op, &mount_path, &mount, rest.trim_start_matches('/'), params)
            }
            Some((mount_path, mount)) if mount.kind == "transit" => {
                let engine = state.transit_mounts.engine(&mount)?;
                let mounted = transit::Transit {
                    engine: &engine,
                    shared_cache_lifetime: state.shared_cache_lifetime,
                    mount_path: &mount_path,
                };
                let rest: Vec<&str> = path
                    .strip_prefix(mount_path.as_str())
                    .unwrap_or_default()
                    .trim_matches('/')
                    .split('/')
                    .collect();
                transit::route(&mounted, op, &rest, params)
            }
            _ => Err(crate::http::ApiError::NoRoute(path.trim_end_matches('/').to_owned())),
        },
    }
}

/// The type of the secrets engine serving `path` (`transit`, `kv`, `system`…), as
/// the audit log records it; empty for paths no engine serves (`auth/`).
pub(crate) fn mount_type(state: &Unsealed, path: &str) -> std::borrow::Cow<'static, str> {
    let first = path.split('/').next().unwrap_or_default();
    match first {
        // Every request asks: the built-in engines answer without a lookup.
        "transit" => "transit".into(),
        "sys" => "system".into(),
        "auth" => {
            let below = path.strip_prefix("auth/").unwrap_or_default();
            state
                .auth_methods
                .find(below)
                .map_or_else(|| "token".into(), |(_, mount)| mount.kind.into())
        }
        _ => state
            .mounts
            .find(path)
            .map_or_else(|| "".into(), |(_, mount)| mount.kind.into()),
    }
}
