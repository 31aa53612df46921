//! `DATASERVER_KEYS=11:KEY11,12:KEY12 dataserver --listen 127.0.0.1:4001 --data-dir DIR`
//! (the replicas' keys come from the environment: a command line is visible to every user)

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use dataserver::{Application, Settings};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    if let Some(flag) = shared::cli::secret_flag(std::env::args(), &["--key"]) {
        eprintln!("dataserver: {flag} is a secret; pass DATASERVER_KEYS in the environment, not on the command line");
        return ExitCode::FAILURE;
    }
    if database_url_flag_has_password(std::env::args()) {
        eprintln!(
            "dataserver: --database-url holds a password; pass DATASERVER_DATABASE_URL in the environment, not on the command line"
        );
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
    // A standby says so; once it leads it prints `dataserver leader boot_epoch=N`.
    match app.boot_epoch() {
        Some(epoch) => println!("dataserver listening on {scheme}://{} boot_epoch={epoch}", app.local_addr()),
        None => println!("dataserver listening on {scheme}://{} standby", app.local_addr()),
    }
    let _ = std::io::stdout().flush();
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataserver: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `--database-url` is given on the command line with a password in it
/// (`postgres://user:password@host/db`): a command line is visible to every user of the machine.
fn database_url_flag_has_password(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    let mut values = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if a == "--database-url" {
            values.extend(args.get(i + 1).cloned());
        } else if let Some(v) = a.strip_prefix("--database-url=") {
            values.push(v.to_string());
        }
    }
    values.iter().any(|url| {
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':')) || url.contains("password=")
    })
}

#[cfg(test)]
mod tests {
    use super::database_url_flag_has_password as has;

    fn args(v: &[&str]) -> std::vec::IntoIter<String> {
        v.iter().map(|s| (*s).to_string()).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn a_password_on_the_command_line_is_refused() {
        assert!(has(args(&["ds", "--database-url", "postgres://bank:s3cret@db:5432/bank1"])));
        assert!(has(args(&["ds", "--database-url=postgres://bank:s3cret@db/bank1"])));
        assert!(has(args(&["ds", "--database-url", "postgres://db/bank1?password=s3cret"])));
        assert!(!has(args(&["ds", "--database-url", "postgres://bank@127.0.0.1:5432/bank1"])));
        assert!(!has(args(&["ds", "--data-dir", "x"])));
    }
}
