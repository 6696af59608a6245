//! Settings of the bridge as a token issuer (`[authority]`) and its token profiles
//! (`[[token_profiles]]`): tokens shaped for one API, with claims filled from the principal.
//!
//! A profile's claims are a template checked at startup: `{username}`, `{user_id}`, `{email}`,
//! `{name}` inside strings, and `"{groups}"` / `"{roles}"` as a whole string (or list element)
//! for the principal's lists. Rules (`[[token_profiles.when]]`) override claims for members of
//! a group or holders of a role: privacyIDEA's admins get `role = "admin"` and an empty realm.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::session::User;

use super::crypto::SigningAlg;

/// `[authority]`: present when the bridge issues tokens (token profiles, service users).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthoritySettings {
    /// `iss` of the tokens the bridge mints. Default: the public URL's origin.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Algorithm of new signing keys and service-user tokens, and the profiles' default:
    /// ES256, RS256, PS256 or EdDSA.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// File holding the key-encryption key (32 random bytes, base64; `openssl rand -base64
    /// 32`). Private signing keys are stored encrypted under it.
    #[serde(default)]
    #[cfg_attr(test, schemars(extend("format" = "path")))]
    pub key_encryption_key_file: Option<PathBuf>,
    /// ... or the name of an environment variable holding it.
    #[serde(default)]
    pub key_encryption_key_env: Option<String>,
    /// Create `key_encryption_key_file` (32 random bytes, mode 0600) when it does not exist:
    /// for a single bridge whose key lives beside its state (the Debian package sets it). Off
    /// by default: where the file is a mounted secret, a missing one must stop the start rather
    /// than be replaced by a new key that cannot open the keys already stored.
    #[serde(default)]
    pub create_key_encryption_key: bool,
    /// Lifetime of access tokens issued to service users.
    #[serde(default = "default_service_lifetime")]
    pub service_token_lifetime_secs: u64,
    /// How often the bridge re-reads its keys from the store, to pick up `keys rotate` (and,
    /// with a shared store, other replicas' keys).
    #[serde(default = "default_reload")]
    pub key_reload_secs: u64,
    /// How often the bridge re-reads which service users are disabled or expire: their
    /// tokens stop at `/api` and the upstreams within this many seconds, on every replica.
    #[serde(default = "default_service_user_reload")]
    pub service_user_reload_secs: u64,
    /// Clock skew allowed: on service users' assertions (`nbf`, `iat` in the future, `exp`)
    /// and on the bridge's own tokens at its API. A retired key stays published this much
    /// longer than the last token it signed.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_algorithm() -> String {
    "ES256".into()
}
fn default_service_lifetime() -> u64 {
    600
}
fn default_reload() -> u64 {
    10
}
fn default_service_user_reload() -> u64 {
    2
}
fn default_leeway() -> u64 {
    30
}

/// One `[[token_profiles]]` entry: minted for the signed-in caller from a claims template. The bridge sets `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`,
/// `jti` (and `cnf` with DPoP) itself.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenProfileSettings {
    /// The profile's name, as `session.token_profile` and `token = "profile:<name>"` use it.
    pub name: String,
    /// Lifetime of the minted tokens (1 to 86400).
    #[serde(default = "default_lifetime")]
    pub lifetime_secs: u64,
    /// Default: `authority.algorithm`.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// `aud` of the tokens; empty means no `aud` claim at all (privacyIDEA refuses any).
    #[serde(default)]
    pub audience: Vec<String>,
    /// How the token travels to the API: the header name ...
    #[serde(default = "default_header")]
    pub header: String,
    /// ... and the scheme before it (`Bearer`); empty for the bare token.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// The claims template: values are copied, with the placeholders `{username}`,
    /// `{user_id}`, `{email}`, `{name}` inside strings, and `"{groups}"` or `"{roles}"` as a
    /// whole value for the lists (`claims = { role = "user", username = "{username}" }`).
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Claims that replace the template's for some principals; the first match wins.
    #[serde(default)]
    pub when: Vec<ProfileRuleSettings>,
}

fn default_lifetime() -> u64 {
    300
}
fn default_header() -> String {
    "authorization".into()
}
fn default_scheme() -> String {
    "Bearer".into()
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
/// One `[[token_profiles.when]]` rule.
pub struct ProfileRuleSettings {
    /// Applies to members of this group ...
    #[serde(default)]
    pub group: Option<String>,
    /// ... and/or holders of this role.
    #[serde(default)]
    pub role: Option<String>,
    /// Claims that replace the template's (same placeholders).
    pub claims: Map<String, Value>,
}

/// A checked profile, ready to mint.
#[derive(Clone, Debug)]
pub struct TokenProfile {
    pub name: String,
    pub lifetime_secs: i64,
    pub alg: SigningAlg,
    pub audience: Vec<String>,
    pub header: String,
    pub scheme: String,
    claims: Map<String, Value>,
    rules: Vec<ProfileRuleSettings>,
}

/// Claims the bridge sets itself on minted tokens (`cnf`: the DPoP key a token is bound to).
pub const RESERVED_CLAIMS: [&str; 8] = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "cnf"];
const PLACEHOLDERS: [&str; 4] = ["username", "user_id", "email", "name"];
const LIST_PLACEHOLDERS: [&str; 2] = ["groups", "roles"];

