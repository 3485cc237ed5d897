//! Engine behaviour against the fakes: the protocol rules of lustre-abi §4 and issue 5.

use blob::FailureReason;
use lustre_blob_config::{ConflictMode, DeleteMode};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::{Engine, EngineConfig, StopReason};
use crate::failure::HP_FLAG_RETRY;
use crate::fakes::{Event, FakeCoordinator, FakeCt, FakeLog, FakeStore};
use crate::journal::Journal;
use crate::metrics::{Metrics, Outcome};
use blob::ExportRecord;
use blob::Metadata;
use lustre::{ActionItem, ActionList, CopytoolAction, Extent, Fid};

struct H {
    _dir: tempfile::TempDir,
    ct: Arc<FakeCoordinator>,
    store: Arc<FakeStore>,
    log: Arc<FakeLog>,
    engine: Arc<Engine<FakeCt, FakeStore>>,
    rt: tokio::runtime::Runtime,
    recv: Option<JoinHandle<lustre::Result<StopReason>>>,
}

fn cfg() -> EngineConfig {
    EngineConfig {
        max_actions: 4,
        block_size: 4,
        blocks_in_flight: 2,
        update_interval: Duration::from_millis(20),
        ..EngineConfig::default()
    }
}

impl H {
    fn new(config: EngineConfig) -> H {
        let dir = tempfile::tempdir().unwrap();
        let ct = FakeCoordinator::new(dir.path().to_path_buf());
        let store = FakeStore::new();
        let log = Arc::new(FakeLog::default());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let engine = Engine::new(
            Arc::new(FakeCt(ct.clone())),
            store.clone(),
            log.clone(),
            Arc::new(Metrics::default()),
            "test-agent".into(),
            config,
            Arc::new(Journal::memory()),
        );
        let (e, handle) = (engine.clone(), rt.handle().clone());
        let recv = std::thread::spawn(move || e.run_receiver(&handle));
        H {
            _dir: dir,
            ct,
            store,
            log,
            engine,
            rt,
            recv: Some(recv),
        }
    }

    fn stop(&mut self) -> StopReason {
        self.engine.request_stop();
        let r = self.recv.take().unwrap().join().unwrap().unwrap();
        let engine = self.engine.clone();
        self.rt
            .block_on(async move { engine.drain(Duration::from_secs(5)).await });
        r
    }

    fn data(&self, path: &str) -> PathBuf {
        self.ct.dir.join(path)
    }
}

impl Drop for H {
    fn drop(&mut self) {
        if self.recv.is_some() {
            self.stop();
        }
    }
}

fn fid(n: u32) -> Fid {
    Fid::new(0x200000401, n, 0)
}

fn item(action: CopytoolAction, n: u32, cookie: u64) -> ActionItem {
    ActionItem {
        action,
        fid: fid(n),
        dfid: fid(n),
        extent: Extent {
            offset: 0,
            length: u64::MAX,
        },
        cookie,
        gid: 0,
        data: b"lb:j=job-7:i=3".to_vec(),
    }
}

fn list(items: Vec<ActionItem>) -> ActionList {
    ActionList {
        version: lustre::lustre_sys::HAL_VERSION,
        archive_id: 1,
        flags: 0,
        fsname: "lustre".into(),
        compound_id: 0,
        items,
    }
}

fn record_of(path: &std::path::Path) -> Option<ExportRecord> {
    ExportRecord::read(&std::fs::File::open(path).unwrap()).unwrap()
}

#[test]
fn archive_uploads_exact_bytes_records_the_etag_and_ends_once() {
    let h = H::new(cfg());
    for (n, size) in [(1u32, 0usize), (2, 1), (3, 3), (4, 5), (5, 4 * 5 + 2)] {
        let content: Vec<u8> = (0..size).map(|i| (i * 7 + n as usize) as u8).collect();
        h.ct.add_file(fid(n), &[&format!("d/f{n}")], &content);
        h.ct.push(list(vec![item(
            CopytoolAction::Archive,
            n,
            100 + u64::from(n),
        )]));
        let ends = h.ct.wait_ends(n as usize);
        assert!(ends.contains(&(100 + u64::from(n), 0, 0)), "{ends:?}");
        let blob = h.store.get(&format!("d/f{n}")).unwrap();
        assert_eq!(blob.data, content, "size {size}");
        let meta = blob.meta.unwrap();
        assert_eq!(meta.fid, Some(fid(n).to_string()));
        assert_eq!(meta.data_version, Some(1));
        let rec = record_of(&h.data(&format!("d/f{n}"))).unwrap();
        assert_eq!(
            (rec.blob.as_str(), rec.etag.as_str(), rec.size),
            (format!("d/f{n}").as_str(), blob.etag.as_str(), size as u64)
        );
    }
    assert_eq!(h.ct.ends().len(), 5, "exactly one end per item");
    // The blob's name is the file's path at copy time: one fid2path per file (an MDS call).
    assert_eq!(h.ct.lock().fid2path_calls, 5);
    h.ct.wait_for(|_| {
        h.engine
            .metrics()
            .actions(CopytoolAction::Archive, Outcome::Ok)
            == 5
    });
    assert_eq!(h.engine.metrics().bytes_archived(), 1 + 3 + 5 + 22);
    assert!(h.log.entries().is_empty());
}

