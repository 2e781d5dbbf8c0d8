//! The remote transit engine: Vault's transit HTTP API over reqwest (rustls), with
//! a blocking face ([`TransitEngine`]) and an async face ([`AsyncTransitEngine`]).
//!
//! It talks to the `encrypted-attr` server, to HashiCorp Vault and to OpenBao alike.
//! Every operation is an exchange built by [`wire`] without I/O (a large batch is
//! several requests within [`BatchLimits`]), run by one async executor that sends
//! up to `concurrent_requests` calls at once through one retrying `send`. Each call
//! is retried on its own: connection errors always, 5xx answers only on operations
//! that are safe to repeat (data operations and reads, not rotate or config), and
//! timeouts likewise; 4xx never. A model operation runs its fields' calls at once,
//! so a page of rows with three encrypted fields may have up to three times
//! `concurrent_requests` in flight.
//!
//! The blocking face waits on that same executor, run on a small runtime of its
//! own (one worker thread, made on first use, with its own connection pool): from
//! plain threads directly, and inside a multi-threaded tokio runtime under
//! `block_in_place` (the runtime's other tasks move to another thread); on a
//! current-thread runtime it returns [`Error::BlockingInAsync`], even inside
//! `spawn_blocking` (which it cannot tell from the runtime's thread). Async code
//! should use the async face.

mod wire;

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt as _;
use zeroize::Zeroizing;

use crate::cipher::HashAlgorithm;
use crate::ciphertext::Ciphertext;
use crate::engine::{
    AsyncTransitEngine, BatchResult, DataKey, DataKeyRequest, DecryptItem, EncryptItem, ExportKind, ExportedKey,
    HmacItem, HmacTag, RewrapItem, TransitEngine, VerifyHmacItem,
};
use crate::error::{Error, Result};
use crate::keyring::{KeyConfig, KeyInfo, KeyOptions};
use crate::name::{KeyName, KeyVersion};
use crate::secret::Plaintext;

pub use wire::BatchLimits;
use wire::{Call, Exchange, Next, Reply};

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
    /// How a large batch is split into requests.
    pub batch_limits: BatchLimits,
    /// Requests of one split batch in flight at once on the async face (default 4).
    pub concurrent_requests: usize,
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
            .field("batch_limits", &self.batch_limits)
            .field("concurrent_requests", &self.concurrent_requests)
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
            batch_limits: BatchLimits::default(),
            concurrent_requests: 4,
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

    /// Sets how a large batch is split into requests (for a server whose request
    /// limits differ from Vault's defaults).
    #[must_use]
    pub fn batch_limits(mut self, limits: BatchLimits) -> Self {
        self.batch_limits = limits;
        self
    }

    /// Sets how many requests of one split batch the async face sends at once.
    #[must_use]
    pub fn concurrent_requests(mut self, concurrent: usize) -> Self {
        self.concurrent_requests = concurrent.max(1);
        self
    }
}

/// A transit engine on the other side of HTTP.
pub struct RemoteEngine {
    config: ClientConfig,
    /// `X-Vault-Token`, sensitive.
    token_header: reqwest::header::HeaderValue,
    /// The client of the async face's calls, made on the caller's runtime.
    async_client: reqwest::Client,
    /// The blocking face's own runtime and client; made on first use.
    own_runtime: OnceLock<std::result::Result<OwnRuntime, String>>,
}

/// A runtime for the blocking face, and a client whose connections live on it (a
/// connection's task stays on the runtime that opened it).
struct OwnRuntime {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    client: reqwest::Client,
}

impl Drop for OwnRuntime {
    /// Shuts the runtime down without waiting: an engine may be dropped inside an
    /// async task, where waiting for a runtime to stop is not allowed.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
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
    /// [`Error::Transport`] if the HTTP client cannot be built (TLS set-up);
    /// [`Error::InvalidRequest`] if the token cannot be sent as a header.
    pub fn new(config: ClientConfig) -> Result<Self> {
        install_crypto_provider();
        // Built once; marked sensitive so that HTTP-level logging never prints it.
        let mut token_header = reqwest::header::HeaderValue::from_str(config.token.as_str())
            .map_err(|_| Error::invalid("the token holds characters a header cannot carry"))?;
        token_header.set_sensitive(true);
        let async_client = http_client(&config)?;
        Ok(Self {
            config,
            token_header,
            async_client,
            own_runtime: OnceLock::new(),
        })
    }

