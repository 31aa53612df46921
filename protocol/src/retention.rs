//! How long the records of two-phase commit are kept (issue 13, defect 7: decisions and
//! outcomes, one per attempt per bank, were kept for ever).
//!
//! Every attempt carries its package's deadline in its prepare. Past the deadline plus the
//! network's clock-skew bound a participant refuses to prepare it, and a coordinator no longer
//! records a commit for it. From then on its tombstone (the outcome) guards nothing, and once
//! every bank acknowledged its decision nobody asks for that either. Both are deleted a retention
//! margin later (the *horizon*). Pure rules here; [`super::coordinator::collect_garbage`] applies
//! them.

/// The longest package deadline a bank may configure (`--package-deadline-ms`), network-wide:
/// a prepare announcing a deadline further ahead than this is refused, so a coordinator cannot
/// make another bank keep its records for ever.
pub const PACKAGE_DEADLINE_MS_MAX: u64 = 24 * 3_600_000;

/// The network's timing assumptions, from the replica's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The most two banks' clocks may disagree (`--clock-skew-ms-max`; the same at every bank).
    pub clock_skew_ms_max: u64,
    /// Kept this long past the moment nothing can need them (`--records-retain-ms`).
    pub retain_ms: u64,
}

impl Retention {
    /// Whether a prepare of an attempt due by `deadline_ms` (its coordinator's clock) comes too
    /// late at `now_ms` (this bank's clock).
    pub fn too_late(&self, deadline_ms: u64, now_ms: u64) -> bool {
        now_ms > deadline_ms.saturating_add(self.clock_skew_ms_max)
    }

    /// Whether a deadline lies further ahead than any bank may set.
    pub fn too_far(&self, deadline_ms: u64, now_ms: u64) -> bool {
        deadline_ms > now_ms.saturating_add(PACKAGE_DEADLINE_MS_MAX).saturating_add(self.clock_skew_ms_max)
    }

    /// When the records of an attempt due by `deadline_ms` may go.
    pub fn forget_after(&self, deadline_ms: u64) -> u64 {
        deadline_ms.saturating_add(self.clock_skew_ms_max).saturating_add(self.retain_ms)
    }

    /// The same, for an attempt whose deadline is not known here at `now_ms`: it cannot be later
    /// than a package submitted now, with the longest deadline allowed.
    pub fn forget_after_unknown(&self, now_ms: u64) -> u64 {
        self.forget_after(now_ms.saturating_add(PACKAGE_DEADLINE_MS_MAX))
    }

    /// Whether a record to be forgotten after `forget_after_ms` may go at `now_ms` (0: kept; a
    /// record written before this rule).
    pub fn forgotten(forget_after_ms: u64, now_ms: u64) -> bool {
        forget_after_ms != 0 && now_ms > forget_after_ms
    }

    /// Whether a bank that knows nothing of an attempt it must have prepared may have forgotten
    /// it already (its clock is at most the skew ahead of `now_ms`).
    pub fn may_have_forgotten(&self, forget_after_ms: u64, now_ms: u64) -> bool {
        Retention::forgotten(forget_after_ms, now_ms.saturating_add(self.clock_skew_ms_max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_outlive_every_use_of_them() {
        let r = Retention { clock_skew_ms_max: 1_000, retain_ms: 60_000 };
        let deadline = 100_000;
        assert!(!r.too_late(deadline, deadline + 1_000), "within the skew: still prepared");
        assert!(r.too_late(deadline, deadline + 1_001));
        // Forgotten only after the last prepare could land, plus the margin.
        assert_eq!(r.forget_after(deadline), 161_000);
        assert!(!Retention::forgotten(r.forget_after(deadline), 161_000));
        assert!(Retention::forgotten(r.forget_after(deadline), 161_001));
        assert!(!Retention::forgotten(0, u64::MAX), "0: kept");
        // A deadline not known here is at most the longest allowed.
        assert!(r.forget_after_unknown(5_000) >= r.forget_after(5_000 + PACKAGE_DEADLINE_MS_MAX));
        assert!(r.too_far(5_000 + PACKAGE_DEADLINE_MS_MAX + 1_001, 5_000));
        assert!(!r.too_far(5_000 + PACKAGE_DEADLINE_MS_MAX, 5_000));
        assert!(r.may_have_forgotten(161_001, 160_002) && !r.may_have_forgotten(161_001, 160_000));
        // No overflow at the ends of the range.
        assert_eq!(r.forget_after(u64::MAX), u64::MAX);
        assert!(!r.too_late(u64::MAX, u64::MAX));
    }
}
