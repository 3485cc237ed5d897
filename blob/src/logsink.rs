//! [`LogSink`]: the one writer of the logging container, shared by the copytool and the policy
//! daemon. Entries are JSON lines ([`LogEntry`]).
//!
//! * [`LogSink::record`] never blocks and never fails: it puts the entry in a bounded in-memory
//!   queue. The caller (an HSM action, the policy engine's loop) is never held up by the store.
//! * A flusher task ([`LogSink::spawn_flusher`]) writes the queue every interval, as soon as the
//!   queue is full, when asked ([`LogSink::flush_soon`]) and once more at shutdown.
//! * Blob storage has no append here (object_store offers none), so each write is one new blob
//!   `<prefix>/<YYYY-MM-DD>/<source>-<unix_nanos>-<seq>.jsonl`, create-only.
//! * **When the queue is full** (the store is slow or down), recording drops the *oldest* entry and
//!   counts it; a failed write puts its entries back (the oldest beyond the bound are dropped and
//!   counted). The next successful write starts with a `dropped` entry saying how many were lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::metadata::Metadata;
use crate::name::BlobName;
use crate::store::{BlobStore, WriteMode};
use crate::time::serde_rfc3339;

/// One failed file or namespace operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureEntry {
    /// When it failed.
    #[serde(with = "serde_rfc3339")]
    pub time: SystemTime,
    /// The copytool that failed it (`<host>-<pid>`); absent in the policy daemon's entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Job id (`autoexport-N`, `export-N`, ...), "" when the request carried none.
    pub job: String,
    /// Iteration of the job, 0 when unknown.
    pub iteration: u64,
    /// The file's FID in DFID form, when it has one.
    pub fid: Option<String>,
    /// Path relative to the mount, "" when it could not be resolved.
    pub path: String,
    /// `archive`, `restore`, `remove`, `mkdir`, `symlink`, `metadata`, `delete`, `rename`, ...
    pub operation: String,
    /// The error, one line.
    pub error: String,
    /// The errno the coordinator was given (copytool entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// The cause, as a stable keyword (copytool entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    /// The HTTP status of the failed request, when the store answered.
    pub http_status: Option<u16>,
    /// Azure's error code (`x-ms-error-code`), when the store gave one.
    pub azure_code: Option<String>,
}

impl FailureEntry {
    /// An entry with no agent, errno, reason or HTTP details, at the current time
    /// ([`crate::time::now`]).
    pub fn new(
        job: &str,
        iteration: u64,
        fid: Option<String>,
        path: &str,
        operation: &str,
    ) -> Self {
        FailureEntry {
            time: crate::time::now(),
            agent: None,
            job: job.to_string(),
            iteration,
            fid,
            path: path.to_string(),
            operation: operation.to_string(),
            error: String::new(),
            errno: None,
            reason: None,
            http_status: None,
            azure_code: None,
        }
    }

    /// Fills `error`, `http_status` and `azure_code` from a blob error.
    pub fn from_error(
        job: &str,
        iteration: u64,
        fid: Option<String>,
        path: &str,
        operation: &str,
        e: &Error,
    ) -> Self {
        FailureEntry {
            error: e.to_string(),
            http_status: e.http_status(),
            azure_code: e.azure_code().map(str::to_string),
            ..FailureEntry::new(job, iteration, fid, path, operation)
        }
    }
}

/// Why an HSM action failed: the `reason` keyword of a copytool failure entry (the table in
/// `copytool/README.md` gives the errno of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Network error, timeout, HTTP 5xx, throttling: worth another try.
    Transient,
    /// HTTP 403, or credentials refused.
    PermissionDenied,
    /// The blob changed behind our back (409 / 412).
    Conflict,
    /// A name a blob cannot carry.
    InvalidName,
    /// The blob or the file is not there.
    NotFound,
    /// The container itself is missing (an error of the store as a whole).
    ContainerMissing,
    /// Any other error the store answered with.
    BlobError,
    /// The file changed during its archive (not a failure: it goes again).
    Changed,
    /// Downloaded size or checksum wrong.
    Corrupt,
    /// Cancelled by the coordinator.
    Cancelled,
    /// Aborted because the copytool is stopping.
    Shutdown,
    /// `--dry-run`: checked, nothing moved.
    DryRun,
    /// Not a regular file.
    NotRegular,
    /// An action the copytool does not know.
    UnknownAction,
    /// A local I/O error.
    Io,
    /// A Lustre call failed.
    Lustre,
}

