//! Request and response bodies of the public APIs (business servers), shared with the browser.

use serde::{Deserialize, Serialize};

use crate::{AccountId, Money};

/// What an operator operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Deposit,
    Withdrawal,
    Transfer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBalance {
    pub account: AccountId,
    pub balance: Money,
}

/// The answer to a deposit, withdrawal or transfer: sent only once the operation is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationReceipt {
    pub transaction_id: String,
    pub kind: OperationKind,
    pub amount: Money,
    /// Resulting balance of every account the operation touched (origin first).
    pub balances: Vec<AccountBalance>,
    /// RFC 3339.
    pub at: String,
}
