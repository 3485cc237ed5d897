//! A shared bandwidth limit for transfers (the copytool's `-b/--bandwidth`).
//!
//! Why here: only the upload and download loops know when a block or range is about to move, so
//! only they can hold a limit *during* one large transfer. One [`RateLimiter`] in an `Arc` is
//! handed to every transfer of an agent ([`crate::UploadOptions::rate_limit`],
//! [`crate::DownloadOptions::rate_limit`]); each block or range calls [`RateLimiter::acquire`] with
//! its length before it is read or requested, so all transfers together draw from one budget.
//!
//! The budget is a token bucket that starts empty and holds no reserve (no burst): bytes are paid
//! for before they move, at `rate` bytes per second of the limiter's clock (tokio's clock, so tests
//! run on paused virtual time). Requests are served in arrival order; each reserves the next
//! `n / rate` seconds of the schedule and is granted when its reservation ends. So, whatever the
//! number of concurrent transfers, the bytes granted in any interval starting from idle never
//! exceed `rate x interval`, and idle time is not banked. A request whose future is dropped before
//! its grant (a cancelled transfer) gives its slot back if nothing was reserved after it.
//!
//! `set_rate` (a policy reload) takes effect at once, also for requests already waiting: they are
//! woken and re-scheduled at the new rate (raising the limit or lifting it releases them sooner).
//! An unlimited limiter (rate 0) grants without waiting or locking: one atomic load and one add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Longest single wait one request may reserve. Only reached with absurd settings (e.g. 4 GiB
/// blocks at 1 B/s); it keeps `Instant` arithmetic and tokio's timer in range.
const MAX_SPAN: Duration = Duration::from_secs(365 * 24 * 3600);

/// A bytes-per-second budget shared by all transfers holding it. See the module docs.
#[derive(Debug)]
pub struct RateLimiter {
    /// Bytes per second; 0 = unlimited. Read without the lock on the unlimited fast path.
    rate: AtomicU64,
    /// Total bytes granted so far (also when unlimited): what the limiter let through.
    granted: AtomicU64,
    schedule: Mutex<Schedule>,
    /// Wakes waiting requests when the rate changes.
    rate_changed: Notify,
}

#[derive(Debug, Default)]
struct Schedule {
    /// Bumped by every rate change; reservations of an older generation are void.
    generation: u64,
    /// When the last reservation ends; `None` or a past instant means the budget is idle.
    next_free: Option<Instant>,
}

/// One reservation in the schedule, given back when its request is dropped before the grant.
struct Reservation<'a> {
    limiter: &'a RateLimiter,
    generation: u64,
    start: Instant,
    end: Instant,
    armed: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut s = self.limiter.lock();
        // Only the last reservation can be taken back: one after it already counts on its slot.
        if s.generation == self.generation && s.next_free == Some(self.end) {
            s.next_free = Some(self.start);
        }
    }
}

