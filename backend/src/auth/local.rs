//! The local accounts' way in: the login page's plain HTML form posts `username`, `password`
//! and `return_to` to `POST /auth/local/login`, for when there is no SSO. The account is kept
//! by the bridge (`authority::local_users`); no provider token exists, so the SPA's
//! `auth_token` is minted from `local_accounts.token_profile`, and the session ends like any
//! other. Success is a `303` to `return_to`; any failure a `303` back to the login page with
//! `error` and `error_description`, which the page shows as text.
//!
//! What protects it:
//! - CSRF (login CSRF included): `Origin` must be this origin and `Sec-Fetch-Site`, when
//!   sent, `same-origin` ([`require_same_origin_form`]).
//! - One answer for every failure: an unknown user, a disabled one and a wrong password get the
//!   same redirect, and an unknown user's attempt still verifies a password against a hash of
//!   the same cost, so the time says nothing either.
//! - Attempts limited per account and per client address (governor's GCRA: a burst, then one
//!   attempt per recovery period; beyond it the answer is `error=too_many_attempts` with
//!   `Retry-After`, before any password is checked), and every failure answered after a delay
//!   that doubles with each consecutive failure of the account or address. The limits live in each replica's memory: with N replicas an attacker gets at most
//!   N times the attempts.
//! - Hashing runs on the blocking pool, at most as many at once as there are cores, so a flood
//!   of attempts cannot starve the async threads.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    Extension,
    extract::{ConnectInfo, FromRequest, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use serde::Deserialize;
use shared::session::User;
use tokio::sync::Semaphore;

use super::{csrf::require_same_origin_form, return_to};
use crate::{
    authority::{
        keyring::Authority,
        local_users::{self, MAX_NAME_BYTES, MAX_PASSWORD_BYTES},
        store::LocalUser,
    },
    clock::now,
    error::{AppError, AppResult},
    extract::Form,
    session::{
        index::IndexKey,
        typed::{EndReason, TypedSession},
        user::{SessionUser, SignIn},
    },
    settings::LocalAccountsSettings,
    state::AppState,
};

pub const PATH: &str = "/auth/local/login";

/// Keys of the failure counters at most (least recently used forgotten first).
const FAILURE_ENTRIES: usize = 100_000;
/// Rate-limiter keys kept before the stale ones are swept out.
const LIMITER_SWEEP_AT: usize = 100_000;

/// The form's fields. No `Debug`: the password must never reach a log.
#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// Where to go once signed in (a same-origin path; `/` when absent or not one).
    #[serde(default)]
    return_to: String,
}

/// What a consecutive-failure counter is about.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Subject {
    Account(String),
    Address(IpAddr),
}

/// Consecutive failures of one subject, and when the last one was.
#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last_at: i64,
}

/// A keyed limiter on the clock `C` (the real one; a fake one in tests, to show minutes pass).
type Limiter<K, C> =
    RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The sign-in's limits and the cost model for unknown users; one per replica.
pub struct LocalLogin<C: Clock = DefaultClock> {
    settings: LocalAccountsSettings,
    per_account: Limiter<String, C>,
    per_address: Limiter<IpAddr, C>,
    clock: C,
    failures: quick_cache::sync::Cache<Subject, Failures>,
    /// A hash of a random password with the same parameters: what an unknown user's attempt
    /// is checked against, so it costs the same time as a known user's.
    decoy_hash: String,
    hashing: Arc<Semaphore>,
}

/// Why an attempt was turned away before any password was checked.
struct TooMany {
    retry_after: Duration,
}

fn quota(burst: u32, recovery_secs: u64) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(Duration::from_secs(recovery_secs.max(1)))
        .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl LocalLogin {
    pub fn new(settings: LocalAccountsSettings) -> Result<Self, local_users::LocalUserError> {
        Self::with_clock(settings, DefaultClock::default())
    }
}

