//! Consents: which other banks may debit this account, how much, until when, and a revoke
//! button each; and linking an account at another bank — signing in there with that bank's
//! credentials and consenting, at that bank, to this bank's debits.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{Consent, ConsentStatus, CreateConsent, Login};
use shared::{BankId, Ibk};

use super::Refresh;
use crate::api::Api;
use crate::app::ctx;
use crate::format::{brl, parse_brl};
use crate::i18n::t;

fn status_word(s: ConsentStatus) -> &'static str {
    match s {
        ConsentStatus::Active => "consent_state_active",
        ConsentStatus::Revoked => "consent_state_revoked",
        ConsentStatus::Expired => "consent_state_expired",
    }
}

#[component]
pub fn Consents(me: Ibk, refresh: Refresh) -> impl IntoView {
    let c = ctx();
    let list = LocalResource::new(move || {
        refresh.track();
        let api = c.api();
        async move { api.consents(me).await.map(|l| l.consents).unwrap_or_default() }
    });
    let error = RwSignal::new(None::<String>);
    let revoke = move |id: String| {
        let api = c.api();
        spawn_local(async move {
            match api.revoke_consent(&id).await {
                Ok(()) => refresh.bump(),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <section>
            <h2>{c.t("consents")}</h2>
            <table id="consents">
                <For each=move || list.get().unwrap_or_default() key=|k: &Consent| (k.id.clone(), k.used, k.status as u8)
                    children=move |k: Consent| {
                        let id = k.id.clone();
                        let active = k.status == ConsentStatus::Active;
                        view! {
                            <tr>
                                <td>{format!("{} {}", t(c.lang.get_untracked(), "bank"), k.grantee_bank)}</td>
                                <td>{format!("{} / {}", brl(k.used), brl(k.amount_max))}</td>
                                <td>{k.expires_at.chars().take(10).collect::<String>()}</td>
                                <td>{t(c.lang.get_untracked(), status_word(k.status))}</td>
                                <td>{active.then(|| view! {
                                    <button class="revoke" on:click=move |_| revoke(id.clone())>{c.t("revoke")}</button>
                                })}</td>
                            </tr>
                        }
                    } />
            </table>
            <p class="error" id="consents-error">{move || error.get()}</p>
            <LinkAccount me=me refresh=refresh />
        </section>
    }
}

/// Links an account of this person at another bank: signs in there (that bank's credentials,
/// never this bank's), consents there to this bank's debits up to a limit, and signs out.
#[component]
fn LinkAccount(me: Ibk, refresh: Refresh) -> impl IntoView {
    let c = ctx();
    // The other banks, as this bank's network lists them, with where their customers go.
    let banks = LocalResource::new(move || {
        let api = c.api();
        async move {
            api.banks()
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|b| b.id != me.bank && !b.urls.is_empty())
                .collect::<Vec<_>>()
        }
    });
    let bank = RwSignal::new(None::<u32>);
    let (ibk, password, limit) =
        (RwSignal::new(String::new()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    let error = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        result.set(None);
        let lang = c.lang.get();
        let Ok(account) = ibk.get().trim().parse::<Ibk>() else {
            error.set(Some(t(lang, "err_ibk").to_string()));
            return;
        };
        let Some(amount_max) = parse_brl(&limit.get()).ok().and_then(|v| v.parse().ok()) else {
            error.set(Some(t(lang, "err_amount").to_string()));
            return;
        };
        let list = banks.get().unwrap_or_default();
        let chosen = bank.get().or_else(|| list.first().map(|b| b.id.get()));
        let Some(base) = list.iter().find(|b| Some(b.id.get()) == chosen).and_then(|b| b.urls.first().cloned()) else {
            return;
        };
        let grantee_bank: BankId = me.bank;
        let password = password.get();
        spawn_local(async move {
            let there = Api { base, token: None, lang };
            let session = match there.login(&Login { ibk: account, password }).await {
                Ok(s) => s,
                Err(e) => return error.set(Some(e)),
            };
            let there = Api { token: Some(session.token), ..there };
            let made =
                there.create_consent(&CreateConsent { account, grantee_bank, amount_max, expires_at: None }).await;
            let _ = there.logout().await;
            match made {
                Ok(k) => {
                    result.set(Some(format!("{} {} — {}", t(lang, "linked"), k.account, brl(k.amount_max))));
                    refresh.bump();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <form id="link-form" on:submit=submit>
            <h3>{c.t("link_account")}</h3>
            <label for="link-bank">{c.t("bank")}</label>
            <select id="link-bank" on:change=move |ev| bank.set(event_target_value(&ev).parse().ok())>
                {move || banks.get().unwrap_or_default().into_iter().map(|b| {
                    view! { <option value=b.id.to_string()>{b.name.clone()}</option> }
                }).collect_view()}
            </select>
            <label for="link-ibk">{c.t("ibk")}</label>
            <input id="link-ibk" prop:value=move || ibk.get() on:input=move |ev| ibk.set(event_target_value(&ev)) />
            <label for="link-password">{c.t("password")}</label>
            <input id="link-password" type="password" prop:value=move || password.get()
                on:input=move |ev| password.set(event_target_value(&ev)) />
            <label for="link-limit">{c.t("consent_total")}</label>
            <input id="link-limit" inputmode="decimal" prop:value=move || limit.get()
                on:input=move |ev| limit.set(event_target_value(&ev)) />
            <button id="link-send" type="submit">{c.t("link_account")}</button>
            <p class="error" id="link-error">{move || error.get()}</p>
            <p class="ok" id="link-result">{move || result.get()}</p>
        </form>
    }
}
