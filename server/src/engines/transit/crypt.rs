//! `transit/encrypt`, `decrypt`, `rewrap` and `datakey`, single and batch, with
//! Vault's batch status rules.

use axum::http::StatusCode;
use encrypted_attr::{
    Bytes, Ciphertext, DataKeyBits, DataKeyRequest, DecryptItem, EncryptItem, Error, KeyInfo, KeyName, KeyVersion,
    RewrapItem, TransitEngine,
};
use serde_json::{Map, json};

use super::{keys, request_error, vault_message};
use encrypted_attr::wire_names::{
    ASSOCIATED_DATA, BATCH_INPUT, CIPHERTEXT, CONTEXT, KEY_VERSION, PLAINTEXT, REFERENCE,
};

use super::TransitMount;
use super::results::{Done, ItemOutcome, batch_reply, single_reply};
use crate::encoding::{decode_base64, encode_base64};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};

/// The parameters `transit/encrypt/:name` reads: the item's and the batch's (and
/// [`keys::KEY_OPTION_PARAMS`] for a key it creates on first use).
const ENCRYPT_PARAMS: &[&str] = &[
    PLAINTEXT,
    CONTEXT,
    ASSOCIATED_DATA,
    KEY_VERSION,
    REFERENCE,
    BATCH_INPUT,
    "partial_failure_response_code",
];
/// The parameters `transit/decrypt/:name` reads.
const DECRYPT_PARAMS: &[&str] = &[
    CIPHERTEXT,
    CONTEXT,
    ASSOCIATED_DATA,
    REFERENCE,
    BATCH_INPUT,
    "partial_failure_response_code",
];
/// The parameters `transit/rewrap/:name` reads (a rewrap batch is always 200).
const REWRAP_PARAMS: &[&str] = &[
    CIPHERTEXT,
    CONTEXT,
    ASSOCIATED_DATA,
    KEY_VERSION,
    REFERENCE,
    BATCH_INPUT,
];
/// The parameters `transit/datakey/:kind/:name` reads.
const DATAKEY_PARAMS: &[&str] = &["bits", CONTEXT, ASSOCIATED_DATA, KEY_VERSION];

/// The items of a request: `batch_input`, or the top-level parameters as one item;
/// and whether it was a batch.
fn items<'a>(params: &'a Params<'_>, fields: &[&'static str]) -> Result<(Vec<Params<'a>>, bool), ApiError> {
    if let Some(items) = params.batch_items()? {
        return Ok((items, true));
    }
    let mut map = Map::new();
    for field in fields {
        if let Some(value) = params.raw(field) {
            map.insert((*field).to_owned(), value.clone());
        }
    }
    Ok((vec![Params::item(map)], false))
}

/// Each item's `reference`, echoed back in batch results.
fn references(items: &[Params<'_>]) -> Result<Vec<String>, ApiError> {
    items
        .iter()
        .map(|item| item.string(REFERENCE).map(Option::unwrap_or_default))
        .collect()
}

fn key_version(params: &Params<'_>) -> Result<Option<KeyVersion>, String> {
    match params
        .int(KEY_VERSION)
        .map_err(|_| "key_version must be an integer".to_owned())?
    {
        None | Some(0) => Ok(None),
        Some(v) if v < 0 => Err("requested version for encryption is negative".to_owned()),
        Some(v) => u32::try_from(v)
            .ok()
            .and_then(KeyVersion::new)
            .map(Some)
            .ok_or_else(|| "requested version for encryption is higher than the latest key version".to_owned()),
    }
}

/// The `ciphertext` parameter, parsed (Vault's messages when absent or malformed).
fn ciphertext_param(params: &Params<'_>) -> Result<Ciphertext, String> {
    match params.text(CIPHERTEXT) {
        Ok(Some(c)) if !c.is_empty() => c.parse().map_err(|e: Error| e.to_string()),
        _ => Err("missing ciphertext to decrypt".to_owned()),
    }
}

fn b64(params: &Params<'_>, name: &'static str) -> Result<Option<Vec<u8>>, String> {
    match params.text(name) {
        Ok(Some(s)) => decode_base64(&s).map(Some),
        Ok(None) => Ok(None),
        Err(_) => Err(format!("{name} must be a string")),
    }
}

/// A base64 context or associated data, as the engine's items hold it.
fn binding(params: &Params<'_>, name: &'static str) -> Result<Option<Bytes>, String> {
    b64(params, name).map(|bytes| bytes.map(Bytes::from))
}

/// Vault ignores a context on a key that is not derived; so do we on the wire (the
/// library refuses it, to protect direct callers).
fn context_for(info: &KeyInfo, context: Option<Bytes>) -> Option<Bytes> {
    if info.derived { context } else { None }
}

/// Status of an encrypt or decrypt batch: 200, 400 if any user error, 500 if an
/// internal one; `partial_failure_response_code` when some items succeeded.
fn batch_status(results: &[ItemOutcome], params: &Params<'_>) -> Result<StatusCode, ApiError> {
    let failures: Vec<bool> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|(_, user)| *user))
        .collect();
    if failures.is_empty() {
        return Ok(StatusCode::OK);
    }
    let any_success = failures.len() < results.len();
    let override_code = params
        .int("partial_failure_response_code")?
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok());
    if let (Some(status), true) = (override_code, any_success) {
        return Ok(status);
    }
    Ok(if failures.iter().all(|user| *user) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    })
}

