//! What must hold after a booking scenario, checked against the services'
//! own databases: the product's promises ("never sell a seat twice, never
//! charge without a seat, never lose an email") as queries.
//!
//! Each invariant is one function that runs its queries and hands the rows
//! to a pure `judge_*` function, so the interpretation is unit-tested without
//! a database. Invariants that span services (payments and seating, seating
//! and the notifier) read each database on its own and join the answers
//! here, because no service may read another's tables.
//!
//! The pipeline behind a payment is asynchronous (payments → JetStream →
//! seating → JetStream → notifier), so [`settle`] re-checks until every
//! invariant holds or a bounded wait ends. A *safety* invariant (a seat sold
//! twice) can never be repaired by waiting, so one broken safety invariant
//! ends the wait at once; *liveness* invariants (the booking, the email)
//! get the whole wait.
//!
//! The checks read whole databases, not just the last run's rows: the bench
//! script gives each run databases of its own, and an invariant that held
//! before the run must still hold after it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::closed_loop::parse_duration_within;
use crate::target::loopback_database;

/// Violations listed per invariant before the rest are only counted.
const SHOWN: usize = 5;
/// Pause between two checks while waiting for the pipeline to settle.
const RECHECK_EVERY: Duration = Duration::from_millis(500);

/// Where the invariants are checked: each service's own database (this
/// machine only), and how long the pipeline may take to settle.
#[derive(clap::Args, Clone, Debug)]
pub struct InvariantArgs {
    /// Seating's database (seats, holds, bookings).
    #[arg(
        long,
        env = "SEATING_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bookmyseat_seating"
    )]
    pub seating_database_url: String,
    /// Payments' database (checkouts, payments, refunds).
    #[arg(
        long,
        env = "PAYMENTS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bookmyseat_payments"
    )]
    pub payments_database_url: String,
    /// The notifier's database (deliveries: one row per email).
    #[arg(
        long,
        env = "NOTIFIER_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bookmyseat_notifier"
    )]
    pub notifier_database_url: String,
    /// Longest wait, after the load ends, for every booking and email to
    /// arrive before the invariants are judged, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = parse_duration_within::<0, 600_000>)]
    pub settle: Duration,
}

/// Connections to the three databases the invariants read.
pub struct Databases {
    pub seating: PgPool,
    pub payments: PgPool,
    pub notifier: PgPool,
}

impl Databases {
    /// Connects to each database (small pools: a few queries per check).
    pub async fn connect(args: &InvariantArgs) -> anyhow::Result<Self> {
        let pool = async |url: &str, flag: &str| -> anyhow::Result<PgPool> {
            let options = loopback_database(url, flag, "loadgen-invariants")?;
            PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .with_context(|| format!("cannot connect to the database of {flag}"))
        };
        Ok(Self {
            seating: pool(&args.seating_database_url, "--seating-database-url").await?,
            payments: pool(&args.payments_database_url, "--payments-database-url").await?,
            notifier: pool(&args.notifier_database_url, "--notifier-database-url").await?,
        })
    }

    /// The invariants every booking scenario checks, whatever it did: no
    /// seat sold twice, one booking or refund per paid checkout, one
    /// confirmation email per booking.
    pub async fn every_booking_invariant(&self) -> anyhow::Result<Vec<Check>> {
        Ok(vec![
            no_seat_sold_twice(&self.seating).await?,
            every_paid_checkout_has_one_booking_or_refund(&self.payments, &self.seating).await?,
            one_confirmation_email_per_booking(&self.seating, &self.notifier).await?,
        ])
    }
}

/// Whether waiting can repair a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Once broken, broken for good: no point waiting.
    Safety,
    /// May hold only once the asynchronous pipeline has caught up.
    Liveness,
}

/// One invariant's verdict: `Ok` with what was found, or `Err` with what
/// is wrong.
#[derive(Clone, Debug)]
pub struct Check {
    pub invariant: &'static str,
    pub kind: Kind,
    pub verdict: Result<String, String>,
}

