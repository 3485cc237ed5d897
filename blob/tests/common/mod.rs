#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use blob::{BlobStore, TargetSpec};
use testkit::Azurite;
use testkit::BlobEndpoint;

pub fn spec(az: &Azurite, container: &str, prefix: &str) -> TargetSpec {
    let url = if prefix.is_empty() {
        az.container_url(container)
    } else {
        format!("{}/{prefix}", az.container_url(container))
    };
    let mut s = TargetSpec::new(url);
    s.use_emulator = true;
    s.retries = 1;
    s
}

/// Azurite with a container, and a store on it.
pub fn setup(container: &str, prefix: &str) -> (Azurite, BlobStore) {
    let az = Azurite::start();
    az.create_container(container);
    let store = BlobStore::open(&spec(&az, container, prefix)).unwrap();
    (az, store)
}

/// Deterministic, position-dependent content.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let p = offset + i;
            (p.wrapping_mul(2654435761) >> 13) as u8 ^ (p / 1_048_576) as u8
        })
        .collect()
}

const CHUNK: usize = 4 * 1024 * 1024;

/// Chunk `k` of a generated file: a pseudo-random 4 MiB block rotated by a k-dependent amount,
/// so every chunk differs (cheap to make even in debug builds).
fn chunk(base: &mut Vec<u8>, k: u64) -> &[u8] {
    if base.is_empty() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        base.reserve(CHUNK);
        for _ in 0..CHUNK / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            base.extend_from_slice(&x.to_le_bytes());
        }
    }
    let shift = (k as usize).wrapping_mul(7919) % CHUNK;
    base.rotate_left(shift);
    base
}

pub fn write_pattern_file(path: &Path, size: u64) -> std::fs::File {
    let mut f = std::fs::File::create(path).unwrap();
    let mut base = Vec::new();
    let mut off = 0;
    let mut k = 0;
    while off < size {
        let n = (CHUNK as u64).min(size - off) as usize;
        f.write_all(&chunk(&mut base, k)[..n]).unwrap();
        off += n as u64;
        k += 1;
    }
    f.sync_all().unwrap();
    std::fs::File::open(path).unwrap()
}

/// Whether two files have the same bytes.
pub fn same_content(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

pub fn crc_of_file(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 4 * 1024 * 1024];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("crc32:{:08x}", h.finalize())
}
