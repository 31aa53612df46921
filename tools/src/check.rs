//! The invariant checker (`interbank check`): reads every bank's journal, balances, interbank
//! positions and pending work, and lists every violation with the ids involved.
//!
//! Invariants:
//! 1. Each bank's journal replayed from empty gives exactly its balances.
//! 2. Every journal entry that is not a deposit, withdrawal or interbank settlement leaves the
//!    bank's total unchanged (transfers and same-bank packages only move money).
//! 3. Interbank settlements create no money: summed over all banks they are zero, and each
//!    bank's settled total equals minus its net positions.
//! 4. Net positions cancel pair by pair (what x says it owes y, y says y is owed by x).
//! 5. With `settled`: no package queued, no decision undelivered, no attempt prepared, no
//!    author's pending-package marker left (each would hold a place of the author's for ever),
//!    and no hold left on any account (a leaked hold is money nobody can spend).
//! 6. Total money = deposits − withdrawals (+ raw seed `setAmount` adjustments, listed).
//! 7. Every package attempt is all or nothing across banks: no attempt committed at one bank and
//!    rolled back at another, and none committed anywhere unless its coordinator decided commit.
//! 8. With `settled`: every package accepted for settlement (`packages/{id}` naming its entry)
//!    has its decided state in its author's statement (`account_packages/`): none was lost
//!    between the queue and the decision.

use business::interbank::coordinator::{self, ROUNDS, RoundRecord};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use dataserver_api::client::DataClient;
use harness::cluster::Target;
use reqwest::Method;
use serde::Deserialize;
use shared::{AccountId, BankId, BusinessId};

use business::consents::ConsentSet;
use business::interbank::participant::{self, SettlementMemo};
use harness::client::Operator;

use crate::Error;

/// How to reach one bank for checking: its operator API and its data server.
#[derive(Debug, Clone)]
pub struct BankAccess {
    pub id: BankId,
    pub operator: Operator,
    pub ds: DataClient,
}

#[derive(Debug, Clone, Default)]
pub struct BankFigures {
    pub accounts: usize,
    pub total_cents: i128,
    pub deposits_cents: i128,
    pub withdrawals_cents: i128,
    pub interbank_cents: i128,
    pub adjustments_cents: i128,
    pub journal_entries: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub banks: BTreeMap<BankId, BankFigures>,
    pub violations: Vec<String>,
}

impl Report {
    pub fn total_cents(&self) -> i128 {
        self.banks.values().map(|b| b.total_cents).sum()
    }
}

#[derive(Debug, Deserialize)]
struct PositionsBody {
    positions: Vec<PositionLine>,
}

#[derive(Debug, Deserialize)]
struct PositionLine {
    bank: BankId,
    net: String,
}

#[derive(Debug, Deserialize)]
struct PendingBody {
    queued: usize,
    undelivered: usize,
    prepared: usize,
}

fn cents_of(s: &str) -> Option<i128> {
    let d: rust_decimal::Decimal = s.parse().ok()?;
    (d * rust_decimal::Decimal::from(100)).trunc().to_string().parse().ok()
}

