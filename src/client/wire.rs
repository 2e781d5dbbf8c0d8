//! Vault's transit wire format, without I/O: every operation of the remote engine as
//! an [`Exchange`] — the HTTP calls to make and how their replies become the result.
//!
//! Batches are split into calls that a server accepts ([`BatchLimits`]): OpenBao and
//! recent Vault refuse a body with too many JSON strings (1,000 by default), so a
//! page of 1,000 rows cannot go in one request. The results of the calls are put
//! back together in request order. The driver that sends the calls (one after the
//! other on the blocking face, several at once on the async face) lives in the parent
//! module; nothing here knows which.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::cipher::{HashAlgorithm, KeyType};
use crate::ciphertext::Ciphertext;
use crate::engine::{
    DataKey, DataKeyRequest, DecryptItem, EncryptItem, ExportKind, ExportedKey, HmacItem, HmacTag, RewrapItem,
    VerifyHmacItem,
};
use crate::error::{Error, Result};
use crate::keyring::{KeyConfig, KeyInfo, KeyOptions};
use crate::name::{KeyName, KeyVersion};
use crate::secret::{Plaintext, SecretBytes};
use crate::wire_names::{ASSOCIATED_DATA, BATCH_INPUT, CIPHERTEXT, CONTEXT, HMAC, INPUT, KEY_VERSION, PLAINTEXT};

/// How big one batch request may be. The defaults fit the default listener limits of
/// OpenBao 2.x and Vault 1.18+ (at most 1,000 JSON strings per body, keys included)
/// and this project's server; a batch larger than this is sent as several requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchLimits {
    /// Items per request (default 1,000).
    pub max_items: usize,
    /// JSON strings per request body, object keys included (default 1,000).
    pub max_json_strings: usize,
    /// Bytes per request body (default 4 MiB; a single larger item goes alone).
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_items: 1_000,
            max_json_strings: 1_000,
            max_bytes: 4 << 20,
        }
    }
}

impl BatchLimits {
    /// Sets the most items per request.
    #[must_use]
    pub fn max_items(mut self, max_items: usize) -> Self {
        self.max_items = max_items.max(1);
        self
    }

    /// Sets the most JSON strings (keys and values) per request body.
    #[must_use]
    pub fn max_json_strings(mut self, max_json_strings: usize) -> Self {
        self.max_json_strings = max_json_strings;
        self
    }

    /// Sets the most bytes per request body.
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }
}

/// One HTTP request, ready to send (and to send again on a retry).
pub(super) struct Call {
    pub(super) method: &'static str,
    pub(super) path: String,
    /// The JSON body. Plaintext (as base64) may be in it: a shared handle on a
    /// buffer wiped when the last handle (the last attempt's) is dropped.
    pub(super) body: Option<bytes::Bytes>,
    /// Safe to repeat after a 5xx (data operations and reads, not key changes).
    pub(super) idempotent: bool,
}

impl Call {
    fn post(path: String, body: &Value, idempotent: bool) -> Self {
        Self {
            method: "POST",
            path,
            body: Some(wiped_bytes(Zeroizing::new(body.to_string().into_bytes()))),
            idempotent,
        }
    }

    fn bare(method: &'static str, path: String, idempotent: bool) -> Self {
        Self {
            method,
            path,
            body: None,
            idempotent,
        }
    }
}

/// A response: status and body. The body may hold plaintext (base64): wiped when
/// dropped.
pub(super) struct Reply {
    pub(super) status: u16,
    body: Zeroizing<Vec<u8>>,
}

/// One item of `batch_results`, typed: parsing into `serde_json::Value` would build
/// a map per item. Unknown fields (`reference`, `key_version`…) are skipped. The
/// field names are those of `crate::wire_names` (a test holds them to it).
#[derive(Deserialize, Default)]
#[serde(default)]
struct BatchItem {
    ciphertext: Option<String>,
    plaintext: Option<Zeroizing<String>>,
    hmac: Option<String>,
    valid: Option<bool>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct BatchEnvelope {
    data: Option<BatchData>,
}

#[derive(Deserialize)]
struct BatchData {
    batch_results: Option<Vec<BatchItem>>,
}

/// Bytes that reqwest can send and retry without copying, wiped once dropped.
fn wiped_bytes(buffer: Zeroizing<Vec<u8>>) -> bytes::Bytes {
    bytes::Bytes::from_owner(buffer)
}

impl Reply {
    /// Takes over the response's buffer (no copy when reqwest holds the only handle).
    pub(super) fn new(status: u16, bytes: bytes::Bytes) -> Self {
        Self {
            status,
            body: Zeroizing::new(Vec::from(bytes)),
        }
    }

