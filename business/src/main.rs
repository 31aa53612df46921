//! `BUSINESS_DATASERVER_KEY=KEY11 BUSINESS_OPERATOR_KEY=OPKEY business --listen 127.0.0.1:3001
//!  --bank-id 1 --business-id 11 --dataserver http://127.0.0.1:4001`
//! (secrets come from the environment: a command line is visible to every user of the machine)

use std::io::Write;
use std::process::ExitCode;

use business::{Application, Settings};
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    if let Some(flag) = shared::cli::secret_flag(std::env::args(), &["--operator-key", "--dataserver-key"]) {
        eprintln!("business: {flag} is a secret; pass it in the environment, not on the command line");
        return ExitCode::FAILURE;
    }
    let settings = Settings::parse();
    business::init_tracing();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("business: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The first line on stdout is the contract with scripts and tests that start us on port 0.
    let scheme = if app.serves_https() { "https" } else { "http" };
    match app.interbank_addr() {
        Some(ib) => println!("business listening on {scheme}://{} interbank=https://{ib}", app.local_addr()),
        None => println!("business listening on {scheme}://{}", app.local_addr()),
    }
    let _ = std::io::stdout().flush();
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("business: {e}");
            ExitCode::FAILURE
        }
    }
}
