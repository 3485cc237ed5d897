//! The environment of the copytool suites (`copytool/tests/`): a simulated Lustre, Azurite and
//! `lhsmtool_blob` processes ([`Proc`]), driven through `lfs` as the coordinator's users would,
//! with the blob crate's client for checks. The same parts as [`crate::stack::Stack`] (which adds
//! the policy daemon); a failing test keeps its logs the same way.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::sim::{Sim, SimOptions};
use testkit::{bin_path, Azurite, BlobEndpoint};

use crate::proc::Proc;
use crate::util::wait_until;

pub const BLOCK: usize = 64 << 10;
pub const CONTAINER: &str = "export";
pub const LOGS: &str = "lustre-logs";

/// A copytool process of a test.
pub type Copytool = Proc;

pub struct Env {
    pub sim: Sim,
    pub az: Azurite,
    pub dir: tempfile::TempDir,
    pub policy: PathBuf,
    rt: tokio::runtime::Runtime,
    pub store: blob::BlobStore,
    pub logs: blob::BlobStore,
}

pub fn policy_text(az: &Azurite, mount: &Path, extra: &str) -> String {
    format!(
        r#"
[lustre]
mount = "{mount}"
archive_id = 1

[blob]
url = "{url}"
use_emulator = true
request_timeout = "10s"
retries = 1

[logging]
container = "{LOGS}"

{extra}
"#,
        mount = mount.display(),
        url = az.container_url(CONTAINER),
    )
}

impl Env {
    /// A simulator and an Azurite with the export and log containers; `extra` is appended to the
    /// policy file (e.g. an `[autoexport]` section).
    pub fn start(extra: &str) -> Env {
        Env::start_with(SimOptions::default(), extra)
    }

