//! Another Leptos (CSR) app, served by the bridge, using the login-bridge SPA's `auth` and `api`
//! modules: the token lives in [`AuthState`], every REST call (gloo-net, JSON through serde)
//! carries it (as a Bearer token, or bound to the browser's key with a DPoP proof per call), and
//! a stale token is refreshed once before the user is treated as signed out.
//!
//! The README shows this file; `cargo clippy -p frontend --target wasm32-unknown-unknown
//! --all-targets` (scripts/test.sh) keeps it compiling.

use frontend::api::{self, Method};
use frontend::auth::{AuthState, AuthStatus};
use frontend::nav;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Deserialize)]
struct Note {
    id: u64,
    text: String,
}

#[derive(Serialize)]
struct NewNote<'a> {
    text: &'a str,
}

fn main() {
    leptos::mount::mount_to_body(|| {
        // Once, at the root: asks `/auth/session` for the token (silent SSO if the bridge
        // has not tried it yet) and keeps it fresh.
        AuthState::provide().start();
        view! { <Notes /> }
    });
}

#[component]
fn Notes() -> impl IntoView {
    let auth = AuthState::from_context();
    // GET with `Authorization: Bearer <auth_token>` (or `DPoP <auth_token>` and a `DPoP` proof);
    // on a 401 the session is asked once more.
    let notes = LocalResource::new(move || auth.get_json::<Vec<Note>>("/api/notes"));
    // Any method with a JSON body goes through the same refresh-once path.
    let add = Action::new_local(move |text: &String| {
        let text = text.clone();
        async move {
            let note = NewNote { text: &text };
            auth.call::<_, Note>(Method::POST, "/api/notes", Some(&note))
                .await
        }
    });
    // Plain transport, without the refresh: `auth.api()` holds the current token.
    let remove = Action::new_local(move |id: &u64| {
        let path = format!("/api/notes/{id}");
        async move { auth.api().delete::<()>(&path).await }
    });
    // Or gloo-net's own request builder, already carrying the token (and its proof, signed
    // asynchronously): add what you need, send it, and read the answer with serde.
    let search = Action::new_local(move |text: &String| {
        let text = text.clone();
        async move {
            let request = auth.api().request(Method::GET, "/api/notes").await;
            let request = request.query([("q", text.as_str())]);
            api::into_json::<Vec<Note>>(request.send().await?).await
        }
    });

    let sign_in = move || nav::sign_in_url(&nav::current_path_and_query(), false);
    let list = move || {
        notes.get().map(|answer| match answer {
            Ok(notes) => notes
                .into_iter()
                .map(|Note { id, text }| {
                    view! {
                        <li>
                            {text} " "
                            <button on:click=move |_| {
                                remove.dispatch(id);
                            }>"Delete"</button>
                        </li>
                    }
                })
                .collect_view()
                .into_any(),
            Err(err) => view! { <li class="error">{err.to_string()}</li> }.into_any(),
        })
    };

    view! {
        <Show
            when=move || auth.status() == AuthStatus::SignedIn
            fallback=move || view! { <a href=sign_in>"Sign in"</a> }
        >
            <ul>{list}</ul>
            <button on:click=move |_| {
                add.dispatch("Hello".to_owned());
            }>"Add a note"</button>
            <button on:click=move |_| {
                search.dispatch("Hello".to_owned());
            }>"Find my greetings"</button>
            <p>{move || search.value().get().and_then(Result::ok).map(|found| found.len())}</p>
        </Show>
    }
}
