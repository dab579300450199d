//! A visitor buying seats through the gateway's JSON API, one step per
//! method, as the e2e test `a_visitor_signs_up_books_seats_and_gets_the_
//! confirmation_email` does it: look at the seat map, hold seats, open a
//! checkout, pay on payments' simulated page, and poll the checkout until
//! seating's booking reference shows up. Shared by `rush` and `booking`.
//!
//! Each step answers `Result<_, String>` like the closed-loop workers do: the
//! message says which step failed and how, and goes to the error tally. A
//! seat taken by someone else is not an error but [`Held::Refused`].
//!
//! The simulated page lives on payments' own HTTP port, named by the
//! checkout's `url`; that address passes the same loopback guard as every
//! flag ([`Target::loopback`]) before anything is sent to it.

use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use hyper::body::Bytes;

use crate::http1::Http1Connection;
use crate::programme::seat_map_path;
use crate::sign_in;
use crate::target::Target;

/// How long one sign-in request may take: the gateway hashes the password
/// with argon2 (by design slow, slower still in a debug build on a busy
/// machine), and sign-ins happen before any clock starts.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(60);
/// Sign-in tries per buyer: a timed-out sign-up may still have created the
/// account, which the next try then signs in to.
const SIGN_IN_TRIES: u32 = 3;

/// Tries of one gateway request that answers `503 Service Unavailable`
/// (the API's "a part of BookMySeat is not answering; retry") or nothing.
const TRIES_WHEN_UNAVAILABLE: u32 = 5;
/// The pause before the first retry; it doubles after each.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How often a buyer asks whether the booking exists yet.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// `wait_ms` of each checkout status call: within the gateway's cap (half
/// its 5 s upstream timeout).
const BOOKING_WAIT: Duration = Duration::from_millis(2_000);

/// A signed-in visitor with its own connections (one to the gateway, one to
/// payments' simulated page once a checkout named it).
pub struct Buyer {
    gateway: Http1Connection,
    payments: Option<(String, Http1Connection)>,
    session: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    /// Requests sent again after a `503 Service Unavailable` or no answer.
    retried: u64,
}

/// How a hold request ended, when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// The seats are the buyer's: the hold's id.
    Granted(String),
    /// A seat was taken first (HTTP 409): expected under contention.
    Refused,
}

/// An open checkout: the provider's session id and where to pay.
#[derive(Clone, Debug)]
pub struct Checkout {
    pub session_id: String,
    /// The simulated page's `/pay` address, split into its server and path.
    pay_at: Target,
    pay_path: Uri,
}

impl Buyer {
    /// Signs bench user `name` in (registering it the first time); its
    /// requests after that may take `timeout` each.
    pub async fn sign_in(gateway: &Target, timeout: Duration, name: &str) -> anyhow::Result<Self> {
        let mut connection = Http1Connection::new(gateway, SIGN_IN_TIMEOUT, false)?;
        let mut tries = 1;
        let session = loop {
            match sign_in::gateway_session(&mut connection, name).await {
                Ok(session) => break session,
                Err(error) if tries < SIGN_IN_TRIES => {
                    eprintln!("loadgen: {error:#}; trying again");
                    tries += 1;
                }
                Err(error) => return Err(error),
            }
        };
        connection.set_timeout(timeout);
        Ok(Self {
            gateway: connection,
            payments: None,
            session,
            timeout,
            retried: 0,
        })
    }

    /// The labels of the showtime's seats anyone may hold now (neither held,
    /// booked nor blocked), in the seat map's order.
    pub async fn available_seats(&mut self, showtime_id: &str) -> Result<Vec<String>, String> {
        let uri = parse_uri(&seat_map_path(showtime_id))?;
        let (status, body) = self
            .send_retrying(Method::GET, &uri, None)
            .await
            .map_err(|e| format!("seat map: {e}"))?;
        if status != StatusCode::OK {
            return Err(format!("seat map: HTTP {status}"));
        }
        available_labels(&body).map_err(|e| format!("seat map: {e}"))
    }

