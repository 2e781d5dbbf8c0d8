//! Request parameters, read leniently as Vault's framework does, and `batch_input`
//! items parsed without building a JSON tree.
//!
//! Numbers may come as strings, booleans as `"true"`/`"1"`, durations as seconds or
//! `"1h"`. Each endpoint declares the top-level parameters it reads, once, as
//! constant lists of names beside its handler ([`Params::declare`]); its reads go
//! through that declaration (reading a name it does not declare is a bug, which a
//! debug assertion reports), and the pipeline names whatever else was sent in
//! Vault's "ignored parameters" warning, for every endpoint from this one place.
//! The body's top level becomes a `serde_json` map, but `batch_input` is
//! parsed in the same pass straight into fixed slots per item whose strings borrow
//! from the body: on batches of 100 items and more, building a `Value` tree (a map
//! and two strings per item) cost more than the cryptography.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use serde::de::Deserializer;
use serde_json::{Map, Number, Value};

use crate::encoding::parse_duration;
use crate::http::ApiError;

mod parse;

use parse::{Batch, BodyVisitor, classify};

/// One parameter's value, as the accessors see it.
enum Field<'v> {
    Str(&'v str),
    Number(&'v Number),
    Bool(bool),
    /// An array or object.
    Compound,
}

impl<'v> From<&'v Value> for Field<'v> {
    fn from(value: &'v Value) -> Self {
        match value {
            Value::String(s) => Self::Str(s),
            Value::Number(n) => Self::Number(n),
            Value::Bool(b) => Self::Bool(*b),
            Value::Null | Value::Array(_) | Value::Object(_) => Self::Compound,
        }
    }
}

/// A `batch_input` item's field value: strings borrow from the request body
/// unless they contain escapes. No `Debug`: values are plaintexts.
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Number(Number),
    Bool(bool),
    Null,
    /// An array or object (skipped, not built): reading it is a type error.
    Compound,
}

/// The names a `batch_input` item is read for (by encrypt, decrypt, rewrap, hmac
/// and verify); other names are skipped while parsing, since items report nothing
/// as ignored.
pub(crate) use encrypted_attr::wire_names::ITEM_FIELDS;

/// A `batch_input` item: for each name of [`ITEM_FIELDS`], the index of its value
/// in the batch's shared value list, or [`ABSENT`] (the last occurrence of a name
/// wins, as in a map). Indexes rather than values keep an item at 40 bytes: items
/// are moved several times while parsing, and whole values made that a hot copy.
type ItemFields = [u32; ITEM_FIELDS.len()];

/// No value for this name.
const ABSENT: u32 = u32::MAX;

/// Where the parameters come from.
enum Source<'a> {
    /// The body's top level, or the query string of a read.
    Map(Map<String, Value>),
    /// One `batch_input` item: its slots, and the batch's values they index.
    Item(&'a ItemFields, &'a [Scalar<'a>]),
}

/// The top-level parameters an endpoint reads: a constant list of names beside
/// its handler (an endpoint may declare several lists, shared ones among them).
pub(crate) type Fields = &'static [&'static str];

/// An endpoint's declaration of what it reads: the names in these lists. Written
/// in place as a constant (`params.declare(&Reads(&[ENCRYPT_PARAMS]))`), so a
/// request keeps one thin pointer to it (batch items carry that field too, and
/// on large batches every byte of an item shows).
pub(crate) struct Reads(pub(crate) &'static [Fields]);

/// The declaration of an endpoint that stores whatever it is sent.
static ANYTHING: Reads = Reads(&[]);

/// What a batch item reads: any of [`ITEM_FIELDS`] (never reported as ignored).
static ITEM_READS: Reads = Reads(&[&ITEM_FIELDS]);

/// Request parameters, read leniently.
pub(crate) struct Params<'a> {
    source: Source<'a>,
    /// What the endpoint declared it reads (`None`: nothing, so every parameter
    /// sent is ignored, as on Vault's paths without fields); set by its handler.
    declared: Cell<Option<&'static Reads>>,
    /// `batch_input` of the body, parsed.
    batch: Option<Batch<'a>>,
    /// The request body, from which the audit log takes `batch_input` as sent.
    body: &'a [u8],
}

