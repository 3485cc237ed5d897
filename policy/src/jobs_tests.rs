use super::*;
use crate::engine::EngineConfig;
use crate::fake::{FakeLog, FakeNs, FakeStore};
use crate::model::Change;
use crate::scope::Scope;
use crate::vocab::{JobKind, JobState};
use lustre::lustre_sys::{HS_ARCHIVED, HS_DIRTY, HS_EXISTS};
use lustre::{Fid, RecordType};
use lustre_blob_config::{DeleteMode, MetadataMode, RenameMode};

type E = Engine<FakeNs, FakeStore, FakeLog>;

fn setup() -> (E, FakeNs, FakeStore, FakeLog, JobRegistry) {
    setup_bounded(crate::engine::DEFAULT_MAX_IN_FLIGHT)
}

/// [`setup`] with at most `max_in_flight` archive requests in flight.
fn setup_bounded(max_in_flight: usize) -> (E, FakeNs, FakeStore, FakeLog, JobRegistry) {
    let ns = FakeNs::default();
    ns.add("", FileKind::Directory, 0);
    let store = FakeStore::default();
    let log = FakeLog::default();
    let cfg = EngineConfig {
        archive_id: 1,
        scope: Scope::new(&[String::new()], &[]).unwrap(),
        min_age_ms: 0,
        metadata: MetadataMode::Ignore,
        on_delete: DeleteMode::Keep,
        on_rename: RenameMode::Keep,
        batch_size: 1000,
        stale_after_ms: 30_000,
        discover_chunk: 100,
        job_id: "autoexport".into(),
        retry_max_ms: crate::engine::DEFAULT_RETRY_MAX_MS,
        max_in_flight,
        queue_target_ms: crate::engine::DEFAULT_QUEUE_TARGET_MS,
        min_in_flight: crate::engine::DEFAULT_MIN_IN_FLIGHT,
        iteration_deadline_ms: crate::engine::DEFAULT_ITERATION_DEADLINE_MS,
    };
    let e = Engine::new(ns.clone(), store.clone(), log.clone(), cfg, 1, None, false).unwrap();
    (e, ns, store, log, JobRegistry::in_memory(1))
}

/// The CL_HSM record of an archive of `fid` ending with `errno`, as record `index` of MDT 0.
fn archive_ended(fid: Fid, index: u64, errno: i32) -> Change {
    let mut c = Change::simple(0, index, RecordType::Hsm, fid);
    let error = u32::try_from(errno).unwrap_or(0);
    c.record.set_hsm(lustre::HsmEventInfo::new(
        lustre::HsmEvent::Archive,
        error,
        false,
    ));
    c
}

fn job(j: &JobRegistry, e: &E, id: &str) -> JobRecord {
    j.get(id, e.state()).unwrap()
}

#[test]
fn manual_export_archives_new_and_dirty_files_and_completes() {
    let (mut e, ns, store, _log, mut jobs) = setup();
    ns.add("p", FileKind::Directory, 0);
    ns.add("p/d", FileKind::Directory, 0);
    let a = ns.add("p/a", FileKind::Regular, 10);
    let b = ns.add("p/d/b", FileKind::Regular, 20);
    let c = ns.add("p/d/c", FileKind::Regular, 30);
    ns.set_hsm(c, HS_EXISTS | HS_ARCHIVED, false);
    let l = ns.add("p/l", FileKind::Symlink, 1);
    ns.lock().nodes.get_mut(&l).unwrap().link = b"a".to_vec();
    ns.add("q/outside", FileKind::Regular, 1);
    let id = jobs.start_export("p", false, 1000).unwrap();
    jobs.step(&mut e, 1000);
    let mut archived = ns.archived_fids();
    archived.sort();
    assert_eq!(archived, vec![a, b]);
    assert_eq!(
        ns.lock().archive_calls[0].1,
        format!("lb:j={id}:i=1").into_bytes()
    );
    let r = job(&jobs, &e, &id);
    assert_eq!(r.state, JobState::InProgress);
    let ex = r.export.unwrap();
    assert_eq!(
        (
            ex.files_discovered,
            ex.files_already_exported,
            ex.files_exported
        ),
        (5, 1, 2)
    );
    assert!(ex.percent_complete < 100);
    assert!(
        store.names().contains(&"p/d".to_string()) && store.names().contains(&"p/l".to_string())
    );
    e.on_records(
        0,
        &[archive_ended(a, 1, 0), archive_ended(b, 2, 0)],
        false,
        1500,
    );
    jobs.step(&mut e, 2000);
    let r = job(&jobs, &e, &id);
    assert_eq!(r.state, JobState::Completed);
    let ex = r.export.unwrap();
    assert_eq!(
        (
            ex.files_exported,
            ex.bytes_exported,
            ex.percent_complete,
            ex.files_failed
        ),
        (4, 30, 100, 0)
    );
    assert!(r.completion_time_utc.is_some());
}

