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

use base64_simd::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::name::KeyVersion;

/// Every envelope starts with this.
pub const PREFIX: &str = "vault:v";

/// A versioned ciphertext as Vault writes it: `vault:v3:AAAA…`.
///
/// Holds the key version and the canonical string form, checked when parsed (prefix,
/// version, base64 alphabet and padding), so that it can be handed to a database
/// driver as is and decrypted without another check. The payload stays base64 until
/// a decryption decodes it straight into the buffer that becomes the plaintext.
/// [`Display`](fmt::Display) and [`as_str`](Self::as_str) give the string to store,
/// [`FromStr`] parses one read back.
///
/// ```
/// use encrypted_attr::Ciphertext;
/// let ct: Ciphertext = "vault:v2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".parse()?;
/// assert_eq!(ct.version().get(), 2);
/// assert_eq!(ct.as_str(), "vault:v2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
/// assert_eq!(ct.payload().len(), 32);
/// assert!("plain text".parse::<Ciphertext>().is_err());
/// # Ok::<(), encrypted_attr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "diesel",
    derive(::diesel::expression::AsExpression, ::diesel::deserialize::FromSqlRow)
)]
#[cfg_attr(feature = "diesel", diesel(sql_type = ::diesel::sql_types::Text))]
pub struct Ciphertext {
    version: KeyVersion,
    /// Canonical string form, always `vault:v<version>:<base64(payload)>`, its base64
    /// checked. Shared, so that handing a ciphertext to a batch (which owns its
    /// items) costs a reference count, not a copy; one allocation, so that the
    /// driver's string is freed as soon as it is parsed.
    text: Arc<str>,
}

impl Ciphertext {
    /// Builds a ciphertext from a version and the raw payload bytes.
    #[must_use]
    pub fn from_parts(version: KeyVersion, payload: impl AsRef<[u8]>) -> Self {
        let payload = payload.as_ref();
        crate::scratch::with(&ENCODED, |text| {
            text.clear();
            encode_envelope(version, payload, text);
            Self::new(version, text)
        })
    }

    fn new(version: KeyVersion, text: &str) -> Self {
        Self {
            version,
            text: Arc::from(text),
        }
    }

    /// The key version that sealed this ciphertext.
    #[must_use]
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// The decoded payload (for AEAD keys `nonce ‖ ciphertext ‖ tag`), decoded anew on
    /// every call: decryption does not need it, it decodes into its own buffer.
    #[must_use]
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // The base64 was checked when this value was made, so decoding cannot fail.
        let _ = self.decode_payload_into(&mut out);
        out
    }

    /// Decodes the payload into `out`, replacing what it held.
    pub(crate) fn decode_payload_into(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.clear();
        BASE64
            .decode_append(self.encoded_payload(), out)
            .map_err(|_| Error::MalformedCiphertext(CIPHERTEXT_ERRORS.base64))
    }

    /// The base64 after `vault:v<N>:`.
    fn encoded_payload(&self) -> &str {
        let start = PREFIX.len() + decimal_len(self.version.get()) + 1;
        self.text.get(start..).unwrap_or_default()
    }

    /// The string to store: `vault:v<N>:<base64>`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The string to store, by value.
    #[must_use]
    pub fn into_string(self) -> String {
        self.text.to_string()
    }
}

impl fmt::Display for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ciphertext is not secret, but long payloads make unreadable logs.
        let payload_len = BASE64.decoded_length(self.encoded_payload().as_bytes()).unwrap_or(0);
        write!(f, "Ciphertext(v{}, {payload_len} bytes)", self.version)
    }
}

impl AsRef<str> for Ciphertext {
    fn as_ref(&self) -> &str {
        &self.text
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
        Self::parse(s)
    }
}

