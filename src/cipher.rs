//! The only module that touches cryptographic primitives: AEAD seal/open, nonces,
//! HKDF key derivation, Vault's convergent nonce, HMAC, hashing and random bytes.
//!
//! Keeping every primitive behind this one module means an AEAD backend can be
//! swapped by measurement without touching the engine: RustCrypto's `aes-gcm` and
//! `chacha20poly1305` by default (pure Rust, nothing to compile but Rust), or
//! AWS-LC through `aws-lc-rs` with the `aws-lc` feature (about 2.5× faster per
//! small value; see `docs/crypto.md`). Both produce the same bytes. See
//! `docs/crypto.md` for why random nonces come from a per-thread user-space CSPRNG
//! with a fork check rather than from the OS on every call.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use rand::TryRng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use crate::ciphertext::Ciphertext;
use crate::error::Error;
use crate::scratch;
use crate::secret::SecretBytes;

/// Length of every nonce we generate (96 bits), for all supported key types.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of every authentication tag (128 bits).
pub(crate) const TAG_LEN: usize = 16;
/// Length of the per-version HMAC key (Vault: 32 random bytes).
pub(crate) const HMAC_KEY_LEN: usize = 32;

/// The symmetric key types a transit key can have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyType {
    /// AES-256-GCM with 96-bit nonces: Vault's default, and ours.
    #[default]
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    /// AES-128-GCM with 96-bit nonces.
    #[serde(rename = "aes128-gcm96")]
    Aes128Gcm96,
    /// ChaCha20-Poly1305 (RFC 8439) with 96-bit nonces.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl KeyType {
    /// Vault's name of the type, e.g. `aes256-gcm96`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aes256Gcm96 => "aes256-gcm96",
            Self::Aes128Gcm96 => "aes128-gcm96",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// Length of the key material in bytes.
    #[must_use]
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm96 => 16,
            Self::Aes256Gcm96 | Self::ChaCha20Poly1305 => 32,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "aes256-gcm96" => Ok(Self::Aes256Gcm96),
            "aes128-gcm96" => Ok(Self::Aes128Gcm96),
            "chacha20-poly1305" => Ok(Self::ChaCha20Poly1305),
            other => Err(Error::invalid(format!("unknown key type {other}"))),
        }
    }
}

/// An expanded AEAD key: the key schedule is computed once and reused for every
/// seal and open. The primitives zeroize their state when dropped (AWS-LC wipes
/// every allocation it frees, and its AEAD state is one such allocation).
pub(crate) enum AeadKey {
    Aes256(Box<Aes256Gcm>),
    Aes128(Box<Aes128Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey([REDACTED])")
    }
}

