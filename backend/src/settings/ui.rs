//! `[ui]`: what the web UI calls the product, and its check.

use serde::{Deserialize, Serialize};

/// `[ui]`: what the bridge fills into the SPA's `index.html` when it serves it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct UiSettings {
    /// The product's name: the page title (HTML-escaped into `index.html`), the nav, and the
    /// heading of the sign-in card; 1 to 80 characters on one line.
    pub title: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            title: "login-bridge".to_owned(),
        }
    }
}

impl UiSettings {
    /// The title must fit a page title and a heading.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 80 || title.chars().any(char::is_control) {
            problems
                .push("ui.title: give the product's name, 1 to 80 characters on one line".into());
        }
    }
}
