//! Server push for the app: `GET /api/accounts/{id}/events` (Server-Sent Events).
//!
//! A browser's `EventSource` cannot send an `Authorization` header, and a session token in a
//! URL ends up in logs, so the stream is opened with a short-lived **ticket**: `POST
//! /api/accounts/{id}/events/ticket` with the session gives `{session key}.{secret}`, good for
//! [`EVENTS_TICKET_TTL_MS`] and for that account only. One ticket per session is kept
//! (`event_tickets/{session key}`, only the secret's digest), so tickets cannot pile up; it goes
//! when its session goes.
//!
//! What is pushed, and how the replica learns it:
//! * `statement` — a line moved the account's balance, with the balance after. One task per
//!   replica tails the data server's journal ([`tail`]) while anyone listens, so a commit made
//!   by any replica of the bank reaches every stream on every replica.
//! * `package` — one of the account's authored packages changed status. Decisions that move no
//!   money here (pending → failed) are not journal entries, so each stream reads its account's
//!   newest package index entries every [`EVENTS_PACKAGES_CHECK_MS`] (one scan; a package
//!   already final is not read again).
//!
//! Every event's `id` is the journal position of the account's newest line known to the
//! stream; a client reconnecting with `Last-Event-ID` (or `last_event_id`, for a new
//! `EventSource`) older than the account's newest line gets one `statement` event at once, so
//! nothing is missed across a reconnection. The app refetches on every event: events say *that*
//! something changed (with the balance), the API says what.
//!
//! Limits: [`EVENT_STREAMS_MAX`] streams per replica, [`EVENT_STREAMS_PER_ACCOUNT_MAX`] per
//! account, each at most [`EVENTS_STREAM_MS_MAX`] long; the session is checked at every
//! heartbeat and the stream ends with it; a comment line every [`EVENTS_PING_MS`] finds clients
//! that went away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use dataserver_api::client::DataClient;
use dataserver_api::clock::now_ms;
use dataserver_api::{CommitRequest, RecordOp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::api::Status;
use shared::{AccountId, Money};
use tokio::sync::broadcast;

use crate::error::{ApiError, Unavailable};
use crate::model::parse_record;

pub const EVENT_TICKETS: &str = "event_tickets";

/// How long a ticket opens streams.
pub const EVENTS_TICKET_TTL_MS: u64 = 60_000;
/// Streams one replica serves at once; one more is refused with 503 (the app then polls).
pub const EVENT_STREAMS_MAX: usize = 512;
/// Streams one account may hold open on one replica (tabs, devices).
pub const EVENT_STREAMS_PER_ACCOUNT_MAX: usize = 4;
/// A stream ends after this long; the app opens another with a new ticket.
pub const EVENTS_STREAM_MS_MAX: u64 = 30 * 60_000;
/// Between two checks that a stream's session still lives, by default (`--events-heartbeat-ms`).
pub const EVENTS_HEARTBEAT_MS: u64 = 15_000;
/// Between two comment lines on an idle stream: they keep proxies from closing it, and a write
/// is how the replica learns that the client went away (it reads nothing from it).
pub const EVENTS_PING_MS: u64 = 5_000;
/// Between two reads of the journal's tail when the last found nothing new.
pub const EVENTS_TAIL_INTERVAL_MS: u64 = 200;
/// Journal entries read per tail step.
pub const EVENTS_TAIL_ENTRIES_MAX: usize = 500;
/// Between two looks at a stream's account's packages.
pub const EVENTS_PACKAGES_CHECK_MS: u64 = 1_000;
/// Package index entries looked at per check (the newest).
pub const EVENTS_PACKAGES_CHECKED_MAX: usize = 5;
/// Changes buffered per listener; one that falls further behind is told "something changed".
const FEED_CHANNEL_CAPACITY: usize = 4_096;
/// Events buffered per stream before the client is too slow and is dropped.
const STREAM_BUFFER_EVENTS: usize = 32;

/// A line that moved an account's balance, as the journal recorded it.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub account: AccountId,
    pub seq: u64,
    pub balance: Money,
}

