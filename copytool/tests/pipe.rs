//! The copytool reads the coordinator's pipe continuously (issue 12 item 3): items sent while
//! every slot is busy are already STARTED at the coordinator, so they are read, begun at once and
//! kept alive with progress until a slot frees, instead of timing out unread in the pipe (and,
//! past 64 KiB, blocking the client's kernel thread).

use e2e::copytool_suite as harness;

use std::time::Duration;

use harness::{pattern, Env};

#[test]
fn items_waiting_for_a_slot_are_read_begun_and_kept_alive_past_the_request_timeout() {
    let env = Env::start("");
    env.sim.set_param("hsm.active_request_timeout", "5");
    env.sim.set_param("hsm.loop_period", "1");
    // One slot, and a first archive that takes well over the timeout (3 MiB at 256 KiB/s).
    let ct = env.copytool(&["--max-actions", "1", "-b", "256KiB", "-u", "1"]);
    let big = env.write("q/big.bin", &pattern(3 << 20, 1));
    env.hsm("hsm_archive", &big, None);
    env.wait_until("big archive running", Duration::from_secs(30), || {
        env.lfs(&["hsm_action", big.to_str().unwrap()])
            .1
            .contains("RUNNING")
    });
    let small: Vec<_> = (0..5)
        .map(|i| env.write(&format!("q/small{i}.txt"), format!("small {i}").as_bytes()))
        .collect();
    for p in &small {
        env.hsm("hsm_archive", p, None);
    }
    env.wait_state(&big, "exists archived", &[&ct]);
    for p in &small {
        env.wait_state(p, "exists archived", &[&ct]);
    }
    let actions = env.actions();
    assert!(
        !actions.contains("status=CANCELED") && !actions.contains("status=FAILED"),
        "no queued request may time out: {actions}\n{}",
        ct.log()
    );
}
