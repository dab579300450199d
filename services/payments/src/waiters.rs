//! Wake-ups for callers waiting on a checkout's booking.
//!
//! `GetCheckout` may be asked to wait (`wait_for_booking_ms`) while a paid
//! checkout has no booking yet, so the success page and API clients get the
//! booking in one answer instead of asking again and again. The bookings
//! consumer wakes a checkout's waiters right after it commits the booking
//! reference. Waits are keyed by the provider session the caller asked
//! about, so a caller can start watching before its first read of the
//! checkout. A wake-up is only a hint: the waiter reads the checkout again,
//! and reads it on a timer too, because another replica of payments may be
//! the one that recorded the booking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// Checkout sessions someone is waiting on, each with the [`Notify`] its waiters
/// share. Entries hold weak references and leave with their last waiter.
#[derive(Clone, Debug, Default)]
pub struct BookingWaiters(Arc<Mutex<HashMap<String, Weak<Notify>>>>);

impl BookingWaiters {
    /// Starts watching the checkout of `session`; keep the [`Watch`] for as
    /// long as you wait.
    pub fn watch(&self, session: &str) -> Watch {
        let mut waiting = self.lock();
        let notify = match waiting.get(session).and_then(Weak::upgrade) {
            Some(notify) => notify,
            None => {
                let notify = Arc::new(Notify::new());
                waiting.insert(session.to_owned(), Arc::downgrade(&notify));
                notify
            }
        };
        Watch {
            waiters: self.clone(),
            session: session.to_owned(),
            notify,
        }
    }

    /// Wakes everyone waiting on the checkout of `session` (its booking was
    /// just recorded).
    pub fn wake(&self, session: &str) {
        let notify = self.lock().remove(session).and_then(|n| n.upgrade());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// How many checkouts are being waited on (for tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Notify>>> {
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
    notify: Arc<Notify>,
}

impl Watch {
    /// Resolves at the next [`BookingWaiters::wake`] of this checkout. Call
    /// `enable` on the pinned future *before* reading the checkout, so a
    /// booking recorded between the read and the wait still wakes it.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiting = self.waiters.lock();
        // Clones are only made under the lock, so a count of one here means
        // this was the checkout's last waiter.
        if Arc::strong_count(&self.notify) == 1
            && waiting
                .get(&self.session)
                .is_some_and(|entry| Weak::ptr_eq(entry, &Arc::downgrade(&self.notify)))
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

        waiters.wake(booked);
        let within = Duration::from_secs(5);
        tokio::time::timeout(within, first_woken)
            .await
            .expect("the first waiter is woken");
        tokio::time::timeout(within, second_woken)
            .await
            .expect("the second waiter is woken");
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
        waiters.wake(session); // e.g. while the waiter was reading the row
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