    /// The blocking face's own runtime and client, made on first use.
    fn own_runtime(&self) -> Result<&OwnRuntime> {
        let made = self.own_runtime.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("encrypted-attr-client")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let client = http_client(&self.config).map_err(|e| e.to_string())?;
            Ok(OwnRuntime {
                runtime: Some(runtime),
                client,
            })
        });
        made.as_ref().map_err(|e| Error::Transport(e.clone().into()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}/{}", self.config.address, self.config.mount, path)
    }

    fn request(&self, builder: reqwest::RequestBuilder, call: &Call) -> reqwest::RequestBuilder {
        let mut builder = builder
            .header("X-Vault-Token", self.token_header.clone())
            .header("X-Vault-Request", reqwest::header::HeaderValue::from_static("true"));
        if let Some(body) = &call.body {
            // A shared handle on the wiped buffer: a retry sends it again uncopied.
            builder = builder
                .header(
                    "Content-Type",
                    reqwest::header::HeaderValue::from_static("application/json"),
                )
                .body(body.clone());
        }
        builder
    }

    /// Sends one call through `client`, retrying as [`retry_decision`] says.
    async fn send(&self, client: &reqwest::Client, call: &Call) -> Result<Reply> {
        let method = method(call);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self.request(client.request(method.clone(), self.url(&call.path)), call);
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    response.bytes().await.map(|bytes| Reply::new(status, bytes))
                }
                Err(e) => Err(e),
            };
            match retry_decision(&outcome, call.idempotent, attempt, self.config.attempts) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return outcome.map_err(transport),
            }
        }
    }

    /// Runs an exchange on the blocking face, waiting for the async executor on the
    /// engine's own runtime (never on the caller's, which may lack IO or timers, or
    /// be shutting down). Inside a multi-threaded tokio runtime it waits under
    /// `block_in_place`, so the runtime moves its other tasks to another thread
    /// meanwhile (and inside `spawn_blocking` it simply waits). On a current-thread runtime the runtime's
    /// own thread cannot be told apart from a `spawn_blocking` thread (both see the
    /// runtime), and blocking the former would stall every task: the blocking face
    /// refuses there with [`Error::BlockingInAsync`] — use the async face, a
    /// multi-threaded runtime, or a plain `std::thread`.
    fn run<T>(&self, exchange: Exchange<T>) -> Result<T> {
        let wait = |exchange| {
            let own = self.own_runtime()?;
            let runtime = own.runtime.as_ref().ok_or(Error::BlockingInAsync)?;
            runtime.block_on(self.execute(&own.client, exchange))
        };
        match tokio::runtime::Handle::try_current() {
            Err(_) => wait(exchange),
            Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| wait(exchange))
            }
            Ok(_) => Err(Error::BlockingInAsync),
        }
    }

    /// Runs an exchange on the async face.
    async fn run_async<T>(&self, exchange: Exchange<T>) -> Result<T> {
        self.execute(&self.async_client, exchange).await
    }

    /// The one executor of exchanges: up to `concurrent_requests` calls at once
    /// (after the first, when it must go alone), replies kept in the calls' order.
    async fn execute<T>(&self, client: &reqwest::Client, mut exchange: Exchange<T>) -> Result<T> {
        loop {
            let mut replies = Vec::with_capacity(exchange.calls.len());
            let mut calls = exchange.calls.as_slice();
            if exchange.first_alone
                && let Some((first, rest)) = calls.split_first()
            {
                let reply = self.send(client, first).await?;
                // Refused as a whole (403, unknown key…): the others would be too.
                if let Some(error) = reply.whole_request_error() {
                    return Err(error);
                }
                replies.push(reply);
                calls = rest;
            }
            // The futures are made first (they do nothing until polled): a stream
            // mapping a closure over borrowed calls would not be `Send`.
            let sends: Vec<_> = calls.iter().map(|call| self.send(client, call)).collect();
            let mut in_flight = futures_util::stream::iter(sends).buffered(self.config.concurrent_requests.max(1));
            while let Some(reply) = in_flight.next().await {
                replies.push(reply?);
            }
            drop(in_flight);
            match (exchange.finish)(replies)? {
                Next::Done(value) => return Ok(value),
                Next::Then(next) => exchange = next,
            }
        }
    }
}

fn method(call: &Call) -> reqwest::Method {
    reqwest::Method::from_bytes(call.method.as_bytes()).unwrap_or(reqwest::Method::GET)
}

/// An HTTP client with `config`'s timeout and trusted certificate.
fn http_client(config: &ClientConfig) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(config.timeout);
    if let Some(pem) = &config.ca_certificate_pem {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).map_err(transport)?);
    }
    builder.build().map_err(transport)
}

/// `Some(delay)` to retry: connection errors always, timeouts and 5xx when the call
/// is safe to repeat; exponential backoff from 50 ms.
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
        // A timed-out key change may have been applied: repeat only what is safe to.
        Err(e) => e.is_connect() || (idempotent && e.is_timeout()),
        Ok(reply) => idempotent && reply.status >= 500,
    };
    retry.then(|| Duration::from_millis(50 << (attempt - 1).min(6)))
}

impl TransitEngine for RemoteEngine {
    fn encrypt_batch(&self, key: &KeyName, items: Vec<EncryptItem>) -> BatchResult<Ciphertext> {
        self.run(wire::encrypt(key, &items, &self.config.batch_limits))
    }

    fn decrypt_batch(&self, key: &KeyName, items: Vec<DecryptItem>) -> BatchResult<Plaintext> {
        self.run(wire::decrypt(key, &items, &self.config.batch_limits))
    }

    fn rewrap_batch(&self, key: &KeyName, items: Vec<RewrapItem>) -> BatchResult<Ciphertext> {
        self.run(wire::rewrap(key, &items, &self.config.batch_limits))
    }

