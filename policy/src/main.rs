//! `lustre-blob`: the policy engine daemon and its admin CLI.

use clap::{Parser, Subcommand};
use policy::control::{self, Request, Response};
use policy::exit;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXIT_CODES: &str =
    "Exit codes: 0 success; 1 finished but files failed; 2 bad command line or policy file; \
3 daemon unreachable; 4 refused (another job running, or auto-export disabled); 5 no such job; \
6 flush timed out; 7 job failed or was canceled; 70 internal error.";

#[derive(Parser, Debug)]
#[command(name = "lustre-blob", version, about = "Lustre -> Azure Blob auto-export: policy engine and admin CLI", after_help = EXIT_CODES)]
struct Cli {
    /// The policy file (the CLI finds the daemon's socket there).
    #[arg(long, global = true, default_value = lustre_blob_config::DEFAULT_PATH)]
    config: PathBuf,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the policy engine (foreground).
    Daemon,
    /// Auto-export status: current iteration and overall counters.
    Status {
        /// Azure's auto-export REST field names.
        #[arg(long)]
        json: bool,
    },
    /// Recent jobs with their counters.
    Jobs {
        #[arg(long)]
        json: bool,
    },
    /// Manual export of a tree (archive everything new or changed).
    Export {
        /// A directory inside the mount (absolute, or relative to the current directory).
        path: PathBuf,
        /// Block until the job ends, with progress on a terminal.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Import blobs as released files (restored on demand).
    Import {
        /// Blob prefix below the target's prefix ("" = everything).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Fail, Skip, OverwriteIfDirty, OverwriteAlways.
        #[arg(long, default_value = "Fail")]
        conflict: String,
        /// Errors tolerated before the job fails (-1 = no limit).
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        maximum_errors: i64,
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running job.
    Cancel { id: String },
    /// Export barrier: every change made before now is exported (or failed).
    Flush {
        /// Block until then; list failures.
        #[arg(long)]
        wait: bool,
        /// Give up after this long (e.g. "10m").
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        #[arg(long)]
        json: bool,
    },
    /// HSM state and export record of files.
    Catalog {
        /// Files inside the Lustre mount.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Preflight: policy, liblustreapi, mount, changelogs, containers (read, write, list,
    /// delete), clock, state directory, daemon. Exit 0 ok, 1 a warning, 2 a failure.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Audit: walk the tree and the container side by side and report every file without its
    /// blob, blob that disagrees with its file, and blob without a file (exit 1 on any but the
    /// last).
    Verify {
        /// A directory inside the mount (default: the whole mount).
        path: Option<PathBuf>,
        /// One JSON object per finding, then a summary line.
        #[arg(long)]
        json: bool,
        /// Hand the missing, lost, stale and mismatched files to the next iteration.
        #[arg(long)]
        requeue: bool,
    },
    /// Switch the auto-export job on or off.
    Autoexport {
        #[arg(value_parser = ["enable", "disable"])]
        action: String,
    },
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = if quiet {
        "error"
    } else {
        match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    endpoint::logging::init(level);
}

/// An error for the user: one line and an exit code.
struct Failure(i32, String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(exit::INTERNAL, e.to_string())
    }
}

/// Exit status after a closed standard output (`lustre-blob catalog | head -1`): 128 + SIGPIPE,
/// what a shell reports for coreutils in the same place. Never 0: a pipeline that stopped reading
/// has not seen whether every file was exported.
const EXIT_CLOSED_PIPE: i32 = 128 + libc::SIGPIPE;

/// Writes to standard output. Every line of every command goes through here, so a reader that
/// went away (`| head`) ends the program quietly with [`EXIT_CLOSED_PIPE`] instead of a panic;
/// any other write error is one line on stderr.
fn emit(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_fmt(args).and_then(|()| o.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            warn(format_args!(
                "lustre-blob: writing to standard output: {e}\n"
            ));
        }
        std::process::exit(EXIT_CLOSED_PIPE);
    }
}

/// Writes to standard error; a closed stderr is ignored (nothing else could report it).
fn warn(args: std::fmt::Arguments) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// [`emit`] as an `io::Write`, for code that writes its report to a writer.
struct Emit;

impl std::io::Write for Emit {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        emit(format_args!("{}", String::from_utf8_lossy(b)));
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

macro_rules! outln {
    ($($t:tt)*) => { emit(format_args!("{}\n", format_args!($($t)*))) };
}
macro_rules! out {
    ($($t:tt)*) => { emit(format_args!($($t)*)) };
}
macro_rules! errln {
    ($($t:tt)*) => { warn(format_args!("{}\n", format_args!($($t)*))) };
}
macro_rules! err {
    ($($t:tt)*) => { warn(format_args!($($t)*)) };
}

fn load(path: &Path) -> Result<lustre_blob_config::Policy, Failure> {
    lustre_blob_config::Policy::load(path).map_err(|e| Failure(exit::USAGE, e.to_string()))
}

/// Opens `lustre.mount`, or one line naming the policy file, the key and the path: it does not
/// exist, is not a directory, or is not (inside) a Lustre file system. Exit code 2.
fn open_mount(cli: &Cli, policy: &lustre_blob_config::Policy) -> Result<lustre::Mount, Failure> {
    let m = &policy.lustre.mount;
    let bad = |why: String| {
        Failure(
            exit::USAGE,
            format!(
                "{}: lustre.mount: {} {why}",
                cli.config.display(),
                m.display()
            ),
        )
    };
    match std::fs::metadata(m) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad("does not exist".into()))
        }
        Err(e) => return Err(bad(format!("cannot be read: {e}"))),
        Ok(md) if !md.is_dir() => return Err(bad("is not a directory".into())),
        Ok(_) => {}
    }
    lustre::Mount::open(m).map_err(|e| match e {
        lustre::Error::Call { .. } => bad(format!("is not a Lustre file system ({e})")),
        other => bad(format!("cannot be opened as a Lustre file system: {other}")),
    })
}

