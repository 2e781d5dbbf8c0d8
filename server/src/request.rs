//! What a request carries besides its body: its path, decoded once; the operation
//! its method asks for; the token from its headers; and its query parameters.

use axum::http::{HeaderMap, Uri};
use serde_json::{Map, Value};

use crate::http::ApiError;

/// The path of a `/v1/…` request below `/v1/`, percent-decoded once, as Vault
/// decodes it before routing: everything after this (policies, mounts, storage
/// names, listings) sees the path the client meant, so a rule naming
/// `secret/data/team a/*` applies to a request for `secret/data/team%20a/db`.
///
/// Refused with a 400: an escape that is not `%` and two hex digits, a path that
/// does not decode to UTF-8, a control character (NUL above all: C libraries and
/// logs would cut the path there), and a `.` or `..` segment (written or escaped).
///
/// # Errors
/// The path breaks one of those rules.
pub(crate) fn decode_path(uri_path: &str) -> Result<String, ApiError> {
    // Once: `/v1//v1/x` must stay a path with an empty segment, never become `x`.
    let raw = uri_path.strip_prefix("/v1/").unwrap_or_default();
    let bytes = raw.as_bytes();
    if let Some(at) = memchr::memchr(b'%', bytes) {
        let mut rest = &bytes[at..];
        while let Some(at) = memchr::memchr(b'%', rest) {
            let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
            if escape.len() < 3 || !escape[1].is_ascii_hexdigit() || !escape[2].is_ascii_hexdigit() {
                return Err(ApiError::BadRequest(format!(
                    "invalid URL escape {:?}",
                    String::from_utf8_lossy(escape)
                )));
            }
            rest = &rest[at + 3..];
        }
    }
    let path = percent_encoding::percent_decode(bytes)
        .decode_utf8()
        .map_err(|_| ApiError::BadRequest("the request path is not valid UTF-8 once decoded".into()))?
        .into_owned();
    if path.bytes().any(|b| b.is_ascii_control()) {
        return Err(ApiError::BadRequest(
            "the request path holds a control character (NUL, newline…), which no name may".into(),
        ));
    }
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(ApiError::BadRequest("relative paths not supported".into()));
    }
    Ok(path)
}

/// The address of the client that sent a request: the TCP peer of its
/// connection, put into the request's extensions by the accept loop. Never a
/// forwarded-for header: this server trusts no proxy to tell it (see
/// `docs/server.md`). Absent for requests that came through no socket (tests
/// driving the router), which CIDR-bound tokens and logins then refuse.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddress(pub(crate) std::net::IpAddr);

/// The client's address, if the request came through a socket.
pub(crate) fn client_of(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<ClientAddress>().map(|client| client.0)
}

/// What a request asks to do, from its method (and `?list=true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Read,
    List,
    Update,
    Delete,
    /// `PATCH` (a JSON merge patch; KV version 2's `data/` only).
    Patch,
}

pub(crate) fn token_from(headers: &HeaderMap) -> Option<&str> {
    if let Some(token) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(token);
    }
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

pub(crate) fn query_params(uri: &Uri) -> Map<String, Value> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), Value::String(percent_decode(v)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A query-string component: `+` is a space, escapes decoded (one that is not an
/// escape is kept as written, bytes that are not UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::decode_path;

    fn refused(path: &str) -> String {
        match decode_path(path) {
            Ok(decoded) => panic!("{path:?} decoded to {decoded:?}"),
            Err(error) => error.audit_message(),
        }
    }

    #[test]
    fn query_components_decode_plus_as_space_and_keep_broken_escapes() {
        assert_eq!(super::percent_decode("a+b%2Bc%20d"), "a b+c d");
        assert_eq!(super::percent_decode("50%"), "50%");
        assert_eq!(super::percent_decode("%zz%e9"), "%zz\u{fffd}");
    }

    #[test]
    fn paths_are_decoded_once_and_checked_after_decoding() {
        assert_eq!(
            decode_path("/v1/secret/data/team%20a/db").unwrap(),
            "secret/data/team a/db"
        );
        assert_eq!(decode_path("/v1/secret/data/caf%C3%A9").unwrap(), "secret/data/café");
        assert_eq!(decode_path("/v1/secret/data/caf%c3%a9").unwrap(), "secret/data/café");
        // Once: an escaped `%` stays a `%`.
        assert_eq!(decode_path("/v1/secret/data/50%2520").unwrap(), "secret/data/50%20");
        // An escaped slash separates segments, as in Vault.
        assert_eq!(decode_path("/v1/auth/up/users/u%2fx").unwrap(), "auth/up/users/u/x");
        // `+` is a plus in a path (a space only in a query string).
        assert_eq!(decode_path("/v1/kv/a+b").unwrap(), "kv/a+b");
        assert_eq!(decode_path("/v1/transit/keys").unwrap(), "transit/keys");
        assert_eq!(decode_path("/v1//v1/x").unwrap(), "/v1/x");
    }

    #[test]
    fn bad_escapes_relative_segments_and_control_characters_are_refused() {
        assert_eq!(refused("/v1/secret/data/x%"), "invalid URL escape \"%\"");
        assert_eq!(refused("/v1/secret/data/x%2"), "invalid URL escape \"%2\"");
        assert_eq!(refused("/v1/secret/data/x%zz/y"), "invalid URL escape \"%zz\"");
        assert_eq!(refused("/v1/secret/data/ok%20then%g1"), "invalid URL escape \"%g1\"");
        for relative in [
            "/v1/secret/data/%2e%2e/x",
            "/v1/secret/%2E/x",
            "/v1/a/../b",
            "/v1/a/./b",
            "/v1/a/%2e%2E",
        ] {
            assert_eq!(refused(relative), "relative paths not supported", "{relative}");
        }
        // `..` inside a name is a name.
        assert_eq!(decode_path("/v1/kv/a..b").unwrap(), "kv/a..b");
        assert!(refused("/v1/secret/data/a%00b").contains("control character"));
        assert!(refused("/v1/secret/data/a%0Ab").contains("control character"));
        assert!(refused("/v1/secret/data/%FF").contains("UTF-8"));
    }
}
