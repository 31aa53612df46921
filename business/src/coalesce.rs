//! Independent commits of concurrent requests, sent to the data server together.
//!
//! Under load most of a submission's cost is not its commit but the request that carries it:
//! TLS records, HTTP framing and JSON on both sides, a task woken on each. The submissions one
//! replica serves at once are independent commits, so they can share a request
//! (`POST /v1/{business}/commits`, each commit still atomic and answered on its own): while
//! `in_flight_max` requests are out, the commits that arrive wait and leave together in the next
//! one. A lone commit leaves at once (nothing waits on a timer), so a quiet replica answers as
//! fast as before; a busy one pays a request per batch instead of per customer.
//!
//! Written here because it is the data server's own multi-commit request that is coalesced into;
//! a generic batching crate would still need this glue, and the loop is a dozen lines.

use std::sync::Arc;

use dataserver_api::client::{ClientError, DataClient};
use dataserver_api::{COMMITS_PER_REQUEST_MAX, CommitRequest, CommitResponse};
use tokio::sync::{Semaphore, mpsc, oneshot};

type Reply = oneshot::Sender<Result<CommitResponse, ClientError>>;

/// The handle requests commit through; cloned freely. The task behind it ends when the last
/// handle is dropped, once what it took is answered.
#[derive(Debug, Clone)]
pub struct Commits {
    queue: mpsc::Sender<(CommitRequest, Reply)>,
}

impl Commits {
    /// Starts the task that sends the commits, on the current runtime. At most `in_flight_max`
    /// (≥ 1) requests are out at once; at most `COMMITS_PER_REQUEST_MAX` commits ride in each,
    /// and that many per request in flight wait (more callers wait to queue: backpressure, not
    /// an unbounded queue).
    pub fn start(ds: DataClient, in_flight_max: usize) -> Commits {
        assert!(in_flight_max >= 1, "at least one request in flight");
        let (queue, rx) = mpsc::channel(COMMITS_PER_REQUEST_MAX.saturating_mul(in_flight_max));
        tokio::spawn(run(ds, rx, in_flight_max));
        Commits { queue }
    }

    /// Commits `c` as [`DataClient::commit`] would, sharing a request with whatever other
    /// commits are waiting.
    pub async fn commit(&self, c: CommitRequest) -> Result<CommitResponse, ClientError> {
        let gone = || ClientError::Shared("this business server is shutting down".into());
        let (reply, answer) = oneshot::channel();
        self.queue.send((c, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn run(ds: DataClient, mut rx: mpsc::Receiver<(CommitRequest, Reply)>, in_flight_max: usize) {
    let slots = Arc::new(Semaphore::new(in_flight_max));
    loop {
        // A slot first, then the commits: while every slot is taken, commits gather in the queue
        // and the next request takes all of them.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < COMMITS_PER_REQUEST_MAX
            && let Ok(next) = rx.try_recv()
        {
            batch.push(next);
        }
        let ds = ds.clone();
        tokio::spawn(async move {
            let (commits, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            match ds.commit_many(&commits).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    // The request's own failure is every commit's: the same status and body when
                    // the data server refused it, else said in words.
                    let each = || match &e {
                        ClientError::Api { status, body } => ClientError::Api { status: *status, body: body.clone() },
                        other => ClientError::Shared(other.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(each()));
                    }
                }
            }
            drop(slot);
        });
    }
}
