//! How a bank's business state is laid out in its data server's generic records.
//!
//! * `accounts/{id:016}` — an open account (the zero-padded id keeps scans in id order). Its
//!   posted balance is the data server's amount for that id. Closing deletes the record, so a
//!   commit's `present` condition on it means "the account is open".
//! * `idempotency/{key}` — an operator request made with an `Idempotency-Key`, with its
//!   receipt, written in the same commit as the operation itself.
//! * `holders/{document}` — the individual or legal account of a document (one per bank: the
//!   record is created with the account, `if_version: 0`, so a second one cannot commit).
//! * `counters/accounts` — the next account id, advanced by compare-and-set in the commit that
//!   opens the account.
//! * `sessions/{sha256 of the token}` — a customer session; the token itself is never stored.
//! * `pending_holders/{id:016}` — present while a joint account waits for a holder's consent:
//!   every debit's commit is conditioned on its absence, so the ledger never reads the record.
//! * `consents/{id:016}` — the consents the account's holders gave other banks ([`ConsentSet`]).
//! * `packages/{package}` — a package as submitted ([`StoredPackage`]), written once: the key
//!   that makes a repeated submission one, and the way from a package's id to its entry below.
//! * `account_packages/{id:016}-{newest first:020}-{package}` — the packages an account
//!   authored, for its statement, each in its decided state ([`StoredPackage`]), written in the
//!   commit that decides it ([`account_package`]): with the package itself within the bank,
//!   with its round's decisions across banks. A package waiting for settlement has no entry yet:
//!   it is in `queue/`, under its author's prefix (issue 13: an entry written at submission and
//!   again at the decision cost a write per package). Entries written before decided states
//!   lived here hold only `{ "id" }`, the state being in `packages/{package}`.

use dataserver_api::{CommitRequest, LockRef, RawJson, RecordOp, SetAmount};
use serde::{Deserialize, Serialize};
use shared::{AccountId, Document, Money};

pub const ACCOUNTS: &str = "accounts";
pub const IDEMPOTENCY: &str = "idempotency";
pub const HOLDERS: &str = "holders";
pub const COUNTERS: &str = "counters";
pub const ACCOUNT_COUNTER: &str = "accounts";
pub const SESSIONS: &str = "sessions";
pub const ACCOUNT_SESSIONS: &str = "account_sessions";
pub const PACKAGES: &str = "packages";
pub const HOLDS: &str = "holds";
pub const PENDING_HOLDERS: &str = "pending_holders";
pub const CONSENTS: &str = "consents";
pub const JOINT_HOLDERS: &str = "joint_holders";
pub const ACCOUNT_PACKAGES: &str = "account_packages";

/// The key of the statement entry of a package `author` submitted at `created_ms`: keys sort
/// newest first within the account's prefix ([`account_packages_prefix`]), so one forward scan
/// pages back in time.
pub fn account_package_key(author: AccountId, created_ms: u64, package: &str) -> String {
    format!("{}{:020}-{package}", account_packages_prefix(author), u64::MAX - created_ms)
}

/// Writes the decided state of a package `author` submitted at `created_ms` as its statement
/// entry.
pub fn account_package(author: AccountId, created_ms: u64, decided: &StoredPackage) -> RecordOp {
    RecordOp::Put {
        collection: ACCOUNT_PACKAGES.into(),
        key: account_package_key(author, created_ms, &decided.package.id),
        value: json(decided),
        if_version: None,
    }
}

pub fn account_packages_prefix(author: AccountId) -> String {
    format!("{}-", account_key(author))
}

/// A package as stored: in `packages/` as submitted, in `account_packages/` as decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPackage {
    /// What its author sees (`success` excepted: it is read, see
    /// [`crate::interbank::coordinator::shown`]).
    #[serde(flatten)]
    pub package: shared::api::Transaction,
    /// Confirmed across banks: the round whose `undelivered/` record names the banks that have
    /// not applied it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<String>,
    /// In `packages/`, for a package submitted for settlement: the `account_packages/` key its
    /// decided state is written under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

