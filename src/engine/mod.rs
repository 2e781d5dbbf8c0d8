//! The transit engine interface: batch-first operations with a blocking face
//! ([`TransitEngine`]) and an async face ([`AsyncTransitEngine`]).
//!
//! Every data operation takes a batch and returns one result per item, in order: a
//! bad item reports its own error and the others still run. The outer `Result` fails
//! only for problems of the whole request (unknown key, storage failure). Single-item
//! methods are batches of one.
//!
//! The in-process [`LocalEngine`] does no I/O on the data path, so it implements the
//! async face by running the blocking one inline (marker trait [`InProcess`]); a
//! remote engine implements both faces itself.

mod local;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;

use bytes::Bytes;

pub use local::LocalEngine;

use crate::cipher::HashAlgorithm;
use crate::ciphertext::{self, Ciphertext, HMAC_ERRORS};
use crate::error::{Error, Result};
use crate::keyring::{KeyConfig, KeyInfo, KeyOptions};
use crate::name::{KeyName, KeyVersion};
use crate::secret::{Plaintext, SecretBytes};

/// One value to encrypt.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct EncryptItem {
    /// The value.
    pub plaintext: Plaintext,
    /// Key-derivation context (required for derived keys, refused otherwise).
    pub context: Option<Bytes>,
    /// Associated data: authenticated, not encrypted; decryption needs the same.
    pub associated_data: Option<Bytes>,
    /// Version to encrypt with (default: the latest).
    pub key_version: Option<KeyVersion>,
}

impl EncryptItem {
    /// An item with only a plaintext.
    #[must_use]
    pub fn new(plaintext: impl Into<Plaintext>) -> Self {
        // Fields spelled out: `..Self::default()` would build and wipe an empty
        // plaintext for every item.
        Self {
            plaintext: plaintext.into(),
            context: None,
            associated_data: None,
            key_version: None,
        }
    }

    /// Sets the key-derivation context.
    #[must_use]
    pub fn context(mut self, context: impl Into<Vec<u8>>) -> Self {
        self.context = Some(Bytes::from(context.into()));
        self
    }

    /// Sets the associated data.
    #[must_use]
    pub fn associated_data(mut self, aad: impl Into<Vec<u8>>) -> Self {
        self.associated_data = Some(Bytes::from(aad.into()));
        self
    }

    /// Encrypts with `version` instead of the latest.
    #[must_use]
    pub fn key_version(mut self, version: KeyVersion) -> Self {
        self.key_version = Some(version);
        self
    }
}

/// One ciphertext to decrypt.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DecryptItem {
    /// The ciphertext.
    pub ciphertext: Ciphertext,
    /// The context it was encrypted with (derived keys).
    pub context: Option<Bytes>,
    /// The associated data it was encrypted with.
    pub associated_data: Option<Bytes>,
}

impl DecryptItem {
    /// An item with only a ciphertext.
    #[must_use]
    pub fn new(ciphertext: Ciphertext) -> Self {
        Self {
            ciphertext,
            context: None,
            associated_data: None,
        }
    }

    /// Sets the key-derivation context.
    #[must_use]
    pub fn context(mut self, context: impl Into<Vec<u8>>) -> Self {
        self.context = Some(Bytes::from(context.into()));
        self
    }

    /// Sets the associated data.
    #[must_use]
    pub fn associated_data(mut self, aad: impl Into<Vec<u8>>) -> Self {
        self.associated_data = Some(Bytes::from(aad.into()));
        self
    }
}

/// One ciphertext to re-encrypt under another (by default the latest) version,
/// without the plaintext leaving the engine. Unlike Vault, associated data is
/// supported: it is checked on decryption and bound again on encryption.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RewrapItem {
    /// The ciphertext.
    pub ciphertext: Ciphertext,
    /// Its context (derived keys).
    pub context: Option<Bytes>,
    /// Its associated data, kept for the new ciphertext.
    pub associated_data: Option<Bytes>,
    /// Target version (default: the latest).
    pub key_version: Option<KeyVersion>,
}

