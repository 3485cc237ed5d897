//! What inotify reveals about the open behind a CL_CLOSE record.
//!
//! `mdd_close` stores the open's flags in the CLOSE record (real 2.16.1: `0x42` for `touch`,
//! `0x242` for `>`, `0x442` for `>>`). inotify shows two of them: O_CREAT, when the file's
//! IN_CREATE came before the close, and O_TRUNC, because `do_open` truncates before
//! `fsnotify_open`: the truncation's IN_MODIFY comes right before the IN_OPEN of the same
//! file. O_APPEND and O_CREAT on an existing file stay invisible (REAL_LUSTRE.md rows 2–3).

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
        self.opens.entry(fid).or_default().after_modify = Some(trunc_recorded);
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
