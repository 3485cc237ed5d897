//! How many auto-export archive requests the daemon keeps handed to the coordinators: about
//! `queue_target` seconds of work at the rate they are finishing, never fewer than
//! `min_in_flight`, never more than `max_in_flight` (issue 17: freshness beside a bulk export).
//!
//! Why: a change made while a bulk export runs joins the running iteration ahead of its backlog
//! (`Engine::join_running`), but behind every request already handed to a coordinator, which
//! Lustre serves in the order of its action catalog (`mdt_coordinator.c`: `mdt_cdt_waiting_cb`
//! walks the catalog from the start and takes WAITING records until `hsm.max_requests`). With a
//! fixed bound the queue ahead of a new change is the bound itself, whatever the rate: measured
//! beside 4 x 1 GiB + 10,000 x 64 KiB (BENCHMARKS.md, "Freshness"), 256 requests at the 43-53
//! small files/s the store sustained put close() -> commit at p99 11.8 s, and 64 still at 4.1 s
//! when the 1 GiB uploads slowed the small files down.
//!
//! Little's law: requests outstanding = completion rate x the time each spends from its request
//! to its end. Keeping `outstanding <= rate x target` keeps that time, and so the wait of a new
//! change behind the queue, near `target`, whatever the store's pace. While a request is served
//! faster than `target` the bound grows with the rate it lets through (each window of completions
//! raises the next bound by `target / service time`) until the copytools, not the bound, limit
//! the rate; when the store slows down the rate falls and the bound follows it within
//! [`RATE_SPAN_MS`] (requests already handed out cannot be taken back: they are why the target
//! is short). The floor keeps the copytools busy where the rate says little: at the start of a
//! busy period (nothing measured yet: the bound starts at the floor) and with large files, whose
//! copy alone outlasts the target (a 1 GiB file took 33-72 s here), which would otherwise shrink
//! the bound to a request or two.
//!
//! Deterministic: every method takes `now` (Unix ms); the engine calls [`RequestWindow::completed`]
//! for each archive end of its own requests and [`RequestWindow::sending`] before it sends.
//! Without new completions the bound never grows as time passes (the rate only falls), so the
//! engine's loop needs no timer of its own for it.

use std::collections::VecDeque;

/// Completions are counted in buckets of this many ms.
pub const BUCKET_MS: u64 = 100;
/// The rate is measured over the completions of the last this many ms: long enough to hold
/// ~100 completions at the 43-53 small files/s measured beside a bulk export (the bound does not
/// jump with each batch of changelog records the reader delivers), short enough that a store
/// that slows down shrinks the bound within two seconds.
pub const RATE_SPAN_MS: u64 = 2_000;
/// A busy period younger than this is measured as if it were this old: a handful of
/// completions in its first milliseconds do not make a rate.
pub const MIN_SPAN_MS: u64 = 500;

/// A completion is known to the daemon only when its CL_HSM record is read, and a Lustre client's
/// changelog reader reads in passes a second apart (`chlg_load`, mdc_changelog.c): requests that
/// ended but are not reported yet still look outstanding, up to the rate times the longest delay
/// between a record's time (`cr_time`) and its reading, right before the next pass. That delay is
/// added to the target, so the queue at the coordinator never runs dry between two passes; a
/// delay above this (clocks apart, a daemon catching up on a backlog) counts as this.
pub const MAX_REPORT_DELAY_MS: u64 = 2_000;

/// Default of `autoexport.queue_target`: requests outstanding are about this many ms of work.
/// Measured beside 4 x 1 GiB + 10,000 x 64 KiB (BENCHMARKS.md, "Freshness"): the store's rate
/// swung between 26 and 131 small files/s from one second to the next, so requests handed out
/// at one rate may be served at a quarter of it; 0.5 s of work is then still within the 2 s
/// p99 target for close() -> commit, where 1 s gave p99 2.3-2.8 s. At those rates 0.5 s is 13-65
/// requests, about the copytool's 32 slots: the bulk export was no slower (10,004 files in
/// 75-104 s against 107-160 s with 1 s and 157 s with the fixed 256).
pub const DEFAULT_QUEUE_TARGET_MS: u64 = 500;

