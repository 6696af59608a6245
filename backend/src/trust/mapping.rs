//! Claim mapping: validated claims to a [`User`], following configured (dotted) claim paths.
//!
//! A claim the mapping names is required unless `optional` lists its field: a token without
//! the mapped `username` must not sign in as a user whose identity silently fell back to
//! `sub` with no name. The defaults leave only `user_id` and `username` required; what a
//! provider may legitimately leave out (a name, an email, groups, roles, the client) is
//! optional.

use serde::{Deserialize, Serialize};
use shared::session::User;

use super::{
    claims::{Claims, Value},
    validate::TokenError,
};

/// Which claims make up the signed-in user ([`shared::session::User`]). Values are claim
/// paths; dotted paths reach into nested objects (`realm_access.roles`,
/// `resource_access.my-client.roles`). A mapped claim a token lacks (or has with the wrong
/// type) refuses the token, unless `optional` names it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    /// Claim holding the user's stable id.
    pub user_id: String,
    /// Claim holding the username.
    pub username: String,
    /// Claim holding the display name.
    pub name: String,
    /// Claim holding the e-mail address.
    pub email: String,
    /// Claim holding the groups.
    pub groups: String,
    /// Claim holding the roles.
    pub roles: String,
    /// Which client or token this is (`azp` for Keycloak, `client_id` elsewhere).
    pub token_name: String,
    /// The fields above (by their names: `username`, `email`...) whose claim a token may
    /// lack; every other mapped claim is required. `user_id` is always required. An empty
    /// claim path maps nothing and requires nothing.
    pub optional: Vec<String>,
}

/// The fields of a [`ClaimMapping`] a token may lack by default.
pub const DEFAULT_OPTIONAL: [&str; 5] = ["name", "email", "groups", "roles", "token_name"];

/// Every mapped field, as `optional` names them.
const FIELDS: [&str; 7] = [
    "user_id",
    "username",
    "name",
    "email",
    "groups",
    "roles",
    "token_name",
];

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
            optional: DEFAULT_OPTIONAL.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

impl ClaimMapping {
    /// Why this mapping cannot be used (an unknown or an unskippable name in `optional`).
    pub fn problem(&self) -> Option<String> {
        if let Some(unknown) = self.optional.iter().find(|f| !FIELDS.contains(&f.as_str())) {
            return Some(format!(
                "claims.optional: {unknown:?} is not a mapped field (one of {})",
                FIELDS[1..].join(", ")
            ));
        }
        if self.optional.iter().any(|f| f == "user_id") {
            return Some(
                "claims.optional: user_id is always required (it is who the caller is)".into(),
            );
        }
        if self.user_id.is_empty() {
            return Some("claims.user_id: name the claim holding the user's id (sub)".into());
        }
        None
    }

