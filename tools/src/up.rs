//! `interbank up`: the local network on this machine: each bank's data server and two business
//! replicas (the UI joins with its issue). Ctrl-C (or SIGTERM) stops everything, replicas first.

use std::path::PathBuf;

use harness::cluster::{Cluster, Spec};

use crate::Error;

/// Flags and environment variables win over the configuration file, which wins over defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// The configuration file (TOML); missing is fine (defaults apply).
    #[arg(long, default_value = "interbank.toml", env = "INTERBANK_CONFIG")]
    pub config: PathBuf,
    /// Banks in the network [default: 3].
    #[arg(long, env = "INTERBANK_BANKS")]
    pub banks: Option<u32>,
    /// Where each bank keeps its data (one folder per bank); it persists between runs [default: .data].
    #[arg(long, env = "INTERBANK_DATA")]
    pub data: Option<PathBuf>,
    /// Delete the data folder first.
    #[arg(long)]
    pub fresh: bool,
    /// Keep each bank's state in PostgreSQL: a local cluster in the data folder (Debian's
    /// `postgresql`, which `scripts/setup.sh` installs), one database per bank, and two data
    /// servers per bank, an active one and a standby that takes over when it stops.
    #[arg(long, env = "INTERBANK_POSTGRES")]
    pub postgres: bool,
    /// Bank N's data server listens on 127.0.0.1:(base + N) [default: 4000].
    #[arg(long, env = "INTERBANK_DATASERVER_PORT_BASE")]
    pub dataserver_port_base: Option<u16>,
    /// Bank N's replicas listen on 127.0.0.1:(base + N) and 127.0.0.1:(base + 100 + N), their interbank (mutual TLS) listeners on base + 200 + N and base + 300 + N [default: 3000].
    #[arg(long, env = "INTERBANK_BUSINESS_PORT_BASE")]
    pub business_port_base: Option<u16>,
    /// The operator (teller) API key of every bank [default: a development key].
    #[arg(long, env = "INTERBANK_OPERATOR_KEY", hide_env_values = true)]
    pub operator_key: Option<String>,
    /// Every data-server key starts with this [default: dev-only-insecure-].
    #[arg(long, env = "INTERBANK_SECRET_PREFIX", hide_env_values = true)]
    pub secret_prefix: Option<String>,
    /// Do not build and serve the browser app.
    #[arg(long)]
    pub no_ui: bool,
    /// The browser app's port [default: 8080].
    #[arg(long, env = "INTERBANK_UI_PORT")]
    pub ui_port: Option<u16>,
}

/// `interbank.toml`: the local network's configuration.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub banks: Option<u32>,
    pub data: Option<PathBuf>,
    pub dataserver_port_base: Option<u16>,
    pub business_port_base: Option<u16>,
    /// DEVELOPMENT SECRET unless replaced.
    pub operator_key: Option<String>,
    /// Prefix of the data-server keys and bank secrets. DEVELOPMENT SECRET unless replaced.
    pub secret_prefix: Option<String>,
    pub ui: Option<bool>,
    pub ui_port: Option<u16>,
    /// Lease and timeout lengths passed to every business replica (flag name → value), e.g.
    /// `lease_ms = 5000`, `package_deadline_ms = 30000`, `token_lost_ms = 1500`.
    #[serde(default)]
    pub business: std::collections::BTreeMap<String, u64>,
}

/// What `up` runs with, after flags, environment, file and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub banks: u32,
    pub data: PathBuf,
    pub dataserver_port_base: u16,
    pub business_port_base: u16,
    pub operator_key: String,
    pub secret_prefix: String,
    pub ui: bool,
    pub ui_port: u16,
    pub business_args: Vec<String>,
}

/// The business flags the file may set.
const BUSINESS_TIMINGS: &[&str] = &[
    "lease_ms",
    "lock_wait_ms",
    "attempts_max",
    "session_ttl_s",
    "token_lost_ms",
    "hold_ms_max",
    "idle_hold_ms",
    "ring_lease_ms",
    "tick_ms",
    "in_doubt_ms",
    "package_deadline_ms",
    "peer_timeout_ms",
    "batch_packages_max",
    "batch_accounts_max",
];

pub fn resolve(args: &Args, file: ConfigFile) -> crate::Result<Resolved> {
    let mut business_args = Vec::new();
    for (k, v) in &file.business {
        if !BUSINESS_TIMINGS.contains(&k.as_str()) {
            return Err(Error::usage(format!(
                "[business] {k}: not a setting (one of {})",
                BUSINESS_TIMINGS.join(", ")
            )));
        }
        business_args.push(format!("--{}", k.replace('_', "-")));
        business_args.push(v.to_string());
    }
    Ok(Resolved {
        banks: args.banks.or(file.banks).unwrap_or(3),
        data: args.data.clone().or(file.data).unwrap_or_else(|| PathBuf::from(".data")),
        dataserver_port_base: args.dataserver_port_base.or(file.dataserver_port_base).unwrap_or(4000),
        business_port_base: args.business_port_base.or(file.business_port_base).unwrap_or(3000),
        operator_key: args
            .operator_key
            .clone()
            .or(file.operator_key)
            .unwrap_or_else(|| "dev-only-insecure-operator-key".into()),
        secret_prefix: args
            .secret_prefix
            .clone()
            .or(file.secret_prefix)
            .unwrap_or_else(|| harness::cluster::DEV_SECRET_PREFIX.into()),
        ui: !args.no_ui && file.ui.unwrap_or(true),
        ui_port: args.ui_port.or(file.ui_port).unwrap_or(8080),
        business_args,
    })
}