impl TryFrom<String> for Ciphertext {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl Ciphertext {
    /// Parses and checks an envelope, rewriting its version in canonical form.
    fn parse(text: &str) -> Result<Self, Error> {
        let (version, encoded) = split_envelope(text, &CIPHERTEXT_ERRORS)?;
        BASE64
            .check(encoded.as_bytes())
            .map_err(|_| Error::MalformedCiphertext(CIPHERTEXT_ERRORS.base64))?;
        // The checked base64 is canonical (padded, no stray bits), so only the version
        // digits can differ from the canonical form (`v0`, `v01` are rewritten).
        let digits = text.len() - encoded.len() - PREFIX.len() - 1;
        if digits == decimal_len(version.get()) && !text[PREFIX.len()..].starts_with('0') {
            return Ok(Self::new(version, text));
        }
        let mut canonical = String::with_capacity(PREFIX.len() + 11 + encoded.len());
        push_version(version, &mut canonical);
        canonical.push_str(encoded);
        Ok(Self::new(version, &canonical))
    }
}

impl Serialize for Ciphertext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Ciphertext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

thread_local! {
    /// Where new ciphertexts are encoded before they get their shared allocation.
    static ENCODED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
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

/// Splits `vault:v<N>:<base64>` into its version and the base64, unchecked.
fn split_envelope<'a>(s: &'a str, errors: &EnvelopeErrors) -> Result<(KeyVersion, &'a str), Error> {
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
    Ok((KeyVersion::new(number.max(1)).unwrap_or(KeyVersion::FIRST), payload))
}

/// Splits `vault:v<N>:<base64>` into its version and decoded payload.
pub(crate) fn parse_envelope(s: &str, errors: &EnvelopeErrors) -> Result<(KeyVersion, Vec<u8>), Error> {
    let (version, encoded) = split_envelope(s, errors)?;
    let payload = BASE64
        .decode_to_vec(encoded)
        .map_err(|_| Error::MalformedCiphertext(errors.base64))?;
    Ok((version, payload))
}

/// Appends `vault:v<N>:`.
fn push_version(version: KeyVersion, out: &mut String) {
    use std::fmt::Write as _;
    out.push_str(PREFIX);
    // Writing to a String cannot fail.
    let _ = write!(out, "{}:", version.get());
}

/// Appends `vault:v<N>:<base64(payload)>` to `out`.
pub(crate) fn encode_envelope(version: KeyVersion, payload: &[u8], out: &mut String) {
    out.reserve(PREFIX.len() + decimal_len(version.get()) + 1 + BASE64.encoded_length(payload.len()));
    push_version(version, out);
    BASE64.encode_append(payload, out);
}

/// Writes `vault:v<N>:<base64(payload)>` to a formatter without building the whole
/// string first: the base64 goes through a stack buffer, 768 input bytes at a time.
pub(crate) fn write_envelope(version: KeyVersion, payload: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{PREFIX}{}:", version.get())?;
    let mut buf = [0u8; 1024];
    for chunk in payload.chunks(768) {
        let encoded = BASE64.encode_as_str(chunk, base64_simd::Out::from_slice(&mut buf));
        f.write_str(encoded)?;
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
    fn base64_is_accepted_exactly_when_the_reference_decoder_accepts_it() {
        use base64::Engine as _;
        // Every 4-character string over an alphabet with the edge cases (stray low
        // bits before padding: `B`, `Q`, `g`; padding in every place; symbols outside
        // the alphabet; whitespace), alone, after a valid quad, before one, after
        // 48 valid characters and between 48 and 48.
        let alphabet = ['A', 'B', 'Q', 'g', '/', '+', '=', '*', ' '];
        let mut checked = 0;
        let mut accepted = 0;
        for quad in 0..alphabet.len().pow(4) {
            let quad: String = (0..4)
                .map(|digit| alphabet[quad / alphabet.len().pow(digit) % alphabet.len()])
                .collect();
            // Real payloads are 40 characters or more, where the decoder takes its
            // SIMD path: the quads again at the end of a long valid prefix.
            let prefix = "AbC+/9".repeat(8);
            let (long, middle) = (format!("{prefix}{quad}"), format!("{prefix}{quad}{prefix}"));
            for body in [quad.clone(), format!("AAAA{quad}"), format!("{quad}AAAA"), long, middle] {
                let reference = base64::engine::general_purpose::STANDARD.decode(&body);
                let parsed = format!("vault:v1:{body}").parse::<Ciphertext>();
                assert_eq!(parsed.is_ok(), reference.is_ok(), "{body:?}");
                if let (Ok(parsed), Ok(reference)) = (parsed, reference) {
                    assert_eq!(parsed.payload(), reference, "{body:?}");
                    assert_eq!(parsed.as_str(), format!("vault:v1:{body}"));
                    accepted += 1;
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 5 * 9usize.pow(4));
        assert!(accepted > 1000, "{accepted}");
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
        let long = Ciphertext::from_parts(KeyVersion::FIRST, (0..=255u8).cycle().take(5000).collect::<Vec<u8>>());
        assert_eq!(long.as_str().parse::<Ciphertext>()?, long);
        Ok(())
    }
}
