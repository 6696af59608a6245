//! JWT validation, in the order that keeps the cheap and the dangerous checks first
//! (rauthy; RFC 8725): size cap, structure, header (`alg` against the allow-list, no embedded
//! or remote keys), key by `kid` from the issuer's own key set, signature, time claims with an
//! explicit leeway, then `iss`, `aud` and token type.
//!
//! The jsonwebtoken crate only verifies the signature here; every claim is checked by this
//! module so the rules (types, boundaries, arrays) are ours and are tested.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::{
    claims::{Claims, NotClaims, Value as ClaimValue},
    jwks::{JwksCache, KeySet, VerificationKey},
};
use crate::clock::now;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a token must satisfy.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub algorithms: &'a [Algorithm],
    pub leeway_secs: u64,
    pub kind: TokenKind<'a>,
    /// Header `typ` the token must carry (access tokens; e.g. `at+jwt`).
    pub required_typ: Option<&'a str>,
    /// Claims that must be present (access tokens).
    pub required_claims: &'a [String],
}

/// Which kind of token is expected; each has its own audience and type rules, so one kind
/// cannot be passed off as another (token confusion).
pub enum TokenKind<'a> {
    /// An OAuth access token presented to an API: `aud` must contain one of `audiences`
    /// (an empty list means the issuer is configured not to check the audience).
    Access { audiences: &'a [String] },
    /// An OIDC ID token for this client: `aud` holds this client, and besides it only
    /// audiences the client trusts (`trusted_audiences`: OIDC Core §3.1.3.7, step 3); with
    /// more than one audience `azp` must be present, and whenever present it is this client;
    /// `sub` and `iat` present, `nonce` equal when one was sent.
    Id {
        client_id: &'a str,
        trusted_audiences: &'a [String],
        nonce: Option<&'a str>,
    },
    /// An OIDC Back-Channel Logout token for this client: `aud` contains this client, `iat`
    /// and `jti` present, `events` holds the back-channel-logout member, `sid` and/or `sub`
    /// present, and never a `nonce` (so an ID token cannot pass for one).
    Logout { client_id: &'a str },
    /// An RFC 7523 assertion a service user signed for the token endpoint: `iss` (the
    /// expected issuer) and `sub` are that user, `aud` contains one of `audiences` (the
    /// bridge's issuer or token endpoint), `iat` present, `jti` (optional) a string of 1 to
    /// 256 bytes. How far ahead `exp` and how old `iat` may be is the endpoint's rule.
    Assertion {
        subject: &'a str,
        audiences: &'a [&'a str],
    },
}

/// The member of `events` that makes a JWT a back-channel logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A token whose signature and claims passed.
#[derive(Clone, Debug)]
pub struct ValidatedToken {
    /// The claims, and their JSON text as signed (kept as the principal's claims).
    pub claims: Claims,
    pub issuer: String,
    pub expires_at: i64,
}

impl ValidatedToken {
    pub fn subject(&self) -> Option<&str> {
        self.claims.str("sub")
    }
}

/// Why a token was refused. Messages help an operator and never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("algorithm {0:?} is not allowed for this issuer (allowed: {list})", list = .1.join(", "))]
    AlgorithmNotAllowed(String, Vec<String>),
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
    /// `found`: the token's audiences (not secret: they name services, not the user), cut to
    /// a few short ones; `expected`: what would have been accepted, in words.
    #[error("audience does not match: the token is for {found:?}, expected {expected}")]
    WrongAudience {
        found: Vec<String>,
        expected: String,
    },
    #[error("authorized party (azp) is not this client: {0}")]
    WrongAuthorizedParty(String),
    #[error("token type is not accepted here")]
    WrongType,
    #[error("nonce does not match this login")]
    NonceMismatch,
    #[error("not a logout token: {0}")]
    NotALogoutToken(&'static str),
    #[error("required claim {0:?} is missing")]
    MissingRequiredClaim(String),
    #[error("issuer is not trusted")]
    UntrustedIssuer,
    /// The issuer is trusted for requests from its `trusted_proxies` only (a gateway's).
    #[error("this issuer's tokens are accepted only through its trusted proxies")]
    UntrustedPeer,
    /// A valid token whose holder was stopped before its `exp` (a disabled or expired
    /// service user).
    #[error("the token's user is disabled or expired")]
    Revoked,
}

impl From<NotClaims> for TokenError {
    fn from(e: NotClaims) -> Self {
        TokenError::Malformed(e.0)
    }
}

impl TokenError {
    /// A short fixed name of the reason, for the verification metric (never token material).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::TooLarge => "too_large",
            TokenError::Malformed(_) => "malformed",
            TokenError::AlgorithmNotAllowed(..) => "algorithm",
            TokenError::ForbiddenHeader(_) => "forbidden_header",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "signature",
            TokenError::MissingClaim(_)
            | TokenError::InvalidClaim(_)
            | TokenError::MissingRequiredClaim(_) => "claims",
            TokenError::Expired => "expired",
            TokenError::NotYetValid | TokenError::IssuedInFuture => "not_yet_valid",
            TokenError::WrongIssuer | TokenError::UntrustedIssuer => "issuer",
            TokenError::WrongAudience { .. } => "audience",
            TokenError::WrongAuthorizedParty(_) => "azp",
            TokenError::WrongType => "type",
            TokenError::NonceMismatch => "nonce",
            TokenError::NotALogoutToken(_) => "logout_token",
            TokenError::UntrustedPeer => "peer",
            TokenError::Revoked => "revoked",
        }
    }
}

