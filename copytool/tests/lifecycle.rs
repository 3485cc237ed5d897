//! Agent lifecycle end to end: several agents, a killed agent, clean stop, command line errors,
//! metrics.

use e2e::copytool_suite as harness;

use std::process::Command;
use std::time::Duration;

use harness::{pattern, Env, BLOCK};

#[test]
fn two_copytools_share_the_work() {
    let env = Env::start("");
    let slow = ["--blocks-in-flight", "1", "-u", "100ms"];
    let a = env.copytool(&slow);
    let b = env.copytool(&slow);
    let running = |p: &std::path::Path| {
        env.lfs(&["hsm_action", p.to_str().unwrap()])
            .1
            .contains("RUNNING")
    };
    let (d0, d1) = (pattern(1500 * BLOCK, 1), pattern(1500 * BLOCK, 2));
    let f0 = env.write("share/f0", &d0);
    let f1 = env.write("share/f1", &d1);
    env.hsm("hsm_archive", &f0, None);
    env.wait_until("f0 running", Duration::from_secs(60), || running(&f0));
    // Freeze both agents so f0 is certainly still in flight when f1 is dispatched: the
    // coordinator then hands f1 to the agent with fewer requests, the other one.
    a.pause();
    b.pause();
    assert!(
        !a.log().contains(" done ") && !b.log().contains(" done "),
        "f0 finished too early"
    );
    env.hsm("hsm_archive", &f1, None);
    env.wait_until("f1 dispatched", Duration::from_secs(60), || running(&f1));
    a.resume();
    b.resume();
    env.wait_state(&f0, "exists archived", &[&a, &b]);
    env.wait_state(&f1, "exists archived", &[&a, &b]);
    assert_eq!(env.blob("share/f0"), Some(d0));
    assert_eq!(env.blob("share/f1"), Some(d1));
    // "done" is logged right after the end that made the file archived.
    env.wait_until("both ends logged", Duration::from_secs(10), || {
        a.log().matches(" done ").count() + b.log().matches(" done ").count() == 2
    });
    let (la, lb) = (a.log(), b.log());
    let (na, nb) = (la.matches(" done ").count(), lb.matches(" done ").count());
    assert_eq!((na, nb), (1, 1), "one file each:\n{la}\n----\n{lb}");
}

#[test]
fn a_killed_copytool_s_request_is_cancelled_and_a_reissue_succeeds_elsewhere() {
    let env = Env::start("");
    env.sim.set_param("hsm.active_request_timeout", "3");
    env.sim.set_param("hsm.loop_period", "1");
    // A journal of its own: B (another host, as far as journals go) cannot end A's request.
    let own = env.dir.path().join("journal-a");
    let mut a = env.copytool(&[
        "--blocks-in-flight",
        "1",
        "-u",
        "100ms",
        "--journal-dir",
        own.to_str().unwrap(),
    ]);
    let data = pattern(1500 * BLOCK, 5);
    let p = env.write("kill/big", &data);
    env.hsm("hsm_archive", &p, None);
    env.wait_until("archive running", Duration::from_secs(60), || {
        env.lfs(&["hsm_action", p.to_str().unwrap()])
            .1
            .contains("RUNNING")
    });
    a.pause();
    assert!(
        !a.log().contains(" done "),
        "upload finished before the kill"
    );
    a.kill9();
    let b = env.copytool(&[]);
    env.wait_until(
        "request cancelled after active_request_timeout",
        Duration::from_secs(60),
        || env.actions().contains("status=CANCELED"),
    );
    assert!(
        env.blob("kill/big").is_none(),
        "the killed upload committed nothing"
    );
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&b]);
    assert_eq!(env.blob("kill/big"), Some(data));
}

