//! `[metrics]`: the Prometheus listener, and its check.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[metrics]`: where `GET /metrics` is served. Never on the public listener: counters tell
/// an outsider how the bridge is used, so they get an address only operators reach.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Address of the metrics listener (`127.0.0.1:9464`); absent, no metrics at all.
    #[cfg_attr(test, schemars(extend("format" = "socket-address")))]
    pub listen: Option<SocketAddr>,
}

impl MetricsSettings {
    /// Metrics never share the public listener (`listen`).
    pub(super) fn check(&self, listen: SocketAddr, problems: &mut Vec<String>) {
        if let Some(metrics) = self.listen
            && metrics.port() != 0
            && metrics == listen
        {
            problems.push(
                "metrics.listen: must differ from listen; metrics get a listener of their own"
                    .into(),
            );
        }
    }
}
