//! The one error type of the library: what went wrong, never which secret was involved.
//!
//! Decryption fails one opaque way ([`Error::DecryptionFailed`]): a wrong key, a
//! wrong context, wrong associated data and a tampered byte are indistinguishable on
//! purpose. Problems found *before* any cryptography (a malformed envelope, an unknown
//! key, a retired version) have their own variants so callers can tell bad input from
//! a failed authentication. No variant ever carries plaintext, key bytes or tokens.

use std::path::PathBuf;

use crate::name::{KeyName, KeyVersion};

/// Boxed foreign error kept as a source, so foreign types never appear in our API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine, the keyring and its storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key name does not follow Vault's rule (word characters, `-` and `.`,
    /// starting and ending with a word character).
    #[error("invalid key name: {reason}")]
    InvalidKeyName {
        /// Why the name was refused.
        reason: &'static str,
    },

    /// A ciphertext (or HMAC) string is not a well-formed `vault:v<N>:<base64>` envelope.
    /// The message follows Vault's wording, e.g. `invalid ciphertext: no prefix`.
    #[error("{0}")]
    MalformedCiphertext(&'static str),

    /// No key of this name exists in the keyring.
    #[error("encryption key not found: {name}")]
    KeyNotFound {
        /// The name that was looked up.
        name: KeyName,
    },

    /// The ciphertext names a key version newer than the key's latest version.
    #[error("invalid ciphertext: version is too new (v{version}, latest is v{latest})")]
    VersionTooNew {
        /// Version named by the ciphertext or request.
        version: KeyVersion,
        /// The key's latest version.
        latest: KeyVersion,
    },

    /// The ciphertext names a version below the key's `min_decryption_version`
    /// (retired or trimmed).
    #[error(
        "ciphertext or signature version is disallowed by policy (too old): v{version} is below the minimum decryption version v{min_decryption_version}"
    )]
    VersionRetired {
        /// Version named by the ciphertext.
        version: KeyVersion,
        /// The key's minimum decryption version.
        min_decryption_version: KeyVersion,
    },

    /// Authentication failed: wrong key version material, wrong context, wrong
    /// associated data, or a modified ciphertext. Deliberately says no more.
    #[error("cipher: message authentication failed")]
    DecryptionFailed,

    /// The key is derived, so every operation needs a non-empty `context`.
    #[error(
        "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
    )]
    MissingContext,

    /// A `context` was given for a key that is not derived. Vault ignores it silently;
    /// we refuse, because a caller passing a context expects it to bind the ciphertext.
    #[error("context given but key {name} is not derived; the context would be ignored")]
    ContextNotAllowed {
        /// The key that is not derived.
        name: KeyName,
    },

    /// A request parameter is out of range or inconsistent (the message says which),
    /// e.g. a `min_decryption_version` above the latest version.
    #[error("{0}")]
    InvalidRequest(String),

    /// The key forbids this operation (delete without `deletion_allowed`, export
    /// without `exportable`, …).
    #[error("{0}")]
    NotAllowed(String),

    /// The keyring or another stored entry could not be authenticated with the root
    /// key given: the key is wrong, or the entry belongs to another keyring.
    #[error("the root key does not open this keyring (wrong root key, or not this keyring's file)")]
    WrongRootKey,

    /// A stored entry or file is damaged: truncated, torn, or not in our format.
    /// Nothing was overwritten.
    #[error("keyring storage is corrupted at {location}: {reason}")]
    CorruptStorage {
        /// File or storage path of the damaged entry.
        location: String,
        /// What was found wrong.
        reason: &'static str,
    },

    /// Another process holds the keyring file's write lock longer than we wait.
    #[error("keyring file {path} is locked by another process")]
    StorageLocked {
        /// The lock file.
        path: PathBuf,
    },

    /// A root key could not be loaded (bad length, bad encoding, missing variable).
    #[error("invalid root key: {0}")]
    InvalidRootKey(&'static str),

    /// Reading or writing storage failed.
    #[error("storage I/O failed at {location}")]
    Io {
        /// File or storage path involved.
        location: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A storage backend failed for a reason of its own.
    #[error("storage backend failed")]
    Storage(#[source] BoxError),

    /// Decrypted bytes are not a valid encoding of the field's Rust type (the key,
    /// column and binding were right, but the codec disagrees: a schema change?).
    #[error("invalid field value: {0}")]
    InvalidFieldValue(&'static str),

    /// Encrypting or decrypting one field of one model failed; says which, never
    /// the value.
    #[error("encrypted field {table}.{column} of item {item} in the batch: {source}")]
    Field {
        /// The model's table.
        table: &'static str,
        /// The field's column.
        column: &'static str,
        /// Position of the model or record in the batch (0 for a single one).
        item: usize,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },

    /// A remote transit server answered with an error status; `errors` are its
    /// messages (Vault's `{"errors": [...]}`).
    #[error("transit server answered {status}: {}", errors.join("; "))]
    Remote {
        /// HTTP status.
        status: u16,
        /// The server's error messages.
        errors: Vec<String>,
    },

    /// The remote transit server could not be reached (connection, TLS, timeout).
    #[error("transit server unreachable")]
    Transport(#[source] BoxError),

    /// A blocking remote operation was called on a current-thread async runtime, where
    /// it would stall the only thread; use the async face (`*_async`) there.
    #[error("blocking call of a remote engine on a current-thread async runtime; use the async methods (`*_async`)")]
    BlockingInAsync,

    /// The operating system's random source failed; nothing was encrypted.
    #[error("the system random source failed")]
    RandomSource,
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }

    pub(crate) fn io(location: impl std::fmt::Display, source: std::io::Error) -> Self {
        Self::Io {
            location: location.to_string(),
            source,
        }
    }

    /// True when the error comes from the request (bad input, unknown key, failed
    /// authentication) rather than from the engine or its storage. A server maps the
    /// first kind to HTTP 400 and the second to 500.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        if let Self::Field { source, .. } = self {
            return source.is_user_error();
        }
        if let Self::Remote { status, .. } = self {
            return *status < 500;
        }
        !matches!(
            self,
            Self::WrongRootKey
                | Self::CorruptStorage { .. }
                | Self::StorageLocked { .. }
                | Self::Io { .. }
                | Self::Storage(_)
                | Self::RandomSource
                | Self::InvalidRootKey(_)
                | Self::Transport(_)
                | Self::BlockingInAsync
        )
    }
}

/// What a one-call load or save through an ORM can fail with: the database (`D` is
/// the ORM's error type: `diesel::result::Error`, `sea_orm::DbErr`, `sqlx::Error`)
/// or the encryption.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError<D> {
    /// The database or the ORM failed.
    #[error(transparent)]
    Database(D),
    /// Encrypting or decrypting failed.
    #[error(transparent)]
    Encryption(#[from] Error),
}

impl From<crate::name::NameError> for Error {
    fn from(error: crate::name::NameError) -> Self {
        match error {
            crate::name::NameError::InvalidKeyName { reason } => Self::InvalidKeyName { reason },
            crate::name::NameError::InvalidVersion => Self::invalid("key versions start at 1"),
        }
    }
}