impl RewrapItem {
    /// An item with only a ciphertext.
    #[must_use]
    pub fn new(ciphertext: Ciphertext) -> Self {
        Self {
            ciphertext,
            context: None,
            associated_data: None,
            key_version: None,
        }
    }

    /// Sets the key-derivation context.
    #[must_use]
    pub fn context(mut self, context: impl Into<Vec<u8>>) -> Self {
        self.context = Some(Bytes::from(context.into()));
        self
    }

    /// Sets the associated data.
    #[must_use]
    pub fn associated_data(mut self, aad: impl Into<Vec<u8>>) -> Self {
        self.associated_data = Some(Bytes::from(aad.into()));
        self
    }

    /// Rewraps to `version` instead of the latest.
    #[must_use]
    pub fn key_version(mut self, version: KeyVersion) -> Self {
        self.key_version = Some(version);
        self
    }
}

/// One input to HMAC.
#[derive(Debug)]
#[non_exhaustive]
pub struct HmacItem {
    /// The input (treated as secret: blind indexes HMAC plaintexts).
    pub input: SecretBytes,
    /// Version of the HMAC key (default: the latest).
    pub key_version: Option<KeyVersion>,
}

impl HmacItem {
    /// An item with only an input.
    #[must_use]
    pub fn new(input: impl Into<SecretBytes>) -> Self {
        Self {
            input: input.into(),
            key_version: None,
        }
    }

    /// Uses the HMAC key of `version`.
    #[must_use]
    pub fn key_version(mut self, version: KeyVersion) -> Self {
        self.key_version = Some(version);
        self
    }
}

/// One HMAC to check.
#[derive(Debug)]
#[non_exhaustive]
pub struct VerifyHmacItem {
    /// The input the HMAC should be of.
    pub input: SecretBytes,
    /// The HMAC to check.
    pub hmac: HmacTag,
}

impl VerifyHmacItem {
    /// An item to verify.
    #[must_use]
    pub fn new(input: impl Into<SecretBytes>, hmac: HmacTag) -> Self {
        Self {
            input: input.into(),
            hmac,
        }
    }
}

/// An HMAC as Vault writes it: `vault:v<N>:<base64>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HmacTag {
    version: KeyVersion,
    tag: Vec<u8>,
}

impl HmacTag {
    pub(crate) fn new(version: KeyVersion, tag: Vec<u8>) -> Self {
        Self { version, tag }
    }

    /// The key version whose HMAC key made this tag.
    #[must_use]
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// The raw tag bytes.
    #[must_use]
    pub fn tag(&self) -> &[u8] {
        &self.tag
    }
}

impl fmt::Display for HmacTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ciphertext::write_envelope(self.version, &self.tag, f)
    }
}

impl fmt::Debug for HmacTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacTag({self})")
    }
}

impl FromStr for HmacTag {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (version, tag) = ciphertext::parse_envelope(s, &HMAC_ERRORS)?;
        Ok(Self { version, tag })
    }
}

/// Size of a generated data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DataKeyBits {
    /// 128 bits.
    B128,
    /// 256 bits (the default).
    #[default]
    B256,
    /// 512 bits.
    B512,
}

impl DataKeyBits {
    /// From a bit count (128, 256 or 512).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for any other count.
    pub fn from_bits(bits: u32) -> Result<Self> {
        match bits {
            128 => Ok(Self::B128),
            256 => Ok(Self::B256),
            512 => Ok(Self::B512),
            _ => Err(Error::invalid("invalid bit length")),
        }
    }

    /// Length in bytes.
    #[must_use]
    pub fn bytes(self) -> usize {
        match self {
            Self::B128 => 16,
            Self::B256 => 32,
            Self::B512 => 64,
        }
    }
}

/// A request for a data key: random bytes returned encrypted under the named key
/// (and, unless `wrapped_only`, also in plaintext for immediate local use).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DataKeyRequest {
    /// Size of the data key.
    pub bits: DataKeyBits,
    /// Return only the ciphertext (Vault's `wrapped` type).
    pub wrapped_only: bool,
    /// Key-derivation context (derived keys).
    pub context: Option<Bytes>,
    /// Associated data bound to the wrapped key.
    pub associated_data: Option<Bytes>,
    /// Version to encrypt with (default: latest).
    pub key_version: Option<KeyVersion>,
}