#[test]
fn hard_links_get_one_blob_each_with_one_upload() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["a/one", "b/two", "three"], b"linked data");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 9)]));
    assert_eq!(h.ct.wait_ends(1), vec![(9, 0, 0)]);
    for name in ["a/one", "b/two", "three"] {
        assert_eq!(h.store.get(name).unwrap().data, b"linked data", "{name}");
    }
    // Only the first link was uploaded (has metadata); the others are server-side copies.
    assert!(h.store.get("a/one").unwrap().meta.is_some());
    let rec = record_of(&h.data("a/one")).unwrap();
    assert_eq!(rec.links, vec!["b/two".to_string(), "three".to_string()]);
    // Every link from one enumeration (llapi_fid2path once per link: `Mount::fid2path`).
    assert_eq!(h.ct.lock().fid2path_calls, 1);
}

#[test]
fn conflict_fail_protects_a_blob_changed_behind_our_back() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["f"], b"v1");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_ends(1);
    // Someone rewrites the blob; then the file changes and is archived again.
    h.store.put("f", b"foreign");
    std::fs::write(h.data("f"), b"v2").unwrap();
    h.ct.lock().data_versions.insert(fid(1), 2);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 2)]));
    let ends = h.ct.wait_ends(2);
    assert_eq!(ends[1], (2, 0, libc::EEXIST));
    assert_eq!(h.store.get("f").unwrap().data, b"foreign");
    let entries = h.log.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].reason, Some(FailureReason::Conflict));
    assert_eq!(entries[0].http_status, Some(412));
    assert_eq!(entries[0].job, "job-7");
    assert_eq!(entries[0].iteration, 3);
    assert_eq!(entries[0].path, "f");
    assert_eq!(entries[0].fid.as_deref(), Some("[0x200000401:0x1:0x0]"));
    assert_eq!(entries[0].operation, "archive");
}

#[test]
fn a_later_archive_of_our_own_blob_succeeds_under_conflict_fail() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["f"], b"v1");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_ends(1);
    std::fs::write(h.data("f"), b"v2 longer").unwrap();
    h.ct.lock().data_versions.insert(fid(1), 2);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
    assert_eq!(h.store.get("f").unwrap().data, b"v2 longer");
    assert_eq!(record_of(&h.data("f")).unwrap().data_version, 2);
}

#[test]
fn existing_blob_without_record_is_a_conflict_unless_overwrite() {
    let h = H::new(cfg());
    h.store.put("f", b"not ours");
    h.ct.add_file(fid(1), &["f"], b"ours");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, libc::EEXIST)]);
    assert_eq!(h.store.get("f").unwrap().data, b"not ours");
    h.engine.reload(EngineConfig {
        conflict: ConflictMode::Overwrite,
        ..cfg()
    });
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
    assert_eq!(h.store.get("f").unwrap().data, b"ours");
}

/// Blob metadata as the copytool writes it for the file `fid(n)`.
fn our_meta(n: u32) -> Option<Metadata> {
    Some(Metadata {
        permissions: 0o644,
        fid: Some(fid(n).to_string()),
        mtime_ns: Some(0),
        data_version: Some(1),
        ..Metadata::default()
    })
}

/// A file that fits one Put Blob costs one request: the create-only (or If-Match) condition is
/// tried without a HEAD first. A file larger than one block is looked at before its upload.
#[test]
fn a_small_file_is_archived_without_a_head_and_a_large_one_with_one() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["small"], b"1234");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, 0)]);
    assert_eq!(h.store.heads.load(Ordering::SeqCst), 0);
    // Changed and archived again: If-Match on the recorded ETag, still no HEAD.
    std::fs::write(h.data("small"), b"5678").unwrap();
    h.ct.lock().data_versions.insert(fid(1), 2);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
    assert_eq!(h.store.heads.load(Ordering::SeqCst), 0);
    assert_eq!(h.store.uploads.load(Ordering::SeqCst), 2);
    assert_eq!(h.store.get("small").unwrap().data, b"5678");
    // cfg() has 4-byte blocks: five bytes take two, and the blob is looked at first.
    h.ct.add_file(fid(2), &["large"], b"12345");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 2, 3)]));
    assert_eq!(h.ct.wait_ends(3)[2], (3, 0, 0));
    assert_eq!(h.store.heads.load(Ordering::SeqCst), 1);
}

/// A copytool killed after the commit but before the export record: the blob carries this file's
/// lustre_fid, the file has no record. The next archive replaces it (If-Match) instead of failing
/// with a conflict forever.
#[test]
fn our_blob_without_a_record_is_replaced_under_conflict_fail() {
    let h = H::new(cfg());
    h.store
        .put_with_meta("f", b"interrupted export", our_meta(1));
    h.ct.add_file(fid(1), &["f"], b"current data");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, 0)]);
    let blob = h.store.get("f").unwrap();
    assert_eq!(blob.data, b"current data");
    assert_eq!(record_of(&h.data("f")).unwrap().etag, blob.etag);
    assert!(h.log.entries().is_empty());
}

