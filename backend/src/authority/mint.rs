//! Minting: a token shaped by a profile for a signed-in principal, or a service user's access
//! token. Signed with the current key of the token's algorithm; `jti` unique per token.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Map, Value};
use shared::session::User;

use super::{
    crypto::{CryptoError, SigningAlg},
    keyring::{Authority, AuthorityError},
    profile::TokenProfile,
    store::ServiceUser,
};
use crate::clock::now;

/// A minted token and when it expires.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Minted {
    pub token: String,
    pub expires_at: i64,
    /// The profile that shaped it.
    pub profile: String,
    /// The RFC 7638 thumbprint of the key it is bound to (its `cnf.jkt`, RFC 9449), if any:
    /// a session hands out its cached token only to proofs of that same key.
    #[serde(default)]
    pub jkt: Option<String>,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("profile", &self.profile)
            .field("expires_at", &self.expires_at)
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

impl Minted {
    /// Whether it is still good to hand out: more than a third of its lifetime left.
    pub fn fresh(&self, lifetime: i64, now: i64) -> bool {
        self.expires_at - now > lifetime / 3
    }
}

/// A random token id (128 bits).
pub fn random_id() -> Result<String, CryptoError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CryptoError::Generate)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl Authority {
    /// A token of `profile` for `user`; with `jkt`, bound to that key (RFC 9449 section 6:
    /// `cnf: {"jkt": …}`), so it is accepted only with a proof the key signed.
    pub fn mint_profile(
        &self,
        profile: &TokenProfile,
        user: &User,
        jkt: Option<&str>,
    ) -> Result<Minted, AuthorityError> {
        let mut claims = profile.claims_for(user);
        // After the template, so no profile can name a key of its own (`cnf` is reserved too).
        claims.remove("cnf");
        if let Some(jkt) = jkt {
            let mut cnf = Map::new();
            cnf.insert("jkt".into(), Value::String(jkt.into()));
            claims.insert("cnf".into(), Value::Object(cnf));
        }
        let expires_at = self.stamp(
            &mut claims,
            &user.id,
            &profile.audience,
            profile.lifetime_secs,
        )?;
        let token = self.sign(profile.alg, &claims)?;
        Ok(Minted {
            token,
            expires_at,
            profile: profile.name.clone(),
            jkt: jkt.map(str::to_owned),
        })
    }

    /// An access token for a service user, with the scopes granted.
    pub fn mint_service(&self, user: &ServiceUser, scope: &str) -> Result<Minted, AuthorityError> {
        let mut claims = Map::new();
        claims.insert("client_id".into(), Value::String(user.id.clone()));
        claims.insert(
            "preferred_username".into(),
            Value::String(user.name.clone()),
        );
        claims.insert("groups".into(), strings(&user.groups));
        claims.insert("roles".into(), strings(&user.roles));
        if !scope.is_empty() {
            claims.insert("scope".into(), Value::String(scope.into()));
        }
        let expires_at = self.stamp(&mut claims, &user.id, &[], self.service_token_lifetime)?;
        let token = self.sign(self.default_alg, &claims)?;
        Ok(Minted {
            token,
            expires_at,
            profile: "service".into(),
            jkt: None,
        })
    }

    /// Adds the claims the bridge owns: `iss`, `sub`, `aud` (if any), `iat`, `exp`, `jti`.
    fn stamp(
        &self,
        claims: &mut Map<String, Value>,
        sub: &str,
        audience: &[String],
        lifetime: i64,
    ) -> Result<i64, AuthorityError> {
        let now = now();
        let expires_at = now + lifetime;
        claims.insert("iss".into(), Value::String(self.issuer.clone()));
        claims.insert("sub".into(), Value::String(sub.into()));
        match audience {
            [] => {}
            [one] => {
                claims.insert("aud".into(), Value::String(one.clone()));
            }
            many => {
                claims.insert("aud".into(), strings(many));
            }
        }
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), expires_at.into());
        claims.insert("jti".into(), Value::String(random_id()?));
        Ok(expires_at)
    }

    fn sign(&self, alg: SigningAlg, claims: &Map<String, Value>) -> Result<String, AuthorityError> {
        let ring = self.ring();
        let key = ring.current(alg).ok_or(AuthorityError::NoKey(alg))?;
        Ok(key.sign(claims)?)
    }
}

fn strings(list: &[String]) -> Value {
    Value::Array(list.iter().cloned().map(Value::String).collect())
}
