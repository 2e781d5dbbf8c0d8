//! Seal state: uninitialised, sealed (collecting unseal shares), or unsealed (the
//! engine and the stores open). A state machine with no HTTP in it: the `sys/init`,
//! `unseal`, `seal`, `seal-status` and `health` endpoints (`crate::routes::sys`)
//! read their parameters and shape their answers from what it returns.
//!
//! Key hierarchy: an *unseal key* (32 random bytes) is split into Shamir shares and
//! never stored; it wraps the *root key*, stored at `core/root-key`; the root key
//! seals everything else (the library's barrier: keys, tokens). `core/seal-config`
//! records the share count and threshold; both `core/` entries are readable while
//! sealed, and neither lets anyone decrypt without enough shares.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use encrypted_attr::storage::{Barrier, Storage, Update};
use encrypted_attr::{LocalEngine, RootKey, SecretBytes};
use serde::{Deserialize, Serialize};

use crate::error::StartError;
use crate::monitored::MonitoredStorage;
use crate::shamir;
use crate::sharing::{SHARED_STATE_REFRESH, shared_engine_options};
use crate::stores::mounts::{MountEntry, MountError};
use crate::stores::tokens::{NewTokenRequest, TokenStore};
use crate::stores::transit_mounts::EngineSource;

mod unsealed;

pub(crate) use unsealed::Unsealed;

const SEAL_CONFIG_PATH: &str = "core/seal-config";
const ROOT_KEY_PATH: &str = "core/root-key";
/// The version `sys/seal-status` and `sys/health` report.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

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

/// What `sys/seal-status` (and `sys/unseal`) report.
pub(crate) struct SealStatus {
    pub(crate) initialized: bool,
    pub(crate) sealed: bool,
    /// Shares needed to unseal (0 while uninitialised).
    pub(crate) threshold: usize,
    /// Shares made at initialisation.
    pub(crate) shares: usize,
    /// Shares collected so far towards unsealing.
    pub(crate) progress: usize,
    /// Identifies the current unseal attempt (empty unless sealed).
    pub(crate) nonce: String,
    pub(crate) storage_type: &'static str,
}

/// What an initialisation hands out, once: the unseal key's shares and a root token.
pub(crate) struct Initialized {
    pub(crate) shares: Vec<SecretBytes>,
    pub(crate) root_token: SecretBytes,
}

/// One step towards unsealing, as the caller sent it.
pub(crate) enum UnsealStep {
    /// Forget the shares collected so far.
    Reset,
    /// One more share.
    Share(SecretBytes),
    /// No share was sent.
    Missing,
    /// A share that is neither hex nor base64.
    Malformed,
}

