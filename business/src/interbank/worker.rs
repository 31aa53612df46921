//! Carries the token ring's decisions ([`ring`]) between the bank's data server, its replicas
//! and its peers. Each replica runs one background task: it works the token when handed it,
//! takes over when the replica working it dies (its lease in `ring/state` runs out), regenerates
//! a lost token when it is the deterministic winner, and resolves in-doubt prepared packages.
//!
//! * `ring/state` — [`ring::RingState`], changed only by compare-and-set.
//! * `grants/{n:020}` — the grant log: every token this bank accepted (epoch, seq, replica,
//!   time), the last [`GRANT_LOG_MAX`] kept, for audits of mutual exclusion.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dataserver_api::{CommitRequest, ErrorCode as DsCode, RecordOp};
use futures::future::join_all;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use shared::BankId;

use super::coordinator::{self, RoundError, Swept};
use super::participant::{EpochRecord, RING, RING_EPOCH, RING_STATE, ring_state};
use super::ring::{self, PeerView, Receive, RingState, Step, Token, Verdict};
use super::{Interbank, PeerError, now_ms};
use crate::error::{ApiError, Unavailable};
use crate::model::json;

pub const GRANTS: &str = "grants";
/// Grant-log entries kept per bank.
pub const GRANT_LOG_MAX: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEntry {
    pub epoch: u64,
    pub seq: u64,
    pub bank: BankId,
    pub business: u32,
    pub at_ms: u64,
}

/// `PUT /interbank/token`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPass {
    pub epoch: u64,
    pub seq: u64,
    pub from: BankId,
}

