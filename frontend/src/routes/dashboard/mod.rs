//! The dashboard: balance, deposit and withdraw, the package builder, accounts in every bank,
//! Pix keys, and the statement.
//!
//! One [`Refresh`] counter drives every resource of the page: an interval bumps it every
//! [`REFRESH_MS`] (so package statuses move on their own) and every mutation bumps it when it
//! ends. The interval belongs to the page: it is cleared when the page is left (logout), so a
//! closed session polls nothing and a new login starts exactly one.

mod accounts;
mod consents;
mod keys;
mod money;
mod packages;
mod statement;

use std::time::Duration;

use leptos::prelude::*;
use shared::api::{Status, Transaction};

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
    if let Ok(handle) = set_interval_with_handle(move || refresh.bump(), Duration::from_millis(REFRESH_MS)) {
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
    // Packages sent from this page, their statuses fetched again at each refresh while open.
    let sent = RwSignal::new(Vec::<Transaction>::new());
    let balance = move || account.get().flatten().map_or(session.account.balance, |a| a.balance);
    view! {
        <section>
            <h2>{c.t("balance")} " — " {me.to_string()}</h2>
            <p class="balance" id="balance">{move || crate::format::brl(balance())}</p>
            <money::MoveMoney me=me refresh=refresh />
        </section>
        <packages::PackageBuilder me=me accounts=accounts sent=sent refresh=refresh />
        <accounts::MyAccounts all=all me=me person=person refresh=refresh />
        <consents::Consents me=me refresh=refresh />
        <keys::Keys me=me refresh=refresh />
        <statement::Statement id=id sent=sent refresh=refresh />
    }
    .into_any()
}
