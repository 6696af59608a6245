//! JWT validation, in the order that keeps the cheap and the dangerous checks first
//! (rauthy; RFC 8725): size cap, structure, header (`alg` against the allow-list, no embedded
//! or remote keys), key by `kid` from the issuer's own key set, signature, time claims with an
//! explicit leeway, then `iss`, `aud` and token type.
//!
//! The jsonwebtoken crate only verifies the signature here; every claim is checked by this
//! module so the rules (types, boundaries, arrays) are ours and are tested.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::JwksCache;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a token must satisfy.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub algorithms: &'a [Algorithm],
    pub leeway_secs: u64,
    pub kind: TokenKind<'a>,
}

/// Which kind of token is expected; each has its own audience and type rules, so one kind
/// cannot be passed off as another (token confusion).
pub enum TokenKind<'a> {
    /// An OAuth access token presented to an API: `aud` must contain one of `audiences`.
    Access { audiences: &'a [String] },
    /// An OIDC ID token for this client: `aud` is exactly this client, `azp` (if present) too,
    /// `sub` and `iat` present, `nonce` equal when one was sent.
    Id {
        client_id: &'a str,
        nonce: Option<&'a str>,
    },
}

/// A token whose signature and claims passed.
#[derive(Clone, Debug)]
pub struct ValidatedToken {
    pub claims: Map<String, Value>,
    pub issuer: String,
    pub expires_at: i64,
}

impl ValidatedToken {
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }
}

/// Why a token was refused. Messages help an operator and never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("algorithm {0:?} is not allowed for this issuer")]
    AlgorithmNotAllowed(String),
    #[error("token header carries {0:?}; embedded or remote keys are never used")]
    ForbiddenHeader(&'static str),
    #[error("no key of this issuer matches the token's kid")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("claim {0:?} is missing")]
    MissingClaim(&'static str),
    #[error("claim {0:?} has the wrong type")]
    InvalidClaim(&'static str),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("issuer does not match")]
    WrongIssuer,
    #[error("audience does not match")]
    WrongAudience,
    #[error("authorized party (azp) is not this client")]
    WrongAuthorizedParty,
    #[error("token type is not accepted here")]
    WrongType,
    #[error("nonce does not match this login")]
    NonceMismatch,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Parses and checks the JOSE header; returns `(alg, kid, typ)`.
fn check_header(
    header_b64: &str,
    allowed: &[Algorithm],
) -> Result<(Algorithm, Option<String>, Option<String>), TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed("header is not base64url"))?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("header is not JSON"))?;
    for forbidden in ["jwk", "jku", "x5u", "x5c"] {
        if header.contains_key(forbidden) {
            return Err(TokenError::ForbiddenHeader(match forbidden {
                "jwk" => "jwk",
                "jku" => "jku",
                "x5u" => "x5u",
                _ => "x5c",
            }));
        }
    }
    if header.contains_key("crit") {
        return Err(TokenError::Malformed(
            "critical header extensions are not supported",
        ));
    }
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed("header has no alg"))?;
    let alg = alg_name
        .parse::<Algorithm>()
        .ok()
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| TokenError::AlgorithmNotAllowed(alg_name.chars().take(32).collect()))?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(TokenError::Malformed("kid is not a string")),
    };
    let typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
    Ok((alg, kid, typ))
}

fn numeric_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(TokenError::InvalidClaim(name)),
        Some(_) => Err(TokenError::InvalidClaim(name)),
    }
}

fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, TokenError> {
    match claims.get("aud") {
        None => Err(TokenError::MissingClaim("aud")),
        Some(Value::String(a)) => Ok(vec![a.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(TokenError::InvalidClaim("aud")))
            .collect(),
        Some(_) => Err(TokenError::InvalidClaim("aud")),
    }
}

/// Verifies `token` against the keys in `jwks` and the expectations.
pub async fn validate(
    token: &str,
    jwks: &JwksCache,
    expect: &Expectations<'_>,
) -> Result<ValidatedToken, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(_payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("a JWT has three dot-separated parts"));
    };
    if signature.is_empty() {
        return Err(TokenError::BadSignature);
    }
    let (alg, kid, typ) = check_header(header_b64, expect.algorithms)?;

    let candidates = jwks.candidates(kid.as_deref()).await;
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey);
    }
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let mut claims = None;
    for candidate in candidates {
        // A key that names its algorithm may only be used with that algorithm.
        if let Some(key_alg) = candidate.alg
            && format!("{key_alg:?}") != format!("{alg:?}")
        {
            continue;
        }
        if let Ok(data) =
            jsonwebtoken::decode::<Map<String, Value>>(token, &candidate.key, &validation)
        {
            claims = Some(data.claims);
            break;
        }
    }
    let claims = claims.ok_or(TokenError::BadSignature)?;
    check_claims(claims, typ.as_deref(), expect, now())
}

