//! The 256-bit root key that seals everything in storage: loaded from bytes, an
//! environment variable or a key file, wiped on drop, never printed.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use crate::cipher;
use crate::error::{Error, Result};

/// Length of a root key in bytes.
pub const ROOT_KEY_LEN: usize = 32;

/// The key that opens a keyring. Whoever holds it can read every key in it, so it
/// lives outside the keyring: in a secret manager, an environment variable, or a
/// file readable only by the application.
///
/// Text forms (environment variable, key file) are standard base64 (44 characters)
/// or hex (64 characters); a key file may also hold the 32 raw bytes.
pub struct RootKey(Zeroizing<[u8; ROOT_KEY_LEN]>);

impl RootKey {
    /// A root key from its 32 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; ROOT_KEY_LEN]) -> Self {
        // The caller's array is a copy we cannot reach; they should wipe it.
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random root key from the operating system.
    ///
    /// # Errors
    /// [`Error::RandomSource`] if the OS random source fails.
    pub fn generate() -> Result<Self> {
        let random = cipher::os_random(ROOT_KEY_LEN)?;
        Self::from_slice(random.expose_secret())
    }

    /// Parses the text form: base64 or hex, surrounding whitespace ignored.
    ///
    /// # Errors
    /// [`Error::InvalidRootKey`] unless the text decodes to exactly 32 bytes.
    pub fn from_text(text: &str) -> Result<Self> {
        let text = text.trim();
        let decoded = if text.len() == 2 * ROOT_KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Zeroizing::new(
                (0..ROOT_KEY_LEN)
                    .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
                    .collect::<Vec<u8>>(),
            )
        } else {
            Zeroizing::new(
                BASE64
                    .decode(text)
                    .map_err(|_| Error::InvalidRootKey("not base64 or hex"))?,
            )
        };
        Self::from_slice(&decoded)
    }

    /// Reads the root key from environment variable `var` (text form).
    ///
    /// # Errors
    /// [`Error::InvalidRootKey`] if the variable is unset, not Unicode, or invalid.
    pub fn from_env(var: &str) -> Result<Self> {
        let value =
            Zeroizing::new(std::env::var(var).map_err(|_| Error::InvalidRootKey("environment variable is not set"))?);
        Self::from_text(&value)
    }

    /// Reads the root key from a file: 32 raw bytes, or the text form.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::InvalidRootKey`] if its
    /// contents are not a key.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path.display(), e))?);
        if bytes.len() == ROOT_KEY_LEN {
            return Self::from_slice(&bytes);
        }
        let text =
            std::str::from_utf8(&bytes).map_err(|_| Error::InvalidRootKey("key file is neither 32 bytes nor text"))?;
        Self::from_text(text)
    }

    /// The base64 text form, for writing to a secret store once at set-up.
    #[must_use]
    pub fn expose_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(*self.0))
    }

    /// This key encrypted under `kek` (a key-encryption key, e.g. a Shamir-protected
    /// unseal key), with `label` as associated data: `0x01 ‖ nonce ‖ ct ‖ tag`.
    ///
    /// # Errors
    /// [`Error::RandomSource`] if no nonce could be drawn.
    pub fn wrap(&self, kek: &RootKey, label: &str) -> Result<Vec<u8>> {
        let aead = cipher::AeadKey::new(cipher::KeyType::Aes256Gcm96, kek.expose_bytes())?;
        let nonce = cipher::random_nonce(true)?;
        let mut out = vec![1u8];
        out.extend_from_slice(&aead.seal(&nonce, label.as_bytes(), self.expose_bytes()));
        Ok(out)
    }

    /// Opens what [`wrap`](Self::wrap) made.
    ///
    /// # Errors
    /// [`Error::WrongRootKey`] if `kek` or `label` is not the one used to wrap, or
    /// the bytes were altered.
    pub fn unwrap(wrapped: &[u8], kek: &RootKey, label: &str) -> Result<Self> {
        let aead = cipher::AeadKey::new(cipher::KeyType::Aes256Gcm96, kek.expose_bytes())?;
        match wrapped.split_first() {
            Some((1, payload)) => {
                let key = aead
                    .open_payload(label.as_bytes(), payload)
                    .map_err(|_| Error::WrongRootKey)?;
                Self::from_slice(key.expose_secret())
            }
            _ => Err(Error::WrongRootKey),
        }
    }

    pub(crate) fn expose_bytes(&self) -> &[u8; ROOT_KEY_LEN] {
        &self.0
    }

    fn from_slice(bytes: &[u8]) -> Result<Self> {
        let array: [u8; ROOT_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::InvalidRootKey("a root key is exactly 32 bytes"))?;
        Ok(Self(Zeroizing::new(array)))
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_parse_to_the_same_key() -> Result<()> {
        let key = RootKey::generate()?;
        let b64 = key.expose_base64();
        let hex: String = key.expose_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(RootKey::from_text(&b64)?.expose_bytes(), key.expose_bytes());
        assert_eq!(
            RootKey::from_text(&format!(" {hex}\n"))?.expose_bytes(),
            key.expose_bytes()
        );
        assert!(RootKey::from_text("c2hvcnQ=").is_err());
        assert!(RootKey::from_text("not a key").is_err());
        assert_eq!(format!("{key:?}"), "RootKey([REDACTED])");
        let kek = RootKey::generate()?;
        let wrapped = key.wrap(&kek, "core/root-key")?;
        assert_eq!(
            RootKey::unwrap(&wrapped, &kek, "core/root-key")?.expose_bytes(),
            key.expose_bytes()
        );
        assert!(RootKey::unwrap(&wrapped, &RootKey::generate()?, "core/root-key").is_err());
        assert!(RootKey::unwrap(&wrapped, &kek, "other").is_err());
        Ok(())
    }
}
