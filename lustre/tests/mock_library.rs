//! Drives the FFI wrappers through a real C library loaded at run time: a small mock of
//! liblustreapi (tests/mock/liblustreapi_mock.c) compiled with the system C compiler. Each
//! scenario runs in a child process with LUSTREAPI_LIB pointing at the mock, so the
//! process-wide function table is the mock's, and reads back the mock's call trace.

use lustre::wire::{encode_changelog, encode_hal};
use lustre::{
    ActionItem, ActionList, ChangelogReader, ChangelogRecord, CopyAction, Copytool, CopytoolAction,
    Extent, Fid, ImportAttrs, Mount, Nid, RecordType, RenameExt, UserAction,
};
use std::ffi::{c_char, CStr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

const CHILD: &str = "LUSTRE_MOCK_CHILD";

/// Compiles the mock once per source version (into cargo's per-target temporary directory,
/// named by a hash of the source, built under a temporary name and renamed into place).
fn mock_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mock/liblustreapi_mock.c");
        let text = std::fs::read(&src).unwrap();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut hasher);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let lib = dir.join(format!("liblustreapi_mock-{:016x}.so", hasher.finish()));
        if lib.exists() {
            return lib;
        }
        let tmp = dir.join(format!("liblustreapi_mock.{}.tmp", std::process::id()));
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O0", "-Wall", "-Wextra", "-Werror"])
            .args(["-Wno-unused-parameter", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .expect("the C compiler (cc) that links Rust programs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &lib).unwrap();
        lib
    })
}

/// Runs `body` in a child process of this test binary that loads the mock.
fn in_child(name: &str, body: fn()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .env("LUSTREAPI_LIB", mock_lib())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {name} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "child {name} ran nothing:\n{stdout}"
    );
}

/// The mock library (the same loaded object as the function table's).
fn mock() -> &'static libloading::Library {
    static LIB: OnceLock<libloading::Library> = OnceLock::new();
    LIB.get_or_init(|| {
        let path = std::env::var_os("LUSTREAPI_LIB").unwrap();
        // SAFETY: loads the mock built by this test; dlopen returns the already-loaded object.
        unsafe { libloading::Library::new(path) }.unwrap()
    })
}

fn trace() -> String {
    // SAFETY: `mock_trace` has this signature in the mock and returns a NUL-terminated buffer.
    unsafe {
        let f = mock()
            .get::<unsafe extern "C" fn() -> *const c_char>(b"mock_trace\0")
            .unwrap();
        CStr::from_ptr(f()).to_string_lossy().into_owned()
    }
}

fn push(symbol: &[u8], bytes: &[u8]) {
    // SAFETY: the mock's push functions copy `len` bytes from the pointer.
    unsafe {
        let f = mock()
            .get::<unsafe extern "C" fn(*const u8, usize)>(symbol)
            .unwrap();
        f(bytes.as_ptr(), bytes.len());
    }
}