    /// The error of a request refused as a whole (no per-item results), if so.
    pub(super) fn whole_request_error(&self) -> Option<Error> {
        if (200..300).contains(&self.status) {
            return None;
        }
        match serde_json::from_slice::<BatchEnvelope>(&self.body) {
            Ok(BatchEnvelope {
                data: Some(BatchData { batch_results: Some(_) }),
            }) => None,
            _ => Some(remote_error(self.status, &self.json())),
        }
    }

    /// The `data` of a success parsed into `T` (secrets into wiped strings, never an
    /// intermediate `Value`), or the error the server reported.
    fn typed_data<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        #[derive(Deserialize)]
        struct Envelope<T> {
            data: T,
        }
        if (200..300).contains(&self.status) {
            return serde_json::from_slice::<Envelope<T>>(&self.body)
                .map(|e| e.data)
                .map_err(|_| Error::invalid("server sent an answer we cannot read"));
        }
        Err(remote_error(self.status, &self.json()))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `data` of a success, or the error the server reported.
    fn data(self) -> Result<Value> {
        let body = self.json();
        if (200..300).contains(&self.status) {
            return Ok(body.get("data").cloned().unwrap_or(Value::Null));
        }
        Err(remote_error(self.status, &body))
    }

    /// `batch_results` of a batch (Vault answers 400/500 with per-item errors in the
    /// normal envelope), or the whole request's error.
    fn batch(self) -> Result<Vec<BatchItem>> {
        if let Ok(BatchEnvelope {
            data: Some(BatchData {
                batch_results: Some(results),
            }),
        }) = serde_json::from_slice(&self.body)
        {
            return Ok(results);
        }
        Err(remote_error(self.status, &self.json()))
    }
}

/// What to do once the calls of an exchange have answered.
pub(super) type Finish<T> = Box<dyn FnOnce(Vec<Reply>) -> Result<Next<T>> + Send>;

/// An operation as HTTP calls: send `calls` (in any order, any concurrency), hand the
/// replies to `finish` in the calls' order.
pub(super) struct Exchange<T> {
    pub(super) calls: Vec<Call>,
    /// The first call creates what the others use (an encryption creates its key on
    /// first use): send it before the rest.
    pub(super) first_alone: bool,
    pub(super) finish: Finish<T>,
}

/// The outcome of an exchange: a result, or a follow-up exchange.
pub(super) enum Next<T> {
    Done(T),
    Then(Exchange<T>),
}

impl<T: 'static> Exchange<T> {
    fn new(calls: Vec<Call>, finish: impl FnOnce(Vec<Reply>) -> Result<Next<T>> + Send + 'static) -> Self {
        Self {
            calls,
            first_alone: false,
            finish: Box::new(finish),
        }
    }

    /// One call whose reply gives the result directly.
    fn single(call: Call, finish: impl FnOnce(Reply) -> Result<T> + Send + 'static) -> Self {
        Self::new(vec![call], move |replies| {
            let reply = replies
                .into_iter()
                .next()
                .ok_or_else(|| Error::invalid("no reply for the request"))?;
            finish(reply).map(Next::Done)
        })
    }
}

