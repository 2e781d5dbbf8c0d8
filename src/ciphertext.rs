//! The `vault:v<N>:<base64>` envelope shared by ciphertexts and HMACs: parsing and
//! formatting only, no cryptography.
//!
//! The format is byte-compatible with Vault's transit engine: the version is decimal,
//! the payload is standard base64 *with* padding, and for AEAD keys the payload is
//! `nonce ‖ ciphertext ‖ tag`. `vault:v0:` is accepted and read as version 1, as Vault
//! does for its oldest ciphertexts.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::name::KeyVersion;

/// Every envelope starts with this.
pub const PREFIX: &str = "vault:v";

/// A versioned ciphertext as Vault writes it: `vault:v3:AAAA…`.
///
/// Holds the key version and the decoded payload; [`Display`](fmt::Display) gives
/// the string to store, [`FromStr`] parses one read back.
///
/// ```
/// use encrypted_attr::Ciphertext;
/// let ct: Ciphertext = "vault:v2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".parse()?;
/// assert_eq!(ct.version().get(), 2);
/// assert_eq!(ct.to_string(), "vault:v2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
/// assert!("plain text".parse::<Ciphertext>().is_err());
/// # Ok::<(), encrypted_attr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ciphertext {
    version: KeyVersion,
    payload: Vec<u8>,
}

impl Ciphertext {
    /// Builds a ciphertext from a version and the raw payload bytes.
    #[must_use]
    pub fn from_parts(version: KeyVersion, payload: Vec<u8>) -> Self {
        Self { version, payload }
    }

    /// The key version that sealed this ciphertext.
    #[must_use]
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// The decoded payload (for AEAD keys `nonce ‖ ciphertext ‖ tag`).
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Length of the string form, without building it.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        PREFIX.len() + decimal_len(self.version.get()) + 1 + self.payload.len().div_ceil(3) * 4
    }

    /// Appends the string form to `out` (one allocation when `out` has room).
    pub fn write_to(&self, out: &mut String) {
        encode_envelope(self.version, &self.payload, out);
    }

    /// The string form to store, built in one allocation of the exact size. Same
    /// result as `to_string()`, which grows its buffer as it goes.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_envelope(self.version, &self.payload, f)
    }
}

/// Writes `vault:v<N>:<base64(payload)>` to a formatter without building the whole
/// string first: the base64 goes through a stack buffer, 768 input bytes at a time.
pub(crate) fn write_envelope(
    version: KeyVersion,
    payload: &[u8],
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    write!(f, "{PREFIX}{}:", version.get())?;
    let mut buf = [0u8; 1024];
    for chunk in payload.chunks(768) {
        let n = BASE64
            .encode_slice(chunk, &mut buf)
            .map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ciphertext is not secret, but long payloads make unreadable logs.
        write!(
            f,
            "Ciphertext(v{}, {} bytes)",
            self.version,
            self.payload.len()
        )
    }
}

impl FromStr for Ciphertext {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let (version, payload) = parse_envelope(s, &CIPHERTEXT_ERRORS)?;
        Ok(Self { version, payload })
    }
}

impl Serialize for Ciphertext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ciphertext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
pub(crate) fn parse_envelope(
    s: &str,
    errors: &EnvelopeErrors,
) -> Result<(KeyVersion, Vec<u8>), Error> {
    let rest = s
        .strip_prefix(PREFIX)
        .ok_or(Error::MalformedCiphertext(errors.no_prefix))?;
    let (version, payload) = rest
        .split_once(':')
        .ok_or(Error::MalformedCiphertext(errors.fields))?;
    // Vault parses with Atoi, which allows a sign; we accept only digits, which is
    // everything Vault ever writes.
    if version.is_empty() || version.len() > 10 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::MalformedCiphertext(errors.version));
    }
    let number: u32 = version
        .parse()
        .map_err(|_| Error::MalformedCiphertext(errors.version))?;
    let version = KeyVersion::new(number.max(1)).unwrap_or(KeyVersion::FIRST);
    let payload = BASE64
        .decode(payload)
        .map_err(|_| Error::MalformedCiphertext(errors.base64))?;
    Ok((version, payload))
}

/// Appends `vault:v<N>:<base64(payload)>` to `out`.
pub(crate) fn encode_envelope(version: KeyVersion, payload: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    out.reserve(PREFIX.len() + 11 + payload.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    // Writing to a String cannot fail.
    let _ = write!(out, "{}:", version.get());
    BASE64.encode_string(payload, out);
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
        assert_eq!(
            err("vault:v1"),
            "invalid ciphertext: wrong number of fields"
        );
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
        assert_eq!(
            err("vault:v1:A*AA"),
            "invalid ciphertext: could not decode base64"
        );
        assert_eq!(
            err("vault:v1:AAA"),
            "invalid ciphertext: could not decode base64"
        );
    }

    #[test]
    fn version_zero_reads_as_one_and_round_trips() -> Result<(), Error> {
        let ct: Ciphertext = "vault:v0:AAAA".parse()?;
        assert_eq!(ct.version(), KeyVersion::FIRST);
        let ct: Ciphertext = "vault:v12:AAEC".parse()?;
        assert_eq!(ct.payload(), &[0, 1, 2]);
        assert_eq!(ct.to_string(), "vault:v12:AAEC");
        assert_eq!(ct.encoded_len(), ct.to_string().len());
        let long =
            Ciphertext::from_parts(KeyVersion::FIRST, (0..=255u8).cycle().take(5000).collect());
        assert_eq!(long.encode(), long.to_string());
        assert_eq!(long.encode().len(), long.encoded_len());
        assert_eq!(long.encode().parse::<Ciphertext>()?, long);
        Ok(())
    }
}
