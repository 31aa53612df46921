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
use serde::{Deserialize, Serialize};
use shared::api::{Consent, ConsentStatus, Consents, CreateConsent};
use shared::{AccountId, BankId, Document, ErrorCode, Ibk, Money};

use crate::AppState;
use crate::config::limits::{CONSENT_DAYS_MAX, CONSENTS_PER_ACCOUNT_MAX};
use crate::error::{ApiError, Unavailable};
use crate::model::{AccountRecord, CONSENTS, account_key, json, parse_record};

const DAY_MS: u64 = 86_400_000;

/// One consent as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// `{account}.{32 hex}`: the account it belongs to is part of its name.
    pub id: String,
    pub grantee_bank: BankId,
    /// The person who gave it; only their packages may use it.
    pub holder: Document,
    pub amount_max: Money,
    /// Consumed by committed debits.
    pub used: Money,
    /// Reserved by prepared debits not yet decided.
    pub reserved: Money,
    pub expires_at_ms: u64,
    pub revoked: bool,
    pub created_at: String,
}

impl ConsentRecord {
    fn status(&self, now_ms: u64) -> ConsentStatus {
        if self.revoked {
            ConsentStatus::Revoked
        } else if now_ms >= self.expires_at_ms {
            ConsentStatus::Expired
        } else {
            ConsentStatus::Active
        }
    }

    /// What is left to spend (never negative: `used + reserved ≤ amount_max` always holds).
    fn remaining(&self) -> Money {
        self.amount_max.checked_sub(self.used).and_then(|m| m.checked_sub(self.reserved)).unwrap_or_else(|| {
            panic!("consent {}: used {} + reserved {} exceed {}", self.id, self.used, self.reserved, self.amount_max)
        })
    }

    pub fn view(&self, bank: BankId, account: AccountId, now_ms: u64) -> Consent {
        Consent {
            id: self.id.clone(),
            account: Ibk::new(bank, account),
            grantee_bank: self.grantee_bank,
            amount_max: self.amount_max,
            used: self.used,
            reserved: self.reserved,
            expires_at: rfc3339_ms(self.expires_at_ms),
            status: self.status(now_ms),
            created_at: self.created_at.clone(),
            holder: self.holder.clone(),
        }
    }
}

/// Every consent of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentSet {
    pub consents: Vec<ConsentRecord>,
}

/// Why a consent did not cover a debit (the vote's refusal names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCovered {
    /// No consent of this account lets this bank debit it for this person.
    Missing,
    /// There is one, but it expired or was revoked.
    Expired,
    /// Live ones exist, but none has this much left.
    Exceeded { remaining: Money },
}

/// A debit reserved on a consent: settled on the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentUse {
    pub account: AccountId,
    pub consent: String,
    pub amount: Money,
}

impl ConsentSet {
    /// Reserves `amount` on a live consent of `grantee` for `person` that has that much left,
    /// returning its id; the most recently created such consent goes first.
    pub fn reserve(
        &mut self,
        grantee: BankId,
        person: Option<&Document>,
        amount: Money,
        now_ms: u64,
    ) -> Result<String, NotCovered> {
        let person = person.ok_or(NotCovered::Missing)?;
        let theirs: Vec<usize> = (0..self.consents.len())
            .rev()
            .filter(|i| self.consents[*i].grantee_bank == grantee && &self.consents[*i].holder == person)
            .collect();
        let live: Vec<usize> =
            theirs.iter().copied().filter(|i| self.consents[*i].status(now_ms) == ConsentStatus::Active).collect();
        if live.is_empty() {
            return Err(if theirs.is_empty() { NotCovered::Missing } else { NotCovered::Expired });
        }
        let Some(i) = live.iter().copied().find(|i| self.consents[*i].remaining() >= amount) else {
            let remaining = live.iter().map(|i| self.consents[*i].remaining()).max().unwrap_or(Money::ZERO);
            return Err(NotCovered::Exceeded { remaining });
        };
        let c = &mut self.consents[i];
        c.reserved = c.reserved.checked_add(amount).expect("reserved ≤ amount_max, which is a Money");
        Ok(c.id.clone())
    }

