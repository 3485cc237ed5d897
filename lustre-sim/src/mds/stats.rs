//! What the simulated MDS was asked, and what it cost: every call per kind, the action records
//! `llapi_hsm_current_action` walked, and the changelog opens per MDT. Read with
//! `lustre-sim lctl get_param -n sim.stats` (one `name value` line each), so tests can assert
//! the load a client puts on an MDS as Lustre would feel it.

use super::state::State;
use crate::proto::{CurrentAction, Request};
use std::collections::BTreeMap;

/// Counters kept for the life of the daemon (not persisted).
#[derive(Debug, Default)]
pub struct Stats {
    counts: BTreeMap<String, u64>,
}

impl Stats {
    pub fn add(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }

    /// Counts one call (`call.<Op>`) of the control protocol.
    pub fn call(&mut self, req: &Request) {
        let op = match serde_json::to_value(req) {
            Ok(v) => v
                .get("op")
                .and_then(|o| o.as_str())
                .unwrap_or("Unknown")
                .to_string(),
            Err(_) => "Unknown".into(),
        };
        self.add(&format!("call.{op}"), 1);
        self.add(&format!("sent_to.{}", sent_to(req).name()), 1);
    }

    /// The `sim.stats` parameter: one `name value` line per counter.
    pub fn param(&self) -> (String, String) {
        let text: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        ("sim.stats".into(), text.join("\n"))
    }
}

/// Where a real Lustre client sends a call that the simulator answers in its one MDS process.
/// The simulator serves everything over one socket; the split says which of those calls load
/// the MDS on Lustre (issue 17: MDS calls per exported file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentTo {
    /// An RPC to an MDT.
    Mds,
    /// RPCs to the OSTs holding the file's objects.
    Ost,
    /// Answered by the client from what it holds: no RPC while its locks and caches are valid.
    Client,
    /// `lctl get_param`/`set_param` on the MDS node (administration, not client load).
    Admin,
}

impl SentTo {
    pub fn name(self) -> &'static str {
        match self {
            SentTo::Mds => "mds",
            SentTo::Ost => "ost",
            SentTo::Client => "client",
            SentTo::Admin => "admin",
        }
    }
}

/// Which server a Lustre 2.15/2.16 client contacts for `req` (the call the simulator's library
/// makes for one llapi function). The opens and closes around these calls (e.g. the copytool's
/// open of the file it archives, an MDS_OPEN + MDS_CLOSE on Lustre) are not simulator calls and
/// are not counted anywhere.
pub fn sent_to(req: &Request) -> SentTo {
    match req {
        // llapi_get_data_version -> LL_IOC_DATA_VERSION -> ll_ioc_data_version (llite/file.c):
        // a CIT_DATA_VERSION cl_io, whose osc layer sends OST_GETATTR to every OST object of the
        // file (osc_io_data_version_start, osc/osc_io.c). The MDS is not involved (except for
        // Data-on-MDT files, which the simulator does not model).
        Request::DataVersion { .. } => SentTo::Ost,
        // llapi_layout_get_by_fd / _by_fid -> getxattr("lustre.lov") -> ll_getxattr_lov
        // (llite/xattr.c) -> cl_object_layout_get: the layout the client cached with its layout
        // lock when it opened the file (lov_object_layout_get).
        Request::LayoutGet { .. } => SentTo::Client,
        // llapi_path2fid (liblustreapi_fid.c): open(O_PATH) + name_to_handle_at -> ll_encode_fh,
        // the FID from the client's inode; a cold path costs a lookup RPC, a path the caller
        // has just stat()ed or opened (every path2fid of the daemon and copytool) none.
        Request::Path2Fid { .. } => SentTo::Client,
        // llapi_search_mounts / llapi_getname: /proc/mounts and the client's own obd names.
        Request::Info => SentTo::Client,
        Request::GetParam { .. } | Request::SetParam { .. } => SentTo::Admin,
        // OBD_IOC_FID2PATH (mdc_ioc_fid2path: MDS_GET_INFO), LL_IOC_HSM_STATE_GET/SET
        // (MDS_HSM_STATE_GET/SET), LL_IOC_HSM_ACTION (MDS_HSM_ACTION), LL_IOC_HSM_REQUEST
        // (MDS_HSM_REQUEST), LL_IOC_HSM_COPY_START/END and progress (ll_ioc_copy_start/end:
        // MDS_HSM_PROGRESS; they also take an OST data version of an archived file, not counted
        // as a separate call), the changelog calls (MDS_SET_INFO, changelog llog reads),
        // copytool registration (MDS_HSM_CT_REGISTER), import (MDS open/create + setattr).
        Request::Fid2Path { .. }
        | Request::HsmStateGet { .. }
        | Request::HsmStateSet { .. }
        | Request::CurrentAction { .. }
        | Request::HsmRequest { .. }
        | Request::Import { .. }
        | Request::ChangelogStart { .. }
        | Request::ChangelogClear { .. }
        | Request::ChangelogRegister { .. }
        | Request::ChangelogDeregister { .. }
        | Request::CtRegister { .. }
        | Request::CtUnregister { .. }
        | Request::ActionBegin { .. }
        | Request::ActionProgress { .. }
        | Request::ActionEnd { .. }
        | Request::LayoutSet { .. } => SentTo::Mds,
    }
}

