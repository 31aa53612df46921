//! Deposit and withdraw from the customer's own account: one action each way.

use leptos::prelude::*;
use shared::Ibk;
use shared::api::AccountPayment;

use super::Refresh;
use crate::app::ctx;
use crate::format::parse_brl;
use crate::i18n::t;

#[component]
pub fn MoveMoney(me: Ibk, refresh: Refresh) -> impl IntoView {
    let c = ctx();
    let amount = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let act = Action::new_local(move |(deposit, body): &(bool, AccountPayment)| {
        let (api, deposit, body) = (c.api(), *deposit, body.clone());
        async move {
            let r = api.move_money(deposit, &body).await;
            match &r {
                Ok(_) => {
                    amount.set(String::new());
                    refresh.bump();
                }
                Err(e) => error.set(Some(e.clone())),
            }
            r
        }
    });
    let submit = move |deposit: bool| {
        let Some(value) = parse_brl(&amount.get()).ok().and_then(|v| v.parse().ok()) else {
            error.set(Some(t(c.lang.get(), "err_amount").to_string()));
            return;
        };
        error.set(None);
        act.dispatch_local((deposit, AccountPayment { acc_ibk: me, amount: value }));
    };
    let busy = act.pending();
    // Enter submits the form's first button, the deposit: of the two, the one that cannot
    // take money out by surprise.
    view! {
        <form id="money-form" on:submit=move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            submit(true);
        }>
            <label for="amount">{c.t("amount")}</label>
            <input id="amount" inputmode="decimal" placeholder="1.234,56" prop:value=move || amount.get()
                on:input=move |ev| amount.set(event_target_value(&ev)) />
            <p class="error field-error" id="money-error">{move || error.get()}</p>
            <div class="row buttons">
                <button id="deposit" type="submit" prop:disabled=move || busy.get()>{c.t("deposit")}</button>
                <button id="withdraw" type="button" class="secondary" prop:disabled=move || busy.get() on:click=move |_| submit(false)>{c.t("withdraw")}</button>
            </div>
        </form>
    }
}
