//! Vault's HTTP conventions: the response envelope, error bodies and status codes
//! (request parameters are read in `params.rs`).
//!
//! Vault clients depend on details: vaultrs needs `request_id`, `lease_id`,
//! `renewable` and `lease_duration` on every 200; vault-ruby parses a body only when
//! the content type says JSON; errors are `{"errors": [...]}`; 5xx makes some clients
//! retry, so user errors must be 4xx.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

tokio::task_local! {
    /// The id of the request being handled: its audit entries, its log line and its
    /// response envelope carry the same one, as in Vault.
    pub(crate) static REQUEST_ID: std::sync::Arc<str>;
}

/// The current request's id (a fresh one outside a request).
pub(crate) fn request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.to_string())
        .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
}

/// A successful answer.
pub(crate) enum Reply {
    /// The logical envelope with `data` (status 200 unless said otherwise).
    Data {
        status: StatusCode,
        data: Value,
        warnings: Vec<String>,
    },
    /// The envelope with `data` and a lease (see [`Lease`]), 200.
    Leased {
        data: Value,
        lease: Lease,
        warnings: Vec<String>,
    },
    /// 204, empty body.
    NoContent,
    /// The envelope with a token just made or renewed in `auth`, and no data.
    Authenticated { auth: Value, warnings: Vec<String> },
    /// A bare JSON object (`sys/health`, `sys/seal-status`), no envelope.
    Bare(StatusCode, Value),
    /// The logical envelope with `data` written as JSON text by hand (the batch
    /// fast path: no `Value` tree for the client's answer).
    Written {
        status: StatusCode,
        data: Box<dyn HandWritten>,
        warnings: Vec<String>,
    },
    /// A body that is not JSON (`sys/metrics`), with its content type.
    Text {
        status: StatusCode,
        content_type: &'static str,
        body: String,
    },
    /// The envelope with `data`, whose keys are also copied to the top level, as
    /// Vault does for some `sys/` paths that old clients read that way.
    SysData { data: Value, warnings: Vec<String> },
}

/// The lease an answer carries: the envelope's `lease_id`, `renewable` and
/// `lease_duration` are written from this, and from nothing else.
#[derive(Debug)]
pub(crate) enum Lease {
    /// A duration with no lease behind it (a KV v1 read's `ttl`, as Vault gives it).
    Advisory(u64),
    /// A secret an engine just issued, which the pipeline registers with the
    /// lease manager before the answer leaves (it is never sent unregistered).
    Issued(SecretLease),
    /// A registered lease.
    Granted(LeaseGrant),
}

/// What an engine asks of the lease of a secret it issues.
#[derive(Clone)]
pub(crate) struct SecretLease {
    /// How long it lives, and the default increment of a renewal.
    pub(crate) ttl: std::time::Duration,
    /// The longest it may live from issue (the role's or mount's maximum; the
    /// lease manager caps it at the system's).
    pub(crate) max_ttl: std::time::Duration,
    pub(crate) renewable: bool,
    /// What the engine needs to renew or revoke it (a user name, say), sealed
    /// with the lease and given back to the engine only.
    pub(crate) internal: Value,
}

/// Never the engine's `internal` data.
impl std::fmt::Debug for SecretLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretLease")
            .field("ttl", &self.ttl)
            .field("max_ttl", &self.max_ttl)
            .field("renewable", &self.renewable)
            .finish_non_exhaustive()
    }
}

/// A lease as the envelope shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseGrant {
    pub(crate) id: String,
    pub(crate) renewable: bool,
    /// Seconds.
    pub(crate) duration: u64,
}

impl Lease {
    /// `(lease_id, renewable, lease_duration)` as the envelope writes them.
    fn fields(&self) -> (&str, bool, u64) {
        match self {
            Self::Advisory(seconds) => ("", false, *seconds),
            // Unreachable through the pipeline, which registers every issued
            // secret; shown as no lease rather than as one that does not exist.
            Self::Issued(_) => ("", false, 0),
            Self::Granted(grant) => (&grant.id, grant.renewable, grant.duration),
        }
    }
}

/// A reply's `data` that writes itself as JSON text, and gives the audit log the
/// same data as a value (built only when an audit device is enabled), so that
/// neither is made by parsing the other.
pub(crate) trait HandWritten: Send {
    /// Appends the `data` object as JSON text.
    fn write_json(&self, out: &mut String);
    /// The same `data`, as the audit log records it.
    fn audit_value(&self) -> Value;
    /// About how many bytes [`write_json`](HandWritten::write_json) appends.
    fn size_hint(&self) -> usize;
}

/// The logical envelope around hand-written `data`, as one JSON text.
fn written_envelope(data: &dyn HandWritten, warnings: &[String]) -> String {
    let mut body = String::with_capacity(data.size_hint() + 256);
    body.push_str("{\"request_id\":\"");
    if REQUEST_ID.try_with(|id| body.push_str(id)).is_err() {
        body.push_str(&request_id());
    }
    body.push_str("\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,\"data\":");
    data.write_json(&mut body);
    body.push_str(",\"wrap_info\":null,\"warnings\":");
    if warnings.is_empty() {
        body.push_str("null");
    } else {
        body.push_str(&json!(warnings).to_string());
    }
    body.push_str(",\"auth\":null}");
    body
}

