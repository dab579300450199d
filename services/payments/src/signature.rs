//! Verifying `Stripe-Signature` on a webhook's raw body, before anything
//! parses it.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`. Stripe signs
//! `"{t}.{raw body}"` with HMAC-SHA256 under the endpoint's secret. A request
//! is accepted when any `v1` matches under any configured secret (two during
//! a rotation), compared in constant time (`Mac::verify_slice`), and `t` is
//! within the tolerance of our clock either way (a replayed old request is
//! refused even with a valid signature).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from now (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;

/// Why a request's signature was refused. The messages go back in the 400
/// response; none reveals anything about the secret.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
    #[error("no webhook secret is configured (STRIPE_WEBHOOK_SECRET)")]
    NoSecret,
}

/// Checks `header` against `payload` under any of `secrets`.
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[String],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = value.parse().ok(),
            // A v1 that is not hex cannot match; skip it rather than fail, as
            // Stripe's libraries do.
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now.timestamp() - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for signature in &signatures {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|_| SignatureError::NoSecret)?;
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(payload);
            if mac.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The secrets of `STRIPE_WEBHOOK_SECRET`: comma-separated, blanks dropped.
pub fn parse_secrets(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, payload: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn any_v1_under_any_secret_is_accepted_within_the_tolerance() {
        let now = Utc::now();
        let t = now.timestamp() - 10;
        let payload = br#"{"id":"evt_1"}"#;
        let header = format!(
            "t={t},v1={},v1={},v0=abc",
            sign("whsec_other", t, payload),
            sign("whsec_new", t, payload)
        );
        let secrets = parse_secrets("whsec_old, whsec_new");
        assert_eq!(verify(Some(&header), payload, &secrets, now), Ok(()));
    }

    #[test]
    fn forged_stale_missing_and_malformed_signatures_are_refused() {
        let now = Utc::now();
        let secrets = vec!["whsec_1".to_owned()];
        let payload = b"{}";
        let t = now.timestamp();
        let forged = format!("t={t},v1={}", sign("whsec_2", t, payload));
        assert_eq!(
            verify(Some(&forged), payload, &secrets, now),
            Err(SignatureError::Mismatch)
        );
        let old = t - TOLERANCE_SECS - 1;
        let stale = format!("t={old},v1={}", sign("whsec_1", old, payload));
        assert_eq!(
            verify(Some(&stale), payload, &secrets, now),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(None, payload, &secrets, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("v1=00"), payload, &secrets, now),
            Err(SignatureError::Malformed)
        );
        let tampered = format!("t={t},v1={}", sign("whsec_1", t, payload));
        assert_eq!(
            verify(Some(&tampered), b"{\"x\":1}", &secrets, now),
            Err(SignatureError::Mismatch)
        );
    }
}
