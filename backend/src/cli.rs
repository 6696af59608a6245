//! `login-bridge token verify`: what an operator runs when "my token is rejected". Prints
//! which trusted issuer the token claims, every check with its result and reason, the mapped
//! principal and the policy verdict. Never prints the token.

use std::{fmt::Write, sync::Arc, time::Duration};

use crate::{oidc::Provider, settings::Settings, trust::engine::TrustEngine};

/// Verifies `token` as the API would and returns the report and whether it was accepted.
pub async fn verify_token(settings: Settings, token: &str) -> anyhow::Result<(String, bool)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.oidc.http_timeout_secs.min(5)))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let engine = TrustEngine::new(&settings.issuers, &settings.route_policies, &http)
        .map_err(|p| anyhow::anyhow!("invalid trusted issuers:\n  - {}", p.join("\n  - ")))?;
    let settings = Arc::new(settings);
    let provider = Provider::new(settings.clone(), http);
    let mut out = String::new();
    if let Err(e) = provider.discover().await {
        let _ = writeln!(
            out,
            "note: the OIDC provider could not be discovered, so its tokens cannot be checked here: {e}"
        );
    }
    let discovered = provider.ready();
    let explanation = engine
        .explain(token.trim(), discovered.as_ref().map(|d| &d.trusted))
        .await;
    let _ = writeln!(
        out,
        "issuer: {}",
        explanation.issuer.as_deref().unwrap_or("(unreadable)")
    );
    for check in &explanation.checks {
        match &check.outcome {
            Ok(detail) => {
                let _ = writeln!(out, "  ok    {}: {detail}", check.name);
            }
            Err(e) => {
                let _ = writeln!(out, "  FAIL  {}: {e}", check.name);
            }
        }
    }
    if let Some(p) = &explanation.principal {
        let _ = writeln!(out, "principal:");
        let _ = writeln!(out, "  user id:  {}", p.user.id);
        let _ = writeln!(
            out,
            "  username: {}",
            p.user.username.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            out,
            "  email:    {}",
            p.user.email.as_deref().unwrap_or("-")
        );
        let _ = writeln!(out, "  groups:   {:?}", p.user.groups);
        let _ = writeln!(out, "  roles:    {:?}", p.user.roles);
        let _ = writeln!(
            out,
            "  token:    {}",
            p.token_name.as_deref().unwrap_or("-")
        );
        if let Some(level) = p.access_level {
            let _ = writeln!(out, "  access level: {level}");
        }
    }
    match &explanation.policy {
        Some(Ok(())) => {
            let _ = writeln!(out, "policy: admitted");
        }
        Some(Err(reason)) => {
            let _ = writeln!(out, "policy: refused ({reason})");
        }
        None => {}
    }
    let accepted = explanation.accepted();
    let _ = writeln!(
        out,
        "result: {}",
        if accepted { "ACCEPTED" } else { "REJECTED" }
    );
    Ok((out, accepted))
}
