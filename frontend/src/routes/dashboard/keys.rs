//! The customer's Pix keys: list, register (one action), remove (one action).

use leptos::prelude::*;
use shared::Ibk;
use shared::api::{KeyInfo, RegisterKey};
use shared::pix::{KeyType, PixKey};

use super::Refresh;
use crate::app::ctx;
use crate::i18n::t;

#[component]
pub fn Keys(me: Ibk, refresh: Refresh) -> impl IntoView {
    let c = ctx();
    let id = me.account.get();
    let keys = LocalResource::new(move || {
        refresh.track();
        let api = c.api();
        async move { api.keys(id).await.unwrap_or_default() }
    });
    let (kind, key) = (RwSignal::new(KeyType::Email), RwSignal::new(String::new()));
    let error = RwSignal::new(None::<String>);
    let add = Action::new_local(move |body: &RegisterKey| {
        let (api, body) = (c.api(), body.clone());
        async move {
            match api.add_key(&body).await {
                Ok(_) => {
                    key.set(String::new());
                    refresh.bump();
                }
                Err(e) => error.set(Some(e)),
            }
        }
    });
    let remove = Action::new_local(move |k: &PixKey| {
        let (api, k) = (c.api(), k.clone());
        async move {
            if let Err(e) = api.remove_key(&k).await {
                error.set(Some(e));
            }
            refresh.bump();
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        let k = kind.get();
        let value = key.get().trim().to_string();
        if k != KeyType::Random && PixKey::parse_as(k, &value).is_err() {
            error.set(Some(t(c.lang.get(), "err_key").to_string()));
            return;
        }
        let key = (k != KeyType::Random).then_some(value);
        add.dispatch_local(RegisterKey { account: me, kind: k, key });
    };
    let busy = add.pending();
    let kind_of = |v: &str| match v {
        "phone" => KeyType::Phone,
        "cpf" => KeyType::Cpf,
        "cnpj" => KeyType::Cnpj,
        "random" => KeyType::Random,
        _ => KeyType::Email,
    };
    view! {
        <section>
            <h2>{c.t("pix_keys")}</h2>
            <ul id="keys">
                <For each=move || keys.get().unwrap_or_default() key=|k| k.key.to_string() children=move |k: KeyInfo| {
                    let key = k.key.clone();
                    view! { <li>{k.key.to_string()} " " <button type="button" class="link" on:click=move |_| { remove.dispatch_local(key.clone()); }>{c.t("remove")}</button></li> }
                } />
            </ul>
            <form id="keys-form" on:submit=submit>
            <div class="row">
                <div>
                    <label for="key-type">{c.t("key_type")}</label>
                    <select id="key-type" on:change=move |ev| kind.set(kind_of(&event_target_value(&ev)))>
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
            <button id="key-add" type="submit" prop:disabled=move || busy.get()>{c.t("add_key")}</button>
            <p class="error" id="key-error">{move || error.get()}</p>
            </form>
        </section>
    }
}