    /// Whether a token must carry the claim of `field`, mapped at `path`.
    fn requires(&self, field: &str, path: &str) -> bool {
        !path.is_empty() && !self.optional.iter().any(|f| f == field)
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

/// A list claim, accepting a single string too (some providers flatten one-element lists);
/// `None` when no source has it.
fn list_at(sources: &[&Claims], path: &str) -> Option<Vec<String>> {
    sources.iter().find_map(|c| match lookup(c, path)? {
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
}

/// Maps claims into a user. `sources` are tried in order per field (e.g. ID token first,
/// then access token, because Keycloak puts roles only into the access token by default).
/// A required claim that no source carries (with a usable type) refuses the token.
pub fn map_user(mapping: &ClaimMapping, sources: &[&Claims]) -> Result<User, TokenError> {
    let missing = |path: &str| TokenError::MissingRequiredClaim(path.to_owned());
    let string = |field: &str, path: &str| match string_at(sources, path) {
        None if mapping.requires(field, path) => Err(missing(path)),
        found => Ok(found),
    };
    let list = |field: &str, path: &str| match list_at(sources, path) {
        None if mapping.requires(field, path) => Err(missing(path)),
        found => Ok(found.unwrap_or_default()),
    };
    let id = match string_at(sources, &mapping.user_id) {
        Some(id) if !id.is_empty() => id,
        _ => return Err(missing(&mapping.user_id)),
    };
    // The token name is read on its own (see `Principal::from_token`); it is checked here so
    // every mapped claim is required alike.
    string("token_name", &mapping.token_name)?;
    Ok(User {
        id,
        username: string("username", &mapping.username)?,
        name: string("name", &mapping.name)?,
        email: string("email", &mapping.email)?,
        groups: list("groups", &mapping.groups)?,
        roles: list("roles", &mapping.roles)?,
    })
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
        let user = map_user(&ClaimMapping::default(), &[&claims]).unwrap();
        assert_eq!(user.id, "u1");
        assert_eq!(user.username.as_deref(), Some("alice"));
        assert_eq!(user.roles, vec!["admin", "user"]);
        assert_eq!(user.groups, vec!["admins"]);
    }

    #[test]
    fn later_sources_fill_what_earlier_ones_lack() {
        let id = claims(json!({"sub": "u1", "name": "Alice"}));
        let at = claims(json!({"sub": "other", "preferred_username": "alice",
                               "realm_access": {"roles": ["r"]}}));
        let user = map_user(&ClaimMapping::default(), &[&id, &at]).unwrap();
        assert_eq!(user.id, "u1");
        assert_eq!(user.roles, vec!["r"]);
    }

    #[test]
    fn a_mapped_claim_is_required_unless_marked_optional() {
        let mapping = ClaimMapping::default();
        // No `preferred_username`: refused, not a user named by `sub` alone.
        let no_username = claims(json!({"sub": "u1", "email": "a@example.org"}));
        assert!(matches!(
            map_user(&mapping, &[&no_username]),
            Err(TokenError::MissingRequiredClaim(c)) if c == "preferred_username"
        ));
        // A username of the wrong type is no username either.
        let number = claims(json!({"sub": "u1", "preferred_username": 7}));
        assert!(map_user(&mapping, &[&number]).is_err());
        // No `sub`, or an empty one: refused whatever `optional` says.
        for c in [
            json!({"preferred_username": "a"}),
            json!({"sub": "", "preferred_username": "a"}),
        ] {
            assert!(matches!(
                map_user(&mapping, &[&claims(c)]),
                Err(TokenError::MissingRequiredClaim(c)) if c == "sub"
            ));
        }
        // Name, email, groups, roles and the token name may be absent by default.
        let user = map_user(
            &mapping,
            &[&claims(json!({"sub": "u1", "preferred_username": "a"}))],
        )
        .unwrap();
        assert_eq!((user.email, user.groups), (None, Vec::<String>::new()));
        // Marking `username` optional lets it be absent; leaving `email` out requires it.
        let custom = ClaimMapping {
            optional: vec![
                "username".into(),
                "name".into(),
                "groups".into(),
                "roles".into(),
                "token_name".into(),
            ],
            ..ClaimMapping::default()
        };
        assert!(matches!(
            map_user(&custom, &[&no_username]).map(|u| u.username),
            Ok(None)
        ));
        let no_email = claims(json!({"sub": "u1"}));
        assert!(matches!(
            map_user(&custom, &[&no_email]),
            Err(TokenError::MissingRequiredClaim(c)) if c == "email"
        ));
    }

    #[test]
    fn only_mapped_fields_other_than_the_id_may_be_optional() {
        assert_eq!(ClaimMapping::default().problem(), None);
        for bad in ["user_id", "mail", ""] {
            let m = ClaimMapping {
                optional: vec![bad.into()],
                ..ClaimMapping::default()
            };
            assert!(m.problem().is_some(), "{bad:?}");
        }
    }

    #[test]
    fn a_claim_name_containing_dots_is_found_whole() {
        let c = claims(json!({"https://example.org/roles": ["x"]}));
        assert!(lookup(&c, "https://example.org/roles").is_some());
    }
}
