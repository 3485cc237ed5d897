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
//! Between two reports the bound grows with the time since the last one (the ends piling up
//! unreported), up to the longest report delay; the engine asks [`RequestWindow::reaches`] when
//! it will have room, and waits for that or the next record.

use std::collections::BTreeMap;

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
/// ended but are not reported yet still look outstanding, about the rate times the time since
/// the last report, up to the longest delay between a record's time (`cr_time`) and its reading.
/// The bound adds that (`limit`), so the queue at the coordinator stays near `target` between
/// two passes: right after a pass the bound is `rate x target` and it grows until the next one.
/// (Adding the longest delay at once, as before, refilled the queue at each pass with a second
/// more than `target`, which every change requested right after a pass waited behind: 0.9 s at
/// p50 beside a bulk export.) A delay above this (clocks apart, a daemon catching up on a
/// backlog) counts as this.
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
///
/// Completions are counted by when they *ended* (the reading time less the report delay), over
/// a span that ends the longest recent report delay before now, by which time every end in it
/// has been read. Counted by reading time instead, a reader that delivers ends in passes a
/// second apart (Lustre's follow mode) put two or three passes into a 2 s span depending on the
/// phase: the bound jumped by half at each pass and fell back 100 ms later, taking back the free
/// slots the pass had just kept for changes about to join the iteration.
#[derive(Debug, Clone, Default)]
pub struct RequestWindow {
    /// Bucket of the end (ms / [`BUCKET_MS`]) -> (completions that ended in it, the longest of
    /// their report delays in ms); only the last [`RATE_SPAN_MS`] + [`MAX_REPORT_DELAY_MS`].
    buckets: BTreeMap<u64, (u64, u64)>,
    /// Start of the busy period: the first request sent after no completion for
    /// [`RATE_SPAN_MS`] (the rate is not diluted by the idle time before it).
    busy_since_ms: u64,
    /// When the last completion was read.
    reported_ms: u64,
}

impl RequestWindow {
    /// One of our requests ended (exported or not: either way a copytool slot is free), and
    /// its end was reported `delay_ms` after it happened.
    pub fn completed(&mut self, now: u64, delay_ms: u64) {
        let d = delay_ms.min(MAX_REPORT_DELAY_MS);
        let e = self
            .buckets
            .entry(now.saturating_sub(d) / BUCKET_MS)
            .or_default();
        e.0 += 1;
        e.1 = e.1.max(d);
        self.reported_ms = self.reported_ms.max(now);
        self.expire(now);
    }

    /// The longest delay, in ms, between the end of a request and the daemon learning of it,
    /// over the completions that ended in the last [`RATE_SPAN_MS`] + [`MAX_REPORT_DELAY_MS`].
    pub fn report_delay_ms(&self, now: u64) -> u64 {
        self.kept(now).map(|(_, (_, d))| *d).max().unwrap_or(0)
    }

    /// Requests are about to be sent while `active` are outstanding: the first after an idle
    /// span starts a busy period.
    pub fn sending(&mut self, active: usize, now: u64) {
        if active == 0
            && self
                .kept(now)
                .all(|(b, _)| b * BUCKET_MS < now.saturating_sub(RATE_SPAN_MS))
        {
            self.busy_since_ms = now;
        }
    }

    fn oldest_kept(now: u64) -> u64 {
        now.saturating_sub(RATE_SPAN_MS + MAX_REPORT_DELAY_MS) / BUCKET_MS
    }

    fn kept(&self, now: u64) -> impl Iterator<Item = (&u64, &(u64, u64))> {
        self.buckets.range(Self::oldest_kept(now)..)
    }

    fn expire(&mut self, now: u64) {
        self.buckets = self.buckets.split_off(&Self::oldest_kept(now));
    }

    /// The span the rate is measured over: it ends the longest recent
    /// report delay before `now` (every end before that has been read) and lasts
    /// [`RATE_SPAN_MS`], or the busy period's age there, at least [`MIN_SPAN_MS`].
    /// as `(end, length)` in ms.
    fn span(&self, now: u64) -> (u64, u64) {
        let to = now.saturating_sub(self.report_delay_ms(now));
        let len = to
            .saturating_sub(self.busy_since_ms)
            .clamp(MIN_SPAN_MS, RATE_SPAN_MS);
        (to, len)
    }

    /// Completions that ended within [`RequestWindow::span`], and its length in ms (never 0).
    fn completions(&self, now: u64) -> (u64, u64) {
        let (to, len) = self.span(now);
        let n = self
            .buckets
            .range(to.saturating_sub(len) / BUCKET_MS..to.div_ceil(BUCKET_MS))
            .map(|(_, (n, _))| n)
            .sum();
        (n, len)
    }

    /// Completions per second measured at `now`.
    pub fn rate(&self, now: u64) -> f64 {
        let (n, span) = self.completions(now);
        n as f64 * 1000.0 / span as f64
    }