fn item_error(error: &Error) -> (String, bool) {
    (vault_message(error), error.is_user_error())
}

pub(super) fn encrypt(state: &TransitMount<'_>, name: &KeyName, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[ENCRYPT_PARAMS, keys::KEY_OPTION_PARAMS]));
    let (items, batch) = items(params, &[PLAINTEXT, CONTEXT, ASSOCIATED_DATA, KEY_VERSION, REFERENCE])?;
    let with_context = items.iter().filter(|i| i.has(CONTEXT)).count();
    if batch && with_context != 0 && with_context != items.len() {
        return Err(ApiError::BadRequest(
            "context should be set either in all the request blocks or in none".into(),
        ));
    }
    // Upsert: create the key on first use, as Vault does (policies will decide
    // between `create` and `update` once they exist).
    let info = match state.engine.read_key(name) {
        Ok(info) => info,
        Err(Error::KeyNotFound { .. }) => {
            let options = keys::options(params, with_context > 0)?;
            if options.convergent_encryption && with_context == 0 {
                return Err(ApiError::BadRequest(
                    "convergent encryption requires derivation to be enabled, please provide a context".into(),
                ));
            }
            state.engine.create_key(name, options).map_err(request_error)?
        }
        Err(e) => return Err(request_error(e)),
    };
    let refs = references(&items)?;
    let prepared = items.iter().map(|item| {
        let plaintext = match b64(item, PLAINTEXT)? {
            Some(p) => p,
            None if item.has(PLAINTEXT) => Vec::new(),
            None => return Err("missing plaintext to encrypt".to_owned()),
        };
        let mut encrypt = EncryptItem::new(plaintext);
        encrypt.context = context_for(&info, binding(item, CONTEXT)?);
        encrypt.associated_data = binding(item, ASSOCIATED_DATA)?;
        encrypt.key_version = key_version(item)?;
        Ok(encrypt)
    });
    let results = run_batch(prepared, |good| state.engine.encrypt_batch(name, good), Done::Sealed)?;
    if batch {
        let status = batch_status(&results, params)?;
        batch_reply(results, refs, status, false)
    } else {
        single_reply(one(results))
    }
}

pub(super) fn decrypt(state: &TransitMount<'_>, name: &KeyName, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[DECRYPT_PARAMS]));
    let (items, batch) = items(params, &[CIPHERTEXT, CONTEXT, ASSOCIATED_DATA, REFERENCE])?;
    let info = state.engine.read_key(name).map_err(request_error)?;
    let refs = references(&items)?;
    let prepared = items.iter().map(|item| {
        let ciphertext = ciphertext_param(item)?;
        let mut decrypt = DecryptItem::new(ciphertext);
        decrypt.context = context_for(&info, binding(item, CONTEXT)?);
        decrypt.associated_data = binding(item, ASSOCIATED_DATA)?;
        Ok(decrypt)
    });
    let results = run_batch(
        prepared,
        |good| state.engine.decrypt_batch(name, good),
        |pt| Done::Opened(encode_base64(pt.expose_secret())),
    )?;
    if batch {
        let status = batch_status(&results, params)?;
        batch_reply(results, refs, status, true)
    } else {
        single_reply(one(results))
    }
}

