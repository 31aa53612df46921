//! Workspace-wide Architecture Invariants that the compiler alone does not keep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every dependency name (normal and dev) in a member's manifest.
fn dependencies(member: &str) -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join(member).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    ["dependencies", "dev-dependencies"]
        .iter()
        .filter_map(|k| manifest.get(*k).and_then(toml::Value::as_table))
        .flat_map(|t| t.keys().cloned())
        .collect()
}

const MEMBERS: &[&str] =
    &["shared", "pki", "dataserver-api", "dataserver", "protocol", "business", "frontend", "tools", "tests"];

/// Architecture Invariant: the settlement protocol does no I/O. The `protocol` crate's
/// dependencies are the vocabulary, serialisation, error derives, the OpenAPI derives and (for
/// the simulation) a seeded random source: nothing that reaches a socket, a file, a runtime or
/// a clock, so the rules can only take what happens as values.
#[test]
fn the_protocol_crate_does_no_io() {
    let allowed = ["shared", "serde", "thiserror", "utoipa", "rand", "proptest"];
    let deps = dependencies("protocol");
    assert!(deps.contains(&"shared".to_string()), "the guard reads the real manifest: {deps:?}");
    for d in &deps {
        assert!(allowed.contains(&d.as_str()), "protocol depends on {d}: the rules would reach I/O");
    }
    // Nor does its code reach the standard library's I/O, threads aside (the simulation's
    // tests run seeds on every core, as many as `SIM_SEEDS` says).
    for f in harness::rust_files(&workspace().join("protocol/src")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.replace("std::env::var(\"SIM_SEEDS\")", "");
        for io in ["std::fs", "std::net", "std::io", "SystemTime", "Instant::now", "std::env"] {
            assert!(!code.contains(io), "{}: uses {io}", f.display());
        }
    }
}

/// Architecture Invariant: no server can issue certificates. Only the launcher's harness turns
/// on `pki/issue` (rcgen, a local CA); the servers only load identities they were given.
#[test]
fn only_the_launcher_issues_certificates() {
    for member in ["business", "dataserver", "dataserver-api", "shared"] {
        let text = std::fs::read_to_string(workspace().join(member).join("Cargo.toml")).unwrap();
        assert!(!text.contains("rcgen") && !text.contains("\"issue\""), "{member} can issue certificates");
    }
    let harness = std::fs::read_to_string(workspace().join("tests/Cargo.toml")).unwrap();
    assert!(harness.contains("\"issue\""), "the guard looks at the real manifests");
}

/// Architecture Invariant: secrets reach servers through the environment, never a command line
/// (the servers refuse them there). No tool or harness source passes one as a flag.
#[test]
fn secrets_are_never_passed_on_a_command_line() {
    let mut files = Vec::new();
    for dir in ["tools/src", "tests/src"] {
        files.extend(harness::rust_files(&workspace().join(dir)));
    }
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for flag in ["\"--operator-key\"", "\"--dataserver-key\"", "\"--key\""] {
            assert!(!text.contains(flag), "{}: passes {flag} on a command line", f.display());
        }
    }
    assert!(files.len() > 10, "found the sources");
}

/// Architecture Invariant: every HTTP client is built through `pki::http`, which installs the
/// one TLS provider first (reqwest brings none; a client built without it panics).
#[test]
fn every_http_client_starts_at_pki() {
    let mut files = Vec::new();
    for member in MEMBERS.iter().filter(|m| **m != "pki") {
        for dir in ["src", "tests"] {
            let d = workspace().join(member).join(dir);
            if d.is_dir() {
                files.extend(harness::rust_files(&d));
            }
        }
    }
    let this = workspace().join("tests/tests/tidy.rs");
    for f in files.iter().filter(|f| **f != this) {
        let text = std::fs::read_to_string(f).unwrap();
        for bad in ["reqwest::Client::new()", "reqwest::Client::builder()"] {
            assert!(!text.contains(bad), "{}: {bad}; use pki::http_client() or pki::http()", f.display());
        }
    }
}

