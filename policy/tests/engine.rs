//! The auto-export engine on the in-memory fakes of its ports: every behaviour through its public
//! API (records in, requests and blob operations out, the state it reports).

use lustre::lustre_sys::{HS_ARCHIVED, HS_DIRTY, HS_EXISTS};
use lustre::{Fid, HsmEvent, RecordType};
use lustre::{HsmEventInfo, RenameExt};
use lustre_blob_config::{DeleteMode, MetadataMode, RenameMode};
use policy::engine::*;
use policy::fake::{FakeLog, FakeNs, FakeStore};
use policy::model::{Change, FileKind};
use policy::ports::Store;
use policy::scope::Scope;
use policy::state::*;

type E = Engine<FakeNs, FakeStore, FakeLog>;

fn cfg() -> EngineConfig {
    EngineConfig {
        archive_id: 1,
        scope: Scope::new(&["projects".to_string()], &["*.tmp".to_string()]).unwrap(),
        min_age_ms: 0,
        metadata: MetadataMode::Ignore,
        on_delete: DeleteMode::Keep,
        on_rename: RenameMode::Keep,
        batch_size: 1000,
        stale_after_ms: 60_000,
        discover_chunk: 100,
        job_id: "autoexport-1".into(),
        retry_max_ms: policy::engine::DEFAULT_RETRY_MAX_MS,
        max_in_flight: policy::engine::DEFAULT_MAX_IN_FLIGHT,
        queue_target_ms: policy::engine::DEFAULT_QUEUE_TARGET_MS,
        min_in_flight: policy::engine::DEFAULT_MIN_IN_FLIGHT,
        iteration_deadline_ms: policy::engine::DEFAULT_ITERATION_DEADLINE_MS,
    }
}

struct T {
    e: E,
    ns: FakeNs,
    store: FakeStore,
    log: FakeLog,
    idx: u64,
    now: u64,
}

impl T {
    fn new(c: EngineConfig) -> T {
        Self::with_file(c, None)
    }
    fn with_file(c: EngineConfig, file: Option<StateFile>) -> T {
        let ns = FakeNs::default();
        ns.add("", FileKind::Directory, 0);
        ns.add("projects", FileKind::Directory, 0);
        let store = FakeStore::default();
        let log = FakeLog::default();
        let e = Engine::new(ns.clone(), store.clone(), log.clone(), c, 1, file, true).unwrap();
        T {
            e,
            ns,
            store,
            log,
            idx: 0,
            now: 1_000_000,
        }
    }
    fn rec(&mut self, kind: RecordType, fid: Fid) -> Change {
        self.idx += 1;
        Change::simple(0, self.idx, kind, fid)
    }
    fn feed(&mut self, c: Change) {
        self.e.on_records(0, &[c], false, self.now);
    }
    fn file(&mut self, path: &str, size: u64) -> Fid {
        let fid = self.ns.add(path, FileKind::Regular, size);
        let r = self.rec(RecordType::Close, fid);
        self.feed(r);
        fid
    }
    fn step(&mut self) {
        self.e.step(self.now).unwrap();
        self.e.persist().unwrap();
    }
    fn hsm(&mut self, fid: Fid, error: u8) {
        if error == 0 {
            self.ns.set_hsm(fid, HS_EXISTS | HS_ARCHIVED, false);
        } else {
            self.ns.set_hsm(fid, 0, false);
        }
        let mut r = self.rec(RecordType::Hsm, fid);
        r.record.set_hsm(HsmEventInfo::new(
            HsmEvent::Archive,
            u32::from(error),
            false,
        ));
        self.feed(r);
    }
    /// Ends every request in flight well, step after step, until no iteration runs.
    fn end_everything_well(&mut self) {
        for _ in 0..1_000 {
            let inflight: Vec<Fid> = self.e.state().inflight.keys().copied().collect();
            if inflight.is_empty() && self.e.state().iteration.is_none() {
                return;
            }
            for f in inflight {
                self.hsm(f, 0);
            }
            self.now += 100;
            self.step();
        }
        panic!(
            "still running after 1,000 steps: {:?}",
            self.e.state().iteration
        );
    }
    fn totals(&self) -> policy::state::Totals {
        self.e.state().totals.clone()
    }
    fn current(&self) -> IterCounters {
        let s = self.e.state();
        s.iteration
            .as_ref()
            .map(|i| i.counters.clone())
            .or(s.last_iteration.clone())
            .unwrap()
    }
}

#[test]
fn files_under_the_prefix_are_archived_and_nothing_else() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 10);
    let b = t.file("projects/sub/b.dat", 20);
    t.file("other/c.dat", 30);
    t.file("projects/x.tmp", 40);
    t.file("projectsX/d.dat", 50);
    t.step();
    let calls = t.ns.lock().archive_calls.clone();
    assert_eq!(calls.len(), 1);
    let mut fids = calls[0].0.clone();
    fids.sort();
    assert_eq!(fids, vec![a, b]);
    assert_eq!(calls[0].1, b"lb:j=autoexport-1:i=1".to_vec());
    let c = t.current();
    assert_eq!((c.files_discovered, c.bytes_discovered), (2, 30));
    assert_eq!(c.files_exported, 0);
}

#[test]
fn completions_count_and_finish_the_iteration() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 3 << 20);
    let b = t.file("projects/b.dat", 1 << 20);
    t.step();
    t.hsm(a, 0);
    t.step();
    assert_eq!(t.current().files_exported, 1);
    assert!(t.e.state().iteration.is_some(), "still waiting for b");
    t.hsm(b, 0);
    t.step();
    assert!(t.e.state().iteration.is_none());
    let tot = t.totals();
    assert_eq!(
        (
            tot.files_exported,
            tot.bytes_exported,
            tot.iterations_completed
        ),
        (2, 4 << 20, 1)
    );
    assert_eq!(tot.last_successful_ms, Some(t.now));
    let c = t.current();
    assert_eq!(
        (c.files_exported, c.bytes_exported, c.files_failed),
        (2, 4 << 20, 0)
    );
    let entries = t.log.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["kind"], "summary");
    assert_eq!(entries[0]["files_exported"], 2);
    assert_eq!(*t.log.flushed.lock().unwrap(), 1);
    // Everything final: the changelog is cleared to the last record.
    assert_eq!(t.ns.lock().cleared.get(&0), Some(&t.idx));
}

#[test]
fn permanent_failure_counts_logs_and_blocks_last_successful() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    t.step();
    t.hsm(a, libc::EPERM as u8);
    t.step();
    let tot = t.totals();
    assert_eq!(
        (
            tot.files_failed,
            tot.files_exported,
            tot.iterations_completed
        ),
        (1, 0, 1)
    );
    assert_eq!(tot.last_successful_ms, None);
    assert_eq!(t.current().files_failed, 1);
    let entries = t.log.entries();
    let f = entries.iter().find(|e| e["kind"] == "failure").unwrap();
    assert_eq!(f["path"], "projects/a.dat");
    assert_eq!(f["fid"], a.to_string());
    assert_eq!(f["operation"], "archive");
    assert_eq!(f["iteration"], 1);
    assert_eq!(f["job"], "autoexport-1");
    assert!(f["error"].as_str().unwrap().contains("errno 1"));
    assert_eq!(t.e.state().recent_failures.len(), 1);
}

#[test]
fn canceled_and_busy_are_requeued_not_failed() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    let b = t.file("projects/b.dat", 1);
    t.step();
    t.hsm(a, libc::ECANCELED as u8);
    t.hsm(b, libc::EBUSY as u8);
    t.step(); // iteration 1 ends with nothing failed; b (changed) goes again at once
    let tot = t.totals();
    assert_eq!((tot.files_failed, tot.iterations_completed), (0, 1));
    assert_eq!(tot.last_successful_ms, None, "nothing was exported");
    assert_eq!(
        t.e.state().last_iteration.as_ref().unwrap().files_requeued,
        2
    );
    let calls = t.ns.lock().archive_calls.clone();
    assert_eq!(calls.len(), 2, "b re-issued in iteration 2");
    assert_eq!(calls[1].0, vec![b]);
    assert_eq!(calls[1].1, b"lb:j=autoexport-1:i=2".to_vec());
    // a (its agent went away) waits out a back-off before its next try.
    t.now += 1_000;
    t.hsm(b, 0);
    t.step();
    let calls = t.ns.lock().archive_calls.clone();
    assert_eq!(calls.len(), 3, "a re-issued after its back-off");
    assert_eq!(calls[2].0, vec![a]);
    t.hsm(a, 0);
    t.step();
    assert_eq!(t.totals().files_exported, 2);
    assert_eq!(t.totals().files_failed, 0);
    assert_eq!(t.totals().last_successful_ms, Some(t.now));
}

#[test]
fn an_environment_that_keeps_failing_never_makes_a_failure_final() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    // Store unreachable, throttled, container missing, credentials refused, agent gone: each
    // many more times than MAX_ATTEMPTS.
    let errnos = [
        libc::ETIMEDOUT,
        libc::ENOMEDIUM,
        libc::EKEYREJECTED,
        libc::ECONNREFUSED,
        libc::ECANCELED,
    ];
    for round in 0..(4 * MAX_ATTEMPTS as usize) {
        t.step();
        assert_eq!(
            t.ns.lock().archive_calls.len(),
            round + 1,
            "tried again after its back-off"
        );
        t.hsm(a, errnos[round % errnos.len()] as u8);
        t.step();
        assert!(t.e.state().failed.is_empty());
        assert!(
            t.e.state().pending.contains_key(&a),
            "pending while it waits"
        );
        let st = policy::status::build(t.e.state(), t.now, None);
        assert!(!st.everything_exported);
        assert_eq!(st.waiting_files, 1);
        assert!(st.waiting_reason.is_some());
        // Not before its back-off is over.
        t.step();
        assert_eq!(t.ns.lock().archive_calls.len(), round + 1);
        t.now += DEFAULT_RETRY_MAX_MS;
    }
    t.step();
    t.hsm(a, 0);
    t.step();
    let tot = t.totals();
    assert_eq!((tot.files_failed, tot.files_exported), (0, 1));
    assert!(policy::status::build(t.e.state(), t.now, None).everything_exported);
}

#[test]
fn backoff_doubles_up_to_its_bound() {
    assert_eq!(backoff_ms(0, 30_000), 1_000);
    assert_eq!(backoff_ms(1, 30_000), 2_000);
    assert_eq!(backoff_ms(4, 30_000), 16_000);
    assert_eq!(backoff_ms(5, 30_000), 30_000);
    assert_eq!(backoff_ms(500, 30_000), 30_000);
}

#[test]
fn local_errors_are_tried_a_bounded_number_of_times_then_fail() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    for _ in 0..MAX_ATTEMPTS {
        t.step();
        t.hsm(a, libc::EIO as u8);
        t.now += DEFAULT_RETRY_MAX_MS;
    }
    t.step();
    assert_eq!(t.totals().files_failed, 1);
    assert_eq!(t.ns.lock().archive_calls.len(), MAX_ATTEMPTS as usize);
    assert!(t.e.state().failed.contains_key(&a));
}

