//! `POST /oauth/token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//! (RFC 7523 section 2.1): a service user signs an assertion with its own key and gets an
//! access token.
//!
//! Checks (RFC 7523 section 3), by the trust engine's rules for every JWT (header, claim
//! types, time with the leeway; see [`crate::trust::validate`]) plus this endpoint's own:
//! `kid` names a key of the user in `iss`; `iss` = `sub` = that user; `aud` is the bridge's
//! issuer or token endpoint; `exp` required and at most an hour ahead; `iat` required, neither
//! in the future nor older than an hour; `nbf`; the algorithm the key was registered for and
//! no other (never HS* or `none`). An assertion is used once: its `jti` when it has one (RFC
//! 7523 makes `jti` optional, and ZITADEL's documented client sends none), else the digest of
//! its signed part, is recorded until its `exp`, in the store the replicas share. Every
//! failure answers the same `invalid_grant`: which check failed goes to the log (never the
//! assertion itself), not to the caller.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, jwk::KeyAlgorithm};
use serde_json::{Value, json};
use sha2::Digest;

use super::{
    crypto::SigningAlg,
    keyring::Authority,
    store::{ServiceKey, ServiceUser},
};
use crate::{
    clock::now,
    error::AppError,
    extract::Form,
    trust::{
        claims::Claims,
        jwks::{KeySet, VerificationKey},
        validate::{Expectations, Keys, TokenKind, header_kid, numeric_claim, validate_steps_for},
    },
};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How far ahead `exp` may be, and how old `iat` may be.
pub const MAX_ASSERTION_AGE_SECS: i64 = 3600;

/// The token endpoint's answers (RFC 6749 section 5), always `Cache-Control: no-store`.
fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    answer(
        status,
        json!({"error": code, "error_description": description}),
    )
}

/// The one answer for every refused assertion.
fn invalid_grant(reason: &str) -> Response {
    tracing::info!(%reason, "service-user assertion refused");
    error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the assertion is not valid",
    )
}

