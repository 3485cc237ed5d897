//! Content checksum recorded in `lustre_checksum`: CRC-32 (IEEE) of the whole content, written
//! `crc32:XXXXXXXX` (8 lower-case hex digits). Blocks are hashed in parallel and combined in
//! order (`crc32fast::Hasher::combine`), so neither upload nor download hashes sequentially.

/// The whole-content checksum being built from ordered pieces.
#[derive(Clone, Default)]
pub struct ContentChecksum(crc32fast::Hasher);

impl ContentChecksum {
    /// A digest of nothing yet.
    pub fn new() -> Self {
        ContentChecksum(crc32fast::Hasher::new())
    }

    /// Checksum of one piece.
    pub fn of(bytes: &[u8]) -> Self {
        let mut h = crc32fast::Hasher::new();
        h.update(bytes);
        ContentChecksum(h)
    }

    /// Appends the piece that follows the content hashed so far.
    pub fn append(&mut self, next: &ContentChecksum) {
        self.0.combine(&next.0);
    }

    /// `crc32:XXXXXXXX`.
    pub fn finish(self) -> String {
        format!("crc32:{:08x}", self.0.finalize())
    }
}

/// Whether a recorded checksum is one we can verify.
pub fn is_ours(recorded: &str) -> bool {
    recorded.starts_with("crc32:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_pieces_equal_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = ContentChecksum::of(&data).finish();
        let mut c = ContentChecksum::new();
        for piece in data.chunks(4096) {
            c.append(&ContentChecksum::of(piece));
        }
        assert_eq!(c.finish(), whole);
        // Known value: CRC-32 of "123456789" is cbf43926.
        assert_eq!(ContentChecksum::of(b"123456789").finish(), "crc32:cbf43926");
        assert_eq!(ContentChecksum::new().finish(), "crc32:00000000");
        assert!(is_ours("crc32:00000000") && !is_ours("md5:x"));
    }
}