/// Why a seal operation was refused.
#[derive(Debug)]
pub(crate) enum SealError {
    AlreadyInitialized,
    NotInitialized,
    /// Another server is initialising the storage (or an initialisation was cut short).
    InitializedElsewhere,
    /// Share count or threshold out of range (the reason).
    BadShareCounts(&'static str),
    /// The unseal step sent no share.
    MissingShare,
    /// The share is neither hex nor base64.
    MalformedShare,
    /// The shares do not combine into an unseal key.
    InvalidShares,
    /// The shares combine, but not into the key that opens the root key.
    WrongShares,
    /// A dev server's keys live only in memory.
    DevCannotSeal,
    /// The stored root key is missing while the seal configuration is present.
    RootKeyMissing,
    /// The OS random source failed.
    Random,
    /// Storage or the engine failed.
    Storage(encrypted_attr::Error),
}

impl From<encrypted_attr::Error> for SealError {
    fn from(error: encrypted_attr::Error) -> Self {
        Self::Storage(error)
    }
}

impl Seal {
    /// Unsealed from the start over an in-memory engine (dev mode).
    pub(crate) fn dev(engine: Arc<LocalEngine>, root_token_id: Option<&str>) -> Result<(Self, RootToken), StartError> {
        let barrier = crate::stores::memory_barrier().map_err(StartError::Stores)?;
        let open =
            Unsealed::open(engine, &barrier, EngineSource::Memory, Duration::ZERO).map_err(StartError::Stores)?;
        // As Vault's dev mode: a KV version 2 mount at `secret/`.
        let options = std::collections::BTreeMap::from([("version".to_owned(), "2".to_owned())]);
        let secret = MountEntry::new("kv", "key/value secret storage".to_owned(), Some(options));
        open.mounts.enable("secret", secret).map_err(|e| match e {
            MountError::Storage(e) => StartError::Stores(e),
            MountError::Invalid(reason) => StartError::Config(reason),
        })?;
        let root = open
            .tokens
            .create(root_token_request(root_token_id))
            .map_err(StartError::Stores)?;
        let config = SealConfig {
            secret_shares: 1,
            secret_threshold: 1,
        };
        let open = Arc::new(open);
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
    pub(crate) fn persistent(storage: Arc<dyn Storage>, storage_type: &'static str) -> Result<Self, StartError> {
        let storage = Arc::new(MonitoredStorage::new(storage));
        let state = match stored_config(&*storage).map_err(StartError::SealConfig)? {
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
            Err(error) => tracing::error!(%error, "the seal configuration could not be read"),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The open engine and stores; `None` while sealed.
    pub(crate) fn unsealed(&self) -> Option<Arc<Unsealed>> {
        match &*self.read() {
            State::Unsealed { open, .. } => Some(open.clone()),
            _ => None,
        }
    }

    /// The status of `sys/seal-status` and `sys/unseal` (picking up an
    /// initialisation made by another server first).
    pub(crate) fn status(&self) -> SealStatus {
        self.pick_up_initialization();
        let (initialized, sealed, threshold, shares, progress, nonce) = match &*self.read() {
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
        SealStatus {
            initialized,
            sealed,
            threshold,
            shares,
            progress,
            nonce,
            storage_type: self.storage_type,
        }
    }

    /// Whether the server (or another sharing its storage) has been initialised.
    pub(crate) fn is_initialized(&self) -> bool {
        self.pick_up_initialization();
        !matches!(&*self.read(), State::Uninitialized)
    }

    /// Initialises: makes the keys, stores the wrapped root key, leaves the server
    /// sealed, and returns the shares and a root token once.
    pub(crate) fn init(&self, shares: usize, threshold: usize) -> Result<Initialized, SealError> {
        let Some(storage) = self.storage.clone() else {
            return Err(SealError::AlreadyInitialized);
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
            return Err(SealError::AlreadyInitialized);
        }
        let mut unseal_bytes = [0u8; 32];
        getrandom::fill(&mut unseal_bytes).map_err(|_| SealError::Random)?;
        let unseal_key = SecretBytes::copy_from(&unseal_bytes);
        let kek = RootKey::from_bytes(unseal_bytes);
        zeroize::Zeroize::zeroize(&mut unseal_bytes);
        let parts = shamir::split(unseal_key.expose_secret(), shares, threshold).map_err(|e| match e {
            shamir::ShamirError::Parameters(m) | shamir::ShamirError::Shares(m) => SealError::BadShareCounts(m),
            shamir::ShamirError::Random => SealError::Random,
        })?;
        let root = RootKey::generate()?;
        // Open the barrier first (it writes its check entry), then the root token,
        // then the wrapped root key, and last the seal configuration, whose presence
        // marks the server initialised. The barrier's check entry is written only
        // on empty storage, atomically: of two servers initialising one storage at
        // once, the second finds the first's entry and stops here.
        let engine =
            LocalEngine::with_storage(storage.clone(), &root, shared_engine_options()).map_err(|e| match e {
                encrypted_attr::Error::WrongRootKey | encrypted_attr::Error::CorruptStorage { .. } => {
                    SealError::InitializedElsewhere
                }
                other => SealError::Storage(other),
            })?;
        let tokens = TokenStore::open(Arc::new(Barrier::open(storage.clone(), &root)?))?;
        let token = tokens.create(root_token_request(None))?;
        drop((engine, tokens));
        let wrapped = root.wrap(&kek, ROOT_KEY_PATH)?;
        put(&*storage, ROOT_KEY_PATH, wrapped)?;
        let config = SealConfig {
            secret_shares: shares,
            secret_threshold: threshold,
        };
        put(&*storage, SEAL_CONFIG_PATH, crate::stores::encode_json(&config)?)?;
        *self.write() = State::Sealed {
            config,
            shares: Vec::new(),
            nonce: new_nonce(),
        };
        Ok(Initialized {
            shares: parts,
            root_token: token.token,
        })
    }

    /// One step towards unsealing: a share, or a reset. Once enough shares are in,
    /// opens the engine and the stores. Already unsealed, a step changes nothing.
    pub(crate) fn unseal(&self, step: UnsealStep) -> Result<(), SealError> {
        self.pick_up_initialization();
        let mut state = self.write();
        let State::Sealed { config, shares, nonce } = &mut *state else {
            return match &*state {
                State::Uninitialized => Err(SealError::NotInitialized),
                _ => Ok(()),
            };
        };
        let share = match step {
            UnsealStep::Reset => {
                shares.clear();
                *nonce = new_nonce();
                return Ok(());
            }
            UnsealStep::Missing => return Err(SealError::MissingShare),
            UnsealStep::Malformed => return Err(SealError::MalformedShare),
            UnsealStep::Share(share) => share,
        };
        if shares.iter().any(|s| s == &share) {
            // Vault ignores a share it already has.
            return Ok(());
        }
        shares.push(share);
        if shares.len() < config.secret_threshold {
            return Ok(());
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
        Ok(())
    }

    fn open(&self, shares: &[SecretBytes]) -> Result<Unsealed, SealError> {
        let storage: Arc<dyn Storage> = self.storage.clone().ok_or(SealError::NotInitialized)?;
        let unseal_key = shamir::combine(shares).map_err(|_| SealError::InvalidShares)?;
        let kek_bytes: [u8; 32] = unseal_key
            .expose_secret()
            .try_into()
            .map_err(|_| SealError::InvalidShares)?;
        let kek = RootKey::from_bytes(kek_bytes);
        let wrapped = storage.get(ROOT_KEY_PATH)?.ok_or(SealError::RootKeyMissing)?;
        let root = RootKey::unwrap(&wrapped, &kek, ROOT_KEY_PATH).map_err(|_| SealError::WrongShares)?;
        let engine = LocalEngine::with_storage(storage.clone(), &root, shared_engine_options())?;
        let barrier = Arc::new(Barrier::open(storage.clone(), &root)?);
        // The engine's own refresh interval, plus room for a use that had fetched
        // the key just before its refresh fell due to finish.
        let lifetime = SHARED_STATE_REFRESH + Duration::from_millis(500);
        let engines = EngineSource::Storage { storage, root };
        Ok(Unsealed::open(Arc::new(engine), &barrier, engines, lifetime)?)
    }

    /// Forgets the keys (they stay sealed in storage).
    pub(crate) fn seal(&self) -> Result<(), SealError> {
        if self.storage.is_none() {
            return Err(SealError::DevCannotSeal);
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
        Ok(())
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

/// The seal configuration in `storage`, if initialised.
fn stored_config(storage: &dyn Storage) -> Result<Option<SealConfig>, String> {
    let raw = storage.get(SEAL_CONFIG_PATH).map_err(|e| {
        format!(
            "cannot read the seal configuration: {e}: {}",
            crate::error::error_chain(&e)
        )
    })?;
    raw.map(|raw| serde_json::from_slice(&raw).map_err(|_| "the stored seal configuration is damaged".to_owned()))
        .transpose()
}

fn put(storage: &dyn Storage, path: &str, bytes: Vec<u8>) -> Result<(), encrypted_attr::Error> {
    storage.update(path, &mut |_| Ok(Update::Put(bytes.clone())))
}

/// The root token made at start (dev mode) or by `sys/init`: an orphan, never
/// expiring.
fn root_token_request(id: Option<&str>) -> NewTokenRequest<'_> {
    NewTokenRequest {
        policies: vec!["root".into()],
        ttl: None,
        renewable: false,
        id,
        parent: None,
        path: "auth/token/root",
        max_ttl: None,
        limits: crate::stores::tokens::TokenLimits::default(),
    }
}

fn new_nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}
