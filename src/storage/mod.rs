//! Where sealed key material lives: the [`Storage`] trait, and the memory backend.
//!
//! A backend stores opaque byte strings by path; it never sees a plaintext key,
//! because everything reaching it has been sealed by the [`Barrier`] under the root
//! key. The one write primitive is [`Storage::update`], an atomic read-modify-write
//! of one path: key changes run inside it, so two writers (threads, processes, or
//! later servers sharing a database) apply their changes one after the other and
//! never overwrite each other's versions.

mod barrier;
mod file;
mod root_key;

use std::collections::BTreeMap;
use std::sync::Mutex;

pub use barrier::Barrier;
pub use file::FileStorage;
pub use root_key::{ROOT_KEY_LEN, RootKey};

use crate::error::{Error, Result};

/// What an [`Storage::update`] closure decided to do with the entry it was shown.
#[derive(Debug)]
pub enum Update {
    /// Leave the entry as it is.
    Keep,
    /// Replace (or create) the entry with these bytes.
    Put(Vec<u8>),
    /// Remove the entry.
    Delete,
}

/// The closure type run by [`Storage::update`]: sees the current value, decides.
pub type UpdateFn<'a> = dyn FnMut(Option<&[u8]>) -> Result<Update> + 'a;

/// A place to keep sealed entries by path (`keys/users_ssn`, `core/…`).
///
/// Paths are ASCII, `/`-separated. Implementations must make [`update`](Self::update)
/// atomic with respect to every other writer of the same storage, including other
/// processes, and must never leave a half-written entry behind.
pub trait Storage: Send + Sync + 'static {
    /// Reads one entry.
    ///
    /// # Errors
    /// I/O failure or a damaged backend.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>>;

    /// The paths that start with `prefix`, sorted.
    ///
    /// # Errors
    /// I/O failure or a damaged backend.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Atomically reads the entry at `path`, passes it to `change`, and applies what
    /// the closure returns. If the closure fails nothing is written.
    ///
    /// # Errors
    /// The closure's error, or I/O failure (then nothing was changed).
    fn update(&self, path: &str, change: &mut UpdateFn<'_>) -> Result<()>;
}

/// Storage in process memory: for tests and ephemeral engines. Lost on drop.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    entries: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStorage {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave a half-applied update (updates
        // are a single insert or remove), so a poisoned lock is still consistent.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Storage for MemoryStorage {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().get(path).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .lock()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn update(&self, path: &str, change: &mut UpdateFn<'_>) -> Result<()> {
        let mut entries = self.lock();
        match change(entries.get(path).map(Vec::as_slice))? {
            Update::Keep => {}
            Update::Put(bytes) => {
                entries.insert(path.to_owned(), bytes);
            }
            Update::Delete => {
                entries.remove(path);
            }
        }
        Ok(())
    }
}

/// Checks a storage path: non-empty ASCII segments without `.`/`..`.
pub(crate) fn check_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.is_ascii()
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\0'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid storage path {path:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_update_and_list() -> Result<()> {
        let s = MemoryStorage::new();
        s.update("keys/a", &mut |old| {
            assert!(old.is_none());
            Ok(Update::Put(b"1".to_vec()))
        })?;
        s.update("keys/b", &mut |_| Ok(Update::Put(b"2".to_vec())))?;
        s.update("core/x", &mut |_| Ok(Update::Put(b"3".to_vec())))?;
        assert_eq!(s.list("keys/")?, ["keys/a", "keys/b"]);
        s.update("keys/a", &mut |_| Err(Error::invalid("no")))
            .err()
            .ok_or_else(|| Error::invalid("closure error must propagate"))?;
        assert_eq!(s.get("keys/a")?.as_deref(), Some(&b"1"[..]));
        s.update("keys/a", &mut |_| Ok(Update::Delete))?;
        assert_eq!(s.get("keys/a")?, None);
        Ok(())
    }

    #[test]
    fn paths_are_checked() {
        assert!(check_path("keys/a").is_ok());
        for bad in ["", "/a", "a/", "a//b", "a/../b", "é"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