/// The `kid` of a token whose size, structure and header pass every rule of
/// [`validate_steps_for`] with one of `algorithms`: read before the key is known, where the key
/// is picked by `kid` from more than one issuer's keys (the token endpoint's service users),
/// so that a header the engine refuses never gets as far as a key lookup.
pub fn header_kid(token: &str, algorithms: &[Algorithm]) -> Result<Option<String>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let header_b64 = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(_), Some(_), None) => h,
        _ => return Err(TokenError::Malformed("a JWT has three dot-separated parts")),
    };
    check_header(header_b64, algorithms).map(|(_, kid, _)| kid)
}

/// Parses and checks the JOSE header; returns `(alg, kid, typ)`.
fn check_header(
    header_b64: &str,
    allowed: &[Algorithm],
) -> Result<(Algorithm, Option<String>, Option<String>), TokenError> {
    /// The members the checks read, borrowed; any other member is skipped unbuilt. A header
    /// this does not fit (a member of an unexpected type) takes the slow path below, which
    /// names what is wrong.
    #[derive(serde::Deserialize)]
    struct Fast<'a> {
        #[serde(borrow)]
        alg: Option<std::borrow::Cow<'a, str>>,
        /// Absent is `None`; present (even `null`) is `Some`, checked below.
        #[serde(default, deserialize_with = "present")]
        kid: Option<Value>,
        #[serde(borrow)]
        typ: Option<std::borrow::Cow<'a, str>>,
        jwk: Option<serde::de::IgnoredAny>,
        jku: Option<serde::de::IgnoredAny>,
        x5u: Option<serde::de::IgnoredAny>,
        x5c: Option<serde::de::IgnoredAny>,
        crit: Option<serde::de::IgnoredAny>,
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed("header is not base64url"))?;
    let Ok(h) = serde_json::from_slice::<Fast>(&bytes) else {
        return check_header_slow(&bytes, allowed);
    };
    for (present, name) in [
        (h.jwk.is_some(), "jwk"),
        (h.jku.is_some(), "jku"),
        (h.x5u.is_some(), "x5u"),
        (h.x5c.is_some(), "x5c"),
    ] {
        if present {
            return Err(TokenError::ForbiddenHeader(name));
        }
    }
    if h.crit.is_some() {
        return Err(TokenError::Malformed(
            "critical header extensions are not supported",
        ));
    }
    let alg_name = h.alg.ok_or(TokenError::Malformed("header has no alg"))?;
    let alg = alg_name
        .parse::<Algorithm>()
        .ok()
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| not_allowed(&alg_name, allowed))?;
    let kid = match h.kid {
        None => None,
        Some(Value::String(k)) => Some(k),
        Some(_) => return Err(TokenError::Malformed("kid is not a string")),
    };
    Ok((alg, kid, h.typ.map(std::borrow::Cow::into_owned)))
}

/// The refusal of `alg`: the name the token gave (cut short) and the algorithms allowed.
fn not_allowed(alg: &str, allowed: &[Algorithm]) -> TokenError {
    TokenError::AlgorithmNotAllowed(
        alg.chars().take(32).collect(),
        allowed.iter().map(|a| format!("{a:?}")).collect(),
    )
}

/// Audiences shown in a refusal: at most this many, each cut to [`SHOWN_AUDIENCE_CHARS`], so
/// a crafted token cannot flood a log line.
const SHOWN_AUDIENCES: usize = 8;
const SHOWN_AUDIENCE_CHARS: usize = 100;

/// The refusal of a token for `found` when `expected` (in words) was wanted.
fn wrong_audience(found: &[&str], expected: String) -> TokenError {
    TokenError::WrongAudience {
        found: found
            .iter()
            .take(SHOWN_AUDIENCES)
            .map(|a| a.chars().take(SHOWN_AUDIENCE_CHARS).collect())
            .collect(),
        expected,
    }
}

/// `"a"` or `one of ["a", "b"]`.
fn one_of(allowed: &[String]) -> String {
    match allowed {
        [one] => format!("{one:?}"),
        many => format!("one of {many:?}"),
    }
}

/// A member that is there, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// [`check_header`] for a header of unexpected shape: the whole map, every rule in order.
fn check_header_slow(
    bytes: &[u8],
    allowed: &[Algorithm],
) -> Result<(Algorithm, Option<String>, Option<String>), TokenError> {
    let header: Map<String, Value> =
        serde_json::from_slice(bytes).map_err(|_| TokenError::Malformed("header is not JSON"))?;
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
        .ok_or_else(|| not_allowed(alg_name, allowed))?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(TokenError::Malformed("kid is not a string")),
    };
    let typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
    Ok((alg, kid, typ))
}

