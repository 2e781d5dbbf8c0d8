//! The request pipeline: the router, and one request's way through it — health
//! and unauthenticated paths first, then the token, limits and body, the engine
//! and mount resolved once, audit, authorisation, the engine or `sys/` route,
//! metrics and Vault's envelope.
//!
//! Vault's API does not map onto method routing (the custom `LIST` verb, `?list=true`,
//! POST and PUT meaning the same, create-versus-update decided by the server), so one
//! handler reads the method and path and dispatches by path segments.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::http::{ApiError, REQUEST_ID};
use crate::params::Params;
use crate::request::{Operation, query_params, token_from};
use crate::routes::sys::seal as seal_routes;

use crate::state::AppState;

mod served;

use served::{Incoming, authenticated_request, login_request, metrics_reply, unauthenticated_request};

/// The router: every path under `/v1/` goes to the dispatcher. Every answer says
/// `Cache-Control: no-store`: tokens, keys and plaintexts must never sit in a cache.
pub fn app(state: Arc<AppState>) -> Router {
    let timeout = state.limits.request_timeout;
    Router::new()
        .route("/v1/{*path}", axum::routing::any(dispatch))
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::UnsupportedPath(String::new()) })
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(state)
}

/// The `tracing` target of the per-request log lines (off by default; enable with
/// `ENCRYPTED_ATTR_LOG=info,encrypted_attr::request=debug`).
pub const REQUEST_LOG_TARGET: &str = "encrypted_attr::request";

/// Handles one request and, when the request log is enabled, records it: method,
/// path (never the query string), status, duration and the id its audit entries
/// carry. Never a parameter, a token or a body.
async fn dispatch(State(state): State<Arc<AppState>>, request: axum::extract::Request) -> Response {
    answer(state, request).await
}

/// Answers one `/v1/…` request (also the UI's, made on its person's behalf).
pub(crate) async fn answer(state: Arc<AppState>, request: axum::extract::Request) -> Response {
    let started = std::time::Instant::now();
    // Decoded once, here: the metrics, the log, policies, mounts and storage all
    // see the same path.
    let path = match crate::request::decode_path(request.uri().path()) {
        Ok(path) => path,
        Err(error) => {
            let response = error.into_response();
            state
                .metrics
                .request("other", response.status(), started.elapsed().as_secs_f64());
            return response;
        }
    };
    let family = {
        // Only mounts and auth methods need the mount tables (and the seal's lock).
        let open = if path.starts_with("transit/") || path.starts_with("sys/") {
            None
        } else {
            state.seal.unsealed()
        };
        crate::routes::family(open.as_deref(), &path)
    };
    let response = answer_unmeasured(state.clone(), request, path).await;
    state
        .metrics
        .request(family, response.status(), started.elapsed().as_secs_f64());
    response
}