impl FailureReason {
    /// The keyword as written in the logging container.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Transient => "transient",
            FailureReason::PermissionDenied => "permission_denied",
            FailureReason::Conflict => "conflict",
            FailureReason::InvalidName => "invalid_name",
            FailureReason::NotFound => "not_found",
            FailureReason::ContainerMissing => "container_missing",
            FailureReason::BlobError => "blob_error",
            FailureReason::Changed => "changed",
            FailureReason::Corrupt => "corrupt",
            FailureReason::Cancelled => "cancelled",
            FailureReason::Shutdown => "shutdown",
            FailureReason::DryRun => "dry_run",
            FailureReason::NotRegular => "not_regular",
            FailureReason::UnknownAction => "unknown_action",
            FailureReason::Io => "io",
            FailureReason::Lustre => "lustre",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file that was not exported by its try and goes again, with no failure counted (it changed
/// during its copy): one line per such try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequeuedEntry {
    /// When the try ended.
    #[serde(with = "serde_rfc3339")]
    pub time: SystemTime,
    /// Job id.
    pub job: String,
    /// Iteration of the job.
    pub iteration: u64,
    /// The file's FID in DFID form.
    pub fid: Option<String>,
    /// Path relative to the mount.
    pub path: String,
    /// `archive`.
    pub operation: String,
    /// E.g. `changed during copy, re-exported`.
    pub reason: String,
}

/// The end of one iteration (or job), with the Auto-Export counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryEntry {
    /// When the iteration ended.
    #[serde(with = "serde_rfc3339")]
    pub time: SystemTime,
    /// Job id.
    pub job: String,
    /// The iteration that ended.
    pub iteration: u64,
    /// Files found to export.
    pub files_discovered: u64,
    /// Their size in MiB.
    pub mib_discovered: u64,
    /// Files exported.
    pub files_exported: u64,
    /// Their size in MiB.
    pub mib_exported: u64,
    /// Files that failed.
    pub files_failed: u64,
}

/// A line of the log. Serialised with a `"kind"` field: `failure`, `requeued`, `summary` or
/// `dropped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LogEntry {
    /// A failed file or operation.
    Failure(FailureEntry),
    /// A file that goes again without a failure counted.
    Requeued(RequeuedEntry),
    /// The end of an iteration.
    Summary(SummaryEntry),
    /// Entries lost because the logging container could not be written for a while.
    Dropped {
        /// When the loss was written down.
        #[serde(with = "serde_rfc3339")]
        time: SystemTime,
        /// How many entries were lost.
        count: u64,
    },
}

/// The bounded queue of entries not yet written.
#[derive(Default)]
struct Queue {
    entries: VecDeque<LogEntry>,
    dropped: u64,
}

struct Shared {
    store: BlobStore,
    prefix: String,
    source: String,
    capacity: usize,
    queue: Mutex<Queue>,
    /// Wakes the flusher: the queue is full, or a caller asked for a write.
    wake: Notify,
    /// One write at a time, so blobs hold the entries in the order they were recorded.
    writing: tokio::sync::Mutex<()>,
    seq: AtomicU64,
}

/// The writer of the logging container (cheap to clone; clones share the queue).
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

