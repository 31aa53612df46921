//! The token ring as a pure state machine: which token a bank accepts, whom it passes to, and
//! when the token is lost and who regenerates it. No clocks and no I/O inside — times come in as
//! numbers, peers' answers as values — so every rule is tested without sockets.
//!
//! Mutual exclusion rests on two facts. A token is `(epoch, seq)`, ordered lexicographically,
//! and every bank durably remembers the highest it accepted and refuses anything lower — so a
//! passed token cannot be accepted twice, and a holder that was declared lost cannot come back.
//! And regeneration makes an epoch no other bank can make (the bank id is in its low digits),
//! above every epoch the regenerating bank has heard of, so a new epoch fences every older one.

use serde::{Deserialize, Serialize};
use shared::BankId;

/// Epochs are `generation * EPOCH_BANK_SPAN + bank`: two banks regenerating at once never
/// produce the same epoch. Bank ids are below this (see `shared::ids`).
pub const EPOCH_BANK_SPAN: u64 = 10_000;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct Token {
    pub epoch: u64,
    pub seq: u64,
}

/// The highest epoch a bank accepts or believes. Far above any the ring reaches (a regeneration
/// per millisecond would take millions of years), and low enough that the arithmetic of the
/// next generation cannot overflow: a peer announcing `u64::MAX` would otherwise wrap the next
/// epoch below every bank's and stop the ring for good.
pub const EPOCH_MAX: u64 = u64::MAX / 4;

impl Token {
    /// The token a bank creates when the ring lost its token: a new generation above `highest`.
    pub fn regenerated(highest_epoch: u64, bank: BankId) -> Token {
        // Capped so the result stays within `EPOCH_MAX` (and is possible): a ring that really
        // reached the cap would stop, after some 10^14 regenerations.
        let generation = highest_epoch.min(EPOCH_MAX - 2 * EPOCH_BANK_SPAN) / EPOCH_BANK_SPAN + 1;
        Token { epoch: generation * EPOCH_BANK_SPAN + u64::from(bank.get()), seq: 0 }
    }

    /// Whether some bank of `banks` could have made this token: its epoch names a member as
    /// the bank that regenerated it, and is within [`EPOCH_MAX`].
    pub fn possible(self, banks: &[BankId]) -> bool {
        self.epoch <= EPOCH_MAX && banks.iter().any(|b| u64::from(b.get()) == self.epoch % EPOCH_BANK_SPAN)
    }

    pub fn next(self) -> Token {
        Token { epoch: self.epoch, seq: self.seq + 1 }
    }
}

/// A bank's durable view of the ring (`ring/state` in its data server).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingState {
    /// The highest token this bank accepted.
    pub token: Token,
    /// Whether this bank holds `token` now (it has not passed it on).
    pub holding: bool,
    /// The replica working the token, and until when its lease runs.
    pub worker: Option<u32>,
    pub lease_until_ms: u64,
    /// When this bank last accepted a token (its own clock).
    pub last_grant_ms: u64,
    /// Grants accepted so far: the grant log's next key.
    pub grants: u64,
    /// The last settlement round this bank started as coordinator: a round's number is its
    /// attempts' id (`{package}.{round}`), durable before any of them is prepared.
    #[serde(default)]
    pub round: u64,
    /// A round started and not yet decided. Whoever works the token next closes it first
    /// (aborts its attempts and tells their banks) before any of its packages is tried again,
    /// so that an attempt left behind by a replica that failed or lost its lease mid-round never
    /// holds money beside the package's next attempt.
    #[serde(default)]
    pub open_round: Option<u64>,
    /// The author (account id) whose waiting packages the next round takes first (0: the
    /// queue's start). The queue is ordered by author, not by age: each round goes on from
    /// where the last one stopped, whichever replica works it, and wraps at the end, so every
    /// author is reached once per sweep.
    #[serde(default)]
    pub sweep_from: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receive {
    Accept,
    /// The same token again (a retried pass): already accepted, nothing to do.
    Duplicate,
    /// Older than what this bank accepted: the sender's epoch or turn is over.
    Stale,
}

pub fn on_token(state: &RingState, t: Token) -> Receive {
    match t.cmp(&state.token) {
        std::cmp::Ordering::Greater => Receive::Accept,
        std::cmp::Ordering::Equal if crate::bugs::on(crate::bugs::Bug::AcceptRepeatedTokens) => Receive::Accept,
        std::cmp::Ordering::Equal => Receive::Duplicate,
        std::cmp::Ordering::Less => Receive::Stale,
    }
}

