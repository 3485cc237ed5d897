//! The policy file (DESIGN §9): one TOML schema read by both `lhsmtool_blob` and `lustre-blob`.
//!
//! ```no_run
//! let policy = lustre_blob_config::Policy::load(std::path::Path::new("/etc/lustre-blob/policy.toml"))?;
//! println!("{}", policy.lustre.mount.display());
//! # Ok::<(), lustre_blob_config::ConfigError>(())
//! ```
//!
//! Every key has a default except `lustre.mount` and `blob.url`. Unknown keys and bad values are
//! refused with one line naming the file, the line and the key, e.g.
//! `policy.toml:7: autoexport.min_age: invalid duration "5 parsecs" (...)`.
//! Values are checked while they are read (so every refusal carries the value's position):
//! `archive_id > 0`, block sizes within Azure's block limits, export paths relative and free of
//! `..`, exclusion globs that compile, container names Azure accepts.
//!
//! Public API: [`Policy::load`], [`Policy::from_toml`], [`Policy::blob_target`], the section
//! structs with plain public fields ([`Lustre`], [`BlobTarget`], [`AutoExport`], [`Logging`],
//! [`Copytool`], [`Control`], [`Import`]), the option enums ([`MetadataMode`], [`DeleteMode`], [`RenameMode`],
//! [`ConflictMode`]), [`ConfigError`], and the unit parsers in [`units`].

#![warn(missing_docs)]

mod error;
mod fields;
pub mod units;

pub use error::ConfigError;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default location of the policy file for every binary's `--config`.
pub const DEFAULT_PATH: &str = "/etc/lustre-blob/policy.toml";

/// Azure's block-size limits for Put Block (the copytool's `block_size`).
pub const MIN_BLOCK_SIZE: u64 = 64 << 10;
/// Largest block Put Block accepts (4000 MiB).
pub const MAX_BLOCK_SIZE: u64 = 4000 << 20;

/// The whole policy file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `[lustre]`: the mount, MDTs, changelog user, archive id.
    pub lustre: Lustre,
    /// `[blob]`: the target and its credentials.
    pub blob: BlobTarget,
    #[serde(default)]
    /// `[autoexport]`: what is exported and how changes propagate.
    pub autoexport: AutoExport,
    #[serde(default)]
    /// `[logging]`: the logging container.
    pub logging: Logging,
    #[serde(default)]
    /// `[copytool]`: the copytool's settings.
    pub copytool: Copytool,
    #[serde(default)]
    /// `[control]`: socket, state directory, HTTP.
    pub control: Control,
    #[serde(default)]
    /// `[import]`: import settings.
    pub import: Import,
}

/// `[import]`: what an import may take from a blob's metadata (which anyone able to write to the
/// container controls).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Import {
    /// Apply the setuid, setgid and sticky bits a blob's `permissions` carries. Default false:
    /// they are dropped (and the drop is counted and logged), so no blob can plant a setuid program.
    #[serde(default)]
    pub keep_special_bits: bool,
}

/// `[lustre]`: which file system, which archive, which changelog user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lustre {
    /// Client mount point (absolute). Required.
    #[serde(deserialize_with = "fields::de_mount")]
    pub mount: PathBuf,
    /// HSM archive id the exports go to (1..=2^32-1). Default 1.
    #[serde(
        default = "defaults::archive_id",
        deserialize_with = "fields::de_archive_id"
    )]
    pub archive_id: u32,
    /// Changelog user as `lctl changelog_register` printed it (`clN` or `clN-name`), the same on
    /// every MDT, or a table MDT → user (ids are numbered per MDT). Default `cl1`.
    #[serde(
        default = "defaults::changelog_user",
        deserialize_with = "fields::de_changelog_user"
    )]
    pub changelog_user: ChangelogUser,
    /// MDT device names to read (`<fsname>-MDTxxxx`); `None` = every MDT found from the mount.
    #[serde(default, deserialize_with = "fields::de_mdts")]
    pub mdts: Option<Vec<String>>,
    /// How each MDT's changelog is read: `"auto"` (the default) or an interval of 100ms-60s.
    /// At `1s` the daemon follows it with Lustre's own follow mode, whose client reads a pass,
    /// sleeps a second and reads again (`chlg_load`, mdc_changelog.c). Any other interval reads
    /// it in the daemon's own passes that far apart, each a non-follow read from where the last
    /// one stopped: a shorter interval brings a closed file to the blob store sooner, and costs
    /// the MDS a changelog open per MDT per pass, which re-reads every record some changelog
    /// user has not cleared yet (a follow pass resumes where it stopped): cheap while the
    /// changelog stays cleared, costly while records stay uncleared. `"auto"` takes the short
    /// passes while few records are kept below the reader and follows while many are (the
    /// policy engine's `readers` module holds the numbers).
    #[serde(
        default = "defaults::changelog_interval",
        deserialize_with = "fields::de_changelog_interval"
    )]
    pub changelog_interval: ChangelogInterval,
}