/// Killed between the commit of a re-export and the record update: the record names the blob with
/// the previous ETag, the blob is ours with a newer one. Replaced, not a conflict.
#[test]
fn our_blob_newer_than_the_record_is_replaced_under_conflict_fail() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["f"], b"v1");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, 0)]);
    let stale = record_of(&h.data("f")).unwrap().etag;
    h.store
        .put_with_meta("f", b"v2 committed, record lost", our_meta(1));
    assert_ne!(h.store.get("f").unwrap().etag, stale);
    std::fs::write(h.data("f"), b"v3").unwrap();
    h.ct.lock().data_versions.insert(fid(1), 3);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
    let blob = h.store.get("f").unwrap();
    assert_eq!(blob.data, b"v3");
    assert_eq!(record_of(&h.data("f")).unwrap().etag, blob.etag);
}

/// A blob exported from another file (another FID), with or without a record on ours, is never ours.
#[test]
fn a_blob_of_another_fid_stays_a_conflict() {
    let h = H::new(cfg());
    h.store.put_with_meta("f", b"someone else's", our_meta(2));
    h.ct.add_file(fid(1), &["f"], b"ours");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, libc::EEXIST)]);
    assert_eq!(h.store.get("f").unwrap().data, b"someone else's");
    assert!(record_of(&h.data("f")).is_none());
    assert_eq!(h.log.entries()[0].reason, Some(FailureReason::Conflict));
}

/// The replacement of our own blob is conditional on the ETag read before the upload: a foreign
/// write landing meanwhile is a conflict and survives.
#[test]
fn a_foreign_write_racing_the_replacement_is_a_conflict() {
    let h = H::new(cfg());
    h.store
        .put_with_meta("f", b"interrupted export", our_meta(1));
    h.ct.add_file(fid(1), &["f"], b"current data");
    let gate = h.store.close_gate();
    let store = Arc::downgrade(&h.store);
    *h.store.on_gate.lock().unwrap() = Some(Box::new(move || {
        if let Some(s) = store.upgrade() {
            s.put("f", b"foreign");
        }
    }));
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    gate.add_permits(1);
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, libc::EEXIST)]);
    assert_eq!(
        h.store.uploads.load(Ordering::SeqCst),
        1,
        "a multi-block file: HEAD, then one upload"
    );
    assert_eq!(h.store.get("f").unwrap().data, b"foreign");
    assert!(record_of(&h.data("f")).is_none());
    assert_eq!(h.log.entries()[0].http_status, Some(412));
}

/// The same race on the optimistic path of a one-block file: the create-only upload is refused
/// (the blob exists), the HEAD shows it is ours, and the foreign write lands while the If-Match
/// replacement is in flight. Still a conflict, and the foreign blob survives.
#[test]
fn a_foreign_write_racing_the_optimistic_replacement_is_a_conflict() {
    let h = H::new(cfg());
    h.store.put_with_meta("f", b"old", our_meta(1));
    h.ct.add_file(fid(1), &["f"], b"new");
    let gate = h.store.close_gate();
    let store = Arc::downgrade(&h.store);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    *h.store.on_gate.lock().unwrap() = Some(Box::new(move || {
        if calls.fetch_add(1, Ordering::SeqCst) == 1 {
            if let Some(s) = store.upgrade() {
                s.put("f", b"foreign");
            }
        }
    }));
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    gate.add_permits(2);
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, libc::EEXIST)]);
    assert_eq!(h.store.uploads.load(Ordering::SeqCst), 2);
    assert_eq!(h.store.heads.load(Ordering::SeqCst), 1);
    assert_eq!(h.store.get("f").unwrap().data, b"foreign");
    assert!(record_of(&h.data("f")).is_none());
    assert_eq!(h.log.entries()[0].http_status, Some(412));
}

#[test]
fn unknown_action_ends_einval_through_the_error_path() {
    let h = H::new(cfg());
    h.ct.push(list(vec![item(CopytoolAction::Unknown(99), 1, 5)]));
    h.ct.wait_ends(1);
    assert_eq!(
        h.ct.events(),
        vec![
            Event::BeginError(5),
            Event::End {
                cookie: 5,
                hp_flags: 0,
                errval: libc::EINVAL
            }
        ]
    );
    assert_eq!(
        h.log.entries()[0].reason,
        Some(FailureReason::UnknownAction)
    );
}

#[test]
fn begin_failure_is_reported_through_the_error_path() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["f"], b"x");
    h.ct.lock().begin_fail.insert(1, libc::ENOENT);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_ends(1);
    assert_eq!(
        h.ct.events(),
        vec![
            Event::BeginError(1),
            Event::End {
                cookie: 1,
                hp_flags: 0,
                errval: libc::ENOENT
            }
        ]
    );
}

#[test]
fn cancel_aborts_the_running_upload_and_commits_nothing() {
    let h = H::new(cfg());
    let gate = h.store.close_gate();
    h.ct.add_file(fid(1), &["big"], &[7u8; 64]);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 77)]));
    h.ct.wait_for(|_| h.store.uploads_waiting.load(Ordering::SeqCst) == 1);
    h.ct.push(list(vec![item(CopytoolAction::Cancel, 1, 77)]));
    assert_eq!(h.ct.wait_ends(1), vec![(77, 0, libc::ECANCELED)]);
    assert!(h.store.get("big").is_none(), "nothing committed");
    assert!(record_of(&h.data("big")).is_none());
    h.ct.wait_for(|_| {
        h.engine
            .metrics()
            .actions(CopytoolAction::Archive, Outcome::Cancelled)
            == 1
    });
    drop(gate);
}

