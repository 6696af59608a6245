//! The privacyIDEA page (`/privacyidea`): the signed-in user's privacyIDEA tokens and a button
//! that enrolls a new HOTP token. privacyIDEA sits behind the bridge as an upstream (its prefix
//! comes from `GET /auth/upstreams`), so every call carries the SPA's own bearer token and the
//! bridge swaps it for the token privacyIDEA accepts; a `401` refreshes once, as for `/api`.
//!
//! The list loads as a [`LocalResource`] (`body_resource`, the one resource type of every page)
//! and the enrolment is an [`Action`]; once it succeeds
//! the list loads again. Only the few fields of privacyIDEA's answers that the page shows are
//! declared; serde skips the rest.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use frontend::api::{self, Method};
use frontend::auth::{AuthState, body_resource};
use frontend::nav;

/// privacyIDEA's answer of `GET token/`: `{"result": {"value": {"tokens": [...]}}}`.
#[derive(Deserialize)]
struct TokenList {
    result: TokenListResult,
}

#[derive(Deserialize)]
struct TokenListResult {
    value: TokenListValue,
}

#[derive(Deserialize)]
struct TokenListValue {
    tokens: Vec<Token>,
}

/// One token, as the page lists it.
#[derive(Deserialize)]
struct Token {
    serial: String,
    #[serde(default)]
    tokentype: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    description: Option<String>,
}

impl Token {
    /// The token as a line: `serial · type · active · description`.
    fn line(self) -> String {
        let active = if self.active == Some(true) {
            "active"
        } else {
            "disabled"
        };
        [
            self.serial,
            self.tokentype.unwrap_or_default(),
            active.to_owned(),
            self.description.unwrap_or_default(),
        ]
        .join(" · ")
        .replace('\n', " ")
    }
}

/// The body of `POST token/init` (privacyIDEA reads a JSON body as it reads a form).
#[derive(Serialize)]
struct Enroll {
    #[serde(rename = "type")]
    kind: &'static str,
    genkey: &'static str,
}

/// privacyIDEA's answer of `POST token/init`: the new serial is `detail.serial`.
#[derive(Deserialize)]
struct Enrolled {
    detail: EnrolledDetail,
}

#[derive(Deserialize)]
struct EnrolledDetail {
    serial: String,
}

/// `<prefix><tail>` for the signed-in user.
///
/// privacyIDEA scopes a user token to its own user and ignores `user`; an admin token (the
/// `pi-admins` group) would list everyone's tokens, and enroll for no one, without it.
fn path(auth: AuthState, prefix: &str, tail: &str) -> String {
    let user = auth.user_untracked().and_then(|user| user.username);
    let user = user.map(|name| ["?user=", &nav::encode(&name)].concat());
    [prefix, tail, &user.unwrap_or_default()].concat()
}

/// The user's tokens as lines, from the body of `GET token/`.
fn lines(body: &str) -> Result<String, String> {
    let list: TokenList = api::parse_json(body).map_err(|err| err.to_string())?;
    let lines: Vec<String> = list
        .result
        .value
        .tokens
        .into_iter()
        .map(Token::line)
        .collect();
    Ok(lines.join("\n"))
}

#[component]
pub fn PrivacyIdea() -> impl IntoView {
    let auth = AuthState::from_context();
    // Where privacyIDEA is behind the bridge (`/auth/upstreams`): `None` until asked, then
    // `Some(None)` when the bridge does not proxy it.
    let prefix = RwSignal::new(None::<Option<String>>);
    // The body of the token list, in a resource of the one type every page uses
    // (`body_resource`); parsed where it is shown.
    let tokens = body_resource(move || async move {
        let found = api::upstream_prefix("privacyidea").await;
        prefix.set(Some(found.clone()));
        match found {
            Some(found) => auth.get_text(&path(auth, &found, "token/")).await,
            // Nothing to list; `listed` says why.
            None => Ok(String::new()),
        }
    });
    let enroll = Action::new_local(move |prefix: &String| {
        let path = path(auth, prefix, "token/init");
        async move {
            let body = Enroll {
                kind: "hotp",
                genkey: "1",
            };
            let answer = auth
                .call::<_, Enrolled>(Method::POST, &path, Some(&body))
                .await;
            if answer.is_ok() {
                tokens.refetch();
            }
            answer.map(|enrolled| ["Enrolled ", &enrolled.detail.serial].concat())
        }
    });
    // The tokens as lines once loaded, or why they are not there.
    let listed = move || -> Option<Result<String, String>> {
        let body = tokens.get()?;
        if prefix.get()?.is_none() {
            return Some(Err("This bridge does not proxy privacyIDEA.".to_owned()));
        }
        Some(
            body.map_err(|err| err.to_string())
                .and_then(|body| lines(&body)),
        )
    };
    let enroll_now = move |_| {
        if let (Some(Some(prefix)), Some(Ok(_))) = (prefix.get_untracked(), listed()) {
            enroll.dispatch(prefix);
        }
    };

    let error = move || {
        let list = listed().and_then(Result::err);
        let enrolment = enroll.value().get().and_then(|answer| answer.err());
        list.or(enrolment.map(|err| err.to_string()))
            .map(|err| view! { <p class="error" id="pi-error">{err}</p> })
    };

    view! {
        <section class="card">
            <h1>"privacyIDEA tokens"</h1>
            <pre id="pi-tokens">{move || listed().and_then(Result::ok)}</pre>
            <button
                id="pi-enroll"
                disabled=move || enroll.pending().get() || !matches!(listed(), Some(Ok(_)))
                on:click=enroll_now
            >
                "Enroll an HOTP token"
            </button>
            <p id="pi-enrolled">{move || enroll.value().get().and_then(Result::ok)}</p>
            {error}
        </section>
    }
}
