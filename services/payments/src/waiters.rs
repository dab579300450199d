//! Wake-ups for callers waiting on a checkout's booking.
//!
//! `GetCheckout` may be asked to wait (`wait_for_booking_ms`) while a paid
//! checkout has no booking yet, so the success page and API clients get the
//! booking in one answer instead of asking again and again. The bookings
//! consumer wakes a checkout's waiters right after it commits the booking
//! reference. A wake-up is only a hint: the waiter reads the checkout again,
//! and reads it on a timer too, because another replica of payments may be
//! the one that recorded the booking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use uuid::Uuid;

/// Checkouts someone is waiting on, each with the [`Notify`] its waiters
/// share. Entries hold weak references and leave with their last waiter.
#[derive(Clone, Debug, Default)]
pub struct BookingWaiters(Arc<Mutex<HashMap<Uuid, Weak<Notify>>>>);

impl BookingWaiters {
    /// Starts watching `checkout`; keep the [`Watch`] for as long as you wait.
    pub fn watch(&self, checkout: Uuid) -> Watch {
        let mut waiting = self.lock();
        let notify = match waiting.get(&checkout).and_then(Weak::upgrade) {
            Some(notify) => notify,
            None => {
                let notify = Arc::new(Notify::new());
                waiting.insert(checkout, Arc::downgrade(&notify));
                notify
            }
        };
        Watch {
            waiters: self.clone(),
            checkout,
            notify,
        }
    }

    /// Wakes everyone waiting on `checkout` (its booking was just recorded).
    pub fn wake(&self, checkout: Uuid) {
        let notify = self.lock().remove(&checkout).and_then(|n| n.upgrade());
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Weak<Notify>>> {
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
    checkout: Uuid,
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
                .get(&self.checkout)
                .is_some_and(|entry| Weak::ptr_eq(entry, &Arc::downgrade(&self.notify)))
        {
            waiting.remove(&self.checkout);
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
        let (booked, other) = (Uuid::new_v4(), Uuid::new_v4());
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
        let checkout = Uuid::new_v4();
        let watch = waiters.watch(checkout);
        let mut woken = pin!(watch.woken());
        woken.as_mut().enable();
        waiters.wake(checkout); // e.g. while the waiter was reading the row
        tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("the wake-up was not lost");
    }

    #[test]
    fn the_last_waiter_leaving_forgets_the_checkout() {
        let waiters = BookingWaiters::default();
        let checkout = Uuid::new_v4();
        let first = waiters.watch(checkout);
        let second = waiters.watch(checkout);
        assert_eq!(waiters.len(), 1, "one entry per checkout");
        drop(first);
        assert_eq!(waiters.len(), 1, "a waiter is still there");
        drop(second);
        assert!(waiters.is_empty(), "nothing is left behind after a timeout");
    }
}
