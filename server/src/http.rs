//! Vault's HTTP conventions: the response envelope, error bodies and status codes,
//! and lenient reading of request parameters.
//!
//! Vault clients depend on details: vaultrs needs `request_id`, `lease_id`,
//! `renewable` and `lease_duration` on every 200; vault-ruby parses a body only when
//! the content type says JSON; errors are `{"errors": [...]}`; 5xx makes some clients
//! retry, so user errors must be 4xx. Parameters are coerced as Vault's framework
//! does: numbers may come as strings, booleans as `"true"`/`"1"`, durations as
//! seconds or `"1h"`; unknown parameters are ignored with a warning.

use std::cell::RefCell;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

/// A successful answer.
pub(crate) enum Reply {
    /// The logical envelope with `data` (status 200 unless said otherwise).
    Data {
        status: StatusCode,
        data: Value,
        warnings: Vec<String>,
    },
    /// 204, empty body.
    NoContent,
    /// A bare JSON object (`sys/health`, `sys/seal-status`), no envelope.
    Bare(StatusCode, Value),
    /// A complete JSON body, already serialised (the batch fast path).
    Json { status: StatusCode, body: String },
    /// The envelope with `data`, whose keys are also copied to the top level, as
    /// Vault does for some `sys/` paths that old clients read that way.
    SysData(Value),
}

impl Reply {
    /// The logical envelope around typed `data`, serialised directly to text.
    pub(crate) fn typed<T: serde::Serialize>(status: StatusCode, data: &T, warnings: Vec<String>) -> Self {
        #[derive(serde::Serialize)]
        struct Envelope<'a, T> {
            request_id: String,
            lease_id: &'static str,
            renewable: bool,
            lease_duration: u64,
            data: &'a T,
            wrap_info: Option<()>,
            warnings: Option<Vec<String>>,
            auth: Option<()>,
        }
        let envelope = Envelope {
            request_id: uuid::Uuid::new_v4().to_string(),
            lease_id: "",
            renewable: false,
            lease_duration: 0,
            data,
            wrap_info: None,
            warnings: (!warnings.is_empty()).then_some(warnings),
            auth: None,
        };
        match serde_json::to_string(&envelope) {
            Ok(body) => Self::Json { status, body },
            Err(_) => Self::Bare(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "errors": ["internal error"] }),
            ),
        }
    }

    pub(crate) fn data(data: Value, warnings: Vec<String>) -> Self {
        Self::Data {
            status: StatusCode::OK,
            data,
            warnings,
        }
    }
}

impl Reply {
    /// What the audit log records of this answer (strings get hashed there).
    pub(crate) fn audit_view(&self) -> Value {
        match self {
            Self::Data { data, .. } | Self::SysData(data) => json!({ "data": data }),
            Self::NoContent => json!({}),
            Self::Bare(_, body) => body.clone(),
            Self::Json { body, .. } => serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v.get("data").cloned())
                .map_or_else(|| json!({}), |data| json!({ "data": data })),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Self::Data { status, data, warnings } => {
                let body = json!({
                    "request_id": uuid::Uuid::new_v4().to_string(),
                    "lease_id": "",
                    "renewable": false,
                    "lease_duration": 0,
                    "data": data,
                    "wrap_info": null,
                    "warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) },
                    "auth": null,
                });
                (status, axum::Json(body)).into_response()
            }
            Self::NoContent => StatusCode::NO_CONTENT.into_response(),
            Self::Json { status, body } => {
                (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            Self::SysData(data) => {
                let mut body = json!({
                    "request_id": uuid::Uuid::new_v4().to_string(),
                    "lease_id": "", "renewable": false, "lease_duration": 0,
                    "data": data.clone(), "wrap_info": null, "warnings": null, "auth": null,
                });
                if let (Value::Object(top), Value::Object(data)) = (&mut body, data) {
                    for (k, v) in data {
                        top.entry(k).or_insert(v);
                    }
                }
                (StatusCode::OK, axum::Json(body)).into_response()
            }
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
    /// 405: the path exists but not for this method.
    UnsupportedOperation,
    /// 500; the message is fixed, details go to the log only.
    Internal,
    /// 503 while sealed.
    Sealed,
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
            Self::UnsupportedOperation => (
                StatusCode::METHOD_NOT_ALLOWED,
                vec!["1 error occurred:\n\t* unsupported operation\n\n".to_owned()],
            ),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, vec!["internal error".to_owned()]),
            Self::Sealed => (StatusCode::SERVICE_UNAVAILABLE, vec!["Vault is sealed".to_owned()]),
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
            Self::PermissionDenied => "permission denied".into(),
            Self::UnsupportedOperation => "unsupported operation".into(),
            Self::Internal => "internal error".into(),
            Self::Sealed => "Vault is sealed".into(),
        }
    }
}

impl From<encrypted_attr::Error> for ApiError {
    fn from(error: encrypted_attr::Error) -> Self {
        if error.is_user_error() {
            Self::BadRequest(error.to_string())
        } else {
            // Storage or randomness failed: log the kind, answer a fixed message.
            tracing::error!(error = %error, "engine failure");
            Self::Internal
        }
    }
}