/// Architecture Invariant: only the data server touches storage. No other crate depends on the
/// `dataserver` crate (they use `dataserver-api`), and only it names the storage engine.
#[test]
fn only_the_data_server_touches_storage() {
    let root: toml::Table = toml::from_str(&std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap()).unwrap();
    let listed: Vec<&str> =
        root["workspace"]["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(listed, MEMBERS, "a member was added: say here which storage rule it follows");
    for member in MEMBERS.iter().filter(|m| **m != "dataserver") {
        let deps = dependencies(member);
        for forbidden in ["dataserver", "redb", "postgres", "r2d2_postgres", "tokio-postgres"] {
            assert!(!deps.iter().any(|d| d == forbidden), "{member} depends on {forbidden}");
        }
    }
    for store in ["redb", "postgres"] {
        assert!(dependencies("dataserver").iter().any(|d| d == store), "the guard looks at the real manifests");
    }
}

/// Architecture Invariant: error codes are a closed enum per API, never matched as strings.
/// Outside the two files that define them, no source file spells a code as a string literal.
#[test]
fn error_codes_are_never_spelt_as_strings() {
    let definitions = [workspace().join("shared/src/error.rs"), workspace().join("dataserver-api/src/lib.rs")];
    let codes: Vec<&str> = shared::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(dataserver_api::ErrorCode::ALL.iter().map(|c| c.as_str()))
        .collect();
    let mut files = Vec::new();
    for member in MEMBERS {
        for dir in ["src", "tests"] {
            let d = workspace().join(member).join(dir);
            if d.is_dir() {
                files.extend(harness::rust_files(&d));
            }
        }
    }
    assert!(files.len() > 50, "found the sources ({})", files.len());
    let this = workspace().join("tests/tests/tidy.rs");
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !definitions.contains(f) && **f != this) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for code in &codes {
                if line.contains(&format!("\"{code}\"")) {
                    found.push(format!("{}:{}: \"{code}\"", file.display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "use the ErrorCode enums, not strings:\n{}", found.join("\n"));
}

/// Architecture Invariant: the simulation runs the servers' protocol code, not a copy of it. It
/// reaches the rules that decide (a round's decisions, a token's acceptance, the tick, presumed
/// abort, a participant's known attempts and who may end them) only through `engine` and `ring`, which the servers'
/// executors call too; it never calls the decision rule underneath them itself.
#[test]
fn the_simulation_drives_the_servers_engine() {
    let read = |f: &str| std::fs::read_to_string(workspace().join("business/src/interbank").join(f)).unwrap();
    let sim = std::fs::read_to_string(workspace().join("protocol/src/sim.rs")).unwrap();
    let code: String = sim.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    let outside_tests = code.split("mod tests").next().unwrap_or("");
    for copy in ["settle::decide(", "ring::orphaned(", "Bug::"] {
        assert!(!outside_tests.contains(copy), "sim.rs calls {copy} itself: a second copy of a rule");
    }
    for (executor, uses) in [
        (
            "coordinator.rs",
            &["Round::select(", "Round::start(", ".decide(", "engine::inquiry(", "ring::round_fence("][..],
        ),
        ("participant.rs", &["engine::known_vote(", "engine::ending(", "engine::may_finish("][..]),
        ("worker.rs", &["ring::step(", "ring::from_predecessor(", "ring::skip_in_turn("][..]),
    ] {
        let text = read(executor);
        for u in uses {
            assert!(text.contains(u), "{executor} no longer calls {u}: the simulation would test other code");
        }
    }
    for u in [
        "engine::Round::select(",
        "engine::Round::start(",
        "engine::known_vote(",
        "engine::ending(",
        "engine::may_finish(",
        "settle::vote(",
        "ring::step(",
        "ring::round_fence(",
        "ring::from_predecessor(",
        "ring::skip_in_turn(",
    ] {
        assert!(sim.contains(u), "sim.rs no longer drives {u}");
    }
}