#[test]
fn manual_export_failure_is_counted_and_logged() {
    let (mut e, ns, _store, log, mut jobs) = setup();
    let a = ns.add("a", FileKind::Regular, 1);
    let id = jobs.start_export("", false, 0).unwrap();
    jobs.step(&mut e, 0);
    e.on_change(&archive_ended(a, 1, libc::EIO), 1);
    jobs.step(&mut e, 1);
    let r = job(&jobs, &e, &id);
    assert_eq!(r.state, JobState::Completed);
    let ex = r.export.unwrap();
    assert_eq!(ex.files_failed, 1);
    assert_eq!(ex.error_code.as_deref(), Some("FilesFailed"));
    assert!(log
        .entries()
        .iter()
        .any(|x| x["kind"] == "failure" && x["path"] == "a" && x["job"] == id.as_str()));
}

/// A request whose end never came is settled from the file's HSM state; a file whose state
/// cannot be read then fails with the reason instead of vanishing from the counters.
#[test]
fn a_stale_request_whose_state_cannot_be_read_fails_with_the_reason() {
    let (mut e, ns, _store, log, mut jobs) = setup();
    let a = ns.add("a", FileKind::Regular, 1);
    let b = ns.add("b", FileKind::Regular, 2);
    let id = jobs.start_export("", false, 0).unwrap();
    jobs.step(&mut e, 0);
    assert_eq!(job(&jobs, &e, &id).state, JobState::InProgress);
    // `b` was archived without its CL_HSM reaching us; the MDS stops answering for `a`.
    ns.set_hsm(b, HS_EXISTS | HS_ARCHIVED, false);
    ns.lock().path_override.insert(a, b"a-elsewhere".to_vec());
    jobs.step(&mut e, 30_000);
    let r = job(&jobs, &e, &id);
    assert_eq!(r.state, JobState::Completed);
    let ex = r.export.unwrap();
    assert_eq!((ex.files_exported, ex.bytes_exported), (1, 2));
    assert_eq!(ex.files_failed, 1, "the unreadable file is counted");
    let line = log
        .entries()
        .into_iter()
        .find(|x| x["kind"] == "failure" && x["path"] == "a")
        .expect("a failure line for a");
    let why = line["error"].as_str().unwrap_or_default().to_string();
    assert!(
        why.contains("cannot be told") && why.contains("hsm_state"),
        "{why}"
    );
}

/// A saved job keeps its requests in the `[path, size, submitted_ms]` shape job histories were
/// written with before the shared in-flight set, and reads them back.
#[test]
fn a_saved_export_keeps_its_requests_in_the_shape_histories_have() {
    let mut ex = ExportProgress::default();
    let fid = Fid::new(0x200000401, 7, 0);
    let req = JobRequest {
        path: "p/a".into(),
        size: 3,
        submitted_ms: 4,
    };
    ex.inflight.insert(fid, req.clone());
    let json = serde_json::to_value(&ex).unwrap();
    assert_eq!(
        json["inflight"],
        serde_json::json!({"[0x200000401:0x7:0x0]": ["p/a", 3, 4]})
    );
    let back: ExportProgress = serde_json::from_value(json).unwrap();
    assert_eq!(back.inflight.get(&fid), Some(&req));
}

#[test]
fn one_job_at_a_time_and_the_refusal_names_the_running_one() {
    let (mut e, ns, _s, _l, mut jobs) = setup();
    ns.add("a", FileKind::Regular, 1);
    let e1 = jobs.start_export("", true, 0).unwrap_err();
    assert!(e1.to_string().contains("job autoexport"), "{e1}");
    let id = jobs.start_export("", false, 0).unwrap();
    jobs.step(&mut e, 0);
    let e2 = jobs.start_import("", "Fail", -1, false, 0).unwrap_err();
    assert!(matches!(e2, JobsError::Busy(_)));
    assert!(e2.to_string().contains(&id), "{e2}");
    assert_eq!(jobs.running_manual(), Some(id));
}

#[test]
fn cancel_sends_hsm_cancel_and_ends_canceled() {
    let (mut e, ns, _s, _l, mut jobs) = setup();
    let a = ns.add("a", FileKind::Regular, 1);
    let id = jobs.start_export("", false, 0).unwrap();
    jobs.step(&mut e, 0);
    jobs.cancel(&id, 1).unwrap();
    jobs.step(&mut e, 2);
    assert_eq!(job(&jobs, &e, &id).state, JobState::Canceled);
    assert_eq!(ns.lock().cancel_calls, vec![vec![a]]);
    assert!(jobs.cancel(&id, 3).is_err());
    assert!(matches!(
        jobs.cancel("nope", 3),
        Err(JobsError::NotFound(_))
    ));
}

fn meta(kind: FileKind, mode: u32) -> Option<blob::Metadata> {
    let st = crate::model::FileStat {
        kind,
        size: 0,
        mode,
        uid: 7,
        gid: 8,
        mtime_sec: 1_600_000_000,
        mtime_nsec: 5,
    };
    Some(crate::ports::blob_metadata(&st, None))
}

