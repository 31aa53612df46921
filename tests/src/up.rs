//! `interbank up`: the local network on this machine: each bank's data server and two business
//! replicas (the UI joins with its issue). Ctrl-C (or SIGTERM) stops everything, replicas first.

use std::path::PathBuf;

use std::process::{Child, Command};

use dataserver::testkit::{DataServerProcess, SpawnOptions, listening_addr, spawn, spawn_command};
use shared::BusinessId;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Banks in the network.
    #[arg(long, default_value_t = 3)]
    pub banks: u32,
    /// Where each bank keeps its data (one folder per bank); it persists between runs.
    #[arg(long, default_value = ".data", env = "INTERBANK_DATA")]
    pub data: PathBuf,
    /// Delete the data folder first.
    #[arg(long)]
    pub fresh: bool,
    /// Bank N's data server listens on 127.0.0.1:(base + N).
    #[arg(long, default_value_t = 4000, env = "INTERBANK_DATASERVER_PORT_BASE")]
    pub dataserver_port_base: u16,
    /// Bank N's replicas listen on 127.0.0.1:(base + N) and 127.0.0.1:(base + 100 + N).
    #[arg(long, default_value_t = 3000, env = "INTERBANK_BUSINESS_PORT_BASE")]
    pub business_port_base: u16,
    /// The operator (teller) API key of every bank.
    #[arg(
        long,
        env = "INTERBANK_OPERATOR_KEY",
        default_value = "dev-only-insecure-operator-key",
        hide_env_values = true
    )]
    pub operator_key: String,
    /// No browser app (accepted now; the app arrives with its issue).
    #[arg(long)]
    pub no_ui: bool,
}

/// DEVELOPMENT SECRET — for the local network only. Business server `b` of bank `n` has id
/// `10 n + b` and this key; a real deployment passes its own keys to every process.
pub fn dev_key(business: BusinessId) -> String {
    format!("dev-only-insecure-key-{business}")
}

/// Business ids of bank `n`'s two replicas.
pub fn business_ids(bank: u32) -> Result<[BusinessId; 2], String> {
    let id = |b| BusinessId::new(bank * 10 + b).map_err(|e| e.to_string());
    Ok([id(1)?, id(2)?])
}

pub async fn run(args: Args) -> Result<(), String> {
    if args.fresh && args.data.exists() {
        std::fs::remove_dir_all(&args.data).map_err(|e| format!("cannot remove {}: {e}", args.data.display()))?;
    }
    let bin = crate::procs::binary("dataserver")?;
    let mut procs: Vec<(u32, DataServerProcess)> = Vec::new();
    for bank in 1..=args.banks {
        let keys = business_ids(bank)?.iter().map(|b| (*b, dev_key(*b))).collect();
        let port = port_of(args.dataserver_port_base, bank)?;
        let mut opts = SpawnOptions::new(&bin, args.data.join(format!("bank{bank}")), keys);
        opts.listen = format!("127.0.0.1:{port}");
        let p = spawn(&opts).map_err(|e| format!("bank {bank}'s data server: {e}"))?;
        procs.push((bank, p));
    }
    let business_bin = crate::procs::binary("business")?;
    let mut replicas: Vec<(u32, Child, String)> = Vec::new();
    for (bank, p) in &procs {
        for (i, (b, k)) in p.keys.iter().enumerate() {
            let port = port_of(args.business_port_base, *bank + 100 * u32::try_from(i).map_err(|e| e.to_string())?)?;
            let mut cmd = Command::new(&business_bin);
            cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--bank-id", &bank.to_string()])
                .args(["--business-id", &b.to_string(), "--dataserver", &p.url(), "--dataserver-key", k])
                .args(["--operator-key", &args.operator_key]);
            let (child, line) = spawn_command(cmd).map_err(|e| format!("bank {bank}'s replica {b}: {e}"))?;
            let addr = listening_addr(&line).ok_or_else(|| format!("replica {b} printed {line:?}"))?;
            replicas.push((*bank, child, format!("http://{addr}")));
        }
    }
    println!("InterBank local network ({} banks), data in {}", args.banks, args.data.display());
    for (bank, p) in &procs {
        println!("  bank {bank}: data server {}  (boot epoch {})", p.url(), p.boot_epoch);
        for (_, _, url) in replicas.iter().filter(|r| r.0 == *bank) {
            println!("          business replica {url}");
        }
    }
    println!("  operator key: {}   <- DEVELOPMENT SECRET unless set by INTERBANK_OPERATOR_KEY", args.operator_key);
    println!("  data server keys: dev-only-insecure-key-<business id>   <- DEVELOPMENT SECRETS");
    println!("Ctrl-C stops everything.");
    wait_for_stop().await;
    for (bank, mut child, url) in replicas {
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        match child.wait() {
            Ok(s) if s.success() => println!("bank {bank}: replica {url} stopped"),
            _ => println!("bank {bank}: replica {url} exited with an error"),
        }
    }
    for (bank, mut p) in procs {
        match p.terminate() {
            Ok(true) => println!("bank {bank}: data server stopped"),
            Ok(false) => println!("bank {bank}: data server exited with an error"),
            Err(e) => println!("bank {bank}: could not stop the data server: {e}"),
        }
    }
    Ok(())
}

fn port_of(base: u16, offset: u32) -> Result<u16, String> {
    u16::try_from(offset).ok().and_then(|o| base.checked_add(o)).ok_or_else(|| "port out of range".to_string())
}

async fn wait_for_stop() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
