//! `lhsmtool_blob`: the Lustre HSM copytool for Azure Blob Storage (see the crate README).
//!
//! Exit codes: 0 stopped cleanly (signal or unmount), 1 a runtime failure (cannot register, lost the
//! coordinator with --abort-on-error, ...), 2 wrong flags or policy file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use copytool::engine::StopReason;
use copytool::journal::{Journal, Leftovers};
use copytool::ports::Coordinator;
use copytool::real::LustreCoordinator;
use copytool::service::{self, ServiceOptions};
use copytool::settings::{self, Cli, Settings};
use tokio_util::sync::CancellationToken;

/// How often buffered failure entries are written to the logging container.
const LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);
/// Failure entries queued at most while the logging container cannot be written.
const LOG_CAPACITY: usize = 10_000;

fn main() {
    std::process::exit(run());
}

fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("lhsmtool_blob: {msg}");
    code
}

fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return 0;
            }
            return fail(2, settings::usage_error_line(&e));
        }
    };
    let settings = match settings::resolve(&cli) {
        Ok(s) => s,
        Err(e) => return fail(2, e),
    };
    init_tracing(settings.verbosity);
    route_library_messages(settings.verbosity);
    if cli.daemon {
        // SAFETY: called before any thread is started (no runtime yet); daemon(3) forks and the
        // parent exits.
        if unsafe { libc::daemon(1, 1) } != 0 {
            return fail(1, format!("daemon: {}", std::io::Error::last_os_error()));
        }
    }
    let _pid = match &cli.pid_file {
        Some(p) => match PidFile::create(p) {
            Ok(f) => Some(f),
            Err(e) => return fail(1, e),
        },
        None => None,
    };
    match serve(&cli, &settings) {
        Ok(StopReason::Aborted(why)) => {
            fail(1, format!("stopped on error (--abort-on-error): {why}"))
        }
        Ok(_) => 0,
        Err((code, msg)) => fail(code, msg),
    }
}

fn serve(cli: &Cli, settings: &Settings) -> Result<StopReason, (i32, String)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lhsmtool_blob")
        .build()
        .map_err(|e| (1, format!("starting the runtime: {e}")))?;
    let _enter = rt.enter();
    let store = open_store(cli, settings)?;
    let log_store = store
        .with_container(&settings.policy.logging.container)
        .map_err(|e| (2, format!("logging container: {e}")))?;
    let agent = agent_name();
    let ct = LustreCoordinator::register(&settings.mount, &settings.archives).map_err(|e| {
        (
            1,
            format!(
                "registering with the HSM coordinator of {}: {e}",
                settings.mount.display()
            ),
        )
    })?;
    tracing::info!(
        mount = %settings.mount.display(),
        archives = ?settings.archives,
        dry_run = settings.engine.dry_run,
        "registered as an HSM copytool"
    );
    let ct = Arc::new(ct);
    let journal = open_journal(cli, settings, &ct.fsname())?;

    let log = blob::LogSink::new(
        log_store,
        "",
        &format!("lhsmtool_blob-{agent}"),
        LOG_CAPACITY,
    );
    let log_stop = CancellationToken::new();
    let log_task = log.spawn_flusher(LOG_FLUSH, log_stop.clone());

    let reload_cli = cli.clone();
    let opts = ServiceOptions {
        agent,
        engine: settings.engine.clone(),
        metrics_addr: settings.metrics,
        metrics_interval: settings.metrics_interval,
        shutdown_timeout: settings.shutdown_timeout,
        reload: Box::new(move || settings::reload(&reload_cli)),
        journal: Some(journal),
    };
    let result = service::run(&rt, ct.clone(), Arc::new(store), Arc::new(log), opts);

    log_stop.cancel();
    let _ = rt.block_on(log_task);
    unregister(ct);
    result.map_err(|e| (1, e))
}

