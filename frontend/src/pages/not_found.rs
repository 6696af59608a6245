//! The page for any path the router does not know.

use leptos::prelude::*;

use frontend::nav::Page;

use crate::router::Link;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <Link page=Page::Home>"Go to the home page"</Link>
        </section>
    }
}
