//! `transit/hmac`, `verify` (HMAC only), `random` and `hash`.

use encrypted_attr::{HashAlgorithm, HmacItem, HmacTag, KeyName, KeyVersion, TransitEngine, VerifyHmacItem};
use serde_json::{Value, json};

use super::{request_error, vault_message};
use encrypted_attr::wire_names::{
    BATCH_INPUT, BATCH_RESULTS, ERROR, HMAC, INPUT, KEY_VERSION, REFERENCE, SIGNATURE, VALID,
};

use super::TransitMount;
use crate::encoding::{decode_base64, encode_base64};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};

/// The parameters `transit/hmac/:name[/:algorithm]` reads.
const HMAC_PARAMS: &[&str] = &["algorithm", KEY_VERSION, INPUT, BATCH_INPUT];
/// The parameters `transit/verify/:name[/:algorithm]` reads.
const VERIFY_PARAMS: &[&str] = &["hash_algorithm", "algorithm", INPUT, HMAC, SIGNATURE, BATCH_INPUT];
/// The parameters `transit/random[/:source][/:bytes]` reads.
const RANDOM_PARAMS: &[&str] = &["source", "bytes", "format"];
/// The parameters `transit/hash[/:algorithm]` reads.
const HASH_PARAMS: &[&str] = &["algorithm", INPUT, "format"];

fn algorithm(url: Option<&str>, params: &Params<'_>, names: &[&'static str]) -> Result<HashAlgorithm, ApiError> {
    let mut chosen = url.map(str::to_owned);
    for name in names {
        let value = params.string(name)?;
        if chosen.is_none() {
            chosen = value.filter(|v| !v.is_empty());
        }
    }
    match chosen {
        None => Ok(HashAlgorithm::Sha2_256),
        Some(a) => a
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("unsupported algorithm {a}"))),
    }
}

fn input(params: &Params<'_>, missing: &str) -> Result<Vec<u8>, String> {
    match params.text(INPUT) {
        Ok(Some(s)) => decode_base64(&s),
        Ok(None) => Err(missing.to_owned()),
        Err(_) => Err("input must be a string".to_owned()),
    }
}

pub(super) fn hmac(
    state: &TransitMount<'_>,
    name: &KeyName,
    url_algorithm: Option<&str>,
    params: &Params<'_>,
) -> ApiResult {
    params.declare(&Reads(&[HMAC_PARAMS]));
    let algorithm = algorithm(url_algorithm, params, &["algorithm"])?;
    let version = match params.int(KEY_VERSION)? {
        None | Some(0) => None,
        Some(v) => Some(
            u32::try_from(v)
                .ok()
                .and_then(KeyVersion::new)
                .ok_or_else(|| ApiError::BadRequest("invalid key version".into()))?,
        ),
    };
    state.engine.read_key(name).map_err(request_error)?;
    match params.batch_items()? {
        None => {
            let input = input(params, "missing input for HMAC").map_err(ApiError::BadRequest)?;
            let mut item = HmacItem::new(input);
            item.key_version = version;
            let tag = state.engine.hmac(name, algorithm, item).map_err(request_error)?;
            Ok(Reply::data(json!({ HMAC: tag.to_string() }), Vec::new()))
        }
        Some(items) => {
            let mut results = Vec::with_capacity(items.len());
            for item in &items {
                let reference = item.string(REFERENCE)?.unwrap_or_default();
                let outcome = input(item, "missing input for HMAC").and_then(|bytes| {
                    let mut request = HmacItem::new(bytes);
                    request.key_version = version;
                    state
                        .engine
                        .hmac(name, algorithm, request)
                        .map_err(|e| vault_message(&e))
                });
                results.push(match outcome {
                    Ok(tag) => json!({ HMAC: tag.to_string(), REFERENCE: reference }),
                    Err(error) => json!({ ERROR: error, REFERENCE: reference }),
                });
            }
            Ok(Reply::data(json!({ BATCH_RESULTS: results }), Vec::new()))
        }
    }
}

