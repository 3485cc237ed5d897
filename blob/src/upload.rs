//! Streaming upload of a file: one Put Blob below a threshold; above it parallel Put Block of
//! blocks read with `pread` (never the whole file in memory), then one Put Block List carrying
//! the metadata and the write condition. Nothing is visible until that Put Block List: a failure,
//! a crash or a cancellation leaves only uncommitted blocks, which Azure discards.
//!
//! Memory: at most `blocks_in_flight` buffers of `block_size` bytes exist at once (a semaphore
//! permit is taken before a buffer is allocated and given back after its Put Block finished).
//! When a large file forces a bigger block (no blob may have more than 50,000 blocks), fewer
//! blocks are kept in flight so the budget `blocks_in_flight x block_size` still holds.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use object_store::multipart::{MultipartStore, PartId};
use object_store::PutPayload;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
pub use tokio_util::sync::CancellationToken;

use crate::block_buffer::BlockPool;
use crate::checksum::ContentChecksum;
use crate::error::Error;
use crate::metadata::Metadata;
use crate::name::BlobName;
use crate::ratelimit::RateLimiter;
use crate::store::{BlobStore, WriteMode};

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// Azure: at most 50,000 committed blocks per blob.
pub const MAX_BLOCKS: u64 = 50_000;
/// Azure: at most 4,000 MiB per block (service version 2019-12-12 and later).
pub const MAX_BLOCK_SIZE: u64 = 4000 * MIB;

/// Progress callback: total bytes done so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// How to upload.
#[derive(Clone)]
pub struct UploadOptions {
    /// Overwrite, create-only or if-match.
    pub mode: WriteMode,
    /// Requested block size (grown automatically for very large files).
    pub block_size: u64,
    /// Blocks uploaded at once (bounds the memory: `block_size` x this). An upload starts with
    /// [`SLOW_START_BLOCKS`] and adds one for every block put.
    pub blocks_in_flight: usize,
    /// Files up to this size go in one Put Blob (default: the block size).
    pub single_put_threshold: u64,
    /// Told of every block sent, when set.
    pub progress: Option<Progress>,
    /// Cancels the upload (nothing is committed).
    pub cancel: CancellationToken,
    /// Bandwidth budget: each block (or the single Put Blob) acquires its length before it is
    /// read, so the limit holds during the transfer and across all transfers sharing it.
    pub rate_limit: Option<Arc<RateLimiter>>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            mode: WriteMode::Overwrite,
            block_size: 8 * MIB,
            blocks_in_flight: 16,
            single_put_threshold: 8 * MIB,
            progress: None,
            cancel: CancellationToken::new(),
            rate_limit: None,
        }
    }
}

impl std::fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions")
            .field("mode", &self.mode)
            .field("block_size", &self.block_size)
            .field("blocks_in_flight", &self.blocks_in_flight)
            .field("single_put_threshold", &self.single_put_threshold)
            .field("rate_limit", &self.rate_limit.as_ref().map(|l| l.rate()))
            .finish_non_exhaustive()
    }
}

/// The result of a committed upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The new blob's ETag.
    pub etag: String,
    /// Bytes uploaded.
    pub size: u64,
    /// `crc32:XXXXXXXX`, also recorded in the blob's `lustre_checksum`.
    pub checksum: String,
    /// Blocks committed (0 for a single Put Blob).
    pub blocks: u64,
    /// Block size used (after growth).
    pub block_size: u64,
    /// The most bytes held in read buffers at any moment (the uploader's own accounting).
    pub peak_buffered: u64,
}

/// Blocks put but not yet committed.
struct Staged {
    ids: Vec<String>,
    checksum: String,
    plan: BlockPlan,
    peak_buffered: u64,
}

/// Blocks of one upload in flight at its start ([`UploadOptions::blocks_in_flight`] is reached
/// one block put at a time).
pub const SLOW_START_BLOCKS: usize = 2;

/// Block size and parallelism for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPlan {
    /// Bytes per block.
    pub block_size: u64,
    /// How many blocks.
    pub blocks: u64,
    /// Blocks in flight at once.
    pub in_flight: usize,
}

