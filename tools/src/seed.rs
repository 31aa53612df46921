//! `interbank seed`: opens customer accounts over a network (an opening deposit and an e-mail
//! Pix key each), or the accounts a CSV lists.

use std::path::PathBuf;

use rand::Rng;
use reqwest::Method;
use serde_json::{Value, json};

use harness::client::{Customer, Operator, sign_up};
use harness::cluster::Target;

use crate::Error;

#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// How to reach the network (written by `interbank up` into its data folder).
    #[arg(long, default_value = ".data/local.toml", env = "INTERBANK_TARGET")]
    pub target: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, default_value_t = 10)]
    pub accounts: usize,
    #[arg(long, default_value = "1000")]
    pub opening: String,
    /// Also write the accounts (ibk, document, password) to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Open the accounts listed in this CSV (`bank,name,document,password,opening`) instead.
    #[arg(long)]
    pub from_csv: Option<PathBuf>,
}

/// The password of every account [`seed`] opens.
pub const SEED_PASSWORD: &str = "load-password-123";

/// `interbank seed`.
pub async fn run(a: &SeedArgs) -> crate::Result<()> {
    let t = Target::load(&a.target.target)?;
    let customers = match &a.from_csv {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
            seed_rows(&t, &parse_seed_csv(&text)?).await?
        }
        None => seed(&t, a.accounts * t.banks.len(), &a.opening).await?,
    };
    let mut csv = String::from("ibk,document,password\n");
    for c in &customers {
        csv.push_str(&format!("{},{},{SEED_PASSWORD}\n", c.ibk(), c.account.documents[0]));
    }
    if let Some(path) = &a.csv {
        std::fs::write(path, &csv).map_err(|e| Error::file(path, e))?;
    }
    println!("opened {} accounts over {} banks, {} each", customers.len(), t.banks.len(), a.opening);
    Ok(())
}

/// One account to open, from a CSV line `bank,name,document,password,opening`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRow {
    pub bank: u32,
    pub name: String,
    pub document: String,
    pub password: String,
    pub opening: String,
}

/// Parses the seed CSV (a header line first; documents may be formatted, but hold no comma).
pub fn parse_seed_csv(text: &str) -> crate::Result<Vec<SeedRow>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [bank, name, document, password, opening] = f[..] else {
            return Err(Error::usage(format!("line {}: expected bank,name,document,password,opening", i + 1)));
        };
        let bank = bank.parse().map_err(|_| Error::usage(format!("line {}: bank {bank:?} is not a number", i + 1)))?;
        document.parse::<shared::Document>().map_err(|e| Error::usage(format!("line {}: {document}: {e}", i + 1)))?;
        opening.parse::<shared::Money>().map_err(|e| Error::usage(format!("line {}: {opening}: {e}", i + 1)))?;
        rows.push(SeedRow {
            bank,
            name: name.into(),
            document: document.into(),
            password: password.into(),
            opening: opening.into(),
        });
    }
    Ok(rows)
}

/// Opens the accounts listed in a seed CSV; the customers come back signed in.
pub async fn seed_rows(t: &Target, rows: &[SeedRow]) -> crate::Result<Vec<Customer>> {
    let http = pki::http_client();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let bank = t
            .banks
            .iter()
            .find(|b| b.id == r.bank)
            .ok_or_else(|| Error::run(format!("bank {} is not in the target", r.bank)))?;
        let base = bank.replicas.first().ok_or_else(|| Error::run("a bank without replicas"))?.clone();
        let c = sign_up(&http, &base, &r.name, &r.document, &r.password)
            .await
            .map_err(|e| Error::run(format!("{}: {e}", r.document)))?;
        if r.opening.parse::<shared::Money>().is_ok_and(|m| !m.is_zero()) {
            Operator { http: http.clone(), base, key: t.operator_key.clone() }
                .deposit(c.ibk(), &r.opening)
                .await
                .map_err(|e| Error::run(format!("opening deposit: {e}")))?;
        }
        out.push(c);
    }
    Ok(out)
}

/// Opens `n` customers spread over the banks, each with an opening deposit and an e-mail Pix key.
pub async fn seed(t: &Target, n: usize, opening: &str) -> crate::Result<Vec<Customer>> {
    let http = pki::http_client();
    let mut out = Vec::with_capacity(n);
    // One seed run: its documents start with the run number, its keys are load{run}.{i}.
    let run = rand::rng().random_range(0..1_000u32);
    for i in 0..n {
        let bank = &t.banks[i % t.banks.len()];
        let base = bank.replicas[(i / t.banks.len()) % bank.replicas.len()].clone();
        let doc = shared::Document::with_check_digits(&format!("{:03}{:06}", run % 1000, i))
            .ok_or_else(|| Error::run("document"))?
            .formatted();
        let c = sign_up(&http, &base, &format!("Cliente {i} Carga"), &doc, SEED_PASSWORD)
            .await
            .map_err(|e| Error::run(format!("sign-up at {base}: {e}")))?;
        let op = Operator { http: http.clone(), base: base.clone(), key: t.operator_key.clone() };
        op.deposit(c.ibk(), opening).await.map_err(|e| Error::run(format!("opening deposit: {e}")))?;
        let key = format!("load{run:03}.{i}@example.com");
        let body = json!({ "account": c.ibk(), "type": "email", "key": key });
        c.call::<Value>(Method::POST, "/api/keys", Some(&body))
            .await
            .map_err(|e| Error::run(format!("pix key: {e}")))?;
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_csv_lines_are_checked() {
        let ok = "bank,name,document,password,opening\n1, Ana Lima, 529.982.247-25, senha-segura-1, 100.50\n";
        let rows = parse_seed_csv(ok).unwrap_or_default();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].bank, rows[0].name.as_str(), rows[0].opening.as_str()), (1, "Ana Lima", "100.50"));
        assert!(matches!(parse_seed_csv("h\n1,Ana,123.456.789-00,x,1\n"), Err(Error::Usage(_))), "bad document");
        assert!(matches!(parse_seed_csv("h\nx,Ana,529.982.247-25,x,1\n"), Err(Error::Usage(_))), "bad bank");
        assert!(matches!(parse_seed_csv("h\n1,Ana,529.982.247-25,x\n"), Err(Error::Usage(_))), "missing column");
        assert!(matches!(parse_seed_csv("h\n1,Ana,529.982.247-25,x,1.234\n"), Err(Error::Usage(_))), "three decimals");
    }
}
