//! Policy options (metadata, on_delete, on_rename), manual export and import jobs, cancel, the
//! policy file checks, SIGHUP and metrics, with real processes.

use e2e::stack::{Stack, StackOptions};
use e2e::util::{output_text as out, wait_until};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use std::time::Duration;

fn stack_with(extra: &[&str]) -> Stack {
    testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
    let mut s = Stack::new(StackOptions::default());
    s.edit_policy(|p| {
        for l in extra {
            p.extra.push(("autoexport".into(), l.to_string()));
        }
    });
    s.start_copytool(&[]);
    s.start_daemon();
    s
}

fn flush_ok(s: &Stack) {
    let o = s.flush("120s");
    assert!(o.status.success(), "flush: {}\n{}", out(&o), s.logs());
}

#[test]
fn default_policy_keeps_blobs_of_deleted_and_renamed_files() {
    let _serial = testkit::sim::one_at_a_time();
    let s = stack_with(&[]);
    s.write("k/a.dat", b"a");
    flush_ok(&s);
    std::fs::rename(s.mount().join("k/a.dat"), s.mount().join("k/b.dat")).unwrap();
    s.write("k/c.dat", b"c");
    flush_ok(&s);
    std::fs::remove_file(s.mount().join("k/c.dat")).unwrap();
    s.write("k/d.dat", b"d");
    flush_ok(&s);
    // Azure's behaviour: nothing deleted, the renamed file not exported under its new name.
    assert_eq!(s.blob_names(), vec!["k", "k/a.dat", "k/c.dat", "k/d.dat"]);
}

#[test]
fn on_delete_delete_and_on_rename_move_propagate() {
    let _serial = testkit::sim::one_at_a_time();
    let s = stack_with(&["on_delete = \"delete\"", "on_rename = \"move\""]);
    s.write("p/old/x.dat", b"x");
    s.write("p/old/sub/y.dat", b"y");
    s.write("p/gone.dat", b"g");
    flush_ok(&s);
    assert!(s.blob_names().contains(&"p/old/sub/y.dat".to_string()));
    std::fs::rename(s.mount().join("p/old"), s.mount().join("p/new")).unwrap();
    std::fs::remove_file(s.mount().join("p/gone.dat")).unwrap();
    s.write("p/marker.dat", b"m");
    flush_ok(&s);
    assert_eq!(
        s.blob_names(),
        vec![
            "p",
            "p/marker.dat",
            "p/new",
            "p/new/sub",
            "p/new/sub/y.dat",
            "p/new/x.dat"
        ],
        "{}",
        s.logs()
    );
    assert_eq!(
        s.store.get(&s.container, "p/new/sub/y.dat").as_deref(),
        Some(&b"y"[..])
    );
}

#[test]
fn metadata_sync_updates_permissions_and_ignore_does_not() {
    let _serial = testkit::sim::one_at_a_time();
    for (mode, expect) in [("sync", "0600"), ("ignore", "0644")] {
        let s = stack_with(&[&format!("metadata = \"{mode}\"")]);
        let f = s.write("m/f.dat", b"data");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        flush_ok(&s);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        s.write("m/after.dat", b"z");
        flush_ok(&s);
        let h = s.store.head(&s.container, "m/f.dat").expect("blob");
        assert_eq!(
            h.header("x-ms-meta-permissions"),
            Some(expect),
            "metadata = {mode}: {:?}",
            h.headers
        );
    }
}

