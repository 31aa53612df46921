//! Attempt counters in fixed windows: how many times a key (an account, an address) did
//! something within the current window, refused once it reaches the limit.
//!
//! Written here rather than taken from a rate-limiting crate (governor) because the counters
//! must be shared by a bank's replicas, counted before the work they pay for, and given back
//! (a login whose password was right costs nothing): in-process token buckets do none of that.
//!
//! The bank's budgets ([`Throttles`]: logins, sign-ups, Pix key lookups) are kept at its data
//! server (`throttle/{key}`, one record per key and window), shared by every replica, so an
//! attacker spreading requests over `n` replicas gains nothing; each attempt is counted before
//! the work it pays for (a login before its password is checked).
//! Counting at the data server costs a read and a compare-and-set per attempt; every counted
//! request is one that does expensive work or tells something (a hash, a directory lookup).

use crate::error::ApiError;
use shared::AccountId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Attempts allowed per window.
    pub count_max: u32,
    pub window_ms: u64,
}

/// The bank's attempt budgets, counted at its data server ([`Shared`]): one budget per key for
/// all the bank's replicas.
#[derive(Debug)]
pub struct Throttles {
    pub shared: Shared,
    pub login_per_account: Limit,
    pub login_per_address: Limit,
    pub signups_per_address: Limit,
    pub key_lookups_per_account: Limit,
    pub key_lookups_per_address: Limit,
}

impl Throttles {
    pub fn new(s: &crate::Settings, ds: dataserver_api::client::DataClient) -> Throttles {
        let l = |count_max, window_ms| Limit { count_max, window_ms };
        Throttles {
            shared: Shared::new(ds),
            login_per_account: l(s.login_failures_per_account_max, s.login_window_ms),
            login_per_address: l(s.login_failures_per_address_max, s.login_window_ms),
            signups_per_address: l(s.signups_per_address_max, s.signup_window_ms),
            key_lookups_per_account: l(s.key_lookups_per_account_max, s.key_lookup_window_ms),
            key_lookups_per_address: l(s.key_lookups_per_address_max, s.key_lookup_window_ms),
        }
    }

    /// Counts a login attempt of `account` from `address` before its password is checked.
    pub async fn login(&self, account: &str, address: &str) -> Result<Counted, ApiError> {
        self.shared
            .count(vec![
                (format!("login-account:{account}"), self.login_per_account),
                (format!("login-address:{address}"), self.login_per_address),
            ])
            .await
    }

    /// Counts an account opening from `address`.
    pub async fn signup(&self, address: &str) -> Result<(), ApiError> {
        self.shared.count(vec![(format!("signup-address:{address}"), self.signups_per_address)]).await.map(|_| ())
    }

    fn key_lookup_keys(&self, address: &str, account: AccountId) -> Vec<(String, Limit)> {
        vec![
            (format!("lookup-address:{address}"), self.key_lookups_per_address),
            (format!("lookup-account:{account}"), self.key_lookups_per_account),
        ]
    }

    /// Counts one Pix key lookup (resolving or removing a key, a refused payment to one) of
    /// customer `account` from `address`; `429` once either budget is spent.
    pub async fn count_key_lookup(&self, address: &str, account: AccountId) -> Result<(), ApiError> {
        self.shared.count(self.key_lookup_keys(address, account)).await.map(|_| ())
    }

    /// `429` when the customer's or their address's key-lookup budget is spent, without counting.
    pub async fn key_lookups_left(&self, address: &str, account: AccountId) -> Result<(), ApiError> {
        self.shared.left(&self.key_lookup_keys(address, account)).await
    }
}

pub const THROTTLE: &str = "throttle";

/// One shared counter: how many attempts in the window that started at `start_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub start_ms: u64,
    pub count: u32,
    /// Its length, so that the sweeper knows when it lapsed.
    #[serde(default)]
    pub window_ms: u64,
}

impl Window {
    /// The window as it stands at `now_ms` (a lapsed one starts afresh).
    fn at(self, limit: Limit, now_ms: u64) -> Window {
        if now_ms >= self.start_ms.saturating_add(limit.window_ms) {
            Window { start_ms: now_ms, count: 0, window_ms: limit.window_ms }
        } else {
            Window { window_ms: limit.window_ms, ..self }
        }
    }

    /// Whether it counts nothing any more at `now_ms` (`fallback_ms`: the length of a window
    /// stored without one).
    pub fn lapsed(self, now_ms: u64, fallback_ms: u64) -> bool {
        let len = if self.window_ms == 0 { fallback_ms } else { self.window_ms };
        self.start_ms.saturating_add(len) <= now_ms
    }

