//! The reusable half of the login-bridge SPA, for any Leptos (CSR) app served by the bridge:
//!
//! - [`auth`]: the [`auth::AuthState`] context — the bridge's `auth_token` in memory, the user,
//!   the refresh schedule, silent SSO at start-up, sign-out, and REST calls that refresh the
//!   token once on a `401`;
//! - [`api`]: transport with gloo-net — [`api::Api`] sends REST calls with `Authorization:
//!   Bearer`, or `DPoP` and a proof for a token bound to the browser's key, and the
//!   `/auth/session` and `/auth/logout` calls; JSON bodies through serde_json into the bridge's
//!   own types (`shared`) or any of yours;
//! - [`dpop`]: that key (WebCrypto, non-extractable, kept in IndexedDB) and the proofs
//!   (RFC 9449);
//! - [`nav`] and [`clock`]: the addresses and the wall clock those two need.
//!
//! The app in this crate's binary (`main.rs`, its router and pages) is one user of it; the
//! `reuse` example is another.

pub mod api;
pub mod auth;
pub mod clock;
pub mod dpop;
pub mod nav;
