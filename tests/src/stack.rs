//! The whole product on one machine: Azurite, a simulated Lustre, the policy file, copytools and
//! the policy daemon, each a real process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use testkit::sim::{Sim, SimOptions};
use testkit::{bin_path, BlobEndpoint};

use crate::policy::PolicyFile;
use crate::proc::Proc;
use crate::store::Store;
use crate::util::wait_until;

pub struct StackOptions {
    /// Azurite keeps its data on disk (survives kill -9).
    pub azurite_on_disk: bool,
    /// Create the export container (false: the policy names one that does not exist).
    pub create_container: bool,
    /// `autoexport.path`.
    pub prefix: String,
    pub min_age: String,
    /// Coordinator `hsm.max_requests`.
    pub max_requests: u32,
    /// MDTs of the simulated file system (the changelog user is registered on MDT0 only).
    pub mdts: u32,
    /// Azurite logs every request it receives (`Store::requests`).
    pub log_requests: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            azurite_on_disk: false,
            create_container: true,
            prefix: String::new(),
            min_age: "0s".into(),
            max_requests: 32,
            mdts: 1,
            log_requests: false,
        }
    }
}

pub struct Stack {
    pub store: Store,
    pub sim: Sim,
    pub dir: tempfile::TempDir,
    pub policy: PolicyFile,
    pub policy_path: PathBuf,
    pub container: String,
    pub logs: String,
    pub copytools: Vec<Proc>,
    pub daemon: Option<Proc>,
    started: u32,
}

impl Stack {
    pub fn new(opts: StackOptions) -> Stack {
        let store = Store::start_with(opts.azurite_on_disk, opts.log_requests);
        let sim = Sim::start(SimOptions {
            mdts: opts.mdts.max(1),
            ..SimOptions::default()
        });
        let user = sim.register_changelog_user(0);
        sim.set_param("hsm.max_requests", &opts.max_requests.to_string());
        let dir = tempfile::Builder::new()
            .prefix("e2e-stack-")
            .tempdir()
            .expect("tempdir");
        let container = "export".to_string();
        let logs = "lustre-logs".to_string();
        if opts.create_container {
            store.create_container(&container);
        }
        store.create_container(&logs);
        if opts.azurite_on_disk {
            // Azurite on disk saves its metadata every ~5 s: let the containers reach the disk
            // before anything can kill it.
            std::thread::sleep(Duration::from_secs(6));
        }
        let mut policy = PolicyFile::new(
            sim.mount(),
            &user,
            &store.container_url(&container),
            &logs,
            dir.path(),
        );
        policy.prefix = opts.prefix;
        policy.min_age = opts.min_age;
        let policy_path = dir.path().join("policy.toml");
        policy.write(&policy_path);
        Stack {
            store,
            sim,
            dir,
            policy,
            policy_path,
            container,
            logs,
            copytools: Vec::new(),
            daemon: None,
            started: 0,
        }
    }

    pub fn mount(&self) -> &Path {
        self.sim.mount()
    }

    /// Rewrites the policy file after `f` changed it.
    pub fn edit_policy(&mut self, f: impl FnOnce(&mut PolicyFile)) {
        f(&mut self.policy);
        self.policy.write(&self.policy_path);
    }

    fn log_path(&mut self, what: &str) -> PathBuf {
        self.started += 1;
        self.dir.path().join(format!("{what}-{}.log", self.started))
    }

    fn product(&self, bin: &str) -> Command {
        let mut c = Command::new(bin_path(bin));
        c.envs(self.sim.env());
        c
    }