/// The host of `blob.url` resolves ([`lustre_blob_config::Policy::check_blob_host`]). Exit 2.
fn check_blob_host(cli: &Cli, policy: &lustre_blob_config::Policy) -> Result<(), Failure> {
    policy
        .check_blob_host(&cli.config)
        .map_err(|e| Failure(exit::USAGE, e.to_string()))
}

/// The one-line form of a clap error: its first paragraph, lines joined (so "required arguments
/// were not provided:" keeps the `<ID>` on the next line).
fn clap_line(text: &str) -> String {
    let first: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = first.join(" ");
    let line = line.trim_start_matches("error: ").to_string();
    if line.is_empty() {
        "invalid arguments".into()
    } else {
        line
    }
}

fn ask(cli: &Cli, req: &Request, timeout: Option<Duration>) -> Result<Response, Failure> {
    let policy = load(&cli.config)?;
    let r = control::call(&policy.control.socket, req, timeout)
        .map_err(|e| Failure(exit::UNAVAILABLE, e.to_string()))?;
    if !r.ok {
        return Err(Failure(
            r.code.unwrap_or(exit::INTERNAL),
            r.error.unwrap_or_else(|| "refused".into()),
        ));
    }
    Ok(r)
}

fn print_json(v: &serde_json::Value) {
    outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn render_job(j: &serde_json::Value) -> String {
    let s = |k: &str| j.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
    let n = |k: &str| j.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let mut line = format!(
        "{:<14} {:<10} {:<17} start {} end {}",
        s("id"),
        s("kind"),
        s("state"),
        s("startTimeUTC"),
        s("completionTimeUTC")
    );
    match j.get("kind").and_then(|v| v.as_str()) {
        Some("export") => line.push_str(&format!(
            "  {}% discovered {} exported {} already {} failed {}",
            n("percentComplete"), n("filesDiscovered"), n("filesExported"), n("filesAlreadyExported"), n("filesFailed")
        )),
        Some("import") => line.push_str(&format!(
            "  walked {} imported {} (files {} dirs {} symlinks {}) preexisting {} errors {} conflicts {} coerced values {}",
            n("totalBlobsWalked"), n("totalBlobsImported"), n("importedFiles"), n("importedDirectories"), n("importedSymlinks"),
            n("preexistingFiles") + n("preexistingDirectories") + n("preexistingSymlinks"), n("totalErrors"), n("totalConflicts"), n("totalCoercedValues")
        )),
        _ => line.push_str(&format!(
            "  exported {} files, failed {}, iterations {}",
            n("totalFilesExported"), n("totalFilesFailed"), n("exportIterationCount")
        )),
    }
    if let Some(m) = j.get("errorMessage").and_then(|v| v.as_str()) {
        line.push_str(&format!("  ({m})"));
    }
    line
}

/// Follows a job until it ends, with progress on stderr (a bar on a terminal, a plain line every
/// few seconds otherwise): each question waits in the daemon until the job ends or the next
/// progress refresh is due. Returns the exit code.
fn wait_job(cli: &Cli, id: &str, json: bool) -> Result<i32, Failure> {
    let mut reporter = policy::progress::Reporter::new(std::io::stderr().is_terminal());
    let started = std::time::Instant::now();
    loop {
        let r = ask(
            cli,
            &Request::Job {
                id: id.to_string(),
                wait_ms: Some(PROGRESS_EVERY.as_millis() as u64),
            },
            Some(Duration::from_secs(30) + PROGRESS_EVERY),
        )?;
        let j = r.data;
        let state = j
            .get("state")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let running = matches!(
            state.as_str(),
            "Idle" | "FSScanInProgress" | "InProgress" | "Cancelling"
        );
        let (pct, line) = policy::progress::job_line(&j, started.elapsed());
        if let Some(t) = reporter.update(pct, &line, !running) {
            err!("{t}");
        }
        if !running {
            if json {
                print_json(&j);
            } else {
                outln!("{}", render_job(&j));
            }
            let failed = ["filesFailed", "totalErrors", "totalConflicts"]
                .iter()
                .any(|k| j.get(*k).and_then(|v| v.as_u64()).unwrap_or(0) > 0);
            return Ok(match state.as_str() {
                "Completed" if failed => exit::FILES_FAILED,
                "Completed" => exit::OK,
                _ => exit::JOB_FAILED,
            });
        }
    }
}

/// How often `--wait` refreshes its progress while a job runs.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

fn catalog(cli: &Cli, paths: &[PathBuf], json: bool) -> Result<i32, Failure> {
    let policy = load(&cli.config)?;
    let mount = open_mount(cli, &policy)?;
    let mut code = exit::OK;
    let mut out = Vec::new();
    for p in paths {
        if let Err(why) = check_catalog_path(&mount, p) {
            errln!("{}: {why}", p.display());
            code = exit::FILES_FAILED;
            continue;
        }
        let state = match mount.hsm_state(p) {
            Ok(s) => s,
            Err(e) => {
                errln!("{}: {e}", p.display());
                code = exit::FILES_FAILED;
                continue;
            }
        };
        let mut flags = Vec::new();
        for (on, name) in [
            (state.is_exists(), "exists"),
            (state.is_archived(), "archived"),
            (state.is_dirty(), "dirty"),
            (state.is_released(), "released"),
            (state.is_lost(), "lost"),
        ] {
            if on {
                flags.push(name);
            }
        }
        let record = blob::ExportRecord::read_at(p);
        let rec_json = match &record {
            Ok(Some(r)) => serde_json::to_value(r)
                .unwrap_or_else(|e| serde_json::json!({ "unreadable": e.to_string() })),
            Ok(None) => serde_json::Value::Null,
            Err(e) => serde_json::json!({ "unreadable": e.to_string() }),
        };
        if json {
            out.push(serde_json::json!({ "path": p, "hsmStates": state.states, "hsm": flags, "archiveId": state.archive_id, "exportRecord": rec_json }));
        } else {
            outln!(
                "{}: ({:#010x}) {}, archive_id:{}",
                p.display(),
                state.states,
                if flags.is_empty() {
                    "none".into()
                } else {
                    flags.join(" ")
                },
                state.archive_id
            );
            match &record {
                Ok(Some(r)) => {
                    outln!("  blob: {}", r.blob);
                    outln!("  etag: {}", r.etag);
                    outln!(
                        "  exported_at: {}",
                        rec_json["exported_at"].as_str().unwrap_or_default()
                    );
                    outln!("  data_version: {}", r.data_version);
                    outln!("  size: {}", r.size);
                    if !r.links.is_empty() {
                        outln!("  links: {}", r.links.join(", "));
                    }
                    if let Some(l) = &r.layout {
                        outln!("  layout: {l}");
                    }
                }
                Ok(None) => outln!("  no export record"),
                Err(e) => outln!("  unreadable: {e}"),
            }
        }
    }
    if json {
        print_json(&serde_json::Value::Array(out));
    }
    Ok(code)
}

/// Why `catalog` cannot report on `p`: it does not exist, or is not on the Lustre file system.
fn check_catalog_path(mount: &lustre::Mount, p: &Path) -> Result<(), String> {
    // The parent is resolved, not the file: a symlink is reported on, not its target.
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Err(e) = std::fs::symlink_metadata(p) {
        return Err(if e.kind() == std::io::ErrorKind::NotFound {
            "no such file".into()
        } else {
            e.to_string()
        });
    }
    let dir = std::fs::canonicalize(&parent).map_err(|e| e.to_string())?;
    let root = std::fs::canonicalize(mount.root()).unwrap_or_else(|_| mount.root().to_path_buf());
    let is_root = p.file_name().is_none();
    let inside = if is_root {
        std::fs::canonicalize(p).is_ok_and(|c| c.starts_with(&root))
    } else {
        dir.starts_with(&root)
    };
    if inside {
        Ok(())
    } else {
        Err(format!(
            "not a Lustre file: it is not on the Lustre file system mounted at {} (lustre.mount)",
            root.display()
        ))
    }
}

fn verify(cli: &Cli, path: Option<PathBuf>, json: bool, requeue: bool) -> Result<i32, Failure> {
    let policy = load(&cli.config)?;
    let opts = policy::verify::VerifyOptions {
        path,
        json,
        requeue,
    };
    let mut reporter = policy::progress::Reporter::new(std::io::stderr().is_terminal());
    let started = std::time::Instant::now();
    let mut report = |entries: u64| {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "verify: {entries} entries checked, {:.0} entries/s",
            entries as f64 / secs
        );
        if let Some(t) = reporter.update(None, &line, false) {
            err!("{t}");
        }
    };
    let o = policy::verify::run(&policy, &opts, &mut Emit, &mut report)
        .map_err(|e| Failure(exit::FILES_FAILED, e))?;
    if std::io::stderr().is_terminal() {
        errln!("");
    }
    let s = &o.summary;
    if json {
        outln!("{}", serde_json::json!({ "summary": s }));
    } else {
        outln!(
            "checked {} entries and {} blobs: {} missing, {} lost, {} stale, {} mismatched, {} of another kind, {} uncarriable names, {} orphan blobs",
            s.entries_checked, s.blobs_checked, s.missing, s.lost, s.stale, s.mismatch, s.kind, s.uncarriable, s.orphan
        );
    }
    if !o.requeue.is_empty() {
        let n = o.requeue.len();
        ask(
            cli,
            &Request::Requeue { paths: o.requeue },
            Some(Duration::from_secs(60)),
        )?;
        if !json {
            outln!("{n} handed to the next iteration");
        }
    }
    Ok(if s.errors() > 0 {
        exit::FILES_FAILED
    } else {
        exit::OK
    })
}

