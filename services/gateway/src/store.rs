//! The gateway's SQL: users, sessions, password resets and attempt counters.
//!
//! Nothing else in the gateway writes SQL. Every rule that must hold across
//! replicas is the database's: email uniqueness is a unique column (a
//! violation becomes [`AccountError::EmailTaken`] here, in one place), a reset
//! token is consumed by one conditional `UPDATE … WHERE used_at IS NULL`, and
//! an attempt counter is one upsert. Changing a password and ending sessions
//! happen in one transaction, so no old session outlives a reset.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row as _};
use uuid::Uuid;

use crate::accounts::AccountError;
use crate::error::Error;

/// An account as the gateway uses it (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub is_staff: bool,
    pub created_at: DateTime<Utc>,
}

impl User {
    fn from_row(row: &sqlx::postgres::PgRow) -> User {
        User {
            id: row.get("id"),
            email: row.get("email"),
            display_name: row.get("display_name"),
            is_staff: row.get("is_staff"),
            created_at: row.get("created_at"),
        }
    }
}

const USER_COLUMNS: &str = "u.id, u.email, u.display_name, u.is_staff, u.created_at";

/// A session found by its token, with its user.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub user: User,
    pub csrf_token: String,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl SessionRecord {
    /// What [`live_sessions`] asks of a session, for a copy kept in memory
    /// (`crate::session_cache`): not past its absolute end, seen since
    /// `idle_since`.
    pub fn is_live(&self, now: DateTime<Utc>, idle_since: DateTime<Utc>) -> bool {
        self.expires_at > now && self.last_seen_at > idle_since
    }
}

fn db_error(error: sqlx::Error) -> Error {
    Error::Internal(format!("gateway database: {error}"))
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Creates an account; an address already taken (in any case) is
/// [`AccountError::EmailTaken`].
pub async fn insert_user(
    pool: &PgPool,
    email: &str,
    email_key: &str,
    display_name: &str,
    password_hash: &str,
    is_staff: bool,
) -> Result<User, Error> {
    let row = sqlx::query(
        "INSERT INTO users (id, email, email_key, display_name, password_hash, is_staff) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING id, email, display_name, is_staff, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(email_key)
    .bind(display_name)
    .bind(password_hash)
    .bind(is_staff)
    .fetch_one(pool)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            AccountError::EmailTaken.into()
        } else {
            db_error(e)
        }
    })?;
    Ok(User::from_row(&row))
}

/// An account and its password hash, by the address's key.
pub async fn user_with_hash(
    pool: &PgPool,
    email_key: &str,
) -> Result<Option<(User, String)>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.email_key = $1"
    ))
    .bind(email_key)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    Ok(row.map(|row| (User::from_row(&row), row.get("password_hash"))))
}

/// The password hash of an account, by id.
pub async fn password_hash_of(pool: &PgPool, user_id: Uuid) -> Result<Option<String>, Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)
}

/// Makes an existing account staff; `None` when there is no such account.
pub async fn promote_to_staff(pool: &PgPool, email_key: &str) -> Result<Option<User>, Error> {
    let row = sqlx::query(&format!(
        "UPDATE users u SET is_staff = true, updated_at = now() WHERE u.email_key = $1 \
         RETURNING {USER_COLUMNS}"
    ))
    .bind(email_key)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    Ok(row.as_ref().map(User::from_row))
}

/// Changes the name shown for an account.
pub async fn update_display_name(
    pool: &PgPool,
    user_id: Uuid,
    display_name: &str,
) -> Result<User, Error> {
    let row = sqlx::query(&format!(
        "UPDATE users u SET display_name = $2, updated_at = now() WHERE u.id = $1 \
         RETURNING {USER_COLUMNS}"
    ))
    .bind(user_id)
    .bind(display_name)
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(User::from_row(&row))
}

/// Sets a new password hash and ends every session of the account except
/// `keep` (the one that made the change, if any), in one transaction.
pub async fn set_password(
    pool: &PgPool,
    user_id: Uuid,
    password_hash: &str,
    keep: Option<&[u8]>,
) -> Result<(), Error> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    set_password_in(&mut tx, user_id, password_hash, keep).await?;
    tx.commit().await.map_err(db_error)
}

async fn set_password_in(
    connection: &mut sqlx::PgConnection,
    user_id: Uuid,
    password_hash: &str,
    keep: Option<&[u8]>,
) -> Result<(), Error> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(&mut *connection)
        .await
        .map_err(db_error)?;
    sqlx::query(
        "DELETE FROM sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR token_hash <> $2)",
    )
    .bind(user_id)
    .bind(keep)
    .execute(&mut *connection)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Starts a session.
