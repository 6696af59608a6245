//! The bridge's key material: generating signing keys, their public halves (JWK, PEM), sealing
//! private keys under the key-encryption key, and signing.
//!
//! Everything cryptographic is aws-lc-rs, the same library `jsonwebtoken` verifies with here.
//! Signing keeps the parsed key pair: `jsonwebtoken::encode` parses (and validates) the
//! private key on every call, which for RSA costs more than the signature itself (the trap
//! Ory Oathkeeper's minting fell into, its issue #364). The compact serialization around the
//! signature is three base64url parts joined by dots; `jsonwebtoken` and PyJWT verify what
//! comes out in the tests.

use std::{fmt, path::Path};

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey},
    encoding::AsDer,
    rand::SystemRandom,
    rsa::KeySize,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The algorithms the bridge signs with (and service-user keys may have).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SigningAlg {
    ES256,
    RS256,
    PS256,
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 4] = [Self::ES256, Self::RS256, Self::PS256, Self::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key generation failed")]
    Generate,
    #[error("the stored private key is not a valid {0} key")]
    BadKey(SigningAlg),
    #[error("signing failed")]
    Sign,
    #[error(
        "cannot decrypt a stored private key: the key-encryption key is not the one it was \
         sealed with"
    )]
    Unseal,
    #[error("sealing failed")]
    Seal,
}

/// A private key in PKCS#8 DER. Never printed; wiped from memory when dropped is left to the
/// allocator (the key lives for the life of the process anyway).
pub struct Pkcs8(pub Vec<u8>);

impl fmt::Debug for Pkcs8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pkcs8(***)")
    }
}

impl Pkcs8 {
    /// A new key pair for `alg` (RSA keys are 2048 bits).
    pub fn generate(alg: SigningAlg) -> Result<Self, CryptoError> {
        let rng = SystemRandom::new();
        let der = match alg {
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| CryptoError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| CryptoError::Generate)?
                .as_ref()
                .to_vec(),
            SigningAlg::RS256 | SigningAlg::PS256 => {
                let pair = signature::RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| CryptoError::Generate)?;
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                    .map_err(|_| CryptoError::Generate)?
                    .as_ref()
                    .to_vec()
            }
        };
        Ok(Self(der))
    }

    /// The private key as PEM (`-----BEGIN PRIVATE KEY-----`), for a service user's key file.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PRIVATE KEY", self.0.clone()))
    }
}

/// A parsed key pair, ready to sign.
enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

