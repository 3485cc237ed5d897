//! End-to-end tests of the simulator through liblustreapi_sim.so loaded with dlopen (the same
//! FFI path the product binaries take), against a real `lustre-sim mds` process.
//!
//! # Safety
//! Every `unsafe` block here makes one call through the `lustre_sys::LustreApi` table (or libc)
//! with arguments that are live for the call: NUL-terminated `CString`s, `#[repr(C)]` structs and
//! buffers sized as lustre-abi.md gives them, and handles returned by the library and not yet
//! freed. Records and action lists the library returns are read only within the length it
//! reports, before the next call that may reuse the buffer.

use lustre_sys::{
    hsm_action_item, hsm_current_action, hsm_extent, hsm_user_state, lu_fid, LustreApi,
};
use lustreapi_sim::consts::*;
use lustreapi_sim::fid::Fid;
use lustreapi_sim::hal::{decode_hal_items, Item};
use lustreapi_sim::record::Rec;
use std::ffi::{c_void, CString};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use testkit::sim::{Sim, SimOptions};

fn api() -> &'static LustreApi {
    static API: OnceLock<LustreApi> = OnceLock::new();
    API.get_or_init(|| {
        testkit::sim::ensure_sim_built();
        LustreApi::load_first(&[testkit::sim_lib_path().into_os_string()])
            .expect("loading liblustreapi_sim.so")
    })
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn cp(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn path2fid(p: &Path) -> Fid {
    let mut f = lu_fid::default();
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let rc = unsafe { (api().llapi_path2fid)(cp(p).as_ptr(), &mut f) };
    assert_eq!(rc, 0, "path2fid {}", p.display());
    Fid {
        seq: f.f_seq,
        oid: f.f_oid,
        ver: f.f_ver,
    }
}

fn lu(f: Fid) -> lu_fid {
    lu_fid {
        f_seq: f.seq,
        f_oid: f.oid,
        f_ver: f.ver,
    }
}

/// Every record of an MDT from `start`, read with the 2.16 calls `lfs changelog` makes.
fn records(mdt: &str, start: i64) -> Vec<Rec> {
    records_with(mdt, start, 0)
}

/// `records` by a reader that also passes `more` to llapi_changelog_start (NID_BE).
fn records_with(mdt: &str, start: i64, more: i32) -> Vec<Rec> {
    let a = api();
    let mut h: *mut c_void = std::ptr::null_mut();
    let flags = (CHANGELOG_FLAG_JOBID | CHANGELOG_FLAG_EXTRA_FLAGS | more) as u32;
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (a.llapi_changelog_start)(&mut h, flags, c(mdt).as_ptr(), start) },
        0
    );
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe {
            (a.llapi_changelog_set_xflags)(
                h,
                (CLFE_UIDGID | CLFE_NID | CLFE_OPEN | CLFE_XATTR) as u32,
            )
        },
        0
    );
    let mut out = Vec::new();
    loop {
        let mut r = std::ptr::null_mut();
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        let rc = unsafe { (a.llapi_changelog_recv)(h, &mut r) };
        if rc == 1 {
            break;
        }
        assert_eq!(rc, 0);
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        let bytes = unsafe {
            std::slice::from_raw_parts(r as *const u8, lustreapi_sim::record::CR_MAXSIZE)
        };
        let (rec, _) = Rec::decode(bytes).expect("decodable record");
        out.push(rec);
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        assert_eq!(unsafe { (a.llapi_changelog_free)(&mut r) }, 0);
        assert!(r.is_null());
    }
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    assert_eq!(unsafe { (a.llapi_changelog_fini)(&mut h) }, 0);
    out
}

fn types(rs: &[Rec]) -> Vec<u32> {
    rs.iter().map(|r| r.rtype).collect()
}

fn hsm_state(p: &Path) -> (u32, u32) {
    let mut hus = hsm_user_state::default();
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (api().llapi_hsm_state_get)(cp(p).as_ptr(), &mut hus) },
        0
    );
    (hus.hus_states, hus.hus_archive_id)
}

fn request(mount: &Path, action: u32, archive: u32, fids: &[Fid], data: &[u8]) -> i32 {
    let a = api();
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let hur = unsafe { libc::calloc(1, 24 + 32 * fids.len() + data.len()) as *mut u8 };
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    unsafe {
        let hr = lustre_sys::hsm_request {
            hr_action: action,
            hr_archive_id: archive,
            hr_flags: 0,
            hr_itemcount: fids.len() as u32,
            hr_data_len: data.len() as u32,
        };
        std::ptr::write_unaligned(hur as *mut lustre_sys::hsm_request, hr);
        for (i, f) in fids.iter().enumerate() {
            let it = lustre_sys::hsm_user_item {
                hui_fid: lu(*f),
                hui_extent: hsm_extent {
                    offset: 0,
                    length: u64::MAX,
                },
            };
            std::ptr::write_unaligned(hur.add(24 + 32 * i) as *mut lustre_sys::hsm_user_item, it);
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), hur.add(24 + 32 * fids.len()), data.len());
        let rc = (a.llapi_hsm_request)(cp(mount).as_ptr(), hur as *const _);
        libc::free(hur as *mut c_void);
        rc
    }
}

struct Agent {
    ct: *mut lustre_sys::hsm_copytool_private,
    /// Copy of the last received hal.
    hal: Vec<u8>,
}

impl Agent {
    fn register(mount: &Path, archives: &[i32]) -> Agent {
        let mut ids = archives.to_vec();
        let mut ct = std::ptr::null_mut();
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        let rc = unsafe {
            (api().llapi_hsm_copytool_register)(
                &mut ct,
                cp(mount).as_ptr(),
                ids.len() as i32,
                ids.as_mut_ptr(),
                0,
            )
        };
        assert_eq!(rc, 0);
        Agent {
            ct,
            hal: Vec::new(),
        }
    }

    fn recv(&mut self) -> Vec<Item> {
        let mut hal = std::ptr::null_mut();
        let mut size = 0;
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        let rc = unsafe { (api().llapi_hsm_copytool_recv)(self.ct, &mut hal, &mut size) };
        assert_eq!(rc, 0);
        assert_eq!(hal as usize % 8, 0, "hal is 8-aligned");
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        self.hal = unsafe { std::slice::from_raw_parts(hal as *const u8, size as usize) }.to_vec();
        decode_hal_items(&self.hal).expect("valid hal").3
    }

    /// Pointer to item `k` of the last hal (for action_begin).
    fn item_ptr(&self, k: usize) -> *const hsm_action_item {
        let nul = self.hal[32..].iter().position(|&b| b == 0).unwrap();
        let mut o = 32 + ((nul + 1 + 7) & !7);
        for _ in 0..k {
            let len = u32::from_le_bytes(self.hal[o..o + 4].try_into().unwrap()) as usize;
            o += (len + 7) & !7;
        }
        self.hal[o..].as_ptr() as *const hsm_action_item
    }

    fn begin(&self, k: usize) -> Result<*mut lustre_sys::hsm_copyaction_private, i32> {
        let mut hcp = std::ptr::null_mut();
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        let rc = unsafe {
            (api().llapi_hsm_action_begin)(&mut hcp, self.ct, self.item_ptr(k), -1, 0, false)
        };
        if rc == 0 {
            Ok(hcp)
        } else {
            Err(rc)
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (api().llapi_hsm_copytool_unregister)(&mut self.ct) };
    }
}

