//! `POST /oauth/token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//! (RFC 7523 section 2.1): a service user signs an assertion with its own key and gets an
//! access token.
//!
//! Checks (RFC 7523 section 3): `kid` names a key of the user in `iss`; `iss` = `sub` = that
//! user; `aud` is the bridge's issuer or token endpoint; `exp` required and at most an hour
//! ahead; `iat` required, neither in the future nor older than an hour; `nbf`; the key's own
//! algorithm family only (never HS* or `none`); `jti` required and never seen before within
//! its lifetime. Every failure answers the same `invalid_grant`: which check failed goes to
//! the log (never the assertion itself), not to the caller.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value, json};

use super::{
    crypto::SigningAlg,
    keyring::Authority,
    store::{ServiceKey, ServiceUser},
};
use crate::clock::now;

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

#[tracing::instrument(skip_all)]
pub async fn token(State(authority): State<Arc<Authority>>, body: Bytes) -> Response {
    let mut grant_type = None;
    let mut assertion = None;
    let mut scope = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        let slot = match k.as_ref() {
            "grant_type" => &mut grant_type,
            "assertion" => &mut assertion,
            "scope" => &mut scope,
            _ => continue,
        };
        if slot.is_some() {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a parameter is repeated",
            );
        }
        *slot = Some(v.into_owned());
    }
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
            let jti = claims
                .get("jti")
                .and_then(|j| j.as_str())
                .unwrap_or_default();
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
) -> Result<(ServiceUser, Map<String, Value>), Refused> {
    // The header is read before the signature is checked: only to pick the key, whose own
    // algorithm family then decides what is allowed.
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return refuse("not a JWS with a known algorithm (alg none is never accepted)");
    };
    let Some(kid) = header.kid.as_deref() else {
        return refuse("no kid in the header");
    };
    let found = authority
        .store
        .key_with_user(kid)
        .await
        .map_err(|e| Refused::Store(e.to_string()))?;
    let Some((key, user)) = found else {
        return refuse("unknown kid");
    };
    let Some(key_alg) = SigningAlg::parse(&key.alg) else {
        return refuse("stored key of unknown algorithm");
    };
    let Some(alg) = key_alg
        .family()
        .iter()
        .find(|a| a.jwt() == header.alg)
        .copied()
    else {
        return refuse(format!(
            "algorithm {:?} does not fit the user's {key_alg} key",
            header.alg
        ));
    };
    let claims = verify_signature(authority, assertion, &key, &user, alg)?;
    let now = now();
    let int = |name: &str| claims.get(name).and_then(Value::as_i64);
    let (Some(exp), Some(iat)) = (int("exp"), int("iat")) else {
        return refuse("exp and iat are required");
    };
    let leeway = authority.leeway;
    if exp - now > MAX_ASSERTION_AGE_SECS {
        return refuse("exp is more than an hour ahead");
    }
    if iat > now + leeway {
        return refuse("iat is in the future");
    }
    if now - iat > MAX_ASSERTION_AGE_SECS {
        return refuse("iat is more than an hour old");
    }
    let Some(jti) = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
    else {
        return refuse("jti is required (1-256 characters)");
    };
    // Recorded only if the key is still the user's and the user still enabled: checked in
    // the same statement, so a `service-user disable` elsewhere counts from the next assertion.
    let first = authority
        .store
        .first_use(&user.id, &key.key_id, jti, exp + leeway, now)
        .await
        .map_err(|e| Refused::Store(e.to_string()))?;
    if !first {
        return refuse("jti replayed, or the user is disabled or expired, or the key was removed");
    }
    Ok((user, claims))
}

/// Signature, `iss`, `sub`, `aud`, `exp`, `nbf` by `jsonwebtoken`, with the user's key.
fn verify_signature(
    authority: &Authority,
    assertion: &str,
    key: &ServiceKey,
    user: &ServiceUser,
    alg: SigningAlg,
) -> Result<Map<String, Value>, Refused> {
    let decoding = match alg {
        SigningAlg::ES256 => DecodingKey::from_ec_pem(key.public_pem.as_bytes()),
        SigningAlg::EdDSA => DecodingKey::from_ed_pem(key.public_pem.as_bytes()),
        SigningAlg::RS256 | SigningAlg::PS256 => {
            DecodingKey::from_rsa_pem(key.public_pem.as_bytes())
        }
    };
    let Ok(decoding) = decoding else {
        return refuse("stored public key unusable");
    };
    let mut validation = Validation::new(alg.jwt());
    validation.leeway = authority.leeway as u64;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[&user.id]);
    validation.sub = Some(user.id.clone());
    validation.set_audience(&[&authority.issuer, &authority.token_endpoint]);
    match jsonwebtoken::decode::<Map<String, Value>>(assertion, &decoding, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => refuse(format!("{:?}", e.kind())),
    }
}
