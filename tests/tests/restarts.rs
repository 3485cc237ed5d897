//! Fault suite, restarts with the coordinator's DEFAULT `active_request_timeout` (3600 s): a
//! killed copytool (issue 12 item 1) and a killed MDS (issue 11 item 5) must not stall the export
//! until that timeout. Real processes; the simulator keeps a dead agent's requests STARTED, and
//! after an MDS restart reloads its action log as Lustre's coordinator does (`hsm_restore_cb`).
//! The deadlines below are generous bounds on "within a minute", not timing measurements.

use std::time::{Duration, Instant};

use e2e::stack::{Stack, StackOptions};
use e2e::util::{sha256_hex, wait_until, Rng};

/// Writes `n` small files (one in ten a few 64 KiB blocks) under `dir/`.
fn write_files(stack: &Stack, rng: &mut Rng, dir: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let rel = format!("{dir}/d{:02}/f{i:04}.bin", i / 50);
            let size = if i % 10 == 0 {
                rng.range(65_536, 200_000)
            } else {
                rng.range(1, 4096)
            } as usize;
            let body = rng.bytes(size);
            stack.write(&rel, &body);
            (rel, sha256_hex(&body))
        })
        .collect()
}

/// Flushes until one flush succeeds or `deadline` passes; returns whether it did.
fn flush_by(stack: &Stack, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let o = stack.flush(&format!("{}s", left.as_secs().max(1)));
        if o.status.success() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn verify(stack: &Stack, files: &[(String, String)]) {
    let mut wrong = Vec::new();
    for (rel, sum) in files {
        match stack.store.get(&stack.container, rel) {
            Some(b) if sha256_hex(&b) == *sum => {}
            Some(_) => wrong.push(format!("{rel}: content differs")),
            None => wrong.push(format!("{rel}: no blob")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong, first: {:?}\n{}",
        wrong.len(),
        &wrong[..wrong.len().min(20)],
        stack.logs()
    );
}

fn exported(stack: &Stack) -> u64 {
    stack.status_json()["totalFilesExported"]
        .as_u64()
        .unwrap_or(0)
}

/// What the coordinator still holds STARTED (for messages).
fn started(stack: &Stack) -> usize {
    started_lines(stack).len()
}

/// Every line any process logged about the files of the STARTED requests.
fn about_started(stack: &Stack) -> String {
    let mut out = String::new();
    for l in started_lines(stack).iter().take(4) {
        let fid = l
            .split_whitespace()
            .find_map(|w| w.strip_prefix("fid="))
            .unwrap_or("");
        out.push_str(&format!("---- {fid}\n"));
        for x in stack.log_lines_about(fid, 30) {
            out.push_str(&x);
            out.push('\n');
        }
    }
    out
}

fn started_lines(stack: &Stack) -> Vec<String> {
    stack
        .sim
        .get_param(0, "hsm.actions")
        .lines()
        .filter(|l| l.contains("status=STARTED"))
        .map(str::to_string)
        .collect()
}

/// Cookies begun and not ended in the copytool journals under `dir`.
fn journalled(dir: &std::path::Path) -> std::collections::HashSet<u64> {
    let mut live = std::collections::HashSet::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for l in text.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            match f.as_slice() {
                ["B", c, ..] => {
                    if let Ok(c) = u64::from_str_radix(c, 16) {
                        live.insert(c);
                    }
                }
                ["E", c] => {
                    if let Ok(c) = u64::from_str_radix(c, 16) {
                        live.remove(&c);
                    }
                }
                _ => {}
            }
        }
    }
    live
}

fn started_cookies(stack: &Stack) -> Vec<u64> {
    started_lines(stack)
        .iter()
        .filter_map(|l| {
            let c = l.split("cookie=0/0x").nth(1)?.split_whitespace().next()?;
            u64::from_str_radix(c, 16).ok()
        })
        .collect()
}

/// Freezes the copytool (SIGSTOP) at a moment when every request the coordinator holds STARTED
/// for it is in its journal. An action list still in the pipe when a copytool dies never reached
/// it: no copytool can end those (as on Lustre, only `active_request_timeout` or an admin's
/// `lfs hsm_cancel` can), so the kill is not allowed to land in that window.
fn freeze_with_nothing_unread(stack: &Stack) {
    let pid = stack.copytools[0].pid().unwrap_or(0) as libc::pid_t;
    let dir = stack.policy.state_dir.join("copytool");
    for _ in 0..50 {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(300));
        let held = journalled(&dir);
        if started_cookies(stack).iter().all(|c| held.contains(c)) {
            return;
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the copytool never had everything it was sent in its journal");
}

#[test]
fn kill9_of_the_only_copytool_mid_export_with_the_default_timeout_loses_under_a_minute() {
    let seed = Rng::seed_from_env();
    eprintln!("restarts: seed {seed}");
    let mut rng = Rng::new(seed);
    let mut stack = Stack::new(StackOptions::default());
    stack.start_copytool(&["--max-actions", "16"]);
    stack.start_daemon();
    let files = write_files(&stack, &mut rng, "ct", 400);
    assert!(
        wait_until(Duration::from_secs(120), || exported(&stack) >= 40),
        "export never got going: {}",
        stack.logs()
    );
    freeze_with_nothing_unread(&stack);
    stack.copytools[0].kill9();
    let orphans = started(&stack);
    eprintln!("killed the copytool with {orphans} requests STARTED");
    stack.copytools.clear();
    stack.start_copytool(&["--max-actions", "16"]);
    let restarted = Instant::now();
    let ok = flush_by(&stack, restarted + Duration::from_secs(60));
    assert!(
        ok,
        "not every file exported within 60 s of the restart ({} exported, STARTED: {:?}):\n{}\n{}",
        exported(&stack),
        started_lines(&stack),
        about_started(&stack),
        stack.logs()
    );
    eprintln!("exported within {:?} of the restart", restarted.elapsed());
    verify(&stack, &files);
}

#[test]
fn kill9_of_the_mds_mid_export_with_the_default_timeout_resumes_within_a_minute() {
    let seed = Rng::seed_from_env();
    eprintln!("restarts: seed {seed}");
    let mut rng = Rng::new(seed);
    let mut stack = Stack::new(StackOptions {
        max_requests: 64,
        ..Default::default()
    });
    stack.start_copytool(&[]);
    stack.start_daemon();
    let files = write_files(&stack, &mut rng, "mds", 200);
    assert!(
        wait_until(Duration::from_secs(120), || exported(&stack) >= 20),
        "export never got going: {}",
        stack.logs()
    );
    stack.sim.kill9();
    stack.sim.restart();
    stack.sim.set_param("hsm.max_requests", "64");
    let reloaded = started(&stack);
    eprintln!("MDS restarted with {reloaded} requests STARTED");
    // The copytool loses its coordinator and exits; a service manager starts it again.
    for ct in stack.copytools.iter_mut() {
        if !wait_until(Duration::from_secs(30), || !ct.alive()) {
            ct.kill9();
        }
    }
    stack.copytools.clear();
    stack.start_copytool(&[]);
    if !stack.daemon.as_mut().is_some_and(|d| d.alive()) {
        stack.start_daemon();
    }
    let restarted = Instant::now();
    let ok = flush_by(&stack, restarted + Duration::from_secs(90));
    assert!(
        ok,
        "the export did not resume within 90 s of the restart ({} exported, STARTED: {:?}):\n{}\n{}",
        exported(&stack),
        started_lines(&stack),
        about_started(&stack),
        stack.logs()
    );
    eprintln!("exported within {:?} of the restart", restarted.elapsed());
    verify(&stack, &files);
}
