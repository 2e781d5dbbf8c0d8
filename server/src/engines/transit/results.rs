//! The answers of encrypt, decrypt and rewrap, single and batch: each item's
//! outcome, written as JSON text by hand (no `Value` tree for the client's
//! answer), and the same data as a value for the audit log.

use std::fmt::Write as _;

use axum::http::StatusCode;
use encrypted_attr::Ciphertext;
use encrypted_attr::wire_names::{BATCH_RESULTS, CIPHERTEXT, ERROR, KEY_VERSION, PLAINTEXT, REFERENCE};
use serde_json::{Map, Value, json};

use crate::http::{ApiError, ApiResult, HandWritten, Reply};

/// One item's result, or its error message and whether it is the caller's fault
/// (400) rather than ours (500).
pub(super) type ItemOutcome = Result<Done, (String, bool)>;

/// One item's successful result.
pub(super) enum Done {
    /// A ciphertext (encrypt, rewrap), shared with the engine's result.
    Sealed(Ciphertext),
    /// A plaintext, base64-encoded (decrypt).
    Opened(String),
}

/// Appends `s` as a JSON string that needs no escaping: a ciphertext
/// (`vault:v<N>:` and base64) or base64 text, both made here. Skipping the escape
/// scan matters: on large batches it was the single largest cost of the reply.
fn push_plain_json_str(out: &mut String, s: &str) {
    debug_assert!(!s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
    out.push('"');
    out.push_str(s);
    out.push('"');
}

/// Appends `"name":` (a wire name: nothing in it to escape).
fn push_key(out: &mut String, name: &str) {
    push_plain_json_str(out, name);
    out.push(':');
}

/// Appends any text as a JSON string, escaped.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::Value::from(s).to_string());
    } else {
        push_plain_json_str(out, s);
    }
}

impl Done {
    /// This result's fields, for the audit log.
    fn audit_fields(&self, into: &mut Map<String, Value>) {
        match self {
            Self::Sealed(ct) => {
                into.insert(CIPHERTEXT.into(), json!(ct.as_str()));
                into.insert(KEY_VERSION.into(), json!(ct.version().get()));
            }
            Self::Opened(plaintext) => {
                into.insert(PLAINTEXT.into(), json!(plaintext));
            }
        }
    }

    /// Appends this result's fields (no braces) to a JSON object being written.
    fn write_fields(&self, out: &mut String) {
        match self {
            Self::Sealed(ct) => {
                push_key(out, CIPHERTEXT);
                push_plain_json_str(out, ct.as_str());
                out.push(',');
                push_key(out, KEY_VERSION);
                let _ = write!(out, "{}", ct.version().get());
            }
            Self::Opened(plaintext) => {
                push_key(out, PLAINTEXT);
                push_plain_json_str(out, plaintext);
            }
        }
    }
}

/// The `data` of a batch answer: `batch_results`, one object per item in request
/// order. Written by hand (about 150 bytes per item) rather than through a `Value`
/// tree or serde: see `push_plain_json_str`.
struct BatchResults {
    results: Vec<ItemOutcome>,
    refs: Vec<String>,
    /// Decrypt's failed items carry `PLAINTEXT: ""`, as Vault's do.
    empty_plaintext_on_error: bool,
}

impl HandWritten for BatchResults {
    fn write_json(&self, data: &mut String) {
        data.push('{');
        push_key(data, BATCH_RESULTS);
        data.push('[');
        for (i, (result, reference)) in self.results.iter().zip(&self.refs).enumerate() {
            if i > 0 {
                data.push(',');
            }
            data.push('{');
            match result {
                Ok(done) => done.write_fields(data),
                Err((message, _)) => {
                    if self.empty_plaintext_on_error {
                        push_key(data, PLAINTEXT);
                        data.push_str("\"\",");
                    }
                    push_key(data, ERROR);
                    push_json_str(data, message);
                }
            }
            data.push(',');
            push_key(data, REFERENCE);
            push_json_str(data, reference);
            data.push('}');
        }
        data.push_str("]}");
    }

    fn audit_value(&self) -> Value {
        let items: Vec<Value> = self
            .results
            .iter()
            .zip(&self.refs)
            .map(|(result, reference)| {
                let mut item = Map::new();
                match result {
                    Ok(done) => done.audit_fields(&mut item),
                    Err((message, _)) => {
                        if self.empty_plaintext_on_error {
                            item.insert(PLAINTEXT.into(), json!(""));
                        }
                        item.insert(ERROR.into(), json!(message));
                    }
                }
                item.insert(REFERENCE.into(), json!(reference));
                Value::Object(item)
            })
            .collect();
        json!({ BATCH_RESULTS: items })
    }

    fn size_hint(&self) -> usize {
        self.results.len() * 160
    }
}

/// The `data` of a single item's answer.
struct SingleResult(Done);

impl HandWritten for SingleResult {
    fn write_json(&self, data: &mut String) {
        data.push('{');
        self.0.write_fields(data);
        data.push('}');
    }

    fn audit_value(&self) -> Value {
        let mut item = Map::new();
        self.0.audit_fields(&mut item);
        Value::Object(item)
    }

    fn size_hint(&self) -> usize {
        160
    }
}

pub(super) fn batch_reply(
    results: Vec<ItemOutcome>,
    refs: Vec<String>,
    status: StatusCode,
    empty_plaintext_on_error: bool,
) -> ApiResult {
    Ok(Reply::Written {
        status,
        data: Box::new(BatchResults {
            results,
            refs,
            empty_plaintext_on_error,
        }),
        warnings: Vec::new(),
    })
}

pub(super) fn single_reply(result: ItemOutcome) -> ApiResult {
    match result {
        Ok(done) => Ok(Reply::Written {
            status: StatusCode::OK,
            data: Box::new(SingleResult(done)),
            warnings: Vec::new(),
        }),
        Err((message, true)) => Err(ApiError::BadRequest(message)),
        Err((_, false)) => Err(ApiError::Internal),
    }
}