#[test]
fn import_creates_stubs_dirs_and_symlinks_and_refuses_traversal() {
    let (mut e, ns, store, log, mut jobs) = setup();
    store.put("proj", b"", meta(FileKind::Directory, 0o750));
    store.put("proj/a.dat", b"hello", meta(FileKind::Regular, 0o640));
    store.put("proj/deep/b.dat", b"xy", None);
    store.put("proj/link", b"a.dat", meta(FileKind::Symlink, 0o777));
    store.put("proj/../escape", b"x", None);
    store.put("proj/bad\u{1}name", b"x", None);
    store.put("other/x", b"x", None);
    let id = jobs.start_import("", "Fail", -1, false, 0).unwrap();
    jobs.step(&mut e, 0);
    let r = job(&jobs, &e, &id);
    assert_eq!(r.state, JobState::Completed, "{r:?}");
    let im = r.import.unwrap();
    assert_eq!(im.total_blobs_walked, 7);
    assert_eq!(
        (
            im.imported_files,
            im.imported_directories,
            im.imported_symlinks
        ),
        (3, 1, 1)
    );
    assert_eq!(im.total_errors, 2);
    let a = ns.fid_of("proj/a.dat").unwrap();
    let node = ns.lock().nodes[&a].clone();
    assert_eq!(
        (
            node.stat.size,
            node.stat.mode & 0o7777,
            node.stat.uid,
            node.stat.gid
        ),
        (5, 0o640, 7, 8)
    );
    assert!(node.hsm.is_released() && node.hsm.is_archived());
    let proj = ns.fid_of("proj").unwrap();
    assert_eq!(ns.lock().nodes[&proj].stat.mode, 0o750);
    assert!(
        ns.fid_of("proj/deep").is_some(),
        "missing parent directories are created"
    );
    let link = ns.fid_of("proj/link").unwrap();
    assert_eq!(ns.lock().nodes[&link].link, b"a.dat");
    assert!(ns.fid_of("escape").is_none() && ns.fid_of("proj/../escape").is_none());
    let refused: Vec<_> = log
        .entries()
        .into_iter()
        .filter(|x| x["operation"] == "import")
        .collect();
    assert_eq!(refused.len(), 2);
    assert!(refused
        .iter()
        .all(|x| x["error"].as_str().unwrap().contains("refused blob name")));
}

#[test]
fn import_of_a_prefix_takes_only_blobs_under_it() {
    let (mut e, ns, store, _log, mut jobs) = setup();
    store.put("proj/a", b"1", None);
    store.put("projX/b", b"1", None);
    let id = jobs.start_import("proj/", "Fail", -1, false, 0).unwrap();
    jobs.step(&mut e, 0);
    let im = job(&jobs, &e, &id).import.unwrap();
    assert_eq!((im.total_blobs_walked, im.imported_files), (1, 1));
    assert!(ns.fid_of("proj/a").is_some() && ns.fid_of("projX/b").is_none());
}

#[test]
fn import_never_writes_through_a_symlinked_parent() {
    let (mut e, ns, store, _log, mut jobs) = setup();
    let l = ns.add("d", FileKind::Symlink, 4);
    ns.lock().nodes.get_mut(&l).unwrap().link = b"/etc".to_vec();
    store.put("d/passwd", b"x", None);
    let id = jobs.start_import("", "Skip", -1, false, 0).unwrap();
    jobs.step(&mut e, 0);
    let im = job(&jobs, &e, &id).import.unwrap();
    assert_eq!((im.total_errors, im.imported_files), (1, 0));
}

#[test]
fn import_conflict_modes() {
    for (mode, state, imported, preexisting, conflicts) in [
        ("Fail", JobState::Failed, 0, 0, 1),
        ("Skip", JobState::Completed, 0, 1, 0),
        ("OverwriteIfDirty", JobState::Completed, 1, 0, 0),
        ("OverwriteAlways", JobState::Completed, 1, 0, 0),
    ] {
        let (mut e, ns, store, _log, mut jobs) = setup();
        let f = ns.add("x", FileKind::Regular, 1);
        ns.set_hsm(f, HS_EXISTS | HS_ARCHIVED | HS_DIRTY, false);
        store.put("x", b"blob", meta(FileKind::Regular, 0o600));
        let id = jobs.start_import("", mode, -1, false, 0).unwrap();
        jobs.step(&mut e, 0);
        let r = job(&jobs, &e, &id);
        let im = r.import.unwrap();
        assert_eq!(r.state, state, "{mode}");
        assert_eq!(
            (im.imported_files, im.preexisting_files, im.total_conflicts),
            (imported, preexisting, conflicts),
            "{mode}"
        );
    }
    // OverwriteIfDirty keeps a clean archived file.
    let (mut e, ns, store, _log, mut jobs) = setup();
    let f = ns.add("x", FileKind::Regular, 1);
    ns.set_hsm(f, HS_EXISTS | HS_ARCHIVED, false);
    store.put("x", b"blob", None);
    let id = jobs
        .start_import("", "OverwriteIfDirty", -1, false, 0)
        .unwrap();
    jobs.step(&mut e, 0);
    assert_eq!(job(&jobs, &e, &id).import.unwrap().preexisting_files, 1);
    assert!(jobs.start_import("", "Sometimes", -1, false, 0).is_err());
}

#[test]
fn maximum_errors_fails_the_import() {
    let (mut e, _ns, store, _log, mut jobs) = setup();
    store.put("a/../b", b"", None);
    store.put("c/../d", b"", None);
    store.put("e", b"", None);
    let id = jobs.start_import("", "Fail", 0, false, 0).unwrap();
    jobs.step(&mut e, 0);
    let r = job(&jobs, &e, &id);
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(
        r.import.unwrap().error_code.as_deref(),
        Some("MaximumErrorsExceeded")
    );
}