fn run(cli: &Cli) -> Result<i32, Failure> {
    match &cli.cmd {
        Cmd::Daemon => daemon(cli),
        Cmd::Status { json } => status(cli, *json),
        Cmd::Jobs { json } => jobs(cli, *json),
        Cmd::Export { path, wait, json } => export(cli, path, *wait, *json),
        Cmd::Import {
            prefix,
            conflict,
            maximum_errors,
            wait,
            json,
        } => import(cli, prefix, conflict, *maximum_errors, *wait, *json),
        Cmd::Cancel { id } => cancel(cli, id),
        Cmd::Flush {
            wait,
            timeout,
            json,
        } => flush(cli, *wait, *timeout, *json),
        Cmd::Catalog { paths, json } => catalog(cli, paths, *json),
        Cmd::Check { json } => check(cli, *json),
        Cmd::Verify {
            path,
            json,
            requeue,
        } => verify(cli, path.clone(), *json, *requeue),
        Cmd::Autoexport { action } => autoexport(cli, action == "enable"),
    }
}

/// `daemon`: what a person must fix is one line at start (the mount, the blob host); then the
/// daemon runs until SIGTERM/SIGINT.
fn daemon(cli: &Cli) -> Result<i32, Failure> {
    let policy = load(&cli.config)?;
    open_mount(cli, &policy)?;
    check_blob_host(cli, &policy)?;
    policy::daemon::run(&cli.config).map_err(|e| {
        let bad_config = e
            .downcast_ref::<lustre_blob_config::ConfigError>()
            .is_some()
            || matches!(
                e.downcast_ref::<blob::Error>(),
                Some(blob::Error::Config(_))
            );
        let code = if bad_config {
            exit::USAGE
        } else {
            exit::INTERNAL
        };
        Failure(code, format!("{e:#}"))
    })?;
    Ok(exit::OK)
}

