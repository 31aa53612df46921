//! Deliberate bugs, to show that the simulation's oracle catches a broken rule in the very code
//! the servers run. Each switch sits inside a protocol rule ([`crate::engine`], [`crate::ring`])
//! and is read through [`on`].
//!
//! The switches exist only in test builds and with the `sim` feature (the operator tool's
//! `interbank reliability` runs the simulation): otherwise [`on`] is a constant `false` and the
//! rules compile as if the switches were not there. A switch is set per thread, so seeds run on
//! parallel test threads never see each other's bug.

/// A rule broken on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The coordinator takes silence for a yes.
    CommitOnSilence,
    /// A coordinator answers "abort" to an in-doubt participant without recording it.
    UnrecordedPresumedAbort,
    /// A bank accepts a token it already accepted.
    AcceptRepeatedTokens,
    /// A participant evaluates a repeated prepare afresh, ignoring the outcome it recorded for
    /// the attempt: a duplicate prepare that arrives after the commit holds again, and its
    /// in-doubt resolution applies the commit twice.
    IgnoreOutcomeOnPrepare,
    /// A participant applies a commit or rollback from any member bank, not only from the
    /// attempt's coordinator (issue 13, defect 2): a hostile member half-applies another bank's
    /// package.
    FinishByAnyBank,
    /// A participant checks a credit against the posted balance alone, not with the credits
    /// already promised to the account (issue 13, defect 5): two credits that each fit are both
    /// voted for, and the second commit cannot be applied.
    UnreservedCredits,
    /// A round's commits are not conditioned on the ring state its replica saw (issue 13,
    /// defect 3): a replica whose lease ran out mid-round still decides after another replica
    /// took the token over — two coordinators of one bank at once.
    UnfencedRounds,
}

#[cfg(any(test, feature = "sim"))]
mod switch {
    use super::Bug;
    use std::cell::Cell;

    thread_local! {
        static ACTIVE: Cell<Option<Bug>> = const { Cell::new(None) };
    }

    /// Turns `bug` on for this thread (`None`: every rule as written).
    pub fn set(bug: Option<Bug>) {
        ACTIVE.with(|a| a.set(bug));
    }

    /// Whether `bug` is on in this thread.
    pub fn on(bug: Bug) -> bool {
        ACTIVE.with(|a| a.get() == Some(bug))
    }
}

#[cfg(not(any(test, feature = "sim")))]
mod switch {
    use super::Bug;

    /// Always false outside tests and the simulation: the rule runs as written.
    #[inline(always)]
    pub const fn on(_: Bug) -> bool {
        false
    }
}

pub use switch::on;
#[cfg(any(test, feature = "sim"))]
pub use switch::set;