async fn answer_unmeasured(state: Arc<AppState>, request: axum::extract::Request, path: String) -> Response {
    let request_id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    if !tracing::enabled!(target: REQUEST_LOG_TARGET, tracing::Level::DEBUG) {
        return REQUEST_ID
            .scope(request_id.clone(), handle(state, request, path, request_id))
            .await;
    }
    // Copied only for the log line, when it is on.
    let (method, logged_path) = (request.method().clone(), request.uri().path().to_owned());
    let handled = handle(state, request, path, request_id.clone());
    let started = std::time::Instant::now();
    let response = REQUEST_ID.scope(request_id.clone(), handled).await;
    tracing::debug!(
        target: REQUEST_LOG_TARGET,
        request_id = %request_id,
        method = %method,
        path = logged_path,
        status = response.status().as_u16(),
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// A request's way, in one direction: what needs no body and no storage is
/// answered on the async worker (`sys/health` above all, so it stays live under
/// load); then the token is checked *before the body is read*; then the body is
/// read within the size limit, and everything that costs CPU or may wait on
/// storage (parsing, audit, policy, cryptography) runs on the blocking pool, at
/// most `max_concurrent_requests` at once.
async fn handle(state: Arc<AppState>, request: axum::extract::Request, path: String, request_id: Arc<str>) -> Response {
    let (parts, body) = request.into_parts();
    let client = crate::request::client_of(&parts.extensions);
    let query = query_params(&parts.uri);
    let list_query = query.get("list").and_then(Value::as_str).is_some_and(|v| v == "true");
    let op = match parts.method.as_str() {
        "GET" | "HEAD" if list_query => Operation::List,
        "GET" | "HEAD" => Operation::Read,
        "LIST" => Operation::List,
        "POST" | "PUT" => Operation::Update,
        "DELETE" => Operation::Delete,
        "PATCH" => Operation::Patch,
        _ => return ApiError::UnsupportedOperation.into_response(),
    };
    // As Vault: a PATCH body must say it is a JSON merge patch (the media type,
    // whatever its parameters and case; no type at all is a 400, as Go's MIME
    // parser answers it).
    if op == Operation::Patch {
        let media_type = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if media_type.is_empty() {
            return ApiError::BadRequest("mime: no media type".into()).into_response();
        }
        if media_type != MERGE_PATCH {
            return ApiError::UnsupportedMediaType(format!(
                "PATCH requires Content-Type of {MERGE_PATCH}, provided {media_type}"
            ))
            .into_response();
        }
    }
    let bare_path = path.trim_end_matches('/').to_owned();
    if bare_path == "sys/health" && op == Operation::Read {
        let mut query = query;
        query.remove("list");
        return crate::routes::sys::health::health(&state.seal, &Params::new(query), parts.method == Method::HEAD);
    }
    // Metrics open to scrapers without a token, as Vault's listener allows: not
    // audited (as in Vault), and cheap enough for the async worker.
    if bare_path == "sys/metrics" && op == Operation::Read && state.metrics_without_token {
        let mut query = query;
        query.remove("list");
        return metrics_reply(&state, &Params::new(query)).into_response();
    }
    // A path with an empty segment is refused before anything else (`.` and `..`
    // were, when it was decoded): policies match the path as sent, so
    // `secret//data/x` must not reach an engine that reads it as `secret/data/x`.
    if bare_path.split('/').any(str::is_empty) {
        return ApiError::UnsupportedPath(bare_path).into_response();
    }
    // Logins come without a token too, but are audited like any other request.
    let login = state
        .seal
        .unsealed()
        .is_some_and(|open| crate::routes::auth::is_login(&open, &bare_path, op));
    let unauthenticated = login || seal_routes::is_unauthenticated(&bare_path, op);
    let limits = state.limits;
    let mut token = None;
    if !unauthenticated {
        let Some(open) = state.seal.unsealed() else {
            return ApiError::Sealed.into_response();
        };
        let Some(presented) = token_from(&parts.headers).map(str::to_owned) else {
            return ApiError::PermissionDenied.into_response();
        };
        // Decided from memory when possible; a lookup in storage runs off the
        // async workers. Either way before a byte of the body is read.
        let checked = match open.tokens.check_cached(&presented) {
            Some(checked) => checked,
            None => {
                // A few lookups at a time: a flood of made-up tokens queues here,
                // holding no thread, instead of on the storage connection ahead of
                // everything else.
                let Ok(_lookup_turn) = state.token_lookups.acquire().await else {
                    return ApiError::Internal.into_response();
                };
                let lookup = presented.clone();
                match tokio::task::spawn_blocking(move || open.tokens.check(&lookup)).await {
                    Ok(checked) => checked,
                    Err(_) => return ApiError::Internal.into_response(),
                }
            }
        };
        match checked {
            Ok(Some(entry)) if entry.usable_from(client) => token = Some(presented),
            Ok(_) => return ApiError::PermissionDenied.into_response(),
            Err(error) => return ApiError::from(error).into_response(),
        }
    }
    // The body first, then a turn: a client that sends its body slowly holds
    // only its own connection (until the request timeout), never a turn.
    let body_limit = if unauthenticated {
        limits.max_unauthenticated_bytes
    } else {
        limits.max_request_bytes
    };
    let scan = matches!(op, Operation::Update | Operation::Patch).then(|| crate::limits::JsonScan::new(&limits));
    let body = match read_body(body, body_limit, scan).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let Ok(_permit) = state.work.acquire().await else {
        return ApiError::Internal.into_response();
    };
    // Claimed only by a request whose token passed: a flood of bad tokens must
    // not take the re-read of policies and audit devices and drop it.
    let reload_shared_state = token.is_some()
        && state
            .seal
            .unsealed()
            .is_some_and(|open| open.claim_shared_state_refresh());
    let head = parts.method == Method::HEAD;
    // The inline path re-checks the token from memory only (it must never wait on
    // storage); when memory cannot answer, the request goes to the blocking pool,
    // which re-checks it there.
    let mut rechecked = None;
    if let Some(presented) = &token
        && !reload_shared_state
        && state.answers_inline(op, &path, body.len())
        && let Some(open) = state.seal.unsealed()
    {
        match open.tokens.check_cached(presented) {
            // A token with a use limit spends a use in storage: never inline.
            Some(Ok(Some(entry))) if entry.num_uses != 0 => {}
            Some(Ok(Some(entry))) => rechecked = Some(entry),
            Some(Ok(None)) => return ApiError::PermissionDenied.into_response(),
            Some(Err(error)) => return ApiError::from(error).into_response(),
            None => {}
        }
    }
    let answers_inline = rechecked.is_some();
    let state = state.clone();
    let work = move || {
        REQUEST_ID.sync_scope(request_id.clone(), || {
            let request = Incoming {
                op,
                path: &path,
                query,
                body: &body,
                request_id: &request_id,
                client,
            };
            match token {
                None if login => login_request(&state, &request),
                None => unauthenticated_request(&state, &request),
                Some(token) => authenticated_request(&state, &request, &token, rechecked, reload_shared_state),
            }
        })
    };
    let mut response = if answers_inline {
        work()
    } else {
        match tokio::task::spawn_blocking(work).await {
            Ok(response) => response,
            Err(_) => ApiError::Internal.into_response(),
        }
    };
    if head {
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

/// Reads a request body of at most `limit` bytes, feeding its JSON to `scan` as it
/// arrives: a body over a limit is refused as soon as that shows, without reading
/// (or keeping) the rest.
async fn read_body(
    mut body: axum::body::Body,
    limit: usize,
    mut scan: Option<crate::limits::JsonScan>,
) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt as _;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ApiError::BadRequest("failed to read the request body".into()))?;
        let Ok(data) = frame.into_data() else { continue };
        if out.len() + data.len() > limit {
            return Err(ApiError::TooLarge(format!(
                "http: request body too large (this server accepts at most {limit} bytes)"
            )));
        }
        if let Some(scan) = &mut scan {
            scan.feed(&data).map_err(ApiError::TooLarge)?;
        }
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// The content type of a `PATCH` body (RFC 7396), which Vault requires.
const MERGE_PATCH: &str = "application/merge-patch+json";

/// Largest body of a request answered on the async worker that received it.
const INLINE_BODY_LIMIT: usize = 16 * 1024;

impl AppState {
    /// Whether a request can be answered on the async worker itself: a small
    /// transit data operation on a key in memory, with no shared state due for a
    /// re-read — microseconds of CPU and no storage. Handing such requests to a
    /// blocking thread cost more than the work (2.4× fewer encrypts per second);
    /// everything else (batches, key administration, tokens, policies, anything
    /// that may wait on storage) goes to the blocking pool.
    fn answers_inline(&self, op: Operation, path: &str, body_len: usize) -> bool {
        if op != Operation::Update || body_len > INLINE_BODY_LIMIT {
            return false;
        }
        let Some(open) = self.seal.unsealed() else { return false };
        // Only the built-in `transit/` is known without a mount-table lookup.
        let Some(resolved) = path
            .split('/')
            .next()
            .is_some_and(|first| first == crate::stores::mounts::TRANSIT_PATH)
            .then(|| crate::engines::resolve(&open, path))
            .flatten()
        else {
            return false;
        };
        resolved
            .engine
            .answers_inline(&open, &resolved.mounted(), resolved.rest(path))
    }
}

#[cfg(test)]
mod tests {
    use encrypted_attr::LocalEngine;
    use tower::ServiceExt as _;

    use super::*;

    const ROOT: &str = "metrics-root";

    async fn status_of(router: &Router, method: &str, path: &str, body: &str) -> StatusCode {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("X-Vault-Token", ROOT)
            .body(axum::body::Body::from(body.to_owned()))
            .expect("a valid request");
        router.clone().oneshot(request).await.expect("answered").status()
    }

    #[tokio::test]
    async fn a_request_no_audit_device_records_is_refused_and_counted() {
        let engine = Arc::new(LocalEngine::ephemeral().expect("engine"));
        let (state, _) = AppState::new(engine, Some(ROOT)).expect("state");
        let state = Arc::new(state);
        let router = app(state.clone());
        // /dev/full takes the open and refuses every write: the device is enabled,
        // and already the answer to that cannot be recorded.
        let enable = r#"{"type": "file", "options": {"file_path": "/dev/full"}}"#;
        assert_eq!(
            status_of(&router, "PUT", "/v1/sys/audit/full", enable).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let encrypt = r#"{"plaintext": "eA=="}"#;
        assert_eq!(
            status_of(&router, "POST", "/v1/transit/encrypt/k", encrypt).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let text = state.metrics.prometheus_text(false, true);
        assert!(text.contains("encrypted_attr_audit_failures_total 2"), "{text}");
        assert!(text.contains("encrypted_attr_requests_total{family=\"transit/encrypt\",status=\"500\"} 1"));
        // Nothing was encrypted: no items counted.
        assert!(!text.contains("encrypted_attr_transit_items_total{"), "{text}");
    }
}