#[test]
fn a_file_changing_during_every_copy_is_counted_once_per_iteration_and_never_failed() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    let rounds = 3 * MAX_ATTEMPTS as u64;
    for _ in 0..rounds {
        t.step();
        let n =
            t.e.state()
                .iteration
                .as_ref()
                .map(|i| i.counters.files_discovered);
        assert_eq!(n, Some(1), "discovered once in its iteration");
        t.hsm(a, libc::EBUSY as u8);
        // The writer closes it again meanwhile (same FID: deduplicated).
        let r = t.rec(RecordType::Close, a);
        t.feed(r);
    }
    t.step();
    t.hsm(a, 0);
    t.step();
    let tot = t.totals();
    assert_eq!((tot.files_failed, tot.files_exported), (0, 1));
    let log = t.log.entries();
    assert_eq!(log.iter().filter(|e| e["kind"] == "failure").count(), 0);
    let requeued: Vec<_> = log.iter().filter(|e| e["kind"] == "requeued").collect();
    assert_eq!(
        requeued.len() as u64,
        rounds,
        "one line per copy that saw a change"
    );
    assert_eq!(requeued[0]["reason"], "changed during copy, re-exported");
    for e in &log {
        // What the daemon's logging-container writer accepts (it drops anything else).
        serde_json::from_value::<blob::LogEntry>(e.clone())
            .unwrap_or_else(|err| panic!("{e} is not a logging-container entry: {err}"));
    }
    let iterations: std::collections::BTreeSet<u64> = requeued
        .iter()
        .map(|e| e["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(iterations.len() as u64, rounds, "at most one per iteration");
}

#[test]
fn a_file_deleted_before_its_archive_ended_is_gone_not_failed() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    let b = t.file("projects/b.dat", 1);
    t.step();
    t.ns.remove(a);
    t.hsm(a, libc::ESTALE as u8); // what 2.16 answers for a deleted FID
    t.hsm(b, libc::ENOENT as u8); // b still exists: not "gone"
    t.step();
    assert_eq!(t.totals().files_failed, 0);
    assert!(!t.e.state().pending.contains_key(&a));
    assert!(t.e.state().pending.contains_key(&b), "b is tried again");
}

#[test]
fn a_failure_recorded_before_a_flush_is_reported_by_it() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    t.step();
    t.hsm(a, libc::EEXIST as u8); // a conflict the policy keeps
    t.step();
    assert_eq!(t.totals().files_failed, 1);
    // Long after, an idle system is flushed: the failure still stands.
    t.now += 5_000;
    let id = t.e.flush_begin(t.now);
    for _ in 0..2 {
        t.e.on_records(0, &[], true, t.now);
        t.step();
    }
    let out = t.e.flush_poll(id).expect("flush done");
    assert_eq!(out.failed, 1);
    assert_eq!(out.failures[0].path, "projects/a.dat");
    assert!(!policy::status::build(t.e.state(), t.now, None).everything_exported);
    // The file is fixed (a new change, exported): the failure no longer stands.
    let r = t.rec(RecordType::Close, a);
    t.feed(r);
    t.step();
    t.hsm(a, 0);
    t.step();
    assert!(t.e.state().failed.is_empty());
    let id = t.e.flush_begin(t.now);
    for _ in 0..2 {
        t.e.on_records(0, &[], true, t.now);
        t.step();
    }
    assert_eq!(t.e.flush_poll(id).expect("done").failed, 0);
    assert!(policy::status::build(t.e.state(), t.now, None).everything_exported);
}

#[test]
fn a_flush_during_an_outage_does_not_answer_until_the_files_are_exported() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    t.step();
    let id = t.e.flush_begin(t.now);
    for _ in 0..2 {
        t.e.on_records(0, &[], true, t.now);
        t.step();
    }
    for _ in 0..10 {
        t.hsm(a, libc::ETIMEDOUT as u8);
        t.step();
        assert_eq!(t.e.flush_poll(id), None, "not exported: no answer");
        t.now += DEFAULT_RETRY_MAX_MS;
        t.step();
    }
    t.hsm(a, 0);
    t.step();
    let out = t.e.flush_poll(id).expect("done once exported");
    assert_eq!(out.failed, 0);
}

#[test]
fn a_store_outage_delays_namespace_operations_in_order() {
    let mut c = cfg();
    c.on_delete = DeleteMode::Delete;
    let mut t = T::new(c);
    let projects = t.ns.fid_of("projects").unwrap();
    let a = t.file("projects/a.dat", 1);
    t.step();
    t.store.put("projects/a.dat", b"x", None); // what the copytool wrote
    t.hsm(a, 0);
    t.step();
    t.store.set_unavailable(true);
    t.ns.remove(a);
    unlink(&mut t, a, projects, "a.dat", true);
    t.step();
    assert_eq!(t.totals().files_failed, 0, "unavailable is not a failure");
    assert_eq!(t.e.state().ns_ops.len(), 1, "kept for the next try");
    assert!(!policy::status::build(t.e.state(), t.now, None).everything_exported);
    t.store.set_unavailable(false);
    t.step();
    assert_eq!(t.e.state().ns_ops.len(), 1, "not before its back-off");
    t.now += DEFAULT_RETRY_MAX_MS;
    t.step();
    assert!(t.e.state().ns_ops.is_empty());
    assert!(!t.store.names().contains(&"projects/a.dat".to_string()));
}

#[test]
fn archived_and_clean_files_are_skipped() {
    let mut t = T::new(cfg());
    let a = t.ns.add("projects/a.dat", FileKind::Regular, 5);
    t.ns.set_hsm(a, HS_EXISTS | HS_ARCHIVED, false);
    let r = t.rec(RecordType::Close, a);
    t.feed(r);
    t.step();
    assert!(t.ns.lock().archive_calls.is_empty());
    assert_eq!(t.current().files_discovered, 0);
    assert_eq!(t.totals().iterations_completed, 1);
    // Dirty again: exported.
    t.ns.set_hsm(a, HS_EXISTS | HS_ARCHIVED | HS_DIRTY, false);
    let r = t.rec(RecordType::Mtime, a);
    t.feed(r);
    t.step();
    assert_eq!(t.ns.archived_fids(), vec![a]);
}

#[test]
fn records_are_deduplicated_by_fid() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    let before = t.ns.lock().fid2path_calls;
    for _ in 0..100 {
        let r = t.rec(RecordType::Close, a);
        t.feed(r);
    }
    assert_eq!(
        t.ns.lock().fid2path_calls,
        before,
        "pending FIDs are not resolved again"
    );
    assert_eq!(t.e.state().pending.len(), 1);
    t.step();
    assert_eq!(t.ns.archived_fids(), vec![a]);
}

#[test]
fn out_of_scope_files_are_resolved_once_until_a_rename() {
    let mut t = T::new(cfg());
    let x = t.file("other/x", 1);
    let before = t.ns.lock().fid2path_calls;
    for _ in 0..10 {
        let r = t.rec(RecordType::Close, x);
        t.feed(r);
    }
    assert_eq!(t.ns.lock().fid2path_calls, before);
    // Moved into the prefix: the rename clears the cache and the next change is exported.
    let root = t.ns.fid_of("").unwrap();
    let proj = t.ns.fid_of("projects").unwrap();
    t.ns.set_path(x, "projects/x");
    let mut r = t.rec(RecordType::Rename, Fid::default());
    r.record.pfid = proj;
    r.record.name = b"x".to_vec();
    r.record.rename = Some(RenameExt {
        sfid: x,
        spfid: root,
        old_name: b"x".to_vec(),
    });
    t.feed(r);
    let r = t.rec(RecordType::Close, x);
    t.feed(r);
    assert!(t.e.state().pending.contains_key(&x));
}

// ---------------------------------------------------------------- files born under the daemon's eyes
// (issue 17: MDS calls per exported file). The fake namespace counts every call; discovery of a
// file whose CREATE and CLOSE the engine read asks the MDS nothing (no fid2path, no
// hsm_state), and every record that may have changed what the CREATE told makes it ask again.

/// MDS and client calls the engine made, from the fake's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Calls {
    fid2path: u64,
    hsm_state: u64,
    path2fid: u64,
}

impl std::ops::Sub for Calls {
    type Output = Calls;
    fn sub(self, o: Calls) -> Calls {
        Calls {
            fid2path: self.fid2path - o.fid2path,
            hsm_state: self.hsm_state - o.hsm_state,
            path2fid: self.path2fid - o.path2fid,
        }
    }
}

impl T {
    /// A file created and written under the daemon's eyes: its CREATE (parent FID and name, as
    /// Lustre records it) and the CLOSE of its write.
    fn born(&mut self, path: &str, size: u64) -> Fid {
        let fid = self.create(path, size);
        let r = self.rec(RecordType::Close, fid);
        self.feed(r);
        fid
    }
    /// Only the CREATE of a file.
    fn create(&mut self, path: &str, size: u64) -> Fid {
        let (dir, name) = path.rsplit_once('/').unwrap();
        let parent = match self.ns.fid_of(dir) {
            Some(f) => f,
            None => self.ns.add(dir, FileKind::Directory, 0),
        };
        let fid = self.ns.add(path, FileKind::Regular, size);
        let mut r = self.rec(RecordType::Create, fid);
        r.record.pfid = parent;
        r.record.name = name.as_bytes().to_vec();
        self.feed(r);
        fid
    }
    /// A RENAME record of `fid` from `from` to `to` (the namespace is moved too).
    fn rename(&mut self, fid: Fid, from: &str, to: &str) {
        let (sdir, sname) = from.rsplit_once('/').unwrap();
        let (tdir, tname) = to.rsplit_once('/').unwrap();
        let (spfid, pfid) = (self.ns.fid_of(sdir).unwrap(), self.ns.fid_of(tdir).unwrap());
        self.ns.set_path(fid, to);
        let mut r = self.rec(RecordType::Rename, Fid::default());
        r.record.pfid = pfid;
        r.record.name = tname.as_bytes().to_vec();
        r.record.rename = Some(RenameExt {
            sfid: fid,
            spfid,
            old_name: sname.as_bytes().to_vec(),
        });
        self.feed(r);
    }
    /// A CL_HSM record of `fid` (its flags left as they are).
    fn hsm_event(&mut self, fid: Fid, event: HsmEvent, error: u8) {
        let mut r = self.rec(RecordType::Hsm, fid);
        r.record
            .set_hsm(HsmEventInfo::new(event, u32::from(error), false));
        self.feed(r);
    }
    fn calls(&self) -> Calls {
        let fs = self.ns.lock();
        Calls {
            fid2path: fs.fid2path_calls,
            hsm_state: fs.hsm_state_calls,
            path2fid: fs.path2fid_calls,
        }
    }
    /// One step, and the calls it made.
    fn step_calls(&mut self) -> Calls {
        let before = self.calls();
        self.step();
        self.calls() - before
    }
}

#[test]
fn files_born_under_the_daemons_eyes_cost_the_mds_no_fid2path_and_no_hsm_state() {
    // The fixed bound (no request window): all 50 files are looked at and requested in one step.
    let mut t = T::new(EngineConfig {
        queue_target_ms: 0,
        ..cfg()
    });
    let before = t.calls();
    let fids: Vec<Fid> = (0..50)
        .map(|i| t.born(&format!("projects/f{i}"), 10))
        .collect();
    // Reading the records: the directory's path once (cached), nothing per file.
    let read = t.calls() - before;
    assert_eq!((read.fid2path, read.hsm_state), (1, 0), "{read:?}");
    let stats_before = t.ns.lock().stat_calls;
    let d = t.step_calls();
    assert_eq!(
        t.ns.lock().stat_calls - stats_before,
        50,
        "one lstat per file"
    );
    // Discovery: per file, the client's path2fid confirming the CREATE's path; no MDS call.
    assert_eq!(
        d,
        Calls {
            fid2path: 0,
            hsm_state: 0,
            path2fid: 50
        }
    );
    let calls = t.ns.lock().archive_calls.clone();
    assert_eq!(calls.len(), 1, "one batched request");
    let mut requested = calls[0].0.clone();
    requested.sort();
    assert_eq!(requested, fids);
    assert_eq!(
        (t.current().files_discovered, t.current().bytes_discovered),
        (50, 500)
    );
    assert_eq!(t.e.state().inflight[&fids[7]].path, "projects/f7");
    for f in &fids {
        t.hsm(*f, 0);
    }
    t.step();
    assert_eq!(t.totals().files_exported, 50);
    assert_eq!(t.totals().iterations_completed, 1);
}

