//! The Pix key directory (seed 003), unique across the network without a central bank: each key
//! has a *home* bank — chosen by hashing the key over the configured banks — whose data server
//! holds the one `pix/{key}` record that says where the key points. Registering reserves the key
//! at its home (`if_version: 0`, so two banks can never both win), resolving asks the home.
//!
//! * `pix/{key}` (at the home bank) — [`KeyEntry`].
//! * `account_keys/{account}` (at the account's bank) — the account's keys, changed by
//!   compare-and-set so the per-account limit holds under concurrent registrations.
//!
//! The mapping depends on the list of banks: adding a bank needs the directory rebalanced
//! (not done yet; the network's membership is fixed by configuration).

use dataserver_api::{CommitRequest, ErrorCode as DsCode, RecordOp};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::api::KeyInfo;
use shared::pix::{KEYS_PER_INDIVIDUAL_MAX, KEYS_PER_LEGAL_MAX, mask_name};
use shared::{AccountId, BankId, ErrorCode, Ibk, KeyType, PixKey};

use super::{Interbank, PeerError};
use crate::error::{ApiError, Unavailable};
use crate::model::{AccountRecord, AccountType, account_key};
use crate::model::{json, parse_record};

pub const PIX: &str = "pix";
pub const ACCOUNT_KEYS: &str = "account_keys";

/// The directory's record of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub key: PixKey,
    #[serde(rename = "type")]
    pub kind: KeyType,
    pub ibk: Ibk,
    /// The holder's full name; masked before it reaches any customer.
    pub name: String,
    pub created_at: String,
}