impl TokenProfile {
    /// Checks one entry; every problem names the setting.
    pub fn compile(s: &TokenProfileSettings, default_alg: SigningAlg) -> Result<Self, Vec<String>> {
        let at = |m: String| format!("token_profiles[{}]: {m}", s.name);
        let mut problems = Vec::new();
        if s.name.is_empty() {
            problems.push("token_profiles: a profile has no name".to_string());
        }
        let alg = match &s.algorithm {
            None => default_alg,
            Some(a) => SigningAlg::parse(a).unwrap_or_else(|| {
                problems.push(at(format!(
                    "algorithm {a:?} is not one of ES256, RS256, PS256, EdDSA"
                )));
                default_alg
            }),
        };
        if s.lifetime_secs == 0 || s.lifetime_secs > 86_400 {
            problems.push(at("lifetime_secs must be between 1 and 86400".into()));
        }
        if axum::http::HeaderName::from_bytes(s.header.as_bytes()).is_err() {
            problems.push(at(format!("header {:?} is not a header name", s.header)));
        }
        check_template(&s.claims, &mut |m| {
            problems.push(at(format!("claims: {m}")))
        });
        for (i, rule) in s.when.iter().enumerate() {
            if rule.group.is_none() && rule.role.is_none() {
                problems.push(at(format!("when[{i}]: name a group or a role")));
            }
            check_template(&rule.claims, &mut |m| {
                problems.push(at(format!("when[{i}].claims: {m}")))
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            name: s.name.clone(),
            lifetime_secs: s.lifetime_secs as i64,
            alg,
            audience: s.audience.clone(),
            header: s.header.clone(),
            scheme: s.scheme.clone(),
            claims: s.claims.clone(),
            rules: s.when.clone(),
        })
    }

    /// The profile's claims for `user` (without the reserved ones). Identity claims the
    /// template does not set itself (`preferred_username`, `groups`, `roles`) are added, so the
    /// bridge's own policies work on its tokens as on any other.
    pub fn claims_for(&self, user: &User) -> Map<String, Value> {
        let mut out = Map::new();
        render_into(&self.claims, user, &mut out);
        if let Some(rule) = self.rules.iter().find(|r| {
            r.group.as_ref().is_none_or(|g| user.groups.contains(g))
                && r.role.as_ref().is_none_or(|x| user.roles.contains(x))
        }) {
            render_into(&rule.claims, user, &mut out);
        }
        if let Some(username) = &user.username {
            out.entry("preferred_username")
                .or_insert_with(|| Value::String(username.clone()));
        }
        out.entry("groups").or_insert_with(|| strings(&user.groups));
        out.entry("roles").or_insert_with(|| strings(&user.roles));
        out
    }
}

fn strings(list: &[String]) -> Value {
    Value::Array(list.iter().cloned().map(Value::String).collect())
}

/// The placeholders of one string: `{name}` pieces; `{{` and `}}` are literal braces.
fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        let after = &rest[i + 1..];
        if rest[i..].starts_with("{{") || rest[i..].starts_with("}}") {
            rest = &rest[i + 2..];
            continue;
        }
        if rest[i..].starts_with('}') {
            return Err(format!(
                "{text:?}: unmatched '}}' (write '}}}}' for a brace)"
            ));
        }
        let Some(end) = after.find('}') else {
            return Err(format!(
                "{text:?}: unclosed '{{' (write '{{{{' for a brace)"
            ));
        };
        found.push(&after[..end]);
        rest = &after[end + 1..];
    }
    Ok(found)
}

fn check_template(claims: &Map<String, Value>, report: &mut dyn FnMut(String)) {
    for (name, value) in claims {
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            report(format!(
                "{name:?} is set by the bridge and cannot be templated"
            ));
        }
        check_value(name, value, report);
    }
}