fn errors_of(body: &Value) -> Vec<String> {
    body.get("errors")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Maps a server's error message back to our error kinds where it is unambiguous.
fn message_error(message: &str) -> Error {
    if message.contains("message authentication failed") {
        return Error::DecryptionFailed;
    }
    Error::Remote {
        status: 400,
        errors: vec![message.to_owned()],
    }
}

fn remote_error(status: u16, body: &Value) -> Error {
    let errors = errors_of(body);
    if status == 400 && errors.len() == 1 {
        return message_error(&errors[0]);
    }
    Error::Remote { status, errors }
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// One `batch_input` item, serialized, and how many JSON strings it holds.
struct EncodedItem {
    json: Zeroizing<Vec<u8>>,
    strings: usize,
}

/// Writes `"name":"<base64 of bytes>"` without an intermediate string; the buffer is
/// sized beforehand so that it never reallocates (a reallocation would leave a copy
/// of the plaintext behind).
fn push_b64_field(buf: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    buf.push(b'"');
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\":\"");
    let start = buf.len();
    buf.resize(start + base64_len(bytes.len()), 0);
    let written = BASE64.encode_slice(bytes, &mut buf[start..]).unwrap_or(0);
    buf.truncate(start + written);
    buf.push(b'"');
}

fn base64_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

fn push_value(json: &mut Vec<u8>, value: ItemValue<'_>) {
    match value {
        ItemValue::Base64(name, bytes) => push_b64_field(json, name, bytes),
        ItemValue::Text(name, text) => {
            json.push(b'"');
            json.extend_from_slice(name.as_bytes());
            json.extend_from_slice(b"\":");
            // serde_json escapes whatever needs it; a valid envelope needs nothing.
            json.extend_from_slice(Value::from(text).to_string().as_bytes());
        }
    }
}

/// The value of an item: bytes sent as base64 (plaintext), or a string sent as is
/// (a ciphertext or HMAC, which hold no character JSON would escape).
enum ItemValue<'a> {
    Base64(&'a str, &'a [u8]),
    Text(&'a str, &'a str),
}

fn encode_item(
    value: ItemValue<'_>,
    context: Option<&[u8]>,
    associated_data: Option<&[u8]>,
    key_version: Option<KeyVersion>,
    also: Option<ItemValue<'_>>,
) -> EncodedItem {
    let optional = |b: Option<&[u8]>| b.map_or(0, |b| 24 + base64_len(b.len()));
    let value_len = |value: &ItemValue<'_>| match value {
        ItemValue::Base64(name, bytes) => name.len() + base64_len(bytes.len()),
        // Escaping may double a character: a valid envelope has none to escape.
        ItemValue::Text(name, text) => name.len() + 2 * text.len(),
    };
    let mut json = Zeroizing::new(Vec::with_capacity(
        64 + value_len(&value) + also.as_ref().map_or(0, value_len) + optional(context) + optional(associated_data),
    ));
    let mut strings = 2;
    json.push(b'{');
    push_value(&mut json, value);
    if let Some(also) = also {
        json.push(b',');
        push_value(&mut json, also);
        strings += 2;
    }
    for (name, bytes) in [(CONTEXT, context), (ASSOCIATED_DATA, associated_data)] {
        if let Some(bytes) = bytes {
            json.push(b',');
            push_b64_field(&mut json, name, bytes);
            strings += 2;
        }
    }
    if let Some(version) = key_version {
        json.extend_from_slice(format!(",\"{KEY_VERSION}\":{}", version.get()).as_bytes());
        strings += 1;
    }
    json.push(b'}');
    EncodedItem { json, strings }
}

/// Groups items into request bodies `{"batch_input":[…]<extra>}` within `limits`;
/// returns each body and its number of items. `extra` is more top-level members,
/// written as `,"name":value` with `extra_strings` strings.
fn batch_bodies(
    items: Vec<EncodedItem>,
    limits: &BatchLimits,
    extra: &str,
    extra_strings: usize,
) -> Vec<(Zeroizing<Vec<u8>>, usize)> {
    let open = format!("{{\"{BATCH_INPUT}\":[");
    let overhead = open.len() + 2 + extra.len();
    let string_budget = limits.max_json_strings.saturating_sub(1 + extra_strings);
    let mut groups: Vec<Vec<EncodedItem>> = Vec::new();
    let (mut strings, mut bytes) = (0, 0);
    for item in items {
        let fits = groups.last().is_some_and(|group| {
            group.len() < limits.max_items
                && strings + item.strings <= string_budget
                && overhead + bytes + 1 + item.json.len() <= limits.max_bytes
        });
        if !fits {
            groups.push(Vec::new());
            (strings, bytes) = (0, 0);
        }
        strings += item.strings;
        bytes += item.json.len() + 1;
        if let Some(group) = groups.last_mut() {
            group.push(item);
        }
    }
    groups
        .into_iter()
        .map(|group| {
            let len: usize = group.iter().map(|i| i.json.len() + 1).sum();
            let mut body = Zeroizing::new(Vec::with_capacity(overhead + len));
            body.extend_from_slice(open.as_bytes());
            for (i, item) in group.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&item.json);
            }
            body.push(b']');
            body.extend_from_slice(extra.as_bytes());
            body.push(b'}');
            (body, group.len())
        })
        .collect()
}

