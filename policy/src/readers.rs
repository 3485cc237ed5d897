//! The changelog reader threads, one per MDT, and how the engine loop reaches them.
//!
//! A reader in Lustre's follow mode (`changelog_interval = "1s"`, and `"auto"` while records
//! stay uncleared, below) keeps one long-lived changelog reader open (each open
//! costs a Lustre MDS a thread that re-reads the current plain llog from its start,
//! `chlg_load` in mdc_changelog.c) and blocks in `poll(2)` on two descriptors: the changelog
//! device and its end of a socket pair whose other end the daemon holds ([`ReaderWakers`]).
//! A byte on the pair asks for one end-of-changelog pass (a flush's barrier point: a short
//! non-follow read from the follower's position to the end); the daemon's end closing asks the
//! reader to stop.
//!
//! With `[lustre] changelog_interval` another interval, a reader reads in passes of its own
//! instead: a non-follow read from its position to the end, then a wait of the interval
//! (or for a flush's pass, or the stop). Lustre's follower sleeps a second between its passes
//! whatever happens, so this is the only way to learn of a close sooner; Robinhood's changelog
//! reader polls the same way. Each pass costs the MDS a catalog open, as each of the follower's
//! does, and a re-read of every record some changelog user has not cleared yet
//! (`llog_is_plain_skipable` skips only whole plain logs), which the follower, resuming where it
//! stopped, does not pay: measured on Lustre 2.16.1, ~176 RPCs and 1.45 MB a pass per 10,000
//! uncleared records (REAL_LUSTRE.md, "Changelog passes").
//!
//! `"auto"`, the default, takes the cheap case of each: passes [`AUTO_PASS`] apart while at most
//! [`AUTO_KEPT_MAX`] records are kept below the reader (a pass then costs about what a follow
//! pass does), the follower while more are (a backlog, `min_age`, another user that lags). It
//! learns what is kept by reading the first record of the changelog (a probe: a changelog open
//! from record 0, closed after one record, which re-reads nothing), before it starts passing,
//! whenever its passes have read past that bound, and every [`AUTO_RECHECK`] while it follows.

use crate::daemon::Msg;
use crate::model::Change;
use lustre_blob_config::ChangelogInterval;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Records per message from a reader.
const READ_BATCH: usize = 4096;
/// A reader that failed (no such MDT, no changelog user) tries again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// `"auto"`: the interval of its passes. Half the follower's second, so a close reaches the
/// daemon within half a second; on a cleared changelog a pass costs what a follow pass does, so
/// about twice the follower's RPCs (Lustre 2.16.1, two MDTs: 15 against 7.7 RPC/s,
/// REAL_LUSTRE.md, "`auto` beside `1s`").
pub const AUTO_PASS: Duration = Duration::from_millis(500);
/// `"auto"`: the most records kept below the reader (not cleared by some changelog user) at
/// which it still reads in passes. Each pass re-reads them: ~4-5 more RPCs a pass at this bound
/// (~176 per 10,000 records, measured), ~25 RPCs/s per MDT in all at most. A quiet file system's
/// changelog stays far below it (the daemon clears every half second what it has exported); an
/// export of more than ~100 files at once goes over it and follows. At 1,000, a 200-file export
/// on Lustre 2.16.1 cost ~2 more RPCs per file than the follower (REAL_LUSTRE.md, `mds_rpcs`).
pub const AUTO_KEPT_MAX: u64 = 250;
/// `"auto"`: how long a reader follows before it looks again whether the changelog has been
/// cleared enough for passes. A probe's kernel reader may prefetch up to 1,024 records
/// (`CDEV_CHLG_MAX_PREFETCH`, mdc_changelog.c) before its close stops it: measured on Lustre
/// 2.16.1 with 10,000 records kept, 8-9 RPCs a probe (6 on a cleared changelog), so the
/// follower's cost plus ~1 RPC/s.
pub const AUTO_RECHECK: Duration = Duration::from_secs(10);

/// The daemon's ends of the readers' wake-up pairs.
#[derive(Default)]
pub struct ReaderWakers {
    ends: Mutex<Vec<UnixStream>>,
}

impl ReaderWakers {
    /// Asks every reader for `n` end-of-changelog passes, each begun after this call.
    pub fn ask_passes(&self, n: usize) {
        let Ok(ends) = self.ends.lock() else { return };
        for mut end in ends.iter() {
            // Non-blocking: a full pair already holds more passes than a flush needs.
            if let Err(e) = end.write_all(&vec![b'p'; n]) {
                if e.kind() != ErrorKind::WouldBlock {
                    tracing::warn!(error = %e, "asking a changelog reader for a pass");
                }
            }
        }
    }

