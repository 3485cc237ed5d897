//! [`BlobStore`]: one container (and optional blob prefix) of one account, with the small
//! operations; uploads and downloads live in [`crate::upload`] and [`crate::download`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::BoxStream;
use http::{HeaderName, Method};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::client::HttpClient;
use object_store::{
    Attribute, AttributeValue, Attributes, BackoffConfig, ClientOptions, CopyMode, CopyOptions,
    GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion,
};

use crate::error::{Classifier, Error};
use crate::metadata::Metadata;
use crate::name::{BlobName, NameError};
use crate::target::{resolve, Credential, Resolved, TargetSpec};

/// How a write treats an existing blob.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Fail with [`Error::Conflict`] when a blob of that name exists.
    CreateOnly,
    /// Replace only the blob with this ETag; [`Error::Conflict`] otherwise (also when it is gone).
    IfMatch(String),
}

/// What the service says about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The name exactly as the service holds it. From a listing it is NOT validated: another
    /// tool may have written `a/../b` or control characters. [`BlobInfo::blob_name`] validates.
    pub name: String,
    /// Content length in bytes.
    pub size: u64,
    /// The ETag, when listed with one.
    pub etag: Option<String>,
    /// Last-Modified.
    pub last_modified: SystemTime,
    /// From [`BlobStore::head`] and listings alike; `None` when the blob's metadata cannot be
    /// decoded (a blob without any decodes as a plain file).
    pub metadata: Option<Metadata>,
    /// The metadata pairs as the service returned them (undecoded, unchecked; sorted by key),
    /// for callers that must judge each value themselves (an import).
    pub raw_metadata: Vec<(String, String)>,
}

impl BlobInfo {
    /// The name as a [`BlobName`], or why this crate would refuse to write such a name.
    pub fn blob_name(&self) -> Result<BlobName, NameError> {
        BlobName::new(&self.name)
    }
}

/// A container (and blob prefix) of one account. Cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub azure: MicrosoftAzure,
    pub http: HttpClient,
    pub resolved: Resolved,
    pub container_url: url::Url,
    pub classifier: Classifier,
    pub retries: u32,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for BlobStore {
    // By hand: object_store's own Debug output would include the credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("target", &self.inner.resolved)
            .finish()
    }
}

impl BlobStore {
    /// Opens the target: parses the URL, reads the credential files, builds the clients.
    /// No request is sent.
    pub fn open(spec: &TargetSpec) -> Result<BlobStore, Error> {
        let resolved = resolve(spec)?;
        BlobStore::build(resolved, spec.request_timeout, spec.retries)
    }

