//! The settlement protocol's control flow, with no I/O inside: the coordinator's round (which
//! packages it takes, whom it asks, what it decides and whom it tells), the participant's rules
//! for an attempt it already knows (a repeated prepare, a decision delivered again), and the
//! presumed-abort answer to an inquiry. Answers come in as values, and what to do comes out as
//! values; the business servers' `coordinator`, `participant` and `worker` modules execute it
//! against the data server and the peers, and [`crate::sim`] executes the very same code over
//! its seeded network, so a bug here is a bug the simulation can find.
//!
//! A round, as both executors run it:
//!
//! 1. [`Round::select`] picks from a page of the queue; the executor starts the round durably
//!    (the servers: a round number in `ring/state` and a `rounds/{n}` record; each package's
//!    attempt is `{package}.{n}`) before anything is prepared under it.
//! 2. [`Round::start`] says which bank is asked to prepare which packages ([`Prepare`]).
//! 3. Each bank's answer goes in through [`Round::on`] ([`Answer`]); a bank that did not answer
//!    in time is simply never heard from.
//! 4. [`Round::decide`] gives each package's [`Decision`] and the banks to tell ([`Outcome`]),
//!    and the banks that were silent. The executor records the decisions in one write, each
//!    written once (an abort presumed meanwhile wins: that package is dropped from the round),
//!    and only then delivers them.

use std::collections::{BTreeMap, BTreeSet};

use shared::BankId;

use crate::bugs::{self, Bug};
use crate::retention::Retention;
use crate::settle::{self, AbortReason, Decision, Refusal, Vote, WireOp};

/// One package of a round, as the engine follows it.
#[derive(Debug, Clone)]
struct Entry {
    banks: Vec<BankId>,
    deadline_ms: u64,
    /// Whether its banks were asked to prepare (not when its deadline had passed at the start).
    asked: bool,
    votes: Vec<(BankId, Vote)>,
}

/// A request to prepare: the packages of the round (indices, in round order) that `bank` is
/// asked to vote on, in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepare {
    pub bank: BankId,
    pub items: Vec<usize>,
}

/// What a bank answered to its prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// One vote per item, in the order asked. Any other count is taken as no answer.
    Votes(Vec<Vote>),
    /// The bank refused the round's epoch: the token moved on without us.
    Fenced,
    /// No answer (not delivered, timed out, failed): its votes are missing.
    Silent,
}

/// One settlement round of the coordinator.
#[derive(Debug, Clone)]
pub struct Round {
    entries: Vec<Entry>,
    /// Per bank asked, its items.
    asked: BTreeMap<BankId, Vec<usize>>,
    /// Banks asked that have not answered yet.
    waiting: BTreeSet<BankId>,
    silent: BTreeSet<BankId>,
    fenced: bool,
}

/// The decision on one package of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Who must hear it: on commit every bank of the package; on abort whoever may hold (the
    /// banks asked to prepare).
    pub tell: Vec<BankId>,
}

impl Outcome {
    pub fn commit(&self) -> bool {
        self.decision == Decision::Commit
    }

    /// Whether the package is done with (committed, or failed for good); otherwise it keeps its
    /// place in the queue for another attempt.
    pub fn final_(&self) -> bool {
        !matches!(self.decision, Decision::Abort { final_: false, .. })
    }
}

/// What a round decided.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Per package, in round order.
    pub outcomes: Vec<Outcome>,
    /// Banks asked that did not answer: not asked again for the rest of this hold.
    pub silent: BTreeSet<BankId>,
    /// A bank refused our epoch: stop working the token once the decisions are recorded.
    pub fenced: bool,
}

