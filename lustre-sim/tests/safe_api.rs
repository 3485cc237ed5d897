//! The simulator driven through the `lustre` crate's safe API, with `LUSTREAPI_LIB` pointing
//! at liblustreapi_sim.so: exactly the path the copytool and the policy engine take.

mod common;
use common::{start_with as start, whole};
use lustre::{
    changelog_clear, ChangelogReader, ChangelogRecord, Copytool, CopytoolAction, Extent, Fid,
    HsmEvent, ImportAttrs, ProgressState, RecordType, UserAction,
};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::sim::SimOptions;

/// Points the process at the simulator library before the first `lustre` call.
fn records(mdt: &str) -> Vec<ChangelogRecord> {
    let mut r = ChangelogReader::start(mdt, 0, false).expect("changelog start");
    let mut out = Vec::new();
    while let Some(rec) = r.recv().expect("recv") {
        out.push(rec);
    }
    out
}

fn hsm_events(rs: &[ChangelogRecord]) -> Vec<(HsmEvent, u8, bool, Fid)> {
    rs.iter()
        .filter_map(|r| r.hsm().map(|h| (h.event, h.error, h.dirty, r.tfid)))
        .collect()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn file_io_produces_records_in_order() {
    let (sim, mnt) = start(SimOptions::default());
    sim.register_changelog_user(0);
    let m = sim.mount();
    let settle = || {
        mnt.path2fid(m).unwrap();
    };
    std::fs::write(m.join("a"), b"1").unwrap();
    settle();
    std::fs::create_dir(m.join("d")).unwrap();
    settle();
    std::fs::rename(m.join("a"), m.join("d/b")).unwrap();
    settle();
    let x = std::ffi::CString::new(m.join("d/b").to_str().unwrap()).unwrap();
    let name = std::ffi::CString::new("trusted.lustre_blob").unwrap();
    assert_eq!(
        // SAFETY: plain libc call on live, correctly sized local buffers.
        unsafe { libc::setxattr(x.as_ptr(), name.as_ptr(), b"{}".as_ptr().cast(), 2, 0) },
        0
    );
    settle();
    std::fs::remove_file(m.join("d/b")).unwrap();
    let rs = records(&mnt.mdt_name(0));
    let types: Vec<RecordType> = rs.iter().map(|r| r.rtype).collect();
    assert_eq!(
        types,
        vec![
            RecordType::Create,
            RecordType::Close,
            RecordType::Mkdir,
            RecordType::Rename,
            RecordType::Setxattr,
            RecordType::Unlink
        ]
    );
    let file = rs[0].tfid;
    let root = mnt.path2fid(m).unwrap();
    let ren = rs[3].renamed().expect("rename extension");
    assert_eq!(
        (ren.sfid, ren.spfid, ren.old_name.as_slice()),
        (file, root, &b"a"[..])
    );
    assert_eq!(
        (rs[3].name.as_slice(), rs[3].pfid, rs[3].tfid.is_zero()),
        (&b"b"[..], rs[2].tfid, true)
    );
    assert_eq!(
        rs[1].flags_low(),
        0x42,
        "MDS_FMODE_WRITE + O_CREAT: the open created the file (real 2.16.1: CLOSE 0x42)"
    );
    assert_eq!(rs[4].xattr.as_deref(), Some("trusted.lustre_blob"));
    assert!(rs[5].is_last_unlink());
    assert!(rs.iter().all(|r| r.uid_gid == Some((0, 0))));
}

#[test]
fn fids_survive_a_daemon_restart() {
    let (mut sim, mnt) = start(SimOptions::default());
    let f = sim.mount().join("keep");
    std::fs::write(&f, b"x").unwrap();
    let fid = mnt.path2fid(&f).unwrap();
    sim.kill9();
    sim.restart();
    assert_eq!(mnt.path2fid(&f).unwrap(), fid);
    std::fs::hard_link(&f, sim.mount().join("other")).unwrap();
    let mut links = mnt.fid2path(&fid).unwrap();
    links.sort();
    assert_eq!(
        links,
        vec![
            Path::new("keep").to_path_buf(),
            Path::new("other").to_path_buf()
        ]
    );
}

#[test]
fn archive_reaches_the_agent_and_begin_progress_end_move_the_state() {
    let (sim, mnt) = start(SimOptions::default());
    sim.register_changelog_user(0);
    let f = sim.mount().join("f");
    std::fs::write(&f, b"0123456789").unwrap();
    let fid = mnt.path2fid(&f).unwrap();
    let ct = Copytool::register(sim.mount(), &[2], false).unwrap();
    mnt.hsm_request(UserAction::Archive, 2, 0, &[fid], b"iteration-1")
        .unwrap();
    let hal = ct.recv().unwrap();
    assert_eq!(
        (hal.version, hal.archive_id, hal.fsname.as_str()),
        (1, 2, sim.fsname())
    );
    assert_eq!(hal.items.len(), 1);
    let item = &hal.items[0];
    assert_eq!(
        (item.action, item.fid, item.dfid, item.extent),
        (CopytoolAction::Archive, fid, fid, whole())
    );
    assert_eq!(item.data, b"iteration-1");
    let action = ct.begin(item, -1, 0).unwrap();
    let mut data = Vec::new();
    use std::io::Read;
    std::fs::File::from(action.fd().unwrap())
        .read_to_end(&mut data)
        .unwrap();
    assert_eq!(data, b"0123456789");
    action
        .progress(
            Extent {
                offset: 0,
                length: 6,
            },
            10,
        )
        .unwrap();
    let ca = mnt.hsm_current_action(&f).unwrap();
    assert_eq!(
        (ca.state, ca.action, ca.location.length),
        (ProgressState::Running, UserAction::Archive, 6)
    );
    action.end(whole(), 0, 0).unwrap();
    let st = mnt.hsm_state(&f).unwrap();
    assert!(st.is_exists() && st.is_archived() && !st.is_dirty());
    assert_eq!(st.archive_id, 2);

    mnt.hsm_request(UserAction::Release, 0, 0, &[fid], b"")
        .unwrap();
    assert!(mnt.hsm_state(&f).unwrap().is_released());
    mnt.hsm_request(UserAction::Restore, 0, 0, &[fid], b"")
        .unwrap();
    let hal = ct.recv().unwrap();
    assert_eq!(hal.items[0].action, CopytoolAction::Restore);
    let action = ct.begin(&hal.items[0], -1, 0).unwrap();
    assert_ne!(action.dfid().unwrap(), fid);
    use std::os::unix::fs::FileExt;
    std::fs::File::from(action.fd().unwrap())
        .write_all_at(b"0123456789", 0)
        .unwrap();
    action.end(whole(), 0, 0).unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"0123456789");
    assert!(!mnt.hsm_state(&f).unwrap().is_released());
    let ev = hsm_events(&records(&mnt.mdt_name(0)));
    assert_eq!(
        ev,
        // as real 2.16.1 writes them (lustre-sim hsm_records): HE_STATE at dispatch and at
        // completion, HE_ARCHIVE; the release itself no HSM record; at restore completion the
        // attr_set with unchanged flags ("HSM 0x0", read as ARCHIVE), the swap's HE_RELEASE,
        // then HE_RESTORE
        vec![
            (HsmEvent::State, 0, false, fid),
            (HsmEvent::State, 0, false, fid),
            (HsmEvent::Archive, 0, false, fid),
            (HsmEvent::Archive, 0, false, fid),
            (HsmEvent::Release, 0, false, fid),
            (HsmEvent::Restore, 0, false, fid)
        ]
    );
    ct.unregister().unwrap();
}