impl Check {
    fn new(invariant: &'static str, kind: Kind, verdict: Result<String, String>) -> Self {
        Self {
            invariant,
            kind,
            verdict,
        }
    }
}

/// Runs `checks` until all hold, a safety invariant breaks, or `within`
/// has passed; answers the last verdicts and how long the wait took. A
/// check that could not run (a database error) is retried within the same
/// bound.
pub async fn settle<F, Fut>(
    within: Duration,
    mut checks: F,
) -> anyhow::Result<(Vec<Check>, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<Check>>>,
{
    let started = Instant::now();
    loop {
        // A busy machine may time a query out (a pool waiting for a
        // connection); that is no verdict, so it is retried until the end.
        let verdicts = match checks().await {
            Ok(verdicts) => verdicts,
            Err(error) if started.elapsed() < within => {
                eprintln!("loadgen: checking the invariants failed, retrying: {error:#}");
                tokio::time::sleep(RECHECK_EVERY).await;
                continue;
            }
            Err(error) => return Err(error.context("checking the invariants")),
        };
        let all_hold = verdicts.iter().all(|c| c.verdict.is_ok());
        let safety_broken = verdicts
            .iter()
            .any(|c| c.kind == Kind::Safety && c.verdict.is_err());
        if all_hold || safety_broken || started.elapsed() >= within {
            return Ok((verdicts, started.elapsed()));
        }
        tokio::time::sleep(RECHECK_EVERY).await;
    }
}

/// Prints one line per invariant; an error naming every violated one.
pub fn conclude(checks: &[Check], waited: Duration) -> anyhow::Result<()> {
    println!(
        "\nInvariants (checked in the services' databases after {:.1} s of settling):",
        waited.as_secs_f64()
    );
    for check in checks {
        match &check.verdict {
            Ok(found) => println!("  ok        {}: {found}", check.invariant),
            Err(wrong) => println!("  VIOLATED  {}: {wrong}", check.invariant),
        }
    }
    let violated: Vec<String> = checks
        .iter()
        .filter_map(|c| {
            c.verdict
                .as_ref()
                .err()
                .map(|wrong| format!("{}: {wrong}", c.invariant))
        })
        .collect();
    anyhow::ensure!(
        violated.is_empty(),
        "{} invariant(s) violated:\n  {}",
        violated.len(),
        violated.join("\n  ")
    );
    Ok(())
}

/// **No seat is sold twice**, and seating's two records of a sale agree.
///
/// This is the product's first promise. The database already refuses a
/// second live sale of a seat (a partial unique index on `booking_seats`),
/// so a violation here means that guard was dropped or bypassed; the check
/// also compares `seats.booking_id` (what the seat map shows) with the live
/// `booking_seats` row (what the ticket says) and requires every live sale
/// to belong to a confirmed booking, since a seat that shows free while
/// sold, or sold to a refunded booking, is sold twice in all but name.
pub async fn no_seat_sold_twice(seating: &PgPool) -> anyhow::Result<Check> {
    let doubles: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT showtime_id::text, label, count(*) FROM booking_seats \
         WHERE released_at IS NULL GROUP BY showtime_id, label HAVING count(*) > 1",
    )
    .fetch_all(seating)
    .await
    .context("reading seating's live sales")?;
    let disagreements: Vec<(String, String)> = sqlx::query_as(
        "SELECT coalesce(s.showtime_id, live.showtime_id)::text, coalesce(s.label, live.label) \
         FROM seats s \
         FULL JOIN (SELECT bs.showtime_id, bs.label, bs.booking_id FROM booking_seats bs \
                    JOIN bookings b ON b.id = bs.booking_id \
                    WHERE bs.released_at IS NULL AND b.status = 'confirmed') live \
           ON live.showtime_id = s.showtime_id AND live.label = s.label \
         WHERE s.booking_id IS DISTINCT FROM live.booking_id",
    )
    .fetch_all(seating)
    .await
    .context("comparing seating's seats with its sales")?;
    let sold: i64 =
        sqlx::query_scalar("SELECT count(*) FROM booking_seats WHERE released_at IS NULL")
            .fetch_one(seating)
            .await?;
    Ok(Check::new(
        "no seat sold twice",
        Kind::Safety,
        judge_no_seat_sold_twice(sold, &doubles, &disagreements),
    ))
}

