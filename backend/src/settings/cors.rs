//! `[cors]`: origins whose pages may call the bridge with credentials, and their check.

use serde::{Deserialize, Serialize};
use url::Url;

/// `[cors]`: origins whose pages may call the bridge's APIs with credentials.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Exact origins (`https://ui.example.org`) allowed to call with credentials; `*` and paths
    /// are refused. Other origins get no CORS headers at all.
    pub allowed_origins: Vec<String>,
}

impl CorsSettings {
    /// Every origin is exact: a wildcard or a path would let more pages in than meant.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        for origin in &self.allowed_origins {
            let exact = Url::parse(origin)
                .is_ok_and(|u| u.origin().ascii_serialization() == origin.trim_end_matches('/'));
            if origin.contains('*') || !exact {
                problems.push(format!(
                    "cors.allowed_origins: {origin:?} must be an exact origin such as \
                     \"https://ui.example.org\" (no wildcard, no path)"
                ));
            }
        }
    }
}
