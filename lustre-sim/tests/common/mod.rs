//! What the simulator's API test files share: a running simulator with `lustre`'s safe API loaded
//! against `liblustreapi_sim.so`, and the whole-file extent.

use lustre::{Extent, Mount};
use std::sync::Once;
use testkit::sim::{Sim, SimOptions};

/// A simulator started with `opts` and its mount opened through the safe API. The first call
/// builds the simulator if needed and points `LUSTREAPI_LIB` at its library.
pub fn start_with(opts: SimOptions) -> (Sim, Mount) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        testkit::sim::ensure_sim_built();
        std::env::set_var("LUSTREAPI_LIB", testkit::sim_lib_path());
    });
    let sim = Sim::start(opts);
    let mount = Mount::open(sim.mount()).expect("Mount::open");
    (sim, mount)
}

/// [`start_with`] the default options.
#[allow(dead_code)] // not every test file starts a default simulator
pub fn start() -> (Sim, Mount) {
    start_with(SimOptions::default())
}

/// The extent of a whole file, as the coordinator sends it.
#[allow(dead_code)] // not every test file needs it
pub fn whole() -> Extent {
    Extent {
        offset: 0,
        length: u64::MAX,
    }
}

/// Archives `fid` through `ct` (the copy ends well at once) and releases it: a file whose next
/// use is a RESTORE.
#[allow(dead_code)] // not every test file needs it
pub fn archive_and_release(mnt: &Mount, ct: &lustre::Copytool, fid: lustre::Fid) {
    use lustre::UserAction;
    mnt.hsm_request(UserAction::Archive, 0, 0, &[fid], b"")
        .unwrap();
    let hal = ct.recv().unwrap();
    ct.begin(&hal.items[0], -1, 0)
        .unwrap()
        .end(whole(), 0, 0)
        .unwrap();
    mnt.hsm_request(UserAction::Release, 0, 0, &[fid], b"")
        .unwrap();
}
