//! The auto-export status as users see it: Azure's REST field names for `status --json`
//! (DESIGN §10), the portal's counter names for `status`, and the Prometheus text format.

use crate::state::State;
use crate::vocab::JobState;
use blob::time::rfc3339_ms;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

const MIB: u64 = 1 << 20;

/// `lustre-blob status --json`: Azure's auto-export job fields plus a few of ours (camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoExportStatus {
    /// InProgress, Disabling, Disabled or Failed.
    pub state: JobState,
    /// Azure's status code.
    pub status_code: String,
    /// The status in words.
    pub status_message: String,
    /// Files exported in all.
    pub total_files_exported: u64,
    /// MiB exported in all.
    #[serde(rename = "totalMiBExported")]
    pub total_mib_exported: u64,
    /// Files failed in all.
    pub total_files_failed: u64,
    /// Iterations completed.
    pub export_iteration_count: u64,
    /// End of the last iteration that exported everything it found.
    #[serde(rename = "lastSuccessfulIterationCompletionTimeUTC")]
    pub last_successful_iteration_completion_time_utc: Option<String>,
    /// Files the current iteration found.
    pub current_iteration_files_discovered: u64,
    /// Their MiB.
    #[serde(rename = "currentIterationMiBDiscovered")]
    pub current_iteration_mib_discovered: u64,
    /// Files the current iteration exported.
    pub current_iteration_files_exported: u64,
    /// Their MiB.
    #[serde(rename = "currentIterationMiBExported")]
    pub current_iteration_mib_exported: u64,
    /// Files the current iteration failed.
    pub current_iteration_files_failed: u64,
    /// Start of the last iteration.
    #[serde(rename = "lastStartedTimeUTC")]
    pub last_started_time_utc: Option<String>,
    /// End of the last iteration.
    #[serde(rename = "lastCompletionTimeUTC")]
    pub last_completion_time_utc: Option<String>,
    // ---- beyond Azure
    /// Number of the running iteration.
    pub current_iteration: Option<u64>,
    /// An iteration runs.
    pub current_iteration_running: bool,
    /// Bytes exported in all.
    pub total_bytes_exported: u64,
    /// Files waiting for an iteration.
    pub pending_files: u64,
    /// Archive requests sent and not ended.
    pub in_flight_files: u64,
    /// Archive requests the daemon may have outstanding now: about `autoexport.queue_target`
    /// of work at the rate they are finishing, within `min_in_flight..=max_in_flight`.
    #[serde(default)]
    pub in_flight_limit: u64,
    /// Deletes and renames waiting.
    pub pending_namespace_operations: u64,
    /// Age in seconds of the oldest change not yet exported (0 when none).
    pub oldest_unexported_change_age_seconds: f64,
    /// Failures that still stand (a file not exported since it failed; a namespace operation
    /// not applied): they keep `everythingExported` false however old they are.
    pub standing_failures: u64,
    /// Pending files and operations that wait out a back-off after a try that did not export
    /// them (store unavailable, file changed, ...).
    pub waiting_files: u64,
    /// Why they wait (the latest reason), with the time of the next try.
    pub waiting_reason: Option<String>,
    /// Changelog records read but not yet cleared, over every MDT: the MDT keeps them for us.
    /// Growing without bound means work that never ends (or a clear the MDT refuses).
    pub changelog_uncleared_records: u64,
    /// Problems that last (a changelog that delivers nothing, ...), one sentence each.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// "Before you delete, check": a fact about files, not counters. True only when no change
    /// read from the changelog is pending, queued or in flight, no failure stands for any file
    /// or operation, and the last iteration exported every file it discovered.
    pub everything_exported: bool,
    /// Why archive requests are paused: the HSM coordinator takes none (`hsm_control` shut
    /// down), since when, and when it is asked again.
    #[serde(default)]
    pub coordinator_paused: Option<String>,
    /// Requests that made no progress past the iteration deadline, carried into later
    /// iterations (still waited for; they no longer hold an iteration open).
    #[serde(default)]
    pub stuck_requests: u64,
}

/// Oldest change not yet exported (Unix ms), over pending, queued and in-flight work.
pub fn oldest_unexported_ms(st: &State) -> Option<u64> {
    let mut oldest: Option<u64> = None;
    let mut note = |t: u64| oldest = Some(oldest.map_or(t, |o| o.min(t)));
    st.pending.values().for_each(|p| note(p.first_change_ms));
    st.inflight.values().for_each(|p| note(p.first_change_ms));
    st.ns_ops.iter().for_each(|o| note(o.at_ms));
    if let Some(it) = &st.iteration {
        it.to_discover
            .iter()
            .for_each(|(_, p)| note(p.first_change_ms));
    }
    oldest
}

