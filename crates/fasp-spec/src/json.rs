//! [`JsonValue`] and [`JsonMap`]: JSON whose objects keep their keys in the order they came,
//! whatever features `serde_json` is built with.
//!
//! `serde_json::Map` is ordered only when some crate in the build enables serde_json's
//! `preserve_order` feature, and a library cannot know whether one does (features are unified
//! across the whole build). A transfer spec must survive a read-write round trip with its keys
//! in their order, and its `tags` must render to the same `--tags` text in every build, so the
//! spec keeps what it does not type itself in these types: an [`indexmap::IndexMap`] for
//! objects, at every depth.

use std::fmt;
use std::ops::Index;
use std::str::FromStr;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Number;

/// A JSON object that keeps its keys in insertion order (the order they were read in).
///
/// Equality ignores the order, as for `serde_json::Map`; iteration, serialisation and
/// [`JsonValue`]'s `Display` follow it.
pub type JsonMap = IndexMap<String, JsonValue>;

/// A JSON value whose objects ([`JsonMap`]) keep their key order in every build.
///
/// Converts to and from [`serde_json::Value`] (`From` both ways); a `serde_json::Value` built
/// without serde_json's `preserve_order` feature has already lost its key order, so read text
/// with [`str::parse`] (or deserialise straight into a `JsonValue`) to keep it. `Display`
/// writes compact JSON text.
///
/// ```
/// use fasp_spec::JsonValue;
///
/// let value: JsonValue = r#"{"zeta": 1, "alpha": {"y": true, "x": null}}"#.parse()?;
/// assert_eq!(value.to_string(), r#"{"zeta":1,"alpha":{"y":true,"x":null}}"#);
/// assert_eq!(value["alpha"]["y"], JsonValue::Bool(true));
/// assert!(value["missing"].is_null());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub enum JsonValue {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<JsonValue>),
    /// An object, its keys in order.
    Object(JsonMap),
}

/// What indexing a value with a key or position it does not have gives.
static NULL: JsonValue = JsonValue::Null;

