//! The remote transit engine: Vault's transit HTTP API over reqwest (rustls), with
//! a blocking face ([`TransitEngine`]) and an async face ([`AsyncTransitEngine`]).
//!
//! It talks to the `encrypted-attr` server, to HashiCorp Vault and to OpenBao alike.
//! Requests are built and responses parsed by plain functions (no I/O); the two
//! faces differ only in how they send. Connection errors are retried with backoff on
//! every operation; 5xx answers only on operations that are safe to repeat (data
//! operations and reads, not rotate or config); 4xx is never retried.
//!
//! The blocking face must not be called from inside an async runtime (it would
//! block the runtime's thread): it returns [`Error::BlockingInAsync`] there instead.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::cipher::{HashAlgorithm, KeyType};
use crate::ciphertext::Ciphertext;
use crate::engine::{
    AsyncTransitEngine, BatchResult, DataKey, DataKeyRequest, DecryptItem, EncryptItem, ExportKind, ExportedKey,
    HmacItem, HmacTag, RewrapItem, TransitEngine, VerifyHmacItem,
};
use crate::error::{Error, Result};
use crate::keyring::{KeyConfig, KeyInfo, KeyOptions};
use crate::name::{KeyName, KeyVersion};
use crate::secret::{Plaintext, SecretBytes};

/// How to reach a transit server.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base address, e.g. `http://127.0.0.1:8200` (no `/v1`).
    pub address: String,
    /// The token sent as `X-Vault-Token`.
    pub token: Zeroizing<String>,
    /// The transit mount path (default `transit`).
    pub mount: String,
    /// Per-request timeout (default 30 s).
    pub timeout: Duration,
    /// Attempts for a retryable failure, the first included (default 3).
    pub attempts: u32,
    /// Extra trusted CA certificate (PEM), for a server with a private CA.
    pub ca_certificate_pem: Option<Vec<u8>>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("address", &self.address)
            .field("token", &"[REDACTED]")
            .field("mount", &self.mount)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("ca_certificate_pem", &self.ca_certificate_pem.as_ref().map(|_| "…"))
            .finish()
    }
}

impl ClientConfig {
    /// A configuration for `address` with `token`.
    #[must_use]
    pub fn new(address: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            address: address.into().trim_end_matches('/').to_owned(),
            token: Zeroizing::new(token.into()),
            mount: "transit".to_owned(),
            timeout: Duration::from_secs(30),
            attempts: 3,
            ca_certificate_pem: None,
        }
    }

    /// Trusts `pem` (a CA or self-signed certificate) in addition to the system's.
    #[must_use]
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificate_pem = Some(pem.into());
        self
    }

    /// From `VAULT_ADDR` (or `ENCRYPTED_ATTR_ADDR`) and `VAULT_TOKEN` (or
    /// `ENCRYPTED_ATTR_TOKEN`).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] if either is missing.
    pub fn from_env() -> Result<Self> {
        let var = |a: &str, b: &str| std::env::var(a).or_else(|_| std::env::var(b));
        let address = var("ENCRYPTED_ATTR_ADDR", "VAULT_ADDR").map_err(|_| Error::invalid("VAULT_ADDR is not set"))?;
        let token = var("ENCRYPTED_ATTR_TOKEN", "VAULT_TOKEN").map_err(|_| Error::invalid("VAULT_TOKEN is not set"))?;
        Ok(Self::new(address, token))
    }

    /// Sets the transit mount path.
    #[must_use]
    pub fn mount(mut self, mount: impl Into<String>) -> Self {
        self.mount = mount.into().trim_matches('/').to_owned();
        self
    }

    /// Sets the number of attempts for retryable failures.
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }
}

/// A transit engine on the other side of HTTP.
pub struct RemoteEngine {
    config: ClientConfig,
    async_client: reqwest::Client,
    blocking_client: OnceLock<std::result::Result<reqwest::blocking::Client, String>>,
}

