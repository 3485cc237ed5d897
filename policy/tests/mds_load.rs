//! The load the daemon and the copytool put on the MDS, counted by the simulator as Lustre would
//! feel it (issue 13): calls per exported file stay constant as the export grows, and no
//! `current_action` walks the action catalog per file. Real processes: Azurite, lustre-sim,
//! lhsmtool_blob and the lustre-blob daemon.

use e2e::stack::{Stack, StackOptions};
use std::collections::BTreeMap;
use std::process::Command;

fn calls(s: &BTreeMap<String, u64>) -> u64 {
    s.iter()
        .filter(|(k, _)| k.starts_with("call.") && k.as_str() != "call.GetParam")
        .map(|(_, v)| v)
        .sum()
}

fn get(s: &BTreeMap<String, u64>, k: &str) -> u64 {
    s.get(k).copied().unwrap_or(0)
}

fn export_round(s: &Stack, from: usize, to: usize) -> (f64, f64, BTreeMap<String, u64>) {
    let before = s.sim.stats();
    for i in from..to {
        s.write(&format!("d{}/f{i}", i / 500), format!("{i}").as_bytes());
    }
    let o = s.flush("600s");
    assert!(
        o.status.success(),
        "flush: {}{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        s.logs()
    );
    let after = s.sim.stats();
    let n = (to - from) as f64;
    let per_file = (calls(&after) - calls(&before)) as f64 / n;
    let walked = (get(&after, "current_action.records_read")
        - get(&before, "current_action.records_read")) as f64
        / n;
    let delta: BTreeMap<String, u64> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - get(&before, k)))
        .filter(|(_, v)| *v > 0)
        .collect();
    (per_file, walked, delta)
}

/// Per file of a round: calls of every kind, then by the server a Lustre client sends them to
/// (`sent_to.*`, lustre-sim/src/mds/stats.rs), then each kind.
fn print_table(rounds: &[(&str, usize, &BTreeMap<String, u64>)]) {
    eprintln!("| round | all calls per file | MDS | OST | client-local |");
    eprintln!("|---|---|---|---|---|");
    for (label, n, d) in rounds {
        let per = |k: &str| get(d, k) as f64 / *n as f64;
        eprintln!(
            "| {label} | {:.2} | **{:.2}** | {:.2} | {:.2} |",
            calls(d) as f64 / *n as f64,
            per("sent_to.mds"),
            per("sent_to.ost"),
            per("sent_to.client")
        );
    }
    for (label, n, d) in rounds {
        let kinds: Vec<String> = d
            .iter()
            .filter(|(k, _)| k.starts_with("call.") && k.as_str() != "call.GetParam")
            .map(|(k, v)| format!("{} {:.3}", &k[5..], *v as f64 / *n as f64))
            .collect();
        eprintln!("{label}, per file: {}", kinds.join(", "));
    }
}

/// Sent to the MDS per file of a round.
fn mds_per_file(d: &BTreeMap<String, u64>, n: usize) -> f64 {
    get(d, "sent_to.mds") as f64 / n as f64
}