    /// How long the ends not reported yet have had to pile up at `now`: the time since the last
    /// report, at most the longest recent report delay.
    fn unreported_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.reported_ms)
            .min(self.report_delay_ms(now))
    }

    /// The rates, per ms, the bound is made of at `now`: the measured one, and the one the ends
    /// not reported yet are taken to pile up at: the rate over the last report delay before the
    /// last report if higher (the rate is rising: the measured one, from a span that ended a
    /// delay ago, would let the queue run dry before the next pass, and keep the rate down).
    fn rates(&self, now: u64) -> (f64, f64) {
        let (n, span) = self.completions(now);
        let rate = n as f64 / span as f64;
        let d = self.report_delay_ms(now);
        if d == 0 {
            return (rate, rate);
        }
        let recent: u64 = self
            .buckets
            .range(self.reported_ms.saturating_sub(d) / BUCKET_MS..=self.reported_ms / BUCKET_MS)
            .map(|(_, (n, _))| n)
            .sum();
        (rate, rate.max(recent as f64 / d as f64))
    }

    /// Requests that may be outstanding at `now`: `rate x target_ms`, plus the ends taken to
    /// have piled up unreported since the last report (up to the longest report delay), at
    /// least `floor`, at most `cap` (which wins over the floor). `target_ms` 0: always `cap` (no
    /// adaptation).
    pub fn limit(&self, now: u64, target_ms: u64, floor: usize, cap: usize) -> usize {
        let cap = cap.max(1);
        if target_ms == 0 {
            return cap;
        }
        let (rate, piling) = self.rates(now);
        let by_rate = rate * target_ms as f64 + piling * self.unreported_ms(now) as f64;
        // `as` saturates; a bound of a fraction of a request is one.
        (by_rate.ceil() as usize).max(floor.max(1)).min(cap)
    }

    /// When, after `now`, the bound reaches `want` without a new report (it grows with the ends
    /// that pile up unreported), if it does before it stops growing; the engine waits for that
    /// or the next completion. At least [`BUCKET_MS`] away: the rates it assumes only fall.
    pub fn reaches(&self, now: u64, target_ms: u64, cap: usize, want: usize) -> Option<u64> {
        if target_ms == 0 || want > cap {
            return None;
        }
        let (rate, piling) = self.rates(now);
        if piling <= 0.0 {
            return None;
        }
        let t = ((want as f64 - rate * target_ms as f64) / piling)
            .max(0.0)
            .ceil() as u64;
        if t > self.report_delay_ms(now) {
            return None;
        }
        Some(self.reported_ms.saturating_add(t).max(now + BUCKET_MS))
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

    /// Completions reported up to 500 ms after they happened: right after a report the ends not
    /// reported yet are none, and the bound is `rate x target`; it grows with the time since
    /// the report, by the ends piling up unreported meanwhile, up to `rate x (target + the
    /// longest delay)`, so the queue at the coordinator stays near `target`.
    #[test]
    fn the_bound_adds_the_rate_times_the_time_since_the_last_report() {
        let mut w = RequestWindow::default();
        w.sending(0, T0);
        // One end every 10 ms, read in passes 500 ms apart.
        let mut unread = Vec::new();
        for t in (T0..=T0 + 3_000).step_by(10) {
            unread.push(t);
            if t % 500 == 0 {
                for end in unread.drain(..) {
                    w.completed(t, t - end);
                }
            }
        }
        let last = T0 + 3_000;
        assert_eq!(w.report_delay_ms(last), 490);
        let at_report = w.limit(last, 500, 8, 1_000);
        assert!((45..=55).contains(&at_report), "100/s x 0.5 s: {at_report}");
        let later = w.limit(last + 250, 500, 8, 1_000);
        assert!(
            (70..=80).contains(&later),
            "100/s x (0.5 s + 0.25 s): {later}"
        );
        let full = w.limit(last + 500, 500, 8, 1_000);
        assert!(
            (95..=105).contains(&full),
            "100/s x (0.5 s + 0.5 s): {full}"
        );
        let beyond = w.limit(last + 700, 500, 8, 1_000);
        assert!(beyond <= full, "no more than the longest delay: {beyond}");
        // When it will reach a bound: about 0.3 s after the report for 80.
        let t = w.reaches(last, 500, 1_000, 80).expect("within the delay");
        assert!((last + 250..=last + 350).contains(&t), "{}", t - last);
        assert_eq!(
            w.reaches(last, 500, 1_000, 200),
            None,
            "beyond rate x (target + delay)"
        );
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

    /// Ends that happen at a steady 100/s but are read in passes a second apart (Lustre's
    /// follow mode): at every moment the bound is the rate times the target plus the time since
    /// the last pass, whatever the phase. Counted by reading time, the 2 s span held two or
    /// three passes depending on the phase, and the bound jumped by half at every pass and fell
    /// back 100 ms later.
    #[test]
    fn ends_read_in_passes_a_second_apart_give_the_bound_the_rate_sets() {
        let mut w = RequestWindow::default();
        w.sending(0, T0);
        let mut unread: Vec<u64> = Vec::new();
        let mut worst = 0.0f64;
        for t in (T0..T0 + 10_000).step_by(10) {
            unread.push(t); // one end every 10 ms
            if t % 1_000 == 0 {
                for end in unread.drain(..) {
                    w.completed(t, t - end);
                }
            }
            if t >= T0 + 4_000 {
                let since = (t % 1_000) as f64 / 1_000.0;
                let want = 100.0 * (0.5 + since);
                let l = w.limit(t, 500, 8, 10_000) as f64;
                worst = worst.max((l - want).abs() / want);
            }
        }
        assert!(worst <= 0.1, "the bound was {:.0} % off", worst * 100.0);
    }
}
