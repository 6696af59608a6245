//! `[authority]` and `[[token_profiles]]`: the bridge as a token issuer. Their types live with
//! the authority (`crate::authority::profile`); here, the checks that tie them to the rest of
//! the configuration.

use super::session::SessionSettings;
use crate::authority::{
    crypto::SigningAlg,
    profile::{AuthoritySettings, TokenProfile, TokenProfileSettings},
};

/// The token profiles, and what the bridge as issuer needs.
pub(super) fn compile_profiles(
    authority: Option<&AuthoritySettings>,
    token_profiles: &[TokenProfileSettings],
    session: &SessionSettings,
    problems: &mut Vec<String>,
) -> Vec<TokenProfile> {
    let default_alg = match authority {
        Some(a) => SigningAlg::parse(&a.algorithm).unwrap_or_else(|| {
            problems.push(format!(
                "authority.algorithm: {:?} is not one of ES256, RS256, PS256, EdDSA",
                a.algorithm
            ));
            SigningAlg::ES256
        }),
        None => SigningAlg::ES256,
    };
    if let Some(a) = authority {
        let sources =
            a.key_encryption_key_file.is_some() as u8 + a.key_encryption_key_env.is_some() as u8;
        if sources != 1 {
            problems.push(
                "authority: set exactly one of key_encryption_key_file and \
                     key_encryption_key_env (32 random bytes, base64: `openssl rand -base64 32`)"
                    .into(),
            );
        }
        if a.create_key_encryption_key && a.key_encryption_key_file.is_none() {
            problems.push(
                "authority.create_key_encryption_key: needs key_encryption_key_file (the \
                     file to create)"
                    .into(),
            );
        }
        if a.service_token_lifetime_secs == 0 || a.service_token_lifetime_secs > 86_400 {
            problems.push("authority.service_token_lifetime_secs: between 1 and 86400".into());
        }
    } else if !token_profiles.is_empty() || session.token_profile.is_some() {
        problems.push(
            "token_profiles / session.token_profile need [authority] (the bridge's signing \
                 keys): add it with key_encryption_key_file"
                .into(),
        );
    }
    let mut profiles = Vec::new();
    for entry in token_profiles {
        if profiles.iter().any(|p: &TokenProfile| p.name == entry.name) {
            problems.push(format!(
                "token_profiles: {:?} is configured twice",
                entry.name
            ));
        }
        match TokenProfile::compile(entry, default_alg) {
            Ok(p) => profiles.push(p),
            Err(mut e) => problems.append(&mut e),
        }
    }
    if let Some(name) = &session.token_profile
        && !token_profiles.iter().any(|p| &p.name == name)
    {
        problems.push(format!(
            "session.token_profile: {name:?} is not the name of a [[token_profiles]] entry"
        ));
    }
    profiles
}
