//! `transit/encrypt`, `decrypt`, `rewrap` and `datakey`, single and batch, with
//! Vault's batch status rules.

use axum::http::StatusCode;
use encrypted_attr::{
    Ciphertext, DataKeyBits, DataKeyRequest, DecryptItem, EncryptItem, Error, KeyInfo, KeyName, KeyVersion, RewrapItem,
    TransitEngine,
};
use serde::Serialize;
use serde_json::{Map, json};

use super::{batch_items, keys, request_error, vault_message};
use crate::app::Unsealed;
use crate::http::{ApiError, ApiResult, Params, Reply, decode_base64, encode_base64};

/// One item's rendered result, or its error message and whether it is the
/// caller's fault (400) rather than ours (500).
type ItemOutcome = Result<Rendered, (String, bool)>;

/// One item's successful result, serialised as Vault does (absent fields omitted).
#[derive(Serialize, Default)]
struct Rendered {
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
}

/// One entry of `batch_results`, written straight to JSON (no `Value` tree: on
/// large batches building one object per item cost more than the crypto).
#[derive(Serialize)]
struct BatchEntry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    reference: &'a str,
}

#[derive(Serialize)]
struct BatchResults<'a> {
    batch_results: Vec<BatchEntry<'a>>,
}

fn sealed(ct: &Ciphertext) -> Rendered {
    Rendered {
        ciphertext: Some(ct.as_str().to_owned()),
        key_version: Some(ct.version().get()),
        plaintext: None,
    }
}

/// One item's inputs as sent (strings still encoded).
struct ItemParams<'a> {
    params: Params<'a>,
    reference: String,
}

impl<'a> ItemParams<'a> {
    fn new(params: Params<'a>) -> Result<Self, ApiError> {
        let reference = params.string("reference")?.unwrap_or_default();
        Ok(Self { params, reference })
    }
}

/// The items of a request: `batch_input`, or the top-level parameters as one item.
fn items<'a>(params: &'a Params<'_>, fields: &[&'static str]) -> Result<(Vec<ItemParams<'a>>, bool), ApiError> {
    match batch_items(params)? {
        Some(items) => Ok((
            items
                .into_iter()
                .map(|map| ItemParams::new(Params::borrowed(map)))
                .collect::<Result<_, _>>()?,
            true,
        )),
        None => {
            let mut map = Map::new();
            for field in fields {
                if let Some(value) = params.raw(field) {
                    map.insert((*field).to_owned(), value.clone());
                }
            }
            Ok((vec![ItemParams::new(Params::new(map))?], false))
        }
    }
}

fn key_version(params: &Params<'_>) -> Result<Option<KeyVersion>, String> {
    match params
        .int("key_version")
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
    match params.string("ciphertext") {
        Ok(Some(c)) if !c.is_empty() => c.parse().map_err(|e: Error| e.to_string()),
        _ => Err("missing ciphertext to decrypt".to_owned()),
    }
}

fn b64(params: &Params<'_>, name: &'static str) -> Result<Option<Vec<u8>>, String> {
    match params.string(name) {
        Ok(Some(s)) => decode_base64(&s).map(Some),
        Ok(None) => Ok(None),
        Err(_) => Err(format!("{name} must be a string")),
    }
}

