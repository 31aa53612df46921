//! Customer accounts: opening (seed 001's rules), login, sessions, and the customer's view.

use std::collections::{HashMap, HashSet};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use dataserver_api::client::DataClient;
use dataserver_api::clock::now_ms;
use dataserver_api::{AcquireRequest, CommitRequest, ErrorCode as DsCode, LockRef, RecordKey, RecordOp};
use rand::RngCore;
use sha2::{Digest, Sha256};
use shared::api::{
    Account, AccountCard, AccountStatus, AccountType, CreateAccount, Login, Operation, Session, Statement,
    StatementEntry, Status, Transaction, TransactionType,
};
use shared::{AccountId, BankId, Document, ErrorCode, Ibk, Money};

use crate::config::limits::*;
use crate::error::{ApiError, Unavailable};
use crate::interbank::participant::SettlementMemo;
use crate::model::*;
use crate::model::{ACCOUNT_SESSIONS, SessionIndex};

/// What a journal entry's memo says it was, read once per entry: every memo this bank writes
/// carries its `kind` (`interbank`, `batch`, `package`, `deposit`/`withdrawal`/`transfer`), so
/// the first variant whose tag matches is the one.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JournalMemo {
    Settlement(SettlementMemo),
    Batch(crate::ledger::BatchMemo),
    Package(crate::ledger::Package),
    Op(crate::ledger::Op),
}

/// Which page of a statement: `limit` lines before the journal position `before`, and the
/// authored packages after the index key `packages_before` (each cursor from the page before).
#[derive(Debug, Clone, Default)]
pub struct StatementPage {
    pub before: Option<u64>,
    pub packages_before: Option<String>,
    pub limit: usize,
}

/// The request, checked against seed 001's rules before anything is stored.
fn validate(req: &CreateAccount) -> Result<String, ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > NAME_LEN_MAX || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(ErrorCode::NameInvalid, format!("name must be 1 to {NAME_LEN_MAX} characters")));
    }
    let pw = req.password.chars().count();
    if !(PASSWORD_LEN_MIN..=PASSWORD_LEN_MAX).contains(&pw) {
        return Err(ApiError::invalid(
            ErrorCode::PasswordInvalid,
            format!("password must be {PASSWORD_LEN_MIN} to {PASSWORD_LEN_MAX} characters"),
        ));
    }
    let distinct: HashSet<&Document> = req.documents.iter().collect();
    if distinct.len() != req.documents.len() {
        return Err(ApiError::invalid(ErrorCode::DocumentsInvalid, "a document appears twice"));
    }
    match (req.kind, req.documents.as_slice()) {
        (AccountType::Individual, [d]) if d.is_cpf() => {}
        (AccountType::Individual, _) => {
            return Err(ApiError::invalid(ErrorCode::DocumentsInvalid, "an individual account has exactly one CPF"));
        }
        (AccountType::Legal, [d]) if !d.is_cpf() => {}
        (AccountType::Legal, _) => {
            return Err(ApiError::invalid(ErrorCode::DocumentsInvalid, "a legal account has exactly one CNPJ"));
        }
        (AccountType::Joint, docs) if (2..=JOINT_HOLDERS_MAX).contains(&docs.len()) => {}
        (AccountType::Joint, _) => {
            return Err(ApiError::invalid(
                ErrorCode::DocumentsInvalid,
                format!("a joint account has 2 to {JOINT_HOLDERS_MAX} distinct documents"),
            ));
        }
    }
    Ok(name.to_string())
}

#[derive(Debug, Clone)]
pub struct Accounts {
    pub ds: DataClient,
    pub bank: BankId,
    pub session_ttl_ms: u64,
    pub lock_wait_ms: u64,
    pub lease_ms: u64,
    /// Password hashes computed at once (argon2 is memory- and CPU-hard by design): a flood of
    /// sign-ups or logins waits here instead of starving every other request of the cores.
    pub hashing: std::sync::Arc<Hashing>,
    /// Sessions this replica has read, for a payment to be stored without reading its session
    /// again ([`Accounts::vouched`]).
    pub vouches: Vouches,
}

/// What a session read proved: the session (at `session_version`) names `me` (at
/// `account_version`) and lives until `expires_at_ms`. Kept by the replica that read it so that
/// a cross-bank payment's enqueue skips the read: that commit carries [`Vouch::conditions`], so
/// the data server itself refuses it, atomically with the write, if the session was ended or the
/// account changed since. Nothing else may act on a vouch alone (a read, an intrabank payment, a
/// refusal naming a package): those read the session again.
#[derive(Debug, Clone)]
pub struct Vouch {
    pub me: AccountRecord,
    session_key: String,
    session_version: u64,
    account_version: u64,
    expires_at_ms: u64,
}