/// Each record that may have changed what a file's CREATE told makes discovery ask the MDS for
/// that again (and only that); the file is requested once either way.
#[test]
fn a_record_that_may_have_changed_a_new_file_makes_discovery_ask_the_mds_again() {
    type Setup = fn(&mut T, Fid);
    let cases: [(&str, Setup, Calls, &str); 8] = [
        (
            "nothing since",
            |_, _| {},
            Calls {
                fid2path: 0,
                hsm_state: 0,
                path2fid: 1,
            },
            "projects/d/a",
        ),
        (
            // The path follows the RENAME record; path2fid confirms it.
            "renamed, the RENAME read",
            |t, a| t.rename(a, "projects/d/a", "projects/d/b"),
            Calls {
                fid2path: 0,
                hsm_state: 0,
                path2fid: 1,
            },
            "projects/d/b",
        ),
        (
            // The RENAME is not read yet: the CREATE's path leads nowhere now.
            "renamed, the RENAME not read yet",
            |t, a| t.ns.set_path(a, "projects/d/b"),
            Calls {
                fid2path: 1,
                hsm_state: 0,
                path2fid: 0,
            },
            "projects/d/b",
        ),
        (
            // Another file took the old name meanwhile: path2fid tells them apart.
            "renamed and replaced, not read yet",
            |t, a| {
                t.ns.set_path(a, "projects/d/b");
                t.ns.add("projects/d/a", FileKind::Regular, 99);
            },
            Calls {
                fid2path: 1,
                hsm_state: 0,
                path2fid: 1,
            },
            "projects/d/b",
        ),
        (
            // Its directory renamed (read): the file's own path is not in that record.
            "directory renamed",
            |t, a| {
                let d = t.ns.fid_of("projects/d").unwrap();
                t.rename(d, "projects/d", "projects/e");
                t.ns.set_path(a, "projects/e/a");
            },
            Calls {
                fid2path: 1,
                hsm_state: 0,
                path2fid: 0,
            },
            "projects/e/a",
        ),
        (
            "a hard link made",
            |t, a| {
                let p = t.ns.fid_of("projects/d").unwrap();
                let mut r = t.rec(RecordType::Hardlink, a);
                r.record.pfid = p;
                r.record.name = b"other".to_vec();
                t.feed(r);
            },
            Calls {
                fid2path: 1,
                hsm_state: 0,
                path2fid: 0,
            },
            "projects/d/a",
        ),
        (
            "one of two names unlinked",
            |t, a| {
                let p = t.ns.fid_of("projects/d").unwrap();
                unlink(t, a, p, "other", false);
            },
            Calls {
                fid2path: 1,
                hsm_state: 0,
                path2fid: 0,
            },
            "projects/d/a",
        ),
        (
            // Say `lfs hsm_set --norelease`: any CL_HSM, and the flags are asked for.
            "a CL_HSM before discovery",
            |t, a| t.hsm_event(a, HsmEvent::State, 0),
            Calls {
                fid2path: 0,
                hsm_state: 1,
                path2fid: 1,
            },
            "projects/d/a",
        ),
    ];
    for (what, setup, want, path) in cases {
        let mut t = T::new(cfg());
        let a = t.born("projects/d/a", 10);
        setup(&mut t, a);
        let got = t.step_calls();
        assert_eq!(got, want, "{what}");
        assert_eq!(t.ns.archived_fids(), vec![a], "{what}: requested once");
        assert_eq!(t.e.state().inflight[&a].path, path, "{what}");
        t.hsm(a, 0);
        t.step();
        assert_eq!(t.totals().files_exported, 1, "{what}");
    }
}

/// A file whose name another one was renamed onto (the RENAME's target FID) lost that name:
/// discovery asks fid2path, which says it is gone; nothing is requested.
#[test]
fn a_new_file_overwritten_by_a_rename_is_gone_not_requested() {
    let mut t = T::new(cfg());
    let a = t.born("projects/d/a", 1);
    let x = t.ns.add("projects/d/x", FileKind::Regular, 2);
    t.ns.remove(a);
    let d = t.ns.fid_of("projects/d").unwrap();
    t.ns.set_path(x, "projects/d/a");
    let mut r = t.rec(RecordType::Rename, a);
    r.record.pfid = d;
    r.record.name = b"a".to_vec();
    r.record.rename = Some(RenameExt {
        sfid: x,
        spfid: d,
        old_name: b"x".to_vec(),
    });
    t.feed(r);
    let got = t.step_calls();
    assert_eq!(
        got,
        Calls {
            fid2path: 1,
            hsm_state: 0,
            path2fid: 0
        }
    );
    assert!(t.ns.archived_fids().is_empty());
    assert_eq!(t.totals().files_failed, 0);
}

/// Flags set through the descriptor a file was created with come before its CLOSE: an
/// `llapi_hsm_import` creates, sets ARCHIVED|EXISTS|RELEASED (a CL_HSM), then closes. Until a
/// CLOSE is read, or once a CL_HSM is, the flags are asked for; the stub is found archived.
#[test]
fn a_file_not_closed_yet_or_with_a_cl_hsm_has_its_flags_asked_for() {
    use lustre::lustre_sys::HS_RELEASED;
    let mut t = T::new(cfg());
    // An import: CREATE, the HSM state set through the open descriptor, CLOSE.
    let stub = t.create("projects/stub", 4096);
    t.ns.set_hsm(stub, HS_EXISTS | HS_ARCHIVED | HS_RELEASED, false);
    t.hsm_event(stub, HsmEvent::State, 0);
    let r = t.rec(RecordType::Close, stub);
    t.feed(r);
    // A file still open for its first write: its CREATE, and an MTIME of the write, no CLOSE.
    let open = t.create("projects/open", 1);
    let r = t.rec(RecordType::Mtime, open);
    t.feed(r);
    let d = t.step_calls();
    assert_eq!((d.fid2path, d.hsm_state), (0, 2), "{d:?}");
    assert_eq!(
        t.ns.archived_fids(),
        vec![open],
        "the stub is archived already"
    );
}

/// A file the running iteration took but has not looked at yet (requests are bounded) hears of
/// a CL_HSM like a pending one: at its discovery, or at a save before it (which a restart would
/// find).
#[test]
fn a_record_about_a_file_waiting_in_the_running_iteration_counts_too() {
    for save_between in [false, true] {
        let mut c = cfg();
        c.max_in_flight = 1;
        let mut t = T::new(c);
        let a = t.born("projects/a", 1);
        let b = t.born("projects/b", 1);
        t.step();
        assert_eq!(t.ns.archived_fids(), vec![a], "b waits for a free request");
        // An admin archives b meanwhile; its CL_HSM is read before b is discovered.
        t.ns.set_hsm(b, HS_EXISTS | HS_ARCHIVED, false);
        t.hsm_event(b, HsmEvent::Archive, 0);
        if save_between {
            t.e.persist().unwrap();
            let it = t.e.state().iteration.clone().unwrap();
            assert!(!it.to_discover[0].1.hsm_known_empty());
        }
        t.hsm(a, 0);
        let d = t.step_calls();
        assert_eq!(d.hsm_state, 1, "save between: {save_between}: {d:?}");
        assert_eq!(t.ns.archived_fids(), vec![a], "b is archived and clean");
        assert_eq!(t.totals().files_exported, 1);
        assert_eq!(t.totals().iterations_completed, 1);
    }
}

/// An admin's `lfs hsm_archive` whose CL_HSM the engine has not read when it asks: a request it
/// would have skipped goes out. The coordinator drops it as not needed (or records it after the
/// admin's still running one); the admin's CL_HSM or the stale check settles the file, once.
#[test]
fn an_admins_archive_racing_the_daemon_is_counted_once_and_nothing_is_lost() {
    let mut c = cfg();
    c.stale_after_ms = 1_000;
    let mut t = T::new(c);
    // 1. The admin's archive ended before the request; its CL_HSM comes after it.
    let a = t.born("projects/a", 3);
    t.ns.set_hsm(a, HS_EXISTS | HS_ARCHIVED, false);
    let d = t.step_calls();
    assert_eq!(d.hsm_state, 0);
    assert_eq!(t.ns.lock().not_needed, vec![a], "dropped: not needed");
    t.hsm_event(a, HsmEvent::Archive, 0);
    t.step();
    assert_eq!(t.totals().files_exported, 1);
    assert!(t.e.state().inflight.is_empty());
    // 2. Its CL_HSM never comes (a mask without HSM): the stale check reads the flags.
    let b = t.born("projects/b", 3);
    t.ns.set_hsm(b, HS_EXISTS | HS_ARCHIVED, false);
    t.step();
    assert_eq!(t.ns.lock().not_needed, vec![a, b]);
    assert_eq!(t.totals().files_exported, 1, "not before the stale check");
    t.now += 1_000;
    t.step();
    assert_eq!(t.totals().files_exported, 2);
    assert!(t.e.state().inflight.is_empty());
    // 3. The admin's archive is still running: the coordinator records ours too. The first
    // CL_HSM settles the file; the second (the other archive's) counts nothing.
    let c = t.born("projects/c", 3);
    t.ns.set_hsm(c, HS_EXISTS, true);
    t.step();
    assert_eq!(t.ns.archived_fids(), vec![c]);
    t.hsm(c, 0);
    t.hsm(c, 0);
    t.step();
    assert_eq!(t.totals().files_exported, 3);
    assert_eq!(t.totals().files_failed, 0);
    assert!(t.e.state().pending.is_empty() && t.e.state().inflight.is_empty());
    assert_eq!(t.totals().iterations_completed, 3);
    // Nothing lost: a's next change is exported like any (its flags are asked for now).
    t.ns.set_hsm(a, HS_EXISTS | HS_ARCHIVED | HS_DIRTY, false);
    let mut r = t.rec(RecordType::Hsm, a);
    r.record
        .set_hsm(HsmEventInfo::new(HsmEvent::State, 0, true));
    t.feed(r);
    let d = t.step_calls();
    assert_eq!((d.fid2path, d.hsm_state), (1, 1), "{d:?}");
    assert_eq!(t.ns.archived_fids(), vec![c, a]);
}

/// What a file's records told survives a restart from the saved state (the records after it
/// are read again); a state file of a version that did not keep it loads, and its files are
/// looked up the old way.
#[test]
fn known_paths_survive_a_restart_and_an_older_state_file_asks_the_mds() {
    let mut c = cfg();
    c.min_age_ms = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("state.json"));
    let mut t = T::with_file(c.clone(), Some(file.clone()));
    let a = t.born("projects/a", 1);
    t.step(); // too young: saved pending
    assert!(t.e.state().pending[&a].hsm_known_empty());
    let mut e2: E = Engine::new(
        t.ns.clone(),
        t.store.clone(),
        t.log.clone(),
        c.clone(),
        1,
        Some(file.clone()),
        true,
    )
    .unwrap();
    let before = t.calls();
    e2.step(t.now + 10_000).unwrap();
    let d = t.calls() - before;
    assert_eq!((d.fid2path, d.hsm_state, d.path2fid), (0, 0, 1), "{d:?}");
    assert_eq!(t.ns.archived_fids(), vec![a]);

    // The same pending file as a daemon before this change saved it.
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("state.json"));
    let old = format!(
        r#"{{"version":1,"source":null,"cursors":[{{"last_read":2,"cleared":0}}],"autoexport_enabled":true,"pending":{{"{}":{{"holds":[[0,1]],"last_change_ms":1,"first_change_ms":1,"attempts":0,"retries":0,"retry_at_ms":0,"last_error":null}}}},"meta_pending":{{}},"ns_ops":[],"inflight":{{}},"iteration":null,"last_iteration":null,"next_iteration":1,"totals":{{"files_exported":0,"bytes_exported":0,"files_failed":0,"iterations_completed":0,"last_successful_ms":null,"last_started_ms":null,"last_completed_ms":null}},"recent_failures":[],"failed":{{}},"failed_ops":{{}},"coordinator_pause":null}}"#,
        Fid::new(0x200000401, 3, 0)
    );
    std::fs::write(file.path(), old).unwrap();
    let mut t = T::with_file(cfg(), Some(file));
    let a = t.ns.add("projects/a", FileKind::Regular, 1);
    assert_eq!(a, Fid::new(0x200000401, 3, 0));
    let d = t.step_calls();
    assert_eq!((d.fid2path, d.hsm_state), (1, 1), "{d:?}");
    assert_eq!(t.ns.archived_fids(), vec![a]);
}