    /// Agent uuids the coordinator of MDT0 lists.
    pub fn agents(&self) -> Vec<String> {
        let o = self.sim.lctl(&[
            "get_param",
            "-n",
            &format!("mdt.{}.hsm.agents", self.sim.mdt_name(0)),
        ]);
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("uuid="))
            .map(str::to_string)
            .collect()
    }

    /// Starts `lhsmtool_blob --archive 1 --config P MOUNT` (plus `extra` flags) and waits until
    /// the coordinator lists a new agent. Returns its index in `copytools`.
    pub fn start_copytool(&mut self, extra: &[&str]) -> usize {
        self.start_copytool_with(extra, |_| {})
    }

    /// [`Stack::start_copytool`] with a last adjustment of the command (e.g. a `pre_exec`).
    pub fn start_copytool_with(
        &mut self,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> usize {
        let before = self.agents();
        let mut cmd = self.product("lhsmtool_blob");
        adjust(&mut cmd);
        cmd.args(["--archive", "1", "--config"])
            .arg(&self.policy_path)
            .args(extra)
            .arg(self.mount());
        let log = self.log_path("copytool");
        let mut p = Proc::spawn("lhsmtool_blob", cmd, &log);
        let ok = wait_until(Duration::from_secs(30), || {
            !p.alive() || self.agents().iter().any(|a| !before.contains(a))
        });
        assert!(
            ok && p.alive(),
            "lhsmtool_blob did not register: {}",
            p.log()
        );
        self.copytools.push(p);
        self.copytools.len() - 1
    }

    /// Starts `lustre-blob daemon --config P` and waits until `lustre-blob status` answers.
    pub fn start_daemon(&mut self) {
        let mut cmd = self.product("lustre-blob");
        cmd.arg("daemon").arg("--config").arg(&self.policy_path);
        let log = self.log_path("daemon");
        let mut p = Proc::spawn("lustre-blob daemon", cmd, &log);
        let ok = wait_until(Duration::from_secs(30), || {
            !p.alive() || self.cli(&["status"]).status.success()
        });
        assert!(
            ok && p.alive(),
            "lustre-blob daemon did not come up: {}",
            p.log()
        );
        self.daemon = Some(p);
    }

    /// `lustre-blob ARGS --config P` (output captured).
    pub fn cli(&self, args: &[&str]) -> Output {
        self.product("lustre-blob")
            .args(args)
            .arg("--config")
            .arg(&self.policy_path)
            .output()
            .expect("running lustre-blob")
    }

    /// `lustre-blob status --json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let o = self.cli(&["status", "--json"]);
        assert!(
            o.status.success(),
            "status --json: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&o.stdout)
            )
        })
    }

    /// `lustre-blob flush --wait --timeout T`.
    pub fn flush(&self, timeout: &str) -> Output {
        self.cli(&["flush", "--wait", "--timeout", timeout])
    }

    /// Writes a file under the mount (parents created).
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.mount().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, bytes).expect("write file");
        p
    }

    /// The names of every blob in the export container, sorted.
    pub fn blob_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .store
            .list(&self.container, "")
            .into_iter()
            .map(|b| b.name)
            .collect();
        v.sort();
        v
    }

    /// `lfs hsm_state FILE` output.
    pub fn hsm_state(&self, path: &Path) -> String {
        let o = self.sim.lfs(&["hsm_state", &path.display().to_string()]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `lfs path2fid FILE` as `[0x...:0x...:0x...]`.
    pub fn path2fid(&self, path: &Path) -> String {
        let o = self.sim.lfs(&["path2fid", &path.display().to_string()]);
        let out = String::from_utf8_lossy(&o.stdout);
        out.split_whitespace()
            .find(|w| w.starts_with('['))
            .unwrap_or("")
            .to_string()
    }

    /// `lfs hsm_archive FILE...` (the coordinator path, without the daemon).
    pub fn hsm_archive(&self, paths: &[&Path]) -> Output {
        let mut args = vec!["hsm_archive".to_string(), "-a".into(), "1".into()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.sim.lfs(&refs)
    }

    /// Logs of every product process started so far (for assertion messages).
    /// Every line mentioning `needle` in the logs of every product process this stack started,
    /// including ones since killed and replaced (their log files stay), at most `max` lines.
    pub fn log_lines_about(&self, needle: &str, max: usize) -> Vec<String> {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
        logs.sort();
        let mut out = Vec::new();
        for p in logs {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for l in text.lines().filter(|l| l.contains(needle)) {
                if out.len() < max {
                    out.push(format!("{}: {l}", name.as_deref().unwrap_or("?")));
                }
            }
        }
        out
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for p in self.copytools.iter().chain(self.daemon.iter()) {
            s.push_str(&format!("---- {}\n{}\n", p.name, tail(&p.log(), 40)));
        }
        s.push_str(&format!("---- mds\n{}\n", tail(&self.sim.log(), 20)));
        s
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        keep_logs_of_failed_test(&mut self.dir, &self.sim);
    }
}

/// A failing test keeps every process log in `dir` (killed processes' included) and the
/// simulator's log for whoever reads the failure: the directory is named on stderr. Called from
/// the drop of a test's environment; does nothing when the test passes.
pub fn keep_logs_of_failed_test(dir: &mut tempfile::TempDir, sim: &Sim) {
    if !std::thread::panicking() {
        return;
    }
    let _ = std::fs::write(dir.path().join("mds.log"), sim.log());
    let kept = std::mem::replace(
        dir,
        match tempfile::Builder::new().prefix("e2e-stack-").tempdir() {
            Ok(d) => d,
            Err(_) => return,
        },
    );
    eprintln!(
        "e2e: logs of the failed test kept in {}",
        kept.keep().display()
    );
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