#[test]
fn ecanceled_from_progress_stops_the_copy() {
    let h = H::new(cfg());
    let _gate = h.store.close_gate();
    h.ct.add_file(fid(1), &["f"], &[1u8; 32]);
    h.ct.lock().progress_fail.insert(3, libc::ECANCELED);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 3)]));
    assert_eq!(h.ct.wait_ends(1), vec![(3, 0, libc::ECANCELED)]);
    assert!(h
        .ct
        .events()
        .iter()
        .any(|e| matches!(e, Event::Progress(3, _))));
    assert!(h.store.get("f").is_none());
}

#[test]
fn progress_reports_extents_of_copied_bytes() {
    let h = H::new(cfg());
    let gate = h.store.close_gate();
    h.ct.add_file(fid(1), &["f"], &[1u8; 10]);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 3)]));
    // The first block (4 bytes) is read before the gate: a progress report must carry it.
    h.ct.wait_for(|s| {
        s.events
            .iter()
            .any(|e| matches!(e, Event::Progress(3, x) if x.length == 4))
    });
    gate.add_permits(1);
    assert_eq!(h.ct.wait_ends(1), vec![(3, 0, 0)]);
    let Some(Event::Progress(_, first)) =
        h.ct.events()
            .into_iter()
            .find(|e| matches!(e, Event::Progress(3, x) if x.length > 0))
    else {
        panic!("no progress")
    };
    assert_eq!(
        first,
        Extent {
            offset: 0,
            length: 4
        }
    );
}

#[test]
fn the_pipe_is_read_while_every_slot_is_busy_and_queued_items_are_begun_and_kept_alive() {
    let h = H::new(EngineConfig {
        max_actions: 2,
        ..cfg()
    });
    let gate = h.store.close_gate();
    for n in 1..=3 {
        h.ct.add_file(fid(n), &[&format!("f{n}")], b"data");
        h.ct.push(list(vec![item(CopytoolAction::Archive, n, u64::from(n))]));
    }
    h.ct.wait_for(|_| h.store.uploads_waiting.load(Ordering::SeqCst) == 2);
    // Every list is read although both slots are busy: the coordinator keeps nothing unread.
    h.ct.wait_for(|s| s.queue.is_empty());
    // The third item is begun at once and kept alive with zero-length progress while it waits.
    h.ct.wait_for(|s| {
        s.events.contains(&Event::Begin(3))
            && s.events
                .iter()
                .filter(|e| matches!(e, Event::Progress(3, x) if x.length == 0))
                .count()
                >= 2
    });
    assert_eq!(h.engine.metrics().in_flight(), 2);
    assert!(
        !h.ct
            .events()
            .iter()
            .any(|e| matches!(e, Event::End { cookie: 3, .. })),
        "not ended yet"
    );
    gate.add_permits(3);
    let ends = h.ct.wait_ends(3);
    assert!(ends.iter().all(|e| e.2 == 0), "{ends:?}");
}

/// Zero-length progress per queued item, counted by cookie.
fn keepalives(h: &H, cookie: u64) -> usize {
    h.ct.events()
        .iter()
        .filter(|e| matches!(e, Event::Progress(c, x) if *c == cookie && x.length == 0))
        .count()
}

#[test]
fn a_queued_item_is_kept_alive_only_once_the_coordinator_has_not_heard_of_it_for_an_interval() {
    // An hour between the dispatcher's own ticks: the test drives the keep-alive itself.
    let interval = Duration::from_secs(3600);
    let h = H::new(EngineConfig {
        max_actions: 1,
        update_interval: interval,
        ..cfg()
    });
    let gate = h.store.close_gate();
    for n in 1..=3 {
        h.ct.add_file(fid(n), &[&format!("f{n}")], b"data");
    }
    h.ct.push(list(vec![
        item(CopytoolAction::Archive, 1, 1),
        item(CopytoolAction::Archive, 2, 2),
        item(CopytoolAction::Archive, 3, 3),
    ]));
    h.ct.wait_for(|s| s.events.contains(&Event::Begin(2)) && s.events.contains(&Event::Begin(3)));
    h.ct.wait_for(|_| h.store.uploads_waiting.load(Ordering::SeqCst) == 1);
    let begun = tokio::time::Instant::now();
    // Just begun: the begin refreshed their timeout, a progress now would be an MDS call for
    // nothing (a deep queue made one per small file).
    h.engine.keep_queued_alive(begun);
    assert_eq!((keepalives(&h, 2), keepalives(&h, 3)), (0, 0));
    // Unheard of for an interval: each gets one. (The beginner queues an item just after its
    // begin is recorded: asked again at the same moment until both are queued, which sends an
    // item already kept alive at that moment nothing more.)
    let due = begun + interval + Duration::from_secs(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (keepalives(&h, 2), keepalives(&h, 3)) != (1, 1) {
        assert!(std::time::Instant::now() < deadline, "no keep-alive");
        h.engine.keep_queued_alive(due);
        assert!(keepalives(&h, 2) <= 1 && keepalives(&h, 3) <= 1);
        std::thread::sleep(Duration::from_millis(10));
    }
    // Heard of a moment ago: none again until another interval has passed.
    h.engine.keep_queued_alive(due + Duration::from_secs(1));
    assert_eq!((keepalives(&h, 2), keepalives(&h, 3)), (1, 1));
    h.engine.keep_queued_alive(due + interval);
    assert_eq!((keepalives(&h, 2), keepalives(&h, 3)), (2, 2));
    // The running item's progress is its reporter's business, not the keep-alive's.
    assert_eq!(keepalives(&h, 1), 0);
    gate.add_permits(3);
    let ends = h.ct.wait_ends(3);
    assert!(ends.iter().all(|e| e.2 == 0), "{ends:?}");
}

#[test]
fn a_cancel_of_a_queued_item_ends_it_without_running_it() {
    let h = H::new(EngineConfig {
        max_actions: 1,
        ..cfg()
    });
    let gate = h.store.close_gate();
    for n in 1..=2 {
        h.ct.add_file(fid(n), &[&format!("f{n}")], b"data");
        h.ct.push(list(vec![item(CopytoolAction::Archive, n, u64::from(n))]));
    }
    h.ct.wait_for(|s| s.queue.is_empty() && s.events.contains(&Event::Begin(2)));
    h.ct.push(list(vec![item(CopytoolAction::Cancel, 2, 2)]));
    assert_eq!(h.ct.wait_ends(1), vec![(2, 0, libc::ECANCELED)]);
    gate.add_permits(2);
    let ends = h.ct.wait_ends(2);
    assert_eq!(ends[1], (1, 0, 0));
    assert!(h.store.get("f2").is_none(), "the cancelled item never ran");
}

#[test]
fn transient_errors_end_etimedout_with_retry_and_are_logged() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["f"], b"x");
    h.store
        .fail_next
        .lock()
        .unwrap()
        .push_back(blob::Error::Transient(crate::fakes::answered(
            "put blob",
            "f",
            503,
            "ServerBusy",
        )));
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, HP_FLAG_RETRY, libc::ETIMEDOUT)]);
    let e = &h.log.entries()[0];
    assert_eq!(
        (e.http_status, e.azure_code.as_deref(), e.reason),
        (
            Some(503),
            Some("ServerBusy"),
            Some(FailureReason::Transient)
        )
    );
    // The daemon keeps serving: the next request succeeds.
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
}