/// A batch operation: its items split into calls to `path`, the replies' results
/// parsed by `parse` and put back in order.
fn batch_exchange<T: Send + 'static>(
    path: &str,
    items: Vec<EncodedItem>,
    limits: &BatchLimits,
    (extra, extra_strings): (&str, usize),
    parse: fn(&BatchItem) -> Result<T>,
) -> Exchange<Vec<Result<T>>> {
    let total = items.len();
    let bodies = batch_bodies(items, limits, extra, extra_strings);
    let counts: Vec<usize> = bodies.iter().map(|(_, n)| *n).collect();
    let calls = bodies
        .into_iter()
        .map(|(body, _)| Call {
            method: "POST",
            path: path.to_owned(),
            body: Some(wiped_bytes(body)),
            idempotent: true,
        })
        .collect();
    Exchange::new(calls, move |replies| {
        let mut out = Vec::with_capacity(total);
        for (reply, count) in replies.into_iter().zip(counts) {
            let results = reply.batch()?;
            if results.len() != count {
                return Err(Error::invalid(
                    "server returned a different number of results than items",
                ));
            }
            out.extend(results.iter().map(parse));
        }
        if out.len() == total {
            Ok(Next::Done(out))
        } else {
            Err(Error::invalid("server returned fewer results than items"))
        }
    })
}

fn item_error(item: &BatchItem) -> Option<Error> {
    item.error.as_deref().filter(|e| !e.is_empty()).map(message_error)
}

/// The item's own error if it has one, else the value it should carry.
fn answer<'i, T: ?Sized>(item: &'i BatchItem, value: Option<&'i T>, missing: &'static str) -> Result<&'i T> {
    if let Some(e) = item_error(item) {
        return Err(e);
    }
    value.ok_or_else(|| Error::invalid(missing))
}

fn parse_ciphertext(item: &BatchItem) -> Result<Ciphertext> {
    answer(item, item.ciphertext.as_deref(), "server sent no ciphertext")?.parse()
}

fn parse_plaintext(item: &BatchItem) -> Result<Plaintext> {
    let text = answer(item, item.plaintext.as_deref(), "server sent no plaintext")?;
    let mut bytes = Vec::with_capacity(text.len() / 4 * 3 + 3);
    BASE64
        .decode_vec(text.as_bytes(), &mut bytes)
        .map_err(|_| Error::invalid("server sent a plaintext that is not base64"))?;
    Ok(SecretBytes::new(bytes))
}

fn parse_hmac(item: &BatchItem) -> Result<HmacTag> {
    answer(item, item.hmac.as_deref(), "server sent no hmac")?.parse()
}

fn parse_verify(item: &BatchItem) -> Result<bool> {
    answer(item, Some(&item.valid.unwrap_or(false)), "").copied()
}

const NO_EXTRA: (&str, usize) = ("", 0);

pub(super) fn encrypt(key: &KeyName, items: &[EncryptItem], limits: &BatchLimits) -> Exchange<Vec<Result<Ciphertext>>> {
    let encoded = items
        .iter()
        .map(|item| {
            encode_item(
                ItemValue::Base64(PLAINTEXT, item.plaintext.expose_secret()),
                item.context.as_deref(),
                item.associated_data.as_deref(),
                item.key_version,
                None,
            )
        })
        .collect();
    let mut exchange = batch_exchange(&format!("encrypt/{key}"), encoded, limits, NO_EXTRA, parse_ciphertext);
    // Vault creates a missing key on encryption: let one call do that first.
    exchange.first_alone = true;
    exchange
}

pub(super) fn decrypt(key: &KeyName, items: &[DecryptItem], limits: &BatchLimits) -> Exchange<Vec<Result<Plaintext>>> {
    let encoded = items
        .iter()
        .map(|item| {
            encode_item(
                ItemValue::Text(CIPHERTEXT, item.ciphertext.as_str()),
                item.context.as_deref(),
                item.associated_data.as_deref(),
                None,
                None,
            )
        })
        .collect();
    batch_exchange(&format!("decrypt/{key}"), encoded, limits, NO_EXTRA, parse_plaintext)
}

