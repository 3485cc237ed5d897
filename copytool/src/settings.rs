//! The command line (familiar to lhsmtool_posix users, lustre-abi §4.9) and how it combines with the
//! policy file (DESIGN §9): the file gives `[blob]`, `[logging]`, `[copytool]` (with the copytool's own
//! `copytool.metrics`), `autoexport.conflict` and `autoexport.on_delete`; flags override it. The
//! daemon's `control.metrics` is never used, so both can run on one host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lustre_blob_config::{units, Policy, DEFAULT_PATH, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};

use crate::engine::EngineConfig;

/// `lhsmtool_blob [OPTIONS] MOUNTPOINT`
#[derive(Debug, Clone, Parser)]
#[command(
    name = "lhsmtool_blob",
    version,
    about = "Lustre HSM copytool that archives files to Azure Blob Storage and restores them",
    long_about = None
)]
pub struct Cli {
    /// Archive id to serve (repeatable); none, or 0, serves every archive.
    #[arg(short = 'A', long = "archive", value_name = "N")]
    pub archive: Vec<u32>,
    /// Policy file (TOML).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// Detach from the terminal and run in the background.
    #[arg(long)]
    pub daemon: bool,
    /// Write the process id to FILE (locked while running).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Directory of the journal of begun items (default: `<control.state_dir>/copytool`); a
    /// restarted copytool ends what a killed one left running.
    #[arg(long, value_name = "DIR")]
    pub journal_dir: Option<PathBuf>,
    /// Actions served at once (1..=1024) [policy: copytool.max_actions].
    #[arg(long, value_name = "N")]
    pub max_actions: Option<usize>,
    /// Put Block size, e.g. 8MiB [policy: copytool.block_size].
    #[arg(long, value_name = "SIZE", value_parser = parse_block_size)]
    pub block_size: Option<u64>,
    /// Blocks of one file transferred in parallel (1..=256) [policy: copytool.blocks_in_flight].
    #[arg(long, value_name = "N")]
    pub blocks_in_flight: Option<usize>,
    /// Bandwidth limit of this agent: a plain number is MB/s (as lhsmtool_posix), or a size per
    /// second such as 100MiB; 0 = unlimited [policy: copytool.bandwidth].
    #[arg(short = 'b', long, value_name = "RATE", value_parser = parse_bandwidth)]
    pub bandwidth: Option<u64>,
    /// Progress report interval: plain seconds or a duration such as 10s [policy: copytool.update_interval].
    #[arg(short = 'u', long, value_name = "DURATION", value_parser = parse_interval)]
    pub update_interval: Option<Duration>,
    /// Stop the copytool on the first failed action or receive error.
    #[arg(long)]
    pub abort_on_error: bool,
    /// Check and log what each action would do, move no data, and end every action with an error
    /// (EOPNOTSUPP) so nothing is marked archived, restored or removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Prometheus endpoint ADDR:PORT serving /metrics [policy: copytool.metrics].
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Do not serve metrics even if the policy file names an address.
    #[arg(long, conflicts_with = "metrics")]
    pub no_metrics: bool,
    /// How often the counters are written to the log.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval)]
    pub metrics_interval: Duration,
    /// On SIGTERM/SIGINT, how long in-flight actions may run before they are aborted (and again how
    /// long the aborted ones may take to end).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_interval)]
    pub shutdown_timeout: Duration,
    /// More log output (repeatable).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (repeatable).
    #[arg(short = 'q', action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Lustre client mount point.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,
}

/// Everything the copytool runs with, after the policy file and the flags are combined.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Lustre mount point served.
    pub mount: PathBuf,
    /// Empty = all archives.
    pub archives: Vec<u32>,
    /// The engine's settings (policy file, overridden by flags).
    pub engine: EngineConfig,
    /// The policy file as read.
    pub policy: Policy,
    /// Where to serve Prometheus metrics (`copytool.metrics` or `--metrics`).
    pub metrics: Option<SocketAddr>,
    /// How often the counters are logged.
    pub metrics_interval: Duration,
    /// The grace given to in-flight actions when stopping.
    pub shutdown_timeout: Duration,
    /// -1, 0 (info), 1, 2 ...: -q lowers, -v raises.
    pub verbosity: i32,
}

