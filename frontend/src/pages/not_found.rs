//! The page for any path the router does not know.

use leptos::prelude::*;
use leptos_router::components::A;

use frontend::nav::Page;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <A href=Page::Home.path()>"Go to the home page"</A>
        </section>
    }
}