#[test]
fn history_survives_a_restart_and_running_jobs_end_failed() {
    let dir = tempfile::tempdir().unwrap();
    let f = StateFile::new(dir.path().join("jobs.json"));
    let (mut e, ns, _s, _l, _) = setup();
    ns.add("a", FileKind::Regular, 1);
    let mut jobs = JobRegistry::open(f.clone(), 1).unwrap();
    let id = jobs.start_export("", false, 0).unwrap();
    jobs.step(&mut e, 0);
    drop(jobs);
    let jobs = JobRegistry::open(f, 1).unwrap();
    let r = job(&jobs, &e, &id);
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(r.export.unwrap().error_code.as_deref(), Some("Interrupted"));
    let list = jobs.list(e.state());
    assert_eq!(list[0].id, "autoexport");
    assert_eq!(list[1].id, id);
}

#[test]
fn import_path_checks() {
    for ok in ["a", "a/b", "a b/c%d#?"] {
        assert!(check_import_path(ok).is_ok(), "{ok}");
    }
    for bad in ["", "/a", "a/../b", "..", "a/./b", "a//b", "a\nb", "a\u{7f}"] {
        assert!(check_import_path(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn cancel_of_the_auto_export_job_ends_it_canceled_and_enable_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, ns, _s, _l, _) = setup();
    let mut jobs = JobRegistry::open(StateFile::new(dir.path().join("jobs.json")), 1).unwrap();
    assert!(
        jobs.cancel("autoexport", 0).is_err(),
        "nothing to cancel before it starts"
    );
    e.set_enabled(true);
    jobs.autoexport_toggled(true, JobState::InProgress, e.state(), 1_000);
    let live = jobs.get("autoexport", e.state()).unwrap();
    assert_eq!(
        live.start_time_utc.as_deref(),
        Some("1970-01-01T00:00:01.000Z")
    );
    assert_eq!(
        live.completion_time_utc, None,
        "a running job has no end time"
    );
    // Some work, then the portal's Cancel.
    let a = ns.add("a", FileKind::Regular, 1);
    e.on_change(&Change::simple(0, 1, RecordType::Close, a), 0);
    e.step(0).unwrap();
    jobs.cancel("autoexport", 5_000).unwrap();
    e.set_enabled(false);
    jobs.autoexport_toggled(false, JobState::Canceled, e.state(), 5_000);
    let list = jobs.list(e.state());
    let ended = list.iter().find(|j| j.id == "autoexport-1").expect("kept");
    assert_eq!(ended.kind, JobKind::AutoExport);
    assert_eq!(ended.state, JobState::Canceled);
    assert_eq!(
        ended.start_time_utc.as_deref(),
        Some("1970-01-01T00:00:01.000Z")
    );
    assert_eq!(
        ended.completion_time_utc.as_deref(),
        Some("1970-01-01T00:00:05.000Z")
    );
    let counters = ended.autoexport.as_ref().unwrap();
    assert_eq!(counters["currentIterationFilesDiscovered"], 1, "{counters}");
    assert!(jobs.cancel("autoexport", 6_000).is_err(), "already ended");
    // Enabled again: a new job, a new start time.
    e.set_enabled(true);
    jobs.autoexport_toggled(true, JobState::InProgress, e.state(), 9_000);
    let live = jobs.get("autoexport", e.state()).unwrap();
    assert_eq!(
        live.start_time_utc.as_deref(),
        Some("1970-01-01T00:00:09.000Z")
    );
    assert_eq!(live.completion_time_utc, None);
    e.set_enabled(false);
    jobs.autoexport_toggled(false, JobState::Disabled, e.state(), 10_000);
    assert!(jobs
        .list(e.state())
        .iter()
        .any(|j| j.id == "autoexport-2" && j.state == JobState::Disabled));
}

/// Each `"state"` key of a JSON text.
fn state_keys(json: &str) -> usize {
    json.matches("\"state\":").count()
}

#[test]
fn a_history_with_an_ended_auto_export_job_survives_a_restart_with_one_state_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let f = StateFile::new(dir.path().join("jobs.json"));
    let (e, _ns, _s, _l, _) = setup();
    let mut jobs = JobRegistry::open(f.clone(), 1).unwrap();
    let mut e = e;
    e.set_enabled(true);
    jobs.autoexport_toggled(true, JobState::InProgress, e.state(), 1_000);
    e.set_enabled(false);
    jobs.autoexport_toggled(false, JobState::Disabled, e.state(), 2_000);
    // Every record, live or kept, says its state once (`jobs --json` and the file alike).
    for r in jobs.list(e.state()) {
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(state_keys(&text), 1, "{text}");
    }
    let file = std::fs::read_to_string(dir.path().join("jobs.json")).unwrap();
    assert_eq!(state_keys(&file), 1, "{file}");
    drop(jobs);
    // The daemon starts again on that history.
    let jobs = JobRegistry::open(f, 1).expect("history with an ended auto-export job");
    let kept = jobs.get("autoexport-1", e.state()).expect("kept");
    assert_eq!(kept.state, JobState::Disabled);
    assert_eq!(kept.autoexport.as_ref().unwrap()["totalFilesExported"], 0);
}

#[test]
fn a_history_written_with_state_twice_still_loads() {
    // What a daemon before `status_fields` wrote after a disable: the record's `state` and the
    // flattened status's, the same value.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    let (e, _ns, _s, _l, _) = setup();
    let mut jobs = JobRegistry::open(StateFile::new(path.clone()), 1).unwrap();
    let mut e = e;
    e.set_enabled(true);
    jobs.autoexport_toggled(true, JobState::InProgress, e.state(), 1_000);
    e.set_enabled(false);
    jobs.autoexport_toggled(false, JobState::Canceled, e.state(), 2_000);
    drop(jobs);
    let text = std::fs::read_to_string(&path).unwrap();
    let old = text.replacen(
        "\"state\":\"Canceled\"",
        "\"state\":\"Canceled\",\"state\":\"Canceled\"",
        1,
    );
    assert_eq!(state_keys(&old), 2, "{old}");
    std::fs::write(&path, old).unwrap();
    let jobs = JobRegistry::open(StateFile::new(path), 1).expect("old history");
    assert_eq!(
        jobs.get("autoexport-1", e.state()).unwrap().state,
        JobState::Canceled
    );
}

/// Runs an import of everything in `store` (conflict mode Fail) to its end.
fn import_all(e: &mut E, jobs: &mut JobRegistry) -> ImportProgress {
    let id = jobs.start_import("", "Fail", -1, false, 0).unwrap();
    for _ in 0..10 {
        jobs.step(e, 0);
    }
    let r = job(jobs, e, &id);
    assert!(!r.is_running(), "{r:?}");
    r.import.unwrap()
}

fn stat_of(ns: &FakeNs, rel: &str) -> Option<crate::model::FileStat> {
    let fid = ns.fid_of(rel)?;
    let st = ns.lock().nodes[&fid].stat;
    Some(st)
}

fn metadata_lines(log: &FakeLog) -> Vec<serde_json::Value> {
    log.entries()
        .into_iter()
        .filter(|x| x["operation"] == "import-metadata")
        .collect()
}

#[test]
fn import_never_plants_setuid_setgid_or_sticky_bits_unless_the_policy_says_so() {
    let (mut e, ns, store, log, mut jobs) = setup();
    store.put_raw("suid", b"x", &[("permissions", "4755"), ("owner", "0")]);
    store.put_raw("all", b"x", &[("permissions", "7777"), ("owner", "0")]);
    store.put_raw(
        "sdir",
        b"",
        &[("hdi_isfolder", "true"), ("permissions", "3777")],
    );
    let im = import_all(&mut e, &mut jobs);
    assert_eq!((im.total_blobs_imported, im.total_errors), (3, 0), "{im:?}");
    assert_eq!(im.total_coerced_values, 3);
    let suid = stat_of(&ns, "suid").unwrap();
    assert_eq!((suid.mode & 0o7777, suid.uid), (0o755, 0));
    assert_eq!(stat_of(&ns, "all").unwrap().mode & 0o7777, 0o777);
    let sdir = stat_of(&ns, "sdir").unwrap();
    assert_eq!(
        (sdir.kind, sdir.mode & 0o7777),
        (FileKind::Directory, 0o777)
    );
    let lines = metadata_lines(&log);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let suid_line = lines.iter().find(|x| x["path"] == "suid").unwrap();
    let text = suid_line["error"].as_str().unwrap();
    assert!(text.contains("4755") && text.contains("dropped"), "{text}");

    // import.keep_special_bits = true: applied as written, nothing coerced.
    let (mut e, ns, store, log, mut jobs) = setup();
    jobs.keep_special_bits = true;
    store.put_raw("suid", b"x", &[("permissions", "4755"), ("owner", "0")]);
    let im = import_all(&mut e, &mut jobs);
    assert_eq!((im.total_blobs_imported, im.total_coerced_values), (1, 0));
    assert_eq!(stat_of(&ns, "suid").unwrap().mode & 0o7777, 0o4755);
    assert!(metadata_lines(&log).is_empty());
}

#[test]
fn import_refuses_an_owner_or_group_that_is_not_an_id() {
    let (mut e, ns, store, log, mut jobs) = setup();
    store.put_raw("alice", b"x", &[("owner", "alice")]);
    store.put_raw("minus", b"x", &[("owner", "-1")]);
    store.put_raw("nobody", b"x", &[("owner", "4294967295")]);
    store.put_raw("staff", b"x", &[("owner", "1000"), ("group", "staff")]);
    store.put_raw("fine", b"x", &[("owner", "1000"), ("group", "100")]);
    let im = import_all(&mut e, &mut jobs);
    assert_eq!((im.total_blobs_imported, im.total_errors), (1, 4), "{im:?}");
    for refused in ["alice", "minus", "nobody", "staff"] {
        assert!(
            stat_of(&ns, refused).is_none(),
            "{refused} imported (as root)"
        );
        let line = log
            .entries()
            .into_iter()
            .find(|x| x["path"] == refused && x["operation"] == "import")
            .unwrap_or_else(|| panic!("{refused} not logged"));
        assert!(
            line["error"].as_str().unwrap().contains("refused"),
            "{line}"
        );
    }
    let fine = stat_of(&ns, "fine").unwrap();
    assert_eq!((fine.uid, fine.gid), (1000, 100));
    // The refused blobs are still in the container (nothing lost).
    assert_eq!(store.names().len(), 5);
}

#[test]
fn import_of_bad_permissions_applies_a_safe_default_counts_and_logs_it() {
    let (mut e, ns, store, log, mut jobs) = setup();
    store.put_raw("abc", b"x", &[("permissions", "abc")]);
    let im = import_all(&mut e, &mut jobs);
    assert_eq!((im.total_blobs_imported, im.total_coerced_values), (1, 1));
    assert_eq!(stat_of(&ns, "abc").unwrap().mode & 0o7777, 0o644);
    let lines = metadata_lines(&log);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0]["error"].as_str().unwrap().contains("\"abc\""),
        "{}",
        lines[0]
    );
}

