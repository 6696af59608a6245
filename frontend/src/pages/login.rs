//! The login page (`/login`): where a user lands when no session exists or a silent sign-in
//! came back with an error. Explains what happened in words and offers the SSO sign-in, and,
//! when the bridge keeps local accounts, a username/password form beside it; a user who is
//! already signed in is sent on to `return_to`.
//!
//! The form is plain HTML posting to the bridge (`/auth/local/login`), no script: the bridge
//! answers with a redirect to `return_to`, or back here with an error this page words like any
//! other. The password never passes through the app's code.
//!
//! The page is one centred card: the product's name (`ui.title`, which the bridge writes into
//! `index.html`'s `<title>`), the SSO button first, then the local accounts' labelled fields
//! under a divider. Messages go to a live region, so a screen reader announces them.

use leptos::prelude::*;

use frontend::auth::{AuthState, AuthStatus};
use frontend::nav::{safe_return_to, sign_in_url};

use crate::router::Router;

/// The local accounts' form fields: static markup, which costs the WASM far less than built
/// elements (the SPA has a size budget). Labels name the inputs for assistive technology;
/// `autocomplete` lets password managers fill them.
const LOCAL_FIELDS: &str = r#"<p class="divider">or sign in with a local account</p><div class="field"><label for="local-username">Username</label><input id="local-username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required></div><div class="field"><label for="local-password">Password</label><input id="local-password" name="password" type="password" autocomplete="current-password" required></div><button id="local-submit" class="secondary" type="submit">Sign in</button>"#;

/// The product's name: the page's `<title>`, which the bridge fills from `ui.title` (under
/// `trunk serve`, the file's own "login-bridge").
pub fn product_name() -> String {
    document().title()
}

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
            param("signed_out").as_deref() == Some("1"),
        )
        .or_else(|| auth.problem())
    };
    let sso_href = move || sign_in_url(&return_to(), false);
    // The live region is in the page before its text: text that arrives with the region
    // itself is not announced by every screen reader.
    let mounted = RwSignal::new(false);
    Effect::new(move || mounted.set(true));
    view! {
        <section class="card signin">
            // The product's mark comes from the style sheet (`.product::before`).
            <p class="product">{product_name()}</p>
            <h1>"Sign in"</h1>
            <p id="login-message" role="status" aria-live="polite">
                {move || if mounted.get() { message() } else { None }}
            </p>
            // A plain link: a full navigation to the bridge, not a client-side route.
            <a id="sso-login" class="button" href=sso_href>
                "Sign in with SSO"
            </a>
            // Hidden rather than absent when off: one element type fewer in the WASM.
            <form id="local-login" method="post" action="/auth/local/login"
                hidden=move || auth.local_accounts() != Some(true)>
                <input type="hidden" name="return_to" value=return_to />
                <div inner_html=LOCAL_FIELDS />
            </form>
        </section>
    }
}

/// What to tell the user, from the query parameters the bridge or the provider put on the URL.
fn login_message(
    error: Option<&str>,
    description: Option<&str>,
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
        _ => match description.map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => d.chars().take(MAX_DESCRIPTION_CHARS).collect(),
            None => "Sign-in failed. Please try again.".to_owned(),
        },
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::login_message;

    #[test]
    fn a_failed_silent_sign_in_reads_as_an_inactive_sso_session() {
        for error in ["login_required", "interaction_required"] {
            assert_eq!(
                login_message(Some(error), Some("ignored"), false).as_deref(),
                Some("Your single sign-on session is not active. Sign in to continue.")
            );
        }
    }

    #[test]
    fn a_denied_sign_in_says_so() {
        assert_eq!(
            login_message(Some("access_denied"), None, false).as_deref(),
            Some("Sign-in was cancelled or denied.")
        );
    }

    #[test]
    fn other_errors_show_their_description_or_a_generic_text() {
        assert_eq!(
            login_message(Some("server_error"), Some("IdP down"), false).as_deref(),
            Some("IdP down")
        );
        assert_eq!(
            login_message(Some("server_error"), Some("  "), false).as_deref(),
            Some("Sign-in failed. Please try again.")
        );
        let long = "x".repeat(500);
        assert_eq!(
            login_message(Some("e"), Some(&long), false).map(|m| m.len()),
            Some(200)
        );
    }

    #[test]
    fn signing_out_wins_and_no_error_means_no_message() {
        assert_eq!(
            login_message(Some("access_denied"), None, true).as_deref(),
            Some("You have signed out.")
        );
        assert_eq!(login_message(None, None, false), None);
    }
}
