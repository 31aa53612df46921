//! The dashboard: balance, deposit and withdraw, the package builder, accounts in every bank,
//! Pix keys, and the statement — refreshed every 2 s, so package statuses move on their own.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{Account, KeyInfo, StatementEntry, Status, Transaction};
use shared::{Ibk, Target};

use crate::app::ctx;
use crate::format::{brl, parse_brl};
use crate::i18n::t;

/// How often the dashboard refreshes.
const REFRESH_MS: u64 = 2_000;

fn status_key(s: Status) -> &'static str {
    match s {
        Status::Pending => "pending",
        Status::Confirmed => "confirmed",
        Status::Success => "success",
        Status::Failed => "failed",
    }
}

#[component]
pub fn Dashboard() -> impl IntoView {
    let c = ctx();
    let Some(session) = c.session.get_untracked() else { return view! { <p>"…"</p> }.into_any() };
    let me = session.account.ibk;
    let id = me.account.get();
    let account = RwSignal::new(session.account.clone());
    let accounts = RwSignal::new(Vec::<Account>::new());
    let statement = RwSignal::new(Vec::<StatementEntry>::new());
    let keys = RwSignal::new(Vec::<KeyInfo>::new());
    let sent = RwSignal::new(Vec::<Transaction>::new());

    let refresh = move || {
        let api = c.api();
        spawn_local(async move {
            if let Ok(a) = api.account(id).await {
                account.set(a);
            }
            if let Ok(s) = api.statement(id).await {
                statement.set(s.transactions);
            }
            if let Ok(all) = api.all(id).await {
                accounts.set(all.accounts);
            }
            if let Ok(k) = api.keys(id).await {
                keys.set(k);
            }
            let mut updated = Vec::new();
            for p in sent.get_untracked() {
                updated.push(api.package(&p.id).await.unwrap_or(p));
            }
            sent.set(updated);
        });
    };
    refresh();
    set_interval(refresh, Duration::from_millis(REFRESH_MS));

    view! {
        <section>
            <h2>{c.t("balance")} " — " {me.to_string()}</h2>
            <p class="balance" id="balance">{move || brl(account.get().balance)}</p>
            <MoveMoney me=me on_done=refresh />
        </section>
        <PackageBuilder me=me accounts=accounts sent=sent on_done=refresh />
        <section>
            <h2>{c.t("my_accounts")}</h2>
            <table id="accounts">
                <For each=move || accounts.get() key=|a| a.ibk children=move |a: Account| view! {
                    <tr><td>{a.ibk.to_string()}</td><td>{a.name.clone()}</td><td>{brl(a.balance)}</td></tr>
                } />
            </table>
        </section>
        <Keys me=me keys=keys on_done=refresh />
        <section>
            <h2>{c.t("statement")}</h2>
            <table id="statement">
                <tr><th>{c.t("transfer")}</th><th>{c.t("amount")}</th><th>{c.t("status")}</th><th>{c.t("balance")}</th></tr>
                {move || sent.get().into_iter().filter(|p| matches!(p.status, Status::Pending | Status::Confirmed | Status::Failed)).map(|p| {
                    let total = p.operations.iter().fold(shared::Money::ZERO, |s, o| s.checked_add(o.amount).unwrap_or(s));
                    let class = format!("package status-{}", status_key(p.status));
                    view! {
                        <tr class=class>
                            <td>{format!("{} ({})", p.id.chars().take(8).collect::<String>(), p.operations.len())}</td>
                            <td>{brl(total)}</td>
                            <td>{t(c.lang.get(), status_key(p.status))} {p.reason.clone().map(|r| format!(" — {r}"))}</td>
                            <td></td>
                        </tr>
                    }
                }).collect_view()}
                {move || statement.get().into_iter().map(|e| {
                    let tx = e.transaction;
                    let o = tx.operations.first().cloned();
                    let label = match (&o, &tx.parent_id) {
                        (Some(o), Some(p)) => format!("{} → {} [{}]", o.from, o.to, p.chars().take(8).collect::<String>()),
                        (Some(o), None) => format!("{} → {}", o.from, o.to),
                        _ => tx.id.clone(),
                    };
                    let amount = o.map(|o| brl(o.amount)).unwrap_or_default();
                    let class = format!("entry status-{}", status_key(tx.status));
                    view! {
                        <tr class=class>
                            <td>{label}</td><td>{amount}</td>
                            <td>{t(c.lang.get(), status_key(tx.status))}</td><td>{brl(e.balance)}</td>
                        </tr>
                    }
                }).collect_view()}
            </table>
        </section>
    }
    .into_any()
}

