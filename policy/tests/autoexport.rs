//! Auto-export end to end with real processes: Azurite, lustre-sim, lhsmtool_blob and the
//! lustre-blob daemon, driven through the CLI as an administrator would.

use e2e::stack::{Stack, StackOptions};
use e2e::util::{stderr, stdout, wait_until};

use std::time::Duration;

/// `lustre-blob flush --wait`, which must succeed (the logs are printed when it does not).
fn flush_ok(s: &Stack) {
    let o = s.flush("120s");
    assert!(
        o.status.success(),
        "flush: {} {}\n{}",
        stdout(&o),
        stderr(&o),
        s.logs()
    );
}

fn stack(prefix: &str, exclude: &[&str]) -> Stack {
    testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
    let mut s = Stack::new(StackOptions {
        prefix: prefix.into(),
        ..StackOptions::default()
    });
    s.edit_policy(|p| p.exclude = exclude.iter().map(|e| e.to_string()).collect());
    s.start_copytool(&[]);
    s.start_daemon();
    s
}

#[test]
fn new_files_dirs_and_symlinks_under_the_prefix_are_exported_and_nothing_else() {
    let _serial = testkit::sim::one_at_a_time();
    let s = stack("projects/", &["*.tmp"]);
    s.write("projects/a.dat", b"alpha");
    s.write("projects/sub/b.dat", &vec![7u8; 200_000]);
    s.write("projects/skip.tmp", b"excluded");
    s.write("other/c.dat", b"outside");
    std::os::unix::fs::symlink("a.dat", s.mount().join("projects/link")).unwrap();
    flush_ok(&s);
    let got = s.blob_names();
    assert_eq!(
        got,
        vec![
            "projects",
            "projects/a.dat",
            "projects/link",
            "projects/sub",
            "projects/sub/b.dat"
        ],
        "{}",
        s.logs()
    );
    assert_eq!(
        s.store.get(&s.container, "projects/a.dat").as_deref(),
        Some(&b"alpha"[..])
    );
    assert_eq!(
        s.store
            .get(&s.container, "projects/sub/b.dat")
            .map(|b| b.len()),
        Some(200_000)
    );
    assert_eq!(
        s.store.get(&s.container, "projects/link").as_deref(),
        Some(&b"a.dat"[..])
    );
    assert!(s
        .hsm_state(&s.mount().join("projects/a.dat"))
        .contains("archived"));
    assert!(!s
        .hsm_state(&s.mount().join("other/c.dat"))
        .contains("archived"));

    let st = s.status_json();
    assert_eq!(st["state"], "InProgress");
    assert_eq!(st["totalFilesExported"], 5, "{st}");
    assert_eq!(st["totalFilesFailed"], 0);
    assert!(st["exportIterationCount"].as_u64().unwrap() >= 1);
    assert!(st["lastSuccessfulIterationCompletionTimeUTC"].is_string());
    assert_eq!(st["everythingExported"], true, "{st}");
    let human = stdout(&s.cli(&["status"]));
    assert!(human.contains("Total Files Exported:       5"), "{human}");

    // The catalog shows the HSM state and the export record the copytool left on the file.
    let a = s.mount().join("projects/a.dat");
    let o = s.cli(&["catalog", &a.display().to_string(), "--json"]);
    assert!(o.status.success(), "catalog: {}", stderr(&o));
    let cat: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        cat[0]["hsm"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "archived"),
        "{cat}"
    );
    assert_eq!(cat[0]["exportRecord"]["blob"], "projects/a.dat", "{cat}");
    assert!(cat[0]["exportRecord"]["etag"].is_string(), "{cat}");
    let human = stdout(&s.cli(&["catalog", &a.display().to_string()]));
    assert!(
        human.contains("archived") && human.contains("blob: projects/a.dat"),
        "{human}"
    );

    // A change is exported again (latest content wins).
    s.write("projects/a.dat", b"alpha, second version");
    let o = s.flush("120s");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        s.store.get(&s.container, "projects/a.dat").as_deref(),
        Some(&b"alpha, second version"[..])
    );
    assert_eq!(s.status_json()["totalFilesExported"], 6);
}

/// Issue 17: the daemon takes a new file's path from its CREATE record, not from fid2path. A
/// file renamed after its CREATE and before its export is exported once, under its new name: the
/// RENAME moves the path the daemon knows, and the copytool names the blob by the file's path
/// when it copies. (`min_age` keeps the export after the rename; the flush then forces it.)
#[test]
fn a_file_renamed_before_its_export_is_exported_once_under_its_new_name() {
    let _serial = testkit::sim::one_at_a_time();
    testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
    let mut s = Stack::new(StackOptions {
        prefix: "projects/".into(),
        min_age: "5s".into(),
        ..StackOptions::default()
    });
    s.start_copytool(&[]);
    s.start_daemon();
    let draft = s.write("projects/draft.dat", b"final words");
    std::fs::rename(&draft, s.mount().join("projects/final.dat")).unwrap();
    flush_ok(&s);
    assert_eq!(
        s.blob_names(),
        vec!["projects", "projects/final.dat"],
        "{}",
        s.logs()
    );
    assert_eq!(
        s.store.get(&s.container, "projects/final.dat").as_deref(),
        Some(&b"final words"[..])
    );
    let st = s.status_json();
    assert_eq!(
        st["totalFilesExported"], 2,
        "the directory and the file, once: {st}"
    );
    assert_eq!(st["totalFilesFailed"], 0, "{st}");
}