impl fmt::Debug for RemoteEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteEngine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn install_crypto_provider() {
    // Err means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn transport(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Transport(Box::new(e))
}

impl RemoteEngine {
    /// A client for `config`.
    ///
    /// # Errors
    /// [`Error::Transport`] if the HTTP client cannot be built (TLS set-up).
    pub fn new(config: ClientConfig) -> Result<Self> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder().timeout(config.timeout);
        if let Some(pem) = &config.ca_certificate_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).map_err(transport)?);
        }
        let async_client = builder.build().map_err(transport)?;
        Ok(Self {
            config,
            async_client,
            blocking_client: OnceLock::new(),
        })
    }

    fn blocking(&self) -> Result<&reqwest::blocking::Client> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsync);
        }
        let client = self.blocking_client.get_or_init(|| {
            let mut builder = reqwest::blocking::Client::builder().timeout(self.config.timeout);
            if let Some(pem) = &self.config.ca_certificate_pem {
                builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).map_err(|e| e.to_string())?);
            }
            builder.build().map_err(|e| e.to_string())
        });
        client.as_ref().map_err(|e| Error::Transport(e.clone().into()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}/{}", self.config.address, self.config.mount, path)
    }

    fn send_blocking(&self, call: &Call) -> Result<Reply> {
        let client = self.blocking()?;
        let method = call.method();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = client
                .request(method.clone(), self.url(&call.path))
                .header("X-Vault-Token", self.config.token.as_str())
                .header("X-Vault-Request", "true");
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let outcome = match request.send() {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let bytes = response.bytes().map_err(transport)?;
                    Ok(Reply::new(status, &bytes))
                }
                Err(e) => Err(e),
            };
            match retry_decision(&outcome, call.idempotent, attempt, self.config.attempts) {
                Some(delay) => std::thread::sleep(delay),
                None => return outcome.map_err(transport),
            }
        }
    }

    async fn send_async(&self, call: &Call) -> Result<Reply> {
        let method = call.method();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .async_client
                .request(method.clone(), self.url(&call.path))
                .header("X-Vault-Token", self.config.token.as_str())
                .header("X-Vault-Request", "true");
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let bytes = response.bytes().await.map_err(transport)?;
                    Ok(Reply::new(status, &bytes))
                }
                Err(e) => Err(e),
            };
            match retry_decision(&outcome, call.idempotent, attempt, self.config.attempts) {
                Some(delay) => tokio_sleep(delay).await,
                None => return outcome.map_err(transport),
            }
        }
    }
}

/// The backoff sleep (reqwest needs a runtime with timers anyway).
async fn tokio_sleep(delay: Duration) {
    tokio::time::sleep(delay).await;
}

/// `Some(delay)` to retry: connection errors always, 5xx when the call is safe to
/// repeat; exponential backoff from 50 ms.
fn retry_decision(
    outcome: &std::result::Result<Reply, reqwest::Error>,
    idempotent: bool,
    attempt: u32,
    attempts: u32,
) -> Option<Duration> {
    if attempt >= attempts {
        return None;
    }
    let retry = match outcome {
        Err(e) => e.is_connect() || e.is_timeout(),
        Ok(reply) => idempotent && reply.status >= 500,
    };
    retry.then(|| Duration::from_millis(50 << (attempt - 1).min(6)))
}

/// A request, ready to send.
struct Call {
    method: &'static str,
    path: String,
    body: Option<Value>,
    idempotent: bool,
}

impl Call {
    fn post(path: String, body: Value, idempotent: bool) -> Self {
        Self {
            method: "POST",
            path,
            body: Some(body),
            idempotent,
        }
    }

    fn get(path: String) -> Self {
        Self {
            method: "GET",
            path,
            body: None,
            idempotent: true,
        }
    }

