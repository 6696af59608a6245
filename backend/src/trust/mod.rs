//! The trust engine: which JWTs the bridge accepts and who they say the caller is.
//!
//! `jwks` caches an issuer's keys, `validate` checks a token against one issuer's rules, and
//! `mapping` turns validated claims into a [`shared::session::User`]. Every way into the
//! bridge (code flow, API bearer tokens) goes through here.

pub mod engine;
pub mod issuer;
pub mod jwks;
pub mod mapping;
pub mod validate;

use sha2::{Digest, Sha256};

/// First 16 hex digits of SHA-256 over a token: safe to show and log, useless to replay.
pub fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
