//! `DATASERVER_KEYS=11:KEY11,12:KEY12 dataserver --listen 127.0.0.1:4001 --data-dir DIR`
//! (the replicas' keys come from the environment: a command line is visible to every user)

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use dataserver::{Application, Settings};

#[actix_web::main]
async fn main() -> ExitCode {
    if let Some(flag) = shared::cli::secret_flag(std::env::args(), &["--key"]) {
        eprintln!("dataserver: {flag} is a secret; pass DATASERVER_KEYS in the environment, not on the command line");
        return ExitCode::FAILURE;
    }
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
    let scheme = if app.serves_https() { "https" } else { "http" };
    println!("dataserver listening on {scheme}://{} boot_epoch={}", app.local_addr(), app.boot_epoch());
    let _ = std::io::stdout().flush();
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataserver: {e}");
            ExitCode::FAILURE
        }
    }
}