    fn hmac_batch(&self, key: &KeyName, algorithm: HashAlgorithm, items: Vec<HmacItem>) -> BatchResult<HmacTag> {
        self.run(wire::hmac(key, algorithm, &items, &self.config.batch_limits))
    }

    fn verify_hmac_batch(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<VerifyHmacItem>,
    ) -> BatchResult<bool> {
        self.run(wire::verify_hmac(key, algorithm, &items, &self.config.batch_limits))
    }

    fn datakey(&self, key: &KeyName, request: DataKeyRequest) -> Result<DataKey> {
        self.run(wire::datakey(key, &request))
    }

    fn create_key(&self, key: &KeyName, options: KeyOptions) -> Result<KeyInfo> {
        self.run(wire::create_key(key, &options))
    }

    fn read_key(&self, key: &KeyName) -> Result<KeyInfo> {
        self.run(wire::read_key(key))
    }

    fn list_keys(&self) -> Result<Vec<KeyName>> {
        self.run(wire::list_keys())
    }

    fn rotate_key(&self, key: &KeyName) -> Result<KeyInfo> {
        self.run(wire::rotate_key(key))
    }

    fn configure_key(&self, key: &KeyName, config: KeyConfig) -> Result<KeyInfo> {
        self.run(wire::configure_key(key, &config))
    }

    fn trim_key(&self, key: &KeyName, min_available_version: KeyVersion) -> Result<KeyInfo> {
        self.run(wire::trim_key(key, min_available_version))
    }

    fn delete_key(&self, key: &KeyName) -> Result<()> {
        self.run(wire::delete_key(key))
    }

    fn export_key(&self, key: &KeyName, kind: ExportKind, version: Option<KeyVersion>) -> Result<ExportedKey> {
        self.run(wire::export_key(key, kind, version))
    }

    fn random_bytes(&self, len: usize) -> Result<Vec<u8>> {
        self.run(wire::random_bytes(len))
    }

    fn hash(&self, algorithm: HashAlgorithm, input: &[u8]) -> Result<Vec<u8>> {
        self.run(wire::hash(algorithm, input))
    }
}

impl AsyncTransitEngine for RemoteEngine {
    async fn encrypt_batch_async(&self, key: &KeyName, items: Vec<EncryptItem>) -> BatchResult<Ciphertext> {
        self.run_async(wire::encrypt(key, &items, &self.config.batch_limits))
            .await
    }

    async fn decrypt_batch_async(&self, key: &KeyName, items: Vec<DecryptItem>) -> BatchResult<Plaintext> {
        self.run_async(wire::decrypt(key, &items, &self.config.batch_limits))
            .await
    }

    async fn rewrap_batch_async(&self, key: &KeyName, items: Vec<RewrapItem>) -> BatchResult<Ciphertext> {
        self.run_async(wire::rewrap(key, &items, &self.config.batch_limits))
            .await
    }

    async fn hmac_batch_async(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<HmacItem>,
    ) -> BatchResult<HmacTag> {
        self.run_async(wire::hmac(key, algorithm, &items, &self.config.batch_limits))
            .await
    }

    async fn verify_hmac_batch_async(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<VerifyHmacItem>,
    ) -> BatchResult<bool> {
        self.run_async(wire::verify_hmac(key, algorithm, &items, &self.config.batch_limits))
            .await
    }

    async fn datakey_async(&self, key: &KeyName, request: DataKeyRequest) -> Result<DataKey> {
        self.run_async(wire::datakey(key, &request)).await
    }

    async fn create_key_async(&self, key: &KeyName, options: KeyOptions) -> Result<KeyInfo> {
        self.run_async(wire::create_key(key, &options)).await
    }

    async fn read_key_async(&self, key: &KeyName) -> Result<KeyInfo> {
        self.run_async(wire::read_key(key)).await
    }

    async fn list_keys_async(&self) -> Result<Vec<KeyName>> {
        self.run_async(wire::list_keys()).await
    }

    async fn rotate_key_async(&self, key: &KeyName) -> Result<KeyInfo> {
        self.run_async(wire::rotate_key(key)).await
    }

    async fn configure_key_async(&self, key: &KeyName, config: KeyConfig) -> Result<KeyInfo> {
        self.run_async(wire::configure_key(key, &config)).await
    }

    async fn trim_key_async(&self, key: &KeyName, min_available_version: KeyVersion) -> Result<KeyInfo> {
        self.run_async(wire::trim_key(key, min_available_version)).await
    }

    async fn delete_key_async(&self, key: &KeyName) -> Result<()> {
        self.run_async(wire::delete_key(key)).await
    }

    async fn export_key_async(
        &self,
        key: &KeyName,
        kind: ExportKind,
        version: Option<KeyVersion>,
    ) -> Result<ExportedKey> {
        self.run_async(wire::export_key(key, kind, version)).await
    }

    async fn random_bytes_async(&self, len: usize) -> Result<Vec<u8>> {
        self.run_async(wire::random_bytes(len)).await
    }

    async fn hash_async(&self, algorithm: HashAlgorithm, input: &[u8]) -> Result<Vec<u8>> {
        self.run_async(wire::hash(algorithm, input)).await
    }
}
