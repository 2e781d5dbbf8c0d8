//! Vault's server configuration file (HCL or JSON), read into this server's
//! settings: `storage` (or the older word `backend`) `"postgresql" {
//! connection_url }` and `"file" { path }`, and `listener "tcp" { address,
//! tls_disable, tls_cert_file, tls_key_file }`. Every other setting is named in a
//! warning at start-up, never silently dropped; values are never printed.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::config::{ConfigFile, StorageConfig, TlsConfig};
use super::secret::SecretArg;
use crate::error::StartError;

/// What a Vault configuration file gave, and the settings it named that this
/// server does not apply.
pub(super) struct VaultConfig {
    pub(super) file: ConfigFile,
    pub(super) ignored: Vec<String>,
}

/// Whether `path` and `text` look like Vault's format rather than this server's
/// TOML: a `.hcl` or `.json` file, or blocks such as `storage "file" {`.
pub(super) fn is_vault_format(path: &std::path::Path, text: &str) -> bool {
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("hcl") || e.eq_ignore_ascii_case("json"));
    let by_text = ["storage \"", "backend \"", "listener \""]
        .iter()
        .any(|block| text.contains(block));
    by_name || by_text
}

/// Reads a Vault configuration file's text.
pub(super) fn parse(text: &str) -> Result<VaultConfig, StartError> {
    let invalid = |reason: String| StartError::Config(format!("invalid configuration: {reason}"));
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?
    } else {
        // The parser's message quotes the offending line, which may hold a
        // password (`connection_url`): only its position is reported.
        hcl::from_str(&one_attribute_per_line(text)).map_err(|e| {
            let message = e.to_string();
            let line: String = message
                .split("line ")
                .nth(1)
                .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
                .unwrap_or_default();
            let position = if line.is_empty() {
                String::new()
            } else {
                format!(" (line {line})")
            };
            invalid(format!("not valid HCL{position}"))
        })?
    };
    let Value::Object(top) = value else {
        return Err(invalid("expected blocks and settings".into()));
    };
    let mut file = ConfigFile::default();
    let mut ignored = Vec::new();
    let mut storages = 0;
    for (name, body) in top {
        match name.as_str() {
            "storage" | "backend" => {
                for (kind, settings) in blocks(&body) {
                    storages += 1;
                    read_storage(&kind, &settings, &mut file.storage, &mut ignored)?;
                }
            }
            "listener" => {
                let listeners = blocks(&body);
                if listeners.len() > 1 {
                    ignored.push("listener (all but the first)".to_owned());
                }
                if let Some((kind, settings)) = listeners.into_iter().next() {
                    read_listener(&kind, &settings, &mut file, &mut ignored)?;
                }
            }
            // A seal this server does not have would leave the storage weaker
            // than the operator configured: refused, not ignored.
            "seal" => {
                return Err(StartError::Config(
                    "a seal block is not supported: this server seals with Shamir shares only".into(),
                ));
            }
            other => ignored.push(other.to_owned()),
        }
    }
    if storages > 1 {
        return Err(StartError::Config(
            "the configuration names two storages; keep one".into(),
        ));
    }
    Ok(VaultConfig { file, ignored })
}