/// ESHUTDOWN: a client whose MDS connection is gone; ENODEV: no such MDT device, as
/// `lustre-sim` answers while its MDS restarts (a file whose `fid2path` met that was recorded
/// failed for good and never exported: `restarts::kill9_of_the_mds_mid_export...`, once in a
/// few runs).
#[test]
fn an_mds_that_does_not_answer_loses_no_change() {
    for errno in [libc::ESHUTDOWN, libc::ENODEV] {
        an_mds_that_does_not_answer_with(errno);
    }
}

fn an_mds_that_does_not_answer_with(errno: i32) {
    let mut t = T::new(cfg());
    let a = t.ns.add("projects/a.dat", FileKind::Regular, 1);
    t.ns.lock().fid2path_errno = Some(errno);
    let r = t.rec(RecordType::Close, a);
    t.feed(r);
    assert!(
        t.e.state().pending.contains_key(&a),
        "kept although its path is unknown"
    );
    t.step(); // discovery fails transiently: re-queued, not failed, not dropped
    assert_eq!(t.totals().files_failed, 0, "errno {errno}");
    assert!(t.ns.lock().archive_calls.is_empty());
    for _ in 0..20 {
        t.now += 100; // a long outage does not use up the file's attempts
        t.step();
    }
    assert_eq!(t.totals().files_failed, 0);
    t.ns.lock().fid2path_errno = None;
    t.now += 1_000;
    t.step();
    assert_eq!(t.ns.archived_fids(), vec![a]);
}

#[test]
fn own_bookkeeping_never_creates_work() {
    let mut t = T::new(cfg());
    let a = t.ns.add("projects/a.dat", FileKind::Regular, 1);
    let mut r = t.rec(RecordType::Setxattr, a);
    r.record.xattr = Some(blob::EXPORT_XATTR.into());
    t.feed(r);
    let mut r = t.rec(RecordType::Hsm, a);
    r.record
        .set_hsm(HsmEventInfo::new(HsmEvent::Archive, 0, false));
    t.feed(r);
    let mut r = t.rec(RecordType::Hsm, a);
    r.record
        .set_hsm(HsmEventInfo::new(HsmEvent::State, 0, false));
    t.feed(r);
    t.step();
    assert!(t.e.state().pending.is_empty());
    assert!(t.ns.lock().archive_calls.is_empty());
    assert_eq!(t.ns.lock().cleared.get(&0), Some(&3));
    // ...but the MDT flagging an archived file dirty is a change.
    let mut r = t.rec(RecordType::Hsm, a);
    r.record
        .set_hsm(HsmEventInfo::new(HsmEvent::State, 0, true));
    t.feed(r);
    assert!(t.e.state().pending.contains_key(&a));
}

#[test]
fn min_age_delays_export() {
    let mut c = cfg();
    c.min_age_ms = 5_000;
    let mut t = T::new(c);
    let a = t.file("projects/a.dat", 1);
    t.step();
    assert!(t.ns.lock().archive_calls.is_empty());
    t.now += 4_000;
    let r = t.rec(RecordType::Close, a); // a new change restarts the wait
    t.feed(r);
    t.now += 4_000;
    t.step();
    assert!(t.ns.lock().archive_calls.is_empty());
    t.now += 1_000;
    t.step();
    assert_eq!(t.ns.archived_fids(), vec![a]);
}

#[test]
fn changelog_is_cleared_only_below_unfinished_work() {
    let mut t = T::new(cfg());
    t.file("other/x", 1); // 1: out of scope, final at once
    let a = t.file("projects/a.dat", 1); // 2
    t.file("other/y", 1); // 3
    t.e.persist().unwrap();
    assert_eq!(t.ns.lock().cleared.get(&0), Some(&1));
    t.step(); // requested, still in flight
    assert_eq!(t.ns.lock().cleared.get(&0), Some(&1));
    t.hsm(a, 0); // 4
    t.step();
    assert_eq!(t.ns.lock().cleared.get(&0), Some(&4));
}

#[test]
fn rate_limited_saves_never_clear_beyond_the_saved_state() {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("state.json"));
    let mut t = T::with_file(cfg(), Some(file.clone()));
    t.e.persist().unwrap();
    t.file("other/x", 1); // out of scope: clearable at once, once saved
    t.e.persist_due(100, 1_000).unwrap();
    assert_eq!(
        t.ns.lock().cleared.get(&0),
        None,
        "not saved yet, so not cleared"
    );
    assert_eq!(
        file.load::<State>().unwrap().unwrap().cursors[0].last_read,
        0
    );
    t.e.persist_due(2_000, 1_000).unwrap();
    assert_eq!(t.ns.lock().cleared.get(&0), Some(&1));
    assert_eq!(
        file.load::<State>().unwrap().unwrap().cursors[0].last_read,
        1
    );
}

#[test]
fn files_discovered_grows_so_far_during_an_iteration() {
    let mut c = cfg();
    c.discover_chunk = 2;
    let mut t = T::new(c);
    for i in 0..5 {
        t.file(&format!("projects/f{i}"), 1 << 20);
    }
    t.step();
    let c = t.current();
    assert_eq!((c.files_discovered, c.bytes_discovered), (2, 2 << 20));
    assert!(t.e.state().iteration.is_some());
    t.step();
    t.step();
    assert_eq!(t.current().files_discovered, 5);
    assert_eq!(t.ns.archived_fids().len(), 5);
}

#[test]
fn batches_respect_batch_size_and_a_refused_batch_is_split() {
    let mut c = cfg();
    c.batch_size = 2;
    let mut t = T::new(c);
    let fids: Vec<Fid> = (0..5)
        .map(|i| t.file(&format!("projects/f{i}"), 1))
        .collect();
    t.ns.lock().refuse.insert(fids[3], libc::EPERM);
    t.step();
    let calls = t.ns.lock().archive_calls.clone();
    let sizes: Vec<usize> = calls.iter().map(|c| c.0.len()).collect();
    // [0,1] ok, [2,3] refused -> 2 alone ok, 3 alone refused, [4] ok
    assert_eq!(sizes, vec![2, 1, 1]);
    assert_eq!(t.totals().files_failed, 1);
    assert_eq!(t.e.state().inflight.len(), 4);
}

#[test]
fn kill_and_restart_counts_every_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("state.json"));
    let mut t = T::with_file(cfg(), Some(file.clone()));
    let a = t.file("projects/a.dat", 7);
    let b = t.file("projects/b.dat", 9);
    t.e.step(t.now).unwrap(); // requests sent; state saved write-ahead, not persisted since
    t.hsm(a, 0); // processed in memory, then "kill -9": not saved
                 // Restart from disk with the same namespace; the changelog replays from the saved cursor.
    let ns = t.ns.clone();
    let mut e2: E = Engine::new(
        ns.clone(),
        t.store.clone(),
        t.log.clone(),
        cfg(),
        1,
        Some(file.clone()),
        true,
    )
    .unwrap();
    assert_eq!(e2.state().inflight.len(), 2);
    assert_eq!(e2.resume_points(), vec![3]);
    // Replay of everything from index 1: old records are skipped, the HSM record applies once.
    let mut replay = Vec::new();
    for i in 1..=2 {
        replay.push(Change::simple(
            0,
            i,
            RecordType::Close,
            if i == 1 { a } else { b },
        ));
    }
    let mut h = Change::simple(0, 3, RecordType::Hsm, a);
    h.record
        .set_hsm(HsmEventInfo::new(HsmEvent::Archive, 0, false));
    replay.push(h.clone());
    e2.on_records(0, &replay, false, t.now);
    e2.on_records(0, &[h], false, t.now); // a duplicate delivery changes nothing
    e2.step(t.now).unwrap();
    assert_eq!(e2.state().totals.files_exported, 1);
    ns.set_hsm(b, HS_EXISTS | HS_ARCHIVED, false);
    let mut h = Change::simple(0, 4, RecordType::Hsm, b);
    h.record
        .set_hsm(HsmEventInfo::new(HsmEvent::Archive, 0, false));
    e2.on_records(0, &[h], false, t.now);
    e2.step(t.now).unwrap();
    e2.persist().unwrap();
    let tot = &e2.state().totals;
    assert_eq!(
        (
            tot.files_exported,
            tot.bytes_exported,
            tot.iterations_completed
        ),
        (2, 16, 1)
    );
    assert_eq!(ns.archived_fids().len(), 2, "no request sent twice");
    let saved: State = file.load().unwrap().unwrap();
    assert_eq!(saved.totals.files_exported, 2);
}

#[test]
fn stale_requests_are_settled_from_hsm_state() {
    let mut c = cfg();
    c.stale_after_ms = 1_000;
    let mut t = T::new(c);
    let a = t.file("projects/a.dat", 4);
    let b = t.file("projects/b.dat", 4);
    let gone = t.file("projects/gone.dat", 4);
    t.step();
    // No CL_HSM ever: a turned out archived (request skipped as "not needed"), b's request
    // vanished, gone was deleted.
    t.ns.set_hsm(a, HS_EXISTS | HS_ARCHIVED, false);
    t.ns.set_hsm(b, 0, false);
    t.ns.remove(gone);
    t.now += 1_000;
    t.step();
    assert_eq!(t.totals().files_exported, 1);
    assert!(t.e.state().inflight.is_empty() || t.e.state().inflight.contains_key(&b));
    // b was re-queued and requested again in the next iteration.
    assert_eq!(t.ns.archived_fids().iter().filter(|f| **f == b).count(), 2);
}

#[test]
fn directories_and_symlinks_become_blobs() {
    let mut t = T::new(cfg());
    let d = t.ns.add("projects/dir", FileKind::Directory, 0);
    let r = t.rec(RecordType::Mkdir, d);
    t.feed(r);
    let l = t.ns.add("projects/link", FileKind::Symlink, 3);
    t.ns.lock().nodes.get_mut(&l).unwrap().link = b"a.dat".to_vec();
    let r = t.rec(RecordType::Softlink, l);
    t.feed(r);
    t.step();
    let blobs = t.store.lock().clone();
    let (body, meta) = &blobs["projects/dir"];
    assert!(body.is_empty());
    assert_eq!(meta.as_ref().unwrap().kind, blob::FileKind::Dir);
    assert_eq!(meta.as_ref().unwrap().permissions, 0o755);
    let (body, meta) = &blobs["projects/link"];
    assert_eq!(body, b"a.dat");
    assert_eq!(meta.as_ref().unwrap().kind, blob::FileKind::Symlink);
    assert_eq!(t.totals().files_exported, 2);
    assert!(t.ns.lock().archive_calls.is_empty());
}

