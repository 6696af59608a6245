//! The web side of the bridge that is not authentication: serving the built SPA with the
//! Content-Security-Policy that fits its `index.html`, the security headers every answer carries, and the
//! shell around the whole router. Whether a page open first goes through a silent sign-in is decided in
//! `crate::auth::page_open`, which then serves the page from here.

pub mod cors;
pub mod headers;
pub mod shell;
pub mod spa;