fn count(trace: &str, needle: &str) -> usize {
    trace.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn mount_calls() {
    in_child("mount_calls", || {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let m = Mount::open(&dir).unwrap();
        assert_eq!(m.root(), dir);
        assert_eq!(m.fsname(), "mockfs");
        assert_eq!(m.mdt_name(0), "mockfs-MDT0000");
        assert_eq!(m.instance_name().unwrap(), "mockfs-ffff8881");

        let paths = m.fid2path(&Fid::new(0x200000401, 1, 0)).unwrap();
        let long = PathBuf::from("L".repeat(5000));
        assert_eq!(
            paths,
            [PathBuf::from("dir/a"), PathBuf::from("dir/b"), long]
        );
        let t = trace();
        assert_eq!(count(&t, "pathlen=4096 recno=-1 linkno=2"), 1, "{t}");
        assert_eq!(count(&t, "pathlen=8192 recno=-1 linkno=2"), 1, "{t}");
        assert_eq!(
            m.fid2path(&Fid::new(0x200000007, 1, 0)).unwrap(),
            [PathBuf::new()]
        );
        let e = m.fid2path(&Fid::new(0x200000401, 2, 0)).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));

        assert_eq!(
            m.path2fid(Path::new("file")).unwrap(),
            Fid::new(0x200000401, 7, 0)
        );
        assert!(trace().contains(&format!("path2fid {}/file", dir.display())));
        let e = m.path2fid(Path::new("other")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "llapi_path2fid: Inappropriate ioctl for device (errno 25)"
        );

        let fd = m
            .open_by_fid(&Fid::new(0x200000401, 9, 0), libc::O_RDONLY)
            .unwrap();
        assert_eq!(m.fd2fid(fd.as_fd()).unwrap().oid, 8);
        assert_eq!(m.data_version(fd.as_fd(), 1).unwrap(), 0x1234);
        assert!(trace().contains("open_by_fid"));
        assert_eq!(m.mdt_index(&Fid::new(0x200000401, 9, 0)).unwrap(), 3);

        let s = m.hsm_state(Path::new("file")).unwrap();
        assert_eq!((s.states, s.archive_id), (9, 2));
        assert!(s.is_exists() && s.is_archived() && !s.is_dirty() && !s.is_released());
        m.hsm_state_set(Path::new("/abs/file"), 2, 8, 4).unwrap();
        assert!(trace().contains("state_set /abs/file set=2 clear=8 archive=4"));
        let ca = m.hsm_current_action(Path::new("file")).unwrap();
        assert_eq!(ca.action, UserAction::Restore);
        assert_eq!(ca.state, lustre::ProgressState::Running);
        assert_eq!(ca.location, Extent::new(0, 4096));

        let fids: Vec<Fid> = (1..=120).map(|i| Fid::new(0x200000401, i, 0)).collect();
        m.hsm_request(UserAction::Archive, 3, 0, &fids, b"job=1")
            .unwrap();
        let t = trace();
        let reqs: Vec<&str> = t.lines().filter(|l| l.starts_with("hsm_request")).collect();
        assert_eq!(reqs.len(), 3, "{t}");
        assert!(reqs[0].ends_with("action=10 archive=3 items=52 first_oid=1 data=job=1"));
        assert!(reqs[1].ends_with("items=52 first_oid=53 data=job=1"));
        assert!(reqs[2].ends_with("items=16 first_oid=105 data=job=1"));

        let attrs = ImportAttrs {
            size: 1 << 40,
            mode: 0o600,
            uid: 10,
            gid: 20,
            mtime_sec: 1_700_000_000,
            mtime_nsec: 42,
            ..Default::default()
        };
        let fid = m.hsm_import(Path::new("imported"), 2, &attrs).unwrap();
        assert_eq!(fid, Fid::new(0x200000401, 0x99, 0));
        let line = format!(
            "import {}/imported archive=2 size=1099511627776 mode=100600 uid=10 gid=20 \
             mtime=1700000000.42 stripe=0,-1,0,0 pool=(null)",
            dir.display()
        );
        assert!(trace().contains(&line), "{}", trace());
    });
}

fn records() -> Vec<ChangelogRecord> {
    let create = ChangelogRecord {
        index: 5,
        rtype: RecordType::Create,
        time_sec: 1_700_000_000,
        tfid: Fid::new(0x200000401, 0x100, 0),
        pfid: Fid::new(0x200000007, 1, 0),
        jobid: Some("cp.1".into()),
        extra_flags: Some(0),
        uid_gid: Some((1000, 1000)),
        nid: Some(Nid::Nid4(0x0002_0000_c0a8_0101)),
        name: b"a.dat".to_vec(),
        ..Default::default()
    };
    let rename = ChangelogRecord {
        index: 6,
        rtype: RecordType::Rename,
        tfid: Fid::ZERO,
        pfid: Fid::new(0x200000007, 1, 0),
        rename: Some(RenameExt {
            sfid: Fid::new(0x200000401, 0x100, 0),
            spfid: Fid::new(0x200000007, 1, 0),
            old_name: b"a.dat".to_vec(),
        }),
        xattr: Some("user.tag".into()),
        name: b"b.dat".to_vec(),
        ..Default::default()
    };
    vec![create, rename]
}

