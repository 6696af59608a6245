//! Every subcommand of the `login-bridge` binary: `serve` (the default), `check-config` and
//! `token verify`. `main.rs` only wires telemetry and hands the parsed command line here.

use std::{fmt::Write, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::{Parser, Subcommand};

use crate::{
    oidc::client::ProviderClient,
    settings::{Config, Settings},
    startup::Application,
    trust::engine::TrustEngine,
};

#[derive(Parser)]
#[command(
    name = "login-bridge",
    version,
    about = "Hands a validated OIDC/JWT token to a single-page web UI"
)]
pub struct Cli {
    /// TOML configuration file; `BRIDGE_*` environment variables override it.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Load and validate the configuration, print it (secrets masked), and exit.
    CheckConfig,
    /// Work with tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Check a JWT as the API would: which issuer matched, each check and why, the mapped
    /// principal. Exit code 0 when accepted, 1 when rejected. Pass `-` to read it from stdin
    /// (keeps it out of shell history and the process list).
    Verify {
        /// The JWT, or `-` for stdin.
        token: String,
    },
}

/// Runs the command line: loads the configuration once (every problem reported together),
/// then the subcommand.
pub async fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("login-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            match toml_like(&settings.settings) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("login-bridge: {e}"),
            }
            ExitCode::SUCCESS
        }
        Command::Token {
            command: TokenCommand::Verify { token },
        } => {
            let token = if token == "-" {
                let mut buf = String::new();
                if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf) {
                    eprintln!("login-bridge: cannot read the token from stdin: {e}");
                    return ExitCode::from(2);
                }
                buf
            } else {
                token
            };
            match verify_token(settings, &token).await {
                Ok((report, accepted)) => {
                    print!("{report}");
                    if accepted {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("login-bridge: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve => match serve(settings).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("login-bridge: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn toml_like(settings: &Settings) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(settings)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let settings = config.settings.clone();
    let app = Application::build(config).await?;
    tracing::info!(
        port = app.port(),
        public_url = %settings.public_url,
        issuer = %settings.oidc.issuer,
        "login-bridge listening"
    );
    app.run_until_stopped().await?;
    Ok(())
}

/// Verifies `token` as the API would and returns the report and whether it was accepted.
///
/// `login-bridge token verify`: what an operator runs when "my token is rejected". Prints
/// which trusted issuer the token claims, every check with its result and reason, the mapped
/// principal and the policy verdict. Never prints the token.
pub async fn verify_token(config: Config, token: &str) -> anyhow::Result<(String, bool)> {
    let Config { settings, issuers } = config;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.oidc.http_timeout_secs.min(5)))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let engine = Arc::new(TrustEngine::new(
        issuers,
        settings.route_policies.clone(),
        &http,
    ));
    let provider = ProviderClient::new(Arc::new(settings), http, engine.clone());
    let mut out = String::new();
    // A successful discovery registers the provider with the engine, like the server does.
    if let Err(e) = provider.discover().await {
        let _ = writeln!(
            out,
            "note: the OIDC provider could not be discovered, so its tokens cannot be checked here: {e}"
        );
    }
    let explanation = engine.explain(token.trim()).await;
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