#[test]
fn import_of_a_garbage_modtime_takes_last_modified_not_1970() {
    let (mut e, ns, store, log, mut jobs) = setup();
    store.put_raw("g", b"x", &[("modtime", "garbage")]);
    store.put_raw("none", b"x", &[]);
    let im = import_all(&mut e, &mut jobs);
    assert_eq!((im.total_blobs_imported, im.total_coerced_values), (2, 1));
    assert_eq!(
        stat_of(&ns, "g").unwrap().mtime_sec,
        crate::fake::FAKE_LAST_MODIFIED
    );
    assert_eq!(
        stat_of(&ns, "none").unwrap().mtime_sec,
        crate::fake::FAKE_LAST_MODIFIED
    );
    let lines = metadata_lines(&log);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["path"], "g");
    assert!(lines[0]["error"]
        .as_str()
        .unwrap()
        .contains("Last-Modified"));
}

#[test]
fn import_of_folder_markers_makes_directories_their_owner_can_enter() {
    let (mut e, ns, store, log, mut jobs) = setup();
    store.put_raw(
        "badperm",
        b"",
        &[("hdi_isfolder", "true"), ("permissions", "abc")],
    );
    store.put_raw("noperm", b"", &[("hdi_isfolder", "true")]);
    store.put_raw(
        "noexec",
        b"",
        &[("hdi_isfolder", "true"), ("permissions", "0644")],
    );
    store.put_raw("noperm/child", b"x", &[("permissions", "0600")]);
    let im = import_all(&mut e, &mut jobs);
    assert_eq!(
        (im.imported_directories, im.imported_files, im.total_errors),
        (3, 1, 0),
        "{im:?}"
    );
    assert_eq!(im.total_coerced_values, 2);
    for (dir, mode) in [("badperm", 0o755), ("noperm", 0o755), ("noexec", 0o744)] {
        let st = stat_of(&ns, dir).unwrap();
        assert_eq!(
            (st.kind, st.mode & 0o7777),
            (FileKind::Directory, mode),
            "{dir}"
        );
    }
    let lines = metadata_lines(&log);
    assert_eq!(lines.len(), 2, "{lines:?}");
}