    fn method(&self) -> reqwest::Method {
        reqwest::Method::from_bytes(self.method.as_bytes()).unwrap_or(reqwest::Method::GET)
    }
}

/// A response: status and JSON body (`Null` when empty).
struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn new(status: u16, bytes: &[u8]) -> Self {
        Self {
            status,
            body: serde_json::from_slice(bytes).unwrap_or(Value::Null),
        }
    }

    /// The `data` of a success, or the error the server reported.
    fn data(self) -> Result<Value> {
        if (200..300).contains(&self.status) {
            return Ok(self.body.get("data").cloned().unwrap_or(Value::Null));
        }
        Err(remote_error(self.status, &self.body))
    }

    /// `batch_results` of a batch (Vault answers 400/500 with per-item errors in the
    /// normal envelope), or the whole request's error.
    fn batch(self) -> Result<Vec<Value>> {
        if let Some(Value::Array(results)) = self.body.get("data").and_then(|d| d.get("batch_results")) {
            return Ok(results.clone());
        }
        Err(remote_error(self.status, &self.body))
    }
}

fn errors_of(body: &Value) -> Vec<String> {
    body.get("errors")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Maps a server's error message back to our error kinds where it is unambiguous.
fn message_error(message: &str) -> Error {
    match message {
        "encryption key not found" => Error::Remote {
            status: 400,
            errors: vec![message.to_owned()],
        },
        m if m.contains("message authentication failed") => Error::DecryptionFailed,
        m if m.starts_with("invalid ciphertext") => Error::Remote {
            status: 400,
            errors: vec![m.to_owned()],
        },
        m => Error::Remote {
            status: 400,
            errors: vec![m.to_owned()],
        },
    }
}

fn remote_error(status: u16, body: &Value) -> Error {
    let errors = errors_of(body);
    if status == 400 && errors.len() == 1 {
        return message_error(&errors[0]);
    }
    Error::Remote { status, errors }
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

fn insert_b64(map: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    if let Some(bytes) = bytes {
        map.insert(name.to_owned(), json!(b64(bytes)));
    }
}

fn item_error(item: &Value) -> Option<Error> {
    item.get("error")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(message_error)
}

fn parse_ciphertext(item: &Value, field: &str) -> Result<Ciphertext> {
    if let Some(e) = item_error(item) {
        return Err(e);
    }
    item.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("server sent no ciphertext"))?
        .parse()
}

fn parse_plaintext(item: &Value) -> Result<Plaintext> {
    if let Some(e) = item_error(item) {
        return Err(e);
    }
    let text = Zeroizing::new(
        item.get("plaintext")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("server sent no plaintext"))?
            .to_owned(),
    );
    BASE64
        .decode(text.as_bytes())
        .map(SecretBytes::new)
        .map_err(|_| Error::invalid("server sent a plaintext that is not base64"))
}

/// One `batch_input` item: `value` (plaintext or ciphertext) and the optional
/// fields every data operation shares.
fn batch_item(
    value: (&str, Value),
    context: Option<&[u8]>,
    associated_data: Option<&[u8]>,
    key_version: Option<KeyVersion>,
) -> Value {
    let mut map = Map::new();
    map.insert(value.0.to_owned(), value.1);
    insert_b64(&mut map, "context", context);
    insert_b64(&mut map, "associated_data", associated_data);
    if let Some(v) = key_version {
        map.insert("key_version".into(), json!(v.get()));
    }
    Value::Object(map)
}

fn encrypt_call(mount_path: &KeyName, items: &[EncryptItem]) -> Call {
    let batch: Vec<Value> = items
        .iter()
        .map(|item| {
            batch_item(
                ("plaintext", json!(b64(item.plaintext.expose_secret()))),
                item.context.as_deref(),
                item.associated_data.as_deref(),
                item.key_version,
            )
        })
        .collect();
    // The body holds plaintext (base64): it is dropped right after sending.
    Call::post(format!("encrypt/{mount_path}"), json!({ "batch_input": batch }), true)
}

