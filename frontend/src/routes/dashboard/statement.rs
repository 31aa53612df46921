//! The statement: one row per line that moved the balance and one per package of this account
//! still open or failed, newest first, all from the bank (so a reload loses nothing). Each row
//! reads as a person reads a bank statement — date, what it was and with whom, a signed amount
//! coloured by direction, the balance after — and opens into its detail: every operation with
//! its own status, the id to quote.

use leptos::prelude::*;
use shared::api::{Direction, EntryKind, Line, StatementEntry, Status, Transaction};

use super::{Refresh, status_key};
use crate::app::ctx;
use crate::format::{brl, datetime_br};
use crate::i18n::{Lang, t};

/// Lines asked for at first, and how many more each "load more" asks for (the API's page
/// limit, 100, bounds the total).
const PAGE_LINES: usize = 20;
const LINES_MAX: usize = 100;

/// One row of the statement.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    /// Stable across refreshes, so a row is drawn once and keeps its open detail.
    key: String,
    transaction: Transaction,
    line: Line,
    /// The balance right after; none for a package that moved no money (yet).
    balance: Option<shared::Money>,
}

/// The rows of a statement page, newest first. A package is shown by its own row only while
/// no line of it is on the page (it is pending, confirmed but not yet here, or failed): once
/// money moved, its lines stand for it, so it never shows twice.
fn rows(me: shared::Ibk, s: &shared::api::Statement) -> Vec<Row> {
    let settled = |id: &str| s.transactions.iter().any(|e| e.transaction.parent_id.as_deref() == Some(id));
    let mut out: Vec<Row> = s
        .packages
        .iter()
        .filter(|p| p.status != Status::Success && !settled(&p.id))
        .map(|p| {
            let mut line = p.line_for(me, &p.updated_at);
            // A package that has not moved money yet reads as what it will debit.
            line.amount = p.total().unwrap_or(shared::Money::MAX);
            line.direction = Direction::Debit;
            Row { key: format!("p:{}", p.id), transaction: p.clone(), line, balance: None }
        })
        .collect();
    out.extend(s.transactions.iter().enumerate().map(|(i, e): (usize, &StatementEntry)| Row {
        key: format!(
            "l:{}:{}",
            e.transaction.id,
            s.transactions[..i].iter().filter(|x| x.transaction.id == e.transaction.id).count()
        ),
        transaction: e.transaction.clone(),
        line: e.line.clone(),
        balance: Some(e.balance),
    }));
    // RFC 3339 UTC times of one format sort as text.
    out.sort_by(|a, b| b.line.at.cmp(&a.line.at));
    out
}

fn kind_key(k: EntryKind) -> &'static str {
    match k {
        EntryKind::Deposit => "kind_deposit",
        EntryKind::Withdrawal => "kind_withdrawal",
        EntryKind::TransferSent => "kind_transfer_sent",
        EntryKind::TransferReceived => "kind_transfer_received",
        EntryKind::PackageSent => "kind_package_sent",
        EntryKind::PackageReceived => "kind_package_received",
    }
}

/// "Pacote enviado · Bia S**** (1-2)", or the number of operations when there are several.
fn description(lang: Lang, r: &Row) -> String {
    let what = t(lang, kind_key(r.line.kind));
    let with = match (&r.line.counterpart_name, r.line.counterpart) {
        (Some(n), Some(c)) => format!("{n} ({c})"),
        (None, Some(c)) => c.to_string(),
        _ if r.transaction.operations.len() > 1 => {
            format!("{} {}", r.transaction.operations.len(), t(lang, "operations"))
        }
        _ => String::new(),
    };
    if with.is_empty() { what.to_string() } else { format!("{what} · {with}") }
}

/// Minutes east of UTC in this browser, for dates in local time.
fn local_offset_min() -> i64 {
    // getTimezoneOffset is minutes *west* of UTC, a whole number.
    #[expect(clippy::cast_possible_truncation, reason = "a whole number of minutes, within ±14 hours")]
    let west = js_sys::Date::new_0().get_timezone_offset() as i64;
    -west
}