pub(super) fn rewrap(key: &KeyName, items: &[RewrapItem], limits: &BatchLimits) -> Exchange<Vec<Result<Ciphertext>>> {
    let encoded = items
        .iter()
        .map(|item| {
            encode_item(
                ItemValue::Text(CIPHERTEXT, item.ciphertext.as_str()),
                item.context.as_deref(),
                item.associated_data.as_deref(),
                item.key_version,
                None,
            )
        })
        .collect();
    batch_exchange(&format!("rewrap/{key}"), encoded, limits, NO_EXTRA, parse_ciphertext)
}

/// HMAC batches carry one `key_version` for the whole request: one group of calls per
/// version, results put back at their items' places.
pub(super) fn hmac(
    key: &KeyName,
    algorithm: HashAlgorithm,
    items: &[HmacItem],
    limits: &BatchLimits,
) -> Exchange<Vec<Result<HmacTag>>> {
    let mut groups: BTreeMap<Option<KeyVersion>, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        groups.entry(item.key_version).or_default().push(i);
    }
    let total = items.len();
    let path = format!("hmac/{key}/{algorithm}");
    let mut calls = Vec::new();
    let mut placements: Vec<Vec<usize>> = Vec::new();
    for (version, indexes) in groups {
        let encoded: Vec<EncodedItem> = indexes
            .iter()
            .map(|&i| {
                encode_item(
                    ItemValue::Base64(INPUT, items[i].input.expose_secret()),
                    None,
                    None,
                    None,
                    None,
                )
            })
            .collect();
        let extra = version.map(|v| format!(",\"key_version\":{}", v.get()));
        let extra = extra.as_deref().map_or(NO_EXTRA, |e| (e, 1));
        let mut rest = indexes.as_slice();
        for (body, count) in batch_bodies(encoded, limits, extra.0, extra.1) {
            let (these, after) = rest.split_at(count.min(rest.len()));
            placements.push(these.to_vec());
            rest = after;
            calls.push(Call {
                method: "POST",
                path: path.clone(),
                body: Some(wiped_bytes(body)),
                idempotent: true,
            });
        }
    }
    Exchange::new(calls, move |replies| {
        let mut out: Vec<Option<Result<HmacTag>>> = (0..total).map(|_| None).collect();
        for (reply, indexes) in replies.into_iter().zip(placements) {
            let results = reply.batch()?;
            if results.len() != indexes.len() {
                return Err(Error::invalid(
                    "server returned a different number of results than items",
                ));
            }
            for (i, result) in indexes.into_iter().zip(&results) {
                out[i] = Some(parse_hmac(result));
            }
        }
        Ok(Next::Done(
            out.into_iter()
                .map(|r| r.unwrap_or_else(|| Err(Error::invalid("server returned no result for the item"))))
                .collect(),
        ))
    })
}

pub(super) fn verify_hmac(
    key: &KeyName,
    algorithm: HashAlgorithm,
    items: &[VerifyHmacItem],
    limits: &BatchLimits,
) -> Exchange<Vec<Result<bool>>> {
    let encoded = items
        .iter()
        .map(|item| {
            let hmac = item.hmac.to_string();
            encode_item(
                ItemValue::Base64(INPUT, item.input.expose_secret()),
                None,
                None,
                None,
                Some(ItemValue::Text(HMAC, &hmac)),
            )
        })
        .collect();
    batch_exchange(
        &format!("verify/{key}/{algorithm}"),
        encoded,
        limits,
        NO_EXTRA,
        parse_verify,
    )
}

pub(super) fn datakey(key: &KeyName, request: &DataKeyRequest) -> Exchange<DataKey> {
    let kind = if request.wrapped_only { "wrapped" } else { "plaintext" };
    let mut body = json!({ "bits": request.bits.bytes() * 8 });
    if let Some(c) = &request.context {
        body[CONTEXT] = json!(b64(c));
    }
    if let Some(a) = &request.associated_data {
        body[ASSOCIATED_DATA] = json!(b64(a));
    }
    if let Some(v) = request.key_version {
        body[KEY_VERSION] = json!(v.get());
    }
    let wrapped_only = request.wrapped_only;
    Exchange::single(Call::post(format!("datakey/{kind}/{key}"), &body, true), move |reply| {
        let data: BatchItem = reply.typed_data()?;
        let ciphertext = parse_ciphertext(&data)?;
        let plaintext = if wrapped_only {
            None
        } else {
            Some(parse_plaintext(&data)?)
        };
        Ok(DataKey { ciphertext, plaintext })
    })
}