/// Default of `autoexport.min_in_flight`, and the bound before any rate is measured: one
/// copytool's default `max_actions` (32), half the `hsm.max_requests` of 64 the admin guide
/// recommends. Up to the copytools' slots an outstanding request is being copied, not queued (the
/// coordinator hands out up to `hsm.max_requests` at once), so the floor costs a new change no
/// queue; below it, large files (a 1 GiB file took 33-72 s here, far longer than the target)
/// would leave slots idle.
pub const DEFAULT_MIN_IN_FLIGHT: usize = 32;

/// The measured completion rate and the bound it gives. Not saved: after a restart the bound
/// starts at the floor and grows with the first completions.
#[derive(Debug, Clone, Default)]
pub struct RequestWindow {
    /// (bucket number = ms / [`BUCKET_MS`], completions in it, the longest of their report
    /// delays in ms), oldest first, the last [`RATE_SPAN_MS`] only.
    buckets: VecDeque<(u64, u64, u64)>,
    /// Start of the busy period: the first request sent after no completion for
    /// [`RATE_SPAN_MS`] (the rate is not diluted by the idle time before it).
    busy_since_ms: u64,
}

impl RequestWindow {
    /// One of our requests ended (exported or not: either way a copytool slot is free), and
    /// its end was reported `delay_ms` after it happened.
    pub fn completed(&mut self, now: u64, delay_ms: u64) {
        let b = now / BUCKET_MS;
        let d = delay_ms.min(MAX_REPORT_DELAY_MS);
        match self.buckets.back_mut() {
            // A clock that stepped back counts into the newest bucket.
            Some((last, n, longest)) if *last >= b => {
                *n += 1;
                *longest = (*longest).max(d);
            }
            _ => self.buckets.push_back((b, 1, d)),
        }
        self.expire(now);
    }

    /// The longest delay, in ms, between the end of a request and the daemon learning of it,
    /// over the completions of the last [`RATE_SPAN_MS`].
    pub fn report_delay_ms(&self, now: u64) -> u64 {
        let oldest = now.saturating_sub(RATE_SPAN_MS) / BUCKET_MS;
        self.buckets
            .iter()
            .filter(|(b, _, _)| *b >= oldest)
            .map(|(_, _, d)| *d)
            .max()
            .unwrap_or(0)
    }

    /// Requests are about to be sent while `active` are outstanding: the first after an idle
    /// span starts a busy period.
    pub fn sending(&mut self, active: usize, now: u64) {
        if active == 0 && self.completions(now) == 0 {
            self.busy_since_ms = now;
        }
    }

    fn expire(&mut self, now: u64) {
        let oldest = now.saturating_sub(RATE_SPAN_MS) / BUCKET_MS;
        while self.buckets.front().is_some_and(|(b, _, _)| *b < oldest) {
            self.buckets.pop_front();
        }
    }

    /// Completions within the last [`RATE_SPAN_MS`] before `now`.
    fn completions(&self, now: u64) -> u64 {
        let oldest = now.saturating_sub(RATE_SPAN_MS) / BUCKET_MS;
        self.buckets
            .iter()
            .filter(|(b, _, _)| *b >= oldest)
            .map(|(_, n, _)| n)
            .sum()
    }

