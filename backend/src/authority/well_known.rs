//! The bridge's public face as an issuer: `GET /.well-known/jwks.json` (every published key,
//! retired ones included until their last token expires) and
//! `GET /.well-known/openid-configuration` (where everything is).

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{crypto::SigningAlg, keyring::Authority, token_endpoint::JWT_BEARER};

/// Verifiers may cache the key set this long; a new key is announced by its unknown `kid`.
const JWKS_MAX_AGE: &str = "public, max-age=60";

pub async fn jwks(State(authority): State<Arc<Authority>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, JWKS_MAX_AGE),
        ],
        authority.ring().jwks_json().to_string(),
    )
        .into_response()
}

pub async fn configuration(State(authority): State<Arc<Authority>>) -> Response {
    let algs: Vec<&str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
    (
        [(header::CACHE_CONTROL, JWKS_MAX_AGE)],
        Json(json!({
            "issuer": authority.issuer,
            "jwks_uri": authority.jwks_uri,
            "token_endpoint": authority.token_endpoint,
            "introspection_endpoint": authority.introspection_endpoint,
            "grant_types_supported": [JWT_BEARER],
            "token_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["bearer"],
            "id_token_signing_alg_values_supported": algs,
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "response_types_supported": [],
            "subject_types_supported": ["public"],
        })),
    )
        .into_response()
}
