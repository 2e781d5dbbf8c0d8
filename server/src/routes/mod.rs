//! Where each path goes: one match from the URL (after `/v1/`) to the room that
//! serves it, laid out as the URL is: `transit/*` in [`transit`], `auth/token/*`
//! in [`auth::token`], `sys/*` in [`sys`] (`sys/health` in [`sys::health`], seal
//! and status in [`sys::seal`]). The dispatcher in `crate::app` answers
//! `sys/health` and the unauthenticated `sys/` paths before any token check, and
//! `sys/seal` after it.

mod auth;
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
        ["transit", rest @ ..] => transit::route(state, op, rest, params),
        ["auth", "token", rest @ ..] => auth::token::route(state, op, rest, params, token, entry),
        ["sys", rest @ ..] => sys::route(state, op, path, rest, params, entry),
        _ => Err(crate::http::ApiError::UnsupportedPath(path.to_owned())),
    }
}
