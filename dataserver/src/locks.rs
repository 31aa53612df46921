//! Per-account lock leases with fencing tokens.
//!
//! * A lock is a **lease**: it expires by itself, so a business server that dies never blocks an
//!   account for longer than its lease.
//! * Every grant carries a **fencing token** `boot_epoch << 40 | seq`: strictly increasing per
//!   account (indeed across the whole server) and never repeated, also across restarts, because
//!   the boot epoch is incremented durably before the server accepts a request. A commit must
//!   present the token of the *current, live* lease; a holder whose lease expired (a GC pause, a
//!   partition) is refused even if nobody took the lock since.
//! * A lease being committed is **pinned** (`Committing`): it cannot expire between the token
//!   check and the durable write, otherwise a new holder could read the amount the commit is about
//!   to overwrite.
//! * Waiting is FIFO per account. A batch takes its accounts one by one in ascending id order,
//!   reserving each as it gets it: every waiter acquires in the same global order, so no cycle of
//!   waits — no deadlock — can form. A waiter that gives up or disconnects returns what it reserved.
//!
//! The table is one `parking_lot::Mutex`, never held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shared::{AccountId, BusinessId};
use tokio::sync::Notify;

use dataserver_api::LockRef;

/// Bits of a fencing token below the boot epoch.
pub const TOKEN_SEQ_BITS: u32 = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    #[error("account {0} is locked by another holder")]
    Locked(AccountId),
    #[error("this business server already holds {held} locks; the limit is {max}")]
    TooManyLocks { held: usize, max: usize },
    #[error("the lease on account {0} is not held with this token (stale, foreign or released)")]
    NotHolder(AccountId),
    #[error("the lease on account {0} expired; take the lock again")]
    LeaseExpired(AccountId),
    #[error("the fencing token space of this boot is exhausted; restart the data server")]
    TokensExhausted,
}

#[derive(Debug, Clone)]
struct Lease {
    business: BusinessId,
    token: u64,
    expires: Instant,
    request_id: Option<Arc<str>>,
}

#[derive(Debug, Clone, Default)]
enum State {
    #[default]
    Free,
    /// Taken by a waiting batch that has not yet got all its accounts.
    Reserved {
        waiter: u64,
    },
    Held(Lease),
    /// Pinned while its commit is being made durable.
    Committing(Lease),
}

#[derive(Debug, Default)]
struct Slot {
    state: State,
    queue: VecDeque<(u64, Arc<Notify>)>,
}

impl Slot {
    /// Free for `waiter` (or, with `None`, for a request that does not queue).
    fn available(&self, waiter: Option<u64>, now: Instant) -> bool {
        let state_free = match &self.state {
            State::Free => true,
            State::Held(l) => l.expires <= now,
            State::Reserved { .. } | State::Committing(_) => false,
        };
        let turn = match (self.queue.front(), waiter) {
            (None, _) => true,
            (Some((front, _)), Some(w)) => *front == w,
            (Some(_), None) => false,
        };
        state_free && turn
    }

    fn wake_front(&self) {
        if let Some((_, n)) = self.queue.front() {
            n.notify_one();
        }
    }

    fn is_idle(&self) -> bool {
        matches!(self.state, State::Free) && self.queue.is_empty()
    }
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<AccountId, Slot>,
    seq: u64,
    next_waiter: u64,
    held: HashMap<BusinessId, usize>,
}

impl Inner {
    /// Reserves `n` consecutive tokens and returns the first, or none at all: a batch that
    /// cannot get every token changes nothing.
    fn reserve_tokens(&mut self, epoch: u64, n: usize) -> Result<u64, LockError> {
        let n = u64::try_from(n).map_err(|_| LockError::TokensExhausted)?;
        let last = self.seq.checked_add(n).ok_or(LockError::TokensExhausted)?;
        if last >= 1 << TOKEN_SEQ_BITS {
            return Err(LockError::TokensExhausted);
        }
        let first = self.seq + 1;
        self.seq = last;
        Ok((epoch << TOKEN_SEQ_BITS) | first)
    }

