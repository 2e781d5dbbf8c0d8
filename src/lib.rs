#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cipher;
mod ciphertext;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "diesel")]
mod diesel;
mod engine;
mod error;
mod keyring;
mod name;
mod runtime;
mod scratch;
#[cfg(feature = "sea-orm")]
mod sea_orm;
mod secret;
#[cfg(feature = "sqlx")]
mod sqlx;
pub mod storage;
#[doc(hidden)]
pub mod wire_names;

// Identifiers and envelopes.
pub use ciphertext::{Ciphertext, PREFIX as CIPHERTEXT_PREFIX};
pub use name::{KeyName, KeyVersion, MAX_KEY_NAME_LEN, NameError};

// Secrets and errors.
pub use error::{BoxError, Error, QueryError, Result};
pub use secret::{Plaintext, SecretBytes};

// The engine interface and the in-process engine.
/// The shared byte buffer of an item's context and associated data: a batch's
/// bindings are slices of one buffer, so an item costs no allocation of its own.
pub use bytes::Bytes;
pub use cipher::{HashAlgorithm, KeyType, reseed_nonce_generator_after_fork};
pub use engine::{
    AsyncTransitEngine, BatchResult, DataKey, DataKeyBits, DataKeyRequest, DecryptItem, EncryptItem, ExportKind,
    ExportedKey, HmacItem, HmacTag, InProcess, LocalEngine, RewrapItem, TransitEngine, VerifyHmacItem,
};
pub use keyring::{EngineOptions, KeyConfig, KeyInfo, KeyOptions, MAX_NONCE_BUDGET, MIN_AUTO_ROTATE_PERIOD};
pub use storage::RootKey;

// The remote engine (feature `client`).
#[cfg(feature = "client")]
pub use client::{BatchLimits, ClientConfig, RemoteEngine};

// One-call loads and saves per ORM (features `diesel`, `sea-orm`, `sqlx`).
#[cfg(feature = "diesel")]
pub use diesel::EncryptedRunQueryDsl;
#[cfg(feature = "sea-orm")]
pub use sea_orm::{EncryptedActiveModelTrait, EncryptedSelectTrait};
#[cfg(feature = "sqlx")]
pub use sqlx::EncryptedQueryAs;

// Models: the derive and what it implements.
pub use encrypted_attr_derive::Encrypted;
pub use runtime::{EncryptedModel, EncryptedRecord, FieldCodec, IndexUpgrade, Upgrade, Upgraded};

/// The bindings that tie a ciphertext to its table, column, row and tenant (admin
/// tools rebuild them from the database), blind-index normalisers, and the traits the
/// derive implements with the types they name. The driver behind the generated
/// methods is private.
pub mod model {
    pub use crate::runtime::normalize;
    pub use crate::runtime::{
        EncryptedModel, EncryptedRecord, FieldCodec, FieldSpec, IndexUpgrade, ModelSpec, SealedField, Upgrade,
        Upgraded, column_binding, key_context, row_binding, tenant_scoped,
    };
}

/// Items the derive's generated code uses. Not a public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::engine::{AsyncTransitEngine, TransitEngine};
    pub use crate::name::key_name_problem;
    pub use crate::runtime::normalize;
    pub use crate::runtime::{
        DisplayRowId, FieldCodec, FieldSpec, IntegerRowId, ModelSpec, RowId, SealedField, blind_index_lookup,
        blind_index_lookup_async, convergent_lookup, convergent_lookup_async, decode_json, decrypt_all,
        decrypt_all_async, decrypt_all_upgrading, decrypt_all_upgrading_async, decrypt_one, decrypt_one_async,
        encode_json, encrypt_all, encrypt_all_async, encrypt_field, encrypt_field_async, encrypt_one,
        encrypt_one_async, ensure_keys, ensure_keys_async,
    };
    pub use crate::{Ciphertext, EncryptedModel, EncryptedRecord, Error, Plaintext, Result, SecretBytes, Upgraded};
    pub use core::option::Option;
    pub use std::string::{String, ToString};
    pub use std::vec::Vec;
}
