//! A short-lived, in-process cache for the public read calls (film lists,
//! facets, single films, a showtime's detail), which every page view and
//! every checkout makes and staff rarely change.
//!
//! Entries live for a configurable TTL (default 2 s) and are all dropped when
//! this process writes anything, so staff see their own edits at once; other
//! replicas catch up within the TTL. Correctness never depends on it: the
//! database stays the only source of truth, and a TTL of 0 turns it off.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bounds memory when free-text searches produce many distinct keys.
const MAX_ENTRIES: usize = 4_096;

pub struct ReadCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> ReadCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((stored, value)) if stored.elapsed() < self.ttl => Some(value.clone()),
            _ => None,
        }
    }

    pub fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let cache = ReadCache::new(Duration::from_secs(60));
        cache.put("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        cache.clear();
        assert_eq!(cache.get(&"a"), None);

        let disabled = ReadCache::new(Duration::ZERO);
        disabled.put("a", 1);
        assert_eq!(disabled.get(&"a"), None);
    }
}