    /// As `start`, on a simulator started with `opts` (e.g. several MDTs).
    pub fn start_with(opts: SimOptions, extra: &str) -> Env {
        let sim = Sim::start(opts);
        let az = Azurite::start();
        az.create_container(CONTAINER);
        az.create_container(LOGS);
        sim.set_param("hsm.max_requests", "16");
        let dir = tempfile::Builder::new()
            .prefix("e2e-copytool-")
            .tempdir()
            .unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, policy_text(&az, sim.mount(), extra)).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let spec = |url: String| {
            let mut s = blob::TargetSpec::new(url);
            s.use_emulator = true;
            s.request_timeout = Duration::from_secs(10);
            s.retries = 0;
            s
        };
        let (store, logs) = {
            let _g = rt.enter();
            (
                blob::BlobStore::open(&spec(az.container_url(CONTAINER))).unwrap(),
                blob::BlobStore::open(&spec(az.container_url(LOGS))).unwrap(),
            )
        };
        Env {
            sim,
            az,
            dir,
            policy,
            rt,
            store,
            logs,
        }
    }

    pub fn rewrite_policy(&self, extra: &str) {
        std::fs::write(&self.policy, policy_text(&self.az, self.sim.mount(), extra)).unwrap();
    }

    /// Starts `lhsmtool_blob` with small blocks and fast progress, plus `args`.
    pub fn copytool(&self, args: &[&str]) -> Copytool {
        self.copytool_env(args, &[])
    }

    /// As `copytool`, with extra environment variables (e.g. `LUSTRE_SIM_VERSION`). Unless `args`
    /// has `--journal-dir`, the journal of begun items is `<test dir>/journal`, shared by every
    /// copytool of the test (as on one host).
    pub fn copytool_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Copytool {
        let journal = self.dir.path().join("journal");
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.dir.path().join(format!("copytool-{n}.log"));
        // Defaults for tests (small blocks, fast progress) unless the test gives the flag itself.
        let mut defaults: Vec<&str> = Vec::new();
        for (flag, value) in [
            ("--block-size", "64KiB"),
            ("--blocks-in-flight", "4"),
            ("-u", "1"),
            ("--shutdown-timeout", "5s"),
            ("--journal-dir", journal.to_str().unwrap()),
        ] {
            if !args.contains(&flag) {
                defaults.extend([flag, value]);
            }
        }
        testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
        let mut cmd = Command::new(bin_path("lhsmtool_blob"));
        cmd.arg("--config")
            .arg(&self.policy)
            .args(defaults)
            .args(args)
            .arg("-v")
            .arg(self.sim.mount())
            .envs(self.sim.env())
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info");
        let mut ct = Proc::spawn("lhsmtool_blob", cmd, &log);
        let daemonizes = args.contains(&"--daemon");
        let registered = wait_until(Duration::from_secs(30), || {
            // With --daemon the foreground process exits at once; the daemon keeps the log file.
            ct.log().contains("registered as an HSM copytool") || (!daemonizes && !ct.alive())
        });
        if !registered && !daemonizes {
            if let Some(code) = ct.exit_code() {
                panic!(
                    "lhsmtool_blob exited ({code}) before registering:\n{}",
                    ct.log()
                );
            }
        }
        assert!(registered, "lhsmtool_blob did not register:\n{}", ct.log());
        ct
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.sim.mount().join(rel)
    }

    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, data).unwrap();
        // Let the simulator's watcher see the file (it assigns FIDs from inotify).
        self.wait_until(
            "file known to the simulator",
            Duration::from_secs(10),
            || {
                self.sim
                    .lfs(&["path2fid", p.to_str().unwrap()])
                    .status
                    .success()
            },
        );
        p
    }

    pub fn lfs(&self, args: &[&str]) -> (bool, String) {
        let o = self.sim.lfs(args);
        let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&o.stderr));
        (o.status.success(), s)
    }

    pub fn hsm(&self, cmd: &str, path: &Path, data: Option<&str>) {
        let mut args = vec![cmd];
        if let Some(d) = data {
            args.extend(["--data", d]);
        }
        let p = path.to_str().unwrap();
        args.push(p);
        let (ok, out) = self.lfs(&args);
        assert!(ok, "lfs {cmd} {p}: {out}");
    }

    pub fn state(&self, path: &Path) -> String {
        self.lfs(&["hsm_state", path.to_str().unwrap()]).1
    }

    /// The flag words of `lfs hsm_state` (`... (0x..) exists archived, archive_id:1`), sorted.
    pub fn flags(&self, path: &Path) -> Vec<String> {
        let out = self.state(path);
        let after = out.split_once(") ").map(|(_, r)| r).unwrap_or("");
        let words = after.split(',').next().unwrap_or("");
        let mut v: Vec<String> = words.split_whitespace().map(str::to_string).collect();
        v.sort();
        v
    }

    /// Waits until `lfs hsm_state` shows exactly the flags `want` (e.g. "exists archived"), in any
    /// order.
    pub fn wait_state(&self, path: &Path, want: &str, ct: &[&Copytool]) {
        let mut want_v: Vec<String> = want.split_whitespace().map(str::to_string).collect();
        want_v.sort();
        let mut last = String::new();
        let reached = wait_until(Duration::from_secs(60), || {
            if self.flags(path) == want_v {
                return true;
            }
            last = self.state(path);
            false
        });
        if reached {
            return;
        }
        let logs: Vec<String> = ct.iter().map(|c| c.log()).collect();
        panic!(
            "{} never reached '{want}'; last: {last}\ncopytool logs:\n{}\nsim log:\n{}",
            path.display(),
            logs.join("\n----\n"),
            self.sim.log()
        );
    }

    /// Waits until `f` holds; panics naming `what`, with the simulator's log, after `within`.
    pub fn wait_until(&self, what: &str, within: Duration, f: impl FnMut() -> bool) {
        if !wait_until(within, f) {
            panic!(
                "timed out waiting for: {what}\nsim log:\n{}",
                self.sim.log()
            );
        }
    }

    /// Waits until the archive of `p` is RUNNING and has moved bytes: RUNNING alone is not
    /// enough, a list the coordinator sent may still wait in the copytool's queue.
    pub fn wait_bytes_moved(&self, p: &std::path::Path) {
        self.wait_until(
            "archive running with bytes moved",
            Duration::from_secs(60),
            || {
                let (_, out) = self.lfs(&["hsm_action", &p.to_string_lossy()]);
                out.contains("RUNNING") && !out.contains("(0 bytes moved)")
            },
        );
    }

    /// The coordinator's view of requests (`hsm.actions`).
    pub fn actions(&self) -> String {
        self.sim.get_param(0, "hsm.actions")
    }

    pub fn blob(&self, name: &str) -> Option<Vec<u8>> {
        let n = blob::BlobName::new(name).unwrap();
        self.rt.block_on(async {
            match self.store.get_bytes(&n).await {
                Ok(b) => Some(b.to_vec()),
                Err(e) if e.is_not_found() => None,
                Err(e) => panic!("get {name}: {e}"),
            }
        })
    }

    pub fn blob_info(&self, name: &str) -> Option<blob::BlobInfo> {
        let n = blob::BlobName::new(name).unwrap();
        self.rt.block_on(self.store.head(&n)).unwrap()
    }

    pub fn put_blob(&self, name: &str, data: &[u8]) {
        self.put_blob_with(name, data, &blob::Metadata::default());
    }

    /// Writes a blob with the given metadata (e.g. another file's `lustre_fid`).
    pub fn put_blob_with(&self, name: &str, data: &[u8], meta: &blob::Metadata) {
        let n = blob::BlobName::new(name).unwrap();
        self.rt
            .block_on(self.store.put_bytes(
                &n,
                data.to_vec().into(),
                meta,
                blob::WriteMode::Overwrite,
            ))
            .unwrap();
    }

    /// Removes the export record from a file, as if the copytool had died before writing it.
    pub fn remove_record(&self, path: &Path) {
        assert!(
            blob::ExportRecord::read_at(path).unwrap().is_some(),
            "no record to remove"
        );
        blob::ExportRecord::clear_at(path).unwrap();
    }

    pub fn blob_names(&self) -> Vec<String> {
        use futures::StreamExt;
        self.rt.block_on(async {
            let mut s = self.store.list("").unwrap();
            let mut v = Vec::new();
            while let Some(i) = s.next().await {
                v.push(i.unwrap().name.as_str().to_string());
            }
            v.sort();
            v
        })
    }

    /// Every JSON line written to the logging container so far.
    pub fn log_entries(&self) -> Vec<serde_json::Value> {
        use futures::StreamExt;
        self.rt.block_on(async {
            let mut out = Vec::new();
            let Ok(mut s) = self.logs.list("") else {
                return out;
            };
            while let Some(Ok(i)) = s.next().await {
                let name = i.blob_name().expect("log blob names are valid");
                if let Ok(b) = self.logs.get_bytes(&name).await {
                    for l in String::from_utf8_lossy(&b).lines() {
                        out.push(serde_json::from_str(l).unwrap());
                    }
                }
            }
            out
        })
    }

    /// The export record on a file, as its JSON.
    pub fn record(&self, path: &Path) -> Option<serde_json::Value> {
        blob::ExportRecord::read_at(path)
            .unwrap()
            .map(|r| serde_json::to_value(r).unwrap())
    }
}

impl Drop for Env {
    /// A failing test keeps the copytools' logs and the simulator's (named on stderr).
    fn drop(&mut self) {
        crate::stack::keep_logs_of_failed_test(&mut self.dir, &self.sim);
    }
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn read_all(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    std::fs::File::open(p).unwrap().read_to_end(&mut v).unwrap();
    v
}
