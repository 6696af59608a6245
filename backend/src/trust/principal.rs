//! The caller as a validated token proves it: who, from which issuer, until when.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use shared::session::User;

use super::{
    claims::{Claims, Value as ClaimValue},
    issuer::TrustedIssuer,
    mapping::{lookup, map_user},
    validate::{TokenError, ValidatedToken},
};

/// The caller, as proven by a validated token. Every way in ends in one of these: the `/api`
/// extractor gets it from the bearer token, a browser session keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Principal {
    pub user: User,
    /// `iss` of the token.
    pub issuer: String,
    /// Name of the trusted issuer that matched (`oidc` for the login provider).
    pub issuer_name: String,
    pub expires_at: i64,
    pub token_fingerprint: String,
    /// Token name (`azp` by default): which client or token this is.
    pub token_name: Option<String>,
    /// Access level from the issuer's `group_levels` (highest of the caller's groups).
    pub access_level: Option<u32>,
    /// The validated claims, for features that read more than the mapped user. Kept in
    /// memory only: a session stores the mapped principal, not the token's claims.
    #[serde(skip)]
    pub claims: TokenClaims,
    /// `cnf.jkt` of the token: the RFC 7638 thumbprint of the key it is bound to (RFC 9449
    /// section 6), if any. Read once when the token is verified and cached with it, so a
    /// cached token's binding costs one comparison. A bound token is accepted only with a
    /// proof by that key (see `auth::principal`). Memory only, as the claims.
    #[serde(skip)]
    pub cnf_jkt: Option<Arc<str>>,
    /// The SHA-256 of the token this principal was proved by ([`token_digest`]), when it came
    /// from one: a bound token's proofs carry its base64url as `ath`, so a cached token's `ath`
    /// check hashes nothing. The verified-token cache is keyed by the token's exact text, so it
    /// is that token's. Memory only, as the claims.
    #[serde(skip)]
    pub token_sha256: Option<[u8; 32]>,
    /// [`Self::api_json`], once written.
    #[serde(skip)]
    pub api_json: ApiJson,
}

/// The memo of [`Principal::api_json`]. A clone starts empty: a cloned principal may be
/// changed (a session's user mapped anew) before it answers.
#[derive(Debug, Default)]
pub struct ApiJson(OnceLock<Bytes>);

impl Clone for ApiJson {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// A token's validated claims, kept compact: their JSON text, parsed by the few features that
/// read them (upstream claim headers, introspection). A parsed map takes several times the
/// memory, and the verified-token cache holds thousands of principals.
#[derive(Clone, Debug, Default)]
pub struct TokenClaims(Arc<str>);

impl TokenClaims {
    pub fn new(claims: &Map<String, Value>) -> Self {
        // A map of JSON values always serializes.
        Self(serde_json::to_string(claims).unwrap_or_default().into())
    }

