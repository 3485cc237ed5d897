//! The load the daemon and the copytool put on the MDS, counted by the simulator as Lustre would
//! feel it (issue 13): calls per exported file stay constant as the export grows, and no
//! `current_action` walks the action catalog per file. Real processes: Azurite, lustre-sim,
//! lhsmtool_blob and the lustre-blob daemon.

use e2e::stack::{Stack, StackOptions};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    static TAB: std::sync::Once = std::sync::Once::new();
    TAB.call_once(|| {
        let tab = std::env::temp_dir()
            .join(format!("lustre-blob-mds-load-tests-{}", std::process::id()))
            .join("mounts");
        std::env::set_var("LUSTRE_SIM_MOUNTTAB", tab);
    });
    guard
}

fn ensure_copytool_built() {
    if testkit::bin_path("lhsmtool_blob").exists() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args(["build", "-p", "copytool", "--bin", "lhsmtool_blob"])
        .current_dir(testkit::workspace_root())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "cargo build -p copytool failed");
}

/// `lctl get_param -n sim.stats` as a map.
pub fn sim_stats(s: &Stack) -> BTreeMap<String, u64> {
    let o = s.sim.lctl(&["get_param", "-n", "sim.stats"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

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
    let before = sim_stats(s);
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
    let after = sim_stats(s);
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

#[test]
fn mds_calls_per_exported_file_stay_constant_as_the_export_grows() {
    let _serial = serial();
    ensure_copytool_built();
    let mut s = Stack::new(StackOptions::default());
    s.start_copytool(&[]);
    s.start_daemon();
    let (small, walked_small, d1) = export_round(&s, 0, 1_000);
    let (large, walked_large, d2) = export_round(&s, 1_000, 5_000);
    eprintln!("1,000 files: {small:.2} MDS calls per file, {walked_small:.3} catalog records read per file: {d1:?}");
    eprintln!("4,000 more (5,000 in all): {large:.2} MDS calls per file, {walked_large:.3} catalog records read per file: {d2:?}");
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