fn parse_block_size(s: &str) -> Result<u64, String> {
    let n = units::parse_size(s)?;
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&n) {
        return Err(format!(
            "block size {} outside {}..={}",
            units::format_size(n),
            units::format_size(MIN_BLOCK_SIZE),
            units::format_size(MAX_BLOCK_SIZE)
        ));
    }
    Ok(n)
}

/// A plain number is MB/s (lhsmtool_posix's `-b`); with a unit it is bytes per second.
fn parse_bandwidth(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        let mbs: u64 = t
            .parse()
            .map_err(|_| format!("invalid bandwidth \"{s}\""))?;
        return mbs
            .checked_mul(1_000_000)
            .ok_or_else(|| format!("bandwidth \"{s}\" too large"));
    }
    units::parse_size(t)
}

/// A plain number is seconds (lhsmtool_posix's `-u`); otherwise a humantime duration.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        Duration::from_secs(t.parse().map_err(|_| format!("invalid duration \"{s}\""))?)
    } else {
        units::parse_duration(t)?
    };
    if d.is_zero() {
        return Err(format!("duration \"{s}\" must be positive"));
    }
    Ok(d)
}

/// A usage error from clap as one line for stderr (clap's own text spans several lines: the error,
/// a tip, the usage and a hint). A missing argument reads `missing MOUNTPOINT (try --help)`.
pub fn usage_error_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::MissingRequiredArgument {
        if let Some(ContextValue::Strings(args)) = e.get(ContextKind::InvalidArg) {
            let names: Vec<&str> = args
                .iter()
                .map(|a| a.trim_start_matches('<').trim_end_matches('>'))
                .collect();
            if !names.is_empty() {
                return format!("missing {} (try --help)", names.join(", "));
            }
        }
    }
    let text = e.render().to_string();
    let what = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map_or("invalid arguments", |l| l.trim_start_matches("error: "));
    format!("{what} (try --help)")
}

/// The engine settings from a policy file plus flag overrides.
pub fn engine_config(cli: &Cli, policy: &Policy) -> Result<EngineConfig, String> {
    let ct = &policy.copytool;
    let max_actions = cli.max_actions.unwrap_or(ct.max_actions);
    if !(1..=1024).contains(&max_actions) {
        return Err(format!("--max-actions {max_actions}: must be 1..=1024"));
    }
    let blocks_in_flight = cli.blocks_in_flight.unwrap_or(ct.blocks_in_flight);
    if !(1..=256).contains(&blocks_in_flight) {
        return Err(format!(
            "--blocks-in-flight {blocks_in_flight}: must be 1..=256"
        ));
    }
    let bandwidth = match cli.bandwidth {
        Some(0) => None,
        Some(b) => Some(b),
        None => ct.bandwidth.filter(|&b| b > 0),
    };
    Ok(EngineConfig {
        max_actions,
        block_size: cli.block_size.unwrap_or(ct.block_size),
        blocks_in_flight,
        update_interval: cli.update_interval.unwrap_or(ct.update_interval),
        bandwidth,
        conflict: policy.autoexport.conflict,
        remove: policy.autoexport.on_delete,
        dry_run: cli.dry_run,
        abort_on_error: cli.abort_on_error,
    })
}