impl StoredPackage {
    /// The `account_packages/` key a package submitted for settlement is decided under: the one
    /// its record names, or, for one still `pending` in a record written before records named
    /// it, the one its author and submission time give (the old layout used the same key for its
    /// index entry, which the decision overwrites). `None`: decided where it is read.
    pub fn entry_key(&self) -> Option<String> {
        if self.entry.is_some() || self.package.status != shared::api::Status::Pending {
            return self.entry.clone();
        }
        let created_ms = dataserver_api::clock::parse_rfc3339_ms(&self.package.created_at)?;
        Some(account_package_key(self.package.owner.account, u64::try_from(created_ms).ok()?, &self.package.id))
    }
}

/// The value of an `account_packages/` entry: the package decided, or (an entry from before
/// decided states were kept there) only its id.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AccountPackage {
    Decided(StoredPackage),
    Pointer { id: String },
}

/// `joint_holders/{document}`: the joint accounts a document is a holder of (changed by
/// compare-and-set with each opening and closing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JointIndex {
    pub accounts: Vec<AccountId>,
}

/// A value for a record in a commit. Our record types always serialise (plain structs, string
/// map keys); one that did not would be a bug, and writing `null` into a durable record in its
/// place would hide it, so it panics.
pub fn json<T: Serialize>(v: &T) -> RawJson {
    RawJson::of(v)
}

/// A stored value read back. One that does not parse is the store's fault, never the client's.
pub fn parse<T: serde::de::DeserializeOwned>(v: &RawJson) -> Result<T, crate::error::ApiError> {
    v.parse().map_err(|e| crate::error::ApiError::Unavailable(crate::error::Unavailable::Corrupt(e.to_string())))
}

/// [`parse`] of a record, naming it when it does not parse.
pub fn parse_record<T: serde::de::DeserializeOwned>(r: &dataserver_api::Record) -> Result<T, crate::error::ApiError> {
    r.value.parse().map_err(|e| {
        crate::error::ApiError::Unavailable(crate::error::Unavailable::Corrupt(format!(
            "{}/{}: {e}",
            r.collection, r.key
        )))
    })
}

pub fn account_key(id: AccountId) -> String {
    format!("{:016}", id.get())
}

pub use shared::api::AccountType;

/// The stored account (its balance lives in the data server's amounts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: AccountId,
    pub name: String,
    pub documents: Vec<Document>,
    #[serde(rename = "type")]
    pub kind: AccountType,
    pub created_at: String,
    /// Argon2id PHC string; `None` for accounts opened by tools, which cannot log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Holders of a joint account who have not confirmed it yet; while any remain, nothing
    /// debits it (see [`PENDING_HOLDERS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Document>,
}

impl AccountRecord {
    /// The person a session opened on this account is ([`shared::api::person_of`]).
    pub fn person(&self) -> Option<&Document> {
        shared::api::person_of(self.kind, &self.documents)
    }

    /// Whether `doc` is a holder of this account who has confirmed it.
    pub fn active_holder(&self, doc: &Document) -> bool {
        self.documents.contains(doc) && !self.pending.contains(doc)
    }
}

/// The commit ops that keep [`PENDING_HOLDERS`] in step with a record's `pending` list.
pub fn pending_marker(record: &AccountRecord) -> RecordOp {
    if record.pending.is_empty() {
        RecordOp::Delete { collection: PENDING_HOLDERS.into(), key: account_key(record.id), if_version: None }
    } else {
        RecordOp::Put {
            collection: PENDING_HOLDERS.into(),
            key: account_key(record.id),
            value: serde_json::json!({ "pending": record.pending.len() }).into(),
            if_version: None,
        }
    }
}

