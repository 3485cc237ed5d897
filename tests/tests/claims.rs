//! Issue 11: "exported" is said only when it is true. Real processes (Azurite, lustre-sim,
//! `lhsmtool_blob`, `lustre-blob daemon`), each scenario one an admin met:
//!
//! * the store goes away while files are written: nothing becomes a final failure, `status`
//!   and `flush` say "not exported" until the blobs exist, and the files are exported once the
//!   store is back, without anyone touching them again;
//! * a failure recorded long before `flush --wait` is still reported by it;
//! * a file appended to during its export is re-exported, never counted as failed;
//! * a second daemon on the same state directory is refused, naming the first one's pid.

use e2e::util::output_text as text;
use std::time::{Duration, Instant};

use e2e::stack::{Stack, StackOptions};
use e2e::util::wait_until;

fn up(opts: StackOptions) -> Stack {
    let mut s = Stack::new(opts);
    s.start_copytool(&[]);
    s.start_daemon();
    s
}

#[test]
fn a_store_outage_never_ends_in_a_false_exported_and_the_files_follow_when_it_is_back() {
    let s = up(StackOptions::default());
    s.store.kill9();
    let files: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| (format!("out/f{i}.dat"), format!("content {i}").into_bytes()))
        .collect();
    for (rel, body) in &files {
        s.write(rel, body);
    }
    // The files are tried and meet the outage (the copytool gives up on a request after its
    // own retries): they wait out a back-off, none fails for good.
    let mut st = serde_json::Value::Null;
    let waited = wait_until(Duration::from_secs(240), || {
        st = s.status_json();
        st["waitingFiles"].as_u64().unwrap_or(0) >= 1
    });
    assert!(waited, "files never waited for the store: {}", s.logs());
    // One snapshot: what waits, and why.
    assert_eq!(st["everythingExported"], false, "{st}");
    assert_eq!(st["totalFilesFailed"], 0, "{st}");
    assert_eq!(st["standingFailures"], 0, "{st}");
    assert!(
        st["statusMessage"]
            .as_str()
            .unwrap_or("")
            .contains("wait to be tried again"),
        "status says why it waits: {st}"
    );
    let st = s.status_json();
    assert_eq!(st["everythingExported"], false, "{st}");
    assert_eq!(st["totalFilesFailed"], 0, "{st}");
    let human = text(&s.cli(&["status"]));
    assert!(human.contains("Everything exported: no"), "{human}");
    // A flush during the outage does not say "exported".
    let o = s.flush("3s");
    assert_eq!(o.status.code(), Some(6), "flush timed out: {}", text(&o));

    // The store comes back (empty containers made again); one more file is written.
    s.store.restart();
    s.write("out/after.dat", b"after the outage");
    let started = Instant::now();
    let o = s.flush("180s");
    assert!(
        o.status.success(),
        "flush after the outage: {}\n{}",
        text(&o),
        s.logs()
    );
    eprintln!("exported {:?} after the store came back", started.elapsed());
    for (rel, body) in files
        .iter()
        .chain([("out/after.dat".to_string(), b"after the outage".to_vec())].iter())
    {
        assert_eq!(
            s.store.get(&s.container, rel).as_deref(),
            Some(body.as_slice()),
            "{rel} has its blob"
        );
    }
    let st = s.status_json();
    assert_eq!(st["totalFilesFailed"], 0, "{st}");
    assert_eq!(st["everythingExported"], true, "{st}");
}

#[test]
fn a_deleted_export_container_makes_files_wait_not_fail_until_it_is_back() {
    let s = up(StackOptions::default());
    s.write("c/first.dat", b"before");
    assert!(s.flush("60s").status.success());
    s.store.delete_container(&s.container);
    for i in 0..5 {
        s.write(&format!("c/f{i}.dat"), format!("f{i}").as_bytes());
    }
    let waited = wait_until(Duration::from_secs(240), || {
        s.status_json()["waitingFiles"].as_u64().unwrap_or(0) >= 1
    });
    assert!(waited, "files never waited for the container: {}", s.logs());
    let st = s.status_json();
    assert_eq!(st["totalFilesFailed"], 0, "{st}");
    assert_eq!(st["everythingExported"], false, "{st}");
    assert_ne!(s.flush("3s").status.code(), Some(0));
    // The admin makes the container again (empty): the waiting files follow by themselves.
    s.store.create_container(&s.container);
    let o = s.flush("180s");
    assert!(o.status.success(), "{}\n{}", text(&o), s.logs());
    for i in 0..5 {
        assert_eq!(
            s.store.get(&s.container, &format!("c/f{i}.dat")).as_deref(),
            Some(format!("f{i}").as_bytes())
        );
    }
    assert_eq!(s.status_json()["totalFilesFailed"], 0);
}

