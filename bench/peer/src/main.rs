//! The peers `bench/hot-path.sh` measures the bridge's `/api/me` against, in one process:
//!
//! - `GET /plain`: a plain axum handler with no auth, answering a JSON body shaped like
//!   `/api/me`'s (same fields, same length);
//! - `GET /verify`: a bare axum handler that verifies the `Authorization: Bearer` token on
//!   every call with `jsonwebtoken` (its `aws_lc_rs` backend): RS256 signature, `iss`, `aud`,
//!   `exp`, then answers the same body from the claims. No cache, no policy, no metrics.
//! - `GET /dpop` (with `--dpop-public-key`): the peer of `bench/dpop.sh`, one ES256 JWT per
//!   request: the `DPoP` header's proof verified with `jsonwebtoken` (`aws_lc_rs`) against one
//!   P-256 key fixed at start (the proof's own `jwk` is not read, so no thumbprint), its `htm`
//!   and `iat` read, and `Authorization: DPoP <token>` required but not checked (the bridge's
//!   check of a token it has seen before is a cache hit). No replay records, no `htu`/`ath`.
//!
//! `bench-peer --listen 127.0.0.1:PORT --public-key KEY.pem --issuer ISS --audience AUD
//!  [--dpop-public-key EC-P256.pem]`
//! Prints `LISTENING <addr>` once it accepts connections.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header::AUTHORIZATION},
    response::{IntoResponse, Response},
    routing::get,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    exp: i64,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    realm_access: RealmAccess,
}

#[derive(Deserialize, Default)]
struct RealmAccess {
    #[serde(default)]
    roles: Vec<String>,
}

/// The body of the bridge's `/api/me`, field for field.
#[derive(Serialize)]
struct User<'a> {
    id: &'a str,
    username: &'a str,
    name: Option<&'a str>,
    email: Option<&'a str>,
    groups: &'a [String],
    roles: &'a [String],
}

#[derive(Serialize)]
struct Me<'a> {
    user: User<'a>,
    issuer: &'a str,
    expires_at: i64,
    token_fingerprint: &'a str,
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// `/dpop`: the one P-256 key its proofs are signed with, and the ES256 rules.
    dpop: Option<(DecodingKey, Validation)>,
}

/// What `/dpop` reads from a proof (RFC 9449 section 4.2).
#[derive(Deserialize)]
struct ProofClaims {
    htm: String,
    iat: i64,
}

/// How old a proof `/dpop` accepts may be: the bridge's default window (60 s) plus leeway.
const PROOF_MAX_AGE_SECS: i64 = 90;

async fn plain() -> Response {
    let (groups, roles) = (
        ["admins".to_owned()],
        ["admin".to_owned(), "user".to_owned()],
    );
    Json(Me {
        user: User {
            id: "7f6a8a52-0b7e-4d1c-9a55-a11ce0000001",
            username: "alice",
            name: None,
            email: None,
            groups: &groups,
            roles: &roles,
        },
        issuer: "http://127.0.0.1:45301",
        expires_at: 1795458432,
        token_fingerprint: "f34046497fcd273f",
    })
    .into_response()
}

async fn verify(State(v): State<Arc<Verifier>>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match decode::<Claims>(token, &v.key, &v.validation) {
        Ok(data) => {
            let c = data.claims;
            Json(Me {
                user: User {
                    id: &c.sub,
                    username: c.preferred_username.as_deref().unwrap_or(""),
                    name: None,
                    email: None,
                    groups: &c.groups,
                    roles: &c.realm_access.roles,
                },
                issuer: &c.iss,
                expires_at: c.exp,
                token_fingerprint: "",
            })
            .into_response()
        }
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn verify_proof(State(v): State<Arc<Verifier>>, headers: HeaderMap) -> Response {
    let Some((key, validation)) = &v.dpop else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let bound = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.starts_with("DPoP "));
    let Some(proof) = headers.get("dpop").and_then(|h| h.to_str().ok()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if !bound {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(data) = decode::<ProofClaims>(proof, key, validation) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let c = data.claims;
    if data.header.typ.as_deref() != Some("dpop+jwt")
        || c.htm != "GET"
        || c.iat < now - PROOF_MAX_AGE_SECS
        || c.iat > now + 30
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    plain().await
}

fn arg(args: &[String], name: &str) -> Result<String, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .ok_or_else(|| format!("missing {name} VALUE"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = arg(&args, "--listen")?
        .parse()
        .map_err(|e| format!("--listen: {e}"))?;
    let pem =
        std::fs::read(arg(&args, "--public-key")?).map_err(|e| format!("--public-key: {e}"))?;
    let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| format!("--public-key: {e}"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[arg(&args, "--issuer")?]);
    validation.set_audience(&[arg(&args, "--audience")?]);
    let dpop = match arg(&args, "--dpop-public-key") {
        Ok(path) => {
            let pem = std::fs::read(&path).map_err(|e| format!("--dpop-public-key: {e}"))?;
            let key =
                DecodingKey::from_ec_pem(&pem).map_err(|e| format!("--dpop-public-key: {e}"))?;
            // A proof has no `exp`, `aud` or `iss`: only the signature is jsonwebtoken's.
            let mut validation = Validation::new(Algorithm::ES256);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            validation.validate_aud = false;
            Some((key, validation))
        }
        Err(_) => None,
    };
    let verifier = Arc::new(Verifier {
        key,
        validation,
        dpop,
    });
    let app = Router::new()
        .route("/plain", get(plain))
        .route("/verify", get(verify))
        .route("/dpop", get(verify_proof))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("bind {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("LISTENING {addr}");
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
