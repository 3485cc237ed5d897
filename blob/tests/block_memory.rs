//! Upload blocks give their memory back once the upload is done with them (blob::block_buffer):
//! the copytool's RSS must stay near its in-flight bound (issue 17 item 4). Its own test binary: no other test allocates
//! in this process while RSS is read.

use bytes::Bytes;
use std::io::Write;

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

const BLOCK: usize = 8 << 20;

#[test]
fn blocks_read_on_some_threads_and_dropped_on_others_give_their_memory_back() {
    // The upload's pattern: each block is read on a blocking-pool thread and dropped on the
    // runtime thread that finished its Put Block. 8 rounds of 8 blocks of 8 MiB (512 MiB in
    // all, 64 MiB at once) go through one upload's pool, which maps 8 blocks and reuses them;
    // once the upload drops its pool, less than one block may stay resident.
    let mut f = tempfile::tempfile().expect("tempfile");
    f.write_all(&vec![7u8; BLOCK]).expect("write");
    let f = std::sync::Arc::new(f);
    let before = rss_kib();
    let pool = blob::block_buffer::BlockPool::new(BLOCK);
    let mut peak = 0;
    for _ in 0..8 {
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (f, pool) = (f.clone(), pool.clone());
                std::thread::spawn(move || pool.read(&f, 0, BLOCK))
            })
            .collect();
        let blocks: Vec<Bytes> = readers
            .into_iter()
            .map(|h| h.join().expect("reader").expect("read"))
            .collect();
        peak = peak.max(rss_kib());
        let senders: Vec<_> = blocks
            .into_iter()
            .map(|b| std::thread::spawn(move || b[b.len() - 1]))
            .collect();
        for h in senders {
            assert_eq!(h.join().expect("sender"), 7);
        }
    }
    assert_eq!(
        pool.mapped(),
        8,
        "the blocks in flight at once, reused every round"
    );
    drop(pool);
    let after = rss_kib();
    // The blocks were resident while held (the measurement sees them) ...
    assert!(
        peak >= before + 48 * 1024,
        "peak {peak} KiB, before {before} KiB"
    );
    // ... and are gone once dropped.
    let kept = after.saturating_sub(before);
    assert!(
        kept < (BLOCK / 1024) as u64,
        "{kept} KiB stayed resident after every block was dropped (before {before}, peak {peak}, after {after})"
    );
}
