//! The OpenID Connect provider the bridge logs users in with.
//!
//! `discovery` reads and checks the provider's discovery document; `client` keeps the
//! discovered provider (retrying discovery with back-off, which `/readyz` reports), registers
//! it with the trust engine as an ordinary issuer, and speaks OAuth 2.0 to it through the
//! `oauth2` crate: the authorization URL (PKCE S256, state, nonce), the code exchange and the
//! refresh. `http` is the client all of this goes through, which survives connections the
//! provider closed while idle. Token *validation* is not here: every token goes through
//! `crate::trust`.

pub mod client;
pub mod discovery;
pub mod http;
