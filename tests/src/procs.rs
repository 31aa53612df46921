//! Finding and starting the project's own binaries.

use std::path::PathBuf;

/// The binary `name` built beside the running executable (same cargo profile).
pub fn binary(name: &str) -> Result<PathBuf, String> {
    dataserver::testkit::sibling_binary(name).ok_or_else(|| {
        format!(
            "the `{name}` binary is not built next to this tool; run `cargo build --release --workspace --bins` first"
        )
    })
}

/// Resident set size of a process, in bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
