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
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("profile", &self.profile)
            .field("expires_at", &self.expires_at)
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
    /// A token of `profile` for `user`.
    pub fn mint_profile(
        &self,
        profile: &TokenProfile,
        user: &User,
    ) -> Result<Minted, AuthorityError> {
        let mut claims = profile.claims_for(user);
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
