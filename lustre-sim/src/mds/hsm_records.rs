//! The CL_HSM / CL_LAYOUT records that HSM state changes write, as Lustre 2.16.1 writes them
//! (REAL_LUSTRE.md rows 6–8).
//!
//! * Every write of the `trusted.hsm` xattr (`mdt_hsm_attr_set` -> `mdd_xattr_set`) stores a
//!   CL_HSM record whose flags `mdd_hsm_update_locked` fills: HE_STATE (+ CLF_HSM_DIRTY when
//!   the new flags hold HS_DIRTY) when the flags change, **else no flags at all** — a record
//!   that reads as "HE_ARCHIVE, error 0" although nothing was archived. That is the `HSM 0x0`
//!   real Lustre writes at the end of every RESTORE (the attr_set only changes `mh_arch_ver`).
//! * `mdd_swap_layouts` writes one record per file after the swap
//!   (`emit_changelog_after_swap_layout`), chosen from the HSM flags the file had *before* the
//!   swap: HE_RELEASE when they held HS_RELEASED, else CL_LAYOUT. So a release
//!   (`mdt_hsm_release`: the file was not released yet) writes LYOUT, and the restore's
//!   `hsm_swap_layouts` (the file was released) writes HE_RELEASE — in 2.16.1 the HE_RELEASE
//!   record comes when the file is restored, not when it is released.
//! * Records written by the coordinator thread (`mdt_hsm_set_exists` at dispatch, timeouts)
//!   have no client behind them: a zero NID.

use super::state::State;
use crate::consts::*;
use crate::fid::Fid;
use crate::record::{NID_LO_BE, NID_NONE_BE};

/// Who writes a record: a client's request (its NID) or the coordinator thread (zero NID).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Writer {
    Client,
    Coordinator,
}

impl State {
    /// A CL_HSM record for `fid` with these exact low flags.
    fn emit_hsm_flags(&mut self, fid: Fid, flags: u16, by: Writer) {
        let Some(n) = self.nodes.get(&fid) else {
            return;
        };
        let (mdt, uid, gid) = (n.mdt, n.stat.uid, n.stat.gid);
        let mut r = Self::base_rec(CL_HSM, flags, fid, Fid::default(), uid, gid, b"");
        r.nid = Some(match by {
            Writer::Client => NID_LO_BE,
            Writer::Coordinator => NID_NONE_BE,
        });
        self.emit(mdt, r);
    }

    /// `mdt_hsm_attr_set`: stores the file's HSM flags (and archive id when not 0) and writes
    /// the record `mdd_hsm_update_locked` makes of it (module docs).
    pub fn hsm_attr_set(&mut self, fid: Fid, flags: u32, archive_id: u32, by: Writer) {
        let Some(n) = self.node_mut(&fid) else {
            return;
        };
        let old = n.hsm;
        n.hsm = flags;
        if archive_id != 0 {
            n.archive_id = archive_id;
        }
        let rec = if old == flags {
            0
        } else {
            let dirty = if flags & HS_DIRTY != 0 { 1 << 10 } else { 0 };
            (HE_STATE << 7) | dirty
        };
        self.emit_hsm_flags(fid, rec, by);
    }

    /// The coordinator's HE_* record with an error, from the coordinator thread (a request
    /// that timed out) rather than from a copytool's call.
    pub fn emit_hsm_by_coordinator(&mut self, fid: Fid, event: u16, error: i32) {
        let Some(n) = self.nodes.get(&fid) else {
            return;
        };
        let err = (error.unsigned_abs().min(0x7F)) as u16;
        let dirty = if n.hsm & HS_DIRTY != 0 { 1u16 << 10 } else { 0 };
        self.emit_hsm_flags(fid, err | (event << 7) | dirty, Writer::Coordinator);
    }

    /// `emit_changelog_after_swap_layout` for `fid`, whose HSM flags before the swap were
    /// `flags_before`.
    pub fn emit_after_swap(&mut self, fid: Fid, flags_before: u32) {
        if flags_before & HS_RELEASED != 0 {
            self.emit_hsm_flags(fid, HE_RELEASE << 7, Writer::Client);
            return;
        }
        let Some(n) = self.nodes.get(&fid) else {
            return;
        };
        let (mdt, uid, gid) = (n.mdt, n.stat.uid, n.stat.gid);
        let r = Self::base_rec(CL_LAYOUT, 0, fid, Fid::default(), uid, gid, b"");
        self.emit(mdt, r);
    }

    /// The records of `mdt_hsm_release` (the close with the release intent): `mo_attr_set` of
    /// size and times (`TRUNC 0xf`: LA_ATIME|LA_MTIME|LA_CTIME|LA_SIZE), the layout swap with
    /// the orphan (the file is not released yet: LYOUT) and the close of the lease open
    /// (`CLOSE 0x2`). The HSM flags change without a record (`mdo_xattr_set` in the swap).
    pub fn emit_release_records(&mut self, fid: Fid) {
        let Some(n) = self.nodes.get(&fid) else {
            return;
        };
        let (mdt, uid, gid, hsm) = (n.mdt, n.stat.uid, n.stat.gid, n.hsm);
        let trunc = LA_ATIME | LA_MTIME | LA_CTIME | LA_SIZE;
        let r = Self::base_rec(CL_TRUNC, trunc, fid, Fid::default(), uid, gid, b"");
        self.emit(mdt, r);
        self.emit_after_swap(fid, hsm);
        let r = Self::base_rec(
            CL_CLOSE,
            MDS_FMODE_WRITE,
            fid,
            Fid::default(),
            uid,
            gid,
            b"",
        );
        self.emit(mdt, r);
    }
}
