//! What operators do from the portal, done from the CLI (issue 16): cancel the auto-export job.

use e2e::stack::{Stack, StackOptions};

fn jobs(s: &Stack) -> Vec<serde_json::Value> {
    let o = s.cli(&["jobs", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .expect("jobs --json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn cancel_of_the_auto_export_job_stops_it_and_enable_starts_a_new_one() {
    let mut s = Stack::new(StackOptions::default());
    s.start_copytool(&[]);
    s.start_daemon();
    s.write("o/a.txt", b"a");
    assert!(s.flush("60s").status.success());
    let live = jobs(&s);
    assert_eq!(live[0]["id"], "autoexport");
    assert!(live[0]["startTimeUTC"].is_string(), "{live:?}");
    assert!(
        live[0]["completionTimeUTC"].is_null(),
        "running: no end time"
    );

    let o = s.cli(&["cancel", "autoexport"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "autoexport: canceled"
    );
    let after = jobs(&s);
    let ended = after
        .iter()
        .find(|j| j["id"] == "autoexport-1")
        .unwrap_or_else(|| panic!("{after:?}"));
    assert_eq!(ended["state"], "Canceled");
    assert!(ended["completionTimeUTC"].is_string());
    assert_eq!(
        ended["totalFilesExported"], 2,
        "its final counters (o/ and o/a.txt): {ended}"
    );
    assert_eq!(s.status_json()["state"], "Disabled");
    // A change now is not exported: the job is over.
    s.write("o/b.txt", b"b");
    let o = s.cli(&["cancel", "autoexport"]);
    assert_eq!(o.status.code(), Some(2), "nothing to cancel");

    assert!(s.cli(&["autoexport", "enable"]).status.success());
    let again = jobs(&s);
    assert_eq!(again[0]["id"], "autoexport");
    assert_eq!(again[0]["state"], "InProgress");
    assert!(again[0]["completionTimeUTC"].is_null());
    // A new job: cancelled in turn, it is kept as the second one.
    assert!(s.cli(&["cancel", "autoexport"]).status.success());
    let after = jobs(&s);
    let ids: Vec<&str> = after.iter().filter_map(|j| j["id"].as_str()).collect();
    assert!(
        ids.contains(&"autoexport-1") && ids.contains(&"autoexport-2"),
        "{ids:?}"
    );
}

/// A daemon started before its changelog user was registered: Lustre keeps no changelog without
/// a user, so nothing ever arrives. Within seconds `status` says so and how to fix it.
#[test]
fn a_forgotten_changelog_user_is_said_within_seconds() {
    let mut s = Stack::new(StackOptions::default());
    let dev = s.sim.mdt_name(0);
    let user = s.policy.changelog_user.clone();
    let o = s
        .sim
        .lctl(&["--device", &dev, "changelog_deregister", &user]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.start_copytool(&[]);
    s.start_daemon();
    for i in 0..20 {
        s.write(&format!("forgot/f{i}"), b"x");
    }
    let mut st = serde_json::Value::Null;
    let said = e2e::util::wait_until(std::time::Duration::from_secs(30), || {
        st = s.status_json();
        st["warnings"].as_array().is_some_and(|w| !w.is_empty())
    });
    assert!(said, "no warning: {st}");
    let w = st["warnings"][0].as_str().unwrap_or("");
    assert!(w.contains(&format!("is {user} registered?")), "{w}");
    assert!(w.contains(&dev), "{w}");
    let human = String::from_utf8_lossy(&s.cli(&["status"]).stdout).into_owned();
    assert!(
        human.contains("Warning: no changelog record read from"),
        "{human}"
    );
}

fn checks(s: &Stack) -> (Option<i32>, Vec<serde_json::Value>) {
    let o = s.cli(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "check --json is not JSON ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), v.as_array().cloned().unwrap_or_default())
}

fn level<'a>(c: &'a [serde_json::Value], check: &str) -> Vec<&'a str> {
    c.iter()
        .filter(|x| x["check"] == check)
        .filter_map(|x| x["level"].as_str())
        .collect()
}

#[test]
fn check_passes_on_a_working_deployment_and_names_each_broken_part() {
    let mut s = Stack::new(StackOptions::default());
    // Nothing runs yet: no copytool takes the probe archive (a failure), no daemon (a warning).
    let (code, c) = checks(&s);
    assert_eq!(code, Some(2), "{c:?}");
    assert_eq!(level(&c, "hsm copytool"), vec!["fail"], "{c:?}");
    assert!(
        !s.mount().join(".lustre-blob-check").exists(),
        "the probe file is removed"
    );
    s.start_copytool(&[]);
    // The copytool runs: only the daemon is missing.
    let (code, c) = checks(&s);
    assert_eq!(code, Some(1), "only the daemon is missing: {c:?}");
    assert_eq!(level(&c, "hsm copytool"), vec!["ok"], "{c:?}");
    for name in [
        "policy",
        "liblustreapi",
        "mount",
        "changelog",
        "export container",
        "logging container",
        "clock",
        "state directory",
    ] {
        assert_eq!(level(&c, name), vec!["ok"], "{name}: {c:?}");
    }
    assert_eq!(level(&c, "changelog user"), vec!["manual"]);
    assert_eq!(level(&c, "daemon"), vec!["warn"]);
    s.start_daemon();
    let (code, c) = checks(&s);
    assert_eq!(code, Some(0), "{c:?}");
    // No probe blob (store probe, HSM probe) and no probe file is left behind, and the daemon
    // did not take the probe file for user data.
    assert!(s.store.list(&s.container, ".lustre-blob-check").is_empty());
    assert!(!s.mount().join(".lustre-blob-check").exists());
    assert_eq!(s.status_json()["totalFilesExported"], 0);
    // The human form: one line per check.
    let o = s.cli(&["check"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok     export container")),
        "{text}"
    );

    // A container that does not exist and a state directory that cannot be written.
    s.edit_policy(|p| {
        p.url = p.url.replace("/export", "/no-such-container");
        p.state_dir = std::path::PathBuf::from("/proc/no-state-here");
    });
    let (code, c) = checks(&s);
    assert_eq!(code, Some(2), "{c:?}");
    assert_eq!(level(&c, "export container"), vec!["fail"], "{c:?}");
    assert_eq!(level(&c, "state directory"), vec!["fail"], "{c:?}");
    let export = c.iter().find(|x| x["check"] == "export container").unwrap();
    assert!(
        export["seen"]
            .as_str()
            .unwrap_or("")
            .contains("write refused"),
        "{export}"
    );
    assert!(
        export["fix"].as_str().unwrap_or("").contains("rwdl"),
        "{export}"
    );
}

/// `export --wait` into a pipe or a log: plain progress lines (files, MiB, rate), the last at the
/// end, on stderr; the result on stdout.
#[test]
fn export_wait_writes_plain_progress_lines_when_not_on_a_terminal() {
    let mut s = Stack::new(StackOptions::default());
    s.start_copytool(&[]);
    s.start_daemon();
    assert!(s.cli(&["autoexport", "disable"]).status.success());
    for i in 0..50 {
        s.write(&format!("bulk/f{i:03}"), &vec![b'x'; 4096]);
    }
    let dir = s.mount().join("bulk");
    let o = s.cli(&["export", dir.to_str().unwrap(), "--wait"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("files/s")).collect();
    assert!(!lines.is_empty(), "no progress line: {err}");
    let last = lines.last().unwrap();
    assert!(last.contains("Completed: 50/50 files"), "{last}");
    assert!(last.contains("MiB") && last.contains("MiB/s"), "{last}");
    assert!(
        !err.contains('\r'),
        "no terminal redraws in a pipe: {err:?}"
    );
    let v = s.cli(&["verify", dir.to_str().unwrap()]);
    let verr = String::from_utf8_lossy(&v.stderr).into_owned();
    assert!(verr.contains("verify: 1 entries checked"), "{verr}");
}