impl State {
    /// `llapi_hsm_current_action` as Lustre answers it (`mdt_hsm_get_action` in
    /// mdt_hsm_cdt_client.c): `cdt_llog_process` reads the coordinator's action catalog from its
    /// start, under `cdt_llog_lock`, until the first WAITING or STARTED non-CANCEL record of the
    /// FID. Finished records stay in the catalog until `grace_delay` purges them, so the walk
    /// grows with every request recorded meanwhile. Returns the answer and the records read.
    pub fn current_action_walk(&self, fid: &crate::fid::Fid) -> Result<(CurrentAction, u64), i32> {
        use crate::consts::*;
        self.nodes.get(fid).ok_or(libc::ENOENT)?;
        let mut walked = 0u64;
        let mut found = None;
        for r in self.reqs.values() {
            walked += 1;
            if r.active() && r.action != HSMA_CANCEL && r.fid == *fid {
                found = Some(r);
                break;
            }
        }
        let a = match found {
            Some(r) if r.status == super::state::ARS_WAITING => CurrentAction {
                state: HPS_WAITING,
                action: super::coord::hua_of(r.action),
                offset: r.offset,
                length: r.length,
            },
            // STARTED: the length is the volume moved so far (car_progress.crp_total).
            Some(r) => CurrentAction {
                state: HPS_RUNNING,
                action: super::coord::hua_of(r.action),
                offset: r.offset,
                length: r.bytes_moved(),
            },
            None => CurrentAction {
                state: HPS_NONE,
                action: HUA_NONE,
                offset: 0,
                length: 0,
            },
        };
        Ok((a, walked))
    }
}

impl State {
    /// `mdd_changelog_data_store` (mdd_object.c): a CL_MTIME, CL_CTIME or CL_ATIME record is
    /// not stored for an object that got a data record since the changelog started
    /// (`mod_cltime` after `mc_starttime`: "Don't need multiple updates in this log"); every
    /// stored data record (CLOSE, TRUNC, SETATTR, SETXATTR, LAYOUT, the time records) sets it.
    /// Lustre forgets it when the object leaves the MDS cache; the simulator when it restarts.
    /// Returns true when `r` must be dropped; otherwise notes the object.
    pub fn time_record_suppressed(&mut self, r: &crate::record::Rec) -> bool {
        use crate::consts::*;
        // lustre_user.h: CL_LAYOUT 12, CL_CTIME 18, CL_ATIME 19.
        const CL_LAYOUT: u32 = 12;
        const TIMES: [u32; 3] = [CL_MTIME, 18, 19];
        let data = TIMES.contains(&r.rtype)
            || matches!(
                r.rtype,
                CL_CLOSE | CL_TRUNC | CL_SETATTR | CL_SETXATTR | CL_LAYOUT
            );
        if !data {
            return false;
        }
        if TIMES.contains(&r.rtype) && self.data_recorded.contains(&r.tfid) {
            return true;
        }
        self.data_recorded.insert(r.tfid);
        false
    }
}