#[test]
fn a_failing_directory_blob_counts_as_failed() {
    let mut t = T::new(cfg());
    t.store
        .fail
        .lock()
        .unwrap()
        .insert("projects/dir".into(), "403 AuthorizationFailure".into());
    let d = t.ns.add("projects/dir", FileKind::Directory, 0);
    let r = t.rec(RecordType::Mkdir, d);
    t.feed(r);
    t.step();
    assert_eq!(t.totals().files_failed, 1);
    assert!(t
        .log
        .entries()
        .iter()
        .any(|e| e["kind"] == "failure" && e["error"].as_str().unwrap().contains("403")));
}

fn unlink(t: &mut T, fid: Fid, parent: Fid, name: &str, last: bool) {
    let mut r = t.rec(RecordType::Unlink, fid);
    r.record.pfid = parent;
    r.record.name = name.as_bytes().to_vec();
    r.record.flags = if last {
        lustre::lustre_sys::CLF_UNLINK_LAST
    } else {
        0
    };
    t.feed(r);
}

#[test]
fn on_delete_keep_leaves_blobs_and_delete_removes_them() {
    for mode in [DeleteMode::Keep, DeleteMode::Delete] {
        let mut c = cfg();
        c.on_delete = mode;
        let mut t = T::new(c);
        t.store.put("projects/a.dat", b"x", None);
        t.store.put("projects/b.dat", b"x", None);
        let p = t.ns.fid_of("projects").unwrap();
        let a = t.ns.add("projects/a.dat", FileKind::Regular, 1);
        t.ns.remove(a);
        unlink(&mut t, a, p, "a.dat", true);
        unlink(&mut t, Fid::new(9, 9, 0), p, "b.dat", false); // not the last link: stays
        t.step();
        let names = t.store.names();
        assert!(names.contains(&"projects/b.dat".to_string()));
        assert_eq!(
            names.contains(&"projects/a.dat".to_string()),
            mode == DeleteMode::Keep,
            "{mode:?}"
        );
    }
}

#[test]
fn on_rename_move_moves_every_blob_under_a_directory() {
    let mut c = cfg();
    c.on_rename = RenameMode::Move;
    let mut t = T::new(c);
    let p = t.ns.fid_of("projects").unwrap();
    let d = t.ns.add("projects/old", FileKind::Directory, 0);
    // Learn the directory's path before the rename (as the cache would from earlier records).
    let r = t.rec(RecordType::Mkdir, d);
    t.feed(r);
    t.step();
    for n in ["projects/old/a", "projects/old/s/b"] {
        t.store.put(n, n.as_bytes(), None);
    }
    t.store.put("projects/older", b"not under old/", None);
    t.ns.set_path(d, "projects/new");
    let mut r = t.rec(RecordType::Rename, Fid::default());
    r.record.pfid = p;
    r.record.name = b"new".to_vec();
    r.record.rename = Some(RenameExt {
        sfid: d,
        spfid: p,
        old_name: b"old".to_vec(),
    });
    t.feed(r);
    t.step();
    let names = t.store.names();
    assert_eq!(
        names,
        vec![
            "projects/new",
            "projects/new/a",
            "projects/new/s/b",
            "projects/older"
        ]
    );
    assert_eq!(
        t.store.get_bytes("projects/new/s/b").unwrap(),
        b"projects/old/s/b"
    );
}

#[test]
fn on_rename_keep_moves_nothing() {
    let mut t = T::new(cfg());
    let p = t.ns.fid_of("projects").unwrap();
    let a = t.ns.add("projects/new.dat", FileKind::Regular, 1);
    t.store.put("projects/old.dat", b"x", None);
    let mut r = t.rec(RecordType::Rename, Fid::default());
    r.record.pfid = p;
    r.record.name = b"new.dat".to_vec();
    r.record.rename = Some(RenameExt {
        sfid: a,
        spfid: p,
        old_name: b"old.dat".to_vec(),
    });
    t.feed(r);
    t.step();
    assert_eq!(t.store.names(), vec!["projects/old.dat"]);
    assert!(t.ns.lock().archive_calls.is_empty());
}

#[test]
fn metadata_sync_updates_blob_metadata_and_ignore_does_not() {
    for mode in [MetadataMode::Ignore, MetadataMode::Sync] {
        let mut c = cfg();
        c.metadata = mode;
        let mut t = T::new(c);
        let a = t.ns.add("projects/a.dat", FileKind::Regular, 1);
        t.store.put("projects/a.dat", b"x", None);
        t.ns.lock().nodes.get_mut(&a).unwrap().stat.mode = 0o100600;
        let r = t.rec(RecordType::Setattr, a);
        t.feed(r);
        t.step();
        let meta = t.store.lock()["projects/a.dat"].1.clone();
        match mode {
            MetadataMode::Ignore => assert_eq!(meta, None),
            MetadataMode::Sync => assert_eq!(meta.unwrap().permissions, 0o600),
        }
        assert!(
            t.ns.lock().archive_calls.is_empty(),
            "metadata alone is not a content export"
        );
    }
}

#[test]
fn disabled_autoexport_ignores_changes_but_still_settles_requests() {
    let mut t = T::new(cfg());
    let a = t.file("projects/a.dat", 1);
    t.step();
    t.e.set_enabled(false);
    t.file("projects/b.dat", 1);
    t.hsm(a, 0);
    t.step();
    assert_eq!(t.totals().files_exported, 1);
    assert!(t.e.state().pending.is_empty());
    assert_eq!(t.ns.lock().archive_calls.len(), 1);
}

#[test]
fn flush_waits_for_changes_before_it_and_lists_failures() {
    let mut c = cfg();
    c.min_age_ms = 3_600_000; // flush overrides min_age for what it waits on
    let mut t = T::new(c);
    let a = t.file("projects/a.dat", 1);
    let b = t.file("projects/b.dat", 1);
    let id = t.e.flush_begin(t.now);
    t.step();
    assert_eq!(t.e.flush_poll(id), None);
    // Two reader passes reach the end of the changelog after the flush was asked.
    t.e.on_records(0, &[], true, t.now);
    t.step();
    assert_eq!(t.e.flush_poll(id), None);
    t.e.on_records(0, &[], true, t.now);
    t.step();
    assert_eq!(t.ns.archived_fids().len(), 2, "min_age overridden");
    assert_eq!(t.e.flush_poll(id), None, "in flight");
    let c = t.file("projects/c.dat", 1); // after the barrier: not waited for
    t.hsm(a, 0);
    t.step();
    assert_eq!(t.e.flush_poll(id), None);
    t.hsm(b, libc::EACCES as u8);
    t.step();
    let out = t.e.flush_poll(id).expect("flush done");
    assert_eq!(out.failures.len(), 1);
    assert_eq!(out.failures[0].path, "projects/b.dat");
    assert!(t.e.state().pending.contains_key(&c));
}

#[test]
fn uncarriable_names_and_unresolvable_paths_fail_with_a_reason() {
    let mut t = T::new(cfg());
    let bad = t.file("projects/bad-\u{1}-name", 1);
    let lost = t.file("projects/lost", 1);
    // fid2path now answers a path that does not lead back to the file (a lossy name).
    t.ns.lock()
        .path_override
        .insert(lost, b"projects/l\xef\xbf\xbdst".to_vec());
    t.step();
    assert!(
        t.ns.archived_fids().is_empty(),
        "no request for either: {:?} bad={bad} lost={lost} {:?}",
        t.ns.archived_fids(),
        t.log.entries()
    );
    assert_eq!(t.totals().files_failed, 2);
    let entries = t.log.entries();
    let reason = |p: &str| {
        entries
            .iter()
            .find(|e| e["kind"] == "failure" && e["path"].as_str().is_some_and(|x| x.contains(p)))
            .map(|e| e["error"].to_string())
    };
    assert!(
        reason("bad-").unwrap().contains("invalid blob name"),
        "{entries:?}"
    );
    assert!(
        reason("l\u{fffd}st").unwrap().contains("does not resolve"),
        "{entries:?}"
    );
}

#[test]
fn a_state_kept_for_other_changelogs_is_refused_and_a_grown_file_system_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("state.json"));
    let src = |user: &str, mdts: &[&str]| Source {
        changelog_user: user.into(),
        mdts: mdts.iter().map(|m| m.to_string()).collect(),
        users: vec![],
    };
    let open = |t: &T| -> E {
        Engine::new(
            t.ns.clone(),
            t.store.clone(),
            t.log.clone(),
            cfg(),
            1,
            Some(file.clone()),
            true,
        )
        .unwrap()
    };
    let mut t = T::with_file(cfg(), Some(file.clone()));
    t.e.bind_source(src("cl1", &["fsa-MDT0000"])).unwrap();
    t.file("projects/a", 1);
    t.e.persist().unwrap();
    let saved = file.load::<State>().unwrap().unwrap();
    assert_eq!(saved.source, Some(src("cl1", &["fsa-MDT0000"])));
    assert_eq!(saved.cursors[0].last_read, 1);

    for (user, mdts) in [("cl1", &["fsb-MDT0000"][..]), ("cl2", &["fsa-MDT0000"][..])] {
        let mut e = open(&t);
        let err = e.bind_source(src(user, mdts)).unwrap_err();
        assert!(
            err.contains("changelog user cl1 on fsa-MDT0000")
                && err.contains(&format!("user {user} on {}", mdts[0]))
                && err.contains("state_dir")
                && !err.contains('\n'),
            "{err}"
        );
    }
    // Refused before anything was written: the state on disk is the one that was there.
    assert_eq!(file.load::<State>().unwrap().unwrap(), saved);

    // One more MDT (the file system grew): the same changelogs, recorded with the new one.
    let mut e = open(&t);
    e.bind_source(src("cl1", &["fsa-MDT0000", "fsa-MDT0001"]))
        .unwrap();
    e.persist().unwrap();
    let grown = file.load::<State>().unwrap().unwrap();
    assert_eq!(
        grown.source,
        Some(src("cl1", &["fsa-MDT0000", "fsa-MDT0001"]))
    );
    assert_eq!(grown.cursors[0].last_read, 1, "the cursor is kept");
}

#[test]
fn a_refused_changelog_clear_waits_before_it_is_tried_again() {
    let mut t = T::new(cfg());
    t.ns.lock().clear_errno = Some(libc::EINVAL);
    t.file("other/x", 1); // out of scope: clearable at once
    t.e.persist().unwrap();
    assert_eq!(t.ns.lock().clear_calls, 1);
    for _ in 0..5 {
        t.e.persist().unwrap(); // every round persists; the refused clear is not re-sent
    }
    assert_eq!(t.ns.lock().clear_calls, 1, "not retried before the pause");
    assert_eq!(t.ns.lock().cleared.get(&0), None);
    // After the pause (none here) it is tried again, and succeeds once the MDT accepts it.
    t.e.set_clear_retry(std::time::Duration::ZERO);
    t.ns.lock().clear_errno = None;
    t.e.persist().unwrap();
    assert_eq!(t.ns.lock().clear_calls, 2);
    assert_eq!(t.ns.lock().cleared.get(&0), Some(&1));
}

// ---------------------------------------------------------------- property: claims are facts

/// One step of a random history: writers, the store, the copytool and the admin interleaved.
#[derive(Debug, Clone)]
enum Op {
    /// A writer changes file `i` (creating it the first time) and closes it.
    Write(usize),
    /// The store goes down or comes back.
    Outage(bool),
    /// Time passes (seconds) and the daemon runs a round (with a reader pass).
    Tick(u8),
    /// The copytool ends one of the copies it runs.
    Copy(usize),
    /// The blob of file `i` is changed by someone else (conflict) or that is resolved.
    Conflict(usize, bool),
    /// The admin runs `flush --wait`.
    Flush,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..6usize).prop_map(Op::Write),
        1 => any::<bool>().prop_map(Op::Outage),
        4 => (0..40u8).prop_map(Op::Tick),
        5 => (0..8usize).prop_map(Op::Copy),
        1 => ((0..6usize), any::<bool>()).prop_map(|(i, c)| Op::Conflict(i, c)),
        1 => Just(Op::Flush),
    ]
}