    fn build(
        resolved: Resolved,
        request_timeout: Duration,
        retries: u32,
    ) -> Result<BlobStore, Error> {
        let classifier = Classifier::new(resolved.secrets.clone());
        let allow_http = resolved.endpoint.starts_with("http://");
        let options = ClientOptions::new()
            .with_timeout(request_timeout)
            .with_connect_timeout(Duration::from_secs(10))
            .with_allow_http(allow_http);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: retries as usize,
            retry_timeout: Duration::from_secs(180).max(request_timeout),
        };
        let mut builder = match resolved.credential {
            Credential::Environment => MicrosoftAzureBuilder::from_env(),
            _ => MicrosoftAzureBuilder::new(),
        }
        .with_account(resolved.account.clone())
        .with_container_name(resolved.container.clone())
        .with_endpoint(resolved.endpoint.clone())
        .with_use_emulator(false)
        .with_client_options(options.clone())
        .with_retry(retry);
        match &resolved.credential {
            Credential::Key(k) => {
                object_store::azure::AzureAccessKey::try_new(k)
                    .map_err(|_| Error::Config("account key is not valid base64".into()))?;
                builder = builder.with_access_key(k.clone());
            }
            Credential::Sas(s) => {
                let pairs = object_store::azure::split_sas(s.trim_start_matches('?'))
                    .map_err(|_| Error::Config("SAS token is malformed".into()))?;
                builder = builder.with_sas_authorization(pairs);
            }
            Credential::Environment => {}
        }
        let azure = builder
            .build()
            .map_err(|e| Error::Config(classifier.scrub(&e.to_string())))?;
        let http = crate::rest::http_client(&options)?;
        let container_url = url::Url::parse(&format!(
            "{}/{}",
            resolved.endpoint.trim_end_matches('/'),
            resolved.container
        ))
        .map_err(|e| Error::Config(format!("container URL: {e}")))?;
        Ok(BlobStore {
            inner: Arc::new(Inner {
                azure,
                http,
                resolved,
                container_url,
                classifier,
                retries,
                request_timeout,
            }),
        })
    }

    /// The container name.
    pub fn container(&self) -> &str {
        &self.inner.resolved.container
    }

    /// The blob prefix from the URL ("" for none).
    pub fn prefix(&self) -> &str {
        &self.inner.resolved.prefix
    }

    /// The blob name of a path relative to the mount (raw bytes): prefix + path, byte-exact.
    pub fn name_for(&self, rel_path: &[u8]) -> Result<BlobName, NameError> {
        crate::name::join(&self.inner.resolved.prefix, rel_path)
    }

    /// A store on another container of the same account, with the same credentials, timeout
    /// and retries, and no prefix (e.g. the logging container).
    pub fn with_container(&self, container: &str) -> Result<BlobStore, Error> {
        let resolved = Resolved {
            container: container.to_string(),
            prefix: String::new(),
            ..self.inner.resolved.clone()
        };
        BlobStore::build(resolved, self.inner.request_timeout, self.inner.retries)
    }

    /// Runs `f` again on transient errors, with exponential backoff (100 ms doubling, at most
    /// 10 s), up to the spec's `retries` times. object_store already retries single requests;
    /// this covers operations made of several requests and our own signed calls.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut f: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            match f().await {
                Err(e) if e.is_transient() && attempt < self.inner.retries => {
                    tracing::debug!(error = %e, attempt, "transient blob error, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    pub(crate) fn store_err(&self, op: &'static str, name: &str, e: object_store::Error) -> Error {
        self.inner.classifier.store_error(op, name, e)
    }

    /// Size, ETag, modification time and metadata of a blob; `None` when there is none.
    pub async fn head(&self, name: &BlobName) -> Result<Option<BlobInfo>, Error> {
        // One request: object_store retries it (a wrapper here would square the attempts).
        (async {
            let opts = GetOptions {
                head: true,
                ..Default::default()
            };
            match self.inner.azure.get_opts(name.path(), opts).await {
                Ok(r) => {
                    // A blob written by another tool may carry values we cannot decode: report
                    // it without metadata rather than failing (callers then treat it as foreign).
                    let meta = match metadata_of(&r.attributes) {
                        Ok(m) => Some(m),
                        Err(e) => {
                            tracing::warn!(blob = %name, error = %e, "undecodable blob metadata");
                            None
                        }
                    };
                    let raw = raw_metadata_of(&r.attributes);
                    Ok(Some(info_of(r.meta, meta, raw)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.store_err("head", name.as_str(), e)),
            }
        })
        .await
    }

    /// One Put Blob with metadata and a write condition; returns the new ETag.
    pub(crate) async fn put_whole(
        &self,
        op: &'static str,
        name: &BlobName,
        body: Bytes,
        meta: &Metadata,
        mode: &WriteMode,
    ) -> Result<String, Error> {
        let attributes = attributes_of(meta);
        let mode = put_mode(mode);
        // One request: object_store retries it (a wrapper here would square the attempts).
        (async {
            let opts = PutOptions {
                mode: mode.clone(),
                attributes: attributes.clone(),
                ..Default::default()
            };
            let r = self
                .inner
                .azure
                .put_opts(name.path(), PutPayload::from(body.clone()), opts)
                .await
                .map_err(|e| self.store_err(op, name.as_str(), e))?;
            Ok(r.e_tag.unwrap_or_default())
        })
        .await
    }

    /// An empty blob (a directory: pass metadata with `kind = Dir`, giving `hdi_isfolder=true`).
    pub async fn put_empty(
        &self,
        name: &BlobName,
        meta: &Metadata,
        mode: WriteMode,
    ) -> Result<String, Error> {
        self.put_whole("put empty blob", name, Bytes::new(), meta, &mode)
            .await
    }

    /// A small blob from memory (a symlink: the body is the link target, `kind = Symlink`).
    pub async fn put_bytes(
        &self,
        name: &BlobName,
        body: Bytes,
        meta: &Metadata,
        mode: WriteMode,
    ) -> Result<String, Error> {
        self.put_whole("put blob", name, body, meta, &mode).await
    }

    /// Reads a whole (small) blob into memory.
    pub async fn get_bytes(&self, name: &BlobName) -> Result<Bytes, Error> {
        // One request: object_store retries it (a wrapper here would square the attempts).
        (async {
            let r = self
                .inner
                .azure
                .get(name.path())
                .await
                .map_err(|e| self.store_err("get", name.as_str(), e))?;
            r.bytes()
                .await
                .map_err(|e| self.store_err("get", name.as_str(), e))
        })
        .await
    }

    /// Server-side copy (data and metadata). With `create_only`, an existing target is a
    /// [`Error::Conflict`].
    pub async fn copy(
        &self,
        from: &BlobName,
        to: &BlobName,
        create_only: bool,
    ) -> Result<(), Error> {
        // One request: object_store retries it (a wrapper here would square the attempts).
        (async {
            let opts = CopyOptions {
                mode: if create_only {
                    CopyMode::Create
                } else {
                    CopyMode::Overwrite
                },
                ..Default::default()
            };
            self.inner
                .azure
                .copy_opts(from.path(), to.path(), opts)
                .await
                .map_err(|e| self.store_err("put copy", to.as_str(), e))
        })
        .await
    }

    /// Deletes a blob; a missing one is [`Error::NotFound`].
    pub async fn delete(&self, name: &BlobName) -> Result<(), Error> {
        // One request: object_store retries it (a wrapper here would square the attempts).
        (async {
            self.inner
                .azure
                .delete(name.path())
                .await
                .map_err(|e| self.store_err("delete", name.as_str(), e))
        })
        .await
    }

    /// Deletes a blob if it exists; returns whether one was deleted (idempotent).
    pub async fn delete_if_exists(&self, name: &BlobName) -> Result<bool, Error> {
        match self.delete(name).await {
            Ok(()) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces a blob's metadata (Set Blob Metadata), only if its ETag is `if_match` when given.
    /// Returns the new ETag.
    pub async fn set_metadata(
        &self,
        name: &BlobName,
        meta: &Metadata,
        if_match: Option<&str>,
    ) -> Result<String, Error> {
        let pairs = meta.to_pairs();
        self.retrying(|| async {
            let mut headers: Vec<(HeaderName, String)> = crate::rest::metadata_headers(&pairs);
            if let Some(e) = if_match {
                headers.push((http::header::IF_MATCH, e.to_string()));
            }
            let a = self
                .inner
                .signed(
                    "put metadata",
                    Method::PUT,
                    name,
                    &[("comp", "metadata")],
                    headers,
                    Bytes::new(),
                )
                .await?;
            Ok(a.etag().unwrap_or_default())
        })
        .await
    }

    /// Every blob under `prefix` (a blob-name prefix ending at a `/` boundary; "" for all), with
    /// metadata, names exactly as stored and unvalidated (callers check them), streamed page by
    /// page (5,000 blobs per request) so memory stays bounded.
    pub fn list(&self, prefix: &str) -> Result<BoxStream<'static, Result<BlobInfo, Error>>, Error> {
        self.list_with_page_size(prefix, crate::listing::MAX_PAGE)
    }

    /// [`BlobStore::list`] with `page_size` blobs per request (1 to 5,000).
    pub fn list_with_page_size(
        &self,
        prefix: &str,
        page_size: u32,
    ) -> Result<BoxStream<'static, Result<BlobInfo, Error>>, Error> {
        let under = match prefix.trim_end_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Ok(self.list_pages(under, page_size))
    }

    /// One page of [`BlobStore::list`]: at most `page_size` (1 to 5,000) blobs under `prefix`
    /// from `marker` (empty: the first page), and the marker of the next page (`None` after the
    /// last). For callers that hold one page at a time across calls (an import).
    pub async fn list_one_page(
        &self,
        prefix: &str,
        marker: &str,
        page_size: u32,
    ) -> Result<(Vec<BlobInfo>, Option<String>), Error> {
        let under = match prefix.trim_end_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let size = page_size.clamp(1, crate::listing::MAX_PAGE).to_string();
        let page = self
            .retrying(|| self.list_page(&under, marker, &size))
            .await?;
        Ok((page.blobs, page.next_marker.filter(|m| !m.is_empty())))
    }
}

fn put_mode(mode: &WriteMode) -> PutMode {
    match mode {
        WriteMode::Overwrite => PutMode::Overwrite,
        WriteMode::CreateOnly => PutMode::Create,
        WriteMode::IfMatch(e) => PutMode::Update(UpdateVersion {
            e_tag: Some(e.clone()),
            version: None,
        }),
    }
}

pub(crate) fn attributes_of(meta: &Metadata) -> Attributes {
    let mut a = Attributes::new();
    for (k, v) in meta.to_pairs() {
        a.insert(Attribute::Metadata(k.into()), AttributeValue::from(v));
    }
    a
}

fn metadata_of(attrs: &Attributes) -> Result<Metadata, Error> {
    let pairs: Vec<(&str, &str)> = attrs
        .iter()
        .filter_map(|(k, v)| match k {
            Attribute::Metadata(k) => Some((k.as_ref(), v.as_ref())),
            _ => None,
        })
        .collect();
    Ok(Metadata::from_pairs(pairs)?)
}

/// The metadata pairs, sorted by key (as a listing gives them), so a head and a listing agree.
fn raw_metadata_of(attrs: &Attributes) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = attrs
        .iter()
        .filter_map(|(k, v)| match k {
            Attribute::Metadata(k) => Some((k.to_string(), v.to_string())),
            _ => None,
        })
        .collect();
    pairs.sort();
    pairs
}

fn info_of(
    m: ObjectMeta,
    metadata: Option<Metadata>,
    raw_metadata: Vec<(String, String)>,
) -> BlobInfo {
    BlobInfo {
        name: m.location.to_string(),
        size: m.size,
        etag: m.e_tag,
        last_modified: m.last_modified.into(),
        metadata,
        raw_metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Failure;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn failure(status: u16) -> Failure {
        Failure {
            op: "get",
            name: "x".into(),
            status: Some(status),
            code: None,
            message: String::new(),
        }
    }

    #[tokio::test]
    async fn whole_operation_retries_only_transient_errors() {
        let mut spec = TargetSpec::new("http://127.0.0.1:9/devstoreaccount1/c");
        spec.use_emulator = true;
        spec.retries = 2;
        let store = BlobStore::open(&spec).unwrap();

        let calls = AtomicU32::new(0);
        let r = store
            .retrying(|| async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err(Error::Transient(failure(503)))
                } else {
                    Ok(n)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), Error> = store
            .retrying(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::Transient(failure(500)))
            })
            .await;
        assert!(r.unwrap_err().is_transient());
        assert_eq!(calls.load(Ordering::SeqCst), 3, "1 try + 2 retries");

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), Error> = store
            .retrying(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::PermissionDenied(failure(403)))
            })
            .await;
        assert!(matches!(r, Err(Error::PermissionDenied(_))));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "permanent errors are not retried"
        );
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let mut spec = TargetSpec::new("http://127.0.0.1:9/devstoreaccount1/c");
        spec.use_emulator = true;
        spec.retries = 0;
        let store = BlobStore::open(&spec).unwrap();
        let name = store.name_for(b"x").unwrap();
        let err = store.head(&name).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        let err = store
            .set_metadata(&name, &Metadata::default(), None)
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
}
