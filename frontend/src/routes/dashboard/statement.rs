//! The statement: packages sent from this page that have not settled yet, then the account's
//! entries, newest first.

use leptos::prelude::*;
use shared::api::{Status, Transaction};

use super::{Refresh, status_key};
use crate::app::ctx;
use crate::format::brl;
use crate::i18n::t;

#[component]
pub fn Statement(id: u64, sent: RwSignal<Vec<Transaction>>, refresh: Refresh) -> impl IntoView {
    let c = ctx();
    let statement = LocalResource::new(move || {
        refresh.track();
        let api = c.api();
        async move { api.statement(id).await.map(|s| s.transactions).unwrap_or_default() }
    });
    // Each open package's status, asked again at every refresh.
    let open = LocalResource::new(move || {
        refresh.track();
        let (api, list) = (c.api(), sent.get_untracked());
        async move {
            let mut out = Vec::with_capacity(list.len());
            for p in list {
                let open = matches!(p.status, Status::Pending | Status::Confirmed);
                out.push(if open { api.package(&p.id).await.unwrap_or(p) } else { p });
            }
            out
        }
    });
    Effect::new(move || {
        if let Some(updated) = open.get() {
            sent.set(updated);
        }
    });
    view! {
        <section>
            <h2>{c.t("statement")}</h2>
            <table id="statement">
                <tr><th>{c.t("transfer")}</th><th>{c.t("amount")}</th><th>{c.t("status")}</th><th>{c.t("balance")}</th></tr>
                {move || sent.get().into_iter().filter(|p| matches!(p.status, Status::Pending | Status::Confirmed | Status::Failed)).map(|p| {
                    let total = p.operations.iter().try_fold(shared::Money::ZERO, |s, o| s.checked_add(o.amount));
                    let class = format!("package status-{}", status_key(p.status));
                    view! {
                        <tr class=class>
                            <td>{format!("{} ({})", p.id.chars().take(8).collect::<String>(), p.operations.len())}</td>
                            <td>{total.map(brl)}</td>
                            <td>{t(c.lang.get(), status_key(p.status))} {p.reason.clone().map(|r| format!(" — {r}"))}</td>
                            <td></td>
                        </tr>
                    }
                }).collect_view()}
                {move || statement.get().unwrap_or_default().into_iter().map(|e| {
                    let tx = e.transaction;
                    let o = tx.operations.first().cloned();
                    let label = match (&o, &tx.parent_id) {
                        (Some(o), Some(p)) => format!("{} → {} [{}]", o.from, o.to, p.chars().take(8).collect::<String>()),
                        (Some(o), None) => format!("{} → {}", o.from, o.to),
                        _ => tx.id.clone(),
                    };
                    let class = format!("entry status-{}", status_key(tx.status));
                    view! {
                        <tr class=class>
                            <td>{label}</td><td>{o.map(|o| brl(o.amount))}</td>
                            <td>{t(c.lang.get(), status_key(tx.status))}</td><td>{brl(e.balance)}</td>
                        </tr>
                    }
                }).collect_view()}
            </table>
        </section>
    }
}
