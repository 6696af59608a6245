//! Where things are: the SPA's page paths (one [`Page`] enum, so no path is spelled twice), the
//! bridge's sign-in URL, and the few facts about the browser's address that [`crate::auth`] and
//! the pages need. Kept apart from the router and from `auth`/`api` so that every other module
//! can use it without an import circle: this module imports none of them.

use leptos::prelude::window;

/// The bridge's endpoint that starts an OIDC sign-in (a full-page navigation, not a fetch).
const LOGIN_PATH: &str = "/auth/login";

/// Every page the SPA knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Home,
    Login,
    ApiDemo,
    /// The signed-in user's privacyIDEA tokens; linked only when the bridge announces a
    /// privacyIDEA upstream (`GET /auth/upstreams`).
    PrivacyIdea,
}

impl Page {
    const ALL: [Self; 4] = [Self::Home, Self::Login, Self::ApiDemo, Self::PrivacyIdea];

    /// The page shown at `path` (a trailing slash is ignored), `None` for any other path.
    pub fn from_path(path: &str) -> Option<Self> {
        let path = match path.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => trimmed,
            _ => path,
        };
        Self::ALL.into_iter().find(|page| page.path() == path)
    }

    /// The absolute path, for links, navigation and route matching.
    pub const fn path(self) -> &'static str {
        match self {
            Self::Home => "/",
            Self::Login => "/login",
            Self::ApiDemo => "/api-demo",
            Self::PrivacyIdea => "/privacyidea",
        }
    }
}

/// The login page, asked to come back to `return_to` after signing in.
pub fn login_returning_to(return_to: &str) -> String {
    [Page::Login.path(), "?return_to=", &encode(return_to)].concat()
}

/// Where a full-page navigation starts the OIDC sign-in at the bridge. With `silent`, it asks
/// the provider for `prompt=none`: signed in at once if an SSO session exists, otherwise back
/// to the login page with `error=login_required`.
pub fn sign_in_url(return_to: &str, silent: bool) -> String {
    let prompt = if silent { "?prompt=none&" } else { "?" };
    [LOGIN_PATH, prompt, "return_to=", &encode(return_to)].concat()
}

/// Keeps `return_to` to a same-origin relative path (as the bridge does), so a crafted login
/// link cannot send the user to another site after signing in.
pub fn safe_return_to(raw: Option<&str>) -> &str {
    match raw {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => Page::Home.path(),
    }
}

/// Path and query of the page the browser shows, e.g. `/api-demo?x=1`.
pub fn current_path_and_query() -> String {
    let location = window().location();
    location.pathname().unwrap_or_default() + &location.search().unwrap_or_default()
}

/// Whether the browser is on the login page (read from the window, so usable outside any
/// router).
pub fn on_login_page() -> bool {
    window().location().pathname().ok().as_deref() == Some(Page::Login.path())
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    String::from(web_sys::js_sys::encode_uri_component(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_is_found_at_its_own_path_and_nowhere_else() {
        for page in Page::ALL {
            assert_eq!(Page::from_path(page.path()), Some(page));
        }
        assert_eq!(Page::from_path("/api-demo/"), Some(Page::ApiDemo));
        assert_eq!(Page::from_path(""), None);
        assert_eq!(Page::from_path("/api-demo/x"), None);
        assert_eq!(Page::from_path("/nope"), None);
    }

    #[test]
    fn relative_paths_are_kept_as_return_to() {
        assert_eq!(safe_return_to(Some("/api-demo?x=1")), "/api-demo?x=1");
    }

    #[test]
    fn anything_that_could_leave_the_origin_falls_back_to_home() {
        for raw in [
            None,
            Some(""),
            Some("https://evil.example/"),
            Some("//evil.example/"),
            Some("/\\evil.example/"),
            Some("/a\nb"),
        ] {
            assert_eq!(safe_return_to(raw), "/", "{raw:?}");
        }
    }
}
