//! The freshness window and replay cache shared by [`super::NetaioHmac`] and [`super::Aead`].

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Remembers recent message ids for a freshness window. Bounded: when full, the oldest entry is
/// evicted and its timestamp becomes a floor under which every message is refused, so an evicted
/// id can never be replayed.
pub(super) struct ReplayCache {
    window_ms: u64,
    capacity: usize,
    state: Mutex<ReplayState>,
}

#[derive(Default)]
pub(super) struct ReplayState {
    seen: HashSet<[u8; 16]>,
    order: VecDeque<(u64, [u8; 16])>,
    floor_ms: u64,
}

impl ReplayCache {
    pub(super) fn new(window: Duration, capacity: usize) -> ReplayCache {
        ReplayCache {
            window_ms: window.as_millis() as u64,
            capacity: capacity.max(1),
            state: Mutex::new(ReplayState::default()),
        }
    }

    /// Records `id` sent at `ts_ms`; false when it was seen (or may have been).
    pub(super) fn insert(&self, id: [u8; 16], ts_ms: u64) -> bool {
        let now = now_ms();
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        // Entries older than the window can go: the window check refuses their replays anyway.
        while let Some(&(ts, old)) = s.order.front() {
            if ts.saturating_add(self.window_ms) < now {
                s.order.pop_front();
                s.seen.remove(&old);
            } else {
                break;
            }
        }
        if ts_ms <= s.floor_ms || s.seen.contains(&id) {
            return false;
        }
        if s.order.len() >= self.capacity {
            if let Some((ts, old)) = s.order.pop_front() {
                s.seen.remove(&old);
                s.floor_ms = s.floor_ms.max(ts);
            }
        }
        s.seen.insert(id);
        s.order.push_back((ts_ms, id));
        true
    }
}

pub(super) fn within(ts_ms: u64, window: Duration) -> bool {
    now_ms().abs_diff(ts_ms) <= window.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_bounded() {
        let c = ReplayCache::new(Duration::from_secs(60), 4);
        let now = now_ms();
        for i in 0..4u8 {
            assert!(c.insert([i; 16], now + i as u64));
        }
        assert!(c.insert([9; 16], now + 10));
        // [0;16] was evicted: its timestamp is now a floor, so it cannot come back.
        assert!(!c.insert([0; 16], now));
        assert!(!c.insert([9; 16], now + 10));
        assert!(c.state.lock().unwrap().order.len() <= 4);
    }
}
