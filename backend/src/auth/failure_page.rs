//! The page a browser gets when a sign-in step cannot complete.

use axum::{
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

/// A small HTML page for a sign-in step that cannot complete: the browser is mid-navigation, so
/// a JSON body would be unreadable. Says what happened and offers a fresh start.
pub fn failure_page(status: StatusCode, message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\
         <body><h1>Sign-in failed</h1><p id=\"error\">{escaped}</p><p><a href=\"/login\">Start again</a></p></body></html>"
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}