impl Reply {
    /// `data` with a duration and no lease behind it (a KV v1 read), in seconds.
    pub(crate) fn leased(data: Value, lease_duration: u64) -> Self {
        Self::Leased {
            data,
            lease: Lease::Advisory(lease_duration),
            warnings: Vec::new(),
        }
    }

    /// A secret the engine issued, with the lease it asks for.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "issued by leasing engines; the only one yet is the tests' own")
    )]
    pub(crate) fn secret(data: Value, lease: SecretLease) -> Self {
        Self::Leased {
            data,
            lease: Lease::Issued(lease),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn data(data: Value, warnings: Vec<String>) -> Self {
        Self::Data {
            status: StatusCode::OK,
            data,
            warnings,
        }
    }

    /// A `sys/` answer whose data keys are also at the top level, no warnings.
    pub(crate) fn sys(data: Value) -> Self {
        Self::SysData {
            data,
            warnings: Vec::new(),
        }
    }
}

impl Reply {
    /// Adds the warning `warning` makes, if any (Vault's "ignored parameters" one,
    /// from the pipeline), to an answer with an envelope; answers without one
    /// (204, bare, text) have no place for it, as in Vault, and never make it.
    pub(crate) fn warn(mut self, warning: impl FnOnce() -> Option<String>) -> Self {
        match &mut self {
            Self::Data { warnings, .. }
            | Self::Leased { warnings, .. }
            | Self::Written { warnings, .. }
            | Self::SysData { warnings, .. }
            | Self::Authenticated { warnings, .. } => warnings.extend(warning()),
            Self::NoContent | Self::Bare(..) | Self::Text { .. } => {}
        }
        self
    }

    /// The HTTP status this answer is sent with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Data { status, .. }
            | Self::Written { status, .. }
            | Self::Text { status, .. }
            | Self::Bare(status, _) => *status,
            Self::Leased { .. } | Self::SysData { .. } | Self::Authenticated { .. } => StatusCode::OK,
            Self::NoContent => StatusCode::NO_CONTENT,
        }
    }

    /// What the audit log records of this answer (strings get hashed there).
    pub(crate) fn audit_view(&self) -> Value {
        match self {
            Self::Leased {
                data,
                lease: Lease::Granted(grant),
                ..
            } => json!({ "data": data, "secret": { "lease_id": grant.id } }),
            Self::Data { data, .. } | Self::SysData { data, .. } | Self::Leased { data, .. } => json!({ "data": data }),
            Self::NoContent | Self::Text { .. } => json!({}),
            Self::Authenticated { auth, .. } => json!({ "auth": auth }),
            Self::Bare(_, body) => body.clone(),
            Self::Written { data, .. } => json!({ "data": data.audit_value() }),
        }
    }
}

/// The logical envelope as a JSON value: `lease` is the `lease_id`, `renewable`
/// and `lease_duration` triple of [`Lease::fields`] (`NO_LEASE` for none).
fn envelope(lease: (&str, bool, u64), data: Value, warnings: Vec<String>, auth: Value) -> Value {
    let (lease_id, renewable, lease_duration) = lease;
    json!({
        "request_id": request_id(),
        "lease_id": lease_id,
        "renewable": renewable,
        "lease_duration": lease_duration,
        "data": data,
        "wrap_info": null,
        "warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) },
        "auth": auth,
    })
}

/// The envelope's lease fields of an answer without a lease.
const NO_LEASE: (&str, bool, u64) = ("", false, 0);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Self::Data { status, data, warnings } => {
                (status, axum::Json(envelope(NO_LEASE, data, warnings, Value::Null))).into_response()
            }
            Self::Leased { data, lease, warnings } => {
                let body = envelope(lease.fields(), data, warnings, Value::Null);
                (StatusCode::OK, axum::Json(body)).into_response()
            }
            Self::NoContent => StatusCode::NO_CONTENT.into_response(),
            Self::Text {
                status,
                content_type,
                body,
            } => (status, [(axum::http::header::CONTENT_TYPE, content_type)], body).into_response(),
            Self::Written { status, data, warnings } => {
                let body = written_envelope(&*data, &warnings);
                (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            Self::SysData { data, warnings } => {
                let mut body = envelope(NO_LEASE, data.clone(), warnings, Value::Null);
                if let (Value::Object(top), Value::Object(data)) = (&mut body, data) {
                    for (k, v) in data {
                        top.entry(k).or_insert(v);
                    }
                }
                (StatusCode::OK, axum::Json(body)).into_response()
            }
            Self::Authenticated { auth, warnings } => (
                StatusCode::OK,
                axum::Json(envelope(NO_LEASE, Value::Null, warnings, auth)),
            )
                .into_response(),
            Self::Bare(status, body) => (status, axum::Json(body)).into_response(),
        }
    }
}

