//! The account flows, in one place for the pages and the JSON API: sign-up,
//! sign-in, sign-out, profile and password changes, and password reset.
//!
//! Handlers parse the form or JSON body and call [`Accounts`]; everything
//! that decides (throttling, hashing, which sessions end) happens here and in
//! [`crate::store`].
//!
//! - **Sign-in** always makes a new session with a new token, whatever the
//!   browser had before (no fixation), and ends the session the browser came
//!   with.
//! - **Reset requests** answer the same whether the address has an account
//!   or not; only when it does is a token stored and
//!   `accounts.password_reset.requested` queued in the outbox of the same
//!   transaction, for the notifier to email.
//! - **A password change** ends the account's other sessions; a **reset**
//!   ends all of them (whoever knew the old password is out).

use chrono::{DateTime, Duration, Utc};
use platform::outbox::{OutboxEvent, RelayWaker};
use prost::Message as _;
use proto::events::v1 as events_pb;
use sqlx::PgPool;
use std::net::IpAddr;
use std::time::Instant;

use crate::accounts::{
    self, AccountError, DisplayName, EmailAddress, Password, Token, hash_password, verify_password,
};
use crate::error::Error;
use crate::session_cache::{Ended, SessionCache};
use crate::session_lookups::SessionLookups;
use crate::store::{self, SessionRecord, User};
use crate::throttle;

/// How long a password reset link works.
pub const RESET_TOKEN_LIFETIME: Duration = Duration::hours(1);

/// Session lifetimes.
#[derive(Clone, Copy, Debug)]
pub struct SessionLifetimes {
    /// A session unused this long has ended.
    pub idle: Duration,
    /// A session ends this long after sign-in, however active.
    pub absolute: Duration,
}

/// A session just started: the token goes into the browser's cookie, once.
#[derive(Debug)]
pub struct NewSession {
    pub token: Token,
    pub user: User,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// A live session found from a browser's cookie.
#[derive(Clone, Debug)]
pub struct LiveSession {
    pub user: User,
    pub token_hash: Vec<u8>,
    pub csrf_token: String,
}

/// The account flows over the gateway's database.
#[derive(Clone, Debug)]
pub struct Accounts {
    pool: PgPool,
    lifetimes: SessionLifetimes,
    /// `PUBLIC_BASE_URL`, for the reset link.
    public_base_url: String,
    reset_subject: String,
    relay: RelayWaker,
    sign_up_limit: throttle::Limit,
    sessions: SessionCache,
    lookups: SessionLookups,
}

impl Accounts {
    pub fn new(
        pool: PgPool,
        lifetimes: SessionLifetimes,
        public_base_url: String,
        events_prefix: &str,
        relay: RelayWaker,
    ) -> Self {
        Self {
            lookups: SessionLookups::new(pool.clone(), lifetimes.idle),
            pool,
            lifetimes,
            public_base_url,
            reset_subject: platform::nats::subject(
                events_prefix,
                "accounts.password_reset.requested",
            ),
            relay,
            sign_up_limit: throttle::sign_up_per_address(
                throttle::DEFAULT_SIGN_UPS_PER_ADDRESS_PER_HOUR,
            ),
            sessions: SessionCache::disabled(),
        }
    }

    /// Keeps session lookups in `sessions` (see [`crate::session_cache`]).
    pub fn with_session_cache(mut self, sessions: SessionCache) -> Self {
        self.sessions = sessions;
        self
    }

    pub fn session_cache(&self) -> &SessionCache {
        &self.sessions
    }

