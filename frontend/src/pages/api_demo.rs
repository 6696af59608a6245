//! The API demo page (`/api-demo`): proof that the SPA's REST calls carry the bearer token. It
//! calls `GET /api/me` and then lists the calls the server recorded (`GET /api/calls`), each
//! with the fingerprint of the token it arrived with.

use leptos::prelude::*;
use shared::api::{ApiCall, ApiCalls, Me};

use frontend::api::parse_json;
use frontend::auth::{AuthState, body_resource};
use frontend::clock;

#[component]
pub fn ApiDemo() -> impl IntoView {
    let auth = AuthState::from_context();
    let me_body = body_resource(move || auth.get_text("/api/me"));
    let calls = body_resource(move || async move {
        // Only once `/api/me` has answered, so the list already shows that call.
        let _ = me_body.await;
        auth.get_text("/api/calls").await
    });
    let me = move || {
        me_body
            .get()
            .map(|body| body.and_then(|text| parse_json::<Me>(&text)))
    };

    let username = move || {
        me().and_then(Result::ok)
            .map(|me| me.user.username.unwrap_or(me.user.id))
    };
    let me_error = move || {
        me().and_then(Result::err)
            .map(|err| view! { <p class="error" id="api-error">{err.to_string()}</p> })
    };

    view! {
        <section class="card">
            <h1>"API demo"</h1>
            <p>"Signed in to the API as " <span id="api-demo-user">{username}</span></p>
            {me_error}
            <button id="reload-calls" on:click=move |_| calls.refetch()>
                "Reload calls"
            </button>
            {move || match calls.get().map(|body| body.and_then(|text| parse_json::<ApiCalls>(&text))) {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Ok(ApiCalls { calls })) => view! { <CallsTable calls /> }.into_any(),
                Some(Err(err)) => view! { <p class="error" id="calls-error">{err.to_string()}</p> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn CallsTable(calls: Vec<ApiCall>) -> impl IntoView {
    let rows = calls
        .into_iter()
        .map(|call| {
            view! {
                <tr>
                    <td>{call.method}</td>
                    <td><code>{call.path}</code></td>
                    <td><code>{call.token_fingerprint}</code></td>
                    <td>{clock::format_utc(call.at)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table id="api-calls">
            <thead>
                <tr>
                    <th>"Method"</th>
                    <th>"Path"</th>
                    <th>"Token fingerprint"</th>
                    <th>"Time"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