impl Vouch {
    /// The conditions that make a commit this vouch's caller's own: both records unchanged.
    pub fn conditions(&self) -> [RecordOp; 2] {
        [
            RecordOp::Check {
                collection: SESSIONS.into(),
                key: self.session_key.clone(),
                if_version: self.session_version,
            },
            RecordOp::Check {
                collection: ACCOUNTS.into(),
                key: account_key(self.me.id),
                if_version: self.account_version,
            },
        ]
    }
}

/// A replica's vouches, by session key, at most `SESSION_VOUCHES_MAX` (when full it starts
/// again empty: a vouch missing costs one read, never a wrong answer).
#[derive(Debug, Clone, Default)]
pub struct Vouches(std::sync::Arc<parking_lot::Mutex<HashMap<String, Vouch>>>);

impl Vouches {
    fn keep(&self, v: Vouch) {
        let mut all = self.0.lock();
        if all.len() >= SESSION_VOUCHES_MAX && !all.contains_key(&v.session_key) {
            all.clear();
        }
        all.insert(v.session_key.clone(), v);
    }

    fn forget(&self, session_key: &str) {
        self.0.lock().remove(session_key);
    }
}

/// The password-hashing gate: `permits` hashes at once, at most `waiting_max` more waiting; past
/// that a caller is told to come back (`503`) rather than queued without bound.
#[derive(Debug)]
pub struct Hashing {
    permits: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    waiting_max: usize,
}

impl Hashing {
    pub fn new(permits: usize, waiting_max: usize) -> Hashing {
        Hashing { permits: tokio::sync::Semaphore::new(permits), waiting: Default::default(), waiting_max }
    }

    /// A permit to hash, or `503` when the queue is full.
    pub async fn enter(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        use std::sync::atomic::Ordering;
        let full = || ApiError::Unavailable(Unavailable::Contended("too many passwords are waiting to be checked"));
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.waiting_max {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(full());
        }
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|e| ApiError::Unavailable(Unavailable::Worker(e.to_string())))
    }
}

impl Accounts {
    pub async fn record(&self, id: AccountId) -> Result<Option<AccountRecord>, ApiError> {
        match self.ds.get_record(ACCOUNTS, &account_key(id)).await? {
            Some(r) => Ok(Some(parse(&r.value)?)),
            None => Ok(None),
        }
    }

    /// The record and its version (for compare-and-set).
    async fn record_versioned(&self, id: AccountId) -> Result<Option<(AccountRecord, u64)>, ApiError> {
        match self.ds.get_record(ACCOUNTS, &account_key(id)).await? {
            Some(r) => Ok(Some((parse(&r.value)?, r.version))),
            None => Ok(None),
        }
    }

    /// Account `id`, if the person of session `me` may act on it (see [`may_access`]): `404`
    /// when there is no such account, `403` when it is somebody else's.
    pub async fn accessible(&self, me: &AccountRecord, id: AccountId) -> Result<AccountRecord, ApiError> {
        // The session's own account was read for this very request when its session was: read
        // again, it would be the same record a moment later, for another data-server request.
        if id == me.id {
            return Ok(me.clone());
        }
        let target = self.record(id).await?.ok_or(ApiError::AccountNotFound(id))?;
        if !may_access(me, &target) {
            return Err(ApiError::Forbidden);
        }
        Ok(target)
    }

    /// The individual or legal account a document holds at this bank (joint accounts are listed
    /// through their holders' own accounts).
    pub async fn held_by(&self, doc: &shared::Document) -> Result<Option<AccountRecord>, ApiError> {
        let Some(r) = self.ds.get_record(HOLDERS, doc.digits()).await? else { return Ok(None) };
        let h: HolderRecord = parse(&r.value)?;
        self.record(h.account).await
    }

    /// What this bank tells a peer of a document's account here: its card, nothing more.
    pub async fn cards_of(&self, doc: &shared::Document) -> Result<Vec<AccountCard>, ApiError> {
        Ok(self.held_by(doc).await?.map(|r| self.card(&r)).into_iter().collect())
    }

    /// An account as a peer bank may see it (see [`AccountCard`]).
    pub fn card(&self, r: &AccountRecord) -> AccountCard {
        AccountCard {
            ibk: Ibk::new(self.bank, r.id),
            name: shared::pix::mask_name(&r.name),
            active: r.pending.is_empty(),
        }
    }

