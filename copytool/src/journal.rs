//! The journal of begun items (issue 12 item 1, DESIGN §6b).
//!
//! A copytool killed with `kill -9` leaves its requests STARTED at the coordinator until
//! `hsm.active_request_timeout` (3600 s by default): a new copytool on the same mount is not sent
//! them again (`mdt_hsm_agent_register` answers -EEXIST, only WAITING records are dispatched), and
//! they hold `max_requests` slots. The MDT does accept their end by cookie from any root process
//! (`mdt_cdt_update_request`), so every item the copytool receives is written here (cookie, FID,
//! action, extent, when it was received) before it is served, and marked ended once its end was
//! sent. The journal file is held under an exclusive `flock` for the copytool's life; a journal
//! whose lock can be taken belongs to no living copytool, and the next copytool ends what it
//! lists with `llapi_hsm_action_begin(is_error)` + `llapi_hsm_action_end(ECANCELED)`, as
//! `lhsmtool_posix`'s `ct_fini` ends an item that failed.
//!
//! Files: `<dir>/lhsmtool_blob-<fsname>-<n>.journal`, one per living copytool of that file system
//! on this host (the simulator allows several per mount); each line is
//! `B <cookie> <seq>:<oid>:<ver> <action> <offset> <length> <received unix s>` or `E <cookie>`
//! (numbers in hex). Lines are appended with one write(2) each (a process crash loses nothing the
//! kernel accepted); unreadable lines (a torn tail) are skipped.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lustre::{ActionItem, CopytoolAction, Extent, Fid};

/// One journalled item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The coordinator's cookie of the request.
    pub cookie: u64,
    /// The file.
    pub fid: Fid,
    /// What was asked.
    pub action: CopytoolAction,
    /// The range the request covers.
    pub extent: Extent,
    /// Unix seconds when the coordinator handed it to us.
    pub received: u64,
}

impl Entry {
    /// The entry for `item`, received now.
    pub fn of(item: &ActionItem) -> Entry {
        Entry {
            cookie: item.cookie,
            fid: item.fid,
            action: item.action,
            extent: item.extent,
            received: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// The action item to end it with: the fixed part only, data FID = FID (as the coordinator
    /// sends it).
    pub fn item(&self) -> ActionItem {
        ActionItem {
            action: self.action,
            fid: self.fid,
            dfid: self.fid,
            extent: self.extent,
            cookie: self.cookie,
            gid: 0,
            data: Vec::new(),
        }
    }

    fn line(&self) -> String {
        format!(
            "B {:x} {:x}:{:x}:{:x} {:x} {:x} {:x} {:x}\n",
            self.cookie,
            self.fid.seq,
            self.fid.oid,
            self.fid.ver,
            action_raw(self.action),
            self.extent.offset,
            self.extent.length,
            self.received
        )
    }
}

fn action_raw(a: CopytoolAction) -> u32 {
    match a {
        CopytoolAction::None => 0,
        CopytoolAction::Archive => 10,
        CopytoolAction::Restore => 11,
        CopytoolAction::Remove => 12,
        CopytoolAction::Cancel => 13,
        CopytoolAction::Unknown(n) => n,
    }
}

fn action_of(n: u32) -> CopytoolAction {
    match n {
        0 => CopytoolAction::None,
        10 => CopytoolAction::Archive,
        11 => CopytoolAction::Restore,
        12 => CopytoolAction::Remove,
        13 => CopytoolAction::Cancel,
        n => CopytoolAction::Unknown(n),
    }
}

fn hex64(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

fn hex32(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 16).ok()
}

/// The items begun and not ended, in cookie order.
fn parse(text: &str) -> Vec<Entry> {
    let mut live: BTreeMap<u64, Entry> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["B", cookie, fid, action, off, len, received] => {
                let mut p = fid.split(':');
                let (Some(seq), Some(oid), Some(ver), None) = (
                    p.next().and_then(hex64),
                    p.next().and_then(hex32),
                    p.next().and_then(hex32),
                    p.next(),
                ) else {
                    continue;
                };
                let (Some(cookie), Some(action), Some(offset), Some(length), Some(received)) = (
                    hex64(cookie),
                    hex32(action),
                    hex64(off),
                    hex64(len),
                    hex64(received),
                ) else {
                    continue;
                };
                live.insert(
                    cookie,
                    Entry {
                        cookie,
                        fid: Fid { seq, oid, ver },
                        action: action_of(action),
                        extent: Extent { offset, length },
                        received,
                    },
                );
            }
            ["E", cookie] => {
                if let Some(c) = hex64(cookie) {
                    live.remove(&c);
                }
            }
            _ => {}
        }
    }
    live.into_values().collect()
}

