//! The pure core of two-phase commit: what a package needs from each account of a bank, how a
//! participant votes on a batch, and how the coordinator decides. No I/O: the data-server and
//! HTTP layers around it only carry the inputs and outputs, so these rules are tested directly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shared::{AccountId, Amount, BankId, Ibk, Money};

use crate::bugs::{self, Bug};
use crate::consents::{ConsentSet, ConsentUse, NotCovered};

/// One operation of an interbank package, with its target already resolved to an IBK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WireOp {
    pub from: Ibk,
    pub to: Ibk,
    pub amount: Amount,
}

/// What one package asks of one account of the participant bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Need {
    /// The reservation: the most this account's running balance ever falls below its start
    /// while the package's operations run in order. A debit may spend what an earlier operation
    /// of the same package credited, so this is the deepest dip, not the sum of the debits.
    pub hold: Money,
    pub credits: Money,
    pub debits: Money,
}

/// Most a package may credit to one account here, with nothing else asked of that account, for
/// the credit to need no hold (R$ 1,000,000.00): such an account is only locked and read at
/// prepare, and its `holds/` record is neither written then nor when the package ends. Larger
/// credits are promised (reserved) as before.
pub const UNRESERVED_CREDIT_CENTS_MAX: i64 = 100_000_000;

/// Most packages of one coordinator's round a participant holds prepared (a prepare past it is
/// answered `unreachable`). Bounds, with the next two, the credits in flight to one account
/// that nobody reserved.
pub const ROUND_PACKAGES_MAX: usize = 128;

/// Most rounds of one coordinator a participant holds prepared at once (a prepare that would
/// start another is answered `unreachable`).
pub const PREPARED_ROUNDS_PER_COORDINATOR_MAX: u64 = 256;

/// The most that unreserved credits prepared and not yet ended can add to one account: every
/// bank of a network (at most `BANK_ID_MAX`) coordinating its most rounds held prepared, each of
/// its most packages crediting the account the most that needs no hold. 9,999 × 256 × 128 × R$
/// 1,000,000.00 = R$ 327.6 trillion.
pub const UNRESERVED_IN_FLIGHT_CENTS_MAX: i64 = shared::ids::BANK_ID_MAX as i64
    * PREPARED_ROUNDS_PER_COORDINATOR_MAX as i64
    * ROUND_PACKAGES_MAX as i64
    * UNRESERVED_CREDIT_CENTS_MAX;

/// The largest balance a credit may bring an account to, with every credit reserved for it
/// (`incoming`) counted: `Money::MAX` less what unreserved credits in flight can add. Every
/// credit but a commit of one voted for is held to it (deposits, transfers, prepares), so the
/// commits of unreserved credits, which nothing checks, can never pass `Money::MAX`: from the
/// last credit checked against the ceiling, the balance (with what was promised) rises only by
/// commits of credits then already in flight — reserved ones counted, unreserved ones at most
/// `UNRESERVED_IN_FLIGHT_CENTS_MAX`. R$ 672.4 trillion: no real account comes near it.
pub const BALANCE_CEILING: Money =
    match Money::from_cents(shared::money::MONEY_CENTS_MAX - UNRESERVED_IN_FLIGHT_CENTS_MAX) {
        Ok(m) => m,
        Err(_) => panic!("the ceiling is a balance"),
    };

impl Need {
    /// A credit-only need small enough that no hold is kept for it (see
    /// [`UNRESERVED_CREDIT_CENTS_MAX`]). A function of the need alone, so the prepare that
    /// skipped the hold and the finish that must not release one agree on every replica.
    pub fn unreserved(&self) -> bool {
        self.debits.is_zero() && self.credits.cents() <= UNRESERVED_CREDIT_CENTS_MAX
    }

    /// The credits promised to the account (kept as `incoming` until the package ends).
    pub fn promised(&self) -> Money {
        if self.unreserved() { Money::ZERO } else { self.credits }
    }
}

