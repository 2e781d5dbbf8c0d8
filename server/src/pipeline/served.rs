//! The blocking half of a request's way, once its body is in: parameters, the
//! engine and mount resolved once, audit, authorisation, the engine or `sys/`
//! route, Vault's ignored-parameters warning, lease registration, metrics.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::authorize::authorize;
use crate::http::ApiError;
use crate::limits::Limits;
use crate::params::{Params, Reads};
use crate::request::Operation;
use crate::routes::sys::seal as seal_routes;
use crate::seal::Unsealed;
use crate::state::AppState;
use crate::stores::tokens::TokenEntry;

/// What the blocking part of a request works on.
pub(super) struct Incoming<'a> {
    pub(super) op: Operation,
    pub(super) path: &'a str,
    pub(super) query: Map<String, Value>,
    pub(super) body: &'a [u8],
    pub(super) request_id: &'a str,
    /// Where it came from (see [`crate::request::ClientAddress`]).
    pub(super) client: Option<std::net::IpAddr>,
}

impl Incoming<'_> {
    /// The parameters: the body of a write (within the JSON limits), else the query.
    fn params(&self, limits: &Limits) -> Result<Params<'_>, ApiError> {
        if !matches!(self.op, Operation::Update | Operation::Patch) {
            let mut query = self.query.clone();
            query.remove("list");
            return Ok(Params::new(query));
        }
        let params = Params::from_body(self.body)?;
        if params.batch_len() > limits.max_batch_items {
            return Err(ApiError::TooLarge(format!(
                "batch_input has {} items; this server accepts at most {} per request (max_batch_items)",
                params.batch_len(),
                limits.max_batch_items
            )));
        }
        Ok(params)
    }
}

/// Status, init and unseal: answered without a token, as in Vault.
pub(super) fn unauthenticated_request(state: &AppState, request: &Incoming<'_>) -> Response {
    let params = match request.params(&state.limits) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    seal_routes::unauthenticated(&state.seal, request.op, request.path.trim_end_matches('/'), &params).into_response()
}

/// A login: no token to check; audited (the new token HMAC'd in the response
/// line), then served by the auth method.
pub(super) fn login_request(state: &AppState, request: &Incoming<'_>) -> Response {
    let Some(open) = state.seal.unsealed() else {
        return ApiError::Sealed.into_response();
    };
    let params = match request.params(&state.limits) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let path = request.path.trim_end_matches('/');
    // A login is always below `auth/`: no secrets engine to resolve.
    let mount_type = crate::routes::mount_type(&open, path, None);
    let audited = crate::audit::AuditRequest {
        id: request.request_id,
        operation: "update",
        path,
        mount_type: &mount_type,
        token: "",
        accessor: "",
        policies: &[],
        data: &params,
    };
    if !open.audit.log_request(&audited) {
        state.metrics.audit_failure();
        return ApiError::Internal.into_response();
    }
    let result = crate::routes::auth::login(&open, path, &params, request.client)
        .map(|reply| reply.warn(|| params.ignored_warning()));
    answer_audited(state, &open, &audited, result)
}

/// The answer to an audited request, once a device recorded it (withheld with a
/// 500 when none could: fail closed).
fn answer_audited(
    state: &AppState,
    open: &Unsealed,
    audited: &crate::audit::AuditRequest<'_>,
    result: crate::http::ApiResult,
) -> Response {
    let logged = match &result {
        Ok(reply) => open.audit.log_response(audited, || reply.audit_view(), ""),
        Err(error) => open.audit.log_response(audited, || json!({}), &error.audit_message()),
    };
    if !logged {
        state.metrics.audit_failure();
        return ApiError::Internal.into_response();
    }
    match result {
        Ok(reply) => reply.into_response(),
        Err(error) => error.into_response(),
    }
}