    /// The accounts in the network of the person of session `me`, `target` first among this
    /// bank's; banks that did not answer are listed, so the list is never silently partial. A
    /// session opened on a joint account is nobody in particular: it sees that account only.
    pub async fn everywhere(
        &self,
        ib: &crate::interbank::Interbank,
        me: &AccountRecord,
        target: AccountRecord,
    ) -> Result<shared::api::AllAccounts, ApiError> {
        use futures::future::join_all;
        let mut accounts = vec![self.view(target.clone()).await?];
        let mut elsewhere: Vec<AccountCard> = Vec::new();
        let mut unreachable = Vec::new();
        if let Some(person) = me.person() {
            if let Some(own) = self.held_by(person).await?
                && own.id != target.id
            {
                accounts.push(self.view(own).await?);
            }
            for joint in self.joint_accounts_of(person).await? {
                if joint.id != target.id {
                    accounts.push(self.view(joint).await?);
                }
            }
            let peers: Vec<BankId> = ib.peers.network().ids().into_iter().filter(|b| *b != ib.me).collect();
            let path = format!("/account/{}", person.digits());
            let calls =
                peers.iter().map(|b| ib.peers.call::<Vec<AccountCard>>(*b, reqwest::Method::GET, &path, None::<&()>));
            for (b, a) in peers.iter().zip(join_all(calls).await) {
                match a {
                    Ok(list) => elsewhere.extend(list.into_iter().filter(|c| c.ibk.bank == *b)),
                    Err(_) => unreachable.push(*b),
                }
            }
        }
        accounts[1..].sort_by_key(|a| a.ibk);
        elsewhere.sort_by_key(|a| a.ibk);
        elsewhere.dedup_by_key(|a| a.ibk);
        Ok(shared::api::AllAccounts { accounts, elsewhere, unreachable_banks: unreachable })
    }

    /// The customer's view of an account: its record and posted balance.
    pub async fn view(&self, r: AccountRecord) -> Result<Account, ApiError> {
        let balance = self.ds.posted_amount(r.id).await?.unwrap_or(Money::ZERO);
        Ok(Account {
            id: r.id,
            name: r.name,
            documents: r.documents,
            kind: r.kind,
            ibk: Ibk::new(self.bank, r.id),
            created_at: r.created_at,
            balance,
            status: if r.pending.is_empty() { AccountStatus::Active } else { AccountStatus::PendingHolders },
            pending_documents: r.pending,
        })
    }

    /// Opens an account: the next id, its record, the holder index and a zero balance in one
    /// commit; a concurrent opening that took the id (or the document) first makes it try again.
    ///
    /// A joint account is opened by one of its holders (`session`, a person of this bank listed
    /// among its documents) and waits for every other holder's consent before it can be
    /// debited: nobody can open an account in another person's name.
    pub async fn open(&self, req: CreateAccount, session: Option<&AccountRecord>) -> Result<Account, ApiError> {
        let name = validate(&req)?;
        let pending: Vec<Document> = match req.kind {
            AccountType::Joint => {
                let person = session.and_then(AccountRecord::person).ok_or(ApiError::SessionRequired)?;
                if !req.documents.contains(person) {
                    return Err(ApiError::Forbidden);
                }
                req.documents.iter().filter(|d| *d != person).cloned().collect()
            }
            _ => Vec::new(),
        };
        // Cheap refusals first: no argon2 work for a request that cannot succeed.
        self.holders_allow(&req).await?;
        let hash = self.hash_password(req.password.clone()).await?;

        for attempt in 0..ACCOUNT_OPEN_ATTEMPTS_MAX {
            // The pre-checks name the exact problem (the commit's conditions make them race-free);
            // they ran just before the hash, so only a retry after a lost race reads them again.
            if attempt > 0 {
                self.holders_allow(&req).await?;
            }
            let counter = self.ds.get_record(COUNTERS, ACCOUNT_COUNTER).await?;
            let (version, next) = match &counter {
                Some(r) => (r.version, parse::<CounterRecord>(&r.value)?.next),
                None => (0, 1),
            };
            let id = AccountId::new(next)
                .map_err(|_| ApiError::Unavailable(Unavailable::Exhausted("the account ids are used up")))?;
            let grant = self
                .ds
                .acquire(&AcquireRequest {
                    accounts: vec![id],
                    lease_ms: Some(self.lease_ms),
                    wait_ms: Some(self.lock_wait_ms),
                    request_id: None,
                    read: vec![],
                })
                .await;
            let grant = match grant {
                Ok(g) => g,
                Err(e) if e.code() == Some(DsCode::Locked) => continue, // another opening holds this id
                Err(e) => return Err(e.into()),
            };
            let lock = LockRef { account: id, token: grant.locks[0].token };
            let record = AccountRecord {
                id,
                name: name.clone(),
                documents: req.documents.clone(),
                kind: req.kind,
                created_at: dataserver_api::clock::rfc3339_ms(now_ms()),
                password_hash: Some(hash.clone()),
                pending: pending.clone(),
            };
            let mut commit: CommitRequest = open_account_commit(dataserver_api::fresh_tx_id(), lock, &record);
            commit.records.push(RecordOp::Put {
                collection: COUNTERS.into(),
                key: ACCOUNT_COUNTER.into(),
                value: json(&CounterRecord { next: next + 1 }),
                if_version: Some(version),
            });
            for d in &req.documents {
                commit.records.push(match req.kind {
                    AccountType::Joint => RecordOp::Present { collection: HOLDERS.into(), key: d.digits().into() },
                    _ => RecordOp::Put {
                        collection: HOLDERS.into(),
                        key: d.digits().into(),
                        value: json(&HolderRecord { account: id }),
                        if_version: Some(0),
                    },
                });
                if req.kind == AccountType::Joint {
                    // Each holder's list of joint accounts, so they find it to confirm and use it.
                    let (mut index, version) = self.joint_index(d).await?;
                    if index.accounts.len() >= JOINT_ACCOUNTS_PER_DOCUMENT_MAX {
                        let _ = self.ds.release(&[lock]).await;
                        return Err(ApiError::invalid_unprocessable(
                            ErrorCode::JointAccountsLimit,
                            format!(
                                "document {} is already a holder of {JOINT_ACCOUNTS_PER_DOCUMENT_MAX} joint accounts",
                                d.formatted()
                            ),
                        ));
                    }
                    index.accounts.push(id);
                    commit.records.push(RecordOp::Put {
                        collection: JOINT_HOLDERS.into(),
                        key: d.digits().into(),
                        value: json(&index),
                        if_version: Some(version),
                    });
                }
            }
            match self.ds.commit(&commit).await {
                Ok(_) => return self.view(record).await,
                Err(e) if matches!(e.code(), Some(DsCode::ConditionFailed | DsCode::RecordAbsent)) => {
                    let _ = self.ds.release(&[lock]).await;
                }
                Err(e) => {
                    let _ = self.ds.release(&[lock]).await;
                    return Err(e.into());
                }
            }
        }
        Err(ApiError::Unavailable(Unavailable::Contended("too many concurrent account openings")))
    }

