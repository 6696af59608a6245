//! The verified-token cache: a busy SPA sends the same token on every call, and a signature
//! check per call would cost most of the API's throughput. Keyed by SHA-256 of the whole
//! token; an entry is never served past the token's `exp`, and is void once its issuer's key
//! set changed (a rotated-out key must not keep admitting tokens). Bounded in size.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::principal::Principal;

pub(super) struct CacheEntry {
    principal: Arc<Principal>,
    generation: u64,
}

/// Bounded cache of verified tokens.
pub struct VerifiedCache {
    entries: Mutex<HashMap<[u8; 32], CacheEntry>>,
    capacity: usize,
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }
}

impl VerifiedCache {
    pub fn get(
        &self,
        key: &[u8; 32],
        now: i64,
        generation_of: impl Fn(&str) -> Option<u64>,
    ) -> Option<Arc<Principal>> {
        let map = match self.entries.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let entry = map.get(key)?;
        let fresh = now < entry.principal.expires_at
            && generation_of(&entry.principal.issuer) == Some(entry.generation);
        fresh.then(|| entry.principal.clone())
    }

    pub fn insert(&self, key: [u8; 32], principal: Arc<Principal>, generation: u64, now: i64) {
        if principal.expires_at <= now {
            return;
        }
        let mut map = match self.entries.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() >= self.capacity {
            map.retain(|_, e| e.principal.expires_at > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(
            key,
            CacheEntry {
                principal,
                generation,
            },
        );
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(expires_at: i64) -> Principal {
        Principal {
            claims: Arc::default(),
            user: shared::session::User::default(),
            issuer: "https://iss".into(),
            issuer_name: "iss".into(),
            expires_at,
            token_fingerprint: String::new(),
            token_name: None,
            access_level: None,
        }
    }

    fn cache(capacity: usize) -> VerifiedCache {
        VerifiedCache::new(capacity)
    }

    #[test]
    fn a_cached_token_is_never_served_past_its_exp() {
        let c = cache(10);
        c.insert([1; 32], Arc::new(principal(100)), 0, 50);
        assert!(c.get(&[1; 32], 99, |_| Some(0)).is_some());
        assert!(c.get(&[1; 32], 100, |_| Some(0)).is_none());
    }

    #[test]
    fn a_cached_token_is_void_once_its_issuers_keys_change() {
        let c = cache(10);
        c.insert([1; 32], Arc::new(principal(100)), 3, 50);
        assert!(c.get(&[1; 32], 60, |_| Some(3)).is_some());
        assert!(c.get(&[1; 32], 60, |_| Some(4)).is_none());
        assert!(
            c.get(&[1; 32], 60, |_| None).is_none(),
            "issuer no longer trusted"
        );
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let c = cache(3);
        for i in 0..10u8 {
            c.insert([i; 32], Arc::new(principal(100)), 0, 50);
        }
        assert!(c.len() <= 3);
    }
}
