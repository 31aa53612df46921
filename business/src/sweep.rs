//! The sweeper: deletes what has expired, so that nothing a customer or an attacker can make
//! grows without bound — sessions and event tickets past their expiry, login-throttle windows that lapsed, and
//! idempotency records older than their time to live. Every replica sweeps; they may race, and
//! each delete is conditioned on the version it read, so a record changed meanwhile is kept.

use std::time::Duration;

use dataserver_api::client::DataClient;
use dataserver_api::{CommitRequest, Record, RecordOp};

use crate::error::ApiError;
use crate::model::{IDEMPOTENCY, IdempotencyRecord, SESSIONS, SessionRecord, parse_record};
use crate::throttle::{THROTTLE, Window};

/// Records looked at per collection per round: a round is a bounded amount of work.
pub const SWEEP_BATCH_MAX: usize = 1_000;

/// What expires, and when.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    /// The longest throttle window, for a window stored without its length.
    pub throttle_window_ms: u64,
    pub idempotency_ms: u64,
}

/// How many records one round deleted, per collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub sessions: usize,
    pub event_tickets: usize,
    pub throttle: usize,
    pub idempotency: usize,
}

/// Where each collection's scan goes on from (it wraps around).
#[derive(Debug, Default)]
struct Cursors {
    sessions: Option<String>,
    event_tickets: Option<String>,
    throttle: Option<String>,
    idempotency: Option<String>,
}

/// Sweeps every `interval` until the runtime stops.
pub async fn run(ds: DataClient, ttls: Ttls, interval: Duration) {
    let mut cursors = Cursors::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match round(&ds, ttls, dataserver_api::clock::now_ms(), &mut cursors).await {
            Ok(s) if s != Swept::default() => tracing::debug!(?s, "swept expired records"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping expired records failed"),
        }
    }
}

/// One pass over at most [`SWEEP_BATCH_MAX`] records of each collection.
async fn round(ds: &DataClient, ttls: Ttls, now: u64, c: &mut Cursors) -> Result<Swept, ApiError> {
    let sessions =
        sweep(ds, SESSIONS, &mut c.sessions, |r| Ok(parse_record::<SessionRecord>(r)?.expires_at_ms <= now)).await?;
    let event_tickets = sweep(ds, crate::events::EVENT_TICKETS, &mut c.event_tickets, |r| {
        Ok(parse_record::<crate::events::TicketExpiry>(r)?.expires_at_ms <= now)
    })
    .await?;
    let throttle =
        sweep(ds, THROTTLE, &mut c.throttle, |r| Ok(parse_record::<Window>(r)?.lapsed(now, ttls.throttle_window_ms)))
            .await?;
    let idempotency = sweep(ds, IDEMPOTENCY, &mut c.idempotency, |r| {
        // Records written before their time was kept (at_ms 0) are kept: their age is unknown.
        let at = parse_record::<IdempotencyRecord>(r)?.at_ms;
        Ok(at != 0 && at.saturating_add(ttls.idempotency_ms) <= now)
    })
    .await?;
    Ok(Swept { sessions, event_tickets, throttle, idempotency })
}

/// Deletes the expired records of one page of `collection`, in one commit.
async fn sweep(
    ds: &DataClient,
    collection: &str,
    cursor: &mut Option<String>,
    expired: impl Fn(&Record) -> Result<bool, ApiError>,
) -> Result<usize, ApiError> {
    let page = ds.scan_records(collection, "", cursor.as_deref(), SWEEP_BATCH_MAX).await?;
    *cursor = page.next.clone();
    let mut commit = CommitRequest::fresh();
    for r in &page.records {
        // An unreadable record is reported, never deleted: it is evidence.
        match expired(r) {
            Ok(true) => commit.records.push(RecordOp::Delete {
                collection: collection.into(),
                key: r.key.clone(),
                if_version: Some(r.version),
            }),
            Ok(false) => {}
            Err(e) => tracing::error!(collection, key = %r.key, error = %e, "an unreadable record"),
        }
    }
    let n = commit.records.len();
    if n == 0 {
        return Ok(0);
    }
    // A record changed since the scan fails the whole commit; the next round tries again.
    match ds.commit(&commit).await {
        Ok(_) => Ok(n),
        Err(e) if e.code() == Some(dataserver_api::ErrorCode::ConditionFailed) => Ok(0),
        Err(e) => Err(e.into()),
    }
}