#[test]
fn mds_calls_per_exported_file_stay_constant_as_the_export_grows() {
    let _serial = testkit::sim::one_at_a_time();
    testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
    let mut s = Stack::new(StackOptions::default());
    s.start_copytool(&[]);
    s.start_daemon();
    let (small, walked_small, d1) = export_round(&s, 0, 1_000);
    let (large, walked_large, d2) = export_round(&s, 1_000, 5_000);
    eprintln!("1,000 files: {small:.2} calls per file, {walked_small:.3} catalog records read per file: {d1:?}");
    eprintln!("4,000 more (5,000 in all): {large:.2} calls per file, {walked_large:.3} catalog records read per file: {d2:?}");
    print_table(&[("1,000 files", 1_000, &d1), ("4,000 more", 4_000, &d2)]);
    // Issue 17: at most 3 MDS calls per file, amortised. A file created under the daemon's eyes
    // costs the daemon no fid2path (its CREATE gave the path, path2fid confirms it on the
    // client) and no hsm_state (no CL_HSM since its CREATE: the flags are empty); the copytool
    // pays its fid2path (the blob's name at copy time), action begin and end: 3.00. Above that:
    // the requests (one per discovery step's batch), the copytool's progress reports (every
    // `update_interval`, 1 s here, for a copy still running) and the changelog clears, which
    // follow the machine's load: 0.03 to 0.16 in ten rounds of 2026-12-03 (BENCHMARKS.md, "MDS
    // load per exported file"). Either daemon call coming back adds 1.0 per file.
    for (label, n, d) in [("1,000 files", 1_000, &d1), ("4,000 more", 4_000, &d2)] {
        let per = |k: &str| get(d, k) as f64 / n as f64;
        assert!(
            per("call.HsmStateGet") <= 0.01,
            "{label}: hsm_state_get per file {:.3}: {d:?}",
            per("call.HsmStateGet")
        );
        // The copytool's one per file, and the daemon's for the new directories (cached).
        assert!(
            per("call.Fid2Path") <= 1.01,
            "{label}: fid2path per file {:.3}: {d:?}",
            per("call.Fid2Path")
        );
        assert!(
            mds_per_file(d, n) <= 3.5,
            "{label}: {:.2} MDS calls per file: {d:?}",
            mds_per_file(d, n)
        );
    }
    // Constant per file: the larger round costs no more per file than the smaller one (plus a
    // margin for the fixed costs of a round, which the smaller one spreads over fewer files).
    assert!(
        large <= small * 1.15 + 0.5,
        "calls per file grew from {small:.2} to {large:.2}: {d1:?} / {d2:?}"
    );
    // On Lustre every current_action reads the action catalog from its start: a call per file
    // makes the export quadratic. At most a few stragglers may need one.
    assert!(
        walked_small <= 1.0 && walked_large <= 1.0,
        "catalog records read per file: {walked_small:.2} then {walked_large:.2}"
    );
    let totals = s.status_json();
    // 5,000 files and their 10 directories.
    assert_eq!(totals["totalFilesExported"], 5_010, "{totals}");
}