/// The needs of a package at `bank`, per account, in first-appearance order. `None` when a sum
/// overflows the money range (the package is then refused).
pub fn needs(ops: &[WireOp], bank: BankId) -> Option<Vec<(AccountId, Need)>> {
    let mut running: Vec<(AccountId, i128, i128, Need)> = Vec::new(); // account, balance delta, lowest, need
    let slot = |running: &mut Vec<(AccountId, i128, i128, Need)>, a: AccountId| {
        if let Some(i) = running.iter().position(|r| r.0 == a) {
            i
        } else {
            running.push((a, 0, 0, Need::default()));
            running.len() - 1
        }
    };
    for op in ops {
        let cents = i128::from(op.amount.money().cents());
        if op.from.bank == bank {
            let i = slot(&mut running, op.from.account);
            let r = &mut running[i];
            r.1 -= cents;
            r.2 = r.2.min(r.1);
            r.3.debits = r.3.debits.checked_add(op.amount.money())?;
        }
        if op.to.bank == bank {
            let i = slot(&mut running, op.to.account);
            let r = &mut running[i];
            r.1 += cents;
            r.3.credits = r.3.credits.checked_add(op.amount.money())?;
        }
    }
    running
        .into_iter()
        .map(|(a, _, lowest, mut need)| {
            need.hold = Money::from_cents(i64::try_from(-lowest).ok()?).ok()?;
            Some((a, need))
        })
        .collect()
}

/// The banks a package involves, ascending.
pub fn banks(ops: &[WireOp]) -> Vec<BankId> {
    let mut b: Vec<BankId> = ops.iter().flat_map(|o| [o.from.bank, o.to.bank]).collect();
    b.sort_unstable();
    b.dedup();
    b
}

/// Net position of `bank` towards each other bank for a committed package: what the other
/// bank's accounts received from ours minus what ours received from theirs — a claim of the
/// other bank on us when positive. Summed over both sides of every pair it is zero.
pub fn positions(ops: &[WireOp], bank: BankId) -> BTreeMap<BankId, i128> {
    let mut out = BTreeMap::new();
    for op in ops {
        let cents = i128::from(op.amount.money().cents());
        if op.from.bank == bank && op.to.bank != bank {
            *out.entry(op.to.bank).or_insert(0) += cents;
        } else if op.to.bank == bank && op.from.bank != bank {
            *out.entry(op.from.bank).or_insert(0) -= cents;
        }
    }
    out
}

/// A participant's account as seen under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub posted: Money,
    pub held: Money,
    /// Credits promised to it by packages prepared and not yet ended.
    pub incoming: Money,
    /// A joint account some holder has not confirmed: it may not be debited.
    pub pending: bool,
    /// Its holders' consents to other banks' debits (updated with each reservation).
    pub consents: ConsentSet,
}

/// Why a participant refused to prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    #[error("account {ibk} does not exist or is closed")]
    AccountNotFound { ibk: Ibk },
    #[error("account {ibk} has {available} available, the package needs {needed}")]
    InsufficientFunds { ibk: Ibk, available: Money, needed: Money },
    #[error("account {ibk} waits for every holder to confirm it and cannot be debited")]
    AccountPendingHolders { ibk: Ibk },
    #[error("the holder of account {ibk} has not consented to debits by this package's bank")]
    ConsentMissing { ibk: Ibk },
    #[error("the consent for debits of account {ibk} expired or was revoked")]
    ConsentExpired { ibk: Ibk },
    #[error("the consent for debits of account {ibk} has {remaining} left, the package needs {needed}")]
    ConsentExceeded { ibk: Ibk, remaining: Money, needed: Money },
    #[error("account {ibk} would exceed the largest balance")]
    Overflow { ibk: Ibk },
    #[error("this attempt was already rolled back")]
    AlreadyAborted,
    /// The prepare came later than the package's deadline plus the network's clock skew.
    #[error("the package's deadline passed before this bank was asked")]
    DeadlinePassed,
}

/// One package of a prepare batch, as the participant evaluates it.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub ops: &'a [WireOp],
    /// The person the coordinator signed in, whose consents may cover debits here.
    pub person: Option<&'a shared::Document>,
}

/// What a yes vote reserves: holds per account, and the consents its debits here draw on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reserved {
    pub needs: Vec<(AccountId, Need)>,
    pub consents: Vec<ConsentUse>,
}