fn read_config(path: &std::path::Path) -> crate::Result<ConfigFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| Error::file(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(Error::file(path, e)),
    }
}

pub async fn run(args: Args) -> crate::Result<()> {
    let (fresh, postgres) = (args.fresh, args.postgres);
    let args = resolve(&args, read_config(&args.config)?)?;
    if fresh && args.data.exists() {
        std::fs::remove_dir_all(&args.data).map_err(|e| Error::file(&args.data, format!("cannot remove: {e}")))?;
    }
    let mut ds_ports = Vec::new();
    let mut standby_ports = Vec::new();
    let mut business_ports = Vec::new();
    let mut interbank_ports = Vec::new();
    for bank in 1..=args.banks {
        ds_ports.push(port_of(args.dataserver_port_base, bank)?);
        // With --postgres, each bank's standby data server 100 above.
        standby_ports.push(port_of(args.dataserver_port_base, bank + 100)?);
        business_ports.push(
            vec![port_of(args.business_port_base, bank)?, port_of(args.business_port_base, bank + 100)?]
                .into_boxed_slice(),
        );
        // Peers reach the replicas on their own mutual-TLS listeners, 200 and 300 above.
        interbank_ports.push(
            vec![port_of(args.business_port_base, bank + 200)?, port_of(args.business_port_base, bank + 300)?]
                .into_boxed_slice(),
        );
    }
    let spec = Spec {
        banks: args.banks,
        replicas: 2,
        data: args.data.clone(),
        dataserver_port: Some(ds_ports.into_boxed_slice()),
        standby_dataserver_port: Some(standby_ports.into_boxed_slice()),
        business_port: Some(business_ports.into_boxed_slice()),
        interbank_port: Some(interbank_ports.into_boxed_slice()),
        operator_key: args.operator_key.clone(),
        // The replicas accept calls from the app's origin.
        business_args: [
            args.business_args.clone(),
            vec!["--cors-origins".into(), format!("http://127.0.0.1:{p},http://localhost:{p}", p = args.ui_port)],
        ]
        .concat(),
        secret_prefix: args.secret_prefix.clone(),
        log: None,
        peer_proxies: false,
        customer_deposits: true,
        signups_per_address_max: harness::cluster::LOCAL_SIGNUPS_PER_ADDRESS_MAX,
        postgres,
    };
    let mut cluster = Cluster::start(&spec)?;
    cluster.wait_ready(READY_WITHIN).await?;
    // The browser app, built and served by trunk (Trunk.toml at the repository root).
    let mut ui = if !args.ui {
        None
    } else {
        let child = std::process::Command::new("trunk")
            .args(["serve", "--release", "--port", &args.ui_port.to_string()])
            .env("TRUNK_SKIP_VERSION_CHECK", "true")
            .spawn()
            .map_err(|e| {
                Error::run(format!("cannot start trunk (scripts/setup.sh installs it; or pass --no-ui): {e}"))
            })?;
        Some(child)
    };
    println!("InterBank local network ({} banks), data in {}", args.banks, args.data.display());
    for bank in &cluster.banks {
        match bank.standby_addr {
            Some(s) => {
                println!("  bank {}: data servers http://{} (active), http://{s} (standby)", bank.id, bank.ds_addr)
            }
            None => println!("  bank {}: data server {}", bank.id, bank.ds_url()),
        }
        for r in &bank.replicas {
            println!("          business replica {} (peers: {})", r.url(), r.interbank_url());
        }
    }
    println!("  network file: {}", cluster.network_file.display());
    println!("  operator key: {}   <- DEVELOPMENT SECRET unless set by INTERBANK_OPERATOR_KEY", args.operator_key);
    println!("  data server keys: {}...   <- DEVELOPMENT SECRETS unless set", args.secret_prefix);
    println!(
        "  banks prove who they are by certificate: CA {}/ca.pem, keys in each bank{{n}}/identity (0600)",
        args.data.display()
    );
    if ui.is_some() {
        println!(
            "  browser app: http://127.0.0.1:{} (trunk builds it first; the banks are listed by name)",
            args.ui_port
        );
    }
    println!("ready: every bank answers its peers. Ctrl-C stops everything.");
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

/// How long a started network may take until every bank answers every other.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

fn port_of(base: u16, offset: u32) -> crate::Result<u16> {
    u16::try_from(offset)
        .ok()
        .and_then(|o| base.checked_add(o))
        .ok_or_else(|| Error::usage(format!("port {base} + {offset} is out of range")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_environment_win_over_the_file_which_wins_over_defaults() {
        let file: ConfigFile =
            toml::from_str("banks = 4\noperator_key = \"from-file\"\nui = false\n[business]\nlease_ms = 7000\n")
                .unwrap_or_default();
        let args = Args { operator_key: Some("from-env".into()), ..Args::default() };
        let r = resolve(&args, file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.banks, r.operator_key.as_str(), r.ui), (4, "from-env", false));
        assert_eq!(r.business_args, vec!["--lease-ms".to_string(), "7000".into()]);
        assert_eq!((r.dataserver_port_base, r.business_port_base), (4000, 3000));
        let bad: ConfigFile = toml::from_str("[business]\nlease = 1\n").unwrap_or_default();
        assert!(resolve(&Args::default(), bad).is_err());
        assert!(toml::from_str::<ConfigFile>("bankz = 1").is_err(), "unknown settings are refused");
    }
}
