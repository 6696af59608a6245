//! `login-bridge user`: local accounts, for people who sign in with a username and password at
//! the bridge when there is no SSO.

use std::fmt::Write;

use clap::Subcommand;

use super::{
    authority::{date_text, open_authority},
    password::PasswordInput,
};
use crate::{
    authority::local_users::{self, NewLocalUser},
    settings::Config,
};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is asked for twice on a terminal, else read as one
    /// line from stdin; it never goes on the command line.
    Add {
        name: String,
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long)]
        email: Option<String>,
        /// The name the UI shows.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Set a new password (asked for like `add`); the account's sessions end.
    Passwd { name: String },
    /// Disable an account: it cannot sign in, and its sessions end at their next check.
    Disable { name: String },
    /// Enable a disabled account again.
    Enable { name: String },
    /// Every account: name, id, state, roles, groups.
    List,
}
pub(super) async fn user(
    config: Config,
    command: UserCommand,
    password: PasswordInput,
) -> anyhow::Result<String> {
    let authority = open_authority(config).await?;
    let store = &authority.store;
    let mut out = String::new();
    match command {
        UserCommand::Add {
            name,
            roles,
            groups,
            email,
            display_name,
        } => {
            let name = local_users::normalize_name(&name);
            // Checked before asking for the password, which would be asked in vain.
            local_users::check_name(&name)?;
            if store.local_user(&name).await?.is_some() {
                anyhow::bail!("a local user named {name:?} exists already");
            }
            let user = local_users::add(
                store,
                NewLocalUser {
                    name,
                    password: password.read()?,
                    display_name,
                    email,
                    roles,
                    groups,
                },
            )
            .await?;
            let _ = writeln!(out, "created local user {} ({})", user.name, user.id);
        }
        UserCommand::Passwd { name } => {
            let name = local_users::normalize_name(&name);
            if store.local_user(&name).await?.is_none() {
                anyhow::bail!("no local user {name:?}");
            }
            let user = local_users::set_password(store, &name, &password.read()?).await?;
            let _ = writeln!(
                out,
                "password of {} changed; its sessions end at their next check",
                user.name
            );
        }
        UserCommand::Disable { name } => {
            let user = local_users::set_disabled(store, &name, true).await?;
            let _ = writeln!(
                out,
                "local user {} disabled; its sessions end at their next check",
                user.name
            );
        }
        UserCommand::Enable { name } => {
            let user = local_users::set_disabled(store, &name, false).await?;
            let _ = writeln!(out, "local user {} enabled", user.name);
        }
        UserCommand::List => {
            for u in local_users::list(store).await? {
                let _ = writeln!(
                    out,
                    "{} ({}) {} roles={:?} groups={:?} created {} password set {}",
                    u.name,
                    u.id,
                    if u.disabled { "disabled" } else { "active" },
                    u.roles,
                    u.groups,
                    date_text(u.created_at),
                    date_text(u.password_changed_at)
                );
            }
        }
    }
    Ok(out)
}
