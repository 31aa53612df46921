//! Open an account (with document validation shown as you type) and log in.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::Document;
use shared::api::{AccountType, CreateAccount, Login};

use crate::app::ctx;
use crate::i18n::t;

/// Why a documents field is invalid (each CPF/CNPJ checked), in the app's language.
pub fn documents_problem(lang: crate::i18n::Lang, text: &str) -> Option<String> {
    text.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .find_map(|d| d.parse::<Document>().err().map(|e| format!("{}{d} ({e})", t(lang, "err_document"))))
}

/// The sign-up field a refusal of the bank concerns, by its code (`None`: said under the button).
fn signup_field(code: shared::ErrorCode) -> Option<Field> {
    use shared::ErrorCode as E;
    match code {
        E::NameInvalid => Some(Field::Name),
        E::DocumentInvalid | E::DocumentCheckDigits | E::DocumentsInvalid | E::DocumentAlreadyHasAccount => {
            Some(Field::Documents)
        }
        E::PasswordInvalid => Some(Field::Password),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Documents,
    Password,
}

#[component]
pub fn SignUp() -> impl IntoView {
    let c = ctx();
    let (name, docs, kind, password) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new("individual".to_string()),
        RwSignal::new(String::new()),
    );
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // The bank's refusal of one field, shown beside it until that field is edited.
    let refused = RwSignal::new(None::<(Field, String)>);
    let refused_of = move |f: Field| refused.get().and_then(|(g, text)| (g == f).then_some(text));
    let edited = move |f: Field| {
        if refused.with_untracked(|r| r.as_ref().is_some_and(|(g, _)| *g == f)) {
            refused.set(None);
        }
    };
    let opened = RwSignal::new(None::<String>);
    // The document is judged once the person has left the field (or tried to submit), not at
    // the first keystroke of a number that cannot be complete yet.
    let docs_touched = RwSignal::new(false);
    let doc_problem = move || documents_problem(c.lang.get(), &docs.get());
    // Name and password are judged beside their fields once a submission was tried.
    let tried = RwSignal::new(false);
    let name_problem =
        move || (tried.get() && name.get().trim().is_empty()).then(|| t(c.lang.get(), "err_name").to_string());
    let password_problem = move || {
        let n = password.get().chars().count();
        // The server's PASSWORD_LEN_MIN..=PASSWORD_LEN_MAX (it decides; this only says so early).
        (tried.get() && !(8..=128).contains(&n)).then(|| t(c.lang.get(), "password_hint").to_string())
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        docs_touched.set(true);
        tried.set(true);
        if doc_problem().is_some() || name_problem().is_some() || password_problem().is_some() {
            return;
        }
        // Every document parsed above (doc_problem found none), so none is dropped here.
        let documents: Vec<Document> = docs.get().split(',').filter_map(|d| d.trim().parse().ok()).collect();
        // A joint account is opened from a holder's dashboard (it needs their session).
        let kind = match kind.get().as_str() {
            "legal" => AccountType::Legal,
            _ => AccountType::Individual,
        };
        let body = CreateAccount { name: name.get(), documents, kind, password: password.get() };
        let api = c.api();
        busy.set(true);
        error.set(None);
        refused.set(None);
        spawn_local(async move {
            match api.open(&body).await {
                Ok(a) => opened.set(Some(a.ibk.to_string())),
                Err(r) => match r.code.and_then(signup_field) {
                    Some(f) => refused.set(Some((f, r.text))),
                    None => error.set(Some(r.text)),
                },
            }
            busy.set(false);
        });
    };
    view! {
        <form id="signup-form" class="card" on:submit=submit>
            <h2>{c.t("sign_up")}</h2>
            <label for="signup-name">{c.t("name")}</label>
            <input id="signup-name" autocomplete="name" prop:value=move || name.get() on:input=move |ev| {
                edited(Field::Name);
                name.set(event_target_value(&ev));
            } />
            <p class="error field-error" id="signup-name-error">{move || name_problem().or_else(|| refused_of(Field::Name))}</p>
            <label for="signup-docs">{c.t("documents")}</label>
            <input id="signup-docs" inputmode="numeric" placeholder="000.000.000-00" prop:value=move || docs.get()
                on:input=move |ev| {
                    edited(Field::Documents);
                    docs.set(crate::format::mask_documents(&event_target_value(&ev)));
                } on:blur=move |_| {
                    if !docs.get().trim().is_empty() {
                        docs_touched.set(true);
                    }
                } />
            <p class="error field-error" id="signup-docs-error">
                {move || docs_touched.get().then(doc_problem).flatten().or_else(|| refused_of(Field::Documents))}
            </p>
            <label for="signup-type">{c.t("type")}</label>
            <select id="signup-type" on:change=move |ev| kind.set(event_target_value(&ev))>
                <option value="individual">{c.t("individual")}</option>
                <option value="legal">{c.t("legal")}</option>
            </select>
            <label for="signup-password">{c.t("password")}</label>
            <input id="signup-password" type="password" autocomplete="new-password" prop:value=move || password.get()
                on:input=move |ev| {
                    edited(Field::Password);
                    password.set(event_target_value(&ev));
                } />
            <p class="hint">{c.t("password_hint")}</p>
            <p class="error field-error" id="signup-password-error">
                {move || password_problem().or_else(|| refused_of(Field::Password))}
            </p>
            <button id="signup-submit" type="submit" prop:disabled=move || busy.get()>{c.t("sign_up")}</button>
            <p class="error" id="signup-error">{move || error.get()}</p>
            <p class="ok" id="signup-result">{move || opened.get().map(|i| format!("{}{i}", t(c.lang.get(), "account_opened")))}</p>
        </form>
    }
}

#[component]
pub fn LogIn() -> impl IntoView {
    let c = ctx();
    let (ibk, password) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Ok(ibk) = ibk.get().trim().parse() else {
            error.set(Some(t(c.lang.get(), "err_ibk").to_string()));
            return;
        };
        let body = Login { ibk, password: password.get() };
        let api = c.api();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api.login(&body).await {
                Ok(s) => c.session.set(Some(s)),
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <form id="login-form" class="card" on:submit=submit>
            <h2>{c.t("log_in")}</h2>
            <label for="login-ibk">{c.t("ibk")}</label>
            <input id="login-ibk" placeholder="1-1" autocomplete="username" prop:value=move || ibk.get() on:input=move |ev| ibk.set(event_target_value(&ev)) />
            <label for="login-password">{c.t("password")}</label>
            <input id="login-password" type="password" autocomplete="current-password" prop:value=move || password.get()
                on:input=move |ev| password.set(event_target_value(&ev)) />
            <button id="login-submit" type="submit" prop:disabled=move || busy.get()>{c.t("log_in")}</button>
            <p class="error" id="login-error">{move || error.get()}</p>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::documents_problem;
    use crate::i18n::Lang;

    #[test]
    fn the_documents_field_names_the_bad_document_and_why() {
        assert_eq!(documents_problem(Lang::En, "529.982.247-25"), None);
        assert_eq!(documents_problem(Lang::Pt, "529.982.247-25, 111.444.777-35"), None);
        let p = documents_problem(Lang::En, "529.982.247-25, 123.456.789-00").unwrap_or_default();
        assert!(p.starts_with("Invalid document: 123.456.789-00"), "{p}");
        let p = documents_problem(Lang::Pt, "12").unwrap_or_default();
        assert!(p.starts_with("Documento inválido: 12 ("), "{p}");
    }
}
