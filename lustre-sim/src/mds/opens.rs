//! What inotify reveals about the open behind a CL_CLOSE record.
//!
//! `mdd_close` stores the open's flags in the CLOSE record (real 2.16.1: `0x42` for `touch`,
//! `0x242` for `>`, `0x442` for `>>`). inotify shows two of them, as far as it can:
//! * O_CREAT, when the file's IN_CREATE came before the close;
//! * O_TRUNC, (a) when an IN_MODIFY finds the size dropped to 0 (the TRUNC record is written
//!   then), or (b) on kernels before 6.8, where `do_open` truncates before `fsnotify_open`
//!   runs: the truncation's IN_MODIFY comes right before the IN_OPEN of the same file (the
//!   Debian 6.1 guest of `scripts/real-lustre`; 6.8 moved `fsnotify_open` into
//!   `do_dentry_open`, so IN_OPEN comes first and (b) never fires there).
//!
//! O_APPEND, O_CREAT on an existing file, and on 6.8+ an O_TRUNC whose writes came before the
//! events were read stay invisible (REAL_LUSTRE.md rows 2–3). (b) also takes an open by
//! another process right after a write for an O_TRUNC: one TRUNC record too many.

use super::state::State;
use crate::consts::*;
use crate::fid::Fid;

/// The open of one file as far as its events tell.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenTrack {
    /// MDS_OPEN_CREAT / MDS_OPEN_TRUNC seen for the current open.
    pub flags: u16,
    /// The file's last event was an IN_MODIFY; true when that IN_MODIFY already recorded a TRUNC.
    pub after_modify: Option<bool>,
}

impl State {
    /// The file was created by an open (IN_CREATE of a regular file).
    pub fn open_created(&mut self, fid: Fid) {
        self.opens.entry(fid).or_default().flags |= MDS_OPEN_CREAT;
    }

    /// An IN_MODIFY was handled; `trunc_recorded` when it emitted a TRUNC (the size dropped).
    pub fn open_modified(&mut self, fid: Fid, trunc_recorded: bool) {
        let emptied = trunc_recorded && self.nodes.get(&fid).is_some_and(|n| n.stat.size == 0);
        let t = self.opens.entry(fid).or_default();
        t.after_modify = Some(trunc_recorded);
        if emptied {
            t.flags |= MDS_OPEN_TRUNC;
        }
    }

    /// Any other event on the file: an IN_OPEN after it is not an O_TRUNC.
    pub fn open_other_event(&mut self, fid: &Fid) {
        if let Some(t) = self.opens.get_mut(fid) {
            t.after_modify = None;
        }
    }

    /// IN_OPEN: right after an IN_MODIFY it is an open(O_TRUNC). `mdd_attr_set` recorded that
    /// truncation as `TRUNC 0xe` (LA_SIZE|LA_MTIME|LA_CTIME) even for a file that was already
    /// empty; emit it here unless the IN_MODIFY saw the size drop and recorded it already.
    pub fn open_seen(&mut self, fid: Fid) {
        let Some(t) = self.opens.get_mut(&fid) else {
            return;
        };
        let Some(recorded) = t.after_modify.take() else {
            return;
        };
        t.flags |= MDS_OPEN_TRUNC;
        if recorded {
            return;
        }
        let Some(n) = self.nodes.get(&fid) else {
            return;
        };
        let (mdt, uid, gid) = (n.mdt, n.stat.uid, n.stat.gid);
        let parent = n.links.first().map(|l| l.0).unwrap_or_default();
        let r = State::base_rec(
            CL_TRUNC,
            LA_SIZE | LA_MTIME | LA_CTIME,
            fid,
            parent,
            uid,
            gid,
            b"",
        );
        self.emit(mdt, r);
    }

    /// The flags of the CLOSE record for a write close of `fid`; forgets the open.
    pub fn close_flags(&mut self, fid: &Fid) -> u16 {
        MDS_FMODE_WRITE | self.opens.remove(fid).map(|t| t.flags).unwrap_or(0)
    }
}
