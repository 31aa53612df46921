//! The dashboard: a greeting and the balance, then tabs — Início (deposit and withdraw, the
//! statement), Pix (the package builder), Extrato, Chaves (Pix keys), Contas (accounts in every
//! bank, consents). Only the open tab is mounted, so only its resources load.
//!
//! One [`Refresh`] counter drives every resource of the page: each event of the account's
//! stream ([`push`]) bumps it, an interval bumps it every [`REFRESH_MS`] while that stream is
//! down (so the page never goes stale), and every mutation bumps it when it ends. The stream and
//! the interval belong to the page: they end when it is left (logout), so a closed session
//! polls and listens to nothing, and a new login starts exactly one of each.

mod accounts;
mod consents;
mod keys;
mod money;
mod packages;
mod push;
mod statement;

use std::time::Duration;

use leptos::prelude::*;
use shared::api::Status;

use crate::app::ctx;

/// How often the dashboard refreshes.
pub const REFRESH_MS: u64 = 2_000;

/// Bumped to refetch every resource of the dashboard.
#[derive(Debug, Clone, Copy)]
pub struct Refresh(RwSignal<u64>);

impl Refresh {
    pub fn bump(self) {
        self.0.update(|n| *n = n.wrapping_add(1));
    }

    /// Subscribes the calling resource to refreshes.
    pub fn track(self) {
        self.0.track();
    }
}

pub fn status_key(s: Status) -> &'static str {
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
    let refresh = Refresh(RwSignal::new(0));
    // Server push while its stream is open; polling only while it is not.
    let live = RwSignal::new(false);
    push::start(c, id, refresh, live);
    let poll = move || {
        if !live.get_untracked() {
            refresh.bump();
        }
    };
    if let Ok(handle) = set_interval_with_handle(poll, Duration::from_millis(REFRESH_MS)) {
        on_cleanup(move || handle.clear());
    }
    let account = LocalResource::new(move || {
        refresh.track();
        let api = c.api();
        async move { api.account(id).await.ok() }
    });
    let all = LocalResource::new(move || {
        refresh.track();
        let api = c.api();
        async move { api.all(id).await.ok() }
    });
    // The accounts a package may debit: this bank's, and those linked at other banks.
    let accounts = Signal::derive(move || {
        all.get().flatten().map_or_else(Vec::new, |a| {
            a.accounts.iter().map(|x| x.ibk).chain(a.elsewhere.iter().map(|x| x.ibk)).collect::<Vec<_>>()
        })
    });
    let person = shared::api::person_of(session.account.kind, &session.account.documents).cloned();
    let balance = move || account.get().flatten().map_or(session.account.balance, |a| a.balance);
    let planned = RwSignal::new(Vec::<packages::Planned>::new());
    let tab = RwSignal::new(Tab::from_hash(&location_hash()));
    Effect::new(move || set_location_hash(tab.get().hash()));
    let first_name = session.account.name.split_whitespace().next().unwrap_or_default().to_string();
    let tab_button = move |t: Tab| {
        view! {
            <button type="button" role="tab" id=format!("tab-{}", t.hash()) class="tab"
                class:active=move || tab.get() == t aria-selected=move || (tab.get() == t).to_string()
                on:click=move |_| tab.set(t)>{c.t(t.label())}</button>
        }
    };
    view! {
        <section class="summary">
            <p class="greeting" id="greeting">{move || format!("{}, {first_name}", crate::i18n::t(c.lang.get(), "hello"))}</p>
            <p class="account-line">{c.t("account")} " " {me.to_string()}</p>
            <p class="balance" id="balance">{move || crate::format::brl(balance()).replace(' ', "\u{a0}")}</p>
            <p class="live" id="live" class:on=move || live.get()>
                {move || crate::i18n::t(c.lang.get(), if live.get() { "live_on" } else { "live_off" })}
            </p>
        </section>
        <nav class="tabs" role="tablist">
            {Tab::ALL.map(tab_button)}
        </nav>
        {move || match tab.get() {
            Tab::Home => view! {
                <section>
                    <h2>{c.t("move_money")}</h2>
                    <money::MoveMoney me=me refresh=refresh />
                </section>
                <statement::Statement id=id me=me refresh=refresh />
            }.into_any(),
            Tab::Pay => view! {
                <packages::PackageBuilder me=me accounts=accounts ops=planned refresh=refresh />
            }.into_any(),
            Tab::Statement => view! { <statement::Statement id=id me=me refresh=refresh /> }.into_any(),
            Tab::Keys => view! { <keys::Keys me=me refresh=refresh /> }.into_any(),
            Tab::Accounts => {
                let person = person.clone();
                view! {
                    <accounts::MyAccounts all=all me=me person=person refresh=refresh />
                    <consents::Consents me=me refresh=refresh />
                }.into_any()
            }
        }}
    }
    .into_any()
}

/// The dashboard's tabs, each with its address (`#pix`), so a reload or a link opens it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Home,
    Pay,
    Statement,
    Keys,
    Accounts,
}

impl Tab {
    const ALL: [Tab; 5] = [Tab::Home, Tab::Pay, Tab::Statement, Tab::Keys, Tab::Accounts];

    fn hash(self) -> &'static str {
        match self {
            Tab::Home => "inicio",
            Tab::Pay => "pix",
            Tab::Statement => "extrato",
            Tab::Keys => "chaves",
            Tab::Accounts => "contas",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tab::Home => "tab_home",
            Tab::Pay => "tab_pay",
            Tab::Statement => "tab_statement",
            Tab::Keys => "tab_keys",
            Tab::Accounts => "tab_accounts",
        }
    }

    fn from_hash(h: &str) -> Tab {
        Tab::ALL.into_iter().find(|t| t.hash() == h.trim_start_matches('#')).unwrap_or(Tab::Home)
    }
}

fn location_hash() -> String {
    web_sys::window().and_then(|w| w.location().hash().ok()).unwrap_or_default()
}

fn set_location_hash(h: &str) {
    // replaceState would need another web-sys feature; a hash change adds a history entry,
    // which is what Back between tabs should do anyway.
    if let Some(w) = web_sys::window()
        && w.location().hash().ok().as_deref() != Some(&format!("#{h}"))
    {
        let _ = w.location().set_hash(h);
    }
}
