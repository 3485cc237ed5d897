//! `lustre-blob verify` (issue 16 item 2): the tree and the container side by side, real
//! processes. Every kind of difference an admin can meet is made on purpose, found, and (with
//! `--requeue`) repaired by the running daemon.

use e2e::util::output_text as out;
use std::time::Duration;

use e2e::stack::{Stack, StackOptions};
use e2e::util::wait_until;

fn findings(o: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

fn kind_of<'a>(f: &'a [serde_json::Value], path: &str) -> Option<&'a str> {
    f.iter()
        .find(|v| v["path"] == path)
        .and_then(|v| v["kind"].as_str())
}

#[test]
fn verify_finds_every_difference_and_requeue_repairs_what_an_export_can() {
    let mut s = Stack::new(StackOptions::default());
    s.start_copytool(&[]);
    s.start_daemon();
    s.write("v/keep.txt", b"exported and intact");
    s.write("v/lost.txt", b"the store will lose this");
    s.write("v/changed.txt", b"someone will overwrite this blob");
    s.write("v/sub/deep.txt", b"deep");
    std::os::unix::fs::symlink("keep.txt", s.mount().join("v/link")).expect("symlink");
    assert!(s.flush("60s").status.success(), "{}", s.logs());

    let clean = s.cli(&["verify", "--json"]);
    assert_eq!(clean.status.code(), Some(0), "{}", out(&clean));
    assert_eq!(findings(&clean), Vec::<serde_json::Value>::new());

    // The store loses one blob, another tool overwrites another and writes a blob of its own;
    // a file is written while auto-export is off; one changes after its export.
    let r = s
        .store
        .request("DELETE", "/export/v/lost.txt", &[], &[], b"")
        .expect("delete blob");
    assert_eq!(r.status, 202);
    assert_eq!(
        s.store
            .put_raw("export", b"v/changed.txt", b"not ours")
            .status,
        201
    );
    assert_eq!(
        s.store.put_raw("export", b"v/foreign.bin", b"x").status,
        201
    );
    assert!(s.cli(&["autoexport", "disable"]).status.success());
    s.write("v/while-off.txt", b"nobody exported me");
    std::fs::write(s.mount().join("v/sub/deep.txt"), b"deeper now").expect("rewrite");
    std::thread::sleep(Duration::from_secs(2));

    let o = s.cli(&["verify", "--json", s.mount().join("v").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let f = findings(&o);
    assert_eq!(kind_of(&f, "v/lost.txt"), Some("lost"), "{f:?}");
    assert_eq!(kind_of(&f, "v/changed.txt"), Some("mismatch"), "{f:?}");
    assert_eq!(kind_of(&f, "v/while-off.txt"), Some("missing"), "{f:?}");
    assert_eq!(kind_of(&f, "v/sub/deep.txt"), Some("stale"), "{f:?}");
    assert_eq!(kind_of(&f, "v/foreign.bin"), Some("orphan"), "{f:?}");
    assert_eq!(kind_of(&f, "v/keep.txt"), None, "{f:?}");
    assert_eq!(kind_of(&f, "v/link"), None, "{f:?}");
    let human = s.cli(&["verify", s.mount().join("v").to_str().unwrap()]);
    let text = out(&human);
    assert!(text.contains("lost         v/lost.txt:"), "{text}");
    assert!(text.contains("1 lost"), "{text}");

    // Repair: auto-export back on, then hand the findings to the daemon.
    assert!(s.cli(&["autoexport", "enable"]).status.success());
    let o = s.cli(&["verify", "--requeue"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "it reports before it repairs: {}",
        out(&o)
    );
    assert!(
        out(&o).contains("handed to the next iteration"),
        "{}",
        out(&o)
    );
    // What remains is the conflict (the blob someone else wrote is not overwritten) and the
    // foreign blob.
    let remaining = |s: &Stack| {
        let mut k: Vec<(String, String)> = findings(&s.cli(&["verify", "--json"]))
            .iter()
            .map(|v| {
                (
                    v["kind"].as_str().unwrap_or("").to_string(),
                    v["path"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        k.sort();
        k
    };
    let want = vec![
        ("mismatch".to_string(), "v/changed.txt".to_string()),
        ("orphan".to_string(), "v/foreign.bin".to_string()),
    ];
    let repaired = wait_until(Duration::from_secs(120), || remaining(&s) == want);
    assert!(repaired, "{:?}\n{}", remaining(&s), s.logs());
    for (rel, body) in [
        ("v/lost.txt", &b"the store will lose this"[..]),
        ("v/while-off.txt", &b"nobody exported me"[..]),
        ("v/sub/deep.txt", &b"deeper now"[..]),
    ] {
        assert_eq!(s.store.get("export", rel).as_deref(), Some(body), "{rel}");
    }
    assert_eq!(
        s.store.get("export", "v/changed.txt").as_deref(),
        Some(&b"not ours"[..]),
        "a blob someone else wrote is never overwritten by a requeue"
    );
}

#[test]
fn verify_of_a_file_or_outside_the_mount_says_why() {
    let s = Stack::new(StackOptions::default());
    let f = s.write("plain.txt", b"x");
    let o = s.cli(&["verify", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("not a directory"), "{}", out(&o));
    let o = s.cli(&["verify", "/"]);
    assert!(out(&o).contains("not under the mount"), "{}", out(&o));
}
