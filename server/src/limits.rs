//! What one request may cost the server: body size, JSON complexity, batch size,
//! concurrent heavy requests, and how long a client may take — with defaults that
//! keep a request's peak memory in the tens of megabytes, settable in the
//! configuration file's `[limits]` table (`docs/server.md`).
//!
//! JSON complexity is checked by a scan of the raw bytes before anything is
//! parsed: a 30 MB body of ten million `{}` is refused after reading a few hundred
//! kilobytes of it, where a parser would first build ten million objects.

use std::time::Duration;

use serde::Deserialize;

/// Largest request body accepted by default (Vault's default `max_request_size`);
/// see [`Limits::max_request_bytes`].
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Longest a request may take by default before the server answers 408; see
/// [`Limits::request_timeout`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// The limits a server enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes (Vault's default `max_request_size`, 32 MiB).
    pub max_request_bytes: usize,
    /// Largest body of the unauthenticated endpoints (`sys/init`, `sys/unseal`).
    pub max_unauthenticated_bytes: usize,
    /// Most JSON values (objects, arrays, strings, numbers, literals, keys
    /// included) in one body.
    pub max_json_values: usize,
    /// Deepest nesting of JSON objects and arrays.
    pub max_json_depth: usize,
    /// Most items in one `batch_input`.
    pub max_batch_items: usize,
    /// Most requests whose work (parsing, cryptography, storage) runs at once; the
    /// others wait for a turn, holding only their connection. The work is CPU-bound
    /// (storage is one connection per server), so a few per core keep every core
    /// busy; more only add threads, each with its own allocator heap (64 at once
    /// grew the server to 290 threads and 240 MiB under load).
    pub max_concurrent_requests: usize,
    /// Most open client connections; more wait in the listen queue.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers, counted from when
    /// the server starts waiting for them: so also how long an idle keep-alive
    /// connection is kept open.
    #[serde(with = "seconds")]
    pub header_read_timeout: Duration,
    /// Longest a request may take, body included, before the server answers 408.
    #[serde(with = "seconds")]
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: MAX_REQUEST_BYTES,
            max_unauthenticated_bytes: 64 * 1024,
            max_json_values: 250_000,
            max_json_depth: 64,
            max_batch_items: 10_000,
            max_concurrent_requests: std::thread::available_parallelism()
                .map_or(8, |cores| 4 * cores.get())
                .clamp(8, 256),
            max_connections: 4_096,
            header_read_timeout: Duration::from_secs(20),
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Durations in the configuration file are whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

/// Checks that `body` stays within the JSON limits, without parsing it (see
/// [`JsonScan`]).
///
/// # Errors
/// Which limit the body exceeds (the message names the setting).
#[cfg(test)]
pub(crate) fn check_json(body: &[u8], limits: &Limits) -> Result<(), String> {
    JsonScan::new(limits).feed(body)
}

/// Counts JSON values and nesting over a body as its bytes arrive, and stops at
/// the first excess: so a body that is too complex is refused after reading only
/// as much of it as proves it. Syntax is left to the parser; this only bounds what
/// the parser would build.
pub(crate) struct JsonScan {
    max_values: usize,
    max_depth: usize,
    values: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Inside a number or a literal (`true`, `null`…): counted once, at its start.
    in_scalar: bool,
}

impl JsonScan {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            max_values: limits.max_json_values,
            max_depth: limits.max_json_depth,
            values: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            in_scalar: false,
        }
    }

    /// Scans the next bytes of the body.
    ///
    /// # Errors
    /// Which limit the body exceeds (the message names the setting).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut at = 0;
        while at < bytes.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    at += 1;
                    continue;
                }
                // Most of a body is string contents (base64 plaintexts and
                // ciphertexts): jump to the next quote or backslash.
                match memchr::memchr2(b'"', b'\\', &bytes[at..]) {
                    None => return Ok(()),
                    Some(offset) => {
                        at += offset;
                        if bytes[at] == b'"' {
                            self.in_string = false;
                        } else {
                            self.escaped = true;
                        }
                        at += 1;
                        continue;
                    }
                }
            }
            let byte = bytes[at];
            at += 1;
            let starts_value = match byte {
                b'"' => {
                    self.in_string = true;
                    self.in_scalar = false;
                    true
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > self.max_depth {
                        return Err(format!(
                            "refused JSON input due to high complexity: nesting deeper than {} (max_json_depth)",
                            self.max_depth
                        ));
                    }
                    self.in_scalar = false;
                    true
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.in_scalar = false;
                    false
                }
                b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => {
                    self.in_scalar = false;
                    false
                }
                _ => !std::mem::replace(&mut self.in_scalar, true),
            };
            if starts_value {
                self.values += 1;
                if self.values > self.max_values {
                    return Err(format!(
                        "refused JSON input due to high complexity: more than {} values (max_json_values)",
                        self.max_values
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(values: usize, depth: usize) -> Limits {
        Limits {
            max_json_values: values,
            max_json_depth: depth,
            ..Limits::default()
        }
    }

    #[test]
    fn values_are_counted_once_each() {
        // {"a": "x", "b": [1, true, null], "c": {}} → 1 + a,"x" + b,[,1,true,null + c,{} = 10
        let body = br#"{"a": "x", "b": [1, true, null], "c": {}}"#;
        assert!(check_json(body, &limits(10, 8)).is_ok());
        assert!(check_json(body, &limits(9, 8)).is_err());
        // Escaped quotes and brackets inside strings are not structure.
        let body = br#"{"k\"[{": "v\\\"}]"}"#;
        // The same body fed a byte at a time scans the same.
        let mut scan = JsonScan::new(&limits(3, 1));
        assert!(body.iter().all(|b| scan.feed(&[*b]).is_ok()));
        assert!(check_json(body, &limits(3, 1)).is_ok());
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let error = check_json(deep.as_bytes(), &Limits::default()).unwrap_err();
        assert!(error.contains("max_json_depth"), "{error}");
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(check_json(ok.as_bytes(), &Limits::default()).is_ok());
    }

    #[test]
    fn a_flood_of_empty_objects_stops_early() {
        let mut body = b"{\"batch_input\":[".to_vec();
        for _ in 0..300_000 {
            body.extend_from_slice(b"{},");
        }
        body.extend_from_slice(b"{}]}");
        let error = check_json(&body, &Limits::default()).unwrap_err();
        assert!(error.contains("max_json_values"), "{error}");
    }
}