fn judge_no_seat_sold_twice(
    sold: i64,
    doubles: &[(String, String, i64)],
    disagreements: &[(String, String)],
) -> Result<String, String> {
    let mut wrong = Vec::new();
    if !doubles.is_empty() {
        wrong.push(format!(
            "{} seat(s) in more than one live sale: {}",
            doubles.len(),
            shown(
                doubles.iter().map(|(showtime, label, n)| {
                    format!("{label} of showtime {showtime} ×{n}")
                })
            )
        ));
    }
    if !disagreements.is_empty() {
        wrong.push(format!(
            "{} seat(s) whose seat row and confirmed sale disagree: {}",
            disagreements.len(),
            shown(
                disagreements
                    .iter()
                    .map(|(showtime, label)| format!("{label} of showtime {showtime}"))
            )
        ));
    }
    if wrong.is_empty() {
        Ok(format!("{sold} seats sold, none twice"))
    } else {
        Err(wrong.join("; "))
    }
}

/// A paid checkout as payments records it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PaidCheckout {
    pub checkout_id: String,
    pub refunds: i64,
}

/// A booking as seating records it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct BookingRecord {
    pub checkout_id: String,
    pub reference: String,
    pub status: String,
}

/// **Every paid checkout has exactly one booking or one refund**, and every
/// booking was paid for.
///
/// The second promise: never charge without a seat. Payments records the
/// money, seating the seats, and JetStream carries the news between them;
/// a lost or doubly handled `payments.succeeded`, or a rejected booking
/// whose refund never started, leaves a buyer charged with nothing (zero)
/// or holding seats and their money back (two). A booking whose checkout
/// payments never saw paid is a seat given away. A booking refunded later
/// counts as its refund: the seats went back on sale with the money.
pub async fn every_paid_checkout_has_one_booking_or_refund(
    payments: &PgPool,
    seating: &PgPool,
) -> anyhow::Result<Check> {
    let paid: Vec<PaidCheckout> = sqlx::query_as(
        "SELECT c.id::text AS checkout_id, \
                (SELECT count(*) FROM refunds r WHERE r.checkout_id = c.id) AS refunds \
         FROM checkouts c JOIN payments p ON p.checkout_id = c.id",
    )
    .fetch_all(payments)
    .await
    .context("reading payments' paid checkouts")?;
    let bookings: Vec<BookingRecord> =
        sqlx::query_as("SELECT checkout_id, reference, status FROM bookings")
            .fetch_all(seating)
            .await
            .context("reading seating's bookings")?;
    Ok(Check::new(
        "every paid checkout has exactly one booking or one refund",
        Kind::Liveness,
        judge_paid_checkouts(&paid, &bookings),
    ))
}

