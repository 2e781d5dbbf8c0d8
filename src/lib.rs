#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cipher;
mod ciphertext;
mod engine;
mod error;
mod keyring;
mod name;
mod secret;
pub mod storage;

// Identifiers and envelopes.
pub use ciphertext::{Ciphertext, PREFIX as CIPHERTEXT_PREFIX};
pub use name::{KeyName, KeyVersion, MAX_KEY_NAME_LEN};

// Secrets and errors.
pub use error::{BoxError, Error, Result};
pub use secret::{Plaintext, SecretBytes};

// The engine interface and the in-process engine.
pub use cipher::{HashAlgorithm, KeyType, reseed_nonce_generator_after_fork};
pub use engine::{
    AsyncTransitEngine, BatchResult, DataKey, DataKeyBits, DataKeyRequest, DecryptItem,
    EncryptItem, ExportKind, ExportedKey, HmacItem, HmacTag, InProcess, LocalEngine, RewrapItem,
    TransitEngine, VerifyHmacItem,
};
pub use keyring::{
    EngineOptions, KeyConfig, KeyInfo, KeyOptions, MAX_NONCE_BUDGET, MIN_AUTO_ROTATE_PERIOD,
};
pub use storage::RootKey;

/// The derive: see the crate documentation.
pub use encrypted_attr_derive::Encrypted;