/// Exclusive, non-blocking `flock`; false when another open file description holds it.
fn try_lock(f: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The journal files of one file system in one directory: `<prefix><n>.journal`.
struct Slots<'a> {
    dir: &'a Path,
    prefix: String,
}

impl Slots<'_> {
    /// The slot numbers present, in order.
    fn existing(&self) -> std::io::Result<Vec<u32>> {
        let mut indexes: Vec<u32> = std::fs::read_dir(self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix(&self.prefix)?
                    .strip_suffix(".journal")?
                    .parse()
                    .ok()
            })
            .collect();
        indexes.sort_unstable();
        Ok(indexes)
    }

    fn open(&self, n: u32) -> std::io::Result<(PathBuf, File)> {
        let p = self.dir.join(format!("{}{n}.journal", self.prefix));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)?;
        Ok((p, f))
    }

    /// The first slot from `n` on whose lock is free, locked.
    fn claim_new(&self, mut n: u32) -> std::io::Result<(PathBuf, File)> {
        loop {
            let (p, f) = self.open(n)?;
            if try_lock(&f)? {
                return Ok((p, f));
            }
            n += 1;
        }
    }
}

/// A journal's text; a file that is not UTF-8 (torn beyond repair) reads as empty.
fn read_text(f: &mut File) -> std::io::Result<String> {
    let mut text = String::new();
    match f.read_to_string(&mut text) {
        Ok(_) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(String::new()),
        Err(e) => Err(e),
    }
}

struct Inner {
    file: Option<File>,
    live: BTreeMap<u64, Entry>,
    /// Items whose end did not reach the coordinator: `ended` leaves them journalled.
    undelivered: std::collections::BTreeSet<u64>,
    /// Lines in the file (compaction when far above the live count).
    lines: usize,
}

/// The journal of this copytool. `Journal::memory()` keeps it in memory only (unit tests).
pub struct Journal {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

/// What previous copytools left: their items and the journal files they were read from (locked
/// by us until [`Journal::recovered`]).
pub struct Leftovers {
    /// The items begun and never ended, in cookie order.
    pub items: Vec<Entry>,
    files: Vec<File>,
}

/// Compaction once the file holds this many lines more than twice the live items.
const COMPACT_SLACK: usize = 4096;

impl Journal {
    /// A journal that writes nothing (unit tests, and a copytool run without a state directory).
    pub fn memory() -> Journal {
        Journal {
            path: None,
            inner: Mutex::new(Inner {
                file: None,
                live: BTreeMap::new(),
                undelivered: Default::default(),
                lines: 0,
            }),
        }
    }