pub(super) fn rewrap(state: &TransitMount<'_>, name: &KeyName, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[REWRAP_PARAMS]));
    let (items, batch) = items(params, &[CIPHERTEXT, CONTEXT, ASSOCIATED_DATA, KEY_VERSION, REFERENCE])?;
    let info = state.engine.read_key(name).map_err(request_error)?;
    let refs = references(&items)?;
    let prepared = items.iter().map(|item| {
        let ciphertext = ciphertext_param(item)?;
        let mut rewrap = RewrapItem::new(ciphertext);
        rewrap.context = context_for(&info, binding(item, CONTEXT)?);
        // Our extension: Vault's rewrap cannot carry associated data.
        rewrap.associated_data = binding(item, ASSOCIATED_DATA)?;
        rewrap.key_version = key_version(item)?;
        Ok(rewrap)
    });
    let results = run_batch(prepared, |good| state.engine.rewrap_batch(name, good), Done::Sealed)?;
    if batch {
        // Rewrap batches are always 200, per-item errors included.
        batch_reply(results, refs, StatusCode::OK, false)
    } else {
        single_reply(one(results))
    }
}

pub(super) fn datakey(state: &TransitMount<'_>, kind: &str, name: &KeyName, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[DATAKEY_PARAMS]));
    let wrapped_only = match kind {
        PLAINTEXT => false,
        "wrapped" => true,
        _ => {
            return Err(ApiError::BadRequest(
                "Invalid path, must be 'plaintext' or 'wrapped'".into(),
            ));
        }
    };
    let bits = params.int("bits")?.unwrap_or(256);
    let bits = u32::try_from(bits)
        .ok()
        .and_then(|b| DataKeyBits::from_bits(b).ok())
        .ok_or_else(|| ApiError::BadRequest("invalid bit length".into()))?;
    let info = state.engine.read_key(name).map_err(request_error)?;
    let mut request = DataKeyRequest::new(bits);
    request.wrapped_only = wrapped_only;
    request.context = context_for(&info, binding(params, CONTEXT).map_err(ApiError::BadRequest)?);
    request.associated_data = binding(params, ASSOCIATED_DATA).map_err(ApiError::BadRequest)?;
    request.key_version = key_version(params).map_err(ApiError::BadRequest)?;
    let key = state.engine.datakey(name, request).map_err(request_error)?;
    let mut data = json!({ CIPHERTEXT: key.ciphertext.as_str(), KEY_VERSION: key.ciphertext.version().get() });
    if let Some(plaintext) = &key.plaintext {
        data[PLAINTEXT] = json!(encode_base64(plaintext.expose_secret()));
    }
    Ok(Reply::data(data, vec![]))
}

/// Runs the well-formed items through `engine` in one batch and merges their results
/// back with the items that failed before reaching it, in request order.
fn run_batch<I, T>(
    prepared: impl ExactSizeIterator<Item = Result<I, String>>,
    engine: impl FnOnce(Vec<I>) -> encrypted_attr::BatchResult<T>,
    render: impl Fn(T) -> Done,
) -> Result<Vec<ItemOutcome>, ApiError> {
    let mut good = Vec::with_capacity(prepared.len());
    let mut slots = Vec::with_capacity(prepared.len());
    for item in prepared {
        match item {
            Ok(item) => {
                good.push(item);
                slots.push(None);
            }
            Err(message) => slots.push(Some(message)),
        }
    }
    let mut outcomes = if good.is_empty() {
        Vec::new()
    } else {
        engine(good).map_err(request_error)?
    }
    .into_iter();
    Ok(slots
        .into_iter()
        .map(|slot| match slot {
            Some(message) => Err((message, true)),
            None => match outcomes.next() {
                Some(Ok(value)) => Ok(render(value)),
                Some(Err(e)) => Err(item_error(&e)),
                None => Err(("internal error".to_owned(), false)),
            },
        })
        .collect())
}

fn one(results: Vec<ItemOutcome>) -> ItemOutcome {
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(("internal error".to_owned(), false)))
}