    /// `POST /api/v1/showtimes/{id}/holds` for `seats`.
    pub async fn hold(&mut self, showtime_id: &str, seats: &[String]) -> Result<Held, String> {
        let uri = parse_uri(&format!("/api/v1/showtimes/{showtime_id}/holds"))?;
        let body = serde_json::to_vec(&serde_json::json!({ "seats": seats }))
            .map_err(|e| e.to_string())?;
        // Retrying a hold is safe: a user's new hold on a showtime replaces
        // its previous one, so a hold granted but not answered is undone.
        let (status, answer) = self
            .send_retrying(Method::POST, &uri, Some(Bytes::from(body)))
            .await
            .map_err(|e| format!("hold: {e}"))?;
        match status {
            StatusCode::CREATED => json_str(&answer, "id", "hold").map(Held::Granted),
            StatusCode::CONFLICT => Ok(Held::Refused),
            other => Err(format!("hold: HTTP {other}")),
        }
    }

    /// `POST /api/v1/holds/{id}/checkout`: payments prices the seats and,
    /// with no Stripe key, answers its simulated page.
    pub async fn check_out(&mut self, hold_id: &str) -> Result<Checkout, String> {
        let uri = parse_uri(&format!("/api/v1/holds/{hold_id}/checkout"))?;
        // Retrying is safe: a hold has one checkout, answered again.
        let (status, answer) = self
            .send_retrying(Method::POST, &uri, None)
            .await
            .map_err(|e| format!("checkout: {e}"))?;
        if status != StatusCode::CREATED {
            return Err(format!("checkout: HTTP {status}"));
        }
        let session_id = json_str(&answer, "session_id", "checkout")?;
        let url = json_str(&answer, "url", "checkout")?;
        let (pay_at, pay_path) = pay_address(&url)?;
        Ok(Checkout {
            session_id,
            pay_at,
            pay_path,
        })
    }

    /// Pays on the simulated page (`POST {url}/pay`), which answers
    /// `303 See Other` towards the gateway's success page.
    pub async fn pay(&mut self, checkout: &Checkout) -> Result<(), String> {
        let authority = &checkout.pay_at.authority;
        let connection = match &mut self.payments {
            Some((known, connection)) if known == authority => connection,
            _ => {
                let connection = Http1Connection::new(&checkout.pay_at, self.timeout, false)
                    .map_err(|e| format!("pay: {e}"))?;
                &mut self.payments.insert((authority.clone(), connection)).1
            }
        };
        let (status, _) = connection
            .send(Method::POST, &checkout.pay_path, &[], None)
            .await
            .map_err(|e| format!("pay: {e}"))?;
        if status != StatusCode::SEE_OTHER {
            return Err(format!("pay: HTTP {status}"));
        }
        Ok(())
    }

