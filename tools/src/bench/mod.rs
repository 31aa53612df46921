//! Benchmarks that print figures (never timed tests): the data server alone, transfers through
//! business replicas, and interbank packages.

// Figures for people are floats; money in this module is never a float.
#![allow(clippy::float_arithmetic)]

pub mod dataserver;
pub mod flood;
pub mod packages;
pub mod transfer;

/// Microseconds of CPU (user + system, all threads) per unit of work (a transfer, a settled
/// package), by process: what a benchmark's figure costs, which on a machine whose speed swings
/// by the hour compares two binaries better than their throughput does.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CpuPer {
    /// The data servers together.
    pub dataserver: f64,
    /// The business replicas together.
    pub replicas: f64,
    /// This process: the connections that offer the load.
    pub load_generator: f64,
}

/// CPU used so far, in microseconds: the data servers together, the replicas together and this
/// process (`None` off Linux, or when one of them has exited).
pub(crate) fn cpu_now(dataservers: &[u32], replicas: &[u32]) -> Option<[u64; 3]> {
    let sum = |pids: &[u32]| pids.iter().map(|p| harness::process::cpu_us(*p)).sum::<Option<u64>>();
    Some([sum(dataservers)?, sum(replicas)?, harness::process::cpu_us(std::process::id())?])
}

impl CpuPer {
    /// What was used between two [`cpu_now`] readings, per unit of `units` (none: per one).
    pub(crate) fn between(before: [u64; 3], after: [u64; 3], units: u64) -> CpuPer {
        let per = |i: usize| after[i].saturating_sub(before[i]) as f64 / units.max(1) as f64;
        CpuPer { dataserver: per(0), replicas: per(1), load_generator: per(2) }
    }

    pub(crate) fn total(&self) -> f64 {
        self.dataserver + self.replicas + self.load_generator
    }
}

/// A value of a Prometheus text exposition (0 when absent).
pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_read_for_this_process_and_divided_per_unit() {
        let me = [std::process::id()];
        let Some(before) = cpu_now(&me, &me) else { return }; // not Linux: nothing to read
        // Work until the kernel's 10 ms ticks have counted some of it.
        let mut x = 0u64;
        let after = loop {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let now = cpu_now(&me, &me).expect("still running");
            if now[2] > before[2] {
                break now;
            }
        };
        let per = CpuPer::between(before, after, 4);
        assert!(per.load_generator > 0.0);
        assert_eq!(per.load_generator * 4.0, (after[2] - before[2]) as f64);
        let known = CpuPer::between([0, 0, 0], [10, 20, 30], 0);
        assert_eq!(known, CpuPer { dataserver: 10.0, replicas: 20.0, load_generator: 30.0 });
        assert_eq!(known.total(), 60.0);
        assert_eq!(cpu_now(&[u32::MAX], &me), None, "a process that is not there is not counted as idle");
    }
}