impl<C: Clock + Clone> LocalLogin<C> {
    /// The limits on `clock` (tests pass a fake one to let minutes pass at once).
    fn with_clock(
        settings: LocalAccountsSettings,
        clock: C,
    ) -> Result<Self, local_users::LocalUserError> {
        let decoy = crate::authority::mint::random_id()
            .map_err(crate::authority::keyring::AuthorityError::from)?;
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Ok(Self {
            per_account: RateLimiter::new(
                quota(
                    settings.attempts_per_account,
                    settings.account_recovery_secs,
                ),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            per_address: RateLimiter::new(
                quota(
                    settings.attempts_per_address,
                    settings.address_recovery_secs,
                ),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            clock,
            failures: quick_cache::sync::Cache::new(FAILURE_ENTRIES),
            decoy_hash: local_users::hash_password(&decoy)?,
            hashing: Arc::new(Semaphore::new(cores)),
            settings,
        })
    }

    /// Takes one attempt from the account's and the address's allowance.
    fn admit(&self, account: &str, address: IpAddr) -> Result<(), TooMany> {
        if self.per_account.len() > LIMITER_SWEEP_AT {
            self.per_account.retain_recent();
        }
        if self.per_address.len() > LIMITER_SWEEP_AT {
            self.per_address.retain_recent();
        }
        let now = self.clock.now();
        let by_account = self.per_account.check_key(&account.to_string());
        let by_address = self.per_address.check_key(&address);
        let wait = [by_account.err(), by_address.err()]
            .into_iter()
            .flatten()
            .map(|not_until| not_until.wait_time_from(now))
            .max();
        match wait {
            Some(retry_after) => Err(TooMany { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failure of each subject; returns how long to hold the answer back.
    fn failed(&self, subjects: &[Subject]) -> Duration {
        let at = now();
        // A run of failures ends when the subject could have had its whole allowance back.
        let forget_after = (self.settings.account_recovery_secs
            * u64::from(self.settings.attempts_per_account))
        .max(self.settings.address_recovery_secs * u64::from(self.settings.attempts_per_address))
            as i64;
        let mut worst = 0;
        for subject in subjects {
            let count = match self.failures.get(subject) {
                Some(f) if at - f.last_at <= forget_after => f.count.saturating_add(1),
                _ => 1,
            };
            self.failures
                .insert(subject.clone(), Failures { count, last_at: at });
            worst = worst.max(count);
        }
        let doubled = self
            .settings
            .failure_delay_ms
            .saturating_mul(1u64 << worst.saturating_sub(1).min(20));
        Duration::from_millis(doubled.min(self.settings.max_failure_delay_ms))
    }

    /// Whether `password` is the account's; for no account (or a disabled one), checks it
    /// against the decoy hash, to take the same time, and says no.
    async fn verify(&self, account: Option<&LocalUser>, password: String) -> AppResult<bool> {
        let usable = account.filter(|a| !a.disabled);
        let hash = usable.map_or_else(|| self.decoy_hash.clone(), |a| a.password_hash.clone());
        let _permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(AppError::internal)?;
        let matches =
            tokio::task::spawn_blocking(move || local_users::verify_password(&hash, &password))
                .await
                .map_err(AppError::internal)?;
        Ok(matches && usable.is_some())
    }
}

/// The client's address: the connection's peer, or the last `X-Forwarded-For` hop when the
/// peer is one of `local_accounts.trusted_proxies`.
fn client_address(
    settings: &LocalAccountsSettings,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> IpAddr {
    let peer = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if !settings.trusted_proxies.iter().any(|n| n.contains(&peer)) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .next_back()
        .unwrap_or(peer)
}

/// Back to the login page, which shows `description` (and keeps `return_to`).
fn back_to_login(error: &str, description: &str, return_to: &str) -> Response {
    let location = format!(
        "/login?error={error}&error_description={}&return_to={}",
        urlencoding::encode(description),
        urlencoding::encode(return_to)
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
    )
        .into_response()
}

/// The one answer for an unknown user, a disabled one and a wrong password.
fn wrong_credentials(return_to: &str) -> Response {
    back_to_login(
        "invalid_credentials",
        "Wrong username or password.",
        return_to,
    )
}

fn too_many(wait: &TooMany, return_to: &str) -> Response {
    let secs = wait.retry_after.as_secs() + u64::from(wait.retry_after.subsec_nanos() > 0);
    // The default limits recover in minutes: say so in minutes (Retry-After stays in seconds).
    let when = if secs >= 120 {
        format!("{} minutes", secs.div_ceil(60))
    } else {
        format!("{secs} s")
    };
    let mut response = back_to_login(
        "too_many_attempts",
        &format!("Too many sign-in attempts. Try again in {when}."),
        return_to,
    );
    if let Ok(value) = secs.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The user the SPA and the session show for an account.
fn user_of(account: &LocalUser) -> User {
    User {
        id: account.id.clone(),
        username: Some(account.name.clone()),
        name: account.display_name.clone(),
        email: account.email.clone(),
        groups: account.groups.clone(),
        roles: account.roles.clone(),
    }
}

/// What a session remembers of the password it signed in with: the hash's fingerprint.
fn credential_of(account: &LocalUser) -> String {
    crate::trust::fingerprint(&account.password_hash)
}

/// The profile a local user's token is minted from, and the authority that mints it.
fn minting(state: &AppState) -> AppResult<(&Arc<Authority>, &str)> {
    let name = state
        .settings
        .local_accounts
        .as_ref()
        .and_then(|l| l.profile(&state.settings.session));
    match (&state.authority, name) {
        (Some(authority), Some(name)) => Ok((authority, name)),
        _ => Err(AppError::internal(
            "local accounts are on without a token profile or [authority]",
        )),
    }
}

/// The session user of `account`, with a freshly minted token the bridge's own trust engine
/// has accepted (so the SPA's API calls will be).
async fn session_user(state: &AppState, account: &LocalUser) -> AppResult<SessionUser> {
    let (authority, profile_name) = minting(state)?;
    let profile = authority
        .profile(profile_name)
        .ok_or_else(|| AppError::internal(format!("token profile {profile_name} not loaded")))?;
    let user = user_of(account);
    // Unbound: the sign-in is a form post without a DPoP proof. Under `session.dpop` the
    // first session call with a proof replaces it with a bound one (`auth::session_endpoint`).
    let minted = authority
        .mint_profile(&profile, &user, None)
        .map_err(AppError::internal)?;
    let verified = state.trust.verify(&minted.token).await.map_err(|e| {
        AppError::internal(format!("the bridge refuses its own local-user token: {e}"))
    })?;
    let mut principal = (*verified).clone();
    // The account is the authority on who this is; the profile may shape its claims for an
    // API that wants other names.
    principal.user = user;
    Ok(SessionUser {
        principal,
        sign_in: SignIn::Local {
            name: account.name.clone(),
            credential: credential_of(account),
        },
        signed_in_at: now(),
        minted: Some(minted),
        dpop_jkt: None,
    })
}

/// `POST /auth/local/login`.
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    Extension(local): Extension<Arc<LocalLogin>>,
    session: TypedSession,
    request: Request,
) -> AppResult<Response> {
    require_same_origin_form(request.headers(), &state.settings.origin())?;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let address = client_address(&local.settings, peer, request.headers());
    let Form(Credentials {
        username,
        password,
        return_to,
    }) = Form::<Credentials>::from_request(request, &())
        .await
        .map_err(|e| match e {
            // Too large stays 413; anything else says what the form must hold.
            e @ AppError::PayloadTooLarge(_) => e,
            _ => AppError::BadRequest("send the form fields username and password".into()),
        })?;
    let return_to = return_to::validate(&return_to).unwrap_or_else(|_| "/".into());
    // Bounded before it is normalized: the fold's cost must not grow with what a client sends.
    if username.len() > MAX_NAME_BYTES * 4 || password.len() > MAX_PASSWORD_BYTES {
        return Ok(back_to_login(
            "invalid_request",
            "The username or password is too long.",
            &return_to,
        ));
    }
    // Folded as at `user add` (NFKC, trimmed, lowercased): `ａｌｉｃｅ` signs in as `alice`.
    let name = local_users::normalize_name(&username);
    if name.is_empty() || password.is_empty() {
        return Ok(back_to_login(
            "invalid_request",
            "Enter your username and password.",
            &return_to,
        ));
    }
    if let Err(wait) = local.admit(&name, address) {
        tracing::info!(client = %address, "local sign-in refused: too many attempts");
        crate::metrics::local_sign_in("limited");
        return Ok(too_many(&wait, &return_to));
    }
    let (authority, _) = minting(&state)?;
    let account = authority
        .store
        .local_user(&name)
        .await
        .map_err(|e| AppError::StoreUnavailable(e.to_string()))?;
    let matches = local.verify(account.as_ref(), password).await?;
    let Some(account) = account.filter(|_| matches) else {
        let delay = local.failed(&[Subject::Account(name), Subject::Address(address)]);
        tracing::info!(client = %address, "local sign-in failed: wrong username or password");
        crate::metrics::local_sign_in("failed");
        tokio::time::sleep(delay).await;
        return Ok(wrong_credentials(&return_to));
    };
    local.failures.remove(&Subject::Account(name));
    let user = session_user(&state, &account).await?;
    let keys = [IndexKey::sub(user.principal.user.id.clone())];
    match session.user().await? {
        Some(_) => session.switch_user(user.clone(), &keys).await?,
        None => session.sign_in(user.clone(), &keys).await?,
    }
    tracing::info!(user = %user.principal.user.id, "signed in with a local account");
    crate::metrics::local_sign_in("signed_in");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, return_to),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
    )
        .into_response())
}

/// For a local sign-in, whether its account still allows the session: it exists, is enabled,
/// and its password has not changed since. Any other sign-in: true.
pub async fn still_allowed(state: &AppState, user: &SessionUser) -> AppResult<bool> {
    let SignIn::Local { name, credential } = &user.sign_in else {
        return Ok(true);
    };
    let Some(authority) = &state.authority else {
        return Ok(false);
    };
    let account = authority
        .store
        .local_user(name)
        .await
        .map_err(|e| AppError::StoreUnavailable(e.to_string()))?;
    Ok(account.is_some_and(|a| {
        !a.disabled && a.id == user.principal.user.id && credential_of(&a) == *credential
    }))
}

/// Ends a local session whose account no longer allows it.
pub async fn end_if_revoked(
    state: &AppState,
    session: &TypedSession,
    user: &SessionUser,
) -> AppResult<bool> {
    if still_allowed(state, user).await? {
        return Ok(false);
    }
    tracing::info!(user = %user.principal.user.id, "local session ended: account disabled or password changed");
    session.sign_out_user(EndReason::AccountChanged).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(burst: u32) -> LocalLogin {
        LocalLogin::new(LocalAccountsSettings {
            attempts_per_account: burst,
            attempts_per_address: 100,
            failure_delay_ms: 100,
            max_failure_delay_ms: 1000,
            ..LocalAccountsSettings::default()
        })
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn an_account_gets_its_burst_and_then_a_retry_after() {
        let l = login(3);
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..3 {
            assert!(l.admit("alice", ip).is_ok());
        }
        let refused = l.admit("alice", ip).err().map(|t| t.retry_after);
        assert!(
            refused.is_some_and(|d| d > Duration::from_secs(50)),
            "{refused:?}"
        );
        assert!(l.admit("bob", ip).is_ok(), "another account is not held up");
    }

    #[test]
    fn the_default_limits_recover_in_minutes_not_seconds() {
        let d = LocalAccountsSettings::default();
        let per_account = quota(d.attempts_per_account, d.account_recovery_secs);
        let per_address = quota(d.attempts_per_address, d.address_recovery_secs);
        assert_eq!(per_account.burst_size().get(), 5);
        assert_eq!(per_account.replenish_interval(), Duration::from_secs(600));
        assert_eq!(per_address.burst_size().get(), 20);
        assert_eq!(per_address.replenish_interval(), Duration::from_secs(900));
    }

    #[test]
    fn a_sprayer_pacing_a_guess_every_6_s_across_accounts_from_one_address_is_refused_after_the_burst()
     {
        // One address, a new account each time, so no per-account limit ever bites: only the
        // per-address one stands between the sprayer and 600 guesses an hour.
        let clock = governor::clock::FakeRelativeClock::default();
        let l = LocalLogin::with_clock(LocalAccountsSettings::default(), clock.clone())
            .unwrap_or_else(|e| unreachable!("{e}"));
        let ip = IpAddr::from([203, 0, 113, 66]);
        let mut admitted = 0;
        let mut first_refusal = None;
        for i in 0..600 {
            match l.admit(&format!("user{i}"), ip) {
                Ok(()) => admitted += 1,
                Err(t) => {
                    first_refusal.get_or_insert((i, t.retry_after));
                }
            }
            clock.advance(Duration::from_secs(6));
        }
        let (at, wait) = first_refusal.unwrap_or_else(|| unreachable!("never refused"));
        assert_eq!(at, 20, "refused right after the burst of 20");
        // 15 minutes less the 2 the burst took at this pace.
        assert_eq!(wait, Duration::from_secs(13 * 60), "Retry-After");
        // An hour of it: the burst, then one guess at 15, 30 and 45 minutes (600 before).
        assert_eq!(admitted, 20 + 3);
        // Recovery is one attempt per 15 minutes: not after 14, after 15.
        let l = LocalLogin::with_clock(LocalAccountsSettings::default(), clock.clone())
            .unwrap_or_else(|e| unreachable!("{e}"));
        for i in 0..20 {
            assert!(l.admit(&format!("user{i}"), ip).is_ok());
        }
        assert!(l.admit("another", ip).is_err());
        clock.advance(Duration::from_secs(14 * 60));
        assert!(l.admit("another", ip).is_err(), "not yet after 14 minutes");
        clock.advance(Duration::from_secs(60));
        assert!(l.admit("another", ip).is_ok(), "one more after 15 minutes");
        assert!(l.admit("yet-another", ip).is_err(), "and only one");
    }

    #[test]
    fn each_consecutive_failure_doubles_the_delay_up_to_the_cap() {
        let l = login(3);
        let s = [Subject::Account("alice".into())];
        let delays: Vec<u128> = (0..6).map(|_| l.failed(&s).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn the_client_address_is_the_peer_unless_a_trusted_proxy_forwarded_it() {
        let mut settings = LocalAccountsSettings::default();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.7, 203.0.113.9".parse().unwrap(),
        );
        let proxy = Some(IpAddr::from([10, 0, 0, 2]));
        assert_eq!(
            client_address(&settings, proxy, &headers),
            IpAddr::from([10, 0, 0, 2])
        );
        settings.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_address(&settings, proxy, &headers),
            IpAddr::from([203, 0, 113, 9])
        );
    }
}