impl AeadKey {
    /// Expands `key` for `key_type`, with the fastest backend compiled in.
    pub(crate) fn new(key_type: KeyType, key: &[u8]) -> Result<Self, Error> {
        #[cfg(feature = "aws-lc")]
        {
            use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305, LessSafeKey, UnboundKey};
            let algorithm = match key_type {
                KeyType::Aes256Gcm96 => &AES_256_GCM,
                KeyType::Aes128Gcm96 => &AES_128_GCM,
                KeyType::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            };
            if key.len() != key_type.key_len() {
                return Err(Error::CorruptStorage {
                    location: "key material".into(),
                    reason: "key has the wrong length for its type",
                });
            }
            let key = UnboundKey::new(algorithm, key).map_err(|_| Error::CorruptStorage {
                location: "key material".into(),
                reason: "key rejected by the AEAD backend",
            })?;
            Ok(Self::AwsLc(LessSafeKey::new(key)))
        }
        #[cfg(not(feature = "aws-lc"))]
        Self::rust_crypto(key_type, key)
    }

    /// Expands `key` with RustCrypto's implementations (the default backend; with
    /// `aws-lc`, still used by tests to check both backends agree).
    #[cfg_attr(
        all(feature = "aws-lc", not(test)),
        expect(dead_code, reason = "with aws-lc, only tests use the RustCrypto backend")
    )]
    pub(crate) fn rust_crypto(key_type: KeyType, key: &[u8]) -> Result<Self, Error> {
        let bad_len = |_| Error::CorruptStorage {
            location: "key material".into(),
            reason: "key has the wrong length for its type",
        };
        Ok(match key_type {
            KeyType::Aes256Gcm96 => Self::Aes256(Box::new(Aes256Gcm::new_from_slice(key).map_err(bad_len)?)),
            KeyType::Aes128Gcm96 => Self::Aes128(Box::new(Aes128Gcm::new_from_slice(key).map_err(bad_len)?)),
            KeyType::ChaCha20Poly1305 => {
                Self::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).map_err(bad_len)?))
            }
        })
    }

    /// Seals `plaintext` under `nonce` and returns `nonce ‖ ciphertext ‖ tag`, the
    /// payload of a Vault ciphertext.
    pub(crate) fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        let body = &mut out[NONCE_LEN..];
        // Seal fails only for inputs longer than GCM's limit (2^36 bytes), far beyond
        // what any request can carry; we still map it (to an empty payload, which
        // callers treat as a failure) rather than panic.
        let tag: Result<[u8; TAG_LEN], ()> = match self {
            Self::Aes256(k) => k
                .encrypt_inout_detached(nonce.into(), aad, body.into())
                .map(|t| t.0)
                .map_err(drop),
            Self::Aes128(k) => k
                .encrypt_inout_detached(nonce.into(), aad, body.into())
                .map(|t| t.0)
                .map_err(drop),
            Self::ChaCha(k) => k
                .encrypt_inout_detached(nonce.into(), aad, body.into())
                .map(|t| t.0)
                .map_err(drop),
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(k) => k
                .seal_in_place_separate_tag(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(*nonce),
                    aws_lc_rs::aead::Aad::from(aad),
                    body,
                )
                .ok()
                .and_then(|tag| <[u8; TAG_LEN]>::try_from(tag.as_ref()).ok())
                .ok_or(()),
        };
        match tag {
            Ok(tag) => out.extend_from_slice(&tag),
            Err(()) => out.truncate(0),
        }
        out
    }

    /// Opens a ciphertext's `nonce ‖ ciphertext ‖ tag` payload.
    ///
    /// The base64 is decoded into this thread's scratch buffer (it holds only
    /// ciphertext), and the plaintext is written into a buffer of exactly its length,
    /// which a `String` or `Vec<u8>` field then takes over: one allocation per value.
    ///
    /// Any authentication failure is the single opaque [`Error::DecryptionFailed`];
    /// a payload too short to hold a nonce and a tag is a malformed ciphertext.
    pub(crate) fn open(&self, aad: &[u8], ciphertext: &Ciphertext) -> Result<SecretBytes, Error> {
        scratch::with(&DECODED_PAYLOAD, |scratch| {
            ciphertext.decode_payload_into(scratch)?;
            self.open_payload(aad, scratch)
        })
    }

    /// Opens a raw `nonce ‖ ciphertext ‖ tag` payload into a new buffer of exactly
    /// the plaintext's length.
    ///
    /// Any authentication failure is the single opaque [`Error::DecryptionFailed`];
    /// a payload too short to hold a nonce and a tag is a malformed ciphertext.
    pub(crate) fn open_payload(&self, aad: &[u8], payload: &[u8]) -> Result<SecretBytes, Error> {
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::MalformedCiphertext("invalid ciphertext length"));
        }
        let (nonce, rest) = payload.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::DecryptionFailed)?;
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        #[cfg(feature = "aws-lc")]
        if let Self::AwsLc(k) = self {
            // Wiped on drop: after a failed open it holds unauthenticated bytes.
            let mut plaintext = SecretBytes::new(vec![0; body.len()]);
            k.open_separate_gather(
                aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                aws_lc_rs::aead::Aad::from(aad),
                body,
                tag,
                plaintext.as_mut_vec(),
            )
            .map_err(|_| Error::DecryptionFailed)?;
            return Ok(plaintext);
        }
        let mut plaintext = SecretBytes::copy_from(body);
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::DecryptionFailed)?;
        let (nonce, tag) = (nonce.into(), (*tag).into());
        let buf = plaintext.as_mut_vec().as_mut_slice().into();
        let result = match self {
            Self::Aes256(k) => k.decrypt_inout_detached(&nonce, aad, buf, &tag),
            Self::Aes128(k) => k.decrypt_inout_detached(&nonce, aad, buf, &tag),
            Self::ChaCha(k) => k.decrypt_inout_detached(&nonce, aad, buf, &tag),
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(_) => return Err(Error::DecryptionFailed),
        };
        // On failure `plaintext` holds unauthenticated bytes; dropping wipes them.
        result.map(|()| plaintext).map_err(|_| Error::DecryptionFailed)
    }
}