    /// Stops every reader: their ends see the pair close.
    pub fn close(&self) {
        if let Ok(mut ends) = self.ends.lock() {
            ends.clear();
        }
    }

    /// A new pair: the daemon keeps one end, the reader gets the other.
    fn pair(&self) -> std::io::Result<UnixStream> {
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        theirs.set_nonblocking(true)?;
        self.ends
            .lock()
            .map_err(|_| std::io::Error::other("reader wake-ups poisoned"))?
            .push(ours);
        Ok(theirs)
    }
}

/// How a reader reads its changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// One reader in Lustre's follow mode (passes a second apart, paced by the client).
    Follow,
    /// Non-follow passes of our own, this far apart.
    Passes(Duration),
    /// Passes while few records are kept below the reader, the follower while many are.
    Auto,
}

impl Cadence {
    /// The cadence `[lustre] changelog_interval` asks for.
    pub fn from_interval(interval: ChangelogInterval) -> Cadence {
        match interval {
            ChangelogInterval::Auto => Cadence::Auto,
            ChangelogInterval::Every(i) if i == lustre_blob_config::FOLLOW_INTERVAL => {
                Cadence::Follow
            }
            ChangelogInterval::Every(i) => Cadence::Passes(i),
        }
    }
}

/// Starts one reader thread per MDT (`mdts[i]` from `resume[i]`), delivering to `tx`.
pub fn start(
    mdts: &[String],
    resume: Vec<u64>,
    cadence: Cadence,
    tx: &SyncSender<Msg>,
    wakers: &Arc<ReaderWakers>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::with_capacity(mdts.len());
    for (i, (name, next)) in mdts.iter().zip(resume).enumerate() {
        let (tx, name, wake) = (tx.clone(), name.clone(), wakers.pair()?);
        threads.push(
            std::thread::Builder::new()
                .name(format!("changelog-{i}"))
                .spawn(move || Reader::new(i, name, next, tx, wake).run(cadence))?,
        );
    }
    Ok(threads)
}

/// What woke a waiting reader.
#[derive(Debug, PartialEq)]
enum Woken {
    /// The changelog has records (or an error to report).
    Changelog,
    /// The wait ran out (or a signal interrupted it).
    Nothing,
    /// Passes asked by a flush.
    Passes(u64),
    /// The daemon is stopping.
    Stop,
}

/// Waits on the changelog fd (when given) and the wake-up end; `timeout_ms` -1 waits for an
/// event. A wake-up is taken first: stopping never waits behind a busy changelog.
fn wait(changelog: Option<RawFd>, wake: &mut UnixStream, timeout_ms: i32) -> Woken {
    let mut fds = [
        libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: changelog.unwrap_or(-1), // poll(2) ignores a negative fd
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two pollfds in a live array; the descriptors belong to a live changelog reader
    // and to `wake`, both open for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n > 0 && fds[0].revents != 0 {
        let mut buf = [0u8; 64];
        return match wake.read(&mut buf) {
            Ok(0) => Woken::Stop,
            Ok(k) => Woken::Passes(k as u64),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                Woken::Nothing
            }
            Err(_) => Woken::Stop,
        };
    }
    if n > 0 && fds[1].revents != 0 {
        Woken::Changelog
    } else {
        Woken::Nothing
    }
}

/// One MDT's reader: where it is and what it owes.
struct Reader {
    mdt: usize,
    name: String,
    /// The next changelog index to hand over (records below it were handed over already).
    next: u64,
    tx: SyncSender<Msg>,
    wake: UnixStream,
    /// Passes asked and not run yet.
    owed: u64,
    batch: Vec<Change>,
    /// A failure was reported and no message has said reading works again since.
    failing: bool,
}

/// Why a reader ends: the engine is gone or the daemon stops.
struct Ended;

impl Reader {
    fn new(mdt: usize, name: String, next: u64, tx: SyncSender<Msg>, wake: UnixStream) -> Self {
        Reader {
            mdt,
            name,
            next,
            tx,
            wake,
            owed: 0,
            batch: Vec::new(),
            failing: false,
        }
    }

    fn run(mut self, cadence: Cadence) {
        match cadence {
            Cadence::Follow => while self.follow(false).is_ok() {},
            Cadence::Passes(every) => while self.passes(every, None).is_ok() {},
            Cadence::Auto => while self.auto().is_ok() {},
        }
        // Records read before the stop are applied before the daemon's last save.
        let _ = self.send_batch();
    }