impl fmt::Debug for Params<'_> {
    // Parameters carry plaintexts: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = match &self.source {
            Source::Map(map) => map.keys().map(String::as_str).collect(),
            Source::Item(fields, _) => ITEM_FIELDS
                .iter()
                .zip(fields.iter())
                .filter(|(_, v)| **v != ABSENT)
                .map(|(k, _)| *k)
                .collect(),
        };
        f.debug_struct("Params").field("names", &names).finish_non_exhaustive()
    }
}

impl Params<'static> {
    /// Parameters from a map (the query string, or a single item's fields).
    pub(crate) fn new(map: Map<String, Value>) -> Self {
        Self {
            source: Source::Map(map),
            declared: Cell::new(None),
            batch: None,
            body: &[],
        }
    }

    /// A single item built from top-level fields: read as a `batch_input` item is
    /// (any of [`ITEM_FIELDS`]), its fields never reported as ignored.
    pub(crate) fn item(map: Map<String, Value>) -> Self {
        let item = Self::new(map);
        item.declared.set(Some(&ITEM_READS));
        item
    }
}

impl<'a> Params<'a> {
    /// Parameters from a JSON request body: an object, `null` (what `vault write -f`
    /// sends) or nothing. `batch_input` items borrow from `body`.
    pub(crate) fn from_body(body: &'a [u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params::new(Map::new()));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let parsed = deserializer
            .deserialize_any(BodyVisitor)
            .and_then(|parsed| deserializer.end().map(|()| parsed))
            .map_err(|e| ApiError::BadRequest(format!("failed to parse JSON input: {}", classify(&e))))?;
        let Some((map, batch)) = parsed else {
            return Err(ApiError::BadRequest(
                "failed to parse JSON input: expected a JSON object".into(),
            ));
        };
        Ok(Self {
            source: Source::Map(map),
            declared: Cell::new(None),
            batch,
            body,
        })
    }

    /// Declares the top-level parameters the endpoint reads: what it reads must be
    /// among them, and whatever else was sent is named in the warning the pipeline
    /// adds to the answer ([`Params::ignored_warning`]). Declared once, before the
    /// first read.
    pub(crate) fn declare(&self, reads: &'static Reads) {
        debug_assert!(
            self.declared.get().is_none(),
            "an endpoint declares its parameters once"
        );
        self.declared.set(Some(reads));
    }

    /// Declares that the endpoint reads whatever is sent: no warning.
    pub(crate) fn declare_anything(&self) {
        self.declared.set(Some(&ANYTHING));
    }

    /// Whether the endpoint declared `name` (always, for a batch item's names).
    fn is_declared(&self, name: &str) -> bool {
        match self.declared.get() {
            None => false,
            Some(reads) if std::ptr::eq(reads, &ANYTHING) => true,
            Some(Reads(lists)) => lists.iter().any(|list| list.contains(&name)),
        }
    }

    fn get(&self, name: &'static str) -> Option<Field<'_>> {
        debug_assert!(
            self.is_declared(name),
            "parameter {name:?} is read but its endpoint does not declare it"
        );
        match &self.source {
            Source::Map(map) => map.get(name).filter(|v| !v.is_null()).map(Field::from),
            Source::Item(fields, values) => {
                let slot = ITEM_FIELDS.iter().position(|n| *n == name);
                // A name missing from ITEM_FIELDS would read as absent: a bug.
                debug_assert!(slot.is_some(), "batch item field {name:?} is not in ITEM_FIELDS");
                let value = slot
                    .and_then(|i| usize::try_from(fields[i]).ok())
                    .and_then(|v| values.get(v));
                match value {
                    None | Some(Scalar::Null) => None,
                    Some(Scalar::Str(s)) => Some(Field::Str(s)),
                    Some(Scalar::Number(n)) => Some(Field::Number(n)),
                    Some(Scalar::Bool(b)) => Some(Field::Bool(*b)),
                    Some(Scalar::Compound) => Some(Field::Compound),
                }
            }
        }
    }

    /// Every parameter as sent, `batch_input` included (for the audit log). `Err`
    /// if the body cannot be parsed again in full, which the audit log treats as a
    /// failure to record (the request is refused).
    pub(crate) fn audit_fields(&self) -> Result<Cow<'_, Map<String, Value>>, ()> {
        match (&self.source, &self.batch) {
            (Source::Map(map), None) => Ok(Cow::Borrowed(map)),
            (Source::Map(map), Some(_)) => {
                // Parsed again, in full: only with an audit device enabled.
                let mut body = serde_json::from_slice::<Value>(self.body).map_err(drop)?;
                let sent = body.get_mut("batch_input").map(Value::take).ok_or(())?;
                let mut all = map.clone();
                all.insert("batch_input".to_owned(), sent);
                Ok(Cow::Owned(all))
            }
            (Source::Item(..), _) => Ok(Cow::Owned(Map::new())),
        }
    }

