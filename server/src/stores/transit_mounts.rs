//! The engines of transit mounts at paths other than `transit/`: one
//! `LocalEngine` per mount, opened on first use over the mount's own part of
//! storage (`logical/<mount uuid>/`), so each mount has its own keys.
//!
//! Each mount's engine seals under a root key of its own, made when the mount
//! is first used and stored wrapped under the server's root key (with its path
//! as associated data): an entry copied from one mount's storage to another's,
//! or to the built-in engine's, does not open there.

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

/// Where `mount`'s wrapped root key is kept: outside the engine's own view of
/// storage, which holds only what the engine wrote.
fn root_key_path(mount: &MountEntry) -> String {
    format!("sys/mount-root-keys/{}", mount.uuid)
}

/// The root key of `mount`'s engine: read and unwrapped, or made and stored on
/// first use. Of two servers making one at once, both use the one stored first.
fn mount_root_key(storage: &dyn Storage, root: &RootKey, mount: &MountEntry) -> Result<RootKey, Error> {
    let path = root_key_path(mount);
    if storage.get(&path)?.is_none() {
        let wrapped = RootKey::generate()?.wrap(root, &path)?;
        storage.update(&path, &mut |current| {
            Ok(match current {
                Some(_) => encrypted_attr::storage::Update::Keep,
                None => encrypted_attr::storage::Update::Put(wrapped.clone()),
            })
        })?;
    }
    let wrapped = storage.get(&path)?.ok_or_else(|| Error::CorruptStorage {
        location: path.clone(),
        reason: "a transit mount's root key vanished as it was made",
    })?;
    RootKey::unwrap(&wrapped, root, &path)
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
            EngineSource::Memory => LocalEngine::ephemeral_with(crate::sharing::server_engine_options())?,
            EngineSource::Storage { storage, root } => {
                let mount_root = mount_root_key(&**storage, root, mount)?;
                let view = PrefixedStorage::new(storage.clone(), mount.storage_prefix());
                LocalEngine::with_storage(Arc::new(view), &mount_root, crate::sharing::shared_engine_options())?
            }
        });
        open.insert(mount.uuid.clone(), engine.clone());
        Ok(engine)
    }

    /// Closes the engines of mounts no longer in the table (disabled by another
    /// server sharing storage, which deleted their keys).
    pub(crate) fn retain(&self, mounted: &[MountEntry]) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|uuid, _| mounted.iter().any(|m| &m.uuid == uuid));
    }

    /// Closes `mount`'s engine and deletes its keys (the mount was disabled).
    pub(crate) fn remove(&self, mount: &MountEntry) -> Result<(), Error> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&mount.uuid);
        if let EngineSource::Storage { storage, .. } = &self.source {
            PrefixedStorage::new(storage.clone(), mount.storage_prefix()).clear()?;
            storage.update(&root_key_path(mount), &mut |_| {
                Ok(encrypted_attr::storage::Update::Delete)
            })?;
        }
        Ok(())
    }
}