thread_local! {
    /// Where envelopes are decoded before they are opened. Holds ciphertext only.
    static DECODED_PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// HKDF-SHA256 with no salt and `info = context`, as Vault derives per-context keys
/// (`derived = true`). Fills `out` entirely; HKDF is a stream, so the first bytes are
/// the same whatever the output length.
pub(crate) fn hkdf_sha256(ikm: &[u8], context: &[u8], out: &mut [u8]) -> Result<(), Error> {
    hkdf::Hkdf::<Sha256>::new(None, ikm)
        .expand(context, out)
        .map_err(|_| Error::invalid("key derivation output too long"))
}

/// The key material Vault's convergent encryption version 3 derives for one context:
/// the encryption key, then a 32-byte HMAC key used to compute nonces.
pub(crate) fn derive_convergent(ikm: &[u8], key_len: usize, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(vec![0u8; key_len + HMAC_KEY_LEN]);
    hkdf_sha256(ikm, context, &mut out)?;
    Ok(out)
}

/// Domain separator for the nonce of a convergent encryption that carries associated
/// data (see [`convergent_nonce`]).
const CONVERGENT_AAD_DOMAIN: &[u8] = b"encrypted-attr/convergent-aad/v1";

/// The nonce of a convergent (deterministic) encryption.
///
/// Without associated data this is Vault's version 3 nonce, byte for byte:
/// `HMAC-SHA256(nonce_key, plaintext)[..12]`. Vault leaves associated data out of
/// the nonce, so two encryptions of one plaintext under different associated data
/// reuse a (key, nonce) pair with different tags, which reveals GCM's
/// authentication key and lets an attacker re-bind ciphertexts to other associated
/// data. We therefore fold the associated data into the nonce when there is any:
/// `HMAC-SHA256(nonce_key, domain ‖ len(aad) ‖ aad ‖ plaintext)[..12]`. Such
/// ciphertexts still decrypt anywhere (the nonce travels in the payload); only their
/// bytes differ from what Vault would have produced.
pub(crate) fn convergent_nonce(nonce_key: &[u8], aad: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
    let mut mac = hmac_sha256(nonce_key);
    if !aad.is_empty() {
        mac.update(CONVERGENT_AAD_DOMAIN);
        mac.update(&(aad.len() as u64).to_be_bytes());
        mac.update(aad);
    }
    mac.update(plaintext);
    let full = mac.finalize().into_bytes();
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&full[..NONCE_LEN]);
    nonce
}

fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    }
}

#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    // HMAC's `new_from_slice` has no failing input; keep a defined value anyway.
    <Hmac<Sha256> as KeyInit>::new(&Default::default())
}

/// Hash algorithms for the `hmac`, `verify` and `hash` operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA-224.
    Sha2_224,
    /// SHA-256, the default everywhere.
    #[default]
    Sha2_256,
    /// SHA-384.
    Sha2_384,
    /// SHA-512.
    Sha2_512,
}

