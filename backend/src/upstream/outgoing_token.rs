//! The token an upstream gets: the caller's own (`forward`), one minted for it from a token
//! profile (`profile:<name>`, kept per caller token until a third of its life is left), or none.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use crate::{
    authority::{
        keyring::{Authority, ProfileSet},
        mint::Minted,
        profile::TokenProfile,
    },
    clock::now,
    settings::UpstreamSettings,
    trust::{bearer::Scheme, principal::Principal},
};

/// Minted tokens remembered at most (emptied when full).
const MINTED_CAPACITY: usize = 10_000;

enum Mode {
    Forward,
    Profile {
        profile: Arc<TokenProfile>,
        authority: Arc<Authority>,
        minted: Mutex<HashMap<[u8; 32], Minted>>,
    },
    None,
}

pub struct OutgoingToken {
    mode: Mode,
    header: HeaderName,
    /// `Bearer`, another scheme, or empty for the bare token.
    scheme: String,
    /// No `scheme` configured for a forwarded token: it goes with the caller's own (`Bearer`,
    /// or `DPoP` for a bound token, which then keeps its proof).
    callers_scheme: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OutgoingTokenError {
    #[error("upstream {0}: {1}")]
    Config(String, String),
    #[error("minting the upstream's token failed: {0}")]
    Mint(String),
}

impl OutgoingToken {
    /// `minting`: the authority and the token profiles to mint from (a reload passes the set
    /// it is about to put in use).
    pub fn new(
        settings: &UpstreamSettings,
        minting: Option<(&Arc<Authority>, &ProfileSet)>,
    ) -> Result<Self, OutgoingTokenError> {
        let name = settings
            .name
            .clone()
            .unwrap_or_else(|| settings.prefix.clone());
        let config = |m: &str| OutgoingTokenError::Config(name.clone(), m.into());
        let (mode, default_header, default_scheme) = match settings.token.as_str() {
            "forward" => (
                Mode::Forward,
                "authorization".to_string(),
                "Bearer".to_string(),
            ),
            "none" => (Mode::None, "authorization".into(), "Bearer".into()),
            other => {
                let profile_name = other.strip_prefix("profile:").unwrap_or(other);
                let (authority, profiles) =
                    minting.ok_or_else(|| config("a profile token needs [authority]"))?;
                let profile = profiles
                    .get(profile_name)
                    .ok_or_else(|| config("unknown token profile"))?;
                let (header, scheme) = (profile.header.clone(), profile.scheme.clone());
                (
                    Mode::Profile {
                        profile,
                        authority: authority.clone(),
                        minted: Mutex::new(HashMap::new()),
                    },
                    header,
                    scheme,
                )
            }
        };
        let header = settings.header.clone().unwrap_or(default_header);
        let header = HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
            .map_err(|_| config("header is not a header name"))?;
        Ok(Self {
            callers_scheme: matches!(mode, Mode::Forward) && settings.scheme.is_none(),
            mode,
            header,
            scheme: settings.scheme.clone().unwrap_or(default_scheme),
        })
    }

    /// The header the upstream's token goes in (a caller's copy of it never passes).
    pub fn header_name(&self) -> &HeaderName {
        &self.header
    }

    /// Whether the upstream gets the caller's own token. Only then can the caller do anything
    /// about the upstream refusing it (refresh and retry).
    pub fn forwards_the_callers(&self) -> bool {
        matches!(self.mode, Mode::Forward)
    }

    /// The header to send for a caller who presented `incoming` with `incoming_scheme`,
    /// proving `principal`.
    pub fn header_for(
        &self,
        incoming: &str,
        incoming_scheme: Scheme,
        principal: &Principal,
    ) -> Result<Option<(&HeaderName, HeaderValue)>, OutgoingTokenError> {
        let token = match &self.mode {
            Mode::None => return Ok(None),
            Mode::Forward => incoming.to_string(),
            Mode::Profile {
                profile,
                authority,
                minted,
            } => {
                let key: [u8; 32] = Sha256::digest(incoming.as_bytes()).into();
                let now = now();
                let mut cache = match minted.lock() {
                    Ok(c) => c,
                    Err(p) => p.into_inner(),
                };
                match cache.get(&key) {
                    Some(m) if m.fresh(profile.lifetime_secs, now) => m.token.clone(),
                    _ => {
                        let m = authority
                            .mint_profile(profile, &principal.user, None)
                            .map_err(|e| OutgoingTokenError::Mint(e.to_string()))?;
                        if cache.len() >= MINTED_CAPACITY {
                            cache.clear();
                        }
                        let token = m.token.clone();
                        cache.insert(key, m);
                        token
                    }
                }
            }
        };
        let scheme = match self.callers_scheme {
            true => incoming_scheme.as_str(),
            false => self.scheme.as_str(),
        };
        let text = if scheme.is_empty() {
            token
        } else {
            format!("{scheme} {token}")
        };
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| OutgoingTokenError::Mint("token is not header text".into()))?;
        value.set_sensitive(true);
        Ok(Some((&self.header, value)))
    }
}