/// Votes on a batch in order, each package seeing the holds (and consent reservations) of the
/// ones accepted before it. `accounts` is updated with them. Returns, per package, what it
/// reserves or the refusal. Debits of a package `coordinator` coordinates for one of its own
/// customers need no consent when `coordinator` is this bank (it signed the customer in);
/// otherwise each debited account needs a live consent of this holder to that bank.
pub fn vote(
    bank: BankId,
    coordinator: BankId,
    items: &[Item<'_>],
    accounts: &mut BTreeMap<AccountId, Option<AccountView>>,
    now_ms: u64,
) -> Vec<Result<Reserved, Refusal>> {
    items
        .iter()
        .map(|item| {
            let ibk = |a| Ibk::new(bank, a);
            let needs = needs(item.ops, bank).ok_or(Refusal::Overflow { ibk: ibk(item.ops[0].from.account) })?;
            let mut consents: Vec<ConsentUse> = Vec::new();
            let mut drawn: BTreeMap<AccountId, ConsentSet> = BTreeMap::new();
            for (a, need) in &needs {
                let view = accounts.get(a).cloned().flatten().ok_or(Refusal::AccountNotFound { ibk: ibk(*a) })?;
                if !need.debits.is_zero() {
                    if view.pending {
                        return Err(Refusal::AccountPendingHolders { ibk: ibk(*a) });
                    }
                    if coordinator != bank {
                        let mut set = view.consents.clone();
                        let id = set.reserve(coordinator, item.person, need.debits, now_ms).map_err(|n| match n {
                            NotCovered::Missing => Refusal::ConsentMissing { ibk: ibk(*a) },
                            NotCovered::Expired => Refusal::ConsentExpired { ibk: ibk(*a) },
                            NotCovered::Exceeded { remaining } => {
                                Refusal::ConsentExceeded { ibk: ibk(*a), remaining, needed: need.debits }
                            }
                        })?;
                        consents.push(ConsentUse { account: *a, consent: id, amount: need.debits });
                        drawn.insert(*a, set);
                    }
                }
                // Architecture Invariant: holds never exceed the posted balance.
                let available = view.posted.checked_sub(view.held).unwrap_or_else(|| {
                    panic!("account {}: held {} exceeds posted {}", ibk(*a), view.held, view.posted)
                });
                if available < need.hold {
                    return Err(Refusal::InsufficientFunds { ibk: ibk(*a), available, needed: need.hold });
                }
                // The credit must fit below the ceiling too, with every credit already promised
                // (issue 13, defect 5: each alone fitting, two committed could overflow, and the
                // second commit, voted for, became impossible after the package's other banks
                // had committed). Unreserved credits are not promised: the ceiling's headroom
                // is theirs.
                let (promised, ceiling) = if bugs::on(Bug::UnreservedCredits) {
                    (Money::ZERO, Money::MAX)
                } else {
                    (view.incoming, BALANCE_CEILING)
                };
                let peak = view.posted.checked_add(promised).and_then(|p| p.checked_add(need.credits));
                if !need.credits.is_zero() && peak.is_none_or(|p| p > ceiling) {
                    return Err(Refusal::Overflow { ibk: ibk(*a) });
                }
            }
            for (a, need) in &needs {
                if let Some(Some(view)) = accounts.get_mut(a) {
                    view.held = view.held.checked_add(need.hold).unwrap_or(Money::MAX);
                    view.incoming = view.incoming.checked_add(need.promised()).unwrap_or(Money::MAX);
                    if let Some(set) = drawn.remove(a) {
                        view.consents = set;
                    }
                }
            }
            Ok(Reserved { needs, consents })
        })
        .collect()
}

/// A participant's answer for one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "vote", rename_all = "snake_case")]
pub enum Vote {
    Yes,
    No {
        refusal: Refusal,
    },
    /// The bank did not answer (down, partitioned, or refused our epoch).
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Commit,
    /// `final_`: the package fails; otherwise only this attempt is rolled back and the package
    /// waits for another (a bank was unreachable and the deadline has not passed).
    Abort {
        final_: bool,
        reason: AbortReason,
    },
}

/// Why an attempt was rolled back: a closed set, shown to the customer as its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbortReason {
    #[error("bank {bank}: {refusal}")]
    Refused { bank: BankId, refusal: Refusal },
    #[error("bank {bank} did not answer before the package's deadline")]
    DeadlinePassed { bank: BankId },
    #[error("bank {bank} is unreachable; the package waits")]
    Unreachable { bank: BankId },
    #[error("the package's deadline passed before it could settle")]
    NoVoteByDeadline,
    #[error("no bank voted")]
    NoVote,
    /// The coordinator lost the token mid-round (a newer epoch fenced its prepares).
    #[error("the token moved on")]
    TokenMovedOn,
}