#[test]
fn a_failure_recorded_before_the_flush_is_reported_by_it() {
    let s = up(StackOptions::default());
    s.write("n/ok.txt", b"fine");
    s.write("n/bad\nname.txt", b"a name no blob can carry");
    let failed = wait_until(Duration::from_secs(60), || {
        s.status_json()["totalFilesFailed"].as_u64().unwrap_or(0) >= 1
    });
    assert!(failed, "the name never failed: {}", s.logs());
    std::thread::sleep(Duration::from_secs(3));
    let o = s.flush("60s");
    assert_eq!(
        o.status.code(),
        Some(1),
        "flush must report it: {}",
        text(&o)
    );
    let out = text(&o);
    assert!(out.contains("bad\nname.txt"), "{out}");
    assert!(out.contains("1 files failed"), "{out}");
    let st = s.status_json();
    assert_eq!(st["everythingExported"], false, "{st}");
    // Still reported by a later flush: the failure stands until the file is fixed.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.flush("60s").status.code(), Some(1));
    // Fixed by the admin (renamed into a carriable name, written again): nothing stands.
    std::fs::remove_file(s.mount().join("n/bad\nname.txt")).expect("rm");
    s.write("n/good-name.txt", b"a name no blob can carry");
    let o = s.flush("60s");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(s.status_json()["everythingExported"], true);
}

#[test]
fn a_file_appended_to_during_its_export_is_re_exported_not_failed() {
    let s = up(StackOptions::default());
    // Big enough that every copy overlaps with an append (64 KiB blocks, 4 in flight).
    let big = vec![7u8; 24 << 20];
    let path = s.write("grow/log.bin", &big);
    let stop_at = Instant::now() + Duration::from_secs(4);
    let mut appended = 0;
    while Instant::now() < stop_at {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open for append");
        f.write_all(b"one more line\n").expect("append");
        appended += 1;
        drop(f);
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = s.flush("180s");
    assert!(o.status.success(), "{}\n{}", text(&o), s.logs());
    let want = std::fs::read(&path).expect("read");
    assert_eq!(
        s.store.get(&s.container, "grow/log.bin").map(|b| b.len()),
        Some(want.len()),
        "the blob is the final content ({appended} appends)"
    );
    let st = s.status_json();
    assert_eq!(st["totalFilesFailed"], 0, "{st}");
    // The logging container: no failure entry for it; at most one "re-exported" line per
    // iteration.
    let lines = s.store.json_lines(&s.logs);
    let about: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["path"] == "grow/log.bin")
        .collect();
    assert!(
        about.iter().all(|l| l["kind"] != "failure"),
        "no failure entry: {about:?}"
    );
    let requeued: Vec<u64> = about
        .iter()
        .filter(|l| l["kind"] == "requeued")
        .map(|l| l["iteration"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        !requeued.is_empty(),
        "the appends overlapped a copy, which says so: {about:?}"
    );
    let distinct: std::collections::BTreeSet<u64> = requeued.iter().copied().collect();
    assert_eq!(
        requeued.len(),
        distinct.len(),
        "once per iteration: {requeued:?}"
    );
}

#[test]
fn a_second_daemon_on_the_same_state_directory_is_refused_naming_the_first() {
    let s = up(StackOptions::default());
    let first = s.daemon.as_ref().and_then(|d| d.pid()).expect("daemon pid");
    let mut other = s.policy.clone();
    other.socket = s.dir.path().join("other.sock");
    let other_path = s.dir.path().join("other.toml");
    other.write(&other_path);
    let o = std::process::Command::new(testkit::bin_path("lustre-blob"))
        .envs(s.sim.env())
        .args(["daemon", "--config"])
        .arg(&other_path)
        .output()
        .expect("run a second daemon");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "the second daemon ran: {err}");
    assert!(
        err.contains(&format!("pid {first}")) && err.contains("in use"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // The first one is unharmed.
    s.write("x/a.txt", b"a");
    assert!(s.flush("60s").status.success());
}
