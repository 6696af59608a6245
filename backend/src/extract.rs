//! The extractors handlers use for what a client sends (form bodies, query strings), each
//! with the one rejection of [`AppError`]: a malformed request (a parameter twice, a JSON body
//! where a form is expected, a body over the limit, a query that does not parse) gets the
//! bridge's JSON error with `Cache-Control: no-store` (`400 invalid_request`; `413` for a body
//! over the limit), never axum's plain-text rejection. Handlers take these instead of axum's
//! `Form` and `Query`, so no endpoint can answer in another format.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;

use crate::error::AppError;

/// `application/x-www-form-urlencoded` body (axum's `Form`); a name twice is refused.
#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(AppError))]
pub struct Form<T>(pub T);

/// The query string (axum's `Query`); a name twice is refused.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);