impl DataKeyRequest {
    /// A request for a data key of `bits`, returned in plaintext and wrapped.
    #[must_use]
    pub fn new(bits: DataKeyBits) -> Self {
        Self {
            bits,
            ..Self::default()
        }
    }

    /// Returns only the wrapped (encrypted) data key.
    #[must_use]
    pub fn wrapped_only(mut self) -> Self {
        self.wrapped_only = true;
        self
    }

    /// Sets the key-derivation context.
    #[must_use]
    pub fn context(mut self, context: impl Into<Vec<u8>>) -> Self {
        self.context = Some(Bytes::from(context.into()));
        self
    }

    /// Sets the associated data.
    #[must_use]
    pub fn associated_data(mut self, aad: impl Into<Vec<u8>>) -> Self {
        self.associated_data = Some(Bytes::from(aad.into()));
        self
    }

    /// Encrypts with `version` instead of the latest.
    #[must_use]
    pub fn key_version(mut self, version: KeyVersion) -> Self {
        self.key_version = Some(version);
        self
    }
}

/// A generated data key.
#[derive(Debug)]
#[non_exhaustive]
pub struct DataKey {
    /// The data key encrypted under the named key; decrypt gives the raw bytes.
    pub ciphertext: Ciphertext,
    /// The data key itself, unless only the wrapped form was asked for.
    pub plaintext: Option<SecretBytes>,
}

/// Which material an export returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportKind {
    /// The encryption keys (for derived keys: the base keys, not derived ones).
    EncryptionKey,
    /// The per-version HMAC keys.
    HmacKey,
}

/// Exported key material, by version. Deliberately exported: wiped on drop,
/// redacted in `Debug`.
#[derive(Debug)]
#[non_exhaustive]
pub struct ExportedKey {
    /// The key's name.
    pub name: KeyName,
    /// Material by version.
    pub keys: BTreeMap<KeyVersion, SecretBytes>,
}

/// Per-item results of a batch, in request order.
pub type BatchResult<T> = Result<Vec<Result<T>>>;

/// The blocking face of a transit engine.
///
/// Implemented by [`LocalEngine`] (in process) and, with the `client` feature, by
/// the remote client. Application code and the derive are generic over it, so the
/// engine can move out of process by configuration.
pub trait TransitEngine: Send + Sync {
    /// Encrypts each item with key `key`.
    ///
    /// # Errors
    /// Outer: unknown key or storage failure. Per item: bad context, bad version…
    fn encrypt_batch(&self, key: &KeyName, items: Vec<EncryptItem>) -> BatchResult<Ciphertext>;

    /// Decrypts each item with key `key`.
    ///
    /// # Errors
    /// Outer: unknown key or storage failure. Per item: [`Error::DecryptionFailed`],
    /// [`Error::VersionRetired`], [`Error::VersionTooNew`], context problems…
    fn decrypt_batch(&self, key: &KeyName, items: Vec<DecryptItem>) -> BatchResult<Plaintext>;

    /// Re-encrypts each item under the target version without exposing plaintext.
    ///
    /// # Errors
    /// As [`decrypt_batch`](Self::decrypt_batch) and [`encrypt_batch`](Self::encrypt_batch).
    fn rewrap_batch(&self, key: &KeyName, items: Vec<RewrapItem>) -> BatchResult<Ciphertext>;

    /// HMACs each input with the key version's HMAC key.
    ///
    /// # Errors
    /// Outer: unknown key. Per item: version out of range.
    fn hmac_batch(&self, key: &KeyName, algorithm: HashAlgorithm, items: Vec<HmacItem>) -> BatchResult<HmacTag>;

    /// Checks each HMAC in constant time.
    ///
    /// # Errors
    /// Outer: unknown key. Per item: version too new or retired.
    fn verify_hmac_batch(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<VerifyHmacItem>,
    ) -> BatchResult<bool>;

    /// Generates a data key encrypted under `key`.
    ///
    /// # Errors
    /// Unknown key, bad context or version, random source failure.
    fn datakey(&self, key: &KeyName, request: DataKeyRequest) -> Result<DataKey>;

