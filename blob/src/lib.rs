//! The blob store layer: target URL and credentials, blob naming, POSIX metadata,
//! streaming parallel upload and download, conditional writes and retries, on `object_store`
//! (Azure). See `README.md` in this crate for the formats (metadata keys, export record, logs).
//!
//! Public API (what the copytool and the policy engine use):
//!
//! ```text
//! TargetSpec { url, use_emulator, account_key_file, sas_token_file, connection_string_file,
//!              request_timeout: Duration, retries: u32 }          TargetSpec::new(url)  (Debug redacts)
//! BlobStore (Clone, Arc inside):
//!   fn open(&TargetSpec) -> Result<BlobStore, Error>                       // no request sent
//!   fn with_container(&self, container: &str) -> Result<BlobStore, Error>  // e.g. the logging container
//!   fn container(&self) -> &str;  fn prefix(&self) -> &str
//!   fn name_for(&self, rel_path: &[u8]) -> Result<BlobName, NameError>     // prefix + path, byte-exact
//!   async fn upload_file(&self, &std::fs::File, &BlobName, &Metadata, UploadOptions) -> Result<Uploaded, Error>
//!   async fn download_to(&self, &BlobName, &std::fs::File, DownloadOptions) -> Result<Downloaded, Error>
//!   async fn head(&self, &BlobName) -> Result<Option<BlobInfo>, Error>
//!   async fn put_empty(&self, &BlobName, &Metadata, WriteMode) -> Result<String /*etag*/, Error>
//!   async fn put_bytes(&self, &BlobName, Bytes, &Metadata, WriteMode) -> Result<String, Error>
//!   async fn get_bytes(&self, &BlobName) -> Result<Bytes, Error>
//!   async fn copy(&self, from: &BlobName, to: &BlobName, create_only: bool) -> Result<(), Error>
//!   async fn delete(&self, &BlobName) -> Result<(), Error>                // NotFound when missing
//!   async fn delete_if_exists(&self, &BlobName) -> Result<bool, Error>
//!   async fn set_metadata(&self, &BlobName, &Metadata, if_match: Option<&str>) -> Result<String, Error>
//!   fn list(&self, prefix: &str) -> Result<BoxStream<'static, Result<BlobInfo, Error>>, Error>  // with metadata
//!   fn list_with_page_size(&self, prefix: &str, page_size: u32) -> Result<BoxStream<..>, Error>
//! WriteMode::{Overwrite, CreateOnly, IfMatch(String)}
//! UploadOptions { mode, block_size, blocks_in_flight, single_put_threshold, progress: Option<Progress>,
//!                 cancel: CancellationToken, rate_limit: Option<Arc<RateLimiter>> }
//!                 (Default: 8 MiB x 16, threshold 8 MiB, no limit)
//! Uploaded { etag, size, checksum, blocks, block_size, peak_buffered }
//! DownloadOptions { range_size, ranges_in_flight, progress, cancel, rate_limit };  Downloaded { size, etag, checksum, verified }
//! RateLimiter (share in an Arc; every block / range acquires its length before it moves):
//!   fn new(bytes_per_sec: u64 /*0 = unlimited*/) -> RateLimiter;  fn unlimited() -> RateLimiter
//!   async fn acquire(&self, bytes: u64);  fn set_rate(&self, bytes_per_sec: u64)
//!   fn rate(&self) -> Option<u64>;  fn granted(&self) -> u64
//! BlobInfo { name: String /*exact, unvalidated when listed*/, size, etag: Option<String>, last_modified: SystemTime,
//!            metadata: Option<Metadata> }   .blob_name() -> Result<BlobName, NameError>
//! Metadata { owner, group, permissions, modtime: SystemTime, kind: FileKind, fid: Option<String>,
//!            mtime_ns: Option<i128>, data_version: Option<u64>, checksum: Option<String>, extra: BTreeMap }
//!   .is_folder(), .with_mtime(secs, nsecs), .to_pairs(), Metadata::from_pairs(..)
//! FileKind::{File, Dir, Symlink};  BlobName::new(&str), .as_str();  name::rel_path_of(prefix, &BlobName)
//! Error::{Conflict, NotFound, PermissionDenied, InvalidName, InvalidMetadata, Transient, Permanent,
//!         Integrity, Cancelled, Io, Config}: is_transient(), is_conflict(), is_not_found(),
//!         http_status() -> Option<u16>, azure_code() -> Option<&str>, kind() -> &str
//! ExportRecord { blob, etag, data_version, exported_at: SystemTime, size }: to_json(), from_json(); EXPORT_XATTR
//! LogSink::new(store, prefix, source, capacity); record(LogEntry) (never blocks); flush_soon();
//!   flush().await -> Option<BlobName>; spawn_flusher(interval, stop) -> JoinHandle; pending()
//! LogEntry::{Failure(FailureEntry), Requeued(RequeuedEntry), Summary(SummaryEntry), Dropped{time, count}}
//! time::{rfc3339(SystemTime), rfc3339_ms(u64), parse_rfc3339(&str), serde_rfc3339}  (UTC, milliseconds)
//! plan_blocks(size, block_size, blocks_in_flight) -> Result<BlockPlan, Error>
//! ```

pub mod checksum;
mod download;
pub mod error;
mod listing;
pub mod logsink;
pub mod metadata;
pub mod name;
pub mod ratelimit;
pub mod record;
mod rest;
mod store;
pub mod target;
pub mod time;
pub mod upload;

pub use download::{DownloadOptions, Downloaded};
pub use error::{Error, Failure};
pub use logsink::{FailureEntry, FailureReason, LogEntry, LogSink, RequeuedEntry, SummaryEntry};
pub use metadata::{FileKind, Metadata, MetadataError};
pub use name::{BlobName, NameError};
pub use ratelimit::RateLimiter;
pub use record::{ExportRecord, EXPORT_XATTR};
pub use store::{BlobInfo, BlobStore, WriteMode};
pub use target::TargetSpec;
pub use upload::{plan_blocks, BlockPlan, CancellationToken, Progress, UploadOptions, Uploaded};
