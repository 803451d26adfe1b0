//! JSON through the JS engine (the `js-json` feature on wasm32): `JSON.parse`, then a small
//! serde `Deserializer` over the engine's values; `serde_json::to_value`, then
//! `JSON.stringify`. Error messages are built here from serde's categories and never format a
//! value of the input (which also keeps core's float formatting out of the wasm).

use core::fmt;

use js_sys::{Array, Object, Reflect};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Unexpected, Visitor};
use serde::{Serialize, forward_to_deserialize_any};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};

use super::{Error, MAX_DEPTH};

pub(super) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let text = core::str::from_utf8(bytes).map_err(|_| plain("invalid UTF-8"))?;
    if too_deep(bytes) {
        return Err(plain("recursion limit exceeded"));
    }
    // The engine's message quotes the input ("Unexpected token ... is not valid JSON").
    let parsed = js_sys::JSON::parse(text).map_err(|_| plain("syntax error"))?;
    T::deserialize(Js(parsed))
}

pub(super) fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let value = serde_json::to_value(value).map_err(|_| plain("a value JSON cannot represent"))?;
    js_sys::JSON::stringify(&to_js(&value))
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| plain("a value JSON cannot represent"))
}

fn plain(what: &str) -> Error {
    Error(what.to_owned())
}

/// A `Value` as a JS value for `JSON.stringify`. Objects have no prototype, so a member named
/// `__proto__` is an own property like any other.
fn to_js(v: &Value) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => n.as_f64().map_or(JsValue::NULL, JsValue::from_f64),
        Value::String(s) => JsValue::from_str(s),
        Value::Array(items) => items.iter().map(to_js).collect::<Array>().into(),
        Value::Object(map) => {
            let o: Object = Object::create(JsValue::NULL.unchecked_ref());
            for (k, v) in map {
                // Cannot fail: a fresh extensible object without setters.
                let _ = Reflect::set(&o, &JsValue::from_str(k), &to_js(v));
            }
            o.into()
        }
    }
}

/// Whether arrays and objects nest [`MAX_DEPTH`] deep, counted outside strings. (Only a
/// depth: whether the text is JSON at all is `JSON.parse`'s to say.)
fn too_deep(bytes: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth >= MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The words serde_json's messages start with, without the value that follows them.
fn kind(unexp: &Unexpected<'_>) -> &'static str {
    match unexp {
        Unexpected::Bool(_) => "boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "integer",
        Unexpected::Float(_) => "floating",
        Unexpected::Char(_) => "char",
        Unexpected::Str(_) => "string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "null",
        Unexpected::Seq => "sequence",
        Unexpected::Map => "map",
        _ => "value",
    }
}

impl de::Error for Error {
    /// Free text from a visitor may quote input: only the category is kept.
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        plain("invalid value")
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Error(format!("invalid type {}, expected {exp}", kind(&unexp)))
    }

    fn invalid_value(_unexp: Unexpected<'_>, _exp: &dyn de::Expected) -> Self {
        plain("invalid value")
    }

    fn missing_field(field: &'static str) -> Self {
        Error(format!("missing field `{field}`"))
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        Error(format!("unknown field `{field}`"))
    }
}

/// A value `JSON.parse` returned: null, a boolean, a number, a string, an array or a plain
/// object (nothing else can come out of it).
struct Js(JsValue);

impl Js {
    /// Entries of an object, as `[key, value]` pairs (own enumerable string keys).
    fn entries(&self) -> Option<Array> {
        let o = self.0.dyn_ref::<Object>()?;
        (!Array::is_array(&self.0)).then(|| Object::entries(o))
    }
}

/// What a value is, read once (one copy of this, not one per visited type).
enum Read {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    Seq(Array),
    Map(Array),
}

impl Js {
    #[inline(never)]
    fn read(self) -> Result<Read, Error> {
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        let v = &self.0;
        Ok(if v.is_null() || v.is_undefined() {
            Read::Null
        } else if let Some(b) = v.as_bool() {
            Read::Bool(b)
        } else if let Some(n) = v.as_f64() {
            // The engine does not keep `1` and `1.0` apart; an integral double within 2^53
            // is the integer it spells.
            if n.fract() == 0.0 && n.abs() <= EXACT {
                if n >= 0.0 {
                    Read::U64(n as u64)
                } else {
                    Read::I64(n as i64)
                }
            } else if n.is_finite() {
                Read::F64(n)
            } else {
                return Err(plain("number out of range"));
            }
        } else if let Some(s) = v.as_string() {
            Read::Str(s)
        } else if let Some(a) = v.dyn_ref::<Array>() {
            Read::Seq(a.clone())
        } else if let Some(entries) = self.entries() {
            Read::Map(entries)
        } else {
            return Err(plain("invalid value"));
        })
    }
}

impl<'de> de::Deserializer<'de> for Js {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.read()? {
            Read::Null => visitor.visit_unit(),
            Read::Bool(b) => visitor.visit_bool(b),
            Read::U64(n) => visitor.visit_u64(n),
            Read::I64(n) => visitor.visit_i64(n),
            Read::F64(n) => visitor.visit_f64(n),
            Read::Str(s) => visitor.visit_string(s),
            Read::Seq(items) => visitor.visit_seq(Seq { items, next: 0 }),
            Read::Map(entries) => visitor.visit_map(Entries {
                entries,
                next: 0,
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.is_null() || self.0.is_undefined() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// Externally tagged, as serde_json: `"Variant"` or `{"Variant": payload}`.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if let Some(tag) = self.0.as_string() {
            return visitor.visit_enum(Variant { tag, payload: None });
        }
        match self.entries() {
            Some(entries) if entries.length() == 1 => {
                let pair: Array = entries.get(0).unchecked_into();
                let tag = pair.get(0).as_string().unwrap_or_default();
                visitor.visit_enum(Variant {
                    tag,
                    payload: Some(Js(pair.get(1))),
                })
            }
            _ => Err(de::Error::invalid_type(Unexpected::Map, &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct Seq {
    items: Array,
    next: u32,
}

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.next >= self.items.length() {
            return Ok(None);
        }
        let item = self.items.get(self.next);
        self.next += 1;
        seed.deserialize(Js(item)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some((self.items.length() - self.next) as usize)
    }
}

struct Entries {
    entries: Array,
    next: u32,
    value: Option<JsValue>,
}

impl<'de> de::MapAccess<'de> for Entries {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.next >= self.entries.length() {
            return Ok(None);
        }
        let pair: Array = self.entries.get(self.next).unchecked_into();
        self.next += 1;
        self.value = Some(pair.get(1));
        let key = pair.get(0).as_string().unwrap_or_default();
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(Js(self.value.take().unwrap_or(JsValue::NULL)))
    }
}

struct Variant {
    tag: String,
    payload: Option<Js>,
}

impl<'de> de::EnumAccess<'de> for Variant {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: de::DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let tag: de::value::StrDeserializer<'_, Error> = self.tag.as_str().into_deserializer();
        let value = seed.deserialize(tag)?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.payload {
            None => Ok(()),
            Some(_) => Err(plain("invalid value")),
        }
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.payload {
            Some(p) => seed.deserialize(p),
            None => Err(plain("invalid value")),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.payload {
            Some(p) => de::Deserializer::deserialize_seq(p, visitor),
            None => Err(plain("invalid value")),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.payload {
            Some(p) => de::Deserializer::deserialize_map(p, visitor),
            None => Err(plain("invalid value")),
        }
    }
}
