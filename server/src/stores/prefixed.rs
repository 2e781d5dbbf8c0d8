//! A view of a storage below a path prefix: a transit engine mounted at a path
//! other than `transit/` keeps its keys there (`logical/<mount uuid>/…`), sealed
//! by that engine's own barrier, apart from every other mount's.

use std::sync::Arc;

use encrypted_attr::Error;
use encrypted_attr::storage::{Storage, UpdateFn};

/// `storage`, with every path below `prefix` (which ends in `/`).
pub(crate) struct PrefixedStorage {
    storage: Arc<dyn Storage>,
    prefix: String,
}

impl PrefixedStorage {
    pub(crate) fn new(storage: Arc<dyn Storage>, prefix: String) -> Self {
        debug_assert!(prefix.ends_with('/'));
        Self { storage, prefix }
    }

    /// Deletes everything below the prefix (the mount is gone).
    pub(crate) fn clear(&self) -> Result<(), Error> {
        for path in self.storage.list(&self.prefix)? {
            self.storage
                .update(&path, &mut |_| Ok(encrypted_attr::storage::Update::Delete))?;
        }
        Ok(())
    }
}

impl Storage for PrefixedStorage {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        self.storage.get(&format!("{}{path}", self.prefix))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .storage
            .list(&format!("{}{prefix}", self.prefix))?
            .into_iter()
            .filter_map(|path| path.strip_prefix(&self.prefix).map(str::to_owned))
            .collect())
    }

    fn update(&self, path: &str, change: &mut UpdateFn<'_>) -> Result<(), Error> {
        self.storage.update(&format!("{}{path}", self.prefix), change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encrypted_attr::storage::{MemoryStorage, Update};

    #[test]
    fn a_view_sees_only_its_prefix_and_clears_only_it() {
        let shared: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let a = PrefixedStorage::new(shared.clone(), "logical/a/".into());
        let b = PrefixedStorage::new(shared.clone(), "logical/b/".into());
        a.update("keys/k", &mut |_| Ok(Update::Put(b"1".to_vec())))
            .expect("put");
        b.update("keys/k", &mut |_| Ok(Update::Put(b"2".to_vec())))
            .expect("put");
        assert_eq!(a.get("keys/k").expect("get"), Some(b"1".to_vec()));
        assert_eq!(a.list("keys/").expect("list"), ["keys/k"]);
        a.clear().expect("clear");
        assert!(a.list("").expect("list").is_empty());
        assert_eq!(b.get("keys/k").expect("get"), Some(b"2".to_vec()));
    }
}