/// Vault's HCL (version 1) as the parser here (HCL 2) reads it. Vault accepts
/// several attributes on one line and a block on one line
/// (`listener "tcp" { address = "…" tls_disable = true }`), and a `}` right after
/// an attribute; HCL 2 wants each attribute on its own line. So a line break is
/// put after every `{`, before every `}`, and before an attribute that follows a
/// value on the same line — never inside a string, a comment, a heredoc or a
/// list. Line numbers in a parse error may then run ahead of the file's.
fn one_attribute_per_line(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 16);
    let mut i = 0;
    // Lists and calls may span lines already; nothing is inserted inside them.
    let mut brackets = 0usize;
    // Whether the current output line holds an `=` outside strings: a value has
    // started, so a following `name =` begins another attribute.
    let mut line_has_value = false;
    let mut heredoc: Option<String> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(end) = &heredoc {
            // Inside a heredoc, copied line by line until its terminator line.
            let next_line = (line_end(&chars, i) + 1).min(chars.len());
            let line: String = chars[i..next_line].iter().collect();
            if line.trim() == end.as_str() {
                heredoc = None;
            }
            out.push_str(&line);
            i = next_line;
            continue;
        }
        match c {
            '"' => {
                // A string, copied with its escapes.
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        out.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if chars[i - 1] == '"' || chars[i - 1] == '\n' {
                        break;
                    }
                }
                continue;
            }
            // A comment to the end of its line (`#` or `//`), copied as it is.
            '#' | '/' if c == '#' || chars.get(i + 1) == Some(&'/') => {
                let end = line_end(&chars, i);
                out.extend(&chars[i..end]);
                i = end;
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let end = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                    .map_or(chars.len(), |j| j + 2);
                out.extend(&chars[i..end]);
                i = end;
                continue;
            }
            '<' if chars.get(i + 1) == Some(&'<') => {
                let start = i + 2 + usize::from(chars.get(i + 2) == Some(&'-'));
                let end = line_end(&chars, start);
                let marker: String = chars[start..end].iter().collect::<String>().trim().to_owned();
                out.extend(&chars[i..end]);
                i = end;
                if !marker.is_empty() {
                    heredoc = Some(marker);
                    if i < chars.len() {
                        out.push('\n');
                        i += 1;
                    }
                }
                continue;
            }
            '[' | '(' => brackets += 1,
            ']' | ')' => brackets = brackets.saturating_sub(1),
            '\n' => line_has_value = false,
            '=' if brackets == 0 => line_has_value = true,
            '{' if brackets == 0 => {
                out.push(c);
                line_has_value = false;
                i += 1;
                let rest = chars[i..].iter().take_while(|c| **c == ' ' || **c == '\t').count();
                if !matches!(chars.get(i + rest), None | Some('\n' | '\r' | '#' | '}')) {
                    out.push('\n');
                }
                continue;
            }
            '}' if brackets == 0 => {
                if !out.rsplit('\n').next().unwrap_or("").trim().is_empty() {
                    out.push('\n');
                }
                line_has_value = false;
            }
            ' ' | '\t' if brackets == 0 && line_has_value && starts_attribute(&chars[i..]) => {
                out.push('\n');
                line_has_value = false;
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Where the line holding `chars[at]` ends (the index of its `\n`, or the end).
fn line_end(chars: &[char], at: usize) -> usize {
    chars[at..]
        .iter()
        .position(|&c| c == '\n')
        .map_or(chars.len(), |n| at + n)
}

/// Whether `rest` is blanks, then `name =` (not `==`): the start of an attribute.
fn starts_attribute(rest: &[char]) -> bool {
    let mut i = rest.iter().take_while(|c| **c == ' ' || **c == '\t').count();
    let name_start = i;
    while i < rest.len() && (rest[i].is_ascii_alphanumeric() || matches!(rest[i], '_' | '-')) {
        i += 1;
    }
    if i == name_start || !rest[name_start].is_ascii_alphabetic() && rest[name_start] != '_' {
        return false;
    }
    while i < rest.len() && (rest[i] == ' ' || rest[i] == '\t') {
        i += 1;
    }
    rest.get(i) == Some(&'=') && rest.get(i + 1) != Some(&'=')
}

/// `kind "label" { … }` blocks: HCL gives `{label: {…}}`, or a list of them when
/// a block appears more than once.
fn blocks(body: &Value) -> Vec<(String, Map<String, Value>)> {
    let objects: Vec<&Map<String, Value>> = match body {
        Value::Object(map) => vec![map],
        Value::Array(list) => list.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for object in objects {
        for (label, settings) in object {
            let settings = match settings {
                Value::Object(map) => map.clone(),
                Value::Array(list) => list.iter().filter_map(Value::as_object).flat_map(Map::clone).collect(),
                _ => Map::new(),
            };
            out.push((label.clone(), settings));
        }
    }
    out
}

fn text(settings: &Map<String, Value>, name: &str) -> Option<String> {
    match settings.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn read_storage(
    kind: &str,
    settings: &Map<String, Value>,
    storage: &mut StorageConfig,
    ignored: &mut Vec<String>,
) -> Result<(), StartError> {
    let known: &[&str] = match kind {
        "postgresql" => {
            let url = text(settings, "connection_url")
                .ok_or_else(|| StartError::Config("storage \"postgresql\" needs connection_url".into()))?;
            storage.postgres = Some(url.parse::<SecretArg>().unwrap_or_else(|never| match never {}));
            &["connection_url"]
        }
        "file" => {
            let path =
                text(settings, "path").ok_or_else(|| StartError::Config("storage \"file\" needs path".into()))?;
            // Vault's file storage is a directory; this server keeps one file in it.
            let path = PathBuf::from(path);
            let file = if path.is_dir() || path.extension().is_none() {
                path.join("encrypted-attr-storage.json")
            } else {
                path
            };
            storage.file = Some(file);
            &["path"]
        }
        other => {
            return Err(StartError::Config(format!(
                "storage {other:?} is not supported: use \"postgresql\" or \"file\""
            )));
        }
    };
    ignored.extend(
        settings
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| format!("storage \"{kind}\" {k}")),
    );
    Ok(())
}

/// A listener's `address`: `ip:port`, or `host:port` with a name such as
/// `localhost`, resolved now (its IPv4 address first, as Vault listens on).
fn listen_address(address: &str) -> Result<std::net::SocketAddr, StartError> {
    use std::net::ToSocketAddrs as _;
    let not_host_port = || StartError::Config(format!("listener \"tcp\" address {address:?} is not host:port"));
    if let Ok(parsed) = address.parse() {
        return Ok(parsed);
    }
    let resolved: Vec<std::net::SocketAddr> = address.to_socket_addrs().map_err(|_| not_host_port())?.collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(not_host_port)
}

fn read_listener(
    kind: &str,
    settings: &Map<String, Value>,
    file: &mut ConfigFile,
    ignored: &mut Vec<String>,
) -> Result<(), StartError> {
    if kind != "tcp" {
        return Err(StartError::Config(format!(
            "listener {kind:?} is not supported: use \"tcp\""
        )));
    }
    if let Some(address) = text(settings, "address") {
        file.listen = Some(listen_address(&address)?);
    }
    let tls_disabled = text(settings, "tls_disable").is_some_and(|v| matches!(v.as_str(), "true" | "1"));
    let cert = text(settings, "tls_cert_file");
    let key = text(settings, "tls_key_file");
    if !tls_disabled {
        let (Some(cert), Some(key)) = (cert, key) else {
            return Err(StartError::Config(
                "listener \"tcp\": give tls_cert_file and tls_key_file, or tls_disable = true".into(),
            ));
        };
        file.tls = Some(TlsConfig {
            cert: cert.into(),
            key: key.into(),
        });
    }
    // A TLS setting that asks for more than this listener gives (client
    // certificates, TLS 1.3 only, chosen ciphers) would leave it weaker than
    // configured: refused. Settings that relax or match what it does are named
    // in the warning like any other.
    if !tls_disabled {
        let demanding = |name: &str| match name {
            "tls_client_ca_file" | "tls_cipher_suites" => text(settings, name).is_some_and(|v| !v.is_empty()),
            "tls_require_and_verify_client_cert" => {
                text(settings, name).is_some_and(|v| matches!(v.as_str(), "true" | "1"))
            }
            "tls_min_version" => text(settings, name).is_some_and(|v| v == "tls13"),
            _ => false,
        };
        if let Some(tls) = settings.keys().find(|k| demanding(k)) {
            return Err(StartError::Config(format!(
                "listener \"tcp\" {tls} is not supported; remove it or use a proxy that applies it"
            )));
        }
    }
    // `telemetry { unauthenticated_metrics_access = true }`: scrapers need no token.
    let telemetry = match settings.get("telemetry") {
        Some(Value::Object(map)) => Some(map),
        Some(Value::Array(list)) => list.first().and_then(Value::as_object),
        _ => None,
    };
    if let Some(telemetry) = telemetry {
        if let Some(open) = text(telemetry, "unauthenticated_metrics_access") {
            file.metrics.unauthenticated_access = Some(matches!(open.as_str(), "true" | "1"));
        }
        ignored.extend(
            telemetry
                .keys()
                .filter(|k| *k != "unauthenticated_metrics_access")
                .map(|k| format!("listener \"tcp\" telemetry {k}")),
        );
    }
    let known = ["address", "tls_disable", "tls_cert_file", "tls_key_file", "telemetry"];
    ignored.extend(
        settings
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| format!("listener \"tcp\" {k}")),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listeners_telemetry_opens_metrics_without_a_token() {
        let read = parse(
            "listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_disable = 1\n  telemetry {\n    unauthenticated_metrics_access = true\n    disallow_metrics = false\n  }\n}\n",
        )
        .expect("parses");
        assert_eq!(read.file.metrics.unauthenticated_access, Some(true));
        assert!(
            read.ignored.iter().any(|i| i.contains("telemetry disallow_metrics")),
            "{:?}",
            read.ignored
        );
        let closed = parse("listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_disable = 1\n}\n").expect("parses");
        assert_eq!(closed.file.metrics.unauthenticated_access, None);
    }

    #[test]
    fn vaults_own_configuration_is_read_and_the_rest_named() {
        let config = parse(
            r#"
            ui = true
            disable_mlock = true
            api_addr = "https://vault.example:8200"
            storage "postgresql" {
              connection_url = "postgres://vault:secret-pw@db:5432/vault"
              max_parallel = 4
            }
            listener "tcp" {
              address     = "0.0.0.0:8200"
              tls_disable = "true"
              proxy_protocol_behavior = "use_always"
            }
            "#,
        )
        .expect("parses");
        assert_eq!(config.file.listen.map(|a| a.port()), Some(8200));
        assert!(config.file.tls.is_none());
        assert_eq!(
            config.file.storage.postgres.as_ref().map(SecretArg::expose),
            Some("postgres://vault:secret-pw@db:5432/vault")
        );
        let mut ignored = config.ignored.clone();
        ignored.sort();
        assert_eq!(
            ignored,
            [
                "api_addr",
                "disable_mlock",
                "listener \"tcp\" proxy_protocol_behavior",
                "storage \"postgresql\" max_parallel",
                "ui"
            ]
        );
        assert!(
            !config.ignored.iter().any(|i| i.contains("secret-pw")),
            "names only, never values"
        );
    }

    #[test]
    fn the_old_word_backend_json_and_tls() {
        let config = parse(
            "backend \"file\" {\n  path = \"/var/lib/vault/data\"\n}\n\
             listener \"tcp\" {\n  address = \"127.0.0.1:8201\"\n  tls_cert_file = \"c.pem\"\n  tls_key_file = \"k.pem\"\n}\n",
        )
        .expect("parses");
        assert_eq!(
            config.file.storage.file,
            Some(PathBuf::from("/var/lib/vault/data/encrypted-attr-storage.json"))
        );
        assert!(config.file.tls.is_some());
        let json = parse(r#"{"storage": {"file": {"path": "/tmp/x.json"}}, "listener": {"tcp": {"address": "127.0.0.1:8202", "tls_disable": true}}}"#)
            .expect("JSON parses");
        assert_eq!(json.file.storage.file, Some(PathBuf::from("/tmp/x.json")));
        assert!(
            parse(r#"listener "tcp" { address = "127.0.0.1:1" }"#).is_err(),
            "TLS or tls_disable"
        );
        assert!(parse(r#"storage "consul" { address = "x" }"#).is_err());
        assert!(parse("storage \"file\" {\n  path = \"a\"\n}\nbackend \"file\" {\n  path = \"b\"\n}\n").is_err());
        let relaxed = parse(
            "listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n  tls_disable_client_certs = true\n  tls_min_version = \"tls12\"\n}\n",
        )
        .expect("settings this listener meets are only named");
        assert_eq!(relaxed.ignored.len(), 2);
        assert!(
            parse("listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n  tls_require_and_verify_client_cert = true\n}\n")
                .is_err(),
            "client certificates it cannot ask for stop the start"
        );
        assert!(
            parse("listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_disable = true\n  tls_client_ca_file = \"ca\"\n}\n").is_ok(),
            "TLS settings of a listener without TLS change nothing"
        );
        assert!(is_vault_format(std::path::Path::new("vault.hcl"), ""));
    }

    #[test]
    fn vaults_one_line_blocks_and_host_names_are_read() {
        // What Vault's own HCL takes: a block on one line, a `}` on an attribute's
        // line, several attributes on a line, a host name for the address.
        let config = parse(concat!(
            "listener \"tcp\" { address = \"localhost:8200\" tls_disable = true }\n",
            "storage \"file\" {\n  path = \"/tmp/one = two {x}\" # a } in a comment\n}\n",
            "telemetry { disable_hostname = true }\n",
            "api_addr = \"http://127.0.0.1:8200\" ui = true\n",
        ))
        .expect("parses");
        assert_eq!(
            config.file.listen,
            Some("127.0.0.1:8200".parse().unwrap()),
            "localhost resolved to its IPv4 address"
        );
        assert!(config.file.tls.is_none(), "tls_disable read from the one-line block");
        assert_eq!(
            config.file.storage.file,
            Some(PathBuf::from("/tmp/one = two {x}/encrypted-attr-storage.json")),
            "strings are left whole"
        );
        assert!(config.ignored.contains(&"ui".to_owned()) && config.ignored.contains(&"api_addr".to_owned()));
        let closing =
            parse("listener \"tcp\" {\n  address = \"127.0.0.1:8201\"\n  tls_disable = true}\n").expect("parses");
        assert_eq!(closing.file.listen, Some("127.0.0.1:8201".parse().unwrap()));
        let listed = parse(
            "storage \"file\" {\n  path = \"/tmp/p\"\n}\nlistener \"tcp\" { address = \"127.0.0.1:1\" tls_disable = true }\nx = [\"a = b\", \"c\"]\n",
        )
        .expect("a list with '=' inside a string parses");
        assert!(listed.ignored.contains(&"x".to_owned()));
        assert_eq!(
            one_attribute_per_line("a = <<EOF\nb = c } {\nEOF\nd = 1\n"),
            "a = <<EOF\nb = c } {\nEOF\nd = 1\n",
            "heredocs pass as they are"
        );
        assert!(parse("listener \"tcp\" { address = \"no-such-host.invalid:1\" tls_disable = true }").is_err());
        assert!(is_vault_format(
            std::path::Path::new("server.conf"),
            "storage \"file\" {"
        ));
        assert!(!is_vault_format(
            std::path::Path::new("server.toml"),
            "[storage]\nfile = \"x\""
        ));
    }
}
