//! Test-support crate: the tests themselves live in `blackbox/`.
