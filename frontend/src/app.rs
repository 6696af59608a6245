//! The shell of the SPA: which page each path shows (all paths come from [`Page`]), the nav
//! bar with the signed-in user and the sign-out button (and the privacyIDEA link when the
//! bridge announces a privacyIDEA upstream), and the guard that keeps signed-out users
//! off the pages that need a token. (No `ErrorBoundary`: no page renders a `Result`, so it never
//! caught anything, and it cost 4.4 KB gzip of WASM.)

use leptos::prelude::*;
use leptos::task::spawn_local;

use frontend::api;
use frontend::auth::{AuthState, AuthStatus};
use frontend::nav::{self, Page};

use crate::pages::{
    api_demo::ApiDemo, home::Home, login::Login, not_found::NotFound, privacyidea::PrivacyIdea,
};
use crate::router::{Link, Router};

/// The root component: provides [`AuthState`], starts the session check and sets up routing.
#[component]
pub fn App() -> impl IntoView {
    let auth = AuthState::provide();
    auth.start();
    let router = Router::provide();
    // Whether the bridge proxies privacyIDEA (`/auth/upstreams`): then the nav links its page.
    // A plain task into a signal, not a `LocalResource`: nothing shows it loading, and each
    // resource or action costs the first load about 1.2 KB (brotli) of WASM.
    let with_pi = RwSignal::new(false);
    spawn_local(async move { with_pi.set(api::upstream_prefix("privacyidea").await.is_some()) });

    view! {
        <NavBar with_pi />
        <main>
                {move || match router.page() {
                    Some(Page::Home) => view! { <RequireSignIn><Home /></RequireSignIn> }.into_any(),
                    Some(Page::Login) => view! { <Login /> }.into_any(),
                    Some(Page::ApiDemo) => {
                        view! { <RequireSignIn><ApiDemo /></RequireSignIn> }.into_any()
                    }
                    Some(Page::PrivacyIdea) => {
                        view! { <RequireSignIn><PrivacyIdea /></RequireSignIn> }.into_any()
                    }
                    None => view! { <NotFound /> }.into_any(),
                }}
        </main>
    }
}

/// Navigation links, plus who is signed in and the sign-out button once someone is.
#[component]
fn NavBar(with_pi: RwSignal<bool>) -> impl IntoView {
    let auth = AuthState::from_context();
    let router = Router::from_context();
    let sign_out_error = RwSignal::new(None::<String>);

    // A task rather than an `Action`: the page is left on success, so there is no answer to
    // keep, and an action costs the first load about 1.2 KB (brotli) of WASM.
    let signing_out = RwSignal::new(false);
    let sign_out = move || {
        signing_out.set(true);
        sign_out_error.set(None);
        spawn_local(async move {
            match auth.sign_out().await {
                Ok(Some(end_session_url)) => {
                    // Ends the provider's SSO session too; the provider then sends the browser
                    // to the `post_logout_redirect_uri` the bridge put into this URL.
                    if window().location().assign(&end_session_url).is_ok() {
                        return;
                    }
                    leave_signed_out(router, auth);
                }
                Ok(None) => leave_signed_out(router, auth),
                Err(err) => sign_out_error.set(Some(format!("Sign-out failed: {err}"))),
            }
            signing_out.set(false);
        });
    };

    let display_name = move || {
        auth.user()
            .map(|user| user.username.or(user.name).unwrap_or(user.id))
            .unwrap_or_default()
    };

    view! {
        <header>
            <nav>
                <span class="brand">{crate::pages::login::product_name()}</span>
                <Link page=Page::Home>"Home"</Link>
                <Link page=Page::ApiDemo>"API demo"</Link>
                {move || with_pi.get().then(|| view! { <Link page=Page::PrivacyIdea>"privacyIDEA"</Link> })}
                <span class="spacer"></span>
                {move || {
                    (auth.status() == AuthStatus::SignedIn)
                        .then(|| {
                            view! {
                                <span id="whoami">{display_name}</span>
                                <button
                                    id="sign-out"
                                    on:click=move |_| sign_out()
                                    disabled=move || signing_out.get()
                                >
                                    "Sign out"
                                </button>
                            }
                        })
                }}
            </nav>
            {move || sign_out_error.get().map(|msg| view! { <p class="error" id="sign-out-error">{msg}</p> })}
        </header>
    }
}

/// Sign-out without a provider end-session URL: straight to the login page's confirmation, as
/// a fresh page load (so it learns from the bridge, as at start-up, which forms to offer).
fn leave_signed_out(router: Router, auth: AuthState) {
    let target = [Page::Login.path(), "?signed_out=1"].concat();
    if window().location().assign(&target).is_ok() {
        return;
    }
    // Navigate before flipping the status, so the guard of the page being left never sees
    // `SignedOut` while still on that page.
    router.navigate(&target, false);
    auth.finish_sign_out();
}

/// Renders its children only for a signed-in user; sends anyone else to the login page with the
/// current path and query as `return_to`.
#[component]
fn RequireSignIn(children: ChildrenFn) -> impl IntoView {
    let auth = AuthState::from_context();
    let router = Router::from_context();

    Effect::new(move || {
        let here = router.location_untracked();
        if auth.status() == AuthStatus::SignedOut && here.pathname != Page::Login.path() {
            // Replace: Back from the login page should not land on a page that bounces again.
            router.navigate(
                &nav::login_returning_to(&(here.pathname + &here.search)),
                true,
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
