//! JSON for the SPA without a JSON parser in the WASM: the browser's own `JSON.parse` reads the
//! text into a [`Json`] value, which then becomes a Rust type in one of two ways:
//!
//! - [`Decode`]: hand-written for the bridge's own types (session, user, errors, the demo API).
//!   This is what the SPA uses, because serde's derived deserializers cost several KB of WASM
//!   per type; the host-side tests below check every decoder against serde's own output.
//! - [`from_json`]: any `serde::Deserialize` type, through a small serde `Deserializer` over
//!   [`Json`], for apps that bring their own API types (see the `reuse` example).
//!
//! Request bodies are written with serde_json, whose writer costs little and only for the
//! types actually sent. Why not serde_json for reading: its parser (number parsing included)
//! would be compiled in. Why not serde-wasm-bindgen: it renders every type error eagerly, and
//! serde's text for an unexpected float keeps Rust's float formatting (about 13 KB) in the WASM.

use std::fmt;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use shared::api::{ApiCall, ApiCalls, Me};
use shared::error::ApiError;
use shared::session::{LogoutResponse, SessionInfo, User};

/// A parsed JSON value. Numbers are `f64`, as in JavaScript.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Json {
    #[default]
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    /// Members in document order.
    Object(Vec<(String, Json)>),
}

/// Why a JSON text did not become the expected value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    fn expected(what: &str, key: &str) -> Self {
        Self(["`", key, "` is not ", what].concat())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl Json {
    /// Parses `text` with the browser's `JSON.parse`; an empty text reads as `null`.
    pub fn parse(text: &str) -> Result<Self, DecodeError> {
        if text.is_empty() {
            return Ok(Self::Null);
        }
        web_sys::js_sys::JSON::parse(text)
            .map(Self::from_js)
            .map_err(|_| DecodeError("the text is not JSON".to_owned()))
    }

    /// Converts what `JSON.parse` returned (only plain values, arrays and objects).
    fn from_js(value: web_sys::wasm_bindgen::JsValue) -> Self {
        use web_sys::js_sys::{Array, Object};
        use web_sys::wasm_bindgen::JsCast;

        if let Some(boolean) = value.as_bool() {
            Self::Bool(boolean)
        } else if let Some(number) = value.as_f64() {
            Self::Number(number)
        } else if let Some(string) = value.as_string() {
            Self::String(string)
        } else if Array::is_array(&value) {
            let items: Array = value.unchecked_into();
            Self::Array(items.iter().map(Self::from_js).collect())
        } else if value.is_object() {
            let members = Object::entries(value.unchecked_ref())
                .iter()
                .map(|entry| {
                    let entry: Array = entry.unchecked_into();
                    let key = entry.get(0).as_string().unwrap_or_default();
                    (key, Self::from_js(entry.get(1)))
                })
                .collect();
            Self::Object(members)
        } else {
            Self::Null
        }
    }

    /// The member `key` of an object; `Null` when absent or when this is not an object.
    pub fn get(&self, key: &str) -> &Json {
        match self {
            Self::Object(members) => members
                .iter()
                .find(|(name, _)| name == key)
                .map_or(&Json::Null, |(_, value)| value),
            _ => &Json::Null,
        }
    }

    /// The string member `key`.
    pub fn string(&self, key: &str) -> Result<String, DecodeError> {
        self.opt_string(key)?
            .ok_or_else(|| DecodeError::expected("a string", key))
    }

    /// The string member `key`, `None` when absent or `null`.
    pub fn opt_string(&self, key: &str) -> Result<Option<String>, DecodeError> {
        match self.get(key) {
            Self::Null => Ok(None),
            Self::String(value) => Ok(Some(value.clone())),
            _ => Err(DecodeError::expected("a string", key)),
        }
    }

    /// The boolean member `key`, `None` when absent or `null`.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, DecodeError> {
        match self.get(key) {
            Self::Null => Ok(None),
            Self::Bool(value) => Ok(Some(*value)),
            _ => Err(DecodeError::expected("a boolean", key)),
        }
    }

    /// The integer member `key` (exact up to 2^53, like every JSON number in a browser).
    pub fn int(&self, key: &str) -> Result<i64, DecodeError> {
        match self.get(key) {
            Self::Number(value)
                if value.fract() == 0.0 && value.abs() <= 9_007_199_254_740_992.0 =>
            {
                Ok(*value as i64)
            }
            _ => Err(DecodeError::expected("an integer", key)),
        }
    }

    /// The array member `key`, each item decoded by `item`; absent or `null` is empty.
    pub fn list<T>(
        &self,
        key: &str,
        item: impl Fn(&Json) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        match self.get(key) {
            Self::Null => Ok(Vec::new()),
            Self::Array(items) => items.iter().map(item).collect(),
            _ => Err(DecodeError::expected("an array", key)),
        }
    }

    /// The array-of-strings member `key`; absent or `null` is empty.
    pub fn strings(&self, key: &str) -> Result<Vec<String>, DecodeError> {
        self.list(key, |item| match item {
            Self::String(value) => Ok(value.clone()),
            _ => Err(DecodeError::expected("a list of strings", key)),
        })
    }
}

