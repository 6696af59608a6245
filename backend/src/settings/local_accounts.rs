//! `[local_accounts]`: username/password accounts kept by the bridge, their attempt limits,
//! and their checks.

use serde::{Deserialize, Serialize};

use super::session::SessionSettings;
use crate::authority::profile::TokenProfileSettings;

/// `[local_accounts]`: sign-in with a username and password kept by the bridge (`login-bridge
/// user ...`), beside SSO. Attempts are limited per account and per client address: each
/// allows a burst, then one attempt per `..._recovery_secs`; a refused attempt gets `429` with
/// `Retry-After`. Each failed attempt is answered after a delay that doubles with every
/// consecutive failure of the account (or address), from `failure_delay_ms` up to
/// `max_failure_delay_ms`.
///
/// The default limits follow OWASP's Authentication Cheat Sheet (a lockout threshold of a few
/// attempts per account, a lockout measured in minutes: its example is ten) and its Credential
/// Stuffing Prevention Cheat Sheet (limit what one address tries across accounts, over a burst
/// and a long period, temporarily): 5 attempts per account, then one every 10 minutes; 20 per
/// address, then one every 15 minutes. A password sprayer on one address gets about 116 guesses
/// a day, not 14 400 (20 then one every 6 s, the limits before).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct LocalAccountsSettings {
    /// The `[[token_profiles]]` entry a local user's token is minted from (no provider token
    /// exists). Default: `session.token_profile`.
    pub token_profile: Option<String>,
    /// A burst of sign-in attempts per account ...
    pub attempts_per_account: u32,
    /// ... then one more attempt every this many seconds.
    pub account_recovery_secs: u64,
    /// A burst of sign-in attempts per client address ...
    pub attempts_per_address: u32,
    /// ... then one more attempt every this many seconds.
    pub address_recovery_secs: u64,
    /// A failed attempt is answered after this delay, doubled for every consecutive failure of
    /// the account or the address ...
    pub failure_delay_ms: u64,
    /// ... up to this (at most 60000).
    pub max_failure_delay_ms: u64,
    /// Proxies in front of the bridge: from these peers, the last `X-Forwarded-For` hop is
    /// the client address the per-address limit counts (else every user would share the
    /// proxy's allowance).
    #[cfg_attr(test, schemars(with = "Vec<String>", extend("items" = { "type": "string", "format": "cidr" })))]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// One more attempt per account every 10 minutes once its burst is spent.
const DEFAULT_ACCOUNT_RECOVERY_SECS: u64 = 10 * 60;
/// One more attempt per client address every 15 minutes once its burst is spent.
const DEFAULT_ADDRESS_RECOVERY_SECS: u64 = 15 * 60;

impl Default for LocalAccountsSettings {
    fn default() -> Self {
        Self {
            token_profile: None,
            attempts_per_account: 5,
            account_recovery_secs: DEFAULT_ACCOUNT_RECOVERY_SECS,
            attempts_per_address: 20,
            address_recovery_secs: DEFAULT_ADDRESS_RECOVERY_SECS,
            failure_delay_ms: 250,
            max_failure_delay_ms: 4000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl LocalAccountsSettings {
    /// The profile local users' tokens are minted from.
    pub fn profile<'a>(&'a self, session: &'a SessionSettings) -> Option<&'a str> {
        self.token_profile
            .as_deref()
            .or(session.token_profile.as_deref())
    }
}

impl LocalAccountsSettings {
    /// A profile to mint from, and limits that let anyone in at all.
    pub(super) fn check(
        &self,
        session: &SessionSettings,
        token_profiles: &[TokenProfileSettings],
        problems: &mut Vec<String>,
    ) {
        let local = self;
        match local.profile(session) {
            None => problems.push(
                "local_accounts: set local_accounts.token_profile (or session.token_profile) \
                     to a [[token_profiles]] entry: a local user's token is minted from it"
                    .into(),
            ),
            Some(name) if !token_profiles.iter().any(|p| p.name == name) => problems.push(format!(
                "local_accounts.token_profile: {name:?} is not the name of a \
                         [[token_profiles]] entry"
            )),
            Some(_) => {}
        }
        if local.attempts_per_account == 0
            || local.attempts_per_address == 0
            || local.account_recovery_secs == 0
            || local.address_recovery_secs == 0
        {
            problems.push(
                "local_accounts: attempts_per_* and *_recovery_secs must be at least 1".into(),
            );
        }
        if local.failure_delay_ms > local.max_failure_delay_ms
            || local.max_failure_delay_ms > 60_000
        {
            problems
                .push("local_accounts: failure_delay_ms <= max_failure_delay_ms <= 60000".into());
        }
    }
}