/// The export container. A bad target is exit code 2 with one line naming the credential
/// file in play (never its content).
fn open_store(cli: &Cli, settings: &Settings) -> Result<blob::BlobStore, (i32, String)> {
    // A blob host that does not resolve (a typo'd account) is one line now, not retries later.
    settings
        .policy
        .check_blob_host(&cli.config)
        .map_err(|e| (2, e.to_string()))?;
    let b = &settings.policy.blob;
    let spec = b.spec();
    blob::BlobStore::open(&spec).map_err(|e| {
        let mut msg = e.to_string();
        if !msg.starts_with("blob target") {
            msg.insert_str(0, "blob target: ");
        }
        let files = [
            &b.account_key_file,
            &b.sas_token_file,
            &b.connection_string_file,
        ];
        if let Some(f) = files.into_iter().flatten().next() {
            let shown = f.display().to_string();
            if !msg.contains(&shown) {
                msg.push_str(&format!(" (credentials from {shown})"));
            }
        }
        (2, msg)
    })
}

/// This copytool's journal of begun items, and what dead predecessors left in theirs.
fn open_journal(
    cli: &Cli,
    settings: &Settings,
    fsname: &str,
) -> Result<(Arc<Journal>, Leftovers), (i32, String)> {
    let dir = cli
        .journal_dir
        .clone()
        .unwrap_or_else(|| settings.policy.control.state_dir.join("copytool"));
    let (journal, leftovers) = Journal::open(&dir, fsname).map_err(|e| {
        (
            1,
            format!("journal of begun items in {}: {e}", dir.display()),
        )
    })?;
    tracing::info!(journal = %journal.path().map(|p| p.display().to_string()).unwrap_or_default(), "journal of begun items");
    Ok((Arc::new(journal), leftovers))
}

/// Unregisters now, or (when actions still hold the session) as the last of them ends.
fn unregister(ct: Arc<LustreCoordinator>) {
    match Arc::try_unwrap(ct) {
        Ok(ct) => {
            if let Err(e) = ct.unregister() {
                tracing::warn!(error = %e, "unregister failed");
            } else {
                tracing::info!("unregistered");
            }
        }
        Err(_) => tracing::warn!("actions still hold the session; it unregisters when they end"),
    }
}

/// `<hostname>-<pid>`: names this agent in logs, metrics and failure entries.
fn agent_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".into()
    };
    format!("{host}-{}", std::process::id())
}

fn init_tracing(verbosity: i32) {
    let level = match verbosity {
        i32::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    endpoint::logging::init(level);
}

/// liblustreapi's own messages (`llapi_error`, `llapi_printf`) go into our log, at the level
/// `-v`/`-q` give, instead of the library's stderr/stdout. Without a loadable library nothing is
/// set (registration then reports why).
fn route_library_messages(verbosity: i32) {
    use lustre::lustre_sys as sys;
    let level = match verbosity {
        i32::MIN..=-2 => sys::LLAPI_MSG_ERROR,
        -1 => sys::LLAPI_MSG_WARN,
        0 => sys::LLAPI_MSG_NORMAL,
        1 => sys::LLAPI_MSG_INFO,
        _ => sys::LLAPI_MSG_DEBUG,
    };
    if lustre::set_log_level(level).is_err() {
        return;
    }
    let _ = lustre::set_log_handler(|m| match m.level {
        0..=2 => tracing::error!(target: "liblustreapi", errno = m.errno, "{}", m.text),
        3 => tracing::warn!(target: "liblustreapi", errno = m.errno, "{}", m.text),
        4 | 5 => tracing::info!(target: "liblustreapi", errno = m.errno, "{}", m.text),
        _ => tracing::debug!(target: "liblustreapi", errno = m.errno, "{}", m.text),
    });
}

/// A locked pid file, removed on drop.
struct PidFile {
    path: PathBuf,
    _file: std::fs::File,
}

impl PidFile {
    fn create(path: &Path) -> Result<PidFile, String> {
        use std::os::fd::AsRawFd;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
        // SAFETY: f is an open descriptor for the call.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!(
                "pid file {} is locked: another lhsmtool_blob runs",
                path.display()
            ));
        }
        f.set_len(0)
            .and_then(|()| writeln!(f, "{}", std::process::id()))
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _file: f,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