/// A type decoded by hand from [`Json`], without serde's per-type code.
pub trait Decode: Sized {
    fn decode(json: &Json) -> Result<Self, DecodeError>;
}

/// Parses `text` and decodes it as `T` with its [`Decode`] impl.
pub fn decode<T: Decode>(text: &str) -> Result<T, DecodeError> {
    T::decode(&Json::parse(text)?)
}

impl Decode for User {
    fn decode(json: &Json) -> Result<Self, DecodeError> {
        Ok(Self {
            id: json.string("id")?,
            username: json.opt_string("username")?,
            name: json.opt_string("name")?,
            email: json.opt_string("email")?,
            groups: json.strings("groups")?,
            roles: json.strings("roles")?,
        })
    }
}

impl Decode for SessionInfo {
    fn decode(json: &Json) -> Result<Self, DecodeError> {
        Ok(Self {
            user: User::decode(json.get("user"))?,
            auth_token: json.string("auth_token")?,
            expires_at: json.int("expires_at")?,
        })
    }
}

impl Decode for LogoutResponse {
    fn decode(json: &Json) -> Result<Self, DecodeError> {
        Ok(Self {
            end_session_url: json.opt_string("end_session_url")?,
        })
    }
}

impl Decode for ApiError {
    fn decode(json: &Json) -> Result<Self, DecodeError> {
        Ok(Self {
            error: json.string("error")?,
            error_description: json.opt_string("error_description")?,
            silent_sso_tried: json.opt_bool("silent_sso_tried")?,
            local_accounts: json.opt_bool("local_accounts")?,
        })
    }
}

impl Decode for Me {
    fn decode(json: &Json) -> Result<Self, DecodeError> {
        Ok(Self {
            user: User::decode(json.get("user"))?,
            issuer: json.string("issuer")?,
            expires_at: json.int("expires_at")?,
            token_fingerprint: json.string("token_fingerprint")?,
        })
    }
}

impl Decode for ApiCall {
    fn decode(json: &Json) -> Result<Self, DecodeError> {
        Ok(Self {
            method: json.string("method")?,
            path: json.string("path")?,
            token_fingerprint: json.string("token_fingerprint")?,
            at: json.int("at")?,
        })
    }
}

impl Decode for ApiCalls {
    fn decode(json: &Json) -> Result<Self, DecodeError> {
        Ok(Self {
            calls: json.list("calls", ApiCall::decode)?,
        })
    }
}

/// Parses `text` and decodes it as any serde type; an empty text reads as `null`.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    T::deserialize(Json::parse(text)?)
}

/// Writes `value` as JSON text.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, DecodeError> {
    serde_json::to_string(value).map_err(|_| DecodeError("cannot be written as JSON".to_owned()))
}

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