#[component]
pub fn Statement(id: u64, me: shared::Ibk, refresh: Refresh) -> impl IntoView {
    let c = ctx();
    let lines = RwSignal::new(PAGE_LINES);
    let page = LocalResource::new(move || {
        refresh.track();
        let (api, limit) = (c.api(), lines.get());
        async move { api.statement(id, limit).await }
    });
    // The last page that arrived: kept while the next one loads, so rows never blink away.
    let shown = RwSignal::new(None::<shared::api::Statement>);
    let error = RwSignal::new(None::<String>);
    Effect::new(move || match page.get() {
        Some(Ok(s)) => {
            shown.set(Some(s));
            error.set(None);
        }
        Some(Err(e)) => error.set(Some(e)),
        None => {}
    });
    let open = RwSignal::new(None::<String>);
    let offset = local_offset_min();
    let all_rows = move || shown.get().map(|s| rows(me, &s)).unwrap_or_default();
    let more = move || shown.get().is_some_and(|s| s.next.is_some()) && lines.get() < LINES_MAX;
    let row_view = move |r: Row| {
        let key = r.key.clone();
        let toggle = {
            let key = key.clone();
            move |_| open.update(|o| *o = if o.as_deref() == Some(key.as_str()) { None } else { Some(key.clone()) })
        };
        let is_open = {
            let key = key.clone();
            move || open.get().as_deref() == Some(key.as_str())
        };
        let credit = r.line.direction == Direction::Credit;
        let class = format!(
            "entry {} status-{}{}",
            if credit { "credit" } else { "debit" },
            status_key(r.transaction.status),
            if r.balance.is_none() { " package" } else { "" }
        );
        let sign = if credit { "+" } else { "−" };
        let amount = format!("{sign} {}", brl(r.line.amount)).replace(' ', "\u{a0}");
        let when = datetime_br(&r.line.at, offset);
        let status = r.transaction.status;
        let r2 = r.clone();
        let data_id = r.transaction.parent_id.clone().unwrap_or_else(|| r.transaction.id.clone());
        let tx = r.transaction.clone();
        view! {
            <li class=class data-id=data_id>
                <button class="entry-summary" type="button" on:click=toggle>
                    <span class="when">{when}</span>
                    <span class="what">{move || description(c.lang.get(), &r2)}</span>
                    <span class="amount">{amount}</span>
                    <span class="after">{r.balance.map(|b| brl(b).replace(' ', "\u{a0}"))}</span>
                    <span class="state">{move || (status != Status::Success).then(|| t(c.lang.get(), status_key(status)))}</span>
                </button>
                <Show when=is_open.clone()>
                    <Detail tx=tx.clone() />
                </Show>
            </li>
        }
    };
    view! {
        <section>
            <h2>{c.t("statement")}</h2>
            <p class="error" id="statement-error">{move || error.get()}</p>
            <Show when=move || shown.get().is_some() && all_rows().is_empty()>
                <p class="empty" id="statement-empty">{c.t("no_entries")}</p>
            </Show>
            <ul id="statement" class="statement">
                <For each=all_rows key=|r| (r.key.clone(), status_key(r.transaction.status), r.balance) children=row_view />
            </ul>
            <Show when=more>
                <button class="secondary" id="statement-more" type="button"
                    on:click=move |_| lines.update(|n| *n = (*n + PAGE_LINES).min(LINES_MAX))>{c.t("load_more")}</button>
            </Show>
        </section>
    }
}

/// A transaction's receipt: each operation with its own status, and the id to quote.
#[component]
fn Detail(tx: Transaction) -> impl IntoView {
    let c = ctx();
    let reason = tx.reason.clone();
    view! {
        <div class="detail">
            <table>
                <tr><th>{c.t("from_short")}</th><th>{c.t("to_short")}</th><th>{c.t("amount")}</th><th>{c.t("status")}</th></tr>
                {tx.operations.iter().map(|o| {
                    let s = o.status;
                    view! {
                        <tr class=format!("op status-{}", status_key(s))>
                            <td>{o.from.to_string()}</td><td>{o.to.to_string()}</td>
                            <td>{brl(o.amount).replace(' ', "\u{a0}")}</td>
                            <td>{move || t(c.lang.get(), status_key(s))}</td>
                        </tr>
                    }
                }).collect_view()}
            </table>
            {tx.total().filter(|_| tx.operations.len() > 1).map(|total| view! {
                <p class="total">{move || t(c.lang.get(), "total")} " " {brl(total)}</p>
            })}
            {reason.map(|r| {
                // Worded from its code in the page's language; the English reason only for a
                // code the app has no words for.
                let (code, lang) = (tx.reason_code, c.lang);
                view! {
                    <p class="reason">
                        {move || code.and_then(|k| crate::i18n::error_text(lang.get(), k)).map_or_else(|| r.clone(), str::to_string)}
                    </p>
                }
            })}
            <p class="tx-id">{c.t("receipt_id")} " " {tx.parent_id.clone().unwrap_or_else(|| tx.id.clone())}</p>
        </div>
    }
}