#[test]
fn a_failed_file_counts_and_reaches_the_logging_container() {
    let _serial = testkit::sim::one_at_a_time();
    let s = stack("", &[]);
    s.write("good.dat", b"ok");
    // A name a blob cannot carry: the copytool fails it with a reason.
    s.write("bad\u{1}name.dat", b"x");
    let o = s.flush("120s");
    assert_eq!(
        o.status.code(),
        Some(1),
        "flush must report the failure: {} {}\n{}",
        stdout(&o),
        stderr(&o),
        s.logs()
    );
    assert!(stdout(&o).contains("bad\u{1}name.dat"), "{}", stdout(&o));
    let st = s.status_json();
    assert_eq!(st["totalFilesFailed"], 1, "{st}");
    assert_eq!(st["currentIterationFilesFailed"], 1, "{st}");
    assert_eq!(st["everythingExported"], false);
    let ok = wait_until(Duration::from_secs(30), || {
        s.store.json_lines(&s.logs).iter().any(|l| {
            l["kind"] == "failure"
                && l["path"].as_str().is_some_and(|p| p.contains("bad"))
                && l["job"] == "autoexport"
        })
    });
    assert!(
        ok,
        "no failure entry from the daemon in the logging container: {:?}",
        s.store.json_lines(&s.logs)
    );
    assert!(s
        .store
        .json_lines(&s.logs)
        .iter()
        .any(|l| l["kind"] == "summary"));
    assert_eq!(s.blob_names(), vec!["good.dat"]);
}

#[test]
fn a_second_job_is_refused_naming_the_running_one() {
    let _serial = testkit::sim::one_at_a_time();
    let s = stack("", &[]);
    let o = s.cli(&["export", &s.mount().display().to_string()]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("autoexport"), "{}", stderr(&o));
    let o = s.cli(&["import", "--prefix", "x"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
}

#[test]
fn kill9_and_restart_exports_every_file_once() {
    let _serial = testkit::sim::one_at_a_time();
    let mut s = stack("", &[]);
    for i in 0..40 {
        s.write(&format!("d/f{i:02}"), format!("file {i}").as_bytes());
    }
    // Let the daemon get going, then kill it hard mid-way.
    wait_until(Duration::from_secs(30), || {
        s.status_json()["totalFilesExported"].as_u64().unwrap_or(0) >= 5
    });
    if let Some(d) = s.daemon.as_mut() {
        d.kill9();
    }
    s.start_daemon();
    let o = s.flush("180s");
    assert!(
        o.status.success(),
        "{} {}\n{}",
        stdout(&o),
        stderr(&o),
        s.logs()
    );
    let st = s.status_json();
    assert_eq!(
        st["totalFilesExported"], 41,
        "40 files + the directory, each once: {st}"
    );
    assert_eq!(st["totalFilesFailed"], 0);
    for i in 0..40 {
        let body = s.store.get(&s.container, &format!("d/f{i:02}"));
        assert_eq!(body, Some(format!("file {i}").into_bytes()), "d/f{i:02}");
    }
}

#[test]
fn sigterm_saves_state_and_a_restart_continues() {
    let _serial = testkit::sim::one_at_a_time();
    let mut s = stack("", &[]);
    s.write("x/a", b"a");
    let o = s.flush("120s");
    assert!(o.status.success(), "{}", stderr(&o));
    let before = s.status_json();
    let code = s
        .daemon
        .as_mut()
        .and_then(|d| d.stop(Duration::from_secs(20)));
    assert_eq!(code, Some(0), "{}", s.logs());
    assert!(!s.policy.socket.exists(), "socket removed on exit");
    let o = s.cli(&["status"]);
    assert_eq!(o.status.code(), Some(3), "daemon down: {}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot reach the daemon"),
        "{}",
        stderr(&o)
    );
    s.start_daemon();
    let after = s.status_json();
    assert_eq!(after["totalFilesExported"], before["totalFilesExported"]);
    assert_eq!(
        after["exportIterationCount"],
        before["exportIterationCount"]
    );
    s.write("x/b", b"b");
    let o = s.flush("120s");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        s.status_json()["totalFilesExported"],
        before["totalFilesExported"].as_u64().unwrap() + 1
    );
}

#[test]
fn disable_and_enable_are_reported_in_status() {
    let _serial = testkit::sim::one_at_a_time();
    let s = stack("", &[]);
    let o = s.cli(&["autoexport", "disable"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.status_json()["state"], "Disabled");
    let o = s.cli(&["flush", "--wait"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "flush refuses while disabled: {}",
        stderr(&o)
    );
    let o = s.cli(&["autoexport", "enable"]);
    assert!(o.status.success());
    assert_eq!(s.status_json()["state"], "InProgress");
    let jobs = stdout(&s.cli(&["jobs", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&jobs).unwrap();
    assert_eq!(v[0]["id"], "autoexport");
}
