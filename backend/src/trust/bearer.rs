//! Reading a bearer token off a request (RFC 6750 section 2.1): exactly one
//! `Authorization: Bearer` header; never a cookie, never `?access_token=`.

use axum::http::{HeaderMap, header};

/// Why a request carries no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("missing bearer token")]
    Missing,
    #[error("more than one Authorization header")]
    Repeated,
    #[error("Authorization must be \"Bearer <token>\"")]
    Malformed,
}

/// The single bearer token of a request.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
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
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(BearerError::Malformed),
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
        ] {
            assert_eq!(
                bearer_token(&headers(&[bad])),
                Err(BearerError::Malformed),
                "{bad:?}"
            );
        }
    }
}
