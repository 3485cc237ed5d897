//! The Grafana dashboard and the Prometheus alert rules in `dist/` (issue 16 item 4) name only
//! metrics the binaries really expose: both endpoints are scraped from running processes and
//! every `lustre_blob_*` name in the files must be among what they served.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use e2e::stack::{Stack, StackOptions};
use e2e::util::wait_until;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.1 200").then_some(body)
}

/// Metric names in a Prometheus text exposition.
fn served(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("lustre_blob_"))
        .map(|l| l.split(['{', ' ']).next().unwrap_or("").to_string())
        .collect()
}

/// Every `lustre_blob_*` token in a text.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("lustre_blob_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn dist(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dist")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_metric_in_the_dashboard_and_the_alert_rules_is_served() {
    let (daemon_port, copytool_port) = (free_port(), free_port());
    let mut s = Stack::new(StackOptions::default());
    s.edit_policy(|p| {
        p.extra.push((
            "control".into(),
            format!("metrics = \"127.0.0.1:{daemon_port}\""),
        ));
    });
    let port = copytool_port.to_string();
    s.start_copytool(&["--metrics", &format!("127.0.0.1:{port}")]);
    s.start_daemon();
    s.write("m/a.txt", b"a");
    assert!(s.flush("60s").status.success(), "{}", s.logs());
    let mut have = BTreeSet::new();
    for port in [daemon_port, copytool_port] {
        let mut text = None;
        assert!(
            wait_until(Duration::from_secs(30), || {
                text = scrape(port);
                text.is_some()
            }),
            "no /metrics on {port}: {}",
            s.logs()
        );
        have.extend(served(&text.unwrap_or_default()));
    }

    let dashboard: serde_json::Value =
        serde_json::from_str(&dist("grafana/lustre-blob.json")).expect("dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "a dashboard worth its name");
    let mut exprs = String::new();
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} queries nothing", p["title"]);
        for t in targets {
            exprs.push_str(t["expr"].as_str().expect("expr"));
            exprs.push('\n');
        }
    }
    let rules = dist("prometheus/lustre-blob.rules.yml");
    let alerts = rules.matches("- alert: ").count();
    assert_eq!(
        alerts,
        rules.matches("\n        expr: ").count(),
        "every alert has an expr"
    );
    assert_eq!(
        alerts,
        rules.matches("severity: ").count(),
        "every alert has a severity"
    );
    assert!(alerts >= 6, "{alerts} alerts");
    let rule_exprs: String = rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
        .collect::<Vec<_>>()
        .join("\n");
    let wanted = named(&exprs);
    let mut missing: Vec<String> = wanted
        .union(&named(&rule_exprs))
        .filter(|m| !have.contains(*m))
        .cloned()
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "named in dist/ but not served: {missing:?}\nserved: {have:?}"
    );
    // The alerts the operators asked for are there.
    for name in [
        "lustre_blob_oldest_unexported_change_age_seconds",
        "lustre_blob_standing_failures",
        "lustre_blob_copytool_actions_in_flight",
        "lustre_blob_changelog_uncleared_records",
        "lustre_blob_iterations_completed",
    ] {
        assert!(rule_exprs.contains(name), "no alert on {name}");
    }
}