/// A failed request, as Vault reports it.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400 with a message (validation, unknown key, bad ciphertext…).
    BadRequest(String),
    /// 404 with no message (read of a missing object, empty list).
    NotFound,
    /// 404 for a path nobody serves.
    UnsupportedPath(String),
    /// 403, Vault's exact wording.
    PermissionDenied,
    /// 403 for a login while its user or role ID is locked out: Vault answers
    /// this one as a bare "permission denied", not in its multi-error form.
    LockedOut,
    /// 404 with a message: the object named in the path does not exist.
    Missing(String),
    /// 404 for a path under no mount at all, in Vault's words.
    NoRoute(String),
    /// 405: the path exists but not for this method.
    UnsupportedOperation,
    /// 500; the message is fixed, details go to the log only.
    Internal,
    /// 500 with a message that holds no secret: an engine could not act on a
    /// secret it issued (a lease's revocation failed), which the operator must see.
    Failed(String),
    /// 503 while sealed.
    Sealed,
    /// 503: storage cannot be reached (the cause goes to the log). Never turned
    /// into "permission denied": clients retry a 503, not a 403.
    StorageUnavailable,
    /// 413: the request is larger or more complex than the server's limits.
    TooLarge(String),
    /// 415: a body of a content type this request cannot take.
    UnsupportedMediaType(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, errors) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, vec![message]),
            Self::NotFound => (StatusCode::NOT_FOUND, vec![]),
            Self::UnsupportedPath(path) => (
                StatusCode::NOT_FOUND,
                vec![format!("1 error occurred:\n\t* unsupported path: {path}\n\n")],
            ),
            Self::PermissionDenied => (
                StatusCode::FORBIDDEN,
                vec!["1 error occurred:\n\t* permission denied\n\n".to_owned()],
            ),
            Self::LockedOut => (StatusCode::FORBIDDEN, vec!["permission denied".to_owned()]),
            Self::Missing(message) => (StatusCode::NOT_FOUND, vec![message]),
            Self::NoRoute(path) => (
                StatusCode::NOT_FOUND,
                vec![format!("no handler for route {path:?}. route entry not found.")],
            ),
            Self::UnsupportedOperation => (
                StatusCode::METHOD_NOT_ALLOWED,
                vec!["1 error occurred:\n\t* unsupported operation\n\n".to_owned()],
            ),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, vec!["internal error".to_owned()]),
            Self::Failed(message) => (StatusCode::INTERNAL_SERVER_ERROR, vec![message]),
            Self::Sealed => (StatusCode::SERVICE_UNAVAILABLE, vec!["Vault is sealed".to_owned()]),
            Self::StorageUnavailable => (StatusCode::SERVICE_UNAVAILABLE, vec![STORAGE_UNAVAILABLE.to_owned()]),
            Self::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, vec![message]),
            Self::UnsupportedMediaType(message) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, vec![message]),
        };
        (status, axum::Json(json!({ "errors": errors }))).into_response()
    }
}

impl ApiError {
    /// The message the audit log records.
    pub(crate) fn audit_message(&self) -> String {
        match self {
            Self::BadRequest(m) => m.clone(),
            Self::NotFound => "not found".into(),
            Self::UnsupportedPath(p) => format!("unsupported path: {p}"),
            Self::PermissionDenied | Self::LockedOut => "permission denied".into(),
            Self::Missing(m) => m.clone(),
            Self::NoRoute(p) => format!("no handler for route {p:?}. route entry not found."),
            Self::UnsupportedOperation => "unsupported operation".into(),
            Self::Internal => "internal error".into(),
            Self::Sealed => "Vault is sealed".into(),
            Self::StorageUnavailable => STORAGE_UNAVAILABLE.into(),
            Self::TooLarge(m) | Self::UnsupportedMediaType(m) | Self::Failed(m) => m.clone(),
        }
    }
}

/// The error text of a 503 answered while storage cannot be reached.
pub(crate) const STORAGE_UNAVAILABLE: &str = "storage is unavailable; retry later";

/// True when `error` says storage could not be reached or read (an outage, worth
/// a retry), rather than that something is wrong with the data or the request.
pub(crate) fn is_storage_outage(error: &encrypted_attr::Error) -> bool {
    matches!(
        error,
        encrypted_attr::Error::Storage(_)
            | encrypted_attr::Error::Io { .. }
            | encrypted_attr::Error::StorageLocked { .. }
    )
}

impl From<encrypted_attr::Error> for ApiError {
    fn from(error: encrypted_attr::Error) -> Self {
        if error.is_user_error() {
            Self::BadRequest(error.to_string())
        } else if is_storage_outage(&error) {
            tracing::error!(error = %error, cause = crate::error::error_chain(&error), "storage unavailable");
            Self::StorageUnavailable
        } else {
            // Storage or randomness failed: log the kind, answer a fixed message.
            tracing::error!(error = %error, "engine failure");
            Self::Internal
        }
    }
}

/// The result type of every handler.
pub(crate) type ApiResult = Result<Reply, ApiError>;
