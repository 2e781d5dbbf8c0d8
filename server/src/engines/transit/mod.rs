//! The transit secrets engine, built in at `transit/` and mountable at any path:
//! routing of Vault's paths and methods to one handler per operation, over the
//! in-process engine (the server's own at `transit/`, a mount's own elsewhere).

mod crypt;
pub(crate) mod keys;
mod macs;
mod results;

use std::collections::BTreeMap;

use encrypted_attr::{Error, KeyName};

use super::{Mounted, SecretsEngine};
use crate::http::{ApiError, ApiResult};
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::MountEntry;

/// The transit kind.
pub(crate) struct Transit;

impl SecretsEngine for Transit {
    fn kind(&self) -> &'static str {
        "transit"
    }

    fn enables(&self, asked: &str, _options: &mut Option<BTreeMap<String, String>>) -> Option<Result<(), ApiError>> {
        (asked == "transit").then_some(Ok(()))
    }

    fn handle(&self, state: &Unsealed, at: &Mounted<'_>, op: Operation, rest: &str, params: &Params<'_>) -> ApiResult {
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let segments = if segments == [""] { &[][..] } else { &segments[..] };
        match at.entry {
            None => route(&mount_of(state, &state.engine, at), op, segments, params),
            Some(entry) => {
                let engine = state.transit_mounts.engine(entry)?;
                route(&mount_of(state, &engine, at), op, segments, params)
            }
        }
    }

    /// Only an encrypt with a key that does not exist yet creates (the key).
    fn creates(&self, state: &Unsealed, at: &Mounted<'_>, rest: &str) -> Result<bool, ApiError> {
        let Some(Ok(name)) = rest.strip_prefix("encrypt/").map(KeyName::new) else {
            return Ok(false);
        };
        let found = match at.entry {
            None => encrypted_attr::TransitEngine::read_key(&*state.engine, &name),
            Some(entry) => encrypted_attr::TransitEngine::read_key(&*state.transit_mounts.engine(entry)?, &name),
        };
        match found {
            Ok(_) => Ok(false),
            Err(Error::KeyNotFound { .. }) => Ok(true),
            Err(error) => Err(ApiError::from(error)),
        }
    }

    fn family(&self, rest: &str) -> &'static str {
        match rest.split('/').next().unwrap_or_default() {
            "encrypt" => "transit/encrypt",
            "decrypt" => "transit/decrypt",
            "rewrap" => "transit/rewrap",
            "datakey" => "transit/datakey",
            "hmac" => "transit/hmac",
            "verify" => "transit/verify",
            "keys" => "transit/keys",
            "export" => "transit/export",
            "random" => "transit/random",
            "hash" => "transit/hash",
            _ => "transit/other",
        }
    }

    /// A single data operation on a key in memory whose copy is fresh. Only on the
    /// built-in mount: a mount elsewhere would need its engine looked up first.
    fn answers_inline(&self, state: &Unsealed, at: &Mounted<'_>, rest: &str) -> bool {
        if at.entry.is_some() {
            return false;
        }
        let mut segments = rest.trim_end_matches('/').split('/');
        let (Some(action), Some(name)) = (segments.next(), segments.next()) else {
            return false;
        };
        let data_operation = matches!(
            action,
            "encrypt" | "decrypt" | "rewrap" | "hmac" | "verify" | "datakey" | "sign"
        );
        let name = if action == "datakey" {
            segments.next()
        } else {
            Some(name)
        };
        data_operation
            && name
                .and_then(|n| KeyName::new(n).ok())
                .is_some_and(|n| state.engine.is_key_fresh(&n))
    }

    fn unmount(&self, state: &Unsealed, entry: &MountEntry) -> Result<(), ApiError> {
        state.transit_mounts.remove(entry).map_err(ApiError::from)
    }

    /// Items per key and operation (a batch counts each item); a deleted key's
    /// series are dropped.
    fn count(&self, metrics: &crate::metrics::Metrics, op: Operation, rest: &str, params: &Params<'_>) {
        let mut segments = rest.trim_end_matches('/').split('/');
        let operation = segments.next().unwrap_or_default();
        if op == Operation::Delete {
            if let (Some(key), None) = (segments.next(), segments.next())
                && operation == "keys"
            {
                metrics.forget_key(key);
            }
            return;
        }
        if op != Operation::Update {
            return;
        }
        // `datakey/:type/:name`; every other data operation is `op/:name[/…]`.
        let key = if operation == "datakey" {
            segments.nth(1)
        } else {
            segments.next()
        };
        let Some(key) = key else { return };
        let batch = params.batch_len();
        metrics.transit(operation, key, batch.max(1), batch > 0);
    }
}

fn mount_of<'a>(state: &Unsealed, engine: &'a encrypted_attr::LocalEngine, at: &Mounted<'a>) -> TransitMount<'a> {
    TransitMount {
        engine,
        shared_cache_lifetime: state.shared_cache_lifetime,
        mount_path: at.path,
    }
}

/// One transit mount: its engine (the server's own at `transit/`, or a mount's
/// at another path), and how long other servers may keep using a deleted key.
pub(crate) struct TransitMount<'a> {
    pub(crate) engine: &'a encrypted_attr::LocalEngine,
    pub(crate) shared_cache_lifetime: std::time::Duration,
    /// The mount's path, for Vault's "unsupported path" texts.
    pub(crate) mount_path: &'a str,
}

/// Dispatches a request below a transit mount (`path`: the segments after it).
pub(crate) fn route(state: &TransitMount<'_>, op: Operation, path: &[&str], params: &Params<'_>) -> ApiResult {
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
