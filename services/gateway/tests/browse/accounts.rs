//! Accounts over real HTTP against the gateway's real database: sign-up,
//! sign-in and sign-out, sessions and their cookies, CSRF, throttling,
//! password reset through the outbox onto real JetStream, staff-only routes,
//! and bookings that only their owner can read.

use async_nats::jetstream;
use prost::Message as _;
use proto::events::v1 as events_pb;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{Gateway, PASSWORD, classic_showtime, header, set_cookie, set_cookie_header};

async fn get_me(gateway: &Gateway, cookie: &str) -> u16 {
    me_status(&gateway.http, &gateway.url, cookie).await
}

/// The status of `GET /api/v1/me` with `cookie` at the gateway at `url`.
async fn me_status(http: &reqwest::Client, url: &str, cookie: &str) -> u16 {
    http.get(format!("{url}/api/v1/me"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET me")
        .status()
        .as_u16()
}

#[tokio::test]
async fn sign_up_sign_in_and_sign_out_round_trip() {
    let gateway = Gateway::with_demo_programme().await;
    let (status, body, session) = gateway.register("ada@example.com", "Ada", PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["is_staff"], false);
    let registered = session.expect("registration signs in");

    let me: Value = gateway
        .with_session(Method::GET, "/api/v1/me", &registered)
        .send()
        .await
        .expect("GET me")
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["display_name"], "Ada");

    // Sign out: that session is over.
    let out = gateway
        .with_session(Method::POST, "/api/v1/auth/logout", &registered)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 204);
    assert_eq!(get_me(&gateway, &registered.cookie).await, 401);

    // Sign in again with the same address in another case.
    let (status, body, session) = gateway.login("ADA@Example.com", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let again = session.expect("a new session");
    assert_eq!(get_me(&gateway, &again.cookie).await, 200);

    // A wrong password: 401, no session.
    let (status, body, session) = gateway.login("ada@example.com", "not my password").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(session.is_none());

    // The pages: the header names the user; signing out by form works too.
    let home = gateway
        .with_session(Method::GET, "/", &again)
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("html");
    assert!(
        home.contains("data-nav-profile"),
        "the header shows the account"
    );
    let form_out = gateway
        .http
        .post(format!("{}/logout", gateway.url))
        .header("cookie", &again.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={}", again.csrf_token))
        .send()
        .await
        .expect("POST /logout");
    assert_eq!(form_out.status(), 303);
    assert_eq!(get_me(&gateway, &again.cookie).await, 401);
}

#[tokio::test]
async fn an_email_address_has_one_account_whatever_its_case() {
    let gateway = Gateway::with_demo_programme().await;
    let (status, _, _) = gateway
        .register("Grace@Example.com", "Grace", PASSWORD)
        .await;
    assert_eq!(status, 201);
    let (status, body, session) = gateway
        .register("grace@EXAMPLE.com", "Another Grace", "another password")
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert!(session.is_none());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&gateway.db.pool)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn bad_account_details_get_clear_messages_and_change_nothing() {
    let gateway = Gateway::with_demo_programme().await;
    let cases = [
        ("not-an-email", "Ann", PASSWORD, "email address"),
        ("ann@example.com", "", PASSWORD, "display name"),
        ("ann@example.com", "Ann", "short", "at least 8"),
        ("ann@example.com", "Ann", &"x".repeat(129), "at most 128"),
    ];
    for (email, name, password, hint) in cases {
        let (status, body, session) = gateway.register(email, name, password).await;
        assert_eq!(status, 400, "{email} {name}: {body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(
            message.contains(hint),
            "{message:?} should mention {hint:?}"
        );
        assert!(session.is_none());
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&gateway.db.pool)
        .await
        .expect("count");
    assert_eq!(count, 0);
}

#[tokio::test]
async fn signing_in_always_issues_a_new_session_id() {
    let gateway = Gateway::with_demo_programme().await;
    let first = gateway.session_of("ivy").await;

    // Signing in while signed in: a new id, and the old session ends.
    let (cookie, _) = gateway.anonymous_csrf().await;
    let response = gateway
        .http
        .post(format!("{}/api/v1/auth/login", gateway.url))
        .header("cookie", format!("{}; {cookie}", first.cookie))
        .header("x-csrf-token", &first.csrf_token)
        .json(&serde_json::json!({ "email": "ivy@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let second = set_cookie(&response, "bms_session").expect("a session cookie");
    assert_ne!(second, first.cookie);
    assert_eq!(
        get_me(&gateway, &first.cookie).await,
        401,
        "the old id is dead"
    );
    assert_eq!(get_me(&gateway, &second).await, 200);

    // An id planted before sign-in (fixation) is never adopted.
    let planted = "bms_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (csrf_cookie, csrf) = gateway.anonymous_csrf().await;
    let response = gateway
        .http
        .post(format!("{}/api/v1/auth/login", gateway.url))
        .header("cookie", format!("{planted}; {csrf_cookie}"))
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({ "email": "ivy@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let issued = set_cookie(&response, "bms_session").expect("a session cookie");
    assert_ne!(issued, planted);
    assert_eq!(get_me(&gateway, planted).await, 401);
}

#[tokio::test]
async fn session_cookies_are_http_only_and_same_site_lax() {
    let gateway = Gateway::with_demo_programme().await;
    let (cookie, token) = gateway.anonymous_csrf().await;
    let response = gateway
        .http
        .post(format!("{}/api/v1/auth/register", gateway.url))
        .header("cookie", cookie)
        .header("x-csrf-token", token)
        .json(&serde_json::json!({
            "email": "kim@example.com", "display_name": "Kim", "password": PASSWORD
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(response.status(), 201);
    let set = set_cookie_header(&response, "bms_session").expect("Set-Cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set.contains(flag), "{set} lacks {flag}");
    }
    // http:// public base URL here: no Secure (browsers would drop it).
    assert!(!set.contains("Secure"), "{set}");

    // A forged or unknown cookie opens nothing and is cleared.
    let forged = gateway
        .http
        .get(format!("{}/api/v1/me", gateway.url))
        .header("cookie", "bms_session=forged-value")
        .send()
        .await
        .expect("GET me");
    assert_eq!(forged.status(), 401);
    let unknown = gateway
        .http
        .get(format!("{}/profile", gateway.url))
        .header(
            "cookie",
            "bms_session=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        )
        .send()
        .await
        .expect("GET profile");
    assert_eq!(unknown.status(), 303, "sent to sign in");
    assert!(header(&unknown, "location").starts_with("/login?next="));
    let cleared = set_cookie_header(&unknown, "bms_session").expect("cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn sign_outs_and_password_changes_reach_every_gateway_replica_at_once() {
    let gateway = Gateway::with_demo_programme().await;
    // The replica keeps what it looked up for five minutes (the most it
    // may): only the ending that the first gateway announces can make it
    // let go within the 30 s `eventually` waits.
    let replica = gateway.replica(gateway::MAX_SESSION_CACHE_SECS).await;
    let (http, replica) = (&gateway.http, replica.as_str());
    let on_replica = |cookie: String, status: u16| async move {
        me_status(http, replica, &cookie).await == status
    };
    let laptop = gateway.session_of("nina").await;
    let mut others = Vec::new();
    for _ in 0..2 {
        let (status, body, session) = gateway.login("nina@example.com", PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        others.push(session.expect("a session"));
    }
    let (phone, tablet) = (&others[0], &others[1]);
    for session in [&laptop, phone, tablet] {
        test_support::eventually("the replica knows the session", || {
            on_replica(session.cookie.clone(), 200)
        })
        .await;
    }

    // One session signed out on the first gateway: over on both, the
    // account's other sessions untouched.
    let out = gateway
        .with_session(Method::POST, "/api/v1/auth/logout", &laptop)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 204);
    assert_eq!(get_me(&gateway, &laptop.cookie).await, 401);
    test_support::eventually("the replica ends the signed-out session", || {
        on_replica(laptop.cookie.clone(), 401)
    })
    .await;
    assert!(on_replica(phone.cookie.clone(), 200).await);

    // A password change on the first gateway ends the account's other
    // sessions on the replica too, and keeps the one that made it.
    let changed = gateway
        .with_session(Method::POST, "/api/v1/me/password", phone)
        .json(
            &serde_json::json!({ "current_password": PASSWORD, "new_password": "new password 2" }),
        )
        .send()
        .await
        .expect("change password");
    assert_eq!(changed.status(), 200);
    test_support::eventually("the replica ends the account's other sessions", || {
        on_replica(tablet.cookie.clone(), 401)
    })
    .await;
    assert!(on_replica(phone.cookie.clone(), 200).await);

    // A new display name shows on the replica without waiting either.
    let renamed = gateway
        .with_session(Method::PATCH, "/api/v1/me", phone)
        .json(&serde_json::json!({ "display_name": "Nina N." }))
        .send()
        .await
        .expect("PATCH me");
    assert_eq!(renamed.status(), 200);
    test_support::eventually("the replica shows the new name", || async {
        let me: Value = http
            .get(format!("{replica}/api/v1/me"))
            .header("cookie", &phone.cookie)
            .send()
            .await
            .expect("GET me")
            .json()
            .await
            .expect("JSON");
        me["display_name"] == "Nina N."
    })
    .await;
}

/// Puts every session of `user_id` past its absolute end, in SQL (no
/// gateway hears of it).
async fn end_sessions_in_sql(gateway: &Gateway, user_id: &str) {
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1::uuid",
    )
    .bind(user_id)
    .execute(&gateway.db.pool)
    .await
    .expect("ending a session");
}

/// A session idle too long, or past its absolute end, opens nothing. The
/// rows are aged in SQL, which no gateway hears of, so the database's
/// verdict is asked of a replica that has to look the sessions up. The
/// gateway that started them kept them at sign-up: it answers from those
/// copies, as the session cache documents for a change made behind every
/// gateway's back, and that shows the copies are kept.
#[tokio::test]
async fn expired_sessions_open_nothing() {
    // Long enough that the copies outlive the test on a busy machine.
    let gateway = Gateway::with_seating_configured(|c| c.session_cache_secs = 300).await;
    let replica = gateway.replica(gateway::DEFAULT_SESSION_CACHE_SECS).await;
    let idle = gateway.session_of("lea").await;
    let ended = gateway.session_of("max").await;
    // Idle past the limit, and past the absolute end.
    sqlx::query(
        "UPDATE sessions SET last_seen_at = now() - interval '13 hours' \
         WHERE user_id = $1::uuid",
    )
    .bind(&idle.user_id)
    .execute(&gateway.db.pool)
    .await
    .expect("ageing a session");
    end_sessions_in_sql(&gateway, &ended.user_id).await;
    for session in [&idle, &ended] {
        assert_eq!(
            me_status(&gateway.http, &replica, &session.cookie).await,
            401
        );
        assert_eq!(get_me(&gateway, &session.cookie).await, 200);
    }
}

/// Session lookups that arrive together share queries, and each still gets
/// its own answer: a live session its account, an ended or unknown token
/// none. A database that cannot answer is an error, never "signed out".
#[tokio::test]
async fn session_lookups_arriving_together_share_queries_and_keep_their_answers() {
    use gateway::accounts::Token;
    use gateway::session_lookups::SessionLookups;

    let gateway = Gateway::with_demo_programme().await;
    let digest = |session: &crate::harness::Session| {
        let raw = session.cookie.split_once('=').expect("name=value").1;
        Token::parse(raw).expect("a session token").digest()
    };
    let mut live = Vec::new();
    for user in ["ann", "ben", "cat"] {
        let session = gateway.session_of(user).await;
        live.push((digest(&session), Some(session.user_id.clone())));
    }
    let ended = gateway.session_of("dan").await;
    end_sessions_in_sql(&gateway, &ended.user_id).await;
    let mut asked = live;
    asked.push((digest(&ended), None));
    asked.push((Token::generate().digest(), None));

    // A pool of its own, closed at the end to stand for a database gone.
    let pool = sqlx::PgPool::connect(&gateway.db.url)
        .await
        .expect("connecting to the gateway's database");
    let lookups = SessionLookups::new(pool.clone(), chrono::Duration::hours(12));
    let mut answers = tokio::task::JoinSet::new();
    const LOOKUPS: usize = 200;
    for (token_hash, expected) in asked.iter().cycle().take(LOOKUPS) {
        let (lookups, token_hash, expected) =
            (lookups.clone(), token_hash.clone(), expected.clone());
        answers.spawn(async move {
            let found = lookups.find(&token_hash).await.expect("a lookup");
            assert_eq!(found.map(|f| f.user.id.to_string()), expected);
        });
    }
    while let Some(answered) = answers.join_next().await {
        answered.expect("every lookup answered as its token deserves");
    }
    // One query each would make 200.
    assert!(
        lookups.queries() <= 10,
        "{} queries for {LOOKUPS} lookups",
        lookups.queries()
    );

    pool.close().await;
    let refused = lookups.find(&asked[0].0).await;
    assert!(
        matches!(refused, Err(gateway::error::Error::Internal(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn forms_and_api_calls_without_the_right_csrf_token_are_refused() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let alice = gateway.session_of("alice").await;
    let bob = gateway.session_of("bob").await;

    // API: the session cookie alone is not enough.
    let hold_path = format!("{}/api/v1/showtimes/{showtime}/holds", gateway.url);
    let missing = gateway
        .http
        .post(&hold_path)
        .header("cookie", &alice.cookie)
        .json(&serde_json::json!({ "seats": ["A1"] }))
        .send()
        .await
        .expect("POST holds");
    assert_eq!(missing.status(), 403);
    let body: Value = missing.json().await.expect("JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("CSRF"),
        "{body}"
    );
    // Another session's token does not fit this session.
    let wrong = gateway
        .http
        .post(&hold_path)
        .header("cookie", &alice.cookie)
        .header("x-csrf-token", &bob.csrf_token)
        .json(&serde_json::json!({ "seats": ["A1"] }))
        .send()
        .await
        .expect("POST holds");
    assert_eq!(wrong.status(), 403);

    // A form: the field must match too.
    let form = gateway
        .http
        .post(format!("{}/showtimes/{showtime}/hold", gateway.url))
        .header("cookie", &alice.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("seats=A1&csrf_token=not-the-token")
        .send()
        .await
        .expect("POST form");
    assert_eq!(form.status(), 403);
    assert!(header(&form, "content-type").starts_with("text/html"));

    // The sign-in form of a visitor without the CSRF cookie is refused.
    let login = gateway
        .http
        .post(format!("{}/login", gateway.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=alice%40example.com&password=correct+horse+battery&csrf_token=guess")
        .send()
        .await
        .expect("POST /login");
    assert_eq!(login.status(), 403);
    assert!(set_cookie(&login, "bms_session").is_none());

    // Nothing was held.
    let map = gateway
        .json(&format!("/api/v1/showtimes/{showtime}/seats"), 200)
        .await;
    let a1 = map["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|s| s["label"] == "A1")
        .expect("A1");
    assert_eq!(a1["state"], "available");

    // With the right field, the same form works (post/redirect/get).
    let form = gateway
        .http
        .post(format!("{}/showtimes/{showtime}/hold", gateway.url))
        .header("cookie", &alice.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("seats=A1&csrf_token={}", alice.csrf_token))
        .send()
        .await
        .expect("POST form");
    assert_eq!(form.status(), 303);
}

/// An anonymous visitor gets a CSRF cookie from pages with a form, and only
/// from those: a film list or a page without a form sets no cookie.
#[tokio::test]
async fn only_a_page_with_a_form_gives_an_anonymous_visitor_a_csrf_cookie() {
    let gateway = Gateway::with_demo_programme().await;
    for path in ["/api/v1/movies", "/"] {
        let response = gateway.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(set_cookie(&response, "bms_csrf"), None, "{path}");
    }
    let form = gateway.get("/login").await;
    assert!(set_cookie(&form, "bms_csrf").is_some());
}

#[tokio::test]
async fn the_sign_in_page_form_works_with_its_own_csrf_cookie() {
    let gateway = Gateway::with_demo_programme().await;
    gateway.session_of("nia").await;
    let page = gateway.get("/login?next=/profile").await;
    assert_eq!(page.status(), 200);
    let cookie = set_cookie(&page, "bms_csrf").expect("the form's CSRF cookie");
    let html = page.text().await.expect("html");
    let token = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf_token field")
        .to_owned();
    let response = gateway
        .http
        .post(format!("{}/login", gateway.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "email=nia%40example.com&password=correct+horse+battery&next=%2Fprofile&csrf_token={token}"
        ))
        .send()
        .await
        .expect("POST /login");
    assert_eq!(response.status(), 303);
    assert_eq!(header(&response, "location"), "/profile");
    let session = set_cookie(&response, "bms_session").expect("signed in");
    assert_eq!(get_me(&gateway, &session).await, 200);

    // A wrong password on the page: the form again, with the message, 401.
    let wrong = gateway
        .http
        .post(format!("{}/login", gateway.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "email=nia%40example.com&password=wrong+password&csrf_token={token}"
        ))
        .send()
        .await
        .expect("POST /login");
    assert_eq!(wrong.status(), 401);
    let html = wrong.text().await.expect("html");
    assert!(html.contains("do not match an account"), "no message");
    assert!(
        html.contains("value=\"nia@example.com\""),
        "the address is kept"
    );
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled_per_account() {
    let gateway = Gateway::with_demo_programme().await;
    gateway.session_of("oscar").await;
    for attempt in 1..=5 {
        let (status, body, _) = gateway.login("oscar@example.com", "wrong password").await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
    }
    // Now even the right password waits.
    let (cookie, token) = gateway.anonymous_csrf().await;
    let response = gateway
        .http
        .post(format!("{}/api/v1/auth/login", gateway.url))
        .header("cookie", cookie)
        .header("x-csrf-token", token)
        .json(&serde_json::json!({ "email": "oscar@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 429);
    let retry_after: u64 = header(&response, "retry-after")
        .parse()
        .expect("Retry-After");
    assert!(retry_after > 0 && retry_after <= 15 * 60, "{retry_after}");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Try again in"),
        "{body}"
    );
    // Another account from the same address is not locked.
    gateway.session_of("pia").await;
    let (status, _, _) = gateway.login("pia@example.com", PASSWORD).await;
    assert_eq!(status, 200);
}

/// Reads reset events from the gateway's ACCOUNTS stream.
async fn reset_events(gateway: &Gateway) -> Vec<events_pb::PasswordResetRequested> {
    let client = platform::nats::connect(&test_support::nats_url())
        .await
        .expect("NATS");
    let jetstream = jetstream::new(client);
    let name = format!("{}_ACCOUNTS", gateway.prefix.to_uppercase());
    let mut stream = jetstream.get_stream(&name).await.expect("ACCOUNTS stream");
    let count = stream.info().await.expect("info").state.messages;
    let mut events = Vec::new();
    for sequence in 1..=count {
        let message = stream.get_raw_message(sequence).await.expect("a message");
        assert_eq!(
            message.subject.as_str(),
            platform::nats::subject(&gateway.prefix, "accounts.password_reset.requested")
        );
        events.push(
            events_pb::PasswordResetRequested::decode(message.payload.as_ref())
                .expect("a PasswordResetRequested"),
        );
    }
    events
}

async fn request_reset(gateway: &Gateway, email: &str) -> (u16, Value) {
    let (cookie, token) = gateway.anonymous_csrf().await;
    let response = gateway
        .http
        .post(format!("{}/api/v1/auth/password-reset", gateway.url))
        .header("cookie", cookie)
        .header("x-csrf-token", token)
        .json(&serde_json::json!({ "email": email }))
        .send()
        .await
        .expect("reset request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn confirm_reset(gateway: &Gateway, token: &str, password: &str) -> (u16, Value) {
    let (cookie, csrf) = gateway.anonymous_csrf().await;
    let response = gateway
        .http
        .post(format!(
            "{}/api/v1/auth/password-reset/confirm",
            gateway.url
        ))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(&serde_json::json!({ "token": token, "password": password }))
        .send()
        .await
        .expect("reset confirm");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_reset_request_answers_the_same_for_unknown_and_known_addresses() {
    let gateway = Gateway::with_demo_programme().await;
    gateway.session_of("quinn").await;
    let known = request_reset(&gateway, "quinn@example.com").await;
    let unknown = request_reset(&gateway, "nobody@example.com").await;
    assert_eq!(known.0, 202);
    assert_eq!(known, unknown, "the answers must not tell accounts apart");
    test_support::eventually("the reset event is on JetStream", || async {
        reset_events(&gateway).await.len() == 1
    })
    .await;
    let events = reset_events(&gateway).await;
    assert_eq!(events[0].email, "quinn@example.com");
    assert_eq!(events[0].display_name, "quinn");
    // Nothing was stored for the unknown address.
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM password_resets")
        .fetch_one(&gateway.db.pool)
        .await
        .expect("count");
    assert_eq!(tokens, 1);
}

#[tokio::test]
async fn a_reset_link_sets_a_password_once_and_ends_every_session() {
    let gateway = Gateway::with_demo_programme().await;
    let old_session = gateway.session_of("rosa").await;
    let (status, _) = request_reset(&gateway, "rosa@example.com").await;
    assert_eq!(status, 202);
    test_support::eventually("the reset event is on JetStream", || async {
        !reset_events(&gateway).await.is_empty()
    })
    .await;
    let event = reset_events(&gateway).await.remove(0);
    let expires = proto::time::from_timestamp(event.expires_at.as_ref().expect("expires_at"))
        .expect("a time");
    let lifetime = expires - chrono::Utc::now();
    assert!(lifetime <= chrono::Duration::hours(1) && lifetime > chrono::Duration::minutes(55));
    let link = event.reset_url;
    assert!(
        link.starts_with(&format!("{}/reset-password?token=", gateway.url)),
        "{link}"
    );
    let token = link.split("token=").nth(1).expect("a token").to_owned();
    // Stored only as a digest.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM password_resets WHERE token_hash = $1::text::bytea",
    )
    .bind(&token)
    .fetch_one(&gateway.db.pool)
    .await
    .expect("count");
    assert_eq!(stored, 0, "the token itself is never stored");

    // The link's page offers the form.
    let page = gateway
        .page(&format!("/reset-password?token={token}"), 200)
        .await;
    assert!(page.contains("name=\"password\""));

    let (status, body) = confirm_reset(&gateway, &token, "a brand new password").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get_me(&gateway, &old_session.cookie).await,
        401,
        "sessions ended"
    );
    let (status, _, _) = gateway.login("rosa@example.com", PASSWORD).await;
    assert_eq!(status, 401, "the old password is gone");
    let (status, _, _) = gateway
        .login("rosa@example.com", "a brand new password")
        .await;
    assert_eq!(status, 200);

    // Used once; the second use changes nothing.
    let (status, body) = confirm_reset(&gateway, &token, "yet another password").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired or was already used")
    );
    let (status, _, _) = gateway
        .login("rosa@example.com", "yet another password")
        .await;
    assert_eq!(status, 401);
    let page = gateway
        .page(&format!("/reset-password?token={token}"), 400)
        .await;
    assert!(page.contains("Ask for a new link"));
}

#[tokio::test]
async fn an_expired_reset_link_changes_nothing() {
    let gateway = Gateway::with_demo_programme().await;
    gateway.session_of("sam").await;
    request_reset(&gateway, "sam@example.com").await;
    test_support::eventually("the reset event is on JetStream", || async {
        !reset_events(&gateway).await.is_empty()
    })
    .await;
    let event = reset_events(&gateway).await.remove(0);
    let token = event
        .reset_url
        .split("token=")
        .nth(1)
        .expect("token")
        .to_owned();
    sqlx::query("UPDATE password_resets SET expires_at = now() - interval '1 second'")
        .execute(&gateway.db.pool)
        .await
        .expect("expiring the link");
    let (status, _) = confirm_reset(&gateway, &token, "a brand new password").await;
    assert_eq!(status, 400);
    let (status, _, _) = gateway.login("sam@example.com", PASSWORD).await;
    assert_eq!(status, 200, "the old password still works");
    let (status, _) = confirm_reset(&gateway, "not-a-token", "a brand new password").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_only() {
    let gateway = Gateway::with_demo_programme().await;
    let laptop = gateway.session_of("tara").await;
    let (_, _, phone) = gateway.login("tara@example.com", PASSWORD).await;
    let phone = phone.expect("a second session");
    let wrong = gateway
        .with_session(Method::POST, "/api/v1/me/password", &laptop)
        .json(&serde_json::json!({ "current_password": "wrong", "new_password": "new password 1" }))
        .send()
        .await
        .expect("change password");
    assert_eq!(wrong.status(), 400);
    let changed = gateway
        .with_session(Method::POST, "/api/v1/me/password", &laptop)
        .json(
            &serde_json::json!({ "current_password": PASSWORD, "new_password": "new password 1" }),
        )
        .send()
        .await
        .expect("change password");
    assert_eq!(changed.status(), 200);
    assert_eq!(get_me(&gateway, &laptop.cookie).await, 200);
    assert_eq!(get_me(&gateway, &phone.cookie).await, 401);

    // The profile's name can be changed; a blank one is refused.
    let renamed: Value = gateway
        .with_session(Method::PATCH, "/api/v1/me", &laptop)
        .json(&serde_json::json!({ "display_name": "Tara T." }))
        .send()
        .await
        .expect("PATCH me")
        .json()
        .await
        .expect("JSON");
    assert_eq!(renamed["display_name"], "Tara T.");
    let blank = gateway
        .with_session(Method::PATCH, "/api/v1/me", &laptop)
        .json(&serde_json::json!({ "display_name": "  " }))
        .send()
        .await
        .expect("PATCH me");
    assert_eq!(blank.status(), 400);
}

#[tokio::test]
async fn only_staff_reach_admin_routes() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let customer = gateway.session_of("uma").await;
    let staff = gateway.staff_session("victor").await;

    let routes = gateway::account_api::ADMIN_PATHS
        .iter()
        .map(|(method, path)| (*method, path.replace("{id}", &showtime)))
        .chain([("GET", "/admin".to_owned())])
        .chain(
            gateway::programme_pages::PAGES
                .iter()
                .chain(gateway::dashboard::PAGES)
                .map(|path| ("GET", (*path).to_owned())),
        )
        .chain([
            ("POST", "/admin/films/new".to_owned()),
            ("POST", "/admin/cinemas/new".to_owned()),
            ("POST", "/admin/showtimes/new".to_owned()),
        ]);
    for (method, path) in routes {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let body = serde_json::json!({ "seats": ["J12"] });
        // A customer: 403, whatever they add to the request.
        let response = gateway
            .with_session(
                method.clone(),
                &format!("{path}?staff=true&admin=1"),
                &customer,
            )
            .header("x-staff", "true")
            .header("cookie", "is_staff=true")
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 403, "{method} {path} as a customer");
        // Nobody signed in: 401 from the API, a sign-in redirect for pages.
        let (cookie, token) = gateway.anonymous_csrf().await;
        let response = gateway
            .http
            .request(method.clone(), format!("{}{path}", gateway.url))
            .header("cookie", cookie)
            .header("x-csrf-token", token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let expected = if path.starts_with("/api/") { 401 } else { 303 };
        assert_eq!(response.status(), expected, "{method} {path} anonymously");
    }
    // Nothing was blocked by the refused calls.
    let map = gateway
        .json(&format!("/api/v1/showtimes/{showtime}/seats"), 200)
        .await;
    let j12 = map["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|s| s["label"] == "J12")
        .expect("J12");
    assert_eq!(j12["state"], "available");

    // Staff get in.
    let whoami = gateway
        .with_session(Method::GET, "/api/v1/admin/whoami", &staff)
        .send()
        .await
        .expect("whoami");
    assert_eq!(whoami.status(), 200);
    let blocked: Value = gateway
        .with_session(
            Method::POST,
            &format!("/api/v1/admin/showtimes/{showtime}/blocked-seats"),
            &staff,
        )
        .json(&serde_json::json!({ "seats": ["J12"], "reason": "broken seat" }))
        .send()
        .await
        .expect("block")
        .json()
        .await
        .expect("JSON");
    let j12 = blocked["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|s| s["label"] == "J12")
        .expect("J12");
    assert_eq!(j12["state"], "blocked");
    // Found by fuzzing: a NUL in the reason reached seating's database,
    // which refuses such text, and the answer was a 500.
    let refused = gateway
        .with_session(
            Method::POST,
            &format!("/api/v1/admin/showtimes/{showtime}/blocked-seats"),
            &staff,
        )
        .json(&serde_json::json!({ "seats": ["J11"], "reason": "broken\u{0}seat" }))
        .send()
        .await
        .expect("block");
    assert_eq!(refused.status(), 400);
    let page = gateway
        .with_session(Method::GET, "/admin", &staff)
        .send()
        .await
        .expect("admin page");
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn a_user_sees_their_own_bookings_and_never_another_users() {
    let gateway = Gateway::with_seating().await;
    let (showtime, film) = classic_showtime(&gateway).await;
    let wendy = gateway.session_of("wendy").await;
    let xavier = gateway.session_of("xavier").await;

    // Wendy holds two seats and pays (payments' event, published as
    // payments would).
    let (status, hold) = gateway.hold(&showtime, "wendy", &["C3", "C4"]).await;
    assert_eq!(status, 201, "{hold}");
    let client = platform::nats::connect(&test_support::nats_url())
        .await
        .expect("NATS");
    let js = jetstream::new(client);
    let event_id = uuid::Uuid::now_v7();
    let paid = events_pb::CheckoutCompleted {
        meta: None,
        checkout_id: "chk_test_1".into(),
        hold_id: hold["id"].as_str().expect("hold id").into(),
        user_id: wendy.user_id.clone(),
        user_email: "wendy@example.com".into(),
        amount_minor: 50_000,
        currency: "INR".into(),
        showtime_id: showtime.to_string(),
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", event_id.to_string().as_str());
    js.publish_with_headers(
        platform::nats::subject(&gateway.prefix, "payments.checkout.completed"),
        headers,
        paid.encode_to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");

    test_support::eventually("the booking exists", || async {
        let list: Value = gateway
            .with_session(Method::GET, "/api/v1/bookings", &wendy)
            .send()
            .await
            .expect("GET bookings")
            .json()
            .await
            .expect("JSON");
        list["count"] == 1
    })
    .await;
    let list: Value = gateway
        .with_session(Method::GET, "/api/v1/bookings", &wendy)
        .send()
        .await
        .expect("GET bookings")
        .json()
        .await
        .expect("JSON");
    let reference = list["bookings"][0]["reference"]
        .as_str()
        .expect("a reference")
        .to_owned();
    assert!(reference.starts_with("BMS-"), "{reference}");

    let mine = gateway
        .with_session(
            Method::GET,
            &format!("/api/v1/bookings/{reference}"),
            &wendy,
        )
        .send()
        .await
        .expect("GET booking");
    assert_eq!(mine.status(), 200);
    let booking: Value = mine.json().await.expect("JSON");
    assert_eq!(booking["film_title"], film["title"]);
    assert_eq!(booking["status"], "confirmed");

    // Xavier: the same reference is "not found"; his list is empty.
    let theirs = gateway
        .with_session(
            Method::GET,
            &format!("/api/v1/bookings/{reference}"),
            &xavier,
        )
        .send()
        .await
        .expect("GET booking");
    assert_eq!(theirs.status(), 404);
    let list: Value = gateway
        .with_session(Method::GET, "/api/v1/bookings", &xavier)
        .send()
        .await
        .expect("GET bookings")
        .json()
        .await
        .expect("JSON");
    assert_eq!(list["count"], 0);
    // Nobody signed in: 401.
    let anonymous = gateway.get(&format!("/api/v1/bookings/{reference}")).await;
    assert_eq!(anonymous.status(), 401);
    let malformed = gateway
        .with_session(Method::GET, "/api/v1/bookings/%3Cscript%3E", &wendy)
        .send()
        .await
        .expect("GET booking");
    assert_eq!(malformed.status(), 400);

    // The profile page shows the ticket stub and the count.
    let page = gateway
        .with_session(Method::GET, "/profile", &wendy)
        .send()
        .await
        .expect("profile")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains(&format!("data-booking=\"{reference}\"")),
        "no stub"
    );
    assert!(page.contains("(1 booking)"));
    assert!(page.contains("C3, C4"));
    let other = gateway
        .with_session(Method::GET, "/profile", &xavier)
        .send()
        .await
        .expect("profile")
        .text()
        .await
        .expect("html");
    assert!(!other.contains(&reference), "another user's booking leaked");
    assert!(other.contains("(0 bookings)"));
}

#[tokio::test]
async fn the_openapi_document_describes_accounts() {
    let gateway = Gateway::with_demo_programme().await;
    let document: Value = gateway.json("/api/openapi.json", 200).await;
    let paths = &document["paths"];
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/register",
        "/api/v1/auth/password-reset",
        "/api/v1/me",
        "/api/v1/bookings",
        "/api/v1/bookings/{reference}",
        "/api/v1/admin/whoami",
    ] {
        assert!(paths[path].is_object(), "{path} missing");
    }
    assert_eq!(
        document["components"]["securitySchemes"]["session"]["in"],
        "cookie"
    );
}