fn judge_paid_checkouts(
    paid: &[PaidCheckout],
    bookings: &[BookingRecord],
) -> Result<String, String> {
    let mut by_checkout: HashMap<&str, Vec<&BookingRecord>> = HashMap::new();
    for booking in bookings {
        by_checkout
            .entry(booking.checkout_id.as_str())
            .or_default()
            .push(booking);
    }
    let (mut without, mut both) = (Vec::new(), Vec::new());
    let (mut booked, mut refunded) = (0, 0);
    for checkout in paid {
        let live = by_checkout
            .get(checkout.checkout_id.as_str())
            .map_or(0, |b| b.iter().filter(|b| b.status == "confirmed").count());
        match (live, checkout.refunds) {
            (1, 0) => booked += 1,
            (0, 1) => refunded += 1,
            (0, 0) => without.push(checkout.checkout_id.clone()),
            (live, refunds) => both.push(format!(
                "{} ({live} live booking(s), {refunds} refund(s))",
                checkout.checkout_id
            )),
        }
    }
    let paid_ids: std::collections::HashSet<&str> =
        paid.iter().map(|c| c.checkout_id.as_str()).collect();
    let unpaid: Vec<String> = bookings
        .iter()
        .filter(|b| !paid_ids.contains(b.checkout_id.as_str()))
        .map(|b| format!("{} (checkout {})", b.reference, b.checkout_id))
        .collect();
    let mut wrong = Vec::new();
    if !without.is_empty() {
        wrong.push(format!(
            "{} paid checkout(s) with neither a booking nor a refund: {}",
            without.len(),
            shown(without.into_iter())
        ));
    }
    if !both.is_empty() {
        wrong.push(format!(
            "{} paid checkout(s) with more than one outcome: {}",
            both.len(),
            shown(both.into_iter())
        ));
    }
    if !unpaid.is_empty() {
        wrong.push(format!(
            "{} booking(s) whose checkout payments has not seen paid: {}",
            unpaid.len(),
            shown(unpaid.into_iter())
        ));
    }
    if wrong.is_empty() {
        Ok(format!(
            "{} paid checkouts: {booked} booked, {refunded} refunded",
            paid.len()
        ))
    } else {
        Err(wrong.join("; "))
    }
}

/// **Exactly one confirmation email per booking.**
///
/// The third promise: never lose an email, and never send one twice. The
/// notifier keeps one `deliveries` row per event that asked for an email
/// (keyed by the event's id), and the confirmation's subject carries the
/// booking reference ("Booking BMS-… confirmed: …"). A booking with no sent
/// confirmation is a lost email (or one still under way: this waits); two
/// rows for one reference mean the booking was announced twice (a
/// redelivered or republished `bookings.confirmed` with a new event id),
/// which the buyer sees as two emails; a confirmation naming no booking is
/// an email about nothing; a dead-lettered one is lost for good.
pub async fn one_confirmation_email_per_booking(
    seating: &PgPool,
    notifier: &PgPool,
) -> anyhow::Result<Check> {
    let references: Vec<String> = sqlx::query_scalar("SELECT reference FROM bookings")
        .fetch_all(seating)
        .await
        .context("reading seating's bookings")?;
    let emails: Vec<(Option<String>, String, i64)> = sqlx::query_as(
        "SELECT substring(subject FROM '^Booking (\\S+) confirmed'), status, count(*) \
         FROM deliveries WHERE kind = 'booking_confirmed' GROUP BY 1, 2",
    )
    .fetch_all(notifier)
    .await
    .context("reading the notifier's deliveries")?;
    Ok(Check::new(
        "exactly one confirmation email per booking",
        Kind::Liveness,
        judge_confirmations(&references, &emails),
    ))
}