    /// `"auto"`: passes while few records are kept below the reader, until its passes have
    /// read past that bound; otherwise follows until few are. `Ok` to look again, `Err` when
    /// the daemon stops.
    fn auto(&mut self) -> Result<(), Ended> {
        match self.few_kept() {
            // Records cleared meanwhile only lower what is kept: passing stays within the bound
            // until `next` passes it.
            Ok(Some(oldest)) => self.passes(AUTO_PASS, Some(oldest.saturating_add(AUTO_KEPT_MAX))),
            Ok(None) => self.follow(true),
            Err(Some(error)) => self.failed(error),
            Err(None) => Err(Ended),
        }
    }

    /// `Some(oldest kept)` when at most [`AUTO_KEPT_MAX`] records are kept below the reader,
    /// `None` when more are. The oldest is the first record of a reader opened at record 0,
    /// which skips (re-reads) nothing, closed after that record. `Err(None)`: the engine is gone.
    fn few_kept(&mut self) -> Result<Option<u64>, Option<String>> {
        let mut reader = lustre::ChangelogReader::start(&self.name, 0, false)
            .map_err(|e| Some(format!("{}: {e}", self.name)))?;
        let oldest = match reader.recv() {
            Ok(Some(first)) => first.index,
            // Nothing kept at all.
            Ok(None) => self.next,
            Err(e) => return Err(Some(format!("{}: {e}", self.name))),
        };
        let kept = self.next.saturating_sub(oldest);
        if kept <= AUTO_KEPT_MAX {
            Ok(Some(oldest))
        } else {
            tracing::debug!(mdt = %self.name, kept, "records kept below the changelog reader: following");
            Ok(None)
        }
    }

