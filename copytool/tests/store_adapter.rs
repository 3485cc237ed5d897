//! The production store port (`ports::Store` for `blob::BlobStore`) against a real Azurite: the
//! agent's rate limiter handed over in the transfer options is the one every block and range
//! passes through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use blob::{BlobName, BlobStore, DownloadOptions, Metadata, RateLimiter, UploadOptions, WriteMode};
use copytool::ports::Store;
use testkit::Azurite;
use testkit::BlobEndpoint;
use tokio_util::sync::CancellationToken;

const BLOCK: u64 = 64 << 10;

fn backend(az: &Azurite) -> BlobStore {
    az.create_container("adapter");
    let mut spec = blob::TargetSpec::new(az.container_url("adapter"));
    spec.use_emulator = true;
    spec.request_timeout = Duration::from_secs(10);
    spec.retries = 0;
    BlobStore::open(&spec).unwrap()
}

fn counting(done: &Arc<AtomicU64>) -> blob::Progress {
    let done = done.clone();
    Arc::new(move |n| {
        done.fetch_max(n, Ordering::Relaxed);
    })
}

fn upload_opts(limit: &Arc<RateLimiter>, done: &Arc<AtomicU64>) -> UploadOptions {
    UploadOptions {
        mode: WriteMode::CreateOnly,
        block_size: BLOCK,
        blocks_in_flight: 3,
        single_put_threshold: BLOCK,
        progress: Some(counting(done)),
        cancel: CancellationToken::new(),
        rate_limit: Some(limit.clone()),
    }
}

fn download_opts(limit: &Arc<RateLimiter>) -> DownloadOptions {
    DownloadOptions {
        range_size: BLOCK,
        ranges_in_flight: 3,
        progress: None,
        cancel: CancellationToken::new(),
        rate_limit: Some(limit.clone()),
    }
}

fn name(n: &str) -> BlobName {
    BlobName::new(n).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_pass_every_block_through_the_agent_limiter() {
    let az = Azurite::start();
    let store = backend(&az);
    let dir = tempfile::tempdir().unwrap();
    let size = 10 * BLOCK + 17;
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let src = dir.path().join("src");
    std::fs::write(&src, &content).unwrap();
    // Limited, so the waiting path runs, but fast enough not to slow the test down.
    let limit = Arc::new(RateLimiter::new(1 << 30));
    let meta = Metadata {
        modtime: SystemTime::UNIX_EPOCH,
        fid: Some("[0x200000401:0x1:0x0]".into()),
        mtime_ns: Some(0),
        data_version: Some(1),
        layout: Some(lustre::Striping::new(4, 4 << 20, Some("flash")).unwrap()),
        ..Metadata::default()
    };

    let done = Arc::new(AtomicU64::new(0));
    let file = std::fs::File::open(&src).unwrap();
    let up = Store::upload(
        &store,
        &file,
        &name("d/src"),
        &meta,
        upload_opts(&limit, &done),
    )
    .await
    .unwrap();
    assert_eq!(up.size, size);
    assert_eq!(done.load(Ordering::Relaxed), size);
    // The layout goes into the blob's metadata, and a HEAD reads it back (Azurite).
    let head = Store::head(&store, &name("d/src")).await.unwrap().unwrap();
    assert_eq!(head.metadata.and_then(|m| m.layout), meta.layout);
    assert_eq!(
        limit.granted(),
        size,
        "every block acquired from the limiter"
    );

    // A second, small file goes in one Put Blob: through the same limiter.
    std::fs::write(dir.path().join("small"), b"tiny").unwrap();
    let small = std::fs::File::open(dir.path().join("small")).unwrap();
    Store::upload(
        &store,
        &small,
        &name("d/small"),
        &meta,
        upload_opts(&limit, &Arc::new(AtomicU64::new(0))),
    )
    .await
    .unwrap();
    assert_eq!(limit.granted(), size + 4);

    let out_path = dir.path().join("out");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&out_path)
        .unwrap();
    let got = Store::download(&store, &name("d/src"), &out, download_opts(&limit))
        .await
        .unwrap();
    assert_eq!(got.size, size);
    assert_eq!(std::fs::read(&out_path).unwrap(), content);
    assert_eq!(
        limit.granted(),
        2 * size + 4,
        "every range acquired from the limiter"
    );
}
