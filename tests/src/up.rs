//! `interbank up`: the local network on this machine. Today it starts each bank's data server;
//! the business replicas and the UI join as they are built. Ctrl-C (or SIGTERM) stops everything.

use std::path::PathBuf;

use dataserver::testkit::{DataServerProcess, SpawnOptions, spawn};
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
        let port = args
            .dataserver_port_base
            .checked_add(u16::try_from(bank).map_err(|e| e.to_string())?)
            .ok_or("port out of range")?;
        let mut opts = SpawnOptions::new(&bin, args.data.join(format!("bank{bank}")), keys);
        opts.listen = format!("127.0.0.1:{port}");
        let p = spawn(&opts).map_err(|e| format!("bank {bank}'s data server: {e}"))?;
        procs.push((bank, p));
    }
    println!("InterBank local network ({} banks), data in {}", args.banks, args.data.display());
    for (bank, p) in &procs {
        println!("  bank {bank}: data server {}  (boot epoch {})", p.url(), p.boot_epoch);
        for (b, k) in &p.keys {
            println!("          business {b} key: {k}   <- DEVELOPMENT SECRET");
        }
    }
    println!("Ctrl-C stops everything.");
    wait_for_stop().await;
    for (bank, mut p) in procs {
        match p.terminate() {
            Ok(true) => println!("bank {bank}: data server stopped"),
            Ok(false) => println!("bank {bank}: data server exited with an error"),
            Err(e) => println!("bank {bank}: could not stop the data server: {e}"),
        }
    }
    Ok(())
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
