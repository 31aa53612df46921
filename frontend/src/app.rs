//! The app shell: language, chosen bank and session, shared with every page through context.

use leptos::prelude::*;
use shared::api::Session;

use crate::api::{Api, Bank};
use crate::i18n::{Lang, t};
use crate::routes::{
    auth::{LogIn, SignUp},
    bank::ChooseBank,
    dashboard::Dashboard,
};

#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub lang: RwSignal<Lang>,
    pub bank: RwSignal<Option<Bank>>,
    pub session: RwSignal<Option<Session>>,
}

impl Ctx {
    pub fn t(self, key: &'static str) -> impl Fn() -> &'static str + Copy + 'static {
        let lang = self.lang;
        move || t(lang.get(), key)
    }

    /// The API of the chosen bank, with the session's token.
    pub fn api(&self) -> Api {
        Api {
            base: self.bank.get_untracked().map(|b| b.base).unwrap_or_default(),
            token: self.session.get_untracked().map(|s| s.token),
            lang: self.lang.get_untracked(),
        }
    }
}

pub fn ctx() -> Ctx {
    use_context::<Ctx>().unwrap_or_else(|| Ctx {
        lang: RwSignal::new(Lang::Pt),
        bank: RwSignal::new(None),
        session: RwSignal::new(None),
    })
}

#[component]
pub fn App() -> impl IntoView {
    let c = Ctx { lang: RwSignal::new(Lang::Pt), bank: RwSignal::new(None), session: RwSignal::new(None) };
    provide_context(c);
    let toggle = move |_| c.lang.update(|l| *l = if *l == Lang::Pt { Lang::En } else { Lang::Pt });
    view! {
        <header>
            <h1>"InterBank"</h1>
            <div>
                {move || c.bank.get().map(|b| b.name)}
                " "
                <button class="link" id="lang" on:click=toggle>{c.t("language")}</button>
                <Show when=move || c.session.get().is_some()>
                    <button class="link" id="logout" on:click=move |_| {
                        // Forgotten here at once; revoked at the bank so a copied token dies too.
                        let api = c.api();
                        leptos::task::spawn_local(async move {
                            let _ = api.logout().await;
                        });
                        c.session.set(None);
                    }>{c.t("log_out")}</button>
                </Show>
                <Show when=move || c.bank.get().is_some() && c.session.get().is_none()>
                    <button class="link" id="change-bank" on:click=move |_| c.bank.set(None)>{c.t("choose_bank")}</button>
                </Show>
            </div>
        </header>
        <main>
            {move || match (c.bank.get().is_some(), c.session.get().is_some()) {
                (false, _) => view! { <ChooseBank/> }.into_any(),
                (true, false) => view! { <SignUp/> <LogIn/> }.into_any(),
                (true, true) => view! { <Dashboard/> }.into_any(),
            }}
        </main>
    }
}
