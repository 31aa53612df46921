//! The one place that talks HTTP: a business replica's customer API, with the shared types.

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::api::{
    Account, AccountPayment, AllAccounts, Consent, Consents, CreateAccount, CreateConsent, KeyInfo, Login, Pay,
    RegisterKey, Session, Statement, Transaction,
};
use shared::{ErrorBody, PixKey};

use crate::i18n::{Lang, error_text, t};

/// `{}`: the body of a POST that carries nothing (a typed empty object, not a JSON map, so the
/// app does not carry `serde_json::Value`'s code for it).
#[derive(Debug, Serialize)]
struct Empty {}

/// A bank the app can talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bank {
    pub name: String,
    pub base: String,
}

/// The local network's banks (`interbank up`): bank N's first replica on 127.0.0.1:300N.
pub fn local_banks() -> Vec<Bank> {
    (1..=3).map(|n| Bank { name: format!("Banco {n}"), base: format!("http://127.0.0.1:{}", 3000 + n) }).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    /// The language refusals are told in.
    pub lang: Lang,
}

/// A refusal for people: the text of its stable code in their language, with the figures the
/// body carries (attempts left, balance, amount) in the app's own format; the server's message
/// (English) only for a code the app has no words for.
pub fn refusal(lang: Lang, body: ErrorBody) -> String {
    use shared::ErrorCode as E;
    let Some(text) = error_text(lang, body.error) else { return body.message };
    match (body.error, body.attempts_left, body.balance, body.amount) {
        (E::InvalidCredentials, Some(0), ..) => format!("{text}. {}.", t(lang, "attempt_last")),
        (E::InvalidCredentials, Some(1), ..) => format!("{text}. {}.", t(lang, "attempt_one_left")),
        (E::InvalidCredentials, Some(n), ..) => {
            format!("{text}. {}.", t(lang, "attempts_left").replace("{n}", &n.to_string()))
        }
        (E::InsufficientFunds, _, Some(has), Some(asked)) => format!(
            "{text}: {} {}, {} {}",
            t(lang, "available"),
            crate::format::brl(has),
            t(lang, "asked"),
            crate::format::brl(asked)
        ),
        (E::BalanceNotZero, _, Some(has), _) => format!("{text} ({})", crate::format::brl(has)),
        _ => text.to_string(),
    }
}

/// A request the bank refused or that got no answer: the refusal's stable code (`None` when
/// there was no refusal to read) and its text for people, so a form can put it beside the field
/// it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: Option<shared::ErrorCode>,
    pub text: String,
}

impl Refused {
    fn said(text: &str) -> Refused {
        Refused { code: None, text: text.to_string() }
    }
}

async fn decode<T: DeserializeOwned>(lang: Lang, resp: Result<Response, gloo_net::Error>) -> Result<T, String> {
    decode_refused(lang, resp).await.map_err(|r| r.text)
}

async fn decode_refused<T: DeserializeOwned>(
    lang: Lang,
    resp: Result<Response, gloo_net::Error>,
) -> Result<T, Refused> {
    let resp = resp.map_err(|_| Refused::said(t(lang, "err_network")))?;
    if resp.ok() {
        // Not what the API promises: said in words, not with the decoder's own message (whose
        // formatting machinery would weigh more in the wasm than the rest of this file).
        return resp.json::<T>().await.map_err(|_| Refused::said(t(lang, "err_unexpected")));
    }
    let retry_after_s = resp.headers().get("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
    match resp.json::<ErrorBody>().await {
        // A lockout says until when, in the customer's clock, rather than a count of seconds.
        Ok(b) if b.error == shared::ErrorCode::RateLimited && retry_after_s.is_some() => Err(Refused {
            code: Some(b.error),
            text: format!("{} {}.", t(lang, "retry_at"), local_time_in(retry_after_s.unwrap_or(0))),
        }),
        Ok(b) => Err(Refused { code: Some(b.error), text: refusal(lang, b) }),
        Err(_) => Err(Refused { code: None, text: format!("HTTP {}", resp.status()) }),
    }
}

/// "23:14": the local time `secs` from now.
fn local_time_in(secs: u64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "milliseconds since 1970 as JavaScript holds them: whole, positive, below 2^53"
    )]
    let at = {
        let now_ms = js_sys::Date::now() as u64;
        js_sys::Date::new(&wasm_bindgen::JsValue::from(now_ms.saturating_add(secs.saturating_mul(1000)) as f64))
    };
    format!("{:02}:{:02}", at.get_hours(), at.get_minutes())
}