    /// Takes a journal slot for `fsname` in `dir` (created 0700 if missing) and collects what every
    /// unlocked journal of that file system lists.
    pub fn open(dir: &Path, fsname: &str) -> std::io::Result<(Journal, Leftovers)> {
        std::fs::create_dir_all(dir)?;
        let slots = Slots {
            dir,
            prefix: format!("lhsmtool_blob-{fsname}-"),
        };
        let indexes = slots.existing()?;
        let mut ours: Option<(PathBuf, File)> = None;
        let mut items: BTreeMap<u64, Entry> = BTreeMap::new();
        let mut files = Vec::new();
        for &n in &indexes {
            let (p, mut f) = slots.open(n)?;
            if !try_lock(&f)? {
                continue; // a living copytool's
            }
            for e in parse(&read_text(&mut f)?) {
                items.insert(e.cookie, e);
            }
            if ours.is_none() {
                ours = Some((p, f));
            } else {
                files.push(f);
            }
        }
        let (path, file) = match ours {
            Some(x) => x,
            None => slots.claim_new(indexes.last().map_or(0, |l| l + 1))?,
        };
        let j = Journal {
            path: Some(path),
            inner: Mutex::new(Inner {
                file: Some(file),
                live: items.clone(),
                undelivered: Default::default(),
                lines: 0,
            }),
        };
        // Our file now lists every leftover (the others keep theirs until `recovered`).
        j.rewrite()?;
        Ok((
            j,
            Leftovers {
                items: items.into_values().collect(),
                files,
            },
        ))
    }

    /// The journal file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the live items at the start of the file and cuts it there.
    fn rewrite(&self) -> std::io::Result<()> {
        let mut g = self.lock();
        let text: String = g.live.values().map(Entry::line).collect();
        let n = g.live.len();
        if let Some(f) = g.file.as_mut() {
            f.seek(SeekFrom::Start(0))?;
            f.write_all(text.as_bytes())?;
            f.set_len(text.len() as u64)?;
            f.seek(SeekFrom::End(0))?;
        }
        g.lines = n;
        Ok(())
    }

    /// The other journals' items are in ours now: empty them and let them go.
    pub fn recovered(&self, leftovers: Leftovers) {
        for f in leftovers.files {
            if let Err(e) = f.set_len(0) {
                tracing::warn!(error = %e, "could not empty a previous copytool's journal");
            }
        }
    }