    /// Creates a key; if it exists already, returns it unchanged (Vault's upsert).
    ///
    /// # Errors
    /// Invalid options, storage failure.
    fn create_key(&self, key: &KeyName, options: KeyOptions) -> Result<KeyInfo>;

    /// A key's description.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`].
    fn read_key(&self, key: &KeyName) -> Result<KeyInfo>;

    /// Every key's name, sorted.
    ///
    /// # Errors
    /// Storage failure.
    fn list_keys(&self) -> Result<Vec<KeyName>>;

    /// Adds a version; new encryptions use it.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], storage failure.
    fn rotate_key(&self, key: &KeyName) -> Result<KeyInfo>;

    /// Changes a key's configuration (Vault's rules).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::InvalidRequest`] for a refused change.
    fn configure_key(&self, key: &KeyName, config: KeyConfig) -> Result<KeyInfo>;

    /// Deletes versions below `min_available_version` for ever.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::InvalidRequest`] for a refused trim.
    fn trim_key(&self, key: &KeyName, min_available_version: KeyVersion) -> Result<KeyInfo>;

    /// Deletes a key whose `deletion_allowed` is set.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::NotAllowed`].
    fn delete_key(&self, key: &KeyName) -> Result<()>;

    /// Exports key material of an `exportable` key: one version, or every version
    /// that can still decrypt.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::NotAllowed`], version out of range.
    fn export_key(&self, key: &KeyName, kind: ExportKind, version: Option<KeyVersion>) -> Result<ExportedKey>;

    /// `len` random bytes from the engine's random source (1 ..= 131072).
    ///
    /// # Errors
    /// Length out of range, random source failure.
    fn random_bytes(&self, len: usize) -> Result<Vec<u8>>;

    /// The digest of `input`.
    ///
    /// # Errors
    /// Only a remote engine fails here (transport).
    fn hash(&self, algorithm: HashAlgorithm, input: &[u8]) -> Result<Vec<u8>>;

    /// Encrypts one value.
    ///
    /// # Errors
    /// As [`encrypt_batch`](Self::encrypt_batch), flattened.
    fn encrypt(&self, key: &KeyName, item: EncryptItem) -> Result<Ciphertext> {
        single(self.encrypt_batch(key, vec![item]))
    }

    /// Decrypts one value.
    ///
    /// # Errors
    /// As [`decrypt_batch`](Self::decrypt_batch), flattened.
    fn decrypt(&self, key: &KeyName, item: DecryptItem) -> Result<Plaintext> {
        single(self.decrypt_batch(key, vec![item]))
    }

    /// Rewraps one value.
    ///
    /// # Errors
    /// As [`rewrap_batch`](Self::rewrap_batch), flattened.
    fn rewrap(&self, key: &KeyName, item: RewrapItem) -> Result<Ciphertext> {
        single(self.rewrap_batch(key, vec![item]))
    }

    /// HMACs one input.
    ///
    /// # Errors
    /// As [`hmac_batch`](Self::hmac_batch), flattened.
    fn hmac(&self, key: &KeyName, algorithm: HashAlgorithm, item: HmacItem) -> Result<HmacTag> {
        single(self.hmac_batch(key, algorithm, vec![item]))
    }

    /// Verifies one HMAC.
    ///
    /// # Errors
    /// As [`verify_hmac_batch`](Self::verify_hmac_batch), flattened.
    fn verify_hmac(&self, key: &KeyName, algorithm: HashAlgorithm, item: VerifyHmacItem) -> Result<bool> {
        single(self.verify_hmac_batch(key, algorithm, vec![item]))
    }
}

fn single<T>(batch: BatchResult<T>) -> Result<T> {
    batch?
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(Error::invalid("engine returned no result for the item")))
}

/// Marker for engines that do no network I/O, so their blocking face may run
/// directly inside an async task. Such engines get [`AsyncTransitEngine`] for free.
pub trait InProcess: TransitEngine {}

