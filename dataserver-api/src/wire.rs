//! Wire types of the data server's HTTP API, shared by the server and its typed client.
//!
//! Requests deny unknown fields: a misspelt field is a client bug, and silently ignoring it in a
//! payment system turns a typo into lost intent.

use serde::{Deserialize, Serialize};
use shared::{AccountId, Money};

/// Seed 004's `getLock` answer, and one element of a batch grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockGrant {
    pub token: u64,
    pub lease_ms: u64,
}

/// `POST /v1/{businessId}/locks`: take several accounts' leases, all or nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    pub accounts: Vec<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// Wait up to this long, in FIFO order per account, instead of failing at once with `locked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Makes the call safe to retry: a retry whose grant is still live returns the same tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Records to read once the leases are granted, answered in `records` in this order. A record
    /// only ever written under one of these leases cannot change until they are released, so
    /// this saves a round trip without giving up consistency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<RecordKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordKey {
    pub collection: String,
    pub key: String,
}

impl RecordKey {
    pub fn new(collection: impl Into<String>, key: impl Into<String>) -> RecordKey {
        RecordKey { collection: collection.into(), key: key.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub account: AccountId,
    pub token: u64,
    /// The account's posted amount at grant time; `None` when it was never written.
    pub amount: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcquireResponse {
    pub lease_ms: u64,
    pub locks: Vec<Grant>,
    /// The records asked for in `read`, in that order; `None` where a record does not exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<Option<Record>>,
}

/// Proof of holding an account's lease: the fencing token it was granted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRef {
    pub account: AccountId,
    pub token: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub locks: Vec<LockRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResponse {
    pub released: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAmount {
    pub account: AccountId,
    pub amount: Money,
}

/// One write (or check) of the generic record store, applied inside a commit.
///
/// `if_version`: `Some(0)` = the record must not exist; `Some(v)` = it must be at version `v`;
/// `None` = unconditional. A failed condition fails the whole commit, which then changes nothing.
///
/// Read through [`WireRecordOp`] rather than derived: an internally tagged enum is buffered into
/// a tree of serde's own before its variant is chosen, which cannot hold a value's raw text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RecordOp {
    Put {
        collection: String,
        key: String,
        value: RawJson,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<u64>,
    },
    Delete {
        collection: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<u64>,
    },
    Check {
        collection: String,
        key: String,
        if_version: u64,
    },
    /// The record must exist, at any version (e.g. "the account is open").
    Present {
        collection: String,
        key: String,
    },
    /// Fewer than `than` records of `collection` have keys starting with `prefix`, as it stands
    /// before this commit: a bound on a queue, checked atomically with the write that grows it,
    /// so concurrent writers cannot race past it and no counter record is contended. Without a
    /// prefix the server keeps the count; with one it counts at most `than` keys, so `than` is
    /// at most [`FEWER_PREFIX_THAN_MAX`].
    Fewer {
        collection: String,
        #[serde(default)]
        prefix: String,
        than: u64,
    },
}

/// The largest `than` of a [`RecordOp::Fewer`] with a prefix (its keys are counted one by one).
pub const FEWER_PREFIX_THAN_MAX: u64 = 1_000;

/// A [`RecordOp`] as it travels: every field any operation has, so that it is read in one pass
/// (a value's text kept as it came), then checked to be exactly one operation's fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRecordOp {
    op: OpKind,
    collection: String,
    key: Option<String>,
    /// `null` is a value like any other: absent is what `None` means here.
    #[serde(default, deserialize_with = "present")]
    value: Option<RawJson>,
    if_version: Option<u64>,
    prefix: Option<String>,
    than: Option<u64>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RawJson>, D::Error> {
    RawJson::deserialize(d).map(Some)
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OpKind {
    Put,
    Delete,
    Check,
    Present,
    Fewer,
}

impl<'de> Deserialize<'de> for RecordOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RecordOp, D::Error> {
        use serde::de::Error;
        let w = WireRecordOp::deserialize(d)?;
        let allowed: &'static [&'static str] = match w.op {
            OpKind::Put => &["key", "value", "if_version"],
            OpKind::Delete => &["key", "if_version"],
            OpKind::Check => &["key", "if_version"],
            OpKind::Present => &["key"],
            OpKind::Fewer => &["prefix", "than"],
        };
        let present = [
            ("key", w.key.is_some()),
            ("value", w.value.is_some()),
            ("if_version", w.if_version.is_some()),
            ("prefix", w.prefix.is_some()),
            ("than", w.than.is_some()),
        ];
        // A field another operation has is as unknown here as a misspelt one (see the module).
        if let Some((field, _)) = present.iter().find(|(f, there)| *there && !allowed.contains(f)) {
            return Err(D::Error::unknown_field(field, allowed));
        }
        let WireRecordOp { op, collection, key, value, if_version, prefix, than } = w;
        let key = || key.ok_or_else(|| D::Error::missing_field("key"));
        let op = match op {
            OpKind::Put => RecordOp::Put {
                key: key()?,
                collection,
                value: value.ok_or_else(|| D::Error::missing_field("value"))?,
                if_version,
            },
            OpKind::Delete => RecordOp::Delete { key: key()?, collection, if_version },
            OpKind::Check => RecordOp::Check {
                key: key()?,
                collection,
                if_version: if_version.ok_or_else(|| D::Error::missing_field("if_version"))?,
            },
            OpKind::Present => RecordOp::Present { key: key()?, collection },
            OpKind::Fewer => RecordOp::Fewer {
                collection,
                prefix: prefix.unwrap_or_default(),
                than: than.ok_or_else(|| D::Error::missing_field("than"))?,
            },
        };
        Ok(op)
    }
}

impl RecordOp {
    pub fn collection(&self) -> &str {
        match self {
            RecordOp::Put { collection, .. }
            | RecordOp::Delete { collection, .. }
            | RecordOp::Check { collection, .. }
            | RecordOp::Present { collection, .. }
            | RecordOp::Fewer { collection, .. } => collection,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            RecordOp::Put { key, .. }
            | RecordOp::Delete { key, .. }
            | RecordOp::Check { key, .. }
            | RecordOp::Present { key, .. } => key,
            RecordOp::Fewer { prefix, .. } => prefix,
        }
    }
    /// Whether this operation changes a record (a put or a delete), rather than only
    /// conditioning the commit.
    pub fn writes(&self) -> bool {
        matches!(self, RecordOp::Put { .. } | RecordOp::Delete { .. })
    }
}

fn yes() -> bool {
    true
}

/// JSON the data server only validates, stores and serves — a record's value, a journal entry's
/// memo — kept as the text it arrived in, so it never builds a tree of it. Parsing a memo into a
/// `Value`, measuring it by serialising it again and writing it twice more (log, journal) took
/// about a tenth of the data server's time under load; record values, more and larger, were
/// parsed, measured, logged and stored the same way, and built as trees by their writers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<serde_json::value::RawValue>);

/// A journal entry's free-form context (kind, parent package id, ...).
pub type Memo = RawJson;

impl RawJson {
    /// The JSON of `value`, which must serialise to JSON (every stored type of ours does: no
    /// map with non-string keys, no float that is not finite).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> RawJson {
        RawJson(serde_json::value::to_raw_value(value).expect("a stored value serialises to JSON"))
    }

    /// Reads it as a `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// Its JSON text, as stored.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Its tree, for code that looks into it by hand (tools, tests), never a hot path.
    pub fn to_value(&self) -> serde_json::Value {
        self.parse().expect("raw JSON was checked to be JSON when it was made")
    }

    /// A memo's `kind` field, when it is an object that has a string one.
    pub fn kind(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Kind {
            kind: Option<String>,
        }
        self.parse::<Kind>().ok().and_then(|k| k.kind)
    }
}

/// For values written by hand (tests, tools): `json!({…}).into()`.
impl From<serde_json::Value> for RawJson {
    fn from(v: serde_json::Value) -> RawJson {
        RawJson::of(&v)
    }
}

/// Equal when they say the same, whatever the order of their keys or their spacing.
impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.as_str() == other.as_str()
            || self
                .parse::<serde_json::Value>()
                .ok()
                .zip(other.parse::<serde_json::Value>().ok())
                .is_some_and(|(a, b)| a == b)
    }
}

