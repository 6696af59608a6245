//! The `login-bridge` binary: wires telemetry, configuration and the CLI; everything else
//! lives in the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

// A request allocates many small, short-lived objects (headers, claims, JSON); mimalloc handles
// that pattern markedly better than glibc's malloc (see bench/api-vs-healthz.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use login_bridge::{settings::Settings, startup::Application, telemetry};

#[derive(Parser)]
#[command(
    name = "login-bridge",
    version,
    about = "Hands a validated OIDC/JWT token to a single-page web UI"
)]
struct Cli {
    /// TOML configuration file; `BRIDGE_*` environment variables override it.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
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
enum TokenCommand {
    /// Check a JWT as the API would: which issuer matched, each check and why, the mapped
    /// principal. Exit code 0 when accepted, 1 when rejected. Pass `-` to read it from stdin
    /// (keeps it out of shell history and the process list).
    Verify {
        /// The JWT, or `-` for stdin.
        token: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("login-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            let http = reqwest::Client::new();
            if let Err(problems) = login_bridge::trust::engine::TrustEngine::new(
                &settings.issuers,
                &settings.route_policies,
                &http,
            ) {
                eprintln!(
                    "login-bridge: invalid trusted issuers:\n  - {}",
                    problems.join("\n  - ")
                );
                return ExitCode::from(2);
            }
            match toml_like(&settings) {
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
            match login_bridge::cli::verify_token(settings, &token).await {
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

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings.clone()).await?;
    tracing::info!(
        port = app.port(),
        public_url = %settings.public_url,
        issuer = %settings.oidc.issuer,
        "login-bridge listening"
    );
    app.run_until_stopped().await?;
    Ok(())
}
