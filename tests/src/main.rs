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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => match interbank_tests::up::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("interbank: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Bench(Bench::Transfer(args)) => {
            let json = args.json;
            match interbank_tests::bench_transfer::run(args).await {
                Ok(report) => {
                    interbank_tests::bench_transfer::print(&report, json);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("interbank: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(Bench::Dataserver(args)) => {
            let json = args.json;
            match interbank_tests::bench_dataserver::run(args).await {
                Ok(report) => {
                    interbank_tests::bench_dataserver::print(&report, json);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("interbank: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
