//! Signing bench users in through the gateway's JSON API, as a script
//! would (see the README): a CSRF token first, then the account, then the
//! session cookie and the session's CSRF token on every state-changing call.
//! Shared by every scenario that acts as a signed-in visitor.

use anyhow::Context as _;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use hyper::body::Bytes;

use crate::http1::Http1Connection;

/// The password of every load-generator account.
const BENCH_PASSWORD: &str = "loadgen bench password";

/// Signs bench user `name` in through the gateway, creating its account the
/// first time: the `Cookie` and `X-CSRF-Token` headers its requests carry.
pub async fn gateway_session(
    connection: &mut Http1Connection,
    name: &str,
) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    let fail = |what: &str, e: String| anyhow::anyhow!("signing {name} in ({what}): {e}");
    let (_, headers, body) = connection
        .send_full(Method::GET, &"/api/v1/auth/csrf".parse()?, &[], None)
        .await
        .map_err(|e| fail("CSRF token", e))?;
    let anonymous = vec![
        (http::header::COOKIE, cookie(&headers, "bms_csrf")?),
        (
            HeaderName::from_static("x-csrf-token"),
            HeaderValue::from_str(json_field(&body, "csrf_token")?.as_str())?,
        ),
    ];
    let email = format!("{name}@loadgen.bookmyseat.test");
    // Sign up first and sign in only when the account exists: a sign-in
    // attempt for a missing account counts as a failure, and the gateway
    // refuses an address after a handful of those.
    let register = serde_json::json!({
        "email": email, "display_name": name, "password": BENCH_PASSWORD
    });
    let (mut status, mut headers, mut body) = connection
        .send_full(
            Method::POST,
            &"/api/v1/auth/register".parse()?,
            &anonymous,
            Some(Bytes::from(serde_json::to_vec(&register)?)),
        )
        .await
        .map_err(|e| fail("register", e))?;
    if status == StatusCode::CONFLICT {
        let login = serde_json::json!({ "email": email, "password": BENCH_PASSWORD });
        (status, headers, body) = connection
            .send_full(
                Method::POST,
                &"/api/v1/auth/login".parse()?,
                &anonymous,
                Some(Bytes::from(serde_json::to_vec(&login)?)),
            )
            .await
            .map_err(|e| fail("login", e))?;
    }
    anyhow::ensure!(
        status.is_success(),
        "signing {name} in: HTTP {status}: {} (a gateway started for benchmarks needs a high \
         SIGN_UPS_PER_ADDRESS_PER_HOUR)",
        String::from_utf8_lossy(&body)
    );
    Ok(vec![
        (http::header::COOKIE, cookie(&headers, "bms_session")?),
        (
            HeaderName::from_static("x-csrf-token"),
            HeaderValue::from_str(json_field(&body, "csrf_token")?.as_str())?,
        ),
    ])
}

/// `name=value` of the cookie a response sets.
pub fn cookie(headers: &http::HeaderMap, name: &str) -> anyhow::Result<HeaderValue> {
    let pair = headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .with_context(|| format!("the gateway set no {name} cookie"))?;
    Ok(HeaderValue::from_str(pair)?)
}

pub fn json_field(body: &[u8], field: &str) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {field} in {value}"))
}