    fn append(&self, g: &mut Inner, line: &str) {
        let Some(f) = g.file.as_mut() else {
            return;
        };
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "writing the journal of begun items failed");
        }
        g.lines += 1;
    }

    /// Records an item received from the coordinator (before it is served).
    pub fn begun(&self, item: &ActionItem) {
        let e = Entry::of(item);
        let line = e.line();
        let mut g = self.lock();
        g.live.insert(e.cookie, e);
        self.append(&mut g, &line);
    }

    /// The end of `cookie` did not reach the coordinator (it is down, or restarting): the item
    /// stays journalled for the next start, whatever `ended` says later.
    pub fn end_undelivered(&self, cookie: u64) {
        self.lock().undelivered.insert(cookie);
    }

    /// Whether an end that failed with `errno` may not have reached the coordinator. The
    /// coordinator's own answers (no such request, not ours, changed, cancelled) mean it did.
    pub fn undelivered_errno(errno: i32) -> bool {
        !matches!(
            errno,
            libc::ENOENT | libc::EINVAL | libc::EBUSY | libc::ECANCELED | libc::EPERM
        )
    }

    /// Records that the item's end was sent (or that nobody can end it any more).
    pub fn ended(&self, cookie: u64) {
        let compact = {
            let mut g = self.lock();
            if g.undelivered.remove(&cookie) {
                return;
            }
            if g.live.remove(&cookie).is_none() {
                return;
            }
            self.append(&mut g, &format!("E {cookie:x}\n"));
            g.lines > 2 * g.live.len() + COMPACT_SLACK
        };
        if compact {
            if let Err(e) = self.rewrite() {
                tracing::warn!(error = %e, "compacting the journal of begun items failed");
            }
        }
    }

    /// Cookies begun and not ended.
    pub fn live(&self) -> Vec<u64> {
        self.lock().live.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(cookie: u64, action: CopytoolAction) -> ActionItem {
        ActionItem {
            action,
            fid: Fid::new(0x200000401, cookie as u32, 0),
            dfid: Fid::default(),
            extent: Extent {
                offset: 0,
                length: u64::MAX,
            },
            cookie,
            gid: 0,
            data: b"lb:j=x".to_vec(),
        }
    }

    #[test]
    fn a_dead_copytool_s_items_are_found_and_a_living_one_s_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let (a, left) = Journal::open(dir.path(), "fs1").unwrap();
        assert!(left.items.is_empty());
        a.begun(&item(1, CopytoolAction::Archive));
        a.begun(&item(2, CopytoolAction::Restore));
        a.begun(&item(3, CopytoolAction::Remove));
        a.ended(2);
        // `a` is alive (holds its lock): a second copytool takes another slot, sees nothing.
        let (b, left) = Journal::open(dir.path(), "fs1").unwrap();
        assert!(left.items.is_empty(), "{:?}", left.items);
        assert_ne!(a.path(), b.path());
        // Another file system's journal is never read.
        let (_c, left) = Journal::open(dir.path(), "fs2").unwrap();
        assert!(left.items.is_empty());
        drop(b);
        drop(a); // "killed": the lock goes with the process's descriptors
        let (d, left) = Journal::open(dir.path(), "fs1").unwrap();
        let cookies: Vec<u64> = left.items.iter().map(|e| e.cookie).collect();
        assert_eq!(cookies, vec![1, 3]);
        assert_eq!(left.items[0].action, CopytoolAction::Archive);
        assert_eq!(left.items[0].fid.oid, 1);
        assert_eq!(left.items[1].extent.length, u64::MAX);
        assert_eq!(left.items[1].item().dfid, left.items[1].fid);
        // Until they are ended they stay journalled, also across another crash.
        assert_eq!(d.live(), vec![1, 3]);
        d.recovered(left);
        d.ended(1);
        drop(d);
        let (_e, left) = Journal::open(dir.path(), "fs1").unwrap();
        let cookies: Vec<u64> = left.items.iter().map(|e| e.cookie).collect();
        assert_eq!(cookies, vec![3]);
    }

    #[test]
    fn an_end_that_did_not_reach_the_coordinator_stays_journalled() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), "fs").unwrap();
        j.begun(&item(7, CopytoolAction::Archive));
        j.begun(&item(8, CopytoolAction::Archive));
        assert!(Journal::undelivered_errno(libc::ECONNREFUSED));
        assert!(!Journal::undelivered_errno(libc::ENOENT));
        j.end_undelivered(7);
        j.ended(7);
        j.ended(8);
        assert_eq!(j.live(), vec![7]);
        drop(j);
        let (_k, left) = Journal::open(dir.path(), "fs").unwrap();
        assert_eq!(
            left.items.iter().map(|e| e.cookie).collect::<Vec<_>>(),
            vec![7]
        );
    }

    #[test]
    fn a_torn_tail_and_garbage_are_skipped() {
        let text = "B 5 200000401:1:0 a 0 ffffffffffffffff 10\nE 9\nnonsense\nB 6 2000";
        let e = parse(text);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].cookie, 5);
        assert_eq!(e[0].action, CopytoolAction::Archive);
    }

    #[test]
    fn compaction_keeps_exactly_the_live_items() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), "fs").unwrap();
        for c in 0..(COMPACT_SLACK as u64 + 100) {
            j.begun(&item(c, CopytoolAction::Archive));
            if c % 50 != 0 {
                j.ended(c);
            }
        }
        let text = std::fs::read_to_string(j.path().unwrap()).unwrap();
        assert!(text.lines().count() < COMPACT_SLACK + 500, "compacted");
        let want: Vec<u64> = (0..(COMPACT_SLACK as u64 + 100))
            .filter(|c| c % 50 == 0)
            .collect();
        let got: Vec<u64> = parse(&text).iter().map(|e| e.cookie).collect();
        assert_eq!(got, want);
    }
}
