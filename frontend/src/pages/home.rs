//! The home page (`/`): who the bridge's API says you are. It calls `GET /api/me` with the
//! bearer token, so what it shows is the API's view of the token, not the SPA's own copy of the
//! user.

use std::time::Duration;

use leptos::prelude::*;
use shared::api::Me;

use frontend::api::parse_json;
use frontend::auth::{AuthState, body_resource};
use frontend::clock;

#[component]
pub fn Home() -> impl IntoView {
    let auth = AuthState::from_context();
    // Loaded once per visit of the page: `None` until the API has answered.
    let me = body_resource(move || auth.get_text("/api/me"));
    let me = move || {
        me.get()
            .map(|body| body.and_then(|text| parse_json::<Me>(&text)))
    };

    view! {
        <section class="card">
            <h1>"Signed in"</h1>
            {move || match me() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Ok(me)) => view! { <MeDetails me /> }.into_any(),
                Some(Err(err)) => view! { <p class="error" id="api-error">{err.to_string()}</p> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn MeDetails(me: Me) -> impl IntoView {
    let now = RwSignal::new(clock::now_secs());
    // Ticks the "seconds left" once a second, for as long as the page is shown.
    if let Ok(ticker) =
        set_interval_with_handle(move || now.set(clock::now_secs()), Duration::from_secs(1))
    {
        on_cleanup(move || ticker.clear());
    }

    let Me {
        user,
        issuer,
        expires_at,
        token_fingerprint,
    } = me;
    let dash = || "—".to_owned();
    let list = |items: Vec<String>| {
        items
            .into_iter()
            .map(|item| view! { <li>{item}</li> })
            .collect_view()
    };

    view! {
        <dl>
            <dt>"Name"</dt>
            <dd><span id="user-name">{user.name.unwrap_or_else(dash)}</span></dd>
            <dt>"Username"</dt>
            <dd><span id="user-username">{user.username.unwrap_or_else(dash)}</span></dd>
            <dt>"Email"</dt>
            <dd><span id="user-email">{user.email.unwrap_or_else(dash)}</span></dd>
            <dt>"Roles"</dt>
            <dd><ul id="user-roles">{list(user.roles)}</ul></dd>
            <dt>"Groups"</dt>
            <dd><ul id="user-groups">{list(user.groups)}</ul></dd>
            <dt>"Token issuer"</dt>
            <dd><span id="token-issuer">{issuer}</span></dd>
            <dt>"Token expires"</dt>
            <dd>
                <span id="token-expiry">
                    {clock::format_utc(expires_at)} " ("
                    {move || clock::describe_remaining(expires_at, now.get())} ")"
                </span>
            </dd>
            <dt>"Token fingerprint"</dt>
            <dd><code id="token-fingerprint">{token_fingerprint}</code></dd>
        </dl>
    }
}
