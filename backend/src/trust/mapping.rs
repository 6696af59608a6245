//! Claim mapping: validated claims to a [`User`], following configured (dotted) claim paths.

use serde::{Deserialize, Serialize};
use shared::session::User;

use super::claims::{Claims, Value};

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

/// Follows a dotted path (`realm_access.roles`) into nested objects (see [`Claims::lookup`]).
pub fn lookup<'a>(claims: &'a Claims, path: &str) -> Option<&'a Value<'a>> {
    claims.lookup(path)
}

fn string_at(sources: &[&Claims], path: &str) -> Option<String> {
    sources
        .iter()
        .find_map(|c| lookup(c, path).and_then(Value::as_str).map(str::to_owned))
}

/// A list claim, accepting a single string too (some providers flatten one-element lists).
fn list_at(sources: &[&Claims], path: &str) -> Vec<String> {
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
            Value::Str(s) => Some(vec![s.to_string()]),
            _ => None,
        })
        .unwrap_or_default()
}

/// Maps claims into a user. `sources` are tried in order per field (e.g. ID token first,
/// then access token, because Keycloak puts roles only into the access token by default).
pub fn map_user(mapping: &ClaimMapping, sources: &[&Claims]) -> User {
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

    fn claims(v: serde_json::Value) -> Claims {
        Claims::from_map(v.as_object().unwrap_or(&serde_json::Map::new())).unwrap()
    }

    #[test]
    fn keycloak_shaped_claims_map_roles_from_realm_access() {
        let claims = json!({
            "sub": "u1", "preferred_username": "alice", "email": "a@example.org",
            "groups": ["admins"], "realm_access": {"roles": ["admin", "user"]}
        });
        let claims = self::claims(claims);
        let user = map_user(&ClaimMapping::default(), &[&claims]);
        assert_eq!(user.id, "u1");
        assert_eq!(user.username.as_deref(), Some("alice"));
        assert_eq!(user.roles, vec!["admin", "user"]);
        assert_eq!(user.groups, vec!["admins"]);
    }

    #[test]
    fn later_sources_fill_what_earlier_ones_lack() {
        let id = claims(json!({"sub": "u1", "name": "Alice"}));
        let at = claims(json!({"sub": "other", "realm_access": {"roles": ["r"]}}));
        let user = map_user(&ClaimMapping::default(), &[&id, &at]);
        assert_eq!(user.id, "u1");
        assert_eq!(user.roles, vec!["r"]);
    }

    #[test]
    fn a_claim_name_containing_dots_is_found_whole() {
        let c = claims(json!({"https://example.org/roles": ["x"]}));
        assert!(lookup(&c, "https://example.org/roles").is_some());
    }
}