#[test]
fn dry_run_never_reports_success() {
    let h = H::new(EngineConfig {
        dry_run: true,
        remove: DeleteMode::Delete,
        ..cfg()
    });
    h.ct.add_file(fid(1), &["f"], b"x");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, libc::EOPNOTSUPP)]);
    assert!(h.store.get("f").is_none());
    assert_eq!(h.log.entries()[0].reason, Some(FailureReason::DryRun));
}

#[test]
fn invalid_names_fail_einval() {
    let h = H::new(cfg());
    let long = format!("{}f", "dir45678/".repeat(120)); // 1,081 bytes: over the blob name limit
    h.ct.add_file(fid(1), &[&long], b"x");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, libc::EINVAL)]);
    assert_eq!(h.log.entries()[0].reason, Some(FailureReason::InvalidName));
}

#[test]
fn non_regular_files_are_refused_with_a_reason() {
    let h = H::new(cfg());
    std::fs::create_dir_all(h.data("dir")).unwrap();
    h.ct.lock()
        .files
        .insert(fid(1), (h.data("dir"), vec![PathBuf::from("dir")]));
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, libc::EINVAL)]);
    let e = &h.log.entries()[0];
    assert_eq!(e.reason, Some(FailureReason::NotRegular));
    assert!(e.error.contains("directory"), "{}", e.error);
}

#[test]
fn modification_during_archive_ends_ebusy_and_withdraws_the_blob() {
    let h = H::new(cfg());
    let gate = h.store.close_gate();
    h.ct.add_file(fid(1), &["f"], b"original");
    let ct = h.ct.clone();
    *h.store.on_gate.lock().unwrap() = Some(Box::new(move || {
        ct.lock().data_versions.insert(fid(1), 2);
    }));
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    gate.add_permits(1);
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, libc::EBUSY)]);
    assert!(h.store.get("f").is_none());
    assert!(record_of(&h.data("f")).is_none());
}

