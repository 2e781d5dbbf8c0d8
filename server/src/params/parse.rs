//! The request body's parser: serde visitors that build the top level as a map and
//! `batch_input` straight into fixed slots per item, refusing what the audit
//! log's full parse could not read.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{ABSENT, ITEM_FIELDS, ItemFields, Scalar};
/// The key by which serde_json's `Value` reads an object as embedded JSON text (its
/// `raw_value` feature, which axum enables): an object with it would mean one thing
/// to the visitors here and another to the audit log's full parse of the body, so
/// it is refused wherever these visitors read keys (found by `fuzz/`).
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

fn refuse_raw_value_key<E: de::Error>(key: &str) -> Result<(), E> {
    if key == RAW_VALUE_KEY {
        return Err(E::custom("reserved object key"));
    }
    Ok(())
}

/// A JSON value parsed as `serde_json::Value` parses it, except that the reserved
/// RawValue key is refused at every depth: `Value` would parse the string under
/// it as more JSON, which the byte scan of the body's limits never counted (a
/// string of millions of values inside one small-looking object).
struct StrictValue(Value);

impl<'de> de::Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictValueVisitor).map(StrictValue)
    }
}

struct StrictValueVisitor;

impl<'de> Visitor<'de> for StrictValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = access.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            refuse_raw_value_key(&key)?;
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// serde_json's error category, without the position and offending text (they may
/// be request secrets).
pub(super) fn classify(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Eof => "unexpected end of JSON input",
        serde_json::error::Category::Syntax => "invalid character in JSON input",
        serde_json::error::Category::Data => "invalid JSON value",
        serde_json::error::Category::Io => "could not read the body",
    }
}

/// Visitor methods for every JSON scalar but `null`, each answering `$answer`: the
/// visitors below tell a wrong type apart from a syntax error by returning a marker
/// rather than failing. Values they do not keep are still parsed in full (as
/// `Value`, not skipped with `IgnoredAny`, which checks less: no depth limit, no
/// number range, no escape validity), so that what is accepted here is exactly
/// what the audit log's copy of the body (`audit_fields`) can parse.
macro_rules! scalars_answer {
    ($answer:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($answer)
        }
    };
}

/// The body's top level: `None` if it is not an object; otherwise every parameter
/// as a `Value` except `batch_input`, parsed into items.
pub(super) type Body<'a> = Option<(Map<String, Value>, Option<Batch<'a>>)>;

pub(super) struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Body<'de>, E> {
        Ok(Some((Map::new(), None)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Body<'de>, A::Error> {
        let mut map = Map::new();
        let mut batch = None;
        while let Some(key) = access.next_key::<String>()? {
            refuse_raw_value_key(&key)?;
            if key == "batch_input" {
                batch = Some(access.next_value::<Batch<'de>>()?);
            } else {
                map.insert(key, access.next_value::<StrictValue>()?.0);
            }
        }
        Ok(Some((map, batch)))
    }

    // Any other JSON value: parsed (so syntax errors are still reported) and refused.
    scalars_answer!(None);
    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Body<'de>, A::Error> {
        while access.next_element::<StrictValue>()?.is_some() {}
        Ok(None)
    }
}

/// `batch_input` as sent.
pub(super) enum Batch<'a> {
    Null,
    NotAnArray,
    Items {
        /// Each item's slots, or `None` for an item that is not an object.
        items: Vec<Option<ItemFields>>,
        /// The values the slots index.
        values: Vec<Scalar<'a>>,
    },
}

impl<'de> de::Deserialize<'de> for Batch<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BatchVisitor)
    }
}

struct BatchVisitor;

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = Batch<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Batch<'de>, E> {
        Ok(Batch::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Batch<'de>, A::Error> {
        let mut items = Vec::new();
        let mut values = Vec::new();
        while let Some(item) = access.next_element_seed(ItemSeed { values: &mut values })? {
            items.push(item);
        }
        Ok(Batch::Items { items, values })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Batch<'de>, A::Error> {
        while access.next_entry::<String, StrictValue>()?.is_some() {}
        Ok(Batch::NotAnArray)
    }
    scalars_answer!(Batch::NotAnArray);
}

/// One `batch_input` element: its slots if it is an object, `None` otherwise; its
/// values go to the batch's list.
struct ItemSeed<'v, 'de> {
    values: &'v mut Vec<Scalar<'de>>,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, 'de> {
    type Value = Option<ItemFields>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(ItemVisitor { values: self.values })
    }
}

struct ItemVisitor<'v, 'de> {
    values: &'v mut Vec<Scalar<'de>>,
}

type Item = Option<ItemFields>;

impl<'de> Visitor<'de> for ItemVisitor<'_, 'de> {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Item, A::Error> {
        let mut fields = [ABSENT; ITEM_FIELDS.len()];
        while let Some(Text(key)) = access.next_key::<Text<'de>>()? {
            refuse_raw_value_key(&key)?;
            match ITEM_FIELDS.iter().position(|name| *name == key) {
                Some(slot) => {
                    let value = access.next_value::<Scalar<'de>>()?;
                    fields[slot] = u32::try_from(self.values.len())
                        .map_err(|_| de::Error::custom("too many batch input values"))?;
                    self.values.push(value);
                }
                None => {
                    access.next_value::<StrictValue>()?;
                }
            }
        }
        Ok(Some(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Item, A::Error> {
        while access.next_element::<StrictValue>()?.is_some() {}
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
        Ok(None)
    }
    scalars_answer!(None);
}

/// A string that borrows from the input when it has no escapes (serde's own
/// `Cow<str>` always copies).
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s)))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Number(n.into()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Scalar<'de>, E> {
        Ok(Number::from_f64(n).map_or(Scalar::Compound, Scalar::Number))
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(b))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Scalar<'de>, A::Error> {
        while access.next_element::<StrictValue>()?.is_some() {}
        Ok(Scalar::Compound)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Scalar<'de>, A::Error> {
        while access.next_entry::<String, StrictValue>()?.is_some() {}
        Ok(Scalar::Compound)
    }
}
