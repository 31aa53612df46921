//! Settings outside their limits are refused at start with a message naming the flag, never
//! clamped into a replica other than the one its operator configured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts a replica; whether it exited at once (a refusal) and what it said. One that is still
/// running after `START_WAIT` accepted its settings: it is killed and counted as started.
fn start_with(operator_key: &str, extra: &[&str]) -> (bool, String) {
    const START_WAIT: Duration = Duration::from_secs(10);
    let mut child = Command::new(env!("CARGO_BIN_EXE_business"))
        .args(["--listen", "127.0.0.1:0", "--bank-id", "1", "--business-id", "11"])
        .args(["--dataserver", "http://127.0.0.1:9"])
        .env("BUSINESS_DATASERVER_KEY", "k")
        .env("BUSINESS_OPERATOR_KEY", operator_key)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + START_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > until {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.is_some_and(|s| s.success()) || status.is_none(), stderr)
}

#[test]
fn out_of_range_settings_are_refused_at_start() {
    for (flag, value) in [
        ("--batch-accounts-max", "5"),
        ("--batch-accounts-max", "100000"),
        ("--batch-packages-max", "0"),
        ("--batch-packages-max", "5000"),
        ("--batch-packages-max", "129"),
        ("--tick-ms", "1"),
        ("--hashing-concurrent-max", "0"),
        ("--round-linger-ms", "2000"),
    ] {
        let (ok, stderr) = start_with("operator-key-ok", &[flag, value]);
        assert!(!ok, "{flag} {value} was accepted");
        assert!(stderr.contains(flag), "{flag} {value}: the refusal names it: {stderr}");
    }
    let (ok, stderr) = start_with("short", &[]);
    assert!(!ok && stderr.contains("operator key"), "a short operator key: {stderr}");
}

/// A secret on a command line is visible to every user of the machine (`ps`): refused, naming
/// the flag (fails with the check removed: the replica starts).
#[test]
fn secrets_on_the_command_line_are_refused() {
    for flag in ["--operator-key", "--dataserver-key"] {
        let (ok, stderr) = start_with("operator-key-ok", &[flag, "operator-key-ok"]);
        assert!(!ok && stderr.contains(flag) && stderr.contains("environment"), "{flag}: {stderr}");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_business"))
        .args(["--listen", "127.0.0.1:0", "--bank-id", "1", "--business-id", "11"])
        .args(["--dataserver", "http://127.0.0.1:9", "--operator-key=operator-key-ok"])
        .env("BUSINESS_DATASERVER_KEY", "k")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(!child.wait().unwrap().success(), "the --flag=value form too");
}