/// The condition a debit of `account` commits under: no holder's consent is missing.
pub fn not_pending(account: AccountId) -> RecordOp {
    RecordOp::Check { collection: PENDING_HOLDERS.into(), key: account_key(account), if_version: 0 }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRecord {
    pub account: AccountId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRecord {
    pub next: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub account: AccountId,
    pub expires_at_ms: u64,
}

/// `account_sessions/{id:016}`: an account's open sessions (their record keys and expiries),
/// oldest first, so that their number is bounded (`SESSIONS_PER_ACCOUNT_MAX`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionIndex {
    pub sessions: Vec<(String, u64)>,
}

/// The commit that opens an account: its record (which must not exist) and a zero balance, under
/// the account's lock. One place, used by account creation and by provisioning tools.
pub fn open_account_commit(tx_id: String, lock: LockRef, record: &AccountRecord) -> CommitRequest {
    let mut c = CommitRequest::new(tx_id);
    c.locks = vec![lock];
    c.set = vec![SetAmount { account: record.id, amount: Money::ZERO }];
    c.records = vec![RecordOp::Put {
        collection: ACCOUNTS.into(),
        key: account_key(record.id),
        value: json(record),
        if_version: Some(0),
    }];
    if !record.pending.is_empty() {
        c.records.push(pending_marker(record));
    }
    c.memo = Some(dataserver_api::Memo::of(&serde_json::json!({ "kind": "open_account" })));
    c
}

/// `holds/{account}`: what two-phase commit has reserved on an account (`held`, never spendable
/// until the package ends), the large credits promised to it (`incoming`: room below the
/// balance ceiling kept for them, so that a commit voted for can never overflow the account;
/// small credit-only ones leave no mark here, see `settle::BALANCE_CEILING`), and how many
/// prepared packages with a hold touch it (`inflight`: the account cannot close while money is
/// promised to or from it). Written only under the account's lease; absent means nothing held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub held: Money,
    pub inflight: u32,
    #[serde(default, skip_serializing_if = "no_money")]
    pub incoming: Money,
}

fn no_money(m: &Money) -> bool {
    m.is_zero()
}

impl HoldRecord {
    /// Ends one prepared attempt's hold of `amount` on `account`. A prepared attempt's hold is
    /// part of the held total until it ends, so releasing more than is held is a broken store:
    /// crash loudly rather than invent money.
    pub fn release(&mut self, account: shared::AccountId, amount: shared::Money, credits: shared::Money) {
        self.held = self
            .held
            .checked_sub(amount)
            .unwrap_or_else(|| panic!("account {account}: releasing a hold of {amount} from {} held", self.held));
        self.incoming = self.incoming.checked_sub(credits).unwrap_or_else(|| {
            panic!("account {account}: releasing {credits} of credits from {} promised", self.incoming)
        });
        self.inflight = self.inflight.saturating_sub(1);
    }

    /// The hold record read with a lock grant (`None`: nothing held).
    pub fn from_record(r: &Option<dataserver_api::Record>) -> Result<HoldRecord, crate::error::ApiError> {
        match r {
            None => Ok(HoldRecord::default()),
            Some(r) => parse_record::<HoldRecord>(r),
        }
    }

    /// The posted balance of `account` once an operation leaves `available` spendable, where
    /// `before` was: the held part added back. A credit (more spendable than before) must leave
    /// the balance, with the credits promised to it, at most `settle::BALANCE_CEILING`: the
    /// room above is kept for credits prepared without a hold, whose commits nothing checks.
    pub fn posted_after(
        &self,
        account: shared::AccountId,
        before: shared::Money,
        available: shared::Money,
    ) -> Result<shared::Money, crate::error::ApiError> {
        let posted = self.posted(available).ok_or(crate::error::ApiError::BalanceOverflow(account))?;
        let ceiling = protocol::settle::BALANCE_CEILING;
        if available > before && posted.checked_add(self.incoming).is_none_or(|p| p > ceiling) {
            return Err(crate::error::ApiError::BalanceOverflow(account));
        }
        Ok(posted)
    }

    /// The posted balance with `available` spendable (`None` past the largest amount).
    pub fn posted(&self, available: shared::Money) -> Option<shared::Money> {
        available.checked_add(self.held)
    }
}

/// What an `Idempotency-Key` stands for: the request it was first used with, and the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request: RawJson,
    pub response: RawJson,
    /// When it was written; the sweeper deletes it after `--idempotency-ttl-s`.
    #[serde(default)]
    pub at_ms: u64,
}
