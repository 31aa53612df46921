//! The package builder: operations from the customer's accounts to an IBK or a Pix key, each
//! recipient checked at its bank (masked name) before it can be added, reviewed with the total,
//! then sent as one all-or-nothing package. Its status is followed in the statement.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{Pay, PaymentOperation};
use shared::{Ibk, Target};

use super::Refresh;
use crate::app::ctx;
use crate::format::{brl, parse_brl};
use crate::i18n::t;

/// An operation in the builder, with the recipient as its bank named it.
#[derive(Debug, Clone)]
pub struct Planned {
    op: PaymentOperation,
    /// "Bia S**** (2-3)".
    recipient: String,
}

/// What a package debits in all: the sum of its operations (shown before it is sent).
fn total(ops: &[Planned]) -> shared::Money {
    ops.iter().fold(shared::Money::ZERO, |sum, o| sum.checked_add(o.op.amount.money()).unwrap_or(shared::Money::MAX))
}

/// Asks the recipient's bank who `target` is: "name (ibk)", or why it cannot be paid.
async fn check(api: crate::api::Api, target: Target) -> Result<String, String> {
    let lang = api.lang;
    match target {
        Target::Key(k) => api.resolve_key(&k).await.map(|i| format!("{} ({})", i.name, i.ibk)),
        Target::Ibk(i) => {
            let card = api.recipient(i).await?;
            if card.active {
                Ok(format!("{} ({})", card.name, card.ibk))
            } else {
                Err(t(lang, "err_inactive").to_string())
            }
        }
    }
}