#[test]
fn restore_writes_the_blob_into_the_volatile_file() {
    let h = H::new(cfg());
    let content: Vec<u8> = (0..23u8).collect();
    h.ct.add_file(fid(1), &["r/f"], &content);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_ends(1);
    h.ct.push(list(vec![item(CopytoolAction::Restore, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
    assert_eq!(std::fs::read(h.ct.volatile_path(2)).unwrap(), content);
    h.ct.wait_for(|_| h.engine.metrics().bytes_restored() == 23);
}

fn striped() -> lustre::Striping {
    lustre::Striping::new(4, 4 << 20, Some("flash")).unwrap()
}

#[test]
fn archive_keeps_the_layout_in_the_record_and_the_blob_and_restore_recreates_it() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["s/wide"], b"striped data");
    h.ct.lock().layouts.insert(fid(1), striped());
    h.ct.add_file(fid(2), &["s/plain"], b"plain");
    h.ct.push(list(vec![
        item(CopytoolAction::Archive, 1, 1),
        item(CopytoolAction::Archive, 2, 2),
    ]));
    h.ct.wait_ends(2);
    assert_eq!(
        record_of(&h.data("s/wide")).unwrap().layout,
        Some(striped())
    );
    assert_eq!(
        h.store.get("s/wide").unwrap().meta.unwrap().layout,
        Some(striped())
    );
    assert_eq!(record_of(&h.data("s/plain")).unwrap().layout, None);

    h.ct.push(list(vec![
        item(CopytoolAction::Restore, 1, 3),
        item(CopytoolAction::Restore, 2, 4),
    ]));
    let ends = h.ct.wait_ends(4);
    assert!(
        ends.contains(&(3, 0, 0)) && ends.contains(&(4, 0, 0)),
        "{ends:?}"
    );
    assert_eq!(
        std::fs::read(h.ct.volatile_path(3)).unwrap(),
        b"striped data"
    );
    let set = h.ct.lock().volatile_layouts.clone();
    // Set before the data (the fake refuses a layout on a file that has data), once each;
    // a file without a recorded layout asks for the default.
    assert_eq!(set.get(&3), Some(&Some(striped())));
    assert_eq!(set.get(&4), Some(&None));
}

#[test]
fn a_pool_the_file_system_no_longer_has_is_dropped_and_the_striping_kept() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["s/f"], b"data");
    h.ct.lock().layouts.insert(fid(1), striped());
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_ends(1);
    h.ct.lock().pools = Some(vec!["other".into()]);
    h.ct.push(list(vec![item(CopytoolAction::Restore, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
    assert_eq!(
        h.ct.lock().volatile_layouts.get(&2),
        Some(&Some(lustre::Striping::new(4, 4 << 20, None).unwrap()))
    );
    assert_eq!(std::fs::read(h.ct.volatile_path(2)).unwrap(), b"data");
}

#[test]
fn a_stub_without_a_record_is_restored_with_the_blobs_layout() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["i/stub"], b"");
    let mut meta = our_meta(1).unwrap();
    meta.layout = Some(striped());
    h.store.put_with_meta("i/stub", b"imported", Some(meta));
    h.ct.push(list(vec![item(CopytoolAction::Restore, 1, 2)]));
    assert_eq!(h.ct.wait_ends(1), vec![(2, 0, 0)]);
    assert_eq!(h.ct.lock().volatile_layouts.get(&2), Some(&Some(striped())));
}

#[test]
fn restore_without_record_uses_the_current_path() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["p/q"], b"");
    h.store.put("p/q", b"from the blob");
    h.ct.push(list(vec![item(CopytoolAction::Restore, 1, 2)]));
    assert_eq!(h.ct.wait_ends(1), vec![(2, 0, 0)]);
    assert_eq!(
        std::fs::read(h.ct.volatile_path(2)).unwrap(),
        b"from the blob"
    );
}

#[test]
fn restore_refuses_a_blob_changed_since_export() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["f"], b"mine");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_ends(1);
    h.store.put("f", b"theirs");
    h.ct.push(list(vec![item(CopytoolAction::Restore, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, libc::EEXIST));
    assert_eq!(std::fs::read(h.ct.volatile_path(2)).unwrap(), b"");
}

/// The daemon's `on_rename = "move"` moves the blob (server-side copy, new ETag, same metadata)
/// while the export record still names the old one: the restore finds it under the file's
/// current name when its metadata says it is this file at the recorded data version, and not
/// otherwise.
#[test]
fn restore_follows_a_blob_moved_with_its_file_and_only_that_blob() {
    let h = H::new(cfg());
    let content = b"moved with the file".to_vec();
    h.ct.add_file(fid(1), &["old/f"], &content);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, 0)]);
    let rename = |to: &str, meta_version: u64| {
        let blob = h.store.blobs.lock().unwrap().remove("old/f");
        let blob = blob.expect("the exported blob");
        let mut meta = blob.meta.clone().expect("our metadata");
        meta.data_version = Some(meta_version);
        h.store.put_with_meta(to, &blob.data, Some(meta));
        h.ct.lock().files.get_mut(&fid(1)).unwrap().1 = vec![PathBuf::from(to)];
    };
    rename("new/g", 1);
    h.ct.push(list(vec![item(CopytoolAction::Restore, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
    assert_eq!(std::fs::read(h.ct.volatile_path(2)).unwrap(), content);
    // A blob under the new name from another data version is not this export: not restored.
    let moved = h.store.blobs.lock().unwrap().remove("new/g").unwrap();
    h.store.put_with_meta("old/f", &moved.data, moved.meta);
    rename("other/h", 7);
    h.ct.push(list(vec![item(CopytoolAction::Restore, 1, 3)]));
    assert_eq!(h.ct.wait_ends(3)[2], (3, 0, libc::ENOENT));
}

#[test]
fn restore_of_a_missing_blob_ends_enoent() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["gone"], b"");
    h.ct.push(list(vec![item(CopytoolAction::Restore, 1, 2)]));
    assert_eq!(h.ct.wait_ends(1), vec![(2, 0, libc::ENOENT)]);
}

#[test]
fn remove_deletes_every_blob_of_the_record() {
    let h = H::new(EngineConfig {
        remove: DeleteMode::Delete,
        ..cfg()
    });
    h.ct.add_file(fid(1), &["a", "b"], b"x");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_ends(1);
    assert!(h.store.get("b").is_some());
    h.ct.push(list(vec![item(CopytoolAction::Remove, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
    assert!(h.store.get("a").is_none() && h.store.get("b").is_none());
    assert!(record_of(&h.data("a")).is_none());
}

#[test]
fn remove_keeps_blobs_when_policy_says_keep() {
    let h = H::new(EngineConfig {
        remove: DeleteMode::Keep,
        ..cfg()
    });
    h.ct.add_file(fid(1), &["a"], b"x");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_ends(1);
    h.ct.push(list(vec![item(CopytoolAction::Remove, 1, 2)]));
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
    assert!(h.store.get("a").is_some());
}

#[test]
fn lists_for_another_file_system_are_ignored() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["f"], b"x");
    h.ct.push(ActionList {
        fsname: "other".into(),
        ..list(vec![item(CopytoolAction::Archive, 1, 1)])
    });
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 2)]));
    assert_eq!(h.ct.wait_ends(1), vec![(2, 0, 0)]);
    assert_eq!(h.engine.metrics().receive_errors(), 1);
}