    fn held_by(&self, b: BusinessId) -> usize {
        self.held.get(&b).copied().unwrap_or(0)
    }

    fn count(&mut self, b: BusinessId, delta: isize) {
        let e = self.held.entry(b).or_insert(0);
        *e = e.saturating_add_signed(delta);
        if *e == 0 {
            self.held.remove(&b);
        }
    }

    /// Ends whatever lease is on `account` (an expired one being taken over, or a release).
    fn vacate(&mut self, account: AccountId) {
        let Some(slot) = self.slots.get_mut(&account) else {
            return;
        };
        let old = std::mem::take(&mut slot.state);
        if let State::Held(l) | State::Committing(l) = old {
            self.count(l.business, -1);
        }
    }

    /// Frees the slot, hands it to the next waiter, and forgets it when nobody cares any more.
    fn free(&mut self, account: AccountId) {
        self.vacate(account);
        if let Some(slot) = self.slots.get(&account) {
            slot.wake_front();
            if slot.is_idle() {
                self.slots.remove(&account);
            }
        }
    }
}

#[derive(Debug)]
pub struct LockTable {
    inner: Mutex<Inner>,
    epoch: u64,
    locks_per_business_max: usize,
}

/// Granted leases, in ascending account order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub locks: Vec<LockRef>,
    /// True when the caller had to wait in a queue.
    pub waited: bool,
}

/// What to do with pinned leases once their commit is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCommit {
    /// Committed with `release`: free the accounts.
    Release,
    /// Committed without `release`, or the commit failed: the holder keeps its lease, with its
    /// original expiry (a commit is no way to stretch a lease past what was granted).
    Keep,
}