impl HashAlgorithm {
    /// Vault's name, e.g. `sha2-256`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha2_224 => "sha2-224",
            Self::Sha2_256 => "sha2-256",
            Self::Sha2_384 => "sha2-384",
            Self::Sha2_512 => "sha2-512",
        }
    }

    /// The digest of `input`.
    #[must_use]
    pub fn digest(self, input: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha2_224 => Sha224::digest(input).to_vec(),
            Self::Sha2_256 => Sha256::digest(input).to_vec(),
            Self::Sha2_384 => Sha384::digest(input).to_vec(),
            Self::Sha2_512 => Sha512::digest(input).to_vec(),
        }
    }

    /// HMAC of `input` under `key` (any key length). For keyed digests outside
    /// transit keys, such as the audit log's salted hashes of secrets.
    #[must_use]
    pub fn hmac(self, key: &[u8], input: &[u8]) -> Vec<u8> {
        fn run<D: hmac::EagerHash>(key: &[u8], input: &[u8]) -> Vec<u8> {
            match <Hmac<D> as KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(input);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            Self::Sha2_224 => run::<Sha224>(key, input),
            Self::Sha2_256 => run::<Sha256>(key, input),
            Self::Sha2_384 => run::<Sha384>(key, input),
            Self::Sha2_512 => run::<Sha512>(key, input),
        }
    }

    /// Constant-time check that `tag` is the HMAC of `input` under `key`.
    pub(crate) fn verify_hmac(self, key: &[u8], input: &[u8], tag: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.hmac(key, input);
        expected.len() == tag.len() && bool::from(expected.ct_eq(tag))
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HashAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "sha2-224" => Ok(Self::Sha2_224),
            "sha2-256" => Ok(Self::Sha2_256),
            "sha2-384" => Ok(Self::Sha2_384),
            "sha2-512" => Ok(Self::Sha2_512),
            other => Err(Error::invalid(format!("unsupported algorithm {other}"))),
        }
    }
}

thread_local! {
    /// The process id this thread's generator was last checked in (fork check on).
    static NONCE_RNG_PID: Cell<u32> = const { Cell::new(0) };
}

/// A fresh random 96-bit nonce.
///
/// Drawn from the thread's ChaCha12 generator (`rand::rng()`), seeded from the OS and
/// reseeded every 64 KiB of output: about 10 ns, against about 370 ns for asking the
/// OS for every nonce (measured, `BENCHMARKS.md`). A forked child inherits its
/// parent's generator state and would repeat its nonces; with `check_fork` the
/// process id is compared on each call (one `getpid` system call, about 140 ns here)
/// and the generator reseeded when it changed. Without it, a process that forks
/// without exec must call [`reseed_nonce_generator_after_fork`] in the child.
/// See `docs/crypto.md`.
pub(crate) fn random_nonce(check_fork: bool) -> Result<[u8; NONCE_LEN], Error> {
    let mut rng = rand::rng();
    if check_fork {
        let pid = std::process::id();
        if NONCE_RNG_PID.get() != pid {
            rng.reseed().map_err(|_| Error::RandomSource)?;
            NONCE_RNG_PID.set(pid);
        }
    }
    let mut nonce = [0u8; NONCE_LEN];
    rng.try_fill_bytes(&mut nonce).map_err(|_| Error::RandomSource)?;
    Ok(nonce)
}

/// Reseeds this thread's nonce generator from the operating system.
///
/// Call it first thing in a child process created by `fork()` without `exec()`
/// (after fork only the calling thread exists, so this covers the child), unless
/// the engine runs with [`EngineOptions::check_fork`](crate::EngineOptions). Without
/// it, parent and child would draw the same nonces, and AES-GCM under a repeated
/// nonce leaks its authentication key.
///
/// # Errors
/// [`Error::RandomSource`] if the OS random source fails.
pub fn reseed_nonce_generator_after_fork() -> Result<(), Error> {
    rand::rng().reseed().map_err(|_| Error::RandomSource)?;
    NONCE_RNG_PID.set(std::process::id());
    Ok(())
}

/// `len` bytes straight from the operating system, for key material and data keys.
pub(crate) fn os_random(len: usize) -> Result<SecretBytes, Error> {
    let mut bytes = SecretBytes::new(vec![0u8; len]);
    getrandom::fill(bytes.as_mut_vec()).map_err(|_| Error::RandomSource)?;
    Ok(bytes)
}