fn decrypt_call(key: &KeyName, items: &[DecryptItem]) -> Call {
    let batch: Vec<Value> = items
        .iter()
        .map(|item| {
            batch_item(
                ("ciphertext", json!(item.ciphertext.as_str())),
                item.context.as_deref(),
                item.associated_data.as_deref(),
                None,
            )
        })
        .collect();
    Call::post(format!("decrypt/{key}"), json!({ "batch_input": batch }), true)
}

fn rewrap_call(key: &KeyName, items: &[RewrapItem]) -> Call {
    let batch: Vec<Value> = items
        .iter()
        .map(|item| {
            batch_item(
                ("ciphertext", json!(item.ciphertext.as_str())),
                item.context.as_deref(),
                item.associated_data.as_deref(),
                item.key_version,
            )
        })
        .collect();
    Call::post(format!("rewrap/{key}"), json!({ "batch_input": batch }), true)
}

/// HMAC batches carry one `key_version` for the whole request: one call per version.
fn hmac_calls(
    key: &KeyName,
    algorithm: HashAlgorithm,
    items: &[HmacItem],
) -> Vec<(Option<KeyVersion>, Vec<usize>, Call)> {
    let mut groups: BTreeMap<Option<KeyVersion>, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        groups.entry(item.key_version).or_default().push(i);
    }
    groups
        .into_iter()
        .map(|(version, indexes)| {
            let batch: Vec<Value> = indexes
                .iter()
                .map(|i| json!({ "input": b64(items[*i].input.expose_secret()) }))
                .collect();
            let mut body = json!({ "batch_input": batch });
            if let Some(v) = version {
                body["key_version"] = json!(v.get());
            }
            (
                version,
                indexes,
                Call::post(format!("hmac/{key}/{algorithm}"), body, true),
            )
        })
        .collect()
}

fn parse_hmac(item: &Value) -> Result<HmacTag> {
    if let Some(e) = item_error(item) {
        return Err(e);
    }
    item.get("hmac")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("server sent no hmac"))?
        .parse()
}

fn verify_call(key: &KeyName, algorithm: HashAlgorithm, items: &[VerifyHmacItem]) -> Call {
    let batch: Vec<Value> = items
        .iter()
        .map(|item| json!({ "input": b64(item.input.expose_secret()), "hmac": item.hmac.to_string() }))
        .collect();
    Call::post(
        format!("verify/{key}/{algorithm}"),
        json!({ "batch_input": batch }),
        true,
    )
}

fn parse_verify(item: &Value) -> Result<bool> {
    if let Some(e) = item_error(item) {
        return Err(e);
    }
    Ok(item.get("valid").and_then(Value::as_bool).unwrap_or(false))
}

fn check_len<T>(expected: usize, results: Vec<T>) -> Result<Vec<T>> {
    if results.len() == expected {
        Ok(results)
    } else {
        Err(Error::invalid(
            "server returned a different number of results than items",
        ))
    }
}

