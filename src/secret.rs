//! Secret byte buffers: plaintext and key material that is wiped on drop, redacted in
//! `Debug`, neither `Clone` nor `Serialize`, and read only through `expose_secret`.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Bytes that must not leak: a decrypted value, a data key, a plaintext to encrypt.
///
/// The buffer is zeroized when dropped (including spare capacity), prints as
/// `SecretBytes([REDACTED; n])`, and can only be read through
/// [`expose_secret`](Self::expose_secret), which makes every read greppable.
///
/// ```
/// use encrypted_attr::SecretBytes;
/// let secret = SecretBytes::from("123-45-6789");
/// assert_eq!(format!("{secret:?}"), "SecretBytes([REDACTED; 11])");
/// assert_eq!(secret.expose_secret(), b"123-45-6789");
/// ```
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

/// A plaintext value handed to or returned by the engine.
pub type Plaintext = SecretBytes;

impl SecretBytes {
    /// Takes ownership of `bytes`; they are wiped when this value drops.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copies `bytes` into a new secret buffer. The caller remains responsible for
    /// its own copy.
    #[must_use]
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// Reads the secret. Every call site is a place where the secret leaves our care.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty (an empty plaintext is still encrypted, never stored in clear).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Moves the bytes out into a [`Zeroizing`] vector, which still wipes on drop.
    #[must_use]
    pub fn into_zeroizing(mut self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(std::mem::take(&mut self.0))
    }

    /// Hands the buffer over without wiping it, for a caller that keeps the value in
    /// clear anyway (a model's `String` field): saves a copy and a wipe per value.
    pub(crate) fn into_unprotected_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    /// Crate-internal mutable access, used to decrypt in place.
    pub(crate) fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// Duplicates the secret. Deliberately not `Clone`: copies must be asked for.
    #[must_use]
    pub fn duplicate_secret(&self) -> Self {
        Self(self.0.clone())
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        Self::copy_from(bytes)
    }
}

impl From<&str> for SecretBytes {
    fn from(text: &str) -> Self {
        Self::copy_from(text.as_bytes())
    }
}

impl From<String> for SecretBytes {
    fn from(text: String) -> Self {
        Self(text.into_bytes())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {}])", self.0.len())
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time comparison of the contents (lengths are not secret).
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SecretBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = SecretBytes::from("hunter2");
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(SecretBytes::from("a"), SecretBytes::from("a"));
        assert_ne!(SecretBytes::from("a"), SecretBytes::from("b"));
        assert_ne!(SecretBytes::from("a"), SecretBytes::from("ab"));
    }
}