    /// The span the completions are divided by: the busy period's age, within
    /// [`MIN_SPAN_MS`]..=[`RATE_SPAN_MS`].
    fn span_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.busy_since_ms)
            .clamp(MIN_SPAN_MS, RATE_SPAN_MS)
    }

    /// Completions per second measured at `now`.
    pub fn rate(&self, now: u64) -> f64 {
        self.completions(now) as f64 * 1000.0 / self.span_ms(now) as f64
    }

    /// Requests that may be outstanding at `now`: `rate x (target_ms + report delay)`, at least
    /// `floor`, at most `cap` (which wins over the floor). `target_ms` 0: always `cap` (no
    /// adaptation).
    pub fn limit(&self, now: u64, target_ms: u64, floor: usize, cap: usize) -> usize {
        let cap = cap.max(1);
        if target_ms == 0 {
            return cap;
        }
        let by_rate = self
            .completions(now)
            .saturating_mul(target_ms + self.report_delay_ms(now))
            .div_ceil(self.span_ms(now));
        usize::try_from(by_rate)
            .unwrap_or(usize::MAX)
            .max(floor.max(1))
            .min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000;

    #[test]
    fn nothing_measured_is_the_floor_and_the_cap_wins_over_it() {
        let w = RequestWindow::default();
        assert_eq!(w.limit(T0, 1_000, 32, 256), 32);
        assert_eq!(w.limit(T0, 1_000, 32, 8), 8);
        assert_eq!(w.limit(T0, 0, 32, 256), 256, "target 0: the cap alone");
        assert_eq!(w.limit(T0, 1_000, 0, 0), 1, "never zero");
    }

    #[test]
    fn the_bound_is_rate_times_target_and_falls_as_completions_age() {
        let mut w = RequestWindow::default();
        w.sending(0, T0);
        // 100 completions/s for 2 s.
        for i in 0..200 {
            w.completed(T0 + i * 10, 0);
        }
        let now = T0 + 2_000;
        assert!((w.rate(now) - 100.0).abs() < 5.0, "{}", w.rate(now));
        let l = w.limit(now, 1_000, 8, 1_000);
        assert!((95..=105).contains(&l), "{l}");
        assert!((45..=55).contains(&w.limit(now, 500, 8, 1_000)));
        // No completion for a while: the bound only falls, down to the floor.
        let mut last = l;
        for t in (now..now + 3_000).step_by(100) {
            let l = w.limit(t, 1_000, 8, 1_000);
            assert!(
                l <= last,
                "grew from {last} to {l} at {t} without a completion"
            );
            last = l;
        }
        assert_eq!(last, 8);
    }

    /// Completions reported up to 500 ms after they happened: the requests seen outstanding
    /// include up to 0.5 s of ended ones, so the bound grows by rate x 0.5 s and the queue at the
    /// coordinator never falls below `target`.
    #[test]
    fn the_bound_adds_the_rate_times_the_longest_report_delay() {
        let mut w = RequestWindow::default();
        w.sending(0, T0);
        for i in 0..200 {
            w.completed(T0 + i * 10, (i % 50) * 10 + 10);
        }
        let now = T0 + 2_000;
        assert_eq!(w.report_delay_ms(now), 500);
        let l = w.limit(now, 500, 8, 1_000);
        assert!((95..=105).contains(&l), "100/s x (0.5 s + 0.5 s): {l}");
        // A delay beyond the cap (clocks apart) counts as the cap.
        let mut v = RequestWindow::default();
        v.sending(0, T0);
        v.completed(T0 + 1_000, 3_600_000);
        assert_eq!(v.report_delay_ms(T0 + 1_000), MAX_REPORT_DELAY_MS);
    }

    #[test]
    fn a_young_busy_period_is_measured_over_its_own_age() {
        let mut w = RequestWindow::default();
        w.sending(0, T0);
        for i in 0..100 {
            w.completed(T0 + i * 10, 0); // 100/s for 1 s
        }
        let r = w.rate(T0 + 1_000);
        assert!(
            (r - 100.0).abs() < 5.0,
            "not diluted by the idle time before: {r}"
        );
        // A later start with completions still counted keeps the busy period.
        w.sending(0, T0 + 1_100);
        assert!((w.rate(T0 + 1_100) - 100.0 * 1_000.0 / 1_100.0).abs() < 5.0);
    }
}
