//! Streaming uploads and downloads against a real Azurite.
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use blob::upload::MIB;
use blob::{
    BlobStore, CancellationToken, DownloadOptions, Error, Metadata, UploadOptions, WriteMode,
};
use bytes::Bytes;
use futures::TryStreamExt;

fn opts(block: u64, in_flight: usize) -> UploadOptions {
    UploadOptions {
        block_size: block,
        blocks_in_flight: in_flight,
        single_put_threshold: block,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_commits_once_with_right_content_and_bounded_buffers() {
    let (_az, store) = common::setup("big", "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.dat");
    let size = 1024 * MIB;
    let file = common::write_pattern_file(&path, size);
    let expected_crc = common::crc_of_file(&path);
    let name = store.name_for(b"big.dat").unwrap();
    let progress_max = Arc::new(AtomicU64::new(0));
    let pm = progress_max.clone();
    let mut o = opts(8 * MIB, 4);
    o.mode = WriteMode::CreateOnly;
    o.progress = Some(Arc::new(move |done| {
        pm.fetch_max(done, Ordering::SeqCst);
    }));
    let up = store
        .upload_file(&file, &name, &Metadata::default(), o)
        .await
        .unwrap();
    assert_eq!(up.size, size);
    assert_eq!(up.blocks, 128);
    assert_eq!(up.block_size, 8 * MIB);
    assert_eq!(up.checksum, expected_crc);
    assert!(
        up.peak_buffered > 0 && up.peak_buffered <= 4 * 8 * MIB,
        "peak {}",
        up.peak_buffered
    );
    assert_eq!(progress_max.load(Ordering::SeqCst), size);

    // One committed blob, the one our Put Block List made (same ETag), with the checksum recorded.
    let listed: Vec<_> = store.list("").unwrap().try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, size);
    let info = store.head(&name).await.unwrap().unwrap();
    assert_eq!(info.etag.as_deref(), Some(up.etag.as_str()));
    assert_eq!(
        info.metadata.unwrap().checksum.as_deref(),
        Some(expected_crc.as_str())
    );

    // Download it back (ranged, parallel, verified) and compare with the source.
    let out_path = dir.path().join("back.dat");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&out_path)
        .unwrap();
    let d = store
        .download_to(
            &name,
            &out,
            DownloadOptions {
                range_size: 16 * MIB,
                ranges_in_flight: 4,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(d.verified);
    assert_eq!(d.size, size);
    assert_eq!(d.checksum, expected_crc);
    assert!(common::same_content(&path, &out_path));
}

/// Slow start: an upload puts its first blocks [`blob::upload::SLOW_START_BLOCKS`] at a time
/// and adds one per block put, so large files starting together do not hit the store with all
/// their blocks at once (a small file's Put Blob then waited seconds behind them). Three blocks
/// with four allowed in flight: never more than two buffered. Fails with all four at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_starts_with_two_blocks_in_flight_and_ramps_up() {
    let (_az, store) = common::setup("ramp", "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("three-blocks");
    let file = common::write_pattern_file(&path, 3 * 65536);
    let name = store.name_for(b"three-blocks").unwrap();
    let up = store
        .upload_file(&file, &name, &Metadata::default(), opts(65536, 4))
        .await
        .unwrap();
    assert_eq!(up.blocks, 3);
    assert_eq!(blob::upload::SLOW_START_BLOCKS, 2);
    assert!(
        up.peak_buffered <= 2 * 65536,
        "peak {} bytes buffered: more than the first two blocks at once",
        up.peak_buffered
    );
    assert_eq!(common::crc_of_file(&path), up.checksum);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_use_one_put_and_carry_metadata() {
    let (_az, store) = common::setup("small", "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let file = common::write_pattern_file(&path, 65536);
    let name = store.name_for(b"s").unwrap();
    let meta = Metadata {
        owner: 42,
        data_version: Some(3),
        ..Default::default()
    };
    let up = store
        .upload_file(&file, &name, &meta, UploadOptions::default())
        .await
        .unwrap();
    assert_eq!(up.blocks, 0);
    assert_eq!(up.peak_buffered, 65536);
    let m = store.head(&name).await.unwrap().unwrap().metadata.unwrap();
    assert_eq!(m.owner, 42);
    assert_eq!(m.data_version, Some(3));
    assert_eq!(m.checksum, Some(common::crc_of_file(&path)));
    // An empty file is an empty blob.
    let empty = common::write_pattern_file(&dir.path().join("e"), 0);
    let en = store.name_for(b"e").unwrap();
    let up = store
        .upload_file(&empty, &en, &meta, UploadOptions::default())
        .await
        .unwrap();
    assert_eq!(up.size, 0);
    assert_eq!(store.head(&en).await.unwrap().unwrap().size, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_and_if_match_conflicts_single_and_multipart() {
    let (_az, store) = common::setup("cond", "");
    let dir = tempfile::tempdir().unwrap();
    for (label, size) in [("single", 100 * 1024u64), ("multi", 3 * MIB + 5)] {
        let path = dir.path().join(label);
        let file = common::write_pattern_file(&path, size);
        let name = store.name_for(label.as_bytes()).unwrap();
        let first = {
            let mut o = opts(MIB, 2);
            o.mode = WriteMode::CreateOnly;
            store
                .upload_file(&file, &name, &Metadata::default(), o)
                .await
                .unwrap()
        };
        assert_eq!(first.blocks > 0, label == "multi");
        // Create-only on an existing blob: conflict, blob untouched.
        let mut o = opts(MIB, 2);
        o.mode = WriteMode::CreateOnly;
        let err = store
            .upload_file(
                &file,
                &name,
                &Metadata {
                    owner: 9,
                    ..Default::default()
                },
                o,
            )
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "{label}: {err:?}");
        assert_eq!(
            store.head(&name).await.unwrap().unwrap().etag.as_deref(),
            Some(first.etag.as_str())
        );
        // If-match with the current ETag replaces it.
        let mut o = opts(MIB, 2);
        o.mode = WriteMode::IfMatch(first.etag.clone());
        let second = store
            .upload_file(
                &file,
                &name,
                &Metadata {
                    owner: 9,
                    ..Default::default()
                },
                o,
            )
            .await
            .unwrap();
        assert_ne!(second.etag, first.etag);
        // If-match with the stale one conflicts and leaves the second version.
        let mut o = opts(MIB, 2);
        o.mode = WriteMode::IfMatch(first.etag.clone());
        let err = store
            .upload_file(&file, &name, &Metadata::default(), o)
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "{label}: {err:?}");
        assert_eq!(err.http_status(), Some(412));
        let info = store.head(&name).await.unwrap().unwrap();
        assert_eq!(info.etag.as_deref(), Some(second.etag.as_str()));
        assert_eq!(info.metadata.unwrap().owner, 9);
        // If-match on a blob that does not exist is a conflict too (it changed: it is gone).
        let gone = store.name_for(format!("{label}-gone").as_bytes()).unwrap();
        let mut o = opts(MIB, 2);
        o.mode = WriteMode::IfMatch(first.etag.clone());
        let err = store
            .upload_file(&file, &gone, &Metadata::default(), o)
            .await
            .unwrap_err();
        assert!(err.is_conflict() || err.is_not_found(), "{label}: {err:?}");
        assert!(store.head(&gone).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_upload_leaves_no_blob() {
    let (_az, store) = common::setup("cancel", "");
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_pattern_file(&dir.path().join("c"), 64 * MIB);
    let name = store.name_for(b"c").unwrap();
    let token = CancellationToken::new();
    let t = token.clone();
    let mut o = opts(MIB, 2);
    o.cancel = token.clone();
    o.progress = Some(Arc::new(move |done| {
        if done >= 4 * MIB {
            t.cancel();
        }
    }));
    let err = store
        .upload_file(&file, &name, &Metadata::default(), o)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(store.head(&name).await.unwrap().is_none());
    // Cancelled before starting: nothing at all.
    let mut o = opts(MIB, 2);
    o.cancel = token;
    assert!(matches!(
        store
            .upload_file(&file, &name, &Metadata::default(), o)
            .await,
        Err(Error::Cancelled)
    ));
    let listed: Vec<_> = store.list("").unwrap().try_collect().await.unwrap();
    assert!(listed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_killed_mid_upload_leaves_no_blob() {
    let az = Arc::new(testkit::Azurite::start_on_disk());
    az.create_container("outage");
    let mut spec = common::spec(&az, "outage", "");
    spec.retries = 0;
    let store = BlobStore::open(&spec).unwrap();
    // A committed blob before the outage shows the data survives the restart.
    let keep = store.name_for(b"keep").unwrap();
    store
        .put_bytes(
            &keep,
            Bytes::from_static(b"k"),
            &Metadata::default(),
            WriteMode::Overwrite,
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = common::write_pattern_file(&dir.path().join("o"), 64 * MIB);
    let name = store.name_for(b"o").unwrap();
    let killed = Arc::new(AtomicBool::new(false));
    let (k, a) = (killed.clone(), az.clone());
    let mut o = opts(MIB, 2);
    o.progress = Some(Arc::new(move |done| {
        if done >= 8 * MIB && !k.swap(true, Ordering::SeqCst) {
            a.stop();
        }
    }));
    let err = store
        .upload_file(&file, &name, &Metadata::default(), o)
        .await
        .unwrap_err();
    assert!(killed.load(Ordering::SeqCst));
    assert!(err.is_transient(), "{err:?}");
    az.restart();
    assert!(
        store.head(&keep).await.unwrap().is_some(),
        "disk-mode data lost across restart"
    );
    assert!(store.head(&name).await.unwrap().is_none());
}

/// Azure discards a blob's uncommitted blocks when another writer commits the name (Azurite also
/// loses them when killed before saving): the commit then fails `InvalidBlockList`. The upload
/// stages the blocks again and commits them, instead of failing the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_discarded_before_the_commit_are_staged_again() {
    let az = Arc::new(testkit::Azurite::start());
    az.create_container("lost");
    let store = BlobStore::open(&common::spec(&az, "lost", "")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o");
    let size = 4 * MIB;
    let file = common::write_pattern_file(&path, size);
    let name = store.name_for(b"o").unwrap();
    let stagings = Arc::new(AtomicU64::new(0));
    let (n, a) = (stagings.clone(), az.clone());
    let mut o = opts(MIB, 2);
    o.progress = Some(Arc::new(move |done| {
        // The last block of the first staging is in: another writer commits the same name (an
        // empty block list), which discards every block staged for it, before our commit.
        if done == size && n.fetch_add(1, Ordering::SeqCst) == 0 {
            let r = a
                .request(
                    "PUT",
                    "/lost/o",
                    &[("comp", "blocklist")],
                    &[("content-type", "application/xml")],
                    b"<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList></BlockList>",
                )
                .expect("request to azurite");
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        }
    }));
    let up = store
        .upload_file(&file, &name, &Metadata::default(), o)
        .await
        .unwrap();
    assert_eq!(stagings.load(Ordering::SeqCst), 2, "staged twice");
    assert_eq!(up.blocks, 4);
    assert_eq!(up.checksum, common::crc_of_file(&path));
    let body = store.get_bytes(&name).await.unwrap();
    assert_eq!(body.len() as u64, size);
    assert!(body[..] == std::fs::read(&path).unwrap()[..], "content");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_detects_a_wrong_recorded_checksum_and_missing_blobs() {
    let (_az, store) = common::setup("download", "");
    let name = store.name_for(b"x").unwrap();
    let meta = Metadata {
        checksum: Some("crc32:00000001".into()),
        ..Default::default()
    };
    store
        .put_bytes(
            &name,
            Bytes::from(common::pattern(0, 300_000)),
            &meta,
            WriteMode::Overwrite,
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = std::fs::File::create(dir.path().join("x")).unwrap();
    let err = store
        .download_to(
            &name,
            &out,
            DownloadOptions {
                range_size: 65536,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
    // Without a recorded checksum the content still arrives, unverified.
    store
        .put_bytes(
            &name,
            Bytes::from(common::pattern(0, 300_000)),
            &Metadata::default(),
            WriteMode::Overwrite,
        )
        .await
        .unwrap();
    let d = store
        .download_to(
            &name,
            &out,
            DownloadOptions {
                range_size: 65536,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!d.verified);
    assert_eq!(
        std::fs::read(dir.path().join("x")).unwrap(),
        common::pattern(0, 300_000)
    );
    let missing = store.name_for(b"nope").unwrap();
    assert!(store
        .download_to(&missing, &out, DownloadOptions::default())
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_replaced_mid_download_is_a_conflict_not_a_mix() {
    let (_az, store) = common::setup("replaced", "");
    let name = store.name_for(b"r").unwrap();
    store
        .put_bytes(
            &name,
            Bytes::from(common::pattern(0, 1_000_000)),
            &Metadata::default(),
            WriteMode::Overwrite,
        )
        .await
        .unwrap();
    // After the first range lands, the download waits until another writer has replaced the blob.
    let (to_writer, writer_rx) = std::sync::mpsc::channel::<()>();
    let (to_reader, reader_rx) = std::sync::mpsc::channel::<()>();
    let reader_rx = std::sync::Mutex::new(reader_rx);
    let fired = AtomicBool::new(false);
    let progress: blob::Progress = Arc::new(move |_| {
        if !fired.swap(true, Ordering::SeqCst) {
            let _ = to_writer.send(());
            let _ = reader_rx.lock().unwrap().recv();
        }
    });
    let (s2, n2) = (store.clone(), name.clone());
    let writer = tokio::spawn(async move {
        tokio::task::spawn_blocking(move || writer_rx.recv())
            .await
            .unwrap()
            .unwrap();
        s2.put_bytes(
            &n2,
            Bytes::from_static(b"new content"),
            &Metadata::default(),
            WriteMode::Overwrite,
        )
        .await
        .unwrap();
        to_reader.send(()).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let out = std::fs::File::create(dir.path().join("r")).unwrap();
    let opts = DownloadOptions {
        range_size: 65536,
        ranges_in_flight: 1,
        progress: Some(progress),
        ..Default::default()
    };
    let err = store.download_to(&name, &out, opts).await.unwrap_err();
    writer.await.unwrap();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(err.http_status(), Some(412));
}
