//! The verified-token cache: a busy SPA sends the same token on every call, and a signature
//! check per call would cost most of the API's throughput. Keyed by the whole token itself: a
//! hit means the very bytes that were verified came again (no digest whose collisions would
//! need an argument; the table's hasher is seeded at random per process, so crafted tokens
//! cannot pile into one bucket). An entry is never served past the token's `exp`, and is void
//! once its issuer's key set changed (a rotated-out key must not keep admitting tokens).
//! Bounded by the memory its entries hold, the tokens' text included. A configuration reload
//! empties it ([`VerifiedCache::clear`]): a token verified under the old rules (audiences,
//! policies, an issuer since removed) must be checked again under the new ones.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use quick_cache::{Weighter, sync::Cache};

use super::principal::Principal;

#[derive(Clone)]
pub(super) struct CacheEntry {
    principal: Arc<Principal>,
    generation: u64,
    /// The cache's epoch when the verification began (see [`VerifiedCache::clear`]).
    epoch: u64,
    /// Estimated bytes the entry holds (see [`VerifiedCache::insert`]).
    weight: u32,
}

#[derive(Clone)]
struct ByWeight;

impl Weighter<Box<str>, CacheEntry> for ByWeight {
    fn weight(&self, _key: &Box<str>, entry: &CacheEntry) -> u64 {
        u64::from(entry.weight)
    }
}

/// Cache of verified tokens, bounded by the memory its entries hold. Sharded (no global lock)
/// and evicting one entry at a time by recency and frequency (quick_cache's CLOCK-Pro), so a
/// full cache never drops everything at once.
pub struct VerifiedCache {
    entries: Cache<Box<str>, CacheEntry, ByWeight>,
    /// Bumped by every [`Self::clear`]: an entry of an earlier epoch is never served, so a
    /// verification that began under the old configuration and finishes after the clear
    /// cannot leave a stale entry behind.
    epoch: AtomicU64,
}

/// Bytes an entry holds besides its principal's heap and its token's text: the cache's slot,
/// the token's box, the principal's fixed part and its `Arc`.
const ENTRY_OVERHEAD: usize = 320;

impl VerifiedCache {
    /// A cache holding at most about `budget_bytes` of verified principals.
    pub fn new(budget_bytes: usize) -> Self {
        // A typical entry: about 1 KiB of principal and 1 KiB of token text.
        let estimated_items = budget_bytes / (ENTRY_OVERHEAD + 2048);
        Self {
            entries: Cache::with_weighter(estimated_items.max(16), budget_bytes as u64, ByWeight),
            epoch: AtomicU64::new(0),
        }
    }

    /// The principal `token` proved, if these exact bytes were verified and still may be served.
    pub fn get(
        &self,
        token: &str,
        now: i64,
        generation_of: impl FnOnce(&str) -> Option<u64>,
    ) -> Option<Arc<Principal>> {
        let entry = self.entries.get(token)?;
        let fresh = now < entry.principal.expires_at
            && entry.epoch == self.epoch.load(Ordering::Acquire)
            && generation_of(&entry.principal.issuer) == Some(entry.generation);
        if !fresh {
            // Expired or its keys changed: it can never be served again.
            self.entries.remove(token);
            return None;
        }
        Some(entry.principal)
    }

    /// Remembers that `token` proved `principal`, weighed by the memory both hold.
    pub fn insert(&self, token: &str, principal: Arc<Principal>, generation: u64, now: i64) {
        self.insert_as_of(token, principal, generation, self.epoch(), now);
    }

    /// [`Self::insert`] for a verification that began in `epoch` (read with [`Self::epoch`]
    /// before it): if the cache was cleared since, the entry is never served.
    pub fn insert_as_of(
        &self,
        token: &str,
        principal: Arc<Principal>,
        generation: u64,
        epoch: u64,
        now: i64,
    ) {
        if principal.expires_at <= now {
            return;
        }
        let weight = u32::try_from(ENTRY_OVERHEAD + token.len() + principal.heap_bytes())
            .unwrap_or(u32::MAX);
        self.entries.insert(
            token.into(),
            CacheEntry {
                principal,
                generation,
                epoch,
                weight,
            },
        );
    }