fn end(mut hcp: *mut lustre_sys::hsm_copyaction_private, err: i32) -> i32 {
    let ext = hsm_extent {
        offset: 0,
        length: u64::MAX,
    };
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let rc = unsafe { (api().llapi_hsm_action_end)(&mut hcp, &ext, 0, err) };
    assert!(hcp.is_null(), "end clears the handle");
    rc
}

fn progress(hcp: *mut lustre_sys::hsm_copyaction_private, off: u64, len: u64) -> i32 {
    let ext = hsm_extent {
        offset: off,
        length: len,
    };
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    unsafe { (api().llapi_hsm_action_progress)(hcp, &ext, 0, 0) }
}

fn current_action(p: &Path) -> hsm_current_action {
    let mut hca = hsm_current_action::default();
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (api().llapi_hsm_current_action)(cp(p).as_ptr(), &mut hca) },
        0
    );
    hca
}

/// `lustre-sim test-agent MOUNT ARGS...`, once it has registered: the child and its output.
fn spawn_test_agent(
    m: &Path,
    args: &[&str],
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(testkit::sim::sim_bin_path())
        .arg("test-agent")
        .arg(m)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "registered\n");
    (child, out)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hsm_recs(rs: &[Rec]) -> Vec<(u16, u16, bool, Fid)> {
    rs.iter()
        .filter(|r| r.rtype == CL_HSM)
        .map(|r| {
            (
                (r.flags >> 7) & 7,
                r.flags & 0x7F,
                r.flags & (1 << 10) != 0,
                r.tfid,
            )
        })
        .collect()
}

#[test]
fn real_file_io_produces_the_expected_records_in_order() {
    let sim = Sim::start(SimOptions::default());
    let user = sim.register_changelog_user(0);
    assert_eq!(user, "cl1");
    let m = sim.mount();
    // Each step is followed by a call the daemon answers only after it has processed every
    // inotify event queued so far (operations racing ahead of the event processing, e.g. a
    // rename into a directory whose creation it has not yet seen, are reported as the
    // equivalent create/unlink records instead; see README).
    let settle = || {
        path2fid(m);
    };
    std::fs::write(m.join("a"), b"hello").unwrap();
    settle();
    std::fs::create_dir(m.join("d")).unwrap();
    settle();
    std::fs::rename(m.join("a"), m.join("d/b")).unwrap();
    settle();
    std::fs::hard_link(m.join("d/b"), m.join("c")).unwrap();
    settle();
    std::os::unix::fs::symlink("c", m.join("s")).unwrap();
    settle();
    std::fs::set_permissions(
        m.join("c"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    settle();
    let x = cp(&m.join("d/b"));
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe {
            libc::setxattr(
                x.as_ptr(),
                c("trusted.lustre_blob").as_ptr(),
                b"{}".as_ptr() as *const c_void,
                2,
                0,
            )
        },
        0
    );
    settle();
    std::fs::OpenOptions::new()
        .write(true)
        .open(m.join("d/b"))
        .unwrap()
        .set_len(1)
        .unwrap();
    settle();
    std::fs::write(m.join("victim"), b"v").unwrap();
    settle();
    std::fs::rename(m.join("s"), m.join("victim")).unwrap();
    settle();
    std::fs::remove_file(m.join("c")).unwrap();
    settle();
    std::fs::remove_file(m.join("d/b")).unwrap();
    settle();
    std::fs::remove_dir(m.join("d")).unwrap();

    let rs = records(&sim.mdt_name(0), 0);
    assert_eq!(
        types(&rs),
        vec![
            CL_CREATE,
            CL_CLOSE,
            CL_MKDIR,
            CL_RENAME,
            CL_HARDLINK,
            CL_SOFTLINK,
            CL_SETATTR,
            CL_SETXATTR,
            CL_TRUNC,
            CL_CLOSE,
            CL_CREATE,
            CL_CLOSE,
            CL_RENAME,
            CL_UNLINK,
            CL_UNLINK,
            CL_RMDIR
        ],
        "{:#?}",
        rs
    );
    let idx: Vec<u64> = rs.iter().map(|r| r.index).collect();
    assert_eq!(idx, (1..=rs.len() as u64).collect::<Vec<_>>());
    let root = path2fid(m);
    let file = rs[0].tfid;
    let dir = rs[2].tfid;
    assert_eq!(root.to_string(), "[0x200000007:0x1:0x0]");
    assert_eq!((rs[0].pfid, rs[0].name.as_slice()), (root, &b"a"[..]));
    // the close of the open that created the file: O_CREAT + MDS_FMODE_WRITE (real: 0x42)
    assert_eq!(rs[1].flags, MDS_OPEN_CREAT | MDS_FMODE_WRITE);
    assert_eq!(rs[1].tfid, file);
    // rename: tfid = overwritten target (none), pfid = new parent, ext = (renamed, old parent)
    assert_eq!(rs[3].tfid, Fid::default());
    assert_eq!(rs[3].pfid, dir);
    assert_eq!(rs[3].rename, Some((file, root)));
    assert_eq!(rs[3].name, b"b\0a");
    assert_eq!((rs[4].tfid, rs[4].name.as_slice()), (file, &b"c"[..]));
    assert_eq!(rs[7].xattr.as_deref(), Some("trusted.lustre_blob"));
    assert_eq!(rs[8].tfid, file);
    // ftruncate: la_valid LA_SIZE|LA_MTIME|LA_CTIME, as real 2.16.1 writes (0xe)
    assert_eq!(rs[8].flags, LA_SIZE | LA_MTIME | LA_CTIME);
    // rename over an existing file: tfid = the victim, which lost its last link
    assert_eq!((rs[9].tfid, rs[9].flags), (file, MDS_FMODE_WRITE));
    let victim = rs[10].tfid;
    assert_eq!(rs[12].tfid, victim);
    assert_eq!(rs[12].flags, CLF_RENAME_LAST);
    assert_eq!(rs[12].name, b"victim\0s");
    // two links: the first unlink is not the last
    assert_eq!((rs[13].flags, rs[14].flags), (0, CLF_UNLINK_LAST));
    assert_eq!((rs[15].tfid, rs[15].flags), (dir, CLF_UNLINK_LAST));
    for r in &rs {
        assert_eq!(r.jobid.as_deref(), Some(""));
        assert_eq!(r.uidgid, Some((0, 0)));
        assert!(r.rename.is_some() == (r.rtype == CL_RENAME));
    }
}

#[test]
fn records_carry_only_the_requested_extensions() {
    let sim = Sim::start(SimOptions::default());
    sim.register_changelog_user(0);
    std::fs::write(sim.mount().join("f"), b"x").unwrap();
    let a = api();
    let mut h: *mut c_void = std::ptr::null_mut();
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (a.llapi_changelog_start)(&mut h, 0, c(&sim.mdt_name(0)).as_ptr(), 0) },
        0
    );
    let mut r = std::ptr::null_mut();
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    assert_eq!(unsafe { (a.llapi_changelog_recv)(h, &mut r) }, 0);
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let hdr = unsafe { std::ptr::read_unaligned(r) };
    assert_eq!(
        { hdr.cr_flags },
        CLF_VERSION,
        "no jobid / extra flags unless asked for"
    );
    assert_eq!({ hdr.cr_namelen }, 1);
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    assert_eq!(unsafe { *(r as *const u8).add(64) }, b'f');
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { *(r as *const u8).add(65) },
        0,
        "2.16 names are NUL-terminated"
    );
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    unsafe { (a.llapi_changelog_free)(&mut r) };
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    unsafe { (a.llapi_changelog_fini)(&mut h) };
}

