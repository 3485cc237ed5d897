//! Download into a file: ranged GETs in parallel, each written with `pwrite` at its offset; all
//! ranges are pinned to the ETag seen first (`If-Match`), so a blob replaced mid-download is a
//! [`Error::Conflict`], never a mix. The size and the recorded `lustre_checksum` are verified.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::checksum::{is_ours, ContentChecksum};
use crate::error::Error;
use crate::name::BlobName;
use crate::ratelimit::RateLimiter;
use crate::store::BlobStore;
use crate::upload::{CancellationToken, Progress, MIB};

/// How to download.
#[derive(Clone)]
pub struct DownloadOptions {
    /// Bytes per ranged GET.
    pub range_size: u64,
    /// Ranges fetched at once.
    pub ranges_in_flight: usize,
    /// Told of every range written, when set.
    pub progress: Option<Progress>,
    /// Cancels the download (the file keeps what was written).
    pub cancel: CancellationToken,
    /// Bandwidth budget: each range acquires its length before it is requested, so the limit
    /// holds during the transfer and across all transfers sharing it.
    pub rate_limit: Option<Arc<RateLimiter>>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            range_size: 8 * MIB,
            ranges_in_flight: 16,
            progress: None,
            cancel: CancellationToken::new(),
            rate_limit: None,
        }
    }
}

/// The result of a complete download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes written.
    pub size: u64,
    /// The blob's ETag, when the store gave one.
    pub etag: Option<String>,
    /// The checksum of what was written (`crc32:...`).
    pub checksum: String,
    /// Whether the blob carried a checksum we verified (blobs written by other tools may not).
    pub verified: bool,
}

impl BlobStore {
    /// Downloads `name` into `file` (truncated/extended to the blob's size).
    pub async fn download_to(
        &self,
        name: &BlobName,
        file: &File,
        opts: DownloadOptions,
    ) -> Result<Downloaded, Error> {
        let info = self.head(name).await?.ok_or_else(|| {
            Error::NotFound(crate::error::Failure {
                op: "get",
                name: name.to_string(),
                status: Some(404),
                code: Some("BlobNotFound".into()),
                message: String::new(),
            })
        })?;
        let size = info.size;
        let file = Arc::new(
            file.try_clone()
                .map_err(|e| Error::io("dup target file", e))?,
        );
        file.set_len(size)
            .map_err(|e| Error::io("size target file", e))?;
        let range = opts.range_size.max(1);
        let count = size.div_ceil(range);
        let permits = Arc::new(Semaphore::new(opts.ranges_in_flight.max(1)));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks: JoinSet<Result<(u64, ContentChecksum), Error>> = JoinSet::new();
        let mut crcs: Vec<Option<ContentChecksum>> = vec![None; count as usize];

        fn record(
            r: Result<Result<(u64, ContentChecksum), Error>, tokio::task::JoinError>,
            crcs: &mut [Option<ContentChecksum>],
        ) -> Result<(), Error> {
            let (i, c) = r.map_err(|e| Error::io("download task", std::io::Error::other(e)))??;
            crcs[i as usize] = Some(c);
            Ok(())
        }

        for i in 0..count {
            let permit = loop {
                tokio::select! {
                    p = permits.clone().acquire_owned() => {
                        break p.map_err(|e| Error::io("download permits", std::io::Error::other(e)))?
                    }
                    Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                        if let Err(e) = record(r, &mut crcs) { tasks.abort_all(); return Err(e); }
                    }
                    _ = opts.cancel.cancelled() => { tasks.abort_all(); return Err(Error::Cancelled); }
                }
            };
            let start = i * range;
            let end = (start + range).min(size);
            let store = self.clone();
            let file = file.clone();
            let etag = info.etag.clone();
            let name = name.clone();
            let done = done.clone();
            let progress = opts.progress.clone();
            let limit = opts.rate_limit.clone();
            tasks.spawn(async move {
                // Paid before the request; a cancel aborts the task, which gives the slot back.
                if let Some(limit) = limit {
                    limit.acquire(end - start).await;
                }
                // One request: object_store retries it (a wrapper here would square the attempts).
                let bytes = (async {
                    let o = GetOptions {
                        range: Some(GetRange::Bounded(start..end)),
                        if_match: etag.clone(),
                        ..Default::default()
                    };
                    let r = store
                        .inner
                        .azure
                        .get_opts(name.path(), o)
                        .await
                        .map_err(|e| store.store_err("get", name.as_str(), e))?;
                    r.bytes()
                        .await
                        .map_err(|e| store.store_err("get", name.as_str(), e))
                })
                .await?;
                if bytes.len() as u64 != end - start {
                    return Err(Error::Integrity {
                        name: name.to_string(),
                        detail: format!("range {start}..{end} returned {} bytes", bytes.len()),
                    });
                }
                let crc = ContentChecksum::of(&bytes);
                tokio::task::spawn_blocking(move || file.write_all_at(&bytes, start))
                    .await
                    .map_err(|e| Error::io("write target file", std::io::Error::other(e)))?
                    .map_err(|e| Error::io("write target file", e))?;
                drop(permit);
                let total = done.fetch_add(end - start, Ordering::SeqCst) + (end - start);
                if let Some(p) = progress {
                    p(total);
                }
                Ok((i, crc))
            });
        }
        loop {
            tokio::select! {
                r = tasks.join_next() => match r {
                    None => break,
                    Some(r) => if let Err(e) = record(r, &mut crcs) { tasks.abort_all(); return Err(e); }
                },
                _ = opts.cancel.cancelled() => { tasks.abort_all(); return Err(Error::Cancelled); }
            }
        }
        let mut sum = ContentChecksum::new();
        for (i, c) in crcs.iter().enumerate() {
            let c = c.as_ref().ok_or_else(|| Error::Integrity {
                name: name.to_string(),
                detail: format!("range {i} missing"),
            })?;
            sum.append(c);
        }
        let checksum = sum.finish();
        let written = done.load(Ordering::SeqCst);
        if written != size {
            return Err(Error::Integrity {
                name: name.to_string(),
                detail: format!("wrote {written} bytes, blob has {size}"),
            });
        }
        let recorded = info.metadata.as_ref().and_then(|m| m.checksum.clone());
        let verified = match recorded {
            Some(r) if is_ours(&r) => {
                if r != checksum {
                    return Err(Error::Integrity {
                        name: name.to_string(),
                        detail: format!(
                            "content checksum {checksum} differs from the recorded {r}"
                        ),
                    });
                }
                true
            }
            _ => false,
        };
        Ok(Downloaded {
            size,
            etag: info.etag,
            checksum,
            verified,
        })
    }
}