#[test]
fn changelog_reader() {
    in_child("changelog_reader", || {
        let recs = records();
        push(
            b"mock_push_changelog\0",
            &encode_changelog(&recs[0]).unwrap(),
        );
        push(b"mock_push_changelog\0", &[]); // recv: 0 with a NULL record
        push(
            b"mock_push_changelog\0",
            &encode_changelog(&recs[1]).unwrap(),
        );

        let e = ChangelogReader::start("other-MDT0000", 0, false).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert_eq!(e.call(), Some("llapi_changelog_start"));

        let mut r = ChangelogReader::start("mockfs-MDT0000", 5, true).unwrap();
        // FOLLOW|JOBID|EXTRA_FLAGS, no NID_BE: the mock lacks the 2.16-only repack symbol.
        let t = trace();
        assert!(
            t.contains("changelog_start mockfs-MDT0000 flags=0xd start=5"),
            "{t}"
        );
        assert!(t.contains("changelog_set_xflags 0xf"), "{t}");
        assert_eq!(r.fd().unwrap(), 42);
        assert!(r.in_buf());

        let mut first = r.recv().unwrap().unwrap();
        first.flags &= 0x0FFF;
        let mut want = recs[0].clone();
        want.extra_flags = Some(0x3);
        assert_eq!(first, want);
        let e = r.recv().unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOMEM));
        let second = r.recv().unwrap().unwrap();
        assert_eq!(second.renamed().unwrap().old_name, b"a.dat");
        assert_eq!(second.name, b"b.dat");
        assert_eq!(second.xattr.as_deref(), Some("user.tag"));
        assert!(!r.in_buf());
        assert_eq!(r.recv().unwrap(), None);
        assert_eq!(count(&trace(), "changelog_free record"), 2);
        assert_eq!(count(&trace(), "changelog_fini"), 0);
        drop(r);
        assert_eq!(count(&trace(), "changelog_fini"), 1);

        lustre::changelog_clear("mockfs-MDT0000", "cl1", 6).unwrap();
        assert!(trace().contains("changelog_clear mockfs-MDT0000 cl1 6"));
        let e = lustre::changelog_clear("mockfs-MDT0000", "cl9", 6).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        let e = lustre::changelog_clear("mockfs-MDT0000", "cl1", u64::MAX).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINVAL));
        assert_eq!(count(&trace(), "changelog_clear"), 2);
    });
}

fn item(cookie: u64, action: CopytoolAction, data: &[u8]) -> ActionItem {
    ActionItem {
        action,
        fid: Fid::new(0x200000401, cookie as u32, 0),
        dfid: Fid::new(0x200000401, cookie as u32, 0),
        extent: Extent::WHOLE_FILE,
        cookie,
        gid: 0,
        data: data.to_vec(),
    }
}