    /// The claims as a map (empty for a principal that has none, e.g. restored from a session).
    pub fn parse(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// The claims to read (none for a principal that has none, e.g. restored from a session).
    pub fn view(&self) -> Option<Claims> {
        Claims::from_shared(&self.0).ok()
    }

    /// Bytes of the JSON text.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Principal {
    /// The principal a validated token of `issuer` proves; `token_digest` is the SHA-256 of
    /// the whole token (see [`token_digest`]). A token lacking a claim the issuer's mapping
    /// requires proves nobody.
    pub fn from_token(
        issuer: &TrustedIssuer,
        validated: &ValidatedToken,
        token_digest: &[u8; 32],
    ) -> Result<Self, TokenError> {
        let user = map_user(&issuer.claims, &[&validated.claims])?;
        let access_level = user
            .groups
            .iter()
            .filter_map(|g| issuer.policy.group_levels.get(g).copied())
            .max();
        let token_name = lookup(&validated.claims, &issuer.claims.token_name)
            .and_then(ClaimValue::as_str)
            .map(str::to_owned);
        let cnf_jkt = bound_key(&validated.claims)?;
        Ok(Principal {
            user,
            issuer: validated.issuer.clone(),
            issuer_name: issuer.name.clone(),
            expires_at: validated.expires_at,
            token_fingerprint: fingerprint_of(token_digest),
            token_name,
            access_level,
            claims: TokenClaims(validated.claims.text().clone()),
            cnf_jkt,
            token_sha256: Some(*token_digest),
            api_json: ApiJson::default(),
        })
    }

    /// The principal as an API answers "who am I" (`shared::api::Me` as JSON), written on
    /// first use and kept: a cached token's principal answers every call of its holder, and
    /// writing the same JSON again on each was a fifth of a cached call's own work
    /// (bench/instructions-per-request.sh).
    pub fn api_json(&self) -> Bytes {
        self.api_json
            .0
            .get_or_init(|| {
                let me = MeView {
                    user: &self.user,
                    issuer: &self.issuer,
                    expires_at: self.expires_at,
                    token_fingerprint: &self.token_fingerprint,
                };
                // Strings and numbers always serialize.
                Bytes::from(serde_json::to_vec(&me).unwrap_or_default())
            })
            .clone()
    }
}

/// The thumbprint a token is bound to: `cnf.jkt` (RFC 9449 section 6.1). A `cnf` that is not an
/// object, or a `jkt` that is not a non-empty string, makes the token malformed: never read as
/// unbound. A `cnf` without `jkt` names another confirmation method, which the bridge does not
/// check (the token is treated as unbound, as before).
fn bound_key(claims: &super::claims::Claims) -> Result<Option<Arc<str>>, TokenError> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(None);
    };
    let Some(cnf) = cnf.as_object() else {
        return Err(TokenError::InvalidClaim("cnf"));
    };
    match cnf.get("jkt") {
        None => Ok(None),
        Some(jkt) => match jkt.as_str() {
            Some(jkt) if !jkt.is_empty() => Ok(Some(Arc::from(jkt))),
            _ => Err(TokenError::InvalidClaim("cnf.jkt")),
        },
    }
}

/// The wire form of `shared::api::Me`, borrowed from the principal (same JSON).
#[derive(Serialize)]
struct MeView<'a> {
    user: &'a User,
    issuer: &'a str,
    expires_at: i64,
    token_fingerprint: &'a str,
}

impl Principal {
    /// Heap bytes this principal holds, roughly (what the verified-token cache weighs).
    pub fn heap_bytes(&self) -> usize {
        // Each allocation: its bytes plus an allocator's word or two.
        let s = |v: &str| v.len() + 16;
        let o = |v: &Option<String>| v.as_deref().map_or(0, s);
        let u = &self.user;
        s(&u.id)
            + o(&u.username)
            + o(&u.name)
            + o(&u.email)
            + u.groups.iter().map(|g| s(g) + 24).sum::<usize>()
            + u.roles.iter().map(|r| s(r) + 24).sum::<usize>()
            + s(&self.issuer)
            + s(&self.issuer_name)
            + s(&self.token_fingerprint)
            + o(&self.token_name)
            + self.cnf_jkt.as_deref().map_or(0, s)
            + self.claims.len()
            + 32
            + self.api_json_bytes()
    }

    /// What [`Self::api_json`] holds or will: about the user's text again, with the JSON's
    /// names and quotes.
    fn api_json_bytes(&self) -> usize {
        let u = &self.user;
        let text = |v: &str| v.len() + 8;
        let opt = |v: &Option<String>| v.as_deref().map_or(8, text);
        128 + text(&u.id)
            + opt(&u.username)
            + opt(&u.name)
            + opt(&u.email)
            + u.groups.iter().map(|g| text(g)).sum::<usize>()
            + u.roles.iter().map(|r| text(r)).sum::<usize>()
            + text(&self.issuer)
            + text(&self.token_fingerprint)
    }
}

