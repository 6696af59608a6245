//! The privacyIDEA page (`/privacyidea`): the signed-in user's privacyIDEA tokens and a button
//! that enrolls a new HOTP token. privacyIDEA sits behind the bridge as an upstream (its prefix
//! comes from `GET /auth/upstreams`), so every call carries the SPA's own bearer token and the
//! bridge swaps it for the token privacyIDEA accepts; a `401` refreshes once, as for `/api`.
//!
//! Kept small for the SPA's size budget (README, Figures): privacyIDEA's answers are read
//! straight from [`Json`] (two fields, not worth a type each), every signal is an
//! `Option<String>` or a `bool` and every view a shape the other pages already have (a new
//! signal type or view shape costs WASM), so the list is text, one token per line.

use leptos::prelude::*;
use leptos::task::spawn_local;

use frontend::api::{self, Method};
use frontend::auth::AuthState;
use frontend::json::{DecodeError, Json};
use frontend::nav;

/// The page's state; `Copy`, so every closure and future can take it.
#[derive(Clone, Copy)]
struct Tokens {
    auth: AuthState,
    /// Where the bridge proxies privacyIDEA (e.g. `/pi/`), once known.
    prefix: RwSignal<Option<String>>,
    /// One line per token, `None` until privacyIDEA has answered.
    lines: RwSignal<Option<String>>,
    /// Says which token was enrolled last.
    enrolled: RwSignal<Option<String>>,
    error: RwSignal<Option<String>>,
    busy: RwSignal<bool>,
}

impl Tokens {
    /// Finds privacyIDEA behind the bridge, then lists the tokens.
    async fn start(self) {
        match api::upstream_prefix("privacyidea").await {
            Some(prefix) => {
                self.prefix.set(Some(prefix));
                self.load().await;
            }
            None => self.show(Err("This bridge does not proxy privacyIDEA.".to_owned())),
        }
    }

    /// `GET token/`: `{"result": {"value": {"tokens": [{"serial", "tokentype", ...}]}}}`.
    async fn load(self) {
        let answer = self
            .call(Method::Get, "token/", None)
            .await
            .and_then(|json| {
                let tokens = json.get("result").get("value").list("tokens", describe);
                tokens
                    .map(|lines| lines.join("\n"))
                    .map_err(|e| e.to_string())
            });
        self.show(answer.map(|lines| (self.lines, lines)));
    }

    /// `POST token/init` (privacyIDEA reads a JSON body as it reads a form), then the list
    /// again. The new serial is `detail.serial`.
    async fn enroll(self) {
        self.busy.set(true);
        self.error.set(None);
        let body = r#"{"type":"hotp","genkey":"1"}"#.to_owned();
        let answer = self.call(Method::Post, "token/init", Some(body)).await;
        let serial = answer.and_then(|json| {
            json.get("detail")
                .string("serial")
                .map_err(|e| e.to_string())
        });
        let enrolled = serial.is_ok();
        self.show(serial.map(|serial| (self.enrolled, ["Enrolled ", &serial].concat())));
        if enrolled {
            self.load().await;
        }
        _ = self.busy.try_set(false);
    }

    /// `method <prefix><tail>` with the bearer token; privacyIDEA's answer as JSON.
    ///
    /// privacyIDEA scopes a user token to its own user and ignores `user`; an admin token (the
    /// `pi-admins` group) would list everyone's tokens, and enroll for no one, without it.
    async fn call(self, method: Method, tail: &str, body: Option<String>) -> Result<Json, String> {
        let user = self.auth.user().and_then(|user| user.username);
        let user = user.map(|name| ["?user=", &nav::encode(&name)].concat());
        let prefix = self.prefix.get_untracked().unwrap_or_default();
        let path = [&prefix, tail, &user.unwrap_or_default()].concat();
        let text = self
            .auth
            .call_json(method, &path, body)
            .await
            .map_err(|e| e.to_string())?;
        Json::parse(&text).map_err(|e| e.to_string())
    }

    /// Sets `signal` to the text, or shows the error; the page may be gone by now.
    fn show(self, answer: Result<(RwSignal<Option<String>>, String), String>) {
        let (signal, text) = match answer {
            Ok(shown) => shown,
            Err(err) => (self.error, err),
        };
        _ = signal.try_set(Some(text));
    }
}

/// One token of the list as a line: `serial · type · active · description`.
fn describe(token: &Json) -> Result<String, DecodeError> {
    let active = if token.opt_bool("active")? == Some(true) {
        "active"
    } else {
        "disabled"
    };
    let line = [
        token.string("serial")?,
        token.opt_string("tokentype")?.unwrap_or_default(),
        active.to_owned(),
        token.opt_string("description")?.unwrap_or_default(),
    ]
    .join(" · ");
    Ok(line.replace('\n', " "))
}

#[component]
pub fn PrivacyIdea() -> impl IntoView {
    let page = Tokens {
        auth: AuthState::from_context(),
        prefix: RwSignal::new(None),
        lines: RwSignal::new(None),
        enrolled: RwSignal::new(None),
        error: RwSignal::new(None),
        busy: RwSignal::new(false),
    };
    spawn_local(page.start());

    view! {
        <section class="card">
            <h1>"privacyIDEA tokens"</h1>
            <pre id="pi-tokens">{move || page.lines.get()}</pre>
            <button
                id="pi-enroll"
                disabled=move || page.busy.get() || page.prefix.with(Option::is_none)
                on:click=move |_| spawn_local(page.enroll())
            >
                "Enroll an HOTP token"
            </button>
            <p id="pi-enrolled">{move || page.enrolled.get()}</p>
            {move || page.error.get().map(|err| view! { <p class="error" id="pi-error">{err}</p> })}
        </section>
    }
}