/// A key description from Vault's JSON.
fn key_info(data: &Value) -> Result<KeyInfo> {
    let bad = || Error::invalid("server sent a key description we cannot read");
    let u32_of = |name: &str| {
        data.get(name)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let bool_of = |name: &str| data.get(name).and_then(Value::as_bool).unwrap_or(false);
    let name = KeyName::new(data.get("name").and_then(Value::as_str).ok_or_else(bad)?)?;
    let key_type: KeyType = data.get("type").and_then(Value::as_str).ok_or_else(bad)?.parse()?;
    let versions = data
        .get("keys")
        .and_then(Value::as_object)
        .map(|keys| {
            keys.iter()
                .filter_map(|(v, created)| {
                    let version = v.parse().ok().and_then(KeyVersion::new)?;
                    Some((version, created.as_i64().unwrap_or(0)))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(KeyInfo {
        name,
        key_type,
        derived: bool_of("derived"),
        convergent_encryption: bool_of("convergent_encryption"),
        exportable: bool_of("exportable"),
        allow_plaintext_backup: bool_of("allow_plaintext_backup"),
        deletion_allowed: bool_of("deletion_allowed"),
        auto_rotate_period: Duration::from_secs(data.get("auto_rotate_period").and_then(Value::as_u64).unwrap_or(0)),
        latest_version: u32_of("latest_version").and_then(KeyVersion::new).ok_or_else(bad)?,
        min_decryption_version: u32_of("min_decryption_version")
            .and_then(KeyVersion::new)
            .ok_or_else(bad)?,
        min_encryption_version: u32_of("min_encryption_version").unwrap_or(0),
        min_available_version: u32_of("min_available_version").unwrap_or(0),
        versions,
    })
}

pub(super) fn read_key(key: &KeyName) -> Exchange<KeyInfo> {
    let name = key.clone();
    Exchange::single(Call::bare("GET", format!("keys/{key}"), true), move |reply| {
        if reply.status == 404 {
            return Err(Error::KeyNotFound { name });
        }
        key_info(&reply.data()?)
    })
}

/// A key change: Vault ≥ 1.14 and OpenBao answer with the key; older Vault answers
/// 204, and the key is read after.
fn key_change(key: &KeyName, call: Call) -> Exchange<KeyInfo> {
    let name = key.clone();
    Exchange::new(vec![call], move |replies| {
        let reply = replies
            .into_iter()
            .next()
            .ok_or_else(|| Error::invalid("no reply for the request"))?;
        let data = reply.data()?;
        if data.is_null() {
            Ok(Next::Then(read_key(&name)))
        } else {
            key_info(&data).map(Next::Done)
        }
    })
}

pub(super) fn create_key(key: &KeyName, options: &KeyOptions) -> Exchange<KeyInfo> {
    let mut body = json!({
        "type": options.key_type.as_str(),
        "derived": options.derived,
        "convergent_encryption": options.convergent_encryption,
        "exportable": options.exportable,
        "allow_plaintext_backup": options.allow_plaintext_backup,
    });
    if !options.auto_rotate_period.is_zero() {
        body["auto_rotate_period"] = json!(format!("{}s", options.auto_rotate_period.as_secs()));
    }
    key_change(key, Call::post(format!("keys/{key}"), &body, false))
}

pub(super) fn list_keys() -> Exchange<Vec<KeyName>> {
    Exchange::single(Call::bare("LIST", "keys".into(), true), |reply| {
        if reply.status == 404 {
            return Ok(Vec::new());
        }
        let data = reply.data()?;
        let mut names: Vec<KeyName> = data
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|k| KeyName::new(k).ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names)
    })
}

pub(super) fn rotate_key(key: &KeyName) -> Exchange<KeyInfo> {
    key_change(key, Call::post(format!("keys/{key}/rotate"), &json!({}), false))
}

pub(super) fn configure_key(key: &KeyName, config: &KeyConfig) -> Exchange<KeyInfo> {
    let mut body = Map::new();
    if let Some(v) = config.min_decryption_version {
        body.insert("min_decryption_version".into(), json!(v));
    }
    if let Some(v) = config.min_encryption_version {
        body.insert("min_encryption_version".into(), json!(v));
    }
    if let Some(v) = config.deletion_allowed {
        body.insert("deletion_allowed".into(), json!(v));
    }
    if let Some(v) = config.exportable {
        body.insert("exportable".into(), json!(v));
    }
    if let Some(v) = config.allow_plaintext_backup {
        body.insert("allow_plaintext_backup".into(), json!(v));
    }
    if let Some(p) = config.auto_rotate_period {
        body.insert("auto_rotate_period".into(), json!(format!("{}s", p.as_secs())));
    }
    key_change(
        key,
        Call::post(format!("keys/{key}/config"), &Value::Object(body), false),
    )
}

pub(super) fn trim_key(key: &KeyName, min_available_version: KeyVersion) -> Exchange<KeyInfo> {
    let body = json!({ "min_available_version": min_available_version.get() });
    key_change(key, Call::post(format!("keys/{key}/trim"), &body, false))
}

pub(super) fn delete_key(key: &KeyName) -> Exchange<()> {
    Exchange::single(Call::bare("DELETE", format!("keys/{key}"), false), |reply| {
        reply.data().map(drop)
    })
}

pub(super) fn export_key(key: &KeyName, kind: ExportKind, version: Option<KeyVersion>) -> Exchange<ExportedKey> {
    let kind = match kind {
        ExportKind::EncryptionKey => "encryption-key",
        ExportKind::HmacKey => "hmac-key",
    };
    let path = match version {
        Some(v) => format!("export/{kind}/{key}/{v}"),
        None => format!("export/{kind}/{key}"),
    };
    let name = key.clone();
    Exchange::single(Call::bare("GET", path, true), move |reply| {
        /// Key material by version, parsed into wiped strings.
        #[derive(Deserialize)]
        struct Exported {
            #[serde(default)]
            keys: BTreeMap<String, Zeroizing<String>>,
        }
        let data: Exported = reply.typed_data()?;
        let mut keys = BTreeMap::new();
        for (v, material) in &data.keys {
            let version = v
                .parse()
                .ok()
                .and_then(KeyVersion::new)
                .ok_or_else(|| Error::invalid("bad version"))?;
            let mut bytes = Vec::with_capacity(material.len() / 4 * 3 + 3);
            BASE64
                .decode_vec(material.as_bytes(), &mut bytes)
                .map_err(|_| Error::invalid("key is not base64"))?;
            keys.insert(version, SecretBytes::new(bytes));
        }
        Ok(ExportedKey { name, keys })
    })
}

pub(super) fn random_bytes(len: usize) -> Exchange<Vec<u8>> {
    Exchange::single(Call::post("random".into(), &json!({ "bytes": len }), true), |reply| {
        let data = reply.data()?;
        let text = data.get("random_bytes").and_then(Value::as_str).unwrap_or_default();
        BASE64
            .decode(text)
            .map_err(|_| Error::invalid("server sent random bytes that are not base64"))
    })
}

pub(super) fn hash(algorithm: HashAlgorithm, input: &[u8]) -> Exchange<Vec<u8>> {
    let body = json!({ "input": b64(input), "algorithm": algorithm.as_str(), "format": "base64" });
    Exchange::single(Call::post("hash".into(), &body, true), |reply| {
        let data = reply.data()?;
        let text = data.get("sum").and_then(Value::as_str).unwrap_or_default();
        BASE64
            .decode(text)
            .map_err(|_| Error::invalid("server sent a hash that is not base64"))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn items(n: usize, aad: bool) -> Vec<EncodedItem> {
        (0..n)
            .map(|i| {
                let value = format!("value {i}");
                encode_item(
                    ItemValue::Base64(PLAINTEXT, value.as_bytes()),
                    None,
                    aad.then_some(b"users/ssn/7".as_slice()),
                    None,
                    None,
                )
            })
            .collect()
    }

    #[test]
    fn items_are_valid_json_with_their_string_count() {
        let item = encode_item(
            ItemValue::Base64(PLAINTEXT, b"hello"),
            Some(b"ctx"),
            Some(b"aad"),
            KeyVersion::new(2),
            None,
        );
        let value: Value = serde_json::from_slice(&item.json).unwrap();
        assert_eq!(
            value,
            json!({"plaintext": b64(b"hello"), "context": b64(b"ctx"), "associated_data": b64(b"aad"), "key_version": 2})
        );
        assert_eq!(item.strings, 7);
        let text = encode_item(ItemValue::Text(CIPHERTEXT, "vault:v1:\"x"), None, None, None, None);
        let value: Value = serde_json::from_slice(&text.json).unwrap();
        assert_eq!(value["ciphertext"], "vault:v1:\"x");
    }

    #[test]
    fn batches_split_within_the_string_budget_and_keep_every_item() {
        let limits = BatchLimits::default();
        // 2 strings per item + "batch_input": 499 items fit in 1,000 strings.
        let bodies = batch_bodies(items(1_000, false), &limits, "", 0);
        assert_eq!(bodies.iter().map(|b| b.1).collect::<Vec<_>>(), [499, 499, 2]);
        // With associated data, 4 strings per item: 249 per request.
        let bodies = batch_bodies(items(500, true), &limits, "", 0);
        assert_eq!(bodies.iter().map(|b| b.1).collect::<Vec<_>>(), [249, 249, 2]);
        let mut seen = 0;
        for (body, count) in &bodies {
            let value: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(value["batch_input"].as_array().unwrap().len(), *count);
            seen += count;
        }
        assert_eq!(seen, 500);
    }

    #[test]
    fn batches_split_by_items_and_bytes() {
        let bodies = batch_bodies(items(10, false), &BatchLimits::default().max_items(3), "", 0);
        assert_eq!(bodies.iter().map(|b| b.1).collect::<Vec<_>>(), [3, 3, 3, 1]);
        let limits = BatchLimits::default().max_bytes(100);
        let bodies = batch_bodies(items(10, false), &limits, "", 0);
        assert!(bodies.iter().all(|(body, n)| body.len() <= 100 || *n == 1));
        assert_eq!(bodies.iter().map(|b| b.1).sum::<usize>(), 10);
        // A top-level member counts against the budget and lands in every body.
        let bodies = batch_bodies(items(998, false), &BatchLimits::default(), ",\"key_version\":2", 1);
        assert_eq!(bodies.iter().map(|b| b.1).collect::<Vec<_>>(), [499, 499]);
        let value: Value = serde_json::from_slice(&bodies[1].0).unwrap();
        assert_eq!(value["key_version"], 2);
    }

    #[test]
    fn results_come_back_in_order_across_calls() {
        let key = KeyName::new("k").unwrap();
        let wanted: Vec<EncryptItem> = (0..5).map(|i| EncryptItem::new(format!("{i}"))).collect();
        let exchange = encrypt(&key, &wanted, &BatchLimits::default().max_items(2));
        assert_eq!(exchange.calls.len(), 3);
        assert!(exchange.first_alone);
        let replies = exchange
            .calls
            .iter()
            .map(|call| {
                let body: Value = serde_json::from_slice(call.body.as_deref().unwrap()).unwrap();
                let results: Vec<Value> = body["batch_input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| {
                        let text =
                            String::from_utf8(BASE64.decode(item["plaintext"].as_str().unwrap()).unwrap()).unwrap();
                        let ct = Ciphertext::from_parts(KeyVersion::FIRST, text.into_bytes());
                        json!({ "ciphertext": ct.as_str() })
                    })
                    .collect();
                Reply::new(
                    200,
                    bytes::Bytes::from(json!({ "data": { "batch_results": results } }).to_string()),
                )
            })
            .collect();
        let Ok(Next::Done(results)) = (exchange.finish)(replies) else {
            panic!("exchange did not finish")
        };
        let payloads: Vec<Vec<u8>> = results.into_iter().map(|r| r.unwrap().payload()).collect();
        assert_eq!(payloads, [b"0", b"1", b"2", b"3", b"4"].map(|b| b.to_vec()));
    }

    #[test]
    fn batch_results_are_read_by_the_shared_wire_names() {
        use crate::wire_names::{BATCH_RESULTS, ERROR, VALID};
        let body = json!({ "data": { BATCH_RESULTS: [{
            CIPHERTEXT: "vault:v1:AAAA", PLAINTEXT: "aGk=", HMAC: "vault:v1:BBBB", VALID: true, ERROR: "e",
        }] } });
        let envelope: BatchEnvelope = serde_json::from_value(body).expect("reads");
        let items = envelope.data.and_then(|d| d.batch_results).expect("results");
        let item = &items[0];
        assert!(item.ciphertext.is_some() && item.plaintext.is_some() && item.hmac.is_some());
        assert!(item.valid.is_some() && item.error.is_some());
    }
}
