//! File layouts through the `lustre` crate against the simulator: what a file has by default,
//! what a create, an import and a RESTORE into a volatile file opened with O_LOV_DELAY_CREATE
//! give it, and what Lustre refuses (a second layout, data written without one).

mod common;
use common::{start, whole};
use lustre::{Copytool, CopytoolAction, ImportAttrs, Layout, Mount, Striping, UserAction};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use testkit::sim::Sim;

fn striped() -> Striping {
    Striping::new(4, 4 << 20, Some("flash")).unwrap()
}

fn striping_of(path: &std::path::Path) -> Option<Striping> {
    Layout::of_path(path).unwrap().striping().unwrap()
}

#[test]
fn a_plain_file_has_the_file_system_default() {
    let (sim, _mnt) = start();
    let f = sim.mount().join("plain");
    std::fs::write(&f, b"x").unwrap();
    let l = Layout::of_file(std::fs::File::open(&f).unwrap().as_fd()).unwrap();
    assert_eq!(
        (
            l.stripe_count().unwrap(),
            l.stripe_size().unwrap(),
            l.pool().unwrap()
        ),
        (Some(1), Some(1 << 20), None)
    );
    assert_eq!(l.striping().unwrap(), Some(Striping::lustre_default()));
}

#[test]
fn a_file_created_with_a_layout_keeps_it_and_refuses_another() {
    let (sim, _mnt) = start();
    let f = sim.mount().join("wide");
    let layout = Layout::from_striping(&striped()).unwrap();
    let file = layout.create_file(&f, 0o644).unwrap();
    file.write_all_at(b"data", 0).unwrap();
    assert_eq!(striping_of(&f), Some(striped()));
    // Lustre: a file that has a layout refuses another (EEXIST), by fd as by create.
    let again = Layout::from_striping(&Striping::lustre_default()).unwrap();
    assert_eq!(
        again.apply_to(file.as_fd()).unwrap_err().errno(),
        Some(libc::EEXIST)
    );
    assert_eq!(
        again.create_file(&f, 0o644).unwrap_err().errno(),
        Some(libc::EEXIST)
    );
    assert_eq!(striping_of(&f), Some(striped()));
}

#[test]
fn invalid_values_are_refused_by_the_setters() {
    let _ = start();
    let mut l = Layout::new().unwrap();
    assert_eq!(
        (l.stripe_count().unwrap(), l.stripe_size().unwrap()),
        (None, None)
    );
    assert_eq!(l.striping().unwrap(), None);
    assert_eq!(
        l.set_stripe_count(0).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        l.set_stripe_size(1000).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        l.set_pool("sixteen-chars-xx").unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    // `fsname.pool` names the pool.
    l.set_pool("lustre.flash").unwrap();
    assert_eq!(l.pool().unwrap().as_deref(), Some("flash"));
}

/// Archives `f`, releases it and starts its RESTORE; the begun action's volatile file was
/// opened with `open_flags`.
fn released_and_restoring(
    sim: &Sim,
    mnt: &Mount,
    f: &std::path::Path,
    ct: &Copytool,
    open_flags: i32,
) -> lustre::CopyAction {
    let fid = mnt.path2fid(f).unwrap();
    common::archive_and_release(mnt, ct, fid);
    mnt.hsm_request(UserAction::Restore, 0, 0, &[fid], b"")
        .unwrap();
    let hal = ct.recv().unwrap();
    assert_eq!(hal.items[0].action, CopytoolAction::Restore);
    let _ = sim;
    ct.begin(&hal.items[0], -1, open_flags).unwrap()
}

#[test]
fn a_restore_into_a_delayed_volatile_file_gives_the_file_the_layout_set_on_it() {
    let (mut sim, mnt) = start();
    let f = sim.mount().join("f");
    std::fs::write(&f, b"0123456789").unwrap();
    let ct = Copytool::register(sim.mount(), &[], false).unwrap();
    let action =
        released_and_restoring(&sim, &mnt, &f, &ct, lustre::lustre_sys::O_LOV_DELAY_CREATE);
    let out = std::fs::File::from(action.fd().unwrap());
    Layout::from_striping(&striped())
        .unwrap()
        .apply_to(out.as_fd())
        .unwrap();
    assert_eq!(
        Layout::of_file(out.as_fd()).unwrap().striping().unwrap(),
        Some(striped())
    );
    out.write_all_at(b"0123456789", 0).unwrap();
    action.end(whole(), 0, 0).unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"0123456789");
    assert_eq!(striping_of(&f), Some(striped()));
    // Kept across a restart of the MDS, like the file's other attributes.
    ct.unregister().unwrap();
    sim.restart();
    let _mnt = Mount::open(sim.mount()).unwrap();
    assert_eq!(striping_of(&f), Some(striped()));
}