#[test]
fn import_refuses_an_absolute_prefix_and_negative_maximum_errors_other_than_minus_1() {
    let (_e, _ns, _store, _log, mut jobs) = setup();
    for (prefix, max) in [("/abs", -1), ("/", -1), ("proj", -2), ("", i64::MIN)] {
        match jobs.start_import(prefix, "Fail", max, false, 0) {
            Err(JobsError::Invalid(m)) => assert!(
                m.contains(if prefix.starts_with('/') {
                    "absolute"
                } else {
                    "maximumErrors"
                }),
                "{m}"
            ),
            other => panic!("{prefix:?} {max}: {other:?}"),
        }
    }
    jobs.start_import("proj/", "Fail", -1, false, 0).unwrap();
}

#[test]
fn import_creates_the_stub_with_the_blobs_layout() {
    let (mut e, ns, store, _log, mut jobs) = setup();
    store.put_raw(
        "wide",
        b"x",
        &[
            ("lustre_stripe_count", "4"),
            ("lustre_stripe_size", "4194304"),
            ("lustre_pool", "flash"),
        ],
    );
    store.put_raw("plain", b"x", &[("owner", "1")]);
    let im = import_all(&mut e, &mut jobs);
    assert_eq!((im.total_blobs_imported, im.total_errors), (2, 0), "{im:?}");
    let layouts = ns.lock().import_layouts.clone();
    let wide = ns.fid_of("wide").unwrap();
    assert_eq!(
        layouts[&wide],
        Some(lustre::Striping::new(4, 4 << 20, Some("flash")).unwrap())
    );
    assert_eq!(layouts[&ns.fid_of("plain").unwrap()], None);
}

