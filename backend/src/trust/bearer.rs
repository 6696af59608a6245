//! Reading an access token off a request: exactly one `Authorization` header, scheme `Bearer`
//! (RFC 6750 section 2.1) or `DPoP` (RFC 9449 section 7.1, a token bound to the caller's key);
//! never a cookie, never `?access_token=`.

use axum::http::{HeaderMap, header};

/// Why a request carries no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("missing bearer token")]
    Missing,
    #[error("more than one Authorization header")]
    Repeated,
    #[error("Authorization must be \"Bearer <token>\" or \"DPoP <token>\"")]
    Malformed,
}

/// How the token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    /// `DPoP`: the token is bound to a key and comes with a proof (RFC 9449).
    Dpop,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => "DPoP",
        }
    }
}

/// The single `Bearer` token of a request (a `DPoP` one is malformed here).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    match access_token(headers)? {
        (Scheme::Bearer, token) => Ok(token),
        (Scheme::Dpop, _) => Err(BearerError::Malformed),
    }
}

/// The single access token of a request, `Bearer` or `DPoP`, and how it came.
pub fn access_token(headers: &HeaderMap) -> Result<(Scheme, &str), BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(BearerError::Missing);
    };
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    // ASCII only, as `HeaderValue::to_str` asks, checked a word at a time: a token is long and
    // this runs on every API call (control characters never get past hyper's header parser).
    let bytes = value.as_bytes();
    if !bytes.is_ascii() {
        return Err(BearerError::Malformed);
    }
    let value = std::str::from_utf8(bytes).map_err(|_| BearerError::Malformed)?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(BearerError::Malformed);
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(BearerError::Malformed);
    }
    // Auth schemes are case-insensitive (RFC 9110 section 11.1).
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok((Scheme::Bearer, token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Ok((Scheme::Dpop, token))
    } else {
        Err(BearerError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                h.append(header::AUTHORIZATION, v);
            }
        }
        h
    }

    #[test]
    fn exactly_one_ascii_bearer_header_gives_its_token() {
        assert_eq!(bearer_token(&headers(&[b"Bearer abc.def"])), Ok("abc.def"));
        assert_eq!(bearer_token(&headers(&[b"bearer  abc "])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&[])), Err(BearerError::Missing));
        assert_eq!(
            bearer_token(&headers(&[b"Bearer a", b"Bearer b"])),
            Err(BearerError::Repeated)
        );
        for bad in [
            &b"Basic YWxpY2U6eA=="[..],
            b"Bearer ",
            b"Bearer",
            "Bearer t\u{f6}ken".as_bytes(),
            b"Bearer \xff\xfe",
            b"DPoP ",
        ] {
            assert_eq!(
                bearer_token(&headers(&[bad])),
                Err(BearerError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_dpop_token_is_read_with_its_scheme_and_is_no_bearer_token() {
        assert_eq!(
            access_token(&headers(&[b"DPoP abc.def"])),
            Ok((Scheme::Dpop, "abc.def"))
        );
        assert_eq!(
            access_token(&headers(&[b"dpop abc"])),
            Ok((Scheme::Dpop, "abc"))
        );
        assert_eq!(
            access_token(&headers(&[b"Bearer abc"])),
            Ok((Scheme::Bearer, "abc"))
        );
        assert_eq!(
            bearer_token(&headers(&[b"DPoP abc"])),
            Err(BearerError::Malformed)
        );
    }
}
