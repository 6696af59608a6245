//! login-bridge: hands a validated OIDC/JWT token to a single-page web UI.
//!
//! The backend completes the OpenID Connect authorization-code flow, keeps the tokens in a
//! server-side session, and gives the SPA its bearer token through `/auth/session`. See
//! `README.md` for the whole picture; each folder's `mod.rs` says what lives there.

pub mod auth;
pub mod authority;
pub mod cli;
pub mod clock;
#[cfg(test)]
mod config_reference;
pub mod demo_api;
pub mod dpop;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod redis_wait;
pub mod reload;
pub mod router;
pub mod session;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
#[cfg(test)]
pub mod test_redis;
pub mod trust;
pub mod upstream;
pub mod web;