/// Builds the status from the engine state. `disabling`: disabled with work still in flight.
pub fn build(st: &State, now: u64, reader_error: Option<&str>) -> AutoExportStatus {
    let cur = st
        .iteration
        .as_ref()
        .map(|i| &i.counters)
        .or(st.last_iteration.as_ref());
    let c = cur.cloned().unwrap_or_default();
    let busy = !st.inflight.is_empty() || st.iteration.is_some();
    let state = match (st.autoexport_enabled, reader_error, busy) {
        (_, Some(_), _) => JobState::Failed,
        (true, None, _) => JobState::InProgress,
        (false, None, true) => JobState::Disabling,
        (false, None, false) => JobState::Disabled,
    };
    let standing = st.standing_failures() as u64;
    let (waiting, why) = st.waiting(now);
    let waiting_reason = why.map(|(e, at)| {
        format!(
            "{e}; next try in {}s",
            at.saturating_sub(now).div_ceil(1000)
        )
    });
    let coordinator_paused = st.coordinator_pause.as_ref().map(|p| {
        format!(
            "{} since {}; next try in {}s",
            p.reason,
            rfc3339_ms(p.since_ms),
            p.until_ms.saturating_sub(now).div_ceil(1000)
        )
    });
    let carried = st.inflight.values().filter(|i| i.carried).count() as u64;
    let (status_code, status_message) = status_line(
        st,
        reader_error,
        coordinator_paused.as_deref(),
        waiting_reason.as_deref().map(|w| (waiting, w)),
    );
    let oldest = oldest_unexported_ms(st);
    let age = oldest
        .map(|o| now.saturating_sub(o) as f64 / 1000.0)
        .unwrap_or(0.0);
    AutoExportStatus {
        state,
        status_code,
        status_message,
        total_files_exported: st.totals.files_exported,
        total_mib_exported: st.totals.bytes_exported / MIB,
        total_files_failed: st.totals.files_failed,
        export_iteration_count: st.totals.iterations_completed,
        last_successful_iteration_completion_time_utc: st.totals.last_successful_ms.map(rfc3339_ms),
        current_iteration_files_discovered: c.files_discovered,
        current_iteration_mib_discovered: c.bytes_discovered / MIB,
        current_iteration_files_exported: c.files_exported,
        current_iteration_mib_exported: c.bytes_exported / MIB,
        current_iteration_files_failed: c.files_failed,
        last_started_time_utc: st.totals.last_started_ms.map(rfc3339_ms),
        last_completion_time_utc: st.totals.last_completed_ms.map(rfc3339_ms),
        current_iteration: cur.map(|c| c.number),
        current_iteration_running: st.iteration.is_some(),
        total_bytes_exported: st.totals.bytes_exported,
        pending_files: (st.pending.len() + st.iteration.as_ref().map_or(0, |i| i.to_discover.len()))
            as u64,
        in_flight_files: st.inflight.len() as u64,
        in_flight_limit: 0, // the engine's (`Daemon::status`): not in the state
        pending_namespace_operations: (st.ns_ops.len() + st.meta_pending.len()) as u64,
        oldest_unexported_change_age_seconds: age,
        standing_failures: standing,
        waiting_files: waiting,
        waiting_reason,
        changelog_uncleared_records: st
            .cursors
            .iter()
            .map(|c| c.last_read.saturating_sub(c.cleared))
            .sum(),
        warnings: Vec::new(),
        coordinator_paused,
        stuck_requests: carried,
        everything_exported: everything_exported(st),
    }
}

/// Nothing waits, nothing failed, and the last iteration exported all it found.
fn everything_exported(st: &State) -> bool {
    let nothing_pending = st.pending.is_empty()
        && st.inflight.is_empty()
        && st.ns_ops.is_empty()
        && st.meta_pending.is_empty()
        && st.iteration.is_none();
    let last_clean = st.last_iteration.as_ref().is_some_and(|l| {
        l.files_failed == 0 && l.files_requeued == 0 && l.files_exported >= l.files_discovered
    });
    nothing_pending
        && st.standing_failures() == 0
        && last_clean
        && st.totals.last_successful_ms.is_some()
}

