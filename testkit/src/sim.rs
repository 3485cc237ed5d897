//! The Lustre simulator as a real process: a temporary mount directory served by
//! `lustre-sim mds`, plus the paths of `liblustreapi_sim.so` and the `lustre-sim` CLI.
//!
//! ```no_run
//! let sim = testkit::sim::Sim::start(testkit::sim::SimOptions::default());
//! let user = sim.register_changelog_user(0);           // "cl1"
//! sim.set_param("hsm.active_request_timeout", "2");    // on every MDT of this sim
//! // child processes get `LUSTREAPI_LIB`: Command::new(..).envs(sim.env())
//! ```
//! Nothing global is set: callers pass [`Sim::env`] to child processes, or set
//! `LUSTREAPI_LIB` to [`sim_lib_path`] themselves in a test process.

use crate::paths::{bin_path, target_dir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `liblustreapi_sim.so` in the target directory the running test was built in. `cargo build`
/// puts it in `target/<profile>/`; `cargo test -p lustre-sim` refreshes only the copy in
/// `deps/`, so the newer of the two wins.
pub fn sim_lib_path() -> PathBuf {
    let top = target_dir().join("liblustreapi_sim.so");
    let deps = target_dir().join("deps").join("liblustreapi_sim.so");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(&top), mtime(&deps)) {
        (Some(a), Some(b)) if b > a => deps,
        (None, Some(_)) => deps,
        _ => top,
    }
}

/// The `lustre-sim` binary next to the tests.
pub fn sim_bin_path() -> PathBuf {
    bin_path("lustre-sim")
}

/// Builds the simulator (binary and cdylib) when either is missing, e.g. under
/// `cargo test -p <other package>`, which does not build other packages' artifacts.
pub fn ensure_sim_built() {
    if sim_lib_path().exists() && sim_bin_path().exists() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "lustre-sim", "--lib", "--bins"])
        .current_dir(workspace_root())
        .status()
        .expect("running cargo build -p lustre-sim");
    assert!(status.success(), "cargo build -p lustre-sim failed");
}

/// Builds `bin` of `package` when it is missing, e.g. under `cargo test -p <other package>`,
/// which does not build other packages' binaries.
pub fn ensure_bin_built(package: &str, bin: &str) {
    if bin_path(bin).exists() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args(["build", "-p", package, "--bin", bin])
        .current_dir(workspace_root())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "cargo build -p {package} --bin {bin} failed");
}

/// One simulator at a time in this test binary, on a mount table of its own. Simulators
/// starting in parallel race on their shared mount table (an MDT then reads as "No such
/// device"), and the shared table loses entries when other suites rewrite it at the same time.
/// Hold the guard for the whole test.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static TAB: std::sync::Once = std::sync::Once::new();
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    TAB.call_once(|| {
        let tab = std::env::temp_dir()
            .join(format!("lustre-blob-sim-tests-{}", std::process::id()))
            .join("mounts");
        std::env::set_var("LUSTRE_SIM_MOUNTTAB", tab);
    });
    guard
}

/// A fresh file-system name (at most 8 characters): random per process and call, and not in
/// any simulator mount table (so concurrent test processes never share a name).
pub fn unique_fsname() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let taken = mounttab_names();
    loop {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let v = (std::process::id().wrapping_mul(2_654_435_761) ^ nanos ^ n.wrapping_mul(40_503))
            & 0x0FFF_FFFF;
        let name = format!("s{:07x}", v);
        if !taken.contains(&name) {
            return name;
        }
    }
}

/// Fsnames listed in the mount tables the simulator uses (`LUSTRE_SIM_MOUNTTAB`, else
/// `/run/lustre-sim/mounts` and the per-user fallback under the temporary directory).
fn mounttab_names() -> Vec<String> {
    let files: Vec<PathBuf> = match std::env::var_os("LUSTRE_SIM_MOUNTTAB") {
        Some(p) => vec![PathBuf::from(p)],
        None => {
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            vec![
                PathBuf::from("/run/lustre-sim/mounts"),
                std::env::temp_dir()
                    .join(format!("lustre-sim-{uid}"))
                    .join("mounts"),
            ]
        }
    };
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.split('\t').next().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub mdts: u32,
    pub fsname: String,
    /// A mount table of its own (`LUSTRE_SIM_MOUNTTAB` for the daemon and in [`Sim::env`]);
    /// None: whatever the test process's environment says.
    pub mounttab: Option<PathBuf>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            mdts: 1,
            fsname: unique_fsname(),
            mounttab: None,
        }
    }
}

pub struct Sim {
    opts: SimOptions,
    dir: tempfile::TempDir,
    mount: PathBuf,
    child: Option<Child>,
}

