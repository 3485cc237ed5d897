//! Read buffers of upload blocks: anonymous mappings of their own, reused within one upload and
//! given back to the kernel when the upload and the last of its request bodies are done.
//!
//! Why not a `Vec`: glibc's malloc serves an 8 MiB `Vec` from a fresh mapping only until the
//! first such block is freed; that free raises its mmap threshold to the block's size (the
//! dynamic threshold, `__libc_free` in glibc's malloc/malloc.c), and from then on blocks come from
//! the per-thread arenas, which keep what is freed in them. Blocks are freed on whichever runtime
//! thread finished their Put Block, so the copytool's RSS ended ~190 MiB above its in-flight
//! bound for 4 x 1 GiB (BENCHMARKS.md, "Where the time and memory go").
//!
//! Why reused ([`BlockPool`]): a fresh mapping costs the kernel a page fault and the clearing of
//! every 4 KiB page the read then overwrites; with a mapping per block that was a quarter of the
//! copytool's CPU for 4 x 1 GiB (`clear_page_erms`, `exc_page_fault`), on a machine where the
//! store's own process needs the other core. A pool maps only as many blocks as are in flight at
//! once (8, not the 128 of a 1 GiB file) and unmaps them with the upload, so the RSS bound holds.

use bytes::Bytes;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// One block's buffer: `len` bytes of private anonymous memory (zero-filled by the kernel).
pub struct MappedBlock {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (no other pointer to it escapes except
// through `&self`/`&mut self` borrows), so moving it to or sharing it with another thread is as
// safe as for a `Vec<u8>`.
unsafe impl Send for MappedBlock {}
// SAFETY: as above; shared access is read-only through `AsRef<[u8]>`.
unsafe impl Sync for MappedBlock {}

impl MappedBlock {
    /// A new zero-filled block of `len` bytes (at least one page is mapped for `len == 0`).
    pub fn new(len: usize) -> std::io::Result<MappedBlock> {
        let map_len = len.max(1);
        // SAFETY: a fresh private anonymous mapping: no file, no fixed address, nothing aliased.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                map_len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .map_err(std::io::Error::from)?;
        let ptr = std::ptr::NonNull::new(p.cast::<u8>())
            .ok_or_else(|| std::io::Error::other("mmap returned a null mapping"))?;
        Ok(MappedBlock { ptr, len })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps at least `len` writable bytes for the life of `self`, and `&mut self`
        // is the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for MappedBlock {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps at least `len` readable bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for MappedBlock {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of that length, unmapped once; nothing borrows it
        // any more (the borrow checker and `Bytes::from_owner` guarantee no slice outlives us).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len.max(1)) };
    }
}

/// The blocks of one upload: each [`BlockPool::read`] takes a free mapping of `block_len` bytes
/// (or maps a new one) and the mapping comes back when the last `Bytes` of the block drops. The
/// pool holds at most as many mappings as were in use at once, and unmaps them when it is
/// dropped with the last block.
pub struct BlockPool {
    block_len: usize,
    free: std::sync::Mutex<Vec<MappedBlock>>,
    mapped: std::sync::atomic::AtomicUsize,
}

impl BlockPool {
    /// A pool of blocks of `block_len` bytes (reads of up to that length).
    pub fn new(block_len: usize) -> std::sync::Arc<BlockPool> {
        std::sync::Arc::new(BlockPool {
            block_len,
            free: std::sync::Mutex::new(Vec::new()),
            mapped: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// How many mappings the pool made so far.
    pub fn mapped(&self) -> usize {
        self.mapped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads `len` bytes (at most the pool's block length) of `file` at `offset` into a block
    /// of the pool; a file shorter than that is an error (`UnexpectedEof`), not a short block.
    pub fn read(
        self: &std::sync::Arc<Self>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> std::io::Result<Bytes> {
        if len > self.block_len {
            return Err(std::io::Error::other(format!(
                "a read of {len} bytes does not fit a block of {} bytes",
                self.block_len
            )));
        }
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        let mut block = match reused {
            Some(b) => b,
            None => {
                let b = MappedBlock::new(self.block_len)?;
                self.mapped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                b
            }
        };
        // On an error the block is dropped (unmapped) rather than returned: rare, and simple.
        file.read_exact_at(&mut block.as_mut_slice()[..len], offset)?;
        Ok(Bytes::from_owner(PooledBlock {
            block: Some(block),
            len,
            pool: self.clone(),
        }))
    }
}

/// A block lent by a [`BlockPool`]: its first `len` bytes are the data; it goes back to the
/// pool when dropped.
struct PooledBlock {
    block: Option<MappedBlock>,
    len: usize,
    pool: std::sync::Arc<BlockPool>,
}

impl AsRef<[u8]> for PooledBlock {
    fn as_ref(&self) -> &[u8] {
        match &self.block {
            Some(b) => &b.as_ref()[..self.len],
            None => &[],
        }
    }
}

impl Drop for PooledBlock {
    fn drop(&mut self) {
        if let (Some(b), Ok(mut free)) = (self.block.take(), self.pool.free.lock()) {
            free.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data(n: u32) -> (std::fs::File, Vec<u8>) {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        (f, data)
    }

    #[test]
    fn a_block_holds_the_bytes_read_at_its_offset() {
        let (f, data) = data(300_000);
        let pool = BlockPool::new(200_000);
        let b = pool.read(&f, 1_000, 200_000).unwrap();
        assert_eq!(&b[..], &data[1_000..201_000]);
        // Clones share the mapping; it stays valid until the last one drops.
        let c = b.slice(10..20);
        drop(b);
        assert_eq!(&c[..], &data[1_010..1_020]);
        assert_eq!(pool.read(&f, 0, 0).unwrap().len(), 0);
    }

    #[test]
    fn a_short_file_is_an_error_not_a_short_block() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abc").unwrap();
        let e = BlockPool::new(10).read(&f, 0, 10).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let e = BlockPool::new(4).read(&f, 0, 10).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }

    /// An upload of many blocks, two in flight at a time, maps two blocks, not one per block;
    /// a reused block carries only the bytes of its new read (the last, short one included).
    #[test]
    fn blocks_are_reused_once_their_last_bytes_drop() {
        let (f, data) = data(10 * 4096 + 100);
        let pool = BlockPool::new(4096);
        let mut in_flight: std::collections::VecDeque<(usize, Bytes)> = Default::default();
        for i in 0..=10usize {
            let len = if i == 10 { 100 } else { 4096 };
            let b = pool.read(&f, (i * 4096) as u64, len).unwrap();
            in_flight.push_back((i, b));
            if in_flight.len() == 2 {
                let (j, b) = in_flight.pop_front().unwrap();
                assert_eq!(&b[..], &data[j * 4096..(j * 4096 + b.len())]);
                drop(b);
            }
        }
        let (j, last) = in_flight.pop_front().unwrap();
        assert_eq!((j, last.len()), (10, 100));
        assert_eq!(&last[..], &data[40_960..]);
        assert_eq!(pool.mapped(), 2, "one mapping per block in flight");
    }
}