/// The replica's feed of the journal, and the count of open streams.
#[derive(Debug)]
pub struct Feed {
    tx: broadcast::Sender<Change>,
    wake: tokio::sync::Notify,
    /// The lowest journal position a stream opened at and the tail has not read past yet
    /// (`u64::MAX`: none). A stream reads its account's position, then the tail may already be
    /// further on; the tail goes back to this floor, so nothing committed in between is missed.
    floor: std::sync::atomic::AtomicU64,
    streams: parking_lot::Mutex<HashMap<AccountId, usize>>,
    /// `business_event_streams`.
    gauge: prometheus_client::metrics::gauge::Gauge,
    heartbeat_ms: u64,
}

impl Feed {
    pub fn new(gauge: prometheus_client::metrics::gauge::Gauge, heartbeat_ms: u64) -> Feed {
        Feed {
            heartbeat_ms,
            tx: broadcast::channel(FEED_CHANNEL_CAPACITY).0,
            wake: tokio::sync::Notify::new(),
            floor: std::sync::atomic::AtomicU64::new(u64::MAX),
            streams: parking_lot::Mutex::new(HashMap::new()),
            gauge,
        }
    }

    /// Open streams on this replica.
    pub fn streams(&self) -> usize {
        self.streams.lock().values().sum()
    }

    fn enter(self: &Arc<Feed>, account: AccountId) -> Result<StreamGuard, ApiError> {
        let mut s = self.streams.lock();
        let total: usize = s.values().sum();
        let mine = s.get(&account).copied().unwrap_or(0);
        if total >= EVENT_STREAMS_MAX {
            return Err(ApiError::Unavailable(Unavailable::Contended("too many event streams on this replica")));
        }
        if mine >= EVENT_STREAMS_PER_ACCOUNT_MAX {
            return Err(ApiError::RateLimited { retry_after_s: EVENTS_TICKET_TTL_MS / 1000 });
        }
        s.insert(account, mine + 1);
        self.gauge.set(i64::try_from(total + 1).unwrap_or(i64::MAX));
        drop(s);
        self.wake.notify_one();
        Ok(StreamGuard { feed: self.clone(), account })
    }
}

/// One open stream, counted until dropped.
struct StreamGuard {
    feed: Arc<Feed>,
    account: AccountId,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut s = self.feed.streams.lock();
        if let Some(n) = s.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                s.remove(&self.account);
            }
        }
        self.feed.gauge.set(i64::try_from(s.values().sum::<usize>()).unwrap_or(i64::MAX));
    }
}

/// Tails the journal while any stream listens on this replica, publishing each change. With
/// nobody listening it reads nothing; it starts again from the journal's end.
pub async fn tail(ds: DataClient, feed: Arc<Feed>) {
    let mut after: Option<u64> = None;
    loop {
        if feed.tx.receiver_count() == 0 {
            after = None;
            // Woken by the first stream; the timeout covers a wake-up that raced the check.
            let _ = tokio::time::timeout(Duration::from_secs(1), feed.wake.notified()).await;
            continue;
        }
        // A stream that opened at an earlier position than the tail has read to: back to it
        // (streams ignore what they already knew).
        let floor = feed.floor.swap(u64::MAX, std::sync::atomic::Ordering::AcqRel);
        let from = match after {
            Some(s) => s.min(floor),
            None => match ds.health().await {
                Ok(h) => h.journal_seq.min(floor),
                Err(e) => {
                    // Whoever asked for this floor still needs it.
                    feed.floor.fetch_min(floor, std::sync::atomic::Ordering::AcqRel);
                    tracing::warn!(error = %e, "event feed: the data server is unreachable");
                    tokio::time::sleep(Duration::from_millis(EVENTS_TAIL_INTERVAL_MS * 5)).await;
                    continue;
                }
            },
        };
        after = Some(from);
        match ds.journal_after(from, EVENTS_TAIL_ENTRIES_MAX).await {
            Ok(page) if !page.entries.is_empty() => {
                for e in &page.entries {
                    for c in &e.changes {
                        let _ = feed.tx.send(Change { account: c.account, seq: e.seq, balance: c.after });
                    }
                    after = Some(e.seq);
                }
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(EVENTS_TAIL_INTERVAL_MS)).await,
            Err(e) => {
                tracing::warn!(error = %e, "event feed: reading the journal failed");
                tokio::time::sleep(Duration::from_millis(EVENTS_TAIL_INTERVAL_MS * 5)).await;
            }
        }
    }
}