    /// Allows `max` sign-ups per client address and hour.
    pub fn with_sign_up_limit(mut self, max: i32) -> Self {
        self.sign_up_limit = throttle::sign_up_per_address(max);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn lifetimes(&self) -> SessionLifetimes {
        self.lifetimes
    }

    /// Creates a customer account and signs it in.
    pub async fn register(
        &self,
        email: &str,
        display_name: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<NewSession, Error> {
        let email = EmailAddress::parse(email)?;
        let display_name = DisplayName::parse(display_name)?;
        let password = Password::parse(password)?;
        self.sign_up_limit
            .count(&self.pool, &address.to_string(), Utc::now())
            .await?;
        let hash = hash_password(&password).await?;
        let user = store::insert_user(
            &self.pool,
            email.as_str(),
            &email.key(),
            display_name.as_str(),
            &hash,
            false,
        )
        .await?;
        tracing::info!(user = %user.id, email = %email.masked(), "account created");
        self.start_session(user).await
    }

    /// Checks the credentials and starts a new session; `previous` (the
    /// session the browser came with, if any) ends.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        address: IpAddr,
        previous: Option<&LiveSession>,
    ) -> Result<NewSession, Error> {
        // A malformed address cannot match an account; same answer as a
        // wrong password, and still counted against the client address.
        let email_key = EmailAddress::parse(email).map(|e| e.key()).ok();
        let account_key = email_key
            .clone()
            .unwrap_or_else(|| email.trim().to_lowercase());
        let address = address.to_string();
        let now = Utc::now();
        throttle::SIGN_IN_PER_ADDRESS
            .check(&self.pool, &address, now)
            .await?;
        throttle::SIGN_IN_PER_ACCOUNT
            .check(&self.pool, &account_key, now)
            .await?;

        let found = match &email_key {
            Some(key) => store::user_with_hash(&self.pool, key).await?,
            None => None,
        };
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), Some(hash)),
            None => (None, None),
        };
        let matches = verify_password(password, hash).await?;
        let Some(user) = user.filter(|_| matches) else {
            tracing::info!(email = %accounts::mask_email(&account_key), "sign-in refused");
            throttle::SIGN_IN_PER_ADDRESS
                .count(&self.pool, &address, now)
                .await?;
            throttle::SIGN_IN_PER_ACCOUNT
                .count(&self.pool, &account_key, now)
                .await?;
            return Err(AccountError::WrongCredentials.into());
        };
        throttle::SIGN_IN_PER_ACCOUNT
            .clear(&self.pool, &account_key)
            .await?;
        if let Some(previous) = previous {
            store::delete_session(&self.pool, &previous.token_hash).await?;
            self.sessions
                .ended(Ended::Session(previous.token_hash.clone()))
                .await;
        }
        tracing::info!(user = %user.id, "signed in");
        self.start_session(user).await
    }

    async fn start_session(&self, user: User) -> Result<NewSession, Error> {
        let token = Token::generate();
        let csrf_token = Token::generate().as_str().to_owned();
        let now = Utc::now();
        let expires_at = now + self.lifetimes.absolute;
        let token_hash = token.digest();
        // A new session's first request (the page a sign-in redirects to, or
        // a crowd of buyers opening a sale) then finds it here instead of
        // looking up what this replica has just written. The generation is
        // taken before the insert, as a lookup takes it: an ending meanwhile
        // (this account's password changed elsewhere) keeps it out.
        let generation = self.sessions.generation();
        store::insert_session(
            &self.pool,
            &token_hash,
            user.id,
            &csrf_token,
            now,
            expires_at,
        )
        .await?;
        let record = SessionRecord {
            user: user.clone(),
            csrf_token: csrf_token.clone(),
            last_seen_at: now,
            expires_at,
        };
        self.sessions
            .put(&token_hash, &record, generation, Instant::now());
        Ok(NewSession {
            token,
            user,
            csrf_token,
            expires_at,
        })
    }

    /// The live session a cookie names, if any: from this replica's cache
    /// when it has it, else from the database (with the lookups arriving
    /// alongside: [`crate::session_lookups`]). Activity is recorded at
    /// most once a minute, so a busy page does not write on every request.
    pub async fn session(&self, token: &Token) -> Result<Option<LiveSession>, Error> {
        let now = Utc::now();
        let idle_since = now - self.lifetimes.idle;
        let token_hash = token.digest();
        let found = match self.sessions.get(&token_hash, Instant::now()) {
            Some(cached) if cached.is_live(now, idle_since) => cached,
            Some(_) => return Ok(None),
            None => {
                let generation = self.sessions.generation();
                let Some(found) = self.lookups.find(&token_hash).await? else {
                    return Ok(None);
                };
                self.sessions
                    .put(&token_hash, &found, generation, Instant::now());
                found
            }
        };
        if now - found.last_seen_at > Duration::minutes(1) {
            store::touch_session(&self.pool, &token_hash, now).await?;
            self.sessions.seen(&token_hash, now);
        }
        Ok(Some(LiveSession {
            user: found.user,
            token_hash,
            csrf_token: found.csrf_token,
        }))
    }

    /// Ends this session.
    pub async fn sign_out(&self, session: &LiveSession) -> Result<(), Error> {
        store::delete_session(&self.pool, &session.token_hash).await?;
        self.sessions
            .ended(Ended::Session(session.token_hash.clone()))
            .await;
        tracing::info!(user = %session.user.id, "signed out");
        Ok(())
    }

    /// Ends every session of the account, this one included.
    pub async fn sign_out_everywhere(&self, session: &LiveSession) -> Result<u64, Error> {
        let ended = store::delete_user_sessions(&self.pool, session.user.id).await?;
        self.sessions.ended(Ended::Account(session.user.id)).await;
        tracing::info!(user = %session.user.id, ended, "signed out everywhere");
        Ok(ended)
    }

    /// Changes the display name.
    pub async fn update_profile(
        &self,
        session: &LiveSession,
        display_name: &str,
    ) -> Result<User, Error> {
        let display_name = DisplayName::parse(display_name)?;
        let user =
            store::update_display_name(&self.pool, session.user.id, display_name.as_str()).await?;
        self.sessions.ended(Ended::Account(session.user.id)).await;
        Ok(user)
    }

    /// Changes the password after checking the current one; the account's
    /// other sessions end.
    pub async fn change_password(
        &self,
        session: &LiveSession,
        current: &str,
        new: &str,
    ) -> Result<(), Error> {
        let new = Password::parse(new)?;
        let hash = store::password_hash_of(&self.pool, session.user.id).await?;
        if !verify_password(current, hash).await? {
            return Err(AccountError::WrongCurrentPassword.into());
        }
        let hash = hash_password(&new).await?;
        store::set_password(
            &self.pool,
            session.user.id,
            &hash,
            Some(&session.token_hash),
        )
        .await?;
        self.sessions.ended(Ended::Account(session.user.id)).await;
        tracing::info!(user = %session.user.id, "password changed; other sessions ended");
        Ok(())
    }

    /// Asks for a reset link. The answer is the same for every well-formed
    /// address, known or not; only the throttle (counted per address typed,
    /// known or not) can refuse.
    pub async fn request_password_reset(&self, email: &str, address: IpAddr) -> Result<(), Error> {
        let email = EmailAddress::parse(email)?;
        let now = Utc::now();
        throttle::RESET_PER_ADDRESS
            .count(&self.pool, &address.to_string(), now)
            .await?;
        throttle::RESET_PER_ACCOUNT
            .count(&self.pool, &email.key(), now)
            .await?;
        let Some((user, _)) = store::user_with_hash(&self.pool, &email.key()).await? else {
            tracing::info!(email = %email.masked(), "password reset asked for an unknown address");
            return Ok(());
        };
        let token = Token::generate();
        let expires_at = now + RESET_TOKEN_LIFETIME;
        let event_id = uuid::Uuid::now_v7();
        let reset_url = format!(
            "{}/reset-password?token={}",
            self.public_base_url,
            token.as_str()
        );
        let payload = events_pb::PasswordResetRequested {
            meta: Some(events_pb::EventMeta {
                event_id: event_id.to_string(),
                occurred_at: Some(proto::time::to_timestamp(now)),
            }),
            user_id: user.id.to_string(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            reset_url,
            expires_at: Some(proto::time::to_timestamp(expires_at)),
        };
        let event = OutboxEvent {
            id: event_id,
            subject: self.reset_subject.clone(),
            event_type: "bookmyseat.events.v1.PasswordResetRequested".to_owned(),
            payload: payload.encode_to_vec(),
        };
        store::insert_password_reset(
            &self.pool,
            &token.digest(),
            user.id,
            now,
            expires_at,
            &event,
        )
        .await?;
        self.relay.wake();
        tracing::info!(user = %user.id, "password reset link queued");
        Ok(())
    }

    /// Whether a reset link still works (the form is shown only if so).
    pub async fn reset_link_is_usable(&self, token: &str) -> Result<bool, Error> {
        match Token::parse(token) {
            Some(token) => store::reset_is_usable(&self.pool, &token.digest(), Utc::now()).await,
            None => Ok(false),
        }
    }

    /// Sets a new password with a reset link, once; every session of the
    /// account ends.
    pub async fn reset_password(&self, token: &str, new: &str) -> Result<(), Error> {
        let token = Token::parse(token).ok_or(AccountError::ResetLinkInvalid)?;
        let new = Password::parse(new)?;
        // Refuse a dead link before paying for a hash.
        if !store::reset_is_usable(&self.pool, &token.digest(), Utc::now()).await? {
            return Err(AccountError::ResetLinkInvalid.into());
        }
        let hash = hash_password(&new).await?;
        let user =
            store::complete_password_reset(&self.pool, &token.digest(), &hash, Utc::now()).await?;
        self.sessions.ended(Ended::Account(user)).await;
        tracing::info!(%user, "password reset; every session ended");
        Ok(())
    }

    /// Makes `email` a staff account: promotes an existing account, or
    /// creates one with `password`. Used by `bookmyseat admin create-staff`
    /// and the demo seed.
    pub async fn ensure_staff(
        &self,
        email: &str,
        display_name: &str,
        password: Option<&str>,
    ) -> Result<StaffOutcome, Error> {
        let email = EmailAddress::parse(email)?;
        if let Some(user) = store::promote_to_staff(&self.pool, &email.key()).await? {
            self.sessions.ended(Ended::Account(user.id)).await;
            return Ok(StaffOutcome::Promoted(user));
        }
        let password = password.ok_or_else(|| {
            Error::BadRequest(format!(
                "There is no account for {}; give a password to create one.",
                email.as_str()
            ))
        })?;
        let user = self
            .create_account(email.as_str(), display_name, password, true)
            .await?;
        Ok(StaffOutcome::Created(user))
    }

    /// Creates an account without signing it in (seeding and admin use).
    pub async fn create_account(
        &self,
        email: &str,
        display_name: &str,
        password: &str,
        is_staff: bool,
    ) -> Result<User, Error> {
        let email = EmailAddress::parse(email)?;
        let display_name = DisplayName::parse(display_name)?;
        let password = Password::parse(password)?;
        let hash = hash_password(&password).await?;
        store::insert_user(
            &self.pool,
            email.as_str(),
            &email.key(),
            display_name.as_str(),
            &hash,
            is_staff,
        )
        .await
    }

    /// Forgets ended sessions and reset tokens (housekeeping; expiry itself
    /// never depends on this).
    pub async fn tidy(&self) -> Result<u64, Error> {
        let now = Utc::now();
        store::delete_dead_sessions(&self.pool, now, now - self.lifetimes.idle).await
    }
}

/// What [`Accounts::ensure_staff`] did.
#[derive(Debug)]
pub enum StaffOutcome {
    Created(User),
    Promoted(User),
}
