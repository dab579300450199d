//! Accounts: who may sign in, and the rules their details follow.
//!
//! What a person types is parsed once, at the edge, into [`EmailAddress`],
//! [`DisplayName`] and [`Password`]; everything past that trusts them. The
//! rules are deliberately plain: an address with one `@` and a dotted domain
//! (deliverability is the reset email's job, not a regex's), a name of 1–60
//! printable characters, and a password of 8–128 characters (NIST SP 800-63B:
//! length over composition rules; the upper bound keeps hashing cost bounded).
//!
//! Passwords are hashed with argon2id at OWASP's recommended parameters
//! (19 MiB, two passes, one lane) on the blocking pool, never on the async
//! runtime. A sign-in for an unknown address still verifies against a dummy
//! hash, so the answer takes as long as for a known one.
//!
//! Session and reset tokens are 256 random bits, handed out once in base64url
//! and stored only as their SHA-256 digest (see [`Token`]).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Longest display name accepted.
pub const MAX_DISPLAY_NAME_CHARS: usize = 60;
/// Longest email address (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// What can be wrong with account details or credentials, in the words the
/// person will read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    #[error("Enter an email address like name@example.com.")]
    InvalidEmail,
    #[error("Enter a display name of 1 to {MAX_DISPLAY_NAME_CHARS} characters.")]
    InvalidDisplayName,
    #[error("Choose a password of at least {MIN_PASSWORD_CHARS} characters.")]
    PasswordTooShort,
    #[error("Choose a password of at most {MAX_PASSWORD_CHARS} characters.")]
    PasswordTooLong,
    #[error("An account with this email address already exists. Sign in, or reset its password.")]
    EmailTaken,
    #[error("That email address and password do not match an account.")]
    WrongCredentials,
    #[error("Your current password is not correct.")]
    WrongCurrentPassword,
    #[error("This password reset link has expired or was already used. Ask for a new one below.")]
    ResetLinkInvalid,
}

impl From<AccountError> for Error {
    fn from(error: AccountError) -> Self {
        let message = error.to_string();
        match error {
            AccountError::EmailTaken => Error::Conflict(message),
            AccountError::WrongCredentials => Error::Unauthorized(message),
            AccountError::WrongCurrentPassword
            | AccountError::InvalidEmail
            | AccountError::InvalidDisplayName
            | AccountError::PasswordTooShort
            | AccountError::PasswordTooLong
            | AccountError::ResetLinkInvalid => Error::BadRequest(message),
        }
    }
}

/// An email address as typed (trimmed), valid enough to send mail to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<EmailAddress, AccountError> {
        let email = raw.trim();
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(AccountError::InvalidEmail);
        };
        let printable = email
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '<' | '>' | ','));
        let domain_ok = domain.contains('.')
            && !domain.starts_with(['.', '-'])
            && !domain.ends_with(['.', '-'])
            && !domain.contains("..")
            && !domain.contains('@');
        let ok = printable
            && email.len() <= MAX_EMAIL_LEN
            && !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && domain_ok;
        ok.then(|| EmailAddress(email.to_owned()))
            .ok_or(AccountError::InvalidEmail)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is decided on: addresses differing only in case
    /// are one account.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// `j***@example.com`: enough for a log line to tell accounts apart
    /// without writing the address down.
    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