/// `event_tickets/{session key}`: the one ticket of a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TicketRecord {
    /// SHA-256 of the ticket's secret part, hex.
    digest: String,
    account: AccountId,
    expires_at_ms: u64,
}

/// What the sweeper reads of a ticket.
#[derive(Debug, Clone, Deserialize)]
pub struct TicketExpiry {
    pub expires_at_ms: u64,
}

pub use shared::api::EventsTicket as Ticket;

/// A ticket for `account`'s events, replacing any earlier ticket of the session `token`.
pub async fn issue(ds: &DataClient, token: &str, account: AccountId) -> Result<Ticket, ApiError> {
    use rand::RngCore;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let secret = hex::encode(raw);
    let session = crate::accounts::session_key(token);
    let expires_at_ms = now_ms().saturating_add(EVENTS_TICKET_TTL_MS);
    let record = TicketRecord { digest: hex::encode(Sha256::digest(secret.as_bytes())), account, expires_at_ms };
    let mut c = CommitRequest::fresh();
    c.records.push(RecordOp::Put {
        collection: EVENT_TICKETS.into(),
        key: session.clone(),
        value: crate::model::json(&record),
        if_version: None,
    });
    ds.commit(&c).await?;
    Ok(Ticket { ticket: format!("{session}.{secret}"), expires_at: dataserver_api::clock::rfc3339_ms(expires_at_ms) })
}

/// The session key a ticket for `account` stands for, if it is valid now and its session lives.
async fn redeem(ds: &DataClient, ticket: &str, account: AccountId) -> Result<String, ApiError> {
    let (session, secret) = ticket.split_once('.').ok_or(ApiError::NoSession)?;
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex64(session) || !hex64(secret) {
        return Err(ApiError::NoSession);
    }
    let r = ds.get_record(EVENT_TICKETS, session).await?.ok_or(ApiError::NoSession)?;
    let t: TicketRecord = parse_record(&r)?;
    let digest = hex::encode(Sha256::digest(secret.as_bytes()));
    // Digests of a random secret: comparing them leaks nothing about the secret itself.
    if digest != t.digest || t.expires_at_ms <= now_ms() {
        return Err(ApiError::NoSession);
    }
    if t.account != account {
        return Err(ApiError::Forbidden);
    }
    if !session_alive(ds, session).await? {
        return Err(ApiError::NoSession);
    }
    Ok(session.to_string())
}

async fn session_alive(ds: &DataClient, session: &str) -> Result<bool, ApiError> {
    Ok(crate::accounts::live_session(ds, session).await?.is_some())
}

/// One Server-Sent Event.
fn event(kind: &str, id: u64, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {kind}\nid: {id}\ndata: {data}\n\n"))
}

/// The account's newest journal position and its balance after it (0 and none for no line).
async fn head(ds: &DataClient, account: AccountId) -> Result<(u64, Option<Money>), ApiError> {
    let page = ds.account_journal(account, None, 1).await?;
    Ok(page
        .entries
        .first()
        .map_or((0, None), |e| (e.seq, e.changes.iter().find(|c| c.account == account).map(|c| c.after))))
}

/// The statuses of the account's packages waiting for settlement and of its newest decided
/// ones, reading the decided ones only when not known final.
async fn package_statuses(
    ds: &DataClient,
    account: AccountId,
    known: &HashMap<String, Status>,
) -> Result<Vec<(String, Status)>, ApiError> {
    // The queue before the entries, as `coordinator::authored` reads them: a package decided in
    // between is seen in both, and only its decided status is kept.
    let waiting = crate::interbank::coordinator::waiting(ds, account).await?;
    let prefix = crate::model::account_packages_prefix(account);
    let index = ds.scan_records(crate::model::ACCOUNT_PACKAGES, &prefix, None, EVENTS_PACKAGES_CHECKED_MAX).await?;
    let mut out: Vec<(String, Status)> = waiting.into_iter().map(|t| (t.id, t.status)).collect();
    let mut unknown = Vec::new();
    for r in index.records {
        let id = match parse_record::<crate::model::AccountPackage>(&r)? {
            crate::model::AccountPackage::Decided(s) => s.package.id,
            crate::model::AccountPackage::Pointer { id } => id,
        };
        out.retain(|(w, _)| *w != id);
        if !known.get(&id).is_some_and(|s| matches!(s, Status::Success | Status::Failed)) {
            unknown.push(r);
        }
    }
    let shown = crate::interbank::coordinator::shown(ds, &unknown).await?;
    out.extend(shown.into_iter().map(|t| (t.id, t.status)));
    Ok(out)
}

