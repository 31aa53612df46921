//! Choose a bank of the local network by name, or type another replica's address.

use leptos::prelude::*;

use crate::api::{Bank, local_banks};
use crate::app::ctx;

#[component]
pub fn ChooseBank() -> impl IntoView {
    let c = ctx();
    let banks = local_banks();
    let choice = RwSignal::new(banks.first().map(|b| b.base.clone()).unwrap_or_default());
    let custom = RwSignal::new(String::new());
    let options = banks.clone();
    let go = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let base = if custom.get().trim().is_empty() {
            choice.get()
        } else {
            custom.get().trim().trim_end_matches('/').to_string()
        };
        let name = banks.iter().find(|b| b.base == base).map_or_else(|| base.clone(), |b| b.name.clone());
        c.bank.set(Some(Bank { name, base }));
    };
    view! {
        <form id="bank-form" class="card" on:submit=go>
            <h2>{c.t("choose_bank")}</h2>
            <label for="bank-select">{c.t("bank")}</label>
            <select id="bank-select" on:change=move |ev| choice.set(event_target_value(&ev))>
                {options.into_iter().map(|b| view! { <option value=b.base.clone()>{b.name.clone()}</option> }).collect_view()}
            </select>
            // A replica's address is for operators and developers, not something a customer
            // should meet on the way in.
            <details id="bank-advanced">
                <summary>{c.t("advanced")}</summary>
                <label for="bank-custom">{c.t("custom_address")}</label>
                <input id="bank-custom" placeholder="http://127.0.0.1:3101" prop:value=move || custom.get()
                    on:input=move |ev| custom.set(event_target_value(&ev)) />
            </details>
            <button id="bank-continue" type="submit">{c.t("continue")}</button>
        </form>
    }
}