/// The async face of a transit engine: the same operations as [`TransitEngine`],
/// for async services (axum, actix, sea-orm, sqlx). [`LocalEngine`] gets it for free
/// (see [`InProcess`]); the remote engine sends its requests without blocking.
pub trait AsyncTransitEngine: Send + Sync {
    /// See [`TransitEngine::encrypt_batch`].
    fn encrypt_batch_async(
        &self,
        key: &KeyName,
        items: Vec<EncryptItem>,
    ) -> impl Future<Output = BatchResult<Ciphertext>> + Send;

    /// See [`TransitEngine::decrypt_batch`].
    fn decrypt_batch_async(
        &self,
        key: &KeyName,
        items: Vec<DecryptItem>,
    ) -> impl Future<Output = BatchResult<Plaintext>> + Send;

    /// See [`TransitEngine::rewrap_batch`].
    fn rewrap_batch_async(
        &self,
        key: &KeyName,
        items: Vec<RewrapItem>,
    ) -> impl Future<Output = BatchResult<Ciphertext>> + Send;

    /// See [`TransitEngine::hmac_batch`].
    fn hmac_batch_async(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<HmacItem>,
    ) -> impl Future<Output = BatchResult<HmacTag>> + Send;

    /// See [`TransitEngine::verify_hmac_batch`].
    fn verify_hmac_batch_async(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<VerifyHmacItem>,
    ) -> impl Future<Output = BatchResult<bool>> + Send;

    /// See [`TransitEngine::datakey`].
    fn datakey_async(&self, key: &KeyName, request: DataKeyRequest) -> impl Future<Output = Result<DataKey>> + Send;

    /// See [`TransitEngine::create_key`].
    fn create_key_async(&self, key: &KeyName, options: KeyOptions) -> impl Future<Output = Result<KeyInfo>> + Send;

    /// See [`TransitEngine::read_key`].
    fn read_key_async(&self, key: &KeyName) -> impl Future<Output = Result<KeyInfo>> + Send;

    /// See [`TransitEngine::list_keys`].
    fn list_keys_async(&self) -> impl Future<Output = Result<Vec<KeyName>>> + Send;

    /// See [`TransitEngine::rotate_key`].
    fn rotate_key_async(&self, key: &KeyName) -> impl Future<Output = Result<KeyInfo>> + Send;

    /// See [`TransitEngine::configure_key`].
    fn configure_key_async(&self, key: &KeyName, config: KeyConfig) -> impl Future<Output = Result<KeyInfo>> + Send;

    /// See [`TransitEngine::trim_key`].
    fn trim_key_async(
        &self,
        key: &KeyName,
        min_available_version: KeyVersion,
    ) -> impl Future<Output = Result<KeyInfo>> + Send;

    /// See [`TransitEngine::delete_key`].
    fn delete_key_async(&self, key: &KeyName) -> impl Future<Output = Result<()>> + Send;

    /// See [`TransitEngine::export_key`].
    fn export_key_async(
        &self,
        key: &KeyName,
        kind: ExportKind,
        version: Option<KeyVersion>,
    ) -> impl Future<Output = Result<ExportedKey>> + Send;

    /// See [`TransitEngine::random_bytes`].
    fn random_bytes_async(&self, len: usize) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// See [`TransitEngine::hash`].
    fn hash_async(&self, algorithm: HashAlgorithm, input: &[u8]) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// See [`TransitEngine::encrypt`].
    fn encrypt_async(&self, key: &KeyName, item: EncryptItem) -> impl Future<Output = Result<Ciphertext>> + Send {
        async move { single(self.encrypt_batch_async(key, vec![item]).await) }
    }

    /// See [`TransitEngine::decrypt`].
    fn decrypt_async(&self, key: &KeyName, item: DecryptItem) -> impl Future<Output = Result<Plaintext>> + Send {
        async move { single(self.decrypt_batch_async(key, vec![item]).await) }
    }

    /// See [`TransitEngine::rewrap`].
    fn rewrap_async(&self, key: &KeyName, item: RewrapItem) -> impl Future<Output = Result<Ciphertext>> + Send {
        async move { single(self.rewrap_batch_async(key, vec![item]).await) }
    }