/// Random bytes for the engine's `random` operation, from the OS.
pub(crate) fn random_bytes(len: usize) -> Result<Vec<u8>, Error> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|_| Error::RandomSource)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload as the ciphertext `open` reads.
    fn envelope(payload: &[u8]) -> Ciphertext {
        Ciphertext::from_parts(crate::KeyVersion::FIRST, payload)
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect()
    }

    fn field(s: &str) -> Vec<u8> {
        if s == "-" { Vec::new() } else { hex(s) }
    }

    #[test]
    fn nist_aes256_gcm_known_answers() -> Result<(), Error> {
        let vectors = include_str!("../tests/data/nist_aes256gcm.txt");
        let mut count = 0;
        for line in vectors.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let f: Vec<Vec<u8>> = line.split_whitespace().map(field).collect();
            let [key, nonce, plaintext, aad, ciphertext, tag] = &f[..] else {
                panic!("bad vector line {line}");
            };
            let aead = AeadKey::new(KeyType::Aes256Gcm96, key)?;
            let nonce: [u8; NONCE_LEN] = nonce[..].try_into().map_err(|_| Error::DecryptionFailed)?;
            let sealed = aead.seal(&nonce, aad, plaintext);
            let expected: Vec<u8> = [&nonce[..], ciphertext, tag].concat();
            assert_eq!(sealed, expected, "seal: {line}");
            assert_eq!(
                aead.open(aad, &envelope(&expected))?.expose_secret(),
                &plaintext[..],
                "open: {line}"
            );
            let mut flipped = expected.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert!(matches!(
                aead.open(aad, &envelope(&flipped)),
                Err(Error::DecryptionFailed)
            ));
            count += 1;
        }
        assert!(count >= 8, "only {count} vectors read");
        Ok(())
    }

    #[test]
    fn hmac_matches_vaults_vector() {
        use base64::Engine as _;
        // reference §2.7
        let tag = HashAlgorithm::Sha2_256.hmac(b"01234567890123456789012345678901", b"the quick brown fox");
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(&tag),
            "UcBvm5VskkukzZHlPgm3p5P/Yr/PV6xpuOGZISya3A4="
        );
        assert!(HashAlgorithm::Sha2_256.verify_hmac(b"01234567890123456789012345678901", b"the quick brown fox", &tag));
        assert!(!HashAlgorithm::Sha2_256.verify_hmac(
            b"01234567890123456789012345678901",
            b"the quick brown fix",
            &tag
        ));
    }

    #[test]
    fn convergent_ciphertext_matches_vaults_vector() -> Result<(), Error> {
        // reference §4.4: the full ciphertext, byte for byte.
        let out = derive_convergent(b"01234567890123456789012345678901", 32, b"my-context")?;
        let aead = AeadKey::new(KeyType::Aes256Gcm96, &out[..32])?;
        let nonce = convergent_nonce(&out[32..], b"", b"the quick brown fox");
        let payload = aead.seal(&nonce, b"", b"the quick brown fox");
        let ct = crate::Ciphertext::from_parts(crate::KeyVersion::FIRST, payload);
        assert_eq!(
            ct.to_string(),
            "vault:v1:5AxYufjKfgRKUjWgJgwpOLtD6iW7ImTyAfAfLkWRdVy7ikgLSg2BKTfimveOI3c="
        );
        Ok(())
    }

    #[test]
    fn chacha_and_aes128_round_trip() -> Result<(), Error> {
        for (t, len) in [(KeyType::ChaCha20Poly1305, 32), (KeyType::Aes128Gcm96, 16)] {
            let aead = AeadKey::new(t, &vec![3u8; len])?;
            let nonce = random_nonce(false)?;
            let sealed = aead.seal(&nonce, b"ad", b"value");
            assert_eq!(sealed.len(), NONCE_LEN + 5 + TAG_LEN);
            assert_eq!(aead.open(b"ad", &envelope(&sealed))?.expose_secret(), b"value");
            assert!(aead.open(b"other", &envelope(&sealed)).is_err());
            assert!(AeadKey::new(t, &[0u8; 5]).is_err());
        }
        Ok(())
    }

    /// With `aws-lc`, both backends must produce and accept the same bytes.
    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_and_rust_crypto_agree() -> Result<(), Error> {
        for t in [KeyType::Aes256Gcm96, KeyType::Aes128Gcm96, KeyType::ChaCha20Poly1305] {
            let key = vec![9u8; t.key_len()];
            let (fast, reference) = (AeadKey::new(t, &key)?, AeadKey::rust_crypto(t, &key)?);
            assert!(matches!(fast, AeadKey::AwsLc(_)));
            for len in [0usize, 1, 15, 16, 64, 1000] {
                let plaintext = vec![0x5au8; len];
                let nonce = random_nonce(false)?;
                let sealed = fast.seal(&nonce, b"aad", &plaintext);
                assert_eq!(sealed, reference.seal(&nonce, b"aad", &plaintext), "{t} {len}");
                assert_eq!(
                    reference.open(b"aad", &envelope(&sealed))?.expose_secret(),
                    &plaintext[..]
                );
                assert_eq!(fast.open(b"aad", &envelope(&sealed))?.expose_secret(), &plaintext[..]);
                // The plaintext's buffer is exactly its size: a `String` field takes it
                // over as is, without spare bytes.
                for key in [&fast, &reference] {
                    let mut opened = key.open(b"aad", &envelope(&sealed))?;
                    assert_eq!(opened.as_mut_vec().capacity(), len, "{t} {len}");
                    assert_eq!(key.open_payload(b"aad", &sealed)?.expose_secret(), &plaintext[..]);
                }
                assert!(matches!(
                    fast.open(b"other", &envelope(&sealed)),
                    Err(Error::DecryptionFailed)
                ));
                let mut tampered = sealed.clone();
                if let Some(last) = tampered.last_mut() {
                    *last ^= 1;
                }
                assert!(matches!(
                    fast.open(b"aad", &envelope(&tampered)),
                    Err(Error::DecryptionFailed)
                ));
            }
            assert!(AeadKey::new(t, &[0u8; 5]).is_err());
        }
        Ok(())
    }

    #[test]
    fn nonces_differ() -> Result<(), Error> {
        let a = random_nonce(false)?;
        let b = random_nonce(true)?;
        reseed_nonce_generator_after_fork()?;
        assert_ne!(random_nonce(false)?, a);
        assert_ne!(a, b);
        Ok(())
    }

    #[test]
    fn convergent_nonce_without_aad_matches_vault_v3() -> Result<(), Error> {
        // reference §4.4
        let out = derive_convergent(b"01234567890123456789012345678901", 32, b"my-context")?;
        assert_eq!(
            out[..32],
            hex("8d43c3ac59a7b6de93762a065653786ef0a1772e71b9bdbc94d6765223a456c0")[..]
        );
        assert_eq!(
            out[32..],
            hex("494321111ea4e91a749bd4c7e1bc73e692bd5bb8119469ddf70cbf03eccbf4b7")[..]
        );
        let nonce = convergent_nonce(&out[32..], b"", b"the quick brown fox");
        assert_eq!(nonce[..], hex("e40c58b9f8ca7e044a5235a0")[..]);
        // With associated data the nonce changes (and so never repeats across AADs).
        assert_ne!(convergent_nonce(&out[32..], b"x", b"the quick brown fox"), nonce);
        Ok(())
    }

    #[test]
    fn short_payload_is_malformed_not_a_failed_decryption() -> Result<(), Error> {
        let key = AeadKey::new(KeyType::Aes256Gcm96, &[7u8; 32])?;
        assert!(matches!(
            key.open(b"", &envelope(&[0u8; 27])),
            Err(Error::MalformedCiphertext(_))
        ));
        assert!(matches!(
            key.open_payload(b"", &[0u8; 27]),
            Err(Error::MalformedCiphertext(_))
        ));
        Ok(())
    }
}
