//! A product process started by a test: own process group, stderr (and stdout) in a log file,
//! killed (the whole group) on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout+stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The exit code once it exited by itself (None while running or after a signal).
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .and_then(|s| s.code())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn signal_group(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the process group created for our own child (process_group(0)).
            unsafe { libc::kill(-(pid as libc::pid_t), sig) };
        }
    }

    /// Sends `sig` to the process (and its group).
    pub fn signal(&self, sig: i32) {
        self.signal_group(sig);
    }

    /// SIGSTOP: freezes it mid-action so a test can act at a known point.
    pub fn pause(&self) {
        self.signal_group(libc::SIGSTOP);
    }

    /// SIGCONT after [`Proc::pause`].
    pub fn resume(&self) {
        self.signal_group(libc::SIGCONT);
    }

    /// Waits up to `within` for the process to exit by itself; its exit code (`None`: still
    /// running, or ended by a signal). After it exited, [`Proc::pid`] is `None`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return st.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` (a crash).
    pub fn kill9(&mut self) {
        self.signal_group(libc::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit code when it exited by itself.
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        let mut c = self.child.take()?;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                // SAFETY: as in signal_group, on our own child's group.
                unsafe { libc::kill(-(c.id() as libc::pid_t), libc::SIGKILL) };
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
    }
}