impl Refusal {
    /// The stable code a client words this refusal by.
    pub fn code(&self) -> shared::ErrorCode {
        use shared::ErrorCode as E;
        match self {
            Refusal::AccountNotFound { .. } => E::AccountNotFound,
            Refusal::InsufficientFunds { .. } => E::InsufficientFunds,
            Refusal::AccountPendingHolders { .. } => E::AccountPendingHolders,
            Refusal::ConsentMissing { .. } => E::ConsentMissing,
            Refusal::ConsentExpired { .. } => E::ConsentExpired,
            Refusal::ConsentExceeded { .. } => E::ConsentExceeded,
            Refusal::Overflow { .. } => E::BalanceOverflow,
            Refusal::AlreadyAborted => E::PackageAborted,
            Refusal::DeadlinePassed => E::PackageDeadline,
        }
    }
}

impl AbortReason {
    /// The stable code a client words this failure by.
    pub fn code(&self) -> shared::ErrorCode {
        use shared::ErrorCode as E;
        match self {
            AbortReason::Refused { refusal, .. } => refusal.code(),
            AbortReason::DeadlinePassed { .. } | AbortReason::NoVoteByDeadline => E::PackageDeadline,
            AbortReason::Unreachable { .. } | AbortReason::NoVote | AbortReason::TokenMovedOn => E::PackageAborted,
        }
    }
}

