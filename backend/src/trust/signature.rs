//! Signature checks with keys parsed once.
//!
//! `jsonwebtoken` verifies with a [`DecodingKey`], which holds the key's bytes: each check
//! parses the public key again, and for RSA rebuilds its Montgomery context, which costs
//! about as much as the check itself. Here each key is parsed once per algorithm it is used
//! with (aws-lc-rs [`ParsedPublicKey`], the same library and the same algorithm parameters
//! `jsonwebtoken` uses on its `aws_lc_rs` backend), and kept with the key. HMAC keys, which
//! have nothing to parse, still go through `jsonwebtoken`.

use std::sync::OnceLock;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, VerificationAlgorithm};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

/// The asymmetric algorithms a key can be parsed for, in slot order.
const PARSED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Parameters per slot of [`PARSED`]: those of `jsonwebtoken`'s `aws_lc_rs` verifiers.
fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn other_algorithm(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        _ => return None,
    })
}

/// A key's parsed forms, made on first use with each algorithm (`None`: the key does not
/// parse for it, so nothing signed with that algorithm verifies).
#[derive(Default)]
pub struct ParsedKeys {
    slots: [OnceLock<Option<ParsedPublicKey>>; PARSED.len()],
}

impl ParsedKeys {
    fn parsed(&self, key: &DecodingKey, alg: Algorithm) -> Option<Option<&ParsedPublicKey>> {
        let slot = PARSED.iter().position(|a| *a == alg)?;
        let parsed = self.slots[slot].get_or_init(|| parse(key, alg));
        Some(parsed.as_ref())
    }
}

fn parse(key: &DecodingKey, alg: Algorithm) -> Option<ParsedPublicKey> {
    if key.family() != alg.family() {
        return None;
    }
    match (key.kind(), rsa_parameters(alg), other_algorithm(alg)) {
        (DecodingKeyKind::RsaModulusExponent { n, e }, Some(params), _) => {
            signature::RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(params)
                .ok()
        }
        (DecodingKeyKind::SecretOrDer(der), Some(params), _) => {
            ParsedPublicKey::new(params, der).ok()
        }
        (DecodingKeyKind::SecretOrDer(bytes), None, Some(algorithm)) => {
            ParsedPublicKey::new(algorithm, bytes).ok()
        }
        _ => None,
    }
}

/// Whether `signature_b64` (the token's third part) is `alg`'s signature of `message` (its
/// first two parts and the dot) under `key`. `key`'s family must match `alg`'s (an HMAC
/// secret never checks an RS256 token, nor a public key an HS256 one).
pub fn verify(
    key: &DecodingKey,
    parsed: &ParsedKeys,
    alg: Algorithm,
    message: &[u8],
    signature_b64: &str,
) -> bool {
    match parsed.parsed(key, alg) {
        Some(Some(public)) => URL_SAFE_NO_PAD
            .decode(signature_b64)
            .is_ok_and(|sig| public.verify_sig(message, &sig).is_ok()),
        Some(None) => false,
        // HMAC: a constant-time comparison in jsonwebtoken, which checks the family too.
        None => jsonwebtoken::crypto::verify(signature_b64, message, key, alg).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use jsonwebtoken::{EncodingKey, Header, encode};

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap()
    }

    /// A token of `alg` signed with the private key in `private`, split into (message, sig).
    fn signed(alg: Algorithm, key: &EncodingKey) -> (String, String) {
        let token = encode(&Header::new(alg), &serde_json::json!({"sub": "x"}), key).unwrap();
        let (message, sig) = token.rsplit_once('.').unwrap();
        (message.to_owned(), sig.to_owned())
    }

    fn check(alg: Algorithm, private: EncodingKey, public: DecodingKey) {
        let parsed = ParsedKeys::default();
        let (message, sig) = signed(alg, &private);
        // Twice: the second check uses the key parsed by the first.
        assert!(
            verify(&public, &parsed, alg, message.as_bytes(), &sig),
            "{alg:?}"
        );
        assert!(
            verify(&public, &parsed, alg, message.as_bytes(), &sig),
            "{alg:?} again"
        );
        let tampered = message.replacen('e', "f", 1);
        assert!(
            !verify(&public, &parsed, alg, tampered.as_bytes(), &sig),
            "{alg:?} tampered"
        );
        assert!(
            !verify(&public, &parsed, alg, message.as_bytes(), "AAAA"),
            "{alg:?} bad sig"
        );
    }

    #[test]
    fn every_asymmetric_family_verifies_with_its_parsed_key() {
        let rsa = fixture("issuer-rsa-a.pem");
        let rsa_pub = fixture("issuer-rsa-a.pub.pem");
        for alg in [
            Algorithm::RS256,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
        ] {
            check(
                alg,
                EncodingKey::from_rsa_pem(&rsa).unwrap(),
                DecodingKey::from_rsa_pem(&rsa_pub).unwrap(),
            );
        }
        check(
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&fixture("issuer-ec.pem")).unwrap(),
            DecodingKey::from_ec_pem(&fixture("issuer-ec.pub.pem")).unwrap(),
        );
        check(
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&fixture("issuer-ed25519.pem")).unwrap(),
            DecodingKey::from_ed_pem(&fixture("issuer-ed25519.pub.pem")).unwrap(),
        );
        let secret = b"0123456789abcdef0123456789abcdef";
        check(
            Algorithm::HS256,
            EncodingKey::from_secret(secret),
            DecodingKey::from_secret(secret),
        );
    }

    #[test]
    fn a_key_from_a_jwk_verifies_like_one_from_pem() {
        let jwks: serde_json::Value =
            serde_json::from_slice(&fixture("issuer-rsa-a.jwks.json")).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
        check(
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&fixture("issuer-rsa-a.pem")).unwrap(),
            DecodingKey::from_jwk(&jwk).unwrap(),
        );
    }

    #[test]
    fn a_key_never_checks_another_familys_algorithm() {
        let rsa_pub = fixture("issuer-rsa-a.pub.pem");
        // Algorithm confusion: the public key's bytes used as an HMAC secret.
        let forged = EncodingKey::from_secret(&rsa_pub);
        let (message, sig) = signed(Algorithm::HS256, &forged);
        let public = DecodingKey::from_rsa_pem(&rsa_pub).unwrap();
        let parsed = ParsedKeys::default();
        assert!(!verify(
            &public,
            &parsed,
            Algorithm::HS256,
            message.as_bytes(),
            &sig
        ));
        // An HMAC secret never checks an RS256 signature, and an RSA key no ES256 one.
        let (message, sig) = signed(
            Algorithm::RS256,
            &EncodingKey::from_rsa_pem(&fixture("issuer-rsa-a.pem")).unwrap(),
        );
        let secret = DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        assert!(!verify(
            &secret,
            &ParsedKeys::default(),
            Algorithm::RS256,
            message.as_bytes(),
            &sig
        ));
        assert!(!verify(
            &public,
            &parsed,
            Algorithm::ES256,
            message.as_bytes(),
            &sig
        ));
        // The right key and algorithm still verify after those attempts.
        assert!(verify(
            &public,
            &parsed,
            Algorithm::RS256,
            message.as_bytes(),
            &sig
        ));
    }
}