    fn end_ms(self, limit: Limit) -> u64 {
        self.start_ms.saturating_add(limit.window_ms)
    }
}

/// Attempt counters kept at the bank's data server, so that a bank's replicas share one budget:
/// spreading requests over `n` replicas gains nothing.
#[derive(Debug, Clone)]
pub struct Shared {
    ds: dataserver_api::client::DataClient,
}

/// Attempts to count under contention before giving up.
const COUNT_TRIES_MAX: u32 = 16;

/// Counted attempts; [`Counted::forgive`] gives them back (a login whose password was right).
#[derive(Debug)]
#[must_use = "an attempt that should cost nothing is forgiven"]
pub struct Counted {
    keys: Vec<(String, Limit)>,
    /// Attempts still allowed after this one, by the tightest of its budgets.
    pub left: u32,
}

impl Shared {
    pub fn new(ds: dataserver_api::client::DataClient) -> Shared {
        Shared { ds }
    }

    /// Counts one attempt against every `(key, limit)` at once (compare-and-set on all the
    /// counters in one commit), or `429` when any budget is spent — then nothing is counted.
    pub async fn count(&self, keys: Vec<(String, Limit)>) -> Result<Counted, ApiError> {
        use dataserver_api::{CommitRequest, ErrorCode as DsCode, RecordOp};
        for _ in 0..COUNT_TRIES_MAX {
            let now = crate::interbank::now_ms();
            let mut commit = CommitRequest::fresh();
            let mut left = u32::MAX;
            for (key, limit) in &keys {
                let (w, version) = self.window(key).await?;
                let w = w.at(*limit, now);
                if w.count >= limit.count_max {
                    return Err(ApiError::rate_limited(w.end_ms(*limit) - now));
                }
                left = left.min(limit.count_max - w.count - 1);
                commit.records.push(RecordOp::Put {
                    collection: THROTTLE.into(),
                    key: key.clone(),
                    value: crate::model::json(&Window { count: w.count + 1, ..w }),
                    if_version: Some(version),
                });
            }
            match self.ds.commit(&commit).await {
                Ok(_) => return Ok(Counted { keys, left }),
                Err(e) if e.code() == Some(DsCode::ConditionFailed) => continue, // a concurrent attempt
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Unavailable(crate::error::Unavailable::Contended("too many concurrent attempts")))
    }

    /// `429` when any budget is spent, without counting.
    pub async fn left(&self, keys: &[(String, Limit)]) -> Result<(), ApiError> {
        let now = crate::interbank::now_ms();
        for (key, limit) in keys {
            let w = self.window(key).await?.0.at(*limit, now);
            if w.count >= limit.count_max {
                return Err(ApiError::rate_limited(w.end_ms(*limit) - now));
            }
        }
        Ok(())
    }

    async fn window(&self, key: &str) -> Result<(Window, u64), ApiError> {
        Ok(match self.ds.get_record(THROTTLE, key).await? {
            Some(r) => (crate::model::parse_record::<Window>(&r)?, r.version),
            None => (Window::default(), 0),
        })
    }
}

impl Counted {
    /// Gives the attempts back (best effort).
    pub async fn forgive(self, shared: &Shared) {
        use dataserver_api::{CommitRequest, RecordOp};
        for _ in 0..COUNT_TRIES_MAX {
            let mut commit = CommitRequest::fresh();
            for (key, _) in &self.keys {
                let Ok((w, version)) = shared.window(key).await else { return };
                commit.records.push(RecordOp::Put {
                    collection: THROTTLE.into(),
                    key: key.clone(),
                    value: crate::model::json(&Window { count: w.count.saturating_sub(1), ..w }),
                    if_version: Some(version),
                });
            }
            if shared.ds.commit(&commit).await.is_ok() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_until_it_lapses() {
        let limit = Limit { count_max: 3, window_ms: 1_000 };
        let w = Window { start_ms: 10, count: 3, window_ms: 1_000 };
        assert_eq!(w.at(limit, 500), w, "still running: the count stands");
        assert_eq!(w.end_ms(limit), 1_010);
        assert_eq!(w.at(limit, 1_010), Window { start_ms: 1_010, count: 0, window_ms: 1_000 }, "lapsed: a new window");
        assert!(!w.lapsed(1_009, 0) && w.lapsed(1_010, 0));
    }
}