/// A key description from Vault's JSON.
fn key_info(data: &Value) -> Result<KeyInfo> {
    let bad = || Error::invalid("server sent a key description we cannot read");
    let u32_of = |name: &str| {
        data.get(name)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let bool_of = |name: &str| data.get(name).and_then(Value::as_bool).unwrap_or(false);
    let name = KeyName::new(data.get("name").and_then(Value::as_str).ok_or_else(bad)?)?;
    let key_type: KeyType = data.get("type").and_then(Value::as_str).ok_or_else(bad)?.parse()?;
    let versions = data
        .get("keys")
        .and_then(Value::as_object)
        .map(|keys| {
            keys.iter()
                .filter_map(|(v, created)| {
                    let version = v.parse().ok().and_then(KeyVersion::new)?;
                    Some((version, created.as_i64().unwrap_or(0)))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(KeyInfo {
        name,
        key_type,
        derived: bool_of("derived"),
        convergent_encryption: bool_of("convergent_encryption"),
        exportable: bool_of("exportable"),
        allow_plaintext_backup: bool_of("allow_plaintext_backup"),
        deletion_allowed: bool_of("deletion_allowed"),
        auto_rotate_period: Duration::from_secs(data.get("auto_rotate_period").and_then(Value::as_u64).unwrap_or(0)),
        latest_version: u32_of("latest_version").and_then(KeyVersion::new).ok_or_else(bad)?,
        min_decryption_version: u32_of("min_decryption_version")
            .and_then(KeyVersion::new)
            .ok_or_else(bad)?,
        min_encryption_version: u32_of("min_encryption_version").unwrap_or(0),
        min_available_version: u32_of("min_available_version").unwrap_or(0),
        versions,
    })
}

fn create_body(options: &KeyOptions) -> Value {
    let mut body = json!({
        "type": options.key_type.as_str(),
        "derived": options.derived,
        "convergent_encryption": options.convergent_encryption,
        "exportable": options.exportable,
        "allow_plaintext_backup": options.allow_plaintext_backup,
    });
    if !options.auto_rotate_period.is_zero() {
        body["auto_rotate_period"] = json!(format!("{}s", options.auto_rotate_period.as_secs()));
    }
    body
}

fn config_body(config: &KeyConfig) -> Value {
    let mut body = Map::new();
    if let Some(v) = config.min_decryption_version {
        body.insert("min_decryption_version".into(), json!(v));
    }
    if let Some(v) = config.min_encryption_version {
        body.insert("min_encryption_version".into(), json!(v));
    }
    if let Some(v) = config.deletion_allowed {
        body.insert("deletion_allowed".into(), json!(v));
    }
    if let Some(v) = config.exportable {
        body.insert("exportable".into(), json!(v));
    }
    if let Some(v) = config.allow_plaintext_backup {
        body.insert("allow_plaintext_backup".into(), json!(v));
    }
    if let Some(p) = config.auto_rotate_period {
        body.insert("auto_rotate_period".into(), json!(format!("{}s", p.as_secs())));
    }
    Value::Object(body)
}

impl RemoteEngine {
    /// Answers of key changes: Vault ≥ 1.14 and OpenBao return the key; older Vault
    /// answers 204, then we read it.
    fn key_reply_blocking(&self, key: &KeyName, reply: Reply) -> Result<KeyInfo> {
        let data = reply.data()?;
        if data.is_null() {
            self.read_key(key)
        } else {
            key_info(&data)
        }
    }
}

impl TransitEngine for RemoteEngine {
    fn encrypt_batch(&self, key: &KeyName, items: Vec<EncryptItem>) -> BatchResult<Ciphertext> {
        let results = self.send_blocking(&encrypt_call(key, &items))?.batch()?;
        Ok(check_len(items.len(), results)?
            .iter()
            .map(|r| parse_ciphertext(r, "ciphertext"))
            .collect())
    }

    fn decrypt_batch(&self, key: &KeyName, items: Vec<DecryptItem>) -> BatchResult<Plaintext> {
        let results = self.send_blocking(&decrypt_call(key, &items))?.batch()?;
        Ok(check_len(items.len(), results)?.iter().map(parse_plaintext).collect())
    }

    fn rewrap_batch(&self, key: &KeyName, items: Vec<RewrapItem>) -> BatchResult<Ciphertext> {
        let results = self.send_blocking(&rewrap_call(key, &items))?.batch()?;
        Ok(check_len(items.len(), results)?
            .iter()
            .map(|r| parse_ciphertext(r, "ciphertext"))
            .collect())
    }

    fn hmac_batch(&self, key: &KeyName, algorithm: HashAlgorithm, items: Vec<HmacItem>) -> BatchResult<HmacTag> {
        let mut out: Vec<Option<Result<HmacTag>>> = items.iter().map(|_| None).collect();
        for (_, indexes, call) in hmac_calls(key, algorithm, &items) {
            let results = check_len(indexes.len(), self.send_blocking(&call)?.batch()?)?;
            for (i, r) in indexes.into_iter().zip(results) {
                out[i] = Some(parse_hmac(&r));
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::invalid("no result"))))
            .collect())
    }

    fn verify_hmac_batch(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<VerifyHmacItem>,
    ) -> BatchResult<bool> {
        let results = self.send_blocking(&verify_call(key, algorithm, &items))?.batch()?;
        Ok(check_len(items.len(), results)?.iter().map(parse_verify).collect())
    }

    fn datakey(&self, key: &KeyName, request: DataKeyRequest) -> Result<DataKey> {
        let kind = if request.wrapped_only { "wrapped" } else { "plaintext" };
        let mut body = json!({ "bits": request.bits.bytes() * 8 });
        if let Some(c) = &request.context {
            body["context"] = json!(b64(c));
        }
        if let Some(a) = &request.associated_data {
            body["associated_data"] = json!(b64(a));
        }
        if let Some(v) = request.key_version {
            body["key_version"] = json!(v.get());
        }
        let data = self
            .send_blocking(&Call::post(format!("datakey/{kind}/{key}"), body, true))?
            .data()?;
        let ciphertext = parse_ciphertext(&data, "ciphertext")?;
        let plaintext = if request.wrapped_only {
            None
        } else {
            Some(parse_plaintext(&data)?)
        };
        Ok(DataKey { ciphertext, plaintext })
    }

    fn create_key(&self, key: &KeyName, options: KeyOptions) -> Result<KeyInfo> {
        let reply = self.send_blocking(&Call::post(format!("keys/{key}"), create_body(&options), false))?;
        self.key_reply_blocking(key, reply)
    }

    fn read_key(&self, key: &KeyName) -> Result<KeyInfo> {
        let reply = self.send_blocking(&Call::get(format!("keys/{key}")))?;
        if reply.status == 404 {
            return Err(Error::KeyNotFound { name: key.clone() });
        }
        key_info(&reply.data()?)
    }

    fn list_keys(&self) -> Result<Vec<KeyName>> {
        let reply = self.send_blocking(&Call {
            method: "LIST",
            path: "keys".into(),
            body: None,
            idempotent: true,
        })?;
        if reply.status == 404 {
            return Ok(Vec::new());
        }
        let data = reply.data()?;
        let mut names: Vec<KeyName> = data
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|k| KeyName::new(k).ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    fn rotate_key(&self, key: &KeyName) -> Result<KeyInfo> {
        let reply = self.send_blocking(&Call::post(format!("keys/{key}/rotate"), json!({}), false))?;
        self.key_reply_blocking(key, reply)
    }

    fn configure_key(&self, key: &KeyName, config: KeyConfig) -> Result<KeyInfo> {
        let reply = self.send_blocking(&Call::post(format!("keys/{key}/config"), config_body(&config), false))?;
        self.key_reply_blocking(key, reply)
    }

    fn trim_key(&self, key: &KeyName, min_available_version: KeyVersion) -> Result<KeyInfo> {
        let body = json!({ "min_available_version": min_available_version.get() });
        let reply = self.send_blocking(&Call::post(format!("keys/{key}/trim"), body, false))?;
        self.key_reply_blocking(key, reply)
    }

    fn delete_key(&self, key: &KeyName) -> Result<()> {
        self.send_blocking(&Call {
            method: "DELETE",
            path: format!("keys/{key}"),
            body: None,
            idempotent: false,
        })?
        .data()
        .map(drop)
    }

    fn export_key(&self, key: &KeyName, kind: ExportKind, version: Option<KeyVersion>) -> Result<ExportedKey> {
        let kind = match kind {
            ExportKind::EncryptionKey => "encryption-key",
            ExportKind::HmacKey => "hmac-key",
        };
        let path = match version {
            Some(v) => format!("export/{kind}/{key}/{v}"),
            None => format!("export/{kind}/{key}"),
        };
        let data = self.send_blocking(&Call::get(path))?.data()?;
        let mut keys = BTreeMap::new();
        if let Some(map) = data.get("keys").and_then(Value::as_object) {
            for (v, material) in map {
                let version = v
                    .parse()
                    .ok()
                    .and_then(KeyVersion::new)
                    .ok_or_else(|| Error::invalid("bad version"))?;
                let text = Zeroizing::new(material.as_str().unwrap_or_default().to_owned());
                let bytes = BASE64
                    .decode(text.as_bytes())
                    .map_err(|_| Error::invalid("key is not base64"))?;
                keys.insert(version, SecretBytes::new(bytes));
            }
        }
        Ok(ExportedKey {
            name: key.clone(),
            keys,
        })
    }

    fn random_bytes(&self, len: usize) -> Result<Vec<u8>> {
        let data = self
            .send_blocking(&Call::post("random".into(), json!({ "bytes": len }), true))?
            .data()?;
        let text = data.get("random_bytes").and_then(Value::as_str).unwrap_or_default();
        BASE64
            .decode(text)
            .map_err(|_| Error::invalid("server sent random bytes that are not base64"))
    }

    fn hash(&self, algorithm: HashAlgorithm, input: &[u8]) -> Result<Vec<u8>> {
        let body = json!({ "input": b64(input), "algorithm": algorithm.as_str(), "format": "base64" });
        let data = self.send_blocking(&Call::post("hash".into(), body, true))?.data()?;
        let text = data.get("sum").and_then(Value::as_str).unwrap_or_default();
        BASE64
            .decode(text)
            .map_err(|_| Error::invalid("server sent a hash that is not base64"))
    }
}

impl AsyncTransitEngine for RemoteEngine {
    async fn encrypt_batch_async(&self, key: &KeyName, items: Vec<EncryptItem>) -> BatchResult<Ciphertext> {
        let results = self.send_async(&encrypt_call(key, &items)).await?.batch()?;
        Ok(check_len(items.len(), results)?
            .iter()
            .map(|r| parse_ciphertext(r, "ciphertext"))
            .collect())
    }

    async fn decrypt_batch_async(&self, key: &KeyName, items: Vec<DecryptItem>) -> BatchResult<Plaintext> {
        let results = self.send_async(&decrypt_call(key, &items)).await?.batch()?;
        Ok(check_len(items.len(), results)?.iter().map(parse_plaintext).collect())
    }

    async fn rewrap_batch_async(&self, key: &KeyName, items: Vec<RewrapItem>) -> BatchResult<Ciphertext> {
        let results = self.send_async(&rewrap_call(key, &items)).await?.batch()?;
        Ok(check_len(items.len(), results)?
            .iter()
            .map(|r| parse_ciphertext(r, "ciphertext"))
            .collect())
    }

    async fn hmac_batch_async(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<HmacItem>,
    ) -> BatchResult<HmacTag> {
        let mut out: Vec<Option<Result<HmacTag>>> = items.iter().map(|_| None).collect();
        for (_, indexes, call) in hmac_calls(key, algorithm, &items) {
            let results = check_len(indexes.len(), self.send_async(&call).await?.batch()?)?;
            for (i, r) in indexes.into_iter().zip(results) {
                out[i] = Some(parse_hmac(&r));
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::invalid("no result"))))
            .collect())
    }

    async fn read_key_async(&self, key: &KeyName) -> Result<KeyInfo> {
        let reply = self.send_async(&Call::get(format!("keys/{key}"))).await?;
        if reply.status == 404 {
            return Err(Error::KeyNotFound { name: key.clone() });
        }
        key_info(&reply.data()?)
    }
}
