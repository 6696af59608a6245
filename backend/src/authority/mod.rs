//! The bridge as a token issuer: signing keys generated on first start and kept sealed in the
//! store (`crypto`, `store`, `keyring`), rotation with overlap, the JWKS and discovery document
//! (`well_known`), token profiles shaping tokens for one API such as privacyIDEA (`profile`,
//! `mint`), service users signing RFC 7523 assertions (`service_users`, `keyfile`,
//! `token_endpoint`, with replay records in `replay`), RFC 7662 introspection (`introspect`), and local accounts' records and password hashes
//! (`local_users`).

pub mod crypto;
pub mod introspect;
pub mod keyfile;
pub mod keyring;
pub mod local_users;
pub mod mint;
pub mod profile;
pub mod replay;
pub mod routes;
pub mod service_users;
pub mod store;
pub mod token_endpoint;
pub mod well_known;