#[test]
fn a_file_modified_during_the_copy_ends_ebusy_and_dirty() {
    let (sim, mnt) = start(SimOptions::default());
    let f = sim.mount().join("f");
    std::fs::write(&f, b"before").unwrap();
    let fid = mnt.path2fid(&f).unwrap();
    let ct = Copytool::register(sim.mount(), &[], false).unwrap();
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fid], b"")
        .unwrap();
    let hal = ct.recv().unwrap();
    let action = ct.begin(&hal.items[0], -1, 0).unwrap();
    std::fs::write(&f, b"after, longer").unwrap();
    let err = action.end(whole(), 0, 0).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EBUSY));
    let st = mnt.hsm_state(&f).unwrap();
    assert!(st.is_dirty() && st.is_exists() && !st.is_archived());
}

#[test]
fn a_killed_agent_mid_action_ends_canceled_after_the_timeout() {
    let (sim, mnt) = start(SimOptions::default());
    sim.register_changelog_user(0);
    sim.set_param("hsm.active_request_timeout", "2");
    sim.set_param("hsm.loop_period", "1");
    let f = sim.mount().join("f");
    std::fs::write(&f, b"x").unwrap();
    let fid = mnt.path2fid(&f).unwrap();
    let mut agent = Command::new(testkit::sim::sim_bin_path())
        .arg("test-agent")
        .arg(sim.mount())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(agent.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "registered");
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fid], b"")
        .unwrap();
    assert!(lines
        .next()
        .unwrap()
        .unwrap()
        .starts_with(&format!("ARCHIVE {fid} ")));
    wait_for("the agent to begin", || {
        mnt.hsm_current_action(&f).unwrap().state == ProgressState::Running
    });
    agent.kill().unwrap();
    agent.wait().unwrap();
    wait_for("the request to time out", || {
        mnt.hsm_current_action(&f).unwrap().state == ProgressState::None
    });
    let ev = hsm_events(&records(&mnt.mdt_name(0)));
    assert_eq!(
        ev,
        vec![
            // dispatch: mdt_hsm_set_exists
            (HsmEvent::State, 0, false, fid),
            (HsmEvent::Archive, libc::ECANCELED as u8, false, fid)
        ]
    );
    assert!(sim.get_param(0, "hsm.actions").contains("status=CANCELED"));
}

