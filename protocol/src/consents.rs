//! The rules of consents, with no I/O: a holder's permission, given at the bank that holds the
//! account, for another bank to debit it in packages that bank coordinates for this holder. The
//! vote ([`crate::settle::vote`]) reserves a debit on one ([`ConsentSet::reserve`]) and the
//! finish consumes or releases it ([`ConsentSet::settle`]); the business server's `consents`
//! module stores them and serves the customer's routes.

use serde::{Deserialize, Serialize};
use shared::api::ConsentStatus;
use shared::{AccountId, BankId, Document, Money};

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
    pub fn status(&self, now_ms: u64) -> ConsentStatus {
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
    pub fn prune(&mut self, now_ms: u64) {
        self.consents.retain(|c| c.status(now_ms) == ConsentStatus::Active || !c.reserved.is_zero());
    }
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
}
