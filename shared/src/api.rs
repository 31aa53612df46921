//! Request and response bodies of the public APIs (business servers), shared with the browser.

use serde::{Deserialize, Serialize};

use crate::{AccountId, Money};

/// Header naming the calling bank on the routes between banks; it must be the bank its TLS
/// client certificate identifies.
pub const BANK_HEADER: &str = "x-interbank-bank";

/// What an operator operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Deposit,
    Withdrawal,
    Transfer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountBalance {
    pub account: AccountId,
    pub balance: Money,
}

/// The answer to a deposit, withdrawal or transfer: sent only once the operation is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperationReceipt {
    pub transaction_id: String,
    pub kind: OperationKind,
    pub amount: Money,
    /// Resulting balance of every account the operation touched (origin first).
    pub balances: Vec<AccountBalance>,
    /// RFC 3339.
    pub at: String,
}

/// Kinds of account (seed 000 / 001): one person, one company, or several holders together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Individual,
    Legal,
    Joint,
}

/// The person a session opened on an account of this kind and these documents is: the one holder
/// of an individual or legal account. A session of a joint account's IBK is nobody in particular.
/// One rule for the servers (who may act on what) and the app (what it offers).
pub fn person_of(kind: AccountType, documents: &[crate::Document]) -> Option<&crate::Document> {
    match (kind, documents) {
        (AccountType::Individual | AccountType::Legal, [d]) => Some(d),
        _ => None,
    }
}

/// `POST /api/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    pub name: String,
    pub documents: Vec<crate::Document>,
    #[serde(rename = "type")]
    pub kind: AccountType,
    pub password: String,
}

/// Whether an account may be debited: a joint account waits for every holder's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    #[default]
    Active,
    /// A joint account some holder has not confirmed yet: it receives credits, refuses debits.
    PendingHolders,
}

/// An account as customers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub documents: Vec<crate::Document>,
    #[serde(rename = "type")]
    pub kind: AccountType,
    pub ibk: crate::Ibk,
    /// RFC 3339.
    pub created_at: String,
    pub balance: Money,
    #[serde(default)]
    pub status: AccountStatus,
    /// The holders who still have to confirm a joint account (`POST /api/accounts/{id}/consent`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_documents: Vec<crate::Document>,
}

/// What a bank tells another about one of its accounts: enough to address a payment, nothing
/// more (no balance, no documents; the name masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountCard {
    pub ibk: crate::Ibk,
    /// Masked as a Pix key's holder is ("Maria d* S****").
    pub name: String,
    /// Whether it can be debited now (a joint account pending its holders cannot).
    pub active: bool,
}

/// `POST /api/consents` at the bank holding `account`, with its holder's session there: lets
/// `grantee_bank` debit it in packages that bank coordinates for this holder, up to `amount_max`
/// in all, until `expires_at` (Open Finance Brasil's payment-initiation consent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateConsent {
    pub account: crate::Ibk,
    pub grantee_bank: crate::BankId,
    pub amount_max: crate::Amount,
    /// RFC 3339; at most the bank's `consent_days_max` ahead (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Active,
    Revoked,
    Expired,
}

/// A consent as its holder sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consent {
    pub id: String,
    pub account: crate::Ibk,
    pub grantee_bank: crate::BankId,
    pub amount_max: Money,
    /// Consumed by committed debits.
    pub used: Money,
    /// Reserved by packages prepared and not yet decided.
    pub reserved: Money,
    pub expires_at: String,
    pub status: ConsentStatus,
    pub created_at: String,
    /// The person who granted it: only packages of that person use it.
    pub holder: crate::Document,
}

/// `GET /api/consents?account=...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consents {
    pub consents: Vec<Consent>,
}

/// `POST /api/accounts/auth`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub ibk: crate::Ibk,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// Send as `Authorization: Bearer TOKEN` on every customer call.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    pub account: Account,
}

