//! Service users (ZITADEL's way): a non-interactive caller holds a key file with its private
//! key and signs an RFC 7523 assertion to get an access token at `/oauth/token`. The bridge
//! keeps only the public key. Roles and groups feed the same policies as every principal.
//!
//! A disabled or expired user's tokens stop before their `exp`: every replica re-reads which
//! users are stopped from the shared store every few seconds ([`spawn_watch`]) and hands the
//! trust engine the set, which it checks on every call (cached ones included) without a store
//! round trip.

use std::{sync::Arc, time::Duration};

use super::{
    crypto::{Pkcs8, SigningAlg, SigningKey},
    keyfile::KeyFile,
    keyring::AuthorityError,
    mint::random_id,
    store::{AuthorityStore, ServiceKey, ServiceUser},
};
use crate::{
    clock::now,
    trust::engine::{StoppedServiceUsers, TrustEngine},
};

/// The permission that lets a service user call `/oauth/introspect`.
pub const INTROSPECT: &str = "introspect";

/// What `service-user create` asks for.
pub struct NewServiceUser {
    pub name: String,
    pub expires_at: Option<i64>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub permissions: Vec<String>,
    pub alg: SigningAlg,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceUserError {
    #[error("{0}")]
    Invalid(String),
    #[error("no service user {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

impl From<super::store::AuthorityStoreError> for ServiceUserError {
    fn from(e: super::store::AuthorityStoreError) -> Self {
        Self::Authority(e.into())
    }
}

/// A fresh key pair for `user_id`: the stored public half and the key file with the private one.
fn new_key(user_id: &str, alg: SigningAlg) -> Result<(ServiceKey, KeyFile), ServiceUserError> {
    let pkcs8 = Pkcs8::generate(alg).map_err(AuthorityError::from)?;
    let key = SigningKey::from_pkcs8(alg, &pkcs8).map_err(AuthorityError::from)?;
    let stored = ServiceKey {
        key_id: key.kid.clone(),
        user_id: user_id.into(),
        alg: alg.as_str().into(),
        public_pem: key.public_pem(),
        created_at: now(),
    };
    let file = KeyFile {
        kind: "serviceaccount".into(),
        key_id: key.kid,
        key: pkcs8.to_pem(),
        user_id: user_id.into(),
    };
    Ok((stored, file))
}

/// Creates the user and its first key; returns the key file to hand over.
pub async fn create(
    store: &AuthorityStore,
    new: NewServiceUser,
) -> Result<(ServiceUser, KeyFile), ServiceUserError> {
    let name_ok = !new.name.is_empty()
        && new.name.len() <= 64
        && new
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        return Err(ServiceUserError::Invalid(
            "a service user's name is 1-64 characters of letters, digits, '-', '_' and '.'".into(),
        ));
    }
    if store.service_user(&new.name).await?.is_some() {
        return Err(ServiceUserError::Invalid(format!(
            "a service user named {:?} exists already",
            new.name
        )));
    }
    if let Some(p) = new.permissions.iter().find(|p| p.as_str() != INTROSPECT) {
        return Err(ServiceUserError::Invalid(format!(
            "unknown permission {p:?} (known: {INTROSPECT})"
        )));
    }
    let id = format!("svc-{}", random_id().map_err(AuthorityError::from)?);
    let user = ServiceUser {
        id: id.clone(),
        name: new.name,
        roles: new.roles,
        groups: new.groups,
        permissions: new.permissions,
        disabled: false,
        expires_at: new.expires_at,
        created_at: now(),
    };
    let (key, file) = new_key(&id, new.alg)?;
    store.create_service_user(&user, &key).await?;
    Ok((user, file))
}

async fn find(store: &AuthorityStore, id_or_name: &str) -> Result<ServiceUser, ServiceUserError> {
    store
        .service_user(id_or_name)
        .await?
        .ok_or_else(|| ServiceUserError::NotFound(id_or_name.into()))
}

/// Another key for an existing user (key rollover on the client side).
pub async fn add_key(
    store: &AuthorityStore,
    id_or_name: &str,
    alg: SigningAlg,
) -> Result<KeyFile, ServiceUserError> {
    let user = find(store, id_or_name).await?;
    let (key, file) = new_key(&user.id, alg)?;
    store.add_service_key(&key).await?;
    Ok(file)
}

pub async fn remove_key(
    store: &AuthorityStore,
    id_or_name: &str,
    key_id: &str,
) -> Result<(), ServiceUserError> {
    let user = find(store, id_or_name).await?;
    if store.remove_service_key(&user.id, key_id).await? {
        Ok(())
    } else {
        Err(ServiceUserError::Invalid(format!(
            "service user {:?} has no key {key_id:?}",
            user.name
        )))
    }
}

/// Disables (or enables again) a user: new assertions fail, its tokens stop introspecting
/// as active.
pub async fn set_disabled(
    store: &AuthorityStore,
    id_or_name: &str,
    disabled: bool,
) -> Result<ServiceUser, ServiceUserError> {
    let user = find(store, id_or_name).await?;
    store.set_disabled(&user.id, disabled).await?;
    Ok(ServiceUser { disabled, ..user })
}

/// Every user with its keys.
pub async fn list(
    store: &AuthorityStore,
) -> Result<Vec<(ServiceUser, Vec<ServiceKey>)>, ServiceUserError> {
    let mut out = Vec::new();
    for user in store.service_users().await? {
        let keys = store.service_keys(&user.id).await?;
        out.push((user, keys));
    }
    Ok(out)
}

/// The users whose tokens stop before their `exp`: disabled ones at once (`None`), the others
/// with an expiry from that moment (`Some(at)`).
pub async fn stopped(store: &AuthorityStore) -> Result<StoppedServiceUsers, ServiceUserError> {
    Ok(store
        .service_users()
        .await?
        .into_iter()
        .filter_map(|u| match (u.disabled, u.expires_at) {
            (true, _) => Some((u.id, None)),
            (false, Some(at)) => Some((u.id, Some(at))),
            (false, None) => None,
        })
        .collect())
}

/// Hands `trust` the stopped users now.
pub async fn publish_stopped(
    store: &AuthorityStore,
    trust: &TrustEngine,
) -> Result<(), ServiceUserError> {
    trust.set_stopped_service_users(stopped(store).await?);
    Ok(())
}

/// Re-reads the stopped users every `every` (what `service-user disable` promises: the tokens
/// stop on every replica within that time). A failed read keeps the last set.
pub fn spawn_watch(store: AuthorityStore, trust: Arc<TrustEngine>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = publish_stopped(&store, &trust).await {
                tracing::warn!(error = %e, "reading disabled service users failed; keeping the last known set");
            }
        }
    });
}
