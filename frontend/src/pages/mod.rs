//! The SPA's pages, one per file; the app shell (`app.rs`) maps each [`frontend::nav::Page`] to
//! one of them.
//!
//! A page loads its data with a `LocalResource` and submits with `Action::new_local`, as the
//! Leptos book shows: gloo-net's futures are not `Send`, so the local kinds.

pub mod api_demo;
pub mod home;
pub mod login;
pub mod not_found;
pub mod privacyidea;
