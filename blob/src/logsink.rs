//! [`LogSink`]: failure and summary entries for the logging container, as JSON lines.
//!
//! Blob storage has no append here (object_store offers none), so each flush writes one new
//! blob `<prefix>/<YYYY-MM-DD>/<source>-<unix_nanos>-<seq>.jsonl` (create-only) holding the
//! entries buffered since the last flush, one JSON object per line. The buffer is bounded: when
//! it is full, `log` flushes; if that fails, the oldest entries are dropped and counted, and the
//! next successful flush writes a `dropped` entry saying how many.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::error::Error;
use crate::metadata::Metadata;
use crate::name::BlobName;
use crate::record::rfc3339;
use crate::store::{BlobStore, WriteMode};

/// One failed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureEntry {
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    pub job: String,
    pub iteration: u64,
    pub fid: Option<String>,
    pub path: String,
    /// `archive`, `restore`, `remove`, `mkdir`, `symlink`, `metadata`, `delete`, `rename`, ...
    pub operation: String,
    pub error: String,
    pub http_status: Option<u16>,
    pub azure_code: Option<String>,
}

impl FailureEntry {
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
            time: SystemTime::now(),
            job: job.to_string(),
            iteration,
            fid,
            path: path.to_string(),
            operation: operation.to_string(),
            error: e.to_string(),
            http_status: e.http_status(),
            azure_code: e.azure_code().map(str::to_string),
        }
    }
}

/// A file that was not exported by its try and goes again, with no failure counted (it changed
/// during its copy): one line per such try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequeuedEntry {
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    pub job: String,
    pub iteration: u64,
    pub fid: Option<String>,
    pub path: String,
    pub operation: String,
    /// E.g. `changed during copy, re-exported`.
    pub reason: String,
}

/// The end of one iteration (or job), with the Auto-Export counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryEntry {
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    pub job: String,
    pub iteration: u64,
    pub files_discovered: u64,
    pub mib_discovered: u64,
    pub files_exported: u64,
    pub mib_exported: u64,
    pub files_failed: u64,
}

/// A line of the log. Serialised with a `"kind"` field: `failure`, `requeued`, `summary` or
/// `dropped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LogEntry {
    Failure(FailureEntry),
    Requeued(RequeuedEntry),
    Summary(SummaryEntry),
    /// Entries lost because the logging container could not be written for a while.
    Dropped {
        #[serde(with = "rfc3339")]
        time: SystemTime,
        count: u64,
    },
}

/// Buffered JSON-lines writer to the logging container.
pub struct LogSink {
    store: BlobStore,
    prefix: String,
    source: String,
    capacity: usize,
    state: Mutex<SinkState>,
    seq: AtomicU64,
}

#[derive(Default)]
struct SinkState {
    lines: VecDeque<String>,
    dropped: u64,
}

impl LogSink {
    /// `store` is the logging container (see [`BlobStore::with_container`]); `prefix` a blob
    /// prefix ("" for none); `source` names the writer (e.g. `lustre-blob`, `lhsmtool_blob-HOST`);
    /// at most `capacity` entries are buffered.
    pub fn new(store: BlobStore, prefix: &str, source: &str, capacity: usize) -> LogSink {
        LogSink {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            source: source.replace('/', "_"),
            capacity: capacity.max(1),
            state: Mutex::new(SinkState::default()),
            seq: AtomicU64::new(0),
        }
    }

    /// Buffers an entry; flushes when the buffer is full.
    pub async fn log(&self, entry: &LogEntry) -> Result<(), Error> {
        let line = serde_json::to_string(entry).unwrap_or_default();
        let full = {
            let mut st = self.state.lock().await;
            st.lines.push_back(line);
            st.lines.len() >= self.capacity
        };
        if full {
            self.flush().await?;
        }
        Ok(())
    }

    /// Entries buffered and not yet written.
    pub async fn pending(&self) -> usize {
        self.state.lock().await.lines.len()
    }

    /// Writes the buffered entries as one blob; returns its name (None when nothing was buffered).
    /// On failure the entries stay buffered (the oldest beyond capacity are dropped and counted).
    pub async fn flush(&self) -> Result<Option<BlobName>, Error> {
        let mut st = self.state.lock().await;
        if st.lines.is_empty() && st.dropped == 0 {
            return Ok(None);
        }
        let mut body = String::new();
        if st.dropped > 0 {
            let d = LogEntry::Dropped {
                time: SystemTime::now(),
                count: st.dropped,
            };
            body.push_str(&serde_json::to_string(&d).unwrap_or_default());
            body.push('\n');
        }
        for l in &st.lines {
            body.push_str(l);
            body.push('\n');
        }
        let name = self.next_name()?;
        let meta = Metadata {
            modtime: SystemTime::now(),
            ..Default::default()
        };
        match self
            .store
            .put_bytes(&name, Bytes::from(body), &meta, WriteMode::CreateOnly)
            .await
        {
            Ok(_) => {
                st.lines.clear();
                st.dropped = 0;
                Ok(Some(name))
            }
            Err(e) => {
                while st.lines.len() > self.capacity {
                    st.lines.pop_front();
                    st.dropped += 1;
                }
                Err(e)
            }
        }
    }

    fn next_name(&self) -> Result<BlobName, Error> {
        let now = SystemTime::now();
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let day: chrono::DateTime<chrono::Utc> = now.into();
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let file = format!(
            "{}/{}-{nanos}-{seq}.jsonl",
            day.format("%Y-%m-%d"),
            self.source
        );
        let full = if self.prefix.is_empty() {
            file
        } else {
            format!("{}/{file}", self.prefix)
        };
        Ok(BlobName::new(&full)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_serialise_with_kind() {
        let e = LogEntry::Failure(FailureEntry {
            time: UNIX_EPOCH,
            job: "auto-export".into(),
            iteration: 3,
            fid: Some("[0x1:0x2:0x0]".into()),
            path: "a/b".into(),
            operation: "archive".into(),
            error: "conflict".into(),
            http_status: Some(412),
            azure_code: Some("ConditionNotMet".into()),
        });
        let j = serde_json::to_string(&e).unwrap();
        assert!(
            j.starts_with("{\"kind\":\"failure\",\"time\":\"1970-01-01T00:00:00Z\""),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<LogEntry>(&j).unwrap(), e);
        let d = serde_json::to_string(&LogEntry::Dropped {
            time: UNIX_EPOCH,
            count: 2,
        })
        .unwrap();
        assert_eq!(
            d,
            "{\"kind\":\"dropped\",\"time\":\"1970-01-01T00:00:00Z\",\"count\":2}"
        );
    }
}
