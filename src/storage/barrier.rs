//! The barrier: seals every stored entry under a key derived from the root key, with
//! the entry's storage path as associated data.
//!
//! Binding the path means an entry copied to another path (say, one key's material
//! pasted over another's) fails to open. The barrier also keeps a known entry,
//! `core/root-key-check`, so a wrong root key is reported as such at open time
//! instead of as a corrupted entry later. Sealed layout: `0x01 ‖ nonce(12) ‖ ct ‖ tag`.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::{RootKey, Storage, Update, check_path};
use crate::cipher::{self, AeadKey, KeyType};
use crate::error::{Error, Result};

/// Format byte of every sealed entry.
const SEALED_FORMAT: u8 = 1;
/// HKDF `info` separating the barrier key from any other use of the root key.
const BARRIER_KEY_INFO: &[u8] = b"encrypted-attr/barrier/v1";
/// Path and contents of the entry that proves the root key is the right one.
const CHECK_PATH: &str = "core/root-key-check";
const CHECK_CONTENTS: &[u8] = b"encrypted-attr keyring";

/// Encrypting view over a [`Storage`]: callers read and write plaintext entries,
/// the backend only ever holds sealed bytes.
pub struct Barrier {
    storage: Arc<dyn Storage>,
    key: AeadKey,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Barrier { .. }")
    }
}

impl Barrier {
    /// Opens the barrier over `storage` with `root`, initialising an empty storage.
    ///
    /// # Errors
    /// [`Error::WrongRootKey`] if the storage was sealed under another root key;
    /// [`Error::CorruptStorage`] if it holds entries but no check entry.
    pub fn open(storage: Arc<dyn Storage>, root: &RootKey) -> Result<Self> {
        let mut derived = Zeroizing::new([0u8; 32]);
        cipher::hkdf_sha256(root.expose_bytes(), BARRIER_KEY_INFO, &mut *derived)?;
        let barrier = Self {
            storage,
            key: AeadKey::new(KeyType::Aes256Gcm96, &*derived)?,
        };
        barrier.check_or_initialise()?;
        Ok(barrier)
    }

    fn check_or_initialise(&self) -> Result<()> {
        if let Some(sealed) = self.storage.get(CHECK_PATH)? {
            return match self.open_entry(CHECK_PATH, &sealed) {
                Ok(contents) if contents.as_slice() == CHECK_CONTENTS => Ok(()),
                _ => Err(Error::WrongRootKey),
            };
        }
        if !self.storage.list("")?.is_empty() {
            return Err(Error::CorruptStorage {
                location: CHECK_PATH.into(),
                reason: "entries exist but the root key check entry is missing",
            });
        }
        let sealed = self.seal(CHECK_PATH, CHECK_CONTENTS)?;
        self.storage.update(CHECK_PATH, &mut |current| match current {
            // Another process initialised the storage first; check its key instead.
            Some(_) => Ok(Update::Keep),
            None => Ok(Update::Put(sealed.clone())),
        })?;
        match self.storage.get(CHECK_PATH)? {
            Some(sealed) if self.open_entry(CHECK_PATH, &sealed).is_ok() => Ok(()),
            _ => Err(Error::WrongRootKey),
        }
    }

    /// Reads and opens one entry.
    ///
    /// # Errors
    /// Storage failure, or [`Error::CorruptStorage`] if the entry fails to open.
    pub fn get(&self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        check_path(path)?;
        match self.storage.get(path)? {
            Some(sealed) => self.open_entry(path, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// The paths under `prefix`.
    ///
    /// # Errors
    /// Storage failure.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.storage.list(prefix)
    }

    /// Atomic read-modify-write of one entry in plaintext: `change` sees the opened
    /// current value and returns `None` to keep it or `Some(Update)` with plaintext.
    ///
    /// # Errors
    /// The closure's error, a storage failure, or a corrupted current entry.
    pub fn update(&self, path: &str, change: &mut dyn FnMut(Option<&[u8]>) -> Result<Update>) -> Result<()> {
        check_path(path)?;
        self.storage.update(path, &mut |current| {
            let opened = current.map(|sealed| self.open_entry(path, sealed)).transpose()?;
            match change(opened.as_deref().map(Vec::as_slice))? {
                Update::Put(plain) => {
                    let plain = Zeroizing::new(plain);
                    Ok(Update::Put(self.seal(path, &plain)?))
                }
                other => Ok(other),
            }
        })
    }

    fn seal(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce = cipher::random_nonce(true)?;
        let payload = self.key.seal(&nonce, path.as_bytes(), plaintext);
        let mut sealed = Vec::with_capacity(1 + payload.len());
        sealed.push(SEALED_FORMAT);
        sealed.extend_from_slice(&payload);
        Ok(sealed)
    }

    fn open_entry(&self, path: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let corrupt = |reason| Error::CorruptStorage {
            location: path.to_owned(),
            reason,
        };
        match sealed.split_first() {
            Some((&SEALED_FORMAT, payload)) => self
                .key
                .open_payload(path.as_bytes(), payload)
                .map(crate::secret::SecretBytes::into_zeroizing)
                .map_err(|_| corrupt("entry failed authentication (damaged, or moved from another path)")),
            Some(_) => Err(corrupt("unknown sealed entry format")),
            None => Err(corrupt("empty sealed entry")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    #[test]
    fn wrong_root_key_is_reported_as_such() -> Result<()> {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let root = RootKey::generate()?;
        let barrier = Barrier::open(storage.clone(), &root)?;
        barrier.update("keys/a", &mut |_| Ok(Update::Put(b"secret".to_vec())))?;
        assert!(matches!(
            Barrier::open(storage.clone(), &RootKey::generate()?),
            Err(Error::WrongRootKey)
        ));
        let again = Barrier::open(storage.clone(), &root)?;
        assert_eq!(again.get("keys/a")?.as_deref().map(Vec::as_slice), Some(&b"secret"[..]));
        Ok(())
    }

    #[test]
    fn entries_are_sealed_and_bound_to_their_path() -> Result<()> {
        let storage = Arc::new(MemoryStorage::new());
        let barrier = Barrier::open(storage.clone(), &RootKey::generate()?)?;
        barrier.update("keys/a", &mut |_| Ok(Update::Put(b"secret-a".to_vec())))?;
        let raw = storage.get("keys/a")?.ok_or(Error::DecryptionFailed)?;
        assert!(!raw.windows(8).any(|w| w == b"secret-a"));
        // Paste a's sealed bytes under b: it must not open.
        storage.update("keys/b", &mut |_| Ok(Update::Put(raw.clone())))?;
        assert!(matches!(barrier.get("keys/b"), Err(Error::CorruptStorage { .. })));
        Ok(())
    }
}