fn status(cli: &Cli, json: bool) -> Result<i32, Failure> {
    let r = ask(cli, &Request::Status, Some(Duration::from_secs(30)))?;
    if json {
        print_json(&r.data);
    } else {
        let s: policy::status::AutoExportStatus = serde_json::from_value(r.data)?;
        out!("{}", policy::status::render_human(&s));
    }
    Ok(exit::OK)
}

fn jobs(cli: &Cli, json: bool) -> Result<i32, Failure> {
    let r = ask(cli, &Request::Jobs, Some(Duration::from_secs(30)))?;
    if json {
        print_json(&r.data);
    } else if let Some(list) = r.data.as_array() {
        for j in list {
            outln!("{}", render_job(j));
        }
    }
    Ok(exit::OK)
}

/// `export PATH`: a directory inside the mount, named relative to it for the daemon.
fn export(cli: &Cli, path: &Path, wait: bool, json: bool) -> Result<i32, Failure> {
    let policy = load(&cli.config)?;
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let rel = policy::real::rel_to_mount(&policy.lustre.mount, &abs).ok_or_else(|| {
        Failure(
            exit::USAGE,
            format!(
                "{} is not inside the mount {}",
                path.display(),
                policy.lustre.mount.display()
            ),
        )
    })?;
    let rel = String::from_utf8(rel)
        .map_err(|_| Failure(exit::USAGE, "export path is not UTF-8".into()))?;
    match std::fs::metadata(&abs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure(
                exit::USAGE,
                format!("{}: no such directory", path.display()),
            ))
        }
        Err(e) => return Err(Failure(exit::USAGE, format!("{}: {e}", path.display()))),
        Ok(md) if !md.is_dir() => {
            return Err(Failure(
                exit::USAGE,
                format!(
                    "{}: not a directory: export takes a directory and exports every file \
                     below it (auto-export covers single files)",
                    path.display()
                ),
            ))
        }
        Ok(_) => {}
    }
    start_job(cli, &Request::Export { path: rel }, wait, json)
}