/// `POST /v1/{businessId}/commit`: one atomic, durable write.
///
/// Checks every fencing token in `locks`, sets every amount in `set` (each account must be in
/// `locks`), applies `records`, appends one journal entry (when amounts change) and, unless
/// `release` is false, releases the locks — all in one durable write, or nothing at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// Idempotency key: a retry with the same id and payload returns the stored outcome.
    pub tx_id: String,
    #[serde(default)]
    pub locks: Vec<LockRef>,
    #[serde(default)]
    pub set: Vec<SetAmount>,
    #[serde(default)]
    pub records: Vec<RecordOp>,
    /// Free-form context stored with the journal entry (kind, parent package id, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<Memo>,
    #[serde(default = "yes")]
    pub release: bool,
}

impl CommitRequest {
    pub fn new(tx_id: impl Into<String>) -> CommitRequest {
        CommitRequest { tx_id: tx_id.into(), locks: vec![], set: vec![], records: vec![], memo: None, release: true }
    }

    /// A commit under a [`fresh_tx_id`].
    pub fn fresh() -> CommitRequest {
        CommitRequest::new(fresh_tx_id())
    }
}

/// A new commit id that sorts after every id this process made before it (UUIDv7: the time in
/// milliseconds, then 74 random bits).
///
/// Why not random (v4): the data server keeps each commit's outcome under its id for as long as
/// it may be repeated (its `idempotency` table, a B-tree), and checks every new id against it.
/// Random ids land anywhere in that tree: each commit read a page of its own to learn the id was
/// new and dirtied one more page for the next checkpoint to copy and write, a cost that grows
/// with the table. Ids that grow with time land at its end, a few pages for a whole checkpoint.
/// `bench packages --rate 3600 --duration-s 45`, alternated: the data servers' CPU per settled
/// package 315 / 335 → 271 / 280 µs. Ids that grow with time reveal when they were made, which
/// every record they name already says; the 74 random bits keep them unguessable.
pub fn fresh_tx_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountChange {
    pub account: AccountId,
    /// `None` when this commit created the value.
    pub before: Option<Money>,
    pub after: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordVersion {
    pub collection: String,
    pub key: String,
    /// The version after the commit; 0 when the record was deleted.
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitResponse {
    pub tx_id: String,
    /// RFC 3339, the data server's clock when the commit was applied.
    pub at: String,
    pub journal_seq: Option<u64>,
    pub amounts: Vec<AmountChange>,
    pub records: Vec<RecordVersion>,
    /// True when this answer is the stored outcome of an earlier identical request.
    #[serde(default)]
    pub replayed: bool,
}

/// Most commits in one `POST /v1/{businessId}/commits`.
pub const COMMITS_PER_REQUEST_MAX: usize = 64;

/// `POST /v1/{businessId}/commits`: several independent commits in one request, 1 to
/// [`COMMITS_PER_REQUEST_MAX`]. Each is atomic, durable and answered on its own, exactly as if
/// it had been sent alone to `/commit` (one failing does not touch the others); they share the
/// request's round trip and, usually, one durable write. A business server sends the commits of
/// its concurrent requests this way, so a request's cost is paid per batch, not per customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitsRequest {
    pub commits: Vec<CommitRequest>,
}

/// The answer to [`CommitsRequest`]: one result per commit, in the request's order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitsResponse {
    pub results: Vec<CommitResult>,
}

