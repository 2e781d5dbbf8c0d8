//! `transit/keys/…` and `transit/export/…`: the key lifecycle.

use encrypted_attr::{Error, ExportKind, KeyConfig, KeyInfo, KeyName, KeyOptions, KeyType, KeyVersion, TransitEngine};
use serde_json::{Map, Value, json};

use super::TransitMount;
use super::request_error;
use crate::encoding::encode_base64;
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};

/// Vault's key description (`GET transit/keys/:name`).
pub(crate) fn describe(info: &KeyInfo) -> Value {
    let keys: Map<String, Value> = info
        .versions
        .iter()
        .map(|(v, created)| (v.to_string(), json!(created)))
        .collect();
    let mut data = json!({
        "name": info.name.as_str(),
        "type": info.key_type.as_str(),
        "derived": info.derived,
        "deletion_allowed": info.deletion_allowed,
        "exportable": info.exportable,
        "allow_plaintext_backup": info.allow_plaintext_backup,
        "min_available_version": info.min_available_version,
        "min_decryption_version": info.min_decryption_version.get(),
        "min_encryption_version": info.min_encryption_version,
        "latest_version": info.latest_version.get(),
        "supports_encryption": true,
        "supports_decryption": true,
        "supports_signing": false,
        "supports_derivation": true,
        "auto_rotate_period": info.auto_rotate_period.as_secs(),
        "imported_key": false,
        "soft_deleted": false,
        "keys": keys,
    });
    if info.derived {
        data["kdf"] = json!("hkdf_sha256");
        data["convergent_encryption"] = json!(info.convergent_encryption);
        if info.convergent_encryption {
            data["convergent_encryption_version"] = json!(-1);
        }
    }
    data
}

/// The parameters [`options`] reads: a new key's options, on `transit/keys/:name`
/// and on an encrypt that creates its key.
pub(super) const KEY_OPTION_PARAMS: &[&str] = &[
    "type",
    "derived",
    "convergent_encryption",
    "exportable",
    "allow_plaintext_backup",
    "auto_rotate_period",
];
/// What `transit/keys/:name` reads besides the options: `key_size` is accepted (it
/// only means something for `hmac` keys, which are not offered).
const CREATE_PARAMS: &[&str] = &["key_size"];
/// The parameters `transit/keys/:name/config` reads.
const CONFIG_PARAMS: &[&str] = &[
    "min_decryption_version",
    "min_encryption_version",
    "deletion_allowed",
    "exportable",
    "allow_plaintext_backup",
    "auto_rotate_period",
];
/// The parameters `transit/keys/:name/trim` reads.
const TRIM_PARAMS: &[&str] = &["min_available_version"];

pub(super) fn list(state: &TransitMount<'_>) -> ApiResult {
    let names = state.engine.list_keys().map_err(request_error)?;
    if names.is_empty() {
        return Err(ApiError::NotFound);
    }
    let names: Vec<&str> = names.iter().map(KeyName::as_str).collect();
    Ok(Reply::data(json!({ "keys": names }), vec![]))
}

pub(super) fn read(state: &TransitMount<'_>, name: &KeyName) -> ApiResult {
    match state.engine.read_key(name) {
        Ok(info) => Ok(Reply::data(describe(&info), vec![])),
        Err(Error::KeyNotFound { .. }) => Err(ApiError::NotFound),
        Err(e) => Err(request_error(e)),
    }
}

/// Options for a new key from request parameters (also used by encrypt's upsert).
pub(crate) fn options(params: &Params<'_>, derived_default: bool) -> Result<KeyOptions, ApiError> {
    let key_type = match params.string("type")? {
        None => KeyType::default(),
        Some(t) if t.is_empty() => KeyType::default(),
        Some(t) => t.parse::<KeyType>().map_err(|e| ApiError::BadRequest(e.to_string()))?,
    };
    let derived = params.bool("derived")?.unwrap_or(derived_default);
    let convergent = params.bool("convergent_encryption")?.unwrap_or(false);
    let mut options = KeyOptions::default()
        .key_type(key_type)
        .derived(derived)
        .convergent_encryption(convergent)
        .exportable(params.bool("exportable")?.unwrap_or(false))
        .allow_plaintext_backup(params.bool("allow_plaintext_backup")?.unwrap_or(false));
    if let Some(period) = params.duration("auto_rotate_period")? {
        options = options.auto_rotate_period(period);
    }
    Ok(options)
}

pub(super) fn create(state: &TransitMount<'_>, name: &KeyName, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[KEY_OPTION_PARAMS, CREATE_PARAMS]));
    let options = options(params, false)?;
    let info = state.engine.create_key(name, options).map_err(request_error)?;
    Ok(Reply::data(describe(&info), vec![]))
}

