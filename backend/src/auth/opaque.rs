//! Opaque random values the browser carries through a sign-in: `state`, `nonce`, the PKCE
//! verifier, and the JWT-endpoint binding's `state`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}
