//! Validated identifiers: a key's name ([`KeyName`]) and a key version ([`KeyVersion`]).
//!
//! Both are parsed at the boundary so the rest of the crate never handles a raw
//! string or integer with rules attached.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a key name or version was refused. Converts into [`crate::Error`]
/// (`InvalidKeyName`, or `InvalidRequest` for a version), so `?` works in code
/// returning the crate's error; kept here so that validated names need nothing
/// of the error type that holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// A key name does not follow Vault's rule.
    #[error("invalid key name: {reason}")]
    InvalidKeyName {
        /// Why the name was refused.
        reason: &'static str,
    },
    /// Key versions start at 1.
    #[error("key versions start at 1")]
    InvalidVersion,
}

/// The longest key name accepted. Vault sets no limit; we cap names so a key name
/// can always be a storage path segment and a database identifier fragment.
pub const MAX_KEY_NAME_LEN: usize = 128;

/// The name of a transit key, following Vault's rule `\w(([\w-.]+)?\w)?`: ASCII
/// letters, digits and `_`, with `-` and `.` allowed inside, at most
/// [`MAX_KEY_NAME_LEN`] bytes.
///
/// ```
/// use encrypted_attr::KeyName;
/// let name: KeyName = "users_ssn".parse()?;
/// assert_eq!(name.as_str(), "users_ssn");
/// assert!("-bad".parse::<KeyName>().is_err());
/// # Ok::<(), encrypted_attr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(Box<str>);

impl KeyName {
    /// Validates `name` against Vault's key-name rule.
    ///
    /// # Errors
    /// [`NameError::InvalidKeyName`] when the name is empty, too long, or uses
    /// other characters than those allowed.
    pub fn new(name: &str) -> Result<Self, NameError> {
        match key_name_problem(name) {
            Some(reason) => Err(NameError::InvalidKeyName { reason }),
            None => Ok(Self(name.into())),
        }
    }

    /// The name as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `name` is not a valid key name, or `None` when it is: the one rule, usable
/// at compile time (the derive asserts its key names with it).
#[must_use]
pub const fn key_name_problem(name: &str) -> Option<&'static str> {
    const fn is_word(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_'
    }
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Some("empty");
    }
    if bytes.len() > MAX_KEY_NAME_LEN {
        return Some("longer than 128 bytes");
    }
    if !is_word(bytes[0]) {
        return Some("must start with a letter, digit or '_'");
    }
    if !is_word(bytes[bytes.len() - 1]) {
        return Some("must end with a letter, digit or '_'");
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(is_word(b) || b == b'-' || b == b'.') {
            return Some("only letters, digits, '_', '-' and '.' are allowed");
        }
        i += 1;
    }
    None
}

impl FromStr for KeyName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

impl TryFrom<&str> for KeyName {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyName({:?})", &*self.0)
    }
}

impl AsRef<str> for KeyName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for KeyName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A key version: 1 for a new key, one more at each rotation. Never zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyVersion(NonZeroU32);

impl KeyVersion {
    /// The first version of every key.
    pub const FIRST: Self = Self(NonZeroU32::MIN);

    /// A version from its number; `None` for zero.
    #[must_use]
    pub const fn new(version: u32) -> Option<Self> {
        match NonZeroU32::new(version) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The version number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0.get()
    }

    /// The version after this one; `None` at `u32::MAX`.
    #[must_use]
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl TryFrom<u32> for KeyVersion {
    type Error = NameError;
    fn try_from(v: u32) -> Result<Self, NameError> {
        Self::new(v).ok_or(NameError::InvalidVersion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_follow_vaults_rule() {
        for good in ["a", "users_ssn", "a.b-c", "_x_", "9", "A-1.2"] {
            assert!(KeyName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", ".a", "a.", "a b", "a/b", "é", "a\0"] {
            assert!(KeyName::new(bad).is_err(), "{bad:?}");
        }
        assert!(KeyName::new(&"a".repeat(MAX_KEY_NAME_LEN)).is_ok());
        assert!(KeyName::new(&"a".repeat(MAX_KEY_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn versions_are_never_zero() {
        assert!(KeyVersion::new(0).is_none());
        assert_eq!(KeyVersion::FIRST.get(), 1);
        assert_eq!(KeyVersion::FIRST.next().map(KeyVersion::get), Some(2));
        assert!(KeyVersion::new(u32::MAX).and_then(KeyVersion::next).is_none());
    }
}
