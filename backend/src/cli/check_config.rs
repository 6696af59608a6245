//! `login-bridge check-config`: loads and validates the configuration, prints it with its
//! secrets masked, and says which Redis deployment `session.url` names.

use std::process::ExitCode;

use crate::settings::{Config, Settings};

/// Prints the loaded configuration (stdout) and its warnings (stderr); the loading itself
/// already refused an invalid one.
pub(super) fn check_config(config: &Config) -> ExitCode {
    for warning in config.settings.warnings() {
        eprintln!("login-bridge: warning: {warning}");
    }
    match toml_like(&config.settings) {
        Ok(text) => super::write_stdout(&format!("{text}\n")),
        Err(e) => eprintln!("login-bridge: {e}"),
    }
    if config.settings.session.store == crate::settings::StoreKind::Redis {
        // `url` prints as `***` above; the operator still wants to see which
        // deployment it names (sentinels, cluster nodes), without its password.
        let url = config.settings.session.url.expose();
        if let (Some(masked), Ok(topology)) = (
            crate::session::redis::masked_url(url),
            crate::session::redis::check_url(url),
        ) {
            // On stderr, with the warnings: stdout stays the configuration alone.
            eprintln!("login-bridge: session.url = {masked} ({topology})");
        }
    }
    ExitCode::SUCCESS
}

fn toml_like(settings: &Settings) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(settings)
}