/// `lctl get_param -n mdd.<MDT>.changelog_users`: (user id, cleared index) per line.
fn users(s: &Stack, mdt: u32) -> Vec<(String, u64)> {
    let p = format!("mdd.{}.changelog_users", s.sim.mdt_name(mdt));
    let o = s.sim.lctl(&["get_param", "-n", &p]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// Issue 13, item 4: ids are numbered per MDT. With a table MDT = user the daemon reads and
/// clears each MDT with its own id and never clears another consumer's (here `cl1` on MDT0);
/// a user deregistered from an MDT is refused at the next start, naming the MDT.
#[test]
fn each_mdt_is_read_and_cleared_with_its_own_changelog_user() {
    let _serial = testkit::sim::one_at_a_time();
    testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
    let mut s = Stack::new(StackOptions {
        mdts: 2,
        ..StackOptions::default()
    });
    // MDT0: cl1 is another consumer's (registered by the stack), ours is cl2; MDT1: ours is cl1.
    assert_eq!(s.sim.register_changelog_user(0), "cl2");
    assert_eq!(s.sim.register_changelog_user(1), "cl1");
    let text = s.policy.to_toml().replace(
        "changelog_user = \"cl1\"",
        "changelog_user = { \"MDT0000\" = \"cl2\", \"MDT0001\" = \"cl1\" }",
    );
    std::fs::write(&s.policy_path, text).unwrap();
    s.start_copytool(&[]);
    s.start_daemon();
    let m = lustre_fid_mdt(&s);
    let mut on1 = None;
    for i in 0..32 {
        let d = format!("dir{i}");
        std::fs::create_dir(s.mount().join(&d)).unwrap();
        if m(&s.mount().join(&d)) == 1 {
            on1 = Some(d);
            break;
        }
    }
    let d1 = on1.expect("a directory on MDT1");
    for i in 0..5 {
        s.write(&format!("{d1}/f{i}"), b"on MDT1");
        s.write(&format!("top{i}"), b"on MDT0");
    }
    let o = s.flush("120s");
    assert!(o.status.success(), "{}", s.logs());
    let status = s.status_json();
    assert!(
        status["totalFilesExported"].as_u64().unwrap_or(0) >= 10,
        "{status}"
    );
    let ok = e2e::util::wait_until(std::time::Duration::from_secs(30), || {
        let u0 = users(&s, 0);
        let u1 = users(&s, 1);
        u0.iter().any(|(u, i)| u.starts_with("cl2") && *i > 0)
            && u1.iter().any(|(u, i)| u.starts_with("cl1") && *i > 0)
    });
    assert!(ok, "{:?} {:?}\n{}", users(&s, 0), users(&s, 1), s.logs());
    let u0 = users(&s, 0);
    assert!(
        u0.iter().any(|(u, i)| u.starts_with("cl1") && *i == 0),
        "the other consumer's cl1 on MDT0 was never cleared: {u0:?}"
    );
    // Our user disappears from MDT1: the next start is refused, naming it.
    if let Some(mut d) = s.daemon.take() {
        d.stop(std::time::Duration::from_secs(20));
    }
    let dev = s.sim.mdt_name(1);
    let o = s
        .sim
        .lctl(&["--device", &dev, "changelog_deregister", "cl1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut cmd = Command::new(testkit::bin_path("lustre-blob"));
    cmd.envs(s.sim.env())
        .arg("daemon")
        .arg("--config")
        .arg(&s.policy_path);
    let log = s.dir.path().join("refused-daemon.log");
    let mut p = e2e::proc::Proc::spawn("lustre-blob daemon", cmd, &log);
    let exited = e2e::util::wait_until(std::time::Duration::from_secs(60), || !p.alive());
    let err = p.log();
    if !exited {
        p.kill9();
    }
    assert!(
        exited,
        "the daemon started with a user MDT1 does not have: {err}"
    );
    assert!(err.contains(&dev) && err.contains("cl1"), "{err}");
}

/// The MDT index of a path, through the simulator's library.
fn lustre_fid_mdt(s: &Stack) -> impl Fn(&std::path::Path) -> u32 {
    std::env::set_var("LUSTREAPI_LIB", testkit::sim_lib_path());
    let mount = lustre::Mount::open(s.mount()).expect("Mount::open");
    move |p| {
        let fid = mount.path2fid(p).expect("path2fid");
        mount.mdt_index(&fid).expect("mdt index")
    }
}

/// Issue 13, item 3: each open of a changelog costs a Lustre MDS a thread that re-reads the
/// plain llog from its start (`chlg_load`): a daemon that follows (`changelog_interval = "1s"`)
/// keeps one reader open per MDT while idle, a flush costs a bounded number of opens, and
/// records still arrive without reopening.
#[test]
fn an_idle_daemon_that_follows_opens_each_changelog_a_bounded_number_of_times() {
    let _serial = testkit::sim::one_at_a_time();
    testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
    let mut s = Stack::new(StackOptions::default());
    s.edit_policy(|p| {
        p.extra
            .push(("lustre".into(), "changelog_interval = \"1s\"".into()));
    });
    s.start_copytool(&[]);
    s.start_daemon();
    let key = format!("changelog_open.{}", s.sim.mdt_name(0));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let before = get(&s.sim.stats(), &key);
    std::thread::sleep(std::time::Duration::from_secs(10));
    let idle = get(&s.sim.stats(), &key) - before;
    assert!(idle <= 1, "{idle} changelog opens in 10 idle seconds");
    // Files written meanwhile are exported by the open reader; a flush adds its two passes.
    let before = get(&s.sim.stats(), &key);
    for i in 0..20 {
        s.write(&format!("f{i}"), b"x");
    }
    let o = s.flush("120s");
    assert!(o.status.success(), "{}", s.logs());
    let used = get(&s.sim.stats(), &key) - before;
    assert!(
        used <= 3,
        "{used} changelog opens for 20 files and one flush"
    );
    assert_eq!(s.status_json()["totalFilesExported"], 20);
}

/// `[lustre] changelog_interval` other than Lustre's one second: the daemon reads each changelog
/// in non-follow passes of its own that far apart, each a changelog open the MDS pays for, and
/// files written between passes are exported without a flush.
#[test]
fn a_changelog_interval_reads_in_passes_of_the_daemons_own() {
    let _serial = testkit::sim::one_at_a_time();
    testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
    let mut s = Stack::new(StackOptions::default());
    s.edit_policy(|p| {
        p.extra
            .push(("lustre".into(), "changelog_interval = \"100ms\"".into()));
    });
    s.start_copytool(&[]);
    s.start_daemon();
    let key = format!("changelog_open.{}", s.sim.mdt_name(0));
    // A follower opens its changelog once however long it runs; passes open it each time.
    let before = get(&s.sim.stats(), &key);
    let passes = e2e::util::wait_until(std::time::Duration::from_secs(60), || {
        get(&s.sim.stats(), &key) >= before + 5
    });
    assert!(passes, "no changelog passes: {}", s.logs());
    for i in 0..20 {
        s.write(&format!("f{i}"), b"x");
    }
    let exported = e2e::util::wait_until(std::time::Duration::from_secs(120), || {
        s.status_json()["totalFilesExported"] == 20
    });
    assert!(exported, "not exported without a flush: {}", s.logs());
    // A flush still gets its barrier pass.
    s.write("late", b"y");
    let o = s.flush("120s");
    assert!(o.status.success(), "{}", s.logs());
    assert_eq!(s.status_json()["totalFilesExported"], 21);
}

/// Changelog opens of MDT0 counted by the simulator over `wait`.
fn opens_during(s: &Stack, wait: std::time::Duration) -> u64 {
    let key = format!("changelog_open.{}", s.sim.mdt_name(0));
    let before = get(&s.sim.stats(), &key);
    std::thread::sleep(wait);
    get(&s.sim.stats(), &key) - before
}

/// `changelog_interval = "auto"`, the default: the daemon reads in short passes of its own while
/// the changelog below it is cleared (a closed file is exported without waiting for a follow
/// pass), follows while records stay uncleared (each pass would re-read them all: a second
/// changelog user that never clears holds them here), and goes back to passes once they are
/// cleared.
#[test]
fn auto_passes_while_the_changelog_is_cleared_and_follows_while_records_are_kept() {
    let _serial = testkit::sim::one_at_a_time();
    testkit::sim::ensure_bin_built("copytool", "lhsmtool_blob");
    let mut s = Stack::new(StackOptions::default());
    s.start_copytool(&[]);
    s.start_daemon();
    let reread = format!("changelog_reread.{}", s.sim.mdt_name(0));
    // Cleared: passes (a follower opens once however long it runs).
    let passing = opens_during(&s, std::time::Duration::from_secs(5));
    assert!(
        passing >= 5,
        "{passing} changelog opens in 5 idle seconds: not passing"
    );
    for i in 0..20 {
        s.write(&format!("f{i}"), b"x");
    }
    let exported = e2e::util::wait_until(std::time::Duration::from_secs(120), || {
        s.status_json()["totalFilesExported"] == 20
    });
    assert!(exported, "not exported without a flush: {}", s.logs());

    // Another consumer registers and never clears: what the daemon reads from now on stays kept.
    let other = s.sim.register_changelog_user(0);
    let n = 1_500;
    for i in 0..n {
        s.write(&format!("kept/f{i}"), b"y");
    }
    let o = s.flush("600s");
    assert!(o.status.success(), "{}", s.logs());
    // The files and their directory.
    assert_eq!(s.status_json()["totalFilesExported"], 20 + n + 1);
    // More than the bound is kept below the reader: it follows (one open per recheck at most,
    // a probe and the new follower), and its opens re-read nothing more.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let reread_before = get(&s.sim.stats(), &reread);
    let following = opens_during(&s, std::time::Duration::from_secs(12));
    assert!(
        following <= 4,
        "{following} changelog opens in 12 s with {n} files' records kept: still passing"
    );
    let reread_after = get(&s.sim.stats(), &reread);
    assert_eq!(
        reread_after, reread_before,
        "a follower re-reads nothing, and a probe starts at the first record"
    );
    // Still exports while it follows.
    s.write("late", b"z");
    let o = s.flush("120s");
    assert!(o.status.success(), "{}", s.logs());
    assert_eq!(s.status_json()["totalFilesExported"], 22 + n);

    // The other consumer catches up: within a recheck the reader passes again.
    let dev = s.sim.mdt_name(0);
    let o = s.sim.lfs(&["changelog_clear", &dev, &other, "0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let passing_again = e2e::util::wait_until(std::time::Duration::from_secs(60), || {
        opens_during(&s, std::time::Duration::from_secs(3)) >= 4
    });
    assert!(
        passing_again,
        "no passes once the changelog was cleared: {}",
        s.logs()
    );
}
