//! `return_to`: where the browser goes after a login. Only same-origin relative paths are
//! accepted, so the bridge cannot be used as an open redirector.

/// Why a `return_to` was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("return_to must be a relative path on this site (like /page?x=1)")]
pub struct InvalidReturnTo;

/// Longest accepted `return_to`.
const MAX_LEN: usize = 2048;

/// Accepts `/path[?query][#fragment]` and nothing that a browser could resolve to another
/// origin: no scheme, no `//` or `/\` authority, no backslashes or control characters (raw
/// or percent-encoded), no userinfo tricks.
pub fn validate(raw: &str) -> Result<String, InvalidReturnTo> {
    if raw.is_empty() || raw.len() > MAX_LEN || !raw.starts_with('/') {
        return Err(InvalidReturnTo);
    }
    // Check the raw string and its percent-decoded forms (twice: double encoding).
    let once = urlencoding::decode(raw)
        .map_err(|_| InvalidReturnTo)?
        .into_owned();
    let twice = urlencoding::decode(&once)
        .map_err(|_| InvalidReturnTo)?
        .into_owned();
    for form in [raw, once.as_str(), twice.as_str()] {
        let bad_start = form.starts_with("//") || form.starts_with("/\\");
        let bad_char = form.chars().any(|c| c.is_control() || c == '\\');
        if bad_start || bad_char {
            return Err(InvalidReturnTo);
        }
    }
    // The final word: resolved against a dummy origin, it must stay on that origin.
    let base = url::Url::parse("http://bridge.invalid/").map_err(|_| InvalidReturnTo)?;
    let resolved = base.join(raw).map_err(|_| InvalidReturnTo)?;
    if resolved.origin() != base.origin() || !resolved.username().is_empty() {
        return Err(InvalidReturnTo);
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_accepted() {
        for ok in ["/", "/api-demo", "/a/b?x=1&y=%2F", "/page#frag"] {
            assert_eq!(validate(ok).as_deref(), Ok(ok), "{ok}");
        }
    }

    #[test]
    fn open_redirect_attempts_are_refused() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://x@evil.example",
            "https://evil.example",
            "evil.example",
            "/%2F/evil.example",
            "/%5Cevil.example",
            "/%09/evil.example",
            "/%0d%0aSet-Cookie:x=y",
            "/%252F%252Fevil.example",
            "%2F%2Fevil.example",
            "",
            "javascript:alert(1)",
            "/\t/evil.example",
        ] {
            assert_eq!(
                validate(bad),
                Err(InvalidReturnTo),
                "{bad:?} must be refused"
            );
        }
    }
}