#[test]
fn cancel_reaches_the_running_agent() {
    let (sim, mnt) = start(SimOptions::default());
    let f = sim.mount().join("f");
    std::fs::write(&f, b"x").unwrap();
    let fid = mnt.path2fid(&f).unwrap();
    let ct = Copytool::register(sim.mount(), &[], false).unwrap();
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fid], b"")
        .unwrap();
    let hal = ct.recv().unwrap();
    let action = ct.begin(&hal.items[0], -1, 0).unwrap();
    mnt.hsm_request(UserAction::Cancel, 0, 0, &[fid], b"")
        .unwrap();
    let cancel = ct.recv().unwrap();
    assert_eq!(cancel.items[0].action, CopytoolAction::Cancel);
    assert_eq!(cancel.items[0].cookie, hal.items[0].cookie);
    let err = action
        .progress(
            Extent {
                offset: 0,
                length: 1,
            },
            1,
        )
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::ECANCELED));
    action.end(whole(), 0, libc::ECANCELED).unwrap();
    assert!(!mnt.hsm_state(&f).unwrap().is_archived());
}

#[test]
fn clear_purges_records() {
    let (sim, mnt) = start(SimOptions::default());
    let user = sim.register_changelog_user(0);
    let mdt = mnt.mdt_name(0);
    for i in 0..4 {
        std::fs::create_dir(sim.mount().join(format!("d{i}"))).unwrap();
    }
    assert_eq!(records(&mdt).len(), 4);
    changelog_clear(&mdt, &user, 3).unwrap();
    let left: Vec<u64> = records(&mdt).iter().map(|r| r.index).collect();
    assert_eq!(left, vec![4]);
    assert_eq!(
        changelog_clear(&mdt, "cl9", 4).unwrap_err().errno(),
        Some(libc::ENOENT)
    );
}

#[test]
fn two_mdts_keep_separate_logs() {
    let (sim, mnt) = start(SimOptions {
        mdts: 2,
        ..Default::default()
    });
    sim.register_changelog_user(0);
    sim.register_changelog_user(1);
    let mut on1 = None;
    for i in 0..32 {
        let d = sim.mount().join(format!("dir{i}"));
        std::fs::create_dir(&d).unwrap();
        if mnt.mdt_index(&mnt.path2fid(&d).unwrap()).unwrap() == 1 {
            on1 = Some(d);
            break;
        }
    }
    let d = on1.expect("a directory on MDT1");
    std::fs::write(d.join("f"), b"x").unwrap();
    let f = mnt.path2fid(&d.join("f")).unwrap();
    let r0 = records(&mnt.mdt_name(0));
    let r1 = records(&mnt.mdt_name(1));
    assert!(r1
        .iter()
        .any(|r| r.rtype == RecordType::Create && r.tfid == f));
    assert!(r0.iter().all(|r| r.tfid != f));
    assert_eq!(r1.first().map(|r| r.index), Some(1));
}

