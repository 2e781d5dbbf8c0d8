//! `sys/seal-status`, `sys/init`, `sys/unseal`, `sys/leader` (answered without a
//! token, as in Vault: a sealed server has none) and `sys/seal`: their parameters
//! read here, the state machine in `crate::seal`.

use axum::http::StatusCode;
use encrypted_attr::SecretBytes;
use serde_json::{Value, json};

use crate::encoding::{decode_base64, decode_hex, encode_base64, encode_hex};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};
use crate::request::Operation;
use crate::seal::{Seal, SealError, SealStatus, UnsealStep, VERSION};

/// Whether `path` (without `/v1/`) is answered without a token.
pub(crate) fn is_unauthenticated(path: &str, op: Operation) -> bool {
    matches!(
        (path, op),
        ("sys/seal-status" | "sys/init" | "sys/leader", Operation::Read)
            | ("sys/init" | "sys/unseal", Operation::Update)
    )
}

/// Serves a path for which [`is_unauthenticated`] holds.
pub(crate) fn unauthenticated(seal: &Seal, op: Operation, path: &str, params: &Params<'_>) -> ApiResult {
    match (path, op) {
        ("sys/seal-status", Operation::Read) => Ok(status_reply(&seal.status())),
        ("sys/init", Operation::Read) => Ok(Reply::Bare(
            StatusCode::OK,
            json!({ "initialized": seal.is_initialized() }),
        )),
        ("sys/leader", Operation::Read) => Ok(Reply::Bare(
            StatusCode::OK,
            json!({
                "ha_enabled": false, "is_self": true, "active_time": "0001-01-01T00:00:00Z",
                "leader_address": "", "leader_cluster_address": "", "performance_standby": false,
                "performance_standby_last_remote_wal": 0,
            }),
        )),
        ("sys/init", Operation::Update) => init(seal, params),
        ("sys/unseal", Operation::Update) => unseal(seal, params),
        _ => Err(ApiError::UnsupportedPath(path.to_owned())),
    }
}

/// `PUT sys/seal`: forget the keys (they stay sealed in storage).
pub(crate) fn seal(seal: &Seal) -> ApiResult {
    seal.seal().map_err(ApiError::from)?;
    Ok(Reply::NoContent)
}

/// `PUT sys/init`: the shares (hex and base64) and the root token, once.
fn init(seal: &Seal, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[&["secret_shares", "secret_threshold"]]));
    let shares = params.int("secret_shares")?;
    let threshold = params.int("secret_threshold")?;
    let (Some(shares), Some(threshold)) = (shares, threshold) else {
        return Err(ApiError::BadRequest(
            "secret_shares and secret_threshold are required".into(),
        ));
    };
    let (Ok(shares), Ok(threshold)) = (usize::try_from(shares), usize::try_from(threshold)) else {
        return Err(ApiError::BadRequest(
            "secret_shares and secret_threshold must be positive".into(),
        ));
    };
    let made = seal.init(shares, threshold)?;
    let keys: Vec<String> = made.shares.iter().map(|p| encode_hex(p.expose_secret())).collect();
    let keys_base64: Vec<String> = made.shares.iter().map(|p| encode_base64(p.expose_secret())).collect();
    Ok(Reply::Bare(
        StatusCode::OK,
        json!({
            "keys": keys,
            "keys_base64": keys_base64,
            "root_token": String::from_utf8_lossy(made.root_token.expose_secret()),
        }),
    ))
}

/// `PUT sys/unseal`: one more share (hex or base64), or `reset`; answers the status.
fn unseal(seal: &Seal, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[&["reset", "key"]]));
    let reset = params.bool("reset")?.unwrap_or(false);
    let key = params.string("key")?;
    let step = if reset {
        UnsealStep::Reset
    } else {
        match key.filter(|k| !k.is_empty()) {
            None => UnsealStep::Missing,
            Some(key) => match decode_hex(&key).or_else(|| decode_base64(&key).ok()) {
                Some(share) => UnsealStep::Share(SecretBytes::new(share)),
                None => UnsealStep::Malformed,
            },
        }
    };
    seal.unseal(step)?;
    Ok(status_reply(&seal.status()))
}

/// The bare status object of `sys/seal-status` and `sys/unseal`.
fn status_reply(status: &SealStatus) -> Reply {
    let body: Value = json!({
        "type": "shamir", "initialized": status.initialized, "sealed": status.sealed,
        "t": status.threshold, "n": status.shares, "progress": status.progress, "nonce": status.nonce,
        "version": VERSION, "build_date": "", "migration": false, "recovery_seal": false,
        "storage_type": status.storage_type, "cluster_name": "encrypted-attr", "cluster_id": "",
    });
    Reply::Bare(StatusCode::OK, body)
}

/// Why `sys/init` is refused on storage that another server is initialising (or
/// whose initialisation was interrupted before the seal configuration was written).
const INITIALIZED_ELSEWHERE: &str = "the storage is being initialized by another server (or an earlier \
     initialization was interrupted); check sys/init, or start from empty storage";

impl From<SealError> for ApiError {
    fn from(error: SealError) -> Self {
        match error {
            SealError::AlreadyInitialized => Self::BadRequest("Vault is already initialized".into()),
            SealError::NotInitialized => Self::BadRequest("Vault is not initialized".into()),
            SealError::InitializedElsewhere => Self::BadRequest(INITIALIZED_ELSEWHERE.into()),
            SealError::BadShareCounts(reason) => Self::BadRequest(reason.into()),
            SealError::MissingShare => {
                Self::BadRequest("'key' must be specified in request body as JSON, or 'reset' set to true".into())
            }
            SealError::MalformedShare => Self::BadRequest("'key' must be a valid hex or base64 string".into()),
            SealError::InvalidShares => Self::BadRequest("invalid unseal shares".into()),
            SealError::WrongShares => Self::BadRequest(
                "cipher: message authentication failed: the unseal shares do not open the root key".into(),
            ),
            SealError::DevCannotSeal => {
                Self::BadRequest("a dev server cannot be sealed: its keys live only in memory".into())
            }
            SealError::RootKeyMissing => {
                tracing::error!("the seal configuration is stored but the root key is not");
                Self::Internal
            }
            SealError::Random => Self::Internal,
            SealError::Storage(error) => Self::from(error),
        }
    }
}