/// A numeric claim (`exp`, `nbf`, `iat`): absent, or a JSON number (a fraction is cut to
/// whole seconds); anything else is [`TokenError::InvalidClaim`].
pub fn numeric_claim(claims: &Claims, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(ClaimValue::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(TokenError::InvalidClaim(name)),
        Some(_) => Err(TokenError::InvalidClaim(name)),
    }
}

fn audiences(claims: &Claims) -> Result<Vec<&str>, TokenError> {
    match claims.get("aud") {
        None => Err(TokenError::MissingClaim("aud")),
        Some(ClaimValue::Str(a)) => Ok(vec![a.as_ref()]),
        Some(ClaimValue::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(TokenError::InvalidClaim("aud")))
            .collect(),
        Some(_) => Err(TokenError::InvalidClaim("aud")),
    }
}

/// Where the keys for one issuer come from: a JWKS URL (cached, refetched on unknown `kid`)
/// or a fixed set (JWKS file, PEM public key, HMAC secret).
#[derive(Clone, Copy)]
pub enum Keys<'a> {
    Remote(&'a JwksCache),
    Static(&'a KeySet),
}

impl Keys<'_> {
    async fn candidates(&self, kid: Option<&str>) -> Vec<std::sync::Arc<VerificationKey>> {
        match self {
            Keys::Remote(jwks) => jwks.candidates(kid).await,
            Keys::Static(set) => set.candidates(kid),
        }
    }
}

/// One step of a validation, for `login-bridge token verify`: what was checked and how it went.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<String, TokenError>,
}

fn note<T>(
    report: &mut Option<&mut Vec<Check>>,
    name: &'static str,
    result: Result<T, TokenError>,
    ok: impl FnOnce(&T) -> String,
) -> Result<T, TokenError> {
    if let Some(r) = report.as_deref_mut() {
        r.push(Check {
            name,
            outcome: match &result {
                Ok(v) => Ok(ok(v)),
                Err(e) => Err(e.clone()),
            },
        });
    }
    result
}

/// Verifies `token` against `keys` and the expectations; `report`, when given, collects every
/// check (passed or failed), and then claim checks all run, so an operator sees every reason.
pub async fn validate_steps_for(
    token: &str,
    keys: Keys<'_>,
    expect: &Expectations<'_>,
    report: Option<&mut Vec<Check>>,
) -> Result<ValidatedToken, TokenError> {
    validate_decoded(token, None, keys, expect, report).await
}

/// [`validate_steps_for`], with the token's payload already decoded and parsed by the caller
/// (`payload`: the claims of this same token's second segment, not trusted before its
/// signature verified), so it is not decoded or parsed twice.
pub async fn validate_decoded(
    token: &str,
    payload: Option<Claims>,
    keys: Keys<'_>,
    expect: &Expectations<'_>,
    mut report: Option<&mut Vec<Check>>,
) -> Result<ValidatedToken, TokenError> {
    let size = if token.len() > MAX_TOKEN_BYTES {
        Err(TokenError::TooLarge)
    } else {
        Ok(token.len())
    };
    note(&mut report, "size", size, |n| format!("{n} bytes"))?;
    let mut parts = token.split('.');
    let structure = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(_), Some(sig), None) if !sig.is_empty() => Ok(h),
        (Some(_), Some(_), Some(_), None) => Err(TokenError::BadSignature),
        _ => Err(TokenError::Malformed("a JWT has three dot-separated parts")),
    };
    let header_b64 = note(&mut report, "structure", structure, |_| {
        "header.payload.signature".into()
    })?;
    let (alg, kid, typ) = note(
        &mut report,
        "header",
        check_header(header_b64, expect.algorithms),
        |(alg, kid, _)| format!("alg {alg:?} allowed, kid {kid:?}"),
    )?;

    let candidates = keys.candidates(kid.as_deref()).await;
    let found = if candidates.is_empty() {
        Err(TokenError::UnknownKey)
    } else {
        Ok(candidates.len())
    };
    note(&mut report, "key", found, |n| {
        format!("{n} candidate key(s) of this issuer")
    })?;
    // Signed input and signature; the structure step above made sure there are three parts.
    let (message, signature_b64) = token.rsplit_once('.').unwrap_or((token, ""));
    let verified = candidates
        .iter()
        .any(|key| key.verify(alg, message.as_bytes(), signature_b64));
    let payload = if verified {
        payload_claims(message, payload)
    } else {
        Err(TokenError::BadSignature)
    };
    let claims = note(&mut report, "signature", payload, |_| {
        format!("verified ({alg:?})")
    })?;
    let checks = claim_checks(&claims, typ.as_deref(), expect, now(), report.is_some());
    let mut first_error = None;
    for (name, outcome) in checks {
        if let Err(e) = &outcome {
            first_error.get_or_insert_with(|| e.clone());
        }
        let _ = note(&mut report, name, outcome, Clone::clone);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    finish(claims)
}

