//! Consents: a holder's permission, given at the bank that holds the account, for another bank
//! to debit it in packages that bank coordinates for this holder (Open Finance Brasil's payment
//! initiation). No member bank's word is taken for who authorised a debit: the debited bank
//! asks its own record, which only its own customer, signed in there, can write.
//!
//! * `consents/{account:016}` — the account's [`ConsentSet`], changed by compare-and-set; the
//!   participant reads it under the account's lease when it votes and reserves the debit in the
//!   same commit as the hold, so concurrent packages cannot spend one consent twice.
//!
//! The rules ([`ConsentSet::reserve`], [`ConsentSet::settle`]) do no I/O: the vote and the
//! finish call them with what the data server read, and tests call them directly.

use dataserver_api::clock::{now_ms, parse_rfc3339_ms, rfc3339_ms};
use dataserver_api::{CommitRequest, ErrorCode as DsCode, RecordOp};
use shared::api::{Consent, Consents, CreateConsent};
use shared::{AccountId, BankId, ErrorCode, Ibk, Money};

use crate::AppState;
use crate::config::limits::{CONSENT_DAYS_MAX, CONSENTS_PER_ACCOUNT_MAX};
use crate::error::{ApiError, Unavailable};
use crate::model::{AccountRecord, CONSENTS, account_key, json, parse_record};

const DAY_MS: u64 = 86_400_000;

pub use protocol::consents::{ConsentRecord, ConsentSet, ConsentUse, NotCovered};

/// A consent as its customer sees it.
fn view(c: &ConsentRecord, bank: BankId, account: AccountId, now_ms: u64) -> Consent {
    Consent {
        id: c.id.clone(),
        account: Ibk::new(bank, account),
        grantee_bank: c.grantee_bank,
        amount_max: c.amount_max,
        used: c.used,
        reserved: c.reserved,
        expires_at: rfc3339_ms(c.expires_at_ms),
        status: c.status(now_ms),
        created_at: c.created_at.clone(),
        holder: c.holder.clone(),
    }
}

fn parse_consent_id(id: &str) -> Result<AccountId, ApiError> {
    let bad = || ApiError::invalid(ErrorCode::ConsentInvalid, "a consent id is `{account}.{32 hex digits}`");
    let (account, rest) = id.split_once('.').ok_or_else(bad)?;
    if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    account.parse::<AccountId>().map_err(|_| bad())
}

async fn load(state: &AppState, account: AccountId) -> Result<(ConsentSet, u64), ApiError> {
    Ok(match state.ledger.ds.get_record(CONSENTS, &account_key(account)).await? {
        Some(r) => (parse_record(&r)?, r.version),
        None => (ConsentSet::default(), 0),
    })
}

async fn store(state: &AppState, account: AccountId, set: &ConsentSet, version: u64) -> Result<bool, ApiError> {
    let mut c = CommitRequest::fresh();
    c.records.push(RecordOp::Put {
        collection: CONSENTS.into(),
        key: account_key(account),
        value: json(set),
        if_version: Some(version),
    });
    match state.ledger.ds.commit(&c).await {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some(DsCode::ConditionFailed) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Tries a compare-and-set change of an account's consents until it wins a race.
const STORE_TRIES_MAX: u32 = 16;

/// The holder of the account (a person signed in here) consents to `grantee_bank`'s debits.
pub async fn create(state: &AppState, me: &AccountRecord, body: CreateConsent) -> Result<Consent, ApiError> {
    let bank = state.settings.bank_id;
    if body.account.bank != bank {
        return Err(ApiError::WrongBank(body.account));
    }
    let person = me.person().ok_or(ApiError::Forbidden)?.clone();
    let account = state.accounts.accessible(me, body.account.account).await?;
    if body.grantee_bank == bank {
        return Err(ApiError::invalid(ErrorCode::ConsentInvalid, "debits here need no consent: sign in here"));
    }
    if state.interbank.peers.network().bank(body.grantee_bank).is_none() {
        return Err(ApiError::UnknownBank(body.grantee_bank));
    }
    let now = now_ms();
    let latest = now.saturating_add(CONSENT_DAYS_MAX * DAY_MS);
    let expires_at_ms = match &body.expires_at {
        None => latest,
        Some(s) => {
            let at = parse_rfc3339_ms(s)
                .and_then(|ms| u64::try_from(ms).ok())
                .ok_or_else(|| ApiError::invalid(ErrorCode::ConsentInvalid, "expires_at is not an RFC 3339 time"))?;
            if at <= now || at > latest {
                return Err(ApiError::invalid(
                    ErrorCode::ConsentInvalid,
                    format!("expires_at must be in the future and at most {CONSENT_DAYS_MAX} days ahead"),
                ));
            }
            at
        }
    };
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let record = ConsentRecord {
        id: format!("{}.{}", account.id, hex::encode(raw)),
        grantee_bank: body.grantee_bank,
        holder: person,
        amount_max: body.amount_max.money(),
        used: Money::ZERO,
        reserved: Money::ZERO,
        expires_at_ms,
        revoked: false,
        created_at: rfc3339_ms(now),
    };
    for _ in 0..STORE_TRIES_MAX {
        let (mut set, version) = load(state, account.id).await?;
        set.prune(now);
        if set.consents.len() >= CONSENTS_PER_ACCOUNT_MAX {
            return Err(ApiError::invalid_unprocessable(
                ErrorCode::ConsentLimit,
                format!("an account has at most {CONSENTS_PER_ACCOUNT_MAX} live consents; revoke one first"),
            ));
        }
        set.consents.push(record.clone());
        if store(state, account.id, &set, version).await? {
            return Ok(view(&record, bank, account.id, now));
        }
    }
    Err(ApiError::Unavailable(Unavailable::Contended("the account's consents are changing")))
}

/// The consents of an account the person of `me` may act on.
pub async fn list(state: &AppState, me: &AccountRecord, account: Ibk) -> Result<Consents, ApiError> {
    if account.bank != state.settings.bank_id {
        return Err(ApiError::WrongBank(account));
    }
    state.accounts.accessible(me, account.account).await?;
    let (set, _) = load(state, account.account).await?;
    let now = now_ms();
    Ok(Consents { consents: set.consents.iter().map(|c| view(c, account.bank, account.account, now)).collect() })
}

/// Revokes consent `id` at once: no later vote uses it (debits already prepared on it settle).
pub async fn revoke(state: &AppState, me: &AccountRecord, id: &str) -> Result<(), ApiError> {
    let account = parse_consent_id(id)?;
    state.accounts.accessible(me, account).await.map_err(|e| match e {
        ApiError::AccountNotFound(_) => ApiError::ConsentNotFound,
        other => other,
    })?;
    for _ in 0..STORE_TRIES_MAX {
        let (mut set, version) = load(state, account).await?;
        let c = set.consents.iter_mut().find(|c| c.id == id).ok_or(ApiError::ConsentNotFound)?;
        if c.revoked {
            return Ok(());
        }
        c.revoked = true;
        if store(state, account, &set, version).await? {
            return Ok(());
        }
    }
    Err(ApiError::Unavailable(Unavailable::Contended("the account's consents are changing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_ids_name_their_account() {
        assert_eq!(parse_consent_id("5.0123456789abcdef0123456789abcdef").unwrap(), AccountId::new(5).unwrap());
        for bad in ["5", "5.xyz", "x.0123456789abcdef0123456789abcdef", "5.0123456789abcdef0123456789abcde"] {
            assert!(parse_consent_id(bad).is_err(), "{bad}");
        }
    }
}
