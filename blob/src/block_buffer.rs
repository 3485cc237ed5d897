//! Read buffers of upload blocks, each in an anonymous mapping of its own that goes back to the
//! kernel when the last `Bytes` of the block (the request body) is dropped.
//!
//! Why not a `Vec`: glibc's malloc serves an 8 MiB `Vec` from a fresh mapping only until the
//! first such block is freed; that free raises its mmap threshold to the block's size (the
//! dynamic threshold, `__libc_free` in glibc's malloc/malloc.c), and from then on blocks come from
//! the per-thread arenas, which keep what is freed in them. Blocks are freed on whichever runtime
//! thread finished their Put Block, so the copytool's RSS ended ~190 MiB above its in-flight
//! bound for 4 x 1 GiB (BENCHMARKS.md, "Where the time and memory go").

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

/// Reads `len` bytes of `file` at `offset` into a block of its own (see the module comment).
pub fn read_block(file: &File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    let mut block = MappedBlock::new(len)?;
    file.read_exact_at(block.as_mut_slice(), offset)?;
    Ok(Bytes::from_owner(block))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_block_holds_the_bytes_read_at_its_offset() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let b = read_block(&f, 1_000, 200_000).unwrap();
        assert_eq!(&b[..], &data[1_000..201_000]);
        // Clones share the mapping; it stays valid until the last one drops.
        let c = b.slice(10..20);
        drop(b);
        assert_eq!(&c[..], &data[1_010..1_020]);
        assert_eq!(read_block(&f, 0, 0).unwrap().len(), 0);
    }

    #[test]
    fn a_short_file_is_an_error_not_a_short_block() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abc").unwrap();
        let e = read_block(&f, 0, 10).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