/// The coordinator's rule: all yes → commit; any no → fail; anyone silent → wait until the
/// deadline, then fail. Never commit on a missing vote.
pub fn decide(votes: &[(BankId, Vote)], deadline_passed: bool) -> Decision {
    if let Some((bank, Vote::No { refusal })) = votes.iter().find(|(_, v)| matches!(v, Vote::No { .. })) {
        return Decision::Abort {
            final_: true,
            reason: AbortReason::Refused { bank: *bank, refusal: refusal.clone() },
        };
    }
    if let Some((bank, _)) = votes.iter().find(|(_, v)| *v == Vote::Unreachable) {
        let bank = *bank;
        let reason =
            if deadline_passed { AbortReason::DeadlinePassed { bank } } else { AbortReason::Unreachable { bank } };
        return Decision::Abort { final_: deadline_passed, reason };
    }
    if votes.is_empty() {
        let reason = if deadline_passed { AbortReason::NoVoteByDeadline } else { AbortReason::NoVote };
        return Decision::Abort { final_: true, reason };
    }
    Decision::Commit
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ibk(b: u32, a: u64) -> Ibk {
        Ibk::new(BankId::new(b).unwrap(), AccountId::new(a).unwrap())
    }
    fn op(from: Ibk, to: Ibk, cents: i64) -> WireOp {
        WireOp { from, to, amount: Amount::new(Money::from_cents(cents).unwrap()).unwrap() }
    }
    fn bank(b: u32) -> BankId {
        BankId::new(b).unwrap()
    }
    /// An open account with `cents` posted and nothing held or promised.
    fn view(cents: i64) -> AccountView {
        AccountView {
            posted: Money::from_cents(cents).unwrap(),
            held: Money::ZERO,
            incoming: Money::ZERO,
            pending: false,
            consents: ConsentSet::default(),
        }
    }

    #[test]
    fn a_chain_holds_only_the_dip() {
        // A→B 100, then B→C 100 with the money just received: B needs no funds of its own.
        let (a, b, c) = (ibk(1, 1), ibk(2, 1), ibk(3, 1));
        let ops = [op(a, b, 100), op(b, c, 100)];
        let at2 = needs(&ops, bank(2)).unwrap();
        assert_eq!(
            at2,
            vec![(
                b.account,
                Need {
                    hold: Money::ZERO,
                    credits: Money::from_cents(100).unwrap(),
                    debits: Money::from_cents(100).unwrap()
                }
            )]
        );
        // Spending before receiving needs the money up front.
        let ops = [op(b, c, 100), op(a, b, 100)];
        assert_eq!(needs(&ops, bank(2)).unwrap()[0].1.hold, Money::from_cents(100).unwrap());
    }

    #[test]
    fn votes_see_earlier_holds_of_the_batch() {
        let (a, b) = (ibk(1, 1), ibk(2, 1));
        let mut accounts = BTreeMap::from([(a.account, Some(view(150)))]);
        let ops = [op(a, b, 100)];
        let items = [Item { ops: &ops, person: None }, Item { ops: &ops, person: None }];
        let v = vote(bank(1), bank(1), &items, &mut accounts, 0);
        assert!(v[0].is_ok());
        assert!(matches!(v[1], Err(Refusal::InsufficientFunds { .. })));
        // Another bank's package needs a consent to debit it, whoever it says the author is.
        let ana = shared::Document::with_check_digits("123456789").unwrap();
        let v = vote(bank(1), bank(2), &[Item { ops: &[op(a, b, 1)], person: Some(&ana) }], &mut accounts, 0);
        assert!(matches!(v[0], Err(Refusal::ConsentMissing { .. })), "{v:?}");
        // A joint account waiting for its holders is never debited, even by its own bank.
        let mut pending = BTreeMap::from([(a.account, Some(AccountView { pending: true, ..view(150) }))]);
        let v = vote(bank(1), bank(1), &[Item { ops: &ops, person: None }], &mut pending, 0);
        assert!(matches!(v[0], Err(Refusal::AccountPendingHolders { .. })), "{v:?}");
        // A credit to an unknown account is refused.
        let v = vote(bank(2), bank(1), &[Item { ops: &ops, person: None }], &mut BTreeMap::new(), 0);
        assert!(matches!(v[0], Err(Refusal::AccountNotFound { .. })));
    }

    #[test]
    fn large_credits_are_promised_small_ones_ride_the_ceilings_headroom() {
        let (a, b) = (ibk(1, 1), ibk(2, 1));
        let large = UNRESERVED_CREDIT_CENTS_MAX + 1;
        // Large credits each fitting below the ceiling, but not together: the second is refused,
        // so a commit voted for can never overflow (nor can one after a credit already promised
        // by an earlier prepare).
        let near = BALANCE_CEILING.cents() - large - large / 2;
        let mut rich = BTreeMap::from([(b.account, Some(view(near)))]);
        let credit = [op(a, b, large)];
        let two = [Item { ops: &credit, person: None }, Item { ops: &credit, person: None }];
        let v = vote(bank(2), bank(1), &two, &mut rich, 0);
        assert!(v[0].is_ok() && matches!(v[1], Err(Refusal::Overflow { .. })), "{v:?}");
        assert_eq!(rich[&b.account].as_ref().unwrap().incoming.cents(), large, "the first is promised");
        let promised = AccountView { incoming: Money::from_cents(large).unwrap(), ..view(near) };
        let mut rich = BTreeMap::from([(b.account, Some(promised))]);
        let v = vote(bank(2), bank(1), &two[..1], &mut rich, 0);
        assert!(matches!(v[0], Err(Refusal::Overflow { .. })), "{v:?}");
        // A small credit to an account asked nothing else is not promised: it fits if it fits
        // below the ceiling alone, and leaves `incoming` as it was.
        let small = [op(a, b, UNRESERVED_CREDIT_CENTS_MAX)];
        let two = [Item { ops: &small, person: None }, Item { ops: &small, person: None }];
        let mut rich = BTreeMap::from([(b.account, Some(view(BALANCE_CEILING.cents() - UNRESERVED_CREDIT_CENTS_MAX)))]);
        let v = vote(bank(2), bank(1), &two, &mut rich, 0);
        assert!(v.iter().all(|r| r.as_ref().is_ok_and(|r| r.needs[0].1.promised().is_zero())), "{v:?}");
        assert!(rich[&b.account].as_ref().unwrap().incoming.is_zero());
        // Past the ceiling nothing more is credited, however small.
        let mut full = BTreeMap::from([(b.account, Some(view(BALANCE_CEILING.cents() - 1)))]);
        let v = vote(bank(2), bank(1), &[Item { ops: &[op(a, b, 2)], person: None }], &mut full, 0);
        assert!(matches!(v[0], Err(Refusal::Overflow { .. })), "{v:?}");
        // A package that also debits the account keeps a hold (and promises its credit).
        let both = needs(&[op(b, a, 5), op(a, b, 5)], bank(2)).unwrap();
        assert!(!both[0].1.unreserved() && both[0].1.promised().cents() == 5);
        // The headroom covers every unreserved credit that can be in flight to one account.
        assert_eq!(
            i128::from(BALANCE_CEILING.cents())
                + i128::from(shared::ids::BANK_ID_MAX)
                    * i128::from(PREPARED_ROUNDS_PER_COORDINATOR_MAX)
                    * ROUND_PACKAGES_MAX as i128
                    * i128::from(UNRESERVED_CREDIT_CENTS_MAX),
            i128::from(Money::MAX.cents())
        );
    }

    #[test]
    fn the_coordinator_never_commits_on_a_missing_vote() {
        let (one, two) = (bank(1), bank(2));
        assert_eq!(decide(&[(one, Vote::Yes), (two, Vote::Yes)], false), Decision::Commit);
        assert!(matches!(
            decide(&[(one, Vote::Yes), (two, Vote::Unreachable)], false),
            Decision::Abort { final_: false, .. }
        ));
        assert!(matches!(
            decide(&[(one, Vote::Yes), (two, Vote::Unreachable)], true),
            Decision::Abort { final_: true, .. }
        ));
        let no = Vote::No { refusal: Refusal::AlreadyAborted };
        assert!(matches!(decide(&[(one, no), (two, Vote::Unreachable)], false), Decision::Abort { final_: true, .. }));
        assert!(matches!(decide(&[], false), Decision::Abort { final_: true, .. }));
    }

    fn arb_ops() -> impl Strategy<Value = Vec<WireOp>> {
        prop::collection::vec((1u32..=3, 1u64..=3, 1u32..=3, 1u64..=3, 1i64..=500), 1..8).prop_map(|v| {
            v.into_iter()
                .filter(|(fb, fa, tb, ta, _)| (fb, fa) != (tb, ta))
                .map(|(fb, fa, tb, ta, c)| op(ibk(fb, fa), ibk(tb, ta), c))
                .collect()
        })
    }

    proptest! {
        /// With `hold` available, running the package in order never takes an account below
        /// zero, and the net change is credits minus debits.
        #[test]
        fn holding_the_dip_is_enough(ops in arb_ops(), b in 1u32..=3) {
            for (a, need) in needs(&ops, bank(b)).unwrap() {
                let mut balance = i128::from(need.hold.cents());
                for o in &ops {
                    let c = i128::from(o.amount.money().cents());
                    if o.from == ibk(b, a.get()) { balance -= c; }
                    prop_assert!(balance >= 0);
                    if o.to == ibk(b, a.get()) { balance += c; }
                }
                prop_assert_eq!(balance - i128::from(need.hold.cents()),
                    i128::from(need.credits.cents()) - i128::from(need.debits.cents()));
            }
        }

        /// Net positions of all banks sum to zero, pair by pair.
        #[test]
        fn positions_cancel(ops in arb_ops()) {
            for x in 1..=3u32 {
                for y in 1..=3u32 {
                    let xy = positions(&ops, bank(x)).get(&bank(y)).copied().unwrap_or(0);
                    let yx = positions(&ops, bank(y)).get(&bank(x)).copied().unwrap_or(0);
                    prop_assert_eq!(xy + yx, 0);
                }
            }
        }
    }
}
