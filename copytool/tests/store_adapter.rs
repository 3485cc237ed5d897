//! The production store adapter (`real::BlobBackend`) against a real Azurite: the agent's rate
//! limiter handed over in `TransferOpts` is the one every block and range passes through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use blob::RateLimiter;
use copytool::ports::{BlobMeta, Store, TransferOpts, WriteMode};
use copytool::real::BlobBackend;
use testkit::Azurite;
use testkit::BlobEndpoint;
use tokio_util::sync::CancellationToken;

const BLOCK: u64 = 64 << 10;

fn backend(az: &Azurite) -> BlobBackend {
    az.create_container("adapter");
    let mut spec = blob::TargetSpec::new(az.container_url("adapter"));
    spec.use_emulator = true;
    spec.request_timeout = Duration::from_secs(10);
    spec.retries = 0;
    BlobBackend::new(blob::BlobStore::open(&spec).unwrap())
}

fn opts(limit: &Arc<RateLimiter>, done: &Arc<AtomicU64>) -> TransferOpts {
    let done = done.clone();
    TransferOpts {
        block_size: BLOCK,
        blocks_in_flight: 3,
        progress: Arc::new(move |n| {
            done.fetch_max(n, Ordering::Relaxed);
        }),
        cancel: CancellationToken::new(),
        rate_limit: limit.clone(),
    }
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
    let meta = BlobMeta {
        owner: 0,
        group: 0,
        permissions: 0o644,
        modtime: SystemTime::UNIX_EPOCH,
        fid: "[0x200000401:0x1:0x0]".into(),
        mtime_ns: 0,
        data_version: 1,
        layout: Some(lustre::Striping::new(4, 4 << 20, Some("flash")).unwrap()),
    };

    let done = Arc::new(AtomicU64::new(0));
    let file = std::fs::File::open(&src).unwrap();
    let up = store
        .upload(
            &file,
            "d/src",
            &meta,
            WriteMode::CreateOnly,
            opts(&limit, &done),
        )
        .await
        .unwrap();
    assert_eq!(up.size, size);
    assert_eq!(done.load(Ordering::Relaxed), size);
    // The layout goes into the blob's metadata, and a HEAD reads it back (Azurite).
    let head = store.head("d/src").await.unwrap().unwrap();
    assert_eq!(head.layout, meta.layout);
    assert_eq!(
        limit.granted(),
        size,
        "every block acquired from the limiter"
    );

    // A second, small file goes in one Put Blob: through the same limiter.
    std::fs::write(dir.path().join("small"), b"tiny").unwrap();
    let small = std::fs::File::open(dir.path().join("small")).unwrap();
    store
        .upload(
            &small,
            "d/small",
            &meta,
            WriteMode::CreateOnly,
            opts(&limit, &Arc::new(AtomicU64::new(0))),
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
    let got = store
        .download("d/src", &out, opts(&limit, &Arc::new(AtomicU64::new(0))))
        .await
        .unwrap();
    assert_eq!(got, size);
    assert_eq!(std::fs::read(&out_path).unwrap(), content);
    assert_eq!(
        limit.granted(),
        2 * size + 4,
        "every range acquired from the limiter"
    );
}