/// SHA-256 of a whole token: the verified-token cache's key, and its fingerprint's source.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// First 16 hex digits of SHA-256 over a token: safe to show and log, useless to replay.
pub fn fingerprint(token: &str) -> String {
    fingerprint_of(&token_digest(token))
}

/// [`fingerprint`] of a token whose [`token_digest`] is known.
pub fn fingerprint_of(digest: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for b in &digest[..8] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_kept_as_text_read_back_as_they_were_validated() {
        let Value::Object(claims) = serde_json::json!({
            "sub": "alice", "aud": ["a", "b"], "exp": 1_795_458_432_i64,
            "realm_access": {"roles": ["admin"]}, "name": "Ålice \"A\"",
        }) else {
            unreachable!()
        };
        let kept = TokenClaims::new(&claims);
        assert_eq!(kept.parse(), claims);
        assert!(kept.len() < 120, "compact JSON text: {} bytes", kept.len());
        assert!(TokenClaims::default().parse().is_empty());
    }

    #[test]
    fn a_fingerprint_is_the_first_16_hex_digits_of_the_tokens_sha256() {
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
        assert_eq!(fingerprint_of(&token_digest("abc")), "ba7816bf8f01cfea");
    }

    fn alice() -> Principal {
        Principal {
            user: User {
                id: "7f6a".into(),
                username: Some("alice".into()),
                groups: vec!["admins".into()],
                roles: vec!["admin".into(), "user".into()],
                ..User::default()
            },
            issuer: "https://idp.example".into(),
            issuer_name: "oidc".into(),
            expires_at: 1_795_458_432,
            token_fingerprint: "f34046497fcd273f".into(),
            token_name: None,
            access_level: None,
            claims: TokenClaims::default(),
            cnf_jkt: None,
            token_sha256: None,
            api_json: ApiJson::default(),
        }
    }

    #[test]
    fn the_api_json_is_the_wire_form_of_me_and_a_changed_clone_writes_its_own() {
        let p = alice();
        let me = |p: &Principal| -> shared::api::Me {
            serde_json::from_slice(&p.api_json()).unwrap_or_else(|e| panic!("{e}"))
        };
        let expected = shared::api::Me {
            user: p.user.clone(),
            issuer: p.issuer.clone(),
            expires_at: p.expires_at,
            token_fingerprint: p.token_fingerprint.clone(),
        };
        assert_eq!(me(&p), expected);
        assert_eq!(p.api_json(), p.api_json(), "written once, kept");
        assert!(p.heap_bytes() >= p.api_json().len() + p.user.id.len());

        let mut session = p.clone();
        session.user.username = Some("alice@local".into());
        assert_eq!(me(&session).user.username.as_deref(), Some("alice@local"));
        assert_eq!(me(&p).user.username.as_deref(), Some("alice"));
    }

    #[test]
    fn a_tokens_binding_is_its_cnf_jkt_and_a_malformed_cnf_binds_nothing_silently() {
        let bound = |json: &str| {
            let claims = super::super::claims::Claims::parse(json.to_string())
                .unwrap_or_else(|e| panic!("{e}"));
            bound_key(&claims).map(|k| k.map(|k| k.to_string()))
        };
        assert_eq!(bound(r#"{"sub":"a"}"#), Ok(None));
        assert_eq!(
            bound(r#"{"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}"#),
            Ok(Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()))
        );
        // Another confirmation method: not the bridge's to check.
        assert_eq!(bound(r#"{"cnf":{"x5t#S256":"abc"}}"#), Ok(None));
        for malformed in [
            r#"{"cnf":"jkt"}"#,
            r#"{"cnf":{"jkt":5}}"#,
            r#"{"cnf":{"jkt":""}}"#,
            r#"{"cnf":{"jkt":null}}"#,
        ] {
            assert!(bound(malformed).is_err(), "{malformed}");
        }
    }
}