#[test]
fn eshutdown_from_receive_stops_the_loop() {
    let mut h = H::new(cfg());
    h.ct.push_err(libc::ESHUTDOWN);
    let recv = h.recv.take().unwrap();
    assert_eq!(recv.join().unwrap().unwrap(), StopReason::Unmounted);
}

#[test]
fn abort_on_error_stops_after_a_failed_action() {
    let mut h = H::new(EngineConfig {
        abort_on_error: true,
        ..cfg()
    });
    h.ct.push(list(vec![item(CopytoolAction::Unknown(1), 1, 1)]));
    let recv = h.recv.take().unwrap();
    assert!(matches!(
        recv.join().unwrap().unwrap(),
        StopReason::Aborted(_)
    ));
}

/// The receiver sleeps on the copytool fd: a list queued at the coordinator wakes it, and it
/// calls `recv` only then (the list, then the empty pipe), never on a timer. While the second
/// archive is held for many progress intervals, no receive happens.
#[test]
fn a_queued_action_list_wakes_the_receiver_which_receives_only_then() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["a"], b"first");
    h.ct.add_file(fid(2), &["b"], &[7u8; 32]);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, 0)]);
    let gate = h.store.close_gate();
    h.ct.push(list(vec![item(CopytoolAction::Archive, 2, 2)]));
    // 50 progress reports: 50 update intervals pass with the receiver idle.
    h.ct.wait_for(|s| {
        s.events
            .iter()
            .filter(|e| matches!(e, Event::Progress(2, _)))
            .count()
            >= 50
    });
    let calls = h.ct.lock().recv_calls;
    assert!(
        (2..=4).contains(&calls),
        "one receive per list and one that finds the pipe empty, no polling: {calls}"
    );
    gate.add_permits(1);
    assert_eq!(h.ct.wait_ends(2)[1], (2, 0, 0));
}

#[test]
fn stopping_aborts_stuck_actions_with_eshutdown() {
    let mut h = H::new(cfg());
    let _gate = h.store.close_gate();
    h.ct.add_file(fid(1), &["f"], b"stuck forever");
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_for(|_| h.store.uploads_waiting.load(Ordering::SeqCst) == 1);
    h.engine.request_stop();
    assert_eq!(
        h.recv.take().unwrap().join().unwrap().unwrap(),
        StopReason::Requested
    );
    let engine = h.engine.clone();
    let aborted =
        h.rt.block_on(async move { engine.drain(Duration::from_millis(100)).await });
    assert_eq!(aborted, 1);
    assert_eq!(h.ct.ends(), vec![(1, 0, libc::ESHUTDOWN)]);
    assert!(h.store.get("f").is_none());
}

#[test]
fn a_dropped_guard_ends_its_action_with_eio() {
    use crate::guard::ActionGuard;
    use crate::ports::Coordinator;
    let dir = tempfile::tempdir().unwrap();
    let ct = FakeCoordinator::new(dir.path().to_path_buf());
    let fake = FakeCt(ct.clone());
    let it = item(CopytoolAction::Remove, 1, 42);
    let guard = ActionGuard::new(fake.begin(&it).unwrap(), it.extent, "test".into());
    drop(guard);
    assert_eq!(ct.ends(), vec![(42, 0, libc::EIO)]);
    let guard = ActionGuard::new(fake.begin(&it).unwrap(), it.extent, "test".into());
    guard.end(it.extent, 0, 0).unwrap();
    assert_eq!(
        ct.ends(),
        vec![(42, 0, libc::EIO), (42, 0, 0)],
        "end consumes: no second end on drop"
    );
}

/// Bytes the agent has seen reported as moved for `cookie` so far (sum of progress extents).
fn progressed(s: &crate::fakes::CtState, cookie: u64) -> u64 {
    s.events
        .iter()
        .map(|e| match e {
            Event::Progress(c, ext) if *c == cookie => ext.length,
            _ => 0,
        })
        .sum()
}

