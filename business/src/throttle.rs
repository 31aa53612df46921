//! Attempt counters in fixed windows: how many times a key (an account, an address) did
//! something within the current window, refused once it reaches the limit.
//!
//! Written here rather than taken from a rate-limiting crate because login throttling counts
//! *failures* and must look before it counts: a correct password is refused while the account
//! is locked out, and a successful login costs nothing. Key-bucket crates consume on every check.
//!
//! The counters live in each replica's memory: an attacker spreading guesses over `n` replicas
//! gets `n` times the budget, which the limits are chosen to tolerate; nothing else is lost when
//! a replica restarts. Memory is bounded by `keys_max`.

use crate::error::ApiError;
use shared::AccountId;
use std::collections::HashMap;

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Attempts allowed per window.
    pub count_max: u32,
    pub window_ms: u64,
}

#[derive(Debug)]
pub struct Throttle {
    limit: Limit,
    keys_max: usize,
    windows: Mutex<HashMap<String, (u64, u32)>>, // key → (window start, count)
}

impl Throttle {
    pub fn new(limit: Limit, keys_max: usize) -> Throttle {
        Throttle { limit, keys_max, windows: Mutex::new(HashMap::new()) }
    }

    /// Whether `key` has used up its attempts in the window running at `now_ms`; if so, how many
    /// milliseconds until the window ends.
    pub fn blocked(&self, key: &str, now_ms: u64) -> Option<u64> {
        let windows = self.windows.lock();
        let (start, count) = *windows.get(key)?;
        let end = start.saturating_add(self.limit.window_ms);
        (now_ms < end && count >= self.limit.count_max).then(|| end - now_ms)
    }

    /// Counts an attempt of `key`; over the limit, how many milliseconds until its window ends.
    pub fn record(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        let mut windows = self.windows.lock();
        if windows.len() >= self.keys_max && !windows.contains_key(key) {
            let window_ms = self.limit.window_ms;
            windows.retain(|_, (start, _)| start.saturating_add(window_ms) > now_ms);
            if windows.len() >= self.keys_max {
                // Every slot is live: forget the oldest window rather than refuse newcomers,
                // which would let an attacker lock everybody out by filling the table.
                if let Some(oldest) = windows.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| k.clone()) {
                    windows.remove(&oldest);
                }
            }
        }
        let w = windows.entry(key.to_string()).or_insert((now_ms, 0));
        if now_ms >= w.0.saturating_add(self.limit.window_ms) {
            *w = (now_ms, 0);
        }
        w.1 = w.1.saturating_add(1);
        if w.1 <= self.limit.count_max { Ok(()) } else { Err(w.0.saturating_add(self.limit.window_ms) - now_ms) }
    }
}

/// The attempt counters of this replica (see [`throttle`]).
#[derive(Debug)]
pub struct Throttles {
    pub login_failures_per_account: Throttle,
    pub login_failures_per_address: Throttle,
    pub key_lookups_per_account: Throttle,
    pub key_lookups_per_address: Throttle,
}

impl Throttles {
    pub fn new(s: &crate::Settings) -> Throttles {
        let t = |count_max, window_ms| {
            Throttle::new(Limit { count_max, window_ms }, crate::config::limits::THROTTLE_KEYS_MAX)
        };
        Throttles {
            login_failures_per_account: t(s.login_failures_per_account_max, s.login_window_ms),
            login_failures_per_address: t(s.login_failures_per_address_max, s.login_window_ms),
            key_lookups_per_account: t(s.key_lookups_per_account_max, s.key_lookup_window_ms),
            key_lookups_per_address: t(s.key_lookups_per_address_max, s.key_lookup_window_ms),
        }
    }

    /// Counts one Pix key lookup (resolving or removing a key, a refused payment to one) of
    /// customer `account` from `address`; `429` once either budget is spent.
    pub fn count_key_lookup(&self, address: &str, account: AccountId, now_ms: u64) -> Result<(), ApiError> {
        self.key_lookups_per_address.record(address, now_ms).map_err(ApiError::rate_limited)?;
        self.key_lookups_per_account.record(&account.to_string(), now_ms).map_err(ApiError::rate_limited)
    }

    /// `429` when the customer's or their address's key-lookup budget is spent, without counting.
    pub fn key_lookups_left(&self, address: &str, account: AccountId, now_ms: u64) -> Result<(), ApiError> {
        let wait = self
            .key_lookups_per_account
            .blocked(&account.to_string(), now_ms)
            .or(self.key_lookups_per_address.blocked(address, now_ms));
        wait.map_or(Ok(()), |ms| Err(ApiError::rate_limited(ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_after_its_attempts_until_the_window_ends() {
        let t = Throttle::new(Limit { count_max: 3, window_ms: 1_000 }, 16);
        for i in 0..3 {
            assert_eq!(t.blocked("a", 10 + i), None);
            assert!(t.record("a", 10 + i).is_ok());
        }
        assert_eq!(t.blocked("a", 20), Some(990));
        assert_eq!(t.record("a", 20), Err(990));
        assert_eq!(t.blocked("b", 20), None, "other keys are not affected");
        assert_eq!(t.blocked("a", 1_010), None, "a new window starts afresh");
        assert!(t.record("a", 1_010).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(Limit { count_max: 1, window_ms: 1_000_000 }, 8);
        for i in 0..1_000 {
            let _ = t.record(&i.to_string(), i);
        }
        assert!(t.windows.lock().len() <= 8);
        assert!(t.blocked("999", 1_000).is_some(), "the newest windows are kept");
    }
}
