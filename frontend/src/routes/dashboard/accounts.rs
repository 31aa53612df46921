//! The person's accounts: at this bank in full (joint accounts with who still has to confirm,
//! and a button for the holder whose confirmation is missing), and at other banks as those
//! banks describe them. A joint account is opened here, by one of its holders.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{Account, AccountStatus, AccountType, AllAccounts, CreateAccount};
use shared::{Document, Ibk};

use super::Refresh;
use crate::app::ctx;
use crate::format::brl;
use crate::i18n::t;

#[component]
pub fn MyAccounts(
    all: LocalResource<Option<AllAccounts>>,
    me: Ibk,
    person: Option<Document>,
    refresh: Refresh,
) -> impl IntoView {
    let c = ctx();
    let error = RwSignal::new(None::<String>);
    let confirm = move |id: u64| {
        let api = c.api();
        spawn_local(async move {
            match api.confirm_joint(id).await {
                Ok(_) => refresh.bump(),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let person_for_rows = person.clone();
    let row = move |a: Account| {
        let waiting: Vec<String> = a.pending_documents.iter().map(Document::formatted).collect();
        let mine = person_for_rows.as_ref().is_some_and(|p| a.pending_documents.contains(p));
        let id = a.id.get();
        let status = match a.status {
            AccountStatus::Active => String::new(),
            AccountStatus::PendingHolders => {
                format!("{} {}", t(c.lang.get_untracked(), "waiting_for"), waiting.join(", "))
            }
        };
        view! {
            <tr class=if a.ibk == me { "me" } else { "" }>
                <td>{a.ibk.to_string()}</td><td>{a.name.clone()}</td><td>{brl(a.balance)}</td>
                <td class="joint-status">{status}</td>
                <td>{mine.then(|| view! {
                    <button class="confirm-joint" on:click=move |_| confirm(id)>{c.t("confirm_joint")}</button>
                })}</td>
            </tr>
        }
    };
    view! {
        <section>
            <h2>{c.t("my_accounts")}</h2>
            <table id="accounts">
                <For each=move || all.get().flatten().map(|a| a.accounts).unwrap_or_default()
                    key=|a| (a.ibk, a.balance, a.pending_documents.len()) children=row />
                <For each=move || all.get().flatten().map(|a| a.elsewhere).unwrap_or_default() key=|a| a.ibk
                    children=move |a| view! {
                        <tr class="elsewhere"><td>{a.ibk.to_string()}</td><td>{a.name.clone()}</td><td>"—"</td><td></td><td></td></tr>
                    } />
            </table>
            <p class="error" id="accounts-error">{move || error.get()}</p>
            {person.map(|p| view! { <OpenJoint person=p refresh=refresh /> })}
        </section>
    }
}

/// Opens a joint account of this person and other holders of this bank; it waits for each of
/// them to confirm it with their own session.
#[component]
fn OpenJoint(person: Document, refresh: Refresh) -> impl IntoView {
    let c = ctx();
    let (name, others, password) =
        (RwSignal::new(String::new()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    let error = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<String>);
    let open = Action::new_local(move |body: &CreateAccount| {
        let (api, body) = (c.api(), body.clone());
        async move {
            match api.open(&body).await {
                Ok(a) => {
                    result.set(Some(format!("{}{}", t(c.lang.get_untracked(), "account_opened"), a.ibk)));
                    refresh.bump();
                }
                Err(r) => error.set(Some(r.text)),
            }
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        let mut documents = vec![person.clone()];
        for d in others.get().split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match d.parse::<Document>() {
                Ok(doc) => documents.push(doc),
                Err(_) => {
                    error.set(Some(format!("{}{d}", t(c.lang.get(), "err_document"))));
                    return;
                }
            }
        }
        open.dispatch_local(CreateAccount {
            name: name.get(),
            documents,
            kind: AccountType::Joint,
            password: password.get(),
        });
    };
    view! {
        <form id="joint-form" on:submit=submit>
            <h3>{c.t("open_joint")}</h3>
            <label for="joint-name">{c.t("name")}</label>
            <input id="joint-name" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
            <label for="joint-others">{c.t("other_holders")}</label>
            <input id="joint-others" prop:value=move || others.get() on:input=move |ev| others.set(event_target_value(&ev)) />
            <label for="joint-password">{c.t("password")}</label>
            <input id="joint-password" type="password" prop:value=move || password.get()
                on:input=move |ev| password.set(event_target_value(&ev)) />
            <button id="joint-open" type="submit" prop:disabled=move || open.pending().get()>{c.t("open_joint")}</button>
            <p class="error" id="joint-error">{move || error.get()}</p>
            <p class="ok" id="joint-result">{move || result.get()}</p>
        </form>
    }
}
