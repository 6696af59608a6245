//! The page-open decision: what happens when a browser opens any UI route.
//!
//! Before `index.html` is served to a browser without a bridge session, the bridge starts the
//! `prompt=none` attempt itself, by top-level redirect (no iframe, so third-party-cookie
//! blocking cannot break it): a user with an active SSO session is signed in before any WASM
//! loads and never sees a form. A failed attempt is remembered per browser, so no loop.

use axum::{
    extract::State,
    http::{Extensions, HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Redirect, Response},
};

use super::{
    failure_page::failure_page,
    gateway::{GatewaySignIn, peer_of, rejected_location, sign_in_from_gateway},
    oidc::start_login,
    return_to,
};
use crate::{
    session::typed::TypedSession,
    state::AppState,
    web::spa::{is_navigation, not_a_page},
};

/// Fallback for everything that is not an API route or a file in `dist/`.
pub async fn open_page(
    State(state): State<AppState>,
    session: TypedSession,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let path = uri.path();
    if let Some(response) = not_a_page(&method, path) {
        return response;
    }
    // A JWT from a trusted gateway signs the user in before the page is served.
    if method == Method::GET && is_navigation(&headers) {
        match sign_in_from_gateway(&state, &session, &headers, peer_of(&extensions)).await {
            Ok(GatewaySignIn::NotApplicable) => {}
            Ok(GatewaySignIn::SignedIn) => return state.spa.page_response(&method, &headers).await,
            Ok(GatewaySignIn::Rejected(reason)) if path != "/login" => {
                return Redirect::to(&rejected_location(reason, &here(&uri))).into_response();
            }
            // On the login page itself: the page, which already says why.
            Ok(GatewaySignIn::Rejected(_)) => {
                return state.spa.page_response(&method, &headers).await;
            }
            Ok(GatewaySignIn::Refused(why)) => {
                return failure_page(StatusCode::BAD_REQUEST, &format!("Sign-in refused: {why}."));
            }
            Err(e) => return e.into_response(),
        }
    }
    if method == Method::GET
        && state.settings.oidc.silent_sso
        && is_navigation(&headers)
        && path != "/login"
        && state.provider.ready().is_some()
    {
        let signed_in = matches!(session.user().await, Ok(Some(_)));
        if !signed_in && !tried_recently(&state, &session).await {
            let target = here(&uri);
            match start_login(&state, &session, target, true).await {
                Ok(url) => return Redirect::to(&url).into_response(),
                Err(e) => tracing::warn!(error = %e, "silent SSO could not start; serving the UI"),
            }
        }
    }
    state.spa.page_response(&method, &headers).await
}

/// Whether a silent sign-in was tried for this browser recently. Fails towards "yes": a
/// broken store must not cause a redirect loop.
async fn tried_recently(state: &AppState, session: &TypedSession) -> bool {
    session
        .silent_sso_tried_within(state.settings.oidc.silent_sso_retry_secs)
        .await
        .unwrap_or(true)
}

/// The requested page as a `return_to`. It came from the request line, so it is still
/// checked like any other.
fn here(uri: &Uri) -> String {
    let target = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    return_to::validate(target).unwrap_or_else(|_| "/".into())
}
