//! A short per-replica memory of live sessions, so a signed-in request does
//! not cost a database round trip every time.
//!
//! Every signed-in request looked its session up (`sessions` joined with
//! `users`): about four of the ~34 statements a booking costs. The cache
//! keeps what that lookup found, and each session this replica starts
//! (sign-in, sign-up), for `SESSION_CACHE_SECS` (10 s by default; 0 turns
//! it off), and whatever ends a session or changes an account forgets it at
//! once:
//!
//! - **on this replica**, before the request that ended it is answered;
//! - **on every other replica**, through a message on NATS core
//!   (`gateway.sessions.ended`) that each replica subscribes to. NATS core
//!   may lose a message (a replica reconnecting at that moment); the entry
//!   then lives out its few seconds. That bound is what `SESSION_CACHE_SECS`
//!   sets, and why it is short. `bookmyseat admin create-staff` announces
//!   its promotions the same way; a change made in SQL by hand takes at
//!   most that long to show.
//!
//! A lookup racing an ending could store what the ending had just removed
//! (read before the delete committed, stored after the eviction). Each
//! eviction advances a generation, and a lookup stores its result only if no
//! eviction happened since it began.
//!
//! A hit is checked against the record's own `expires_at` and
//! `last_seen_at` exactly as the query checks them
//! ([`SessionRecord::is_live`]), so caching never lengthens a session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use uuid::Uuid;

use crate::store::SessionRecord;

/// The cache's size limit; past it, stale entries go, then all of them.
const CAPACITY: usize = 100_000;
/// How long telling the other replicas may take before the request that
/// ended a session answers anyway (the TTL bounds the rest).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// What ended, as told to the other replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// One session, by its token's digest (sign-out, a sign-in replacing it).
    Session(Vec<u8>),
    /// Every session of an account, or what they know of it (sign-out
    /// everywhere, a password change or reset, a new display name or role).
    Account(Uuid),
}

impl Ended {
    /// `S` + digest, or `A` + the account id's 16 bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Ended::Session(digest) => [b"S".as_slice(), digest].concat(),
            Ended::Account(id) => [b"A".as_slice(), id.as_bytes()].concat(),
        }
    }

    /// `None` for anything [`Ended::encode`] did not write.
    pub fn decode(bytes: &[u8]) -> Option<Ended> {
        match bytes.split_first()? {
            (b'S', digest) if !digest.is_empty() => Some(Ended::Session(digest.to_vec())),
            (b'A', id) => Uuid::from_slice(id).ok().map(Ended::Account),
            _ => None,
        }
    }
}

/// The cache of one gateway replica. Cloning shares it.
#[derive(Clone, Debug)]
pub struct SessionCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ttl: Duration,
    state: Mutex<State>,
    /// Where endings are announced: the NATS connection and the subject.
    /// `None` for a gateway-less process (`bookmyseat admin`).
    broadcast: Option<(async_nats::Client, String)>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Vec<u8>, Entry>,
    /// Advanced by every eviction (see the module comment).
    generation: u64,
}

#[derive(Debug)]
struct Entry {
    record: SessionRecord,
    fresh_until: Instant,
}

impl SessionCache {
    /// Remembers nothing: every lookup goes to the database.
    pub fn disabled() -> Self {
        Self::new(Duration::ZERO, None)
    }

    /// A cache keeping lookups for `ttl`, announcing endings on
    /// `broadcast` (a NATS connection and subject) when given.
    pub fn new(ttl: Duration, broadcast: Option<(async_nats::Client, String)>) -> Self {
        Self {
            inner: Arc::new(Inner {
                ttl,
                state: Mutex::new(State::default()),
                broadcast,
            }),
        }
    }

    /// The subject endings are announced on, under `prefix`.
    pub fn subject(prefix: &str) -> String {
        platform::nats::subject(prefix, "gateway.sessions.ended")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The map holds no invariant a panicking holder could break halfway.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Taken before a database lookup and handed to [`SessionCache::put`].
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The remembered session for this digest, if still fresh.
    pub fn get(&self, token_hash: &[u8], now: Instant) -> Option<SessionRecord> {
        let state = self.state();
        let entry = state.entries.get(token_hash)?;
        (entry.fresh_until > now).then(|| entry.record.clone())
    }

    /// Remembers a lookup's result unless something was evicted since
    /// `generation` was taken.
    pub fn put(&self, token_hash: &[u8], record: &SessionRecord, generation: u64, now: Instant) {
        if self.inner.ttl.is_zero() {
            return;
        }
        let mut state = self.state();
        if state.generation != generation {
            return;
        }
        if state.entries.len() >= CAPACITY {
            state.entries.retain(|_, entry| entry.fresh_until > now);
            if state.entries.len() >= CAPACITY {
                state.entries.clear();
            }
        }
        state.entries.insert(
            token_hash.to_vec(),
            Entry {
                record: record.clone(),
                fresh_until: now + self.inner.ttl,
            },
        );
    }

    /// Records activity written to the database, so the next hit does not
    /// write it again.
    pub fn seen(&self, token_hash: &[u8], at: chrono::DateTime<chrono::Utc>) {
        if let Some(entry) = self.state().entries.get_mut(token_hash) {
            entry.record.last_seen_at = at;
        }
    }

    /// Forgets what `ended` names on this replica only.
    pub fn forget(&self, ended: &Ended) {
        let mut state = self.state();
        state.generation += 1;
        match ended {
            Ended::Session(digest) => {
                state.entries.remove(digest.as_slice());
            }
            Ended::Account(id) => state.entries.retain(|_, entry| entry.record.user.id != *id),
        }
    }

    /// Forgets what `ended` names here and tells the other replicas. Call
    /// it after the change has committed.
    pub async fn ended(&self, ended: Ended) {
        self.forget(&ended);
        let Some((nats, subject)) = &self.inner.broadcast else {
            return;
        };
        let published = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            nats.publish(subject.clone(), ended.encode().into()),
        )
        .await;
        if !matches!(published, Ok(Ok(()))) {
            tracing::warn!(
                ttl_secs = self.inner.ttl.as_secs(),
                "could not tell the other gateways that a session ended; their copies expire on their own"
            );
        }
    }