fn judge_confirmations(
    references: &[String],
    emails: &[(Option<String>, String, i64)],
) -> Result<String, String> {
    // reference → (sent, under way, given up)
    let mut per_booking: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    let mut unnamed = 0;
    for (reference, status, count) in emails {
        let Some(reference) = reference else {
            unnamed += count;
            continue;
        };
        let slot = match status.as_str() {
            "sent" => 0,
            "failed" => 2,
            _ => 1,
        };
        per_booking.entry(reference.clone()).or_default()[slot] += count;
    }
    let (mut missing, mut twice, mut pending, mut failed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for reference in references {
        let [sent, under_way, given_up] = per_booking.remove(reference).unwrap_or_default();
        if sent + under_way + given_up > 1 {
            twice.push(format!("{reference} ×{}", sent + under_way + given_up));
        } else if given_up == 1 {
            failed.push(reference.clone());
        } else if under_way == 1 {
            pending.push(reference.clone());
        } else if sent == 0 {
            missing.push(reference.clone());
        }
    }
    let strays: Vec<String> = per_booking.into_keys().collect();
    let mut wrong = Vec::new();
    let mut say = |what: &str, list: Vec<String>| {
        if !list.is_empty() {
            wrong.push(format!(
                "{} {what}: {}",
                list.len(),
                shown(list.into_iter())
            ));
        }
    };
    say("booking(s) with no confirmation email", missing);
    say("booking(s) with more than one confirmation email", twice);
    say("confirmation(s) not sent yet", pending);
    say("confirmation(s) given up (dead-lettered)", failed);
    say(
        "confirmation(s) for a booking seating does not have",
        strays,
    );
    if unnamed > 0 {
        wrong.push(format!(
            "{unnamed} confirmation(s) whose subject names no booking"
        ));
    }
    if wrong.is_empty() {
        Ok(format!(
            "{} bookings, {} confirmation emails",
            references.len(),
            references.len()
        ))
    } else {
        Err(wrong.join("; "))
    }
}

/// What seating knows of one showtime's sales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShowtimeSales {
    /// Seats the screen has (the showtime's snapshot in seating).
    pub capacity: i64,
    /// Seats in live sales (bookings not refunded).
    pub sold: i64,
}

/// Seating's capacity and live sales of `showtime`.
pub async fn showtime_sales(seating: &PgPool, showtime: Uuid) -> anyhow::Result<ShowtimeSales> {
    let (capacity, sold): (i32, i64) = sqlx::query_as(
        "SELECT s.capacity, (SELECT count(*) FROM booking_seats bs \
                             WHERE bs.showtime_id = s.id AND bs.released_at IS NULL) \
         FROM showtimes s WHERE s.id = $1",
    )
    .bind(showtime)
    .fetch_optional(seating)
    .await
    .context("reading the showtime's sales")?
    .with_context(|| format!("seating has no showtime {showtime}"))?;
    Ok(ShowtimeSales {
        capacity: i64::from(capacity),
        sold,
    })
}

/// **Seats sold never exceed the screen's capacity.**
///
/// Under a rush every seat is fought over; overselling shows up first as
/// more seats sold than the screen has (a refund, a duplicate sale or a
/// phantom seat row would all do it), even when each single seat looks
/// fine.
pub async fn seats_sold_within_capacity(seating: &PgPool, showtime: Uuid) -> anyhow::Result<Check> {
    let sales = showtime_sales(seating, showtime).await?;
    Ok(Check::new(
        "seats sold ≤ capacity",
        Kind::Safety,
        judge_within_capacity(sales),
    ))
}

fn judge_within_capacity(sales: ShowtimeSales) -> Result<String, String> {
    if sales.sold <= sales.capacity {
        Ok(format!("{} of {} seats sold", sales.sold, sales.capacity))
    } else {
        Err(format!(
            "{} seats sold on a screen of {}",
            sales.sold, sales.capacity
        ))
    }
}

/// **When demand exceeds supply, every seat is sold once the backlog
/// drains.**
///
/// The other side of not overselling: not underselling. A rush where some
/// buyer found the showtime sold out must end with every seat that was on
/// sale sold, once payments and bookings have gone through; a seat left
/// over means a hold that was granted but never turned into a booking (a
/// lost payment event, a checkout that failed, a hold that leaked) while
/// buyers were turned away. `before` is the showtime's sales when the rush
/// began and `supply` the seats then on sale.
pub async fn sold_out_when_demand_exceeds_supply(
    seating: &PgPool,
    showtime: Uuid,
    before: ShowtimeSales,
    supply: i64,
    demand_exceeded: bool,
) -> anyhow::Result<Check> {
    let now = showtime_sales(seating, showtime).await?;
    Ok(Check::new(
        "sold out when demand exceeds supply",
        Kind::Liveness,
        judge_sold_out(before, now, supply, demand_exceeded),
    ))
}