    /// Polls `GET /api/v1/checkouts/{session}` until it names the booking
    /// (its reference), for at most `within`. A checkout that ended without
    /// one (refunded: the seats were lost; expired; failed) is an error.
    pub async fn await_booking(
        &mut self,
        checkout: &Checkout,
        within: Duration,
    ) -> Result<String, String> {
        // Payments answers as soon as the booking is recorded, so one call
        // usually suffices; a browser's success page does the same.
        let uri = parse_uri(&format!(
            "/api/v1/checkouts/{}?wait_ms={}",
            checkout.session_id,
            BOOKING_WAIT.as_millis()
        ))?;
        let deadline = Instant::now() + within;
        loop {
            let (status, answer) = self
                .send_retrying(Method::GET, &uri, None)
                .await
                .map_err(|e| format!("checkout status: {e}"))?;
            if status != StatusCode::OK {
                return Err(format!("checkout status: HTTP {status}"));
            }
            let value: serde_json::Value = serde_json::from_slice(&answer)
                .map_err(|e| format!("checkout status: not JSON: {e}"))?;
            if let Some(reference) = value["booking_reference"].as_str() {
                return Ok(reference.to_owned());
            }
            match value["status"].as_str() {
                Some("open" | "processing" | "paid") => {}
                other => return Err(format!("checkout ended as {other:?} without a booking")),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no booking within {} s of paying",
                    within.as_secs_f64()
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Signs in one buyer per name, `parallel` at a time (the gateway hashes
/// each password with argon2 on its blocking pool; more at once only
/// queues there), in the order of `names`.
pub async fn sign_in_all(
    gateway: &Target,
    timeout: Duration,
    names: Vec<String>,
    parallel: usize,
) -> anyhow::Result<Vec<Buyer>> {
    use futures::{StreamExt as _, TryStreamExt as _};
    futures::stream::iter(names)
        .map(|name| async move { Buyer::sign_in(gateway, timeout, &name).await })
        .buffered(parallel.max(1))
        .try_collect()
        .await
}

impl Buyer {
    /// Requests sent again so far after a 503 or no answer.
    pub fn retried(&self) -> u64 {
        self.retried
    }

    /// A gateway request with the session, sent again (with a growing
    /// pause) while the gateway answers 503 or nothing, as its API asks;
    /// the last answer or failure after [`TRIES_WHEN_UNAVAILABLE`] tries.
    async fn send_retrying(
        &mut self,
        method: Method,
        uri: &Uri,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut pause = FIRST_RETRY_PAUSE;
        let mut tries = 1;
        loop {
            let answer = self
                .gateway
                .send(method.clone(), uri, &self.session, body.clone())
                .await;
            let unavailable = match &answer {
                Ok((status, _)) => *status == StatusCode::SERVICE_UNAVAILABLE,
                Err(_) => true,
            };
            if !unavailable || tries == TRIES_WHEN_UNAVAILABLE {
                return match answer {
                    Ok((status, _)) if status == StatusCode::SERVICE_UNAVAILABLE => {
                        Err(format!("HTTP {status} after {tries} tries"))
                    }
                    Err(e) => Err(format!("{e} (after {tries} tries)")),
                    ok => ok,
                };
            }
            self.retried += 1;
            tries += 1;
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
}

/// The parts of a seat map (`GET /api/v1/showtimes/{id}/seats`) a buyer
/// looks at; serde skips the rest without building it.
#[derive(serde::Deserialize)]
struct SeatMap<'a> {
    #[serde(borrow, default)]
    seats: Vec<MapSeat<'a>>,
}

#[derive(serde::Deserialize)]
struct MapSeat<'a> {
    #[serde(borrow)]
    label: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    state: std::borrow::Cow<'a, str>,
}

/// The available seats of a seat map's JSON body.
///
/// Read into borrowed fields rather than a `serde_json::Value`: a rush
/// parses a thousand 120-seat maps at once on the same two cores as the
/// services it measures, and building each as a tree of maps made loadgen
/// about a third of the machine's busy time in that second.
pub fn available_labels(body: &[u8]) -> Result<Vec<String>, String> {
    serde_json::from_slice(body)
        .map(available_in)
        .map_err(|e| format!("not a seat map: {e}"))
}

/// The available seats of a seat map already parsed.
pub fn available_in_parsed(map: &serde_json::Value) -> Result<Vec<String>, String> {
    serde::Deserialize::deserialize(map)
        .map(available_in)
        .map_err(|e| format!("not a seat map: {e}"))
}

fn available_in(map: SeatMap<'_>) -> Vec<String> {
    map.seats
        .into_iter()
        .filter(|seat| seat.state == "available")
        .map(|seat| seat.label.into_owned())
        .collect()
}

/// Splits the simulated page's URL into payments' server (this machine
/// only) and the path of its `/pay` action.
fn pay_address(url: &str) -> Result<(Target, Uri), String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("checkout url {url:?}: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("checkout url {url:?} is not absolute"));
    };
    let target = Target::loopback(&format!("{scheme}://{authority}"), "the checkout's url")
        .map_err(|e| format!("{e:#}"))?;
    let path = parse_uri(&format!("{}/pay", uri.path().trim_end_matches('/')))?;
    Ok((target, path))
}

fn parse_uri(path: &str) -> Result<Uri, String> {
    path.parse().map_err(|e| format!("{path:?}: {e}"))
}

fn json_str(body: &[u8], field: &str, step: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("{step}: not JSON: {e}"))?;
    value[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{step}: no {field} in the answer"))
}

/// A small random source per buyer (xorshift64): no shared state between
/// workers, reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A seed that differs per worker and per run.
    pub fn seed_for(worker: usize) -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (worker as u64 + 1) ^ (u64::from(nanos) << 20)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// 1 to `max` distinct seats drawn at random from `available` (fewer when
/// fewer are left; none when none are): what a visitor clicks on a busy
/// seat map.
pub fn pick_seats(available: &[String], max: usize, rng: &mut Rng) -> Vec<String> {
    if available.is_empty() || max == 0 {
        return Vec::new();
    }
    let count = (1 + rng.below(max)).min(available.len());
    // A partial Fisher–Yates shuffle of the indices: the first `count`.
    let mut indices: Vec<usize> = (0..available.len()).collect();
    for i in 0..count {
        let j = i + rng.below(indices.len() - i);
        indices.swap(i, j);
    }
    indices[..count]
        .iter()
        .map(|&i| available[i].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("A{i}")).collect()
    }

    #[test]
    fn picked_seats_are_distinct_available_and_within_the_maximum() {
        let available = labels(12);
        let mut rng = Rng::new(7);
        let mut sizes = [0usize; 5];
        for _ in 0..2_000 {
            let picked = pick_seats(&available, 4, &mut rng);
            assert!((1..=4).contains(&picked.len()), "{picked:?}");
            let mut unique = picked.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), picked.len(), "a seat twice: {picked:?}");
            assert!(picked.iter().all(|s| available.contains(s)));
            sizes[picked.len()] += 1;
        }
        // Every size from 1 to 4 comes up.
        assert!(sizes[1..].iter().all(|&n| n > 0), "{sizes:?}");
    }

    #[test]
    fn picking_takes_what_is_left_and_nothing_from_a_sold_out_map() {
        let mut rng = Rng::new(3);
        assert!(pick_seats(&[], 4, &mut rng).is_empty());
        for _ in 0..100 {
            assert_eq!(pick_seats(&labels(1), 4, &mut rng), vec!["A1".to_owned()]);
        }
        let two = pick_seats(&labels(2), 2, &mut rng);
        assert!(two.len() <= 2 && !two.is_empty());
    }

    #[test]
    fn only_available_seats_of_a_seat_map_count() {
        let map = serde_json::json!({ "showtime_id": "x", "version": 3, "seats": [
            { "label": "A1", "row": "A", "number": 1, "state": "available", "mine": false },
            { "label": "A2", "state": "held" },
            { "label": "A3", "state": "booked" },
            { "label": "A4", "state": "blocked" },
            { "label": "A5", "state": "available" },
        ]});
        let body = serde_json::to_vec(&map).unwrap();
        assert_eq!(available_labels(&body).unwrap(), ["A1", "A5"]);
        assert_eq!(available_in_parsed(&map).unwrap(), ["A1", "A5"]);
        assert!(available_labels(b"{}").unwrap().is_empty());
        assert!(available_labels(b"<html>").is_err());
        assert!(available_labels(br#"{"seats": [{"label": "A1"}]}"#).is_err());
    }

    #[test]
    fn the_pay_address_is_the_simulated_page_plus_pay_on_this_machine_only() {
        let (target, path) =
            pay_address("http://127.0.0.1:8183/simulated-checkout/sim_abc").unwrap();
        assert_eq!(target.authority, "127.0.0.1:8183");
        assert_eq!(path, "/simulated-checkout/sim_abc/pay");
        assert!(pay_address("http://203.0.113.9/simulated-checkout/x").is_err());
        assert!(pay_address("/simulated-checkout/x").is_err());
    }
}