/// The claims of a token whose signature verified, and their JSON text: `message` is
/// `header.payload`; `decoded`, its payload's bytes when the caller decoded them already.
fn payload_claims(message: &str, decoded: Option<Claims>) -> Result<Claims, TokenError> {
    match decoded {
        Some(claims) => Ok(claims),
        None => decode_payload(message.split_once('.').map_or("", |(_, p)| p)),
    }
}

/// The claims of a token's second segment (base64url JSON), not yet trusted.
pub(super) fn decode_payload(segment: &str) -> Result<Claims, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    // Checked as UTF-8 once here: the parser does not check each string again.
    Ok(Claims::parse(payload_text(bytes)?)?)
}

/// A decoded payload as text: JSON is UTF-8, so anything else is no JSON object.
fn payload_text(bytes: Vec<u8>) -> Result<String, TokenError> {
    String::from_utf8(bytes).map_err(|_| TokenError::Malformed("payload is not a JSON object"))
}

fn finish(claims: Claims) -> Result<ValidatedToken, TokenError> {
    let issuer = claims
        .str("iss")
        .ok_or(TokenError::MissingClaim("iss"))?
        .to_string();
    let expires_at = numeric_claim(&claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    Ok(ValidatedToken {
        claims,
        issuer,
        expires_at,
    })
}

/// The claim checks, separated from the signature so their boundaries are unit-tested.
pub fn check_claims(
    claims: Map<String, Value>,
    header_typ: Option<&str>,
    expect: &Expectations<'_>,
    now: i64,
) -> Result<ValidatedToken, TokenError> {
    let claims = Claims::from_map(&claims)?;
    for (_, outcome) in claim_checks(&claims, header_typ, expect, now, false) {
        outcome?;
    }
    finish(claims)
}

type ClaimCheck = (&'static str, Result<String, TokenError>);

/// Every claim check, each on its own, in validation order: time, issuer, audience, type,
/// then what the token kind requires. `detailed`: whether a passed check says what it found
/// (for `token verify`); otherwise an access token's passed checks are empty text, which costs
/// no allocation on the API's hot path.
fn claim_checks(
    claims: &Claims,
    header_typ: Option<&str>,
    expect: &Expectations<'_>,
    now: i64,
    detailed: bool,
) -> Vec<ClaimCheck> {
    let leeway = i64::try_from(expect.leeway_secs).unwrap_or(i64::MAX / 2);
    let text = |f: &dyn Fn() -> String| if detailed { f() } else { String::new() };
    let mut checks: Vec<ClaimCheck> = Vec::with_capacity(8);
    checks.push((
        "exp",
        numeric_claim(claims, "exp").and_then(|exp| match exp {
            None => Err(TokenError::MissingClaim("exp")),
            Some(exp) if now > exp.saturating_add(leeway) => Err(TokenError::Expired),
            Some(exp) => Ok(text(&|| {
                format!("expires in {} s (leeway {leeway} s)", exp - now)
            })),
        }),
    ));
    checks.push((
        "nbf",
        numeric_claim(claims, "nbf").and_then(|nbf| match nbf {
            Some(nbf) if nbf > now.saturating_add(leeway) => Err(TokenError::NotYetValid),
            Some(_) => Ok(text(&|| "reached".into())),
            None => Ok(text(&|| "absent".into())),
        }),
    ));
    let iat = numeric_claim(claims, "iat");
    checks.push((
        "iat",
        iat.clone().and_then(|iat| match (iat, &expect.kind) {
            (Some(iat), _) if iat > now.saturating_add(leeway) => Err(TokenError::IssuedInFuture),
            (Some(iat), _) => Ok(text(&|| format!("issued {} s ago", now - iat))),
            (
                None,
                TokenKind::Id { .. } | TokenKind::Logout { .. } | TokenKind::Assertion { .. },
            ) => Err(TokenError::MissingClaim("iat")),
            (None, TokenKind::Access { .. }) => Ok(text(&|| "absent".into())),
        }),
    ));
    checks.push((
        "iss",
        match claims.get("iss") {
            None => Err(TokenError::MissingClaim("iss")),
            Some(ClaimValue::Str(iss)) if iss == expect.issuer => Ok(text(&|| iss.to_string())),
            Some(ClaimValue::Str(_)) => Err(TokenError::WrongIssuer),
            Some(_) => Err(TokenError::InvalidClaim("iss")),
        },
    ));
    let aud = audiences(claims);
    match &expect.kind {
        TokenKind::Access { audiences: allowed } => {
            checks.push((
                "aud",
                aud.or_else(|e| match e {
                    // Without an audience to check, none need be there (the bridge's own
                    // tokens for privacyIDEA carry none: PyJWT refuses any).
                    TokenError::MissingClaim(_) if allowed.is_empty() => Ok(Vec::new()),
                    e => Err(e),
                })
                .and_then(|aud| {
                    if allowed.is_empty() {
                        Ok(text(&|| {
                            "not checked (audience check disabled for this issuer)".into()
                        }))
                    } else if aud.iter().any(|a| allowed.iter().any(|x| x == a)) {
                        Ok(text(&|| format!("{aud:?}")))
                    } else {
                        Err(wrong_audience(&aud, one_of(allowed)))
                    }
                }),
            ));
            // Keycloak marks its token kinds in a `typ` claim; RFC 9068 uses the header.
            let claim_typ = claims.str("typ");
            let typ_ok = claim_typ.is_none_or(|k| k.eq_ignore_ascii_case("bearer"))
                && match (header_typ, expect.required_typ) {
                    (Some(t), Some(required)) => t.eq_ignore_ascii_case(required),
                    (None, Some(_)) => false,
                    (Some(t), None) => ["jwt", "at+jwt", "application/at+jwt"]
                        .iter()
                        .any(|k| t.eq_ignore_ascii_case(k)),
                    (None, None) => true,
                };
            checks.push((
                "typ",
                if typ_ok {
                    Ok(text(&|| {
                        format!("header {header_typ:?}, claim {claim_typ:?}")
                    }))
                } else {
                    Err(TokenError::WrongType)
                },
            ));
            for name in expect.required_claims {
                checks.push((
                    "required claim",
                    if claims.contains(name) {
                        Ok(text(&|| name.clone()))
                    } else {
                        Err(TokenError::MissingRequiredClaim(name.clone()))
                    },
                ));
            }
        }
        TokenKind::Id {
            client_id,
            trusted_audiences,
            nonce,
        } => {
            let several = aud.as_ref().is_ok_and(|aud| aud.len() > 1);
            checks.push((
                "aud",
                aud.and_then(|aud| {
                    let untrusted =
                        |a: &&str| a != client_id && !trusted_audiences.iter().any(|t| t == a);
                    if aud.contains(client_id) && !aud.iter().any(untrusted) {
                        Ok(format!("{aud:?}"))
                    } else {
                        let besides = if trusted_audiences.is_empty() {
                            "nothing else".to_string()
                        } else {
                            format!("besides it only {trusted_audiences:?}")
                        };
                        Err(wrong_audience(&aud, format!("{client_id:?}, {besides}")))
                    }
                }),
            ));
            checks.push((
                "azp",
                match claims.get("azp") {
                    Some(azp) if azp.as_str() != Some(*client_id) => Err(
                        TokenError::WrongAuthorizedParty(format!("expected {client_id:?}")),
                    ),
                    // OIDC Core §3.1.3.7, step 4: with several audiences the client must be
                    // named as the party the token was issued to.
                    None if several => Err(TokenError::WrongAuthorizedParty(format!(
                        "the token has several audiences but no azp; expected {client_id:?}"
                    ))),
                    Some(_) => Ok("this client".into()),
                    None => Ok("absent (one audience)".into()),
                },
            ));
            checks.push((
                "sub",
                match claims.get("sub") {
                    Some(ClaimValue::Str(s)) if !s.is_empty() => Ok(s.to_string()),
                    _ => Err(TokenError::MissingClaim("sub")),
                },
            ));
            checks.push((
                "nonce",
                match (nonce, claims.str("nonce")) {
                    (None, _) => Ok("not expected".into()),
                    (Some(expected), Some(got)) if got == *expected => {
                        Ok("matches this login".into())
                    }
                    _ => Err(TokenError::NonceMismatch),
                },
            ));
            checks.push((
                "typ",
                match claims.str("typ") {
                    Some(kind) if !kind.eq_ignore_ascii_case("id") => Err(TokenError::WrongType),
                    _ => Ok("ID token".into()),
                },
            ));
        }
        TokenKind::Logout { client_id } => logout_checks(&mut checks, claims, aud, client_id),
        TokenKind::Assertion { subject, audiences } => {
            assertion_checks(&mut checks, claims, aud, subject, audiences)
        }
    }
    checks
}

/// The claims of RFC 7523 section 3 besides time and issuer.
fn assertion_checks(
    checks: &mut Vec<ClaimCheck>,
    claims: &Claims,
    aud: Result<Vec<&str>, TokenError>,
    subject: &str,
    audiences: &[&str],
) {
    checks.push((
        "aud",
        aud.and_then(|aud| {
            if aud.iter().any(|a| audiences.contains(a)) {
                Ok(format!("{aud:?}"))
            } else {
                Err(wrong_audience(
                    &aud,
                    one_of(&audiences.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
                ))
            }
        }),
    ));
    checks.push((
        "sub",
        match claims.get("sub") {
            Some(ClaimValue::Str(s)) if s == subject => Ok(s.to_string()),
            // RFC 7523 section 3: the subject of a client's own assertion is the client.
            Some(ClaimValue::Str(_)) => Err(TokenError::WrongIssuer),
            Some(_) => Err(TokenError::InvalidClaim("sub")),
            None => Err(TokenError::MissingClaim("sub")),
        },
    ));
    checks.push((
        "jti",
        match claims.get("jti") {
            None => Ok("absent".into()),
            Some(ClaimValue::Str(j)) if !j.is_empty() && j.len() <= 256 => Ok("present".into()),
            Some(_) => Err(TokenError::InvalidClaim("jti")),
        },
    ));
}

/// The claims of OIDC Back-Channel Logout 1.0, section 2.4.
fn logout_checks(
    checks: &mut Vec<ClaimCheck>,
    claims: &Claims,
    aud: Result<Vec<&str>, TokenError>,
    client_id: &str,
) {
    checks.push((
        "aud",
        aud.and_then(|aud| {
            if aud.contains(&client_id) {
                Ok(client_id.to_string())
            } else {
                Err(wrong_audience(&aud, format!("{client_id:?} among them")))
            }
        }),
    ));
    checks.push((
        "jti",
        match claims.get("jti") {
            Some(ClaimValue::Str(j)) if !j.is_empty() => Ok("present".into()),
            Some(_) => Err(TokenError::InvalidClaim("jti")),
            None => Err(TokenError::MissingClaim("jti")),
        },
    ));
    checks.push((
        "events",
        match claims.get("events").and_then(ClaimValue::as_object) {
            Some(events)
                if events
                    .get(BACKCHANNEL_LOGOUT_EVENT)
                    .is_some_and(ClaimValue::is_object) =>
            {
                Ok("back-channel logout".into())
            }
            _ => Err(TokenError::NotALogoutToken(
                "events has no back-channel logout member",
            )),
        },
    ));
    let non_empty = |name| claims.str(name).is_some_and(|v| !v.is_empty());
    checks.push((
        "sid/sub",
        if non_empty("sid") || non_empty("sub") {
            Ok("present".into())
        } else {
            Err(TokenError::NotALogoutToken("neither sid nor sub"))
        },
    ));
    checks.push((
        "nonce",
        if claims.contains("nonce") {
            Err(TokenError::NotALogoutToken("it carries a nonce"))
        } else {
            Ok("absent".into())
        },
    ));
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
            required_typ: None,
            required_claims: &[],
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn api() -> Vec<String> {
        vec!["my-api".to_string()]
    }

    #[test]
    fn the_header_rules_hold_on_the_fast_and_the_slow_path() {
        let h = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let rs = &[Algorithm::RS256][..];
        let ok = check_header(&h(json!({"alg": "RS256", "kid": "k1", "typ": "JWT"})), rs);
        assert_eq!(
            ok,
            Ok((Algorithm::RS256, Some("k1".into()), Some("JWT".into())))
        );
        let no_kid = check_header(&h(json!({"alg": "RS256"})), rs);
        assert_eq!(no_kid, Ok((Algorithm::RS256, None, None)));
        for (header, want) in [
            (
                json!({"alg": "RS256", "kid": null}),
                TokenError::Malformed("kid is not a string"),
            ),
            (
                json!({"alg": "RS256", "kid": 7}),
                TokenError::Malformed("kid is not a string"),
            ),
            (
                json!({"alg": "RS256", "jwk": {}}),
                TokenError::ForbiddenHeader("jwk"),
            ),
            (
                json!({"alg": "RS256", "x5c": []}),
                TokenError::ForbiddenHeader("x5c"),
            ),
            (
                json!({"alg": "RS256", "crit": ["b64"]}),
                TokenError::Malformed("critical header extensions are not supported"),
            ),
            (
                json!({"kid": "k1"}),
                TokenError::Malformed("header has no alg"),
            ),
            (
                json!({"alg": 256}),
                TokenError::Malformed("header has no alg"),
            ),
            (
                json!({"alg": "HS256"}),
                TokenError::AlgorithmNotAllowed("HS256".into(), vec!["RS256".into()]),
            ),
            (
                json!({"alg": "none"}),
                TokenError::AlgorithmNotAllowed("none".into(), vec!["RS256".into()]),
            ),
        ] {
            assert_eq!(check_header(&h(header.clone()), rs), Err(want), "{header}");
        }
        assert_eq!(
            check_header("bm90IGpzb24", rs),
            Err(TokenError::Malformed("header is not JSON"))
        );
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
            Some(TokenError::WrongAudience {
                found: vec!["account".into()],
                expected: "\"my-api\"".into()
            })
        );
        let c = claims(json!({"iss": ISS, "exp": NOW + 60}));
        assert_eq!(
            check_claims(c, None, &access(&aud), NOW).err(),
            Some(TokenError::MissingClaim("aud"))
        );
    }

    #[test]
    fn an_issuer_that_checks_no_audience_needs_none_but_refuses_a_malformed_one() {
        let none: Vec<String> = Vec::new();
        let c = claims(json!({"iss": ISS, "exp": NOW + 60}));
        assert!(check_claims(c, None, &access(&none), NOW).is_ok());
        let c = claims(json!({"iss": ISS, "aud": "anything", "exp": NOW + 60}));
        assert!(check_claims(c, None, &access(&none), NOW).is_ok());
        let c = claims(json!({"iss": ISS, "aud": 7, "exp": NOW + 60}));
        assert_eq!(
            check_claims(c, None, &access(&none), NOW).err(),
            Some(TokenError::InvalidClaim("aud"))
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
                trusted_audiences: &[],
                nonce,
            },
            required_typ: None,
            required_claims: &[],
        };
        let ok = json!({"iss": ISS, "aud": "ui", "exp": NOW + 60, "iat": NOW, "sub": "u", "nonce": "n1"});
        assert!(check_claims(claims(ok.clone()), None, &expect(Some("n1")), NOW).is_ok());
        assert_eq!(
            check_claims(claims(ok), None, &expect(Some("n2")), NOW).err(),
            Some(TokenError::NonceMismatch)
        );
        let extra = json!({"iss": ISS, "aud": ["ui", "evil"], "exp": NOW + 60, "iat": NOW, "sub": "u", "nonce": "n1"});
        assert!(matches!(
            check_claims(claims(extra), None, &expect(Some("n1")), NOW).err(),
            Some(TokenError::WrongAudience { .. })
        ));
        let no_iat = json!({"iss": ISS, "aud": "ui", "exp": NOW + 60, "sub": "u", "nonce": "n1"});
        assert_eq!(
            check_claims(claims(no_iat), None, &expect(Some("n1")), NOW).err(),
            Some(TokenError::MissingClaim("iat"))
        );
    }

    #[test]
    fn a_configured_typ_and_required_claims_are_enforced() {
        let aud = api();
        let required = vec!["email".to_string()];
        let expect = Expectations {
            issuer: ISS,
            algorithms: &[Algorithm::RS256],
            leeway_secs: 0,
            kind: TokenKind::Access { audiences: &aud },
            required_typ: Some("at+jwt"),
            required_claims: &required,
        };
        let with_email = json!({"iss": ISS, "aud": "my-api", "exp": NOW + 60, "email": "a@b"});
        assert!(check_claims(claims(with_email.clone()), Some("at+JWT"), &expect, NOW).is_ok());
        assert_eq!(
            check_claims(claims(with_email.clone()), Some("JWT"), &expect, NOW).err(),
            Some(TokenError::WrongType)
        );
        assert_eq!(
            check_claims(claims(with_email), None, &expect, NOW).err(),
            Some(TokenError::WrongType)
        );
        let without = json!({"iss": ISS, "aud": "my-api", "exp": NOW + 60});
        assert_eq!(
            check_claims(claims(without), Some("at+jwt"), &expect, NOW).err(),
            Some(TokenError::MissingRequiredClaim("email".into()))
        );
    }

    #[test]
    fn an_assertion_needs_its_user_as_a_string_sub_and_the_bridge_as_audience() {
        let audiences = ["https://bridge", "https://bridge/oauth/token"];
        let expect = Expectations {
            issuer: "svc-1",
            algorithms: &[Algorithm::ES256],
            leeway_secs: 5,
            kind: TokenKind::Assertion {
                subject: "svc-1",
                audiences: &audiences,
            },
            required_typ: None,
            required_claims: &[],
        };
        let ok = json!({"iss": "svc-1", "sub": "svc-1", "aud": "https://bridge", "iat": NOW, "exp": NOW + 60});
        assert!(check_claims(claims(ok.clone()), None, &expect, NOW).is_ok());
        for (patch, want) in [
            (json!({"sub": "svc-2"}), TokenError::WrongIssuer),
            (json!({"sub": 1}), TokenError::InvalidClaim("sub")),
            (json!({"iss": ["svc-1"]}), TokenError::InvalidClaim("iss")),
            (
                json!({"aud": "https://other"}),
                TokenError::WrongAudience {
                    found: vec!["https://other".into()],
                    expected: "one of [\"https://bridge\", \"https://bridge/oauth/token\"]".into(),
                },
            ),
            (
                json!({"aud": ["https://bridge", 1]}),
                TokenError::InvalidClaim("aud"),
            ),
            (json!({"iat": "0"}), TokenError::InvalidClaim("iat")),
            (json!({"jti": 7}), TokenError::InvalidClaim("jti")),
            (json!({"jti": ""}), TokenError::InvalidClaim("jti")),
        ] {
            let mut c = ok.clone();
            for (k, v) in patch.as_object().unwrap_or(&Map::new()) {
                c[k] = v.clone();
            }
            assert_eq!(
                check_claims(claims(c), None, &expect, NOW).err(),
                Some(want),
                "{patch}"
            );
        }
        let mut no_iat = ok;
        no_iat.as_object_mut().map(|c| c.remove("iat"));
        assert_eq!(
            check_claims(claims(no_iat), None, &expect, NOW).err(),
            Some(TokenError::MissingClaim("iat"))
        );
    }

    #[test]
    fn the_kid_is_read_only_from_a_header_that_passes_the_header_rules() {
        let token = |h: Value| format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(h.to_string()));
        let es = &[Algorithm::ES256][..];
        assert_eq!(
            header_kid(&token(json!({"alg": "ES256", "kid": "k1"})), es),
            Ok(Some("k1".into()))
        );
        assert_eq!(
            header_kid(
                &token(json!({"alg": "ES256", "kid": "k1", "jku": "https://x"})),
                es
            ),
            Err(TokenError::ForbiddenHeader("jku"))
        );
        assert_eq!(
            header_kid(&token(json!({"alg": "HS256", "kid": "k1"})), es),
            Err(TokenError::AlgorithmNotAllowed(
                "HS256".into(),
                vec!["ES256".into()]
            ))
        );
        assert!(header_kid("a.b", es).is_err());
    }

    #[test]
    fn header_alg_none_and_embedded_keys_are_refused() {
        let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        for alg in ["none", "None", "NONE", "HS256"] {
            assert_eq!(
                check_header(&enc(json!({"alg": alg})), &[Algorithm::RS256]).err(),
                Some(TokenError::AlgorithmNotAllowed(
                    alg.into(),
                    vec!["RS256".into()]
                ))
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

    /// What a refusal says: the algorithms allowed, the audiences found and the one expected;
    /// never a claim value of the user.
    #[test]
    fn refusals_name_what_was_expected_and_what_came() {
        let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let refused = check_header(
            &enc(json!({"alg": "HS256"})),
            &[Algorithm::RS256, Algorithm::ES256],
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("algorithm \"HS256\" is not allowed for this issuer (allowed: RS256, ES256)")
        );
        let aud = api();
        let c = claims(
            json!({"iss": ISS, "aud": ["account", "other"], "sub": "alice-secret-id",
                              "exp": NOW + 60}),
        );
        let message = check_claims(c, None, &access(&aud), NOW)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            message,
            "audience does not match: the token is for [\"account\", \"other\"], expected \"my-api\""
        );
        assert!(!message.contains("alice"), "{message}");
        // Many long audiences are cut short.
        let many: Vec<String> = (0..50)
            .map(|i| format!("{i}-{}", "x".repeat(500)))
            .collect();
        let c = claims(json!({"iss": ISS, "aud": many, "exp": NOW + 60}));
        let message = check_claims(c, None, &access(&aud), NOW)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.len() < 1_200, "{}", message.len());
    }

    fn id_token<'a>(trusted: &'a [String]) -> Expectations<'a> {
        Expectations {
            issuer: ISS,
            algorithms: &[Algorithm::RS256],
            leeway_secs: 0,
            kind: TokenKind::Id {
                client_id: "ui",
                trusted_audiences: trusted,
                nonce: None,
            },
            required_typ: None,
            required_claims: &[],
        }
    }

    /// OIDC Core §3.1.3.7: extra audiences the client trusts (the API's, or listed) are
    /// accepted when `azp` names the client; anything else is still refused.
    #[test]
    fn an_id_token_with_trusted_extra_audiences_needs_azp_to_be_this_client() {
        let trusted = vec!["my-api".to_string(), "other-app".to_string()];
        let token = |aud: Value, azp: Option<&str>| {
            let mut c = json!({"iss": ISS, "aud": aud, "exp": NOW + 60, "iat": NOW, "sub": "u"});
            if let Some(azp) = azp {
                c["azp"] = json!(azp);
            }
            claims(c)
        };
        let check = |aud: Value, azp: Option<&str>| {
            check_claims(token(aud, azp), None, &id_token(&trusted), NOW).err()
        };
        assert_eq!(check(json!(["ui", "my-api"]), Some("ui")), None);
        assert_eq!(
            check(json!(["my-api", "ui", "other-app"]), Some("ui")),
            None
        );
        assert_eq!(check(json!("ui"), None), None);
        assert_eq!(check(json!(["ui"]), None), None);
        // Several audiences without azp, or with azp naming another client.
        assert!(matches!(
            check(json!(["ui", "my-api"]), None),
            Some(TokenError::WrongAuthorizedParty(_))
        ));
        assert!(matches!(
            check(json!(["ui", "my-api"]), Some("my-api")),
            Some(TokenError::WrongAuthorizedParty(_))
        ));
        // An untrusted audience, or none that is this client.
        assert_eq!(
            check(json!(["ui", "my-api", "evil"]), Some("ui")),
            Some(TokenError::WrongAudience {
                found: vec!["ui".into(), "my-api".into(), "evil".into()],
                expected: "\"ui\", besides it only [\"my-api\", \"other-app\"]".into(),
            })
        );
        assert!(matches!(
            check(json!(["my-api"]), Some("ui")),
            Some(TokenError::WrongAudience { .. })
        ));
        // Without trusted audiences, an extra one is refused as before.
        assert_eq!(
            check_claims(
                token(json!(["ui", "my-api"]), Some("ui")),
                None,
                &id_token(&[]),
                NOW
            )
            .err(),
            Some(TokenError::WrongAudience {
                found: vec!["ui".into(), "my-api".into()],
                expected: "\"ui\", nothing else".into(),
            })
        );
    }
}
