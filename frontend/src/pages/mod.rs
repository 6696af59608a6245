//! The SPA's pages, one per file; the app shell (`app.rs`) maps each [`frontend::nav::Page`] to
//! one of them.
//!
//! A page fetches with `spawn_local` into a plain signal (`None` until the answer arrives)
//! rather than through `LocalResource`/`Action`: the futures are not `Send` either way, and
//! Leptos' async resources cost about 15 KB gzip of WASM for three calls (README, Figures).

pub mod api_demo;
pub mod home;
pub mod login;
pub mod not_found;
pub mod privacyidea;
