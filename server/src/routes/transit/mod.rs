//! The transit secrets engine at `/v1/transit/…`: routing of Vault's paths and
//! methods to one handler per operation, over the in-process engine.

mod crypt;
pub(crate) mod keys;
mod macs;

use encrypted_attr::{Error, KeyName};

use crate::http::{ApiError, ApiResult};
use crate::params::Params;
use crate::request::Operation;

/// One transit mount: its engine (the server's own at `transit/`, or a mount's
/// at another path), and how long other servers may keep using a deleted key.
pub(crate) struct Transit<'a> {
    pub(crate) engine: &'a encrypted_attr::LocalEngine,
    pub(crate) shared_cache_lifetime: std::time::Duration,
    /// The mount's path, for Vault's "unsupported path" texts.
    pub(crate) mount_path: &'a str,
}

/// Dispatches a request below a transit mount (`path`: the segments after it).
pub(crate) fn route(state: &Transit<'_>, op: Operation, path: &[&str], params: &Params<'_>) -> ApiResult {
    use Operation::{Delete, List, Read, Update};
    match (path, op) {
        (["keys"] | ["keys", ""], List) => keys::list(state),
        (["keys", name], Read) => keys::read(state, &key_name(name)?),
        (["keys", name], Update) => keys::create(state, &key_name(name)?, params),
        (["keys", name], Delete) => keys::delete(state, &key_name(name)?),
        (["keys", name, "config"], Update) => keys::configure(state, &key_name(name)?, params),
        (["keys", name, "rotate"], Update) => keys::rotate(state, &key_name(name)?),
        (["keys", name, "trim"], Update) => keys::trim(state, &key_name(name)?, params),
        (["export", kind, name], Read) => keys::export(state, kind, &key_name(name)?, None),
        (["export", kind, name, version], Read) => keys::export(state, kind, &key_name(name)?, Some(version)),
        (["encrypt", name], Update) => crypt::encrypt(state, &key_name(name)?, params),
        (["decrypt", name], Update) => crypt::decrypt(state, &key_name(name)?, params),
        (["rewrap", name], Update) => crypt::rewrap(state, &key_name(name)?, params),
        (["datakey", kind, name], Update) => crypt::datakey(state, kind, &key_name(name)?, params),
        (["hmac", name], Update) => macs::hmac(state, &key_name(name)?, None, params),
        (["hmac", name, algorithm], Update) => macs::hmac(state, &key_name(name)?, Some(algorithm), params),
        (["verify", name], Update) => macs::verify(state, &key_name(name)?, None, params),
        (["verify", name, algorithm], Update) => macs::verify(state, &key_name(name)?, Some(algorithm), params),
        (["random"], Update) => macs::random(state, &[], params),
        (["random", rest @ ..], Update) if rest.len() <= 2 => macs::random(state, rest, params),
        (["hash"], Update) => macs::hash(None, params),
        (["hash", algorithm], Update) => macs::hash(Some(algorithm), params),
        (
            ["keys"]
            | ["keys", _]
            | ["keys", _, "config" | "rotate" | "trim"]
            | ["export", ..]
            | ["encrypt", _]
            | ["decrypt", _]
            | ["rewrap", _]
            | ["datakey", _, _]
            | ["hmac", ..]
            | ["verify", ..]
            | ["random", ..]
            | ["hash", ..],
            _,
        ) => Err(ApiError::UnsupportedOperation),
        _ => Err(ApiError::UnsupportedPath(format!(
            "{}/{}",
            state.mount_path,
            path.join("/")
        ))),
    }
}

fn key_name(name: &str) -> Result<KeyName, ApiError> {
    KeyName::new(name).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Vault's wording for the engine's errors, where clients may match on it.
pub(crate) fn vault_message(error: &Error) -> String {
    match error {
        Error::KeyNotFound { .. } => "encryption key not found".to_owned(),
        Error::VersionTooNew { .. } => "invalid ciphertext: version is too new".to_owned(),
        Error::VersionRetired { .. } => "ciphertext or signature version is disallowed by policy (too old)".to_owned(),
        other => other.to_string(),
    }
}

/// A user-facing error for a whole request.
pub(crate) fn request_error(error: Error) -> ApiError {
    if error.is_user_error() {
        ApiError::BadRequest(vault_message(&error))
    } else {
        ApiError::from(error)
    }
}