#[test]
fn kill9_and_restart_neither_lose_nor_duplicate_records() {
    let (mut sim, mnt) = start(SimOptions::default());
    sim.register_changelog_user(0);
    let m = sim.mount().to_path_buf();
    let writer = std::thread::spawn(move || {
        for i in 0..200 {
            if std::fs::write(m.join(format!("f{i}")), b"x").is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(10));
    sim.kill9();
    writer.join().unwrap();
    sim.restart();
    let rs = records(&mnt.mdt_name(0));
    let idx: Vec<u64> = rs.iter().map(|r| r.index).collect();
    assert_eq!(idx, (1..=rs.len() as u64).collect::<Vec<_>>());
    let mut created: Vec<Fid> = rs
        .iter()
        .filter(|r| r.rtype == RecordType::Create)
        .map(|r| r.tfid)
        .collect();
    assert_eq!(created.len(), 200);
    created.sort();
    created.dedup();
    assert_eq!(created.len(), 200);
}

#[test]
fn import_makes_a_released_stub() {
    let (sim, mnt) = start(SimOptions::default());
    let attrs = ImportAttrs {
        size: 4096,
        mode: 0o100600,
        uid: 7,
        gid: 8,
        atime_sec: 10,
        atime_nsec: 0,
        mtime_sec: 20,
        mtime_nsec: 5,
    };
    let fid = mnt
        .hsm_import(&sim.mount().join("stub"), 4, &attrs)
        .unwrap();
    assert_eq!(mnt.path2fid(&sim.mount().join("stub")).unwrap(), fid);
    let st = mnt.hsm_state(&sim.mount().join("stub")).unwrap();
    assert!(st.is_released() && st.is_archived() && st.is_exists());
    assert_eq!(st.archive_id, 4);
    assert_eq!(
        std::fs::metadata(sim.mount().join("stub")).unwrap().len(),
        4096
    );
}

#[test]
fn a_nonblocking_copytool_gets_eagain_then_its_work() {
    let (sim, mnt) = start(SimOptions::default());
    let f = sim.mount().join("f");
    std::fs::write(&f, b"x").unwrap();
    let fid = mnt.path2fid(&f).unwrap();
    let ct = Copytool::register(sim.mount(), &[], true).unwrap();
    assert_eq!(ct.recv().unwrap_err().errno(), Some(libc::EAGAIN));
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fid], b"")
        .unwrap();
    let fd = ct.fd().unwrap();
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: plain libc call on live, correctly sized local buffers.
    assert_eq!(unsafe { libc::poll(&mut p, 1, 30_000) }, 1);
    assert_eq!(ct.recv().unwrap().items[0].fid, fid);
}

#[test]
fn one_restore_squeezes_in_above_max_requests() {
    let (sim, mnt) = start(SimOptions::default());
    let ct = Copytool::register(sim.mount(), &[], false).unwrap();
    // an archived, released file to restore
    let r = sim.mount().join("r");
    std::fs::write(&r, b"data").unwrap();
    let rfid = mnt.path2fid(&r).unwrap();
    common::archive_and_release(&mnt, &ct, rfid);
    sim.set_param("hsm.max_requests", "1");
    let a = sim.mount().join("a");
    std::fs::write(&a, b"x").unwrap();
    let afid = mnt.path2fid(&a).unwrap();
    mnt.hsm_request(UserAction::Archive, 0, 0, &[afid], b"")
        .unwrap();
    assert_eq!(ct.recv().unwrap().items[0].fid, afid);
    // the limit is reached, yet the restore is sent
    mnt.hsm_request(UserAction::Restore, 0, 0, &[rfid], b"")
        .unwrap();
    let hal = ct.recv().unwrap();
    assert_eq!(
        (hal.items[0].action, hal.items[0].fid),
        (CopytoolAction::Restore, rfid)
    );
    assert_eq!(
        sim.get_param(0, "hsm.actions")
            .matches("status=STARTED")
            .count(),
        2
    );
}

#[test]
fn a_dead_agent_is_dropped_only_by_the_mdt_that_hit_its_pipe() {
    let (sim, mnt) = start(SimOptions {
        mdts: 2,
        ..Default::default()
    });
    sim.set_param("hsm.active_request_timeout", "2");
    sim.set_param("hsm.loop_period", "1");
    // one file per MDT
    let mut files: [Option<(std::path::PathBuf, Fid)>; 2] = [None, None];
    for i in 0..32 {
        let d = sim.mount().join(format!("d{i}"));
        std::fs::create_dir(&d).unwrap();
        let k = mnt.mdt_index(&mnt.path2fid(&d).unwrap()).unwrap() as usize;
        if files[k].is_none() {
            std::fs::write(d.join("f"), b"x").unwrap();
            files[k] = Some((d.join("f"), mnt.path2fid(&d.join("f")).unwrap()));
        }
        if files.iter().all(Option::is_some) {
            break;
        }
    }
    let [Some((p0, f0)), Some((p1, f1))] = files else {
        panic!("no directory on one of the MDTs")
    };
    let mut agent = Command::new(testkit::sim::sim_bin_path())
        .arg("test-agent")
        .arg(sim.mount())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(agent.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "registered");
    agent.kill().unwrap();
    agent.wait().unwrap();
    // MDT0 hits the dead pipe: EPIPE, the agent is gone from MDT0, the request waits
    mnt.hsm_request(UserAction::Archive, 0, 0, &[f0], b"")
        .unwrap();
    assert_eq!(
        mnt.hsm_current_action(&p0).unwrap().state,
        ProgressState::Waiting
    );
    assert_eq!(sim.get_param(0, "hsm.agents"), "");
    assert!(sim.get_param(1, "hsm.agents").contains("archive_id=ANY"));
    // MDT1's send "succeeds" into the forgotten pipe: STARTED until the timeout cancels it
    mnt.hsm_request(UserAction::Archive, 0, 0, &[f1], b"")
        .unwrap();
    assert_eq!(
        mnt.hsm_current_action(&p1).unwrap().state,
        ProgressState::Running
    );
    wait_for("the timeout on MDT1", || {
        mnt.hsm_current_action(&p1).unwrap().state == ProgressState::None
    });
    assert!(sim.get_param(1, "hsm.actions").contains("status=CANCELED"));
}

