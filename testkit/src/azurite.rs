//! An Azurite blob service on a free 127.0.0.1 port (in memory, or on disk so it survives a
//! crash), as a real process in its own process group, killed when the [`Azurite`] value is
//! dropped. Each start logs to a file of its own; a test that fails keeps them (named on stderr).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::http::{parse_reply, Reply};
use crate::sharedkey::signed_exchange;
use crate::BlobEndpoint;

/// The emulator's well-known account name (public, documented by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known account key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `azurite-blob` (loopback only).
pub struct Azurite {
    bin: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
    containers: Mutex<Vec<String>>,
    /// One `azurite-N.log` per start (and `requests-N.log` when requests are logged).
    log_dir: Option<tempfile::TempDir>,
    /// How many times it was started.
    starts: Mutex<u32>,
    /// `--location` data directory (disk mode), kept across [`Azurite::restart`].
    data_dir: Option<tempfile::TempDir>,
    /// `--debug FILE`: Azurite logs every request it receives ([`Azurite::request_logs`]).
    log_requests: bool,
}

impl Azurite {
    /// Finds (`LUSTRE_BLOB_AZURITE`) or installs azurite@3.35.0, starts it on a free port and waits
    /// until it answers. Panics with a readable message when it cannot (this is a test harness).
    pub fn start() -> Azurite {
        Azurite::start_with(false, false)
    }

    /// Like [`Azurite::start`], but keeping its data in a temporary directory (`--location`), so
    /// blobs survive [`Azurite::stop`] + [`Azurite::restart`] (for outage tests).
    pub fn start_on_disk() -> Azurite {
        Azurite::start_with(true, false)
    }

    /// In memory or on disk (`on_disk`); with `log_requests`, every request it receives is
    /// logged too ([`Azurite::request_logs`]: the store's own record of what clients asked).
    pub fn start_with(on_disk: bool, log_requests: bool) -> Azurite {
        let az = Azurite {
            bin: azurite_bin(),
            port: free_port(),
            child: Mutex::new(None),
            containers: Mutex::new(Vec::new()),
            log_dir: Some(
                tempfile::Builder::new()
                    .prefix("azurite-logs-")
                    .tempdir()
                    .expect("tempdir for azurite logs"),
            ),
            starts: Mutex::new(0),
            data_dir: on_disk.then(|| tempfile::tempdir().expect("tempdir for azurite data")),
            log_requests,
        };
        az.spawn();
        az
    }

    fn logs(&self) -> &Path {
        self.log_dir.as_ref().map_or(Path::new("."), |d| d.path())
    }

