//! The SPA's client-side routing, by hand: the browser's path and query as one signal, kept in
//! step with the History API, and a [`Link`] that navigates without reloading the page.
//!
//! Why not `leptos_router`: the SPA has four fixed pages and no nested or parameterised routes,
//! and the router's generic matching and view machinery is a large share of the WASM bundle.
//! Measured on 2026-12-06 (release build, wasm-opt -Oz, the same pages with gloo-net, serde and
//! `LocalResource`): with this router the wasm is 333 158 B raw, 112 089 B brotli (q11); with
//! `leptos_router` 0.8.17 (`<Router>`, `<Routes>` from `Page`, `<A>`, `use_navigate`,
//! `use_query_map`) 440 452 B raw, 145 915 B brotli: +33.8 KB on a first load budgeted at
//! 100 KB. Which page a path shows is decided by [`Page::from_path`].

use leptos::ev::{MouseEvent, popstate};
use leptos::prelude::*;
use web_sys::UrlSearchParams;
use web_sys::wasm_bindgen::JsValue;

use frontend::nav::Page;

/// Where the browser is: path and query (with its leading `?`, or empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub pathname: String,
    pub search: String,
}

impl Location {
    fn current() -> Self {
        let location = window().location();
        Self {
            pathname: location.pathname().unwrap_or_default(),
            search: location.search().unwrap_or_default(),
        }
    }
}

/// The routing state shared through Leptos context; `Copy`, like every arena-allocated signal.
#[derive(Clone, Copy)]
pub struct Router {
    location: RwSignal<Location>,
    /// Which page `location` shows; notifies only when that changes, not on every new query.
    page: RwSignal<Option<Page>>,
}

impl Router {
    /// Creates the router from the browser's address, follows back/forward, and provides it as
    /// context to the calling component and everything below it.
    pub fn provide() -> Self {
        let location = Location::current();
        let router = Self {
            page: RwSignal::new(Page::from_path(&location.pathname)),
            location: RwSignal::new(location),
        };
        // The listener lives as long as the page: the router is never torn down.
        let _ = window_event_listener(popstate, move |_| router.sync());
        provide_context(router);
        router
    }

    /// The router the app shell provided (a wiring bug, and a panic, without one).
    pub fn from_context() -> Self {
        expect_context()
    }

    /// Where the browser is, without subscribing to changes.
    pub fn location_untracked(&self) -> Location {
        self.location.get_untracked()
    }

    /// The page the current path shows, `None` for an unknown path (tracked; a new query on
    /// the same page does not count as a change).
    pub fn page(&self) -> Option<Page> {
        self.page.get()
    }

    /// One query parameter of the current address, decoded (tracked).
    pub fn query(&self, name: &str) -> Option<String> {
        self.location.with(|location| {
            UrlSearchParams::new_with_str(&location.search)
                .ok()
                .and_then(|params| params.get(name))
        })
    }

    /// Goes to `href` (a same-origin path) without reloading the page. With `replace`, the
    /// current history entry is overwritten, so Back does not return to it.
    pub fn navigate(&self, href: &str, replace: bool) {
        let history = window().history();
        let moved = history.and_then(|history| {
            if replace {
                history.replace_state_with_url(&JsValue::NULL, "", Some(href))
            } else {
                history.push_state_with_url(&JsValue::NULL, "", Some(href))
            }
        });
        if moved.is_err() {
            // No History API to speak of: a full navigation still gets there.
            let _ = window().location().assign(href);
            return;
        }
        window().scroll_to_with_x_and_y(0.0, 0.0);
        self.sync();
    }

    /// Reads the address bar into the signal, notifying only when it changed.
    fn sync(&self) {
        let current = Location::current();
        let page = Page::from_path(&current.pathname);
        // The location first: whatever re-renders for the new page reads it.
        self.location.maybe_update(|location| {
            let changed = *location != current;
            if changed {
                *location = current;
            }
            changed
        });
        self.page.maybe_update(|shown| {
            let changed = *shown != page;
            *shown = page;
            changed
        });
    }
}

/// A link to one of the SPA's pages: a plain click navigates inside the SPA, while a modified
/// click (new tab, new window) is left to the browser. Marked `aria-current="page"` while its
/// page is shown.
#[component]
pub fn Link(page: Page, children: Children) -> impl IntoView {
    let router = Router::from_context();
    let href = page.path();
    let current = move || (router.page() == Some(page)).then_some("page");
    let on_click = move |ev: MouseEvent| {
        let modified = ev.meta_key() || ev.ctrl_key() || ev.shift_key() || ev.alt_key();
        if ev.default_prevented() || ev.button() != 0 || modified {
            return;
        }
        ev.prevent_default();
        router.navigate(href, false);
    };
    view! {
        <a href=href aria-current=current on:click=on_click>
            {children()}
        </a>
    }
}
