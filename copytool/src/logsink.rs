//! Failure entries to the logging container (`[logging] container`), as JSON lines.
//!
//! `record` is synchronous and never blocks an action: entries go into a bounded buffer (oldest
//! dropped and counted when full). A background task writes the buffer every flush interval (and at
//! shutdown) as one new blob `<YYYY-MM-DD>/lhsmtool_blob-<agent>-<unix_nanos>-<seq>.jsonl`
//! (create-only, never overwritten). A failed write keeps the lines for the next try; a `dropped`
//! line reports entries lost while the container could not be written.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::ports::{FailureEntry, FailureLog};

/// Entries buffered at most.
pub const CAPACITY: usize = 10_000;

#[derive(Default)]
struct Buffer {
    lines: VecDeque<String>,
    dropped: u64,
}

/// The buffer shared by `record` and the flusher.
pub struct JsonLinesLog {
    buf: Mutex<Buffer>,
    capacity: usize,
}

impl JsonLinesLog {
    pub fn new(capacity: usize) -> Arc<JsonLinesLog> {
        Arc::new(JsonLinesLog {
            buf: Mutex::new(Buffer::default()),
            capacity: capacity.max(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the buffered lines as one JSON-lines body (None when empty).
    pub fn take_body(&self) -> Option<(String, usize, u64)> {
        let mut b = self.lock();
        if b.lines.is_empty() && b.dropped == 0 {
            return None;
        }
        let mut body = String::new();
        if b.dropped > 0 {
            let line = serde_json::json!({
                "kind": "dropped",
                "time": crate::timefmt::rfc3339_now(),
                "count": b.dropped,
            });
            body.push_str(&line.to_string());
            body.push('\n');
        }
        let n = b.lines.len();
        for l in b.lines.drain(..) {
            body.push_str(&l);
            body.push('\n');
        }
        let dropped = std::mem::take(&mut b.dropped);
        Some((body, n, dropped))
    }

    /// Puts lines of a failed write back in front (keeping the bound).
    pub fn restore(&self, body: &str, dropped: u64) {
        let mut b = self.lock();
        b.dropped += dropped;
        // take_body put the `dropped` line first when there was one.
        let skip = usize::from(dropped > 0);
        let lines: Vec<&str> = body.lines().skip(skip).collect();
        for l in lines.into_iter().rev() {
            if b.lines.len() >= self.capacity {
                b.dropped += 1;
                continue;
            }
            b.lines.push_front(l.to_string());
        }
    }

    pub fn pending(&self) -> usize {
        self.lock().lines.len()
    }
}

impl FailureLog for JsonLinesLog {
    fn record(&self, entry: FailureEntry) {
        let line = serde_json::to_string(&entry).unwrap_or_default();
        let mut b = self.lock();
        if b.lines.len() >= self.capacity {
            b.lines.pop_front();
            b.dropped += 1;
        }
        b.lines.push_back(line);
    }
}

/// Writes bodies to the logging container.
pub struct ContainerWriter {
    store: blob::BlobStore,
    source: String,
    seq: AtomicU64,
}

impl ContainerWriter {
    pub fn new(store: blob::BlobStore, agent: &str) -> ContainerWriter {
        let source: String = agent
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        ContainerWriter {
            store,
            source,
            seq: AtomicU64::new(0),
        }
    }

    fn next_name(&self) -> String {
        let now = SystemTime::now();
        let day = &crate::timefmt::rfc3339(now)[..10];
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{day}/lhsmtool_blob-{}-{nanos}-{seq}.jsonl", self.source)
    }

    /// Writes what is buffered; on failure the lines go back into the buffer.
    pub async fn flush(&self, log: &JsonLinesLog) -> Result<(), blob::Error> {
        let Some((body, _, dropped)) = log.take_body() else {
            return Ok(());
        };
        let name = blob::BlobName::new(&self.next_name())?;
        let meta = blob::Metadata {
            modtime: SystemTime::now(),
            ..Default::default()
        };
        let res = self
            .store
            .put_bytes(
                &name,
                body.clone().into(),
                &meta,
                blob::WriteMode::CreateOnly,
            )
            .await;
        if let Err(e) = res {
            log.restore(&body, dropped);
            return Err(e);
        }
        Ok(())
    }

    /// Flushes every `interval` until `stop`, then once more.
    pub async fn run(self, log: Arc<JsonLinesLog>, interval: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.cancelled() => break,
            }
            if let Err(e) = self.flush(&log).await {
                tracing::warn!(error = %e, pending = log.pending(), "writing the failure log to the logging container failed; will retry");
            }
        }
        if let Err(e) = self.flush(&log).await {
            tracing::error!(error = %e, pending = log.pending(), "final write of the failure log failed; entries lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> FailureEntry {
        FailureEntry {
            time: "2026-01-01T00:00:00.000Z".into(),
            kind: "failure",
            agent: "a".into(),
            job: "j".into(),
            iteration: n,
            fid: Some("[0x1:0x2:0x0]".into()),
            path: "p".into(),
            operation: "archive",
            error: "boom".into(),
            errno: 5,
            reason: "io",
            http_status: None,
            azure_code: None,
        }
    }

    #[test]
    fn lines_are_json_and_bounded() {
        let log = JsonLinesLog::new(2);
        for n in 0..3 {
            log.record(entry(n));
        }
        let (body, n, dropped) = log.take_body().unwrap();
        assert_eq!((n, dropped), (2, 1));
        let lines: Vec<serde_json::Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["kind"], "dropped");
        assert_eq!(lines[0]["count"], 1);
        assert_eq!(lines[1]["iteration"], 1, "oldest entry was dropped");
        assert_eq!(lines[2]["operation"], "archive");
        assert_eq!(lines[2]["fid"], "[0x1:0x2:0x0]");
        assert!(log.take_body().is_none());
    }

    #[test]
    fn our_lines_read_as_blob_log_entries() {
        let log = JsonLinesLog::new(10);
        log.record(entry(4));
        let (body, _, _) = log.take_body().unwrap();
        let line = body.lines().next().unwrap();
        let parsed: blob::LogEntry = serde_json::from_str(line).unwrap();
        let blob::LogEntry::Failure(f) = parsed else {
            panic!("not a failure entry: {line}")
        };
        assert_eq!(
            (f.job.as_str(), f.iteration, f.path.as_str()),
            ("j", 4, "p")
        );
        assert_eq!(
            (f.operation.as_str(), f.error.as_str()),
            ("archive", "boom")
        );
        assert_eq!(f.fid.as_deref(), Some("[0x1:0x2:0x0]"));
    }

    #[test]
    fn a_failed_write_keeps_the_lines() {
        let log = JsonLinesLog::new(2);
        for n in 0..3 {
            log.record(entry(n));
        }
        let (body, _, dropped) = log.take_body().unwrap();
        log.restore(&body, dropped);
        assert_eq!(log.pending(), 2);
        let (body2, _, dropped2) = log.take_body().unwrap();
        // The leading `dropped` line carries the time it was rendered, so compare
        // the count and the failure lines, not that timestamp.
        let failures = |b: &str| b.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(dropped, dropped2);
        assert_eq!(failures(&body), failures(&body2));
        assert_eq!(failures(&body).len(), 2);
    }
}
