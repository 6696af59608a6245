//! Every subcommand of the `login-bridge` binary: `serve` (the default), `check-config`,
//! `token verify`, `keys`, `service-user` and `user`, a file each. This file holds the command
//! line itself and [`run`]: `main.rs` hands the parsed command line here; logging starts once the
//! configuration (and so its log format) is loaded.

mod authority;
mod check_config;
mod keys;
mod password;
mod serve;
mod service_user;
mod token;
mod user;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

pub use self::{
    keys::KeysCommand,
    password::PasswordInput,
    service_user::ServiceUserCommand,
    token::{ProofQuery, TokenCommand, verify_token, verify_token_with_proof},
    user::UserCommand,
};
use crate::settings::{Config, Settings};

#[derive(Parser)]
#[command(
    name = "login-bridge",
    version,
    about = "Hands a validated OIDC/JWT token to a single-page web UI"
)]
pub struct Cli {
    /// TOML configuration file; `BRIDGE_*` environment variables override it.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// The bridge's own signing keys (needs `[authority]`).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Service users: callers without a browser that sign RFC 7523 assertions with their own
    /// key (needs `[authority]`).
    ServiceUser {
        #[command(subcommand)]
        command: ServiceUserCommand,
    },
    /// Local accounts: people who sign in with a username and password at the bridge when
    /// there is no SSO (needs `[authority]` and `[local_accounts]` to sign in).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

/// Runs the command line: loads the configuration once (every problem reported together),
/// starts logging in its `log.format`, then the subcommand.
pub async fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("login-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    // After loading: the format is a setting. Loading logs nothing; its problems go to stderr
    // above.
    crate::telemetry::init(settings.settings.log.format, &settings.settings.log.level);
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => check_config::check_config(&settings),
        Command::Token { command } => token::run(settings, command).await,
        command @ (Command::Keys { .. } | Command::ServiceUser { .. } | Command::User { .. }) => {
            match admin(settings, command).await {
                Ok(out) => {
                    write_stdout(&out);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("login-bridge: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => match serve::serve(settings, cli.config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("login-bridge: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs a `keys`, `service-user` or `user` command and returns what it prints.
pub async fn admin(config: Config, command: Command) -> anyhow::Result<String> {
    admin_with(config, command, PasswordInput::Ask).await
}

/// [`admin`], with the password of `user add` / `user passwd` from `password`.
pub async fn admin_with(
    config: Config,
    command: Command,
    password: PasswordInput,
) -> anyhow::Result<String> {
    match command {
        Command::Keys { command } => keys::keys(config, command).await,
        Command::ServiceUser { command } => service_user::service_user(config, command).await,
        Command::User { command } => user::user(config, command, password).await,
        _ => anyhow::bail!("not an administration command"),
    }
}

/// Writes a command's answer to stdout. A reader that stops early (`check-config | head`) is
/// not an error of the command: `print!` would panic on the closed pipe, this ends quietly.
pub(crate) fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn a_key_id_that_begins_with_a_dash_is_a_key_id_not_an_option() {
        let parsed = Cli::try_parse_from([
            "login-bridge",
            "service-user",
            "remove-key",
            "svc-a",
            "-3xYz_Q",
        ]);
        match parsed.map(|c| c.command) {
            Ok(Some(Command::ServiceUser {
                command: ServiceUserCommand::RemoveKey { user, key_id },
            })) => assert_eq!((user.as_str(), key_id.as_str()), ("svc-a", "-3xYz_Q")),
            Ok(_) => panic!("parsed as another command"),
            Err(e) => panic!("{e}"),
        }
    }
}