impl Sim {
    /// Starts `lustre-sim mds` on a new temporary directory and waits until it is ready
    /// (`lustre-sim lfs path2fid MOUNT` succeeds).
    pub fn start(opts: SimOptions) -> Sim {
        ensure_sim_built();
        let dir = tempfile::Builder::new()
            .prefix("lsim-")
            .tempdir()
            .expect("temp dir");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).expect("mount dir");
        let mut s = Sim {
            opts,
            dir,
            mount,
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("daemon log file");
        let mut cmd = Command::new(sim_bin_path());
        if let Some(tab) = &self.opts.mounttab {
            cmd.env("LUSTRE_SIM_MOUNTTAB", tab);
        }
        let child = cmd
            .arg("mds")
            .arg("--mount")
            .arg(&self.mount)
            .args([
                "--fsname",
                &self.opts.fsname,
                "--mdts",
                &self.opts.mdts.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning lustre-sim mds");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Ready: the mount answers by path, and its fsname resolves (mount table entry).
            let root_fid = "[0x200000007:0x1:0x0]";
            let by_path = self
                .lfs(&["path2fid", self.mount.to_str().unwrap_or("")])
                .status
                .success();
            if by_path
                && self
                    .lfs(&["fid2path", &self.opts.fsname, root_fid])
                    .status
                    .success()
            {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("lustre-sim mds exited ({st}); log:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "lustre-sim mds not ready after 30 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The simulated mount point (a plain directory).
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    pub fn fsname(&self) -> &str {
        &self.opts.fsname
    }

    pub fn mdts(&self) -> u32 {
        self.opts.mdts
    }

    /// `<fsname>-MDT%04x`.
    pub fn mdt_name(&self, index: u32) -> String {
        format!("{}-MDT{:04x}", self.opts.fsname, index)
    }

    pub fn lib_path(&self) -> PathBuf {
        sim_lib_path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mds.log")
    }

    /// The daemon's stderr so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Environment for child processes: `LUSTREAPI_LIB` pointing at the simulator library,
    /// `LUSTRE_SIM_MOUNT` scoping `lctl get/set_param` to this simulator, and
    /// `LUSTRE_SIM_MOUNTTAB` when [`SimOptions::mounttab`] is set.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "LUSTREAPI_LIB".into(),
                self.lib_path().display().to_string(),
            ),
            ("LUSTRE_SIM_MOUNT".into(), self.mount.display().to_string()),
        ];
        if let Some(tab) = &self.opts.mounttab {
            env.push(("LUSTRE_SIM_MOUNTTAB".into(), tab.display().to_string()));
        }
        env
    }

    fn cli(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(sim_bin_path())
            .arg(tool)
            .args(args)
            .envs(self.env())
            .output()
            .expect("running lustre-sim")
    }

    /// `lustre-sim lfs ARGS` (output captured).
    pub fn lfs(&self, args: &[&str]) -> Output {
        self.cli("lfs", args)
    }

    /// Creates the empty file `path` (parents made) striped over `count` OSTs in `size` stripes
    /// (`4M`) in OST pool `pool` (`lfs setstripe -c -S -p`); panics when it fails.
    pub fn create_striped(&self, path: &std::path::Path, count: u32, size: &str, pool: &str) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("parent directories");
        }
        let count = count.to_string();
        let file = path.display().to_string();
        let o = self.lfs(&["setstripe", "-c", &count, "-S", size, "-p", pool, &file]);
        assert!(
            o.status.success(),
            "lfs setstripe {file}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// `lustre-sim lctl ARGS` (output captured).
    pub fn lctl(&self, args: &[&str]) -> Output {
        self.cli("lctl", args)
    }

    /// `lctl set_param mdt.<fs>-MDT*.NAME=VALUE` (e.g. `hsm.max_requests`, `hsm_control`);
    /// panics when it fails.
    pub fn set_param(&self, name: &str, value: &str) {
        let p = format!("mdt.{}-MDT*.{}={}", self.opts.fsname, name, value);
        let o = self.lctl(&["set_param", &p]);
        assert!(
            o.status.success(),
            "set_param {p}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// `lctl get_param -n mdt.<fs>-MDT%04x.NAME` for one MDT.
    pub fn get_param(&self, mdt: u32, name: &str) -> String {
        let p = format!("mdt.{}.{}", self.mdt_name(mdt), name);
        let o = self.lctl(&["get_param", "-n", &p]);
        assert!(
            o.status.success(),
            "get_param {p}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// `lctl get_param -n sim.stats`: what each MDS call cost, by name (the simulator counts
    /// them as Lustre would feel them).
    pub fn stats(&self) -> std::collections::BTreeMap<String, u64> {
        let o = self.lctl(&["get_param", "-n", "sim.stats"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// Registers a changelog user on MDT `mdt`; returns its id ("clN").
    pub fn register_changelog_user(&self, mdt: u32) -> String {
        let dev = self.mdt_name(mdt);
        let o = self.lctl(&["--device", &dev, "changelog_register", "-n"]);
        assert!(
            o.status.success(),
            "changelog_register: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// SIGKILL the daemon (a crash); [`Sim::restart`] brings it back on the same state.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon cleanly (SIGTERM: agents get the shutdown message).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: sending SIGTERM to our own child process by its pid.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the daemon again (after [`Sim::kill9`] or [`Sim::stop`]) and waits for readiness.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The daemon's pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}
