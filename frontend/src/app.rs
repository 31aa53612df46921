//! The app shell: language, chosen bank and session, shared with every page through context.

use leptos::prelude::*;
use shared::api::Session;

use crate::api::{Api, Bank};
use crate::i18n::{Lang, t};
use crate::routes::{
    auth::{LogIn, SignUp},
    bank::ChooseBank,
    console::Console,
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

/// What survives a reload: the session in `sessionStorage` (this tab only, gone when it
/// closes; revoked at the bank on logout), the bank and the language in `localStorage`.
mod kept {
    use shared::api::Session;

    use crate::api::Bank;
    use crate::i18n::Lang;

    const SESSION: &str = "interbank.session";
    const BANK: &str = "interbank.bank";
    const LANG: &str = "interbank.lang";

    fn session_store() -> Option<web_sys::Storage> {
        web_sys::window()?.session_storage().ok()?
    }

    fn local_store() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok()?
    }

    fn put(store: Option<web_sys::Storage>, key: &str, value: Option<String>) {
        // A browser that refuses storage (private mode, quota) just forgets at reload.
        if let Some(s) = store {
            let _ = match value {
                Some(v) => s.set_item(key, &v),
                None => s.remove_item(key),
            };
        }
    }

    fn get(store: Option<web_sys::Storage>, key: &str) -> Option<String> {
        store?.get_item(key).ok()?
    }

    /// A kept session: (token, expiry, account id). The account itself is asked of the bank
    /// again at restore — fresh, and the app carries no code to write an `Account` as JSON.
    pub fn session() -> Option<(String, String, u64)> {
        let kept = get(session_store(), SESSION)?;
        let mut lines = kept.lines();
        let (token, expires, id) = (lines.next()?, lines.next()?, lines.next()?.parse().ok()?);
        Some((token.to_string(), expires.to_string(), id))
    }

    pub fn set_session(s: Option<&Session>) {
        put(session_store(), SESSION, s.map(|s| format!("{}\n{}\n{}", s.token, s.expires_at, s.account.id.get())));
    }

    /// The bank as kept: its name and base URL on two lines.
    pub fn bank() -> Option<Bank> {
        let kept = get(local_store(), BANK)?;
        let (name, base) = kept.split_once('\n')?;
        Some(Bank { name: name.to_string(), base: base.to_string() })
    }

    pub fn set_bank(b: Option<&Bank>) {
        put(local_store(), BANK, b.map(|b| format!("{}\n{}", b.name.replace('\n', " "), b.base)));
    }

    pub fn lang() -> Lang {
        if get(local_store(), LANG).as_deref() == Some("en") { Lang::En } else { Lang::Pt }
    }

    pub fn set_lang(l: Lang) {
        put(local_store(), LANG, Some(if l == Lang::En { "en" } else { "pt" }.to_string()));
    }
}

#[component]
pub fn App() -> impl IntoView {
    let bank = kept::bank();
    // A session is only restored together with the bank that issued it.
    let restoring = bank.as_ref().and_then(|_| kept::session());
    let c = Ctx { lang: RwSignal::new(kept::lang()), bank: RwSignal::new(bank), session: RwSignal::new(None) };
    provide_context(c);
    let restored = RwSignal::new(restoring.is_none());
    // A kept session is back once the bank honours it; refused (expired, revoked elsewhere) or
    // unanswered, it is forgotten and the customer logs in again.
    if let Some((token, expires_at, id)) = restoring {
        let api = Api { token: Some(token.clone()), ..c.api() };
        leptos::task::spawn_local(async move {
            if let Ok(account) = api.account(id).await {
                c.session.set(Some(Session { token, expires_at, account }));
            }
            restored.set(true);
        });
    }
    // The operator console, opened from the bank chooser; its key lives only in its page.
    let console = RwSignal::new(false);
    Effect::new(move || kept::set_lang(c.lang.get()));
    Effect::new(move || kept::set_bank(c.bank.get().as_ref()));
    // Kept from the restore on (before it, the session is None only because it is on its way).
    Effect::new(move || {
        let s = c.session.get();
        if restored.get() {
            kept::set_session(s.as_ref());
        }
    });
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
            {move || match (console.get(), c.bank.get().is_some(), c.session.get().is_some()) {
                (true, _, _) => view! { <Console on_close=Callback::new(move |()| console.set(false)) /> }.into_any(),
                (false, false, _) => view! {
                    <ChooseBank/>
                    <p class="operator-link">
                        <button type="button" class="link" id="operator-console" on:click=move |_| console.set(true)>
                            {c.t("console")}
                        </button>
                    </p>
                }.into_any(),
                (false, true, false) if !restored.get() => view! { <p class="loading">"…"</p> }.into_any(),
                (false, true, false) => view! { <SignUp/> <LogIn/> }.into_any(),
                (false, true, true) => view! { <Dashboard/> }.into_any(),
            }}
        </main>
    }
}