#[component]
fn MoveMoney(me: Ibk, on_done: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let c = ctx();
    let amount = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let act = move |deposit: bool| {
        let value = match parse_brl(&amount.get()) {
            Ok(v) => v,
            Err(_) => {
                error.set(Some(t(c.lang.get(), "err_amount").to_string()));
                return;
            }
        };
        let api = c.api();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api.move_money(deposit, &me.to_string(), &value).await {
                Ok(_) => {
                    amount.set(String::new());
                    on_done();
                }
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <label for="amount">{c.t("amount")}</label>
        <input id="amount" inputmode="decimal" placeholder="1.234,56" prop:value=move || amount.get()
            on:input=move |ev| amount.set(event_target_value(&ev)) />
        <div class="row">
            <button id="deposit" prop:disabled=move || busy.get() on:click=move |_| act(true)>{c.t("deposit")}</button>
            <button id="withdraw" prop:disabled=move || busy.get() on:click=move |_| act(false)>{c.t("withdraw")}</button>
        </div>
        <p class="error" id="money-error">{move || error.get()}</p>
    }
}

#[component]
fn PackageBuilder(
    me: Ibk,
    accounts: RwSignal<Vec<Account>>,
    sent: RwSignal<Vec<Transaction>>,
    on_done: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let c = ctx();
    let ops = RwSignal::new(Vec::<(String, String, String)>::new());
    let (from, to, amount) =
        (RwSignal::new(me.to_string()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    let recipient = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<String>);
    let resolve = move |_| {
        let target = to.get();
        recipient.set(None);
        match target.trim().parse::<Target>() {
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
        let Ok(value) = parse_brl(&amount.get()) else {
            error.set(Some(t(c.lang.get(), "err_amount").to_string()));
            return;
        };
        if to.get().trim().parse::<Target>().is_err() {
            error.set(Some(t(c.lang.get(), "err_to").to_string()));
            return;
        }
        ops.update(|o| o.push((from.get(), to.get().trim().to_string(), value)));
        to.set(String::new());
        amount.set(String::new());
        recipient.set(None);
    };
    let send = move |_| {
        let list = ops.get();
        if list.is_empty() {
            return;
        }
        let api = c.api();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api.pay(&me.to_string(), &list).await {
                Ok(tx) => {
                    result.set(Some(format!(
                        "{}{} ({})",
                        t(c.lang.get(), "sent"),
                        tx.id,
                        t(c.lang.get(), status_key(tx.status))
                    )));
                    sent.update(|s| s.insert(0, tx));
                    ops.set(Vec::new());
                    on_done();
                }
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <section>
            <h2>{c.t("transfer")}</h2>
            <div class="row">
                <div>
                    <label for="op-from">{c.t("from")}</label>
                    <select id="op-from" on:change=move |ev| from.set(event_target_value(&ev))>
                        <option value=me.to_string()>{me.to_string()}</option>
                        {move || accounts.get().into_iter().filter(|a| a.ibk != me).map(|a| {
                            view! { <option value=a.ibk.to_string()>{a.ibk.to_string()}</option> }
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
                {move || ops.get().into_iter().map(|(f, to, a)| view! { <li>{format!("{f} → {to}: R$ {a}")}</li> }).collect_view()}
            </ol>
            <button id="package-send" prop:disabled=move || busy.get() || ops.get().is_empty() on:click=send>
                {c.t("send_package")}
            </button>
            <p class="error" id="package-error">{move || error.get()}</p>
            <p class="ok" id="package-result">{move || result.get()}</p>
        </section>
    }
}

#[component]
fn Keys(me: Ibk, keys: RwSignal<Vec<KeyInfo>>, on_done: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let c = ctx();
    let (kind, key) = (RwSignal::new("email".to_string()), RwSignal::new(String::new()));
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let add = move |_| {
        let api = c.api();
        let (k, v) = (kind.get(), key.get());
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api.add_key(&me.to_string(), &k, v.trim()).await {
                Ok(_) => {
                    key.set(String::new());
                    on_done();
                }
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    let remove = move |k: shared::PixKey| {
        let api = c.api();
        spawn_local(async move {
            if let Err(e) = api.remove_key(&k).await {
                error.set(Some(e));
            }
            on_done();
        });
    };
    view! {
        <section>
            <h2>{c.t("pix_keys")}</h2>
            <ul id="keys">
                <For each=move || keys.get() key=|k| k.key.to_string() children=move |k: KeyInfo| {
                    let key = k.key.clone();
                    view! { <li>{k.key.to_string()} " " <button class="link" on:click=move |_| remove(key.clone())>{c.t("remove")}</button></li> }
                } />
            </ul>
            <div class="row">
                <div>
                    <label for="key-type">{c.t("key_type")}</label>
                    <select id="key-type" on:change=move |ev| kind.set(event_target_value(&ev))>
                        <option value="email">"e-mail"</option>
                        <option value="phone">"+55…"</option>
                        <option value="cpf">"CPF"</option>
                        <option value="cnpj">"CNPJ"</option>
                        <option value="random">{c.t("random")}</option>
                    </select>
                </div>
                <div>
                    <label for="key-value">{c.t("key")}</label>
                    <input id="key-value" prop:value=move || key.get() on:input=move |ev| key.set(event_target_value(&ev)) />
                </div>
            </div>
            <button id="key-add" prop:disabled=move || busy.get() on:click=add>{c.t("add_key")}</button>
            <p class="error" id="key-error">{move || error.get()}</p>
        </section>
    }
}
