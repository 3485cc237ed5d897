//! Failure handling end to end: cancel, change during archive, conflicts, a blob store outage,
//! dry run; and the failure entries in the logging container.

use e2e::copytool_suite as harness;

use std::time::Duration;

use harness::{pattern, Env, BLOCK};

/// A file big enough that its upload (64 KiB blocks, one in flight, progress every 100 ms) is
/// still running when the test sees it RUNNING and freezes the copytool (SIGSTOP).
const BIG: usize = 1500 * BLOCK;
const SLOW: [&str; 4] = ["--blocks-in-flight", "1", "-u", "100ms"];

/// Waits until the archive of `p` has moved bytes, then freezes the copytool.
fn pause_mid_upload(env: &Env, ct: &harness::Copytool, p: &std::path::Path) {
    env.wait_bytes_moved(p);
    ct.pause();
    assert!(
        !ct.log().contains(" done "),
        "upload finished before the test could act"
    );
}

fn entries_with(env: &Env, reason: &str) -> Vec<serde_json::Value> {
    env.log_entries()
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

#[test]
fn cancel_mid_upload_leaves_no_blob() {
    let env = Env::start("");
    let ct = env.copytool(&SLOW);
    let p = env.write("big/cancel.bin", &pattern(BIG, 1));
    env.hsm("hsm_archive", &p, None);
    pause_mid_upload(&env, &ct, &p);
    env.hsm("hsm_cancel", &p, None);
    ct.resume();
    env.wait_until("copytool saw the cancel", Duration::from_secs(60), || {
        ct.log().contains("cancel")
    });
    env.wait_until("action over", Duration::from_secs(60), || {
        !env.lfs(&["hsm_action", p.to_str().unwrap()])
            .1
            .contains("RUNNING")
    });
    assert!(
        env.actions().contains("status=CANCELED"),
        "{}",
        env.actions()
    );
    assert!(
        env.blob("big/cancel.bin").is_none(),
        "a cancelled upload must commit nothing"
    );
    assert!(
        !env.flags(&p).contains(&"archived".to_string()),
        "{:?}",
        env.flags(&p)
    );
    assert!(env.record(&p).is_none());
    // Nothing is broken: archiving again works.
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    assert_eq!(env.blob("big/cancel.bin").map(|b| b.len()), Some(BIG));
}

#[test]
fn modification_during_archive_ends_dirty_and_the_next_archive_exports_new_content() {
    let env = Env::start("");
    let ct = env.copytool(&SLOW);
    let p = env.write("big/changing.bin", &pattern(BIG, 2));
    env.hsm("hsm_archive", &p, None);
    pause_mid_upload(&env, &ct, &p);
    let new = pattern(BIG, 3);
    std::fs::write(&p, &new).unwrap();
    ct.resume();
    env.wait_until("archive over", Duration::from_secs(60), || {
        !env.lfs(&["hsm_action", p.to_str().unwrap()])
            .1
            .contains("RUNNING")
    });
    let log = ct.log();
    assert!(
        log.contains("file changed during archive") || log.contains("Device or resource busy"),
        "the change must be detected:\n{log}"
    );
    let flags = env.flags(&p);
    assert!(
        !flags.contains(&"archived".to_string()) || flags.contains(&"dirty".to_string()),
        "{flags:?}"
    );
    // The blob read while the file changed may mix old and new bytes: it was withdrawn.
    assert!(
        env.blob("big/changing.bin").is_none(),
        "no torn blob left visible"
    );
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    assert_eq!(env.blob("big/changing.bin"), Some(new));
}

#[test]
fn conflict_fail_protects_a_blob_changed_behind_our_back() {
    let env = Env::start("");
    let ct = env.copytool(&[]);
    let p = env.write("c/f.txt", b"version 1");
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    env.put_blob("c/f.txt", b"changed on the blob side");
    std::fs::write(&p, b"version 2").unwrap();
    env.wait_state(&p, "exists dirty archived", &[&ct]);
    env.hsm("hsm_archive", &p, Some("lb:j=autoexport:i=7"));
    env.wait_until("conflict logged", Duration::from_secs(60), || {
        !entries_with(&env, "conflict").is_empty()
    });
    assert_eq!(
        env.blob("c/f.txt").as_deref(),
        Some(&b"changed on the blob side"[..])
    );
    assert!(
        env.flags(&p).contains(&"dirty".to_string()),
        "{:?}",
        env.flags(&p)
    );
    let e = &entries_with(&env, "conflict")[0];
    assert_eq!(e["kind"], "failure");
    assert_eq!(e["operation"], "archive");
    assert_eq!(e["path"], "c/f.txt");
    assert_eq!(e["job"], "autoexport");
    assert_eq!(e["iteration"], 7);
    assert_eq!(e["errno"], libc::EEXIST);
    assert_eq!(e["http_status"], 412);
    assert!(e["fid"].as_str().unwrap_or("").starts_with("[0x"), "{e}");
    assert!(e["time"].as_str().unwrap_or("").ends_with('Z'), "{e}");

    // With conflict = "overwrite" (SIGHUP reload) the same request goes through.
    env.rewrite_policy("[autoexport]\nconflict = \"overwrite\"\n");
    ct.signal(libc::SIGHUP);
    env.wait_until("policy reloaded", Duration::from_secs(30), || {
        ct.log().contains("policy reloaded")
    });
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    assert_eq!(env.blob("c/f.txt").as_deref(), Some(&b"version 2"[..]));
}

/// A copytool killed between the commit of a blob and the export record (simulated by removing the
/// record after an archive): the blob carries this file's `lustre_fid`, so under `conflict = "fail"`
/// the next archive replaces it instead of failing with a conflict forever. A blob carrying another
/// file's FID at a new file's name is still a conflict.
#[test]
fn our_blob_without_export_record_is_replaced_and_another_files_blob_conflicts() {
    let env = Env::start("");
    let ct = env.copytool(&[]);
    let p = env.write("k/f.bin", b"version 1");
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    env.remove_record(&p);
    assert!(env.record(&p).is_none());
    std::fs::write(&p, b"version 2").unwrap();
    env.wait_state(&p, "exists dirty archived", &[&ct]);
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    assert_eq!(env.blob("k/f.bin").as_deref(), Some(&b"version 2"[..]));
    let info = env.blob_info("k/f.bin").unwrap();
    let rec = env.record(&p).expect("export record written");
    assert_eq!(rec["etag"].as_str(), info.etag.as_deref());

    let meta = blob::Metadata {
        fid: info.metadata.unwrap().fid,
        ..Default::default()
    };
    assert!(meta.fid.is_some());
    env.put_blob_with("k/g.bin", b"exported from f", &meta);
    let q = env.write("k/g.bin", b"a different file");
    env.hsm("hsm_archive", &q, None);
    env.wait_until("conflict logged", Duration::from_secs(60), || {
        !entries_with(&env, "conflict").is_empty()
    });
    let conflicts = entries_with(&env, "conflict");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0]["path"], "k/g.bin");
    assert_eq!(
        env.blob("k/g.bin").as_deref(),
        Some(&b"exported from f"[..])
    );
    assert!(env.record(&q).is_none());
}