#[test]
fn write_then_rename_is_create_close_rename_even_when_fast() {
    let (mut sim, mnt) = start(SimOptions::default());
    sim.register_changelog_user(0);
    let m = sim.mount().to_path_buf();
    // no barrier between the steps: the daemon may see the creation only after the rename
    std::fs::write(m.join("tmp"), b"content").unwrap();
    std::fs::rename(m.join("tmp"), m.join("final")).unwrap();
    let fid = mnt.path2fid(&m.join("final")).unwrap();
    let rs = records(&mnt.mdt_name(0));
    let types: Vec<RecordType> = rs.iter().map(|r| r.rtype).collect();
    assert_eq!(
        types,
        vec![RecordType::Create, RecordType::Close, RecordType::Rename],
        "{rs:#?}"
    );
    assert!(rs
        .iter()
        .all(|r| r.tfid == fid || r.renamed().is_some_and(|e| e.sfid == fid)));
    // the FID is on the inode: it survives a restart with no new records
    sim.kill9();
    sim.restart();
    assert_eq!(mnt.path2fid(&m.join("final")).unwrap(), fid);
    let after = records(&mnt.mdt_name(0));
    assert_eq!(after.len(), 3, "{after:#?}");
}

#[test]
fn a_directory_made_and_renamed_fast_is_still_watched() {
    let (sim, mnt) = start(SimOptions::default());
    sim.register_changelog_user(0);
    let m = sim.mount();
    std::fs::create_dir(m.join("new")).unwrap();
    std::fs::rename(m.join("new"), m.join("dir")).unwrap();
    mnt.path2fid(m).unwrap();
    std::fs::write(m.join("dir/inner"), b"x").unwrap();
    let inner = mnt.path2fid(&m.join("dir/inner")).unwrap();
    let rs = records(&mnt.mdt_name(0));
    let types: Vec<RecordType> = rs.iter().map(|r| r.rtype).collect();
    assert_eq!(
        types,
        vec![
            RecordType::Mkdir,
            RecordType::Rename,
            RecordType::Create,
            RecordType::Close
        ],
        "{rs:#?}"
    );
    assert_eq!(rs[2].tfid, inner);
}

#[test]
fn a_clean_restart_keeps_records_users_and_hsm_state() {
    let (mut sim, mnt) = start(SimOptions::default());
    let user = sim.register_changelog_user(0);
    let f = sim.mount().join("f");
    std::fs::write(&f, b"x").unwrap();
    let fid = mnt.path2fid(&f).unwrap();
    mnt.hsm_state_set(
        &f,
        u64::from(lustre::lustre_sys::HS_EXISTS | lustre::lustre_sys::HS_ARCHIVED),
        0,
        3,
    )
    .unwrap();
    let before = records(&mnt.mdt_name(0));
    assert_eq!(before.len(), 3, "CREATE, CLOSE, HSM state: {before:#?}");
    changelog_clear(&mnt.mdt_name(0), &user, 2).unwrap();
    sim.stop(); // SIGTERM: snapshot, empty journal
    sim.restart();
    let after = records(&mnt.mdt_name(0));
    assert_eq!(
        &after[..],
        &before[2..],
        "cleared records purged, the rest intact"
    );
    let st = mnt.hsm_state(&f).unwrap();
    assert_eq!((st.is_archived(), st.archive_id), (true, 3));
    assert_eq!(mnt.path2fid(&f).unwrap(), fid);
    // the user still exists with its clear point: clearing below it is refused
    assert_eq!(
        changelog_clear(&mnt.mdt_name(0), &user, 1)
            .unwrap_err()
            .errno(),
        Some(libc::EINVAL)
    );
    std::fs::create_dir(sim.mount().join("next")).unwrap();
    let last = records(&mnt.mdt_name(0)).last().map(|r| r.index);
    assert_eq!(
        last,
        Some(before.last().unwrap().index + 1),
        "indices continue after the restart"
    );
}