    /// Applies the endings other replicas announce until `shutdown`,
    /// subscribing again should the subscription end.
    pub async fn listen(self, shutdown: platform::Shutdown) -> anyhow::Result<()> {
        let broadcast = self.inner.broadcast.clone();
        let Some((nats, subject)) = broadcast.filter(|_| !self.inner.ttl.is_zero()) else {
            // Nothing is kept, so nothing needs forgetting.
            shutdown.fired().await;
            return Ok(());
        };
        loop {
            let subscribed = tokio::select! {
                () = shutdown.fired() => return Ok(()),
                subscribed = nats.subscribe(subject.clone()) => subscribed,
            };
            match subscribed {
                Ok(mut endings) => loop {
                    let message = tokio::select! {
                        () = shutdown.fired() => return Ok(()),
                        message = endings.next() => message,
                    };
                    let Some(message) = message else { break };
                    match Ended::decode(&message.payload) {
                        Some(ended) => self.forget(&ended),
                        None => tracing::warn!(subject = %message.subject,
                            "ignoring a session ending that does not decode"),
                    }
                },
                Err(error) => tracing::warn!(%error, %subject,
                    "cannot hear other gateways' sign-outs yet; retrying"),
            }
            // Whatever was missed meanwhile expires with its TTL.
            tokio::select! {
                () = shutdown.fired() => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::User;
    use chrono::Utc;

    fn record(user: Uuid) -> SessionRecord {
        SessionRecord {
            user: User {
                id: user,
                email: "ada@example.com".into(),
                display_name: "Ada".into(),
                is_staff: false,
                created_at: Utc::now(),
            },
            csrf_token: "csrf".into(),
            last_seen_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
        }
    }

    #[test]
    fn an_entry_is_kept_for_its_ttl_and_no_longer() {
        let cache = SessionCache::new(Duration::from_secs(10), None);
        let now = Instant::now();
        cache.put(b"t", &record(Uuid::new_v4()), cache.generation(), now);
        assert!(cache.get(b"t", now + Duration::from_secs(9)).is_some());
        assert!(cache.get(b"t", now + Duration::from_secs(10)).is_none());
        assert!(cache.get(b"other", now).is_none());
    }

    #[test]
    fn a_disabled_cache_remembers_nothing() {
        let cache = SessionCache::disabled();
        let now = Instant::now();
        cache.put(b"t", &record(Uuid::new_v4()), cache.generation(), now);
        assert!(cache.get(b"t", now).is_none());
    }

    #[test]
    fn endings_forget_the_session_or_every_session_of_the_account() {
        let cache = SessionCache::new(Duration::from_secs(10), None);
        let now = Instant::now();
        let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
        for (token, user) in [(b"a1", ada), (b"a2", ada), (b"b1", bob)] {
            cache.put(token, &record(user), cache.generation(), now);
        }
        cache.forget(&Ended::Session(b"a1".to_vec()));
        assert!(cache.get(b"a1", now).is_none());
        assert!(cache.get(b"a2", now).is_some());
        cache.forget(&Ended::Account(ada));
        assert!(cache.get(b"a2", now).is_none());
        assert!(cache.get(b"b1", now).is_some());
    }

    #[test]
    fn a_lookup_that_raced_an_ending_is_not_stored() {
        let cache = SessionCache::new(Duration::from_secs(10), None);
        let now = Instant::now();
        let before = cache.generation();
        cache.forget(&Ended::Session(b"t".to_vec()));
        cache.put(b"t", &record(Uuid::new_v4()), before, now);
        assert!(cache.get(b"t", now).is_none());
    }

    #[test]
    fn endings_survive_the_wire_and_garbage_does_not_decode() {
        for ended in [Ended::Session(vec![7; 32]), Ended::Account(Uuid::new_v4())] {
            assert_eq!(Ended::decode(&ended.encode()), Some(ended));
        }
        for garbage in [&b""[..], b"S", b"A123", b"X0123456789abcdef"] {
            assert_eq!(Ended::decode(garbage), None, "{garbage:?}");
        }
    }
}
