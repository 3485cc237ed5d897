//! Per-agent counters: actions by type and result, bytes moved, actions in flight. Rendered in the
//! Prometheus text format (served by `crate::http_metrics`) and as one log line at an interval.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use lustre::CopytoolAction;

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ended with success.
    Ok,
    /// Ended with an error.
    Failed,
    /// Ended ECANCELED (the coordinator cancelled it).
    Cancelled,
}

const ACTIONS: [&str; 5] = ["archive", "restore", "remove", "cancel", "unknown"];
const OUTCOMES: [&str; 3] = ["ok", "failed", "cancelled"];

fn action_index(a: CopytoolAction) -> usize {
    match a {
        CopytoolAction::Archive => 0,
        CopytoolAction::Restore => 1,
        CopytoolAction::Remove => 2,
        CopytoolAction::Cancel => 3,
        CopytoolAction::None | CopytoolAction::Unknown(_) => 4,
    }
}

/// The lower-case name of an action in logs, metrics and failure entries (`archive`, ...;
/// `unknown` for any other code).
pub fn action_name(a: CopytoolAction) -> &'static str {
    ACTIONS[action_index(a)]
}

fn outcome_index(o: Outcome) -> usize {
    match o {
        Outcome::Ok => 0,
        Outcome::Failed => 1,
        Outcome::Cancelled => 2,
    }
}

/// The counters. All updates are relaxed atomics: they are statistics, not synchronisation.
#[derive(Debug, Default)]
pub struct Metrics {
    actions: [[AtomicU64; 3]; 5],
    bytes_archived: AtomicU64,
    bytes_restored: AtomicU64,
    in_flight: AtomicI64,
    receive_errors: AtomicU64,
}

impl Metrics {
    /// Counts an action ended with `outcome`.
    pub fn action_done(&self, action: CopytoolAction, outcome: Outcome) {
        self.actions[action_index(action)][outcome_index(outcome)].fetch_add(1, Ordering::Relaxed);
    }
    /// How many `action`s ended with `outcome`.
    pub fn actions(&self, action: CopytoolAction, outcome: Outcome) -> u64 {
        self.actions[action_index(action)][outcome_index(outcome)].load(Ordering::Relaxed)
    }
    /// Counts bytes uploaded by a successful ARCHIVE.
    pub fn add_archived(&self, bytes: u64) {
        self.bytes_archived.fetch_add(bytes, Ordering::Relaxed);
    }
    /// Counts bytes downloaded by a successful RESTORE.
    pub fn add_restored(&self, bytes: u64) {
        self.bytes_restored.fetch_add(bytes, Ordering::Relaxed);
    }
    /// Bytes archived so far.
    pub fn bytes_archived(&self) -> u64 {
        self.bytes_archived.load(Ordering::Relaxed)
    }
    /// Bytes restored so far.
    pub fn bytes_restored(&self) -> u64 {
        self.bytes_restored.load(Ordering::Relaxed)
    }
    /// An action started.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }
    /// An action finished.
    pub fn finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    /// Actions being served now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }
    /// Counts a failed receive (or a list for another file system).
    pub fn receive_error(&self) {
        self.receive_errors.fetch_add(1, Ordering::Relaxed);
    }
    /// Failed receives so far.
    pub fn receive_errors(&self) -> u64 {
        self.receive_errors.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition format (version 0.0.4).
    /// The Prometheus text of the counters, every sample labelled with `agent`.
    pub fn render_prometheus(&self, agent: &str) -> String {
        let e = endpoint::Exposition::new();
        let mut actions = Vec::new();
        for (ai, a) in ACTIONS.iter().enumerate() {
            for (oi, o) in OUTCOMES.iter().enumerate() {
                let v = self.actions[ai][oi].load(Ordering::Relaxed);
                actions.push(([agent, *a, *o], v));
            }
        }
        let actions: Vec<(&[&str], u64)> = actions.iter().map(|(l, v)| (&l[..], *v)).collect();
        e.counter(
            "lustre_blob_copytool_actions_total",
            "HSM actions ended by this agent.",
            &["agent", "action", "result"],
            &actions,
        );
        e.counter(
            "lustre_blob_copytool_bytes_total",
            "Bytes moved by this agent.",
            &["agent", "direction"],
            &[
                (&[agent, "archive"], self.bytes_archived()),
                (&[agent, "restore"], self.bytes_restored()),
            ],
        );
        e.gauge(
            "lustre_blob_copytool_actions_in_flight",
            "Actions being served now.",
            &["agent"],
            &[(&[agent], self.in_flight() as f64)],
        );
        e.counter(
            "lustre_blob_copytool_receive_errors_total",
            "Failed receives from the coordinator.",
            &["agent"],
            &[(&[agent], self.receive_errors())],
        );
        e.encode()
    }

    /// The counters as one log line (action kinds that never ran are left out).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (ai, a) in ACTIONS.iter().enumerate() {
            let [ok, failed, cancelled] = &self.actions[ai];
            let (ok, failed, cancelled) = (
                ok.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                cancelled.load(Ordering::Relaxed),
            );
            if ok + failed + cancelled > 0 {
                let _ = write!(s, "{a} ok={ok} failed={failed} cancelled={cancelled}; ");
            }
        }
        let _ = write!(
            s,
            "archived={}B restored={}B in_flight={}",
            self.bytes_archived(),
            self.bytes_restored(),
            self.in_flight()
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_prometheus_text() {
        let m = Metrics::default();
        m.action_done(CopytoolAction::Archive, Outcome::Ok);
        m.action_done(CopytoolAction::Archive, Outcome::Ok);
        m.action_done(CopytoolAction::Restore, Outcome::Failed);
        m.add_archived(42);
        m.started();
        let text = m.render_prometheus("host:1");
        // The encoder writes labels in name order.
        assert!(text.contains(
            "lustre_blob_copytool_actions_total{action=\"archive\",agent=\"host:1\",result=\"ok\"} 2\n"
        ), "{text}");
        assert!(text.contains("action=\"restore\",agent=\"host:1\",result=\"failed\"} 1\n"));
        assert!(text.contains("# TYPE lustre_blob_copytool_actions_total counter\n"));
        assert!(text.contains("direction=\"archive\"} 42\n"));
        assert!(text.contains("lustre_blob_copytool_actions_in_flight{agent=\"host:1\"} 1\n"));
        m.finished();
        assert_eq!(m.in_flight(), 0);
    }

    #[test]
    fn summary_names_only_active_kinds() {
        let m = Metrics::default();
        m.action_done(CopytoolAction::Remove, Outcome::Cancelled);
        let s = m.summary();
        assert!(s.contains("remove ok=0 failed=0 cancelled=1"), "{s}");
        assert!(!s.contains("archive ok"), "{s}");
    }
}