/// Deletes a key. On storage shared with other servers, answers only once every
/// server has dropped its cached copy (they re-read keys after a fixed interval),
/// so that no encryption with the deleted key can succeed after this answer —
/// such a ciphertext could never be decrypted. Requests run on blocking threads,
/// so the wait holds no async worker.
pub(super) fn delete(state: &TransitMount<'_>, name: &KeyName) -> ApiResult {
    match state.engine.delete_key(name) {
        Ok(()) => {
            std::thread::sleep(state.shared_cache_lifetime);
            Ok(Reply::NoContent)
        }
        Err(Error::KeyNotFound { .. }) => Err(ApiError::BadRequest(format!(
            "error deleting policy {name}: could not delete key; not found"
        ))),
        Err(e) => Err(request_error(e)),
    }
}

fn version_param(params: &Params<'_>, name: &'static str) -> Result<Option<u32>, ApiError> {
    match params.int(name)? {
        None => Ok(None),
        Some(v) if v < 0 => Err(ApiError::BadRequest(format!("{name} cannot be negative"))),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("{name} is too large"))),
    }
}

pub(super) fn configure(state: &TransitMount<'_>, name: &KeyName, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[CONFIG_PARAMS]));
    let mut config = KeyConfig::default();
    let mut warnings = Vec::new();
    if let Some(v) = version_param(params, "min_decryption_version")? {
        if v == 0 {
            warnings.push("since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1".to_owned());
        }
        config = config.min_decryption_version(v);
    }
    if let Some(v) = version_param(params, "min_encryption_version")? {
        config = config.min_encryption_version(v);
    }
    if let Some(b) = params.bool("deletion_allowed")? {
        config = config.deletion_allowed(b);
    }
    if let Some(b) = params.bool("exportable")? {
        config = config.exportable(b);
    }
    if let Some(b) = params.bool("allow_plaintext_backup")? {
        config.allow_plaintext_backup = Some(b);
    }
    if let Some(period) = params.duration("auto_rotate_period")? {
        config = config.auto_rotate_period(period);
    }
    match state.engine.configure_key(name, config) {
        Ok(info) => Ok(Reply::data(describe(&info), warnings)),
        Err(Error::KeyNotFound { .. }) => Err(ApiError::BadRequest(format!(
            "no existing key named {name} could be found"
        ))),
        Err(e) => Err(request_error(e)),
    }
}

pub(super) fn rotate(state: &TransitMount<'_>, name: &KeyName) -> ApiResult {
    match state.engine.rotate_key(name) {
        Ok(info) => Ok(Reply::data(describe(&info), vec![])),
        Err(Error::KeyNotFound { .. }) => Err(ApiError::BadRequest("key not found".into())),
        Err(e) => Err(request_error(e)),
    }
}

pub(super) fn trim(state: &TransitMount<'_>, name: &KeyName, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[TRIM_PARAMS]));
    let Some(min) = version_param(params, "min_available_version")? else {
        return Err(ApiError::BadRequest("missing min_available_version".into()));
    };
    let Some(min) = KeyVersion::new(min) else {
        return Err(ApiError::BadRequest(
            "minimum available version should be positive".into(),
        ));
    };
    match state.engine.trim_key(name, min) {
        Ok(info) => Ok(Reply::data(describe(&info), vec![])),
        Err(Error::KeyNotFound { .. }) => Err(ApiError::BadRequest("invalid key name".into())),
        Err(e) => Err(request_error(e)),
    }
}

pub(super) fn export(state: &TransitMount<'_>, kind: &str, name: &KeyName, version: Option<&str>) -> ApiResult {
    let export_kind = match kind {
        "encryption-key" => ExportKind::EncryptionKey,
        "hmac-key" => ExportKind::HmacKey,
        "signing-key" | "public-key" | "certificate-chain" => {
            return Err(ApiError::BadRequest(format!(
                "{kind} is not supported for this key type"
            )));
        }
        _ => return Err(ApiError::BadRequest("invalid export type".into())),
    };
    let version = match version {
        None | Some("") => None,
        Some("latest") => match state.engine.read_key(name) {
            Ok(info) => Some(info.latest_version),
            Err(Error::KeyNotFound { .. }) => return Err(ApiError::NotFound),
            Err(e) => return Err(request_error(e)),
        },
        Some(v) => {
            let n: u32 = v
                .trim_start_matches('v')
                .parse()
                .map_err(|_| ApiError::BadRequest("invalid key version".into()))?;
            Some(KeyVersion::new(n).ok_or_else(|| ApiError::BadRequest("invalid key version".into()))?)
        }
    };
    match state.engine.export_key(name, export_kind, version) {
        Ok(exported) => {
            let key_type = state.engine.read_key(name).map_err(request_error)?.key_type;
            let keys: Map<String, Value> = exported
                .keys
                .iter()
                .map(|(v, material)| (v.to_string(), json!(encode_base64(material.expose_secret()))))
                .collect();
            Ok(Reply::data(
                json!({ "name": name.as_str(), "type": key_type.as_str(), "keys": keys }),
                vec![],
            ))
        }
        Err(Error::KeyNotFound { .. }) => Err(ApiError::NotFound),
        Err(e) => Err(request_error(e)),
    }
}
