//! JSON for the SPA without a JSON parser in the WASM: the browser's own `JSON.parse` reads the
//! text, and a small serde [`Deserializer`] walks the parsed JS value into any `Deserialize`
//! type (the same derives as on the server). Request bodies are written with serde_json, whose
//! writer costs little and only for the types actually sent.
//!
//! Why not serde_json for reading: it compiles its own parser (number parsing included) into
//! the WASM. Why not serde-wasm-bindgen: it renders every type error eagerly, and serde's
//! description of an unexpected float keeps Rust's float formatting (about 13 KB) in the WASM.
//! Errors here say only what is cheap to say: the field that is missing, or what was expected.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use web_sys::js_sys::{Array, JSON, Number, Object};
use web_sys::wasm_bindgen::{JsCast, JsValue};

/// Why a JSON text did not become the expected value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    /// Deliberately ignores `msg`: rendering serde's messages is what pulls formatting code
    /// into the WASM. The overrides below keep the useful part of the common errors.
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Self("the JSON does not have the expected shape".to_owned())
    }

    fn invalid_type(_unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self(format!("expected {expected}"))
    }

    fn invalid_value(_unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self(format!("expected {expected}"))
    }

    fn missing_field(field: &'static str) -> Self {
        Self(["missing field `", field, "`"].concat())
    }
}

/// Parses `text` as JSON and decodes it as `T`; an empty text reads as `null`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    let value = if text.is_empty() {
        JsValue::NULL
    } else {
        JSON::parse(text).map_err(|_| DecodeError("the text is not JSON".to_owned()))?
    };
    T::deserialize(Value(value))
}

/// Writes `value` as JSON text.
pub fn to_string<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, DecodeError> {
    serde_json::to_string(value).map_err(|_| DecodeError("cannot be written as JSON".to_owned()))
}

/// A value `JSON.parse` produced: `null`, a boolean, a number, a string, an array or a plain
/// object.
struct Value(JsValue);

impl Value {
    fn is_nullish(&self) -> bool {
        self.0.is_null() || self.0.is_undefined()
    }
}

impl<'de> Deserializer<'de> for Value {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let value = self.0;
        if value.is_null() || value.is_undefined() {
            visitor.visit_unit()
        } else if let Some(boolean) = value.as_bool() {
            visitor.visit_bool(boolean)
        } else if let Some(number) = value.as_f64() {
            if Number::is_safe_integer(&value) {
                // Exact: a safe integer has at most 53 bits.
                visitor.visit_i64(number as i64)
            } else {
                visitor.visit_f64(number)
            }
        } else if let Some(string) = value.as_string() {
            visitor.visit_string(string)
        } else if Array::is_array(&value) {
            let items: Array = value.unchecked_into();
            visitor.visit_seq(Items {
                len: items.length(),
                items,
                next: 0,
            })
        } else {
            // JSON.parse makes plain objects only.
            visitor.visit_map(Fields::new(value.unchecked_ref()))
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        if self.is_nullish() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    /// serde's default enum representation: a unit variant is a string (`"Admin"`), any other
    /// variant an object with one key (`{"Admin": {...}}`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0.as_string() {
            Some(variant) => visitor.visit_enum(de::IntoDeserializer::into_deserializer(variant)),
            None if self.0.is_object() && !Array::is_array(&self.0) => visitor.visit_enum(
                MapAccessDeserializer::new(Fields::new(self.0.unchecked_ref())),
            ),
            None => Err(de::Error::invalid_type(
                de::Unexpected::Other("JSON"),
                &visitor,
            )),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// The items of an array, in order.
struct Items {
    items: Array,
    len: u32,
    next: u32,
}

impl<'de> SeqAccess<'de> for Items {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.next >= self.len {
            return Ok(None);
        }
        let item = self.items.get(self.next);
        self.next += 1;
        seed.deserialize(Value(item)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        usize::try_from(self.len - self.next).ok()
    }
}

/// The fields of an object, as `Object.entries` lists them.
struct Fields {
    entries: Array,
    len: u32,
    next: u32,
    value: JsValue,
}

impl Fields {
    fn new(object: &Object) -> Self {
        let entries = Object::entries(object);
        Self {
            len: entries.length(),
            entries,
            next: 0,
            value: JsValue::UNDEFINED,
        }
    }
}

impl<'de> MapAccess<'de> for Fields {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        if self.next >= self.len {
            return Ok(None);
        }
        let entry: Array = self.entries.get(self.next).unchecked_into();
        self.next += 1;
        self.value = entry.get(1);
        seed.deserialize(Value(entry.get(0))).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(Value(std::mem::take(&mut self.value)))
    }

    fn size_hint(&self) -> Option<usize> {
        usize::try_from(self.len - self.next).ok()
    }
}