/// `[lustre] changelog_interval`: how each MDT's changelog is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangelogInterval {
    /// `"auto"`: short passes of the daemon's own while the changelog below the reader is
    /// (nearly) cleared, Lustre's follow mode while records stay uncleared.
    Auto,
    /// A fixed interval: [`FOLLOW_INTERVAL`] follows, any other reads in passes that far apart.
    Every(Duration),
}

/// The `changelog_interval` that follows the changelog in Lustre's follow mode (the pause of its
/// client's reader between passes).
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// The changelog user of each MDT: one id for all, or one per MDT (`changelog_register`
/// numbers users per MDT, so the same consumer may be `cl1` on one and `cl3` on another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangelogUser {
    /// One user id on every MDT.
    Same(String),
    /// Keyed by `<fsname>-MDTxxxx` or `MDTxxxx`.
    PerMdt(std::collections::BTreeMap<String, String>),
}

impl ChangelogUser {
    /// The user to read and clear MDT device `mdt` (`<fsname>-MDTxxxx`) with; `None` when a
    /// table has no entry for it.
    pub fn for_mdt(&self, mdt: &str) -> Option<&str> {
        match self {
            ChangelogUser::Same(u) => Some(u),
            ChangelogUser::PerMdt(t) => t
                .get(mdt)
                .or_else(|| mdt.rsplit_once('-').and_then(|(_, short)| t.get(short)))
                .map(String::as_str),
        }
    }
}

impl std::fmt::Display for ChangelogUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangelogUser::Same(u) => f.write_str(u),
            ChangelogUser::PerMdt(t) => {
                let v: Vec<String> = t.iter().map(|(m, u)| format!("{m}={u}")).collect();
                f.write_str(&v.join(","))
            }
        }
    }
}

impl PartialEq<&str> for ChangelogUser {
    fn eq(&self, other: &&str) -> bool {
        matches!(self, ChangelogUser::Same(u) if u == other)
    }
}

/// `[blob]`: the target container (and optional prefix) and how to authenticate; [`BlobTarget::spec`]
/// is what the `blob` crate opens.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobTarget {
    /// `https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]`, `az://CONTAINER[/PREFIX]`, or an
    /// Azurite URL `http://127.0.0.1:10000/devstoreaccount1/CONTAINER`. Required.
    #[serde(deserialize_with = "fields::de_url")]
    pub url: String,
    /// Talk to Azurite (path-style URLs, well-known dev account). Default false.
    #[serde(default)]
    pub use_emulator: bool,
    /// File holding the storage account key.
    #[serde(default)]
    pub account_key_file: Option<PathBuf>,
    /// File holding a SAS token.
    #[serde(default)]
    pub sas_token_file: Option<PathBuf>,
    /// File holding a connection string.
    #[serde(default)]
    pub connection_string_file: Option<PathBuf>,
    /// Timeout of one blob request. Default 60 s.
    #[serde(
        default = "defaults::request_timeout",
        deserialize_with = "fields::de_positive_duration"
    )]
    pub request_timeout: Duration,
    /// Retries of a transient blob error (with backoff). Default 5.
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// Accept credential files readable by their group or by others (only warned). Default false:
    /// such a file is refused at start, as `ssh` refuses a private key others can read.
    #[serde(default)]
    pub allow_shared_credentials_file: bool,
}