/// The condition every commit of a settlement round (its start, its decisions, the closing of
/// a round left open) puts on `ring/state`: still at `version`, the one its replica last wrote
/// or read as the token's worker. Leases are compared on clocks that differ, so two replicas
/// may both believe they work the token for a while; the version decides which one records
/// anything — a replica taken over mid-round (its lease ran out) writes nothing, and the one
/// that took over closes the round (issue 13, defect 3).
pub fn round_fence(version: u64) -> Option<u64> {
    if crate::bugs::on(crate::bugs::Bug::UnfencedRounds) { None } else { Some(version) }
}

/// Whether a pass from `from` reaches `me` in ring order, past nobody: the common case, taken
/// on the passer's word (asking the others on every pass would put each bank's slowest peer on
/// the token's path, and a black-holed one would stop the ring).
pub fn from_predecessor(from: BankId, me: BankId, banks: &[BankId]) -> bool {
    successors(from, banks).first() == Some(&me)
}

/// Whether a pass of `t` that skipped banks (a passer skips only a bank it cannot reach) is in
/// turn, from the views of every bank but the passer and this one that answered: none of them
/// holds a token of `t`'s epoch or a later one, or has accepted a token at or past `t`. A
/// member that does not hold the token cannot hand a second one of the epoch past a bank that
/// holds it; its successor, which it need not skip, it still can (the predecessor's word is
/// taken, see [`from_predecessor`]), nor a bank past a holder that is down, nor one past a
/// holder whose token is on its way (the check is made at acceptance; a forger that also gets
/// the real token doubles its own turn). Only a chain of signed passes would close those. What
/// rests on this is the order of turns, not money: each bank coordinates only its own
/// packages, one replica at a time, and participants fence by epoch.
pub fn skip_in_turn(t: Token, others: &[PeerView]) -> bool {
    others.iter().all(|v| !(v.holding && v.token.epoch >= t.epoch) && v.token < t)
}

/// Whether work (a prepare) stamped with `epoch` may proceed at a bank in `state`.
pub fn epoch_current(state: &RingState, epoch: u64) -> bool {
    epoch >= state.token.epoch
}

/// The state after accepting `t` at `now_ms`, worked by `worker` for `lease_ms`.
pub fn accept(state: &RingState, t: Token, worker: u32, now_ms: u64, lease_ms: u64) -> RingState {
    RingState {
        token: t,
        holding: true,
        worker: Some(worker),
        lease_until_ms: now_ms.saturating_add(lease_ms),
        last_grant_ms: now_ms,
        grants: state.grants + 1,
        ..*state
    }
}

/// Banks to offer the token to, in ring order after `me` (ids ascending, wrapping).
pub fn successors(me: BankId, banks: &[BankId]) -> Vec<BankId> {
    let mut sorted: Vec<BankId> = banks.iter().copied().filter(|b| *b != me).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let split = sorted.iter().position(|b| *b > me).unwrap_or(sorted.len());
    sorted.rotate_left(split);
    sorted
}

/// Whether another replica of the same bank must take the work over: the token is held here but
/// its worker's lease ran out (the worker died or stalled).
pub fn orphaned(state: &RingState, now_ms: u64) -> bool {
    state.holding && state.lease_until_ms < now_ms
}

/// What a replica does at a tick, from its bank's ring state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It holds the token's lease: work the token.
    Work,
    /// The replica working the token died or stalled (its lease ran out): take over the same
    /// token.
    TakeOver,
    /// The token is elsewhere (or held here by a live lease), or was seen lately: nothing to do.
    Quiet,
    /// No grant seen for `token_lost_ms`: ask every peer for its view, then [`judge`].
    AskViews,
}

/// The tick of replica `worker` at `now_ms`.
pub fn step(state: &RingState, worker: u32, now_ms: u64, token_lost_ms: u64) -> Step {
    if state.holding && state.worker == Some(worker) && state.lease_until_ms >= now_ms {
        Step::Work
    } else if orphaned(state, now_ms) {
        Step::TakeOver
    } else if state.holding || now_ms.saturating_sub(state.last_grant_ms) < token_lost_ms {
        Step::Quiet
    } else {
        Step::AskViews
    }
}

/// What a peer said of its ring state, during lost-token detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerView {
    pub bank: BankId,
    pub token: Token,
    pub holding: bool,
    /// Milliseconds since it last accepted a token (`u64::MAX`: never), by its own clock, so
    /// that clocks of different machines need not agree.
    pub last_grant_age_ms: u64,
    /// Milliseconds its worker's lease still runs (0 when not holding or expired).
    pub lease_left_ms: u64,
    /// Holding with an expired lease: milliseconds since it expired (`u64::MAX` otherwise, and
    /// from a peer that does not say). Another replica of that bank takes the token over at its
    /// next tick, so the ring waits `token_lost_ms` past the lapse before declaring it lost.
    #[serde(default = "never")]
    pub lease_lapsed_ms: u64,
}