/// Azure's status code and the message beside it: the changelog reader's error first, then
/// a paused coordinator, files waiting out a back-off (`(count, reason)`), standing failures,
/// failures of the last iteration.
fn status_line(
    st: &State,
    reader_error: Option<&str>,
    coordinator_paused: Option<&str>,
    waiting: Option<(u64, &str)>,
) -> (String, String) {
    let standing = st.standing_failures();
    let last_failed = st
        .last_iteration
        .as_ref()
        .is_some_and(|l| l.files_failed > 0);
    let success = |m: String| ("Success".to_string(), m);
    match (reader_error, coordinator_paused, waiting) {
        (Some(e), _, _) => ("ChangelogReadFailed".to_string(), e.to_string()),
        (None, Some(p), _) => ("CoordinatorPaused".to_string(), p.to_string()),
        (None, None, Some((n, w))) => success(format!("{n} files wait to be tried again: {w}")),
        (None, None, None) if standing > 0 => success(format!(
            "{standing} failures stand; see `lustre-blob flush --wait` or the logging container"
        )),
        (None, None, None) if last_failed => {
            success("files failed in the last iteration; see the logging container".to_string())
        }
        (None, None, None) => success(String::new()),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / MIB as f64)
}

/// The human form, with the portal's counter names.
pub fn render_human(s: &AutoExportStatus) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Auto-export: {}", s.state);
    if !s.status_message.is_empty() {
        let _ = writeln!(o, "  {}: {}", s.status_code, s.status_message);
    }
    let _ = writeln!(o, "Overall");
    let last_success = s.last_successful_iteration_completion_time_utc.as_deref();
    for (label, value) in [
        ("Total Files Exported:", s.total_files_exported.to_string()),
        ("Total MiB Exported:", mib(s.total_bytes_exported)),
        ("Total Files Failed:", s.total_files_failed.to_string()),
        (
            "Iterations Completed:",
            s.export_iteration_count.to_string(),
        ),
        (
            "Last Successful Iteration:",
            last_success.unwrap_or("never").to_string(),
        ),
    ] {
        let _ = writeln!(o, "  {label:<28}{value}");
    }
    match s.current_iteration {
        Some(n) => {
            let how = if s.current_iteration_running {
                "running, so far"
            } else {
                "completed"
            };
            let _ = writeln!(o, "Iteration {n} ({how})");
            for (label, value) in [
                ("Files Discovered:", s.current_iteration_files_discovered),
                ("MiB Discovered:", s.current_iteration_mib_discovered),
                ("Files Exported:", s.current_iteration_files_exported),
                ("MiB Exported:", s.current_iteration_mib_exported),
                ("Files Failed:", s.current_iteration_files_failed),
            ] {
                let _ = writeln!(o, "  {label:<28}{value}");
            }
        }
        None => {
            let _ = writeln!(o, "No iteration yet");
        }
    }
    let _ = writeln!(
        o,
        "Pending: {} files, {} in flight (at most {} now), {} namespace operations; oldest unexported change: {:.0}s",
        s.pending_files, s.in_flight_files, s.in_flight_limit, s.pending_namespace_operations, s.oldest_unexported_change_age_seconds
    );
    for w in &s.warnings {
        let _ = writeln!(o, "Warning: {w}");
    }
    if let Some(w) = &s.waiting_reason {
        let _ = writeln!(
            o,
            "Waiting: {} files to be tried again: {w}",
            s.waiting_files
        );
    }
    if s.standing_failures > 0 {
        let _ = writeln!(
            o,
            "Standing failures: {} (listed by `lustre-blob flush --wait`)",
            s.standing_failures
        );
    }
    let _ = writeln!(
        o,
        "Everything exported: {}",
        if s.everything_exported {
            "yes (no pending changes, no standing failures, last iteration exported every file it discovered)"
        } else {
            "no"
        }
    );
    o
}

/// Prometheus text exposition of the status.
pub fn render_metrics(s: &AutoExportStatus) -> String {
    let e = endpoint::Exposition::new();
    let counters = [
        (
            "total_files_exported",
            "Total Files Exported.",
            s.total_files_exported,
        ),
        (
            "total_bytes_exported",
            "Total bytes exported (Total MiB Exported x 2^20).",
            s.total_bytes_exported,
        ),
        (
            "total_files_failed",
            "Files failed over all iterations.",
            s.total_files_failed,
        ),
        (
            "iterations_completed",
            "Iterations Completed.",
            s.export_iteration_count,
        ),
    ];
    for (name, help, v) in counters {
        e.counter(&format!("lustre_blob_{name}"), help, &[], &[(&[], v)]);
    }
    for (name, help, v) in iteration_gauges(s).into_iter().chain(gauges(s)) {
        e.gauge(&format!("lustre_blob_{name}"), help, &[], &[(&[], v)]);
    }
    e.encode()
}

