//! The holder's accounts in every bank of the network.

use leptos::prelude::*;
use shared::api::Account;

use crate::app::ctx;
use crate::format::brl;

#[component]
pub fn MyAccounts(accounts: LocalResource<Vec<Account>>) -> impl IntoView {
    let c = ctx();
    view! {
        <section>
            <h2>{c.t("my_accounts")}</h2>
            <table id="accounts">
                <For each=move || accounts.get().unwrap_or_default() key=|a| (a.ibk, a.balance) children=move |a: Account| view! {
                    <tr><td>{a.ibk.to_string()}</td><td>{a.name.clone()}</td><td>{brl(a.balance)}</td></tr>
                } />
            </table>
        </section>
    }
}
