//! Parsing and checking requests into what the lock table and the writer accept: after
//! these checks only valid values go further.

use std::collections::HashSet;
use std::time::Duration;

use dataserver_api::ErrorCode;

use super::error::ApiError;
use crate::AppState;
use crate::config::limits::*;
use dataserver_api::{CommitRequest, RecordOp};

use super::Result;

pub(crate) fn lease(state: &AppState, lease_ms: Option<u64>) -> Result<Duration> {
    let ms = lease_ms.unwrap_or(state.settings.lease_ms_default);
    if !(LEASE_MS_MIN..=state.settings.lease_ms_max).contains(&ms) {
        return Err(ApiError::invalid(
            ErrorCode::LeaseInvalid,
            format!("lease_ms must be from {LEASE_MS_MIN} to {}", state.settings.lease_ms_max),
        ));
    }
    Ok(Duration::from_millis(ms))
}

pub(crate) fn wait(state: &AppState, wait_ms: Option<u64>) -> Result<Duration> {
    let ms = wait_ms.unwrap_or(0);
    if ms > state.settings.wait_ms_max {
        return Err(ApiError::invalid(
            ErrorCode::WaitInvalid,
            format!("wait_ms must be at most {}", state.settings.wait_ms_max),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Ids that travel through logs and keys: bounded, printable, no spaces.
pub(crate) fn check_id(code: ErrorCode, what: &str, v: &str, max: usize) -> Result<()> {
    let ok = !v.is_empty() && v.len() <= max && v.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(code, format!("{what} must be 1 to {max} printable ASCII characters")))
    }
}

pub(crate) fn check_collection(c: &str) -> Result<()> {
    let ok = !c.is_empty()
        && c.len() <= COLLECTION_LEN_MAX
        && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            ErrorCode::CollectionInvalid,
            format!("collection must be 1 to {COLLECTION_LEN_MAX} characters of a-z, 0-9 and _"),
        ))
    }
}

pub(crate) fn check_key(k: &str) -> Result<()> {
    let ok = !k.is_empty() && k.len() <= RECORD_KEY_LEN_MAX && !k.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            ErrorCode::KeyInvalid,
            format!("record key must be 1 to {RECORD_KEY_LEN_MAX} bytes without control characters"),
        ))
    }
}

/// Everything about a commit that can be checked without the disk.
pub(crate) fn validate_commit(state: &AppState, req: &CommitRequest) -> Result<()> {
    let s = &state.settings;
    check_id(ErrorCode::TxIdInvalid, "tx_id", &req.tx_id, TX_ID_LEN_MAX)?;
    if req.locks.len() > s.lock_batch_max || req.set.len() > s.lock_batch_max {
        return Err(ApiError::invalid(
            ErrorCode::BatchTooLarge,
            format!("at most {} locks and {} amounts per commit", s.lock_batch_max, s.lock_batch_max),
        ));
    }
    if req.records.len() > s.record_ops_max {
        return Err(ApiError::invalid(
            ErrorCode::BatchTooLarge,
            format!("at most {} record operations per commit", s.record_ops_max),
        ));
    }
    if req.locks.is_empty() && req.set.is_empty() && req.records.is_empty() {
        return Err(ApiError::unprocessable(ErrorCode::EmptyCommit, "a commit must set an amount or write a record"));
    }
    let mut locked = HashSet::with_capacity(req.locks.len());
    for l in &req.locks {
        if !locked.insert(l.account) {
            return Err(ApiError::unprocessable(
                ErrorCode::DuplicateAccount,
                format!("account {} appears twice in locks", l.account),
            ));
        }
    }
    let mut set = HashSet::with_capacity(req.set.len());
    for a in &req.set {
        if !set.insert(a.account) {
            return Err(ApiError::unprocessable(
                ErrorCode::DuplicateAccount,
                format!("account {} appears twice in set", a.account),
            ));
        }
        if !locked.contains(&a.account) {
            return Err(ApiError::unprocessable(
                ErrorCode::LockRequired,
                format!("account {} is set without presenting its lock", a.account),
            ));
        }
    }
    for op in &req.records {
        check_collection(op.collection())?;
        if let RecordOp::Fewer { prefix, than, .. } = op {
            if !prefix.is_empty() {
                check_key(prefix)?;
                if *than > dataserver_api::FEWER_PREFIX_THAN_MAX {
                    return Err(ApiError::invalid(
                        ErrorCode::LimitInvalid,
                        format!(
                            "a fewer condition with a prefix counts at most {}",
                            dataserver_api::FEWER_PREFIX_THAN_MAX
                        ),
                    ));
                }
            }
            continue;
        }
        check_key(op.key())?;
        if let RecordOp::Put { value, .. } = op
            && value.as_str().len() > s.record_value_bytes_max
        {
            return Err(ApiError::invalid(
                ErrorCode::RecordTooLarge,
                format!("a record value may be at most {} bytes", s.record_value_bytes_max),
            ));
        }
    }
    if let Some(memo) = &req.memo
        && memo.as_str().len() > MEMO_BYTES_MAX
    {
        return Err(ApiError::invalid(ErrorCode::MemoTooLarge, format!("memo may be at most {MEMO_BYTES_MAX} bytes")));
    }
    Ok(())
}
