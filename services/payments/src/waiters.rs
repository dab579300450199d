//! Wake-ups for callers waiting on a checkout's booking.
//!
//! `GetCheckout` may be asked to wait (`wait_for_booking_ms`) while a paid
//! checkout has no booking yet, so the success page and API clients get the
//! booking in one answer instead of asking again and again. The bookings
//! consumer wakes a checkout's waiters right after it commits the booking
//! reference, handing them the checkout as its update left it, so they
//! answer without reading it again. Waits are keyed by the provider session
//! the caller asked about, so a caller can start watching before its first
//! read of the checkout. Waiters also read the checkout on a timer, because
//! another replica of payments may be the one that recorded the booking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::Notify;

use crate::store::Checkout;

/// Checkout sessions someone is waiting on, each with the [`Booked`] slot
/// its waiters share. Entries hold weak references and leave with their
/// last waiter.
#[derive(Clone, Debug, Default)]
pub struct BookingWaiters(Arc<Mutex<HashMap<String, Weak<Booked>>>>);

/// What the waiters of one checkout share: the wake-up, and the booked
/// checkout it brings.
#[derive(Debug, Default)]
struct Booked {
    notify: Notify,
    checkout: OnceLock<Checkout>,
}

impl BookingWaiters {
    /// Starts watching the checkout of `session`; keep the [`Watch`] for as
    /// long as you wait.
    pub fn watch(&self, session: &str) -> Watch {
        let mut waiting = self.lock();
        let booked = match waiting.get(session).and_then(Weak::upgrade) {
            Some(booked) => booked,
            None => {
                let booked = Arc::new(Booked::default());
                waiting.insert(session.to_owned(), Arc::downgrade(&booked));
                booked
            }
        };
        Watch {
            waiters: self.clone(),
            session: session.to_owned(),
            booked,
        }
    }

    /// Hands `checkout`, whose booking was just recorded, to everyone
    /// waiting on its session, and wakes them.
    pub fn wake(&self, checkout: Checkout) {
        let Some(session) = checkout.session_id.as_deref() else {
            return;
        };
        let booked = self.lock().remove(session).and_then(|b| b.upgrade());
        if let Some(booked) = booked {
            let _ = booked.checkout.set(checkout);
            booked.notify.notify_waiters();
        }
    }

    /// How many checkouts are being waited on (for tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Booked>>> {
        // The map stays consistent whatever a panicking holder did.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One caller's watch on a checkout.
#[derive(Debug)]
pub struct Watch {
    waiters: BookingWaiters,
    session: String,
    booked: Arc<Booked>,
}

impl Watch {
    /// Resolves at the next [`BookingWaiters::wake`] of this checkout. Call
    /// `enable` on the pinned future *before* reading the checkout, so a
    /// booking recorded between the read and the wait still wakes it.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.booked.notify.notified()
    }

    /// The booked checkout, once a wake-up brought it.
    pub fn booked(&self) -> Option<Checkout> {
        self.booked.checkout.get().cloned()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiting = self.waiters.lock();
        // Clones are only made under the lock, so a count of one here means
        // this was the checkout's last waiter.
        if Arc::strong_count(&self.booked) == 1
            && waiting
                .get(&self.session)
                .is_some_and(|entry| Weak::ptr_eq(entry, &Arc::downgrade(&self.booked)))
        {
            waiting.remove(&self.session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::time::Duration;

    /// A checkout of `session`, booked as `BMS-TEST`.
    fn booked_checkout(session: &str) -> Checkout {
        Checkout {
            id: uuid::Uuid::new_v4(),
            hold_id: uuid::Uuid::new_v4(),
            user_id: "ann".into(),
            user_email: "ann@example.com".into(),
            showtime_id: uuid::Uuid::new_v4(),
            summary: String::new(),
            line_items: String::new(),
            provider: "simulated".into(),
            session_id: Some(session.into()),
            url: None,
            status: "paid".into(),
            amount_minor: 1_000,
            currency: "EUR".into(),
            expires_at: chrono::Utc::now(),
            created_at: chrono::Utc::now(),
            booking_reference: Some("BMS-TEST".into()),
        }
    }

    #[tokio::test]
    async fn a_wake_reaches_every_waiter_of_that_checkout_only() {
        let waiters = BookingWaiters::default();
        let (booked, other) = ("cs_booked", "cs_other");
        let (first, second, bystander) = (
            waiters.watch(booked),
            waiters.watch(booked),
            waiters.watch(other),
        );
        let mut first_woken = pin!(first.woken());
        let mut second_woken = pin!(second.woken());
        let mut bystander_woken = pin!(bystander.woken());
        first_woken.as_mut().enable();
        second_woken.as_mut().enable();
        bystander_woken.as_mut().enable();

        waiters.wake(booked_checkout(booked));
        let within = Duration::from_secs(5);
        tokio::time::timeout(within, first_woken)
            .await
            .expect("the first waiter is woken");
        tokio::time::timeout(within, second_woken)
            .await
            .expect("the second waiter is woken");
        for watch in [&first, &second] {
            let checkout = watch.booked().expect("the wake-up brings the checkout");
            assert_eq!(checkout.booking_reference.as_deref(), Some("BMS-TEST"));
        }
        assert!(bystander.booked().is_none());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), bystander_woken)
                .await
                .is_err(),
            "another checkout's waiter sleeps on"
        );
    }

    #[tokio::test]
    async fn an_enabled_wait_keeps_a_wake_that_came_before_it_was_awaited() {
        let waiters = BookingWaiters::default();
        let session = "cs_waited_on";
        let watch = waiters.watch(session);
        let mut woken = pin!(watch.woken());
        woken.as_mut().enable();
        waiters.wake(booked_checkout(session)); // e.g. while the waiter was reading the row
        tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("the wake-up was not lost");
    }

    #[test]
    fn the_last_waiter_leaving_forgets_the_checkout() {
        let waiters = BookingWaiters::default();
        let session = "cs_waited_on";
        let first = waiters.watch(session);
        let second = waiters.watch(session);
        assert_eq!(waiters.len(), 1, "one entry per checkout");
        drop(first);
        assert_eq!(waiters.len(), 1, "a waiter is still there");
        drop(second);
        assert!(waiters.is_empty(), "nothing is left behind after a timeout");
    }
}
