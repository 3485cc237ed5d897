//! Credentials never appear in errors or Debug output.
mod common;

use blob::{BlobStore, Metadata, WriteMode};
use bytes::Bytes;

const BOGUS_KEY: &str = "Qk9HVVNLRVlCT0dVU0tFWUJPR1VTS0VZQk9HVVNLRVk=";
const WRONG_SIG: &str = "V1JPTkdTSUdOQVRVUkVXUk9OR1NJR05BVFVSRQ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_key_and_wrong_sas_fail_without_leaking() {
    let az = testkit::Azurite::start();
    az.create_container("creds");
    let dir = tempfile::tempdir().unwrap();

    let key_file = dir.path().join("key");
    std::fs::write(&key_file, BOGUS_KEY).unwrap();
    let mut spec = common::spec(&az, "creds", "");
    spec.account_key_file = Some(key_file);
    let store = BlobStore::open(&spec).unwrap();
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
    let text = format!("{err} {err:?} {store:?} {spec:?}");
    assert!(matches!(err, blob::Error::PermissionDenied(_)), "{err:?}");
    assert!(!text.contains(BOGUS_KEY), "{text}");
    let err = store.head(&name).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(BOGUS_KEY));

    let sas_file = dir.path().join("sas");
    let sas =
        format!("sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&sig={WRONG_SIG}");
    std::fs::write(&sas_file, &sas).unwrap();
    let mut spec = common::spec(&az, "creds", "");
    spec.sas_token_file = Some(sas_file);
    let store = BlobStore::open(&spec).unwrap();
    let err = store
        .put_bytes(
            &name,
            Bytes::from_static(b"x"),
            &Metadata::default(),
            WriteMode::Overwrite,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, blob::Error::PermissionDenied(_)), "{err:?}");
    let text = format!("{err} {err:?} {store:?} {spec:?}");
    assert!(!text.contains(WRONG_SIG), "{text}");
    assert!(!text.contains("se=2099"), "{text}");
    let err = store.get_bytes(&name).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(WRONG_SIG));

    // The right (well-known emulator) key works, so the failures above were the credentials.
    let store = BlobStore::open(&common::spec(&az, "creds", "")).unwrap();
    store
        .put_bytes(
            &name,
            Bytes::from_static(b"x"),
            &Metadata::default(),
            WriteMode::Overwrite,
        )
        .await
        .unwrap();
    assert!(!format!("{store:?}").contains(testkit::AZURITE_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_url_with_a_connection_string_file() {
    let az = testkit::Azurite::start();
    az.create_container("viacs");
    let dir = tempfile::tempdir().unwrap();
    let cs = dir.path().join("cs");
    std::fs::write(&cs, az.connection_string()).unwrap();
    let mut spec = blob::TargetSpec::new("az://viacs/some/prefix");
    spec.connection_string_file = Some(cs);
    spec.retries = 1;
    let store = BlobStore::open(&spec).unwrap();
    assert_eq!(store.container(), "viacs");
    assert_eq!(store.prefix(), "some/prefix");
    let name = store.name_for(b"f").unwrap();
    assert_eq!(name.as_str(), "some/prefix/f");
    store
        .put_bytes(
            &name,
            Bytes::from_static(b"cs"),
            &Metadata::default(),
            WriteMode::CreateOnly,
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_bytes(&name).await.unwrap(),
        Bytes::from_static(b"cs")
    );
    assert!(!format!("{store:?} {spec:?}").contains(testkit::AZURITE_KEY));
}
