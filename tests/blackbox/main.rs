//! Black-box tests of login-bridge, built as one binary: the real server on port 0, the real
//! OIDC provider (npm `oidc-provider`, `tests/idp`), and for the browser flows a real headless
//! Chromium driven through ChromeDriver.

mod api_and_session;
mod authority;
mod backchannel_logout;
mod bad_requests;
mod browser;
mod code_flow;
mod dpop_api;
mod dpop_session;
mod ended_sessions;
mod gateway;
mod jwt_bearer;
mod key_creation;
mod local_accounts;
mod metrics;
mod privacyidea;
mod provider_quirks;
mod redis_ha;
mod reload;
mod replicas;
mod run_command;
mod session_hardening;
mod shared_authority;
mod spa_delivery;
mod spa_source;
mod support;
mod systemd_notify;
mod test_gateway;
mod trust;
mod upstream;