/// Holds left on accounts of a settled bank: with no attempt prepared, every hold record must
/// be gone (or zero). One left raised is money nobody can spend and an account nobody can close.
async fn leaked_holds(b: &BankAccess) -> crate::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page =
            b.ds.scan_records(business::model::HOLDS, "", after.as_deref(), 1_000)
                .await
                .map_err(|e| Error::run(format!("bank {}: {e}", b.id)))?;
        for r in &page.records {
            let h: business::model::HoldRecord =
                r.value.parse().map_err(|e| Error::run(format!("bank {}: holds/{}: {e}", b.id, r.key)))?;
            if !h.held.is_zero() || !h.incoming.is_zero() || h.inflight != 0 {
                out.push(format!(
                    "bank {}: account {} keeps a hold ({} held, {} incoming, {} attempts) with nothing prepared",
                    b.id, r.key, h.held, h.incoming, h.inflight
                ));
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(out)
}

/// Packages a settled bank accepted for settlement with no decided state in their author's
/// statement: with the queue empty, each must have one (the decision writes it in the commit
/// that takes the package off the queue).
async fn undecided_packages(b: &BankAccess) -> crate::Result<Vec<String>> {
    let fail = |e: &dyn std::fmt::Display| Error::run(format!("bank {}: {e}", b.id));
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page =
            b.ds.scan_records(business::model::PACKAGES, "", after.as_deref(), 1_000).await.map_err(|e| fail(&e))?;
        let mut submitted: Vec<(String, String)> = Vec::new();
        for r in &page.records {
            let p: business::model::StoredPackage =
                r.value.parse().map_err(|e| fail(&format!("packages/{}: {e}", r.key)))?;
            if let Some(entry) = p.entry {
                submitted.push((r.key.clone(), entry));
            }
        }
        let keys = submitted
            .iter()
            .map(|(_, e)| dataserver_api::RecordKey::new(business::model::ACCOUNT_PACKAGES, e.clone()))
            .collect();
        for ((id, _), found) in
            submitted.iter().zip(coordinator::read_records(&b.ds, keys).await.map_err(|e| fail(&e))?)
        {
            if found.is_none() {
                out.push(format!("bank {}: package {id} was accepted and is neither waiting nor decided", b.id));
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(out)
}

/// Checks every bank; `settled`: also require that no interbank work is pending.
pub async fn check(banks: &[BankAccess], settled: bool) -> crate::Result<Report> {
    let mut report = Report::default();
    let mut positions: BTreeMap<(BankId, BankId), i128> = BTreeMap::new();
    for b in banks {
        let mut fig = BankFigures::default();
        // Balances.
        let mut balances: HashMap<AccountId, i128> = HashMap::new();
        let mut after = None;
        loop {
            let page = b.ds.amounts_after(after, 1000).await.map_err(|e| Error::run(format!("bank {}: {e}", b.id)))?;
            for a in &page.amounts {
                balances.insert(a.account, i128::from(a.amount.cents()));
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        fig.accounts = balances.len();
        fig.total_cents = balances.values().sum();
        // Journal replay.
        let mut replay: HashMap<AccountId, i128> = HashMap::new();
        let mut settled_debits: HashMap<AccountId, i128> = HashMap::new();
        let mut seq = 0;
        loop {
            let page = b.ds.journal_after(seq, 1000).await.map_err(|e| Error::run(format!("bank {}: {e}", b.id)))?;
            for e in &page.entries {
                fig.journal_entries += 1;
                let mut delta = 0i128;
                for c in &e.changes {
                    let before = replay.get(&c.account).copied();
                    let stated = c.before.map(|m| i128::from(m.cents()));
                    if before != stated && !(before.is_none() && stated == Some(0)) {
                        report.violations.push(format!(
                            "bank {} journal {}: account {} was {:?} but the entry says {:?}",
                            b.id, e.seq, c.account, before, stated
                        ));
                    }
                    let after = i128::from(c.after.cents());
                    delta += after - before.unwrap_or(0);
                    replay.insert(c.account, after);
                }
                let kind = e.memo.as_ref().and_then(|m| m.kind()).unwrap_or_default();
                if kind == "interbank"
                    && let Some(Ok(memo)) = e.memo.as_ref().map(|m| m.parse::<SettlementMemo>())
                {
                    for o in memo.entries.iter().flat_map(|p| &p.ops).filter(|o| o.from.bank == b.id) {
                        *settled_debits.entry(o.from.account).or_insert(0) += i128::from(o.amount.money().cents());
                    }
                }
                if kind == "batch" {
                    // A replica's batch: its deposits and withdrawals move the total, nothing else.
                    match e.memo.as_ref().map(|m| m.parse::<business::ledger::BatchMemo>()) {
                        Some(Ok(batch)) => {
                            let (mut dep, mut wd) = (0i128, 0i128);
                            for o in &batch.operations {
                                let c = i128::from(o.op.amount().cents());
                                match o.op {
                                    business::ledger::Op::Deposit { .. } => dep += c,
                                    business::ledger::Op::Withdrawal { .. } => wd += c,
                                    business::ledger::Op::Transfer { .. } => {}
                                }
                            }
                            fig.deposits_cents += dep;
                            fig.withdrawals_cents += wd;
                            if delta != dep - wd {
                                report.violations.push(format!(
                                    "bank {} journal {} ({}): a batch changed the bank's total by {delta} cents, \
                                     its operations by {}",
                                    b.id,
                                    e.seq,
                                    e.tx_id,
                                    dep - wd
                                ));
                            }
                        }
                        _ => report.violations.push(format!("bank {} journal {}: unreadable batch memo", b.id, e.seq)),
                    }
                    seq = e.seq;
                    continue;
                }
                match kind.as_str() {
                    "deposit" => fig.deposits_cents += delta,
                    "withdrawal" => fig.withdrawals_cents -= delta,
                    "interbank" => fig.interbank_cents += delta,
                    "transfer" | "package" | "open_account" | "close_account" if delta != 0 => {
                        report.violations.push(format!(
                            "bank {} journal {} ({}): a {kind} changed the bank's total by {delta} cents",
                            b.id, e.seq, e.tx_id
                        ));
                    }
                    "transfer" | "package" | "open_account" | "close_account" => {}
                    _ => fig.adjustments_cents += delta,
                }
                seq = e.seq;
            }
            if page.next.is_none() || page.entries.is_empty() {
                break;
            }
        }
        for (a, v) in &balances {
            if replay.get(a).copied().unwrap_or(0) != *v {
                report.violations.push(format!(
                    "bank {}: account {a} holds {v} cents but its journal replays to {:?}",
                    b.id,
                    replay.get(a)
                ));
            }
        }
        for (a, v) in &replay {
            if *v != 0 && !balances.contains_key(a) {
                report.violations.push(format!("bank {}: journal gives account {a} {v} cents, it has none", b.id));
            }
            if *v < 0 {
                report.violations.push(format!("bank {}: account {a} is negative ({v} cents)", b.id));
            }
        }
        let expected = fig.deposits_cents - fig.withdrawals_cents + fig.interbank_cents + fig.adjustments_cents;
        if expected != fig.total_cents {
            report.violations.push(format!(
                "bank {}: total {} cents, but deposits − withdrawals + settlements + adjustments = {expected}",
                b.id, fig.total_cents
            ));
        }
        check_consents(b, &settled_debits, settled, &mut report).await?;
        // Positions and pending work.
        let p: PositionsBody = b
            .operator
            .call(Method::GET, "/interbank/positions")
            .await
            .map_err(|e| Error::run(format!("bank {}: {e}", b.id)))?;
        let mut owed = 0i128;
        for line in &p.positions {
            let c =
                cents_of(&line.net).ok_or_else(|| Error::run(format!("bank {}: bad position {:?}", b.id, line.net)))?;
            positions.insert((b.id, line.bank), c);
            owed += c;
        }
        if settled && fig.interbank_cents != -owed {
            report.violations.push(format!(
                "bank {}: settlements moved {} cents, but its net positions say {}",
                b.id, fig.interbank_cents, -owed
            ));
        }
        if settled {
            let pending: PendingBody = b
                .operator
                .call(Method::GET, "/interbank/pending")
                .await
                .map_err(|e| Error::run(format!("bank {}: {e}", b.id)))?;
            if pending.queued + pending.undelivered + pending.prepared > 0 {
                report.violations.push(format!(
                    "bank {}: not settled: {} queued, {} undelivered, {} prepared",
                    b.id, pending.queued, pending.undelivered, pending.prepared
                ));
            }
            report.violations.extend(leaked_holds(b).await?);
            report.violations.extend(undecided_packages(b).await?);
        }
        report.banks.insert(b.id, fig);
    }
    all_or_nothing(banks, &mut report).await?;
    for ((x, y), c) in &positions {
        let back = positions.get(&(*y, *x)).copied().unwrap_or(0);
        if settled && c + back != 0 && (x < y || !positions.contains_key(&(*y, *x))) {
            report.violations.push(format!("net positions: bank {x} → {y} is {c}, bank {y} → {x} is {back}"));
        }
    }
    if settled {
        let moved: i128 = report.banks.values().map(|f| f.interbank_cents).sum();
        if moved != 0 {
            report.violations.push(format!("interbank settlements created {moved} cents"));
        }
    }
    Ok(report)
}

/// Consents: none promises more than its amount, none has debits reserved once everything is
/// settled, and an account's consents were consumed by no more than the settlements debited it.
async fn check_consents(
    b: &BankAccess,
    settled_debits: &HashMap<AccountId, i128>,
    settled: bool,
    report: &mut Report,
) -> crate::Result<()> {
    for r in scan_all(&b.ds, business::model::CONSENTS).await? {
        let set: ConsentSet =
            r.value.parse().map_err(|e| Error::run(format!("bank {}: consents/{}: {e}", b.id, r.key)))?;
        let account: AccountId = r
            .key
            .trim_start_matches('0')
            .parse()
            .map_err(|e| Error::run(format!("bank {}: consents/{}: {e}", b.id, r.key)))?;
        let mut used = 0i128;
        for c in &set.consents {
            let (u, reserved, max) =
                (i128::from(c.used.cents()), i128::from(c.reserved.cents()), i128::from(c.amount_max.cents()));
            if u + reserved > max {
                report.violations.push(format!(
                    "bank {}: consent {} has {u} used and {reserved} reserved of {max} cents",
                    b.id, c.id
                ));
            }
            if settled && reserved != 0 {
                report.violations.push(format!("bank {}: consent {} still reserves {reserved} cents", b.id, c.id));
            }
            used += u;
        }
        let debited = settled_debits.get(&account).copied().unwrap_or(0);
        if used > debited {
            report.violations.push(format!(
                "bank {}: account {account}'s consents used {used} cents, settlements debited it {debited}",
                b.id
            ));
        }
    }
    Ok(())
}

/// Every record of `collection` at one bank (paginated).
async fn scan_all(ds: &DataClient, collection: &str) -> crate::Result<Vec<dataserver_api::Record>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ds.scan_records(collection, "", after.as_deref(), 1000).await?;
        out.extend(page.records);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// Rule 7: the outcomes every bank applied agree with each other and with the coordinator.
async fn all_or_nothing(banks: &[BankAccess], report: &mut Report) -> crate::Result<()> {
    let mut outcomes: BTreeMap<String, Vec<(BankId, bool)>> = BTreeMap::new();
    let mut decisions: BTreeMap<String, (BankId, bool)> = BTreeMap::new();
    // Attempts past their horizon: any bank may have forgotten their records already, so what
    // is left of them proves nothing either way.
    let mut forgettable: BTreeSet<String> = BTreeSet::new();
    let now = dataserver_api::clock::now_ms();
    for b in banks {
        // Each bank's outcomes, per coordinator's round: `{coordinator}:{package}.{round}`.
        for r in scan_all(&b.ds, participant::OUTCOMES).await? {
            let (Some((coordinator, n)), Ok(o)) =
                (participant::parse_round_record_key(&r.key), r.value.parse::<participant::OutcomeRound>())
            else {
                report.violations.push(format!("bank {}: outcomes/{} unreadable", b.id, r.key));
                continue;
            };
            let forgotten = business::interbank::retention::Retention::forgotten(o.forget_after_ms, now);
            for (package, committed) in
                o.committed.iter().map(|p| (p, true)).chain(o.aborted.iter().map(|p| (p, false)))
            {
                let txn = format!("{coordinator}:{}", coordinator::txn(package, n));
                if forgotten {
                    forgettable.insert(txn.clone());
                }
                outcomes.entry(txn).or_default().push((b.id, committed));
            }
        }
        // Each decided round's decisions, per attempt (`{package}.{round}`).
        for r in scan_all(&b.ds, ROUNDS).await? {
            let Ok(round) = r.value.parse::<RoundRecord>() else { continue };
            let Ok(n) = r.key.parse::<u64>() else { continue };
            for e in &round.packages {
                if let Some(commit) = round.decided.then(|| round.decision(&e.id)).flatten() {
                    decisions.insert(format!("{}:{}", b.id, coordinator::txn(&e.id, n)), (b.id, commit));
                }
            }
        }
    }
    for (txn, applied) in &outcomes {
        let committed: Vec<BankId> = applied.iter().filter(|(_, c)| *c).map(|(b, _)| *b).collect();
        let rolled_back: Vec<BankId> = applied.iter().filter(|(_, c)| !*c).map(|(b, _)| *b).collect();
        if !committed.is_empty() && !rolled_back.is_empty() {
            report.violations.push(format!(
                "package attempt {txn}: committed at banks {committed:?} but rolled back at {rolled_back:?}"
            ));
        }
        if !committed.is_empty() && !matches!(decisions.get(txn), Some((_, true))) && !forgettable.contains(txn) {
            report.violations.push(format!(
                "package attempt {txn}: committed at banks {committed:?} without a commit decision ({:?})",
                decisions.get(txn)
            ));
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: crate::seed::TargetArgs,
    /// Also require that no interbank work is pending (waits up to this long for it to settle).
    #[arg(long, default_value_t = 30)]
    pub settle_s: u64,
    /// Check while a load runs: skip the rules that hold only once everything has settled.
    #[arg(long)]
    pub during: bool,
}

/// `interbank check`.
pub async fn run(a: &CheckArgs) -> crate::Result<()> {
    let t = Target::load(&a.target.target)?;
    let r = if a.during {
        check(&access(&t)?, false).await?
    } else {
        settle_and_check(&t, std::time::Duration::from_secs(a.settle_s)).await?
    };
    print_check(&r);
    if r.violations.is_empty() { Ok(()) } else { Err(Error::Violations(r.violations.len())) }
}

/// Waits until no bank has interbank work pending (or `within` passes), then checks. A check
/// that could not read a bank (its data servers still choosing a leader after a failover, a
/// replica restarting) is tried again meanwhile too: its error is the answer only once `within`
/// has passed.
pub async fn settle_and_check(t: &Target, within: Duration) -> crate::Result<Report> {
    let until = Instant::now() + within;
    let access = access(t)?;
    loop {
        match check(&access, true).await {
            Ok(r) if r.violations.is_empty() => return Ok(r),
            done if Instant::now() > until => return done,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn print_check(r: &Report) {
    println!(
        "{:<6} {:>9} {:>16} {:>14} {:>14} {:>14} {:>10}",
        "bank", "accounts", "total", "deposits", "withdrawals", "interbank", "entries"
    );
    let c = |v: i128| i64::try_from(v).map_or_else(|_| v.to_string(), |v| rust_decimal::Decimal::new(v, 2).to_string());
    for (id, f) in &r.banks {
        println!(
            "{:<6} {:>9} {:>16} {:>14} {:>14} {:>14} {:>10}",
            id.get(),
            f.accounts,
            c(f.total_cents),
            c(f.deposits_cents),
            c(f.withdrawals_cents),
            c(f.interbank_cents),
            f.journal_entries
        );
    }
    if r.violations.is_empty() {
        println!("no violation: money conserved, journals replay to balances, positions cancel, nothing pending");
    } else {
        for v in &r.violations {
            println!("VIOLATION: {v}");
        }
    }
}

/// The checker's access to every bank.
pub fn access(t: &Target) -> crate::Result<Vec<BankAccess>> {
    let http = pki::http_client();
    t.banks
        .iter()
        .map(|b| {
            let id = shared::BankId::new(b.id)?;
            let business = BusinessId::new(b.business_id)?;
            Ok(BankAccess {
                id,
                operator: harness::client::Operator {
                    http: http.clone(),
                    base: b.replicas.first().cloned().ok_or_else(|| Error::run("a bank without replicas"))?,
                    key: t.operator_key.clone(),
                },
                ds: dataserver_api::client::DataClient::new(&b.dataserver, business, b.dataserver_key.clone())?,
            })
        })
        .collect()
}
