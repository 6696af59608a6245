//! The login page (`/login`): where a user lands when no session exists or a silent sign-in
//! came back with an error. Explains what happened in words and offers the SSO sign-in; a user
//! who is already signed in is sent on to `return_to`.

use leptos::prelude::*;

use frontend::auth::{AuthState, AuthStatus};
use frontend::nav::{safe_return_to, sign_in_url};

use crate::router::Router;

/// `error_description` comes from the URL, so anyone can craft one: show it as text only
/// (Leptos escapes it) and not at any length.
const MAX_DESCRIPTION_CHARS: usize = 200;

#[component]
pub fn Login() -> impl IntoView {
    let auth = AuthState::from_context();
    let router = Router::from_context();
    let param = move |name: &str| router.query(name);
    let return_to = move || safe_return_to(param("return_to").as_deref()).to_owned();

    Effect::new(move || {
        if auth.status() == AuthStatus::SignedIn {
            router.navigate(&return_to(), true);
        }
    });

    let message = move || {
        login_message(
            param("error").as_deref(),
            param("error_description").as_deref(),
            param("reason").as_deref(),
            param("signed_out").as_deref() == Some("1"),
        )
        .or_else(|| auth.problem())
    };
    let sso_href = move || sign_in_url(&return_to(), false);

    view! {
        <section class="card">
            <h1>"Sign in"</h1>
            <p id="login-message">{message}</p>
            // A plain link: a full navigation to the bridge, not a client-side route.
            <a id="sso-login" class="button" href=sso_href>
                "Sign in with SSO"
            </a>
            // LOCAL ACCOUNTS (later issue): the username/password form for the bridge's local
            // accounts (break-glass admin, no IdP reachable) goes here, below the SSO button.
        </section>
    }
}

/// What to tell the user, from the query parameters the bridge or the provider put on the URL.
fn login_message(
    error: Option<&str>,
    description: Option<&str>,
    reason: Option<&str>,
    signed_out: bool,
) -> Option<String> {
    if signed_out {
        return Some("You have signed out.".to_owned());
    }
    let text = match error? {
        // What `prompt=none` answers when there is no SSO session to reuse.
        "login_required"
        | "interaction_required"
        | "consent_required"
        | "account_selection_required" => {
            "Your single sign-on session is not active. Sign in to continue.".to_owned()
        }
        "access_denied" => "Sign-in was cancelled or denied.".to_owned(),
        // The bridge refused the JWT a gateway in front of it put on the page request.
        "gateway_token" => gateway_reason(reason.unwrap_or_default()).to_owned(),
        _ => match description.map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => d.chars().take(MAX_DESCRIPTION_CHARS).collect(),
            None => "Sign-in failed. Please try again.".to_owned(),
        },
    };
    Some(text)
}

/// The bridge's reason code for a refused gateway JWT, in words. Only known codes are worded;
/// nothing else from the URL is shown.
fn gateway_reason(code: &str) -> &'static str {
    match code {
        "expired" => {
            "Your gateway's sign-in token has expired. Reload the page once your gateway has a \
             fresh one, or sign in with SSO."
        }
        "not_yet_valid" => {
            "Your gateway's sign-in token is not valid yet (check the clocks). Reload later, or \
             sign in with SSO."
        }
        "untrusted_issuer" => {
            "Your gateway's sign-in token comes from an issuer this site does not trust. Sign in \
             with SSO."
        }
        "wrong_audience" => {
            "Your gateway's sign-in token is meant for another application. Sign in with SSO."
        }
        "bad_signature" => {
            "Your gateway's sign-in token has a signature this site cannot verify. Sign in with \
             SSO."
        }
        "policy" => "Your gateway's sign-in token does not allow access here. Sign in with SSO.",
        _ => "Your gateway's sign-in token was not accepted. Sign in with SSO.",
    }
}

#[cfg(test)]
mod tests {
    use super::login_message;

    #[test]
    fn a_failed_silent_sign_in_reads_as_an_inactive_sso_session() {
        for error in ["login_required", "interaction_required"] {
            assert_eq!(
                login_message(Some(error), Some("ignored"), None, false).as_deref(),
                Some("Your single sign-on session is not active. Sign in to continue.")
            );
        }
    }

    #[test]
    fn a_denied_sign_in_says_so() {
        assert_eq!(
            login_message(Some("access_denied"), None, None, false).as_deref(),
            Some("Sign-in was cancelled or denied.")
        );
    }

    #[test]
    fn other_errors_show_their_description_or_a_generic_text() {
        assert_eq!(
            login_message(Some("server_error"), Some("IdP down"), None, false).as_deref(),
            Some("IdP down")
        );
        assert_eq!(
            login_message(Some("server_error"), Some("  "), None, false).as_deref(),
            Some("Sign-in failed. Please try again.")
        );
        let long = "x".repeat(500);
        assert_eq!(
            login_message(Some("e"), Some(&long), None, false).map(|m| m.len()),
            Some(200)
        );
    }

    #[test]
    fn signing_out_wins_and_no_error_means_no_message() {
        assert_eq!(
            login_message(Some("access_denied"), None, None, true).as_deref(),
            Some("You have signed out.")
        );
        assert_eq!(login_message(None, None, None, false), None);
    }

    #[test]
    fn a_refused_gateway_token_is_explained_by_its_reason_code() {
        let message = |reason| login_message(Some("gateway_token"), None, reason, false).unwrap();
        assert_eq!(
            message(Some("expired")),
            "Your gateway's sign-in token has expired. Reload the page once your gateway has a \
             fresh one, or sign in with SSO."
        );
        let cases = [
            ("not_yet_valid", "not valid yet"),
            ("untrusted_issuer", "issuer this site does not trust"),
            ("wrong_audience", "meant for another application"),
            ("bad_signature", "signature this site cannot verify"),
            ("policy", "does not allow access"),
            ("invalid", "was not accepted"),
        ];
        for (code, words) in cases {
            let text = message(Some(code));
            assert!(text.contains(words), "{code}: {text}");
            assert!(text.ends_with("Sign in with SSO.") || text.ends_with("sign in with SSO."));
        }
    }

    #[test]
    fn an_unknown_gateway_reason_gets_generic_words_and_nothing_from_the_url_is_shown() {
        for reason in [None, Some(""), Some("<b>owned</b>"), Some("expired ")] {
            assert_eq!(
                login_message(Some("gateway_token"), Some("a description"), reason, false)
                    .as_deref(),
                Some("Your gateway's sign-in token was not accepted. Sign in with SSO."),
                "{reason:?}"
            );
        }
    }
}
