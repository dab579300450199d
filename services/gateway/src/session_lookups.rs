//! Session lookups that arrive together share one query.
//!
//! When a sale opens, every buyer's first request looks its session up in
//! the same few milliseconds: in the rush benchmark (issue #8), 1,000
//! lookups in the first ~100 ms took about 30 % of two saturated cores, and
//! the gateway's pool opened connections for them just then. A lookup on
//! its own costs a pooled connection, a round trip and a statement's start;
//! a batch pays those once.
//!
//! A lookup is sent at once while fewer than [`WORKERS`] queries are
//! running, so a quiet gateway waits for nothing. Lookups arriving while
//! all of them run queue up, and the next free worker answers up to
//! [`BATCH`] of them with one `token_hash = ANY($1)` query: the batches
//! grow with the load, and no timer holds anything back.
//!
//! `bookmyseat_gateway_session_lookups_total` counts the lookups sent to the
//! database and `bookmyseat_gateway_session_lookup_queries_total` the
//! queries that answered them; their ratio is the mean batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{Duration, Utc};
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::Error;
use crate::store::{self, SessionRecord};

/// Lookup queries running at once, at most: a few of the pool's
/// connections, so lookups never crowd out the requests they serve.
pub const WORKERS: usize = 4;
/// Lookups one query answers, at most.
pub const BATCH: usize = 128;

type Answer = Result<Option<SessionRecord>, Error>;

struct Lookup {
    token_hash: Vec<u8>,
    answer: oneshot::Sender<Answer>,
}

/// The live-session lookups of one gateway replica. Cloning shares them.
#[derive(Clone, Debug)]
pub struct SessionLookups {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    /// A session unused this long has ended.
    idle: Duration,
    /// Started by the first lookup, so that building one needs no runtime.
    queue: OnceLock<mpsc::UnboundedSender<Lookup>>,
    queries: Arc<AtomicU64>,
}

impl SessionLookups {
    pub fn new(pool: PgPool, idle: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                idle,
                queue: OnceLock::new(),
                queries: Arc::default(),
            }),
        }
    }

    /// The live session whose token has this digest: not past its absolute
    /// end, used within the idle limit, as the database says now.
    pub async fn find(&self, token_hash: &[u8]) -> Answer {
        let queue = self.inner.queue.get_or_init(|| {
            let (queue, lookups) = mpsc::unbounded_channel();
            tokio::spawn(dispatch(
                self.inner.pool.clone(),
                self.inner.idle,
                lookups,
                self.inner.queries.clone(),
            ));
            queue
        });
        let (answer, answered) = oneshot::channel();
        let stopped = || Error::Internal("the gateway's session lookups have stopped".into());
        queue
            .send(Lookup {
                token_hash: token_hash.to_vec(),
                answer,
            })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Queries run so far (each answering one batch).
    pub fn queries(&self) -> u64 {
        self.inner.queries.load(Ordering::Relaxed)
    }
}

/// Hands queued lookups to workers, as many per query as have queued by the
/// time one is free. Ends when every [`SessionLookups`] is gone.
async fn dispatch(
    pool: PgPool,
    idle: Duration,
    mut lookups: mpsc::UnboundedReceiver<Lookup>,
    queries: Arc<AtomicU64>,
) {
    let workers = Arc::new(Semaphore::new(WORKERS));
    while let Some(first) = lookups.recv().await {
        let Ok(worker) = workers.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match lookups.try_recv() {
                Ok(lookup) => batch.push(lookup),
                Err(_) => break,
            }
        }
        let (pool, queries) = (pool.clone(), queries.clone());
        tokio::spawn(async move {
            queries.fetch_add(1, Ordering::Relaxed);
            answer(&pool, idle, batch).await;
            drop(worker);
        });
    }
}

/// Answers one batch with one query.
async fn answer(pool: &PgPool, idle: Duration, batch: Vec<Lookup>) {
    metrics::counter!("bookmyseat_gateway_session_lookups_total").increment(batch.len() as u64);
    metrics::counter!("bookmyseat_gateway_session_lookup_queries_total").increment(1);
    let now = Utc::now();
    let token_hashes: Vec<Vec<u8>> = batch.iter().map(|l| l.token_hash.clone()).collect();
    match store::live_sessions(pool, &token_hashes, now, now - idle).await {
        Ok(found) => {
            let found: HashMap<Vec<u8>, SessionRecord> = found.into_iter().collect();
            for lookup in batch {
                // A lookup whose request has gone away is simply not answered.
                let _ = lookup
                    .answer
                    .send(Ok(found.get(&lookup.token_hash).cloned()));
            }
        }
        Err(error) => {
            let message = error.to_string();
            for lookup in batch {
                let _ = lookup.answer.send(Err(Error::Internal(message.clone())));
            }
        }
    }
}