impl std::fmt::Debug for BlobTarget {
    // The URL may carry a SAS query string: shown through `TargetSpec`'s redacting `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobTarget")
            .field("target", &self.spec())
            .field(
                "allow_shared_credentials_file",
                &self.allow_shared_credentials_file,
            )
            .finish()
    }
}

impl BlobTarget {
    /// The target and its credentials as the `blob` crate opens them (`blob::TargetSpec`).
    pub fn spec(&self) -> TargetSpec {
        TargetSpec {
            url: self.url.clone(),
            use_emulator: self.use_emulator,
            account_key_file: self.account_key_file.clone(),
            sas_token_file: self.sas_token_file.clone(),
            connection_string_file: self.connection_string_file.clone(),
            request_timeout: self.request_timeout,
            retries: self.retries,
        }
    }
}

/// A blob target with its credentials, as the `blob` crate opens it (re-exported there as
/// `blob::TargetSpec`): the `[blob]` section without what only the policy file checks. Defined
/// here, the crate every other depends on, so the fields and their redacting `Debug` exist once.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// `https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]`, `az://CONTAINER[/PREFIX]`, or with `use_emulator` `http://HOST:PORT/ACCOUNT/CONTAINER[/PREFIX]`.
    pub url: String,
    /// Path-style URLs of Azurite (and its well-known key when no credential is given).
    pub use_emulator: bool,
    /// A file holding the account key.
    pub account_key_file: Option<PathBuf>,
    /// A file holding a SAS token.
    pub sas_token_file: Option<PathBuf>,
    /// A file holding a connection string.
    pub connection_string_file: Option<PathBuf>,
    /// Per-HTTP-request timeout; large blocks need far more than object_store's 30 s default.
    pub request_timeout: Duration,
    /// Retries of one failed request on transient errors (object_store's retry layer), and of
    /// whole operations by `blob::BlobStore`.
    pub retries: u32,
}

impl TargetSpec {
    /// A spec with default timeout (10 min) and retries (5), and no credential files.
    pub fn new(url: impl Into<String>) -> TargetSpec {
        TargetSpec {
            url: url.into(),
            use_emulator: false,
            account_key_file: None,
            sas_token_file: None,
            connection_string_file: None,
            request_timeout: Duration::from_secs(600),
            retries: 5,
        }
    }
}

impl std::fmt::Debug for TargetSpec {
    // The URL may carry a SAS query string: never print it, and credential files only by path.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetSpec")
            .field("url", &redact_query(&self.url))
            .field("use_emulator", &self.use_emulator)
            .field("account_key_file", &self.account_key_file)
            .field("sas_token_file", &self.sas_token_file)
            .field("connection_string_file", &self.connection_string_file)
            .field("request_timeout", &self.request_timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// `url` with any query string (a SAS token) replaced by `?<redacted>`.
pub fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_string(),
    }
}

/// `metadata`: what a chmod/chown/utime does to the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataMode {
    /// Azure's behaviour: metadata changes are not propagated.
    #[default]
    Ignore,
    /// SETATTR records update the blob's metadata.
    Sync,
}

/// `on_delete`: what an unlink does to the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteMode {
    /// Azure's behaviour: blobs stay.
    #[default]
    Keep,
    /// The blob of a deleted file or directory is deleted.
    Delete,
}

/// `on_rename`: what a rename does to the blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenameMode {
    /// Azure's behaviour: nothing happens to existing blobs.
    #[default]
    Keep,
    /// Server-side copy to the new name, then delete the old one (every blob under a directory).
    Move,
}

/// `conflict`: a blob changed on the blob side since we last wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictMode {
    /// The file fails with a "conflict" reason (counted and logged).
    #[default]
    Fail,
    /// Our copy replaces the blob.
    Overwrite,
}