/// Each file's FID, path and version when a flush was asked.
type Asked = Vec<(Fid, String, u64)>;

/// The world around the engine: file versions, blobs, the copies the copytool runs.
struct World {
    t: T,
    files: Vec<Option<(Fid, u64)>>,
    version: u64,
    outage: bool,
    conflict: [bool; 6],
    seen_calls: usize,
    /// Copies running: FID and the version they read.
    running: Vec<(Fid, u64)>,
    /// Flushes waiting: id, then each file's version when it was asked.
    flushes: Vec<(u64, Asked)>,
}

impl World {
    fn new() -> World {
        World {
            t: T::new(cfg()),
            files: vec![None; 6],
            version: 0,
            outage: false,
            conflict: [false; 6],
            seen_calls: 0,
            running: Vec::new(),
            flushes: Vec::new(),
        }
    }
    fn path(i: usize) -> String {
        format!("projects/f{i}")
    }
    fn blob_version(&self, i: usize) -> Option<u64> {
        let blobs = self.t.store.lock();
        let (body, _) = blobs.get(&World::path(i))?;
        Some(u64::from_le_bytes(body.as_slice().try_into().ok()?))
    }
    fn write(&mut self, i: usize) {
        self.version += 1;
        let v = self.version;
        let fid = match self.files[i] {
            Some((fid, _)) => {
                let mut fs = self.t.ns.lock();
                if let Some(n) = fs.nodes.get_mut(&fid) {
                    n.stat.size = v;
                    if n.hsm.is_archived() {
                        n.hsm.states |= HS_DIRTY;
                    }
                }
                fid
            }
            None => self.t.ns.add(&World::path(i), FileKind::Regular, v),
        };
        self.files[i] = Some((fid, v));
        let r = self.t.rec(RecordType::Close, fid);
        self.t.feed(r);
    }
    fn round(&mut self) {
        self.t.e.on_records(0, &[], true, self.t.now);
        self.t.step();
        let calls = self.t.ns.lock().archive_calls.clone();
        for (fids, _) in &calls[self.seen_calls..] {
            for f in fids {
                let v = self.current(*f);
                self.running.push((*f, v));
            }
        }
        self.seen_calls = calls.len();
        self.check_flushes();
        self.check_status();
    }
    fn current(&self, fid: Fid) -> u64 {
        self.files
            .iter()
            .flatten()
            .find(|(f, _)| *f == fid)
            .map_or(0, |(_, v)| *v)
    }
    fn index(&self, fid: Fid) -> usize {
        self.files
            .iter()
            .position(|f| f.is_some_and(|(x, _)| x == fid))
            .unwrap_or(usize::MAX)
    }
    fn copy(&mut self, k: usize) {
        if self.running.is_empty() {
            return;
        }
        let (fid, read) = self.running.remove(k % self.running.len());
        let i = self.index(fid);
        let errno = if self.outage {
            libc::ETIMEDOUT
        } else if self.current(fid) != read {
            libc::EBUSY
        } else if self.conflict[i] {
            libc::EEXIST
        } else {
            self.t.store.put(&World::path(i), &read.to_le_bytes(), None);
            0
        };
        self.t.hsm(fid, errno as u8);
    }
    fn check_status(&self) {
        let s = policy::status::build(self.t.e.state(), self.t.now, None);
        if !s.everything_exported {
            return;
        }
        for (i, f) in self.files.iter().enumerate() {
            if let Some((_, v)) = f {
                assert_eq!(
                    self.blob_version(i),
                    Some(*v),
                    "everythingExported claimed while {} has no current blob",
                    World::path(i)
                );
            }
        }
    }
    fn check_flushes(&mut self) {
        let mut waiting = Vec::new();
        for (id, asked) in std::mem::take(&mut self.flushes) {
            let Some(out) = self.t.e.flush_poll(id) else {
                waiting.push((id, asked));
                continue;
            };
            assert_eq!(out.failed as usize, out.failures.len());
            for (fid, path, v) in asked {
                let i = self.index(fid);
                let listed = out.failures.iter().any(|f| f.path == path);
                let ok = self.blob_version(i).is_some_and(|b| b >= v);
                assert!(
                    ok || listed,
                    "flush answered without listing {path}, whose blob is not current"
                );
            }
        }
        self.flushes = waiting;
    }
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Write(i) => self.write(i),
            Op::Outage(on) => {
                self.outage = on;
                self.t.store.set_unavailable(on);
            }
            Op::Tick(s) => {
                self.t.now += u64::from(s) * 1000;
                self.round();
            }
            Op::Copy(k) => self.copy(k),
            Op::Conflict(i, on) => self.conflict[i] = on,
            Op::Flush => {
                let id = self.t.e.flush_begin(self.t.now);
                let asked = self
                    .files
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| f.map(|(fid, v)| (fid, World::path(i), v)))
                    .collect();
                self.flushes.push((id, asked));
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Random interleavings of writes, outages, conflicts, copies and flushes: neither
    /// `everythingExported` nor a finished flush ever claims a file that has no current blob,
    /// and once the world heals every file is exported and the claim becomes true.
    #[test]
    fn flush_and_everything_exported_never_claim_a_file_without_its_current_blob(
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
            w.check_status();
        }
        // Heal: the store is back, conflicts are resolved (and the files written again, as an
        // admin does after fixing a conflict), every copy runs to its end.
        w.apply(&Op::Outage(false));
        w.conflict = [false; 6];
        for i in 0..6 {
            if w.files[i].is_some() {
                w.write(i);
            }
        }
        let last = w.t.e.flush_begin(w.t.now);
        let mut answer = None;
        for _ in 0..400 {
            while !w.running.is_empty() {
                w.copy(0);
            }
            w.t.now += DEFAULT_RETRY_MAX_MS;
            w.round();
            if answer.is_none() {
                answer = w.t.e.flush_poll(last);
            }
            if answer.is_some() && w.running.is_empty() && w.t.e.state().pending.is_empty() {
                break;
            }
        }
        let answer = answer.expect("the last flush answers once the world healed");
        proptest::prop_assert_eq!(answer.failed, 0);
        let s = policy::status::build(w.t.e.state(), w.t.now, None);
        let any_file = w.files.iter().any(Option::is_some);
        proptest::prop_assert!(!any_file || s.everything_exported, "{:?}", s);
        for (i, f) in w.files.iter().enumerate() {
            if let Some((_, v)) = f {
                proptest::prop_assert_eq!(w.blob_version(i), Some(*v));
            }
        }
    }
}

/// Issue 13, item 1: the coordinator never holds more than `max_in_flight` of our requests, and
/// discovery asks for HSM flags only: no `current_action` (a walk of the whole action catalog on
/// Lustre) for any file whose flags decide.
#[test]
fn requests_in_flight_are_bounded_and_discovery_never_walks_the_action_catalog() {
    let mut c = cfg();
    c.max_in_flight = 10;
    let mut t = T::new(c);
    let fids: Vec<Fid> = (0..45)
        .map(|i| t.file(&format!("projects/f{i}"), 1))
        .collect();
    let mut rounds = 0;
    while t.e.state().iteration.is_some() || rounds == 0 {
        t.step();
        let inflight: Vec<Fid> = t.e.state().inflight.keys().copied().collect();
        assert!(inflight.len() <= 10, "{} in flight", inflight.len());
        for f in inflight {
            t.hsm(f, 0);
        }
        rounds += 1;
        assert!(rounds < 50, "the iteration never ends");
    }
    t.step();
    assert_eq!(t.totals().files_exported, 45);
    let archived = t.ns.archived_fids();
    assert_eq!(archived.len(), 45, "each file requested once");
    for f in &fids {
        assert!(archived.contains(f));
    }
    let fs = t.ns.lock();
    assert_eq!(fs.current_action_calls, 0);
    assert_eq!(fs.hsm_state_calls, 45);
}

/// Issue 13, item 2: a refused batch queued the items before the refusal (the MDT records item
/// by item); they are not requested twice, the refused file fails alone, a file deleted meanwhile
/// is gone (not failed), and the files after the refusal are requested again.
#[test]
fn a_refused_batch_queues_nothing_twice_and_a_vanished_file_is_gone_not_failed() {
    let mut t = T::new(cfg());
    let fids: Vec<Fid> = (0..6)
        .map(|i| t.file(&format!("projects/f{i}"), 1))
        .collect();
    {
        let mut fs = t.ns.lock();
        fs.refuse.insert(fids[2], libc::EPERM); // NOARCHIVE
        fs.vanish_on_archive.insert(fids[4]);
    }
    t.step();
    let archived = t.ns.archived_fids();
    for (i, f) in fids.iter().enumerate() {
        let n = archived.iter().filter(|x| *x == f).count();
        let want = if i == 2 || i == 4 { 0 } else { 1 };
        assert_eq!(n, want, "file {i} requested {n} times: {archived:?}");
    }
    assert_eq!(t.totals().files_failed, 1);
    assert!(t.e.state().failed.contains_key(&fids[2]));
    assert!(!t.e.state().failed.contains_key(&fids[4]));
    for i in [0, 1, 3, 5] {
        t.hsm(fids[i], 0);
    }
    t.step();
    assert_eq!(t.totals().files_exported, 4);
    assert!(t.e.state().iteration.is_none());
    assert!(t.e.state().inflight.is_empty());
}

/// Issue 13, item 1: a straggler (no CL_HSM seen) whose flags say archived and clean is settled
/// from `hsm_state_get` alone; only one still not archived costs a `current_action`.
#[test]
fn stragglers_are_settled_from_the_flags_and_current_action_only_when_they_cannot_tell() {
    let mut c = cfg();
    c.stale_after_ms = 1_000;
    let mut t = T::new(c);
    let a = t.file("projects/a.dat", 4);
    let b = t.file("projects/b.dat", 4);
    t.step();
    t.ns.set_hsm(a, HS_EXISTS | HS_ARCHIVED, false);
    // b still queued (the fake keeps action_pending from the request)
    t.now += 1_000;
    t.step();
    assert_eq!(t.totals().files_exported, 1);
    assert!(t.e.state().inflight.contains_key(&b));
    assert_eq!(t.ns.lock().current_action_calls, 1);
}

/// Issue 13, item 5: a request that makes no progress past the iteration deadline ends its
/// iteration; it is carried (counted once, never requested again), the next iteration exports
/// the new changes, and the carried file still settles when its CL_HSM comes.
#[test]
fn a_stuck_request_is_carried_past_the_deadline_and_never_stalls_the_next_iteration() {
    let mut c = cfg();
    c.iteration_deadline_ms = 10_000;
    let mut t = T::new(c);
    let stuck = t.file("projects/stuck.dat", 1);
    let ok = t.file("projects/ok.dat", 1);
    t.step();
    t.hsm(ok, 0);
    t.step();
    assert_eq!(
        t.e.state().iteration.as_ref().map(|i| i.counters.number),
        Some(1)
    );
    t.now += 5_000;
    t.step();
    assert!(
        t.e.state().iteration.is_some(),
        "before the deadline it waits"
    );
    t.now += 5_001;
    t.step();
    let last =
        t.e.state()
            .last_iteration
            .clone()
            .expect("iteration 1 ended");
    assert_eq!((last.number, last.files_carried), (1, 1));
    assert!(t.e.state().inflight[&stuck].carried);
    // New changes, and the stuck file changes again: iteration 2 exports the new file and does
    // not queue a duplicate request for the stuck one.
    let fresh = t.file("projects/fresh.dat", 1);
    let r = t.rec(RecordType::Close, stuck);
    t.feed(r);
    t.now += 1;
    t.step();
    t.hsm(fresh, 0);
    t.step();
    let last = t.e.state().last_iteration.clone().unwrap();
    assert_eq!(
        last.number, 2,
        "iteration 2 ended with the stuck request still queued"
    );
    assert_eq!(last.files_carried, 0, "counted once");
    let archived = t.ns.archived_fids();
    assert_eq!(archived.iter().filter(|f| **f == stuck).count(), 1);
    assert!(archived.contains(&fresh));
    let s = policy::status::build(t.e.state(), t.now, None);
    assert_eq!(s.stuck_requests, 1);
    // The stuck one ends at last: exported, and its later change was covered by that copy.
    t.hsm(stuck, 0);
    t.step();
    assert!(t.e.state().inflight.is_empty());
    assert_eq!(t.totals().files_exported, 3);
    assert!(t.e.state().pending.is_empty());
}