#[component]
pub fn PackageBuilder(
    me: Ibk,
    accounts: Signal<Vec<Ibk>>,
    /// The operations planned so far: the dashboard's, so they outlive a visit to another tab.
    ops: RwSignal<Vec<Planned>>,
    refresh: Refresh,
) -> impl IntoView {
    let c = ctx();
    let (from, to, amount) =
        (RwSignal::new(me.to_string()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    // The recipient of what is typed in "to", once checked: (typed text, "name (ibk)").
    let recipient = RwSignal::new(None::<(String, String)>);
    let (to_error, amount_error) = (RwSignal::new(None::<String>), RwSignal::new(None::<String>));
    let error = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<String>);
    let reviewing = RwSignal::new(false);
    let checking = RwSignal::new(false);
    // Checks "to" at its bank; on success runs `then` with the recipient's name.
    let check_to = move |then: Option<Box<dyn FnOnce(String)>>| {
        to_error.set(None);
        let typed = to.get_untracked().trim().to_string();
        let Ok(target) = typed.parse::<Target>() else {
            to_error.set(Some(t(c.lang.get_untracked(), "err_to").to_string()));
            return;
        };
        if let Some((_, name)) = recipient.get_untracked().filter(|(text, _)| *text == typed) {
            if let Some(f) = then {
                f(name);
            }
            return;
        }
        checking.set(true);
        let api = c.api();
        spawn_local(async move {
            match check(api, target).await {
                Ok(name) => {
                    recipient.set(Some((typed, name.clone())));
                    if let Some(f) = then {
                        f(name);
                    }
                }
                Err(e) => {
                    recipient.set(None);
                    to_error.set(Some(e));
                }
            }
            checking.set(false);
        });
    };
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        result.set(None);
        amount_error.set(None);
        let Some(amount_v) = parse_brl(&amount.get()).ok().and_then(|v| v.parse().ok()) else {
            amount_error.set(Some(t(c.lang.get(), "err_amount").to_string()));
            return;
        };
        let Ok(origin) = from.get().parse::<Ibk>() else {
            error.set(Some(t(c.lang.get(), "err_ibk").to_string()));
            return;
        };
        let Ok(target) = to.get().trim().parse::<Target>() else {
            to_error.set(Some(t(c.lang.get(), "err_to").to_string()));
            return;
        };
        // Added only once its bank has named the recipient: a key or IBK that does not exist
        // never reaches the package.
        check_to(Some(Box::new(move |name| {
            ops.update(|o| {
                o.push(Planned { op: PaymentOperation { from: origin, to: target, amount: amount_v }, recipient: name })
            });
            to.set(String::new());
            amount.set(String::new());
            recipient.set(None);
        })));
    };
    let send = Action::new_local(move |body: &Pay| {
        let (api, body) = (c.api(), body.clone());
        async move {
            match api.pay(&body).await {
                Ok(tx) => {
                    // Its status lives in the statement, which follows it; this line does not
                    // repeat a status that would go stale.
                    let total = tx.total().map(brl).unwrap_or_default();
                    result.set(Some(format!("{}{total}", t(c.lang.get_untracked(), "sent"))));
                    ops.set(Vec::new());
                    reviewing.set(false);
                    refresh.bump();
                }
                Err(e) => error.set(Some(e)),
            }
        }
    });
    let busy = send.pending();
    let confirm = move |_| {
        let operations: Vec<PaymentOperation> = ops.get().into_iter().map(|p| p.op).collect();
        if !operations.is_empty() {
            error.set(None);
            send.dispatch_local(Pay { author: me, operations });
        }
    };
    let list = move || {
        ops.get()
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                view! {
                    <li>
                        <span class="op-line">{format!("{} → {}", p.op.from, p.recipient)}</span>
                        <span class="op-amount">{brl(p.op.amount.money()).replace(' ', "\u{a0}")}</span>
                        <Show when=move || !reviewing.get()>
                            <button type="button" class="link op-remove" on:click=move |_| ops.update(|list| {
                                if i < list.len() {
                                    list.remove(i);
                                }
                            })>{c.t("remove")}</button>
                        </Show>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <section>
            <h2>{c.t("pay_title")}</h2>
            <form id="op-form" on:submit=add>
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
                        <input id="op-to" prop:value=move || to.get() on:input=move |ev| {
                            to.set(event_target_value(&ev));
                            to_error.set(None);
                        } />
                        <p class="error field-error" id="op-to-error">{move || to_error.get()}</p>
                    </div>
                    <div>
                        <label for="op-amount">{c.t("amount")}</label>
                        <input id="op-amount" inputmode="decimal" placeholder="0,00" prop:value=move || amount.get()
                            on:input=move |ev| amount.set(event_target_value(&ev)) />
                        <p class="error field-error" id="op-amount-error">{move || amount_error.get()}</p>
                    </div>
                </div>
                <p id="op-recipient" class="ok">{move || recipient.get().filter(|(text, _)| *text == to.get().trim()).map(|(_, name)| name)}</p>
                <div class="row buttons">
                    <button id="op-resolve" type="button" class="secondary" prop:disabled=move || checking.get()
                        on:click=move |_| check_to(None)>{c.t("resolve")}</button>
                    <button id="op-add" type="submit" prop:disabled=move || checking.get() || reviewing.get()>{c.t("add_operation")}</button>
                </div>
            </form>
            <ol id="ops">{list}</ol>
            <Show when=move || !ops.get().is_empty()>
                <p id="ops-total">{move || format!("{} {}", t(c.lang.get(), "total"), brl(total(&ops.get())))}</p>
                <Show when=move || !reviewing.get()
                    fallback=move || view! {
                        <div class="review" id="review">
                            <p>{c.t("review_text")}</p>
                            <div class="row buttons">
                                <button id="package-send" type="button" prop:disabled=move || busy.get() on:click=confirm>
                                    {c.t("confirm_send")}
                                </button>
                                <button id="review-back" type="button" class="secondary" on:click=move |_| reviewing.set(false)>
                                    {c.t("back")}
                                </button>
                            </div>
                        </div>
                    }>
                    <div class="row buttons">
                        <button id="package-review" type="button" on:click=move |_| reviewing.set(true)>{c.t("review")}</button>
                        <button type="button" class="link" id="ops-clear" on:click=move |_| ops.set(Vec::new())>{c.t("clear")}</button>
                    </div>
                </Show>
            </Show>
            <p class="error" id="package-error">{move || error.get()}</p>
            <p class="ok" id="package-result">{move || result.get()}</p>
        </section>
    }
}
