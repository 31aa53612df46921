//! `business --listen 127.0.0.1:3001 --bank-id 1 --business-id 11 --dataserver http://127.0.0.1:4001
//!  --dataserver-key KEY11 --operator-key OPKEY`

use std::io::Write;
use std::process::ExitCode;

use business::{Application, Settings};
use clap::Parser;

#[actix_web::main]
async fn main() -> ExitCode {
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
    println!("business listening on http://{}", app.local_addr());
    let _ = std::io::stdout().flush();
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("business: {e}");
            ExitCode::FAILURE
        }
    }
}
