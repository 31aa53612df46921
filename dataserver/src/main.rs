//! `dataserver --listen 127.0.0.1:4001 --data-dir DIR --key 11:KEY11 --key 12:KEY12`

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use dataserver::{Application, Settings};

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = Settings::parse();
    dataserver::init_tracing();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("dataserver: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The first line on stdout is the contract with scripts and tests that start us on port 0.
    println!("dataserver listening on http://{} boot_epoch={}", app.local_addr(), app.boot_epoch());
    let _ = std::io::stdout().flush();
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataserver: {e}");
            ExitCode::FAILURE
        }
    }
}
