//! Independent commits of concurrent requests, sent to the data server together.
//!
//! Under load most of a submission's cost is not its commit but the request that carries it:
//! HTTP framing and JSON on both sides, a socket write and a task woken on each, and at the data
//! server a durable write per batch that a lone commit pays alone. The submissions one replica
//! serves at once are independent commits, so they can share a request
//! (`POST /v1/{business}/commits`, each commit still atomic and answered on its own).
//!
//! Per thread: while `in_flight_max` requests of a thread are out, that thread's next commits
//! wait and leave together in one request as soon as one comes back. A lone commit leaves at
//! once, itself (nothing waits on a timer), so a quiet replica answers as fast as before; a busy
//! one pays a request per batch instead of per customer. Per thread, because the requests are
//! served by one single-threaded runtime per worker thread: a commit handed to another thread's
//! task, and its answer handed back, cost what sharing the request saved (measured: a coalescer
//! on the main runtime settled no more than none at all).
//!
//! A failed shared request fails each of its commits as a failed request of its own would (the
//! outcome unknown: the caller is told the bank is unavailable and retries under its key). A
//! submission's commit is a few KiB at most (`PACKAGE_OPERATIONS_MAX` operations), so 64 of them
//! stay far below the data server's body bound (4 MiB by default); a data server started with
//! `--body-bytes-max` under ~1 MiB could refuse a full batch as too large, failing each of its
//! commits as above.
//!
//! Written here because it is the data server's own multi-commit request that is coalesced into;
//! a generic batching crate would still need this glue.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::ThreadId;

use dataserver_api::client::{ClientError, DataClient};
use dataserver_api::{COMMITS_PER_REQUEST_MAX, CommitRequest, CommitResponse};
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<CommitResponse, ClientError>>;

/// Most threads with a queue of their own; a commit from any further thread is sent alone.
pub const COALESCING_THREADS_MAX: usize = 64;

/// The handle requests commit through; cloned freely.
#[derive(Debug, Clone)]
pub struct Commits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ds: DataClient,
    in_flight_max: usize,
    threads: parking_lot::Mutex<HashMap<ThreadId, Queue>>,
}

/// One thread's requests out and commits waiting for one to come back.
#[derive(Debug, Default)]
struct Queue {
    in_flight: usize,
    waiting: Vec<(CommitRequest, Reply)>,
}

/// What a commit does: go now (a request slot of its thread taken), wait to share the next
/// request, or go alone, uncounted (past the bounds: a thread beyond the bound or a full queue).
enum Way {
    Now(CommitRequest),
    Shared(oneshot::Receiver<Result<CommitResponse, ClientError>>),
    Alone(CommitRequest),
}

impl Commits {
    /// At most `in_flight_max` (≥ 1) requests of a thread are out at once; at most
    /// [`COMMITS_PER_REQUEST_MAX`] commits ride in each, and that many per request slot wait.
    pub fn new(ds: DataClient, in_flight_max: usize) -> Commits {
        assert!(in_flight_max >= 1, "at least one request in flight");
        Commits { inner: Arc::new(Inner { ds, in_flight_max, threads: parking_lot::Mutex::new(HashMap::new()) }) }
    }

    /// Commits `c` as [`DataClient::commit`] would, sharing a request with whatever commits of
    /// this thread are waiting when it leaves.
    pub async fn commit(&self, c: CommitRequest) -> Result<CommitResponse, ClientError> {
        let thread = std::thread::current().id();
        let way = {
            let mut threads = self.inner.threads.lock();
            let bounded = threads.len() < COALESCING_THREADS_MAX || threads.contains_key(&thread);
            match bounded.then(|| threads.entry(thread).or_default()) {
                Some(q) if q.in_flight < self.inner.in_flight_max => {
                    q.in_flight += 1;
                    Way::Now(c)
                }
                Some(q) if q.waiting.len() < COMMITS_PER_REQUEST_MAX.saturating_mul(self.inner.in_flight_max) => {
                    let (reply, answer) = oneshot::channel();
                    q.waiting.push((c, reply));
                    Way::Shared(answer)
                }
                _ => Way::Alone(c),
            }
        };
        match way {
            Way::Now(c) => {
                // Given back when this future ends, answered or dropped: what waited meanwhile
                // leaves then.
                let _slot = Slot { inner: self.inner.clone(), thread };
                self.inner.ds.commit(&c).await
            }
            Way::Shared(answer) => answer.await.unwrap_or_else(|_| Err(gone())),
            Way::Alone(c) => self.inner.ds.commit(&c).await,
        }
    }
}

fn gone() -> ClientError {
    ClientError::Shared("this business server is shutting down".into())
}

/// A request slot of `thread`, taken: on drop the slot is given back, or handed at once to
/// the commits that waited for it.
struct Slot {
    inner: Arc<Inner>,
    thread: ThreadId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let batch = {
            let mut threads = self.inner.threads.lock();
            let q = threads.get_mut(&self.thread).expect("a slot's thread has a queue");
            if q.waiting.is_empty() {
                q.in_flight -= 1;
                return;
            }
            let n = q.waiting.len().min(COMMITS_PER_REQUEST_MAX);
            q.waiting.drain(..n).collect::<Vec<_>>()
        };
        // The slot passes to the batch (in flight stays counted). Spawned from the thread the
        // commits came from: on a worker's single-threaded runtime, it runs there.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left (shutting down): the waiting callers are told so.
            return;
        };
        let slot = Slot { inner: self.inner.clone(), thread: self.thread };
        runtime.spawn(send(slot, batch));
    }
}

async fn send(slot: Slot, batch: Vec<(CommitRequest, Reply)>) {
    let (commits, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    if let [one] = commits.as_slice() {
        let result = slot.inner.ds.commit(one).await;
        if let Some(reply) = replies.into_iter().next() {
            let _ = reply.send(result);
        }
        return;
    }
    match slot.inner.ds.commit_many(&commits).await {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            // The request's own failure is every commit's: the same status and body when the
            // data server refused it, else said in words.
            let each = || match &e {
                ClientError::Api { status, body } => ClientError::Api { status: *status, body: body.clone() },
                other => ClientError::Shared(other.to_string()),
            };
            for reply in replies {
                let _ = reply.send(Err(each()));
            }
        }
    }
}
