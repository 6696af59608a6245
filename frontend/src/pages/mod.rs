//! The SPA's pages, one per file; [`crate::app`] maps each [`frontend::nav::Page`] to one of them.

pub mod api_demo;
pub mod home;
pub mod login;
pub mod not_found;
