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
    exit(match cli.command {
        Command::Up(args) => up::run(args).await,
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