fn judge_sold_out(
    before: ShowtimeSales,
    now: ShowtimeSales,
    supply: i64,
    demand_exceeded: bool,
) -> Result<String, String> {
    let sold = now.sold - before.sold;
    if !demand_exceeded {
        return Ok(format!(
            "demand did not exceed supply; {sold} of {supply} seats sold in the rush"
        ));
    }
    match sold.cmp(&supply) {
        std::cmp::Ordering::Equal => Ok(format!("all {supply} seats on sale were sold")),
        std::cmp::Ordering::Less => Err(format!(
            "buyers were turned away but only {sold} of the {supply} seats on sale were sold"
        )),
        std::cmp::Ordering::Greater => Err(format!(
            "{sold} seats sold in the rush, more than the {supply} on sale"
        )),
    }
}

/// The first few items, and how many more there were.
fn shown(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    let more = items.len().saturating_sub(SHOWN);
    let mut text = items.into_iter().take(SHOWN).collect::<Vec<_>>().join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        text.to_owned()
    }

    #[test]
    fn a_seat_in_two_live_sales_or_disagreeing_records_violates_no_double_sale() {
        assert!(judge_no_seat_sold_twice(120, &[], &[]).is_ok());
        let twice = judge_no_seat_sold_twice(121, &[(s("st"), s("A1"), 2)], &[]).unwrap_err();
        assert!(twice.contains("A1 of showtime st ×2"), "{twice}");
        let disagree = judge_no_seat_sold_twice(5, &[], &[(s("st"), s("B3"))]).unwrap_err();
        assert!(disagree.contains("B3"), "{disagree}");
    }

    fn paid(id: &str, refunds: i64) -> PaidCheckout {
        PaidCheckout {
            checkout_id: s(id),
            refunds,
        }
    }

    fn booking(checkout: &str, reference: &str, status: &str) -> BookingRecord {
        BookingRecord {
            checkout_id: s(checkout),
            reference: s(reference),
            status: s(status),
        }
    }

    #[test]
    fn each_paid_checkout_needs_exactly_one_booking_or_one_refund() {
        let ok = judge_paid_checkouts(
            &[paid("c1", 0), paid("c2", 1), paid("c3", 1)],
            &[
                booking("c1", "BMS-1", "confirmed"),
                // Booked, then refunded: the refund is its one outcome.
                booking("c3", "BMS-3", "refunded"),
            ],
        );
        assert_eq!(ok.as_deref(), Ok("3 paid checkouts: 1 booked, 2 refunded"));

        let nothing = judge_paid_checkouts(&[paid("c1", 0)], &[]).unwrap_err();
        assert!(
            nothing.contains("neither a booking nor a refund: c1"),
            "{nothing}"
        );

        let both = judge_paid_checkouts(&[paid("c1", 1)], &[booking("c1", "BMS-1", "confirmed")])
            .unwrap_err();
        assert!(both.contains("more than one outcome"), "{both}");
    }

    #[test]
    fn a_booking_without_a_paid_checkout_is_a_violation() {
        let unpaid = judge_paid_checkouts(&[], &[booking("c9", "BMS-9", "confirmed")]).unwrap_err();
        assert!(unpaid.contains("BMS-9"), "{unpaid}");
    }

    #[test]
    fn each_booking_needs_exactly_one_sent_confirmation() {
        let refs = [s("BMS-1"), s("BMS-2")];
        let sent = |r: &str, n| (Some(s(r)), s("sent"), n);
        assert!(judge_confirmations(&refs, &[sent("BMS-1", 1), sent("BMS-2", 1)]).is_ok());

        let missing = judge_confirmations(&refs, &[sent("BMS-1", 1)]).unwrap_err();
        assert!(
            missing.contains("no confirmation email: BMS-2"),
            "{missing}"
        );

        let twice = judge_confirmations(
            &refs,
            &[
                sent("BMS-1", 1),
                sent("BMS-2", 1),
                (Some(s("BMS-2")), s("pending"), 1),
            ],
        )
        .unwrap_err();
        assert!(twice.contains("BMS-2 ×2"), "{twice}");

        let pending = judge_confirmations(
            &refs,
            &[sent("BMS-1", 1), (Some(s("BMS-2")), s("retrying"), 1)],
        )
        .unwrap_err();
        assert!(pending.contains("not sent yet: BMS-2"), "{pending}");

        let stray = judge_confirmations(
            &refs,
            &[sent("BMS-1", 1), sent("BMS-2", 1), sent("BMS-7", 1)],
        )
        .unwrap_err();
        assert!(stray.contains("does not have: BMS-7"), "{stray}");

        let failed =
            judge_confirmations(&[s("BMS-1")], &[(Some(s("BMS-1")), s("failed"), 1)]).unwrap_err();
        assert!(failed.contains("dead-lettered"), "{failed}");
    }

    #[test]
    fn more_seats_sold_than_the_screen_has_is_a_violation() {
        let sales = |sold| ShowtimeSales {
            capacity: 120,
            sold,
        };
        assert!(judge_within_capacity(sales(120)).is_ok());
        assert!(judge_within_capacity(sales(0)).is_ok());
        assert!(judge_within_capacity(sales(121)).is_err());
    }

    #[test]
    fn a_rush_that_turned_buyers_away_must_sell_every_seat_on_sale() {
        let sales = |sold| ShowtimeSales {
            capacity: 120,
            sold,
        };
        // 10 seats were sold before the rush; 110 were on sale.
        assert!(judge_sold_out(sales(10), sales(120), 110, true).is_ok());
        let short = judge_sold_out(sales(10), sales(119), 110, true).unwrap_err();
        assert!(short.contains("only 109 of the 110"), "{short}");
        assert!(judge_sold_out(sales(10), sales(121), 110, true).is_err());
        // Without excess demand, unsold seats are fine.
        assert!(judge_sold_out(sales(0), sales(40), 120, false).is_ok());
    }

    #[test]
    fn long_lists_are_cut_short_with_a_count() {
        assert_eq!(shown((1..=3).map(|i| i.to_string())), "1, 2, 3");
        assert_eq!(
            shown((1..=8).map(|i| i.to_string())),
            "1, 2, 3, 4, 5 and 3 more"
        );
    }

    #[tokio::test]
    async fn settling_stops_at_once_when_a_safety_invariant_breaks() {
        let mut calls = 0;
        let (verdicts, _) = settle(Duration::from_secs(30), || {
            calls += 1;
            async {
                Ok(vec![
                    Check::new("safe", Kind::Safety, Err(s("broken"))),
                    Check::new("live", Kind::Liveness, Err(s("not yet"))),
                ])
            }
        })
        .await
        .unwrap();
        assert_eq!(calls, 1);
        assert!(conclude(&verdicts, Duration::ZERO).is_err());
    }

    #[tokio::test]
    async fn settling_retries_a_check_that_could_not_run() {
        let mut calls = 0;
        let (verdicts, _) = settle(Duration::from_secs(30), || {
            calls += 1;
            let answer = if calls == 1 {
                Err(anyhow::anyhow!("pool timed out"))
            } else {
                Ok(vec![Check::new("live", Kind::Liveness, Ok(s("done")))])
            };
            async move { answer }
        })
        .await
        .unwrap();
        assert_eq!(calls, 2);
        assert!(conclude(&verdicts, Duration::ZERO).is_ok());
    }

    #[tokio::test]
    async fn settling_waits_for_liveness_invariants_to_hold() {
        let mut calls = 0;
        let (verdicts, _) = settle(Duration::from_secs(30), || {
            calls += 1;
            let verdict = if calls < 3 {
                Err(s("not yet"))
            } else {
                Ok(s("done"))
            };
            async move { Ok(vec![Check::new("live", Kind::Liveness, verdict)]) }
        })
        .await
        .unwrap();
        assert_eq!(calls, 3);
        assert!(conclude(&verdicts, Duration::ZERO).is_ok());
    }
}