pub(super) fn verify(
    state: &TransitMount<'_>,
    name: &KeyName,
    url_algorithm: Option<&str>,
    params: &Params<'_>,
) -> ApiResult {
    params.declare(&Reads(&[VERIFY_PARAMS]));
    let algorithm = algorithm(url_algorithm, params, &["hash_algorithm", "algorithm"])?;
    state.engine.read_key(name).map_err(request_error)?;
    let check = |item: &Params<'_>| -> Result<bool, String> {
        let bytes = input(item, "missing input to verify")?;
        let tag: HmacTag = match item.string(HMAC) {
            Ok(Some(h)) => h.parse().map_err(|e: encrypted_attr::Error| e.to_string())?,
            _ if item.has(SIGNATURE) => {
                return Err("signature verification is not supported: no signing key types".to_owned());
            }
            _ => return Err("missing hmac to verify".to_owned()),
        };
        state
            .engine
            .verify_hmac(name, algorithm, VerifyHmacItem::new(bytes, tag))
            .map_err(|e| vault_message(&e))
    };
    match params.batch_items()? {
        None => {
            let valid = check(params).map_err(ApiError::BadRequest)?;
            Ok(Reply::data(json!({ VALID: valid }), Vec::new()))
        }
        Some(items) => {
            let mut results = Vec::with_capacity(items.len());
            for item in &items {
                let reference = item.string(REFERENCE)?.unwrap_or_default();
                let mut out = json!({ REFERENCE: reference });
                match check(item) {
                    // Vault omits `valid` when false for HMAC batch items.
                    Ok(true) => out[VALID] = json!(true),
                    Ok(false) => {}
                    Err(error) => out[ERROR] = json!(error),
                }
                results.push(out);
            }
            Ok(Reply::data(json!({ BATCH_RESULTS: results }), Vec::new()))
        }
    }
}

fn format_bytes(bytes: &[u8], format: Option<String>, default: &str) -> Result<Value, ApiError> {
    match format.as_deref().unwrap_or(default) {
        "hex" => Ok(json!(crate::encoding::encode_hex(bytes))),
        "base64" => Ok(json!(encode_base64(bytes))),
        other => Err(ApiError::BadRequest(format!(
            "unsupported encoding format {other}; must be \"hex\" or \"base64\""
        ))),
    }
}

pub(super) fn random(state: &TransitMount<'_>, url: &[&str], params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[RANDOM_PARAMS]));
    // URL forms: random, random/<bytes>, random/<source>, random/<source>/<bytes>.
    let (source, bytes_in_url) = match url {
        [] => (None, None),
        [one] if one.parse::<u64>().is_ok() => (None, Some(*one)),
        [one] => (Some(*one), None),
        [source, bytes, ..] => (Some(*source), Some(*bytes)),
    };
    let source = match source.map(str::to_owned).or(params.string("source")?) {
        None => "platform".to_owned(),
        Some(s) => s,
    };
    if !matches!(source.as_str(), "platform" | "seal" | "all") {
        return Err(ApiError::BadRequest(format!(
            "unsupported entropy source {source:?}; must be \"platform\" or \"seal\", or \"all\""
        )));
    }
    let len = match bytes_in_url {
        Some(b) => b
            .parse::<i64>()
            .map_err(|_| ApiError::BadRequest(format!("error parsing URL bytes: {b}")))?,
        None => params.int("bytes")?.unwrap_or(32),
    };
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (1..=128 * 1024).contains(l))
        .ok_or_else(|| ApiError::BadRequest("the number of bytes must be between 1 and 131072".into()))?;
    let bytes = state.engine.random_bytes(len).map_err(request_error)?;
    let formatted = format_bytes(&bytes, params.string("format")?, "base64")?;
    Ok(Reply::data(json!({ "random_bytes": formatted }), Vec::new()))
}

pub(super) fn hash(url_algorithm: Option<&str>, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[HASH_PARAMS]));
    let algorithm = algorithm(url_algorithm, params, &["algorithm"])?;
    let input = match params.string(INPUT)? {
        Some(s) => decode_base64(&s).map_err(ApiError::BadRequest)?,
        None => return Err(ApiError::BadRequest("input missing".into())),
    };
    let sum = format_bytes(&algorithm.digest(&input), params.string("format")?, "hex")?;
    Ok(Reply::data(json!({ "sum": sum }), Vec::new()))
}