impl LockTable {
    pub fn new(epoch: u64, locks_per_business_max: usize) -> LockTable {
        LockTable { inner: Mutex::new(Inner::default()), epoch, locks_per_business_max }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Takes the leases on `accounts` (sorted, deduplicated by the caller) all or nothing.
    /// Waits up to `wait` in FIFO order; a zero `wait` fails at once with [`LockError::Locked`].
    pub async fn acquire(
        &self,
        business: BusinessId,
        accounts: &[AccountId],
        lease: Duration,
        wait: Duration,
        request_id: Option<&str>,
    ) -> Result<Granted, LockError> {
        debug_assert!(accounts.windows(2).all(|w| w[0] < w[1]), "accounts must be sorted and unique");
        let start = Instant::now();
        {
            let mut g = self.inner.lock();
            if let Some(rid) = request_id
                && let Some(existing) = Self::replay(&g, business, accounts, rid, start)
            {
                return Ok(Granted { locks: existing, waited: false });
            }
            self.check_limit(&g, business, accounts.len())?;
            if accounts.iter().all(|a| g.slots.get(a).is_none_or(|s| s.available(None, start))) {
                let locks = self.grant(&mut g, business, accounts, lease, request_id)?;
                return Ok(Granted { locks, waited: false });
            }
            if wait.is_zero() {
                let busy = accounts.iter().find(|a| g.slots.get(a).is_some_and(|s| !s.available(None, start)));
                return Err(LockError::Locked(*busy.unwrap_or(&accounts[0])));
            }
        }
        self.acquire_waiting(business, accounts, lease, start + wait, request_id).await
    }

    async fn acquire_waiting(
        &self,
        business: BusinessId,
        accounts: &[AccountId],
        lease: Duration,
        deadline: Instant,
        request_id: Option<&str>,
    ) -> Result<Granted, LockError> {
        let notify = Arc::new(Notify::new());
        let waiter = {
            let mut g = self.inner.lock();
            g.next_waiter += 1;
            g.next_waiter
        };
        let mut guard = WaitGuard { table: self, waiter, reserved: Vec::new(), queued: Vec::new(), granted: false };
        for &account in accounts {
            loop {
                let now = Instant::now();
                let wake_at = {
                    let mut g = self.inner.lock();
                    let slot = g.slots.entry(account).or_default();
                    if slot.available(Some(waiter), now) {
                        if slot.queue.front().is_some_and(|(w, _)| *w == waiter) {
                            slot.queue.pop_front();
                        }
                        g.vacate(account); // an expired lease being taken over
                        if let Some(slot) = g.slots.get_mut(&account) {
                            slot.state = State::Reserved { waiter };
                        }
                        guard.queued.retain(|a| *a != account);
                        guard.reserved.push(account);
                        break;
                    }
                    if !slot.queue.iter().any(|(w, _)| *w == waiter) {
                        slot.queue.push_back((waiter, notify.clone()));
                        guard.queued.push(account);
                    }
                    match &slot.state {
                        State::Held(l) => deadline.min(l.expires),
                        _ => deadline,
                    }
                };
                if now >= deadline {
                    return Err(LockError::Locked(account));
                }
                // A release notifies the queue's front; an expiring lease wakes us by timeout.
                let _ = tokio::time::timeout_at(wake_at.into(), notify.notified()).await;
            }
        }
        let mut g = self.inner.lock();
        self.check_limit(&g, business, accounts.len())?;
        let locks = self.grant(&mut g, business, accounts, lease, request_id)?;
        guard.granted = true;
        Ok(Granted { locks, waited: true })
    }

    fn check_limit(&self, g: &Inner, business: BusinessId, n: usize) -> Result<(), LockError> {
        let held = g.held_by(business);
        if held + n > self.locks_per_business_max {
            return Err(LockError::TooManyLocks { held, max: self.locks_per_business_max });
        }
        Ok(())
    }

    fn replay(
        g: &Inner,
        business: BusinessId,
        accounts: &[AccountId],
        rid: &str,
        now: Instant,
    ) -> Option<Vec<LockRef>> {
        accounts
            .iter()
            .map(|a| match g.slots.get(a).map(|s| &s.state) {
                Some(State::Held(l))
                    if l.business == business && l.expires > now && l.request_id.as_deref() == Some(rid) =>
                {
                    Some(LockRef { account: *a, token: l.token })
                }
                _ => None,
            })
            .collect()
    }

    fn grant(
        &self,
        g: &mut Inner,
        business: BusinessId,
        accounts: &[AccountId],
        lease: Duration,
        request_id: Option<&str>,
    ) -> Result<Vec<LockRef>, LockError> {
        let expires = Instant::now() + lease;
        let rid: Option<Arc<str>> = request_id.map(Arc::from);
        // Every token first: a grant is all or nothing, so none of the accounts may be taken
        // before the batch is sure to get them all.
        let first = g.reserve_tokens(self.epoch, accounts.len())?;
        let mut out = Vec::with_capacity(accounts.len());
        for (token, &account) in (first..).zip(accounts) {
            g.vacate(account);
            g.slots.entry(account).or_default().state =
                State::Held(Lease { business, token, expires, request_id: rid.clone() });
            g.count(business, 1);
            out.push(LockRef { account, token });
        }
        Ok(out)
    }

    /// Releases one lease (seed `unLock`). An expired lease that nobody took yet may still be
    /// released by its holder; anything else is [`LockError::NotHolder`].
    pub fn release(&self, business: BusinessId, lock: LockRef) -> Result<(), LockError> {
        let mut g = self.inner.lock();
        match g.slots.get(&lock.account).map(|s| &s.state) {
            Some(State::Held(l)) if l.business == business && l.token == lock.token => {
                g.free(lock.account);
                Ok(())
            }
            _ => Err(LockError::NotHolder(lock.account)),
        }
    }

    /// Releases every listed lease this business still holds; returns how many it released.
    pub fn release_many(&self, business: BusinessId, locks: &[LockRef]) -> usize {
        locks.iter().filter(|l| self.release(business, **l).is_ok()).count()
    }

    /// Pins the listed leases for a commit, all or nothing.
    pub fn begin_commit(&self, business: BusinessId, locks: &[LockRef]) -> Result<(), LockError> {
        let now = Instant::now();
        let mut g = self.inner.lock();
        for l in locks {
            match g.slots.get(&l.account).map(|s| &s.state) {
                Some(State::Held(lease)) if lease.business == business && lease.token == l.token => {
                    if lease.expires <= now {
                        return Err(LockError::LeaseExpired(l.account));
                    }
                }
                _ => return Err(LockError::NotHolder(l.account)),
            }
        }
        for l in locks {
            if let Some(slot) = g.slots.get_mut(&l.account)
                && let State::Held(lease) = std::mem::take(&mut slot.state)
            {
                slot.state = State::Committing(lease);
            }
        }
        Ok(())
    }

    /// Unpins leases pinned by [`LockTable::begin_commit`].
    pub fn end_commit(&self, locks: &[LockRef], after: AfterCommit) {
        let mut g = self.inner.lock();
        for l in locks {
            match after {
                AfterCommit::Release => g.free(l.account),
                AfterCommit::Keep => {
                    if let Some(slot) = g.slots.get_mut(&l.account)
                        && let State::Committing(lease) = std::mem::take(&mut slot.state)
                    {
                        slot.state = State::Held(lease);
                    }
                }
            }
        }
    }

    /// Whether `account` is leased (live) to a business other than `business`.
    pub fn locked_by_other(&self, business: BusinessId, account: AccountId) -> bool {
        let now = Instant::now();
        let g = self.inner.lock();
        match g.slots.get(&account).map(|s| &s.state) {
            Some(State::Held(l)) => l.business != business && l.expires > now,
            Some(State::Committing(l)) => l.business != business,
            Some(State::Reserved { .. }) => true,
            Some(State::Free) | None => false,
        }
    }

    /// Wakes the next waiter of every account whose lease expired (it takes the lease over), and
    /// frees an expired lease nobody waits for only `EXPIRED_LEASE_KEPT_MS` after its expiry: until
    /// then its holder is told `lease_expired`, not the `not_holder` of a stranger, whenever the
    /// sweep happens to run. Returns how many leases it freed.
    pub fn sweep(&self) -> usize {
        use crate::config::limits::EXPIRED_LEASE_KEPT_MS;
        let now = Instant::now();
        let kept = Duration::from_millis(EXPIRED_LEASE_KEPT_MS);
        let mut g = self.inner.lock();
        let mut expired: Vec<AccountId> = Vec::new();
        for (a, s) in &g.slots {
            if let State::Held(l) = &s.state
                && l.expires <= now
            {
                s.wake_front();
                if s.queue.is_empty() && now.duration_since(l.expires) >= kept {
                    expired.push(*a);
                }
            }
        }
        for a in &expired {
            g.free(*a);
        }
        expired.len()
    }

    /// Leases currently live or pinned (for metrics).
    pub fn held_total(&self) -> usize {
        self.inner.lock().held.values().sum()
    }

    /// Lock requests waiting in the accounts' queues (one per account a waiting batch queues on).
    pub fn waiting(&self) -> usize {
        self.inner.lock().slots.values().map(|s| s.queue.len()).sum()
    }
}

/// Returns a waiting batch's reservations and queue places when it gives up, times out or is
/// cancelled (the client disconnected and actix dropped the handler's future).
struct WaitGuard<'a> {
    table: &'a LockTable,
    waiter: u64,
    reserved: Vec<AccountId>,
    queued: Vec<AccountId>,
    granted: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut g = self.table.inner.lock();
        let now = Instant::now();
        if !self.granted {
            for a in &self.reserved {
                if let Some(slot) = g.slots.get_mut(a)
                    && matches!(slot.state, State::Reserved { waiter } if waiter == self.waiter)
                {
                    slot.state = State::Free;
                    slot.wake_front();
                    if slot.is_idle() {
                        g.slots.remove(a);
                    }
                }
            }
        }
        for a in &self.queued {
            if let Some(slot) = g.slots.get_mut(a) {
                let was_front = slot.queue.front().is_some_and(|(w, _)| *w == self.waiter);
                slot.queue.retain(|(w, _)| *w != self.waiter);
                if was_front && slot.available(slot.queue.front().map(|(w, _)| *w), now) {
                    slot.wake_front();
                }
                if slot.is_idle() {
                    g.slots.remove(a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(v: u64) -> AccountId {
        AccountId::new(v).unwrap()
    }
    fn biz(v: u32) -> BusinessId {
        BusinessId::new(v).unwrap()
    }
    const LEASE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn tokens_increase_and_carry_the_epoch() {
        let t = LockTable::new(7, 100);
        let a = t.acquire(biz(1), &[acc(1)], LEASE, Duration::ZERO, None).await.unwrap();
        t.release(biz(1), a.locks[0]).unwrap();
        let b = t.acquire(biz(1), &[acc(1)], LEASE, Duration::ZERO, None).await.unwrap();
        assert!(b.locks[0].token > a.locks[0].token);
        assert_eq!(b.locks[0].token >> TOKEN_SEQ_BITS, 7);
    }

    /// A batch that the token space cannot cover in full takes nothing: before, the first
    /// accounts of the batch were left held under tokens nobody received.
    #[tokio::test]
    async fn a_batch_the_token_space_cannot_cover_takes_nothing() {
        let t = LockTable::new(1, 100);
        t.inner.lock().seq = (1 << TOKEN_SEQ_BITS) - 3; // room for two more tokens
        let batch = [acc(1), acc(2), acc(3)];
        assert_eq!(t.acquire(biz(1), &batch, LEASE, Duration::ZERO, None).await, Err(LockError::TokensExhausted));
        assert_eq!(t.held_total(), 0, "no account of the refused batch is held");
        for a in batch {
            assert!(!t.locked_by_other(biz(2), a), "{a} was left held");
        }
        let two = t.acquire(biz(1), &batch[..2], LEASE, Duration::ZERO, None).await.unwrap();
        assert_eq!(two.locks.len(), 2, "the last two tokens are still there to be granted");
    }

    #[tokio::test]
    async fn second_holder_is_refused_and_foreign_release_fails() {
        let t = LockTable::new(1, 100);
        let a = t.acquire(biz(1), &[acc(1), acc(2)], LEASE, Duration::ZERO, None).await.unwrap();
        assert_eq!(
            t.acquire(biz(2), &[acc(2), acc(3)], LEASE, Duration::ZERO, None).await,
            Err(LockError::Locked(acc(2)))
        );
        // all or nothing: account 3 was not taken by the failed batch
        t.acquire(biz(2), &[acc(3)], LEASE, Duration::ZERO, None).await.unwrap();
        assert_eq!(t.release(biz(2), a.locks[0]), Err(LockError::NotHolder(acc(1))));
        assert!(t.locked_by_other(biz(2), acc(1)));
        assert!(!t.locked_by_other(biz(1), acc(1)));
    }

    #[tokio::test]
    async fn expired_lease_is_fenced() {
        let t = LockTable::new(1, 100);
        let a = t.acquire(biz(1), &[acc(1)], Duration::from_millis(20), Duration::ZERO, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await; // the lease's own length; nothing to await
        assert_eq!(t.begin_commit(biz(1), &a.locks), Err(LockError::LeaseExpired(acc(1))));
        let b = t.acquire(biz(2), &[acc(1)], LEASE, Duration::ZERO, None).await.unwrap();
        assert_eq!(t.begin_commit(biz(1), &a.locks), Err(LockError::NotHolder(acc(1))));
        t.begin_commit(biz(2), &b.locks).unwrap();
        t.end_commit(&b.locks, AfterCommit::Release);
        assert_eq!(t.held_total(), 0);
    }

    #[tokio::test]
    async fn the_sweep_keeps_an_expired_lease_for_its_holder_to_hear_it() {
        let t = LockTable::new(1, 100);
        let a = t.acquire(biz(1), &[acc(1)], Duration::from_millis(10), Duration::ZERO, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await; // the lease's own length; nothing to await
        assert_eq!(t.sweep(), 0, "kept while nobody waits");
        assert_eq!(t.begin_commit(biz(1), &a.locks), Err(LockError::LeaseExpired(acc(1))));
        // Anyone may take it over at once; then the old holder is a stranger.
        t.acquire(biz(2), &[acc(1)], LEASE, Duration::ZERO, None).await.unwrap();
        assert_eq!(t.begin_commit(biz(1), &a.locks), Err(LockError::NotHolder(acc(1))));
    }

    #[tokio::test]
    async fn pinned_lease_does_not_expire() {
        let t = LockTable::new(1, 100);
        let a = t.acquire(biz(1), &[acc(1)], Duration::from_millis(10), Duration::ZERO, None).await.unwrap();
        t.begin_commit(biz(1), &a.locks).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(t.sweep(), 0);
        assert!(t.acquire(biz(2), &[acc(1)], LEASE, Duration::ZERO, None).await.is_err());
        t.end_commit(&a.locks, AfterCommit::Release);
        t.acquire(biz(2), &[acc(1)], LEASE, Duration::ZERO, None).await.unwrap();
    }

    #[tokio::test]
    async fn waiters_are_served_in_order_and_cancelled_waiters_leave_no_trace() {
        let t = Arc::new(LockTable::new(1, 100));
        let a = t.acquire(biz(1), &[acc(1)], LEASE, Duration::ZERO, None).await.unwrap();
        let t2 = t.clone();
        let waiter =
            tokio::spawn(async move { t2.acquire(biz(2), &[acc(1)], LEASE, Duration::from_secs(5), None).await });
        // a waiter that times out must not leave its queue place behind
        assert!(t.acquire(biz(3), &[acc(1)], LEASE, Duration::from_millis(20), None).await.is_err());
        t.release(biz(1), a.locks[0]).unwrap();
        let got = waiter.await.unwrap().unwrap();
        assert!(got.waited);
        t.release(biz(2), got.locks[0]).unwrap();
        assert_eq!(t.held_total(), 0);
        assert!(t.inner.lock().slots.is_empty());
    }

    #[tokio::test]
    async fn request_id_makes_acquire_retryable_and_limit_is_enforced() {
        let t = LockTable::new(1, 3);
        let a = t.acquire(biz(1), &[acc(1), acc(2)], LEASE, Duration::ZERO, Some("r1")).await.unwrap();
        let b = t.acquire(biz(1), &[acc(1), acc(2)], LEASE, Duration::ZERO, Some("r1")).await.unwrap();
        assert_eq!(a.locks, b.locks);
        assert!(matches!(
            t.acquire(biz(1), &[acc(3), acc(4)], LEASE, Duration::ZERO, None).await,
            Err(LockError::TooManyLocks { .. })
        ));
    }

    #[tokio::test]
    async fn crossing_batches_do_not_deadlock() {
        let t = Arc::new(LockTable::new(1, 10_000));
        let mut tasks = Vec::new();
        for i in 0..32u32 {
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let accs = [acc(1 + u64::from(i % 3)), acc(4)];
                    let mut accs = accs.to_vec();
                    accs.sort();
                    let g = t.acquire(biz(1 + i), &accs, LEASE, Duration::from_secs(10), None).await.unwrap();
                    t.begin_commit(biz(1 + i), &g.locks).unwrap();
                    tokio::task::yield_now().await;
                    t.end_commit(&g.locks, AfterCommit::Release);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(t.held_total(), 0);
    }

    /// Randomised stress with an oracle: 48 tasks take random overlapping batches with waiting,
    /// some give up mid-wait (their future is dropped, as when a client disconnects), the rest
    /// commit. At every grant no account may have another holder; nothing may deadlock; at the
    /// end no slot, queue place or count may be left behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn random_batches_with_cancellation_keep_mutual_exclusion_and_leave_nothing_behind() {
        use std::sync::atomic::{AtomicU8, Ordering};
        const ACCOUNTS: u64 = 6;
        const TASKS: u32 = 48;
        const ROUNDS: u32 = 40;
        let t = Arc::new(LockTable::new(1, 1_000));
        let holders: Arc<Vec<AtomicU8>> = Arc::new((0..=ACCOUNTS).map(|_| AtomicU8::new(0)).collect());
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (t, holders) = (t.clone(), holders.clone());
            tasks.push(tokio::spawn(async move {
                // A small deterministic generator per task: reproducible from the task number.
                let mut x = u64::from(task).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let (mut granted, mut gave_up) = (0u32, 0u32);
                for _ in 0..ROUNDS {
                    let mut accs: Vec<AccountId> = (0..1 + next() % 3).map(|_| acc(1 + next() % ACCOUNTS)).collect();
                    accs.sort();
                    accs.dedup();
                    let patience = Duration::from_micros(50 + next() % 3_000);
                    let fut = t.acquire(biz(1 + task), &accs, LEASE, Duration::from_secs(30), None);
                    let Ok(result) = tokio::time::timeout(patience, fut).await else {
                        gave_up += 1; // dropped mid-wait
                        continue;
                    };
                    let g = result.expect("a long wait never fails");
                    for l in &g.locks {
                        let before = holders[l.account.get() as usize].fetch_add(1, Ordering::SeqCst);
                        assert_eq!(before, 0, "account {} granted while held", l.account);
                    }
                    t.begin_commit(biz(1 + task), &g.locks).expect("a live lease can commit");
                    // Simulated work while holding, so that impatient waiters really give up.
                    tokio::time::sleep(Duration::from_micros(next() % 400)).await;
                    for l in &g.locks {
                        holders[l.account.get() as usize].fetch_sub(1, Ordering::SeqCst);
                    }
                    t.end_commit(&g.locks, AfterCommit::Release);
                    granted += 1;
                }
                (granted, gave_up)
            }));
        }
        let (mut granted, mut gave_up) = (0, 0);
        for task in tasks {
            let (g, c) = tokio::time::timeout(Duration::from_secs(60), task).await.expect("no deadlock").unwrap();
            granted += g;
            gave_up += c;
        }
        assert!(granted > 0 && gave_up > 0, "both paths exercised: {granted} granted, {gave_up} gave up");
        assert_eq!(t.held_total(), 0);
        assert!(t.inner.lock().slots.is_empty(), "no slot or queue place left behind");
    }

    fn queue_len(t: &LockTable, a: AccountId) -> usize {
        t.inner.lock().slots.get(&a).map_or(0, |s| s.queue.len())
    }

    /// Waiters are granted in arrival order, and a newcomer that does not wait cannot barge in
    /// ahead of them when the lock frees.
    #[tokio::test]
    async fn waiters_are_granted_first_come_first_served() {
        let t = Arc::new(LockTable::new(1, 100));
        let held = t.acquire(biz(1), &[acc(1)], LEASE, Duration::ZERO, None).await.unwrap();
        let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for b in [2u32, 3, 4] {
            let (t2, order) = (t.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let g = t2.acquire(biz(b), &[acc(1)], LEASE, Duration::from_secs(10), None).await.unwrap();
                order.lock().push(b);
                t2.release(biz(b), g.locks[0]).unwrap();
            }));
            // Let this waiter take its place in the queue before the next one arrives.
            while queue_len(&t, acc(1)) < waiters.len() {
                tokio::task::yield_now().await;
            }
        }
        t.release(biz(1), held.locks[0]).unwrap();
        // The lock is free but promised to the queue's front: a non-waiting request is refused.
        assert_eq!(t.acquire(biz(9), &[acc(1)], LEASE, Duration::ZERO, None).await, Err(LockError::Locked(acc(1))));
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock(), vec![2, 3, 4]);
    }
}