    /// The current epoch, to read before a verification whose result will be inserted.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Forgets every entry, and voids any entry of a verification still under way.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Estimated bytes held now.
    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(expires_at: i64) -> Principal {
        Principal {
            claims: Default::default(),
            user: shared::session::User::default(),
            issuer: "https://iss".into(),
            issuer_name: "iss".into(),
            expires_at,
            token_fingerprint: String::new(),
            token_name: None,
            access_level: None,
            cnf_jkt: None,
            token_sha256: None,
            api_json: Default::default(),
        }
    }

    /// A token of the tests' length (the weights below assume it).
    const TOKEN: &str = "header.payload.signature";

    /// A cache with room for `entries` entries of [`principal`]s with [`TOKEN`]-long tokens.
    fn cache(entries: usize) -> VerifiedCache {
        VerifiedCache::new(entries * entry_weight())
    }

    fn entry_weight() -> usize {
        ENTRY_OVERHEAD + TOKEN.len() + principal(0).heap_bytes()
    }

    #[test]
    fn only_the_very_bytes_verified_hit() {
        let c = cache(10);
        c.insert(TOKEN, Arc::new(principal(100)), 0, 50);
        assert!(c.get(TOKEN, 60, |_| Some(0)).is_some());
        for other in [
            "header.payload.signaturf",
            "header.payload.signatur",
            "header.payload.signature.",
            " header.payload.signature",
            "Header.payload.signature",
            "",
        ] {
            assert!(c.get(other, 60, |_| Some(0)).is_none(), "{other:?}");
        }
    }

    #[test]
    fn a_cached_token_is_never_served_past_its_exp() {
        let c = cache(10);
        c.insert(TOKEN, Arc::new(principal(100)), 0, 50);
        assert!(c.get(TOKEN, 99, |_| Some(0)).is_some());
        assert!(c.get(TOKEN, 100, |_| Some(0)).is_none());
    }

    #[test]
    fn a_cached_token_is_void_once_its_issuers_keys_change() {
        let c = cache(10);
        c.insert(TOKEN, Arc::new(principal(100)), 3, 50);
        assert!(c.get(TOKEN, 60, |_| Some(3)).is_some());
        assert!(c.get(TOKEN, 60, |_| Some(4)).is_none());
        assert!(
            c.get(TOKEN, 60, |_| None).is_none(),
            "issuer no longer trusted"
        );
    }

    #[test]
    fn the_cache_stays_within_its_memory_budget_and_keeps_most_of_it_when_full() {
        let c = cache(100);
        for i in 0..1000u32 {
            // As long as TOKEN, each distinct.
            let token = format!("header.payload.{i:09}");
            c.insert(&token, Arc::new(principal(100)), 0, 50);
        }
        let budget = 100 * entry_weight() as u64;
        assert!(c.weight() <= budget, "{} of {budget}", c.weight());
        // One entry evicted at a time, never the whole cache: it stays nearly full.
        assert!(c.len() >= 50, "{} entries left", c.len());
    }

    #[test]
    fn a_cleared_cache_serves_nothing_verified_before_not_even_an_entry_inserted_late() {
        let c = cache(10);
        c.insert(TOKEN, Arc::new(principal(100)), 0, 50);
        let began = c.epoch();
        c.clear();
        assert!(c.get(TOKEN, 60, |_| Some(0)).is_none());
        // A verification that began before the clear and finishes after it.
        c.insert_as_of(TOKEN, Arc::new(principal(100)), 0, began, 50);
        assert!(c.get(TOKEN, 60, |_| Some(0)).is_none());
        c.insert(TOKEN, Arc::new(principal(100)), 0, 50);
        assert!(c.get(TOKEN, 60, |_| Some(0)).is_some());
    }

    #[test]
    fn an_entry_that_can_never_be_served_again_is_dropped() {
        let c = cache(10);
        c.insert(TOKEN, Arc::new(principal(100)), 0, 50);
        assert!(c.get(TOKEN, 100, |_| Some(0)).is_none());
        assert_eq!(c.len(), 0);
    }
}
