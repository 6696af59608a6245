//! Configuration: a TOML file, then `BRIDGE_` environment variables (`__` separates nesting
//! levels, e.g. `BRIDGE_OIDC__CLIENT_SECRET`), validated once at startup.
//!
//! Every problem is reported at once, each with the setting's name and how to fix it, so an
//! operator does not have to restart the bridge once per typo.
//!
//! One file per section, its type beside its checks; this module holds the whole
//! ([`Settings`]), loading, and the order in which the checks run (the order problems are
//! listed in).

mod authority;
mod cors;
mod gateway;
mod issuers;
mod local_accounts;
mod log;
mod metrics;
mod oidc;
mod secret;
mod session;
#[cfg(test)]
mod tests;
mod ui;
mod upstreams;

use std::{fmt, net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use url::Url;

pub use self::{
    cors::CorsSettings,
    gateway::GatewaySettings,
    local_accounts::LocalAccountsSettings,
    log::{LogFormat, LogSettings},
    metrics::MetricsSettings,
    oidc::OidcSettings,
    secret::Secret,
    session::{DpopMode, SameSiteMode, SessionSettings, StoreKind},
    ui::UiSettings,
    upstreams::UpstreamSettings,
};
pub use crate::authority::{
    crypto::SigningAlg,
    profile::{AuthoritySettings, TokenProfile, TokenProfileSettings},
};
pub use crate::trust::{
    issuer::{IssuerSettings, IssuerSpec, PROVIDER_ISSUER, Policy, RoutePolicy},
    mapping::ClaimMapping,
};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds to. Port 0 picks a free port.
    #[cfg_attr(test, schemars(extend("format" = "socket-address")))]
    pub listen: SocketAddr,
    /// The URL browsers use to reach the bridge (scheme, host, port; no path). The OIDC
    /// redirect URI is `<public_url>/auth/callback`; https turns on the cookies' `Secure` and
    /// `__Host-` prefix, and HSTS.
    pub public_url: Url,
    /// Directory with the built SPA (`trunk build --release` writes `dist/`).
    #[cfg_attr(test, schemars(extend("format" = "path")))]
    pub dist_dir: PathBuf,
    /// The OpenID provider users sign in with, and the bridge's client at it.
    pub oidc: OidcSettings,
    /// The server-side sessions: where they live, how long they last, their cookie, DPoP.
    pub session: SessionSettings,
    /// Claim mapping of the login provider's tokens (`[[issuers]]` entries have their own).
    pub claims: ClaimMapping,
    /// More issuers whose JWTs the API accepts (gateways, other realms, service tokens...).
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
    /// Extra requirements for API paths under a prefix.
    #[serde(default)]
    pub route_policies: Vec<RoutePolicy>,
    /// Sign-in with a JWT a gateway in front of the bridge puts on the request.
    #[serde(default)]
    pub gateway: Option<GatewaySettings>,
    /// The bridge as a token issuer: its signing keys, service users, `/oauth/token`.
    #[serde(default)]
    pub authority: Option<AuthoritySettings>,
    /// Tokens the bridge mints for one API (privacyIDEA...). Needs `[authority]`.
    #[serde(default)]
    pub token_profiles: Vec<TokenProfileSettings>,
    /// Username/password accounts kept by the bridge itself (off unless present). Needs
    /// `[authority]`: their token is minted.
    #[serde(default)]
    pub local_accounts: Option<LocalAccountsSettings>,
    /// REST APIs reached through the bridge under a path prefix.
    #[serde(default)]
    pub upstreams: Vec<UpstreamSettings>,
    /// Cross-origin calls from SPAs served elsewhere (off by default).
    #[serde(default)]
    pub cors: CorsSettings,
    /// Prometheus `/metrics` on a listener of its own (off by default).
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// How log lines are written.
    #[serde(default)]
    pub log: LogSettings,
    /// What the web UI calls the product.
    #[serde(default)]
    pub ui: UiSettings,
}

/// The configuration after every check, with the trusted issuers compiled: what the server
/// and the CLI run on. Only [`Settings::compile`] (and so [`Settings::load`]) makes one.
#[derive(Clone)]
pub struct Config {
    pub settings: Settings,
    /// The `[[issuers]]` entries, compiled (keys read, algorithms parsed, patterns built).
    pub issuers: Vec<IssuerSpec>,
    /// The `[[token_profiles]]`, checked.
    pub profiles: Vec<TokenProfile>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("settings", &self.settings)
            .field(
                "issuers",
                &self.issuers.iter().map(|i| &i.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: Url::parse("http://localhost:8080").unwrap_or_else(|_| unreachable_url()),
            dist_dir: PathBuf::from("dist"),
            oidc: OidcSettings::default(),
            session: SessionSettings::default(),
            claims: ClaimMapping::default(),
            issuers: Vec::new(),
            route_policies: Vec::new(),
            gateway: None,
            authority: None,
            token_profiles: Vec::new(),
            local_accounts: None,
            upstreams: Vec::new(),
            cors: CorsSettings::default(),
            metrics: MetricsSettings::default(),
            log: LogSettings::default(),
            ui: UiSettings::default(),
        }
    }
}

