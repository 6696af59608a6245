//! The browser session, typed.
//!
//! Every way in (the OIDC code flow today; gateway JWTs, local accounts and service users
//! later) ends in one [`user::SessionUser`]: the principal and how they got in
//! ([`user::SignIn`]). Handlers reach the session only through [`typed::TypedSession`], which
//! owns every session key. `store` opens the engine chosen in settings behind one seam,
//! `index` finds the sessions of a provider `sid`/`sub` (back-channel logout needs it), and
//! `refresh` keeps the provider refresh of one session single-flight behind a small trait;
//! `group_commit` batches first-use records (replay protection) into one statement (SQLite) or
//! one script call (DPoP's records in Redis).

pub mod ended;
pub mod group_commit;
pub mod index;
pub mod postgres;
pub mod redis;
pub mod refresh;
pub mod seen;
pub mod store;
pub mod typed;
pub mod user;