/// A signing key of the bridge: its id, algorithm, parsed key pair and public halves.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pair: Pair,
    /// The public key as a JWK (with `kid`, `alg`, `use`).
    pub jwk: Value,
    /// The public key as SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
    /// `{"alg":…,"kid":…,"typ":"JWT"}` base64url-encoded: the same for every token.
    header_b64: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses `pkcs8` for `alg`; the `kid` is the RFC 7638 thumbprint of the public key.
    pub fn from_pkcs8(alg: SigningAlg, pkcs8: &Pkcs8) -> Result<Self, CryptoError> {
        let bad = |_| CryptoError::BadKey(alg);
        let (pair, mut jwk, spki) = match alg {
            SigningAlg::ES256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8.0)
                        .map_err(bad)?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(CryptoError::BadKey(alg));
                }
                let jwk = json!({
                    "crv": "P-256",
                    "kty": "EC",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                });
                let spki = pair
                    .public_key()
                    .as_der()
                    .map_err(|_| CryptoError::BadKey(alg))?
                    .as_ref()
                    .to_vec();
                (Pair::Ecdsa(pair), jwk, spki)
            }
            SigningAlg::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(&pkcs8.0).map_err(bad)?;
                let jwk = json!({
                    "crv": "Ed25519",
                    "kty": "OKP",
                    "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
                });
                let spki = pair
                    .public_key()
                    .as_der()
                    .map_err(|_| CryptoError::BadKey(alg))?
                    .as_ref()
                    .to_vec();
                (Pair::Ed(pair), jwk, spki)
            }
            SigningAlg::RS256 | SigningAlg::PS256 => {
                let pair = signature::RsaKeyPair::from_pkcs8(&pkcs8.0).map_err(bad)?;
                let public = pair.public_key();
                let jwk = json!({
                    "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                });
                let spki = public
                    .as_der()
                    .map_err(|_| CryptoError::BadKey(alg))?
                    .as_ref()
                    .to_vec();
                (Pair::Rsa(pair), jwk, spki)
            }
        };
        let kid = thumbprint(&jwk);
        if let Value::Object(map) = &mut jwk {
            map.insert("kid".into(), Value::String(kid.clone()));
            map.insert("alg".into(), Value::String(alg.as_str().into()));
            map.insert("use".into(), Value::String("sig".into()));
        }
        let header = json!({"alg": alg.as_str(), "kid": kid, "typ": "JWT"});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        Ok(Self {
            kid,
            alg,
            pair,
            jwk,
            spki,
            header_b64,
        })
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`): what PI_TRUSTED_JWT and other
    /// PEM-based configurations take.
    pub fn public_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki.clone()))
    }

    /// A compact JWS of `claims` signed with this key.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, CryptoError> {
        let payload = serde_json::to_vec(claims).map_err(|_| CryptoError::Sign)?;
        let mut out = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 400);
        out.push_str(&self.header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let signature = self.raw_sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
        Ok(out)
    }

    fn raw_sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CryptoError::Sign),
            Pair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    SigningAlg::PS256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig)
                    .map_err(|_| CryptoError::Sign)?;
                Ok(sig)
            }
        }
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) over the required members in order.
fn thumbprint(jwk: &Value) -> String {
    let get = |k: &str| jwk.get(k).and_then(Value::as_str).unwrap_or_default();
    let canonical = match get("kty") {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            get("crv"),
            get("x"),
            get("y")
        ),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            get("crv"),
            get("x")
        ),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, get("e"), get("n")),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The key-encryption key: 32 random bytes, given base64-encoded in a file or an environment
/// variable. Private keys are stored sealed with AES-256-GCM under it, bound to their `kid`.
pub struct Kek(RandomizedNonceKey);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(***)")
    }
}

impl Kek {
    /// Parses the base64 text of a key-encryption key (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "is not base64 (make one with `openssl rand -base64 32`)".to_string())?;
        if bytes.len() != 32 {
            return Err(format!(
                "must be 32 bytes, base64-encoded (`openssl rand -base64 32`); this one is {} bytes",
                bytes.len()
            ));
        }
        RandomizedNonceKey::new(&AES_256_GCM, &bytes)
            .map(Self)
            .map_err(|_| "cannot be used as an AES-256 key".to_string())
    }

    /// A new random key-encryption key, base64-encoded.
    pub fn generate_base64() -> Result<String, CryptoError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CryptoError::Generate)?;
        Ok(STANDARD.encode(bytes))
    }

    /// Reads one from a file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_base64(&text)
    }

    /// `nonce || ciphertext || tag` of `plaintext`, bound to `context` (the key id).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut data = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| CryptoError::Seal)?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// The plaintext of [`Self::seal`]; fails for another key or another context.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Unseal)?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| CryptoError::Unseal)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode, jwk::Jwk};

    fn claims() -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("sub".into(), "alice".into());
        c.insert("exp".into(), (crate::clock::now() + 60).into());
        c
    }

    #[test]
    fn every_algorithm_signs_what_jsonwebtoken_verifies_with_the_published_jwk() {
        for alg in SigningAlg::ALL {
            let key = Pkcs8::generate(alg).and_then(|p| SigningKey::from_pkcs8(alg, &p));
            let Ok(key) = key else {
                panic!("{alg}: key generation failed");
            };
            let Ok(token) = key.sign(&claims()) else {
                panic!("{alg}: signing failed");
            };
            let jwk: Result<Jwk, _> = serde_json::from_value(key.jwk.clone());
            let Ok(jwk) = jwk else {
                panic!("{alg}: bad JWK")
            };
            let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
                panic!("{alg}: JWK not usable")
            };
            let mut validation = Validation::new(alg.jwt());
            validation.validate_aud = false;
            let verified = decode::<Value>(&token, &decoding, &validation);
            assert!(verified.is_ok(), "{alg}: {verified:?}");
            assert_eq!(
                jsonwebtoken::decode_header(&token).ok().and_then(|h| h.kid),
                Some(key.kid.clone())
            );
            // The PEM export verifies too (what PI_TRUSTED_JWT gets).
            let pem = key.public_pem();
            let from_pem = match alg {
                SigningAlg::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
                SigningAlg::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
                _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
            };
            let Ok(from_pem) = from_pem else {
                panic!("{alg}: PEM not usable")
            };
            assert!(decode::<Value>(&token, &from_pem, &validation).is_ok());
        }
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_kek_and_its_kid() {
        let Ok(a) = Kek::generate_base64().map(|t| Kek::from_base64(&t)) else {
            panic!()
        };
        let Ok(b) = Kek::generate_base64().map(|t| Kek::from_base64(&t)) else {
            panic!()
        };
        let (Ok(a), Ok(b)) = (a, b) else { panic!() };
        let Ok(sealed) = a.seal("kid-1", b"private") else {
            panic!()
        };
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        assert_eq!(
            a.open("kid-1", &sealed).ok().as_deref(),
            Some(&b"private"[..])
        );
        assert!(a.open("kid-2", &sealed).is_err());
        assert!(b.open("kid-1", &sealed).is_err());
    }

    #[test]
    fn a_kek_must_be_32_bytes_of_base64() {
        assert!(Kek::from_base64("not base64!").is_err());
        assert!(Kek::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(Kek::from_base64(&format!("{}\n", STANDARD.encode([7u8; 32]))).is_ok());
    }
}