#[test]
fn copytool_session() {
    in_child("copytool_session", || {
        let hal = ActionList {
            version: 1,
            archive_id: 2,
            flags: 0,
            compound_id: 0,
            fsname: "mockfs".into(),
            items: vec![
                item(1, CopytoolAction::Archive, b"tag"),
                item(2, CopytoolAction::Restore, b""),
                item(3, CopytoolAction::Remove, &[9; 30]),
            ],
        };
        push(b"mock_push_hal\0", &encode_hal(&hal).unwrap());

        let ct = Arc::new(Copytool::register(Path::new("/mnt/mock"), &[1, 2], true).unwrap());
        assert!(trace().contains("ct_register /mnt/mock count=2 ids=1,2 nonblock=1"));
        assert_eq!(ct.fd().unwrap(), 43);
        // Received on another thread: the session is Send + Sync.
        let received = {
            let ct = Arc::clone(&ct);
            std::thread::spawn(move || ct.recv())
                .join()
                .unwrap()
                .unwrap()
        };
        assert_eq!(received, hal);
        assert_eq!(ct.recv().unwrap_err().errno(), Some(libc::ESHUTDOWN));

        // Begin passes the whole item (fixed part and data), progress, fd, dfid, end.
        let a = ct.begin(&received.items[0], -1, 0).unwrap();
        let t = trace();
        let datasum = u32::from(b't') + u32::from(b'a') + u32::from(b'g');
        let begin = format!(
            "action_begin cookie=1 action=20 len=75 datasum={datasum} mdt=-1 flags=0 error=0"
        );
        assert!(t.contains(&begin), "{t}");
        a.progress(Extent::new(0, 4096), 8192).unwrap();
        assert!(trace().contains("action_progress cookie=1 off=0 len=4096 total=8192"));
        drop(a.fd().unwrap());
        assert_eq!(a.dfid().unwrap(), Fid::new(0x200000401, 0xd, 0));
        assert_eq!(a.fid(), Fid::new(0x200000401, 1, 0));
        a.end(Extent::new(0, 8192), 0, 0).unwrap();
        assert!(trace().contains("action_end cookie=1 off=0 len=8192 flags=0 errval=0"));

        // RESTORE arguments reach the library; an action moved to a thread and dropped there
        // without end is ended with EIO.
        let a: CopyAction = ct.begin(&received.items[1], 2, 0o100020400).unwrap();
        assert!(trace().contains(
            "action_begin cookie=2 action=21 len=72 datasum=0 mdt=2 flags=16785664 error=0"
        ));
        std::thread::spawn(move || drop(a)).join().unwrap();
        let t = trace();
        assert!(
            t.contains(&format!(
                "action_end cookie=2 off=0 len={} flags=0 errval={}",
                u64::MAX,
                libc::EIO
            )),
            "{t}"
        );

        // Cancellation is reported by progress.
        let a = ct
            .begin(&item(777, CopytoolAction::Archive, b""), -1, 0)
            .unwrap();
        let e = a.progress(Extent::new(0, 1), 1).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ECANCELED));
        a.end(Extent::WHOLE_FILE, 0, libc::ECANCELED).unwrap();

        // A failing end still releases the handle: no second end on drop.
        let a = ct
            .begin(&item(888, CopytoolAction::Archive, b""), -1, 0)
            .unwrap();
        let e = a.end(Extent::WHOLE_FILE, 0, 0).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EBUSY));
        assert_eq!(count(&trace(), "action_end cookie=888"), 1);

        // A failed begin is reported through the is_error path.
        let bad = item(666, CopytoolAction::Archive, b"");
        assert_eq!(
            ct.begin(&bad, -1, 0).unwrap_err().errno(),
            Some(libc::ECANCELED)
        );
        let a = ct.begin_error(&bad).unwrap();
        assert!(trace()
            .contains("action_begin cookie=666 action=20 len=72 datasum=0 mdt=-1 flags=0 error=1"));
        a.end(Extent::WHOLE_FILE, 0, libc::ECANCELED).unwrap();

        // Unregistering waits for the actions still open.
        let open = ct.begin(&received.items[2], -1, 0).unwrap();
        let ct = Arc::try_unwrap(ct).unwrap();
        ct.unregister().unwrap();
        assert_eq!(count(&trace(), "ct_unregister"), 0);
        drop(open);
        let t = trace();
        let end = t.find("action_end cookie=3").unwrap();
        let unreg = t.find("ct_unregister").unwrap();
        assert!(end < unreg, "{t}");
        assert_eq!(count(&t, "ct_unregister"), 1);

        // Drop of an idle copytool unregisters.
        drop(Copytool::register(Path::new("/mnt/mock"), &[], false).unwrap());
        let t = trace();
        assert!(
            t.contains("ct_register /mnt/mock count=0 ids= nonblock=0"),
            "{t}"
        );
        assert_eq!(count(&t, "ct_unregister"), 2);
    });
}

#[test]
fn library_messages_reach_the_handler() {
    in_child("library_messages_reach_the_handler", || {
        let seen: Arc<Mutex<Vec<(u32, i32, String)>>> = Arc::default();
        let sink = Arc::clone(&seen);
        lustre::set_log_handler(move |m| {
            sink.lock()
                .unwrap()
                .push((m.level, m.errno, m.text.to_string()));
        })
        .unwrap();
        // SAFETY: `mock_emit_log` takes no arguments and calls the installed callback with a
        // real variadic argument list.
        unsafe {
            mock()
                .get::<unsafe extern "C" fn()>(b"mock_emit_log\0")
                .unwrap()();
        }
        assert_eq!(
            *seen.lock().unwrap(),
            [(2, 5, "file has 3 links (abc)".to_string())]
        );
        lustre::set_log_level(9).unwrap();
        assert!(trace().contains("msg_set_level 7"));
        lustre::clear_log_handler().unwrap();
        assert!(trace().contains("error_callback_set null"));
    });
}
