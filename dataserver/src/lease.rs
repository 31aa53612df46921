//! Keeping the leader lease (PostgreSQL backend): a thread renews it every quarter of its
//! length, and the process stops the moment it can no longer be sure it leads.
//!
//! Safety does not rest on this timing: every batch's transaction checks the epoch (see
//! [`crate::store::pg`]), so a deposed leader writes nothing. What the timing bounds is how long
//! a deposed leader could still answer *reads* from its memory: a renewal sent at `t` makes the
//! database's lease run to at least `t + lease`, so a standby cannot take over before then, and
//! this process stops by `t + lease − margin` unless a later renewal succeeded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::store::StoreError;
use crate::store::pg::Lease;

/// Of the lease, the part this process gives up to clock-rate differences between it and the
/// database: it stops leading at 90 % of the lease after the last renewal it sent.
const LEASE_MARGIN_PERCENT: u64 = 10;
/// How often the watchdog looks at the deadline.
const WATCHDOG_INTERVAL_MS: u64 = 20;

#[derive(Debug)]
pub struct Keeper {
    stop: SyncSender<()>,
    thread: std::thread::JoinHandle<Lease>,
    /// Set once the lease is given up on purpose: the watchdog then has nothing to guard (a
    /// clean stop must not end in its exit status).
    resigned: Arc<std::sync::atomic::AtomicBool>,
}

impl Keeper {
    /// Starts keeping the lease of `epoch`, taken just now.
    pub fn start(lease: Lease, epoch: u64) -> Result<Keeper, StoreError> {
        let lease_ms = lease.lease_ms();
        let valid_ms = lease_ms * (100 - LEASE_MARGIN_PERCENT) / 100;
        let base = Instant::now();
        // Milliseconds after `base` until which this process may lead.
        let deadline = Arc::new(AtomicU64::new(valid_ms));
        let (stop, stopped) = sync_channel::<()>(1);
        let resigned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = deadline.clone();
        let r = resigned.clone();
        let thread = std::thread::Builder::new()
            .name("leader-lease".into())
            .spawn(move || renew_loop(lease, epoch, base, valid_ms, &d, &stopped))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        // The watchdog is separate from the renewals: a renewal that hangs must not keep a
        // deposed process serving.
        std::thread::Builder::new()
            .name("leader-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(WATCHDOG_INTERVAL_MS));
                    if r.load(Ordering::Acquire) {
                        return;
                    }
                    if elapsed_ms(base) >= deadline.load(Ordering::Acquire) {
                        stop_leading(epoch, "the leader lease could not be renewed in time");
                    }
                }
            })
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Keeper { stop, thread, resigned })
    }

    /// After the last write: gives the lease up so a standby takes over at once.
    pub fn resign(self, epoch: u64) {
        self.resigned.store(true, Ordering::Release);
        drop(self.stop);
        match self.thread.join() {
            Ok(mut lease) => match lease.resign(epoch) {
                Ok(()) => tracing::info!(epoch, "gave up the leader lease"),
                Err(e) => tracing::warn!(error = %e, "could not give up the leader lease; it lapses by itself"),
            },
            Err(_) => tracing::error!("the leader-lease thread panicked"),
        }
    }
}

fn elapsed_ms(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn renew_loop(
    mut lease: Lease,
    epoch: u64,
    base: Instant,
    valid_ms: u64,
    deadline: &AtomicU64,
    stopped: &Receiver<()>,
) -> Lease {
    let every = Duration::from_millis(lease.lease_ms() / 4);
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return lease,
        }
        let sent = elapsed_ms(base);
        match lease.renew(epoch) {
            Ok(true) => deadline.store(sent + valid_ms, Ordering::Release),
            Ok(false) => stop_leading(epoch, "another data server holds the leader lease"),
            // The watchdog stops the process if this goes on past the deadline.
            Err(e) => tracing::warn!(error = %e, "renewing the leader lease failed; trying again"),
        }
    }
}

/// A leader that lost its lease stops at once (TigerBeetle's rule: crash rather than guess);
/// its supervisor starts it again, and it comes back as a standby.
fn stop_leading(epoch: u64, why: &str) -> ! {
    tracing::error!(epoch, "{why}; stopping");
    eprintln!("dataserver: no longer the leader at epoch {epoch}: {why}; stopping");
    std::process::exit(3)
}