    /// See [`TransitEngine::hmac`].
    fn hmac_async(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        item: HmacItem,
    ) -> impl Future<Output = Result<HmacTag>> + Send {
        async move { single(self.hmac_batch_async(key, algorithm, vec![item]).await) }
    }

    /// See [`TransitEngine::verify_hmac`].
    fn verify_hmac_async(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        item: VerifyHmacItem,
    ) -> impl Future<Output = Result<bool>> + Send {
        async move { single(self.verify_hmac_batch_async(key, algorithm, vec![item]).await) }
    }
}

/// The in-process engine's async face: its data path does no I/O, so each operation
/// runs inline. Key changes write the keyring (a file or a table) inline too; they are
/// rare and short, like the reads an async service makes of its configuration.
impl<E: InProcess> AsyncTransitEngine for E {
    fn encrypt_batch_async(
        &self,
        key: &KeyName,
        items: Vec<EncryptItem>,
    ) -> impl Future<Output = BatchResult<Ciphertext>> + Send {
        std::future::ready(self.encrypt_batch(key, items))
    }

    fn decrypt_batch_async(
        &self,
        key: &KeyName,
        items: Vec<DecryptItem>,
    ) -> impl Future<Output = BatchResult<Plaintext>> + Send {
        std::future::ready(self.decrypt_batch(key, items))
    }

    fn rewrap_batch_async(
        &self,
        key: &KeyName,
        items: Vec<RewrapItem>,
    ) -> impl Future<Output = BatchResult<Ciphertext>> + Send {
        std::future::ready(self.rewrap_batch(key, items))
    }

    fn hmac_batch_async(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<HmacItem>,
    ) -> impl Future<Output = BatchResult<HmacTag>> + Send {
        std::future::ready(self.hmac_batch(key, algorithm, items))
    }

    fn verify_hmac_batch_async(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<VerifyHmacItem>,
    ) -> impl Future<Output = BatchResult<bool>> + Send {
        std::future::ready(self.verify_hmac_batch(key, algorithm, items))
    }

    fn datakey_async(&self, key: &KeyName, request: DataKeyRequest) -> impl Future<Output = Result<DataKey>> + Send {
        std::future::ready(self.datakey(key, request))
    }

    fn create_key_async(&self, key: &KeyName, options: KeyOptions) -> impl Future<Output = Result<KeyInfo>> + Send {
        std::future::ready(self.create_key(key, options))
    }

    fn read_key_async(&self, key: &KeyName) -> impl Future<Output = Result<KeyInfo>> + Send {
        std::future::ready(self.read_key(key))
    }

    fn list_keys_async(&self) -> impl Future<Output = Result<Vec<KeyName>>> + Send {
        std::future::ready(self.list_keys())
    }

    fn rotate_key_async(&self, key: &KeyName) -> impl Future<Output = Result<KeyInfo>> + Send {
        std::future::ready(self.rotate_key(key))
    }

    fn configure_key_async(&self, key: &KeyName, config: KeyConfig) -> impl Future<Output = Result<KeyInfo>> + Send {
        std::future::ready(self.configure_key(key, config))
    }

    fn trim_key_async(
        &self,
        key: &KeyName,
        min_available_version: KeyVersion,
    ) -> impl Future<Output = Result<KeyInfo>> + Send {
        std::future::ready(self.trim_key(key, min_available_version))
    }

    fn delete_key_async(&self, key: &KeyName) -> impl Future<Output = Result<()>> + Send {
        std::future::ready(self.delete_key(key))
    }

    fn export_key_async(
        &self,
        key: &KeyName,
        kind: ExportKind,
        version: Option<KeyVersion>,
    ) -> impl Future<Output = Result<ExportedKey>> + Send {
        std::future::ready(self.export_key(key, kind, version))
    }

    fn random_bytes_async(&self, len: usize) -> impl Future<Output = Result<Vec<u8>>> + Send {
        std::future::ready(self.random_bytes(len))
    }

    fn hash_async(&self, algorithm: HashAlgorithm, input: &[u8]) -> impl Future<Output = Result<Vec<u8>>> + Send {
        std::future::ready(self.hash(algorithm, input))
    }
}
