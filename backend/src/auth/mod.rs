//! Authentication at the edge: one file per way in and per endpoint, all ending in the same
//! [`crate::session::user::SessionUser`] and, for APIs, the same [`principal::Principal`].
//!
//! - `page_open`: what a browser opening a UI route gets (silent SSO first, then the page)
//! - `oidc`: the OIDC code flow (login, callback, tokens to session, refresh)
//! - `gateway`: a JWT a trusted gateway puts on a page request
//! - `jwt_endpoint`: the ZITADEL-style round trip through an existing app's JWT endpoint
//! - `local`: local accounts' username/password sign-in (`POST /auth/local/login`)
//! - `session_endpoint`: `GET /auth/session`, the SPA's only source of its token
//! - `logout`: `POST /auth/logout`
//! - `backchannel_logout`: the provider ends sessions (OIDC Back-Channel Logout 1.0)
//! - `principal`: the extractor every API route authenticates with
//! - `csrf`, `return_to`, `opaque`, `failure_page`: what the browser-facing endpoints share

pub mod backchannel_logout;
pub mod csrf;
pub mod failure_page;
pub mod gateway;
pub mod jwt_endpoint;
pub mod local;
pub mod logout;
pub mod oidc;
pub mod opaque;
pub mod page_open;
pub mod principal;
pub mod return_to;
pub mod routes;
pub mod session_endpoint;
