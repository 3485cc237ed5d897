//! Many `lustre-sim mds` daemons starting and stopping at once on one shared mount table
//! (`LUSTRE_SIM_MOUNTTAB`): no entry of a running daemon may get lost, every fsname must
//! resolve, and a daemon's clean exit removes its own entry only.

use lustreapi_sim::mounts::liveness::{probe_socket, Owner, SockProbe};
use lustreapi_sim::mounts::{mount_of_fsname_in, table};
use lustreapi_sim::proto::sock_path;
use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::sim::{sim_bin_path, Sim, SimOptions};

const ROOT_FID: &str = "[0x200000007:0x1:0x0]";

/// `lustre-sim TOOL ARGS` resolving names through `tab` only (no `LUSTRE_SIM_MOUNT`).
fn cli(tab: &Path, tool: &str, args: &[&str]) -> Output {
    Command::new(sim_bin_path())
        .arg(tool)
        .args(args)
        .env("LUSTRE_SIM_MOUNTTAB", tab)
        .env_remove("LUSTRE_SIM_MOUNT")
        .output()
        .expect("running lustre-sim")
}

/// Starts one daemon per name, all at once (one thread each).
fn start_all(tab: &Path, n: usize) -> Vec<Sim> {
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                sc.spawn(|| {
                    Sim::start(SimOptions {
                        mounttab: Some(tab.to_path_buf()),
                        ..Default::default()
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("Sim::start panicked"))
            .collect()
    })
}

/// The fsname resolves: through `lfs fid2path FSNAME` and `lctl --device FS-MDT0000
/// changelog_register` (both look the name up in the table), the latter answering "clN".
fn assert_resolves(tab: &Path, sim: &Sim) {
    let fs = sim.fsname();
    let o = cli(tab, "lfs", &["fid2path", fs, ROOT_FID]);
    assert!(
        o.status.success(),
        "fid2path {fs}: {}; table:\n{}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(tab).unwrap_or_default()
    );
    let o = cli(
        tab,
        "lctl",
        &["--device", &sim.mdt_name(0), "changelog_register", "-n"],
    );
    assert!(
        o.status.success(),
        "changelog_register on {fs}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let user = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        user.strip_prefix("cl")
            .is_some_and(|n| n.parse::<u32>().is_ok()),
        "changelog_register on {fs} printed {user:?}"
    );
}

fn assert_does_not_resolve(tab: &Path, fsname: &str) {
    let o = cli(tab, "lfs", &["fid2path", fsname, ROOT_FID]);
    assert!(!o.status.success(), "{fsname} still resolves");
}

/// The table's entries as (fsname, pid, dir).
fn table_entries(tab: &Path) -> BTreeSet<(String, u32, PathBuf)> {
    table::read(tab)
        .into_iter()
        .map(|e| (e.fsname, e.owner.map(|o| o.pid).unwrap_or(0), e.dir))
        .collect()
}

fn expected(sims: &[Sim]) -> BTreeSet<(String, u32, PathBuf)> {
    sims.iter()
        .map(|s| {
            let dir = s.mount().canonicalize().expect("mount dir");
            (s.fsname().to_string(), s.pid().unwrap_or(0), dir)
        })
        .collect()
}

/// The keeper thread would put a lost entry back within a second and hide the loss; it
/// logs every restore, so no daemon may have logged one.
fn assert_no_entry_was_restored(sims: &[Sim]) {
    for s in sims {
        assert!(
            !s.log().contains("mount table entry"),
            "{}: {}",
            s.fsname(),
            s.log()
        );
    }
}

/// Puts two entries owned by this (living) test process into `tab`, whose daemons look
/// unreachable for the moment without being gone: "busy" listens with a full backlog
/// (connect: EAGAIN), "starting" has its socket file but does not listen yet
/// (ECONNREFUSED). Returns their directories and the busy listener (keep it alive).
fn add_unreachable_but_living_entries(tmp: &Path, tab: &Path) -> (PathBuf, PathBuf, UnixListener) {
    let mk = |name: &str| {
        let d = tmp.join(name);
        std::fs::create_dir_all(sock_path(&d).parent().expect("parent")).expect("mkdir");
        d
    };
    let (busy, starting) = (mk("busy"), mk("starting"));
    let l = UnixListener::bind(sock_path(&busy)).expect("bind busy");
    // SAFETY: re-listening on our own bound socket with the smallest backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    while probe_socket(&sock_path(&busy)) == SockProbe::Answers {}
    assert_eq!(
        probe_socket(&sock_path(&busy)),
        SockProbe::Inconclusive(libc::EAGAIN)
    );
    drop(UnixListener::bind(sock_path(&starting)).expect("bind starting"));
    let me = Some(Owner::current());
    let lines: String = [("busy", &busy), ("starting", &starting)]
        .iter()
        .map(|(fs, dir)| {
            let e = table::Entry {
                fsname: fs.to_string(),
                owner: me,
                dir: dir.to_path_buf(),
            };
            e.to_line() + "\n"
        })
        .collect();
    std::fs::write(tab, lines).expect("writing the table");
    (busy, starting, l)
}

#[test]
fn concurrent_daemons_keep_every_entry_and_remove_only_their_own() {
    testkit::sim::ensure_sim_built();
    let tmp = tempfile::tempdir().expect("tempdir");
    let tab = tmp.path().join("mounts");
    let (busy, starting, _busy_listener) = add_unreachable_but_living_entries(tmp.path(), &tab);
    let fakes: BTreeSet<_> = [("busy", &busy), ("starting", &starting)]
        .iter()
        .map(|(fs, d)| (fs.to_string(), std::process::id(), d.to_path_buf()))
        .collect();

    let mut first = start_all(&tab, 10);
    let want: BTreeSet<_> = expected(&first).union(&fakes).cloned().collect();
    assert_eq!(table_entries(&tab), want);
    for s in &first {
        assert_resolves(&tab, s);
    }

    // Stop half while as many new daemons start, all at once.
    let stopped: Vec<Sim> = first.drain(..5).collect();
    let stopped_names: Vec<String> = stopped.iter().map(|s| s.fsname().to_string()).collect();
    let second = std::thread::scope(|sc| {
        let stoppers: Vec<_> = stopped
            .into_iter()
            .map(|mut s| {
                sc.spawn(move || {
                    s.stop();
                    s
                })
            })
            .collect();
        let second = start_all(&tab, 5);
        for h in stoppers {
            h.join().expect("stop panicked");
        }
        second
    });

    let running: Vec<&Sim> = first.iter().chain(&second).collect();
    let want: BTreeSet<_> = [expected(&first), expected(&second), fakes]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(table_entries(&tab), want, "exactly the living daemons");
    for s in &running {
        assert_resolves(&tab, s);
    }
    for fs in &stopped_names {
        assert_does_not_resolve(&tab, fs);
    }
    // Unreachable for now is not gone: both names still resolve (the call then reports the
    // daemon's own error instead of "No such device").
    let tables = [tab.clone()];
    assert_eq!(mount_of_fsname_in(&tables, "busy"), Some(busy));
    assert_eq!(mount_of_fsname_in(&tables, "starting"), Some(starting));
    let o = cli(&tab, "lfs", &["fid2path", "starting", ROOT_FID]);
    let err = String::from_utf8_lossy(&o.stderr);
    // The call reached the mount and failed there (the library's ESHUTDOWN for a refused
    // connection), not at the lookup.
    assert!(!o.status.success(), "{err}");
    assert!(!err.contains("cannot find mount"), "{err}");
    assert!(err.contains("transport endpoint shutdown"), "{err}");
    assert_no_entry_was_restored(&first);
    assert_no_entry_was_restored(&second);
}

/// A crashed daemon (SIGKILL: socket file left behind, nobody listening, process gone)
/// stops resolving at once and its entry is dropped by the next rewrite; the others stay.
#[test]
fn a_killed_daemons_entry_is_ignored_and_pruned() {
    testkit::sim::ensure_sim_built();
    let tmp = tempfile::tempdir().expect("tempdir");
    let tab = tmp.path().join("mounts");
    let mut sims = start_all(&tab, 3);
    let mut crashed = sims.remove(0);
    crashed.kill9();
    assert!(
        table_entries(&tab)
            .iter()
            .any(|(fs, _, _)| fs == crashed.fsname()),
        "SIGKILL leaves the entry in the file"
    );
    assert_does_not_resolve(&tab, crashed.fsname());
    for s in &sims {
        assert_resolves(&tab, s);
    }

    // Any rewrite (here: another daemon's start) prunes the crashed daemon's entry.
    let later = start_all(&tab, 1);
    let want: BTreeSet<_> = expected(&sims).union(&expected(&later)).cloned().collect();
    assert_eq!(table_entries(&tab), want);

    // The crashed file system comes back under its name on its old directory.
    crashed.restart();
    assert_resolves(&tab, &crashed);
}

/// A mount whose socket cannot be probed conclusively (a full backlog: something listens
/// there) is not taken over: `mds` refuses instead of replacing the socket, and neither the
/// socket nor the table changes.
#[test]
fn a_busy_socket_on_the_mount_is_not_taken_over() {
    testkit::sim::ensure_sim_built();
    let tmp = tempfile::tempdir().expect("tempdir");
    let tab = tmp.path().join("mounts");
    let (busy, _, _busy_listener) = add_unreachable_but_living_entries(tmp.path(), &tab);
    let before = std::fs::read_to_string(&tab).expect("table");
    let ino = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).expect("stat socket");
    let sock_ino = ino(&sock_path(&busy));
    let o = Command::new(sim_bin_path())
        .args(["mds", "--fsname", "other", "--mount"])
        .arg(&busy)
        .env("LUSTRE_SIM_MOUNTTAB", &tab)
        .output()
        .expect("running lustre-sim mds");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    let root = busy.canonicalize().expect("canonical mount");
    let taken = format!(
        "{} is already served by a running simulator",
        root.display()
    );
    assert!(err.contains(&taken), "{err}");
    assert_eq!(ino(&sock_path(&busy)), sock_ino);
    assert_eq!(std::fs::read_to_string(&tab).expect("table"), before);
}