    fn spawn(&self) {
        let start = {
            let mut n = self.starts.lock().expect("azurite lock");
            *n += 1;
            *n
        };
        let log = self.logs().join(format!("azurite-{start}.log"));
        let stderr = std::fs::File::create(&log).expect("azurite log file");
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &self.port.to_string(),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
        ])
        .stdin(Stdio::null());
        match &self.data_dir {
            Some(d) => cmd.arg("--location").arg(d.path()),
            None => cmd.arg("--inMemoryPersistence"),
        };
        if self.log_requests {
            cmd.arg("--debug").arg(self.request_log(start));
        }
        cmd.stdout(Stdio::null()).stderr(stderr);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("azurite exited during start ({status}): {text}");
            }
            if self.answers() {
                break;
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                panic!(
                    "azurite did not answer on port {} within {START_TIMEOUT:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        *self.child.lock().expect("azurite lock") = Some(child);
    }

    /// True when something answers HTTP on the port.
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "GET /{AZURITE_ACCOUNT}?comp=list HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if n >= 5 && &buf[..5] == b"HTTP/")
    }

    fn request_log(&self, start: u32) -> PathBuf {
        self.logs().join(format!("requests-{start}.log"))
    }

    /// The request logs of every start so far, oldest first (none unless started with
    /// `log_requests`).
    pub fn request_logs(&self) -> Vec<PathBuf> {
        if !self.log_requests {
            return Vec::new();
        }
        let starts = *self.starts.lock().expect("azurite lock");
        (1..=starts).map(|n| self.request_log(n)).collect()
    }

    /// The `--location` directory of an on-disk instance.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_ref().map(|d| d.path())
    }

    /// A connection string for the emulator account on this port.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={};",
            self.url()
        )
    }

    /// Creates a container with a shared-key signed `PUT ?restype=container`. An existing one is fine.
    /// It is created again after [`Azurite::restart`].
    pub fn create_container(&self, name: &str) {
        self.put_container(name);
        let mut list = self.containers.lock().expect("azurite lock");
        if !list.iter().any(|c| c == name) {
            list.push(name.to_string());
        }
    }

    fn put_container(&self, name: &str) {
        let (status, body) =
            self.signed_request("PUT", &format!("/{name}"), &[("restype", "container")]);
        if status != 201 && status != 409 {
            panic!("create container {name}: HTTP {status}: {body}");
        }
    }

    /// Whether a container exists (a signed `GET ?restype=container`).
    pub fn container_exists(&self, name: &str) -> bool {
        let (status, body) =
            self.signed_request("GET", &format!("/{name}"), &[("restype", "container")]);
        match status {
            200 => true,
            404 => false,
            _ => panic!("container properties {name}: HTTP {status}: {body}"),
        }
    }

    /// Sends one shared-key signed request without a body to `path` (below the account) and
    /// returns the status code and the response body as text. Panics when the emulator cannot
    /// be reached.
    pub fn signed_request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> (u16, String) {
        let r = self
            .request(method, path, query, &[], b"")
            .expect("request to azurite");
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    }

    /// One shared-key signed request on a connection of its own, with extra headers (e.g.
    /// `x-ms-blob-type` for a Put Blob) and a body; `path` is below the account, already
    /// percent-encoded. The answer parsed, headers and body as sent.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let raw = signed_exchange(
            self.port,
            method,
            path,
            query,
            extra,
            body,
            Duration::from_secs(60),
        )?;
        parse_reply(&raw, method == "HEAD")
    }

    /// Stops the emulator (an outage): SIGTERM, so a disk-mode instance saves its metadata
    /// database, then SIGKILL after 10 s. [`Azurite::restart`] brings it back on the same port.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().expect("azurite lock").take() {
            let pid = child.id() as libc::pid_t;
            // SAFETY: kill(2) on the process group we created for this child; no memory involved.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            kill_group(&mut child);
        }
    }

    /// Kills the emulator at once (SIGKILL): a disk-mode instance may lose its last seconds of
    /// metadata, as after a crash.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("azurite lock").take() {
            kill_group(&mut child);
        }
    }

    /// Starts it again on the same port and re-creates the containers made with
    /// [`Azurite::create_container`] (in-memory: previous blobs are gone; on disk: they remain).
    pub fn restart(&self) {
        self.stop();
        self.resume();
    }

    /// Starts it again after [`Azurite::stop`] or [`Azurite::kill`], on the same port, with the
    /// containers of [`Azurite::create_container`] made again (an on-disk Azurite saves its
    /// metadata only every few seconds, so a young container can vanish with a kill).
    pub fn resume(&self) {
        self.spawn();
        let names = self.containers.lock().expect("azurite lock").clone();
        for name in names {
            self.put_container(&name);
        }
    }

    /// Whether the process is running (it has not been stopped, killed, or died).
    pub fn is_running(&self) -> bool {
        self.child
            .lock()
            .expect("azurite lock")
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl BlobEndpoint for Azurite {
    fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock() {
            if let Some(mut child) = guard.take() {
                kill_group(&mut child);
            }
        }
        // A failing test keeps what Azurite logged for whoever reads the failure.
        if std::thread::panicking() {
            if let Some(dir) = self.log_dir.take() {
                eprintln!("azurite: logs kept in {}", dir.keep().display());
            }
        }
    }
}

fn kill_group(child: &mut Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a negative pid signals the process group we created for this child
    // (process_group(0) made its pid the group id); it touches no memory.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

/// `LUSTRE_BLOB_AZURITE`, else the project's install script (cached, idempotent).
fn azurite_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LUSTRE_BLOB_AZURITE") {
        return PathBuf::from(p);
    }
    static INSTALL: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut cached = INSTALL.lock().expect("install lock");
    if let Some(p) = cached.as_ref() {
        return p.clone();
    }
    let script = crate::paths::workspace_root().join("scripts/install-azurite");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    if !out.status.success() {
        panic!("{} failed ({})", script.display(), out.status);
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    *cached = Some(path.clone());
    path
}