#[test]
fn bandwidth_slows_a_transfer_mid_stream_and_a_reload_changes_the_running_limit() {
    // 4-byte blocks at 40 B/s: the 4000-byte file would take 100 s.
    let h = H::new(EngineConfig {
        bandwidth: Some(40),
        ..cfg()
    });
    assert_eq!(h.engine.rate_limit().rate(), Some(40));
    h.ct.add_file(fid(1), &["slow"], &[7u8; 4000]);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    // Blocks are flowing (progress reported), and the transfer is not done: it is paced block by
    // block, not held before it starts.
    h.ct.wait_for(|s| progressed(s, 1) > 0);
    assert!(h.ct.ends().is_empty());
    assert!(h.engine.rate_limit().granted() < 4000);
    // Lifting the limit by a reload applies to the transfer already running.
    h.engine.reload(EngineConfig {
        bandwidth: None,
        ..cfg()
    });
    assert_eq!(h.engine.rate_limit().rate(), None);
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, 0)]);
    assert_eq!(h.store.get("slow").unwrap().data, vec![7u8; 4000]);
    assert_eq!(h.engine.rate_limit().granted(), 4000);
    // A new limit set by a reload is the same limiter's.
    h.engine.reload(EngineConfig {
        bandwidth: Some(1 << 20),
        ..cfg()
    });
    assert_eq!(h.engine.rate_limit().rate(), Some(1 << 20));
}

#[test]
fn archives_and_restores_draw_from_the_one_agent_budget() {
    let h = H::new(EngineConfig {
        bandwidth: Some(1 << 30),
        ..cfg()
    });
    h.ct.add_file(fid(1), &["a"], &[1u8; 37]);
    h.ct.add_file(fid(2), &["b"], &[2u8; 50]);
    h.ct.push(list(vec![
        item(CopytoolAction::Archive, 1, 1),
        item(CopytoolAction::Archive, 2, 2),
    ]));
    assert_eq!(h.ct.wait_ends(2).len(), 2);
    assert_eq!(h.engine.rate_limit().granted(), 87);
    h.ct.push(list(vec![item(CopytoolAction::Restore, 2, 3)]));
    assert_eq!(h.ct.wait_ends(3)[2], (3, 0, 0));
    assert_eq!(h.engine.rate_limit().granted(), 87 + 50);
}

#[test]
fn stopping_aborts_a_transfer_waiting_for_bandwidth() {
    let mut h = H::new(EngineConfig {
        bandwidth: Some(1),
        ..cfg()
    });
    h.ct.add_file(fid(1), &["a"], &[1u8; 100]);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    h.ct.wait_for(|s| s.events.contains(&Event::Begin(1)));
    h.engine.request_stop();
    h.recv.take().unwrap().join().unwrap().unwrap();
    let engine = h.engine.clone();
    h.rt.block_on(async move { engine.drain(Duration::from_millis(50)).await });
    assert_eq!(h.ct.ends(), vec![(1, 0, libc::ESHUTDOWN)]);
    assert!(h.store.get("a").is_none());
    assert_eq!(h.engine.rate_limit().granted(), 0);
}

#[test]
fn reload_applies_new_settings_but_not_max_actions() {
    let h = H::new(cfg());
    h.engine.reload(EngineConfig {
        max_actions: 99,
        block_size: 8,
        dry_run: true,
        ..cfg()
    });
    let c = h.engine.config();
    assert_eq!((c.max_actions, c.block_size, c.dry_run), (4, 8, true));
}

#[test]
fn ebusy_at_end_withdraws_the_blob_and_the_record() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["f", "g"], b"maybe torn");
    h.ct.lock().end_fail.insert(1, libc::EBUSY);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, 0)]);
    h.ct.wait_for(|_| {
        h.engine
            .metrics()
            .actions(CopytoolAction::Archive, Outcome::Failed)
            == 1
    });
    assert!(h.store.get("f").is_none() && h.store.get("g").is_none());
    assert!(record_of(&h.data("f")).is_none());
    assert_eq!(h.engine.metrics().bytes_archived(), 0);
}

#[test]
fn receive_errors_are_counted_and_serving_goes_on() {
    let h = H::new(cfg());
    h.ct.add_file(fid(1), &["f"], b"x");
    h.ct.push_err(libc::EPROTO);
    h.ct.push_err(libc::EPROTO);
    h.ct.push(list(vec![item(CopytoolAction::Archive, 1, 1)]));
    assert_eq!(h.ct.wait_ends(1), vec![(1, 0, 0)]);
    assert_eq!(h.engine.metrics().receive_errors(), 2);
}

#[test]
fn items_waiting_for_a_slot_when_stopping_still_get_their_end() {
    let mut h = H::new(EngineConfig {
        max_actions: 1,
        ..cfg()
    });
    let _gate = h.store.close_gate();
    h.ct.add_file(fid(1), &["a"], b"first");
    h.ct.add_file(fid(2), &["b"], b"second");
    h.ct.push(list(vec![
        item(CopytoolAction::Archive, 1, 1),
        item(CopytoolAction::Archive, 2, 2),
    ]));
    h.ct.wait_for(|_| h.store.uploads_waiting.load(Ordering::SeqCst) == 1);
    h.engine.request_stop();
    assert_eq!(
        h.recv.take().unwrap().join().unwrap().unwrap(),
        StopReason::Requested
    );
    let engine = h.engine.clone();
    h.rt.block_on(async move { engine.drain(Duration::from_millis(50)).await });
    let mut ends = h.ct.ends();
    ends.sort();
    assert_eq!(ends, vec![(1, 0, libc::ESHUTDOWN), (2, 0, libc::ESHUTDOWN)]);
    // The unserved item was begun when it was received: its end goes through that handle.
    assert!(h.ct.events().contains(&Event::Begin(2)));
    assert!(h.store.get("b").is_none(), "never served");
}