/// A request whose token was accepted: audit, policy, route, audit. `rechecked`
/// is the token's entry if it was just checked again (the inline path); otherwise
/// it is checked again here, storage allowed.
pub(super) fn authenticated_request(
    state: &AppState,
    request: &Incoming<'_>,
    token: &str,
    rechecked: Option<TokenEntry>,
    reload_shared_state: bool,
) -> Response {
    let Some(open) = state.seal.unsealed() else {
        return ApiError::Sealed.into_response();
    };
    if reload_shared_state {
        open.reload_shared_state();
    }
    // Checked again now: the request may have waited for its body and a turn, and
    // a token revoked or expired meanwhile must not act.
    let still_valid = match rechecked {
        Some(entry) => Ok(Some(entry)),
        None => open.tokens.check(token),
    };
    let mut entry = match still_valid {
        Ok(Some(entry)) if entry.usable_from(request.client) => entry,
        Ok(_) => return ApiError::PermissionDenied.into_response(),
        Err(error) => return ApiError::from(error).into_response(),
    };
    // A token with a use limit spends one now, in storage (exact across servers);
    // the request that takes its last use is served, then the token is revoked.
    let mut last_use = false;
    if entry.num_uses != 0 {
        match open.tokens.use_once(token) {
            Ok(Some(used)) => {
                last_use = used.num_uses < 0;
                entry = used;
            }
            Ok(None) => return ApiError::PermissionDenied.into_response(),
            Err(error) => return ApiError::from(error).into_response(),
        }
    }
    let response = authorized_request(state, &open, request, token, &entry);
    if last_use && let Err(error) = open.tokens.revoke(token) {
        // Refused already (its entry says its uses are spent); the entry is
        // removed by the next revocation that reaches it.
        tracing::error!(%error, "a token whose last use was taken could not be revoked");
    }
    response
}

/// The rest of [`authenticated_request`] once the token's entry is settled.
fn authorized_request(
    state: &AppState,
    open: &Arc<Unsealed>,
    request: &Incoming<'_>,
    token: &str,
    entry: &TokenEntry,
) -> Response {
    let params = match request.params(&state.limits) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let (op, path) = (request.op, request.path);
    // The engine and mount, found once: audit, authorisation, routing and
    // metrics all take this.
    let resolved = crate::engines::resolve_request(open, path);
    // Audit first: with devices enabled, nothing runs unless a device recorded it.
    let mount_type = crate::routes::mount_type(open, path, resolved.as_ref());
    let audited = crate::audit::AuditRequest {
        id: request.request_id,
        operation: match op {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Patch => "patch",
        },
        path: path.trim_end_matches('/'),
        mount_type: &mount_type,
        token,
        accessor: &entry.accessor,
        policies: &entry.policies,
        data: &params,
    };
    if !open.audit.log_request(&audited) {
        state.metrics.audit_failure();
        return ApiError::Internal.into_response();
    }
    let result = match authorize(open, op, path, entry, resolved.as_ref()) {
        Err(error) => Err(error),
        Ok(()) if path.trim_end_matches('/') == "sys/seal" && op == Operation::Update => seal_routes::seal(&state.seal),
        Ok(()) if path.trim_end_matches('/') == "sys/metrics" && op == Operation::Read => {
            Ok(metrics_reply(state, &params))
        }
        Ok(()) => crate::routes::route(open, op, path, &params, token, entry, resolved.as_ref()),
    };
    // Vault's warning for what was sent and not declared, after the endpoint's own.
    let result = result.map(|reply| reply.warn(|| params.ignored_warning()));
    // A secret issued with a lease leaves only once its lease is stored.
    let result = crate::engines::register_issued(open, resolved.as_ref(), path.trim_end_matches('/'), entry, result);
    // A batch with failed items answers `Ok` with a 4xx or 5xx: only answers sent
    // as a success count.
    if result.as_ref().is_ok_and(|reply| reply.status().is_success())
        && let Some(resolved) = &resolved
    {
        resolved.engine.count(&state.metrics, op, resolved.rest(path), &params);
    }
    answer_audited(state, open, &audited, result)
}

/// `GET sys/metrics`: Prometheus's text with `format=prometheus`, Vault's texts for
/// any other format (this server keeps no in-memory JSON summary; see
/// `docs/server.md`).
pub(super) fn metrics_reply(state: &AppState, params: &Params<'_>) -> crate::http::Reply {
    params.declare(&Reads(&[&["format"]]));
    let format = params.string("format").ok().flatten().unwrap_or_default();
    if format != "prometheus" {
        let body = if format.is_empty() {
            "metric response format \"\" unknown: this server gives its metrics with format=prometheus".to_owned()
        } else {
            format!("metric response format {format:?} unknown")
        };
        return crate::http::Reply::Text {
            status: StatusCode::BAD_REQUEST,
            content_type: "text/plain",
            body,
        };
    }
    let initialized = state.seal.is_initialized();
    crate::http::Reply::Text {
        status: StatusCode::OK,
        content_type: crate::metrics::PROMETHEUS_CONTENT_TYPE,
        body: state
            .metrics
            .prometheus_text(state.seal.unsealed().is_none(), initialized),
    }
}