// `Url::parse` of a literal cannot fail; this keeps `Default` free of unwrap.
#[allow(clippy::panic)]
fn unreachable_url() -> Url {
    panic!("static URL literal is valid")
}

/// Why the configuration could not be used. The message lists every problem found.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration could not be read: {0}")]
    Load(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl Settings {
    /// Defaults, then the TOML file (if given), then `BRIDGE_*` environment variables; then
    /// every check, reported at once.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(SettingsError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("BRIDGE_").split("__"));
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| SettingsError::Load(e.to_string()))?;
        settings.resolve_secrets()?;
        settings.compile()
    }

    /// Checks everything and compiles the trusted issuers: the one place that says whether a
    /// configuration is usable, listing every problem.
    pub fn compile(self) -> Result<Config, SettingsError> {
        let mut problems = self.problems();
        let mut issuers = issuers::compile(&self.issuers, &mut problems);
        if let Some(gateway) = &self.gateway {
            gateway.bind_issuers(&mut issuers, &mut problems);
        }
        let profiles = authority::compile_profiles(
            self.authority.as_ref(),
            &self.token_profiles,
            &self.session,
            &mut problems,
        );
        if let Some(local) = &self.local_accounts {
            local.check(&self.session, &self.token_profiles, &mut problems);
        }
        upstreams::check(&self.upstreams, &self.token_profiles, &mut problems);
        self.cors.check(&mut problems);
        self.session.check_dpop(&mut problems);
        if problems.is_empty() {
            Ok(Config {
                settings: self,
                issuers,
                profiles,
            })
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }

    /// Logs what a running bridge should say of this configuration, at start and after each
    /// reload: [`Self::warnings`], and that a gateway header is trusted from any peer.
    pub fn log_warnings(&self) {
        if self.gateway.as_ref().is_some_and(|g| g.allow_any_peer) {
            tracing::warn!(
                "gateway.allow_any_peer: any client that reaches the bridge can sign in with a \
                 gateway header; make sure only the gateway can reach it"
            );
        }
        for warning in self.warnings() {
            tracing::warn!("{warning}");
        }
    }

    /// What a usable configuration may still get wrong: logged at startup (and printed by
    /// `check-config`), one sentence each.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.session.dpop != DpopMode::Off {
            for u in self.upstreams.iter().filter(|u| u.token == "forward") {
                warnings.push(format!(
                    "upstreams[{}]: with session.dpop on, the API at {} receives the SPA's \
                     DPoP-bound token (token = \"forward\"): it must check DPoP proofs itself, \
                     or use token = \"profile:<name>\" to get a token the bridge mints for it",
                    u.name.as_deref().unwrap_or(&u.prefix),
                    u.prefix
                ));
            }
        }
        if self.session.dpop == DpopMode::Off && self.session.dpop_nonce {
            warnings.push("session.dpop_nonce has no effect while session.dpop = \"off\"".into());
        }
        warnings
    }

    fn resolve_secrets(&mut self) -> Result<(), SettingsError> {
        if let Some(path) = &self.oidc.client_secret_file {
            let value = std::fs::read_to_string(path).map_err(|e| {
                SettingsError::Invalid(vec![format!(
                    "oidc.client_secret_file: cannot read {}: {e}",
                    path.display()
                )])
            })?;
            self.oidc.client_secret = Secret::new(value.trim_end());
        }
        if let Some(path) = &self.session.url_file {
            let value = std::fs::read_to_string(path).map_err(|e| {
                SettingsError::Invalid(vec![format!(
                    "session.url_file: cannot read {}: {e}",
                    path.display()
                )])
            })?;
            self.session.url = Secret::new(value.trim());
        }
        Ok(())
    }

    /// Checks everything that can be checked without the network, trusted issuers included.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.clone().compile().map(drop)
    }

    /// The problems of the settings themselves (issuers are checked by [`Self::compile`]).
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.public_url.scheme() {
            "http" | "https" => {}
            other => problems.push(format!(
                "public_url: scheme must be http or https, not {other:?}"
            )),
        }
        if self.public_url.path() != "/" || self.public_url.query().is_some() {
            problems.push(
                "public_url: give only scheme, host and port (e.g. https://ui.example.org), no path"
                    .into(),
            );
        }
        self.oidc.check_issuer(&mut problems);
        self.log.check(&mut problems);
        self.ui.check(&mut problems);
        if let Some(problem) = self.claims.problem() {
            // The login provider's mapping (`[claims]`).
            problems.push(problem);
        }
        self.oidc.check_client(&mut problems);
        self.metrics.check(self.listen, &mut problems);
        self.session.check(&mut problems);
        if let Some(gateway) = &self.gateway {
            gateway.check(&mut problems);
        }
        problems
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.origin())
    }

    /// `scheme://host[:port]` of the public URL, without a trailing slash.
    pub fn origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    pub fn post_logout_redirect_uri(&self) -> String {
        match &self.oidc.post_logout_redirect_uri {
            Some(u) => u.to_string(),
            None => format!("{}/login?signed_out=1", self.origin()),
        }
    }

    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}
