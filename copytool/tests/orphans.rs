//! What a killed copytool leaves at the coordinator, and how the next one ends it (issue 12 items
//! 1 and 4), against a simulator that keeps a dead agent's requests STARTED until
//! `active_request_timeout` (left at its default, 3600 s, in these tests) and accepts their end by
//! cookie from any process (`mdt_cdt_update_request`).

use e2e::copytool_suite as harness;

use std::time::Duration;

use harness::{pattern, Env, BLOCK};

const BIG: usize = 1500 * BLOCK;
const SLOW: [&str; 4] = ["--blocks-in-flight", "1", "-u", "100ms"];

/// Archives `rel` with a frozen copytool `a` (after it moved some bytes), then kills it.
fn kill_mid_archive(env: &Env, a: &mut harness::Copytool, rel: &str) -> std::path::PathBuf {
    let p = env.write(rel, &pattern(BIG, 7));
    env.hsm("hsm_archive", &p, None);
    env.wait_until("archive running", Duration::from_secs(60), || {
        let (_, out) = env.lfs(&["hsm_action", p.to_str().unwrap()]);
        out.contains("RUNNING") && !out.contains("(0 bytes moved)")
    });
    a.pause();
    assert!(
        !a.log().contains(" done "),
        "upload finished before the kill"
    );
    a.kill9();
    p
}

fn running(env: &Env, p: &std::path::Path) -> bool {
    env.lfs(&["hsm_action", p.to_str().unwrap()])
        .1
        .contains("RUNNING")
}

#[test]
fn a_restarted_copytool_ends_what_a_killed_one_left_started() {
    let env = Env::start("");
    let mut a = env.copytool(&SLOW);
    let p = kill_mid_archive(&env, &mut a, "orphan/big.bin");
    assert!(running(&env, &p), "the coordinator keeps it STARTED");
    // The next copytool of this host (same journal) ends it at start, by cookie.
    let b = env.copytool(&[]);
    env.wait_until(
        "the orphan ended long before active_request_timeout",
        Duration::from_secs(60),
        || !running(&env, &p),
    );
    assert!(
        b.log()
            .contains("ended a request a previous copytool left running"),
        "{}",
        b.log()
    );
    assert!(env.blob("orphan/big.bin").is_none(), "nothing committed");
    // The file is not stuck: archiving it again works at once.
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&b]);
    assert_eq!(env.blob("orphan/big.bin").map(|b| b.len()), Some(BIG));
    // Once over, nothing is left in the journal for the copytool after this one.
    let c = env.copytool(&[]);
    assert!(
        !c.log().contains("requests left by a previous copytool"),
        "{}",
        c.log()
    );
}

#[test]
fn a_cancel_of_a_request_nobody_runs_is_answered_so_its_slot_frees() {
    let env = Env::start("");
    let own = env.dir.path().join("journal-a");
    let mut args: Vec<&str> = SLOW.to_vec();
    args.extend(["--journal-dir", own.to_str().unwrap()]);
    let mut a = env.copytool(&args);
    let p = kill_mid_archive(&env, &mut a, "orphan/cancelled.bin");
    // Another journal (another host): only the admin's cancel can free the orphan early.
    let b = env.copytool(&[]);
    assert!(running(&env, &p));
    env.hsm("hsm_cancel", &p, None);
    env.wait_until(
        "the copytool answered the cancel of an unknown cookie",
        Duration::from_secs(60),
        || {
            b.log()
                .contains("cancel for an action not running here: ended it")
        },
    );
    env.wait_until("request over", Duration::from_secs(60), || {
        !running(&env, &p)
    });
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&b]);
}

#[test]
fn a_cancel_is_delivered_only_below_max_requests() {
    // mdt_cdt_waiting_cb: with every slot taken by the killed copytool's request, the admin's
    // cancel waits; the copytool of the same host ends the orphan from its journal instead.
    let env = Env::start("");
    env.sim.set_param("hsm.max_requests", "1");
    let own = env.dir.path().join("journal-a");
    let mut args: Vec<&str> = SLOW.to_vec();
    args.extend(["--journal-dir", own.to_str().unwrap()]);
    let mut a = env.copytool(&args);
    let p = kill_mid_archive(&env, &mut a, "orphan/full.bin");
    let b = env.copytool(&[]);
    env.hsm("hsm_cancel", &p, None);
    std::thread::sleep(Duration::from_secs(3));
    assert!(running(&env, &p), "cancel held back: {}", env.actions());
    assert!(!b.log().contains("cancel for an action"), "{}", b.log());
    // A copytool with A's journal (its host) ends the orphan; the slot frees, the cancel finds
    // nothing left to cancel.
    let c = env.copytool(&["--journal-dir", own.to_str().unwrap()]);
    env.wait_until(
        "orphan ended from the journal",
        Duration::from_secs(60),
        || !running(&env, &p),
    );
    assert!(
        c.log()
            .contains("ended a request a previous copytool left running"),
        "{}",
        c.log()
    );
}

#[test]
fn remove_of_a_deleted_file_succeeds_on_lustre_2_16_estale() {
    let env = Env::start("");
    let v216 = [("LUSTRE_SIM_VERSION", "2.16")];
    let ct = env.copytool_env(&[], &v216);
    let p = env.write("gone/file.txt", b"soon deleted");
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    // The REMOVE reaches a frozen copytool; the file is deleted before it is served.
    ct.pause();
    env.hsm("hsm_remove", &p, None);
    let remove_line = || {
        env.actions()
            .lines()
            .find(|l| l.contains("action=REMOVE"))
            .unwrap_or("")
            .to_string()
    };
    env.wait_until("remove dispatched", Duration::from_secs(30), || {
        remove_line().contains("status=STARTED")
    });
    std::fs::remove_file(&p).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    ct.resume();
    env.wait_until("remove over", Duration::from_secs(60), || {
        let l = remove_line();
        !l.is_empty() && !l.contains("status=STARTED")
    });
    assert!(
        remove_line().contains("status=SUCCEED"),
        "REMOVE of a gone file must succeed: {}\n{}",
        env.actions(),
        ct.log()
    );
    assert!(!ct.log().contains("action failed"), "{}", ct.log());
}
