//! Faults during load: buyers keep booking while services are stopped with
//! SIGTERM, killed, or lose NATS or their SMTP relay; afterwards the
//! system owes every buyer what it acknowledged, and owes nothing twice.
//!
//! The buyers ([`Load`]) record what the system *acknowledged*: a hold it
//! answered 201, a checkout it answered 201, a payment the (simulated)
//! provider confirmed with its redirect to the success page. Requests that
//! got no answer (a process was down) are not acknowledged and the buyer
//! simply tries again, as a person would. [`settle_and_check`] then waits
//! (bounded) for the backlog to drain by itself and checks, against each
//! service's own database and the SMTP server's mailbox:
//! - every acknowledged hold and checkout exists;
//! - every acknowledged payment became exactly one booking, or a refund;
//! - no seat is sold twice;
//! - every booking is in analytics' figures, and has exactly one
//!   confirmation email, sent (none given up).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Environment, Session, count, get_json};

/// What the system told buyers succeeded.
#[derive(Debug, Default)]
struct Acknowledged {
    holds: Vec<String>,
    /// Provider session ids of checkouts answered 201.
    checkouts: Vec<String>,
    /// Provider session ids whose payment the provider confirmed.
    payments: Vec<String>,
    /// Clear refusals (a seat just taken, one hold per showtime): not faults.
    refused: usize,
    /// No answer, or a 5xx: the buyer was told nothing succeeded.
    unanswered: usize,
}

impl std::fmt::Display for Acknowledged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} holds, {} checkouts, {} payments acknowledged; {} refused, {} unanswered",
            self.holds.len(),
            self.checkouts.len(),
            self.payments.len(),
            self.refused,
            self.unanswered
        )
    }
}

/// Buyers booking in a loop until stopped.
struct Load {
    stop: tokio::sync::watch::Sender<bool>,
    buyers: tokio::task::JoinSet<()>,
    acknowledged: Arc<Mutex<Acknowledged>>,
}

impl Load {
    /// Signs up `buyers` accounts and sets each booking, over the seeded
    /// programme's showtimes, until [`Load::stop`].
    async fn start(env: &Environment, buyers: usize) -> Load {
        let http = client();
        let showtimes = showtimes(env, &http).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..buyers {
            let session = env
                .sign_up(
                    &http,
                    &format!("buyer{i}@example.com"),
                    &format!("Buyer {i}"),
                )
                .await;
            let buyer = Buyer {
                http: client(),
                gateway: env.url(""),
                session,
                showtimes: showtimes.clone(),
                random: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
                acknowledged: acknowledged.clone(),
            };
            tasks.spawn(buyer.run(stopped.clone()));
        }
        Load {
            stop,
            buyers: tasks,
            acknowledged,
        }
    }

    fn payments(&self) -> usize {
        self.acknowledged.lock().unwrap().payments.len()
    }

