//! Exit codes of `lustre-blob` (documented in `lustre-blob --help` and the README).

/// Success; for `--wait`: the job completed with no failed file.
pub const OK: i32 = 0;
/// The job or flush finished, but some files failed (listed / in the logging container).
pub const FILES_FAILED: i32 = 1;
/// Bad command line or policy file.
pub const USAGE: i32 = 2;
/// The daemon cannot be reached (not running, wrong --config) or is shutting down.
pub const UNAVAILABLE: i32 = 3;
/// Refused: another blob-integration job is running, or auto-export is disabled (flush).
pub const REFUSED: i32 = 4;
/// No such job.
pub const NOT_FOUND: i32 = 5;
/// `flush --timeout` expired first.
pub const TIMEOUT: i32 = 6;
/// The job ended Failed or Canceled.
pub const JOB_FAILED: i32 = 7;
/// The daemon or a local call failed (Lustre, blob store, state directory).
pub const INTERNAL: i32 = 70;
