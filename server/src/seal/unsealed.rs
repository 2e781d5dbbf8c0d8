//! What an unsealed server holds: the engine and every store opened over the
//! barrier, and the timing of their re-reads from shared storage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use encrypted_attr::LocalEngine;
use encrypted_attr::storage::Barrier;

use crate::audit::Audit;
use crate::sharing::SHARED_STATE_REFRESH;
use crate::stores::mounts::{MountEntry, MountTable};
use crate::stores::policies::PolicyStore;
use crate::stores::tokens::TokenStore;
use crate::stores::transit_mounts::{EngineSource, TransitMounts};

/// Everything an unsealed server uses.
pub(crate) struct Unsealed {
    pub(crate) engine: Arc<LocalEngine>,
    pub(crate) tokens: TokenStore,
    /// Every secret issued with a lease, and their expiry.
    pub(crate) leases: crate::leases::Leases,
    pub(crate) policies: PolicyStore,
    pub(crate) audit: Audit,
    /// The secrets engines mounted besides the built-in transit.
    pub(crate) mounts: MountTable,
    /// The auth methods enabled besides tokens.
    pub(crate) auth_methods: MountTable,
    /// Failed logins per user, and the users locked out for them.
    pub(crate) logins: crate::stores::lockout::Lockouts,
    /// What the mounted engines keep their data in.
    pub(crate) barrier: Arc<Barrier>,
    /// The engines of transit mounts at other paths than `transit/`.
    pub(crate) transit_mounts: TransitMounts,
    /// When policies, audit devices and mounts are next re-read from storage (milliseconds
    /// since this value was made; persistent servers only).
    next_refresh: AtomicU64,
    born: Instant,
    /// How long other servers sharing the storage may go on using a key they have
    /// cached (zero when nothing is shared): a deletion answers only after this,
    /// so that once it has answered no server encrypts with the deleted key.
    pub(crate) shared_cache_lifetime: Duration,
}

impl Unsealed {
    /// The engine, and the stores opened over `barrier`.
    pub(super) fn open(
        engine: Arc<LocalEngine>,
        barrier: &Arc<Barrier>,
        engines: EngineSource,
        shared_cache_lifetime: Duration,
    ) -> Result<Self, encrypted_attr::Error> {
        crate::stores::move_names_to_canonical_form(barrier)?;
        Ok(Self {
            engine,
            tokens: TokenStore::open(barrier.clone())?,
            leases: crate::leases::Leases::open(barrier.clone()),
            policies: PolicyStore::open(barrier.clone())?,
            audit: Audit::open(barrier.clone())?,
            mounts: MountTable::secrets(barrier.clone())?,
            auth_methods: MountTable::auth_methods(barrier.clone())?,
            logins: crate::stores::lockout::Lockouts::default(),
            barrier: barrier.clone(),
            transit_mounts: TransitMounts::new(engines),
            next_refresh: AtomicU64::new(0),
            born: Instant::now(),
            shared_cache_lifetime,
        })
    }

    /// Claims the re-read of policies, audit devices and mounts if [`SHARED_STATE_REFRESH`]
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

    /// Re-reads policies, audit devices and mounts from storage when other servers may
    /// share it (a dev server's memory has no other writer), and reopens audit
    /// files removed underneath.
    pub(crate) fn reload_shared_state(&self) {
        if !self.shared_cache_lifetime.is_zero() {
            self.policies.reload();
            self.audit.reload();
            self.reload_mount_tables();
        }
        self.audit.reopen_moved();
    }
}

impl Unsealed {
    /// Re-reads the mount tables (the storage probe does it too, so a server that
    /// only serves logins still sees auth methods enabled elsewhere), and closes
    /// the engines of transit mounts that are gone.
    pub(crate) fn reload_mount_tables(&self) {
        self.mounts.reload();
        self.auth_methods.reload();
        let mounted: Vec<MountEntry> = self.mounts.list().into_iter().map(|(_, entry)| entry).collect();
        self.transit_mounts.retain(&mounted);
    }
}