#[test]
fn manual_export_then_import_round_trips_a_tree() {
    let _serial = testkit::sim::one_at_a_time();
    let s = stack_with(&[]);
    let o = s.cli(&["autoexport", "disable"]);
    assert!(o.status.success(), "{}", out(&o));
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    s.write("t/one.dat", b"first file");
    // A file striped over 4 OSTs in 4 MiB stripes in pool `flash`: an import recreates that.
    s.sim
        .create_striped(&s.mount().join("t/d/two.dat"), 4, "4M", "flash");
    s.write("t/d/two.dat", &big);
    std::os::unix::fs::symlink("one.dat", s.mount().join("t/ln")).unwrap();
    let o = s.cli(&[
        "export",
        &s.mount().join("t").display().to_string(),
        "--wait",
        "--json",
    ]);
    assert!(o.status.success(), "export: {}\n{}", out(&o), s.logs());
    let job: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(job["state"], "Completed");
    assert_eq!(job["percentComplete"], 100);
    assert_eq!(job["filesFailed"], 0);
    assert_eq!(
        s.blob_names(),
        vec!["t/d", "t/d/two.dat", "t/ln", "t/one.dat"]
    );

    // A hostile name under another prefix: the listing returns it as written, import refuses it
    // (one error, exit 1) and writes nothing for it, not even its parent directories.
    let hostile = s.store.put_raw(&s.container, b"h/x/../../evil", b"x");
    assert!(hostile.status < 300, "{hostile:?}");
    // And a blob whose layout metadata Lustre would refuse: refused, with the key named.
    let bad_layout = s
        .store
        .request(
            "PUT",
            &format!("/{}/h/bad-layout", s.container),
            &[],
            &[
                ("x-ms-blob-type", "BlockBlob"),
                ("x-ms-meta-lustre_stripe_count", "4"),
                ("x-ms-meta-lustre_stripe_size", "1000"),
            ],
            b"x",
        )
        .expect("put blob");
    assert!(bad_layout.status < 300, "{bad_layout:?}");
    let o = s.cli(&["import", "--prefix", "h", "--wait", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let job: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(job["totalBlobsWalked"], 2, "{job}");
    assert_eq!(job["totalErrors"], 2, "{job}");
    assert_eq!(job["totalBlobsImported"], 0, "{job}");
    assert!(!s.mount().join("evil").exists() && !s.mount().join("h").exists());
    let refused = |l: &serde_json::Value| {
        l["operation"] == "import"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("lustre_stripe_size") && e.contains("blob refused"))
    };
    assert!(
        wait_until(Duration::from_secs(30), || s
            .store
            .json_lines(&s.logs)
            .iter()
            .any(refused)),
        "the refusal names the key: {:?}",
        s.store.json_lines(&s.logs)
    );

    // Remove the tree locally, then import it back as released stubs.
    std::fs::remove_dir_all(s.mount().join("t")).unwrap();
    let o = s.cli(&["import", "--prefix", "t", "--wait", "--json"]);
    let job: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(job["state"], "Completed", "{job}");
    assert_eq!(job["importedFiles"], 2, "{job}");
    assert_eq!(job["importedDirectories"], 1, "{job}");
    assert_eq!(job["importedSymlinks"], 1, "{job}");
    assert_eq!(job["totalErrors"], 0, "{job}");
    // Our own blobs' metadata is applied as written: nothing coerced.
    assert_eq!(job["totalCoercedValues"], 0, "{job}");
    let two = s.mount().join("t/d/two.dat");
    assert!(
        s.hsm_state(&two).contains("released"),
        "{}",
        s.hsm_state(&two)
    );
    assert_eq!(
        std::fs::read_link(s.mount().join("t/ln")).unwrap().to_str(),
        Some("one.dat")
    );
    // Restore gives identical bytes.
    let r = s.sim.lfs(&["hsm_restore", &two.display().to_string()]);
    assert!(r.status.success(), "{}", out(&r));
    let ok = wait_until(Duration::from_secs(60), || {
        !s.hsm_state(&two).contains("released")
    });
    assert!(
        ok,
        "restore did not finish: {}\n{}",
        s.hsm_state(&two),
        s.logs()
    );
    assert_eq!(std::fs::read(&two).unwrap(), big);
    // The stub was created with the exported layout, and the restore kept it.
    let stripe = |opt: &str| {
        let o = s.sim.lfs(&["getstripe", opt, &two.display().to_string()]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(
        (stripe("-c"), stripe("-S"), stripe("-p")),
        ("4".into(), "4194304".into(), "flash".into())
    );
    // Importing again with Skip leaves the existing files alone.
    let o = s.cli(&[
        "import",
        "--prefix",
        "t",
        "--conflict",
        "Skip",
        "--wait",
        "--json",
    ]);
    let job: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        (
            job["preexistingFiles"].as_u64(),
            job["importedFiles"].as_u64()
        ),
        (Some(2), Some(0)),
        "{job}"
    );
}

#[test]
fn cancel_stops_a_manual_export() {
    let _serial = testkit::sim::one_at_a_time();
    let s = stack_with(&[]);
    assert!(s.cli(&["autoexport", "disable"]).status.success());
    // Hold requests in the coordinator queue so the job is still running when cancelled.
    s.sim.set_param("hsm.max_requests", "0");
    for i in 0..5 {
        s.write(&format!("c/f{i}"), b"data");
    }
    let o = s.cli(&["export", &s.mount().join("c").display().to_string()]);
    assert!(o.status.success(), "{}", out(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = s.cli(&["cancel", &id]);
    assert!(o.status.success(), "{}", out(&o));
    let ok = wait_until(Duration::from_secs(30), || {
        let o = s.cli(&["jobs", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|j| j["id"] == id.as_str() && j["state"] == "Canceled")
        })
    });
    assert!(ok, "job not canceled: {}", out(&s.cli(&["jobs"])));
    assert_eq!(s.cli(&["cancel", &id]).status.code(), Some(2));
    assert_eq!(s.cli(&["cancel", "export-999"]).status.code(), Some(5));
}

#[test]
fn a_bad_policy_file_names_file_line_and_key() {
    let _serial = testkit::sim::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    std::fs::write(&p, "[lustre]\nmount = \"/mnt/lustre\"\n\n[blob]\nurl = \"http://127.0.0.1:1/devstoreaccount1/x\"\n\n[autoexport]\nmin_age = \"5 parsecs\"\n").unwrap();
    let o = Command::new(testkit::bin_path("lustre-blob"))
        .arg("daemon")
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{}:8: autoexport.min_age: invalid duration \"5 parsecs\"",
            p.display()
        )),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let o = Command::new(testkit::bin_path("lustre-blob"))
        .arg("status")
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(testkit::bin_path("lustre-blob"))
        .args(["status", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sighup_reload_keeps_the_old_policy_when_the_new_one_is_bad_and_metrics_are_served() {
    let _serial = testkit::sim::one_at_a_time();
    testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = Stack::new(StackOptions {
        prefix: "a/".into(),
        ..StackOptions::default()
    });
    // The copytool serves `control.metrics` too: give the address to the daemon only.
    s.start_copytool(&[]);
    s.edit_policy(|p| {
        p.extra
            .push(("control".into(), format!("metrics = \"127.0.0.1:{port}\"")))
    });
    s.start_daemon();
    let pid = s.daemon.as_ref().and_then(|d| d.pid()).unwrap() as i32;
    // A broken file: the daemon keeps running with the old policy.
    let good = std::fs::read_to_string(&s.policy_path).unwrap();
    std::fs::write(&s.policy_path, format!("{good}\n[nonsense]\n")).unwrap();
    // SAFETY: kill(2) on the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let refused = wait_until(Duration::from_secs(10), || {
        s.daemon
            .as_ref()
            .is_some_and(|d| d.log().contains("policy reload refused"))
    });
    assert!(refused, "{}", s.logs());
    std::fs::write(&s.policy_path, &good).unwrap();
    s.write("a/in.dat", b"1");
    s.write("b/out.dat", b"2");
    flush_ok(&s);
    assert_eq!(s.blob_names(), vec!["a", "a/in.dat"]);
    // A good file with a new prefix takes effect.
    s.edit_policy(|p| p.prefix = "b/".into());
    // SAFETY: kill(2) on the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let log_ok = wait_until(Duration::from_secs(10), || {
        s.daemon
            .as_ref()
            .is_some_and(|d| d.log().contains("policy reloaded"))
    });
    assert!(log_ok, "{}", s.logs());
    s.write("b/out2.dat", b"3");
    flush_ok(&s);
    assert!(
        s.blob_names().contains(&"b/out2.dat".to_string()),
        "{:?}",
        s.blob_names()
    );
    // Prometheus text.
    let body = wait_until(Duration::from_secs(10), || {
        metrics(port).contains("lustre_blob_total_files_exported")
    });
    assert!(body, "{}", metrics(port));
    let m = metrics(port);
    assert!(
        m.contains("lustre_blob_oldest_unexported_change_age_seconds"),
        "{m}"
    );
    assert!(
        m.contains("# TYPE lustre_blob_iterations_completed counter"),
        "{m}"
    );
}

fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    // HTTP/1.1 keeps the connection open unless asked not to (as a real server does).
    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut s = String::new();
    let _ = c.read_to_string(&mut s);
    s
}