/// `[autoexport]`: what the changelog-driven export covers and how it propagates changes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoExport {
    /// Start auto-export when the daemon starts. Default true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Export prefix(es) relative to the mount, normalised without trailing `/`; `[""]` means
    /// everything. The file may give one string or a list. Default `""`.
    #[serde(default = "defaults::paths", deserialize_with = "fields::de_paths")]
    pub path: Vec<String>,
    /// Exclusion globs matched against the path relative to the mount (`*` crosses `/`).
    #[serde(default, deserialize_with = "fields::de_globs")]
    pub exclude: Vec<String>,
    /// Quiet time after the last change before a file is exported. Default 0 s.
    #[serde(default, deserialize_with = "units::de_duration")]
    pub min_age: Duration,
    #[serde(default)]
    /// Which metadata is exported.
    pub metadata: MetadataMode,
    #[serde(default)]
    /// What an unlink does to the blob.
    pub on_delete: DeleteMode,
    #[serde(default)]
    /// What a rename does to the blobs.
    pub on_rename: RenameMode,
    #[serde(default)]
    /// What to do with a blob changed behind our back.
    pub conflict: ConflictMode,
    /// Files handed to the coordinator per `llapi_hsm_request` call (split further into requests
    /// of at most 52 items by the `lustre` crate). Default 1000.
    #[serde(
        default = "defaults::batch_size",
        deserialize_with = "fields::de_batch_size"
    )]
    pub batch_size: usize,
    /// Archive requests handed to the coordinator and not finished yet, at most (the rest of an
    /// iteration waits in the daemon, not in the coordinator's catalog). The daemon learns that
    /// a request ended from its CL_HSM record, which a client's changelog reader delivers in
    /// passes a second apart, so this also caps the export at about this many files a second.
    /// Default 1024.
    #[serde(
        default = "defaults::max_in_flight",
        deserialize_with = "fields::de_max_in_flight"
    )]
    pub max_in_flight: usize,
    /// Archive requests outstanding are kept to about this much work at the rate they are
    /// finishing (Little's law), so a change made during a bulk export waits about this long
    /// behind them; never fewer than `min_in_flight`, never more than `max_in_flight`. `0s`:
    /// always `max_in_flight`. Default 500 ms.
    #[serde(
        default = "defaults::queue_target",
        deserialize_with = "fields::de_queue_target"
    )]
    pub queue_target: Duration,
    /// Archive requests outstanding whatever the measured rate (capped by `max_in_flight`): the
    /// copytools' slots (sum of their `max_actions`, at most the MDTs' `hsm.max_requests`), so
    /// large files keep every slot busy. Default 32.
    #[serde(
        default = "defaults::min_in_flight",
        deserialize_with = "fields::de_min_in_flight"
    )]
    pub min_in_flight: usize,
    /// An iteration whose remaining requests make no progress for this long ends; those files
    /// are carried into the next iteration as pending. Default 10 min.
    #[serde(
        default = "defaults::iteration_deadline",
        deserialize_with = "units::de_duration"
    )]
    pub iteration_deadline: Duration,
}

/// `[logging]`: where per-file failures and per-iteration summaries go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Container in the same account as `blob.url`. Default `lustre-logs`.
    #[serde(
        default = "defaults::log_container",
        deserialize_with = "fields::de_container"
    )]
    pub container: String,
}

/// `[copytool]`: per-agent concurrency and transfer shape.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Copytool {
    /// Actions served at once by one agent (1..=1024). Default 32.
    #[serde(
        default = "defaults::max_actions",
        deserialize_with = "fields::de_max_actions"
    )]
    pub max_actions: usize,
    /// Put Block size (64 KiB..=4000 MiB). Default 8 MiB.
    #[serde(
        default = "defaults::block_size",
        deserialize_with = "fields::de_block_size"
    )]
    pub block_size: u64,
    /// Blocks uploaded in parallel per action (1..=256). Default 16.
    #[serde(
        default = "defaults::blocks_in_flight",
        deserialize_with = "fields::de_blocks_in_flight"
    )]
    pub blocks_in_flight: usize,
    /// Interval of progress reports to the coordinator. Default 10 s.
    #[serde(
        default = "defaults::update_interval",
        deserialize_with = "fields::de_positive_duration"
    )]
    pub update_interval: Duration,
    /// Bytes per second per agent (e.g. "100MiB"); `None` = unlimited.
    #[serde(default, deserialize_with = "fields::de_bandwidth")]
    pub bandwidth: Option<u64>,
    /// `ADDR:PORT` of the copytool's own Prometheus endpoint (`/metrics`); `None` = disabled. Separate
    /// from `control.metrics` (the daemon's) so a copytool and the daemon on one host never compete
    /// for a port.
    #[serde(default, deserialize_with = "fields::de_metrics")]
    pub metrics: Option<SocketAddr>,
}

