//! The engines of transit mounts at paths other than `transit/`: one
//! `LocalEngine` per mount, opened on first use over the mount's own part of
//! storage (`logical/<mount uuid>/`), so each mount has its own keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use encrypted_attr::storage::Storage;
use encrypted_attr::{Error, LocalEngine, RootKey};

use super::mounts::MountEntry;
use super::prefixed::PrefixedStorage;

/// Where mounted engines keep their keys.
pub(crate) enum EngineSource {
    /// In memory (dev mode): a mount's keys go with the process.
    Memory,
    /// In the server's storage, sealed under the root key.
    Storage { storage: Arc<dyn Storage>, root: RootKey },
}

/// The mounted transit engines, by mount uuid.
pub(crate) struct TransitMounts {
    source: EngineSource,
    open: Mutex<HashMap<String, Arc<LocalEngine>>>,
}

impl TransitMounts {
    pub(crate) fn new(source: EngineSource) -> Self {
        Self {
            source,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The engine of `mount`, opened on first use.
    pub(crate) fn engine(&self, mount: &MountEntry) -> Result<Arc<LocalEngine>, Error> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(engine) = open.get(&mount.uuid) {
            return Ok(engine.clone());
        }
        let engine = Arc::new(match &self.source {
            EngineSource::Memory => LocalEngine::ephemeral_with(crate::seal::server_engine_options())?,
            EngineSource::Storage { storage, root } => {
                let view = PrefixedStorage::new(storage.clone(), mount.storage_prefix());
                LocalEngine::with_storage(Arc::new(view), root, crate::seal::shared_engine_options())?
            }
        });
        open.insert(mount.uuid.clone(), engine.clone());
        Ok(engine)
    }

    /// Closes `mount`'s engine and deletes its keys (the mount was disabled).
    pub(crate) fn remove(&self, mount: &MountEntry) -> Result<(), Error> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&mount.uuid);
        if let EngineSource::Storage { storage, .. } = &self.source {
            PrefixedStorage::new(storage.clone(), mount.storage_prefix()).clear()?;
        }
        Ok(())
    }
}