/// Masks the local part of an email address for logs.
pub fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// The name shown on the profile and in emails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<DisplayName, AccountError> {
        let name = raw.trim();
        let count = name.chars().count();
        let ok =
            (1..=MAX_DISPLAY_NAME_CHARS).contains(&count) && !name.chars().any(char::is_control);
        ok.then(|| DisplayName(name.to_owned()))
            .ok_or(AccountError::InvalidDisplayName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password that meets the rules. Never trimmed: spaces are
/// characters like any other.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    pub fn parse(raw: &str) -> Result<Password, AccountError> {
        let count = raw.chars().count();
        if count < MIN_PASSWORD_CHARS || raw.trim().is_empty() {
            return Err(AccountError::PasswordTooShort);
        }
        if count > MAX_PASSWORD_CHARS {
            return Err(AccountError::PasswordTooLong);
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hashes `password` with argon2id into a PHC string, on the blocking pool.
pub async fn hash_password(password: &Password) -> Result<String, Error> {
    let password = password.0.clone();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(|e| Error::Internal(format!("password hashing task failed: {e}")))?
    .map_err(|e| Error::Internal(format!("hashing a password failed: {e}")))
}

/// Whether `password` matches the PHC string `hash`; with no hash (no such
/// account) it checks a dummy one, so both answers cost the same.
pub async fn verify_password(password: &str, hash: Option<String>) -> Result<bool, Error> {
    let known = hash.is_some();
    let hash = match hash {
        Some(hash) => hash,
        None => dummy_hash().to_owned(),
    };
    // Over-long input is refused before it reaches argon2 (cost bound); the
    // same answer as a wrong password.
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Ok(false);
    }
    let password = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .map_err(|e| Error::Internal(format!("password check task failed: {e}")))?;
    Ok(known && matches)
}

/// A hash of a password nobody knows, made once per process.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let secret = Token::generate();
        Argon2::default()
            .hash_password(secret.as_str().as_bytes())
            .map(|hash| hash.to_string())
            .expect("argon2 hashes a random ASCII password with its default parameters")
    })
}

/// A secret handed to a browser once (a session cookie, a reset link) and
/// kept by us only as its digest.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// 256 bits from the operating system's generator.
    pub fn generate() -> Token {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random generator is readable");
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as a browser sent it back; anything that cannot be one of
    /// ours is refused before it reaches the database.
    pub fn parse(raw: &str) -> Option<Token> {
        let ok = raw.len() == 43
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        ok.then(|| Token(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database keeps.
    pub fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_keyed_case_insensitively() {
        let email = EmailAddress::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace@Example.COM");
        assert_eq!(email.key(), "ada.lovelace@example.com");
        assert_eq!(email.masked(), "A***@Example.COM");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "plainaddress",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@@example.com",
            "ada lovelace@example.com",
            "ada@example..com",
            "ada@.example.com",
            "<ada@example.com>",
        ] {
            assert_eq!(
                EmailAddress::parse(bad),
                Err(AccountError::InvalidEmail),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(AccountError::InvalidEmail));
    }

    #[test]
    fn passwords_have_a_minimum_and_a_maximum_length() {
        assert_eq!(
            Password::parse("short"),
            Err(AccountError::PasswordTooShort)
        );
        assert_eq!(
            Password::parse("        "),
            Err(AccountError::PasswordTooShort)
        );
        assert!(Password::parse("correct horse").is_ok());
        assert!(Password::parse(&"é".repeat(MAX_PASSWORD_CHARS)).is_ok());
        assert_eq!(
            Password::parse(&"x".repeat(MAX_PASSWORD_CHARS + 1)),
            Err(AccountError::PasswordTooLong)
        );
    }

    #[test]
    fn display_names_are_bounded_and_printable() {
        assert_eq!(DisplayName::parse(" Ada ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("a\u{7}b").is_err());
        assert!(DisplayName::parse(&"n".repeat(61)).is_err());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let password = Password::parse("correct horse battery").unwrap();
        let hash = hash_password(&password).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            verify_password("correct horse battery", Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("correct horse battery!", Some(hash))
                .await
                .unwrap()
        );
        // No account: never a match, even for the dummy's own secret.
        assert!(!verify_password("anything at all", None).await.unwrap());
    }

    #[test]
    fn tokens_round_trip_and_digest_deterministically() {
        let token = Token::generate();
        assert_eq!(token.as_str().len(), 43);
        let parsed = Token::parse(token.as_str()).unwrap();
        assert_eq!(parsed.digest(), token.digest());
        assert_ne!(Token::generate().digest(), token.digest());
        assert!(Token::parse("not-a-token").is_none());
        assert!(Token::parse(&"=".repeat(43)).is_none());
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