/// Chooses the block size so that no file needs more than [`MAX_BLOCKS`] blocks (rounded up to
/// whole MiB), and the blocks in flight so that `in_flight x block_size` stays within the
/// requested budget (at least one block). Fails when the file exceeds what Azure can hold.
pub fn plan_blocks(
    size: u64,
    block_size: u64,
    blocks_in_flight: usize,
) -> Result<BlockPlan, Error> {
    let requested = block_size.max(1);
    let in_flight_req = blocks_in_flight.max(1);
    // Grow only when the requested size would need too many blocks (then to whole MiB); a small
    // requested block stays as it is for files it can carry.
    let block = if size.div_ceil(requested) > MAX_BLOCKS {
        requested.max(size.div_ceil(MAX_BLOCKS).div_ceil(MIB) * MIB)
    } else {
        requested
    };
    if block > MAX_BLOCK_SIZE {
        return Err(Error::Permanent(crate::error::Failure {
            op: "plan upload",
            name: String::new(),
            status: None,
            code: None,
            message: format!(
                "file of {size} bytes exceeds Azure's block blob limit ({MAX_BLOCKS} blocks of {} MiB)",
                MAX_BLOCK_SIZE / MIB
            ),
        }));
    }
    let budget = requested.saturating_mul(in_flight_req as u64);
    let in_flight = ((budget / block) as usize).clamp(1, in_flight_req);
    Ok(BlockPlan {
        block_size: block,
        blocks: size.div_ceil(block),
        in_flight,
    })
}

/// Bytes currently held in read buffers, and the peak.
#[derive(Default)]
struct BufferAccount {
    now: AtomicU64,
    peak: AtomicU64,
}

/// A read buffer counted in the account until dropped.
struct CountedBuffer {
    len: u64,
    account: Arc<BufferAccount>,
}

impl CountedBuffer {
    fn new(len: u64, account: &Arc<BufferAccount>) -> CountedBuffer {
        let now = account.now.fetch_add(len, Ordering::SeqCst) + len;
        account.peak.fetch_max(now, Ordering::SeqCst);
        CountedBuffer {
            len,
            account: account.clone(),
        }
    }
}

impl Drop for CountedBuffer {
    fn drop(&mut self) {
        self.account.now.fetch_sub(self.len, Ordering::SeqCst);
    }
}

/// Reads `len` bytes at `offset` on a blocking thread into a block of the upload's pool, which
/// it goes back to when the request body drops (see [`crate::block_buffer`]).
async fn pread_block(
    pool: Arc<BlockPool>,
    file: Arc<File>,
    offset: u64,
    len: usize,
) -> Result<Bytes, Error> {
    tokio::task::spawn_blocking(move || pool.read(&file, offset, len))
        .await
        .map_err(|e| Error::io("read source file", std::io::Error::other(e)))?
        .map_err(|e| Error::io("read source file", e))
}

/// Reads `len` bytes at `offset` on a blocking thread.
async fn pread(file: Arc<File>, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).map(|_| buf)
    })
    .await
    .map_err(|e| Error::io("read source file", std::io::Error::other(e)))?
    .map_err(|e| Error::io("read source file", e))
}

impl BlobStore {
    /// Uploads a file's content as `name` with `meta` (its `checksum` is set from the content).
    pub async fn upload_file(
        &self,
        file: &File,
        name: &BlobName,
        meta: &Metadata,
        opts: UploadOptions,
    ) -> Result<Uploaded, Error> {
        let size = file
            .metadata()
            .map_err(|e| Error::io("stat source file", e))?
            .len();
        let file = Arc::new(
            file.try_clone()
                .map_err(|e| Error::io("dup source file", e))?,
        );
        if opts.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if size <= opts.single_put_threshold.min(opts.block_size.max(1)).max(1) {
            return self.upload_single(file, size, name, meta, &opts).await;
        }
        self.upload_blocks(file, size, name, meta, opts).await
    }

