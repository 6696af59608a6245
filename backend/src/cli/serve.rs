//! `login-bridge serve` (the default command): builds the application and runs it until a
//! shutdown signal, reloading the configuration on SIGHUP.

use std::path::PathBuf;

use crate::{settings::Config, startup::Application};

/// Runs the server; SIGHUP reloads `file` (and `BRIDGE_*`), see [`crate::reload`].
pub(super) async fn serve(config: Config, file: Option<PathBuf>) -> anyhow::Result<()> {
    // Before anything else: SIGHUP's default action ends the process, and a `systemctl reload`
    // during startup must not.
    #[cfg(unix)]
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| anyhow::anyhow!("cannot handle SIGHUP: {e}"))?;
    let settings = config.settings.clone();
    let app = Application::build(config).await?;
    #[cfg(unix)]
    {
        let reloader = app.reloader();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reloader.reload_file(file.as_deref()).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = file;
    tracing::info!(
        port = app.port(),
        public_url = %settings.public_url,
        issuer = %settings.oidc.issuer,
        "login-bridge listening"
    );
    if let Some(port) = app.metrics_port() {
        tracing::info!(port, "metrics at /metrics");
    }
    app.run_until_stopped().await?;
    Ok(())
}
