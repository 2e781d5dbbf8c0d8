//! Where each path goes: one match from the URL (after `/v1/`) to the handler that
//! serves it: `transit/*` in [`transit`]; `auth/token/*` in [`auth_token`];
//! `sys/*` (policies, audit devices, capabilities) in [`sys`]; `sys/health` in
//! [`health`]. The dispatcher in `crate::app` answers `sys/health`, `sys/init`,
//! `unseal` and `seal-status` before authentication (a sealed server has no tokens),
//! and `sys/seal` after it, from the state machine in `crate::seal`.

mod auth_token;
pub(crate) mod health;
mod sys;
pub(crate) mod transit;

use crate::auth::TokenEntry;
use crate::http::ApiResult;
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;

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
        ["transit", rest @ ..] => transit::route(state, op, rest, params),
        ["auth", "token", rest @ ..] => auth_token::token_api(state, op, rest, params, token, entry),
        ["sys", "policy"] | ["sys", "policies", "acl"] if matches!(op, Operation::Read | Operation::List) => {
            Ok(sys::policy_names(state))
        }
        ["sys", "policy", name] => sys::policy_api(state, op, name, params, "rules"),
        ["sys", "policies", "acl", name] => sys::policy_api(state, op, name, params, "policy"),
        ["sys", "audit"] if op == Operation::Read => Ok(sys::audit_devices(state)),
        ["sys", "audit", name] => sys::audit_device(state, op, name, params),
        ["sys", "audit-hash", name] if op == Operation::Update => sys::audit_hash(state, name, params),
        ["sys", "capabilities-self"] if op == Operation::Update => sys::capabilities_self(state, params, entry),
        _ => Err(crate::http::ApiError::UnsupportedPath(path.to_owned())),
    }
}
