//! The simulated coordinator where it must behave as Lustre's does (issue 12, issue 11 item 5),
//! through the `lustre` crate's safe API against liblustreapi_sim.so:
//! * an end by cookie from any registration is accepted, a FID that is not the request's is
//!   -EINVAL, an unknown cookie -ENOENT (`mdt_cdt_update_request`, `mdt_hsm_update_request_state`);
//! * a user cancel of a STARTED request is delivered only while below `max_requests`
//!   (`mdt_cdt_waiting_cb`);
//! * after an MDS restart a STARTED RESTORE is sent again, a STARTED ARCHIVE stays STARTED on disk,
//!   cannot be ended (-ENOENT) and holds no `max_requests` slot (`hsm_restore_cb`,
//!   `mdt_cdt_started_cb`);
//! * the KUC pipe holds 64 KiB; what does not fit waits for the reader and is still STARTED.

mod common;
use common::{start, whole};
use lustre::{Copytool, CopytoolAction, Fid, Mount, ProgressState, UserAction};
use std::time::{Duration, Instant};
use testkit::sim::Sim;

fn file(sim: &Sim, mnt: &Mount, name: &str) -> (std::path::PathBuf, Fid) {
    let p = sim.mount().join(name);
    std::fs::write(&p, name.as_bytes()).unwrap();
    let fid = mnt.path2fid(&p).unwrap();
    (p, fid)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The next action list, waiting up to 10 s (nonblocking copytools).
fn recv_within(ct: &Copytool, within: Duration) -> Option<lustre::ActionList> {
    let deadline = Instant::now() + within;
    loop {
        match ct.recv() {
            Ok(l) => return Some(l),
            Err(e) if e.errno() == Some(libc::EAGAIN) => {}
            Err(e) => panic!("recv: {e}"),
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_end_by_cookie_from_another_registration_is_accepted_and_checked() {
    let (sim, mnt) = start();
    let (_p, fid) = file(&sim, &mnt, "f");
    let a = Copytool::register(sim.mount(), &[], false).unwrap();
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fid], b"")
        .unwrap();
    let item = a.recv().unwrap().items[0].clone();
    let _running = a.begin(&item, -1, 0).unwrap();
    // "Another process" (a new copytool after a crash): not the agent the request went to.
    let b = Copytool::register(sim.mount(), &[], true).unwrap();
    let mut wrong = item.clone();
    wrong.fid.oid += 1000;
    wrong.dfid = wrong.fid;
    let e = b
        .begin_error(&wrong)
        .unwrap()
        .end(whole(), 0, libc::ECANCELED)
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EINVAL), "another FID: not ours");
    b.begin_error(&item)
        .unwrap()
        .end(whole(), 0, libc::ECANCELED)
        .unwrap();
    let e = b
        .begin_error(&item)
        .unwrap()
        .end(whole(), 0, libc::ECANCELED)
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT), "already ended");
    assert_eq!(
        mnt.hsm_current_action(&sim.mount().join("f"))
            .unwrap()
            .state,
        ProgressState::None
    );
}

#[test]
fn a_user_cancel_is_delivered_only_below_max_requests() {
    let (sim, mnt) = start();
    sim.set_param("hsm.max_requests", "1");
    sim.set_param("hsm.loop_period", "1");
    let (_p, fid) = file(&sim, &mnt, "f");
    let a = Copytool::register(sim.mount(), &[], true).unwrap();
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fid], b"")
        .unwrap();
    let item = recv_within(&a, Duration::from_secs(10)).unwrap().items[0].clone();
    let action = a.begin(&item, -1, 0).unwrap();
    mnt.hsm_request(UserAction::Cancel, 0, 0, &[fid], b"")
        .unwrap();
    assert!(
        recv_within(&a, Duration::from_secs(3)).is_none(),
        "no cancel while the one slot is taken"
    );
    assert!(sim.get_param(0, "hsm.actions").contains("status=STARTED"));
    sim.set_param("hsm.max_requests", "2");
    let cancel = recv_within(&a, Duration::from_secs(10)).expect("cancel once below");
    assert_eq!(cancel.items[0].action, CopytoolAction::Cancel);
    assert_eq!(cancel.items[0].cookie, item.cookie);
    action.end(whole(), 0, libc::ECANCELED).unwrap();
}