/// The form of a token request (RFC 6749 section 4.1.3 and RFC 7523 section 2.1): a
/// parameter given twice is refused by the extractor, as RFC 6749 section 3.2 asks.
#[derive(serde::Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
    scope: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn token(
    State(authority): State<Arc<Authority>>,
    form: Result<Form<TokenForm>, AppError>,
) -> Response {
    let TokenForm {
        grant_type,
        assertion,
        scope,
    } = match form {
        Ok(Form(form)) => form,
        // The bridge's JSON error, which is RFC 6749's `invalid_request` shape; `no-store`.
        Err(e) => return e.into_response(),
    };
    match grant_type.as_deref() {
        Some(JWT_BEARER) => {}
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only urn:ietf:params:oauth:grant-type:jwt-bearer is supported",
            );
        }
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            );
        }
    }
    let Some(assertion) = assertion.filter(|a| !a.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "assertion is missing",
        );
    };
    let (user, claims) = match check_assertion(&authority, &assertion).await {
        Ok(ok) => ok,
        Err(Refused::Grant(reason)) => return invalid_grant(&reason),
        Err(Refused::Store(e)) => {
            tracing::error!(error = %e, "token endpoint: store unavailable");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again shortly",
            );
        }
    };
    let granted = grant_scope(scope.as_deref().unwrap_or(""), &user);
    match authority.mint_service(&user, &granted) {
        Ok(minted) => {
            let jti = claims.str("jti").unwrap_or_default();
            tracing::info!(user = %user.id, %jti, "service-user token issued");
            let mut body = json!({
                "access_token": minted.token,
                "token_type": "Bearer",
                "expires_in": minted.expires_at - now(),
            });
            if !granted.is_empty() {
                body["scope"] = Value::String(granted);
            }
            answer(StatusCode::OK, body)
        }
        Err(e) => {
            tracing::error!(error = %e, "token endpoint: minting failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }
}

/// The requested scopes the user holds (its permissions); others are dropped (RFC 6749
/// section 3.3 lets the server grant less than asked).
fn grant_scope(requested: &str, user: &ServiceUser) -> String {
    requested
        .split(' ')
        .filter(|s| user.permissions.iter().any(|p| p == s))
        .collect::<Vec<_>>()
        .join(" ")
}

enum Refused {
    Grant(String),
    Store(String),
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Refused> {
    Err(Refused::Grant(reason.into()))
}

async fn check_assertion(
    authority: &Authority,
    assertion: &str,
) -> Result<(ServiceUser, Claims), Refused> {
    // The header passes the trust engine's header rules (no embedded or remote keys, no
    // `crit`, `kid` a string, a supported asymmetric `alg`) before its `kid` picks the key.
    let kid = match header_kid(assertion, &ASSERTION_ALGORITHMS) {
        Ok(Some(kid)) => kid,
        Ok(None) => return refuse("no kid in the header"),
        Err(e) => return refuse(e.to_string()),
    };
    let found = authority
        .store
        .key_with_user(&kid)
        .await
        .map_err(|e| Refused::Store(e.to_string()))?;
    let Some((key, user)) = found else {
        return refuse("unknown kid");
    };
    let Some(key_alg) = SigningAlg::parse(&key.alg) else {
        return refuse("stored key of unknown algorithm");
    };
    let Some(keys) = key_set(&key, key_alg) else {
        return refuse("stored public key unusable");
    };
    let audiences = [authority.issuer.as_str(), authority.token_endpoint.as_str()];
    // The trust engine's rules, the same code as for every other token: the key's own
    // algorithm only (an RSA key registered for RS256 checks no PS256 signature), claim types
    // (`iss`, `sub` strings; `exp`, `nbf`, `iat` numbers; `aud` a string or strings), `exp`,
    // `nbf` and `iat` with the leeway, `iss` = `sub` = the key's user, `aud` the bridge.
    let expect = Expectations {
        issuer: &user.id,
        algorithms: &[key_alg.jwt()],
        leeway_secs: u64::try_from(authority.leeway).unwrap_or(0),
        kind: TokenKind::Assertion {
            subject: &user.id,
            audiences: &audiences,
        },
        required_typ: None,
        required_claims: &[],
    };
    let claims = match validate_steps_for(assertion, Keys::Static(&keys), &expect, None).await {
        Ok(valid) => valid.claims,
        Err(e) => return refuse(e.to_string()),
    };
    let now = now();
    let time = |name| numeric_claim(&claims, name).ok().flatten();
    let (Some(exp), Some(iat)) = (time("exp"), time("iat")) else {
        return refuse("exp and iat are required");
    };
    let leeway = authority.leeway;
    if exp - now > MAX_ASSERTION_AGE_SECS {
        return refuse("exp is more than an hour ahead");
    }
    if now - iat > MAX_ASSERTION_AGE_SECS {
        return refuse("iat is more than an hour old");
    }
    let once = replay_id(assertion, claims.str("jti"));
    // Recorded only if the key is still the user's and the user still enabled: checked in
    // the same statement, so a `service-user disable` elsewhere counts from the next assertion.
    let first = authority
        .store
        .first_use(&user.id, &key.key_id, &once, exp + leeway, now)
        .await
        .map_err(|e| Refused::Store(e.to_string()))?;
    if !first {
        return refuse(
            "assertion replayed, or the user is disabled or expired, or the key was removed",
        );
    }
    Ok((user, claims))
}

/// Algorithms a service user's key can be registered for; which one a key allows is its own.
const ASSERTION_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

/// What an assertion is recorded under until its `exp`, so it is used once: its `jti`, or,
/// without one (ZITADEL's documented client sends none), the SHA-256 of the assertion's signed
/// part, `header.payload`. The signature is left out: an ECDSA signature `(r, s)` has a twin
/// `(r, n - s)` that verifies as well, so a copy with the twin would otherwise count as new.
/// Both live in the user's own namespace (the store keys records by user), so a `jti` that
/// happens to look like a digest can only ever collide with the same user's assertions.
fn replay_id(assertion: &str, jti: Option<&str>) -> String {
    match jti {
        Some(jti) => jti.to_owned(),
        None => {
            let signed = assertion.rsplit_once('.').map_or(assertion, |(m, _)| m);
            let digest = sha2::Sha256::digest(signed.as_bytes());
            format!("sha256:{}", URL_SAFE_NO_PAD.encode(digest))
        }
    }
}

/// The one key an assertion may verify with: the user's key, pinned to its own algorithm.
fn key_set(key: &ServiceKey, alg: SigningAlg) -> Option<KeySet> {
    let pem = key.public_pem.as_bytes();
    let (decoding, pinned) = match alg {
        SigningAlg::ES256 => (DecodingKey::from_ec_pem(pem), KeyAlgorithm::ES256),
        SigningAlg::EdDSA => (DecodingKey::from_ed_pem(pem), KeyAlgorithm::EdDSA),
        SigningAlg::RS256 => (DecodingKey::from_rsa_pem(pem), KeyAlgorithm::RS256),
        SigningAlg::PS256 => (DecodingKey::from_rsa_pem(pem), KeyAlgorithm::PS256),
    };
    let decoding = decoding.ok()?;
    Some(KeySet::from_keys(vec![VerificationKey::new(
        Some(key.key_id.clone()),
        Some(pinned),
        decoding,
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertion_without_jti_is_recorded_by_its_signed_part_whatever_its_signature() {
        // Two signatures of one header and payload (an ECDSA twin, a second signing): one use.
        assert_eq!(replay_id("h.p.sig1", None), replay_id("h.p.sig2", None));
        assert_ne!(replay_id("h.p.sig1", None), replay_id("h.q.sig1", None));
        assert!(replay_id("h.p.s", None).starts_with("sha256:"));
        // A jti, when there is one, is what is recorded, as before.
        assert_eq!(replay_id("h.p.s", Some("j-1")), "j-1");
    }
}
