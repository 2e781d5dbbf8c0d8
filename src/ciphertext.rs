//! The `vault:v<N>:<base64>` envelope shared by ciphertexts and HMACs: parsing and
//! formatting only, no cryptography.
//!
//! The format is byte-compatible with Vault's transit engine: the version is decimal,
//! the payload is standard base64 *with* padding, and for AEAD keys the payload is
//! `nonce ‖ ciphertext ‖ tag`. `vault:v0:` is accepted and read as version 1, as Vault
//! does for its oldest ciphertexts.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::name::KeyVersion;

/// Every envelope starts with this.
pub const PREFIX: &str = "vault:v";

/// A versioned ciphertext as Vault writes it: `vault:v3:AAAA…`.
///
/// Holds the key version, the decoded payload and the string form, so that it can
/// be both decrypted and handed to a database driver without re-encoding.
/// [`Display`](fmt::Display) and [`as_str`](Self::as_str) give the string to store,
/// [`FromStr`] parses one read back.
///
/// ```
/// use encrypted_attr::Ciphertext;
/// let ct: Ciphertext = "vault:v2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".parse()?;
/// assert_eq!(ct.version().get(), 2);
/// assert_eq!(ct.as_str(), "vault:v2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
/// assert!("plain text".parse::<Ciphertext>().is_err());
/// # Ok::<(), encrypted_attr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "diesel",
    derive(::diesel::expression::AsExpression, ::diesel::deserialize::FromSqlRow)
)]
#[cfg_attr(feature = "diesel", diesel(sql_type = ::diesel::sql_types::Text))]
pub struct Ciphertext(Arc<Inner>);

/// Shared, so that handing a ciphertext to a batch (which owns its items) costs a
/// reference count, not a copy.
#[derive(PartialEq, Eq, Hash)]
struct Inner {
    version: KeyVersion,
    payload: Box<[u8]>,
    /// Canonical string form, always `vault:v<version>:<base64(payload)>`.
    text: Box<str>,
}

impl Ciphertext {
    /// Builds a ciphertext from a version and the raw payload bytes.
    #[must_use]
    pub fn from_parts(version: KeyVersion, payload: Vec<u8>) -> Self {
        let mut text = String::new();
        encode_envelope(version, &payload, &mut text);
        Self::new(version, payload, text)
    }

    fn new(version: KeyVersion, payload: Vec<u8>, text: String) -> Self {
        Self(Arc::new(Inner {
            version,
            payload: payload.into_boxed_slice(),
            text: text.into_boxed_str(),
        }))
    }

    /// The key version that sealed this ciphertext.
    #[must_use]
    pub fn version(&self) -> KeyVersion {
        self.0.version
    }

    /// The decoded payload (for AEAD keys `nonce ‖ ciphertext ‖ tag`).
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.0.payload
    }

    /// The string to store: `vault:v<N>:<base64>`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The string to store, by value.
    #[must_use]
    pub fn into_string(self) -> String {
        match Arc::try_unwrap(self.0) {
            Ok(inner) => inner.text.into_string(),
            Err(shared) => shared.text.to_string(),
        }
    }
}

impl fmt::Display for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ciphertext is not secret, but long payloads make unreadable logs.
        write!(f, "Ciphertext(v{}, {} bytes)", self.0.version, self.0.payload.len())
    }
}

impl AsRef<str> for Ciphertext {
    fn as_ref(&self) -> &str {
        &self.0.text
    }
}

impl From<Ciphertext> for String {
    fn from(ct: Ciphertext) -> Self {
        ct.into_string()
    }
}

impl FromStr for Ciphertext {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse_owned(s.to_owned())
    }
}

impl TryFrom<String> for Ciphertext {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse_owned(s)
    }
}

impl Ciphertext {
    /// Parses a string it may keep (no copy when the string is canonical).
    fn parse_owned(text: String) -> Result<Self, Error> {
        let (version, payload) = parse_envelope(&text, &CIPHERTEXT_ERRORS)?;
        // Keep the text only if it is the canonical form (`v0`, `v01` are rewritten):
        // its version digits are exactly the number's, with no leading zero.
        let digits = decimal_len(version.get());
        let canonical_len = PREFIX.len() + digits + 1 + payload.len().div_ceil(3) * 4;
        let version_text = text.as_bytes().get(PREFIX.len()..PREFIX.len() + digits + 1);
        let canonical = text.len() == canonical_len && version_text.is_some_and(|v| v[0] != b'0' && v[digits] == b':');
        if canonical {
            Ok(Self::new(version, payload, text))
        } else {
            Ok(Self::from_parts(version, payload))
        }
    }
}

impl Serialize for Ciphertext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.text)
    }
}

impl<'de> Deserialize<'de> for Ciphertext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_owned(s).map_err(serde::de::Error::custom)
    }
}

/// The messages used when an envelope fails to parse, per kind of envelope.
pub(crate) struct EnvelopeErrors {
    pub(crate) no_prefix: &'static str,
    pub(crate) fields: &'static str,
    pub(crate) version: &'static str,
    pub(crate) base64: &'static str,
}

