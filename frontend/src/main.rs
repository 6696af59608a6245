//! Entry point of the login-bridge single-page app: installs the panic hook (so a Rust panic
//! shows up in the browser console with its message instead of an opaque `unreachable`) and
//! mounts [`app::App`]. Authentication and transport come from the crate's library
//! (`frontend::auth`, `frontend::api`); the app's shell and pages live here.

mod app;
mod pages;
mod router;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