/// Loads the policy file and combines it with the flags. The error is one line for the user.
pub fn resolve(cli: &Cli) -> Result<Settings, String> {
    let policy = Policy::load(&cli.config).map_err(|e| e.to_string())?;
    let engine = engine_config(cli, &policy)?;
    let mut archives: Vec<u32> = Vec::new();
    for &a in &cli.archive {
        if a == 0 {
            // lhsmtool_posix: 0 means every archive, ids after it are ignored.
            archives.clear();
            break;
        }
        if !archives.contains(&a) {
            archives.push(a);
        }
    }
    if !cli.mountpoint.is_absolute() {
        return Err(format!(
            "mount point {} must be an absolute path",
            cli.mountpoint.display()
        ));
    }
    let metrics = if cli.no_metrics {
        None
    } else {
        cli.metrics.or(policy.copytool.metrics)
    };
    Ok(Settings {
        mount: cli.mountpoint.clone(),
        archives,
        engine,
        policy,
        metrics,
        metrics_interval: cli.metrics_interval,
        shutdown_timeout: cli.shutdown_timeout,
        verbosity: i32::from(cli.verbose) - i32::from(cli.quiet),
    })
}

/// Re-reads the policy file for SIGHUP, keeping the flags' overrides.
pub fn reload(cli: &Cli) -> Result<EngineConfig, String> {
    let policy = Policy::load(&cli.config).map_err(|e| e.to_string())?;
    engine_config(cli, &policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lustre_blob_config::{ConflictMode, DeleteMode};

    const POLICY: &str = r#"
[lustre]
mount = "/mnt/lustre"
[blob]
url = "http://127.0.0.1:10000/devstoreaccount1/c"
use_emulator = true
[autoexport]
conflict = "overwrite"
on_delete = "delete"
[copytool]
max_actions = 5
block_size = "1MiB"
update_interval = "3s"
bandwidth = "10MiB"
metrics = "127.0.0.1:9998"
[control]
metrics = "127.0.0.1:9999"
"#;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lhsmtool_blob").chain(args.iter().copied()))
    }

    fn with_policy(text: &str, args: &[&str]) -> (tempfile::TempDir, Result<Settings, String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, text).unwrap();
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let c = cli(&all).unwrap();
        let r = resolve(&c);
        (dir, r)
    }

    #[test]
    fn policy_file_gives_the_defaults() {
        let (_d, s) = with_policy(POLICY, &["/mnt/lustre"]);
        let s = s.unwrap();
        assert_eq!(s.engine.max_actions, 5);
        assert_eq!(s.engine.block_size, 1 << 20);
        assert_eq!(s.engine.update_interval, Duration::from_secs(3));
        assert_eq!(s.engine.bandwidth, Some(10 << 20));
        assert_eq!(s.engine.conflict, ConflictMode::Overwrite);
        assert_eq!(s.engine.remove, DeleteMode::Delete);
        assert_eq!(s.metrics, Some("127.0.0.1:9998".parse().unwrap()));
        assert!(s.archives.is_empty(), "no -A = all archives");
        assert!(!s.engine.dry_run);
    }

    #[test]
    fn flags_override_the_file() {
        let (_d, s) = with_policy(
            POLICY,
            &[
                "-A",
                "2",
                "-A",
                "3",
                "-A",
                "2",
                "--max-actions",
                "7",
                "--block-size",
                "64KiB",
                "--blocks-in-flight",
                "3",
                "-b",
                "5",
                "-u",
                "2",
                "--dry-run",
                "--abort-on-error",
                "--no-metrics",
                "-vv",
                "-q",
                "/mnt/x",
            ],
        );
        let s = s.unwrap();
        assert_eq!(s.archives, vec![2, 3]);
        assert_eq!(s.engine.max_actions, 7);
        assert_eq!(s.engine.block_size, 64 << 10);
        assert_eq!(s.engine.blocks_in_flight, 3);
        assert_eq!(s.engine.bandwidth, Some(5_000_000));
        assert_eq!(s.engine.update_interval, Duration::from_secs(2));
        assert!(s.engine.dry_run && s.engine.abort_on_error);
        assert_eq!(s.metrics, None);
        assert_eq!(s.verbosity, 1);
        assert_eq!(s.mount, PathBuf::from("/mnt/x"));
    }

    /// `control.metrics` is the daemon's port: a copytool on the same host must not take it.
    #[test]
    fn metrics_come_from_copytool_metrics_never_control_metrics() {
        let daemon_only = POLICY.replace("metrics = \"127.0.0.1:9998\"\n", "");
        let (_d, s) = with_policy(&daemon_only, &["/mnt/lustre"]);
        assert_eq!(s.unwrap().metrics, None);
        let (_d, s) = with_policy(
            &daemon_only,
            &["--metrics", "127.0.0.1:7000", "/mnt/lustre"],
        );
        assert_eq!(s.unwrap().metrics, Some("127.0.0.1:7000".parse().unwrap()));
        let (_d, s) = with_policy(POLICY, &["--metrics", "127.0.0.1:7000", "/mnt/lustre"]);
        assert_eq!(s.unwrap().metrics, Some("127.0.0.1:7000".parse().unwrap()));
        let (_d, s) = with_policy(POLICY, &["--no-metrics", "/mnt/lustre"]);
        assert_eq!(s.unwrap().metrics, None);
    }

    #[test]
    fn archive_zero_means_all() {
        let (_d, s) = with_policy(POLICY, &["-A", "1", "-A", "0", "-A", "4", "/mnt/lustre"]);
        assert!(s.unwrap().archives.is_empty());
    }

    #[test]
    fn bandwidth_zero_is_unlimited_and_units_are_per_second() {
        let (_d, s) = with_policy(POLICY, &["-b", "0", "/mnt/lustre"]);
        assert_eq!(s.unwrap().engine.bandwidth, None);
        assert_eq!(parse_bandwidth("2MiB"), Ok(2 << 20));
        assert!(parse_bandwidth("fast").is_err());
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(cli(&["--block-size", "1KiB", "/m"]).is_err());
        assert!(cli(&["-u", "0", "/m"]).is_err());
        assert!(cli(&["--bogus", "/m"]).is_err());
        assert!(cli(&[]).is_err(), "mount point is required");
        let (_d, s) = with_policy(POLICY, &["--max-actions", "0", "/m"]);
        assert!(s.unwrap_err().contains("--max-actions"));
        let (_d, s) = with_policy(POLICY, &["relative/mount"]);
        assert!(s.unwrap_err().contains("absolute"));
    }

    #[test]
    fn usage_errors_are_one_line_with_a_hint() {
        let line = |args: &[&str]| usage_error_line(&cli(args).unwrap_err());
        assert_eq!(line(&[]), "missing MOUNTPOINT (try --help)");
        assert_eq!(line(&["-A", "1"]), "missing MOUNTPOINT (try --help)");
        assert_eq!(
            line(&["--frobnicate", "/m"]),
            "unexpected argument '--frobnicate' found (try --help)"
        );
        for args in [
            &["--max-actions", "many", "/m"][..],
            &["--metrics", "127.0.0.1:1", "--no-metrics", "/m"],
            &["/m", "/n"],
            &["--config"],
        ] {
            let l = line(args);
            assert!(!l.contains('\n') && l.ends_with(" (try --help)"), "{l}");
            assert!(!l.contains("Usage") && !l.contains("tip:"), "{l}");
        }
        assert!(line(&["--max-actions", "many", "/m"]).contains("--max-actions"));
    }

    #[test]
    fn bad_policy_is_one_line_naming_the_key() {
        let (_d, s) = with_policy(
            &POLICY.replace("max_actions = 5", "max_actions = \"lots\""),
            &["/m"],
        );
        let e = s.unwrap_err();
        assert!(e.contains("copytool.max_actions"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let c = cli(&["--config", "/nonexistent/policy.toml", "/m"]).unwrap();
        assert!(resolve(&c)
            .unwrap_err()
            .contains("/nonexistent/policy.toml"));
    }
}
