//! What the daemon's namespace port says while the MDS does not answer: never a verdict on the
//! file. Through `liblustreapi_sim.so`, a call to a killed MDS answers ENOENT, which
//! `LustreNs` checks against the root of the mount and turns into ESHUTDOWN (the engine then
//! re-queues the file; ENOENT alone would mean the file is gone).

use policy::ports::Namespace;
use policy::real::LustreNs;

#[test]
fn fid2path_and_path2fid_while_the_mds_is_down_are_errors_of_the_file_system_not_of_the_file() {
    let _serial = testkit::sim::one_at_a_time();
    std::env::set_var("LUSTREAPI_LIB", testkit::sim_lib_path());
    let mut sim = testkit::sim::Sim::start(testkit::sim::SimOptions::default());
    std::fs::write(sim.mount().join("f.dat"), b"data").expect("write");
    let mount = lustre::Mount::open(sim.mount()).expect("Mount::open");
    let ns = LustreNs {
        mount,
        mdts: Vec::new(),
        users: Vec::new(),
    };
    let fid = ns.path2fid(b"f.dat").expect("path2fid while the MDS runs");
    assert_eq!(
        ns.fid2path(&fid).expect("fid2path while the MDS runs"),
        Some(b"f.dat".to_vec())
    );
    sim.kill9();
    for (call, r) in [
        ("fid2path", ns.fid2path(&fid).map(|_| ())),
        ("path2fid", ns.path2fid(b"f.dat").map(|_| ())),
    ] {
        let e = r.expect_err(call);
        assert_eq!(
            e.errno,
            libc::ESHUTDOWN,
            "{call} with the MDS down: {e} (errno {})",
            e.errno
        );
    }
}