/// `[control]`: the daemon's socket, state and metrics (the policy daemon's only; the copytool's
/// endpoint is `copytool.metrics`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Unix socket of the daemon (mode 0600). Default `/run/lustre-blob/lustre-blob.sock`.
    #[serde(default = "defaults::socket", deserialize_with = "fields::de_abs_path")]
    pub socket: PathBuf,
    /// Where the daemon keeps its state (cursor, counters, jobs). Default `/var/lib/lustre-blob`.
    #[serde(
        default = "defaults::state_dir",
        deserialize_with = "fields::de_abs_path"
    )]
    pub state_dir: PathBuf,
    /// `ADDR:PORT` of the Prometheus endpoint (`/metrics`); `None` = disabled.
    #[serde(default, deserialize_with = "fields::de_metrics")]
    pub metrics: Option<SocketAddr>,
    /// `ADDR:PORT` of the Blob-integration page (and `/metrics`); `None` = off. Read-only unless
    /// `http_token_file` names a token.
    #[serde(default, deserialize_with = "fields::de_metrics")]
    pub http: Option<SocketAddr>,
    /// A file (mode 0600, owned by root) holding the token that allows Cancel and
    /// enable/disable from the page. `None`: the page is read-only.
    #[serde(default, deserialize_with = "fields::de_opt_abs_path")]
    pub http_token_file: Option<PathBuf>,
}

mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn archive_id() -> u32 {
        1
    }
    pub fn changelog_user() -> super::ChangelogUser {
        super::ChangelogUser::Same("cl1".into())
    }
    pub fn changelog_interval() -> super::ChangelogInterval {
        super::ChangelogInterval::Auto
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn retries() -> u32 {
        5
    }
    pub fn yes() -> bool {
        true
    }
    pub fn paths() -> Vec<String> {
        vec![String::new()]
    }
    pub fn batch_size() -> usize {
        1000
    }
    pub fn max_in_flight() -> usize {
        1024
    }
    pub fn queue_target() -> Duration {
        Duration::from_millis(500)
    }
    pub fn min_in_flight() -> usize {
        32
    }
    pub fn iteration_deadline() -> Duration {
        Duration::from_secs(600)
    }
    pub fn log_container() -> String {
        "lustre-logs".into()
    }
    pub fn max_actions() -> usize {
        32
    }
    pub fn block_size() -> u64 {
        8 << 20
    }
    pub fn blocks_in_flight() -> usize {
        16
    }
    pub fn update_interval() -> Duration {
        Duration::from_secs(10)
    }
    pub fn socket() -> PathBuf {
        PathBuf::from("/run/lustre-blob/lustre-blob.sock")
    }
    pub fn state_dir() -> PathBuf {
        PathBuf::from("/var/lib/lustre-blob")
    }
}

impl Default for AutoExport {
    fn default() -> Self {
        AutoExport {
            enabled: true,
            path: defaults::paths(),
            exclude: Vec::new(),
            min_age: Duration::ZERO,
            metadata: MetadataMode::default(),
            on_delete: DeleteMode::default(),
            on_rename: RenameMode::default(),
            conflict: ConflictMode::default(),
            batch_size: defaults::batch_size(),
            max_in_flight: defaults::max_in_flight(),
            queue_target: defaults::queue_target(),
            min_in_flight: defaults::min_in_flight(),
            iteration_deadline: defaults::iteration_deadline(),
        }
    }
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            container: defaults::log_container(),
        }
    }
}

impl Default for Copytool {
    fn default() -> Self {
        Copytool {
            max_actions: defaults::max_actions(),
            block_size: defaults::block_size(),
            blocks_in_flight: defaults::blocks_in_flight(),
            update_interval: defaults::update_interval(),
            bandwidth: None,
            metrics: None,
        }
    }
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket: defaults::socket(),
            state_dir: defaults::state_dir(),
            metrics: None,
            http: None,
            http_token_file: None,
        }
    }
}