impl<'de> IntoDeserializer<'de, DecodeError> for Json {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Json {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Self::Null => visitor.visit_unit(),
            Self::Bool(value) => visitor.visit_bool(value),
            // Whole numbers as integers, so integer fields accept them; exact up to 2^53.
            Self::Number(value)
                if value.fract() == 0.0 && value.abs() <= 9_007_199_254_740_992.0 =>
            {
                visitor.visit_i64(value as i64)
            }
            Self::Number(value) => visitor.visit_f64(value),
            Self::String(value) => visitor.visit_string(value),
            Self::Array(items) => visitor.visit_seq(SeqDeserializer::new(items.into_iter())),
            Self::Object(members) => visitor.visit_map(MapDeserializer::new(members.into_iter())),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Self::Null => visitor.visit_none(),
            value => visitor.visit_some(value),
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
    /// variant an object with one member (`{"Admin": {...}}`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self {
            Self::String(variant) => visitor.visit_enum(variant.into_deserializer()),
            Self::Object(members) => visitor.visit_enum(de::value::MapAccessDeserializer::new(
                MapDeserializer::new(members.into_iter()),
            )),
            _ => Err(de::Error::invalid_type(
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

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    /// What `JSON.parse` would give for serde_json's rendering of `value`.
    fn as_json<T: Serialize>(value: &T) -> Json {
        fn convert(value: serde_json::Value) -> Json {
            match value {
                serde_json::Value::Null => Json::Null,
                serde_json::Value::Bool(b) => Json::Bool(b),
                serde_json::Value::Number(n) => Json::Number(n.as_f64().unwrap_or(f64::NAN)),
                serde_json::Value::String(s) => Json::String(s),
                serde_json::Value::Array(items) => {
                    Json::Array(items.into_iter().map(convert).collect())
                }
                serde_json::Value::Object(members) => {
                    Json::Object(members.into_iter().map(|(k, v)| (k, convert(v))).collect())
                }
            }
        }
        convert(serde_json::to_value(value).unwrap_or_default())
    }

    fn user() -> User {
        User {
            id: "sub-1".into(),
            username: Some("alice".into()),
            name: None,
            email: Some("alice@example.org".into()),
            groups: vec!["staff".into()],
            roles: vec!["admin".into(), "user".into()],
        }
    }

    #[test]
    fn every_hand_decoder_reads_what_serde_writes() {
        let session = SessionInfo {
            user: user(),
            auth_token: "eyJ".into(),
            expires_at: 1_790_000_000,
        };
        assert_eq!(SessionInfo::decode(&as_json(&session)), Ok(session));
        let me = Me {
            user: user(),
            issuer: "http://idp".into(),
            expires_at: 1_790_000_000,
            token_fingerprint: "0123456789abcdef".into(),
        };
        assert_eq!(Me::decode(&as_json(&me)), Ok(me));
        let calls = ApiCalls {
            calls: vec![ApiCall {
                method: "GET".into(),
                path: "/api/me".into(),
                token_fingerprint: "0123456789abcdef".into(),
                at: 1_790_000_000,
            }],
        };
        assert_eq!(ApiCalls::decode(&as_json(&calls)), Ok(calls));
        let logout = LogoutResponse {
            end_session_url: Some("http://idp/end".into()),
        };
        assert_eq!(LogoutResponse::decode(&as_json(&logout)), Ok(logout));
        let mut error = ApiError::new("unauthenticated", "no session");
        error.silent_sso_tried = Some(false);
        assert_eq!(ApiError::decode(&as_json(&error)), Ok(error));
    }

    #[test]
    fn absent_lists_and_options_read_as_empty() {
        let json = Json::Object(vec![("id".into(), Json::String("x".into()))]);
        assert_eq!(
            User::decode(&json),
            Ok(User {
                id: "x".into(),
                ..User::default()
            })
        );
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let json = Json::Object(vec![("error".into(), Json::Number(1.0))]);
        assert_eq!(
            ApiError::decode(&json).map_err(|e| e.to_string()),
            Err("`error` is not a string".to_owned())
        );
        let json = Json::Object(vec![("at".into(), Json::Number(1.5))]);
        assert!(json.int("at").is_err());
    }

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    enum Kind {
        Plain,
        Sized { size: u32 },
    }

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Note {
        id: u64,
        text: String,
        score: f64,
        tags: Vec<String>,
        parent: Option<u64>,
        kinds: Vec<Kind>,
    }

    #[test]
    fn any_serde_type_reads_through_the_deserializer() {
        let note = Note {
            id: 7,
            text: "hello".into(),
            score: 0.5,
            tags: vec!["a".into()],
            parent: None,
            kinds: vec![Kind::Plain, Kind::Sized { size: 3 }],
        };
        assert_eq!(Note::deserialize(as_json(&note)), Ok(note));
        let missing = Json::Object(vec![("id".into(), Json::Number(1.0))]);
        assert_eq!(
            Note::deserialize(missing).map_err(|e| e.to_string()),
            Err("missing field `text`".to_owned())
        );
    }
}