/// The claim checks, separated from the signature so their boundaries are unit-tested.
pub fn check_claims(
    claims: Map<String, Value>,
    header_typ: Option<&str>,
    expect: &Expectations<'_>,
    now: i64,
) -> Result<ValidatedToken, TokenError> {
    let leeway = i64::try_from(expect.leeway_secs).unwrap_or(i64::MAX / 2);
    let exp = numeric_claim(&claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if now > exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = numeric_claim(&claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(TokenError::NotYetValid);
    }
    let iat = numeric_claim(&claims, "iat")?;
    if let Some(iat) = iat
        && iat > now.saturating_add(leeway)
    {
        return Err(TokenError::IssuedInFuture);
    }
    let issuer = match claims.get("iss") {
        None => return Err(TokenError::MissingClaim("iss")),
        Some(Value::String(iss)) if iss == expect.issuer => iss.clone(),
        Some(Value::String(_)) => return Err(TokenError::WrongIssuer),
        Some(_) => return Err(TokenError::InvalidClaim("iss")),
    };
    let aud = audiences(&claims)?;
    match &expect.kind {
        TokenKind::Access { audiences: allowed } => {
            if !aud.iter().any(|a| allowed.iter().any(|x| x == a)) {
                return Err(TokenError::WrongAudience);
            }
            // Keycloak marks its token kinds in a `typ` claim; RFC 9068 uses the header.
            if let Some(kind) = claims.get("typ").and_then(Value::as_str)
                && !kind.eq_ignore_ascii_case("bearer")
            {
                return Err(TokenError::WrongType);
            }
            if let Some(typ) = header_typ {
                let typ = typ.to_ascii_lowercase();
                if !matches!(typ.as_str(), "jwt" | "at+jwt" | "application/at+jwt") {
                    return Err(TokenError::WrongType);
                }
            }
        }
        TokenKind::Id { client_id, nonce } => {
            if aud.is_empty() || aud.iter().any(|a| a != client_id) {
                return Err(TokenError::WrongAudience);
            }
            if let Some(azp) = claims.get("azp")
                && azp.as_str() != Some(client_id)
            {
                return Err(TokenError::WrongAuthorizedParty);
            }
            if iat.is_none() {
                return Err(TokenError::MissingClaim("iat"));
            }
            if !matches!(claims.get("sub"), Some(Value::String(s)) if !s.is_empty()) {
                return Err(TokenError::MissingClaim("sub"));
            }
            if let Some(expected) = nonce {
                match claims.get("nonce").and_then(Value::as_str) {
                    Some(got) if got == *expected => {}
                    _ => return Err(TokenError::NonceMismatch),
                }
            }
            if let Some(kind) = claims.get("typ").and_then(Value::as_str)
                && !kind.eq_ignore_ascii_case("id")
            {
                return Err(TokenError::WrongType);
            }
        }
    }
    Ok(ValidatedToken {
        claims,
        issuer,
        expires_at: exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://idp.example.org";
    const NOW: i64 = 1_700_000_000;

    fn access<'a>(aud: &'a [String]) -> Expectations<'a> {
        Expectations {
            issuer: ISS,
            algorithms: &[Algorithm::RS256],
            leeway_secs: 30,
            kind: TokenKind::Access { audiences: aud },
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn api() -> Vec<String> {
        vec!["my-api".to_string()]
    }

    #[test]
    fn exp_is_checked_at_the_leeway_boundary() {
        let aud = api();
        let at = |exp: i64| claims(json!({"iss": ISS, "aud": "my-api", "exp": exp}));
        assert!(check_claims(at(NOW - 30), None, &access(&aud), NOW).is_ok());
        assert_eq!(
            check_claims(at(NOW - 31), None, &access(&aud), NOW).err(),
            Some(TokenError::Expired)
        );
    }

    #[test]
    fn nbf_in_the_future_beyond_leeway_is_refused() {
        let aud = api();
        let c = claims(json!({"iss": ISS, "aud": "my-api", "exp": NOW + 60, "nbf": NOW + 31}));
        assert_eq!(
            check_claims(c, None, &access(&aud), NOW).err(),
            Some(TokenError::NotYetValid)
        );
    }

    #[test]
    fn time_claims_given_as_strings_are_refused() {
        let aud = api();
        let c = claims(json!({"iss": ISS, "aud": "my-api", "exp": (NOW + 60).to_string()}));
        assert_eq!(
            check_claims(c, None, &access(&aud), NOW).err(),
            Some(TokenError::InvalidClaim("exp"))
        );
        let c = claims(json!({"iss": ISS, "aud": "my-api", "exp": NOW + 60, "nbf": "0"}));
        assert_eq!(
            check_claims(c, None, &access(&aud), NOW).err(),
            Some(TokenError::InvalidClaim("nbf"))
        );
    }

    #[test]
    fn an_issuer_array_is_refused() {
        let aud = api();
        let c = claims(json!({"iss": ["evil", ISS], "aud": "my-api", "exp": NOW + 60}));
        assert_eq!(
            check_claims(c, None, &access(&aud), NOW).err(),
            Some(TokenError::InvalidClaim("iss"))
        );
    }

    #[test]
    fn keycloaks_account_audience_does_not_satisfy_the_api() {
        let aud = api();
        let c = claims(json!({"iss": ISS, "aud": "account", "exp": NOW + 60}));
        assert_eq!(
            check_claims(c, None, &access(&aud), NOW).err(),
            Some(TokenError::WrongAudience)
        );
        let c = claims(json!({"iss": ISS, "exp": NOW + 60}));
        assert_eq!(
            check_claims(c, None, &access(&aud), NOW).err(),
            Some(TokenError::MissingClaim("aud"))
        );
    }

    #[test]
    fn an_id_token_is_not_accepted_as_an_access_token() {
        let aud = api();
        let c = claims(json!({"iss": ISS, "aud": "my-api", "exp": NOW + 60, "typ": "ID"}));
        assert_eq!(
            check_claims(c, None, &access(&aud), NOW).err(),
            Some(TokenError::WrongType)
        );
    }

    #[test]
    fn an_id_token_with_another_nonce_or_extra_audience_is_refused() {
        let expect = |nonce| Expectations {
            issuer: ISS,
            algorithms: &[Algorithm::RS256],
            leeway_secs: 0,
            kind: TokenKind::Id {
                client_id: "ui",
                nonce,
            },
        };
        let ok = json!({"iss": ISS, "aud": "ui", "exp": NOW + 60, "iat": NOW, "sub": "u", "nonce": "n1"});
        assert!(check_claims(claims(ok.clone()), None, &expect(Some("n1")), NOW).is_ok());
        assert_eq!(
            check_claims(claims(ok), None, &expect(Some("n2")), NOW).err(),
            Some(TokenError::NonceMismatch)
        );
        let extra = json!({"iss": ISS, "aud": ["ui", "evil"], "exp": NOW + 60, "iat": NOW, "sub": "u", "nonce": "n1"});
        assert_eq!(
            check_claims(claims(extra), None, &expect(Some("n1")), NOW).err(),
            Some(TokenError::WrongAudience)
        );
        let no_iat = json!({"iss": ISS, "aud": "ui", "exp": NOW + 60, "sub": "u", "nonce": "n1"});
        assert_eq!(
            check_claims(claims(no_iat), None, &expect(Some("n1")), NOW).err(),
            Some(TokenError::MissingClaim("iat"))
        );
    }

    #[test]
    fn header_alg_none_and_embedded_keys_are_refused() {
        let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        for alg in ["none", "None", "NONE", "HS256"] {
            assert_eq!(
                check_header(&enc(json!({"alg": alg})), &[Algorithm::RS256]).err(),
                Some(TokenError::AlgorithmNotAllowed(alg.into()))
            );
        }
        assert_eq!(
            check_header(
                &enc(json!({"alg": "RS256", "jku": "http://evil/jwks"})),
                &[Algorithm::RS256]
            )
            .err(),
            Some(TokenError::ForbiddenHeader("jku"))
        );
        assert_eq!(
            check_header(
                &enc(json!({"alg": "RS256", "jwk": {}})),
                &[Algorithm::RS256]
            )
            .err(),
            Some(TokenError::ForbiddenHeader("jwk"))
        );
    }
}