impl Api {
    fn req(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => rb.header("Authorization", &format!("Bearer {t}")),
            None => rb,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        decode(self.lang, self.req(Request::get(&format!("{}{path}", self.base))).send().await).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(&self, method: &str, path: &str, body: &B) -> Result<T, String> {
        let url = format!("{}{path}", self.base);
        let rb = match method {
            "DELETE" => Request::delete(&url),
            _ => Request::post(&url),
        };
        let req = self.req(rb).json(body).map_err(|_| t(self.lang, "err_unexpected").to_string())?;
        decode(self.lang, req.send().await).await
    }

    pub async fn banks(&self) -> Result<Vec<shared::api::BankInfo>, String> {
        self.get("/api/banks").await
    }

    /// Opens an account; a refusal keeps its code, so the form puts it beside its field.
    pub async fn open(&self, body: &CreateAccount) -> Result<Account, Refused> {
        let url = format!("{}/api/accounts", self.base);
        let req =
            self.req(Request::post(&url)).json(body).map_err(|_| Refused::said(t(self.lang, "err_unexpected")))?;
        decode_refused(self.lang, req.send().await).await
    }

    pub async fn login(&self, body: &Login) -> Result<Session, String> {
        self.send("POST", "/api/accounts/auth", body).await
    }

    /// A DELETE answered `204` with no body.
    async fn delete_empty(&self, path: &str) -> Result<(), String> {
        let url = format!("{}{path}", self.base);
        let resp = self.req(Request::delete(&url)).send().await.map_err(|_| t(self.lang, "err_network").to_string())?;
        if resp.ok() {
            return Ok(());
        }
        match resp.json::<ErrorBody>().await {
            Ok(b) => Err(refusal(self.lang, b)),
            Err(_) => Err(format!("HTTP {}", resp.status())),
        }
    }

    /// Revokes the session at the bank (204, no body), so the token opens nothing any more.
    pub async fn logout(&self) -> Result<(), String> {
        self.delete_empty("/api/accounts/auth").await
    }

    /// Confirms, as one of its holders, a joint account.
    pub async fn confirm_joint(&self, id: u64) -> Result<Account, String> {
        self.send("POST", &format!("/api/accounts/{id}/consent"), &Empty {}).await
    }

    pub async fn consents(&self, account: shared::Ibk) -> Result<Consents, String> {
        self.get(&format!("/api/consents?account={account}")).await
    }

    pub async fn create_consent(&self, body: &CreateConsent) -> Result<Consent, String> {
        self.send("POST", "/api/consents", body).await
    }

    pub async fn revoke_consent(&self, id: &str) -> Result<(), String> {
        self.delete_empty(&format!("/api/consents/{id}")).await
    }

    pub async fn account(&self, id: u64) -> Result<Account, String> {
        self.get(&format!("/api/accounts/{id}")).await
    }

    pub async fn all(&self, id: u64) -> Result<AllAccounts, String> {
        self.get(&format!("/api/accounts/{id}/all")).await
    }

    /// The newest `limit` lines and the newest authored packages.
    pub async fn statement(&self, id: u64, limit: usize) -> Result<Statement, String> {
        self.get(&format!("/api/accounts/{id}/transactions?limit={limit}")).await
    }

    pub async fn move_money(&self, deposit: bool, body: &AccountPayment) -> Result<Transaction, String> {
        let path = if deposit { "/api/payments/deposit" } else { "/api/payments/withdraw" };
        self.send("POST", path, body).await
    }

    pub async fn pay(&self, body: &Pay) -> Result<Transaction, String> {
        self.send("POST", "/api/payments/pay", body).await
    }

    pub async fn package(&self, id: &str) -> Result<Transaction, String> {
        self.get(&format!("/api/payments/{id}")).await
    }

    pub async fn keys(&self, id: u64) -> Result<Vec<KeyInfo>, String> {
        self.get(&format!("/api/accounts/{id}/keys")).await
    }

    pub async fn add_key(&self, body: &RegisterKey) -> Result<KeyInfo, String> {
        self.send("POST", "/api/keys", body).await
    }

    /// The operator console's view of the network (the token is the operator key).
    pub async fn overview(&self) -> Result<shared::api::Overview, String> {
        self.get("/api/operator/overview").await
    }

    /// A ticket that opens the account's event stream for a minute.
    pub async fn events_ticket(&self, id: u64) -> Result<shared::api::EventsTicket, String> {
        self.send("POST", &format!("/api/accounts/{id}/events/ticket"), &Empty {}).await
    }

    /// The holder (masked) of an account about to be paid, asked of its bank.
    pub async fn recipient(&self, ibk: shared::Ibk) -> Result<shared::api::AccountCard, String> {
        self.get(&format!("/api/recipients/{ibk}")).await
    }

    pub async fn resolve_key(&self, key: &PixKey) -> Result<KeyInfo, String> {
        self.get(&format!("/api/keys/{}", key.path_segment())).await
    }

    pub async fn remove_key(&self, key: &PixKey) -> Result<serde::de::IgnoredAny, String> {
        self.send("DELETE", &format!("/api/keys/{}", key.path_segment()), &Empty {}).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{ErrorCode as E, Money};

    fn body(error: E) -> ErrorBody {
        ErrorBody::new(error, "the server's English")
    }

    #[test]
    fn refusals_say_their_figures_in_the_page_language() {
        let money = |s: &str| s.parse::<Money>().unwrap();
        let short =
            ErrorBody { balance: Some(money("150")), amount: Some(money("1000")), ..body(E::InsufficientFunds) };
        assert_eq!(refusal(Lang::Pt, short.clone()), "Saldo insuficiente: disponível R$ 150,00, pedido R$ 1.000,00");
        assert_eq!(refusal(Lang::En, short), "Insufficient funds: available R$ 150,00, asked R$ 1.000,00");
        let wrong = |n| ErrorBody { attempts_left: Some(n), ..body(E::InvalidCredentials) };
        assert_eq!(refusal(Lang::Pt, wrong(4)), "IBK ou senha incorretos. Restam 4 tentativas antes do bloqueio.");
        assert_eq!(refusal(Lang::Pt, wrong(1)), "IBK ou senha incorretos. Resta 1 tentativa antes do bloqueio.");
        assert_eq!(refusal(Lang::En, wrong(0)), "Wrong IBK or password. That was the last attempt before a lockout.");
        assert_eq!(refusal(Lang::Pt, body(E::InvalidCredentials)), "IBK ou senha incorretos");
        // A code the app has no words for falls back to the server's message.
        assert_eq!(refusal(Lang::Pt, body(E::TxnInvalid)), "the server's English");
    }
}
