//! The package builder: operations from the customer's accounts to an IBK or a Pix key, sent as
//! one all-or-nothing package.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{Pay, PaymentOperation, Transaction};
use shared::{Ibk, Target};

use super::{Refresh, status_key};
use crate::app::ctx;
use crate::format::parse_brl;
use crate::i18n::t;

/// What a package debits in all: the sum of its operations (shown before it is sent).
fn total(ops: &[PaymentOperation]) -> shared::Money {
    ops.iter().fold(shared::Money::ZERO, |sum, o| sum.checked_add(o.amount.money()).unwrap_or(shared::Money::MAX))
}

#[component]
pub fn PackageBuilder(
    me: Ibk,
    accounts: Signal<Vec<Ibk>>,
    sent: RwSignal<Vec<Transaction>>,
    refresh: Refresh,
) -> impl IntoView {
    let c = ctx();
    let ops = RwSignal::new(Vec::<PaymentOperation>::new());
    let (from, to, amount) =
        (RwSignal::new(me.to_string()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    let recipient = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<String>);
    let resolve = move |_| {
        recipient.set(None);
        match to.get().trim().parse::<Target>() {
            Ok(Target::Key(k)) => {
                let api = c.api();
                spawn_local(async move {
                    match api.resolve_key(&k).await {
                        Ok(info) => recipient.set(Some(format!("{} — {}", info.name, info.ibk))),
                        Err(e) => error.set(Some(e)),
                    }
                });
            }
            Ok(Target::Ibk(i)) => recipient.set(Some(i.to_string())),
            Err(_) => error.set(Some(t(c.lang.get(), "err_to").to_string())),
        }
    };
    let add = move |_| {
        error.set(None);
        let Some(amount_v) = parse_brl(&amount.get()).ok().and_then(|v| v.parse().ok()) else {
            error.set(Some(t(c.lang.get(), "err_amount").to_string()));
            return;
        };
        let Ok(target) = to.get().trim().parse::<Target>() else {
            error.set(Some(t(c.lang.get(), "err_to").to_string()));
            return;
        };
        let Ok(origin) = from.get().parse::<Ibk>() else {
            error.set(Some(t(c.lang.get(), "err_ibk").to_string()));
            return;
        };
        ops.update(|o| o.push(PaymentOperation { from: origin, to: target, amount: amount_v }));
        to.set(String::new());
        amount.set(String::new());
        recipient.set(None);
    };
    let send = Action::new_local(move |body: &Pay| {
        let (api, body) = (c.api(), body.clone());
        async move {
            match api.pay(&body).await {
                Ok(tx) => {
                    result.set(Some(format!(
                        "{}{} ({})",
                        t(c.lang.get_untracked(), "sent"),
                        tx.id,
                        t(c.lang.get_untracked(), status_key(tx.status))
                    )));
                    sent.update(|s| s.insert(0, tx));
                    ops.set(Vec::new());
                    refresh.bump();
                }
                Err(e) => error.set(Some(e)),
            }
        }
    });
    let busy = send.pending();
    let submit = move |_| {
        let operations = ops.get();
        if !operations.is_empty() {
            error.set(None);
            send.dispatch_local(Pay { author: me, operations });
        }
    };
    view! {
        <section>
            <h2>{c.t("transfer")}</h2>
            <div class="row">
                <div>
                    <label for="op-from">{c.t("from")}</label>
                    <select id="op-from" on:change=move |ev| from.set(event_target_value(&ev))>
                        <option value=me.to_string()>{me.to_string()}</option>
                        {move || accounts.get().into_iter().filter(|a| *a != me).map(|a| {
                            view! { <option value=a.to_string()>{a.to_string()}</option> }
                        }).collect_view()}
                    </select>
                </div>
                <div>
                    <label for="op-to">{c.t("to")}</label>
                    <input id="op-to" prop:value=move || to.get() on:input=move |ev| to.set(event_target_value(&ev)) />
                </div>
                <div>
                    <label for="op-amount">{c.t("amount")}</label>
                    <input id="op-amount" inputmode="decimal" prop:value=move || amount.get()
                        on:input=move |ev| amount.set(event_target_value(&ev)) />
                </div>
            </div>
            <div class="row">
                <button id="op-resolve" on:click=resolve>{c.t("resolve")}</button>
                <button id="op-add" on:click=add>{c.t("add_operation")}</button>
            </div>
            <p id="op-recipient">{move || recipient.get()}</p>
            <ol id="ops">
                {move || ops.get().into_iter().enumerate().map(|(i, o)| view! {
                    <li>
                        {format!("{} → {}: {}", o.from, o.to, crate::format::brl(o.amount.money()))}
                        " "
                        <button class="link op-remove" on:click=move |_| ops.update(|list| {
                            if i < list.len() {
                                list.remove(i);
                            }
                        })>{c.t("remove")}</button>
                    </li>
                }).collect_view()}
            </ol>
            <Show when=move || !ops.get().is_empty()>
                <p id="ops-total">{move || format!("{} {}", t(c.lang.get(), "total"), crate::format::brl(total(&ops.get())))}</p>
                <button class="link" id="ops-clear" on:click=move |_| ops.set(Vec::new())>{c.t("clear")}</button>
            </Show>
            <button id="package-send" prop:disabled=move || busy.get() || ops.get().is_empty() on:click=submit>
                {c.t("send_package")}
            </button>
            <p class="error" id="package-error">{move || error.get()}</p>
            <p class="ok" id="package-result">{move || result.get()}</p>
        </section>
    }
}
