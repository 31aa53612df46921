//! `interbank up`: the local network on this machine: each bank's data server and two business
//! replicas (the UI joins with its issue). Ctrl-C (or SIGTERM) stops everything, replicas first.

use std::path::PathBuf;

use crate::cluster::{Cluster, Spec};

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
    /// Do not build and serve the browser app.
    #[arg(long)]
    pub no_ui: bool,
}

pub use crate::cluster::{business_ids, dev_key};

pub async fn run(args: Args) -> Result<(), String> {
    if args.fresh && args.data.exists() {
        std::fs::remove_dir_all(&args.data).map_err(|e| format!("cannot remove {}: {e}", args.data.display()))?;
    }
    let mut ds_ports = Vec::new();
    let mut business_ports = Vec::new();
    for bank in 1..=args.banks {
        ds_ports.push(port_of(args.dataserver_port_base, bank)?);
        business_ports.push(
            vec![port_of(args.business_port_base, bank)?, port_of(args.business_port_base, bank + 100)?]
                .into_boxed_slice(),
        );
    }
    let spec = Spec {
        banks: args.banks,
        replicas: 2,
        data: args.data.clone(),
        dataserver_port: Some(ds_ports.into_boxed_slice()),
        business_port: Some(business_ports.into_boxed_slice()),
        operator_key: args.operator_key.clone(),
        business_args: vec![],
    };
    let mut cluster = Cluster::start(&spec)?;
    // The browser app, built and served by trunk (Trunk.toml at the repository root).
    let mut ui = if args.no_ui {
        None
    } else {
        let child = std::process::Command::new("trunk")
            .args(["serve", "--release"])
            .env("TRUNK_SKIP_VERSION_CHECK", "true")
            .spawn()
            .map_err(|e| format!("cannot start trunk (scripts/setup.sh installs it; or pass --no-ui): {e}"))?;
        Some(child)
    };
    println!("InterBank local network ({} banks), data in {}", args.banks, args.data.display());
    for bank in &cluster.banks {
        println!("  bank {}: data server {}", bank.id, bank.ds_url());
        for url in bank.urls() {
            println!("          business replica {url}");
        }
    }
    println!("  network file: {}", cluster.network_file.display());
    println!("  operator key: {}   <- DEVELOPMENT SECRET unless set by INTERBANK_OPERATOR_KEY", args.operator_key);
    println!("  data server keys and bank secrets: dev-only-insecure-...   <- DEVELOPMENT SECRETS");
    if ui.is_some() {
        println!("  browser app: http://127.0.0.1:8080 (trunk builds it first; the banks are listed by name)");
    }
    println!("Ctrl-C stops everything.");
    wait_for_stop().await;
    if let Some(mut child) = ui.take() {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let _ = child.wait();
        println!("browser app stopped");
    }
    for line in cluster.stop() {
        println!("{line}");
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