fn never() -> u64 {
    u64::MAX
}

impl PeerView {
    pub fn of(bank: BankId, s: &RingState, now_ms: u64) -> PeerView {
        PeerView {
            bank,
            token: s.token,
            holding: s.holding,
            last_grant_age_ms: if s.last_grant_ms == 0 { u64::MAX } else { now_ms.saturating_sub(s.last_grant_ms) },
            lease_left_ms: if s.holding { s.lease_until_ms.saturating_sub(now_ms) } else { 0 },
            lease_lapsed_ms: if s.holding && s.lease_until_ms < now_ms { now_ms - s.lease_until_ms } else { u64::MAX },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Someone holds or recently held the token: it circulates.
    Alive,
    /// The token is lost and this bank is the one to regenerate it, with this token.
    Regenerate(Token),
    /// The token is lost and a lower-numbered live bank will regenerate it.
    Wait,
}

/// Lost-token detection, from this bank's view and the views of the peers that answered. The
/// token is lost when nobody holds it with a live lease (or one lapsed within `token_lost_ms`:
/// a bank that answers has a replica alive, which takes its token over) and nobody accepted one
/// within `token_lost_ms`; the single deterministic winner is the lowest-numbered bank that
/// answered.
pub fn judge(me: PeerView, peers: &[PeerView], token_lost_ms: u64) -> Verdict {
    // A view naming an epoch past every possible one is a hostile or broken peer's: heard as
    // silence, it cannot push the next epoch out of range.
    let all = || std::iter::once(&me).chain(peers.iter().filter(|v| v.token.epoch <= EPOCH_MAX));
    let held = |v: &PeerView| v.holding && (v.lease_left_ms > 0 || v.lease_lapsed_ms < token_lost_ms);
    if all().any(|v| held(v) || v.last_grant_age_ms < token_lost_ms) {
        return Verdict::Alive;
    }
    let winner = all().map(|v| v.bank).min().unwrap_or(me.bank);
    if winner != me.bank {
        return Verdict::Wait;
    }
    let highest = all().map(|v| v.token.epoch).max().unwrap_or(0);
    Verdict::Regenerate(Token::regenerated(highest, me.bank))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bank(b: u32) -> BankId {
        BankId::new(b).unwrap()
    }

    fn view(b: u32, epoch: u64, holding: bool, age: u64, lease: u64) -> PeerView {
        PeerView {
            bank: bank(b),
            token: Token { epoch, seq: 3 },
            holding,
            last_grant_age_ms: age,
            lease_left_ms: lease,
            lease_lapsed_ms: u64::MAX,
        }
    }

    #[test]
    fn tokens_are_accepted_once_and_in_order() {
        let s = RingState { token: Token { epoch: 10_001, seq: 5 }, ..RingState::default() };
        assert_eq!(on_token(&s, Token { epoch: 10_001, seq: 6 }), Receive::Accept);
        assert_eq!(on_token(&s, Token { epoch: 10_001, seq: 5 }), Receive::Duplicate);
        assert_eq!(on_token(&s, Token { epoch: 10_001, seq: 4 }), Receive::Stale);
        assert_eq!(on_token(&s, Token { epoch: 20_002, seq: 0 }), Receive::Accept);
        let newer = RingState { token: Token { epoch: 20_002, seq: 0 }, ..s };
        assert_eq!(on_token(&newer, Token { epoch: 10_001, seq: 99 }), Receive::Stale);
        assert!(!epoch_current(&newer, 10_001));
        assert!(epoch_current(&newer, 20_002));
    }

    #[test]
    fn a_pass_that_skips_a_holder_is_out_of_turn() {
        let banks = [bank(1), bank(2), bank(3)];
        assert!(from_predecessor(bank(1), bank(2), &banks) && from_predecessor(bank(3), bank(1), &banks));
        assert!(!from_predecessor(bank(1), bank(3), &banks), "bank 2 lies between");
        let t = Token { epoch: 10_001, seq: 9 };
        let of = |holding, epoch, seq| PeerView { token: Token { epoch, seq }, holding, ..view(2, 0, false, 0, 0) };
        // The skipped bank was down (no view), or is behind and not holding: in turn.
        assert!(skip_in_turn(t, &[]));
        assert!(skip_in_turn(t, &[of(false, 10_001, 7)]));
        assert!(skip_in_turn(t, &[of(true, 1, 3)]), "it holds a token of an epoch since fenced");
        // It holds this epoch's token, or a later epoch's, or has seen this token or a later one.
        assert!(!skip_in_turn(t, &[of(true, 10_001, 7)]));
        assert!(!skip_in_turn(t, &[of(true, 20_002, 0)]));
        assert!(!skip_in_turn(t, &[of(false, 10_001, 9)]));
        assert!(!skip_in_turn(t, &[of(false, 10_001, 7), of(false, 20_003, 1)]));
    }

    #[test]
    fn the_ring_goes_round_in_id_order() {
        let banks = [bank(3), bank(1), bank(2), bank(5)];
        assert_eq!(successors(bank(2), &banks), vec![bank(3), bank(5), bank(1)]);
        assert_eq!(successors(bank(5), &banks), vec![bank(1), bank(2), bank(3)]);
        assert_eq!(successors(bank(1), &[bank(1)]), vec![]);
    }

    #[test]
    fn a_live_token_is_never_regenerated() {
        let me = view(1, 10_001, false, 10_000, 0);
        assert_eq!(judge(me, &[view(2, 10_001, true, 9_000, 500)], 3_000), Verdict::Alive);
        assert_eq!(judge(me, &[view(2, 10_001, false, 100, 0)], 3_000), Verdict::Alive);
        // A holder whose lease ran out and that nobody replaced: lost.
        assert!(matches!(judge(me, &[view(2, 10_001, true, 9_000, 0)], 3_000), Verdict::Regenerate(_)));
        // ... but not while a replica of it that answers may still take it over.
        let lapsed = |ms| PeerView { lease_lapsed_ms: ms, ..view(2, 10_001, true, 9_000, 0) };
        assert_eq!(judge(me, &[lapsed(2_999)], 3_000), Verdict::Alive);
        assert!(matches!(judge(me, &[lapsed(3_000)], 3_000), Verdict::Regenerate(_)));
        let s = RingState { holding: true, lease_until_ms: 1_000, ..RingState::default() };
        assert_eq!(PeerView::of(bank(2), &s, 1_400).lease_lapsed_ms, 400);
        assert_eq!(PeerView::of(bank(2), &s, 900).lease_lapsed_ms, u64::MAX, "still live");
    }

    #[test]
    fn the_lowest_live_bank_regenerates_above_every_epoch() {
        let quiet = |b, e| view(b, e, false, 10_000, 0);
        assert_eq!(judge(quiet(2, 10_001), &[quiet(1, 10_001), quiet(3, 10_001)], 3_000), Verdict::Wait);
        let v = judge(quiet(2, 10_001), &[quiet(3, 20_003)], 3_000);
        assert_eq!(v, Verdict::Regenerate(Token { epoch: 30_002, seq: 0 }));
        // Never seen a token at all (a fresh network): the lowest bank makes the first one.
        let fresh = |b| view(b, 0, false, u64::MAX, 0);
        assert_eq!(judge(fresh(1), &[fresh(2)], 3_000), Verdict::Regenerate(Token { epoch: 10_001, seq: 0 }));
    }

    #[test]
    fn no_announced_epoch_can_stop_the_ring() {
        let banks = [bank(1), bank(2), bank(3)];
        // A peer announcing the largest epoch: ignored, and the next epoch is still in range.
        let quiet = |b, e| view(b, e, false, 10_000, 0);
        let v = judge(quiet(1, 10_001), &[quiet(2, u64::MAX)], 3_000);
        assert_eq!(v, Verdict::Regenerate(Token { epoch: 20_001, seq: 0 }));
        let t = Token::regenerated(u64::MAX, bank(1));
        assert!(t.possible(&banks) && t.epoch > EPOCH_MAX - 2 * EPOCH_BANK_SPAN, "{t:?}");
        // Only epochs a member made, within range.
        assert!(Token { epoch: 20_003, seq: 7 }.possible(&banks));
        assert!(!Token { epoch: 20_004, seq: 0 }.possible(&banks), "bank 4 is not a member");
        assert!(!Token { epoch: 0, seq: 0 }.possible(&banks));
        assert!(!Token { epoch: u64::MAX, seq: 0 }.possible(&banks));
    }

    proptest! {
        /// Whatever two banks saw, their regenerated epochs differ and each is above all they saw.
        #[test]
        fn regenerated_epochs_are_unique_and_fence_the_past(h1 in 0u64..1_000_000, h2 in 0u64..1_000_000, a in 1u32..9999, b in 1u32..9999) {
            prop_assume!(a != b);
            let (ta, tb) = (Token::regenerated(h1, bank(a)), Token::regenerated(h2, bank(b)));
            prop_assert_ne!(ta.epoch, tb.epoch);
            prop_assert!(ta.epoch > h1 && tb.epoch > h2);
        }
    }
}
