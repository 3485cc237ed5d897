//! Every byte of an upload or download passes through the transfer's rate limiter (against a real
//! Azurite). Only what the limiter granted is asserted, never how long anything took.
mod common;

use std::sync::Arc;

use blob::upload::MIB;
use blob::{DownloadOptions, Metadata, RateLimiter, UploadOptions};

fn open_rw(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_block_and_range_passes_through_the_limiter() {
    let (_az, store) = common::setup("limited", "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.dat");
    let size = 5 * MIB + 123; // 6 blocks of 1 MiB, the last one short
    let file = common::write_pattern_file(&path, size);
    let name = store.name_for(b"f.dat").unwrap();
    // Limited (so the waiting path runs) but fast enough not to slow the test down.
    let limit = Arc::new(RateLimiter::new(1 << 30));

    let up = store
        .upload_file(
            &file,
            &name,
            &Metadata::default(),
            UploadOptions {
                block_size: MIB,
                single_put_threshold: MIB,
                blocks_in_flight: 3,
                rate_limit: Some(limit.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(up.blocks, 6);
    assert_eq!(limit.granted(), size, "each block acquired its length once");

    let out_path = dir.path().join("back.dat");
    let out = open_rw(&out_path);
    let d = store
        .download_to(
            &name,
            &out,
            DownloadOptions {
                range_size: MIB,
                ranges_in_flight: 3,
                rate_limit: Some(limit.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(d.verified);
    assert_eq!(
        limit.granted(),
        2 * size,
        "each range acquired its length once"
    );
    assert!(common::same_content(&path, &out_path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_put_and_concurrent_uploads_draw_from_one_budget() {
    let (_az, store) = common::setup("shared", "");
    let dir = tempfile::tempdir().unwrap();
    let limit = Arc::new(RateLimiter::new(1 << 30));
    let opts = UploadOptions {
        block_size: MIB,
        single_put_threshold: MIB,
        blocks_in_flight: 2,
        rate_limit: Some(limit.clone()),
        ..Default::default()
    };
    let sizes = [1000u64, 3 * MIB + 1, 2 * MIB];
    let mut uploads = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let file = common::write_pattern_file(&dir.path().join(format!("f{i}")), *size);
        let name = store.name_for(format!("f{i}").as_bytes()).unwrap();
        let (store, opts) = (store.clone(), opts.clone());
        uploads.push(tokio::spawn(async move {
            store
                .upload_file(&file, &name, &Metadata::default(), opts)
                .await
        }));
    }
    let mut blocks = Vec::new();
    for u in uploads {
        blocks.push(u.await.unwrap().unwrap().blocks);
    }
    assert_eq!(
        blocks,
        [0, 4, 2],
        "one single Put Blob and two block uploads"
    );
    assert_eq!(limit.granted(), sizes.iter().sum::<u64>());
}
