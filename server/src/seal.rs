//! Seal state: uninitialised, sealed (collecting unseal shares), or unsealed (the
//! engine and token store open), and the `sys/init`, `sys/unseal`, `sys/seal`,
//! `sys/seal-status` and `sys/health` endpoints.
//!
//! Key hierarchy: an *unseal key* (32 random bytes) is split into Shamir shares and
//! never stored; it wraps the *root key*, stored at `core/root-key`; the root key
//! seals everything else (the library's barrier: keys, tokens). `core/seal-config`
//! records the share count and threshold; both `core/` entries are readable while
//! sealed, and neither lets anyone decrypt without enough shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use encrypted_attr::storage::{Barrier, Storage, Update};
use encrypted_attr::{EngineOptions, LocalEngine, RootKey, SecretBytes};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::Audit;
use crate::auth::TokenStore;
use crate::encoding::encode_base64;
use crate::http::{ApiError, ApiResult, Reply};
use crate::monitored::MonitoredStorage;
use crate::params::Params;
use crate::policy::PolicyStore;
use crate::shamir;

const SEAL_CONFIG_PATH: &str = "core/seal-config";
const ROOT_KEY_PATH: &str = "core/root-key";
/// The version `sys/seal-status` and `sys/health` report.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything an unsealed server uses.
pub(crate) struct Unsealed {
    pub(crate) engine: Arc<LocalEngine>,
    pub(crate) tokens: TokenStore,
    pub(crate) policies: PolicyStore,
    pub(crate) audit: Audit,
    /// When policies and audit devices are next re-read from storage (milliseconds
    /// since this value was made; persistent servers only).
    next_refresh: AtomicU64,
    born: Instant,
    /// How long other servers sharing the storage may go on using a key they have
    /// cached (zero when nothing is shared): a deletion answers only after this,
    /// so that once it has answered no server encrypts with the deleted key.
    pub(crate) shared_cache_lifetime: Duration,
}

/// How often a persistent server re-reads what other servers sharing its storage
/// may change: keys (through the engine's `refresh_interval`), policies and audit
/// devices; token entries are re-read on use after [`crate::auth::TOKEN_RECHECK`].
pub(crate) const SHARED_STATE_REFRESH: Duration = Duration::from_secs(2);

impl Unsealed {
    fn new(
        engine: Arc<LocalEngine>,
        tokens: TokenStore,
        policies: PolicyStore,
        audit: Audit,
        shared_cache_lifetime: Duration,
    ) -> Self {
        Self {
            engine,
            tokens,
            policies,
            audit,
            next_refresh: AtomicU64::new(0),
            born: Instant::now(),
            shared_cache_lifetime,
        }
    }

