//! The token tree's revocations: a token with its descendants, by accessor, by
//! the path that made it, or orphaning its children; and what the lease manager
//! asks of revoked tokens.

use super::super::Change;
use std::sync::atomic::Ordering;

use super::{MAX_REMEMBERED_REVOCATIONS, MAX_TREE_DEPTH, TokenEntry, TokenStore, parse_hash};

impl TokenStore {
    /// Revokes a token and, with it, its descendants: true if it was known.
    /// Fails (and the caller must answer 5xx) when storage cannot delete it, since
    /// storage is what other servers and later lookups read. The token goes first:
    /// its descendants are refused from that moment (their ancestry is checked on
    /// every use), and their entries are then removed.
    pub(crate) fn revoke(&self, token: &str) -> Result<bool, encrypted_attr::Error> {
        let hash = self.hash(token.as_bytes());
        let known = self.entries.exists(&Self::name(&hash))?;
        self.forget(&hash)?;
        self.revoke_descendants(&hash, 0)?;
        Ok(known)
    }

    /// Whether the token whose [`holder`](TokenEntry::holder) is `holder` is still
    /// valid (stored, unexpired, its ancestors too). A storage failure is an
    /// error, never a "no": its leases must not be revoked for an outage.
    pub(crate) fn holds(&self, holder: &str) -> Result<bool, encrypted_attr::Error> {
        match parse_hash(holder) {
            Some(hash) => Ok(self.valid(&hash)?.is_some()),
            None => Ok(false),
        }
    }

    /// The holders of the tokens revoked here since the last call.
    pub(crate) fn take_revoked(&self) -> Vec<String> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The token an accessor names, if it names one still stored.
    fn hash_of_accessor(&self, accessor: &str) -> Result<Option<[u8; 32]>, encrypted_attr::Error> {
        if accessor.is_empty() || accessor.contains('/') || accessor == "." || accessor == ".." {
            return Ok(None);
        }
        Ok(self.accessors.get(accessor)?.and_then(|link| parse_hash(&link.0)))
    }

    /// The entry of the valid token an accessor names (`lookup-accessor`).
    pub(crate) fn lookup_accessor(&self, accessor: &str) -> Result<Option<TokenEntry>, encrypted_attr::Error> {
        match self.hash_of_accessor(accessor)? {
            Some(hash) => self.valid(&hash),
            None => Ok(None),
        }
    }

    /// Revokes the token an accessor names, and its descendants: true if known.
    pub(crate) fn revoke_accessor(&self, accessor: &str) -> Result<bool, encrypted_attr::Error> {
        let Some(hash) = self.hash_of_accessor(accessor)? else {
            return Ok(false);
        };
        self.forget(&hash)?;
        self.revoke_descendants(&hash, 0)?;
        Ok(true)
    }

    /// Revokes every token made on `prefix` or a path below it (whole segments:
    /// `auth/userpass` does not take `auth/userpass2/…`), and their descendants;
    /// returns how many. Reads every stored token: an operator's action, not a
    /// request path.
    pub(crate) fn revoke_prefix(&self, prefix: &str) -> Result<usize, encrypted_attr::Error> {
        let prefix = prefix.trim_end_matches('/');
        let below = format!("{prefix}/");
        let mut revoked = 0;
        for name in self.entries.names_under("")? {
            let Some(stored) = self.entries.get(&name)? else {
                continue;
            };
            let Some(hash) = parse_hash(&name) else { continue };
            if !prefix.is_empty() && (stored.path == prefix || stored.path.starts_with(&below)) {
                self.forget(&hash)?;
                self.revoke_descendants(&hash, 0)?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Revokes a token but not its children, which become orphans (`revoke-orphan`).
    pub(crate) fn revoke_orphan(&self, token: &str) -> Result<bool, encrypted_attr::Error> {
        let hash = self.hash(token.as_bytes());
        if !self.entries.exists(&Self::name(&hash))? {
            return Ok(false);
        }
        // Children first: were this interrupted, they would still have a parent.
        for (link, child) in self.children_of(&hash)? {
            if let Some(child) = child {
                self.entries.update(&Self::name(&child), &mut |current| match current {
                    Some(mut stored) => {
                        stored.parent = None;
                        Change::Put(stored)
                    }
                    None => Change::Keep,
                })?;
                self.tokens
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&child);
            }
            self.children.delete(&link)?;
        }
        self.forget(&hash)?;
        Ok(true)
    }

    /// Deletes one token's entry from storage and the cache.
    fn forget(&self, hash: &[u8; 32]) -> Result<(), encrypted_attr::Error> {
        let accessor = self.entries.get(&Self::name(hash))?.map(|stored| stored.accessor);
        self.entries.delete(&Self::name(hash))?;
        if let Some(accessor) = accessor.filter(|a| !a.is_empty()) {
            self.accessors.delete(&accessor)?;
        }
        // After the delete, so a storage read racing it either misses the entry or
        // sees the generation change and does not cache it (see `fetch`).
        self.revocations.fetch_add(1, Ordering::SeqCst);
        {
            let mut revoked = self.revoked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if revoked.len() < MAX_REMEMBERED_REVOCATIONS {
                revoked.push(Self::name(hash));
            }
        }
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(hash);
        Ok(())
    }

    /// Removes the entries of every descendant of `parent` (already refused, as
    /// `parent` is gone) and the tree's index under it.
    fn revoke_descendants(&self, parent: &[u8; 32], depth: usize) -> Result<(), encrypted_attr::Error> {
        if depth > MAX_TREE_DEPTH {
            return Ok(());
        }
        for (link, child) in self.children_of(parent)? {
            if let Some(child) = child {
                self.forget(&child)?;
                self.revoke_descendants(&child, depth + 1)?;
            }
            self.children.delete(&link)?;
        }
        Ok(())
    }
}