impl LogSink {
    /// `store` is the logging container (see [`BlobStore::with_container`]); `prefix` a blob
    /// prefix ("" for none); `source` names the writer (e.g. `lustre-blob`, `lhsmtool_blob-HOST`;
    /// characters other than letters, digits, `-` and `.` become `_`); at most `capacity` entries
    /// wait in the queue.
    pub fn new(store: BlobStore, prefix: &str, source: &str, capacity: usize) -> LogSink {
        let source = source
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        LogSink {
            shared: Arc::new(Shared {
                store,
                prefix: prefix.trim_matches('/').to_string(),
                source,
                capacity: capacity.max(1),
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                writing: tokio::sync::Mutex::new(()),
                seq: AtomicU64::new(0),
            }),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The queue stays consistent whatever a panicking holder did (push/pop only).
        self.shared.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an entry. Never blocks on the store: when the queue is full the oldest entry is
    /// dropped and counted, and the flusher is woken.
    pub fn record(&self, entry: LogEntry) {
        let full = {
            let mut q = self.queue();
            if q.entries.len() >= self.shared.capacity {
                q.entries.pop_front();
                q.dropped += 1;
            }
            q.entries.push_back(entry);
            q.entries.len() >= self.shared.capacity
        };
        if full {
            self.shared.wake.notify_one();
        }
    }

    /// Asks the flusher to write what is queued now, without waiting for it.
    pub fn flush_soon(&self) {
        self.shared.wake.notify_one();
    }

    /// Entries queued and not yet written.
    pub fn pending(&self) -> usize {
        self.queue().entries.len()
    }

    /// Writes the queued entries as one blob; returns its name (None when nothing was queued).
    /// On failure the entries go back to the front of the queue (the oldest beyond the bound are
    /// dropped and counted).
    pub async fn flush(&self) -> Result<Option<BlobName>, Error> {
        let _one_writer = self.shared.writing.lock().await;
        let (entries, dropped) = {
            let mut q = self.queue();
            (
                std::mem::take(&mut q.entries),
                std::mem::take(&mut q.dropped),
            )
        };
        if entries.is_empty() && dropped == 0 {
            return Ok(None);
        }
        let mut body = String::new();
        let lost = (dropped > 0).then(|| LogEntry::Dropped {
            time: crate::time::now(),
            count: dropped,
        });
        for e in lost.iter().chain(&entries) {
            // Plain strings and numbers: serialising cannot fail.
            body.push_str(&serde_json::to_string(e).unwrap_or_default());
            body.push('\n');
        }
        let res = match self.next_name() {
            Ok(name) => {
                let meta = Metadata {
                    modtime: SystemTime::now(),
                    ..Default::default()
                };
                self.shared
                    .store
                    .put_bytes(&name, Bytes::from(body), &meta, WriteMode::CreateOnly)
                    .await
                    .map(|_| name)
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(name) => Ok(Some(name)),
            Err(e) => {
                self.put_back(entries, dropped);
                Err(e)
            }
        }
    }

    /// Entries of a failed write go back in front of those recorded since, within the bound.
    fn put_back(&self, entries: VecDeque<LogEntry>, dropped: u64) {
        let mut q = self.queue();
        q.dropped += dropped;
        for e in entries.into_iter().rev() {
            if q.entries.len() >= self.shared.capacity {
                q.dropped += 1;
            } else {
                q.entries.push_front(e);
            }
        }
    }

    /// Starts the flusher: it writes every `interval`, when the queue is full and on
    /// [`flush_soon`](Self::flush_soon); after a failed write it waits `interval` before the next
    /// try. When `stop` is cancelled it writes once more and ends; await the handle at shutdown.
    pub fn spawn_flusher(
        &self,
        interval: Duration,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = sink.shared.wake.notified() => {}
                    () = stop.cancelled() => break,
                }
                if let Err(e) = sink.flush().await {
                    tracing::warn!(error = %e, pending = sink.pending(), "writing the logging container failed; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
            if let Err(e) = sink.flush().await {
                tracing::error!(error = %e, pending = sink.pending(), "final write of the logging container failed; entries lost");
            }
        })
    }

    fn next_name(&self) -> Result<BlobName, Error> {
        let now = SystemTime::now();
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let day = &crate::time::rfc3339(now)[..10];
        let seq = self.shared.seq.fetch_add(1, Ordering::SeqCst);
        let file = format!("{day}/{}-{nanos}-{seq}.jsonl", self.shared.source);
        let full = if self.shared.prefix.is_empty() {
            file
        } else {
            format!("{}/{file}", self.shared.prefix)
        };
        Ok(BlobName::new(&full)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_serialise_as_their_keyword() {
        for r in [
            FailureReason::PermissionDenied,
            FailureReason::ContainerMissing,
            FailureReason::DryRun,
            FailureReason::UnknownAction,
            FailureReason::Io,
        ] {
            let j = serde_json::to_string(&r).unwrap();
            assert_eq!(j, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<FailureReason>(&j).unwrap(), r);
        }
        assert!(serde_json::from_str::<FailureReason>("\"bogus\"").is_err());
    }

    #[test]
    fn entries_serialise_with_kind() {
        let e = LogEntry::Failure(FailureEntry {
            error: "conflict".into(),
            http_status: Some(412),
            azure_code: Some("ConditionNotMet".into()),
            time: UNIX_EPOCH,
            ..FailureEntry::new(
                "auto-export",
                3,
                Some("[0x1:0x2:0x0]".into()),
                "a/b",
                "archive",
            )
        });
        let j = serde_json::to_string(&e).unwrap();
        assert!(
            j.starts_with("{\"kind\":\"failure\",\"time\":\"1970-01-01T00:00:00.000Z\""),
            "{j}"
        );
        assert!(!j.contains("agent") && !j.contains("errno") && !j.contains("reason"));
        assert_eq!(serde_json::from_str::<LogEntry>(&j).unwrap(), e);
        let d = serde_json::to_string(&LogEntry::Dropped {
            time: UNIX_EPOCH,
            count: 2,
        })
        .unwrap();
        assert_eq!(
            d,
            "{\"kind\":\"dropped\",\"time\":\"1970-01-01T00:00:00.000Z\",\"count\":2}"
        );
    }

    #[test]
    fn copytool_fields_are_written_when_present() {
        let e = LogEntry::Failure(FailureEntry {
            agent: Some("host-1".into()),
            errno: Some(17),
            reason: Some(FailureReason::Conflict),
            ..FailureEntry::new("j", 1, None, "p", "archive")
        });
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(
            (&v["agent"], &v["errno"], &v["reason"]),
            (
                &serde_json::json!("host-1"),
                &serde_json::json!(17),
                &serde_json::json!("conflict")
            )
        );
        assert_eq!(serde_json::from_value::<LogEntry>(v).unwrap(), e);
    }
}