/// Opens `account`'s stream for the holder of `ticket`: the body of the SSE response.
pub async fn open(
    ds: DataClient,
    feed: Arc<Feed>,
    ticket: &str,
    account: AccountId,
    last_event_id: Option<u64>,
) -> Result<impl futures::Stream<Item = Result<Bytes, actix_web::Error>> + 'static, ApiError> {
    let session = redeem(&ds, ticket, account).await?;
    let guard = feed.enter(account)?;
    let mut changes = feed.tx.subscribe();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_BUFFER_EVENTS);
    let (mut seq, balance) = head(&ds, account).await?;
    // Subscribed before the position was read: the tail is told to cover from there.
    feed.floor.fetch_min(seq, std::sync::atomic::Ordering::AcqRel);
    let mut known: HashMap<String, Status> =
        package_statuses(&ds, account, &HashMap::new()).await?.into_iter().collect();
    // Missed something since the client's last event (or never had one): say so at once.
    if last_event_id.is_none_or(|l| l < seq) {
        let _ = tx.try_send(event("statement", seq, &serde_json::json!({ "seq": seq, "balance": balance })));
    } else {
        let _ = tx.try_send(Bytes::from_static(b": ready\n\n"));
    }
    actix_web::rt::spawn(async move {
        let _guard = guard;
        let ends_at = tokio::time::Instant::now() + Duration::from_millis(EVENTS_STREAM_MS_MAX);
        let mut packages = tokio::time::interval(Duration::from_millis(EVENTS_PACKAGES_CHECK_MS));
        let mut heartbeat = tokio::time::interval(Duration::from_millis(feed.heartbeat_ms));
        let mut ping = tokio::time::interval(Duration::from_millis(EVENTS_PING_MS.min(feed.heartbeat_ms)));
        packages.tick().await;
        heartbeat.tick().await;
        ping.tick().await;
        loop {
            let out = tokio::select! {
                c = changes.recv() => match c {
                    // A change at or before the position already told (the tail went back
                    // to an earlier stream's floor) is not news.
                    Ok(c) if c.account == account && c.seq > seq => {
                        seq = c.seq;
                        vec![event("statement", seq, &serde_json::json!({ "seq": seq, "balance": c.balance }))]
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        vec![event("statement", seq, &serde_json::json!({ "seq": seq, "balance": null }))]
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = packages.tick() => match package_statuses(&ds, account, &known).await {
                    Ok(now) => {
                        let changed: Vec<(String, Status)> =
                            now.into_iter().filter(|(id, s)| known.get(id) != Some(s)).collect();
                        let out = changed
                            .iter()
                            .map(|(id, s)| event("package", seq, &serde_json::json!({ "id": id, "status": s })))
                            .collect();
                        known.extend(changed);
                        out
                    }
                    Err(_) => continue, // the data server is down a moment; the next check retries
                },
                _ = heartbeat.tick() => {
                    if !session_alive(&ds, &session).await.unwrap_or(true) {
                        let _ = tx.send(Bytes::from_static(b"event: end\ndata: {}\n\n")).await;
                        break;
                    }
                    continue;
                }
                _ = ping.tick() => vec![Bytes::from_static(b": ping\n\n")],
                _ = tokio::time::sleep_until(ends_at) => break,
                _ = tx.closed() => break,
            };
            for b in out {
                // A client that does not read its events is dropped rather than buffered.
                if tx.try_send(b).is_err() {
                    return;
                }
            }
        }
    });
    Ok(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) }))
}

/// Deletes the ticket of a session that ended (logout), so it opens nothing more.
pub fn forget(session: &str) -> RecordOp {
    RecordOp::Delete { collection: EVENT_TICKETS.into(), key: session.to_string(), if_version: None }
}