/// The result type of every handler.
pub(crate) type ApiResult = Result<Reply, ApiError>;

/// Request parameters (JSON body, or query string for reads), read leniently; every
/// parameter not read by the handler ends up in the "ignored" warning.
pub(crate) struct Params<'a> {
    map: std::borrow::Cow<'a, Map<String, Value>>,
    used: RefCell<Vec<&'static str>>,
}

impl<'a> Params<'a> {
    pub(crate) fn new(map: Map<String, Value>) -> Self {
        Self {
            map: std::borrow::Cow::Owned(map),
            used: RefCell::new(Vec::new()),
        }
    }

    /// Parameters read from a map owned elsewhere (a `batch_input` item): no copy.
    pub(crate) fn borrowed(map: &'a Map<String, Value>) -> Self {
        Self {
            map: std::borrow::Cow::Borrowed(map),
            used: RefCell::new(Vec::new()),
        }
    }

    fn get(&self, name: &'static str) -> Option<&Value> {
        self.used.borrow_mut().push(name);
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// Every parameter as sent (for the audit log).
    pub(crate) fn map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// Whether the parameter was sent at all.
    pub(crate) fn has(&self, name: &'static str) -> bool {
        self.get(name).is_some()
    }

    /// A string (numbers and booleans are accepted in their text form).
    pub(crate) fn string(&self, name: &'static str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(type_error(name, "string")),
        }
    }

    /// A boolean: `true`/`false`, or the strings `"true"`, `"false"`, `"1"`, `"0"`, `"t"`, `"f"`.
    pub(crate) fn bool(&self, name: &'static str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" | "" => Ok(Some(false)),
                _ => Err(type_error(name, "bool")),
            },
            Some(_) => Err(type_error(name, "bool")),
        }
    }

    /// An integer (a JSON number or a numeric string).
    pub(crate) fn int(&self, name: &'static str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| type_error(name, "int")),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| type_error(name, "int")),
            Some(_) => Err(type_error(name, "int")),
        }
    }

    /// A duration: integer seconds, or a Go-style string (`"90s"`, `"30m"`, `"24h"`, `"1h30m"`).
    pub(crate) fn duration(&self, name: &'static str) -> Result<Option<Duration>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|s| Some(Duration::from_secs(s)))
                .ok_or_else(|| type_error(name, "duration")),
            Some(Value::String(s)) => parse_duration(s).map(Some).ok_or_else(|| type_error(name, "duration")),
            Some(_) => Err(type_error(name, "duration")),
        }
    }

    /// The raw value (for `batch_input`).
    pub(crate) fn raw(&self, name: &'static str) -> Option<&Value> {
        self.get(name)
    }

    /// Vault's warning for parameters nobody read.
    pub(crate) fn ignored_warning(&self) -> Option<String> {
        let used = self.used.borrow();
        let ignored: Vec<&str> = self
            .map
            .keys()
            .filter(|k| !used.contains(&k.as_str()))
            .map(String::as_str)
            .collect();
        (!ignored.is_empty()).then(|| {
            format!(
                "Endpoint ignored these unrecognized parameters: [{}]",
                ignored.join(" ")
            )
        })
    }
}

fn type_error(name: &str, expected: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "error converting input for field \"{name}\": expected {expected}"
    ))
}

/// Decodes standard base64 with Go's error wording.
pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    BASE64.decode(s).map_err(|e| match e {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("illegal base64 data at input byte {offset}")
        }
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("illegal base64 data at input byte {offset}")
        }
        _ => format!("illegal base64 data at input byte {}", s.len() / 4 * 4),
    })
}

/// Standard base64 with padding.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// `"1h30m"`, `"90s"`, `"2h"`, or plain seconds `"3600"`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return Some(Duration::ZERO);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0 // milliseconds: below Vault's resolution for these fields
            }
            'm' => 60,
            's' => 1,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    number.is_empty().then_some(Duration::from_secs(total))
}

/// A duration as Vault's warnings print it: `"767h59m59s"`, `"2h"`, `"90s"` → `"1m30s"`.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if value != 0 {
            out.push_str(&value.to_string());
            out.push(unit);
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(format_duration(Duration::from_secs(2000 * 3600)), "2000h");
        assert_eq!(format_duration(Duration::from_secs(768 * 3600 - 1)), "767h59m59s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn params_coerce_and_report_ignored() {
        let map = serde_json::from_value(json!({"a": "1", "b": "true", "c": 3, "zzz": 1})).unwrap_or_default();
        let p = Params::new(map);
        assert_eq!(p.int("a").ok().flatten(), Some(1));
        assert_eq!(p.bool("b").ok().flatten(), Some(true));
        assert_eq!(p.int("c").ok().flatten(), Some(3));
        assert!(p.bool("c").is_err());
        assert_eq!(
            p.ignored_warning().as_deref(),
            Some("Endpoint ignored these unrecognized parameters: [zzz]")
        );
    }

    #[test]
    fn base64_errors_use_gos_wording() {
        assert_eq!(
            decode_base64("ab*d").err().as_deref(),
            Some("illegal base64 data at input byte 2")
        );
        assert!(decode_base64("aGVsbG8=").is_ok());
    }
}