/// One commit's answer in a [`CommitsResponse`]: what `/commit` would have answered, its
/// status and JSON error body included.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitResult {
    Committed(CommitResponse),
    Refused { status: u16, body: crate::ErrorBody },
}

/// One journal entry: every change of posted amounts, in commit order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    pub tx_id: String,
    pub at: String,
    pub business: u32,
    pub changes: Vec<AmountChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<Memo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalPage {
    pub entries: Vec<JournalEntry>,
    /// Pass as `before` (account statements, newest first) or `after` (whole journal) for the next page.
    pub next: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub collection: String,
    pub key: String,
    pub version: u64,
    pub value: RawJson,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordPage {
    pub records: Vec<Record>,
    /// Pass as `after` for the next page.
    pub next: Option<String>,
    /// How many records the whole collection holds (any prefix), when the server keeps count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountBody {
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountAmount {
    pub account: AccountId,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountPage {
    pub amounts: Vec<AccountAmount>,
    pub next: Option<AccountId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAmountBody {
    pub amount: Money,
    pub token: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub token: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    /// Incremented durably at every start; the top bits of every fencing token issued since.
    pub boot_epoch: u64,
    pub accounts: u64,
    pub journal_seq: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The data server's table of commit ids takes new ones at its end only if they sort in
    /// the order they were made (see `fresh_tx_id`); random ids would not, a thousand times.
    #[test]
    fn fresh_commit_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1_000).map(|_| CommitRequest::fresh().tx_id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {:?}", ids.windows(2).find(|w| w[0] >= w[1]));
    }

    #[test]
    fn a_memo_crosses_as_its_text_and_compares_by_meaning() {
        let body = r#"{"tx_id":"t","memo":{"kind":"batch","n":[1,2]}}"#;
        let req: CommitRequest = serde_json::from_str(body).unwrap();
        let memo = req.memo.clone().unwrap();
        assert_eq!(memo.as_str(), r#"{"kind":"batch","n":[1,2]}"#, "kept as it arrived, not rebuilt");
        assert_eq!(memo.kind().as_deref(), Some("batch"));
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            format!(r#"{{"tx_id":"t","locks":[],"set":[],"records":[],"memo":{},"release":true}}"#, memo.as_str())
        );
        let reordered: Memo = serde_json::from_str(r#"{ "n": [1, 2], "kind": "batch" }"#).unwrap();
        assert_eq!(memo, reordered);
        assert_ne!(memo, Memo::of(&serde_json::json!({"kind": "batch"})));
        assert_eq!(Memo::of(&serde_json::json!([1])).kind(), None);
        let broken: Result<CommitRequest, _> = serde_json::from_str(r#"{"tx_id":"t","memo":{"kind":}"#);
        assert!(broken.is_err(), "a memo is still checked to be JSON");
    }

    #[test]
    fn a_record_value_crosses_as_its_text_and_every_op_reads_back_as_it_was_written() {
        let body = r#"{"op":"put","collection":"c","key":"k","value":{"b":[1,"x"],"a":null},"if_version":0}"#;
        let op: RecordOp = serde_json::from_str(body).unwrap();
        let RecordOp::Put { value, .. } = &op else { panic!("a put: {op:?}") };
        assert_eq!(value.as_str(), r#"{"b":[1,"x"],"a":null}"#, "kept as it arrived, not rebuilt");
        assert_eq!(serde_json::to_string(&op).unwrap(), body);
        let (c, k) = (String::from("c"), String::from("k"));
        for op in [
            RecordOp::Put {
                collection: c.clone(),
                key: k.clone(),
                value: serde_json::json!(7).into(),
                if_version: None,
            },
            RecordOp::Delete { collection: c.clone(), key: k.clone(), if_version: Some(3) },
            RecordOp::Delete { collection: c.clone(), key: k.clone(), if_version: None },
            RecordOp::Check { collection: c.clone(), key: k.clone(), if_version: 0 },
            RecordOp::Present { collection: c.clone(), key: k.clone() },
            RecordOp::Fewer { collection: c.clone(), prefix: String::new(), than: 9 },
            RecordOp::Fewer { collection: c.clone(), prefix: "p".into(), than: 9 },
        ] {
            let text = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<RecordOp>(&text).unwrap(), op, "{text}");
        }
    }

    #[test]
    fn a_record_op_with_a_field_it_does_not_have_or_without_one_it_needs_is_refused() {
        for (body, why) in [
            (r#"{"op":"put","collection":"c","key":"k","valeu":1}"#, "misspelt"),
            (r#"{"op":"put","collection":"c","key":"k"}"#, "a put without its value"),
            (r#"{"op":"put","collection":"c","value":1}"#, "a put without its key"),
            (r#"{"op":"put","collection":"c","key":"k","value":1,"than":3}"#, "a put with a bound"),
            (r#"{"op":"delete","collection":"c","key":"k","value":1}"#, "a delete with a value"),
            (r#"{"op":"check","collection":"c","key":"k"}"#, "a check without its version"),
            (r#"{"op":"check","collection":"c","key":"k","if_version":1,"prefix":""}"#, "a check with a prefix"),
            (r#"{"op":"present","collection":"c","key":"k","if_version":1}"#, "present with a version"),
            (r#"{"op":"fewer","collection":"c","than":1,"key":"k"}"#, "fewer with a key"),
            (r#"{"op":"fewer","collection":"c"}"#, "fewer without its bound"),
            (r#"{"op":"grow","collection":"c","key":"k"}"#, "no such op"),
            (r#"{"collection":"c","key":"k","value":1}"#, "no op"),
            (r#"{"op":"put","collection":"c","key":"k","value":{"a":}}"#, "a value that is not JSON"),
        ] {
            assert!(serde_json::from_str::<RecordOp>(body).is_err(), "{why}: {body}");
        }
    }
}