    async fn upload_single(
        &self,
        file: Arc<File>,
        size: u64,
        name: &BlobName,
        meta: &Metadata,
        opts: &UploadOptions,
    ) -> Result<Uploaded, Error> {
        if let Some(limit) = &opts.rate_limit {
            tokio::select! {
                () = limit.acquire(size) => {}
                _ = opts.cancel.cancelled() => return Err(Error::Cancelled),
            }
        }
        let account = Arc::new(BufferAccount::default());
        let counted = CountedBuffer::new(size, &account);
        let data = tokio::select! {
            r = pread(file, 0, size as usize) => r?,
            _ = opts.cancel.cancelled() => return Err(Error::Cancelled),
        };
        let checksum = ContentChecksum::of(&data).finish();
        let mut meta = meta.clone();
        meta.checksum = Some(checksum.clone());
        let body = Bytes::from(data);
        let etag = tokio::select! {
            r = self.put_whole("put blob", name, body, &meta, &opts.mode) => r?,
            _ = opts.cancel.cancelled() => return Err(Error::Cancelled),
        };
        drop(counted);
        if let Some(p) = &opts.progress {
            p(size);
        }
        Ok(Uploaded {
            etag,
            size,
            checksum,
            blocks: 0,
            block_size: size,
            peak_buffered: account.peak.load(Ordering::SeqCst),
        })
    }

