//! Bandwidth limit (`-b/--bandwidth`): a shared virtual-time budget. Each transfer reserves its bytes
//! before it starts and waits until the budget allows, so the average rate of the agent stays at or
//! below the limit (lhsmtool_posix keeps an average too). A single transfer is not slowed down
//! mid-stream: the limit is enforced between transfers.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A shared bytes-per-second budget.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: u64,
    next_free: Mutex<Option<Instant>>,
}

impl Throttle {
    /// `bytes_per_sec` must be > 0 (the CLI refuses 0 as "unlimited" before getting here).
    pub fn new(bytes_per_sec: u64) -> Throttle {
        Throttle {
            bytes_per_sec: bytes_per_sec.max(1),
            next_free: Mutex::new(None),
        }
    }

    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    /// Reserves `bytes` and waits until the transfer may start.
    pub async fn take(&self, bytes: u64) {
        let start = {
            let mut next = self.next_free.lock().await;
            let now = Instant::now();
            let start = match *next {
                Some(t) if t > now => t,
                _ => now,
            };
            let span = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
            *next = Some(start + span);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn transfers_are_spaced_by_the_budget() {
        let t = Throttle::new(1000);
        let t0 = Instant::now();
        t.take(2000).await; // starts at once, occupies 2 s of budget
        assert_eq!(Instant::now() - t0, Duration::ZERO);
        t.take(500).await; // must wait for the first reservation
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        t.take(1).await;
        assert_eq!(Instant::now() - t0, Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_banked() {
        let t = Throttle::new(1000);
        t.take(1000).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        t.take(1000).await;
        t.take(1).await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
    }
}