#[test]
fn fids_survive_a_restart_and_renames() {
    let mut sim = Sim::start(SimOptions::default());
    let m = sim.mount().to_path_buf();
    std::fs::create_dir(m.join("dir")).unwrap();
    std::fs::write(m.join("dir/f"), b"data").unwrap();
    let f = path2fid(&m.join("dir/f"));
    let d = path2fid(&m.join("dir"));
    sim.kill9();
    sim.restart();
    assert_eq!(path2fid(&m.join("dir/f")), f);
    std::fs::rename(m.join("dir"), m.join("moved")).unwrap();
    assert_eq!(path2fid(&m.join("moved/f")), f);
    assert_eq!(path2fid(&m.join("moved")), d);
    let mut buf = vec![0u8; 4096];
    let mut link = 0;
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let rc = unsafe {
        (api().llapi_fid2path)(
            c(sim.fsname()).as_ptr(),
            c(&f.to_string()).as_ptr(),
            buf.as_mut_ptr() as *mut _,
            4096,
            std::ptr::null_mut(),
            &mut link,
        )
    };
    assert_eq!(rc, 0);
    assert_eq!(
        std::ffi::CStr::from_bytes_until_nul(&buf)
            .unwrap()
            .to_str()
            .unwrap(),
        "moved/f"
    );
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let bad = unsafe {
        (api().llapi_fid2path)(
            cp(&m).as_ptr(),
            c("[0x200000400:0x999:0x0]").as_ptr(),
            buf.as_mut_ptr() as *mut _,
            4096,
            std::ptr::null_mut(),
            &mut link,
        )
    };
    assert_eq!(bad, -libc::ENOENT);
}

#[test]
fn archive_request_reaches_an_agent_with_the_right_hal() {
    let sim = Sim::start(SimOptions::default());
    let m = sim.mount();
    std::fs::write(m.join("f"), b"payload").unwrap();
    let fid = path2fid(&m.join("f"));
    let mut ag = Agent::register(m, &[3]);
    assert_eq!(request(m, HUA_ARCHIVE, 3, &[fid], b"job-7"), 0);
    let items = ag.recv();
    let h = &ag.hal;
    let fs = sim.fsname().as_bytes();
    assert_eq!(
        u32::from_le_bytes(h[0..4].try_into().unwrap()),
        1,
        "hal_version"
    );
    assert_eq!(
        u32::from_le_bytes(h[4..8].try_into().unwrap()),
        1,
        "hal_count"
    );
    assert_eq!(
        u32::from_le_bytes(h[24..28].try_into().unwrap()),
        3,
        "hal_archive_id"
    );
    assert_eq!(&h[32..32 + fs.len()], fs);
    assert_eq!(h[32 + fs.len()], 0);
    let first = 32 + ((fs.len() + 1 + 7) & !7);
    assert_eq!(
        u32::from_le_bytes(h[first..first + 4].try_into().unwrap()),
        72 + 5,
        "hai_len"
    );
    assert_eq!(
        u32::from_le_bytes(h[first + 4..first + 8].try_into().unwrap()),
        HSMA_ARCHIVE
    );
    assert_eq!(&h[first + 72..first + 77], b"job-7");
    assert_eq!(h.len(), first + ((77 + 7) & !7), "msgsize = hal_size");
    assert_eq!(items.len(), 1);
    let it = &items[0];
    assert_eq!(
        (it.fid, it.dfid, it.offset, it.length, it.gid),
        (fid, fid, 0, u64::MAX, 0)
    );
    assert_ne!(it.cookie, 0);
    // dispatch marks the file EXISTS with the archive id
    assert_eq!(hsm_state(&m.join("f")), (HS_EXISTS, 3));
    let actions = sim.get_param(0, "hsm.actions");
    assert!(
        actions.contains("action=ARCHIVE archive#=3") && actions.contains("status=STARTED"),
        "{actions}"
    );
    assert!(
        actions.contains(&format!("fid={fid}")) && actions.contains("data=[6A6F622D37]"),
        "{actions}"
    );
    let agents = sim.get_param(0, "hsm.agents");
    assert!(
        agents.contains("archive_id=3 requests=[current:1 ok:0 errors:0]"),
        "{agents}"
    );
}

#[test]
fn begin_progress_end_release_and_restore_move_the_state() {
    let sim = Sim::start(SimOptions::default());
    sim.register_changelog_user(0);
    let m = sim.mount();
    let f = m.join("f");
    std::fs::write(&f, b"0123456789").unwrap();
    let fid = path2fid(&f);
    let mut ag = Agent::register(m, &[]);
    assert_eq!(request(m, HUA_ARCHIVE, 0, &[fid], b""), 0);
    ag.recv();
    let hcp = ag.begin(0).unwrap();
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let fd = unsafe { (api().llapi_hsm_action_get_fd)(hcp) };
    assert!(fd >= 0);
    let mut buf = [0u8; 16];
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr() as *mut c_void, 16, 0) };
    assert_eq!(&buf[..n as usize], b"0123456789");
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    unsafe { libc::close(fd) };
    let mut dfid = lu_fid::default();
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (api().llapi_hsm_action_get_dfid)(hcp, &mut dfid) },
        0
    );
    assert_eq!(dfid, lu(fid));
    assert_eq!(progress(hcp, 0, 4), 0);
    assert_eq!(progress(hcp, 2, 4), 0);
    let hca = current_action(&f);
    assert_eq!((hca.hca_state, hca.hca_action), (HPS_RUNNING, HUA_ARCHIVE));
    assert_eq!({ hca.hca_location.length }, 6, "overlapping extents merged");
    assert_eq!(end(hcp, 0), 0);
    assert_eq!(hsm_state(&f), (HS_EXISTS | HS_ARCHIVED, 1));
    assert_eq!(current_action(&f).hca_state, HPS_NONE);
    // lfs prints the real format
    let o = sim.lfs(&["hsm_state", f.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "{}:\t(0x00000009) exists archived, archive_id:1\n",
            f.display()
        )
    );

    // release drops the data but keeps the size
    assert_eq!(request(m, HUA_RELEASE, 0, &[fid], b""), 0);
    assert_eq!(hsm_state(&f).0, HS_EXISTS | HS_ARCHIVED | HS_RELEASED);
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 10);
    assert_eq!(std::fs::read(&f).unwrap(), vec![0u8; 10]);

    // restore: the agent writes into the volatile file; end puts the data back
    assert_eq!(request(m, HUA_RESTORE, 0, &[fid], b""), 0);
    let items = ag.recv();
    assert_eq!(items[0].action, HSMA_RESTORE);
    let hcp = ag.begin(0).unwrap();
    let mut vfid = lu_fid::default();
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (api().llapi_hsm_action_get_dfid)(hcp, &mut vfid) },
        0
    );
    assert_ne!(
        vfid,
        lu(fid),
        "restore writes to a volatile file with its own FID"
    );
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let fd = unsafe { (api().llapi_hsm_action_get_fd)(hcp) };
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { libc::pwrite(fd, b"0123456789".as_ptr() as *const c_void, 10, 0) },
        10
    );
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    unsafe { libc::close(fd) };
    assert_eq!(end(hcp, 0), 0);
    assert_eq!(std::fs::read(&f).unwrap(), b"0123456789");
    assert_eq!(hsm_state(&f).0, HS_EXISTS | HS_ARCHIVED);

    // remove
    assert_eq!(request(m, HUA_REMOVE, 0, &[fid], b""), 0);
    ag.recv();
    let hcp = ag.begin(0).unwrap();
    assert_eq!(end(hcp, 0), 0);
    assert_eq!(hsm_state(&f).0, 0);

    let rs = records(&sim.mdt_name(0), 0);
    let hs = hsm_recs(&rs);
    // As real 2.16.1 writes them (REAL_LUSTRE.md rows 6-8; lustre-sim hsm_records docs):
    assert_eq!(
        hs,
        vec![
            // dispatch: mdt_hsm_set_exists (HE_STATE, by the coordinator thread)
            (HE_STATE, 0, false, fid),
            // completion: mdt_hsm_attr_set (exists archived), then the HE_ARCHIVE
            (HE_STATE, 0, false, fid),
            (HE_ARCHIVE, 0, false, fid),
            // restore completion: attr_set with unchanged flags ("HSM 0x0"), the layout
            // swap of a released file (HE_RELEASE), then the HE_RESTORE
            (0, 0, false, fid),
            (HE_RELEASE, 0, false, fid),
            (HE_RESTORE, 0, false, fid),
            // remove completion: attr_set (flags cleared), then HE_REMOVE
            (HE_STATE, 0, false, fid),
            (HE_REMOVE, 0, false, fid)
        ],
        "{rs:#?}"
    );
    // NIDs: a 2.16 reader with CHANGELOG_FLAG_NID_BE gets struct lnet_nid (ef 0x13), others
    // the 8-byte form (ef 0x3); the coordinator thread's record has a zero NID in both.
    let be = records_with(&sim.mdt_name(0), 0, CHANGELOG_FLAG_NID_BE);
    let first_hsm = |rs: &[Rec]| rs.iter().find(|r| r.rtype == CL_HSM).cloned().unwrap();
    assert_eq!(
        first_hsm(&be).nid,
        Some(lustre::Nid::Large {
            size: 0,
            lnd: 0,
            num: 0,
            addr: [0; 4]
        })
    );
    assert_eq!(first_hsm(&rs).nid, Some(lustre::Nid::Nid4(0)));
    assert_eq!(
        be[0].nid,
        Some(lustre::Nid::Large {
            size: 0,
            lnd: 9,
            num: 0,
            addr: [0; 4]
        }),
        "0@lo as struct lnet_nid"
    );
    assert_eq!(be[0].extra_bits(), CLFE_UIDGID | CLFE_NID | CLFE_NID_BE);
    assert_eq!(rs[0].nid, Some(lustre::Nid::Nid4(NID_LO)));
    assert_eq!(rs[0].extra_bits(), CLFE_UIDGID | CLFE_NID);
    // the release: mdt_hsm_release's attr_set (TRUNC 0xf), layout swap (LYOUT) and lease
    // close (CLOSE 0x2); the restore's own writes make no data record
    let data: Vec<(u32, u16)> = rs
        .iter()
        .filter(|r| matches!(r.rtype, CL_TRUNC | CL_LAYOUT | CL_CLOSE) && r.index > rs[1].index)
        .map(|r| (r.rtype, r.flags))
        .collect();
    assert_eq!(
        data,
        vec![(CL_TRUNC, 0xf), (CL_LAYOUT, 0), (CL_CLOSE, MDS_FMODE_WRITE)],
        "{rs:#?}"
    );
}