impl Policy {
    /// Reads and checks the policy file at `path`, credential files' permissions included
    /// ([`Policy::check_credential_files`]; a shared file allowed by
    /// `blob.allow_shared_credentials_file` is only warned about, on stderr).
    pub fn load(path: &Path) -> Result<Policy, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        let policy = Policy::from_toml(&text, path)?;
        for warning in policy.check_credential_files(path)? {
            // Never a panic for a closed stderr (what `eprintln!` would do).
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "warning: {warning}");
        }
        Ok(policy)
    }

    /// Credential files (`blob.account_key_file`, `blob.sas_token_file`,
    /// `blob.connection_string_file`) that their group or others may read are refused, naming the
    /// key, the file and its mode, as `ssh` refuses such a private key; with
    /// `blob.allow_shared_credentials_file = true` they are returned as warnings instead. Files
    /// that do not exist or are not regular files are left to the code that reads them (which
    /// says so). `file` only names the policy file in errors.
    pub fn check_credential_files(&self, file: &Path) -> Result<Vec<String>, ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let mut warnings = Vec::new();
        let b = &self.blob;
        for (key, path) in [
            ("account_key_file", &b.account_key_file),
            ("sas_token_file", &b.sas_token_file),
            ("connection_string_file", &b.connection_string_file),
        ] {
            let Some(path) = path else { continue };
            let Ok(md) = std::fs::metadata(path) else {
                continue;
            };
            let mode = md.permissions().mode() & 0o777;
            if !md.is_file() || mode & 0o077 == 0 {
                continue;
            }
            let problem = format!(
                "{} is open to {} (mode {mode:04o}); run `chmod 600 {}`, or set \
                 blob.allow_shared_credentials_file = true to accept it",
                path.display(),
                match (mode & 0o070 != 0, mode & 0o007 != 0) {
                    (true, true) => "its group and others",
                    (true, false) => "its group",
                    _ => "others",
                },
                path.display()
            );
            if b.allow_shared_credentials_file {
                warnings.push(format!("blob.{key}: {problem}"));
            } else {
                return Err(ConfigError::Invalid {
                    file: file.to_path_buf(),
                    line: None,
                    key: format!("blob.{key}"),
                    message: problem,
                });
            }
        }
        Ok(warnings)
    }

    /// Parses policy text; `file` only names the source in errors.
    pub fn from_toml(text: &str, file: &Path) -> Result<Policy, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| error::from_toml(e, text, file))
    }

    /// Looks up (DNS) the host of an `http(s)://` `blob.url` (`az://` names none: nothing to do),
    /// so a typo'd account name is one line at start naming `blob.url` and the host, not minutes
    /// of retries. `file` only names the policy file in errors.
    pub fn check_blob_host(&self, file: &Path) -> Result<(), ConfigError> {
        use std::net::ToSocketAddrs;
        let Some((host, port)) = url_host_and_port(&self.blob.url) else {
            return Ok(());
        };
        let problem = match (host.as_str(), port).to_socket_addrs() {
            Ok(addrs) if addrs.len() > 0 => return Ok(()),
            Ok(_) => format!("host {host:?} has no address; check the account name"),
            Err(e) => format!("host {host:?} does not resolve ({e}); check the account name"),
        };
        Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            line: None,
            key: "blob.url".into(),
            message: problem,
        })
    }

    /// The blob target as plain fields (the `blob` crate turns it into its `TargetSpec`).
    pub fn blob_target(&self) -> BlobTarget {
        self.blob.clone()
    }

    /// The export prefixes as given (normalised, no trailing `/`; `""` means the whole mount).
    pub fn export_paths(&self) -> &[String] {
        &self.autoexport.path
    }
}

/// Host and port of an `http(s)://` URL (`None` for other schemes, e.g. `az://`, or no host).
pub fn url_host_and_port(url: &str) -> Option<(String, u16)> {
    let u = url::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = match u.host()? {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => a.to_string(),
    };
    Some((host, u.port_or_known_default()?))
}

#[cfg(test)]
mod tests;
