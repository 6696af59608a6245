//! `login-bridge service-user`: callers without a browser that sign RFC 7523 assertions with
//! their own key; the commands write the private key to a file and the bridge keeps the public one.

use std::{fmt::Write, path::PathBuf};

use clap::Subcommand;

use super::authority::{date_text, open_authority, parse_alg};
use crate::{
    authority::{
        keyfile::{KeyFile, write_private},
        service_users::{self, NewServiceUser},
    },
    settings::Config,
};

#[derive(Subcommand)]
pub enum ServiceUserCommand {
    /// Create a service user and its first key; writes the key file (mode 0600). The private
    /// key is not kept by the bridge.
    Create {
        name: String,
        /// Last day the user works (YYYY-MM-DD, UTC).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Bridge permissions: `introspect` lets it call /oauth/introspect.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// Key type: ES256 (default), RS256, PS256 or EdDSA.
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// Where to write the key file (default: NAME.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Every service user and its keys.
    List,
    /// Another key for a user; writes its key file.
    AddKey {
        user: String,
        #[arg(long, default_value = "ES256")]
        alg: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Remove one key of a user.
    RemoveKey {
        user: String,
        /// A key id is base64url and may begin with `-`: taken as it is, not as an option.
        #[arg(allow_hyphen_values = true)]
        key_id: String,
    },
    /// Disable a user: its assertions and tokens stop working.
    Disable { user: String },
    /// Enable a disabled user again.
    Enable { user: String },
}
fn write_key_file(file: &KeyFile, to: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    let path = to.unwrap_or_else(|| PathBuf::from(format!("{name}.json")));
    let text = serde_json::to_string_pretty(file)?;
    write_private(&path, text.as_bytes()).map_err(|e| anyhow::anyhow!(e))?;
    Ok(path)
}

fn parse_expiry(text: &str) -> anyhow::Result<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format)
        .map_err(|_| anyhow::anyhow!("--expires {text:?}: use YYYY-MM-DD"))?;
    // The user works through that whole day (UTC).
    Ok(date.with_hms(23, 59, 59)?.assume_utc().unix_timestamp())
}

pub(super) async fn service_user(
    config: Config,
    command: ServiceUserCommand,
) -> anyhow::Result<String> {
    let authority = open_authority(config).await?;
    let mut out = String::new();
    let store = &authority.store;
    match command {
        ServiceUserCommand::Create {
            name,
            expires,
            roles,
            groups,
            permissions,
            alg,
            out: to,
        } => {
            let new = NewServiceUser {
                name: name.clone(),
                expires_at: expires.as_deref().map(parse_expiry).transpose()?,
                roles,
                groups,
                permissions,
                alg: parse_alg(&alg)?,
            };
            // The key file's place is checked first: nothing is created if it cannot be written.
            let path = to.unwrap_or_else(|| PathBuf::from(format!("{name}.json")));
            if path.exists() {
                anyhow::bail!("{} already exists; not overwriting it", path.display());
            }
            let (user, file) = service_users::create(store, new).await?;
            let path = write_key_file(&file, Some(path), &name)?;
            let _ = writeln!(out, "created service user {} ({})", user.name, user.id);
            let _ = writeln!(
                out,
                "key {} written to {} (mode 0600); the bridge keeps only the public key",
                file.key_id,
                path.display()
            );
        }
        ServiceUserCommand::List => {
            for (user, keys) in service_users::list(store).await? {
                let state = if user.disabled {
                    "disabled".to_string()
                } else if let Some(e) = user.expires_at {
                    format!("active until {}", date_text(e))
                } else {
                    "active".into()
                };
                let _ = writeln!(
                    out,
                    "{} ({}) {state} roles={:?} groups={:?} permissions={:?}",
                    user.name, user.id, user.roles, user.groups, user.permissions
                );
                for k in keys {
                    let _ = writeln!(
                        out,
                        "  key {} {} created {}",
                        k.key_id,
                        k.alg,
                        date_text(k.created_at)
                    );
                }
            }
        }
        ServiceUserCommand::AddKey { user, alg, out: to } => {
            let file = service_users::add_key(store, &user, parse_alg(&alg)?).await?;
            let path = write_key_file(
                &file,
                to,
                &format!("{user}-{}", &file.key_id[..8.min(file.key_id.len())]),
            )?;
            let _ = writeln!(
                out,
                "key {} written to {} (mode 0600)",
                file.key_id,
                path.display()
            );
        }
        ServiceUserCommand::RemoveKey { user, key_id } => {
            service_users::remove_key(store, &user, &key_id).await?;
            let _ = writeln!(out, "key {key_id} removed");
        }
        ServiceUserCommand::Disable { user } => {
            let u = service_users::set_disabled(store, &user, true).await?;
            let _ = writeln!(out, "service user {} ({}) disabled", u.name, u.id);
        }
        ServiceUserCommand::Enable { user } => {
            let u = service_users::set_disabled(store, &user, false).await?;
            let _ = writeln!(out, "service user {} ({}) enabled", u.name, u.id);
        }
    }
    Ok(out)
}