    /// The joint accounts a document is a holder of, and the index's version.
    async fn joint_index(&self, doc: &Document) -> Result<(JointIndex, u64), ApiError> {
        Ok(match self.ds.get_record(JOINT_HOLDERS, doc.digits()).await? {
            Some(r) => (parse(&r.value)?, r.version),
            None => (JointIndex::default(), 0),
        })
    }

    /// The open joint accounts `person` is a holder of (confirmed or not).
    pub async fn joint_accounts_of(&self, person: &Document) -> Result<Vec<AccountRecord>, ApiError> {
        let mut out = Vec::new();
        for id in self.joint_index(person).await?.0.accounts {
            if let Some(r) = self.record(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Seed 001's holder rules, read now: a joint account's holders all have an account here;
    /// an individual or legal account's document has none yet.
    async fn holders_allow(&self, req: &CreateAccount) -> Result<(), ApiError> {
        for d in &req.documents {
            let holder = self.ds.get_record(HOLDERS, d.digits()).await?;
            match (req.kind, holder) {
                (AccountType::Joint, None) => return Err(ApiError::JointHolderMissing(d.formatted())),
                (AccountType::Individual | AccountType::Legal, Some(_)) => {
                    return Err(ApiError::DocumentTaken(d.formatted()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// An argon2id hash of `password`, computed on the blocking pool under [`Accounts::hashing`].
    async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let _permit = self.hashing.enter().await?;
        actix_web::web::block(move || {
            Argon2::default()
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
                .map(|h| h.to_string())
        })
        .await
        .map_err(|e| ApiError::Unavailable(Unavailable::Worker(e.to_string())))?
        .map_err(|e| ApiError::Unavailable(Unavailable::Worker(format!("password hashing: {e}"))))
    }

    /// Whether `password` is the one `stored` hashes, computed under [`Accounts::hashing`].
    async fn verify_password(&self, stored: String, password: String) -> Result<bool, ApiError> {
        let _permit = self.hashing.enter().await?;
        actix_web::web::block(move || {
            PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .map_err(|e| ApiError::Unavailable(Unavailable::Worker(e.to_string())))
    }

    /// A holder's consent to joint account `id`, given with their own session (`me`, a person
    /// of this bank). The last consent makes the account active; a repeated one changes nothing.
    pub async fn consent(&self, me: &AccountRecord, id: AccountId) -> Result<Account, ApiError> {
        let person = me.person().ok_or(ApiError::Forbidden)?;
        for _ in 0..ACCOUNT_OPEN_ATTEMPTS_MAX {
            let (mut record, version) = self.record_versioned(id).await?.ok_or(ApiError::AccountNotFound(id))?;
            if !record.documents.contains(person) {
                return Err(ApiError::Forbidden);
            }
            if !record.pending.contains(person) {
                return self.view(record).await;
            }
            record.pending.retain(|d| d != person);
            let mut commit = CommitRequest::fresh();
            commit.records.push(RecordOp::Put {
                collection: ACCOUNTS.into(),
                key: account_key(id),
                value: json(&record),
                if_version: Some(version),
            });
            commit.records.push(pending_marker(&record));
            commit.memo =
                Some(dataserver_api::Memo::of(&serde_json::json!({ "kind": "joint_consent", "account": id })));
            match self.ds.commit(&commit).await {
                Ok(_) => return self.view(record).await,
                Err(e) if e.code() == Some(DsCode::ConditionFailed) => continue, // another holder at once
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Unavailable(Unavailable::Contended("too many concurrent consents")))
    }

    /// Closes an account (seed 001): only with a zero balance and nothing in flight. Its lease is
    /// taken without waiting, so an operation holding it means "in flight"; the balance is the
    /// one under that lease. The record goes (later operations find the account closed); the
    /// holder index goes too for an individual or legal account, so the document may open again.
    pub async fn close(&self, ib: &crate::interbank::Interbank, target: &AccountRecord) -> Result<(), ApiError> {
        let req = AcquireRequest {
            accounts: vec![target.id],
            lease_ms: Some(self.lease_ms),
            wait_ms: None,
            request_id: None,
            read: vec![RecordKey::new(HOLDS, account_key(target.id))],
        };
        let grant = match self.ds.acquire(&req).await {
            Ok(g) => g,
            Err(e) if e.code() == Some(DsCode::Locked) => return Err(ApiError::InFlight),
            Err(e) => return Err(e.into()),
        };
        let lock = LockRef { account: target.id, token: grant.locks[0].token };
        let balance = grant.locks[0].amount.unwrap_or(Money::ZERO);
        // Money reserved or promised by a package in two-phase commit is in flight, and so is a
        // small credit prepared here without a hold (it would land on a closed account).
        let holds =
            grant.records.first().and_then(Option::as_ref).map(|r| parse::<HoldRecord>(&r.value)).transpose()?;
        let credited = if holds.is_some_and(|h| h.inflight > 0) {
            Ok(true)
        } else {
            crate::interbank::participant::credit_in_flight(ib, target.id).await
        };
        if let Err(e) = credited.and_then(|c| if c { Err(ApiError::InFlight) } else { Ok(()) }) {
            let _ = self.ds.release(&[lock]).await;
            return Err(e);
        }
        if !balance.is_zero() {
            let _ = self.ds.release(&[lock]).await;
            return Err(ApiError::BalanceNotZero(balance));
        }
        let keys = match crate::interbank::keys::release_for_close(ib, target.id).await {
            Ok(ops) => ops,
            Err(e) => {
                let _ = self.ds.release(&[lock]).await;
                return Err(e);
            }
        };
        let mut commit = CommitRequest::fresh();
        commit.locks = vec![lock];
        commit.records.push(RecordOp::Delete {
            collection: ACCOUNTS.into(),
            key: account_key(target.id),
            if_version: None,
        });
        commit.records.extend(keys);
        commit.records.push(RecordOp::Delete {
            collection: PENDING_HOLDERS.into(),
            key: account_key(target.id),
            if_version: None,
        });
        for d in &target.documents {
            if target.kind == AccountType::Joint {
                let (mut index, version) = match self.joint_index(d).await {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = self.ds.release(&[lock]).await;
                        return Err(e);
                    }
                };
                index.accounts.retain(|a| *a != target.id);
                commit.records.push(RecordOp::Put {
                    collection: JOINT_HOLDERS.into(),
                    key: d.digits().into(),
                    value: json(&index),
                    if_version: Some(version),
                });
            } else {
                commit.records.push(RecordOp::Delete {
                    collection: HOLDERS.into(),
                    key: d.digits().into(),
                    if_version: None,
                });
            }
        }
        commit.memo =
            Some(dataserver_api::Memo::of(&serde_json::json!({ "kind": "close_account", "account": target.id })));
        if let Err(e) = self.ds.commit(&commit).await {
            let _ = self.ds.release(&[lock]).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// An account's statement, newest first: every operation that moved its balance, with the
    /// balance right after and the counterpart's masked name when this bank holds it; and the
    /// packages it authored in their live state ([`crate::interbank::coordinator::authored`]).
    /// Journal entries that are not operations (an opening) are left out.
    pub async fn statement(&self, account: AccountId, page: StatementPage) -> Result<Statement, ApiError> {
        use crate::config::limits::STATEMENT_PACKAGES_MAX;
        let ibk = |a: AccountId| Ibk::new(self.bank, a);
        let journal = async { self.ds.account_journal(account, page.before, page.limit).await.map_err(ApiError::from) };
        let packages = crate::interbank::coordinator::authored(
            &self.ds,
            account,
            page.packages_before.as_deref(),
            page.limit.min(STATEMENT_PACKAGES_MAX),
        );
        let (journal, (packages, packages_next)) = futures::future::try_join(journal, packages).await?;
        let mut transactions = Vec::new();
        for e in journal.entries {
            let Some(change) = e.changes.iter().find(|c| c.account == account) else { continue };
            let before = change.before;
            let balance = change.after;
            // A memo that is none of ours (an opening) is not an operation: no line.
            let Some(Ok(memo)) = e.memo.as_ref().map(|m| m.parse::<JournalMemo>()) else { continue };
            match memo {
                JournalMemo::Settlement(settled) => {
                    transactions.extend(settlement_entries(self.bank, account, before, &settled, &e.at));
                }
                JournalMemo::Batch(batch) => transactions.extend(Self::batch_entries(ibk, account, batch, &e.at)),
                JournalMemo::Package(p) => {
                    transactions.push(StatementEntry::new(p.transaction(&e.at), balance, ibk(account)));
                }
                JournalMemo::Op(op) => transactions.push(Self::op_entry(&ibk, account, op, e.tx_id, &e.at, balance)),
            }
        }
        self.name_counterparts(&mut transactions).await?;
        Ok(Statement { transactions, next: journal.next, packages, packages_next })
    }

    /// Fills in the masked names of the counterparts that are accounts of this bank (each read
    /// once, all at once); a closed account keeps its IBK and no name.
    async fn name_counterparts(&self, lines: &mut [StatementEntry]) -> Result<(), ApiError> {
        let mut ours: Vec<AccountId> = lines
            .iter()
            .filter_map(|l| l.line.counterpart)
            .filter(|c| c.bank == self.bank)
            .map(|c| c.account)
            .collect();
        ours.sort_unstable();
        ours.dedup();
        let records = futures::future::try_join_all(ours.iter().map(|a| self.record(*a))).await?;
        let names: HashMap<AccountId, String> =
            records.into_iter().flatten().map(|r| (r.id, shared::pix::mask_name(&r.name))).collect();
        for l in lines {
            if let Some(c) = l.line.counterpart.filter(|c| c.bank == self.bank) {
                l.line.counterpart_name = names.get(&c.account).cloned();
            }
        }
        Ok(())
    }

    /// The lines of a batch's journal entry that concern `account`, newest first, each with the
    /// balance right after its own operation.
    fn batch_entries(
        ibk: impl Fn(AccountId) -> Ibk,
        account: AccountId,
        batch: crate::ledger::BatchMemo,
        at: &str,
    ) -> Vec<StatementEntry> {
        batch
            .operations
            .into_iter()
            .rev()
            .filter_map(|b| {
                let balance = b.balances.iter().find(|x| x.account == account)?.balance;
                Some(Self::op_entry(&ibk, account, b.op, b.id, at, balance))
            })
            .collect()
    }

    fn op_entry(
        ibk: &impl Fn(AccountId) -> Ibk,
        me: AccountId,
        op: crate::ledger::Op,
        id: String,
        at: &str,
        balance: Money,
    ) -> StatementEntry {
        let (from, to) = match op {
            crate::ledger::Op::Deposit { account, .. } | crate::ledger::Op::Withdrawal { account, .. } => {
                (account, account)
            }
            crate::ledger::Op::Transfer { from, to, .. } => (from, to),
        };
        let operation = Operation {
            id: id.clone(),
            from: ibk(from),
            to: ibk(to),
            kind: op.kind(),
            amount: op.amount(),
            status: Status::Success,
            created_at: at.to_string(),
            updated_at: at.to_string(),
        };
        let transaction = Transaction {
            id,
            owner: ibk(from),
            parent_id: None,
            kind: TransactionType::Final,
            operations: vec![operation],
            created_at: at.to_string(),
            updated_at: at.to_string(),
            status: Status::Success,
            reason: None,
            reason_code: None,
        };
        StatementEntry::new(transaction, balance, ibk(me))
    }

    /// Checks the password and starts a session. Unknown account and wrong password look alike.
    pub async fn login(&self, req: Login) -> Result<Session, ApiError> {
        if req.ibk.bank != self.bank {
            return Err(ApiError::WrongBank(req.ibk));
        }
        let record = self.record(req.ibk.account).await?.ok_or(ApiError::InvalidCredentials { attempts_left: None })?;
        let stored = record.password_hash.clone().ok_or(ApiError::InvalidCredentials { attempts_left: None })?;
        if !self.verify_password(stored, req.password).await? {
            return Err(ApiError::InvalidCredentials { attempts_left: None });
        }
        let token = new_token(record.id);
        let now = now_ms();
        let expires_at_ms = now.saturating_add(self.session_ttl_ms);
        let key = session_key(&token);
        for attempt in 1..=ACCOUNT_OPEN_ATTEMPTS_MAX {
            // The account's sessions, bounded: the oldest ends when one more would pass the limit.
            let (mut index, version) = match self.ds.get_record(ACCOUNT_SESSIONS, &account_key(record.id)).await? {
                Some(r) => (parse::<SessionIndex>(&r.value)?, r.version),
                None => (SessionIndex::default(), 0),
            };
            index.sessions.retain(|(_, exp)| *exp > now);
            let mut commit = CommitRequest::fresh();
            while index.sessions.len() >= SESSIONS_PER_ACCOUNT_MAX {
                let (old, _) = index.sessions.remove(0);
                commit.records.push(RecordOp::Delete { collection: SESSIONS.into(), key: old, if_version: None });
            }
            index.sessions.push((key.clone(), expires_at_ms));
            commit.records.push(RecordOp::Put {
                collection: SESSIONS.into(),
                key: key.clone(),
                value: json(&SessionRecord { account: record.id, expires_at_ms }),
                if_version: Some(0),
            });
            commit.records.push(RecordOp::Put {
                collection: ACCOUNT_SESSIONS.into(),
                key: account_key(record.id),
                value: json(&index),
                if_version: Some(version),
            });
            match self.ds.commit(&commit).await {
                Ok(_) => break,
                Err(e) if e.code() == Some(DsCode::ConditionFailed) && attempt < ACCOUNT_OPEN_ATTEMPTS_MAX => continue,
                Err(e) if e.code() == Some(DsCode::ConditionFailed) => {
                    return Err(ApiError::Unavailable(Unavailable::Contended("too many concurrent logins")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Session {
            token,
            expires_at: dataserver_api::clock::rfc3339_ms(expires_at_ms),
            account: self.view(record).await?,
        })
    }

    /// Revokes a live session: its record is deleted, so no replica accepts the token again.
    pub async fn logout(&self, token: &str) -> Result<(), ApiError> {
        self.session(token).await?;
        let mut commit = CommitRequest::fresh();
        commit.records.push(RecordOp::Delete {
            collection: SESSIONS.into(),
            key: session_key(token),
            if_version: None,
        });
        // Its event ticket opens nothing more, and its open streams end at their next heartbeat.
        commit.records.push(crate::events::forget(&session_key(token)));
        self.ds.commit(&commit).await?;
        self.vouches.forget(&session_key(token));
        Ok(())
    }

    /// The account a live session token belongs to. The token names its account, so the
    /// session and the account are read in one data-server request (every authenticated request
    /// made two, one after the other); the session record alone says whose the session is, and
    /// a token naming another account than its session's (one opened before tokens named
    /// theirs) costs only a second read.
    pub async fn session(&self, token: &str) -> Result<AccountRecord, ApiError> {
        if !token_shaped(token) {
            return Err(ApiError::NoSession);
        }
        let named = token_account(token);
        let key = session_key(token);
        let mut keys = vec![RecordKey::new(SESSIONS, key.clone())];
        keys.extend(named.map(|a| RecordKey::new(ACCOUNTS, account_key(a))));
        let mut got = self.ds.get_records(keys).await?.into_iter();
        let Some((s, session_version)) = live_versioned(got.next().flatten())? else {
            self.vouches.forget(&key);
            return Err(ApiError::NoSession);
        };
        if named == Some(s.account)
            && let Some(r) = got.next().flatten()
        {
            let account_version = r.version;
            let me: AccountRecord = parse(&r.value)?;
            self.vouches.keep(Vouch {
                me: me.clone(),
                session_key: key,
                session_version,
                account_version,
                expires_at_ms: s.expires_at_ms,
            });
            return Ok(me);
        }
        self.record(s.account).await?.ok_or(ApiError::NoSession)
    }

    /// What this replica last read of `token`'s session, if it has not expired since: for a
    /// commit that carries its [`Vouch::conditions`], never as proof on its own.
    pub fn vouched(&self, token: &str) -> Option<Vouch> {
        if !token_shaped(token) {
            return None;
        }
        let v = self.vouches.0.lock().get(&session_key(token)).cloned()?;
        (v.expires_at_ms > now_ms()).then_some(v)
    }
}

/// The session stored under `key` (a token's digest), if it has not expired.
pub async fn live_session(ds: &DataClient, key: &str) -> Result<Option<SessionRecord>, ApiError> {
    live(ds.get_record(SESSIONS, key).await?)
}

/// A session record as read, if there is one and it has not expired.
fn live(r: Option<dataserver_api::Record>) -> Result<Option<SessionRecord>, ApiError> {
    Ok(live_versioned(r)?.map(|(s, _)| s))
}

/// [`live`], with the record's version.
fn live_versioned(r: Option<dataserver_api::Record>) -> Result<Option<(SessionRecord, u64)>, ApiError> {
    let Some(r) = r else { return Ok(None) };
    let version = r.version;
    let s: SessionRecord = parse(&r.value)?;
    Ok((s.expires_at_ms > now_ms()).then_some((s, version)))
}

/// A new session token for `account`: 64 hex digits, the account's id (16) then 192 random
/// bits (48). The id is no secret (it is in the IBK); it lets the session and its account be
/// read together ([`Accounts::session`]).
fn new_token(account: AccountId) -> String {
    let mut raw = [0u8; 24];
    rand::rng().fill_bytes(&mut raw);
    format!("{:016x}{}", account.get(), hex::encode(raw))
}

/// Whether `token` has a token's shape (64 hex digits, [`new_token`]); anything else is no
/// session, without a read.
fn token_shaped(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The account a token names (not proof of anything: its session record is).
fn token_account(token: &str) -> Option<AccountId> {
    u64::from_str_radix(token.get(..16)?, 16).ok().and_then(|n| AccountId::new(n).ok())
}

/// Sessions are stored under the token's digest, so a leak of the store leaks no token.
pub fn session_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether the person of session `me` may act on `target`. A session opened on an individual
/// or legal account is that document's person: it reaches that account and the joint accounts
/// it is a confirmed holder of. A session opened on a joint account's IBK reaches that account
/// only. Sharing a document with an account is not enough: a joint account lists other people.
pub fn may_access(me: &AccountRecord, target: &AccountRecord) -> bool {
    if me.id == target.id {
        return true;
    }
    match me.person() {
        Some(person) => target.kind == AccountType::Joint && target.active_holder(person),
        None => false,
    }
}

/// The statement lines of one settlement journal entry for `account`: one per package that
/// touched it, newest first, each linked to its package (`parent_id`) and with the balance right
/// after it (the entry records the balance before the whole settlement).
fn settlement_entries(
    bank: BankId,
    account: AccountId,
    before: Option<Money>,
    settled: &SettlementMemo,
    at: &str,
) -> Vec<StatementEntry> {
    let me = Ibk::new(bank, account);
    let mut balance = before.unwrap_or(Money::ZERO);
    let mut out = Vec::new();
    for p in &settled.entries {
        let ops: Vec<_> = p.ops.iter().filter(|o| o.from == me || o.to == me).collect();
        if ops.is_empty() {
            continue;
        }
        for o in &ops {
            if o.to == me {
                balance = balance.checked_add(o.amount.money()).unwrap_or(balance);
            }
            if o.from == me {
                balance = balance.checked_sub(o.amount.money()).unwrap_or(balance);
            }
        }
        let operations = crate::ledger::package_operations(
            &p.txn,
            ops.iter().map(|o| (o.from, o.to, o.amount.money())),
            Status::Success,
            at,
            at,
        );
        let transaction = Transaction {
            id: p.txn.clone(),
            owner: p.author,
            parent_id: Some(p.package.clone()),
            kind: TransactionType::Final,
            operations,
            created_at: at.to_string(),
            updated_at: at.to_string(),
            status: Status::Success,
            reason: None,
            reason_code: None,
        };
        out.push(StatementEntry::new(transaction, balance, me));
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_account_and_is_otherwise_random() {
        let id = AccountId::new(shared::ids::ACCOUNT_ID_MAX).unwrap();
        let (t, u) = (new_token(id), new_token(id));
        assert_eq!((t.len(), t.bytes().all(|b| b.is_ascii_hexdigit())), (64, true), "{t}");
        assert_eq!(token_account(&t), Some(id));
        assert_ne!(t, u, "192 random bits each");
        assert_eq!(token_account(&"0".repeat(64)), None, "account 0 is nobody's");
    }

    #[tokio::test]
    async fn the_hashing_queue_is_bounded() {
        let gate = std::sync::Arc::new(Hashing::new(1, 2));
        let held = gate.enter().await.expect("a permit");
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let g = gate.clone();
                tokio::spawn(async move { g.enter().await.map(|_| ()) })
            })
            .collect();
        while gate.waiting.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let third = gate.enter().await;
        assert!(matches!(third, Err(ApiError::Unavailable(Unavailable::Contended(_)))), "a third waiter: {third:?}");
        drop(held);
        for w in waiters {
            assert!(w.await.expect("joined").is_ok(), "the waiters got their turn");
        }
        assert!(gate.enter().await.is_ok(), "room again");
    }

    #[test]
    fn a_batch_is_one_statement_line_per_operation_of_the_account_newest_first() {
        use crate::ledger::{BatchMemo, BatchedOp, Op};
        use shared::api::AccountBalance;
        let a = |n: u64| AccountId::new(n).expect("an id");
        let m = |c: i64| Money::from_cents(c).expect("an amount");
        let amount = "1.00".parse().expect("an amount");
        let line = |id: &str, op: Op, b: &[(u64, i64)]| BatchedOp {
            id: id.into(),
            op,
            balances: b.iter().map(|(x, c)| AccountBalance { account: a(*x), balance: m(*c) }).collect(),
        };
        let memo = BatchMemo {
            operations: vec![
                line("t1", Op::Transfer { from: a(1), to: a(2), amount }, &[(1, 900), (2, 100)]),
                line("d3", Op::Deposit { account: a(3), amount }, &[(3, 100)]),
                line("t2", Op::Transfer { from: a(1), to: a(2), amount }, &[(1, 800), (2, 200)]),
            ],
        };
        let ibk = |x: AccountId| Ibk::new(BankId::new(1).expect("a bank"), x);
        let lines = Accounts::batch_entries(ibk, a(2), memo, "2026-12-01T00:00:00Z");
        let got: Vec<(&str, Money)> = lines.iter().map(|l| (l.transaction.id.as_str(), l.balance)).collect();
        assert_eq!(got, vec![("t2", m(200)), ("t1", m(100))]);
        assert_eq!(lines[0].transaction.operations[0].from, ibk(a(1)));
    }
}
