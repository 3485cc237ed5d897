//! One retry layer (issue 14 item 8): a single request is retried by object_store alone, so a
//! store that keeps answering 503 sees `1 + retries` attempts, not `(1 + retries)²`. Our own
//! signed REST calls (Set Blob Metadata, Put Block List), which object_store does not retry,
//! get the same count from our wrapper.

mod common;

use blob::{BlobName, BlobStore, Metadata, TargetSpec, WriteMode};
use testkit::proxy::{Fault, FaultProxy};
use testkit::Azurite;
use testkit::BlobEndpoint;

const RETRIES: u32 = 2;

fn busy_store() -> (Azurite, FaultProxy, BlobStore) {
    let az = Azurite::start();
    az.create_container("tries");
    let proxy = FaultProxy::start(az.port());
    let mut spec = TargetSpec::new(proxy.container_url("tries"));
    spec.use_emulator = true;
    spec.retries = RETRIES;
    let store = BlobStore::open(&spec).unwrap();
    (az, proxy, store)
}

/// Runs `op` against a proxy that answers every request 503 and returns how many it answered.
async fn attempts<F, Fut, T>(proxy: &FaultProxy, op: F) -> u64
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, blob::Error>>,
{
    proxy.set(Fault::Busy { count: None });
    let before = proxy.stats().busy_answers;
    let r = op().await;
    assert!(
        matches!(r, Err(ref e) if e.is_transient()),
        "a busy store is transient"
    );
    // The proxy counts an answer just after sending it: let the count settle.
    let mut seen = proxy.stats().busy_answers;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = proxy.stats().busy_answers;
        if now == seen {
            break;
        }
        seen = now;
    }
    proxy.set(Fault::Pass);
    seen - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_single_request_is_tried_one_plus_retries_times() {
    let (_az, proxy, store) = busy_store();
    let name = BlobName::new("a/b.txt").unwrap();
    let other = BlobName::new("a/c.txt").unwrap();
    let want = u64::from(RETRIES) + 1;
    let meta = Metadata::default();
    assert_eq!(attempts(&proxy, || store.head(&name)).await, want, "head");
    assert_eq!(
        attempts(&proxy, || store.get_bytes(&name)).await,
        want,
        "get"
    );
    assert_eq!(
        attempts(&proxy, || store.delete(&name)).await,
        want,
        "delete"
    );
    assert_eq!(
        attempts(&proxy, || store.copy(&name, &other, false)).await,
        want,
        "copy"
    );
    assert_eq!(
        attempts(&proxy, || store.put_bytes(
            &name,
            bytes::Bytes::from_static(b"x"),
            &meta,
            WriteMode::Overwrite
        ))
        .await,
        want,
        "put"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_rest_calls_are_tried_one_plus_retries_times() {
    let (_az, proxy, store) = busy_store();
    let name = BlobName::new("m.txt").unwrap();
    let meta = Metadata::default();
    let want = u64::from(RETRIES) + 1;
    assert_eq!(
        attempts(&proxy, || store.set_metadata(&name, &meta, None)).await,
        want,
        "set metadata"
    );
}
