//! Entry point of the login-bridge single-page app: installs the panic hook (so a Rust panic
//! shows up in the browser console with its message instead of an opaque `unreachable`) and
//! mounts [`app::App`].

mod api;
mod app;
mod auth;
mod clock;
mod pages;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