fn import(
    cli: &Cli,
    prefix: &str,
    conflict: &str,
    maximum_errors: i64,
    wait: bool,
    json: bool,
) -> Result<i32, Failure> {
    if prefix.starts_with('/') {
        return Err(Failure(
            exit::USAGE,
            format!(
                "--prefix {prefix:?}: a blob prefix is relative to the target's blob \
                 prefix and starts without \"/\""
            ),
        ));
    }
    if maximum_errors < -1 {
        return Err(Failure(
            exit::USAGE,
            format!(
                "--maximum-errors {maximum_errors}: give -1 (no limit) or a count of 0 or more"
            ),
        ));
    }
    let req = Request::Import {
        prefix: prefix.to_string(),
        conflict: conflict.to_string(),
        maximum_errors,
    };
    start_job(cli, &req, wait, json)
}

/// Asks the daemon to start a job; prints its id, or with `wait` follows it to its end.
fn start_job(cli: &Cli, req: &Request, wait: bool, json: bool) -> Result<i32, Failure> {
    let r = ask(cli, req, Some(Duration::from_secs(30)))?;
    let id = r
        .data
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if wait {
        return wait_job(cli, &id, json);
    }
    outln!("{id}");
    Ok(exit::OK)
}

fn cancel(cli: &Cli, id: &str) -> Result<i32, Failure> {
    let r = ask(
        cli,
        &Request::Cancel { id: id.to_string() },
        Some(Duration::from_secs(30)),
    )?;
    let state = r.data["state"].as_str().unwrap_or("Cancelling");
    outln!("{id}: {}", state.to_lowercase());
    Ok(exit::OK)
}