impl Round {
    /// Which packages of a page of the queue (`(ops, deadline_ms)`, in queue order) a round
    /// takes, as indices into the page, ascending. A package with a bank found silent earlier in this
    /// hold (`down`) waits for a later turn, unless its deadline passed: it fails now, without
    /// asking anyone.
    pub fn select<'a>(
        page: impl IntoIterator<Item = (&'a [WireOp], u64)>,
        down: &BTreeSet<BankId>,
        now_ms: u64,
    ) -> Vec<usize> {
        page.into_iter()
            .enumerate()
            .filter(|(_, (ops, deadline_ms))| {
                *deadline_ms <= now_ms || !settle::banks(ops).iter().any(|b| down.contains(b))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// How many packages at the head of a page (their operation counts, in queue order) one
    /// round takes: as many as fit `operations_max` operations in all, and at least one (every
    /// participant keeps a round's packages in one record, which must fit the data server's).
    pub fn fitting(operations: impl IntoIterator<Item = usize>, operations_max: usize) -> usize {
        let mut total = 0_usize;
        let mut n = 0;
        for ops in operations {
            total = total.saturating_add(ops);
            if n > 0 && total > operations_max {
                break;
            }
            n += 1;
        }
        n
    }

    /// Starts a round over `packages` (`(ops, deadline_ms)`, each under its new attempt id):
    /// one prepare per involved bank, covering every package still within its deadline.
    pub fn start<'a>(packages: impl IntoIterator<Item = (&'a [WireOp], u64)>, now_ms: u64) -> (Round, Vec<Prepare>) {
        let mut entries = Vec::new();
        let mut asked: BTreeMap<BankId, Vec<usize>> = BTreeMap::new();
        for (i, (ops, deadline_ms)) in packages.into_iter().enumerate() {
            let banks = settle::banks(ops);
            let ask = deadline_ms > now_ms;
            if ask {
                for b in &banks {
                    asked.entry(*b).or_default().push(i);
                }
            }
            entries.push(Entry { banks, deadline_ms, asked: ask, votes: vec![] });
        }
        let prepares = asked.iter().map(|(bank, items)| Prepare { bank: *bank, items: items.clone() }).collect();
        let waiting = asked.keys().copied().collect();
        (Round { entries, asked, waiting, silent: BTreeSet::new(), fenced: false }, prepares)
    }

    /// `bank`'s answer. False when it was not expected (a bank not asked, or an answer heard
    /// already: a duplicate or a late one), and then nothing changes.
    pub fn on(&mut self, bank: BankId, answer: Answer) -> bool {
        if !self.waiting.remove(&bank) {
            return false;
        }
        let items = &self.asked[&bank];
        let votes = match answer {
            Answer::Votes(v) if v.len() == items.len() => v,
            Answer::Votes(_) => vec![Vote::Unreachable; items.len()],
            Answer::Silent => {
                self.silent.insert(bank);
                vec![Vote::Unreachable; items.len()]
            }
            Answer::Fenced => {
                self.fenced = true;
                vec![Vote::Unreachable; items.len()]
            }
        };
        for (i, v) in items.iter().zip(votes) {
            self.entries[*i].votes.push((bank, v));
        }
        true
    }

    /// Whether every bank asked has answered.
    pub fn complete(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Decides every package at `now_ms` (banks still waited for count as silent). A commit is
    /// decided only while a prepare of the attempt could still land somewhere: past that, banks
    /// may forget the attempt ([`Retention::too_late`]).
    pub fn decide(self, now_ms: u64, retention: &Retention) -> Decided {
        let mut silent = self.silent;
        silent.extend(self.waiting.iter().copied());
        let outcomes = self
            .entries
            .into_iter()
            .map(|mut e| {
                for b in &self.waiting {
                    if e.asked && e.banks.contains(b) && !e.votes.iter().any(|(v, _)| v == b) {
                        e.votes.push((*b, Vote::Unreachable));
                    }
                }
                let decision = if self.fenced {
                    Decision::Abort { final_: false, reason: AbortReason::TokenMovedOn }
                } else {
                    if bugs::on(Bug::CommitOnSilence) {
                        for (_, v) in &mut e.votes {
                            if *v == Vote::Unreachable {
                                *v = Vote::Yes;
                            }
                        }
                    }
                    match settle::decide(&e.votes, e.deadline_ms <= now_ms) {
                        Decision::Commit if retention.too_late(e.deadline_ms, now_ms) => {
                            Decision::Abort { final_: true, reason: AbortReason::NoVoteByDeadline }
                        }
                        d => d,
                    }
                };
                let tell =
                    if decision == Decision::Commit { e.banks } else { e.votes.iter().map(|(b, _)| *b).collect() };
                Outcome { decision, tell }
            })
            .collect();
        Decided { outcomes, silent, fenced: self.fenced }
    }
}

/// The vote on an attempt this participant already knows, from its records: the outcome it
/// applied (a commit stays yes; an aborted attempt is never prepared again, so a late or
/// repeated prepare after its rollback holds nothing), else yes if it is prepared. `None`: a
/// fresh attempt, to be evaluated.
pub fn known_vote(prepared: bool, outcome: Option<bool>) -> Option<Vote> {
    match outcome {
        _ if bugs::on(Bug::IgnoreOutcomeOnPrepare) => prepared.then_some(Vote::Yes),
        Some(true) => Some(Vote::Yes),
        Some(false) => Some(Vote::No { refusal: Refusal::AlreadyAborted }),
        None => prepared.then_some(Vote::Yes),
    }
}

/// What a participant does with a decision on one attempt, from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Prepared here: apply the decision (post or release), record the outcome.
    Apply,
    /// Already ended here the same way: acknowledge again.
    Repeat,
    /// Ended here the other way: a broken coordinator; not acknowledged.
    Conflict,
    /// A rollback of an attempt never prepared here: record it aborted (a tombstone), so a late
    /// prepare of it is refused instead of holding money; acknowledge.
    Tombstone,
    /// A commit of an attempt never prepared here (or long forgotten): not acknowledged here.
    Unknown,
}

pub fn ending(prepared: bool, outcome: Option<bool>, commit: bool) -> Ending {
    match (prepared, outcome) {
        (true, _) => Ending::Apply,
        (false, Some(o)) if o == commit => Ending::Repeat,
        (false, Some(_)) => Ending::Conflict,
        (false, None) if commit => Ending::Unknown,
        (false, None) => Ending::Tombstone,
    }
}

/// Whether `caller` may end an attempt prepared here for `coordinator`: only the coordinator
/// decides (issue 13, defect 2: any member bank could commit or roll back another bank's
/// attempt, half-applying its package).
pub fn may_finish(coordinator: BankId, caller: BankId) -> bool {
    caller == coordinator || bugs::on(Bug::FinishByAnyBank)
}

/// The coordinator's answer to an inquiry about an attempt, from its record of the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inquiry {
    /// Decided: that decision.
    Decided(bool),
    /// Never decided: abort — recorded first (written once, so a commit can never be recorded
    /// for it afterwards), unless `record` is false (a deliberate bug).
    PresumeAbort { record: bool },
}

