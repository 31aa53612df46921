//! `interbank`: the operator's command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "interbank", version, about = "InterBank operator tool: benchmarks and test harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local network (each bank's processes) until Ctrl-C.
    Up(interbank_tests::up::Args),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(Bench),
    /// Open N customer accounts per bank (opening deposit and an e-mail Pix key each).
    Seed(SeedArgs),
    /// C concurrent customers running a mix of operations for a duration; then a figures table.
    Load(interbank_tests::tool::LoadArgs),
    /// The invariant checker: prints each violation and exits non-zero if there is one.
    Check(CheckArgs),
    /// The reliability and security suite: faults over real processes, the protocol simulation,
    /// the authorization matrix and hostile input; prints a table (violations must be 0).
    Reliability(interbank_tests::reliability::Args),
}

#[derive(Debug, clap::Args)]
struct SeedArgs {
    #[command(flatten)]
    target: interbank_tests::tool::TargetArgs,
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    #[arg(long, default_value = "1000")]
    opening: String,
    /// Also write the accounts (ibk, document, password) to this CSV file.
    #[arg(long)]
    csv: Option<std::path::PathBuf>,
    /// Open the accounts listed in this CSV (`bank,name,document,password,opening`) instead.
    #[arg(long)]
    from_csv: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    target: interbank_tests::tool::TargetArgs,
    /// Also require that no interbank work is pending (waits up to this long for it to settle).
    #[arg(long, default_value_t = 30)]
    settle_s: u64,
    /// Check while a load runs: skip the rules that hold only once everything has settled.
    #[arg(long)]
    during: bool,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// 2-account lock -> commit -> release cycles against a data server.
    Dataserver(interbank_tests::bench_dataserver::Args),
    /// POST /transfer through a bank's business replicas.
    Transfer(interbank_tests::bench_transfer::Args),
    /// Packages of 2 cross-bank operations over a 3-bank network.
    Packages(interbank_tests::bench_packages::Args),
}

/// The one way every command ends: success, or its error on stderr and a failing status.
fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interbank: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    use interbank_tests::{bench_dataserver, bench_transfer, up};
    let cli = Cli::parse();
    use interbank_tests::cluster::Target;
    use interbank_tests::tool;
    exit(match cli.command {
        Command::Seed(a) => {
            async {
                let t = Target::load(&a.target.target)?;
                let customers = match &a.from_csv {
                    Some(path) => {
                        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                        tool::seed_rows(&t, &tool::parse_seed_csv(&text)?).await?
                    }
                    None => tool::seed(&t, a.accounts * t.banks.len(), &a.opening).await?,
                };
                let mut csv = String::from("ibk,document,password\n");
                for c in &customers {
                    csv.push_str(&format!("{},{},load-password-123\n", c.ibk(), c.account.documents[0]));
                }
                if let Some(path) = &a.csv {
                    std::fs::write(path, &csv).map_err(|e| e.to_string())?;
                }
                println!("opened {} accounts over {} banks, {} each", customers.len(), t.banks.len(), a.opening);
                Ok(())
            }
            .await
        }
        Command::Load(a) if a.launch => {
            async {
                let mix = tool::parse_mix(&a.mix)?;
                let (r, faults, checked) = tool::launch_and_load(&a, &mix).await?;
                tool::print(&r, a.json);
                println!("faults injected: {faults}");
                tool::print_check(&checked);
                if checked.violations.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{} violations", checked.violations.len()))
                }
            }
            .await
        }
        Command::Load(a) => {
            async {
                let t = Target::load(&a.target.target)?;
                let mix = tool::parse_mix(&a.mix)?;
                eprintln!("seeding {} customers...", a.clients);
                let customers = tool::seed(&t, a.clients, "1000").await?;
                let r = tool::load(&t, customers, &mix, std::time::Duration::from_secs(a.duration), a.count, !a.json)
                    .await?;
                tool::print(&r, a.json);
                Ok(())
            }
            .await
        }
        Command::Check(a) => {
            async {
                let t = Target::load(&a.target.target)?;
                let r = if a.during {
                    interbank_tests::check::check(&t.access()?, false).await?
                } else {
                    tool::settle_and_check(&t, std::time::Duration::from_secs(a.settle_s)).await?
                };
                tool::print_check(&r);
                if r.violations.is_empty() { Ok(()) } else { Err(format!("{} violations", r.violations.len())) }
            }
            .await
        }
        Command::Up(args) => up::run(args).await,
        Command::Reliability(a) => {
            async {
                let rows = interbank_tests::reliability::run(&a).await?;
                interbank_tests::reliability::print(&rows);
                let n: usize = rows.iter().map(|r| r.violations.len()).sum();
                if n == 0 { Ok(()) } else { Err(format!("{n} violations")) }
            }
            .await
        }
        Command::Bench(Bench::Transfer(args)) => {
            let json = args.json;
            bench_transfer::run(args).await.map(|r| bench_transfer::print(&r, json))
        }
        Command::Bench(Bench::Packages(args)) => {
            let json = args.json;
            interbank_tests::bench_packages::run(args).await.map(|r| interbank_tests::bench_packages::print(&r, json))
        }
        Command::Bench(Bench::Dataserver(args)) => {
            let json = args.json;
            bench_dataserver::run(args).await.map(|r| bench_dataserver::print(&r, json))
        }
    })
}