/// `flush`: the export barrier; with `wait`, the files that failed since are listed.
fn flush(cli: &Cli, wait: bool, timeout: Option<Duration>, json: bool) -> Result<i32, Failure> {
    let req = Request::Flush {
        wait,
        timeout_ms: timeout.map(|t| t.as_millis() as u64),
    };
    let r = ask(cli, &req, None)?;
    if json {
        print_json(&r.data);
    }
    if !wait {
        if !json {
            outln!("flush requested (use --wait to block until exported)");
        }
        return Ok(exit::OK);
    }
    let failures = r
        .data
        .get("failures")
        .and_then(|f| f.as_array())
        .cloned()
        .unwrap_or_default();
    if !json {
        if failures.is_empty() {
            outln!("every earlier change is exported");
        } else {
            outln!("{} files failed:", failures.len());
            for f in &failures {
                let g = |k: &str| f.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                outln!("  {} ({}): {}", g("path"), g("operation"), g("error"));
            }
        }
    }
    Ok(if failures.is_empty() {
        exit::OK
    } else {
        exit::FILES_FAILED
    })
}

fn check(cli: &Cli, json: bool) -> Result<i32, Failure> {
    let checks = policy::check::run(&cli.config);
    if json {
        print_json(&serde_json::to_value(&checks).unwrap_or_default());
    } else {
        for c in &checks {
            outln!("{}", c.line());
        }
    }
    Ok(policy::check::exit_code(&checks))
}

fn autoexport(cli: &Cli, enable: bool) -> Result<i32, Failure> {
    ask(
        cli,
        &Request::Autoexport { enable },
        Some(Duration::from_secs(30)),
    )?;
    outln!(
        "auto-export {}",
        if enable { "enabled" } else { "disabled" }
    );
    Ok(exit::OK)
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            // One line: clap's first paragraph names the problem; usage is in --help.
            errln!(
                "lustre-blob: {} (see --help)",
                clap_line(&e.render().to_string())
            );
            std::process::exit(exit::USAGE);
        }
        Err(e) => {
            let _ = e.print();
            std::process::exit(exit::OK);
        }
    };
    init_logging(cli.verbose, cli.quiet);
    match run(&cli) {
        Ok(code) => std::process::exit(code),
        Err(Failure(code, msg)) => {
            errln!("lustre-blob: {msg}");
            std::process::exit(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line_naming_what_is_missing() {
        let e = Cli::try_parse_from(["lustre-blob", "cancel"]).unwrap_err();
        let line = clap_line(&e.render().to_string());
        assert!(line.contains("<ID>"), "{line}");
        assert!(
            !line.contains('\n') && !line.starts_with("error:"),
            "{line}"
        );
        let e = Cli::try_parse_from(["lustre-blob", "catalog"]).unwrap_err();
        assert!(clap_line(&e.render().to_string()).contains("<PATHS>"));
        let e = Cli::try_parse_from(["lustre-blob", "status", "--bogus"]).unwrap_err();
        let line = clap_line(&e.render().to_string());
        assert!(
            line.contains("--bogus") && !line.contains("Usage"),
            "{line}"
        );
    }
}
