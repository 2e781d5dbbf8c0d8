//! What every request shares: the server's state (the seal, which holds the
//! engine and the stores once unsealed; the limits and the turns they hand out;
//! the metrics) and its builders for dev mode and for persistent storage.

use std::sync::Arc;

use encrypted_attr::LocalEngine;
use encrypted_attr::storage::Storage;

use crate::error::StartError;
use crate::limits::Limits;
use crate::seal::{RootToken, Seal};

/// Token lookups in storage at once: storage is one connection per server.
const TOKEN_LOOKUPS_AT_ONCE: usize = 4;

/// The version reported by `sys/health` and `sys/seal-status`.
pub const VERSION: &str = crate::seal::VERSION;

/// Everything handlers share: the seal state, which holds the engine and tokens
/// once unsealed, and the limits with the turns they hand out.
pub struct AppState {
    pub(crate) seal: Seal,
    pub(crate) limits: Limits,
    /// One permit per request whose work may run now (`max_concurrent_requests`).
    pub(crate) work: tokio::sync::Semaphore,
    /// Token lookups in storage running at once (see `pipeline::handle`).
    pub(crate) token_lookups: tokio::sync::Semaphore,
    /// What `sys/metrics` reports.
    pub(crate) metrics: crate::metrics::Metrics,
    /// Whether `sys/metrics` answers without a token (Vault's listener setting
    /// `unauthenticated_metrics_access`, on in dev mode).
    pub(crate) metrics_without_token: bool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// A dev-mode state: unsealed over `engine`, with a root token (`id` fixes its
    /// value, as `-dev-root-token-id` does). Returns the token to show once.
    ///
    /// # Errors
    /// The OS random source failed.
    pub fn new(engine: Arc<LocalEngine>, root_token_id: Option<&str>) -> Result<(Self, RootToken), StartError> {
        let (seal, root) = Seal::dev(engine, root_token_id)?;
        Ok((Self::over(seal), root))
    }

    fn over(seal: Seal) -> Self {
        let limits = Limits::default();
        let storage_latency = seal.storage().map(|storage| storage.latency_histogram());
        Self {
            metrics: crate::metrics::Metrics::new(storage_latency, true),
            metrics_without_token: false,
            seal,
            limits,
            work: tokio::sync::Semaphore::new(limits.max_concurrent_requests),
            token_lookups: tokio::sync::Semaphore::new(TOKEN_LOOKUPS_AT_ONCE),
        }
    }

    /// The same state with other limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.work = tokio::sync::Semaphore::new(limits.max_concurrent_requests.max(1));
        self.limits = limits;
        self
    }

    /// The same state, with transit metrics labelled by key name (`true`, the
    /// default) or not (for operators who treat key names as sensitive).
    #[must_use]
    pub fn with_metrics_key_names(mut self, key_names: bool) -> Self {
        let storage_latency = self.seal.storage().map(|storage| storage.latency_histogram());
        self.metrics = crate::metrics::Metrics::new(storage_latency, key_names);
        self
    }

    /// The same state, answering `sys/metrics` without a token (`true`) or only to
    /// a token allowed to read it (`false`, the default).
    #[must_use]
    pub fn with_metrics_without_token(mut self, without_token: bool) -> Self {
        self.metrics_without_token = without_token;
        self
    }

    /// Reopens the audit devices' files (`SIGHUP`); nothing while sealed.
    pub(crate) fn reopen_audit_files(&self) {
        if let Some(open) = self.seal.unsealed() {
            open.audit.reopen();
        }
    }

    /// The limits this state enforces.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A state over persistent storage: uninitialised until `sys/init`, then sealed
    /// until enough unseal shares arrive at `sys/unseal`.
    ///
    /// # Errors
    /// The storage cannot be read or its seal configuration is damaged.
    pub fn persistent(storage: Arc<dyn Storage>, storage_type: &'static str) -> Result<Self, StartError> {
        Ok(Self::over(Seal::persistent(storage, storage_type)?))
    }
}