    /// Waits until `more` further payments are acknowledged: the system
    /// sells again after a fault.
    async fn wait_for_payments(&self, more: usize, what: &str) {
        let target = self.payments() + more;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while self.payments() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: fewer than {more} payments within 120 s ({})",
                self.acknowledged.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the buyers (each finishes its current purchase step).
    async fn stop(mut self) -> Acknowledged {
        self.stop.send_replace(true);
        while let Some(done) = self.buyers.join_next().await {
            done.expect("a buyer panicked");
        }
        std::mem::take(&mut *self.acknowledged.lock().unwrap())
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("an HTTP client")
}

/// Every upcoming showtime of the seeded films.
async fn showtimes(env: &Environment, http: &reqwest::Client) -> Vec<String> {
    let films = get_json(http, &env.url("/api/v1/movies"), None).await;
    let mut showtimes = Vec::new();
    for film in films["films"].as_array().expect("films") {
        let slug = film["slug"].as_str().expect("a slug");
        let url = env.url(&format!("/api/v1/movies/{slug}/showtimes"));
        let schedule = get_json(http, &url, None).await;
        for day in schedule["days"].as_array().into_iter().flatten() {
            for cinema in day["cinemas"].as_array().into_iter().flatten() {
                for showtime in cinema["showtimes"].as_array().into_iter().flatten() {
                    showtimes.push(showtime["id"].as_str().expect("an id").to_owned());
                }
            }
        }
    }
    assert!(!showtimes.is_empty(), "the seeded programme has showtimes");
    showtimes
}

struct Buyer {
    http: reqwest::Client,
    gateway: String,
    session: Session,
    showtimes: Vec<String>,
    random: u64,
    acknowledged: Arc<Mutex<Acknowledged>>,
}

/// How one step of a purchase went.
enum Step<T> {
    Done(T),
    Refused,
    Unanswered,
}

impl Buyer {
    async fn run(mut self, stopped: tokio::sync::watch::Receiver<bool>) {
        while !*stopped.borrow() {
            let outcome = self.purchase().await;
            {
                let mut acknowledged = self.acknowledged.lock().unwrap();
                match outcome {
                    Step::Done(()) => {}
                    Step::Refused => acknowledged.refused += 1,
                    Step::Unanswered => acknowledged.unanswered += 1,
                }
            }
            // A person takes a moment before the next purchase, and longer
            // before trying again; it also keeps four buyers from taking
            // every core from the services they test.
            let pause = if matches!(outcome, Step::Done(())) {
                100
            } else {
                200
            };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: reproducible per buyer, no dependency.
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        self.random.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Seat map → hold → checkout → pay, recording each acknowledgement.
    async fn purchase(&mut self) -> Step<()> {
        let pick = (self.next() % self.showtimes.len() as u64) as usize;
        let showtime = self.showtimes[pick].clone();
        let seats = match self.pick_seats(&showtime).await {
            Step::Done(seats) => seats,
            Step::Refused => return Step::Refused,
            Step::Unanswered => return Step::Unanswered,
        };
        let hold = self
            .post(
                &format!("/api/v1/showtimes/{showtime}/holds"),
                serde_json::json!({ "seats": seats }),
            )
            .await;
        let hold_id = match hold {
            Step::Done((201, body)) => body["id"].as_str().expect("a hold id").to_owned(),
            Step::Done((400..=499, _)) | Step::Refused => return Step::Refused,
            _ => return Step::Unanswered,
        };
        self.acknowledged
            .lock()
            .unwrap()
            .holds
            .push(hold_id.clone());

        let checkout = self
            .post(
                &format!("/api/v1/holds/{hold_id}/checkout"),
                serde_json::Value::Null,
            )
            .await;
        let (session_id, url) = match checkout {
            Step::Done((201, body)) => (
                body["session_id"]
                    .as_str()
                    .expect("a session id")
                    .to_owned(),
                body["url"].as_str().expect("a url").to_owned(),
            ),
            other => {
                // Let the seats go rather than sit on them until expiry;
                // if this fails too the hold simply expires.
                let _ = self
                    .session
                    .on(self
                        .http
                        .delete(format!("{}/api/v1/holds/{hold_id}", self.gateway)))
                    .send()
                    .await;
                return match other {
                    Step::Done((400..=499, _)) | Step::Refused => Step::Refused,
                    _ => Step::Unanswered,
                };
            }
        };
        self.acknowledged
            .lock()
            .unwrap()
            .checkouts
            .push(session_id.clone());

        match self.http.post(format!("{url}/pay")).send().await {
            Ok(paid) if paid.status() == 303 => {
                self.acknowledged.lock().unwrap().payments.push(session_id);
                Step::Done(())
            }
            // The checkout stays open and expires; nothing was charged.
            _ => Step::Unanswered,
        }
    }

    /// One or two seats the seat map shows available.
    async fn pick_seats(&mut self, showtime: &str) -> Step<Vec<String>> {
        let url = format!("{}/api/v1/showtimes/{showtime}/seats", self.gateway);
        let map: serde_json::Value = match self.session.on(self.http.get(url)).send().await {
            Ok(response) if response.status().is_success() => match response.json().await {
                Ok(map) => map,
                Err(_) => return Step::Unanswered,
            },
            _ => return Step::Unanswered,
        };
        let free: Vec<String> = map["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .filter(|seat| seat["state"] == "available")
            .map(|seat| seat["label"].as_str().expect("a label").to_owned())
            .collect();
        if free.len() < 2 {
            return Step::Refused;
        }
        let first = (self.next() % free.len() as u64) as usize;
        let wanted = 1 + (self.next() % 2) as usize;
        Step::Done(free[first..].iter().take(wanted).cloned().collect())
    }

    /// A signed-in JSON POST: its status and body, or no answer.
    async fn post(&self, path: &str, body: serde_json::Value) -> Step<(u16, serde_json::Value)> {
        let request = self
            .session
            .on(self.http.post(format!("{}{path}", self.gateway)));
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        match request.send().await {
            Ok(response) if response.status().is_server_error() => Step::Unanswered,
            Ok(response) => {
                let status = response.status().as_u16();
                Step::Done((status, response.json().await.unwrap_or_default()))
            }
            Err(_) => Step::Unanswered,
        }
    }
}

/// Where confirmation emails end up in a run.
enum Mailbox<'a> {
    /// The notifier writes `.eml` files (no SMTP_URL).
    Folder,
    /// A real SMTP server.
    Smtp(&'a test_support::smtp::SmtpSink),
}

/// Waits (at most four minutes) until everything acknowledged has settled,
/// then checks the invariants of the module comment.
async fn settle_and_check(env: &Environment, acknowledged: &Acknowledged, mailbox: Mailbox<'_>) {
    assert!(
        acknowledged.payments.len() >= 5,
        "the load bought too little to prove anything: {acknowledged}"
    );
    let holds: Vec<String> = acknowledged
        .holds
        .iter()
        .map(|h| format!("'{h}'"))
        .collect();
    assert_eq!(
        count(
            &env.seating_db,
            &format!(
                "SELECT count(*) FROM holds WHERE id IN ({})",
                holds.join(",")
            ),
        )
        .await,
        acknowledged.holds.len() as i64,
        "every acknowledged hold exists"
    );
    let sessions: Vec<String> = acknowledged
        .checkouts
        .iter()
        .map(|s| format!("'{s}'"))
        .collect();
    let listed = sessions.join(",");
    assert_eq!(
        count(
            &env.payments_db,
            &format!("SELECT count(*) FROM checkouts WHERE session_id IN ({listed})"),
        )
        .await,
        acknowledged.checkouts.len() as i64,
        "every acknowledged checkout exists"
    );
    let paid: Vec<String> = acknowledged
        .payments
        .iter()
        .map(|s| format!("'{s}'"))
        .collect();
    let paid = paid.join(",");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let mut last;
    loop {
        let unsettled = count(
            &env.payments_db,
            &format!(
                "SELECT count(*) FROM checkouts WHERE session_id IN ({paid}) \
                 AND NOT ((status = 'paid' AND booking_reference IS NOT NULL) OR status = 'refunded')"
            ),
        )
        .await;
        let booked_in_payments = count(
            &env.payments_db,
            "SELECT count(*) FROM checkouts WHERE booking_reference IS NOT NULL",
        )
        .await;
        let bookings = count(&env.seating_db, "SELECT count(*) FROM bookings").await;
        let in_analytics = count(&env.analytics_db, "SELECT count(*) FROM bookings").await;
        let emails_sent = count(
            &env.notifier_db,
            "SELECT count(*) FROM deliveries WHERE kind = 'booking_confirmed' AND status = 'sent'",
        )
        .await;
        last = format!(
            "paid checkouts not yet booked or refunded: {unsettled}; bookings: seating {bookings}, \
             payments {booked_in_payments}, analytics {in_analytics}; confirmation emails sent: {emails_sent}"
        );
        if unsettled == 0
            && booked_in_payments == bookings
            && in_analytics == bookings
            && emails_sent == bookings
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backlog did not drain within 240 s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("faults: settled — {last}; {acknowledged}");

    assert_eq!(
        count(
            &env.seating_db,
            "SELECT count(*) FROM (SELECT h.showtime_id, unnest(h.labels) AS label \
             FROM bookings b JOIN holds h ON h.id = b.hold_id \
             GROUP BY 1, 2 HAVING count(*) > 1) AS twice",
        )
        .await,
        0,
        "no seat is sold twice"
    );
    assert_eq!(
        count(
            &env.payments_db,
            &format!(
                "SELECT count(*) FROM checkouts c WHERE session_id IN ({paid}) AND status = 'refunded' \
                 AND booking_reference IS NOT NULL"
            ),
        )
        .await,
        0,
        "no payment is both booked and refunded"
    );
    assert_eq!(
        count(
            &env.notifier_db,
            "SELECT count(*) FROM deliveries WHERE status = 'failed'"
        )
        .await,
        0,
        "no email was given up"
    );

    // Every booking's confirmation is in the mailbox, once.
    let references = references(&env.seating_db).await;
    let mut per_booking: HashMap<String, HashSet<String>> = HashMap::new();
    let mut messages = 0;
    for (message_id, text) in received(env, &mailbox).await {
        messages += 1;
        if let Some(reference) = booking_reference(&text) {
            per_booking.entry(reference).or_default().insert(message_id);
        }
    }
    for reference in &references {
        let ids = per_booking.get(reference).map_or(0, HashSet::len);
        assert_eq!(
            ids, 1,
            "booking {reference} has exactly one confirmation email ({messages} messages in all)"
        );
    }
}

/// The first `BMS-…` booking reference in an email's text.
fn booking_reference(text: &str) -> Option<String> {
    let start = text.find("BMS-")?;
    let reference: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Some(reference)
}

async fn references(db: &test_support::TestDb) -> Vec<String> {
    sqlx::query_scalar("SELECT reference FROM bookings")
        .fetch_all(&db.pool)
        .await
        .expect("reading the bookings")
}

/// (Message-ID, text) of every confirmation email delivered so far.
async fn received(env: &Environment, mailbox: &Mailbox<'_>) -> Vec<(String, String)> {
    let raw: Vec<Vec<u8>> = match mailbox {
        Mailbox::Smtp(sink) => sink.messages(),
        Mailbox::Folder => env
            .emails()
            .await
            .iter()
            .map(|path| std::fs::read(path).expect("an email"))
            .collect(),
    };
    raw.iter()
        .filter_map(|bytes| mail_parser::MessageParser::default().parse(bytes))
        .map(|email| {
            (
                email.message_id().unwrap_or_default().to_owned(),
                email
                    .body_text(0)
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Issue #7: every service, one after another, is stopped with SIGTERM
/// while buyers keep booking, and started again. Each exits cleanly; no
/// acknowledged request and no event is lost, and nothing happens twice.
#[tokio::test]
async fn sigterm_during_load_loses_no_acknowledged_request_or_event() {
    let env = Environment::new().await;
    env.migrate_and_seed().await;
    let mut system = env.start_services().await;
    let load = Load::start(&env, 4).await;
    load.wait_for_payments(3, "before any restart").await;

    for role in [
        "seating",
        "payments",
        "notifier",
        "analytics",
        "catalog",
        "gateway",
    ] {
        system.restart(&env, role, false).await;
        load.wait_for_payments(2, &format!("after {role} restarted"))
            .await;
    }

    let acknowledged = load.stop().await;
    settle_and_check(&env, &acknowledged, Mailbox::Folder).await;
    system.stop().await;
}

/// Issue #8: NATS (a server of the test's own, JetStream on disk) is
/// stopped for 30 seconds during load, and seating is restarted. Holds and
/// payments go on meanwhile (the outboxes keep the events); once NATS is
/// back the backlog drains by itself and every payment has its booking and
/// its email.
#[tokio::test]
async fn nats_down_for_thirty_seconds_during_load_loses_nothing() {
    let mut nats = test_support::nats::NatsServer::start().await;
    let mut env = Environment::new().await;
    env.set("NATS_URL", nats.url());
    env.migrate_and_seed().await;
    let mut system = env.start_services().await;
    let load = Load::start(&env, 4).await;
    load.wait_for_payments(3, "before the faults").await;

    system.restart(&env, "seating", false).await;
    load.wait_for_payments(2, "after seating restarted").await;

    nats.stop().await;
    let before = load.payments();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        load.payments() > before,
        "buyers still pay while NATS is down (the outbox keeps the events)"
    );
    nats.restart().await;
    load.wait_for_payments(2, "after NATS came back").await;

    let acknowledged = load.stop().await;
    settle_and_check(&env, &acknowledged, Mailbox::Folder).await;
    system.stop().await;
}

/// Issue #8: the notifier is killed (SIGKILL) mid-load and restarted, then
/// the SMTP relay is down for a minute. Confirmations wait and retry; once
/// the relay is back every booking has its email, exactly once by
/// Message-ID (a crash mid-send may repeat a send, which the Message-ID
/// makes one email), and none was given up.
#[tokio::test]
async fn notifier_killed_and_smtp_down_for_a_minute_loses_no_email() {
    let mut smtp = test_support::smtp::SmtpSink::start().await;
    let mut env = Environment::new().await;
    env.set("SMTP_URL", smtp.url());
    // Retries span the minute-long outage with short pauses (production's
    // defaults span about six minutes, with longer pauses). What the killed
    // notifier had in hand comes back to the new one after the ack wait
    // (NOTIFIER_ACK_WAIT_MS, 30 s), as JetStream redelivers.
    env.set("NOTIFIER_SMTP_ATTEMPTS", "25");
    env.set("NOTIFIER_SMTP_MAX_BACKOFF_MS", "3000");
    env.set("NOTIFIER_SMTP_TIMEOUT_MS", "2000");
    env.migrate_and_seed().await;
    let mut system = env.start_services().await;
    let load = Load::start(&env, 4).await;
    load.wait_for_payments(3, "before the faults").await;

    system.restart(&env, "notifier", true).await;
    load.wait_for_payments(2, "after the notifier was killed")
        .await;

    smtp.stop();
    let emails_before = smtp.count();
    let before = load.payments();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        load.payments() > before,
        "buyers still book while the SMTP relay is down"
    );
    assert_eq!(smtp.count(), emails_before, "no email arrives meanwhile");
    smtp.restart().await;
    load.wait_for_payments(2, "after SMTP came back").await;

    let acknowledged = load.stop().await;
    settle_and_check(&env, &acknowledged, Mailbox::Smtp(&smtp)).await;
    system.stop().await;
}