/// Seed 000's transaction: a `package` the customer submitted, or a `final` one that moved money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransactionType {
    Package,
    Final,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted and stored durably; waiting for its turn (the token) or for a bank that is down.
    Pending,
    /// Every bank reserved its part and the decision to commit is durable: it will complete.
    Confirmed,
    Success,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Operation {
    pub id: String,
    pub from: crate::Ibk,
    pub to: crate::Ibk,
    #[serde(rename = "type")]
    pub kind: OperationKind,
    pub amount: Money,
    pub status: Status,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transaction {
    pub id: String,
    pub owner: crate::Ibk,
    pub parent_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    pub operations: Vec<Operation>,
    pub created_at: String,
    pub updated_at: String,
    pub status: Status,
    /// Why a package failed, or why it is still waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure's stable code, for clients to word it in their language (`reason` is
    /// English, for people reading logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub reason_code: Option<crate::ErrorCode>,
}

/// `POST /api/payments/deposit` and `/withdraw`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AccountPayment {
    pub acc_ibk: crate::Ibk,
    pub amount: crate::Amount,
}

/// `POST /api/accounts/{id}/events/ticket`: opens the account's event stream for a minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsTicket {
    /// Pass as `?ticket=` to `GET /api/accounts/{id}/events`.
    pub ticket: String,
    pub expires_at: String,
}

/// What a statement line is, seen from the statement's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Deposit,
    Withdrawal,
    TransferSent,
    TransferReceived,
    /// A package this account authored (its operations that concern this account).
    PackageSent,
    /// Another account's package that moved money into or out of this one.
    PackageReceived,
}

/// Which way a line moved the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Credit,
    Debit,
}

/// What a person needs to read a line without decoding its operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Line {
    pub kind: EntryKind,
    pub direction: Direction,
    /// The net change of this account's balance, without its sign (see `direction`).
    pub amount: Money,
    /// The other party, when there is exactly one.
    pub counterpart: Option<crate::Ibk>,
    /// The other party's name, masked as Pix shows it to a payer, when this bank holds it.
    pub counterpart_name: Option<String>,
    /// RFC 3339: when the line's money moved.
    pub at: String,
}

/// One line of a statement: a transaction, the account's balance right after it, and how it
/// reads from the account's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatementEntry {
    #[serde(flatten)]
    pub transaction: Transaction,
    pub balance: Money,
    pub line: Line,
}

/// `GET /api/accounts/{id}/transactions`: the lines that moved money, newest first (pass `next`
/// as `before` for older ones); and the packages this account authored, newest first, with
/// their live status and every operation, pending and failed included (pass `packages_next` as
/// `packages_before` for older ones). A settled package's lines carry its id as `parent_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Statement {
    pub transactions: Vec<StatementEntry>,
    pub next: Option<u64>,
    #[serde(default)]
    pub packages: Vec<Transaction>,
    #[serde(default)]
    pub packages_next: Option<String>,
}

impl StatementEntry {
    /// The line of `transaction` on `me`'s statement, with `balance` right after it.
    pub fn new(transaction: Transaction, balance: Money, me: crate::Ibk) -> StatementEntry {
        let line = transaction.line_for(me, &transaction.updated_at);
        StatementEntry { transaction, balance, line }
    }
}

impl Transaction {
    /// The sum of the operations' amounts (`None` past the largest amount).
    pub fn total(&self) -> Option<Money> {
        self.operations.iter().try_fold(Money::ZERO, |s, o| s.checked_add(o.amount))
    }