    /// Every top-level parameter as sent (what a KV write stores).
    ///
    /// # Errors
    /// The body cannot be parsed again in full (see [`Params::audit_fields`]).
    pub(crate) fn fields_as_sent(&self) -> Result<Cow<'_, Map<String, Value>>, ApiError> {
        self.audit_fields()
            .map_err(|()| ApiError::BadRequest("failed to parse JSON input".into()))
    }

    /// Whether the parameter was sent at all (and is not `null`).
    pub(crate) fn has(&self, name: &'static str) -> bool {
        self.get(name).is_some()
    }

    /// A string, borrowed where possible (numbers and booleans are accepted in
    /// their text form).
    pub(crate) fn text(&self, name: &'static str) -> Result<Option<Cow<'_, str>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Field::Str(s)) => Ok(Some(Cow::Borrowed(s))),
            Some(Field::Number(n)) => Ok(Some(Cow::Owned(n.to_string()))),
            Some(Field::Bool(b)) => Ok(Some(Cow::Owned(b.to_string()))),
            Some(Field::Compound) => Err(type_error(name, "string")),
        }
    }

    /// A string, owned (see [`Params::text`]).
    pub(crate) fn string(&self, name: &'static str) -> Result<Option<String>, ApiError> {
        self.text(name).map(|s| s.map(Cow::into_owned))
    }

    /// A boolean: `true`/`false`, or the strings `"true"`, `"false"`, `"1"`, `"0"`, `"t"`, `"f"`.
    pub(crate) fn bool(&self, name: &'static str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Field::Bool(b)) => Ok(Some(b)),
            Some(Field::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(Field::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(Field::Str(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" | "" => Ok(Some(false)),
                _ => Err(field_error(
                    name,
                    "'' cannot parse value as 'bool': strconv.ParseBool: invalid syntax",
                )),
            },
            Some(_) => Err(type_error(name, "bool")),
        }
    }

    /// An integer (a JSON number or a numeric string).
    pub(crate) fn int(&self, name: &'static str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Field::Number(n)) => n.as_i64().map(Some).ok_or_else(|| type_error(name, "int")),
            Some(Field::Str("")) => Ok(None),
            Some(Field::Str(s)) => s.trim().parse().map(Some).map_err(|_| type_error(name, "int")),
            Some(_) => Err(type_error(name, "int")),
        }
    }

    /// A duration: integer seconds, or a Go-style string (`"90s"`, `"30m"`, `"24h"`, `"1h30m"`).
    pub(crate) fn duration(&self, name: &'static str) -> Result<Option<Duration>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Field::Number(n)) => n
                .as_u64()
                .map(|s| Some(Duration::from_secs(s)))
                .ok_or_else(|| type_error(name, "duration")),
            Some(Field::Str(s)) => parse_duration(s)
                .map(Some)
                .ok_or_else(|| field_error(name, &format!("time: invalid duration {s:?}"))),
            Some(_) => Err(type_error(name, "duration")),
        }
    }

    /// The value as sent, for parameters that are lists or objects (`policies`,
    /// `options`). Top-level parameters only; `None` for batch items.
    pub(crate) fn raw(&self, name: &'static str) -> Option<&Value> {
        debug_assert!(
            self.is_declared(name),
            "parameter {name:?} is read but its endpoint does not declare it"
        );
        match &self.source {
            Source::Map(map) => map.get(name).filter(|v| !v.is_null()),
            Source::Item(..) => None,
        }
    }

    /// The items of `batch_input`, each as its own parameters borrowing from the
    /// request body; `None` when the request is not a batch.
    pub(crate) fn batch_items(&self) -> Result<Option<Vec<Params<'_>>>, ApiError> {
        let (items, values) = match &self.batch {
            None | Some(Batch::Null) => return Ok(None),
            Some(Batch::NotAnArray) => {
                return Err(ApiError::BadRequest(
                    "failed to parse batch input: expected an array".into(),
                ));
            }
            Some(Batch::Items { items, values }) => (items, values),
        };
        if items.is_empty() {
            return Err(ApiError::BadRequest("missing batch input to process".into()));
        }
        items
            .iter()
            .map(|item| match item {
                Some(fields) => Ok(Params {
                    source: Source::Item(fields, values),
                    declared: Cell::new(Some(&ITEM_READS)),
                    batch: None,
                    body: &[],
                }),
                None => Err(ApiError::BadRequest(
                    "failed to parse batch input: each item must be an object".into(),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// How many items `batch_input` has (0 when there is none).
    pub(crate) fn batch_len(&self) -> usize {
        match &self.batch {
            Some(Batch::Items { items, .. }) => items.len(),
            _ => 0,
        }
    }

    /// Vault's warning naming the top-level parameters sent that the endpoint did
    /// not declare ([`Params::declare`]); `None` for a batch item, whose fields
    /// are never reported.
    pub(crate) fn ignored_warning(&self) -> Option<String> {
        let Source::Map(map) = &self.source else { return None };
        let is_declared = |name: &str| self.is_declared(name);
        let mut ignored: Vec<&str> = map.keys().map(String::as_str).filter(|k| !is_declared(k)).collect();
        if self.batch.is_some() && !is_declared("batch_input") {
            ignored.push("batch_input");
            ignored.sort_unstable();
        }
        (!ignored.is_empty()).then(|| {
            format!(
                "Endpoint ignored these unrecognized parameters: [{}]",
                ignored.join(" ")
            )
        })
    }
}

/// Vault's words for a value its field cannot take (`detail` is Go's reason).
fn field_error(name: &str, detail: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "Field validation failed: error converting input for field \"{name}\": {detail}"
    ))
}

fn type_error(name: &str, expected: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "error converting input for field \"{name}\": expected {expected}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: &Value) -> Params<'static> {
        let text: &'static [u8] = Box::leak(value.to_string().into_bytes().into_boxed_slice());
        Params::from_body(text).expect("parses")
    }

    fn message(result: Result<impl fmt::Debug, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn params_coerce_and_report_ignored() {
        let p = body(&json!({"a": "1", "b": "true", "c": 3, "zzz": 1}));
        assert_eq!(
            p.ignored_warning().as_deref(),
            Some("Endpoint ignored these unrecognized parameters: [a b c zzz]"),
            "an endpoint that declares nothing ignores everything"
        );
        p.declare(&Reads(&[&["a", "b"], &["c"]]));
        assert_eq!(p.int("a").ok().flatten(), Some(1));
        assert_eq!(p.bool("b").ok().flatten(), Some(true));
        assert_eq!(p.int("c").ok().flatten(), Some(3));
        assert!(p.bool("c").is_err());
        assert_eq!(
            p.ignored_warning().as_deref(),
            Some("Endpoint ignored these unrecognized parameters: [zzz]")
        );
        let anything = body(&json!({"zzz": 1}));
        anything.declare_anything();
        assert!(anything.ignored_warning().is_none());
    }

    #[test]
    #[should_panic(expected = "does not declare it")]
    #[cfg(debug_assertions)]
    fn reading_an_undeclared_parameter_is_a_bug() {
        let p = body(&json!({"a": 1}));
        p.declare(&Reads(&[&["b"]]));
        let _ = p.int("a");
    }

    #[test]
    fn bodies_that_are_not_objects() {
        assert!(Params::from_body(b"").is_ok());
        assert!(Params::from_body(b"null").is_ok());
        assert_eq!(
            message(Params::from_body(b"[1]")),
            "failed to parse JSON input: expected a JSON object"
        );
        assert_eq!(
            message(Params::from_body(b"{\"a\": ")),
            "failed to parse JSON input: unexpected end of JSON input"
        );
        assert_eq!(
            message(Params::from_body(b"{} x")),
            "failed to parse JSON input: invalid character in JSON input"
        );
    }

    #[test]
    fn batch_items_are_read_like_top_level_parameters() {
        let p = body(&json!({"batch_input": [
            {"plaintext": "aGk=", "key_version": "2", "reference": 7},
            {"plaintext": "esc\"aped", "context": null, "input": [1, {"y": 2}], "key_version": 1.5},
            {"plaintext": "first", "plaintext": "last"},
        ]}));
        let items = p.batch_items().expect("valid").expect("a batch");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].text("plaintext").ok().flatten().as_deref(), Some("aGk="));
        assert!(matches!(items[0].text("plaintext"), Ok(Some(Cow::Borrowed(_)))));
        assert_eq!(items[0].int("key_version").ok().flatten(), Some(2));
        assert_eq!(items[0].string("reference").ok().flatten().as_deref(), Some("7"));
        assert_eq!(
            items[1].string("plaintext").ok().flatten().as_deref(),
            Some("esc\"aped")
        );
        assert!(!items[1].has("context"));
        assert!(items[1].string("input").is_err());
        assert_eq!(items[1].string("key_version").ok().flatten().as_deref(), Some("1.5"));
        assert_eq!(items[2].string("plaintext").ok().flatten().as_deref(), Some("last"));
        assert!(items[0].ignored_warning().is_none());
        assert_eq!(
            p.ignored_warning().as_deref(),
            Some("Endpoint ignored these unrecognized parameters: [batch_input]")
        );
        p.declare(&Reads(&[&["batch_input"]]));
        assert!(p.ignored_warning().is_none());
        // The audit log still sees the whole batch.
        assert_eq!(
            p.audit_fields().expect("parses")["batch_input"][1]["input"],
            json!([1, {"y": 2}])
        );
    }

    #[test]
    fn what_the_audit_copy_cannot_parse_is_refused_up_front() {
        for body in [
            r#"{"batch_input": [{"plaintext": "eA==", "x": 1e400}]}"#,
            r#"{"batch_input": [{"plaintext": "eA==", "x": "\udc00"}]}"#,
            r#"{"batch_input": [{"plaintext": "eA==", "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}"#,
            r#"{"batch_input": 1e400}"#,
            r#"{"batch_input": [["\udc00"]]}"#,
        ] {
            assert!(Params::from_body(body.as_bytes()).is_err(), "{body}");
            assert!(serde_json::from_str::<Value>(body).is_err(), "{body}");
        }
    }

    #[test]
    fn serde_jsons_reserved_key_is_refused_at_every_level() {
        for body in [
            r#"{"batch_input":[{"$serde_json::private::RawValue":"F"}]}"#,
            r#"{"batch_input":[{"$serde_json::private::RawValue":"1"}]}"#,
            r#"{"$serde_json::private::RawValue":"1","batch_input":[{"plaintext":"eA=="}]}"#,
            r#"{"x":{"$serde_json::private::RawValue":"[0,0,0]"}}"#,
            r#"{"batch_input":[{"other":[{"\u0024serde_json::private::RawValue":"[0]"}]}]}"#,
        ] {
            assert!(Params::from_body(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn malformed_batches() {
        for (batch, expected) in [
            (json!([]), "missing batch input to process"),
            (json!({"a": 1}), "failed to parse batch input: expected an array"),
            (json!("x"), "failed to parse batch input: expected an array"),
            (
                json!([{"a": 1}, 3]),
                "failed to parse batch input: each item must be an object",
            ),
        ] {
            let p = body(&json!({ "batch_input": batch }));
            assert_eq!(message(p.batch_items()), expected, "{batch}");
        }
        assert!(matches!(body(&json!({"batch_input": null})).batch_items(), Ok(None)));
        assert!(matches!(body(&json!({})).batch_items(), Ok(None)));
    }
}
