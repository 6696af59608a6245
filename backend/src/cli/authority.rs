//! What the commands on the bridge's own authority share: opening it on the configured store as
//! the server does, reading an algorithm's name, and printing a stored time.

use crate::{
    authority::{crypto::SigningAlg, keyring::Authority},
    session::store::SessionBackend,
    settings::Config,
};

/// The authority on the configured store, as the server opens it.
pub(super) async fn open_authority(config: Config) -> anyhow::Result<Authority> {
    let Config {
        settings, profiles, ..
    } = config;
    let Some(a) = &settings.authority else {
        anyhow::bail!(
            "the bridge issues no tokens: add [authority] with key_encryption_key_file to the \
             configuration"
        );
    };
    let backend = SessionBackend::open(&settings.session).await?;
    let store = backend.authority_store().await?;
    Ok(Authority::open(a, &settings.origin(), profiles, store).await?)
}

/// `--alg`'s value as a signing algorithm, or an error naming the ones there are.
pub(super) fn parse_alg(text: &str) -> anyhow::Result<SigningAlg> {
    SigningAlg::parse(text).ok_or_else(|| {
        anyhow::anyhow!("unknown algorithm {text:?}: use ES256, RS256, PS256 or EdDSA")
    })
}

/// A stored Unix time as RFC 3339 (UTC), or the bare number if it is out of range.
pub(super) fn date_text(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}