impl RateLimiter {
    /// A limiter at `bytes_per_sec`; 0 means unlimited.
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            rate: AtomicU64::new(bytes_per_sec),
            granted: AtomicU64::new(0),
            schedule: Mutex::new(Schedule::default()),
            rate_changed: Notify::new(),
        }
    }

    /// A limiter that never waits (it still counts what it grants).
    pub fn unlimited() -> RateLimiter {
        RateLimiter::new(0)
    }

    /// The current rate in bytes per second; `None` when unlimited.
    pub fn rate(&self) -> Option<u64> {
        match self.rate.load(Ordering::Acquire) {
            0 => None,
            r => Some(r),
        }
    }

    /// Changes the rate (0 = unlimited) for every holder of this limiter, including requests
    /// already waiting: the old schedule is dropped and they are re-scheduled at the new rate.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        {
            let mut s = self.lock();
            if self.rate.load(Ordering::Acquire) == bytes_per_sec {
                return;
            }
            self.rate.store(bytes_per_sec, Ordering::Release);
            s.generation = s.generation.wrapping_add(1);
            s.next_free = None;
        }
        self.rate_changed.notify_waiters();
    }

    /// Total bytes granted by [`acquire`](Self::acquire) since the limiter was made.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// Waits until `bytes` may be moved under the limit, then counts them as granted.
    /// Cancel-safe: dropping the future before it completes grants nothing.
    pub async fn acquire(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        loop {
            // Registered before the schedule is read, so a rate change in between is not missed.
            let changed = self.rate_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();

            let Some(mut reservation) = self.reserve(bytes) else {
                break; // unlimited
            };
            tokio::select! {
                () = tokio::time::sleep_until(reservation.end) => {
                    reservation.armed = false;
                    break;
                }
                // The rate changed: the reservation is void (the schedule was reset); retry.
                () = &mut changed => reservation.armed = false,
            }
        }
        self.granted.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Reserves the next `bytes / rate` of the schedule; `None` when unlimited.
    fn reserve(&self, bytes: u64) -> Option<Reservation<'_>> {
        if self.rate.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut s = self.lock();
        // Re-read under the lock: `set_rate` changes rate and schedule together.
        let rate = self.rate.load(Ordering::Acquire);
        if rate == 0 {
            return None;
        }
        let now = Instant::now();
        let start = match s.next_free {
            Some(t) if t > now => t,
            _ => now,
        };
        let end = start + span(bytes, rate);
        s.next_free = Some(end);
        Some(Reservation {
            limiter: self,
            generation: s.generation,
            start,
            end,
            armed: true,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        // The schedule is valid after any panic (two plain assignments), so poisoning is ignored.
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long `bytes` take at `rate` bytes per second, rounded up to the nanosecond (never faster
/// than the rate), at most [`MAX_SPAN`].
fn span(bytes: u64, rate: u64) -> Duration {
    let nanos = (u128::from(bytes) * 1_000_000_000).div_ceil(u128::from(rate.max(1)));
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .unwrap_or(MAX_SPAN)
        .min(MAX_SPAN)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn elapsed_since(t0: Instant) -> Duration {
        Instant::now() - t0
    }

    #[tokio::test(start_paused = true)]
    async fn acquiring_n_bytes_waits_n_over_rate() {
        let l = RateLimiter::new(1000);
        let t0 = Instant::now();
        l.acquire(2000).await;
        assert_eq!(elapsed_since(t0), Duration::from_secs(2));
        l.acquire(500).await;
        assert_eq!(elapsed_since(t0), Duration::from_millis(2500));
        assert_eq!(l.granted(), 2500);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_banked() {
        let l = RateLimiter::new(1000);
        l.acquire(1000).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        l.acquire(1000).await;
        assert_eq!(elapsed_since(t0), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_acquirers_share_one_budget_in_arrival_order() {
        let l = Arc::new(RateLimiter::new(1000));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire(500).await;
                Instant::now() - t0
            }));
            // Let the task reserve before the next one arrives.
            tokio::task::yield_now().await;
        }
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap());
        }
        assert_eq!(
            done,
            [500, 1000, 1500, 2000].map(Duration::from_millis).to_vec(),
            "4 x 500 B at 1000 B/s: one after the other, 2 s in all"
        );
        assert_eq!(l.granted(), 2000);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits_and_still_counts() {
        let l = RateLimiter::unlimited();
        assert_eq!(l.rate(), None);
        let t0 = Instant::now();
        for _ in 0..1000 {
            l.acquire(u64::MAX / 2000).await;
        }
        assert_eq!(elapsed_since(t0), Duration::ZERO);
        assert_eq!(l.granted(), (u64::MAX / 2000) * 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_bytes_never_wait() {
        let l = RateLimiter::new(1);
        let t0 = Instant::now();
        l.acquire(0).await;
        assert_eq!(elapsed_since(t0), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn lifting_the_limit_releases_waiting_requests() {
        let l = Arc::new(RateLimiter::new(1));
        let t0 = Instant::now();
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move {
                l.acquire(1_000_000).await; // 11.5 days at 1 B/s
                Instant::now() - t0
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        l.set_rate(0);
        assert_eq!(waiter.await.unwrap(), Duration::from_secs(5));
        assert_eq!(l.granted(), 1_000_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_reschedules_waiting_requests() {
        let l = Arc::new(RateLimiter::new(100));
        let t0 = Instant::now();
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move {
                l.acquire(10_000).await; // 100 s at 100 B/s
                Instant::now() - t0
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        l.set_rate(10_000); // now 1 s from the change
        assert_eq!(l.rate(), Some(10_000));
        assert_eq!(waiter.await.unwrap(), Duration::from_secs(2));
        // And a slower rate applies to what comes next.
        l.set_rate(1000);
        let t1 = Instant::now();
        l.acquire(1000).await;
        assert_eq!(elapsed_since(t1), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_request_gives_its_slot_back() {
        let l = RateLimiter::new(1000);
        let t0 = Instant::now();
        // Cancelled after 100 ms of a 10 s reservation.
        let r = tokio::time::timeout(Duration::from_millis(100), l.acquire(10_000)).await;
        assert!(r.is_err());
        assert_eq!(l.granted(), 0);
        l.acquire(1000).await;
        assert_eq!(elapsed_since(t0), Duration::from_millis(1100));
    }

    #[test]
    fn span_rounds_up_and_is_capped() {
        assert_eq!(span(1, 3), Duration::from_nanos(333_333_334));
        assert_eq!(span(8 << 20, 8 << 20), Duration::from_secs(1));
        assert_eq!(span(u64::MAX, 1), MAX_SPAN);
    }
}