pub fn inquiry(recorded: Option<bool>) -> Inquiry {
    match recorded {
        Some(commit) => Inquiry::Decided(commit),
        None => Inquiry::PresumeAbort { record: !bugs::on(Bug::UnrecordedPresumedAbort) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{AccountId, Amount, Ibk, Money};

    fn bank(b: u32) -> BankId {
        BankId::new(b).unwrap()
    }
    fn op(from: u32, to: u32) -> WireOp {
        WireOp {
            from: Ibk::new(bank(from), AccountId::new(1).unwrap()),
            to: Ibk::new(bank(to), AccountId::new(1).unwrap()),
            amount: Amount::new(Money::from_cents(100).unwrap()).unwrap(),
        }
    }
    const RETENTION: Retention = Retention { clock_skew_ms_max: 100, retain_ms: 1_000 };

    #[test]
    fn a_round_takes_the_packages_that_fit_and_always_one() {
        assert_eq!(Round::fitting([2, 2, 2, 2], 6), 3);
        assert_eq!(Round::fitting([2, 2, 2], 6), 3);
        assert_eq!(Round::fitting([16, 1], 6), 1, "a package larger than the bound goes alone");
        assert_eq!(Round::fitting([], 6), 0);
    }

    #[test]
    fn a_round_asks_each_bank_once_and_commits_only_on_every_yes() {
        let (a, b) = ([op(1, 2)], [op(1, 3)]);
        let (mut r, prepares) = Round::start([(&a[..], 5_000), (&b[..], 5_000)], 1_000);
        assert_eq!(
            prepares,
            vec![
                Prepare { bank: bank(1), items: vec![0, 1] },
                Prepare { bank: bank(2), items: vec![0] },
                Prepare { bank: bank(3), items: vec![1] },
            ]
        );
        assert!(r.on(bank(1), Answer::Votes(vec![Vote::Yes, Vote::Yes])));
        assert!(!r.on(bank(1), Answer::Votes(vec![Vote::Yes, Vote::Yes])), "a duplicate is ignored");
        assert!(r.on(bank(2), Answer::Votes(vec![Vote::Yes])));
        assert!(!r.complete());
        let d = r.decide(1_100, &RETENTION); // bank 3 never answered
        assert!(d.outcomes[0].commit() && d.outcomes[0].tell == vec![bank(1), bank(2)]);
        assert!(!d.outcomes[1].commit() && !d.outcomes[1].final_(), "unreachable: tried again");
        assert_eq!(d.outcomes[1].tell, vec![bank(1), bank(3)], "whoever may hold hears the abort");
        assert_eq!(d.silent, BTreeSet::from([bank(3)]));
    }

    #[test]
    fn a_fenced_round_aborts_everything_for_another_attempt() {
        let a = [op(1, 2)];
        let (mut r, _) = Round::start([(&a[..], 5_000)], 1_000);
        r.on(bank(1), Answer::Votes(vec![Vote::Yes]));
        r.on(bank(2), Answer::Fenced);
        let d = r.decide(1_100, &RETENTION);
        assert!(d.fenced && !d.outcomes[0].commit() && !d.outcomes[0].final_());
        assert!(d.silent.is_empty(), "a fenced bank answered");
    }

    #[test]
    fn a_wrong_count_of_votes_is_no_answer_and_a_late_commit_is_refused() {
        let a = [op(1, 2)];
        let (mut r, _) = Round::start([(&a[..], 5_000)], 1_000);
        r.on(bank(1), Answer::Votes(vec![Vote::Yes]));
        r.on(bank(2), Answer::Votes(vec![Vote::Yes, Vote::Yes]));
        assert!(!r.clone().decide(1_100, &RETENTION).outcomes[0].commit());
        let (mut r, _) = Round::start([(&a[..], 5_000)], 1_000);
        r.on(bank(1), Answer::Votes(vec![Vote::Yes]));
        r.on(bank(2), Answer::Votes(vec![Vote::Yes]));
        assert!(r.clone().decide(5_100, &RETENTION).outcomes[0].commit(), "within the skew");
        let late = r.decide(5_101, &RETENTION);
        assert!(!late.outcomes[0].commit() && late.outcomes[0].final_(), "past it: failed for good");
    }

    #[test]
    fn a_package_past_its_deadline_fails_without_asking_and_a_silent_bank_waits() {
        let (a, b) = ([op(1, 2)], [op(1, 3)]);
        let down = BTreeSet::from([bank(3)]);
        assert_eq!(Round::select([(&a[..], 5_000), (&b[..], 5_000)], &down, 1_000), vec![0]);
        assert_eq!(Round::select([(&a[..], 5_000), (&b[..], 900)], &down, 1_000), vec![0, 1]);
        let (r, prepares) = Round::start([(&b[..], 900)], 1_000);
        assert!(prepares.is_empty() && r.complete());
        let d = r.decide(1_000, &RETENTION);
        assert!(d.outcomes[0].final_() && !d.outcomes[0].commit() && d.outcomes[0].tell.is_empty());
    }

    #[test]
    fn participants_and_inquiries() {
        assert_eq!(known_vote(false, None), None);
        assert_eq!(known_vote(true, None), Some(Vote::Yes));
        assert_eq!(known_vote(false, Some(true)), Some(Vote::Yes));
        assert_eq!(known_vote(false, Some(false)), Some(Vote::No { refusal: Refusal::AlreadyAborted }));
        assert_eq!(ending(true, None, false), Ending::Apply);
        assert_eq!(ending(false, Some(true), true), Ending::Repeat);
        assert_eq!(ending(false, Some(true), false), Ending::Conflict);
        assert_eq!(ending(false, None, false), Ending::Tombstone);
        assert_eq!(ending(false, None, true), Ending::Unknown);
        assert_eq!(inquiry(Some(true)), Inquiry::Decided(true));
        assert_eq!(inquiry(None), Inquiry::PresumeAbort { record: true });
        let (b1, b2) = (BankId::new(1).unwrap(), BankId::new(2).unwrap());
        assert!(may_finish(b1, b1) && !may_finish(b1, b2));
    }

    #[test]
    fn a_bug_switch_changes_only_its_own_thread() {
        bugs::set(Some(Bug::IgnoreOutcomeOnPrepare));
        assert_eq!(known_vote(false, Some(true)), None);
        std::thread::spawn(|| assert!(known_vote(false, Some(false)).is_some())).join().unwrap();
        bugs::set(None);
        assert!(known_vote(false, Some(false)).is_some());
    }
}