#[test]
fn import_refuses_a_blob_with_a_malformed_layout_with_a_one_line_reason() {
    let (mut e, ns, store, log, mut jobs) = setup();
    /// (blob name, its metadata, the key the refusal names)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            "size",
            &[("lustre_stripe_count", "4"), ("lustre_stripe_size", "1000")],
            "lustre_stripe_size",
        ),
        (
            "count",
            &[
                ("lustre_stripe_count", "0"),
                ("lustre_stripe_size", "65536"),
            ],
            "lustre_stripe_count",
        ),
        ("alone", &[("lustre_pool", "flash")], "lustre_stripe_count"),
        (
            "pool",
            &[
                ("lustre_stripe_count", "1"),
                ("lustre_stripe_size", "65536"),
                ("lustre_pool", "a/../b"),
            ],
            "lustre_pool",
        ),
    ];
    for (name, pairs, _) in &cases {
        store.put_raw(name, b"x", pairs);
    }
    let im = import_all(&mut e, &mut jobs);
    assert_eq!((im.total_blobs_imported, im.total_errors), (0, 4), "{im:?}");
    for (name, _, key) in &cases {
        assert!(stat_of(&ns, name).is_none(), "{name} imported");
        let line = log
            .entries()
            .into_iter()
            .find(|x| x["path"] == *name && x["operation"] == "import")
            .unwrap_or_else(|| panic!("{name} not logged"));
        let text = line["error"].as_str().unwrap();
        assert!(
            text.contains(key) && text.contains("blob refused"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }
}

/// Issue 17, item 2: an import lists the prefix page by page ([`IMPORT_PAGE`] blobs per List
/// Blobs) while it imports, holding one page at a time, not the whole listing.
#[test]
fn import_lists_page_by_page_and_holds_one_page_at_a_time() {
    let (mut e, ns, store, _log, mut jobs) = setup();
    let n = 2 * IMPORT_PAGE + 1;
    for i in 0..n {
        store.put(&format!("many/f{i:06}"), b"x", None);
    }
    let id = jobs.start_import("many/", "Fail", -1, false, 0).unwrap();
    let mut most_held = 0;
    for round in 0.. {
        jobs.step(&mut e, round);
        let r = job(&jobs, &e, &id);
        let im = r.import.clone().unwrap();
        most_held = most_held.max(im.listed.as_ref().map_or(0, |l| l.len()));
        if r.state != JobState::InProgress {
            assert_eq!(r.state, JobState::Completed);
            break;
        }
        assert!(round < 100_000, "the import never ends");
    }
    let im = job(&jobs, &e, &id).import.unwrap();
    assert_eq!(
        (im.total_blobs_walked, im.imported_files),
        (n as u64, n as u64)
    );
    assert!(most_held <= IMPORT_PAGE, "held {most_held} entries at once");
    assert_eq!(
        store
            .list_pages_served
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    assert!(ns.fid_of(&format!("many/f{:06}", n - 1)).is_some());
}

/// Files the fake coordinator holds a request for (waiting or running).
fn requests_pending(ns: &FakeNs) -> Vec<Fid> {
    let fs = ns.lock();
    let mut v: Vec<Fid> = fs
        .nodes
        .iter()
        .filter(|(_, n)| n.action_pending)
        .map(|(f, _)| *f)
        .collect();
    v.sort();
    v
}

/// `n` new files of one byte, `per_dir` to a directory under `top`; their FIDs.
fn new_tree(ns: &FakeNs, top: &str, n: usize, per_dir: usize) -> Vec<Fid> {
    ns.add(top, FileKind::Directory, 0);
    let mut fids = Vec::new();
    for i in 0..n {
        let dir = format!("{top}/d{}", i / per_dir);
        if i % per_dir == 0 {
            ns.add(&dir, FileKind::Directory, 0);
        }
        fids.push(ns.add(&format!("{dir}/f{i}"), FileKind::Regular, 1));
    }
    fids
}

/// A tree of more files than the bound: the job never holds more requests with the coordinator
/// than the bound, stops taking scanned entries while it is at the bound (the scan is still
/// running then), and ends with every file archived exactly once.
#[test]
fn a_job_over_more_files_than_the_bound_keeps_at_most_the_bound_in_flight() {
    let bound = 4;
    let (mut e, ns, _store, _log, mut jobs) = setup_bounded(bound);
    let mut files = new_tree(&ns, "t", 5 * bound + 3, 5);
    let id = jobs.start_export("t", false, 0).unwrap();
    let mut now = 0;
    let mut index = 0;
    let mut most = 0;
    let mut held_back_while_scanning = false;
    for _ in 0..200 {
        jobs.step(&mut e, now);
        let pending = requests_pending(&ns);
        most = most.max(pending.len());
        assert!(pending.len() <= bound, "{} in flight", pending.len());
        let r = job(&jobs, &e, &id);
        if r.state == JobState::Completed {
            break;
        }
        let ex = r.export.unwrap();
        if r.state == JobState::FSScanInProgress && pending.len() == bound {
            held_back_while_scanning |= ex.files_discovered < files.len() as u64;
        }
        // The copytool archives what is queued; each end comes back as a CL_HSM record.
        let ends: Vec<Change> = pending
            .iter()
            .map(|f| {
                ns.set_hsm(*f, HS_EXISTS | HS_ARCHIVED, false);
                index += 1;
                archive_ended(*f, index, 0)
            })
            .collect();
        e.on_records(0, &ends, false, now);
        now += 10;
    }
    let r = job(&jobs, &e, &id);
    assert_eq!(r.state, JobState::Completed);
    assert_eq!(most, bound, "the bound was reached");
    assert!(
        held_back_while_scanning,
        "the scan waited for requests to end"
    );
    let mut archived = ns.archived_fids();
    archived.sort();
    files.sort();
    assert_eq!(archived, files, "every file archived exactly once");
    let ex = r.export.unwrap();
    // The exported tree's own directory is not an entry of the scan: its 5 subdirectories are.
    assert_eq!(
        ex.files_exported,
        files.len() as u64 + 5,
        "files + directories"
    );
    assert_eq!(ex.files_failed, 0);
}

/// At its bound, the job does not send a request per freed slot: it waits until a batch's worth
/// (a quarter of the bound) is free, so a large export costs the MDS few, full requests.
#[test]
fn at_the_bound_the_job_waits_for_a_quarter_of_it_free_before_it_asks_again() {
    let bound = 16;
    let (mut e, ns, _store, _log, mut jobs) = setup_bounded(bound);
    let files = new_tree(&ns, "t", 100, 10);
    let id = jobs.start_export("t", false, 0).unwrap();
    let mut now = 0;
    for _ in 0..50 {
        jobs.step(&mut e, now);
        now += 10;
        if requests_pending(&ns).len() == bound {
            break;
        }
    }
    assert_eq!(
        requests_pending(&ns).len(),
        bound,
        "the job filled its bound"
    );
    let mut index = 0;
    let mut end = |e: &mut E, n: usize, now: u64| {
        let ends: Vec<Change> = requests_pending(&ns)
            .into_iter()
            .take(n)
            .map(|f| {
                ns.set_hsm(f, HS_EXISTS | HS_ARCHIVED, false);
                index += 1;
                archive_ended(f, index, 0)
            })
            .collect();
        e.on_records(0, &ends, false, now);
    };
    let requests = |ns: &FakeNs| ns.lock().archive_requests;
    let before = requests(&ns);
    end(&mut e, 3, now);
    for _ in 0..5 {
        jobs.step(&mut e, now);
        now += 10;
    }
    assert_eq!(requests(&ns), before, "3 free slots of 16: no request yet");
    assert_eq!(requests_pending(&ns).len(), bound - 3);
    end(&mut e, 1, now);
    jobs.step(&mut e, now);
    assert_eq!(requests(&ns), before + 1, "4 free slots: one request");
    assert_eq!(requests_pending(&ns).len(), bound, "of 4 files");
    // The rest runs to the end: every file once, and the tail (fewer files than a quarter) is
    // sent without waiting for slots that would never be needed.
    for _ in 0..500 {
        if job(&jobs, &e, &id).state == JobState::Completed {
            break;
        }
        end(&mut e, bound, now);
        jobs.step(&mut e, now);
        now += 10;
    }
    assert_eq!(job(&jobs, &e, &id).state, JobState::Completed);
    let mut archived = ns.archived_fids();
    archived.sort();
    let mut files = files;
    files.sort();
    assert_eq!(archived, files, "every file archived exactly once");
}

/// The scan tells archived-and-clean from new and changed files by the flags alone, as
/// auto-export's discovery does: no `current_action` (a read of Lustre's whole action catalog).
#[test]
fn the_scan_asks_no_current_action_for_clean_new_or_dirty_files() {
    let (mut e, ns, _store, _log, mut jobs) = setup();
    let new = ns.add("new", FileKind::Regular, 1);
    let clean = ns.add("clean", FileKind::Regular, 2);
    ns.set_hsm(clean, HS_EXISTS | HS_ARCHIVED, false);
    let dirty = ns.add("dirty", FileKind::Regular, 3);
    ns.set_hsm(dirty, HS_EXISTS | HS_ARCHIVED | HS_DIRTY, false);
    let id = jobs.start_export("", false, 0).unwrap();
    jobs.step(&mut e, 0);
    assert_eq!(ns.lock().current_action_calls, 0);
    let mut archived = ns.archived_fids();
    archived.sort();
    assert_eq!(archived, vec![new, dirty]);
    let ex = job(&jobs, &e, &id).export.unwrap();
    assert_eq!((ex.files_discovered, ex.files_already_exported), (3, 1));
}

/// Requests with no answer for `STALE_MS` are settled from the flags: an archived file costs
/// no `current_action`; only one still not archived (queued, or lost) is asked about. With the
/// bound, a stale check never looks at more than the bound.
#[test]
fn a_stale_check_asks_current_action_only_where_the_flags_cannot_tell() {
    let bound = 4;
    let (mut e, ns, _store, _log, mut jobs) = setup_bounded(bound);
    new_tree(&ns, "t", 3 * bound, 100);
    let id = jobs.start_export("t", false, 0).unwrap();
    jobs.step(&mut e, 0);
    let sent = requests_pending(&ns);
    assert_eq!(sent.len(), bound);
    // Two were archived without their CL_HSM reaching us; two still wait.
    for f in &sent[..2] {
        ns.set_hsm(*f, HS_EXISTS | HS_ARCHIVED, false);
    }
    ns.lock().current_action_calls = 0;
    jobs.step(&mut e, STALE_MS);
    assert_eq!(
        ns.lock().current_action_calls,
        2,
        "only the two not archived"
    );
    let ex = job(&jobs, &e, &id).export.unwrap();
    assert_eq!(ex.files_exported, 2 + 1, "two files + the one directory");
    assert_eq!(
        ex.inflight.len(),
        bound,
        "two new requests took the freed room"
    );
    // The two still queued wait again from now: not asked about at the next step.
    jobs.step(&mut e, STALE_MS + 1);
    assert_eq!(ns.lock().current_action_calls, 2);
}