    /// Claims the re-read of policies and audit devices if [`SHARED_STATE_REFRESH`]
    /// has passed: true for exactly one caller, which must then call
    /// [`reload_shared_state`](Self::reload_shared_state); the others go on with
    /// the current view. Cheap when not due: one atomic load.
    pub(crate) fn claim_shared_state_refresh(&self) -> bool {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_refresh.load(Ordering::Relaxed);
        if now < due {
            return false;
        }
        let next = now.saturating_add(u64::try_from(SHARED_STATE_REFRESH.as_millis()).unwrap_or(u64::MAX));
        self.next_refresh
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Re-reads policies and audit devices from storage (in memory, in dev mode,
    /// there is nothing to re-read), and reopens audit files removed underneath.
    pub(crate) fn reload_shared_state(&self) {
        self.policies.reload();
        self.audit.reload();
        self.audit.reopen_moved();
    }
}

#[derive(Serialize, Deserialize, Clone, Copy)]
struct SealConfig {
    secret_shares: usize,
    secret_threshold: usize,
}

enum State {
    Uninitialized,
    Sealed {
        config: SealConfig,
        shares: Vec<SecretBytes>,
        nonce: String,
    },
    Unsealed {
        config: SealConfig,
        open: Arc<Unsealed>,
    },
}

/// The seal state machine over one storage.
pub(crate) struct Seal {
    storage: Option<Arc<MonitoredStorage>>,
    storage_type: &'static str,
    state: RwLock<State>,
    /// Held through `sys/init`, so two initialisations in one process run in turn.
    initializing: std::sync::Mutex<()>,
}

/// A root token, shown once.
pub struct RootToken(pub SecretBytes);

impl Seal {
    /// Unsealed from the start over an in-memory engine (dev mode).
    pub(crate) fn dev(engine: Arc<LocalEngine>, root_token_id: Option<&str>) -> Result<(Self, RootToken), String> {
        let tokens = TokenStore::new().map_err(|e| e.to_string())?;
        let root = tokens
            .create(root_token_request(root_token_id))
            .map_err(|e| e.to_string())?;
        let config = SealConfig {
            secret_shares: 1,
            secret_threshold: 1,
        };
        let policies = PolicyStore::new(None).map_err(|e| e.to_string())?;
        let audit = Audit::new(None).map_err(|e| e.to_string())?;
        let open = Arc::new(Unsealed::new(engine, tokens, policies, audit, Duration::ZERO));
        Ok((
            Self {
                storage: None,
                storage_type: "inmem",
                state: RwLock::new(State::Unsealed { config, open }),
                initializing: std::sync::Mutex::new(()),
            },
            RootToken(root.token),
        ))
    }

    /// Over persistent storage: uninitialised, or sealed until enough shares arrive.
    pub(crate) fn persistent(storage: Arc<dyn Storage>, storage_type: &'static str) -> Result<Self, String> {
        let storage = Arc::new(MonitoredStorage::new(storage));
        let state = match stored_config(&*storage)? {
            None => State::Uninitialized,
            Some(config) => State::Sealed {
                config,
                shares: Vec::new(),
                nonce: new_nonce(),
            },
        };
        Ok(Self {
            storage: Some(storage),
            storage_type,
            state: RwLock::new(state),
            initializing: std::sync::Mutex::new(()),
        })
    }

    /// The storage, when persistent.
    pub(crate) fn storage(&self) -> Option<&Arc<MonitoredStorage>> {
        self.storage.as_ref()
    }

    /// An uninitialised server sharing storage with others picks up an
    /// initialisation made elsewhere: it becomes sealed with that configuration.
    /// Costs one storage read, and only while uninitialised.
    pub(crate) fn pick_up_initialization(&self) {
        let Some(storage) = &self.storage else { return };
        if !matches!(&*self.read(), State::Uninitialized) {
            return;
        }
        match stored_config(&**storage) {
            Ok(Some(config)) => {
                let mut state = self.write();
                if matches!(&*state, State::Uninitialized) {
                    tracing::info!("storage was initialised by another server; now sealed");
                    *state = State::Sealed {
                        config,
                        shares: Vec::new(),
                        nonce: new_nonce(),
                    };
                }
            }
            Ok(None) => {}
            Err(error) => tracing::error!(error = %error, "the seal configuration could not be read"),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The open engine and tokens, or 503 while sealed.
    pub(crate) fn unsealed(&self) -> Result<Arc<Unsealed>, ApiError> {
        match &*self.read() {
            State::Unsealed { open, .. } => Ok(open.clone()),
            _ => Err(ApiError::Sealed),
        }
    }

    /// The bare status object of `sys/seal-status` and `sys/unseal`.
    pub(crate) fn status(&self) -> Value {
        self.pick_up_initialization();
        self.status_now()
    }

    /// The status as this server knows it, without reading storage (for
    /// `sys/health`, which must never wait on storage; the storage probe picks up
    /// an initialisation made elsewhere).
    fn status_now(&self) -> Value {
        let (initialized, sealed, t, n, progress, nonce) = match &*self.read() {
            State::Uninitialized => (false, true, 0, 0, 0, String::new()),
            State::Sealed { config, shares, nonce } => (
                true,
                true,
                config.secret_threshold,
                config.secret_shares,
                shares.len(),
                nonce.clone(),
            ),
            State::Unsealed { config, .. } => (
                true,
                false,
                config.secret_threshold,
                config.secret_shares,
                0,
                String::new(),
            ),
        };
        json!({
            "type": "shamir", "initialized": initialized, "sealed": sealed, "t": t, "n": n,
            "progress": progress, "nonce": nonce, "version": VERSION, "build_date": "",
            "migration": false, "recovery_seal": false, "storage_type": self.storage_type,
            "cluster_name": "encrypted-attr", "cluster_id": "",
        })
    }

    /// `GET sys/init`.
    pub(crate) fn init_status(&self) -> ApiResult {
        self.pick_up_initialization();
        let initialized = !matches!(&*self.read(), State::Uninitialized);
        Ok(Reply::Bare(StatusCode::OK, json!({ "initialized": initialized })))
    }

    /// `PUT sys/init`: makes the keys, stores the wrapped root key, leaves the server
    /// sealed, and returns the shares and a root token once.
    pub(crate) fn init(&self, params: &Params<'_>) -> ApiResult {
        let shares = params.int("secret_shares")?;
        let threshold = params.int("secret_threshold")?;
        let (Some(shares), Some(threshold)) = (shares, threshold) else {
            return Err(ApiError::BadRequest(
                "secret_shares and secret_threshold are required".into(),
            ));
        };
        let (Ok(shares), Ok(threshold)) = (usize::try_from(shares), usize::try_from(threshold)) else {
            return Err(ApiError::BadRequest(
                "secret_shares and secret_threshold must be positive".into(),
            ));
        };
        let Some(storage) = self.storage.clone() else {
            return Err(ApiError::BadRequest("Vault is already initialized".into()));
        };
        let storage: Arc<dyn Storage> = storage;
        self.pick_up_initialization();
        // One initialisation at a time in this process, under its own lock: the
        // state lock, which every request takes, is held only for the transition.
        let _initializing = self
            .initializing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !matches!(&*self.read(), State::Uninitialized) {
            return Err(ApiError::BadRequest("Vault is already initialized".into()));
        }
        let mut unseal_bytes = [0u8; 32];
        getrandom::fill(&mut unseal_bytes).map_err(|_| ApiError::Internal)?;
        let unseal_key = SecretBytes::copy_from(&unseal_bytes);
        let kek = RootKey::from_bytes(unseal_bytes);
        zeroize::Zeroize::zeroize(&mut unseal_bytes);
        let parts = shamir::split(unseal_key.expose_secret(), shares, threshold).map_err(|e| match e {
            shamir::ShamirError::Parameters(m) | shamir::ShamirError::Shares(m) => ApiError::BadRequest(m.into()),
            shamir::ShamirError::Random => ApiError::Internal,
        })?;
        let root = RootKey::generate().map_err(ApiError::from)?;
        // Open the barrier first (it writes its check entry), then the root token,
        // then the wrapped root key, and last the seal configuration, whose presence
        // marks the server initialised. The barrier's check entry is written only
        // on empty storage, atomically: of two servers initialising one storage at
        // once, the second finds the first's entry and stops here.
        let engine = LocalEngine::with_storage(storage.clone(), &root, engine_options()).map_err(|e| match e {
            encrypted_attr::Error::WrongRootKey | encrypted_attr::Error::CorruptStorage { .. } => {
                ApiError::BadRequest(INITIALIZED_ELSEWHERE.into())
            }
            other => ApiError::from(other),
        })?;
        let tokens = TokenStore::persistent(Barrier::open(storage.clone(), &root).map_err(ApiError::from)?)
            .map_err(ApiError::from)?;
        let token = tokens.create(root_token_request(None)).map_err(ApiError::from)?;
        drop((engine, tokens));
        let wrapped = root.wrap(&kek, ROOT_KEY_PATH).map_err(ApiError::from)?;
        put(&*storage, ROOT_KEY_PATH, wrapped)?;
        let config = SealConfig {
            secret_shares: shares,
            secret_threshold: threshold,
        };
        put(
            &*storage,
            SEAL_CONFIG_PATH,
            serde_json::to_vec(&config).map_err(|_| ApiError::Internal)?,
        )?;
        *self.write() = State::Sealed {
            config,
            shares: Vec::new(),
            nonce: new_nonce(),
        };
        let keys: Vec<String> = parts
            .iter()
            .map(|p| crate::encoding::encode_hex(p.expose_secret()))
            .collect();
        let keys_base64: Vec<String> = parts.iter().map(|p| encode_base64(p.expose_secret())).collect();
        Ok(Reply::Bare(
            StatusCode::OK,
            json!({
                "keys": keys,
                "keys_base64": keys_base64,
                "root_token": String::from_utf8_lossy(token.token.expose_secret()),
            }),
        ))
    }

    /// `PUT sys/unseal`: one more share (hex or base64), or `reset`.
    pub(crate) fn unseal(&self, params: &Params<'_>) -> ApiResult {
        let reset = params.bool("reset")?.unwrap_or(false);
        let key = params.string("key")?;
        let _ = params.has("migrate");
        self.pick_up_initialization();
        let mut state = self.write();
        let State::Sealed { config, shares, nonce } = &mut *state else {
            drop(state);
            return match &*self.read() {
                State::Uninitialized => Err(ApiError::BadRequest("Vault is not initialized".into())),
                _ => Ok(Reply::Bare(StatusCode::OK, self.status())),
            };
        };
        if reset {
            shares.clear();
            *nonce = new_nonce();
            drop(state);
            return Ok(Reply::Bare(StatusCode::OK, self.status()));
        }
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(ApiError::BadRequest(
                "'key' must be specified in request body as JSON, or 'reset' set to true".into(),
            ));
        };
        let share = parse_hex(&key)
            .or_else(|| crate::encoding::decode_base64(&key).ok())
            .map(SecretBytes::new)
            .ok_or_else(|| ApiError::BadRequest("'key' must be a valid hex or base64 string".into()))?;
        if shares.iter().any(|s| s == &share) {
            // Vault ignores a share it already has.
            drop(state);
            return Ok(Reply::Bare(StatusCode::OK, self.status()));
        }
        shares.push(share);
        if shares.len() < config.secret_threshold {
            drop(state);
            return Ok(Reply::Bare(StatusCode::OK, self.status()));
        }
        let config = *config;
        let collected = std::mem::take(shares);
        *nonce = new_nonce();
        // Opening reads storage (keys, tokens, policies, audit devices): not under
        // the state lock, which every request takes to see whether it is unsealed.
        drop(state);
        let open = self.open(&collected)?;
        let mut state = self.write();
        if matches!(&*state, State::Sealed { .. }) {
            *state = State::Unsealed {
                config,
                open: Arc::new(open),
            };
        }
        drop(state);
        Ok(Reply::Bare(StatusCode::OK, self.status()))
    }

    fn open(&self, shares: &[SecretBytes]) -> Result<Unsealed, ApiError> {
        let storage: Arc<dyn Storage> = self.storage.clone().ok_or(ApiError::Internal)?;
        let unseal_key = shamir::combine(shares).map_err(|_| ApiError::BadRequest("invalid unseal shares".into()))?;
        let kek_bytes: [u8; 32] = unseal_key
            .expose_secret()
            .try_into()
            .map_err(|_| ApiError::BadRequest("invalid unseal shares".into()))?;
        let kek = RootKey::from_bytes(kek_bytes);
        let wrapped = storage
            .get(ROOT_KEY_PATH)
            .map_err(ApiError::from)?
            .ok_or(ApiError::Internal)?;
        let root = RootKey::unwrap(&wrapped, &kek, ROOT_KEY_PATH).map_err(|_| {
            ApiError::BadRequest(
                "cipher: message authentication failed: the unseal shares do not open the root key".into(),
            )
        })?;
        let engine = LocalEngine::with_storage(storage.clone(), &root, engine_options()).map_err(ApiError::from)?;
        let tokens = TokenStore::persistent(Barrier::open(storage.clone(), &root).map_err(ApiError::from)?)
            .map_err(ApiError::from)?;
        let policies = PolicyStore::new(Some(Barrier::open(storage.clone(), &root).map_err(ApiError::from)?))
            .map_err(ApiError::from)?;
        let audit = Audit::new(Some(Barrier::open(storage, &root).map_err(ApiError::from)?)).map_err(ApiError::from)?;
        // The engine's own refresh interval, plus room for a use that had fetched
        // the key just before its refresh fell due to finish.
        let lifetime = SHARED_STATE_REFRESH + Duration::from_millis(500);
        Ok(Unsealed::new(Arc::new(engine), tokens, policies, audit, lifetime))
    }

    /// `PUT sys/seal`: forget the keys (they stay sealed in storage).
    pub(crate) fn seal(&self) -> ApiResult {
        if self.storage.is_none() {
            return Err(ApiError::BadRequest(
                "a dev server cannot be sealed: its keys live only in memory".into(),
            ));
        }
        let mut state = self.write();
        if let State::Unsealed { config, .. } = &*state {
            let config = *config;
            *state = State::Sealed {
                config,
                shares: Vec::new(),
                nonce: new_nonce(),
            };
        }
        Ok(Reply::NoContent)
    }

    /// What `sys/health` reports, without reading storage (health must never wait
    /// on it): initialised, sealed, and whether storage answered its last call or probe.
    pub(crate) fn health(&self) -> Health {
        let (initialized, sealed) = match &*self.read() {
            State::Uninitialized => (false, true),
            State::Sealed { .. } => (true, true),
            State::Unsealed { .. } => (true, false),
        };
        Health {
            initialized,
            sealed,
            storage_reachable: self.storage.as_ref().is_none_or(|s| s.reachable()),
        }
    }
}

/// The state `sys/health` reports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Health {
    pub(crate) initialized: bool,
    pub(crate) sealed: bool,
    pub(crate) storage_reachable: bool,
}

/// Engine options of a server: concurrent requests already keep every core busy,
/// so a batch stays on its request's thread (starting threads per batch halved
/// throughput on batches of 1,000 under load).
pub(crate) fn server_engine_options() -> EngineOptions {
    EngineOptions::default().parallel_batch_threshold(None)
}

/// Engine options of a persistent server: storage may be shared with other servers,
/// so keys are also re-read every [`SHARED_STATE_REFRESH`] to see their rotations.
fn engine_options() -> EngineOptions {
    server_engine_options().refresh_interval(SHARED_STATE_REFRESH)
}

/// Why `sys/init` is refused on storage that another server is initialising (or
/// whose initialisation was interrupted before the seal configuration was written).
const INITIALIZED_ELSEWHERE: &str = "the storage is being initialized by another server (or an earlier \
     initialization was interrupted); check sys/init, or start from empty storage";

/// The seal configuration in `storage`, if initialised.
fn stored_config(storage: &dyn Storage) -> Result<Option<SealConfig>, String> {
    let raw = storage.get(SEAL_CONFIG_PATH).map_err(|e| {
        format!(
            "cannot read the seal configuration: {e}: {}",
            crate::http::error_chain(&e)
        )
    })?;
    raw.map(|raw| serde_json::from_slice(&raw).map_err(|_| "the stored seal configuration is damaged".to_owned()))
        .transpose()
}

fn put(storage: &dyn Storage, path: &str, bytes: Vec<u8>) -> Result<(), ApiError> {
    storage
        .update(path, &mut |_| Ok(Update::Put(bytes.clone())))
        .map_err(ApiError::from)
}

/// The root token made at start (dev mode) or by `sys/init`: an orphan, never
/// expiring.
fn root_token_request(id: Option<&str>) -> crate::auth::NewTokenRequest<'_> {
    crate::auth::NewTokenRequest {
        policies: vec!["root".into()],
        ttl: None,
        renewable: false,
        id,
        parent: None,
        path: "auth/token/root",
    }
}

fn new_nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}