pub(crate) const CIPHERTEXT_ERRORS: EnvelopeErrors = EnvelopeErrors {
    no_prefix: "invalid ciphertext: no prefix",
    fields: "invalid ciphertext: wrong number of fields",
    version: "invalid ciphertext: version number could not be decoded",
    base64: "invalid ciphertext: could not decode base64",
};

pub(crate) const HMAC_ERRORS: EnvelopeErrors = EnvelopeErrors {
    no_prefix: "invalid HMAC to verify: no prefix",
    fields: "invalid HMAC: wrong number of fields",
    version: "invalid HMAC: version number could not be decoded",
    base64: "invalid HMAC: could not decode base64",
};

/// Splits `vault:v<N>:<base64>` into its version and decoded payload.
pub(crate) fn parse_envelope(s: &str, errors: &EnvelopeErrors) -> Result<(KeyVersion, Vec<u8>), Error> {
    let rest = s
        .strip_prefix(PREFIX)
        .ok_or(Error::MalformedCiphertext(errors.no_prefix))?;
    let (version, payload) = rest.split_once(':').ok_or(Error::MalformedCiphertext(errors.fields))?;
    // Vault parses with Atoi, which allows a sign; we accept only digits, which is
    // everything Vault ever writes.
    if version.is_empty() || version.len() > 10 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::MalformedCiphertext(errors.version));
    }
    let number: u32 = version
        .parse()
        .map_err(|_| Error::MalformedCiphertext(errors.version))?;
    let version = KeyVersion::new(number.max(1)).unwrap_or(KeyVersion::FIRST);
    Ok((
        version,
        decode_exact(payload).ok_or(Error::MalformedCiphertext(errors.base64))?,
    ))
}

/// Decodes padded base64 into a buffer of exactly the decoded length: the payload is
/// kept as a boxed slice, and a larger buffer would be copied again to shrink it.
fn decode_exact(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes.iter().rev().take(2).take_while(|&&b| b == b'=').count();
    let mut out = vec![0u8; bytes.len() / 4 * 3 - padding];
    let written = BASE64.decode_slice(bytes, &mut out).ok()?;
    (written == out.len()).then_some(out)
}

/// Appends `vault:v<N>:<base64(payload)>` to `out`.
pub(crate) fn encode_envelope(version: KeyVersion, payload: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    out.reserve(PREFIX.len() + decimal_len(version.get()) + 1 + payload.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    // Writing to a String cannot fail.
    let _ = write!(out, "{}:", version.get());
    BASE64.encode_string(payload, out);
}

/// Writes `vault:v<N>:<base64(payload)>` to a formatter without building the whole
/// string first: the base64 goes through a stack buffer, 768 input bytes at a time.
pub(crate) fn write_envelope(version: KeyVersion, payload: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{PREFIX}{}:", version.get())?;
    let mut buf = [0u8; 1024];
    for chunk in payload.chunks(768) {
        let n = BASE64.encode_slice(chunk, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

fn decimal_len(mut n: u32) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        match s.parse::<Ciphertext>() {
            Err(e) => e.to_string(),
            Ok(c) => panic!("parsed {c:?}"),
        }
    }

    #[test]
    fn malformed_envelopes_get_vaults_messages() {
        assert_eq!(err("abc"), "invalid ciphertext: no prefix");
        assert_eq!(err("vault:v1"), "invalid ciphertext: wrong number of fields");
        assert_eq!(
            err("vault:vx:AAAA"),
            "invalid ciphertext: version number could not be decoded"
        );
        assert_eq!(
            err("vault:v-1:AAAA"),
            "invalid ciphertext: version number could not be decoded"
        );
        assert_eq!(
            err("vault:v99999999999:AAAA"),
            "invalid ciphertext: version number could not be decoded"
        );
        assert_eq!(err("vault:v1:A*AA"), "invalid ciphertext: could not decode base64");
        assert_eq!(err("vault:v1:AAA"), "invalid ciphertext: could not decode base64");
    }

    #[test]
    fn version_zero_reads_as_one_and_round_trips() -> Result<(), Error> {
        let ct: Ciphertext = "vault:v0:AAAA".parse()?;
        assert_eq!(ct.version(), KeyVersion::FIRST);
        assert_eq!(ct.as_str(), "vault:v1:AAAA");
        assert_eq!(ct, Ciphertext::from_parts(KeyVersion::FIRST, vec![0, 0, 0]));
        let ct: Ciphertext = "vault:v012:AAEC".parse()?;
        assert_eq!(ct.as_str(), "vault:v12:AAEC");
        let ct: Ciphertext = "vault:v12:AAEC".parse()?;
        assert_eq!(ct.payload(), &[0, 1, 2]);
        assert_eq!(ct.to_string(), "vault:v12:AAEC");
        let long = Ciphertext::from_parts(KeyVersion::FIRST, (0..=255u8).cycle().take(5000).collect());
        assert_eq!(long.as_str().parse::<Ciphertext>()?, long);
        Ok(())
    }
}