/// The current iteration's gauges: (name without the `lustre_blob_` prefix, help, value).
fn iteration_gauges(s: &AutoExportStatus) -> [(&'static str, &'static str, f64); 5] {
    [
        (
            "current_iteration_files_discovered",
            "Files Discovered in the current iteration so far.",
            s.current_iteration_files_discovered as f64,
        ),
        (
            "current_iteration_mib_discovered",
            "MiB Discovered in the current iteration so far.",
            s.current_iteration_mib_discovered as f64,
        ),
        (
            "current_iteration_files_exported",
            "Files Exported in the current iteration so far.",
            s.current_iteration_files_exported as f64,
        ),
        (
            "current_iteration_mib_exported",
            "MiB Exported in the current iteration so far.",
            s.current_iteration_mib_exported as f64,
        ),
        (
            "current_iteration_files_failed",
            "Files Failed in the current iteration so far.",
            s.current_iteration_files_failed as f64,
        ),
    ]
}

/// The other gauges of [`render_metrics`], as [`iteration_gauges`].
fn gauges(s: &AutoExportStatus) -> [(&'static str, &'static str, f64); 10] {
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let last = s
        .last_successful_iteration_completion_time_utc
        .as_deref()
        .and_then(|t| blob::time::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    [
        (
            "pending_files",
            "Changed files waiting for an iteration.",
            s.pending_files as f64,
        ),
        (
            "in_flight_files",
            "Archive requests sent and not completed.",
            s.in_flight_files as f64,
        ),
        (
            "in_flight_limit",
            "Archive requests the daemon may have outstanding now (queue_target of work at the measured rate, within min_in_flight and max_in_flight).",
            s.in_flight_limit as f64,
        ),
        (
            "standing_failures",
            "Files and namespace operations whose failure still stands.",
            s.standing_failures as f64,
        ),
        (
            "waiting_files",
            "Pending files and operations waiting out a back-off before their next try.",
            s.waiting_files as f64,
        ),
        (
            "changelog_uncleared_records",
            "Changelog records read and not yet cleared (kept by the MDTs for unfinished work).",
            s.changelog_uncleared_records as f64,
        ),
        (
            "everything_exported",
            "1 when every change read is exported and no failure stands, else 0.",
            flag(s.everything_exported),
        ),
        (
            "oldest_unexported_change_age_seconds",
            "Age of the oldest change not yet exported.",
            s.oldest_unexported_change_age_seconds,
        ),
        (
            "last_successful_iteration_timestamp_seconds",
            "End time of the last iteration with zero failed files (Unix seconds, 0 = never).",
            last,
        ),
        (
            "autoexport_enabled",
            "1 while auto-export is InProgress.",
            flag(s.state == JobState::InProgress),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{InFlight, IterCounters, Iteration, Pending};
    use lustre::Fid;

    fn state() -> State {
        let mut st = State {
            autoexport_enabled: true,
            ..State::default()
        };
        st.totals.files_exported = 5;
        st.totals.bytes_exported = 3 * MIB + 5;
        st.totals.iterations_completed = 2;
        st.totals.last_successful_ms = Some(1_700_000_000_000);
        st.iteration = Some(Iteration {
            counters: IterCounters {
                number: 3,
                files_discovered: 4,
                bytes_discovered: 2 * MIB,
                files_exported: 1,
                bytes_exported: MIB,
                ..IterCounters::default()
            },
            ..Iteration::default()
        });
        st.pending.insert(
            Fid::new(1, 1, 0),
            Pending {
                holds: vec![],
                last_change_ms: 9_000,
                first_change_ms: 8_000,
                attempts: 0,
                retries: 0,
                retry_at_ms: 0,
                last_error: None,
                ..Pending::default()
            },
        );
        st.inflight.insert(
            Fid::new(1, 2, 0),
            InFlight {
                holds: vec![],
                path: "a".into(),
                size: 1,
                submitted_ms: 0,
                first_change_ms: 5_000,
                attempts: 0,
                retries: 0,
                carried: false,
            },
        );
        st
    }

    #[test]
    fn json_uses_azure_field_names() {
        let s = build(&state(), 10_000, None);
        let v = serde_json::to_value(&s).unwrap();
        for key in [
            "state",
            "statusCode",
            "statusMessage",
            "totalFilesExported",
            "totalMiBExported",
            "totalFilesFailed",
            "exportIterationCount",
            "lastSuccessfulIterationCompletionTimeUTC",
            "currentIterationFilesDiscovered",
            "currentIterationMiBDiscovered",
            "currentIterationFilesExported",
            "currentIterationMiBExported",
            "currentIterationFilesFailed",
            "lastStartedTimeUTC",
            "lastCompletionTimeUTC",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert_eq!(v["state"], "InProgress");
        assert_eq!(v["totalMiBExported"], 3);
        assert_eq!(v["currentIterationMiBDiscovered"], 2);
        assert_eq!(
            v["lastSuccessfulIterationCompletionTimeUTC"],
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(v["oldestUnexportedChangeAgeSeconds"], 5.0);
        assert_eq!(v["everythingExported"], false);
    }

    #[test]
    fn states_follow_enablement_and_work_in_flight() {
        let mut st = state();
        assert_eq!(build(&st, 0, None).state, JobState::InProgress);
        st.autoexport_enabled = false;
        assert_eq!(build(&st, 0, None).state, JobState::Disabling);
        st.iteration = None;
        st.inflight.clear();
        assert_eq!(build(&st, 0, None).state, JobState::Disabled);
        let f = build(&st, 0, Some("changelog: Permission denied"));
        assert_eq!(
            (f.state.as_str(), f.status_code.as_str()),
            ("Failed", "ChangelogReadFailed")
        );
    }

    #[test]
    fn everything_exported_only_when_idle_and_clean() {
        let mut st = state();
        st.iteration = None;
        st.pending.clear();
        st.inflight.clear();
        st.last_iteration = Some(IterCounters {
            number: 3,
            ..IterCounters::default()
        });
        assert!(build(&st, 0, None).everything_exported);
        st.last_iteration = Some(IterCounters {
            number: 3,
            files_failed: 1,
            ..IterCounters::default()
        });
        assert!(!build(&st, 0, None).everything_exported);
    }

    fn idle_and_clean() -> State {
        let mut st = state();
        st.iteration = None;
        st.pending.clear();
        st.inflight.clear();
        st.last_iteration = Some(IterCounters {
            number: 3,
            files_discovered: 2,
            files_exported: 2,
            ..IterCounters::default()
        });
        assert!(build(&st, 0, None).everything_exported);
        st
    }

    #[test]
    fn a_standing_failure_of_an_older_iteration_keeps_everything_exported_false() {
        let mut st = idle_and_clean();
        st.failed.insert(
            Fid::new(1, 9, 0),
            crate::state::Failure {
                at_ms: 1,
                iteration: 1,
                fid: Some(Fid::new(1, 9, 0)),
                path: "projects/a".into(),
                operation: "archive".into(),
                error: "x".into(),
            },
        );
        let s = build(&st, 0, None);
        assert!(!s.everything_exported);
        assert_eq!(s.standing_failures, 1);
        assert!(render_human(&s).contains("Standing failures: 1"));
        assert!(render_metrics(&s).contains("lustre_blob_everything_exported 0\n"));
    }

    #[test]
    fn an_iteration_that_re_queued_a_file_is_not_clean() {
        let mut st = idle_and_clean();
        st.last_iteration = Some(IterCounters {
            number: 4,
            files_discovered: 1,
            files_requeued: 1,
            ..IterCounters::default()
        });
        assert!(!build(&st, 0, None).everything_exported);
    }

    #[test]
    fn files_waiting_for_the_store_say_why() {
        let mut st = idle_and_clean();
        st.pending.insert(
            Fid::new(1, 7, 0),
            Pending {
                holds: vec![(0, 4)],
                last_change_ms: 0,
                first_change_ms: 0,
                attempts: 0,
                retries: 3,
                retry_at_ms: 12_500,
                last_error: Some("Connection timed out (errno 110)".into()),
                ..Pending::default()
            },
        );
        let s = build(&st, 10_000, None);
        assert!(!s.everything_exported);
        assert_eq!(s.waiting_files, 1);
        assert_eq!(
            s.waiting_reason.as_deref(),
            Some("Connection timed out (errno 110); next try in 3s")
        );
        assert!(
            s.status_message.contains("1 files wait to be tried again"),
            "{}",
            s.status_message
        );
        assert!(render_human(&s).contains("Waiting: 1 files"));
    }

    #[test]
    fn human_and_metrics_name_the_counters() {
        let s = build(&state(), 10_000, None);
        let h = render_human(&s);
        for name in [
            "Total Files Exported",
            "Total MiB Exported",
            "Iterations Completed",
            "Last Successful Iteration",
            "Files Discovered",
            "MiB Discovered",
            "Files Exported",
            "MiB Exported",
            "Files Failed",
        ] {
            assert!(h.contains(name), "{name} missing in\n{h}");
        }
        let m = render_metrics(&s);
        assert!(m.contains("lustre_blob_total_files_exported 5\n"), "{m}");
        assert!(
            m.contains("lustre_blob_oldest_unexported_change_age_seconds 5\n"),
            "{m}"
        );
        assert!(m.contains("# TYPE lustre_blob_iterations_completed counter"));
    }
}