#[test]
fn a_file_modified_during_the_copy_ends_ebusy_and_dirty() {
    let sim = Sim::start(SimOptions::default());
    sim.register_changelog_user(0);
    let m = sim.mount();
    let f = m.join("f");
    std::fs::write(&f, b"v1").unwrap();
    let fid = path2fid(&f);
    let mut ag = Agent::register(m, &[1]);
    assert_eq!(request(m, HUA_ARCHIVE, 1, &[fid], b""), 0);
    ag.recv();
    let hcp = ag.begin(0).unwrap();
    std::fs::write(&f, b"v2 longer").unwrap();
    assert_eq!(end(hcp, 0), -libc::EBUSY);
    let (st, _) = hsm_state(&f);
    assert_eq!(st, HS_EXISTS | HS_DIRTY);
    let hs = hsm_recs(&records(&sim.mdt_name(0), 0));
    assert_eq!(
        hs,
        vec![
            (HE_STATE, 0, false, fid),
            (HE_STATE, 0, true, fid),
            (HE_ARCHIVE, libc::EBUSY as u16, true, fid)
        ]
    );
    // and it can be archived again
    assert_eq!(request(m, HUA_ARCHIVE, 1, &[fid], b""), 0);
    ag.recv();
    let hcp = ag.begin(0).unwrap();
    assert_eq!(end(hcp, 0), 0);
    assert_eq!(hsm_state(&f).0, HS_EXISTS | HS_ARCHIVED);
}

#[test]
fn request_intake_checks_states_and_sizes() {
    let sim = Sim::start(SimOptions::default());
    let m = sim.mount();
    std::fs::write(m.join("f"), b"x").unwrap();
    let fid = path2fid(&m.join("f"));
    // restore of a file that is not released: not needed, silently skipped
    assert_eq!(request(m, HUA_RESTORE, 0, &[fid], b""), 0);
    assert_eq!(current_action(&m.join("f")).hca_state, HPS_NONE);
    // release of a never-archived file: incompatible
    assert_eq!(request(m, HUA_RELEASE, 0, &[fid], b""), -libc::EPERM);
    // 53 items do not fit in one request
    let many = vec![fid; 53];
    assert_eq!(request(m, HUA_ARCHIVE, 0, &many, b""), -libc::E2BIG);
    // duplicates in one request are dropped: one WAITING record
    assert_eq!(request(m, HUA_ARCHIVE, 0, &[fid, fid], b""), 0);
    let actions = sim.get_param(0, "hsm.actions");
    assert_eq!(actions.lines().count(), 1, "{actions}");
    assert!(actions.contains("status=WAITING"), "{actions}");
    let hca = current_action(&m.join("f"));
    assert_eq!((hca.hca_state, hca.hca_action), (HPS_WAITING, HUA_ARCHIVE));
    // state set: DIRTY without EXISTS is invalid
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (api().llapi_hsm_state_set)(cp(&m.join("f")).as_ptr(), HS_DIRTY as u64, 0, 0) },
        -libc::EINVAL
    );
}

#[test]
fn max_requests_limits_what_is_started() {
    let sim = Sim::start(SimOptions::default());
    sim.set_param("hsm.max_requests", "2");
    let m = sim.mount();
    let mut fids = Vec::new();
    for i in 0..3 {
        std::fs::write(m.join(format!("f{i}")), b"x").unwrap();
        fids.push(path2fid(&m.join(format!("f{i}"))));
    }
    let mut ag = Agent::register(m, &[]);
    assert_eq!(request(m, HUA_ARCHIVE, 0, &fids, b""), 0);
    let items = ag.recv();
    assert_eq!(items.len(), 2);
    let actions = sim.get_param(0, "hsm.actions");
    assert_eq!(actions.matches("status=STARTED").count(), 2, "{actions}");
    assert_eq!(actions.matches("status=WAITING").count(), 1, "{actions}");
    let hcp = ag.begin(0).unwrap();
    assert_eq!(end(hcp, 0), 0);
    let more = ag.recv();
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].fid, fids[2]);
}