fn check_value(name: &str, value: &Value, report: &mut dyn FnMut(String)) {
    match value {
        Value::String(text) => match placeholders(text) {
            Err(e) => report(format!("{name}: {e}")),
            Ok(found) => {
                for p in found {
                    let whole_list = LIST_PLACEHOLDERS.contains(&p) && text == &format!("{{{p}}}");
                    if LIST_PLACEHOLDERS.contains(&p) && !whole_list {
                        report(format!(
                            "{name}: {{{p}}} is a list; use it as the whole value \"{{{p}}}\""
                        ));
                    } else if !PLACEHOLDERS.contains(&p) && !whole_list {
                        report(format!(
                            "{name}: unknown placeholder {{{p}}} (known: {{username}}, \
                             {{user_id}}, {{email}}, {{name}}, {{groups}}, {{roles}})"
                        ));
                    }
                }
            }
        },
        Value::Array(items) => items.iter().for_each(|v| check_value(name, v, report)),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| check_value(&format!("{name}.{k}"), v, report)),
        _ => {}
    }
}

fn render_into(template: &Map<String, Value>, user: &User, out: &mut Map<String, Value>) {
    for (name, value) in template {
        match render(value, user) {
            Some(v) => {
                out.insert(name.clone(), v);
            }
            None => {
                out.remove(name);
            }
        }
    }
}

/// A template value filled in; `None` when it names something the principal does not have
/// (the claim is left out: a missing claim is not an empty one).
fn render(value: &Value, user: &User) -> Option<Value> {
    match value {
        Value::String(text) => match text.as_str() {
            "{groups}" => Some(strings(&user.groups)),
            "{roles}" => Some(strings(&user.roles)),
            _ => fill(text, user).map(Value::String),
        },
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match render(item, user) {
                    Some(Value::Array(list)) if item.is_string() => out.extend(list),
                    Some(v) => out.push(v),
                    None => {}
                }
            }
            Some(Value::Array(out))
        }
        Value::Object(map) => {
            let mut out = Map::new();
            render_into(map, user, &mut out);
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

fn fill(text: &str, user: &User) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with("{{") || rest[i..].starts_with("}}") {
            out.push_str(&rest[i..i + 1]);
            rest = &rest[i + 2..];
            continue;
        }
        let after = &rest[i + 1..];
        let end = after.find('}')?;
        let value = match &after[..end] {
            "username" => user.username.as_deref(),
            "user_id" => Some(user.id.as_str()),
            "email" => user.email.as_deref(),
            "name" => user.name.as_deref(),
            _ => None,
        }?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(claims: Value, when: Value) -> TokenProfileSettings {
        let v = json!({"name": "pi", "claims": claims, "when": when});
        match serde_json::from_value(v) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn user(groups: &[&str]) -> User {
        User {
            id: "u-1".into(),
            username: Some("alice".into()),
            name: None,
            email: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            roles: vec!["user".into()],
        }
    }

    fn privacyidea() -> TokenProfile {
        let s = settings(
            json!({"username": "{username}", "realm": "defrealm", "resolver": "deflocal", "role": "user"}),
            json!([{"group": "pi-admins", "claims": {"role": "admin", "realm": "", "resolver": ""}}]),
        );
        match TokenProfile::compile(&s, SigningAlg::ES256) {
            Ok(p) => p,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_plain_user_gets_the_template_and_an_admin_group_member_the_rule() {
        let p = privacyidea();
        let plain = p.claims_for(&user(&["users"]));
        assert_eq!(plain["username"], "alice");
        assert_eq!(plain["role"], "user");
        assert_eq!(plain["realm"], "defrealm");
        let admin = p.claims_for(&user(&["users", "pi-admins"]));
        assert_eq!(admin["role"], "admin");
        assert_eq!(admin["realm"], "");
        assert_eq!(admin["resolver"], "");
        assert_eq!(admin["username"], "alice");
        assert_eq!(admin["groups"], json!(["users", "pi-admins"]));
    }

    #[test]
    fn unknown_placeholders_reserved_claims_and_rules_without_a_condition_are_refused() {
        let s = settings(
            json!({"username": "{login}", "iss": "x", "g": "prefix-{groups}", "ok": "{{literal}}"}),
            json!([{"claims": {"role": "admin"}}]),
        );
        let Err(problems) = TokenProfile::compile(&s, SigningAlg::ES256) else {
            panic!("expected problems");
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("{login}")));
        assert!(problems.iter().any(|p| p.contains("\"iss\"")));
        assert!(problems.iter().any(|p| p.contains("is a list")));
        assert!(problems.iter().any(|p| p.contains("when[0]")));
    }

    #[test]
    fn lists_expand_and_missing_values_leave_the_claim_out() {
        let s = settings(
            json!({"mail": "{email}", "teams": ["staff", "{groups}"], "lit": "{{x}}"}),
            json!([]),
        );
        let Ok(p) = TokenProfile::compile(&s, SigningAlg::ES256) else {
            panic!()
        };
        let c = p.claims_for(&user(&["a", "b"]));
        assert!(!c.contains_key("mail"));
        assert_eq!(c["teams"], json!(["staff", "a", "b"]));
        assert_eq!(c["lit"], "{x}");
    }
}