#[test]
fn sigterm_stops_cleanly_and_unregisters() {
    let env = Env::start("");
    let pid_file = env.dir.path().join("ct.pid");
    let mut ct = env.copytool(&["--pid-file", pid_file.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        ct.pid().expect("running").to_string()
    );
    // A second copytool with the same pid file refuses to start.
    let (code, err) = run(&[
        "--config",
        env.policy.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        env.sim.mount().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("locked"), "{err}");
    let p = env.write("t/f", b"x");
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    assert!(!env.sim.get_param(0, "hsm.agents").trim().is_empty());
    ct.signal(libc::SIGTERM);
    assert_eq!(
        ct.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        ct.log()
    );
    assert!(ct.log().contains("unregistered"), "{}", ct.log());
    assert!(!pid_file.exists(), "pid file removed at exit");
    env.wait_until("agent gone", Duration::from_secs(10), || {
        env.sim.get_param(0, "hsm.agents").trim().is_empty()
    });
}

#[test]
fn unmount_ends_the_copytool_cleanly() {
    let mut env = Env::start("");
    let mut ct = env.copytool(&[]);
    env.sim.stop();
    assert_eq!(
        ct.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        ct.log()
    );
}

fn run(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lhsmtool_blob"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn wrong_flags_or_policy_are_one_line_and_exit_2() {
    let (code, err) = run(&["--no-such-flag", "/mnt/lustre"]);
    assert_eq!(code, 2);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("lhsmtool_blob: "), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("policy.toml");
    std::fs::write(&bad, "[lustre]\nmount = \"/mnt/lustre\"\n[blob]\nurl = \"http://127.0.0.1:1/devstoreaccount1/c\"\n[copytool]\nblock_size = \"tiny\"\n").unwrap();
    let (code, err) = run(&["--config", bad.to_str().unwrap(), "/mnt/lustre"]);
    assert_eq!(code, 2);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("copytool.block_size"), "{err}");

    let (code, err) = run(&["--config", "/nonexistent/policy.toml", "/mnt/lustre"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = run(&["--archive", "1"]);
    assert_eq!(code, 2);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(
        err.trim_end(),
        "lhsmtool_blob: missing MOUNTPOINT (try --help)"
    );

    // An unusable credential file: refused at start, one line naming the file, never its content.
    std::fs::write(dir.path().join("bad.key"), "NOT-BASE64-SECRET-51d0!!").unwrap();
    std::fs::create_dir(dir.path().join("a-dir")).unwrap();
    for (key, file) in [
        ("account_key_file", "missing.key"),
        ("account_key_file", "a-dir"),
        ("account_key_file", "bad.key"),
        ("sas_token_file", "missing.sas"),
        ("connection_string_file", "missing.conn"),
    ] {
        let path = dir.path().join(file);
        let policy = dir.path().join("cred.toml");
        std::fs::write(&policy, format!("[lustre]\nmount = \"/mnt/lustre\"\n[blob]\nurl = \"http://127.0.0.1:1/devstoreaccount1/c\"\nuse_emulator = true\n{key} = {:?}\n", path.display().to_string())).unwrap();
        let (code, err) = run(&["--config", policy.to_str().unwrap(), "/mnt/lustre"]);
        assert_eq!(code, 2, "{key}={file}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(!err.contains("51d0"), "secret leaked: {err}");
    }
    let (code, _) = run(&["--help"]);
    assert_eq!(code, 0);
}

#[test]
fn metrics_endpoint_counts_actions() {
    let env = Env::start("");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let ct = env.copytool(&["--metrics", &addr]);
    let p = env.write("m/f", &pattern(1000, 1));
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    let scrape = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        // HTTP/1.1 keeps the connection open unless asked not to.
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    // The counters move right after the action's end, which is what made the file archived.
    env.wait_until("archive counted", Duration::from_secs(10), || {
        // Labels in name order, as the encoder writes them.
        scrape().lines().any(|l| {
            l.starts_with("lustre_blob_copytool_actions_total{action=\"archive\"")
                && l.contains("result=\"ok\"} 1")
        })
    });
    let body = scrape();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("direction=\"archive\"} 1000"), "{body}");
}

#[test]
fn sigterm_mid_upload_aborts_within_the_bound_and_commits_nothing() {
    let env = Env::start("");
    let mut ct = env.copytool(&[
        "--blocks-in-flight",
        "1",
        "-u",
        "100ms",
        "--shutdown-timeout",
        "10ms",
    ]);
    let p = env.write("t/big", &pattern(1500 * BLOCK, 8));
    env.hsm("hsm_archive", &p, None);
    // Bytes moved, not only RUNNING: a list the coordinator sent may still wait in the
    // copytool's queue, and a SIGTERM then refuses it without any upload to abort.
    env.wait_bytes_moved(&p);
    ct.pause();
    assert!(
        !ct.log().contains(" done "),
        "upload finished before the signal"
    );
    ct.signal(libc::SIGTERM);
    ct.resume();
    assert_eq!(
        ct.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        ct.log()
    );
    assert!(
        ct.log().contains("aborting in-flight actions"),
        "{}",
        ct.log()
    );
    assert!(
        env.actions().contains("status=FAILED"),
        "ended, not left STARTED: {}",
        env.actions()
    );
    assert!(
        env.blob("t/big").is_none(),
        "an aborted upload commits nothing"
    );
    assert!(!env.flags(&p).contains(&"archived".to_string()));
}

#[test]
fn daemon_mode_detaches_and_still_serves() {
    let env = Env::start("");
    let pid_file = env.dir.path().join("daemon.pid");
    let mut ct = env.copytool(&["--daemon", "--pid-file", pid_file.to_str().unwrap()]);
    assert_eq!(
        ct.wait_exit(Duration::from_secs(10)),
        Some(0),
        "the foreground process exits"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(Some(pid as u32), ct.pid());
    let p = env.write("daemon/f", b"served by the daemon");
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    env.wait_until("daemon gone", Duration::from_secs(30), || {
        !pid_file.exists() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
}

#[test]
fn bandwidth_paces_a_running_archive_and_sighup_changes_its_rate() {
    // 16 KiB/s from the policy file: the 40-block file would take 160 s.
    let env = Env::start("[copytool]\nbandwidth = \"16KiB\"\n");
    let ct = env.copytool(&[]);
    let content = pattern(40 * BLOCK, 5);
    let p = env.write("bw/big", &content);
    env.hsm("hsm_archive", &p, None);
    // Paced mid-stream: the transfer started and moves bytes, and is not done.
    env.wait_until("archive moving bytes", Duration::from_secs(60), || {
        let out = env.lfs(&["hsm_action", p.to_str().unwrap()]).1;
        out.contains("RUNNING") && !out.contains("(0 bytes moved)")
    });
    assert!(!env.flags(&p).contains(&"archived".to_string()));
    assert!(env.blob("bw/big").is_none());
    // A reload lifting the limit (no `bandwidth` key) applies to the transfer already running.
    env.rewrite_policy("");
    ct.signal(libc::SIGHUP);
    env.wait_state(&p, "exists archived", &[&ct]);
    assert_eq!(env.blob("bw/big"), Some(content));
    assert!(ct.log().contains("policy reloaded"), "{}", ct.log());
}

/// liblustreapi's own messages (here `llapi_hsm_copytool_register`'s "cannot start copytool on
/// '%s'", which the simulator emits as the library does) reach our log through the error
/// callback, not the library's own stderr format (issue 12 item 8).
#[test]
fn the_library_s_own_messages_go_into_our_log() {
    let env = Env::start("");
    env.sim.set_param("hsm_control", "shutdown");
    let o = Command::new(env!("CARGO_BIN_EXE_lhsmtool_blob"))
        .arg("--config")
        .arg(&env.policy)
        .arg("--journal-dir")
        .arg(env.dir.path().join("journal"))
        .arg(env.sim.mount())
        .envs(env.sim.env())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("cannot start copytool on"))
        .unwrap_or_else(|| panic!("the library's message is missing:\n{err}"));
    assert!(
        line.contains("ERROR") && line.contains("liblustreapi"),
        "logged through tracing, target liblustreapi: {line}"
    );
    assert!(
        !err.contains("(6)\n") && !err.contains("No such device or address (6)"),
        "not the library's default stderr format:\n{err}"
    );
}
