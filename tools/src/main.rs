//! `interbank`: the operator's command line. Thin: each command is a module of the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tools::{bench, check, load, reliability, seed, up};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "interbank", version, about = "InterBank operator tool: the local network, load, checks, benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local network (each bank's processes) until Ctrl-C.
    Up(up::Args),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(Bench),
    /// Open N customer accounts per bank (opening deposit and an e-mail Pix key each).
    Seed(seed::SeedArgs),
    /// C concurrent customers running a mix of operations for a duration; then a figures table.
    Load(load::LoadArgs),
    /// The invariant checker: prints each violation and exits non-zero if there is one.
    Check(check::CheckArgs),
    /// The reliability and security suite: faults over real processes, the protocol simulation,
    /// the authorization matrix and hostile input; prints a table (violations must be 0).
    Reliability(reliability::Args),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// 2-account lock -> commit -> release cycles against a data server.
    Dataserver(bench::dataserver::Args),
    /// POST /transfer through a bank's business replicas.
    Transfer(bench::transfer::Args),
    /// Packages of 2 cross-bank operations over a 3-bank network.
    Packages(bench::packages::Args),
    /// A flood of sign-ups against one replica: a customer's read latency before and during it.
    Flood(bench::flood::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Every command talks to servers that may still be starting: refusals for now are repeated.
    harness::client::retry_refusals(true);
    let result = match Cli::parse().command {
        Command::Up(a) => up::run(a).await,
        Command::Seed(a) => seed::run(&a).await,
        Command::Load(a) => load::run(&a).await,
        Command::Check(a) => check::run(&a).await,
        Command::Reliability(a) => reliability::main(&a).await,
        Command::Bench(Bench::Dataserver(a)) => bench::dataserver::main(a).await,
        Command::Bench(Bench::Transfer(a)) => bench::transfer::main(a).await,
        Command::Bench(Bench::Packages(a)) => bench::packages::main(a).await,
        Command::Bench(Bench::Flood(a)) => bench::flood::main(a).await,
    };
    // The one way every command ends: success, or its error on stderr and a failing status.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interbank: {e}");
            ExitCode::FAILURE
        }
    }
}
