//! `login-bridge keys`: the bridge's own signing keys (list, rotate, export the public key).

use std::fmt::Write;

use clap::Subcommand;

use super::authority::{date_text, open_authority, parse_alg};
use crate::settings::Config;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Every stored signing key: kid, algorithm, state.
    List,
    /// New current keys (every algorithm in use, or one); the old ones stay published until
    /// the last token they signed has expired.
    Rotate {
        #[arg(long)]
        alg: Option<String>,
    },
    /// Print the current public key (PEM with `--pem`, else the JWKS) to paste into an API's
    /// configuration, such as privacyIDEA's PI_TRUSTED_JWT.
    Export {
        #[arg(long)]
        pem: bool,
        /// The algorithm whose current key to export (default: `authority.algorithm`).
        #[arg(long)]
        alg: Option<String>,
    },
}
pub(super) async fn keys(config: Config, command: KeysCommand) -> anyhow::Result<String> {
    let authority = open_authority(config).await?;
    let mut out = String::new();
    match command {
        KeysCommand::List => {
            let _ = writeln!(out, "{:<45} {:<6} {:<26} state", "kid", "alg", "created");
            let now = crate::clock::now();
            for k in authority.key_infos().await? {
                let state = match (k.retired_at, k.publish_until) {
                    (None, _) => "current".to_string(),
                    (Some(_), Some(until)) if until > now => {
                        format!("retired, published until {}", date_text(until))
                    }
                    (Some(_), _) => "retired".to_string(),
                };
                let _ = writeln!(
                    out,
                    "{:<45} {:<6} {:<26} {state}",
                    k.kid,
                    k.alg,
                    date_text(k.created_at)
                );
            }
        }
        KeysCommand::Rotate { alg } => {
            let only = alg.as_deref().map(parse_alg).transpose()?;
            for kid in authority.rotate(only).await? {
                let _ = writeln!(out, "new current key {kid}");
            }
            eprintln!(
                "the previous keys stay published until every token they signed has expired; \
                 running bridges pick the new keys up within authority.key_reload_secs"
            );
        }
        KeysCommand::Export { pem, alg } => {
            let alg = match alg {
                Some(a) => parse_alg(&a)?,
                None => authority.default_alg,
            };
            let ring = authority.ring();
            let Some(key) = ring.current(alg) else {
                anyhow::bail!("no current {alg} key");
            };
            if pem {
                out.push_str(&key.public_pem());
            } else {
                let _ = writeln!(out, "{}", ring.jwks_json());
            }
        }
    }
    Ok(out)
}