#[test]
fn blob_store_outage_fails_actions_without_crashing_and_recovers() {
    let env = Env::start("");
    let mut ct = env.copytool(&[]);
    env.az.stop();
    let p = env.write("o/file", b"during the outage");
    env.hsm("hsm_archive", &p, Some("lb:j=autoexport:i=1"));
    env.wait_until("failure reported", Duration::from_secs(120), || {
        ct.log().contains("action failed")
    });
    assert!(
        ct.wait_exit(Duration::from_millis(100)).is_none(),
        "copytool must keep running"
    );
    assert!(!env.flags(&p).contains(&"archived".to_string()));
    env.az.restart();
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    assert_eq!(
        env.blob("o/file").as_deref(),
        Some(&b"during the outage"[..])
    );
    // The failure entry buffered during the outage reaches the logging container afterwards.
    env.wait_until("outage failure logged", Duration::from_secs(60), || {
        env.log_entries()
            .iter()
            .any(|e| e["reason"] == "transient" && e["path"] == "o/file")
    });
}

#[test]
fn dry_run_reports_failure_not_success() {
    let env = Env::start("");
    let ct = env.copytool(&["--dry-run"]);
    let p = env.write("d/x", b"not really");
    env.hsm("hsm_archive", &p, None);
    env.wait_until("dry run logged", Duration::from_secs(60), || {
        !entries_with(&env, "dry_run").is_empty()
    });
    assert!(env.blob("d/x").is_none());
    assert!(
        !env.flags(&p).contains(&"archived".to_string()),
        "{:?}",
        env.flags(&p)
    );
    assert!(
        ct.log().contains("dry run: would upload 10 bytes to d/x"),
        "{}",
        ct.log()
    );
}

#[test]
fn a_file_truncated_during_archive_ends_ebusy_and_is_exported_again() {
    let env = Env::start("");
    let ct = env.copytool(&SLOW);
    let p = env.write("big/truncated.bin", &pattern(BIG, 4));
    env.hsm("hsm_archive", &p, None);
    pause_mid_upload(&env, &ct, &p);
    // Truncated to a tenth while the copytool is frozen mid-read: its next reads come up short.
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len((BIG / 10) as u64).unwrap();
    drop(f);
    ct.resume();
    env.wait_until("archive over", Duration::from_secs(60), || {
        !env.lfs(&["hsm_action", p.to_str().unwrap()])
            .1
            .contains("RUNNING")
    });
    // A change during the copy is not a failure: the copytool says it in its own log and ends
    // the action EBUSY; the logging container gets no failure entry (the policy engine writes
    // one "requeued" line per such copy).
    env.wait_until("the change is logged", Duration::from_secs(30), || {
        let log = ct.log();
        log.contains("EBUSY to the coordinator") && log.contains("truncated")
    });
    assert!(
        entries_with(&env, "changed").is_empty(),
        "no failure entry for a change: {:?}",
        env.log_entries()
    );
    assert!(
        entries_with(&env, "io").is_empty(),
        "a truncation is a change (EBUSY), not an I/O error: {:?}\n{}",
        env.log_entries(),
        ct.log()
    );
    assert!(env.blob("big/truncated.bin").is_none(), "nothing committed");
    env.hsm("hsm_archive", &p, None);
    env.wait_state(&p, "exists archived", &[&ct]);
    assert_eq!(
        env.blob("big/truncated.bin").map(|b| b.len()),
        Some(BIG / 10)
    );
}