impl KeyEntry {
    pub fn info(&self) -> KeyInfo {
        KeyInfo {
            key: self.key.clone(),
            kind: self.kind,
            ibk: self.ibk,
            name: mask_name(&self.name),
            created_at: self.created_at.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountKeys {
    pub keys: Vec<KeyEntry>,
}

/// The bank whose data server holds `key`'s directory record.
pub fn home(key: &PixKey, banks: &[BankId]) -> Option<BankId> {
    if banks.is_empty() {
        return None;
    }
    let d = Sha256::digest(key.as_str().as_bytes());
    let mut h = [0u8; 8];
    h.copy_from_slice(&d[..8]);
    let i = usize::try_from(u64::from_be_bytes(h) % banks.len() as u64).unwrap_or(0);
    let mut sorted = banks.to_vec();
    sorted.sort_unstable();
    sorted.get(i).copied()
}

fn peer_error(e: PeerError) -> ApiError {
    match e {
        PeerError::Refused { status: 409, .. } => ApiError::KeyTaken,
        PeerError::Refused { status: 404, .. } => ApiError::KeyNotFound,
        other => ApiError::Unavailable(Unavailable::Peer(other.to_string())),
    }
}

// -- the directory, at a key's home bank --

pub async fn dir_reserve(ib: &Interbank, entry: &KeyEntry) -> Result<(), ApiError> {
    let mut c = CommitRequest::fresh();
    c.records.push(RecordOp::Put {
        collection: PIX.into(),
        key: entry.key.as_str().into(),
        value: json(entry),
        if_version: Some(0),
    });
    match ib.ds.commit(&c).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(DsCode::ConditionFailed) => {
            // Reserving again for the same account is a retry, not a conflict.
            match dir_get(ib, &entry.key).await? {
                Some(found) if found.ibk == entry.ibk => Ok(()),
                _ => Err(ApiError::KeyTaken),
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn dir_get(ib: &Interbank, key: &PixKey) -> Result<Option<KeyEntry>, ApiError> {
    match ib.ds.get_record(PIX, key.as_str()).await? {
        Some(r) => parse_record(&r).map(Some),
        None => Ok(None),
    }
}

/// Removes `key` if it points at `ibk`.
pub async fn dir_remove(ib: &Interbank, key: &PixKey, ibk: Ibk) -> Result<(), ApiError> {
    let Some(r) = ib.ds.get_record(PIX, key.as_str()).await? else { return Ok(()) };
    let entry: KeyEntry = parse_record(&r)?;
    if entry.ibk != ibk {
        return Err(ApiError::KeyNotFound);
    }
    let mut c = CommitRequest::fresh();
    c.records.push(RecordOp::Delete { collection: PIX.into(), key: key.as_str().into(), if_version: Some(r.version) });
    ib.ds.commit(&c).await?;
    Ok(())
}

// -- the same, from any bank --

fn home_of(ib: &Interbank, key: &PixKey) -> Result<BankId, ApiError> {
    home(key, &ib.peers.network().ids()).ok_or(ApiError::Unavailable(Unavailable::Exhausted("no bank in the network")))
}

pub async fn resolve(ib: &Interbank, key: &PixKey) -> Result<KeyEntry, ApiError> {
    let home = home_of(ib, key)?;
    if home == ib.me {
        return dir_get(ib, key).await?.ok_or(ApiError::KeyNotFound);
    }
    let path = format!("/interbank/keys/{}", key.path_segment());
    ib.peers.call(home, Method::GET, &path, None::<&()>).await.map_err(peer_error)
}

async fn reserve(ib: &Interbank, entry: &KeyEntry) -> Result<(), ApiError> {
    let home = home_of(ib, &entry.key)?;
    if home == ib.me {
        return dir_reserve(ib, entry).await;
    }
    ib.peers.call::<serde_json::Value>(home, Method::POST, "/interbank/keys", Some(entry)).await.map_err(peer_error)?;
    Ok(())
}

async fn unreserve(ib: &Interbank, key: &PixKey, ibk: Ibk) -> Result<(), ApiError> {
    let home = home_of(ib, key)?;
    if home == ib.me {
        return dir_remove(ib, key, ibk).await;
    }
    let path = format!("/interbank/keys/{}/{ibk}", key.path_segment());
    ib.peers.call::<serde_json::Value>(home, Method::DELETE, &path, None::<&()>).await.map_err(peer_error)?;
    Ok(())
}

async fn account_keys(ib: &Interbank, account: AccountId) -> Result<(AccountKeys, u64), ApiError> {
    Ok(match ib.ds.get_record(ACCOUNT_KEYS, &account_key(account)).await? {
        Some(r) => (parse_record(&r)?, r.version),
        None => (AccountKeys::default(), 0),
    })
}

pub async fn list(ib: &Interbank, account: AccountId) -> Result<Vec<KeyInfo>, ApiError> {
    Ok(account_keys(ib, account).await?.0.keys.iter().map(KeyEntry::info).collect())
}

/// Registers `key` to `account`: reserved at its home bank first, then added to the account's
/// list by compare-and-set; if that loses a race the reservation is given back.
pub async fn register(ib: &Interbank, account: &AccountRecord, key: PixKey) -> Result<KeyInfo, ApiError> {
    let max = if account.kind == AccountType::Legal { KEYS_PER_LEGAL_MAX } else { KEYS_PER_INDIVIDUAL_MAX };
    // A document's key names one person or company: only an account they alone hold may take
    // it, never a joint account that also lists somebody else.
    if matches!(key.kind(), KeyType::Cpf | KeyType::Cnpj)
        && !matches!(account.documents.as_slice(), [d] if d.digits() == key.as_str())
    {
        return Err(ApiError::invalid_unprocessable(
            ErrorCode::KeyDocumentMismatch,
            "a CPF or CNPJ key goes only on an account whose one holder is that document",
        ));
    }
    let (mut mine, version) = account_keys(ib, account.id).await?;
    if mine.keys.iter().any(|k| k.key == key) {
        return Err(ApiError::KeyTaken);
    }
    if mine.keys.len() >= max {
        return Err(ApiError::invalid_unprocessable(
            ErrorCode::KeyLimit,
            format!("an account of this type has at most {max} keys"),
        ));
    }
    let entry = KeyEntry {
        kind: key.kind(),
        key: key.clone(),
        ibk: Ibk::new(ib.me, account.id),
        name: account.name.clone(),
        created_at: crate::ledger::now_rfc3339(),
    };
    reserve(ib, &entry).await?;
    mine.keys.push(entry.clone());
    let mut c = CommitRequest::fresh();
    c.records.push(RecordOp::Put {
        collection: ACCOUNT_KEYS.into(),
        key: account_key(account.id),
        value: json(&mine),
        if_version: Some(version),
    });
    if let Err(e) = ib.ds.commit(&c).await {
        let _ = unreserve(ib, &key, entry.ibk).await;
        return Err(match e.code() {
            Some(DsCode::ConditionFailed) => ApiError::Busy(account.id),
            _ => e.into(),
        });
    }
    Ok(entry.info())
}

pub async fn remove(ib: &Interbank, account: AccountId, key: &PixKey) -> Result<(), ApiError> {
    let (mut mine, version) = account_keys(ib, account).await?;
    let before = mine.keys.len();
    mine.keys.retain(|k| &k.key != key);
    if mine.keys.len() == before {
        return Err(ApiError::KeyNotFound);
    }
    unreserve(ib, key, Ibk::new(ib.me, account)).await?;
    let mut c = CommitRequest::fresh();
    c.records.push(RecordOp::Put {
        collection: ACCOUNT_KEYS.into(),
        key: account_key(account),
        value: json(&mine),
        if_version: Some(version),
    });
    ib.ds.commit(&c).await.map_err(|e| match e.code() {
        Some(DsCode::ConditionFailed) => ApiError::Busy(account),
        _ => e.into(),
    })?;
    Ok(())
}

/// The keys of an account being closed, released with it: directory entries homed at other
/// banks are removed there now (the account is already checked closable, under its lease);
/// the returned ops delete the account's key list and the entries homed here in the closing
/// commit itself, so a closed account never keeps a key from the next holder of its document.
pub async fn release_for_close(ib: &Interbank, account: AccountId) -> Result<Vec<RecordOp>, ApiError> {
    let (mine, version) = account_keys(ib, account).await?;
    let ibk = Ibk::new(ib.me, account);
    let mut ops = Vec::new();
    for k in &mine.keys {
        if home_of(ib, &k.key)? == ib.me {
            if let Some(r) = ib.ds.get_record(PIX, k.key.as_str()).await?
                && parse_record::<KeyEntry>(&r)?.ibk == ibk
            {
                ops.push(RecordOp::Delete {
                    collection: PIX.into(),
                    key: k.key.as_str().into(),
                    if_version: Some(r.version),
                });
            }
        } else {
            unreserve(ib, &k.key, ibk).await?;
        }
    }
    if version != 0 {
        ops.push(RecordOp::Delete {
            collection: ACCOUNT_KEYS.into(),
            key: account_key(account),
            if_version: Some(version),
        });
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_one_home_among_the_banks() {
        let banks: Vec<BankId> = (1..=3).map(|b| BankId::new(b).unwrap()).collect();
        let mut homes = std::collections::BTreeSet::new();
        for i in 0..200 {
            let k: PixKey = format!("user{i}@example.com").parse().unwrap();
            let h = home(&k, &banks).unwrap();
            assert!(banks.contains(&h));
            // The order banks are listed in does not matter.
            let mut rev = banks.clone();
            rev.reverse();
            assert_eq!(home(&k, &rev), Some(h));
            homes.insert(h);
        }
        assert_eq!(homes.len(), 3, "keys spread over every bank");
    }
}