/// Vault ignores a context on a key that is not derived; so do we on the wire (the
/// library refuses it, to protect direct callers).
fn context_for(info: &KeyInfo, context: Option<Vec<u8>>) -> Option<Vec<u8>> {
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

fn batch_reply(
    results: Vec<ItemOutcome>,
    refs: Vec<String>,
    status: StatusCode,
    params: &Params<'_>,
    empty_plaintext_on_error: bool,
) -> ApiResult {
    let batch_results = results
        .iter()
        .zip(&refs)
        .map(|(r, reference)| match r {
            Ok(done) => BatchEntry {
                ciphertext: done.ciphertext.as_deref(),
                key_version: done.key_version,
                plaintext: done.plaintext.as_deref(),
                error: None,
                reference,
            },
            Err((message, _)) => BatchEntry {
                ciphertext: None,
                key_version: None,
                plaintext: empty_plaintext_on_error.then_some(""),
                error: Some(message),
                reference,
            },
        })
        .collect();
    Ok(Reply::typed(
        status,
        &BatchResults { batch_results },
        params.ignored_warning().into_iter().collect(),
    ))
}

fn single_reply(result: ItemOutcome, params: &Params<'_>) -> ApiResult {
    match result {
        Ok(data) => Ok(Reply::typed(
            StatusCode::OK,
            &data,
            params.ignored_warning().into_iter().collect(),
        )),
        Err((message, true)) => Err(ApiError::BadRequest(message)),
        Err((_, false)) => Err(ApiError::Internal),
    }
}

pub(super) fn encrypt(state: &Unsealed, name: &KeyName, params: &Params<'_>) -> ApiResult {
    let (items, batch) = items(
        params,
        &["plaintext", "context", "associated_data", "key_version", "reference"],
    )?;
    let with_context = items.iter().filter(|i| i.params.has("context")).count();
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
    let _ = (params.has("type"), params.has("convergent_encryption"));
    let mut prepared = Vec::with_capacity(items.len());
    let mut refs = Vec::with_capacity(items.len());
    for item in &items {
        refs.push(item.reference.clone());
        prepared.push((|| {
            let plaintext = match b64(&item.params, "plaintext")? {
                Some(p) => p,
                None if item.params.has("plaintext") => Vec::new(),
                None => return Err("missing plaintext to encrypt".to_owned()),
            };
            let mut encrypt = EncryptItem::new(plaintext);
            encrypt.context = context_for(&info, b64(&item.params, "context")?);
            encrypt.associated_data = b64(&item.params, "associated_data")?;
            encrypt.key_version = key_version(&item.params)?;
            Ok(encrypt)
        })());
    }
    let results = run_batch(prepared, |good| state.engine.encrypt_batch(name, good), sealed)?;
    if batch {
        let status = batch_status(&results, params)?;
        batch_reply(results, refs, status, params, false)
    } else {
        single_reply(one(results), params)
    }
}

pub(super) fn decrypt(state: &Unsealed, name: &KeyName, params: &Params<'_>) -> ApiResult {
    let (items, batch) = items(params, &["ciphertext", "context", "associated_data", "reference"])?;
    let info = state.engine.read_key(name).map_err(request_error)?;
    let mut prepared = Vec::with_capacity(items.len());
    let mut refs = Vec::with_capacity(items.len());
    for item in &items {
        refs.push(item.reference.clone());
        prepared.push((|| {
            let ciphertext = ciphertext_param(&item.params)?;
            let mut decrypt = DecryptItem::new(ciphertext);
            decrypt.context = context_for(&info, b64(&item.params, "context")?);
            decrypt.associated_data = b64(&item.params, "associated_data")?;
            Ok(decrypt)
        })());
    }
    let results = run_batch(
        prepared,
        |good| state.engine.decrypt_batch(name, good),
        |pt| Rendered {
            plaintext: Some(encode_base64(pt.expose_secret())),
            ..Rendered::default()
        },
    )?;
    if batch {
        let status = batch_status(&results, params)?;
        batch_reply(results, refs, status, params, true)
    } else {
        single_reply(one(results), params)
    }
}

pub(super) fn rewrap(state: &Unsealed, name: &KeyName, params: &Params<'_>) -> ApiResult {
    let (items, batch) = items(
        params,
        &["ciphertext", "context", "associated_data", "key_version", "reference"],
    )?;
    let info = state.engine.read_key(name).map_err(request_error)?;
    let mut prepared = Vec::with_capacity(items.len());
    let mut refs = Vec::with_capacity(items.len());
    for item in &items {
        refs.push(item.reference.clone());
        prepared.push((|| {
            let ciphertext = ciphertext_param(&item.params)?;
            let mut rewrap = RewrapItem::new(ciphertext);
            rewrap.context = context_for(&info, b64(&item.params, "context")?);
            // Our extension: Vault's rewrap cannot carry associated data.
            rewrap.associated_data = b64(&item.params, "associated_data")?;
            rewrap.key_version = key_version(&item.params)?;
            Ok(rewrap)
        })());
    }
    let results = run_batch(prepared, |good| state.engine.rewrap_batch(name, good), sealed)?;
    if batch {
        // Rewrap batches are always 200, per-item errors included.
        batch_reply(results, refs, StatusCode::OK, params, false)
    } else {
        single_reply(one(results), params)
    }
}

pub(super) fn datakey(state: &Unsealed, kind: &str, name: &KeyName, params: &Params<'_>) -> ApiResult {
    let wrapped_only = match kind {
        "plaintext" => false,
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
    request.context = context_for(&info, b64(params, "context").map_err(ApiError::BadRequest)?);
    request.associated_data = b64(params, "associated_data").map_err(ApiError::BadRequest)?;
    request.key_version = key_version(params).map_err(ApiError::BadRequest)?;
    let key = state.engine.datakey(name, request).map_err(request_error)?;
    let mut data = json!({ "ciphertext": key.ciphertext.as_str(), "key_version": key.ciphertext.version().get() });
    if let Some(plaintext) = &key.plaintext {
        data["plaintext"] = json!(encode_base64(plaintext.expose_secret()));
    }
    Ok(Reply::data(data, params.ignored_warning().into_iter().collect()))
}

/// Runs the well-formed items through `engine` in one batch and merges their results
/// back with the items that failed before reaching it, in request order.
fn run_batch<I, T>(
    prepared: Vec<Result<I, String>>,
    engine: impl FnOnce(Vec<I>) -> encrypted_attr::BatchResult<T>,
    render: impl Fn(&T) -> Rendered,
) -> Result<Vec<ItemOutcome>, ApiError> {
    let mut good = Vec::new();
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
                Some(Ok(value)) => Ok(render(&value)),
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
