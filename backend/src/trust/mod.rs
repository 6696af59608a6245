//! The trust engine: which JWTs the bridge accepts and who they say the caller is.
//!
//! Every way into the bridge ends here: the code flow's ID and access tokens, API bearer
//! tokens, and (later) gateway JWTs and service-user assertions. `issuer` compiles the
//! configured issuers (the login provider is registered as one more after discovery), `jwks`
//! caches remote keys, `validate` holds the one set of JWT rules, `claims` reads a token's
//! claims (parsed once, borrowed from their JSON text), `mapping` turns claims into
//! a user, `policy` decides who may pass, `cache` remembers verified tokens, and `engine` ties
//! them together behind `verify` / `verify_as`.

pub mod bearer;
pub mod cache;
pub mod claims;
pub mod engine;
pub mod issuer;
pub mod jwks;
pub mod mapping;
pub mod policy;
pub mod principal;
pub mod signature;
pub mod validate;
pub use principal::fingerprint;
