//! A token's claims as the bridge reads them: the payload's JSON text, parsed once into values
//! that borrow their strings from it ([`serde_json_borrow`]: objects as small vectors, no
//! string copied unless it holds an escape). Parsing claims into `serde_json::Map` copied every
//! name and string and built a tree map per token; on a storm of distinct tokens that was about
//! a seventh of the bridge's own work per token besides the signature check
//! (bench/instructions-per-request.sh).
//!
//! A member name may occur once per object: RFC 7519 (section 4) lets a parser either refuse
//! duplicate claim names or take the last one, and the bridge refuses them, so that no two
//! readers of one token (the bridge, an upstream API) can see two different values.

use std::{collections::HashSet, sync::Arc};

use serde_json::{Map, Value as JsonValue};
use serde_json_borrow::{ObjectAsVec, OwnedValue};

pub use serde_json_borrow::Value;

/// Why a text is not a token's claims (a malformed token, to the operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotClaims(pub &'static str);

const NOT_AN_OBJECT: NotClaims = NotClaims("payload is not a JSON object");

/// A token's claims: a JSON object, no member name twice in any object.
#[derive(Clone, Debug)]
pub struct Claims {
    /// The JSON text as the token carried it (kept by the principal).
    text: Arc<str>,
    /// Parsed from a copy of `text`; its values borrow from that copy, which it owns.
    parsed: OwnedValue,
}

impl Claims {
    /// The claims of a payload's JSON text.
    pub fn parse(text: String) -> Result<Self, NotClaims> {
        let shared: Arc<str> = text.as_str().into();
        Self::parse_shared(shared, text)
    }

    /// The claims of JSON text kept elsewhere too (a principal's claims).
    pub fn from_shared(text: &Arc<str>) -> Result<Self, NotClaims> {
        Self::parse_shared(text.clone(), text.to_string())
    }

    /// `copy` is `shared`'s text; the parsed values borrow from it.
    fn parse_shared(shared: Arc<str>, copy: String) -> Result<Self, NotClaims> {
        let parsed = OwnedValue::from_string(copy).map_err(|_| NOT_AN_OBJECT)?;
        let Some(members) = parsed.get_value().as_object() else {
            return Err(NOT_AN_OBJECT);
        };
        if has_duplicate_names(members) {
            return Err(NotClaims("a claim name occurs twice in one object"));
        }
        Ok(Self {
            text: shared,
            parsed,
        })
    }

    /// The claims of a map (tests, and claims built in code): refused like a payload when the
    /// map holds an object with a name twice (it cannot) or is otherwise not claims.
    pub fn from_map(map: &Map<String, JsonValue>) -> Result<Self, NotClaims> {
        let text = serde_json::to_string(map).map_err(|_| NOT_AN_OBJECT)?;
        Self::parse(text)
    }

    /// The top-level member `name`.
    pub fn get(&self, name: &str) -> Option<&Value<'_>> {
        self.members()?.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The member `name` when it is a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Follows a dotted path (`realm_access.roles`) into nested objects. A claim whose own name
    /// contains a dot (`https://example.org/roles`) is found too: the full path is tried first.
    pub fn lookup(&self, path: &str) -> Option<&Value<'_>> {
        lookup_in(self.members()?, path)
    }

    /// The JSON text as the token carried it.
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    fn members(&self) -> Option<&ObjectAsVec<'_>> {
        self.parsed.get_value().as_object()
    }
}

fn lookup_in<'a, 'ctx>(members: &'a ObjectAsVec<'ctx>, path: &str) -> Option<&'a Value<'ctx>> {
    if let Some(v) = members.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    lookup_in(members.get(head)?.as_object()?, rest)
}

/// Whether a member name occurs twice in `object` or in any object within it.
fn has_duplicate_names(object: &ObjectAsVec<'_>) -> bool {
    let names = object.len();
    let twice = if names <= 16 {
        object
            .keys()
            .enumerate()
            .any(|(i, k)| object.keys().skip(i + 1).any(|other| other == k))
    } else {
        let mut seen = HashSet::with_capacity(names);
        !object.keys().all(|k| seen.insert(k))
    };
    twice || object.values().any(value_has_duplicate_names)
}

fn value_has_duplicate_names(value: &Value<'_>) -> bool {
    match value {
        Value::Object(o) => has_duplicate_names(o),
        Value::Array(items) => items.iter().any(value_has_duplicate_names),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(text: &str) -> Result<Claims, NotClaims> {
        Claims::parse(text.to_owned())
    }

    #[test]
    fn members_strings_numbers_and_nested_paths_are_read() {
        let c = claims(
            r#"{"sub":"u1","exp":1700000000,"realm_access":{"roles":["a","b"]},"https://x.org/r":["x"]}"#,
        )
        .unwrap();
        assert_eq!(c.str("sub"), Some("u1"));
        assert_eq!(c.get("exp").and_then(Value::as_i64), Some(1_700_000_000));
        let roles = c.lookup("realm_access.roles").and_then(Value::as_array);
        assert_eq!(roles.map(<[Value]>::len), Some(2));
        assert!(c.lookup("https://x.org/r").is_some());
        assert!(c.lookup("realm_access.missing").is_none());
        assert!(!c.contains("nbf"));
    }

    #[test]
    fn escaped_names_and_strings_are_unescaped() {
        let c = claims(r#"{"https:\/\/x.org\/roles":"a\"b","n\u00e4me":"\u00e4"}"#).unwrap();
        assert_eq!(c.str("https://x.org/roles"), Some("a\"b"));
        assert_eq!(c.str("näme"), Some("ä"));
    }

    #[test]
    fn a_name_twice_in_any_object_is_refused() {
        for text in [
            r#"{"sub":"alice","sub":"admin"}"#,
            r#"{"realm_access":{"roles":["user"],"roles":["admin"]}}"#,
            r#"{"list":[{"a":1,"a":2}]}"#,
            // Escaped and plain spelling of one name are the same name.
            r#"{"sub":"alice","s\u0075b":"admin"}"#,
        ] {
            assert!(
                claims(text).err() == Some(NotClaims("a claim name occurs twice in one object")),
                "{text} was accepted"
            );
        }
        let many: Vec<String> = (0..40).map(|i| format!("\"c{i}\":{i}")).collect();
        assert!(claims(&format!("{{{}}}", many.join(","))).is_ok());
        assert!(claims(&format!("{{{},\"c7\":0}}", many.join(","))).is_err());
    }

    #[test]
    fn anything_but_a_json_object_is_refused() {
        for text in ["[1]", "\"s\"", "1", "null", "{", "", "{\"a\":1} x"] {
            assert!(claims(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn the_text_is_kept_as_the_token_carried_it_and_a_map_converts() {
        let text = r#"{"b":1, "a":"x"}"#;
        let c = claims(text).unwrap();
        assert_eq!(&**c.text(), text);
        let again = Claims::from_shared(c.text()).unwrap();
        assert_eq!(again.str("a"), Some("x"));
        let map = serde_json::json!({"a": "x", "n": {"m": [1]}});
        let from_map = Claims::from_map(map.as_object().unwrap()).unwrap();
        assert_eq!(from_map.str("a"), Some("x"));
        assert!(from_map.lookup("n.m").is_some());
    }
}
