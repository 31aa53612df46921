//! Attempt counters in fixed windows: how many times a key (an account, an address) did
//! something within the current window, refused once it reaches the limit.
//!
//! Written here rather than taken from a rate-limiting crate because login throttling counts
//! *failures* and must look before it counts: a correct password is refused while the account
//! is locked out, and a successful login costs nothing. Key-bucket crates consume on every check.
//!
//! [`Throttle`]s live in each replica's memory: an attacker spreading requests over `n`
//! replicas gets `n` times the budget, which is tolerable for key lookups and sign-ups (both
//! also need a session or cost only the caller). Password guessing is not: [`LoginThrottle`]
//! keeps its counters at the bank's data server (`throttle/{key}`), shared by every replica,
//! and counts each attempt before its password is checked.

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
    pub login: LoginThrottle,
    pub signups_per_address: Throttle,
    pub key_lookups_per_account: Throttle,
    pub key_lookups_per_address: Throttle,
}

impl Throttles {
    pub fn new(s: &crate::Settings) -> Throttles {
        let t = |count_max, window_ms| {
            Throttle::new(Limit { count_max, window_ms }, crate::config::limits::THROTTLE_KEYS_MAX)
        };
        Throttles {
            login: LoginThrottle {
                per_account: Limit { count_max: s.login_failures_per_account_max, window_ms: s.login_window_ms },
                per_address: Limit { count_max: s.login_failures_per_address_max, window_ms: s.login_window_ms },
            },
            signups_per_address: t(s.signups_per_address_max, s.signup_window_ms),
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

pub const THROTTLE: &str = "throttle";

/// One shared counter: how many attempts in the window that started at `start_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub start_ms: u64,
    pub count: u32,
}

impl Window {
    /// The window as it stands at `now_ms` (a lapsed one starts afresh).
    fn at(self, limit: Limit, now_ms: u64) -> Window {
        if now_ms >= self.start_ms.saturating_add(limit.window_ms) {
            Window { start_ms: now_ms, count: 0 }
        } else {
            self
        }
    }

    fn end_ms(self, limit: Limit) -> u64 {
        self.start_ms.saturating_add(limit.window_ms)
    }
}

/// Login attempts per account and per client address, counted at the data server so that a
/// bank's replicas share one budget.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    pub per_account: Limit,
    pub per_address: Limit,
}

/// Attempts to reserve a login slot before giving up under contention.
const RESERVE_TRIES_MAX: u32 = 16;

/// A counted login attempt; [`LoginGuard::forgive`] gives it back when the password was right.
#[derive(Debug)]
#[must_use = "a successful login forgives its attempt"]
pub struct LoginGuard {
    keys: [(String, Limit); 2],
}

impl LoginThrottle {
    /// Counts one attempt of `account` from `address` (compare-and-set on both counters in one
    /// commit), or `429` when either budget is spent.
    pub async fn reserve(
        &self,
        ds: &dataserver_api::client::DataClient,
        account: &str,
        address: &str,
    ) -> Result<LoginGuard, ApiError> {
        use dataserver_api::{CommitRequest, ErrorCode as DsCode, RecordOp};
        let keys = [
            (format!("login-account:{account}"), self.per_account),
            (format!("login-address:{address}"), self.per_address),
        ];
        for _ in 0..RESERVE_TRIES_MAX {
            let now = crate::interbank::now_ms();
            let mut commit = CommitRequest::new(uuid::Uuid::new_v4().to_string());
            for (key, limit) in &keys {
                let (w, version) = match ds.get_record(THROTTLE, key).await? {
                    Some(r) => (crate::model::parse_record::<Window>(&r)?, r.version),
                    None => (Window::default(), 0),
                };
                let w = w.at(*limit, now);
                if w.count >= limit.count_max {
                    return Err(ApiError::rate_limited(w.end_ms(*limit) - now));
                }
                let next = Window { count: w.count + 1, ..w };
                commit.records.push(RecordOp::Put {
                    collection: THROTTLE.into(),
                    key: key.clone(),
                    value: crate::model::json(&next),
                    if_version: Some(version),
                });
            }
            match ds.commit(&commit).await {
                Ok(_) => return Ok(LoginGuard { keys }),
                Err(e) if e.code() == Some(DsCode::ConditionFailed) => continue, // a concurrent attempt
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Unavailable(crate::error::Unavailable::Contended("too many concurrent logins")))
    }
}

impl LoginGuard {
    /// Gives the attempt back (best effort): a right password costs nothing.
    pub async fn forgive(self, ds: &dataserver_api::client::DataClient) {
        use dataserver_api::{CommitRequest, RecordOp};
        for _ in 0..RESERVE_TRIES_MAX {
            let mut commit = CommitRequest::new(uuid::Uuid::new_v4().to_string());
            for (key, _) in &self.keys {
                let Ok(Some(r)) = ds.get_record(THROTTLE, key).await else { return };
                let Ok(w) = crate::model::parse_record::<Window>(&r) else { return };
                let next = Window { count: w.count.saturating_sub(1), ..w };
                commit.records.push(RecordOp::Put {
                    collection: THROTTLE.into(),
                    key: key.clone(),
                    value: crate::model::json(&next),
                    if_version: Some(r.version),
                });
            }
            if ds.commit(&commit).await.is_ok() {
                return;
            }
        }
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
