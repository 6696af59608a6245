//! The shell of the SPA: the routes (all paths come from [`Page`]), the nav bar with the
//! signed-in user and the sign-out button, and the guard that keeps signed-out users off the
//! pages that need a token.

use leptos::prelude::*;
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::hooks::{use_location, use_navigate};
use leptos_router::{NavigateOptions, StaticSegment};

use crate::auth::{AuthState, AuthStatus};
use crate::pages::{api_demo::ApiDemo, home::Home, login::Login, not_found::NotFound};

/// Every page the router knows, so that no path is spelled twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Home,
    Login,
    ApiDemo,
}

impl Page {
    /// The absolute path, for links and navigation.
    pub const fn path(self) -> &'static str {
        match self {
            Self::Home => "/",
            Self::Login => "/login",
            Self::ApiDemo => "/api-demo",
        }
    }

    /// The same path as the router matches it.
    fn route(self) -> (StaticSegment<&'static str>,) {
        let path = self.path();
        (StaticSegment(path.strip_prefix('/').unwrap_or(path)),)
    }

    /// The login page, asked to come back to `return_to` after signing in.
    pub fn login_returning_to(return_to: &str) -> String {
        format!(
            "{}?return_to={}",
            Self::Login.path(),
            crate::api::encode(return_to)
        )
    }
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
    format!(
        "{}{}",
        location.pathname().unwrap_or_default(),
        location.search().unwrap_or_default()
    )
}

/// Whether the browser is on the login page (read from the window, so usable outside the
/// router).
pub fn on_login_page() -> bool {
    window().location().pathname().ok().as_deref() == Some(Page::Login.path())
}

/// The root component: provides [`AuthState`], starts the session check and sets up routing.
#[component]
pub fn App() -> impl IntoView {
    let auth = AuthState::provide();
    auth.start();

    view! {
        <Router>
            <NavBar />
            <main>
                <Routes fallback=NotFound>
                    <Route path=Page::Home.route() view=|| view! { <RequireSignIn><Home /></RequireSignIn> } />
                    <Route path=Page::Login.route() view=Login />
                    <Route
                        path=Page::ApiDemo.route()
                        view=|| view! { <RequireSignIn><ApiDemo /></RequireSignIn> }
                    />
                </Routes>
            </main>
        </Router>
    }
}

/// Navigation links, plus who is signed in and the sign-out button once someone is.
#[component]
fn NavBar() -> impl IntoView {
    let auth = AuthState::from_context();
    let navigate = use_navigate();
    let sign_out_error = RwSignal::new(None::<String>);

    let sign_out = Action::new_local(move |_: &()| {
        let navigate = navigate.clone();
        async move {
            sign_out_error.set(None);
            match auth.sign_out().await {
                Ok(Some(end_session_url)) => {
                    // Ends the provider's SSO session too; the provider then sends the browser
                    // to the `post_logout_redirect_uri` the bridge put into this URL.
                    if window().location().assign(&end_session_url).is_ok() {
                        return;
                    }
                    leave_signed_out(&navigate, auth);
                }
                Ok(None) => leave_signed_out(&navigate, auth),
                Err(err) => sign_out_error.set(Some(format!("Sign-out failed: {err}"))),
            }
        }
    });

    let display_name = move || {
        auth.user()
            .map(|user| user.username.or(user.name).unwrap_or(user.id))
            .unwrap_or_default()
    };

    view! {
        <header>
            <nav>
                <A href=Page::Home.path()>"Home"</A>
                <A href=Page::ApiDemo.path()>"API demo"</A>
                <span class="spacer"></span>
                <Show when=move || auth.status() == AuthStatus::SignedIn>
                    <span id="whoami">{display_name}</span>
                    <button
                        id="sign-out"
                        on:click=move |_| {
                            sign_out.dispatch(());
                        }
                        disabled=move || sign_out.pending().get()
                    >
                        "Sign out"
                    </button>
                </Show>
            </nav>
            {move || sign_out_error.get().map(|msg| view! { <p class="error" id="sign-out-error">{msg}</p> })}
        </header>
    }
}

/// Sign-out without a provider end-session URL: straight to the login page's confirmation.
fn leave_signed_out(navigate: &impl Fn(&str, NavigateOptions), auth: AuthState) {
    // Navigate before flipping the status, so the guard of the page being left never sees
    // `SignedOut` while still on that page.
    navigate(
        &format!("{}?signed_out=1", Page::Login.path()),
        NavigateOptions::default(),
    );
    auth.finish_sign_out();
}

/// Renders its children only for a signed-in user; sends anyone else to the login page with the
/// current path and query as `return_to`.
#[component]
fn RequireSignIn(children: ChildrenFn) -> impl IntoView {
    let auth = AuthState::from_context();
    let navigate = use_navigate();
    // The router's location rather than the window's: after a link click the router moves on
    // before the address bar does.
    let location = use_location();

    Effect::new(move || {
        let pathname = location.pathname.get_untracked();
        if auth.status() == AuthStatus::SignedOut && pathname != Page::Login.path() {
            let search = location.search.get_untracked();
            let here = if search.is_empty() {
                pathname
            } else {
                format!("{pathname}?{search}")
            };
            navigate(
                &Page::login_returning_to(&here),
                NavigateOptions {
                    // Back from the login page should not land on a page that bounces again.
                    replace: true,
                    ..NavigateOptions::default()
                },
            );
        }
    });

    move || match auth.status() {
        AuthStatus::SignedIn => children().into_any(),
        AuthStatus::Loading => view! { <p class="muted">"Checking your session…"</p> }.into_any(),
        AuthStatus::SigningOut => view! { <p class="muted">"Signing out…"</p> }.into_any(),
        AuthStatus::SignedOut => {
            view! { <p class="muted">"Redirecting to sign-in…"</p> }.into_any()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn route_segments_drop_the_leading_slash() {
        assert_eq!(Page::Home.route().0.0, "");
        assert_eq!(Page::ApiDemo.route().0.0, "api-demo");
    }
}