#[test]
fn cancel_reaches_the_running_agent() {
    let sim = Sim::start(SimOptions::default());
    sim.register_changelog_user(0);
    let m = sim.mount();
    let f = m.join("f");
    std::fs::write(&f, b"x").unwrap();
    let fid = path2fid(&f);
    let mut ag = Agent::register(m, &[]);
    assert_eq!(request(m, HUA_ARCHIVE, 0, &[fid], b""), 0);
    let cookie = ag.recv()[0].cookie;
    let hcp = ag.begin(0).unwrap();
    assert_eq!(progress(hcp, 0, 1), 0);
    let o = sim.lfs(&["hsm_cancel", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let items = ag.recv();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].action, items[0].cookie, items[0].fid),
        (HSMA_CANCEL, cookie, fid)
    );
    assert_eq!(progress(hcp, 1, 1), -libc::ECANCELED);
    assert_eq!(end(hcp, libc::ECANCELED), 0);
    let hs = hsm_recs(&records(&sim.mdt_name(0), 0));
    assert_eq!(
        hs,
        vec![
            (HE_STATE, 0, false, fid),
            (HE_ARCHIVE, libc::ECANCELED as u16, false, fid)
        ]
    );
    assert!(sim.get_param(0, "hsm.actions").contains("status=CANCELED"));
}

#[test]
fn a_killed_agent_leaves_its_request_canceled_after_the_timeout() {
    let sim = Sim::start(SimOptions::default());
    sim.register_changelog_user(0);
    sim.set_param("hsm.active_request_timeout", "2");
    sim.set_param("hsm.loop_period", "1");
    let m = sim.mount();
    let f = m.join("f");
    std::fs::write(&f, b"x").unwrap();
    let fid = path2fid(&f);
    let (mut child, mut out) = spawn_test_agent(m, &[]);
    let mut line = String::new();
    assert_eq!(request(m, HUA_ARCHIVE, 0, &[fid], b""), 0);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with(&format!("ARCHIVE {fid} cookie=")),
        "{line}"
    );
    wait_for("the agent's begin", || {
        current_action(&f).hca_state == HPS_RUNNING
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the timeout", || {
        sim.get_param(0, "hsm.actions").contains("status=CANCELED")
    });
    assert_eq!(current_action(&f).hca_state, HPS_NONE);
    let rs = records(&sim.mdt_name(0), 0);
    let hs = hsm_recs(&rs);
    assert_eq!(
        hs,
        vec![
            (HE_STATE, 0, false, fid),
            (HE_ARCHIVE, libc::ECANCELED as u16, false, fid)
        ]
    );
    // the timeout's record comes from the coordinator thread: zero NID (real: nid=0@<0:0>)
    let last = rs.last().unwrap();
    assert_eq!(last.nid, Some(lustre::Nid::Nid4(0)), "{last:?}");
    assert!(sim.get_param(0, "hsm.agents").contains("errors:1"));
}

