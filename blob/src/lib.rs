//! The blob store layer: target URL and credentials, blob naming, POSIX metadata,
//! streaming parallel upload and download, conditional writes and retries, on `object_store`
//! (Azure). See `README.md` in this crate for the formats (metadata keys, export record, logs).
//!
//! Public API (what the copytool and the policy engine use):
//! * [`TargetSpec`] -> [`BlobStore::open`]; [`BlobStore::with_container`] for the logging container.
//! * [`BlobStore::name_for`] (prefix + mount-relative path, byte-exact) -> [`BlobName`] or [`NameError`].
//! * [`BlobStore::upload_file`] ([`UploadOptions`], [`WriteMode`]) -> [`Uploaded`];
//!   [`BlobStore::download_to`] ([`DownloadOptions`]) -> [`Downloaded`].
//! * [`BlobStore::head`], [`BlobStore::put_empty`], [`BlobStore::put_bytes`], [`BlobStore::get_bytes`],
//!   [`BlobStore::copy`], [`BlobStore::delete`], [`BlobStore::delete_if_exists`],
//!   [`BlobStore::set_metadata`], [`BlobStore::list`].
//! * [`Metadata`] / [`FileKind`] <-> Azure metadata keys; [`ExportRecord`] (xattr JSON);
//!   [`LogSink`] / [`LogEntry`] (logging container).
//! * [`Error`]: `Conflict`, `NotFound`, `PermissionDenied`, `InvalidName`, `Transient`, `Permanent`,
//!   `Integrity`, `Cancelled`, `Io`, `Config`; `is_transient()`, `http_status()`, `azure_code()`.

pub mod checksum;
mod download;
pub mod error;
pub mod logsink;
pub mod metadata;
pub mod name;
pub mod record;
mod rest;
mod store;
pub mod target;
pub mod upload;

pub use download::{DownloadOptions, Downloaded};
pub use error::{Error, Failure};
pub use logsink::{FailureEntry, LogEntry, LogSink, SummaryEntry};
pub use metadata::{FileKind, Metadata, MetadataError};
pub use name::{BlobName, NameError};
pub use record::{ExportRecord, EXPORT_XATTR};
pub use store::{BlobInfo, BlobStore, WriteMode};
pub use target::TargetSpec;
pub use upload::{plan_blocks, BlockPlan, CancellationToken, Progress, UploadOptions, Uploaded};
