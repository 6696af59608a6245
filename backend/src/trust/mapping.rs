//! Claim mapping: validated claims to a [`User`], following configured (dotted) claim paths.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::session::User;

/// Which claims make up the [`shared::session::User`]. Dotted paths reach into nested
/// objects (`realm_access.roles`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    pub user_id: String,
    pub username: String,
    pub name: String,
    pub email: String,
    pub groups: String,
    pub roles: String,
    /// Which client or token this is (`azp` for Keycloak, `client_id` elsewhere).
    pub token_name: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            user_id: "sub".into(),
            username: "preferred_username".into(),
            name: "name".into(),
            email: "email".into(),
            groups: "groups".into(),
            roles: "realm_access.roles".into(),
            token_name: "azp".into(),
        }
    }
}

/// Follows a dotted path (`realm_access.roles`) into nested objects. A claim whose own name
/// contains a dot (`https://example.org/roles`) is found too: the full path is tried first.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match claims.get(head)? {
        Value::Object(inner) => lookup(inner, rest),
        _ => None,
    }
}

fn string_at(sources: &[&Map<String, Value>], path: &str) -> Option<String> {
    sources
        .iter()
        .find_map(|c| lookup(c, path).and_then(Value::as_str).map(str::to_owned))
}

/// A list claim, accepting a single string too (some providers flatten one-element lists).
fn list_at(sources: &[&Map<String, Value>], path: &str) -> Vec<String> {
    sources
        .iter()
        .find_map(|c| match lookup(c, path)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            ),
            Value::String(s) => Some(vec![s.clone()]),
            _ => None,
        })
        .unwrap_or_default()
}

/// Maps claims into a user. `sources` are tried in order per field (e.g. ID token first,
/// then access token, because Keycloak puts roles only into the access token by default).
pub fn map_user(mapping: &ClaimMapping, sources: &[&Map<String, Value>]) -> User {
    User {
        id: string_at(sources, &mapping.user_id).unwrap_or_default(),
        username: string_at(sources, &mapping.username),
        name: string_at(sources, &mapping.name),
        email: string_at(sources, &mapping.email),
        groups: list_at(sources, &mapping.groups),
        roles: list_at(sources, &mapping.roles),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keycloak_shaped_claims_map_roles_from_realm_access() {
        let claims = json!({
            "sub": "u1", "preferred_username": "alice", "email": "a@example.org",
            "groups": ["admins"], "realm_access": {"roles": ["admin", "user"]}
        });
        let claims = claims.as_object().cloned().unwrap_or_default();
        let user = map_user(&ClaimMapping::default(), &[&claims]);
        assert_eq!(user.id, "u1");
        assert_eq!(user.username.as_deref(), Some("alice"));
        assert_eq!(user.roles, vec!["admin", "user"]);
        assert_eq!(user.groups, vec!["admins"]);
    }

    #[test]
    fn later_sources_fill_what_earlier_ones_lack() {
        let id = json!({"sub": "u1", "name": "Alice"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let at = json!({"sub": "other", "realm_access": {"roles": ["r"]}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let user = map_user(&ClaimMapping::default(), &[&id, &at]);
        assert_eq!(user.id, "u1");
        assert_eq!(user.roles, vec!["r"]);
    }

    #[test]
    fn a_claim_name_containing_dots_is_found_whole() {
        let c = json!({"https://example.org/roles": ["x"]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(lookup(&c, "https://example.org/roles").is_some());
    }
}
