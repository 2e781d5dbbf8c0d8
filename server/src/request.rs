//! What a request carries besides its body: the operation its method asks for, the
//! token from its headers, and its query parameters.

use axum::http::{HeaderMap, Uri};
use serde_json::{Map, Value};

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

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}