/// A daemon restarted in the middle of an iteration gives the requests its predecessor sent the
/// whole deadline, counted from the restart: none is carried at the first step.
#[test]
fn a_restart_mid_iteration_does_not_carry_the_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("state.json"));
    let mut c = cfg();
    c.iteration_deadline_ms = 10_000;
    let mut t = T::with_file(c.clone(), Some(file.clone()));
    let a = t.file("projects/a.dat", 1);
    t.step();
    assert!(t.e.state().inflight.contains_key(&a));
    let now = t.now + 1;
    let mut e = Engine::new(
        t.ns.clone(),
        t.store.clone(),
        t.log.clone(),
        c,
        1,
        Some(file),
        true,
    )
    .unwrap();
    e.step(now).unwrap();
    assert!(
        !e.state().inflight[&a].carried,
        "not carried right after the restart"
    );
    assert!(e.state().iteration.is_some());
    e.step(now + 9_000).unwrap();
    assert!(!e.state().inflight[&a].carried, "still within the deadline");
    e.step(now + 10_001).unwrap();
    assert!(
        e.state().inflight[&a].carried,
        "carried once the deadline passed without progress"
    );
}

/// Issue 13, item 5: a coordinator that is shut down (EAGAIN to every request) is a pause with
/// back-off shown in status: no file-by-file retries, no attempt spent, nothing failed.
#[test]
fn a_shut_down_coordinator_is_a_pause_with_back_off_not_failed_tries() {
    let mut t = T::new(cfg());
    let fids: Vec<Fid> = (0..5)
        .map(|i| t.file(&format!("projects/f{i}"), 1))
        .collect();
    for f in &fids {
        t.ns.lock().refuse.insert(*f, libc::EAGAIN);
    }
    t.step();
    assert_eq!(
        t.ns.lock().archive_requests,
        1,
        "one refused request, no file-by-file retry"
    );
    let s = policy::status::build(t.e.state(), t.now, None);
    assert_eq!(s.status_code, "CoordinatorPaused");
    assert!(s.coordinator_paused.is_some());
    // Many rounds inside the back-off: nothing asked.
    for _ in 0..20 {
        t.now += 10;
        t.step();
    }
    assert_eq!(t.ns.lock().archive_requests, 1);
    // Still down after the back-off: asked once more, the back-off grows.
    for _ in 0..30 {
        t.now += 100;
        t.step();
    }
    let asked = t.ns.lock().archive_requests;
    assert!(
        (2..=3).contains(&asked),
        "{asked} requests in 4 s of outage"
    );
    // Back: every file exported, none failed, no attempt counted.
    t.ns.lock().refuse.clear();
    t.now += 60_000;
    t.step();
    t.step();
    for f in &fids {
        t.hsm(*f, 0);
    }
    t.step();
    assert_eq!(t.totals().files_exported, 5);
    assert_eq!(t.totals().files_failed, 0);
    assert!(t.e.state().coordinator_pause.is_none());
    assert!(t.e.state().failed.is_empty());
}

/// Issue 13, item 6: a utime (CL_MTIME alone) on an archived, clean file updates the blob's
/// modtime with `metadata = "sync"`; no content export, nothing with `ignore`.
#[test]
fn metadata_sync_follows_an_mtime_only_change_to_the_blob() {
    for mode in [MetadataMode::Ignore, MetadataMode::Sync] {
        let mut c = cfg();
        c.metadata = mode;
        let mut t = T::new(c);
        let a = t.ns.add("projects/a.dat", FileKind::Regular, 1);
        t.store.put("projects/a.dat", b"x", None);
        t.ns.set_hsm(a, HS_EXISTS | HS_ARCHIVED, false);
        t.ns.lock().nodes.get_mut(&a).unwrap().stat.mtime_sec = 1_234_567;
        let r = t.rec(RecordType::Mtime, a);
        t.feed(r);
        t.step();
        t.step();
        let meta = t.store.lock()["projects/a.dat"].1.clone();
        match mode {
            MetadataMode::Ignore => assert_eq!(meta, None),
            MetadataMode::Sync => assert_eq!(
                meta.and_then(|m| m.mtime_ns),
                Some(1_234_567 * 1_000_000_000)
            ),
        }
        assert!(
            t.ns.lock().archive_calls.is_empty(),
            "archived and clean: not exported again"
        );
    }
}

/// Issue 13, item 4: users are per MDT. A state keeps each MDT's user; reading one MDT with
/// another id is refused, the same ids written as a table are the same source. At start, a user
/// the MDT does not have is found by a clear that changes nothing for a known one.
#[test]
fn changelog_users_are_per_mdt_and_an_unknown_one_is_found_at_start() {
    let src = |display: &str, users: &[&str]| Source {
        changelog_user: display.into(),
        mdts: vec!["fs-MDT0000".into(), "fs-MDT0001".into()],
        users: users.iter().map(|u| u.to_string()).collect(),
    };
    let mut t = T::new(cfg());
    t.e.bind_source(src("cl1", &["cl1", "cl1"])).unwrap();
    // The same users written as a table: accepted.
    t.e.bind_source(src("MDT0000=cl1,MDT0001=cl1", &["cl1", "cl1"]))
        .unwrap();
    // MDT0001 now read with cl2: its cursor counts in cl1's records, refused.
    let err =
        t.e.bind_source(src("MDT0000=cl1,MDT0001=cl2", &["cl1", "cl2"]))
            .unwrap_err();
    assert!(err.contains("state_dir"), "{err}");

    // Nothing cleared and the changelog starting at record 1: nothing can be asked.
    t.ns.lock().clear_errno = Some(libc::ENOENT);
    assert!(t.e.check_users(&[Some(1)]).is_ok());
    assert_eq!(t.ns.lock().clear_calls, 0);
    // The changelog starts at 8: a clear to 7 is asked; ENOENT means no such user.
    let (m, e) = t.e.check_users(&[Some(8)]).unwrap_err();
    assert_eq!((m, e.errno), (0, libc::ENOENT));
    assert_eq!(t.ns.lock().cleared.get(&0), None, "nothing was cleared");
    // A known user (the clear is refused as already past, or accepted as a no-op): fine.
    t.ns.lock().clear_errno = Some(libc::EINVAL);
    assert!(t.e.check_users(&[Some(8)]).is_ok());
    // At run time a clear answered ENOENT is named for that MDT.
    t.ns.lock().clear_errno = Some(libc::ENOENT);
    let f = t.file("projects/a", 1);
    t.step();
    t.hsm(f, 0);
    t.step();
    assert!(t.e.unknown_users().contains_key(&0));
}

/// Issue 13, item 7: files keep being created on an MDT and no CLOSE ever comes: the mask lacks
/// CLOSE; the daemon says so once, naming the fix. One CLOSE seen ends the watch.
#[test]
fn files_created_without_any_close_warn_about_the_changelog_mask() {
    let mut t = T::new(cfg());
    for i in 0..CREATES_WITHOUT_CLOSE_WARN + 10 {
        let f = t.ns.add(&format!("projects/f{i}"), FileKind::Regular, 1);
        let r = t.rec(RecordType::Create, f);
        t.feed(r);
    }
    let w =
        t.e.mask_warnings()
            .get(&0)
            .cloned()
            .expect("a warning for MDT 0");
    assert!(w.contains("changelog_mask=+CLOSE+HSM"), "{w}");

    let mut t = T::new(cfg());
    t.file("projects/first", 1); // a CLOSE
    for i in 0..CREATES_WITHOUT_CLOSE_WARN + 10 {
        let f = t.ns.add(&format!("projects/f{i}"), FileKind::Regular, 1);
        let r = t.rec(RecordType::Create, f);
        t.feed(r);
    }
    assert!(t.e.mask_warnings().is_empty());
}

/// Issue 17, item 1: a change made while a long iteration runs (a bulk load waiting for request
/// slots) joins it ahead of the iteration's backlog: it is requested with the next free slot,
/// not after the backlog, and the iteration ends only once it is exported too.
#[test]
fn a_new_change_joins_a_running_iteration_ahead_of_its_backlog() {
    let mut c = cfg();
    c.max_in_flight = 2;
    let mut t = T::new(c);
    let bulk: Vec<Fid> = (0..20)
        .map(|i| t.file(&format!("projects/bulk/f{i:02}"), 1))
        .collect();
    t.step();
    assert_eq!(t.e.state().inflight.len(), 2, "the bound holds the backlog");
    let first: Vec<Fid> = t.e.state().inflight.keys().copied().collect();
    t.now += 100;
    let fresh = t.file("projects/fresh.dat", 1);
    t.step(); // no slot free (and the change has not settled yet)
              // One slot frees: the fresh file takes it, in iteration 1.
    t.now += 100;
    t.hsm(first[0], 0);
    t.step();
    let calls = t.ns.lock().archive_calls.clone();
    let last = calls.last().expect("a request after the slot freed");
    assert_eq!(last.0, vec![fresh], "the new change went first: {calls:?}");
    assert_eq!(last.1, b"lb:j=autoexport-1:i=1".to_vec());
    // The rest of the backlog follows; the iteration ends once everything, fresh included, is in.
    let mut rounds = 0;
    while t.e.state().iteration.is_some() {
        let inflight: Vec<Fid> = t.e.state().inflight.keys().copied().collect();
        for f in inflight {
            t.hsm(f, 0);
        }
        t.now += 100;
        t.step();
        rounds += 1;
        assert!(rounds < 40, "the iteration never ends");
    }
    let last =
        t.e.state()
            .last_iteration
            .clone()
            .expect("iteration 1 ended");
    assert_eq!(last.number, 1);
    assert_eq!(last.files_exported, bulk.len() as u64 + 1);
    let archived = t.ns.archived_fids();
    assert_eq!(archived.len(), bulk.len() + 1, "each file requested once");
}

/// A file put back after a try that did not export it does not join the iteration that tried
/// it (a file counts once per iteration). That iteration hands the files it has not requested
/// over to the next one and ends once its requests settle; the next tries the file first, then
/// the backlog, and nothing is counted twice.
#[test]
fn a_file_put_back_makes_its_iteration_hand_the_backlog_to_the_next_one() {
    let mut c = cfg();
    c.max_in_flight = 1;
    let mut t = T::new(c);
    let busy = t.file("projects/busy.dat", 1);
    let other = t.file("projects/other.dat", 1);
    t.step();
    let first = *t.e.state().inflight.keys().next().expect("one in flight");
    // The first copy ends EBUSY (changed during the copy): back to pending with a back-off.
    let mut r = t.rec(RecordType::Hsm, first);
    r.record.set_hsm(HsmEventInfo::new(
        HsmEvent::Archive,
        libc::EBUSY as u32,
        true,
    ));
    t.feed(r);
    t.now += 60_000; // past any back-off
    t.step();
    let second = if first == busy { other } else { busy };
    let calls = t.ns.lock().archive_calls.clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[1],
        (vec![first], b"lb:j=autoexport-1:i=2".to_vec()),
        "the requeued file goes first, in the next iteration"
    );
    let one =
        t.e.state()
            .last_iteration
            .clone()
            .expect("iteration 1 ended");
    assert_eq!(
        (one.number, one.files_discovered, one.files_requeued),
        (1, 1, 1),
        "the file handed over was not discovered by iteration 1: {one:?}"
    );
    t.hsm(first, 0);
    t.now += 100;
    t.step();
    let calls = t.ns.lock().archive_calls.clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[2], (vec![second], b"lb:j=autoexport-1:i=2".to_vec()));
    t.hsm(second, 0);
    t.now += 100;
    t.step();
    let two = t.current();
    assert_eq!(
        (two.number, two.files_discovered, two.files_exported),
        (2, 2, 2)
    );
    assert_eq!(t.totals().files_exported, 2);
}