#[test]
fn a_volatile_file_created_without_delay_has_a_layout_already() {
    let (sim, mnt) = start();
    let f = sim.mount().join("f");
    std::fs::write(&f, b"abc").unwrap();
    let ct = Copytool::register(sim.mount(), &[], false).unwrap();
    let action = released_and_restoring(&sim, &mnt, &f, &ct, 0);
    let out = std::fs::File::from(action.fd().unwrap());
    let err = Layout::from_striping(&striped())
        .unwrap()
        .apply_to(out.as_fd())
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST));
    out.write_all_at(b"abc", 0).unwrap();
    action.end(whole(), 0, 0).unwrap();
    assert_eq!(striping_of(&f), Some(Striping::lustre_default()));
}

#[test]
fn data_written_to_a_delayed_volatile_file_without_a_layout_fails_the_restore() {
    let (sim, mnt) = start();
    let f = sim.mount().join("f");
    std::fs::write(&f, b"abc").unwrap();
    let ct = Copytool::register(sim.mount(), &[], false).unwrap();
    let action =
        released_and_restoring(&sim, &mnt, &f, &ct, lustre::lustre_sys::O_LOV_DELAY_CREATE);
    std::fs::File::from(action.fd().unwrap())
        .write_all_at(b"abc", 0)
        .unwrap();
    assert_eq!(
        action.end(whole(), 0, 0).unwrap_err().errno(),
        Some(libc::EBADF)
    );
    assert!(mnt.hsm_state(&f).unwrap().is_released());
}

#[test]
fn an_import_creates_the_stub_with_the_striping_given() {
    let (sim, mnt) = start();
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
    let stub = sim.mount().join("stub");
    mnt.hsm_import_striped(&stub, 1, &attrs, &striped())
        .unwrap();
    assert_eq!(striping_of(&stub), Some(striped()));
    let plain = sim.mount().join("plain-stub");
    mnt.hsm_import(&plain, 1, &attrs).unwrap();
    assert_eq!(striping_of(&plain), Some(Striping::lustre_default()));
}

#[test]
fn lfs_setstripe_creates_a_striped_file_and_getstripe_shows_it() {
    let (sim, _mnt) = start();
    let f = sim.mount().join("s");
    let fs = f.to_str().unwrap();
    let o = sim.lfs(&["setstripe", "-c", "4", "-S", "4M", "-p", "flash", fs]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(striping_of(&f), Some(striped()));
    let o = sim.lfs(&["getstripe", "-c", fs]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "4");
    let o = sim.lfs(&["getstripe", fs]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("lmm_stripe_size:   4194304"), "{text}");
    assert!(text.contains("lmm_pool:          flash"), "{text}");
    // An existing file keeps its layout.
    let o = sim.lfs(&["setstripe", "-c", "2", fs]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("exists"),
        "{o:?}"
    );
    // lfs checks values as the library does.
    let o = sim.lfs(&[
        "setstripe",
        "-S",
        "1000",
        sim.mount().join("t").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Invalid argument"),
        "{o:?}"
    );
}