pub async fn insert_session(
    pool: &PgPool,
    token_hash: &[u8],
    user_id: Uuid,
    csrf_token: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(csrf_token)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The live sessions among these tokens' digests, each with its digest: not
/// past its absolute end, and seen since `idle_since`. One query answers a
/// whole batch of lookups (see [`crate::session_lookups`]).
pub async fn live_sessions(
    pool: &PgPool,
    token_hashes: &[Vec<u8>],
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> Result<Vec<(Vec<u8>, SessionRecord)>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT s.token_hash, {USER_COLUMNS}, s.csrf_token, s.last_seen_at, s.expires_at \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = ANY($1) AND s.expires_at > $2 AND s.last_seen_at > $3"
    ))
    .bind(token_hashes)
    .bind(now)
    .bind(idle_since)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    Ok(rows
        .iter()
        .map(|row| {
            let record = SessionRecord {
                user: User::from_row(row),
                csrf_token: row.get("csrf_token"),
                last_seen_at: row.get("last_seen_at"),
                expires_at: row.get("expires_at"),
            };
            (row.get("token_hash"), record)
        })
        .collect())
}

/// Records activity on a session (keeps it from going idle).
pub async fn touch_session(
    pool: &PgPool,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1")
        .bind(token_hash)
        .bind(now)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Ends one session.
pub async fn delete_session(pool: &PgPool, token_hash: &[u8]) -> Result<(), Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Ends every session of an account.
pub async fn delete_user_sessions(pool: &PgPool, user_id: Uuid) -> Result<u64, Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected())
}

/// Forgets sessions past their end and idle ones (housekeeping only: expiry
/// is decided by [`live_sessions`]' conditions, not by this running).
pub async fn delete_dead_sessions(
    pool: &PgPool,
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> Result<u64, Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
        .bind(now)
        .bind(idle_since)
        .execute(pool)
        .await
        .map_err(db_error)?;
    sqlx::query("DELETE FROM password_resets WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected())
}

/// Stores a reset token and queues its email event, in one transaction: the
/// email is sent if and only if the token exists.
pub async fn insert_password_reset(
    pool: &PgPool,
    token_hash: &[u8],
    user_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    event: &platform::outbox::OutboxEvent,
) -> Result<(), Error> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    sqlx::query(
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    platform::outbox::enqueue(&mut tx, event)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

/// Whether a reset token is usable now (for showing the form).
pub async fn reset_is_usable(
    pool: &PgPool,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    Ok(found.is_some())
}

/// Consumes a reset token and sets the new password, ending every session
/// of the account; all or nothing. A token already used or expired is
/// [`AccountError::ResetLinkInvalid`].
pub async fn complete_password_reset(
    pool: &PgPool,
    token_hash: &[u8],
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<Uuid, Error> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let user_id: Option<Uuid> = sqlx::query_scalar(
        "UPDATE password_resets SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let user_id = user_id.ok_or(AccountError::ResetLinkInvalid)?;
    set_password_in(&mut tx, user_id, password_hash, None).await?;
    // Any other links sent to this account are void now too.
    sqlx::query("UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(user_id)
}

/// The attempts counted against `key` in the window that contains `now`.
pub async fn attempts(
    pool: &PgPool,
    key: &str,
    window_start_after: DateTime<Utc>,
) -> Result<Option<(i32, DateTime<Utc>)>, Error> {
    let row = sqlx::query(
        "SELECT attempts, window_start FROM auth_throttle WHERE key = $1 AND window_start > $2",
    )
    .bind(key)
    .bind(window_start_after)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    Ok(row.map(|row| (row.get("attempts"), row.get("window_start"))))
}

/// Counts one attempt against `key`, starting a new window when the last
/// one began at or before `window_start_after`; returns the count and the
/// window's start.
pub async fn count_attempt(
    pool: &PgPool,
    key: &str,
    now: DateTime<Utc>,
    window_start_after: DateTime<Utc>,
) -> Result<(i32, DateTime<Utc>), Error> {
    let row = sqlx::query(
        "INSERT INTO auth_throttle (key, window_start, attempts) VALUES ($1, $2, 1) \
         ON CONFLICT (key) DO UPDATE SET \
           attempts = CASE WHEN auth_throttle.window_start <= $3 THEN 1 \
                           ELSE auth_throttle.attempts + 1 END, \
           window_start = CASE WHEN auth_throttle.window_start <= $3 THEN $2 \
                               ELSE auth_throttle.window_start END \
         RETURNING attempts, window_start",
    )
    .bind(key)
    .bind(now)
    .bind(window_start_after)
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok((row.get("attempts"), row.get("window_start")))
}

/// Forgets the attempts against `key` (a successful sign-in).
pub async fn clear_attempts(pool: &PgPool, key: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM auth_throttle WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}
