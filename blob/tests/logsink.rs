//! The logging container: JSON-lines blobs named <prefix>/<YYYY-MM-DD>/<source>-<nanos>-<seq>.jsonl.
mod common;

use std::time::{Duration, SystemTime};

use blob::{CancellationToken, FailureEntry, LogEntry, LogSink, SummaryEntry};
use futures::TryStreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_flushed_as_json_lines_blobs() {
    let (az, data) = common::setup("data", "");
    az.create_container("lustre-logs");
    let logs = data.with_container("lustre-logs").unwrap();
    let sink = LogSink::new(logs.clone(), "export", "lustre-blob", 3);
    assert!(sink.flush().await.unwrap().is_none(), "nothing to flush");

    let err = blob::Error::Conflict(blob::Failure {
        op: "put block list",
        name: "a%b".into(),
        status: Some(412),
        code: Some("ConditionNotMet".into()),
        message: String::new(),
    });
    let f = FailureEntry::from_error(
        "auto-export",
        4,
        Some("[0x200000401:0x1:0x0]".into()),
        "a%b",
        "archive",
        &err,
    );
    assert_eq!(f.http_status, Some(412));
    assert_eq!(f.azure_code.as_deref(), Some("ConditionNotMet"));
    sink.record(LogEntry::Failure(f.clone()));
    let s = SummaryEntry {
        time: blob::time::now(),
        job: "auto-export".into(),
        iteration: 4,
        files_discovered: 10,
        mib_discovered: 20,
        files_exported: 9,
        mib_exported: 18,
        files_failed: 1,
    };
    sink.record(LogEntry::Summary(s.clone()));
    assert_eq!(sink.pending(), 2);
    let name = sink.flush().await.unwrap().unwrap();
    assert_eq!(sink.pending(), 0);

    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let prefix = format!("export/{day}/lustre-blob-");
    assert!(
        name.as_str().starts_with(&prefix) && name.as_str().ends_with("-0.jsonl"),
        "{name}"
    );
    let body = logs.get_bytes(&name).await.unwrap();
    let lines: Vec<LogEntry> = std::str::from_utf8(&body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![LogEntry::Failure(f.clone()), LogEntry::Summary(s)]
    );

    // A full queue wakes the flusher (capacity 3), long before its interval.
    let stop = CancellationToken::new();
    let flusher = sink.spawn_flusher(Duration::from_secs(3600), stop.clone());
    for _ in 0..3 {
        sink.record(LogEntry::Failure(f.clone()));
    }
    let listed = wait_for_blobs(&logs, "export", 2).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(sink.pending(), 0);
    // What is recorded after is written when the flusher stops.
    sink.record(LogEntry::Failure(f.clone()));
    stop.cancel();
    flusher.await.unwrap();
    assert_eq!(sink.pending(), 0);
    let listed: Vec<_> = logs.list("export").unwrap().try_collect().await.unwrap();
    assert_eq!(listed.len(), 3);
    // The data container holds none of it.
    let data_blobs: Vec<_> = data.list("").unwrap().try_collect().await.unwrap();
    assert!(data_blobs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_flush_keeps_entries_bounded_and_reports_drops() {
    let az = testkit::Azurite::start();
    // The logging container does not exist yet: flushes fail and entries stay buffered.
    let logs = blob::BlobStore::open(&common::spec(&az, "late-logs", "")).unwrap();
    let sink = LogSink::new(logs.clone(), "", "copytool", 2);
    let entry = LogEntry::Dropped {
        time: SystemTime::UNIX_EPOCH,
        count: 0,
    };
    for _ in 0..3 {
        sink.record(entry.clone());
    }
    assert_eq!(sink.pending(), 2, "the queue stays bounded");
    assert!(sink.flush().await.is_err());
    assert_eq!(sink.pending(), 2, "a failed write keeps its entries");
    az.create_container("late-logs");
    let name = sink.flush().await.unwrap().unwrap();
    let body = String::from_utf8(logs.get_bytes(&name).await.unwrap().to_vec()).unwrap();
    let first: LogEntry = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert!(
        matches!(first, LogEntry::Dropped { count: 1, .. }),
        "{body}"
    );
    assert_eq!(body.lines().count(), 3);
}

/// Polls the listing until `n` blobs are there (the flusher writes in the background).
async fn wait_for_blobs(store: &blob::BlobStore, prefix: &str, n: usize) -> Vec<blob::BlobInfo> {
    for _ in 0..600 {
        let listed: Vec<_> = store.list(prefix).unwrap().try_collect().await.unwrap();
        if listed.len() >= n {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the flusher did not write {n} blobs");
}
