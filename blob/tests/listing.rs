//! Listing against a real Azurite: names another tool wrote (which this crate would refuse to
//! write) come back exactly, with metadata, and paging follows NextMarker.
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use blob::{BlobInfo, BlobStore, FileKind, Metadata, TargetSpec, WriteMode};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use testkit::proxy::{Fault, FaultProxy};
use testkit::BlobEndpoint;
use testkit::{percent_encode, signed_exchange, Azurite};

/// Put Blob under any name, as another tool could, with `x-ms-meta-*` headers; returns the status.
fn put_raw(az: &Azurite, container: &str, name: &str, body: &[u8], meta: &[(&str, &str)]) -> u16 {
    let path = format!("/{container}/{}", percent_encode(name.as_bytes(), true));
    let meta_names: Vec<String> = meta.iter().map(|(k, _)| format!("x-ms-meta-{k}")).collect();
    let mut headers: Vec<(&str, &str)> = vec![("x-ms-blob-type", "BlockBlob")];
    for ((_, v), k) in meta.iter().zip(&meta_names) {
        headers.push((k, v));
    }
    let resp = signed_exchange(
        az.port(),
        "PUT",
        &path,
        &[],
        &headers,
        body,
        Duration::from_secs(30),
    )
    .unwrap();
    String::from_utf8_lossy(&resp)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

const HOSTILE: &[&str] = &[
    "h/a/../b.txt",
    "h/../up.txt",
    "h/sub/../../up2.txt",
    "h/dot/./x",
    "h//double",
    "h/nl\nname",
    "h/cr\rname",
    "h/tab\tname",
    "h/del\x7fname",
    "h/amp&lt;<>\"'.txt",
];

async fn collect(store: &BlobStore, prefix: &str) -> Vec<BlobInfo> {
    store.list(prefix).unwrap().try_collect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_list_completely_and_exactly_with_metadata() {
    let (az, store) = common::setup("hostile", "");
    for n in HOSTILE {
        let st = put_raw(&az, "hostile", n, n.as_bytes(), &[("owner", "42")]);
        assert_eq!(st, 201, "{n:?}");
    }
    // A blob this crate writes, with full POSIX metadata, and one outside the prefix.
    let good = store.name_for(b"h/good/a.txt").unwrap();
    let meta = Metadata {
        owner: 7,
        group: 8,
        permissions: 0o640,
        kind: FileKind::File,
        fid: Some("[0x200000401:0x1:0x0]".into()),
        ..Metadata::default()
    }
    .with_mtime(1_700_000_000, 0);
    let etag = store
        .put_bytes(
            &good,
            Bytes::from_static(b"good"),
            &meta,
            WriteMode::CreateOnly,
        )
        .await
        .unwrap();
    let outside = store.name_for(b"hx/other").unwrap();
    store
        .put_bytes(
            &outside,
            Bytes::new(),
            &Metadata::default(),
            WriteMode::CreateOnly,
        )
        .await
        .unwrap();

    let listed = collect(&store, "h").await;
    let by_name: BTreeMap<&str, &BlobInfo> = listed.iter().map(|i| (i.name.as_str(), i)).collect();
    assert_eq!(by_name.len(), listed.len(), "no duplicates: {listed:?}");
    let mut want: Vec<&str> = HOSTILE.to_vec();
    want.push("h/good/a.txt");
    want.sort();
    assert_eq!(by_name.keys().copied().collect::<Vec<_>>(), want);

    for n in HOSTILE {
        let i = by_name[n];
        assert_eq!(i.size, n.len() as u64, "{n:?}");
        assert_eq!(i.metadata.as_ref().map(|m| m.owner), Some(42), "{n:?}");
        assert!(i.etag.is_some());
    }
    // The names this crate refuses to write are still refused when validated.
    assert!(by_name["h/a/../b.txt"].blob_name().is_err());
    assert!(by_name["h/nl\nname"].blob_name().is_err());

    let g = by_name["h/good/a.txt"];
    assert_eq!(g.size, 4);
    assert_eq!(g.metadata.as_ref(), Some(&meta));
    assert_eq!(g.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(g.blob_name().unwrap(), good);
    // Same answer as a HEAD of the blob.
    let head = store.head(&good).await.unwrap().unwrap();
    assert_eq!(&head, g);

    // "" lists the whole container, the blob outside "h/" included.
    assert_eq!(collect(&store, "").await.len(), want.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_follow_next_marker_and_retry_a_busy_page() {
    let az = Azurite::start();
    az.create_container("pages");
    let proxy = FaultProxy::start(az.port());
    let mut spec = TargetSpec::new(proxy.container_url("pages"));
    spec.use_emulator = true;
    spec.retries = 3;
    let store = BlobStore::open(&spec).unwrap();
    let mut want = Vec::new();
    for i in 0..8 {
        let n = format!("p/{i:02}");
        assert_eq!(put_raw(&az, "pages", &n, b"x", &[]), 201);
        want.push(n);
    }
    // A hostile name in the middle of a page does not stop the pages after it.
    assert_eq!(put_raw(&az, "pages", "p/03/../x", b"x", &[]), 201);
    want.push("p/03/../x".into());
    want.sort();

    let before = proxy.stats().forwarded;
    let mut s = store.list_with_page_size("p/", 3).unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(s.next().await.unwrap().unwrap().name);
    }
    assert_eq!(proxy.stats().forwarded - before, 1, "one page read so far");
    // The next page's first answer is 503: retried, nothing lost or repeated.
    proxy.set(Fault::Busy { count: Some(1) });
    while let Some(i) = s.next().await {
        got.push(i.unwrap().name);
    }
    assert_eq!(got, want);
    assert_eq!(proxy.stats().busy_answers, 1);
    assert_eq!(
        proxy.stats().forwarded - before,
        3,
        "9 blobs at 3 per page: 3 pages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_a_missing_container_is_an_error() {
    let az = Azurite::start();
    let store = BlobStore::open(&common::spec(&az, "absent", "")).unwrap();
    let err = collect_err(&store).await;
    assert_eq!(err.http_status(), Some(404), "{err:?}");
    assert!(!err.is_transient());
}

async fn collect_err(store: &BlobStore) -> blob::Error {
    store
        .list("")
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err()
}
