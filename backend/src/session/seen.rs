//! Back-channel logout tokens already used, by `jti`, so a replayed one is refused. Kept in
//! memory per replica until the token's `exp` (plus leeway), bounded in size: a logout token
//! is accepted only while it is fresh, so an entry never needs to outlive that.

use std::{collections::HashMap, sync::Mutex};

/// At most this many `jti`s are remembered; when full, expired ones go first, then new
/// tokens are refused (a flood of logout tokens is an attack, not a provider).
const MAX_SEEN: usize = 10_000;

#[derive(Default)]
pub struct SeenJtis {
    seen: Mutex<HashMap<String, i64>>,
}

/// Why a `jti` cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum SeenError {
    Replayed,
    Full,
}

impl SeenJtis {
    /// Records `jti` until `until` (unix seconds); refuses one seen before.
    pub fn first_use(&self, jti: &str, until: i64, now: i64) -> Result<(), SeenError> {
        let mut seen = match self.seen.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if seen.get(jti).is_some_and(|&t| t > now) {
            return Err(SeenError::Replayed);
        }
        if seen.len() >= MAX_SEEN {
            seen.retain(|_, &mut t| t > now);
            if seen.len() >= MAX_SEEN {
                return Err(SeenError::Full);
            }
        }
        seen.insert(jti.to_owned(), until);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_while_remembered() {
        let seen = SeenJtis::default();
        assert_eq!(seen.first_use("a", 200, 100), Ok(()));
        assert_eq!(seen.first_use("a", 200, 150), Err(SeenError::Replayed));
        assert_eq!(seen.first_use("b", 200, 150), Ok(()));
        // Past its time the token itself is expired, so the entry may go.
        assert_eq!(seen.first_use("a", 400, 300), Ok(()));
    }
}