/// Changes joining the running iteration without a pause do not keep a file it put back waiting
/// for as long as they come (the iteration would never end): its next try comes once the
/// requests in flight settled, long before the backlog is done.
#[test]
fn a_steady_trickle_of_joiners_does_not_keep_a_put_back_file_waiting() {
    let mut c = cfg();
    c.max_in_flight = 1;
    let mut t = T::new(c);
    let bulk: Vec<Fid> = (0..20)
        .map(|i| t.file(&format!("projects/bulk/f{i:02}"), 1))
        .collect();
    t.step();
    let busy = *t.e.state().inflight.keys().next().expect("one in flight");
    t.hsm(busy, libc::EBUSY as u8);
    let mut trickle = Vec::new();
    let mut retried_at = None;
    for round in 0..10 {
        // A new file every round joins; whatever is in flight ends well.
        trickle.push(t.file(&format!("projects/new/t{round}"), 1));
        t.now += 1_000;
        t.step();
        let inflight: Vec<Fid> = t.e.state().inflight.keys().copied().collect();
        if inflight.contains(&busy) {
            retried_at = Some(round);
            break;
        }
        for f in inflight {
            t.hsm(f, 0);
        }
        t.now += 100;
        t.step();
    }
    let round = retried_at.expect("the put-back file was tried again while the trickle lasted");
    let archived = t.ns.archived_fids();
    let bulk_done = bulk.iter().filter(|f| archived.contains(f)).count();
    assert!(
        bulk_done < 10,
        "tried again after round {round}, with {bulk_done} of 20 bulk files requested"
    );
    // Everything ends exported once, counted once.
    t.end_everything_well();
    let tot = t.totals();
    assert_eq!(
        tot.files_exported,
        (bulk.len() + trickle.len()) as u64,
        "{tot:?}"
    );
    let log = t.log.entries();
    let discovered: u64 = log
        .iter()
        .filter(|e| e["kind"] == "summary")
        .map(|e| e["files_discovered"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        discovered,
        (bulk.len() + trickle.len() + 1) as u64,
        "each file discovered once per iteration that tried it (the busy one twice)"
    );
}

/// An iteration that hands over does not wait for its requests in flight (a 1 GiB copy would
/// hold every new change back): the next one starts at once, with the file changed again and
/// the new change first, and takes the request in flight over: it counts there, once, also
/// across a restart of the daemon.
#[test]
fn a_hand_over_moves_the_requests_in_flight_to_the_next_iteration() {
    let mut c = cfg();
    c.max_in_flight = 2;
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("state.json"));
    let mut t = T::with_file(c.clone(), Some(file.clone()));
    let bulk: Vec<Fid> = (0..5)
        .map(|i| t.file(&format!("projects/bulk/f{i}"), 1 << 20))
        .collect();
    t.step();
    let sent: Vec<Fid> = t.e.state().inflight.keys().copied().collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    // The first ends well and is written again at once, with a new file beside it; the other
    // request is still in flight (a long copy).
    let (again, slow) = (sent[0], sent[1]);
    t.hsm(again, 0);
    t.ns.set_hsm(again, HS_EXISTS | HS_ARCHIVED | HS_DIRTY, false);
    let r = t.rec(RecordType::Close, again);
    t.feed(r);
    let fresh = t.file("projects/fresh.dat", 1 << 20);
    t.now += 200;
    t.step();
    let one =
        t.e.state()
            .last_iteration
            .clone()
            .expect("iteration 1 ended at once");
    assert_eq!(
        (one.number, one.files_discovered, one.files_exported),
        (1, 1, 1),
        "the request in flight left iteration 1: {one:?}"
    );
    assert_eq!(one.bytes_discovered, 1 << 20);
    let two = t.current();
    assert_eq!(
        (two.number, two.files_discovered),
        (2, 2),
        "the request taken over and the one sent: {two:?}"
    );
    // One slot was free: iteration 2 sent the file written again or the new change, not the
    // backlog, without waiting for the request in flight.
    let calls = t.ns.lock().archive_calls.clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1].1, b"lb:j=autoexport-1:i=2".to_vec());
    assert!(
        calls[1].0 == vec![again] || calls[1].0 == vec![fresh],
        "{:?}",
        calls[1]
    );
    // A restart changes nothing: the request in flight settles in iteration 2.
    t.e = Engine::new(
        t.ns.clone(),
        t.store.clone(),
        t.log.clone(),
        c,
        1,
        Some(file),
        true,
    )
    .unwrap();
    t.hsm(slow, 0);
    t.now += 100;
    t.step();
    t.end_everything_well();
    let two =
        t.e.state()
            .last_iteration
            .clone()
            .expect("iteration 2 ended");
    assert_eq!(two.number, 2);
    assert_eq!(
        (two.files_discovered, two.files_exported),
        (bulk.len() as u64 + 1, bulk.len() as u64 + 1),
        "the slow request, the file written again, the new change and 3 backlog files: {two:?}"
    );
    assert_eq!(t.totals().files_exported, bulk.len() as u64 + 2);
}

/// A file put back by an earlier iteration that comes out of its back-off while a later one runs
/// does not wait for that one to end either: it makes it hand over (a restarted daemon cannot
/// tell which iteration put a file back, and a file counts once per iteration).
#[test]
fn a_file_put_back_by_an_earlier_iteration_makes_the_running_one_hand_over() {
    let mut c = cfg();
    c.max_in_flight = 1;
    let mut t = T::new(c);
    let a = t.file("projects/a.dat", 1);
    t.step();
    t.hsm(a, libc::ETIMEDOUT as u8); // the store timed out: put back with a back-off
    t.step(); // iteration 1 ends; a waits out its back-off
    assert_eq!(t.totals().iterations_completed, 1);
    let bulk: Vec<Fid> = (0..5)
        .map(|i| t.file(&format!("projects/bulk/f{i}"), 1))
        .collect();
    t.step();
    assert_eq!(t.current().number, 2);
    t.now += 60_000;
    t.step();
    let inflight: Vec<Fid> = t.e.state().inflight.keys().copied().collect();
    assert_eq!(inflight.len(), 1);
    t.hsm(inflight[0], 0);
    t.now += 100;
    t.step();
    let calls = t.ns.lock().archive_calls.clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[2], (vec![a], b"lb:j=autoexport-1:i=3".to_vec()));
    let two =
        t.e.state()
            .last_iteration
            .clone()
            .expect("iteration 2 ended");
    // It ended at once: its request in flight counted in iteration 3.
    assert_eq!((two.number, two.files_discovered), (2, 0), "{two:?}");
    assert!(bulk.contains(&calls[1].0[0]));
}

/// A change of a file the running iteration holds but has not reached yet is covered by the
/// look the iteration takes when its turn comes: it neither makes the iteration hand over nor
/// leaves work for another iteration.
#[test]
fn a_change_before_a_files_turn_is_covered_by_that_turn() {
    let mut c = cfg();
    c.max_in_flight = 1;
    let mut t = T::new(c);
    let a = t.file("projects/a.dat", 1);
    let b = t.file("projects/b.dat", 1);
    t.step();
    let first = *t.e.state().inflight.keys().next().expect("one in flight");
    let second = if first == a { b } else { a };
    let r = t.rec(RecordType::Close, second); // written again while it waits for its turn
    t.feed(r);
    t.now += 100;
    t.step();
    t.hsm(first, 0);
    t.now += 100;
    t.step();
    assert_eq!(t.ns.archived_fids(), vec![first, second]);
    t.hsm(second, 0);
    t.now += 100;
    t.step();
    t.now += 60_000;
    t.step();
    assert!(t.e.state().pending.is_empty(), "{:?}", t.e.state().pending);
    let tot = t.totals();
    assert_eq!(
        (tot.iterations_completed, tot.files_exported),
        (1, 2),
        "{tot:?}"
    );
    assert_eq!(t.ns.archived_fids().len(), 2);
}

/// A file the running iteration exported and that changed again is exported again by the next
/// iteration ahead of the rest of the backlog, not after the whole backlog.
#[test]
fn a_file_changed_again_after_its_export_goes_ahead_of_the_backlog() {
    let mut c = cfg();
    c.max_in_flight = 1;
    let mut t = T::new(c);
    let bulk: Vec<Fid> = (0..10)
        .map(|i| t.file(&format!("projects/bulk/f{i}"), 1))
        .collect();
    t.step();
    let first = *t.e.state().inflight.keys().next().expect("one in flight");
    t.hsm(first, 0);
    t.now += 100;
    t.step();
    let next =
        *t.e.state()
            .inflight
            .keys()
            .next()
            .expect("the next one in flight");
    // The first file is written again (the MDT marks it dirty).
    t.ns.set_hsm(first, HS_EXISTS | HS_ARCHIVED | HS_DIRTY, false);
    let r = t.rec(RecordType::Close, first);
    t.feed(r);
    t.now += 100;
    t.step();
    assert_eq!(
        t.ns.archived_fids().len(),
        2,
        "iteration 2 has no free slot while the request it took over is in flight"
    );
    t.hsm(next, 0);
    t.now += 100;
    t.step();
    let calls = t.ns.lock().archive_calls.clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[2], (vec![first], b"lb:j=autoexport-1:i=2".to_vec()));
    let one =
        t.e.state()
            .last_iteration
            .clone()
            .expect("iteration 1 ended");
    assert_eq!(
        (one.files_discovered, one.files_exported),
        (1, 1),
        "iteration 1 ended when the file changed again, its request in flight went on in 2: {one:?}"
    );
    t.end_everything_well();
    assert_eq!(t.totals().files_exported, bulk.len() as u64 + 1);
    assert_eq!(t.ns.archived_fids().len(), bulk.len() + 1);
}

/// Files joining a running iteration in separate passes: the newest pass goes first, ahead of
/// earlier joiners and of the backlog (a trickle beside a bulk load written meanwhile), and the
/// earlier joiners still come before the backlog.
#[test]
fn the_newest_changes_joining_a_running_iteration_go_first() {
    let mut c = cfg();
    c.max_in_flight = 1;
    let mut t = T::new(c);
    let bulk: Vec<Fid> = (0..5)
        .map(|i| t.file(&format!("projects/bulk/f{i}"), 1))
        .collect();
    t.step();
    t.now += 100;
    let early = t.file("projects/early.dat", 1);
    t.now += 100;
    t.step(); // early joins; no slot free yet
    let late = t.file("projects/late.dat", 1);
    t.now += 100;
    t.step(); // late joins in front of early
    let mut order = Vec::new();
    for _ in 0..3 {
        let inflight: Vec<Fid> = t.e.state().inflight.keys().copied().collect();
        for f in inflight {
            t.hsm(f, 0);
        }
        t.now += 100;
        t.step();
        order.extend(t.e.state().inflight.keys().copied());
    }
    assert_eq!(&order[..2], &[late, early], "{order:?}");
    assert!(bulk.contains(&order[2]), "then the backlog: {order:?}");
}