    /// One follow-mode reader from `next` until it fails (then `Ok` after the retry wait) or
    /// the daemon stops (`Err`). With `recheck` (`"auto"`), it also looks every
    /// [`AUTO_RECHECK`] whether few records are kept below it, and returns `Ok` when so, with
    /// what it read handed over; the follower stays open while many are (a new one would
    /// re-read them).
    fn follow(&mut self, recheck: bool) -> Result<(), Ended> {
        let mut recheck_at = recheck.then(|| Instant::now() + AUTO_RECHECK);
        let started = lustre::ChangelogReader::start(&self.name, self.next, true)
            .and_then(|r| r.fd().map(|fd| (r, fd)));
        let (mut reader, fd) = match started {
            Ok(x) => x,
            Err(e) => return self.failed(format!("{}: {e}", self.name)),
        };
        // Reading works (again): an empty message clears a reader error shown in status.
        self.send(Vec::new(), false)?;
        loop {
            if self.owed > 0 {
                self.send_batch()?;
                match self.one_pass(true) {
                    Ok(()) => self.owed -= 1,
                    Err(Some(error)) => self.failed(error)?,
                    Err(None) => return Err(Ended),
                }
                continue;
            }
            if !reader.in_buf() {
                let mut left = recheck_at.map(|t| t.saturating_duration_since(Instant::now()));
                if left == Some(Duration::ZERO) {
                    self.send_batch()?;
                    match self.few_kept() {
                        // Records not read yet stay in the changelog: the passes start at `next`.
                        Ok(Some(_)) => return Ok(()),
                        Ok(None) => {}
                        Err(Some(error)) => {
                            tracing::warn!(mdt = %self.name, %error, "looking at what the changelog keeps")
                        }
                        Err(None) => return Err(Ended),
                    }
                    recheck_at = Some(Instant::now() + AUTO_RECHECK);
                    left = Some(AUTO_RECHECK);
                }
                // Records in hand go to the engine as soon as nothing more is waiting.
                let timeout = match left {
                    _ if !self.batch.is_empty() => 0,
                    None => -1,
                    Some(d) => i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1),
                };
                match wait(Some(fd), &mut self.wake, timeout) {
                    Woken::Stop => return Err(Ended),
                    Woken::Passes(n) => {
                        self.owed += n;
                        continue;
                    }
                    Woken::Nothing => {
                        self.send_batch()?;
                        continue;
                    }
                    Woken::Changelog => {}
                }
            }
            match reader.recv() {
                Ok(Some(r)) => self.take(r)?,
                Ok(None) => return Ok(()),
                Err(e) => {
                    drop(reader);
                    self.send_batch()?;
                    return self.failed(format!("{}: {e}", self.name));
                }
            }
        }
    }

    /// Keeps `r` unless handed over already; hands a full batch over.
    fn take(&mut self, r: lustre::ChangelogRecord) -> Result<(), Ended> {
        if r.index >= self.next {
            self.next = r.index + 1;
            self.batch.push(Change {
                mdt: self.mdt,
                record: r,
            });
        }
        if self.batch.len() >= READ_BATCH {
            self.send_batch()?;
        }
        Ok(())
    }

    /// Passes of our own `every` apart until a pass fails (then `Ok` after the retry wait), the
    /// daemon stops (`Err`), or the reader has read past `bound` (`Ok`). A pass a flush asks for
    /// runs at once and says so (`end`); the others do not, since they may have begun before
    /// the flush.
    fn passes(&mut self, every: Duration, bound: Option<u64>) -> Result<(), Ended> {
        let every_ms = i32::try_from(every.as_millis()).unwrap_or(i32::MAX);
        loop {
            let for_flush = self.owed > 0;
            match self.one_pass(for_flush) {
                Ok(()) if for_flush => self.owed -= 1,
                Ok(()) => {}
                Err(Some(error)) => return self.failed(error),
                Err(None) => return Err(Ended),
            }
            if bound.is_some_and(|b| self.next > b) {
                return Ok(());
            }
            if self.owed > 0 {
                continue;
            }
            match wait(None, &mut self.wake, every_ms) {
                Woken::Stop => return Err(Ended),
                Woken::Passes(n) => self.owed += n,
                Woken::Changelog | Woken::Nothing => {}
            }
        }
    }

    /// One pass from `next` to the end of the changelog with a reader of its own. With `end` (a
    /// flush's pass) the last message says so, even with no records: a pass started after a
    /// flush began sees every record recorded before it, the flush barrier's end point.
    /// `Err(None)`: the engine is gone.
    fn one_pass(&mut self, end: bool) -> Result<(), Option<String>> {
        let mut reader = lustre::ChangelogReader::start(&self.name, self.next, false)
            .map_err(|e| Some(format!("{}: {e}", self.name)))?;
        loop {
            match reader.recv() {
                Ok(Some(r)) => self.take(r).map_err(|Ended| None)?,
                Ok(None) => break,
                Err(e) => return Err(Some(format!("{}: {e}", self.name))),
            }
        }
        let records = std::mem::take(&mut self.batch);
        if records.is_empty() && !end && !self.failing {
            // Nothing to say: an idle pass does not wake the engine.
            return Ok(());
        }
        self.send(records, end).map_err(|Ended| None)
    }

    /// Reports `error`, then waits [`RETRY_AFTER`] unless the daemon stops meanwhile (a pass
    /// asked meanwhile is owed and tries again at once).
    fn failed(&mut self, error: String) -> Result<(), Ended> {
        self.failing = true;
        if self
            .tx
            .send(Msg::ReaderFailed {
                mdt: self.mdt,
                error,
            })
            .is_err()
        {
            return Err(Ended);
        }
        match wait(None, &mut self.wake, RETRY_AFTER.as_millis() as i32) {
            Woken::Stop => Err(Ended),
            Woken::Passes(n) => {
                self.owed += n;
                Ok(())
            }
            Woken::Changelog | Woken::Nothing => Ok(()),
        }
    }

    /// Hands the records read so far to the engine (nothing when there are none).
    fn send_batch(&mut self) -> Result<(), Ended> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.batch);
        self.send(records, false)
    }

    fn send(&mut self, records: Vec<Change>, end: bool) -> Result<(), Ended> {
        // Any message says reading works: status drops the reader's error.
        self.failing = false;
        self.tx
            .send(Msg::Records {
                mdt: self.mdt,
                records,
                end,
            })
            .map_err(|_| Ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_wakes_for_passes_and_for_the_stop_without_a_timer() {
        let wakers = ReaderWakers::default();
        let mut end = wakers.pair().unwrap();
        wakers.ask_passes(2);
        assert_eq!(wait(None, &mut end, -1), Woken::Passes(2));
        wakers.close();
        assert_eq!(wait(None, &mut end, -1), Woken::Stop);
    }

    #[test]
    fn the_changelog_fd_wakes_a_waiting_reader() {
        let wakers = ReaderWakers::default();
        let mut end = wakers.pair().unwrap();
        let (mut feed, changelog) = UnixStream::pair().unwrap();
        assert_eq!(
            wait(Some(changelog.as_raw_fd()), &mut end, 0),
            Woken::Nothing,
            "nothing written yet"
        );
        feed.write_all(b"r").unwrap();
        assert_eq!(
            wait(Some(changelog.as_raw_fd()), &mut end, -1),
            Woken::Changelog
        );
        // A pass asked while records wait is seen first.
        wakers.ask_passes(1);
        assert_eq!(
            wait(Some(changelog.as_raw_fd()), &mut end, -1),
            Woken::Passes(1)
        );
    }
}
