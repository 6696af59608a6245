//! Local accounts: people who sign in with a username and password at the bridge itself, for
//! when there is no SSO (a break-glass admin, or a provider that is down). The CLI manages them
//! (`login-bridge user add|passwd|disable|enable|list`); `auth::local` signs them in.
//!
//! Passwords are hashed with argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's Password Storage Cheat
//! Sheet's first choice), in PHC form with a 16-byte random salt. Only the hash is stored.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};

use unicode_normalization::UnicodeNormalization;

use super::{
    keyring::AuthorityError,
    mint::random_id,
    store::{AuthorityStore, AuthorityStoreError, LocalUser},
};
use crate::clock::now;

/// argon2id memory cost in KiB (19 MiB).
pub const ARGON2_M_KIB: u32 = 19_456;
/// argon2id iterations.
pub const ARGON2_T: u32 = 2;
/// argon2id lanes.
pub const ARGON2_P: u32 = 1;

/// Shortest password accepted (NIST SP 800-63B's minimum for a memorised secret).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes: hashing cost must not grow with what a client sends.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest username, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum LocalUserError {
    #[error("{0}")]
    Invalid(String),
    #[error("no local user {0:?}")]
    NotFound(String),
    #[error("a local user named {0:?} exists already")]
    Exists(String),
    #[error("password hashing failed")]
    Hash,
    #[error(transparent)]
    Store(#[from] AuthorityStoreError),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

fn hasher() -> Argon2<'static> {
    // The parameters are constants within argon2's limits.
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, LocalUserError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| LocalUserError::Hash)
}

/// Whether `password` matches the PHC string `hash` (false for an unreadable hash too). Takes
/// as long as hashing: run it off the async threads.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The name as stored and as looked up at sign-in: Unicode compatibility forms folded (NFKC:
/// fullwidth `ａｌｉｃｅ` is `alice`, the ligature `ﬁ` is `fi`), trimmed and lowercased, so
/// `Alice`, `ａｌｉｃｅ` and `alice` are one account and no look-alike can be added beside it.
pub fn normalize_name(name: &str) -> String {
    let folded = name.nfkc().collect::<String>().trim().to_lowercase();
    // Lowercasing can leave a string that NFKC would change again: once more makes the fold
    // stable (folding a folded name changes nothing).
    folded.nfkc().collect()
}

/// Refuses a name that is empty, too long, or holds anything but letters, digits, `-_.@`.
pub fn check_name(name: &str) -> Result<(), LocalUserError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(LocalUserError::Invalid(format!(
            "a local user's name is 1-{MAX_NAME_BYTES} characters of letters, digits, '-', '_', \
             '.' and '@'"
        )))
    }
}

/// Refuses a password that is too short or too long.
pub fn check_password(password: &str) -> Result<(), LocalUserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(LocalUserError::Invalid(format!(
            "the password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(LocalUserError::Invalid(format!(
            "the password may have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// What `user add` asks for.
pub struct NewLocalUser {
    pub name: String,
    pub password: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
}

/// Creates the account.
pub async fn add(store: &AuthorityStore, new: NewLocalUser) -> Result<LocalUser, LocalUserError> {
    let name = normalize_name(&new.name);
    check_name(&name)?;
    check_password(&new.password)?;
    let password_hash = hash_password(&new.password)?;
    let at = now();
    let user = LocalUser {
        id: format!("local-{}", random_id().map_err(AuthorityError::from)?),
        name: name.clone(),
        display_name: new.display_name.filter(|n| !n.trim().is_empty()),
        email: new.email.filter(|e| !e.trim().is_empty()),
        roles: new.roles,
        groups: new.groups,
        password_hash,
        disabled: false,
        created_at: at,
        password_changed_at: at,
    };
    if store.insert_local_user(&user).await? {
        Ok(user)
    } else {
        Err(LocalUserError::Exists(name))
    }
}

async fn existing(store: &AuthorityStore, name: &str) -> Result<LocalUser, LocalUserError> {
    let name = normalize_name(name);
    store
        .local_user(&name)
        .await?
        .ok_or(LocalUserError::NotFound(name))
}

async fn save(store: &AuthorityStore, user: LocalUser) -> Result<LocalUser, LocalUserError> {
    if store.update_local_user(&user).await? {
        Ok(user)
    } else {
        Err(LocalUserError::NotFound(user.name))
    }
}

/// Sets a new password; sessions signed in with the old one end.
pub async fn set_password(
    store: &AuthorityStore,
    name: &str,
    password: &str,
) -> Result<LocalUser, LocalUserError> {
    check_password(password)?;
    let mut user = existing(store, name).await?;
    user.password_hash = hash_password(password)?;
    user.password_changed_at = now();
    save(store, user).await
}

/// Disables or enables the account; a disabled account's sessions end at their next check.
pub async fn set_disabled(
    store: &AuthorityStore,
    name: &str,
    disabled: bool,
) -> Result<LocalUser, LocalUserError> {
    let mut user = existing(store, name).await?;
    user.disabled = disabled;
    save(store, user).await
}

/// Every account, by name.
pub async fn list(store: &AuthorityStore) -> Result<Vec<LocalUser>, LocalUserError> {
    Ok(store.local_users().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_with_the_stated_parameters_and_verifies_only_its_password() {
        let hash = hash_password("correct horse").unwrap_or_default();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsE"));
        assert!(!verify_password("not a hash", "correct horse"));
        assert_ne!(
            hash,
            hash_password("correct horse").unwrap_or_default(),
            "salted"
        );
    }

    #[test]
    fn names_differing_only_by_compatibility_forms_fold_to_one() {
        for (given, folded) in [
            ("ａｌｉｃｅ", "alice"),
            ("ＡＬＩＣＥ", "alice"),
            ("\u{3000}alice\u{3000}", "alice"),
            ("ﬁona", "fiona"),
            ("ops\u{FF20}example", "ops@example"),
            ("Ｋelvin", "kelvin"),
            ("\u{212A}elvin", "kelvin"),
        ] {
            let name = normalize_name(given);
            assert_eq!(name, folded, "{given:?}");
            assert!(check_name(&name).is_ok(), "{given:?}");
            assert_eq!(normalize_name(&name), name, "stable: {given:?}");
        }
        // Not a compatibility form: stays what it is, and is no valid name.
        assert!(check_name(&normalize_name("аlice")).is_err(), "Cyrillic а");
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert_eq!(normalize_name("  Alice "), "alice");
        assert!(check_name("alice.admin@example").is_ok());
        for bad in ["", "a b", "x/y", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"p".repeat(1025)).is_err());
    }
}