    /// Stages every block, then commits them. Azure discards uncommitted blocks when another
    /// writer commits the same name, after a week, and Azurite when it is killed before saving
    /// them; the commit then fails with `InvalidBlockList`. The file is still here, so the blocks
    /// are staged once more and committed again; a second loss is reported as transient (the
    /// policy engine retries the file in its next iteration) rather than a permanent failure.
    async fn upload_blocks(
        &self,
        file: Arc<File>,
        size: u64,
        name: &BlobName,
        meta: &Metadata,
        opts: UploadOptions,
    ) -> Result<Uploaded, Error> {
        let mut restaged = false;
        loop {
            let staged = self.stage_blocks(file.clone(), size, name, &opts).await?;
            let mut meta = meta.clone();
            meta.checksum = Some(staged.checksum.clone());
            let commit = tokio::select! {
                r = self.put_block_list(name, &staged.ids, &meta, &opts.mode) => r,
                _ = opts.cancel.cancelled() => return Err(Error::Cancelled),
            };
            match commit {
                Ok(etag) => {
                    return Ok(Uploaded {
                        etag,
                        size,
                        checksum: staged.checksum,
                        blocks: staged.plan.blocks,
                        block_size: staged.plan.block_size,
                        peak_buffered: staged.peak_buffered,
                    })
                }
                Err(Error::Permanent(f)) if f.code.as_deref() == Some("InvalidBlockList") => {
                    if restaged {
                        return Err(Error::Transient(f));
                    }
                    tracing::warn!(blob = %name, "staged blocks were discarded before the commit; staging them again");
                    restaged = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Puts every block of the file (at most `in_flight` at once); returns their ids in order
    /// and the content checksum.
    async fn stage_blocks(
        &self,
        file: Arc<File>,
        size: u64,
        name: &BlobName,
        opts: &UploadOptions,
    ) -> Result<Staged, Error> {
        let plan = plan_blocks(size, opts.block_size, opts.blocks_in_flight)?;
        // Slow start: [`SLOW_START_BLOCKS`] in flight at first, one more for every block put,
        // up to `plan.in_flight` (the window doubles per round of blocks, as TCP's does). Large
        // files starting together otherwise hit the store with every block at once (4 x 8
        // blocks of 8 MiB), and a small file's Put Blob sent then waited behind all of them:
        // 4 KiB puts to Azurite in the first 8 s of 4 x 1 GiB uploads took p99 7.8 s (max
        // 8.6 s) with 8 blocks each at once, p99 0.18 s with the ramp, and the 1 GiB uploads
        // were no slower (BENCHMARKS.md, "Freshness").
        let mut granted = SLOW_START_BLOCKS.min(plan.in_flight);
        let permits = Arc::new(Semaphore::new(granted));
        let mut ramp = |permits: &Semaphore| {
            if granted < plan.in_flight {
                permits.add_permits(1);
                granted += 1;
            }
        };
        let account = Arc::new(BufferAccount::default());
        let pool = BlockPool::new(plan.block_size as usize);
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks: JoinSet<Result<(u64, PartId, ContentChecksum), Error>> = JoinSet::new();
        let mut parts: Vec<Option<(PartId, ContentChecksum)>> = vec![None; plan.blocks as usize];
        let cancel = opts.cancel.clone();

        type Done = Result<(u64, PartId, ContentChecksum), Error>;
        fn record(
            r: Result<Done, tokio::task::JoinError>,
            parts: &mut [Option<(PartId, ContentChecksum)>],
        ) -> Result<(), Error> {
            let (idx, part, crc) =
                r.map_err(|e| Error::io("upload task", std::io::Error::other(e)))??;
            parts[idx as usize] = Some((part, crc));
            Ok(())
        }

        for idx in 0..plan.blocks {
            // Take a permit before reading the block: this is what bounds the memory.
            let permit = loop {
                tokio::select! {
                    p = permits.clone().acquire_owned() => {
                        break p.map_err(|e| Error::io("upload permits", std::io::Error::other(e)))?
                    }
                    Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                        if let Err(e) = record(r, &mut parts) {
                            tasks.abort_all();
                            return Err(e);
                        }
                        ramp(&permits);
                    }
                    _ = cancel.cancelled() => {
                        tasks.abort_all();
                        return Err(Error::Cancelled);
                    }
                }
            };
            let offset = idx * plan.block_size;
            let len = plan.block_size.min(size - offset);
            let store = self.clone();
            let file = file.clone();
            let account = account.clone();
            let pool = pool.clone();
            let done = done.clone();
            let progress = opts.progress.clone();
            let limit = opts.rate_limit.clone();
            let path = name.path().clone();
            let name_s = name.to_string();
            tasks.spawn(async move {
                // Paid before the read; a cancel aborts the task, which gives the slot back.
                if let Some(limit) = limit {
                    limit.acquire(len).await;
                }
                let counted = CountedBuffer::new(len, &account);
                let data = pread_block(pool, file, offset, len as usize).await?;
                let crc = ContentChecksum::of(&data);
                let payload = PutPayload::from(data);
                let part = MultipartStore::put_part(
                    &store.inner.azure,
                    &path,
                    &String::new(),
                    idx as usize,
                    payload,
                )
                .await
                .map_err(|e| store.store_err("put block", &name_s, e))?;
                drop(counted);
                drop(permit);
                let total = done.fetch_add(len, Ordering::SeqCst) + len;
                if let Some(p) = progress {
                    p(total);
                }
                Ok((idx, part, crc))
            });
        }
        loop {
            tokio::select! {
                r = tasks.join_next() => match r {
                    None => break,
                    Some(r) => if let Err(e) = record(r, &mut parts) {
                        tasks.abort_all();
                        return Err(e);
                    }
                },
                _ = cancel.cancelled() => {
                    tasks.abort_all();
                    return Err(Error::Cancelled);
                }
            }
        }

        let mut checksum = ContentChecksum::new();
        let mut ids = Vec::with_capacity(parts.len());
        for (i, p) in parts.into_iter().enumerate() {
            let (part, crc) = p.ok_or_else(|| Error::Integrity {
                name: name.to_string(),
                detail: format!("block {i} missing after upload"),
            })?;
            checksum.append(&crc);
            ids.push(part.content_id);
        }
        Ok(Staged {
            ids,
            checksum: checksum.finish(),
            plan,
            peak_buffered: account.peak.load(Ordering::SeqCst),
        })
    }

    /// Commits blocks with metadata and the write condition (`If-None-Match: *` for create-only,
    /// `If-Match` for replace-if-unchanged), which object_store's multipart API cannot express.
    pub(crate) async fn put_block_list(
        &self,
        name: &BlobName,
        ids: &[String],
        meta: &Metadata,
        mode: &WriteMode,
    ) -> Result<String, Error> {
        let body = Bytes::from(crate::rest::block_list_xml(ids));
        let pairs = meta.to_pairs();
        self.retrying(|| async {
            let mut headers = crate::rest::metadata_headers(&pairs);
            headers.push((http::header::CONTENT_TYPE, "application/xml".to_string()));
            match mode {
                WriteMode::Overwrite => {}
                WriteMode::CreateOnly => {
                    headers.push((http::header::IF_NONE_MATCH, "*".to_string()))
                }
                WriteMode::IfMatch(e) => headers.push((http::header::IF_MATCH, e.clone())),
            }
            let a = self
                .inner
                .signed(
                    "put block list",
                    Method::PUT,
                    name,
                    &[("comp", "blocklist")],
                    headers,
                    body.clone(),
                )
                .await?;
            Ok(a.etag().unwrap_or_default())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * MIB;
    const TIB: u64 = 1024 * GIB;

    #[test]
    fn block_plan_keeps_under_50000_blocks_up_to_190_tib() {
        for size in [
            1,
            MIB,
            GIB,
            100 * GIB,
            390 * GIB,
            391 * GIB,
            TIB,
            10 * TIB,
            100 * TIB,
            190 * TIB,
            MAX_BLOCKS * MAX_BLOCK_SIZE,
        ] {
            let p = plan_blocks(size, 8 * MIB, 16).unwrap();
            assert!(p.blocks <= MAX_BLOCKS, "{size}: {p:?}");
            assert!(
                p.block_size >= 8 * MIB && p.block_size <= MAX_BLOCK_SIZE,
                "{size}: {p:?}"
            );
            assert_eq!(p.block_size % MIB, 0);
            assert!(p.blocks * p.block_size >= size, "{size}: {p:?}");
            assert!((p.blocks - 1) * p.block_size < size, "{size}: {p:?}");
            assert!(
                p.in_flight as u64 * p.block_size <= 16 * 8 * MIB || p.in_flight == 1,
                "{size}: {p:?}"
            );
            assert!(p.in_flight >= 1);
        }
        // Small files keep the requested block size and parallelism.
        assert_eq!(
            plan_blocks(GIB, 8 * MIB, 16).unwrap(),
            BlockPlan {
                block_size: 8 * MIB,
                blocks: 128,
                in_flight: 16
            }
        );
        // 390.625 GiB is the most 8 MiB blocks can carry; one more MiB grows the block.
        assert_eq!(
            plan_blocks(MAX_BLOCKS * 8 * MIB, 8 * MIB, 16)
                .unwrap()
                .block_size,
            8 * MIB
        );
        let p = plan_blocks(MAX_BLOCKS * 8 * MIB + 1, 8 * MIB, 16).unwrap();
        assert_eq!(p.block_size, 9 * MIB);
        assert_eq!(p.in_flight, 14); // 128 MiB budget / 9 MiB
                                     // 190 TiB: 3985 MiB blocks, one in flight.
        let p = plan_blocks(190 * TIB, 8 * MIB, 16).unwrap();
        assert_eq!(p.block_size, 3985 * MIB);
        assert_eq!(p.in_flight, 1);
        assert!(plan_blocks(MAX_BLOCKS * MAX_BLOCK_SIZE + 1, 8 * MIB, 16).is_err());
    }

    #[test]
    fn a_small_requested_block_is_kept_when_it_fits() {
        assert_eq!(
            plan_blocks(10 * MIB, 64 * 1024, 4).unwrap(),
            BlockPlan {
                block_size: 64 * 1024,
                blocks: 160,
                in_flight: 4
            }
        );
        // 64 KiB blocks carry at most 50,000 x 64 KiB; beyond, whole MiB blocks.
        let most = MAX_BLOCKS * 64 * 1024;
        assert_eq!(
            plan_blocks(most, 64 * 1024, 4).unwrap().block_size,
            64 * 1024
        );
        let p = plan_blocks(most + 1, 64 * 1024, 4).unwrap();
        assert_eq!((p.block_size, p.in_flight), (MIB, 1));
    }

    #[test]
    fn buffer_account_tracks_peak() {
        let a = Arc::new(BufferAccount::default());
        let b1 = CountedBuffer::new(10, &a);
        let b2 = CountedBuffer::new(5, &a);
        drop(b1);
        let _b3 = CountedBuffer::new(7, &a);
        drop(b2);
        assert_eq!(a.peak.load(Ordering::SeqCst), 15);
        assert_eq!(a.now.load(Ordering::SeqCst), 7);
    }
}