/// Accepts `t` at this bank, worked by this replica: durably, with its grant-log entry.
pub async fn receive(ib: &Interbank, t: Token) -> Result<Receive, ApiError> {
    for _ in 0..4 {
        let (state, version) = ring_state(ib).await?;
        let verdict = ring::on_token(&state, t);
        if verdict != Receive::Accept {
            return Ok(verdict);
        }
        let now = now_ms();
        let next = ring::accept(&state, t, ib.business.get(), now, ib.limits.ring_lease_ms);
        let mut c = CommitRequest::fresh();
        c.records.push(RecordOp::Put {
            collection: RING.into(),
            key: RING_STATE.into(),
            value: json(&next),
            if_version: Some(version),
        });
        if t.epoch > state.token.epoch {
            c.records.push(RecordOp::Put {
                collection: RING.into(),
                key: RING_EPOCH.into(),
                value: json(&EpochRecord { epoch: t.epoch }),
                if_version: None,
            });
        }
        let entry = GrantEntry { epoch: t.epoch, seq: t.seq, bank: ib.me, business: ib.business.get(), at_ms: now };
        c.records.push(RecordOp::Put {
            collection: GRANTS.into(),
            key: format!("{:020}", next.grants),
            value: json(&entry),
            if_version: None,
        });
        if next.grants > GRANT_LOG_MAX {
            c.records.push(RecordOp::Delete {
                collection: GRANTS.into(),
                key: format!("{:020}", next.grants - GRANT_LOG_MAX),
                if_version: None,
            });
        }
        match ib.ds.commit(&c).await {
            Ok(_) => {
                tracing::info!(epoch = t.epoch, seq = t.seq, bank = %ib.me, "token granted");
                ib.wake.notify_one();
                return Ok(Receive::Accept);
            }
            Err(e) if e.code() == Some(DsCode::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable(Unavailable::Contended("the ring state keeps changing")))
}

/// Whether `from`'s pass of `t` is in turn here ([`ring::from_predecessor`],
/// [`ring::skip_in_turn`]): a pass that skipped banks is checked against every other bank's view
/// first. Only a skipping pass pays for it, and a passer skips only banks that refused its
/// connection, so the ones asked are mostly either quick to answer or quick to refuse.
pub async fn in_turn(ib: &Interbank, from: BankId, t: Token) -> Result<(), ApiError> {
    let banks = ib.peers.network().ids();
    if ring::from_predecessor(from, ib.me, &banks) {
        return Ok(());
    }
    let others: Vec<BankId> = banks.into_iter().filter(|b| *b != ib.me && *b != from).collect();
    // Each asked at once, and for a third of the passer's own patience at most, so that a peer
    // that does not answer (heard as one that is down, as the passer heard it) cannot make the
    // passer time out and drop the token.
    let ask = |b: BankId| {
        let within = Duration::from_millis(ib.peers.timeout_ms() / 3);
        async move {
            let call = ib.peers.call::<PeerView>(b, Method::GET, "/interbank/token", None::<&()>);
            tokio::time::timeout(within, call).await.ok().and_then(Result::ok)
        }
    };
    let views: Vec<PeerView> = join_all(others.iter().map(|b| ask(*b))).await.into_iter().flatten().collect();
    if ring::skip_in_turn(t, &views) {
        return Ok(());
    }
    tracing::warn!(from = %from, epoch = t.epoch, seq = t.seq, "refused a token passed out of turn");
    Err(ApiError::TokenOutOfTurn(format!(
        "bank {from} passed token {}.{} past a bank that holds its epoch or has seen it",
        t.epoch, t.seq
    )))
}

/// This bank's view of the ring, for peers detecting a lost token.
pub async fn view(ib: &Interbank) -> Result<PeerView, ApiError> {
    let (state, _) = ring_state(ib).await?;
    Ok(PeerView::of(ib.me, &state, now_ms()))
}

/// The background task of one replica.
pub async fn run(ib: Interbank) {
    let mut tick = tokio::time::interval(Duration::from_millis(ib.limits.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ib.wake.notified() => {}
            _ = tick.tick() => {}
        }
        if let Err(e) = step(&ib).await {
            tracing::warn!(error = %e, "ring step failed");
        }
    }
}

async fn step(ib: &Interbank) -> Result<(), ApiError> {
    let (state, version) = ring_state(ib).await?;
    let now = now_ms();
    let me = ib.business.get();
    match ring::step(&state, me, now, ib.limits.token_lost_ms) {
        Step::Work => return work(ib, state, version).await,
        Step::TakeOver => {
            // The replica working the token died: carry on with the same token.
            let next = RingState { worker: Some(me), lease_until_ms: now + ib.limits.ring_lease_ms, ..state };
            if let Some(v) = cas(ib, &next, version).await? {
                tracing::info!(epoch = state.token.epoch, seq = state.token.seq, "took over the token");
                return work(ib, next, v).await;
            }
            return Ok(());
        }
        Step::Quiet => return Ok(()),
        Step::AskViews => {}
    }
    // Nothing seen for a while: ask every peer what it knows.
    let peers: Vec<BankId> = ib.peers.network().ids().into_iter().filter(|b| *b != ib.me).collect();
    let answers =
        join_all(peers.iter().map(|b| ib.peers.call::<PeerView>(*b, Method::GET, "/interbank/token", None::<&()>)))
            .await;
    let views: Vec<PeerView> = answers.into_iter().filter_map(Result::ok).collect();
    let mine = PeerView::of(ib.me, &state, now);
    if let Verdict::Regenerate(t) = ring::judge(mine, &views, ib.limits.token_lost_ms) {
        tracing::warn!(epoch = t.epoch, "the token was lost; regenerating it");
        receive(ib, t).await?;
    }
    Ok(())
}

/// Compare-and-set of `ring/state`; `None` when someone else changed it first.
async fn cas(ib: &Interbank, next: &RingState, version: u64) -> Result<Option<u64>, ApiError> {
    let mut c = CommitRequest::fresh();
    c.records.push(RecordOp::Put {
        collection: RING.into(),
        key: RING_STATE.into(),
        value: json(next),
        if_version: Some(version),
    });
    match ib.ds.commit(&c).await {
        Ok(r) => Ok(r.records.first().map(|v| v.version)),
        Err(e) if e.code() == Some(DsCode::ConditionFailed) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Works the token: settlement rounds until the queue is swept, less than a full round waits
/// after the first, or the hold time is up, each round behind a renewed lease; then passes it on.
async fn work(ib: &Interbank, mut state: RingState, mut version: u64) -> Result<(), ApiError> {
    let started = Instant::now();
    // Where the last round stopped (the ring state says, whichever replica worked it); begun
    // mid-queue, the sweep goes round once to its start.
    let mut cursor = coordinator::sweep_cursor(state.sweep_from);
    let mut wrapped = cursor.is_none();
    let mut down = BTreeSet::new();
    let mut worked = 0;
    // A hold's first round waits once for a fuller queue (`round_linger_ms`) when packages wait
    // but not a round's worth; an empty queue is the idle hold's to wait on.
    let mut linger = ib.limits.round_linger_ms > 0;
    // The last round's decisions, carried by the next round's prepares.
    let mut carried = coordinator::Carried::new();
    loop {
        // Each round's decisions renew the lease in their own commit; a write here only when
        // rounds have not lately (the hold's first round, rounds with nothing to decide).
        let now = now_ms();
        if state.lease_until_ms.saturating_sub(now) < ib.limits.ring_lease_ms / 4 * 3 {
            state.lease_until_ms = now + ib.limits.ring_lease_ms;
            match cas(ib, &state, version).await? {
                Some(v) => version = v,
                None => return Ok(()), // taken over, or a newer token arrived: not ours to pass
            }
        }
        // After the hold's first round (every round looks at one package at least), another
        // starts only with a full round waiting. A round costs the same requests and commits at
        // every bank whatever it carries: under load, what arrived during a hold's rounds made
        // rounds of one or two, each as slow as a full one, while the other banks' queues filled
        // and refused.
        let packages_min = if linger || worked > 0 { ib.limits.batch_packages_max } else { 1 };
        match coordinator::round(ib, &mut state, &mut version, &mut cursor, &mut down, &mut carried, packages_min).await
        {
            Ok(Swept::Short) if linger => {
                linger = false;
                tokio::time::sleep(Duration::from_millis(ib.limits.round_linger_ms)).await;
                continue;
            }
            // What came in during this hold's rounds is too little for another: it waits for
            // the next turn, with what comes meanwhile, and the other banks take theirs now.
            Ok(Swept::Short) => break,
            Ok(Swept::Empty) if !wrapped => {
                wrapped = true;
                cursor = None;
                continue;
            }
            Ok(Swept::Empty) => break,
            Ok(Swept::Seen(n)) => {
                linger = false;
                worked += n;
            }
            Err(RoundError::Fenced(epoch)) => {
                tracing::warn!(epoch, "our epoch was superseded; dropping the token");
                let dropped = RingState { holding: false, worker: None, lease_until_ms: 0, ..state };
                cas(ib, &dropped, version).await?;
                return Ok(());
            }
            Err(RoundError::Replaced) => {
                tracing::warn!("another replica took the token over mid-round");
                return Ok(());
            }
            Err(RoundError::Api(e)) => {
                tracing::warn!(error = %e, "settlement round failed; passing the token");
                break;
            }
        }
        if started.elapsed() >= Duration::from_millis(ib.limits.hold_ms_max) {
            break;
        }
    }
    // The last round's decisions go now, before the token does: the next hold is a turn of
    // the ring away, and the holds they release would wait for it.
    if !carried.is_empty()
        && let Err(e) = coordinator::deliver_owed(ib, &mut carried, &mut down).await
    {
        tracing::warn!(error = %e, "delivering the last round's decisions failed; recovery will");
    }
    if worked == 0 {
        // An idle ring would otherwise spin as fast as the network allows.
        tokio::time::sleep(Duration::from_millis(ib.limits.idle_hold_ms)).await;
    }
    ib.metrics.hold_seconds.observe(started.elapsed().as_secs_f64());
    let passing = Instant::now();
    let passed = pass(ib, state, version).await;
    ib.metrics.token_pass_seconds.observe(passing.elapsed().as_secs_f64());
    passed
}

/// Hands the token to the next bank that answers. The hand-over is recorded first, so no
/// replica of ours can take the token over once it has left.
async fn pass(ib: &Interbank, state: RingState, version: u64) -> Result<(), ApiError> {
    let released = RingState { holding: false, worker: None, lease_until_ms: 0, ..state };
    if cas(ib, &released, version).await?.is_none() {
        return Ok(());
    }
    let next = state.token.next();
    let body = TokenPass { epoch: next.epoch, seq: next.seq, from: ib.me };
    for bank in ring::successors(ib.me, &ib.peers.network().ids()) {
        match ib.peers.call::<serde_json::Value>(bank, Method::PUT, "/interbank/token", Some(&body)).await {
            Ok(_) => return Ok(()),
            Err(PeerError::NotDelivered(_)) => continue,
            Err(e) => {
                // Delivered or not, we cannot tell (or it was refused as stale): do not offer
                // the same token to another bank. A lost token is regenerated by the ring.
                tracing::warn!(bank = %bank, error = %e, "passing the token failed");
                return Ok(());
            }
        }
    }
    // Every peer is down: keep working alone (seq moves on, so the grant log stays exact).
    tokio::time::sleep(Duration::from_millis(ib.limits.tick_ms)).await;
    receive(ib, next).await.map(|_| ())
}