    /// How this transaction reads on `me`'s statement: its operations' net effect on `me`, the
    /// one other party if there is one, its kind from `me`'s side. The name is left for the
    /// bank to fill in.
    pub fn line_for(&self, me: crate::Ibk, at: &str) -> Line {
        let mut net: i128 = 0;
        let mut others: Vec<crate::Ibk> = Vec::new();
        for o in &self.operations {
            let cents = i128::from(o.amount.cents());
            match o.kind {
                OperationKind::Deposit if o.to == me => net += cents,
                OperationKind::Withdrawal if o.from == me => net -= cents,
                OperationKind::Deposit | OperationKind::Withdrawal => {}
                OperationKind::Transfer => {
                    if o.to == me {
                        net += cents;
                    }
                    if o.from == me {
                        net -= cents;
                    }
                    // Only the operations that move this account's money name a counterpart.
                    let other = if o.from == me {
                        Some(o.to)
                    } else if o.to == me {
                        Some(o.from)
                    } else {
                        None
                    };
                    if let Some(party) = other.filter(|p| !others.contains(p)) {
                        others.push(party);
                    }
                }
            }
        }
        let direction = if net < 0 { Direction::Debit } else { Direction::Credit };
        // The net of a page's worth of amounts each at most `Money::MAX` can pass it only for a
        // package of many maximal amounts; the line then shows the largest amount there is.
        let amount =
            i64::try_from(net.unsigned_abs()).ok().and_then(|c| Money::from_cents(c).ok()).unwrap_or(Money::MAX);
        let kind = if self.kind == TransactionType::Package || self.parent_id.is_some() {
            if self.owner == me { EntryKind::PackageSent } else { EntryKind::PackageReceived }
        } else {
            match self.operations.first().map(|o| o.kind) {
                Some(OperationKind::Deposit) => EntryKind::Deposit,
                Some(OperationKind::Withdrawal) => EntryKind::Withdrawal,
                _ if direction == Direction::Debit => EntryKind::TransferSent,
                _ => EntryKind::TransferReceived,
            }
        };
        let counterpart = if others.len() == 1 { others.first().copied() } else { None };
        Line { kind, direction, amount, counterpart, counterpart_name: None, at: at.to_string() }
    }
}

/// One operation of a package: `from` must be an account the customer holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PaymentOperation {
    pub from: crate::Ibk,
    /// An IBK or a Pix key.
    pub to: crate::pix::Target,
    pub amount: crate::Amount,
}

/// `POST /api/payments/pay`: operations applied in order, all or nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Pay {
    pub author: crate::Ibk,
    pub operations: Vec<PaymentOperation>,
}

/// `POST /api/keys`: registers a Pix key to one of the customer's accounts at this bank. `key`
/// is omitted for a random key (the bank generates it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterKey {
    pub account: crate::Ibk,
    #[serde(rename = "type")]
    pub kind: crate::pix::KeyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A Pix key resolved: where the money goes, and whose (partly masked) name to show before paying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    pub key: crate::pix::PixKey,
    #[serde(rename = "type")]
    pub kind: crate::pix::KeyType,
    pub ibk: crate::Ibk,
    pub name: String,
    pub created_at: String,
}

/// `GET /api/banks`: the banks of the network and where their customers reach them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BankInfo {
    pub id: crate::BankId,
    pub name: String,
    /// Base URLs of its customer API (empty when it publishes none).
    pub urls: Vec<String>,
}

/// `GET /api/accounts/{id}/all`: the holder's accounts in every bank of the network; banks that
/// did not answer are listed so that the list is never silently partial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AllAccounts {
    /// At this bank, in full.
    pub accounts: Vec<Account>,
    /// At the other banks, as they describe them to a peer.
    #[serde(default)]
    pub elsewhere: Vec<AccountCard>,
    pub unreachable_banks: Vec<crate::BankId>,
}

/// A bank's net position with another, as the operator routes show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Position {
    pub bank: crate::BankId,
    /// Positive: this bank owes that bank this much (a signed decimal).
    pub net: String,
}

/// A bank of the ring as this bank sees it for the operator console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RingMember {
    pub bank: crate::BankId,
    pub name: String,
    /// Whether it answered just now (over mutual TLS, within the peer timeout).
    pub reachable: bool,
    pub holding: bool,
    pub epoch: u64,
    pub seq: u64,
    /// Since it last accepted the token, by its own clock (`null`: never, or unreachable).
    pub last_grant_age_ms: Option<u64>,
}

/// `GET /api/operator/overview`: what this bank knows of the network, for the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Overview {
    pub bank: crate::BankId,
    /// The ring in its order, each bank's token view.
    pub ring: Vec<RingMember>,
    /// Packages waiting here for settlement (bounded by the bank's `--settlement-queue-max`).
    pub queued: usize,
    /// Decisions not yet acknowledged by every bank.
    pub undelivered: usize,
    /// Attempts prepared here for other banks and not yet decided: in doubt.
    pub in_doubt: usize,
    /// Packages this bank settled as author since the counter began (a statistic).
    pub settled_total: u64,
    /// This bank's net position with each other bank (positive: this bank owes it); the
    /// console's matrix has this bank's row and column.
    pub positions: Vec<Position>,
}