#[test]
fn clear_purges_once_every_user_cleared() {
    let sim = Sim::start(SimOptions::default());
    let mdt = sim.mdt_name(0);
    std::fs::write(sim.mount().join("before"), b"").unwrap();
    assert!(
        records(&mdt, 0).is_empty(),
        "nothing is recorded without a user"
    );
    let u1 = sim.register_changelog_user(0);
    let u2 = sim.register_changelog_user(0);
    assert_eq!((u1.as_str(), u2.as_str()), ("cl1", "cl2"));
    for i in 0..3 {
        std::fs::create_dir(sim.mount().join(format!("d{i}"))).unwrap();
    }
    assert_eq!(records(&mdt, 0).len(), 3);
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let clear = |u: &str, e: i64| unsafe {
        (api().llapi_changelog_clear)(c(&mdt).as_ptr(), c(u).as_ptr(), e)
    };
    assert_eq!(clear(&u1, 2), 0);
    assert_eq!(records(&mdt, 0).len(), 3, "cl2 has not cleared yet");
    assert_eq!(clear(&u2, 1), 0);
    assert_eq!(
        records(&mdt, 0).iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(clear(&u1, 9), -libc::EINVAL, "beyond the last record");
    assert_eq!(clear("cl7", 1), -libc::ENOENT);
    assert_eq!(
        clear(&u1, 1),
        -libc::EINVAL,
        "below the previous clear point"
    );
    let o = sim.lctl(&["--device", &mdt, "changelog_deregister", &u2]);
    assert!(o.status.success());
    assert_eq!(
        records(&mdt, 0).iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(clear(&u1, 0), 0, "0 = everything");
    assert!(records(&mdt, 0).is_empty());
    std::fs::create_dir(sim.mount().join("after")).unwrap();
    assert_eq!(
        records(&mdt, 0).iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![4]
    );
}

#[test]
fn two_mdts_keep_separate_logs() {
    let sim = Sim::start(SimOptions {
        mdts: 2,
        ..Default::default()
    });
    sim.register_changelog_user(0);
    sim.register_changelog_user(1);
    let m = sim.mount();
    let mut by_mdt: [Option<String>; 2] = [None, None];
    for i in 0..32 {
        let name = format!("dir{i}");
        std::fs::create_dir(m.join(&name)).unwrap();
        let fid = path2fid(&m.join(&name));
        let idx = lustreapi_sim::fid::mdt_index(&fid) as usize;
        by_mdt[idx].get_or_insert(name);
        if by_mdt.iter().all(Option::is_some) {
            break;
        }
    }
    let d1 = by_mdt[1].clone().expect("some directory on MDT1");
    std::fs::write(m.join(&d1).join("f"), b"x").unwrap();
    let f = path2fid(&m.join(&d1).join("f"));
    assert_eq!(f.seq & !0xFFFF, 0x2_4000_0000, "{f}: MDT1's sequence range");
    let mut mdt_index = -1;
    let dirfd = std::fs::File::open(m).unwrap();
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let rc = unsafe {
        (api().llapi_get_mdt_index_by_fid)(
            std::os::fd::AsRawFd::as_raw_fd(&dirfd),
            &lu(f),
            &mut mdt_index,
        )
    };
    assert_eq!((rc, mdt_index), (1, 1));
    let r0 = records(&sim.mdt_name(0), 0);
    let r1 = records(&sim.mdt_name(1), 0);
    assert!(
        r1.iter().any(|r| r.rtype == CL_CREATE && r.tfid == f),
        "{r1:#?}"
    );
    assert!(!r0.iter().any(|r| r.tfid == f));
    assert_eq!(r1[0].index, 1, "each MDT has its own index sequence");
    assert!(r0.iter().all(|r| r.rtype == CL_MKDIR));
}

#[test]
fn kill9_and_restart_lose_and_duplicate_no_records() {
    let mut sim = Sim::start(SimOptions::default());
    sim.register_changelog_user(0);
    let m = sim.mount().to_path_buf();
    let mdt = sim.mdt_name(0);
    for i in 0..20 {
        std::fs::create_dir(m.join(format!("a{i}"))).unwrap();
    }
    let before = records(&mdt, 0);
    assert_eq!(before.len(), 20);
    sim.kill9();
    // changes made while the daemon is down are found by the rescan at start
    std::fs::create_dir(m.join("while-down")).unwrap();
    std::fs::remove_dir(m.join("a0")).unwrap();
    sim.restart();
    let after = records(&mdt, 0);
    assert_eq!(
        &after[..20],
        &before[..],
        "records survive kill -9 unchanged"
    );
    assert_eq!(
        types(&after[20..]),
        vec![CL_MKDIR, CL_RMDIR],
        "{:#?}",
        &after[20..]
    );
    // kill -9 in the middle of a stream of changes
    let writer = {
        let m = m.clone();
        std::thread::spawn(move || {
            for i in 0..300 {
                if std::fs::create_dir(m.join(format!("b{i}"))).is_err() {
                    break;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    sim.kill9();
    writer.join().unwrap();
    sim.restart();
    let all = records(&mdt, 0);
    let idx: Vec<u64> = all.iter().map(|r| r.index).collect();
    assert_eq!(
        idx,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "no gaps, no repeats"
    );
    let mut created: Vec<Vec<u8>> = all
        .iter()
        .filter(|r| r.rtype == CL_MKDIR && r.name.starts_with(b"b"))
        .map(|r| r.name.clone())
        .collect();
    let n = created.len();
    created.sort();
    created.dedup();
    assert_eq!(created.len(), n, "no directory reported twice");
    assert_eq!(n, 300, "every directory reported once");
}

#[test]
fn import_creates_a_released_stub() {
    let sim = Sim::start(SimOptions::default());
    let dst = sim.mount().join("imported");
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_size = 12345;
    st.st_mode = libc::S_IFREG | 0o640;
    st.st_uid = 1000;
    st.st_gid = 1001;
    st.st_mtime = 1_600_000_000;
    st.st_atime = 1_600_000_001;
    let mut fid = lu_fid::default();
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let rc = unsafe {
        (api().llapi_hsm_import)(
            cp(&dst).as_ptr(),
            2,
            &st,
            0,
            -1,
            0,
            0,
            std::ptr::null_mut(),
            &mut fid,
        )
    };
    assert_eq!(rc, 0);
    assert_eq!(lu(path2fid(&dst)), fid);
    let md = std::fs::metadata(&dst).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (md.len(), md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
        (12345, 0o640, 1000, 1001, 1_600_000_000)
    );
    assert_eq!(hsm_state(&dst), (HS_EXISTS | HS_ARCHIVED | HS_RELEASED, 2));
}

#[test]
fn bad_cli_input_gives_one_line_and_a_failure() {
    let sim = Sim::start(SimOptions::default());
    let m = sim.mount().to_str().unwrap().to_string();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "lfs".into(),
            "fid2path".into(),
            m.clone(),
            "[0x200000400:0x777:0x0]".into(),
        ],
        vec!["lfs".into(), "fid2path".into(), m.clone(), "notafid".into()],
        vec!["lfs".into(), "path2fid".into(), format!("{m}/missing")],
        vec!["lfs".into(), "hsm_state".into(), format!("{m}/missing")],
        vec!["lfs".into(), "hsm_archive".into(), "/".into()],
        vec!["lfs".into(), "changelog".into(), "nosuchfs-MDT0000".into()],
        vec![
            "lctl".into(),
            "set_param".into(),
            format!("mdt.{}-MDT0000.hsm.max_requests=abc", sim.fsname()),
        ],
        vec![
            "lctl".into(),
            "set_param".into(),
            format!("mdt.{}-MDT0000.hsm.nosuch=1", sim.fsname()),
        ],
        vec!["lctl".into(), "get_param".into(), "mdt.nosuch.hsm.x".into()],
        vec!["lfs".into(), "nosuchcmd".into()],
    ];
    for args in cases {
        let o = if args[0] == "lfs" {
            sim.lfs(&args[1..].iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            sim.lctl(&args[1..].iter().map(String::as_str).collect::<Vec<_>>())
        };
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    let mut o = Command::new(testkit::sim::sim_bin_path())
        .args(["mds", "--mount"])
        .arg(sim.mount().join("nope"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    o.stderr.retain(|&b| b != b'\r');
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    let _ = std::io::stdout().flush();
}

/// A changelog user on MDT0 of `sim` and a reader following its changelog from the start.
fn follow_changelog(sim: &Sim) -> *mut c_void {
    sim.register_changelog_user(0);
    let mut h: *mut c_void = std::ptr::null_mut();
    let flags = (CHANGELOG_FLAG_FOLLOW | CHANGELOG_FLAG_JOBID | CHANGELOG_FLAG_EXTRA_FLAGS) as u32;
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (api().llapi_changelog_start)(&mut h, flags, c(&sim.mdt_name(0)).as_ptr(), 0) },
        0
    );
    h
}

#[test]
fn a_following_reader_gets_new_records_and_polls_readable() {
    let sim = Sim::start(SimOptions::default());
    let a = api();
    let mut h = follow_changelog(&sim);
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let fd = unsafe { (a.llapi_changelog_get_fd)(h) };
    assert!(fd >= 0);
    std::fs::create_dir(sim.mount().join("d1")).unwrap();
    std::fs::create_dir(sim.mount().join("d2")).unwrap();
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { libc::poll(&mut p, 1, 30_000) },
        1,
        "records make the fd readable"
    );
    let mut names = Vec::new();
    while names.len() < 2 {
        let mut r = std::ptr::null_mut();
        assert_eq!(
            // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
            unsafe { (a.llapi_changelog_recv)(h, &mut r) },
            0,
            "follow mode blocks, never returns 1"
        );
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        let b = unsafe {
            std::slice::from_raw_parts(r as *const u8, lustreapi_sim::record::CR_MAXSIZE)
        };
        names.push(Rec::decode(b).unwrap().0.name);
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (a.llapi_changelog_free)(&mut r) };
    }
    assert_eq!(names, vec![b"d1".to_vec(), b"d2".to_vec()]);
    let in_buf = a.llapi_changelog_in_buf.expect("in_buf exported");
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    assert_eq!(unsafe { in_buf(h) }, 0);
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    assert_eq!(unsafe { (a.llapi_changelog_fini)(&mut h) }, 0);
    assert!(h.is_null());
}

/// A following reader that caught up reads again only after a pause, as a Lustre client's
/// reader thread does (`chlg_load` sleeps a second between passes): a record written right after
/// it caught up is not delivered at once. The product's freshness includes this wait.
#[test]
fn a_caught_up_follower_gets_a_new_record_only_at_its_next_pass() {
    let sim = Sim::start(SimOptions::default());
    let a = api();
    let mut h = follow_changelog(&sim);
    let next_name = || {
        let mut r = std::ptr::null_mut();
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        assert_eq!(unsafe { (a.llapi_changelog_recv)(h, &mut r) }, 0);
        // SAFETY: as above; the record is CR_MAXSIZE bytes long.
        let b = unsafe {
            std::slice::from_raw_parts(r as *const u8, lustreapi_sim::record::CR_MAXSIZE)
        };
        let name = Rec::decode(b).unwrap().0.name;
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (a.llapi_changelog_free)(&mut r) };
        name
    };
    std::fs::create_dir(sim.mount().join("d0")).unwrap();
    assert_eq!(next_name(), b"d0".to_vec());
    // Caught up: the next record waits for the reader's next pass.
    let written = std::time::Instant::now();
    std::fs::create_dir(sim.mount().join("d1")).unwrap();
    assert_eq!(next_name(), b"d1".to_vec());
    let waited = written.elapsed();
    let period = lustreapi_sim::mds::FOLLOW_PERIOD;
    assert!(
        waited >= period / 2,
        "delivered {waited:?} after it was written, the reader's pause is {period:?}"
    );
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    assert_eq!(unsafe { (a.llapi_changelog_fini)(&mut h) }, 0);
}

#[test]
fn copytools_learn_of_a_shutdown_and_registration_needs_a_coordinator() {
    let mut sim = Sim::start(SimOptions::default());
    let m = sim.mount().to_path_buf();
    let mut ag = Agent::register(&m, &[]);
    sim.stop();
    let mut hal = std::ptr::null_mut();
    let mut size = 0;
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (api().llapi_hsm_copytool_recv)(ag.ct, &mut hal, &mut size) },
        -libc::ESHUTDOWN
    );
    assert!(hal.is_null());
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { (api().llapi_hsm_copytool_unregister)(&mut ag.ct) },
        0
    );
    assert!(ag.ct.is_null());
    std::mem::forget(ag);
    sim.restart();
    sim.set_param("hsm_control", "shutdown");
    let mut ct = std::ptr::null_mut();
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    let rc = unsafe {
        (api().llapi_hsm_copytool_register)(&mut ct, cp(&m).as_ptr(), 0, std::ptr::null_mut(), 0)
    };
    assert_eq!(rc, -libc::ENXIO);
    sim.set_param("hsm_control", "enabled");
    let ag = Agent::register(&m, &[]);
    drop(ag);
}

#[test]
fn a_dead_agent_is_dropped_and_the_work_goes_to_a_live_one() {
    let sim = Sim::start(SimOptions::default());
    let m = sim.mount();
    std::fs::write(m.join("f"), b"x").unwrap();
    let fid = path2fid(&m.join("f"));
    let (mut child, _out) = spawn_test_agent(m, &["--archive", "1"]);
    child.kill().unwrap();
    child.wait().unwrap();
    // the live agent registered later, so the dead one (same load, lower id) is tried first
    let mut ag = Agent::register(m, &[1]);
    assert_eq!(sim.get_param(0, "hsm.agents").lines().count(), 2);
    assert_eq!(request(m, HUA_ARCHIVE, 1, &[fid], b""), 0);
    let items = ag.recv();
    assert_eq!(items[0].fid, fid);
    assert_eq!(
        sim.get_param(0, "hsm.agents").lines().count(),
        1,
        "EPIPE unregistered the dead agent"
    );
}

#[test]
fn the_test_agent_with_end_archives_at_once_and_holds_restores() {
    let sim = Sim::start(SimOptions::default());
    let m = sim.mount();
    std::fs::write(m.join("f"), b"x").unwrap();
    let fid = path2fid(&m.join("f"));
    let (mut child, mut out) = spawn_test_agent(m, &["--archive", "1", "--end"]);
    let mut line = String::new();
    assert_eq!(request(m, HUA_ARCHIVE, 1, &[fid], b""), 0);
    wait_for("the archive to end", || {
        hsm_state(&m.join("f")) == (HS_EXISTS | HS_ARCHIVED, 1)
    });
    assert_eq!(request(m, HUA_RELEASE, 0, &[fid], b""), 0);
    assert_eq!(
        hsm_state(&m.join("f")).0,
        HS_EXISTS | HS_ARCHIVED | HS_RELEASED
    );
    assert_eq!(request(m, HUA_RESTORE, 1, &[fid], b""), 0);
    line.clear();
    out.read_line(&mut line).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("RESTORE "), "{line}");
    assert_eq!(
        current_action(&m.join("f")).hca_state,
        HPS_RUNNING,
        "a restore is begun and held, never ended without its data"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cli_prints_what_the_real_tools_print() {
    let sim = Sim::start(SimOptions::default());
    let mdt = sim.mdt_name(0);
    let o = sim.lctl(&["--device", &mdt, "changelog_register"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{mdt}: Registered changelog userid 'cl1'\n")
    );
    let f = sim.mount().join("file");
    std::fs::write(&f, b"x").unwrap();
    let fid = path2fid(&f);
    let out = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let fs = f.to_str().unwrap();
    assert_eq!(out(sim.lfs(&["path2fid", fs])), format!("{fid}\n"));
    assert_eq!(
        out(sim.lfs(&["fid2path", sim.fsname(), &fid.to_string()])),
        format!("{fs}\n")
    );
    assert_eq!(
        out(sim.lfs(&["hsm_state", fs])),
        format!("{fs}:\t(0x00000000)\n")
    );
    assert_eq!(
        out(sim.lfs(&["hsm_action", fs])),
        format!("{fs}: NOOP NONE\n")
    );
    out(sim.lfs(&["hsm_archive", "-a", "2", fs]));
    assert_eq!(
        out(sim.lfs(&["hsm_action", fs])),
        format!("{fs}: ARCHIVE WAITING\n")
    );
    let log = out(sim.lfs(&["changelog", &mdt]));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    let w: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!((w[0], w[1]), ("1", "01CREAT"));
    assert!(w[2].len() == 18 && w[3].len() == 10, "{}", lines[0]);
    assert_eq!(
        &w[4..],
        [
            "0x0",
            &format!("t={fid}"),
            // CLFE_UIDGID|CLFE_NID|CLFE_NID_BE: 2.16 stores the NID as struct lnet_nid
            "ef=0x13",
            "u=0:0",
            "nid=0@lo",
            &format!("p={}", path2fid(sim.mount())),
            "file"
        ]
    );
    assert!(lines[1].starts_with("2 11CLOSE "), "{}", lines[1]);
    out(sim.lfs(&["changelog_clear", &mdt, "cl1", "1"]));
    assert_eq!(out(sim.lfs(&["changelog", &mdt])).lines().count(), 1);
    assert_eq!(
        out(sim.lctl(&["set_param", &format!("mdt.{mdt}.hsm.max_requests=7")])),
        format!("mdt.{mdt}.hsm.max_requests=7\n")
    );
    assert_eq!(
        out(sim.lctl(&["get_param", &format!("mdt.{mdt}.hsm.max_requests")])),
        format!("mdt.{mdt}.hsm.max_requests=7\n")
    );
    assert_eq!(
        sim.get_param(0, "hsm.policy"),
        "NonBlockingRestore [NoRetryAction]"
    );
    assert_eq!(
        out(sim.lctl(&["--device", &mdt, "changelog_deregister", "cl1"])),
        format!("{mdt}: Deregistered changelog user #1\n")
    );
}

#[test]
fn files_written_in_brand_new_directories_get_create_and_close() {
    let sim = Sim::start(SimOptions::default());
    sim.register_changelog_user(0);
    let m = sim.mount();
    std::fs::create_dir_all(m.join("p/q/r")).unwrap();
    std::fs::write(m.join("p/q/r/f"), b"data").unwrap();
    let f = path2fid(&m.join("p/q/r/f"));
    let rs = records(&sim.mdt_name(0), 0);
    let mkdirs: Vec<&[u8]> = rs
        .iter()
        .filter(|r| r.rtype == CL_MKDIR)
        .map(|r| r.name.as_slice())
        .collect();
    assert_eq!(mkdirs, vec![&b"p"[..], b"q", b"r"]);
    let create = rs
        .iter()
        .position(|r| r.rtype == CL_CREATE && r.tfid == f)
        .expect("CREATE of f");
    assert!(
        rs[create..]
            .iter()
            .any(|r| r.rtype == CL_CLOSE && r.tfid == f),
        "{rs:#?}"
    );
    assert_eq!(rs.iter().filter(|r| r.rtype == CL_CREATE).count(), 1);
}

#[test]
fn hsm_control_disables_dispatch_and_purge_cancels() {
    let sim = Sim::start(SimOptions::default());
    let m = sim.mount();
    std::fs::write(m.join("f"), b"x").unwrap();
    let fid = path2fid(&m.join("f"));
    sim.set_param("hsm_control", "disabled");
    let mut ag = Agent::register(m, &[]);
    assert_eq!(request(m, HUA_ARCHIVE, 0, &[fid], b""), 0);
    assert_eq!(
        current_action(&m.join("f")).hca_state,
        HPS_WAITING,
        "queued, not sent"
    );
    sim.set_param("hsm_control", "enabled");
    assert_eq!(ag.recv()[0].fid, fid);
    sim.set_param("hsm_control", "purge");
    assert_eq!(current_action(&m.join("f")).hca_state, HPS_NONE);
    assert!(sim.get_param(0, "hsm.actions").contains("status=CANCELED"));
    assert_eq!(sim.get_param(0, "hsm_control"), "enabled");
}

#[test]
fn attribute_changes_map_to_the_setattr_family() {
    let mut sim = Sim::start(SimOptions::default());
    sim.register_changelog_user(0);
    let mount = sim.mount().to_path_buf();
    let m = mount.as_path();
    let f = m.join("f");
    std::fs::write(&f, b"abc").unwrap();
    path2fid(m);
    let fc = cp(&f);
    let times = [
        libc::timespec {
            tv_sec: 5,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 7,
            tv_nsec: 0,
        },
    ];
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { libc::utimensat(libc::AT_FDCWD, fc.as_ptr(), times.as_ptr(), 0) },
        0
    );
    path2fid(m);
    // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
    assert_eq!(unsafe { libc::chown(fc.as_ptr(), 1234, 1234) }, 0);
    path2fid(m);
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { libc::removexattr(fc.as_ptr(), c("trusted.nope").as_ptr()) },
        -1,
        "no such xattr: nothing recorded"
    );
    let rs = records(&sim.mdt_name(0), 0);
    // The utime's MTIME is not recorded: the object got a data record (the CLOSE) since the
    // changelog started (mdd_changelog_data_store); SETATTR is never suppressed.
    assert_eq!(types(&rs), vec![CL_CREATE, CL_CLOSE, CL_SETATTR], "{rs:#?}");
    // lustre_user.h la_valid bits, as mdd_attr_set_changelog stores them (real chown: 0x64).
    assert_eq!(rs[2].flags, LA_UID | LA_GID | LA_CTIME);
    assert_eq!(rs[2].uidgid, Some((1234, 1234)));
    // After a restart (an empty object cache) the first utime is an MTIME with its flags.
    sim.restart();
    path2fid(m);
    let later = [
        libc::timespec {
            tv_sec: 9,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 11,
            tv_nsec: 0,
        },
    ];
    assert_eq!(
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        unsafe { libc::utimensat(libc::AT_FDCWD, fc.as_ptr(), later.as_ptr(), 0) },
        0
    );
    path2fid(m);
    let rs = records(&sim.mdt_name(0), 0);
    let last = rs.last().expect("records");
    assert_eq!(last.rtype, CL_MTIME, "{rs:#?}");
    // A utime sets both times: LA_ATIME|LA_MTIME|LA_CTIME, 0x7 as real 2.16.1 writes it.
    assert_eq!(last.flags, LA_ATIME | LA_MTIME | LA_CTIME);
}

#[test]
fn one_copytool_handle_serves_actions_from_several_threads() {
    let sim = Sim::start(SimOptions::default());
    let m = sim.mount();
    let mut fids = Vec::new();
    for i in 0..3 {
        std::fs::write(m.join(format!("f{i}")), vec![b'a' + i as u8; 1000]).unwrap();
        fids.push(path2fid(&m.join(format!("f{i}"))));
    }
    let mut ag = Agent::register(m, &[]);
    assert_eq!(request(m, HUA_ARCHIVE, 0, &fids, b""), 0);
    assert_eq!(ag.recv().len(), 3);
    // copy each item before threading, as the hal buffer is reused by the next recv
    let ct = ag.ct as usize;
    let items: Vec<Vec<u8>> = (0..3)
        // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
        .map(|k| unsafe { std::slice::from_raw_parts(ag.item_ptr(k) as *const u8, 72) }.to_vec())
        .collect();
    let threads: Vec<_> = items
        .into_iter()
        .map(|item| {
            std::thread::spawn(move || {
                let a = api();
                let mut hcp = std::ptr::null_mut();
                // SAFETY: one liblustreapi call with live, ABI-sized arguments (module docs).
                let rc = unsafe {
                    (a.llapi_hsm_action_begin)(
                        &mut hcp,
                        ct as *const _,
                        item.as_ptr() as *const _,
                        -1,
                        0,
                        false,
                    )
                };
                assert_eq!(rc, 0);
                for k in 0..10 {
                    assert_eq!(progress(hcp, k * 100, 100), 0);
                }
                end(hcp, 0)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 0);
    }
    for i in 0..3 {
        assert_eq!(
            hsm_state(&m.join(format!("f{i}"))).0,
            HS_EXISTS | HS_ARCHIVED
        );
    }
}

#[test]
fn the_binary_acts_as_lfs_or_lctl_under_those_names() {
    let sim = Sim::start(SimOptions::default());
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(testkit::sim::sim_bin_path(), bin.path().join("lfs")).unwrap();
    let o = Command::new(bin.path().join("lfs"))
        .arg("path2fid")
        .arg(sim.mount())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "[0x200000007:0x1:0x0]\n"
    );
    let o = Command::new(bin.path().join("lfs"))
        .arg("path2fid")
        .arg(sim.mount().join("missing"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such file or directory"));
}

#[test]
fn a_second_daemon_cannot_take_a_live_fsname() {
    let sim = Sim::start(SimOptions::default());
    let other = tempfile::tempdir().unwrap();
    let o = Command::new(testkit::sim::sim_bin_path())
        .args(["mds", "--mount"])
        .arg(other.path())
        .args(["--fsname", sim.fsname()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already served"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

/// Begins and ends (successfully) every item of the next action list; returns their FIDs.
fn serve_one_list(ag: &mut Agent) -> Vec<Fid> {
    let items = ag.recv();
    for k in 0..items.len() {
        let hcp = ag.begin(k).expect("action_begin");
        assert_eq!(end(hcp, 0), 0);
    }
    items.iter().map(|i| i.fid).collect()
}

/// A queue far longer than `max_requests` drains in request order, each file exactly once; a
/// file deleted while queued fails instead of being sent; and the queue survives a daemon crash
/// (the coordinator's index of live requests is rebuilt from the saved state).
#[test]
fn a_long_queue_drains_in_order_across_a_restart_and_a_vanished_file_fails() {
    let mut sim = Sim::start(SimOptions::default());
    sim.set_param("hsm.max_requests", "3");
    let m = sim.mount().to_path_buf();
    let n = 120;
    let mut fids = Vec::new();
    for i in 0..n {
        std::fs::write(m.join(format!("f{i:03}")), b"x").unwrap();
        fids.push(path2fid(&m.join(format!("f{i:03}"))));
    }
    let mut ag = Agent::register(&m, &[]);
    // One hsm_user_request holds at most 52 items (HUR_MAX_LEN): three of them.
    for part in fids.chunks(40) {
        assert_eq!(request(&m, HUA_ARCHIVE, 0, part, b""), 0);
    }
    let mut done = Vec::new();
    while done.len() < 45 {
        done.extend(serve_one_list(&mut ag));
    }
    assert_eq!(current_action(&m.join("f100")).hca_state, HPS_WAITING);
    // Hold dispatch, let what was sent finish, then delete a queued file.
    sim.set_param("hsm_control", "disabled");
    while sim.get_param(0, "hsm.actions").contains("status=STARTED") {
        done.extend(serve_one_list(&mut ag));
    }
    std::fs::remove_file(m.join("f110")).unwrap();
    sim.kill9();
    drop(ag);
    sim.restart();
    sim.set_param("hsm_control", "enabled");
    let mut ag = Agent::register(&m, &[]);
    wait_for("the vanished file's request to fail", || {
        sim.get_param(0, "hsm.actions")
            .lines()
            .any(|l| l.contains(&fids[110].to_string()) && l.contains("status=FAILED"))
    });
    while done.len() < n - 1 {
        done.extend(serve_one_list(&mut ag));
    }
    let mut want = fids.clone();
    want.remove(110);
    assert_eq!(done, want, "every queued file once, in request order");
    assert_eq!(current_action(&m.join("f100")).hca_state, HPS_NONE);
}
