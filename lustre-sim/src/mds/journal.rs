//! Crash-safe persistence: a snapshot (`state.json`, written atomically) plus a write-ahead
//! journal (`journal`) of framed entries, each written before the daemon acknowledges or
//! exposes what it carries. Entry frame: u32 length, u32 checksum (FNV-1a), JSON payload.
//!
//! A write() alone survives the daemon's death (kill -9: the bytes are in the page cache).
//! Surviving a machine crash takes an fsync, and that is done as an ldiskfs MDT does it: not
//! per operation but by a periodic group commit. jbd2 commits the running transaction every
//! 5 s (`JBD2_DEFAULT_MAX_COMMIT_AGE`), and the MDT replies to a client and exposes its
//! changelog records (llog reads go through the page cache) before that commit. An fsync per
//! record under the MDS's one lock would make every archive pay a disk flush that Lustre does
//! not charge, which hid where the time of a small-file export goes (issue 17).
//! On start the snapshot is loaded, then every journal entry with a higher sequence number is
//! replayed; a torn or corrupt tail (kill -9 mid-write) is truncated away.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub fn fnv32(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for &c in b {
        h ^= c as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    /// Entries written since the last group commit that must survive a machine crash.
    unsynced: bool,
}

/// Seconds between two group commits of the journal: jbd2's default commit interval
/// (`JBD2_DEFAULT_MAX_COMMIT_AGE`), which an ldiskfs MDT keeps unless mounted with `commit=`.
pub const COMMIT_INTERVAL_SECS: u64 = 5;

impl Journal {
    /// Opens the journal, returning it and every intact entry's payload.
    pub fn open(path: &Path) -> std::io::Result<(Journal, Vec<Vec<u8>>)> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        let mut all = Vec::new();
        file.read_to_end(&mut all)?;
        let mut entries = Vec::new();
        let mut o = 0usize;
        while o + 8 <= all.len() {
            let n = u32::from_le_bytes(all[o..o + 4].try_into().unwrap_or([0; 4])) as usize;
            let sum = u32::from_le_bytes(all[o + 4..o + 8].try_into().unwrap_or([0; 4]));
            if o + 8 + n > all.len() || fnv32(&all[o + 8..o + 8 + n]) != sum {
                break;
            }
            entries.push(all[o + 8..o + 8 + n].to_vec());
            o += 8 + n;
        }
        if o as u64 != all.len() as u64 {
            file.set_len(o as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(o as u64))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                len: o as u64,
                unsynced: false,
            },
            entries,
        ))
    }

    /// Appends one entry. A write() alone survives the daemon being killed (the data is in
    /// the page cache); `durable` entries are also made to survive a machine crash, by the next
    /// group commit ([`Journal::take_commit`]).
    pub fn append(&mut self, payload: &[u8], durable: bool) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(8 + payload.len());
        b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&fnv32(payload).to_le_bytes());
        b.extend_from_slice(payload);
        self.file.write_all(&b)?;
        self.unsynced |= durable;
        self.len += b.len() as u64;
        Ok(())
    }

    /// The group commit due, if durable entries were written since the last one: a second
    /// handle on the journal for the caller to fsync after it lets go of the MDS's lock (the
    /// flush covers every write made before it, through either handle).
    pub fn take_commit(&mut self) -> std::io::Result<Option<File>> {
        if !self.unsynced {
            return Ok(None);
        }
        let handle = self.file.try_clone()?;
        self.unsynced = false;
        Ok(Some(handle))
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the journal (after a snapshot covering it was made durable).
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.sync_all()?;
        self.len = 0;
        self.unsynced = false;
        let _ = &self.path;
        Ok(())
    }
}

/// Writes `data` to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(d) = path.parent() {
        File::open(d)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        {
            let (mut j, e) = Journal::open(&p).unwrap();
            assert!(e.is_empty());
            j.append(b"one", true).unwrap();
            j.append(b"two", false).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let (mut j, e) = Journal::open(&p).unwrap();
        assert_eq!(e, vec![b"one".to_vec(), b"two".to_vec()]);
        j.append(b"three", true).unwrap();
        let (_, e) = Journal::open(&p).unwrap();
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn a_group_commit_is_due_only_after_durable_entries() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(&d.path().join("j")).unwrap();
        assert!(j.take_commit().unwrap().is_none(), "nothing written");
        j.append(b"state only", false).unwrap();
        assert!(
            j.take_commit().unwrap().is_none(),
            "no changelog record: no fsync"
        );
        j.append(b"a record", true).unwrap();
        j.append(b"another", true).unwrap();
        let h = j
            .take_commit()
            .unwrap()
            .expect("records written: a commit is due");
        h.sync_data().unwrap();
        assert!(j.take_commit().unwrap().is_none(), "one commit covers both");
        j.append(b"after", true).unwrap();
        j.reset().unwrap();
        assert!(
            j.take_commit().unwrap().is_none(),
            "a reset is itself synced"
        );
    }
}
