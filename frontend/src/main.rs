//! Entry point of the login-bridge single-page app: in debug builds (`trunk serve`) installs the
//! panic hook, so a Rust panic shows up in the browser console with its message instead of an
//! opaque `unreachable`; then mounts [`app::App`]. The release build leaves the hook out: it
//! and the formatting it pulls in cost ~1 KB of the SPA's size budget, and the app's only
//! panics are wiring bugs (a missing context) that a debug build shows. Authentication and transport come from the crate's library
//! (`frontend::auth`, `frontend::api`); the app's shell and pages live here.

mod app;
mod pages;
mod router;

fn main() {
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