#[test]
fn after_an_mds_restart_archives_are_on_disk_only_and_restores_are_sent_again() {
    let (mut sim, mnt) = start();
    sim.set_param("hsm.max_requests", "2");
    let (pa, fa) = file(&sim, &mnt, "archiving");
    let (pr, fr) = file(&sim, &mnt, "restoring");
    let a = Copytool::register(sim.mount(), &[], false).unwrap();
    // `restoring`: archived and released, then a RESTORE begun.
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fr], b"")
        .unwrap();
    let it = a.recv().unwrap().items[0].clone();
    a.begin(&it, -1, 0).unwrap().end(whole(), 0, 0).unwrap();
    mnt.hsm_request(UserAction::Release, 0, 0, &[fr], b"")
        .unwrap();
    mnt.hsm_request(UserAction::Restore, 0, 0, &[fr], b"")
        .unwrap();
    let restore = a.recv().unwrap().items[0].clone();
    assert_eq!(restore.action, CopytoolAction::Restore);
    let _r = a.begin(&restore, -1, 0).unwrap();
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fa], b"")
        .unwrap();
    let archive = a.recv().unwrap().items[0].clone();
    let _w = a.begin(&archive, -1, 0).unwrap();
    drop(a);

    sim.kill9();
    sim.restart();
    sim.set_param("hsm.max_requests", "2");
    let actions = sim.get_param(0, "hsm.actions");
    let line = |c: u64| {
        actions
            .lines()
            .find(|l| l.contains(&format!("cookie=0/{c:#x} ")))
            .unwrap_or("")
            .to_string()
    };
    assert!(line(archive.cookie).contains("status=STARTED"), "{actions}");
    assert!(line(restore.cookie).contains("status=WAITING"), "{actions}");
    // A new agent gets the RESTORE again, never the ARCHIVE.
    let b = Copytool::register(sim.mount(), &[], true).unwrap();
    let again = recv_within(&b, Duration::from_secs(10)).expect("restore sent again");
    assert_eq!(again.items.len(), 1);
    assert_eq!(again.items[0].cookie, restore.cookie);
    // The reloaded ARCHIVE is in no memory list: its end is -ENOENT, it still shows RUNNING…
    let e = b
        .begin_error(&archive)
        .unwrap()
        .end(whole(), 0, libc::ECANCELED)
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT));
    assert_eq!(
        mnt.hsm_current_action(&pa).unwrap().state,
        ProgressState::Running
    );
    // …and takes no slot: with the RESTORE running (1 of 2), another ARCHIVE is sent.
    let rb = b.begin(&again.items[0], -1, 0).unwrap();
    let (_pc, fc) = file(&sim, &mnt, "other");
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fc], b"")
        .unwrap();
    let next = recv_within(&b, Duration::from_secs(10)).expect("a slot is free");
    assert_eq!(next.items[0].fid, fc);
    b.begin(&next.items[0], -1, 0)
        .unwrap()
        .end(whole(), 0, 0)
        .unwrap();
    rb.end(whole(), 0, 0).unwrap();
    assert!(!mnt.hsm_state(&pr).unwrap().is_released());
    // A user cancel (what an admin, or the copytool that journalled it, does) removes it.
    mnt.hsm_request(UserAction::Cancel, 0, 0, &[fa], b"")
        .unwrap();
    wait_for("the reloaded archive cancelled", || {
        mnt.hsm_current_action(&pa).unwrap().state == ProgressState::None
    });
}

#[test]
fn the_pipe_holds_64_kib_and_what_does_not_fit_waits_for_the_reader() {
    let (sim, mnt) = start();
    sim.set_param("hsm.max_requests", "5000");
    let n = 1500; // ~ 80 bytes per item: well over 64 KiB
    let fids: Vec<Fid> = (0..n)
        .map(|i| file(&sim, &mnt, &format!("f{i}")).1)
        .collect();
    let ct = Copytool::register(sim.mount(), &[], true).unwrap();
    mnt.hsm_request(UserAction::Archive, 0, 0, &fids, b"")
        .unwrap();
    // Everything counts as sent (STARTED) although the copytool has read nothing yet, and the
    // coordinator still answers.
    wait_for("all STARTED", || {
        sim.get_param(0, "hsm.actions")
            .lines()
            .filter(|l| l.contains("status=STARTED"))
            .count()
            == n
    });
    assert_eq!(
        mnt.hsm_current_action(&sim.mount().join("f0"))
            .unwrap()
            .state,
        ProgressState::Running
    );
    let mut got = std::collections::HashSet::new();
    while got.len() < n {
        let l = recv_within(&ct, Duration::from_secs(20)).expect("every item arrives intact");
        for it in l.items {
            assert!(got.insert(it.fid), "each item once");
        }
    }
    assert!(fids.iter().all(|f| got.contains(f)));
}
