use super::*;
use std::collections::BTreeSet;
use std::path::Path;

/// A tree of nested directories with files and symlinks; returns how many entries it holds.
fn make_tree(root: &Path) -> usize {
    let mut n = 0;
    for a in 0..6 {
        let da = root.join(format!("a{a}"));
        std::fs::create_dir(&da).unwrap();
        n += 1;
        for b in 0..8 {
            let db = da.join(format!("b{b}"));
            std::fs::create_dir(&db).unwrap();
            n += 1;
            for c in 0..3 {
                let dc = db.join(format!("c{c}"));
                std::fs::create_dir(&dc).unwrap();
                n += 1;
                for f in 0..20 {
                    std::fs::write(dc.join(format!("f{f}")), b"x").unwrap();
                    n += 1;
                }
                std::os::unix::fs::symlink("f0", dc.join("link")).unwrap();
                n += 1;
            }
            std::fs::write(db.join("top"), b"y").unwrap();
            n += 1;
        }
    }
    std::fs::write(root.join("rootfile"), b"z").unwrap();
    n + 1
}

/// The reference: a plain recursive walk, relative paths with their kinds.
fn sequential(root: &Path, rel: &Path, out: &mut BTreeSet<(Vec<u8>, u8)>) {
    for e in std::fs::read_dir(root.join(rel)).unwrap() {
        let e = e.unwrap();
        let md = std::fs::symlink_metadata(e.path()).unwrap();
        let r = rel.join(e.file_name());
        let kind = if md.is_dir() {
            FileKind::Directory
        } else if md.file_type().is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Regular
        };
        out.insert((r.as_os_str().as_bytes().to_vec(), kind as u8));
        if md.is_dir() {
            sequential(root, &r, out);
        }
    }
}

fn drain(scan: &ParallelScan) -> Vec<ScanItem> {
    let mut v = Vec::new();
    loop {
        match scan.next_item(Instant::now() + Duration::from_secs(3600)) {
            Next::Item(i) => v.push(i),
            Next::Waiting => {}
            Next::Finished => return v,
        }
    }
}

#[test]
fn parallel_scan_yields_exactly_the_sequential_walk_and_keeps_the_bound() {
    let t = tempfile::tempdir().unwrap();
    let total = make_tree(t.path());
    assert!(total > 3000, "{total}");
    let mut want = BTreeSet::new();
    sequential(t.path(), Path::new(""), &mut want);
    assert_eq!(want.len(), total);

    let cap = 16;
    let lister = Arc::new(FsLister::new(t.path().to_path_buf()));
    let scan = ParallelScan::start(lister, vec![Vec::new()], 4, cap).unwrap();
    let items = drain(&scan);
    let mut got = BTreeSet::new();
    let mut seen_dirs = BTreeSet::new();
    seen_dirs.insert(Vec::new());
    for it in &items {
        let ScanItem::Entry { dir, name, kind } = it else {
            panic!("unexpected {it:?}");
        };
        // A directory's own entry always comes before its children.
        assert!(
            seen_dirs.contains(dir),
            "child of {dir:?} before its directory"
        );
        let rel = crate::scope::join(dir, name);
        if *kind == FileKind::Directory {
            seen_dirs.insert(rel.clone());
        }
        assert!(got.insert((rel, *kind as u8)), "delivered twice: {it:?}");
    }
    assert_eq!(got, want);
    assert_eq!(items.len(), total);
    assert_eq!(scan.produced(), total as u64);
    assert!(scan.max_undelivered() <= cap, "{}", scan.max_undelivered());
    assert!(scan.max_undelivered() >= 1);
    scan.join();
}

#[test]
fn a_small_shared_directory_queue_spills_to_the_scanners_and_loses_nothing() {
    // Many subdirectories in one directory: more than the shared queue holds at once is fine.
    let t = tempfile::tempdir().unwrap();
    for i in 0..(DIR_QUEUE_CAP + 50) {
        std::fs::create_dir(t.path().join(format!("d{i}"))).unwrap();
    }
    std::fs::write(t.path().join("d7/f"), b"1").unwrap();
    let lister = Arc::new(FsLister::new(t.path().to_path_buf()));
    let scan = ParallelScan::start(lister, vec![Vec::new()], 2, 8).unwrap();
    let items = drain(&scan);
    assert_eq!(items.len(), DIR_QUEUE_CAP + 51);
    assert!(items.contains(&ScanItem::Entry {
        dir: b"d7".to_vec(),
        name: b"f".to_vec(),
        kind: FileKind::Regular
    }));
    assert!(scan.max_undelivered() <= 8);
}

#[test]
fn cancel_stops_the_scanners() {
    let t = tempfile::tempdir().unwrap();
    let total = make_tree(t.path());
    let cap = 8;
    let lister = Arc::new(FsLister::new(t.path().to_path_buf()));
    let scan = ParallelScan::start(lister, vec![Vec::new()], 4, cap).unwrap();
    let mut taken = 0;
    while taken < 10 {
        if let Next::Item(_) = scan.next_item(Instant::now() + Duration::from_secs(3600)) {
            taken += 1;
        }
    }
    scan.cancel();
    assert_eq!(
        scan.next_item(Instant::now() + Duration::from_secs(3600)),
        Next::Finished
    );
    // Scanners blocked on the full queue give up instead of walking on.
    let inner = Arc::clone(&scan.inner);
    scan.join();
    let produced = inner.lock().produced;
    assert!(produced <= (taken + cap) as u64, "{produced}");
    assert!((produced as usize) < total);
}

#[test]
fn an_unreadable_directory_is_reported_and_the_rest_is_scanned() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("ok")).unwrap();
    std::fs::write(t.path().join("ok/f"), b"1").unwrap();
    let lister = Arc::new(FsLister::new(t.path().to_path_buf()));
    let scan = ParallelScan::start(lister, vec![b"missing".to_vec(), Vec::new()], 2, 4).unwrap();
    let items = drain(&scan);
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(items
        .iter()
        .any(|i| matches!(i, ScanItem::DirError { dir, .. } if dir == b"missing")));
}

#[test]
fn the_pool_is_small() {
    let n = default_threads();
    assert!((1..=SCAN_THREADS_MAX).contains(&n));
}
