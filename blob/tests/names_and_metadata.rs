//! Byte-exact names and metadata against a real Azurite.
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use blob::{Error, FileKind, Metadata, WriteMode};
use bytes::Bytes;
use futures::TryStreamExt;

const TRICKY: &[&str] = &[
    "a%b #1?.txt",
    "percent%20not%2Fdecoded",
    "hash#only",
    "question?mark=1&and=2",
    "plus+plus",
    "amp&ersand",
    "brackets[0]{1}",
    "spaces in  name ",
    "ünïcödé/日本語 ファイル.txt",
    "emoji 😀.bin",
    "semi;colon,comma'quote\"dq",
    "tilde~star*caret^pipe|",
    "dir with space/sub%dir/file name.dat",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tricky_names_round_trip_byte_exact_by_listing() {
    let (_az, store) = common::setup("names", "pre fix%");
    let mut want = BTreeSet::new();
    for n in TRICKY {
        let name = store.name_for(n.as_bytes()).unwrap();
        assert_eq!(name.as_str(), format!("pre fix%/{n}"));
        store
            .put_bytes(
                &name,
                Bytes::from(n.to_string()),
                &Metadata::default(),
                WriteMode::CreateOnly,
            )
            .await
            .unwrap();
        want.insert(name.as_str().to_string());
    }
    let listed: BTreeSet<String> = store
        .list("pre fix%")
        .unwrap()
        .map_ok(|i| i.name.as_str().to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, want);
    // And each reads back by its name with its own content.
    for n in TRICKY {
        let name = store.name_for(n.as_bytes()).unwrap();
        assert_eq!(
            store.get_bytes(&name).await.unwrap(),
            Bytes::from(n.to_string())
        );
    }
    // Names that cannot be blobs are refused, never altered.
    assert!(store.name_for(b"bad\xffutf8").is_err());
    assert!(store.name_for(b"a/../b").is_err());
    assert!(store.name_for("x".repeat(1100).as_bytes()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_round_trips_and_set_metadata_is_conditional() {
    let (_az, store) = common::setup("meta", "");
    let name = store.name_for(b"f").unwrap();
    let meta = Metadata {
        owner: 1234,
        group: 567,
        permissions: 0o2750,
        kind: FileKind::Symlink,
        fid: Some("[0x200000401:0x2:0x0]".into()),
        data_version: Some(99),
        checksum: Some("crc32:12345678".into()),
        ..Default::default()
    }
    .with_mtime(1_700_000_123, 5);
    let etag = store
        .put_bytes(
            &name,
            Bytes::from_static(b"target"),
            &meta,
            WriteMode::Overwrite,
        )
        .await
        .unwrap();
    let info = store.head(&name).await.unwrap().unwrap();
    assert_eq!(info.etag.as_deref(), Some(etag.as_str()));
    let got = info.metadata.unwrap();
    assert_eq!(got.modtime, UNIX_EPOCH + Duration::from_secs(1_700_000_123));
    assert_eq!(
        Metadata {
            modtime: meta.modtime,
            ..got
        },
        meta
    );

    // Metadata written by another tool that we cannot decode: head still answers, without it.
    let foreign = store.name_for(b"foreign").unwrap();
    let mut bad = Metadata::default();
    bad.extra
        .insert("lustre_mtime_ns".into(), "not-a-number".into());
    store
        .put_bytes(
            &foreign,
            Bytes::from_static(b"z"),
            &bad,
            WriteMode::Overwrite,
        )
        .await
        .unwrap();
    let info = store.head(&foreign).await.unwrap().unwrap();
    assert_eq!(info.size, 1);
    assert!(info.metadata.is_none());

    // Directory blobs carry hdi_isfolder.
    let dir = store.name_for(b"d").unwrap();
    let dmeta = Metadata {
        kind: FileKind::Dir,
        permissions: 0o755,
        ..Default::default()
    };
    store
        .put_empty(&dir, &dmeta, WriteMode::CreateOnly)
        .await
        .unwrap();
    let d = store.head(&dir).await.unwrap().unwrap();
    assert_eq!(d.size, 0);
    assert!(d.metadata.unwrap().is_folder());

    // set_metadata with the right ETag succeeds and changes the ETag; a stale one conflicts.
    let mut m2 = meta.clone();
    m2.permissions = 0o600;
    let e2 = store.set_metadata(&name, &m2, Some(&etag)).await.unwrap();
    assert_ne!(e2, etag);
    assert_eq!(
        store
            .head(&name)
            .await
            .unwrap()
            .unwrap()
            .metadata
            .unwrap()
            .permissions,
        0o600
    );
    let err = store
        .set_metadata(&name, &meta, Some(&etag))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(err.http_status(), Some(412));
    // Unconditional works; a missing blob is NotFound.
    store.set_metadata(&name, &meta, None).await.unwrap();
    let missing = store.name_for(b"missing").unwrap();
    assert!(store
        .set_metadata(&missing, &meta, None)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(store.head(&missing).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_delete_and_listing() {
    let (_az, store) = common::setup("ops", "p");
    let a = store.name_for(b"a").unwrap();
    let b = store.name_for(b"sub/b").unwrap();
    let meta = Metadata {
        owner: 7,
        ..Default::default()
    };
    store
        .put_bytes(
            &a,
            Bytes::from_static(b"hello"),
            &meta,
            WriteMode::Overwrite,
        )
        .await
        .unwrap();
    store.copy(&a, &b, true).await.unwrap();
    assert_eq!(
        store.get_bytes(&b).await.unwrap(),
        Bytes::from_static(b"hello")
    );
    assert_eq!(
        store
            .head(&b)
            .await
            .unwrap()
            .unwrap()
            .metadata
            .unwrap()
            .owner,
        7
    );
    assert!(store.copy(&a, &b, true).await.unwrap_err().is_conflict());
    store.copy(&a, &b, false).await.unwrap();

    let all: Vec<_> = store.list("p").unwrap().try_collect().await.unwrap();
    assert_eq!(all.len(), 2);
    let sub: Vec<_> = store.list("p/sub").unwrap().try_collect().await.unwrap();
    assert_eq!(sub.len(), 1);
    assert_eq!(sub[0].name, b.as_str());
    assert_eq!(sub[0].size, 5);

    store.delete(&a).await.unwrap();
    assert!(store.delete(&a).await.unwrap_err().is_not_found());
    assert!(!store.delete_if_exists(&a).await.unwrap());
    assert!(store.delete_if_exists(&b).await.unwrap());
    assert!(store.head(&b).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_container_is_a_permanent_error_with_code() {
    let az = testkit::Azurite::start();
    let store = blob::BlobStore::open(&common::spec(&az, "nosuchcontainer", "")).unwrap();
    let name = store.name_for(b"x").unwrap();
    let err = store
        .put_bytes(
            &name,
            Bytes::from_static(b"x"),
            &Metadata::default(),
            WriteMode::Overwrite,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Permanent(_)), "{err:?}");
    assert_eq!(err.http_status(), Some(404));
    assert_eq!(err.azure_code(), Some("ContainerNotFound"));
    assert!(!err.is_transient());
}