impl JsonValue {
    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, JsonValue::Null)
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            JsonValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            JsonValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as a `u64`, if this is a number that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            JsonValue::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The number as an `i64`, if this is a number that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            JsonValue::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The number as an `f64`, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            JsonValue::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&Vec<JsonValue>> {
        match self {
            JsonValue::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&JsonMap> {
        match self {
            JsonValue::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The object, mutably, if this is one.
    pub fn as_object_mut(&mut self) -> Option<&mut JsonMap> {
        match self {
            JsonValue::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The value under `key`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        self.as_object().and_then(|map| map.get(key))
    }

    /// The kind of value, as error messages name it: `"null"`, `"a boolean"`, `"a number"`,
    /// `"a string"`, `"an array"` or `"an object"`.
    pub fn kind(&self) -> &'static str {
        match self {
            JsonValue::Null => "null",
            JsonValue::Bool(_) => "a boolean",
            JsonValue::Number(_) => "a number",
            JsonValue::String(_) => "a string",
            JsonValue::Array(_) => "an array",
            JsonValue::Object(_) => "an object",
        }
    }

    /// The value of any serialisable type, its maps in the order it serialises them (through
    /// JSON text, so that no `serde_json::Map` sorts them on the way).
    pub(crate) fn from_serialize<T: Serialize + ?Sized>(
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        serde_json::from_str(&serde_json::to_string(value)?)
    }
}

impl Index<&str> for JsonValue {
    type Output = JsonValue;

    /// The value under `key`, or `null` when this is not an object or has no such key.
    fn index(&self, key: &str) -> &JsonValue {
        self.get(key).unwrap_or(&NULL)
    }
}

impl Index<usize> for JsonValue {
    type Output = JsonValue;

    /// The element at `index`, or `null` when this is not an array or is shorter.
    fn index(&self, index: usize) -> &JsonValue {
        self.as_array()
            .and_then(|items| items.get(index))
            .unwrap_or(&NULL)
    }
}

impl fmt::Display for JsonValue {
    /// Compact JSON text, object keys in their order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl FromStr for JsonValue {
    type Err = serde_json::Error;

    /// Reads JSON text, keeping every object's key order.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        serde_json::from_str(text)
    }
}

impl From<serde_json::Value> for JsonValue {
    /// The same value; its objects keep the order `serde_json::Map` had (sorted, unless
    /// serde_json's `preserve_order` feature is on in the build).
    fn from(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => JsonValue::Null,
            serde_json::Value::Bool(b) => JsonValue::Bool(b),
            serde_json::Value::Number(n) => JsonValue::Number(n),
            serde_json::Value::String(s) => JsonValue::String(s),
            serde_json::Value::Array(items) => {
                JsonValue::Array(items.into_iter().map(JsonValue::from).collect())
            }
            serde_json::Value::Object(map) => JsonValue::Object(
                map.into_iter()
                    .map(|(k, v)| (k, JsonValue::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<JsonValue> for serde_json::Value {
    /// The same value; `serde_json::Map` keeps the key order only with serde_json's
    /// `preserve_order` feature.
    fn from(value: JsonValue) -> Self {
        match value {
            JsonValue::Null => serde_json::Value::Null,
            JsonValue::Bool(b) => serde_json::Value::Bool(b),
            JsonValue::Number(n) => serde_json::Value::Number(n),
            JsonValue::String(s) => serde_json::Value::String(s),
            JsonValue::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(serde_json::Value::from).collect())
            }
            JsonValue::Object(map) => serde_json::Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, serde_json::Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl PartialEq<serde_json::Value> for JsonValue {
    /// The same JSON value (objects compared as sets of keys, as both types do).
    fn eq(&self, other: &serde_json::Value) -> bool {
        match (self, other) {
            (JsonValue::Null, serde_json::Value::Null) => true,
            (JsonValue::Bool(a), serde_json::Value::Bool(b)) => a == b,
            (JsonValue::Number(a), serde_json::Value::Number(b)) => a == b,
            (JsonValue::String(a), serde_json::Value::String(b)) => a == b,
            (JsonValue::Array(a), serde_json::Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
            }
            (JsonValue::Object(a), serde_json::Value::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| v == w))
            }
            _ => false,
        }
    }
}

impl From<bool> for JsonValue {
    fn from(b: bool) -> Self {
        JsonValue::Bool(b)
    }
}

impl From<&str> for JsonValue {
    fn from(s: &str) -> Self {
        JsonValue::String(s.to_owned())
    }
}

impl From<String> for JsonValue {
    fn from(s: String) -> Self {
        JsonValue::String(s)
    }
}

impl From<u64> for JsonValue {
    fn from(n: u64) -> Self {
        JsonValue::Number(n.into())
    }
}

impl From<i64> for JsonValue {
    fn from(n: i64) -> Self {
        JsonValue::Number(n.into())
    }
}

impl From<Vec<JsonValue>> for JsonValue {
    fn from(items: Vec<JsonValue>) -> Self {
        JsonValue::Array(items)
    }
}

impl From<JsonMap> for JsonValue {
    fn from(map: JsonMap) -> Self {
        JsonValue::Object(map)
    }
}

impl Serialize for JsonValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonValue::Null => serializer.serialize_unit(),
            JsonValue::Bool(b) => serializer.serialize_bool(*b),
            JsonValue::Number(n) => n.serialize(serializer),
            JsonValue::String(s) => serializer.serialize_str(s),
            JsonValue::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            JsonValue::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map {
                    out.serialize_entry(key, value)?;
                }
                out.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<JsonValue, E> {
        // JSON text has no NaN nor infinity; another format's are no JSON value.
        Number::from_f64(n)
            .map(JsonValue::Number)
            .ok_or_else(|| E::custom(format_args!("{n} is not a JSON number")))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<JsonValue, E> {
        Ok(JsonValue::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonValue, D::Error> {
        JsonValue::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        // The hint comes from the input: bounded, so that it cannot reserve memory at will.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<JsonValue, A::Error> {
        let mut map = JsonMap::with_capacity(access.size_hint().unwrap_or(0).min(64));
        while let Some((key, value)) = access.next_entry::<String, JsonValue>()? {
            // A repeated key keeps its first place and takes the last value, as serde_json does.
            map.insert(key, value);
        }
        Ok(JsonValue::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEXT: &str = r#"{"zeta":1,"alpha":{"y":[true,null,-2,1.5],"x":"s"},"mid":{}}"#;

    #[test]
    fn text_round_trips_with_its_order_at_every_depth() {
        let value: JsonValue = TEXT.parse().unwrap();
        assert_eq!(value.to_string(), TEXT);
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["zeta", "alpha", "mid"]);
        let inner: Vec<&str> = value["alpha"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(inner, ["y", "x"]);
        assert_eq!(value["alpha"]["y"][2].as_i64(), Some(-2));
        assert_eq!(value["alpha"]["y"][3].as_f64(), Some(1.5));
        assert!(value["alpha"]["y"][9].is_null() && value[0].is_null());
    }

    #[test]
    fn converts_to_and_from_serde_json_values() {
        let ours: JsonValue = TEXT.parse().unwrap();
        let theirs: serde_json::Value = serde_json::from_str(TEXT).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(serde_json::Value::from(ours.clone()), theirs);
        assert_eq!(JsonValue::from(theirs.clone()), ours);
        assert_ne!(ours, json!({"zeta": 1}));
        assert_ne!(JsonValue::from("1"), json!(1));
    }

    #[test]
    fn a_repeated_key_keeps_its_place_and_its_last_value() {
        let value: JsonValue = r#"{"b": 1, "a": 2, "b": 3}"#.parse().unwrap();
        assert_eq!(value.to_string(), r#"{"b":3,"a":2}"#);
    }

    #[test]
    fn kinds_and_accessors() {
        let value: JsonValue = r#"[null, false, 7, "s", [], {}]"#.parse().unwrap();
        let kinds: Vec<&str> = value
            .as_array()
            .unwrap()
            .iter()
            .map(JsonValue::kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "null",
                "a boolean",
                "a number",
                "a string",
                "an array",
                "an object"
            ]
        );
        assert_eq!(value[1].as_bool(), Some(false));
        assert_eq!(value[2].as_u64(), Some(7));
        assert_eq!(value[3].as_str(), Some("s"));
        assert!(value[3].as_object().is_none() && value[3].get("k").is_none());
        assert!("[1,".parse::<JsonValue>().is_err());
    }
}