    /// Ends a reservation: consumed when the debit committed, released when it rolled back.
    /// A consent revoked meanwhile still settles: its holder consented when the bank voted yes.
    pub fn settle(&mut self, consent: &str, amount: Money, committed: bool) {
        let Some(c) = self.consents.iter_mut().find(|c| c.id == consent) else {
            panic!("consent {consent}: a reservation of {amount} outlived its consent");
        };
        c.reserved = c
            .reserved
            .checked_sub(amount)
            .unwrap_or_else(|| panic!("consent {consent}: settling {amount} of {} reserved", c.reserved));
        if committed {
            c.used = c.used.checked_add(amount).expect("used ≤ amount_max, which is a Money");
        }
    }

    /// Drops consents that can never be used again and hold nothing.
    fn prune(&mut self, now_ms: u64) {
        self.consents.retain(|c| c.status(now_ms) == ConsentStatus::Active || !c.reserved.is_zero());
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
    let mut c = CommitRequest::new(uuid::Uuid::new_v4().to_string());
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
            return Ok(record.view(bank, account.id, now));
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
    Ok(Consents { consents: set.consents.iter().map(|c| c.view(account.bank, account.account, now)).collect() })
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

    fn m(c: i64) -> Money {
        Money::from_cents(c).unwrap()
    }
    fn doc(n: &str) -> Document {
        Document::with_check_digits(n).unwrap()
    }
    fn consent(id: &str, grantee: u32, holder: &Document, max: i64, expires: u64) -> ConsentRecord {
        ConsentRecord {
            id: id.into(),
            grantee_bank: BankId::new(grantee).unwrap(),
            holder: holder.clone(),
            amount_max: m(max),
            used: Money::ZERO,
            reserved: Money::ZERO,
            expires_at_ms: expires,
            revoked: false,
            created_at: String::new(),
        }
    }

    #[test]
    fn a_consent_covers_only_its_grantee_and_holder_up_to_its_amount() {
        let (ana, bia) = (doc("123456789"), doc("987654321"));
        let one = BankId::new(1).unwrap();
        let mut set = ConsentSet { consents: vec![consent("c1", 1, &ana, 1_000, 100)] };
        assert_eq!(set.reserve(BankId::new(3).unwrap(), Some(&ana), m(1), 10), Err(NotCovered::Missing));
        assert_eq!(set.reserve(one, Some(&bia), m(1), 10), Err(NotCovered::Missing));
        assert_eq!(set.reserve(one, None, m(1), 10), Err(NotCovered::Missing));
        assert_eq!(set.reserve(one, Some(&ana), m(600), 10).as_deref(), Ok("c1"));
        // The reservation counts: a second 600 does not fit while the first is undecided.
        assert_eq!(set.reserve(one, Some(&ana), m(600), 10), Err(NotCovered::Exceeded { remaining: m(400) }));
        set.settle("c1", m(600), false);
        assert_eq!(set.reserve(one, Some(&ana), m(600), 10).as_deref(), Ok("c1"));
        set.settle("c1", m(600), true);
        assert_eq!(set.consents[0].used, m(600));
        assert_eq!(set.reserve(one, Some(&ana), m(401), 10), Err(NotCovered::Exceeded { remaining: m(400) }));
        // Expired, then revoked.
        assert_eq!(set.reserve(one, Some(&ana), m(1), 100), Err(NotCovered::Expired));
        set.consents[0].revoked = true;
        assert_eq!(set.reserve(one, Some(&ana), m(1), 10), Err(NotCovered::Expired));
    }

    #[test]
    fn consent_ids_name_their_account() {
        assert_eq!(parse_consent_id("5.0123456789abcdef0123456789abcdef").unwrap(), AccountId::new(5).unwrap());
        for bad in ["5", "5.xyz", "x.0123456789abcdef0123456789abcdef", "5.0123456789abcdef0123456789abcde"] {
            assert!(parse_consent_id(bad).is_err(), "{bad}");
        }
    }
}
