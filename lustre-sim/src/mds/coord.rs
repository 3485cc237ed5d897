//! The HSM coordinator, one per MDT (lustre-abi.md §6.2): request intake, dispatch to agents,
//! progress, completion, cancel, timeouts, plus release / state set / import.

use super::hsm_records::Writer;
use super::state::*;
use super::watch::Watcher;
use crate::consts::*;
use crate::fid::Fid;
use crate::hal::{kuc_hal, Item, HAL_HDR, KUC_HDR};
use crate::proto::{BeginReply, HsmState};
use std::os::fd::AsRawFd;

pub type Res<T> = Result<T, i32>;

pub fn hua_of(hsma: u32) -> u32 {
    match hsma {
        HSMA_ARCHIVE => HUA_ARCHIVE,
        HSMA_RESTORE => HUA_RESTORE,
        HSMA_REMOVE => HUA_REMOVE,
        HSMA_CANCEL => HUA_CANCEL,
        _ => HUA_NONE,
    }
}

fn event_of(hsma: u32) -> u16 {
    match hsma {
        HSMA_RESTORE => HE_RESTORE,
        HSMA_REMOVE => HE_REMOVE,
        HSMA_CANCEL => HE_CANCEL,
        _ => HE_ARCHIVE,
    }
}

fn a8(x: usize) -> usize {
    (x + 7) & !7
}

impl State {
    fn file_node(&self, fid: &Fid) -> Res<&Node> {
        self.nodes.get(fid).ok_or(libc::ENOENT)
    }

    pub fn hsm_state(&self, fid: &Fid) -> Res<HsmState> {
        let n = self.file_node(fid)?;
        Ok(HsmState {
            states: n.hsm,
            archive_id: n.archive_id,
        })
    }

    pub fn hsm_state_set(&mut self, fid: &Fid, set: u64, clear: u64, archive_id: u32) -> Res<()> {
        let n = self.file_node(fid)?;
        if (set | clear) & !HSM_FLAGS_MASK != 0 {
            return Err(libc::EINVAL);
        }
        let new = (n.hsm | set as u32) & !(clear as u32);
        if archive_id != 0 && new & HS_EXISTS == 0 {
            // The MDT answers 0 but saves nothing (lustre-abi.md §3.1).
            return Ok(());
        }
        let has = |b: u32| new & b != 0;
        // Inconsistent combinations the MDT rejects (lustre-abi.md §2).
        let bad = [
            has(HS_DIRTY) && !has(HS_EXISTS),
            has(HS_RELEASED) && has(HS_DIRTY),
            has(HS_RELEASED) && !has(HS_ARCHIVED),
            has(HS_LOST) && !has(HS_ARCHIVED),
        ]
        .contains(&true);
        if bad {
            return Err(libc::EINVAL);
        }
        // mdt_hsm_state_set -> mdt_hsm_attr_set: a record even when nothing changed (0x0).
        self.hsm_attr_set(*fid, new, archive_id, Writer::Client);
        Ok(())
    }

    /// `llapi_hsm_request`: one user request. Under DNE the client splits it per MDT
    /// (`lmv_iocontrol`, LL_IOC_HSM_REQUEST: every MDT gets its part, the first error is
    /// returned); each MDT drops duplicate FIDs of the request (`mdt_hsm_request`,
    /// `is_fid_in_hal`) and records the items one by one, stopping at the first error
    /// (`mdt_hsm_register_hal`): the items before it stay queued.
    pub fn hsm_request(
        &mut self,
        w: &mut Watcher,
        action: u32,
        archive_id: u32,
        flags: u64,
        items: &[(Fid, u64, u64)],
        data: &[u8],
    ) -> Res<()> {
        let mut parts: std::collections::BTreeMap<u32, Vec<(Fid, u64, u64)>> = Default::default();
        for it in items {
            parts
                .entry(crate::fid::mdt_index(&it.0))
                .or_default()
                .push(*it);
        }
        let mut first_err = None;
        let mut queued = false;
        for (mdt, part) in parts {
            let (res, q) = self.register_part(w, mdt, action, archive_id, flags, &part, data);
            queued |= q;
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        if queued {
            self.dispatch();
        }
        first_err.map_or(Ok(()), Err)
    }

    /// One MDT's part of a request (`mdt_hsm_add_actions` → `mdt_hsm_register_hal`); returns
    /// the outcome and whether anything was recorded.
    #[allow(clippy::too_many_arguments)]
    fn register_part(
        &mut self,
        w: &mut Watcher,
        mdt: u32,
        action: u32,
        archive_id: u32,
        flags: u64,
        items: &[(Fid, u64, u64)],
        data: &[u8],
    ) -> (Res<()>, bool) {
        let mut queued = false;
        // No coordinator running on that MDT (`hsm_control=shutdown`): the whole part is
        // refused before any item (`mdt_hsm_add_actions`: CDT_STOPPING or no reference: EAGAIN).
        let stopped = self
            .mdts
            .get(mdt as usize)
            .is_some_and(|m| m.tun.hsm_control == "shutdown");
        if action != HUA_RELEASE && action != HUA_CANCEL && stopped {
            return (Err(libc::EAGAIN), false);
        }
        let mut seen = std::collections::HashSet::new();
        for &(fid, off, len) in items {
            if !seen.insert(fid) {
                continue;
            }
            let n = match self.file_node(&fid) {
                Ok(n) => n.clone(),
                Err(e) => return (Err(e), queued),
            };
            if n.kind != Kind::File {
                return (Err(libc::EINVAL), queued);
            }
            match self.register_item(w, &n, (fid, off, len), action, archive_id, flags, data) {
                Ok(recorded) => queued |= recorded,
                Err(e) => return (Err(e), queued),
            }
        }
        (Ok(()), queued)
    }

    /// One item of a request on its MDT (the body of `mdt_hsm_register_hal`'s loop): `Ok(true)`
    /// when recorded, `Ok(false)` when not needed.
    #[allow(clippy::too_many_arguments)]
    fn register_item(
        &mut self,
        w: &mut Watcher,
        n: &Node,
        (fid, off, len): (Fid, u64, u64),
        action: u32,
        archive_id: u32,
        flags: u64,
        data: &[u8],
    ) -> Res<bool> {
        let tun = self.mdts[n.mdt as usize].tun.clone();
        let force = flags & HSM_FORCE_ACTION != 0;
        let hsm = n.hsm;
        let hsma = match action {
            HUA_RELEASE => {
                self.release(w, fid)?;
                return Ok(false);
            }
            HUA_CANCEL => {
                // Recorded or queued for delivery: the dispatch that follows delivers it.
                self.cancel(fid)?;
                return Ok(true);
            }
            HUA_ARCHIVE => {
                if !force && hsm & HS_ARCHIVED != 0 && hsm & HS_DIRTY == 0 {
                    return Ok(false);
                }
                if hsm & HS_NOARCHIVE != 0
                    || (hsm & HS_EXISTS != 0 && archive_id != 0 && archive_id != n.archive_id)
                {
                    return Err(libc::EPERM);
                }
                HSMA_ARCHIVE
            }
            HUA_RESTORE => {
                if !force && hsm & HS_RELEASED == 0 {
                    return Ok(false);
                }
                if hsm & HS_ARCHIVED == 0 || hsm & (HS_DIRTY | HS_LOST) != 0 {
                    return Err(libc::EPERM);
                }
                if off != 0 {
                    return Err(libc::EPROTO);
                }
                HSMA_RESTORE
            }
            HUA_REMOVE => {
                if !force && hsm & (HS_EXISTS | HS_ARCHIVED) == 0 {
                    return Ok(false);
                }
                if hsm & HS_RELEASED != 0 {
                    return Err(libc::EPERM);
                }
                HSMA_REMOVE
            }
            _ => return Err(libc::EINVAL),
        };
        // An active request for the same file and action: since LU-13651 the MDT no longer
        // looks for a compatible request except for CANCEL (`hsm_find_compatible`), so a second
        // ARCHIVE or REMOVE is recorded again, a duplicate; a second RESTORE finds the restore
        // handle taken (`cdt_restore_handle_add`: -EEXIST) and is skipped.
        // A request reloaded after a restart is in no memory list and blocks nothing.
        if let Some(r) = self.active_on(&fid).find(|r| !r.orphan) {
            if r.action != hsma {
                return Err(libc::EBUSY);
            }
            if hsma == HSMA_RESTORE {
                return Ok(false);
            }
        }
        let aid = if hsma == HSMA_ARCHIVE && archive_id != 0 {
            archive_id
        } else if n.archive_id != 0 {
            n.archive_id
        } else if hsma == HSMA_ARCHIVE {
            tun.default_archive_id
        } else {
            archive_id
        };
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        let r = Req {
            cookie,
            mdt: n.mdt,
            fid,
            dfid: fid,
            action: hsma,
            archive_id: aid,
            flags,
            offset: off,
            length: len,
            data: data.to_vec(),
            status: ARS_WAITING,
            agent: None,
            last_update: now_secs(),
            canceled: false,
            moved: Vec::new(),
            dv_begin: None,
            volatile: None,
            volatile_layout: Default::default(),
            finished_at: 0,
            orphan: false,
        };
        self.reqs.insert(cookie, r);
        self.index_req(cookie);
        self.touch_req(cookie);
        Ok(true)
    }

    /// A user cancel of `fid` (`hsm_find_compatible_cb`: the last WAITING or STARTED request on
    /// the file, reloaded ones included). A WAITING one is cancelled at once; a STARTED one is
    /// queued and delivered by [`State::deliver_cancels`] while below `max_requests`.
    fn cancel(&mut self, fid: Fid) -> Res<()> {
        let Some(c) = self
            .active_on(&fid)
            .rev()
            .find(|r| r.action != HSMA_CANCEL)
            .map(|r| r.cookie)
        else {
            return Ok(());
        };
        let started = self.reqs.get(&c).is_some_and(|r| r.status == ARS_STARTED);
        if started {
            if !self.pending_cancels.contains(&c) {
                self.pending_cancels.push(c);
            }
            return Ok(());
        }
        let now = now_secs();
        if let Some(r) = self.reqs.get_mut(&c) {
            r.status = ARS_CANCELED;
            r.canceled = true;
            r.finished_at = now;
        }
        self.touch_req(c);
        Ok(())
    }

    /// Requests of `mdt` in the coordinator's memory list (`cdt_request_count`): STARTED ones
    /// not reloaded from disk, and cancelled ones whose agent still owes their end.
    fn in_memory(&self, mdt: u32) -> u32 {
        let started = self
            .started_reqs()
            .filter(|r| r.mdt == mdt && !r.orphan)
            .count();
        let owing = self
            .reqs
            .values()
            .filter(|r| r.mdt == mdt && r.canceled && r.agent.is_some() && !r.active())
            .count();
        (started + owing) as u32
    }

    /// Sends queued user cancels of `mdt` while the coordinator is below `max_requests`
    /// (`mdt_cdt_waiting_cb` returns at once when `cdt_request_count >= cdt_max_requests`). The
    /// cancel goes to the agent running the request (`mdt_hsm_add_hal` takes its uuid), or, when
    /// that agent is gone or the request was reloaded after a restart, to the best agent for the
    /// archive (`mdt_hsm_find_best_agent`). The request is marked CANCELED when the cancel is
    /// sent (`mdt_hsm_add_hal` -> `mdt_agent_record_update`).
    fn deliver_cancels(&mut self, mdt: u32) {
        let max = self.mdts[mdt as usize].tun.max_requests;
        let fsname = self.fsname.clone();
        let mut i = 0;
        while i < self.pending_cancels.len() {
            let c = self.pending_cancels[i];
            let Some(r) = self.reqs.get(&c) else {
                self.pending_cancels.remove(i);
                continue;
            };
            if r.status != ARS_STARTED {
                // Ended or timed out meanwhile: nothing left to cancel.
                self.pending_cancels.remove(i);
                continue;
            }
            if r.mdt != mdt {
                i += 1;
                continue;
            }
            if self.in_memory(mdt) >= max {
                return;
            }
            let item = Item {
                action: HSMA_CANCEL,
                fid: r.fid,
                dfid: r.dfid,
                offset: r.offset,
                length: r.length,
                cookie: r.cookie,
                gid: 0,
                data: r.data.clone(),
            };
            let (aid, flags, orphan, runner) = (r.archive_id, r.flags, r.orphan, r.agent);
            self.pending_cancels.remove(i);
            let now = now_secs();
            if let Some(r) = self.reqs.get_mut(&c) {
                r.status = ARS_CANCELED;
                r.canceled = true;
                r.finished_at = now;
                if orphan {
                    r.agent = None;
                }
            }
            self.touch_req(c);
            let Ok(msg) = kuc_hal(aid, flags, &fsname, &[item]) else {
                continue;
            };
            // The runner first; when its pipe is gone (a killed copytool: on real Lustre a new
            // copytool of the same client has the same uuid), the best other agent.
            let mut order: Vec<u64> = runner.into_iter().collect();
            order.extend(
                self.agents
                    .iter()
                    .filter(|a| a.serves_on(mdt, aid) && Some(a.id) != runner)
                    .map(|a| a.id),
            );
            for id in order {
                let Some(a) = self.agents.iter_mut().find(|a| a.id == id) else {
                    continue;
                };
                if a.pipe_dead {
                    continue;
                }
                if write_pipe(a, &msg).is_ok() {
                    break;
                }
                // As a failed send does (`mdt_hsm_agent_send` -EPIPE): this MDT drops the agent.
                a.pipe_dead = true;
                a.mdts.retain(|m| *m != mdt);
            }
            self.agents.retain(|a| !a.mdts.is_empty());
        }
    }

    pub fn register_agent(
        &mut self,
        archives: Vec<u32>,
        pipe: std::os::fd::OwnedFd,
        pid: u32,
    ) -> Res<u64> {
        if self.mdts.iter().all(|m| m.tun.hsm_control == "shutdown") {
            return Err(libc::ENXIO);
        }
        // SAFETY: fcntl on a descriptor we own. The pipe holds 64 KiB as a kernel pipe does;
        // what does not fit goes to the agent's backlog writer (see `write_pipe`).
        unsafe {
            let fl = libc::fcntl(pipe.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(pipe.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
            libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_CAPACITY);
        }
        let id = self.next_agent;
        self.next_agent += 1;
        let uuid = format!(
            "{:08x}-{:04x}-{:04x}-lsim-{:012x}",
            pid,
            self.fsname.len(),
            id,
            now_secs()
        );
        self.agents.push(Agent {
            id,
            uuid,
            archives,
            pipe,
            backlog: Default::default(),
            ok: 0,
            errors: 0,
            mdts: (0..self.mdts.len() as u32).collect(),
            pipe_dead: false,
        });
        self.dispatch();
        Ok(id)
    }

    pub fn unregister_agent(&mut self, id: u64) {
        self.agents.retain(|a| a.id != id);
    }

    /// Sends waiting requests to agents, per MDT, per archive id, within max_requests.
    pub fn dispatch(&mut self) {
        let now = now_secs();
        self.prune_index(false);
        // Items whose file vanished fail before sending (looked for only after a removal).
        let check_vanished = self.idx.removals != self.idx.removals_checked;
        self.idx.removals_checked = self.idx.removals;
        for mdt in 0..self.mdts.len() as u32 {
            let tun = self.mdts[mdt as usize].tun.clone();
            if tun.hsm_control != "enabled" {
                if check_vanished {
                    // Not looked at yet: look again at the next dispatch.
                    self.idx.removals_checked = self.idx.removals.wrapping_sub(1);
                }
                continue;
            }
            let vanished: Vec<u64> = if check_vanished {
                self.waiting_reqs()
                    .filter(|r| r.mdt == mdt && !self.nodes.contains_key(&r.fid))
                    .map(|r| r.cookie)
                    .collect()
            } else {
                Vec::new()
            };
            for c in vanished {
                if let Some(r) = self.reqs.get_mut(&c) {
                    r.status = ARS_FAILED;
                    r.finished_at = now;
                }
                self.touch_req(c);
            }
            self.deliver_cancels(mdt);
            loop {
                let started = self.in_memory(mdt);
                let slots = tun.max_requests.saturating_sub(started) as usize;
                if !self.agents.iter().any(|a| a.mdts.contains(&mdt)) {
                    break;
                }
                if slots == 0 {
                    // One RESTORE may always squeeze in above max_requests.
                    if started == tun.max_requests {
                        self.squeeze_restore(mdt);
                    }
                    break;
                }
                let Some(first) = self.waiting_reqs().find(|r| r.mdt == mdt) else {
                    break;
                };
                let (aid, flags) = (first.archive_id, first.flags);
                if !self.agents.iter().any(|a| a.serves_on(mdt, aid)) {
                    // Nobody serves this archive yet: try other archive ids.
                    if !self.dispatch_other(mdt, aid, slots) {
                        break;
                    }
                    continue;
                }
                let mut size = HAL_HDR + a8(self.fsname.len() + 1) + KUC_HDR;
                let mut cookies = Vec::new();
                for r in self
                    .waiting_reqs()
                    .filter(|r| r.mdt == mdt && r.archive_id == aid && r.flags == flags)
                {
                    let l = a8(72 + r.data.len());
                    if cookies.len() >= slots
                        || (size + l > crate::consts::KUC_MAX_MSG && !cookies.is_empty())
                    {
                        break;
                    }
                    size += l;
                    cookies.push(r.cookie);
                }
                if !self.send_group(mdt, aid, flags, &cookies) {
                    break;
                }
            }
        }
    }

    /// Sends the first waiting RESTORE of `mdt` alone (the one allowed above max_requests).
    fn squeeze_restore(&mut self, mdt: u32) {
        let cand = self
            .idx
            .waiting_restores
            .iter()
            .filter_map(|c| self.reqs.get(c))
            .find(|r| {
                r.mdt == mdt
                    && r.status == ARS_WAITING
                    && self.agents.iter().any(|a| a.serves_on(mdt, r.archive_id))
            })
            .map(|r| (r.cookie, r.archive_id, r.flags));
        if let Some((c, aid, flags)) = cand {
            self.send_group(mdt, aid, flags, &[c]);
        }
    }

    /// Dispatches the first waiting group of another archive id that has an agent.
    fn dispatch_other(&mut self, mdt: u32, skip: u32, slots: usize) -> bool {
        let cand = self
            .waiting_reqs()
            .find(|r| {
                r.mdt == mdt
                    && r.archive_id != skip
                    && self.agents.iter().any(|a| a.serves_on(mdt, r.archive_id))
            })
            .map(|r| (r.archive_id, r.flags));
        let Some((aid, flags)) = cand else {
            return false;
        };
        let cookies: Vec<u64> = self
            .waiting_reqs()
            .filter(|r| r.mdt == mdt && r.archive_id == aid && r.flags == flags)
            .take(slots.min(40))
            .map(|r| r.cookie)
            .collect();
        self.send_group(mdt, aid, flags, &cookies)
    }

    /// Writes one hal to the least-loaded agent serving `aid`; true when sent.
    fn send_group(&mut self, mdt: u32, aid: u32, flags: u64, cookies: &[u64]) -> bool {
        let items: Vec<Item> = cookies
            .iter()
            .filter_map(|c| self.reqs.get(c))
            .map(|r| Item {
                action: r.action,
                fid: r.fid,
                dfid: r.dfid,
                offset: r.offset,
                length: r.length,
                cookie: r.cookie,
                gid: 0,
                data: r.data.clone(),
            })
            .collect();
        let msg = match kuc_hal(aid, flags, &self.fsname, &items) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("lustre-sim mds: action list not encodable: {e}");
                return false;
            }
        };
        loop {
            let load = |s: &State, id: u64| {
                s.started_reqs()
                    .filter(|r| r.agent == Some(id) && !r.orphan)
                    .count()
            };
            let Some(agent) = self
                .agents
                .iter()
                .filter(|a| a.serves_on(mdt, aid))
                .map(|a| a.id)
                .min_by_key(|id| (load(self, *id), *id))
            else {
                return false;
            };
            let res = self
                .agents
                .iter_mut()
                .find(|a| a.id == agent)
                .map(|a| {
                    if a.pipe_dead {
                        Ok(())
                    } else {
                        write_pipe(a, &msg)
                    }
                })
                .unwrap_or(Err(libc::EPIPE));
            match res {
                Ok(()) => {
                    let now = now_secs();
                    for c in cookies {
                        let Some(r) = self.reqs.get_mut(c) else {
                            continue;
                        };
                        r.status = ARS_STARTED;
                        r.agent = Some(agent);
                        r.last_update = now;
                        let (fid, action, a) = (r.fid, r.action, r.archive_id);
                        self.index_req(*c);
                        self.touch_req(*c);
                        // mdt_hsm_agent_send -> mdt_hsm_add_hal -> mdt_hsm_set_exists, in
                        // the coordinator thread: HE_STATE with a zero NID, unless the file
                        // already exists in that archive.
                        let hsm = self.nodes.get(&fid).map(|n| (n.hsm, n.archive_id));
                        if let (HSMA_ARCHIVE, Some((hsm, aid))) = (action, hsm) {
                            if hsm & HS_EXISTS == 0 || aid != a {
                                self.hsm_attr_set(fid, hsm | HS_EXISTS, a, Writer::Coordinator);
                            }
                        }
                    }
                    return true;
                }
                Err(libc::EAGAIN) => return false,
                Err(_) => {
                    // This MDT unregisters the agent; the others keep it (see Agent::pipe_dead).
                    if let Some(a) = self.agents.iter_mut().find(|a| a.id == agent) {
                        a.pipe_dead = true;
                        a.mdts.retain(|m| *m != mdt);
                    }
                    self.agents.retain(|a| !a.mdts.is_empty());
                }
            }
        }
    }

    /// The request a copytool call names by cookie (`mdt_cdt_update_request`): looked up in the
    /// memory list only, so a request reloaded after a restart is -ENOENT; any process may name
    /// it (no agent check).
    fn req_for(&mut self, cookie: u64) -> Res<&mut Req> {
        match self.reqs.get_mut(&cookie) {
            Some(r) if !r.orphan => Ok(r),
            _ => Err(libc::ENOENT),
        }
    }

    /// `mdt_hsm_update_request_state`: progress and end of an ARCHIVE or RESTORE must name the
    /// request's FID or its data FID, else -EINVAL (the cookie is someone else's).
    ///
    /// The client sends progress and end to the MDT of that FID (`lmv` routes by FID): another
    /// MDT's coordinator does not know the cookie, -ENOENT.
    fn check_fid(r: &Req, fid: Option<Fid>) -> Res<()> {
        if fid.is_some_and(|f| crate::fid::mdt_index(&f) != r.mdt) {
            return Err(libc::ENOENT);
        }
        match fid {
            Some(f)
                if (r.action == HSMA_ARCHIVE || r.action == HSMA_RESTORE)
                    && f != r.fid
                    && f != r.dfid =>
            {
                Err(libc::EINVAL)
            }
            _ => Ok(()),
        }
    }

    pub fn action_begin(
        &mut self,
        cookie: u64,
        fid: Fid,
        mdt_index: i32,
        open_flags: i32,
    ) -> Res<BeginReply> {
        let r = self.req_for(cookie)?;
        if r.canceled {
            return Err(libc::ECANCELED);
        }
        if r.status != ARS_STARTED || r.fid != fid {
            return Err(libc::ENOENT);
        }
        r.last_update = now_secs();
        let action = r.action;
        self.touch_req(cookie);
        let node = self.file_node(&fid)?.clone();
        let path = self.abs_path(&fid).ok_or(libc::ENOENT)?;
        match action {
            HSMA_ARCHIVE => {
                if let Some(r) = self.reqs.get_mut(&cookie) {
                    r.dv_begin = Some(node.dv);
                }
                Ok(BeginReply {
                    path: Some(path.display().to_string()),
                    dfid: fid,
                })
            }
            HSMA_RESTORE => {
                // `create_restore_volatile` -> `llapi_create_volatile_idx`: the volatile file goes
                // to `restore_mdt_index`, or, with -1, where `lmv_locate_tgt` hashes its random
                // name (`.lustre_volatile::XXXX`). Its progress and end are then routed by its
                // FID (see `check_fid`).
                let nmdts = self.mdts.len() as u32;
                let vmdt = match u32::try_from(mdt_index) {
                    Ok(i) if i < nmdts => i,
                    Ok(_) => return Err(libc::EINVAL),
                    Err(_) => {
                        let name = format!(".lustre_volatile::{:04X}", rand_u16());
                        super::journal::fnv32(name.as_bytes()) % nmdts.max(1)
                    }
                };
                let dfid = self.alloc_fid(vmdt);
                let vdir = State::state_dir(&self.root).join("volatile");
                std::fs::create_dir_all(&vdir)
                    .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
                let vpath = vdir.join(dfid.nobrace().to_string());
                let f = std::fs::OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .open(&vpath)
                    .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
                let _ = std::os::unix::fs::fchown(&f, Some(node.stat.uid), Some(node.stat.gid));
                // 2.17 renumbered O_LOV_DELAY_CREATE to O_NOCTTY|FASYNC, bits the 2.16 value
                // also has: either asks for a volatile file without a layout (layout.rs).
                let delayed = open_flags & lustre_sys::O_LOV_DELAY_CREATE_2_17
                    == lustre_sys::O_LOV_DELAY_CREATE_2_17;
                if let Some(r) = self.reqs.get_mut(&cookie) {
                    r.dfid = dfid;
                    r.volatile = Some(vpath.display().to_string());
                    r.volatile_layout = if delayed {
                        super::layout::VolatileLayout::Delayed
                    } else {
                        super::layout::VolatileLayout::Instantiated
                    };
                }
                Ok(BeginReply {
                    path: Some(vpath.display().to_string()),
                    dfid,
                })
            }
            _ => Ok(BeginReply {
                path: None,
                dfid: fid,
            }),
        }
    }

    pub fn action_progress(
        &mut self,
        cookie: u64,
        fid: Option<Fid>,
        off: u64,
        len: u64,
    ) -> Res<()> {
        let r = self.req_for(cookie)?;
        State::check_fid(r, fid)?;
        if r.canceled {
            return Err(libc::ECANCELED);
        }
        if r.status != ARS_STARTED {
            return Err(libc::ENOENT);
        }
        r.add_moved(off, len);
        r.last_update = now_secs();
        self.touch_req(cookie);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn action_end(
        &mut self,
        w: &mut Watcher,
        cookie: u64,
        fid: Option<Fid>,
        off: u64,
        len: u64,
        flags: i32,
        errval: i32,
    ) -> Res<()> {
        let r = self.req_for(cookie)?;
        State::check_fid(r, fid)?;
        if !(r.status == ARS_STARTED || r.canceled && r.finished_at != 0 && r.agent.is_some()) {
            return Err(libc::ENOENT);
        }
        r.add_moved(off, len);
        let r = r.clone();
        let mut err = errval.abs();
        let now = now_secs();
        let agent = r.agent;
        if r.canceled {
            if let Some(x) = self.reqs.get_mut(&cookie) {
                x.agent = None;
            }
            self.touch_req(cookie);
            if let Some(v) = &r.volatile {
                let _ = std::fs::remove_file(v);
            }
            self.count_agent(agent, false);
            self.emit_hsm(
                r.fid,
                event_of(r.action),
                if err == 0 { libc::ECANCELED } else { err },
            );
            self.dispatch();
            return Ok(());
        }
        let mut ret = Ok(());
        if err == 0 {
            match r.action {
                HSMA_ARCHIVE => {
                    let dv = self.nodes.get(&r.fid).map(|n| n.dv);
                    if dv.is_none() {
                        err = libc::ENOENT;
                    } else if dv != r.dv_begin {
                        err = libc::EBUSY;
                        ret = Err(libc::EBUSY);
                    } else if let Some(n) = self.nodes.get(&r.fid) {
                        // hsm_cdt_request_completed: ARCHIVED set, LOST and DIRTY cleared,
                        // written with mdt_hsm_attr_set (HE_STATE before the HE_ARCHIVE below)
                        let flags = (n.hsm | HS_ARCHIVED | HS_EXISTS) & !(HS_DIRTY | HS_LOST);
                        self.hsm_attr_set(r.fid, flags, r.archive_id, Writer::Client);
                    }
                }
                HSMA_RESTORE => match self.restore_data(w, &r) {
                    Ok(()) => {
                        // hsm_cdt_request_completed: mdt_hsm_attr_set with the flags unchanged
                        // (only mh_arch_ver) -> `HSM 0x0`; then hsm_swap_layouts: the swap
                        // clears RELEASED and DIRTY and writes HE_RELEASE (the flags before
                        // the swap held HS_RELEASED); HE_RESTORE follows below.
                        if let Some(before) = self.nodes.get(&r.fid).map(|n| n.hsm) {
                            self.hsm_attr_set(r.fid, before, 0, Writer::Client);
                            if let Some(n) = self.node_mut(&r.fid) {
                                n.hsm &= !(HS_RELEASED | HS_DIRTY);
                            }
                            self.emit_after_swap(r.fid, before);
                        }
                    }
                    Err(e) => {
                        err = e;
                        ret = Err(e);
                    }
                },
                HSMA_REMOVE => {
                    if let Some(n) = self.nodes.get(&r.fid) {
                        let flags = n.hsm & !(HS_ARCHIVED | HS_EXISTS | HS_LOST);
                        self.hsm_attr_set(r.fid, flags, 0, Writer::Client);
                    }
                }
                _ => {}
            }
        }
        if let Some(v) = &r.volatile {
            let _ = std::fs::remove_file(v);
        }
        let nra = self.mdts[r.mdt as usize].tun.policy_nra;
        let retry = err != 0 && flags & HP_FLAG_RETRY != 0 && !nra && err != libc::EBUSY;
        if let Some(x) = self.reqs.get_mut(&cookie) {
            x.status = if err == 0 {
                ARS_SUCCEED
            } else if retry {
                ARS_WAITING
            } else {
                ARS_FAILED
            };
            x.finished_at = now;
            x.agent = None;
        }
        self.touch_req(cookie);
        if err == 0 {
            let m = &mut self.mdts[r.mdt as usize];
            match r.action {
                HSMA_ARCHIVE => m.archive_count += 1,
                HSMA_RESTORE => m.restore_count += 1,
                HSMA_REMOVE => m.remove_count += 1,
                _ => {}
            }
            self.touch_mdt(r.mdt);
        }
        self.count_agent(agent, err == 0);
        self.emit_hsm(r.fid, event_of(r.action), err);
        self.dispatch();
        ret
    }

    fn count_agent(&mut self, agent: Option<u64>, ok: bool) {
        if let Some(a) = agent.and_then(|id| self.agents.iter_mut().find(|a| a.id == id)) {
            if ok {
                a.ok += 1;
            } else {
                a.errors += 1;
            }
        }
    }

    /// RESTORE success: the volatile file's data goes into the original (the real MDT swaps
    /// layouts); our own writes produce no records.
    fn restore_data(&mut self, w: &mut Watcher, r: &Req) -> Res<()> {
        let vol = r.volatile.as_ref().ok_or(libc::EINVAL)?;
        let path = self.abs_path(&r.fid).ok_or(libc::ENOENT)?;
        let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        let mut src = std::fs::File::open(vol).map_err(errno)?;
        let vol_size = src.metadata().map_err(errno)?.len();
        let layout = State::restored_layout(r, vol_size)?;
        let mut dst = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(errno)?;
        std::io::copy(&mut src, &mut dst).map_err(errno)?;
        dst.sync_all().map_err(errno)?;
        restore_times(&dst, &meta);
        drop(dst);
        self.drain(w, &[r.fid]);
        if let Some(n) = self.node_mut(&r.fid) {
            n.layout = Some(layout);
        }
        Ok(())
    }

    /// HUA_RELEASE (done client-side by llite on real Lustre): drop the data, keep the size.
    pub fn release(&mut self, w: &mut Watcher, fid: Fid) -> Res<()> {
        let n = self.file_node(&fid)?.clone();
        if n.hsm & HS_RELEASED != 0 {
            return Ok(());
        }
        if n.hsm & HS_ARCHIVED == 0 || n.hsm & (HS_DIRTY | HS_NORELEASE | HS_LOST) != 0 {
            return Err(libc::EPERM);
        }
        if self.active_on(&fid).next().is_some() {
            return Err(libc::EBUSY);
        }
        let path = self.abs_path(&fid).ok_or(libc::ENOENT)?;
        let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(errno)?;
        f.set_len(0).map_err(errno)?;
        f.set_len(meta.len()).map_err(errno)?;
        restore_times(&f, &meta);
        drop(f);
        self.drain(w, &[fid]);
        // TRUNC 0xf, LYOUT, CLOSE 0x2 and no HSM record: its HE_RELEASE comes with the restore
        // (hsm_records module docs).
        self.emit_release_records(fid);
        if let Some(n) = self.node_mut(&fid) {
            n.hsm |= HS_RELEASED;
        }
        Ok(())
    }

    /// `llapi_hsm_import`: a released stub with the given size, mode, owner and times.
    #[allow(clippy::too_many_arguments)]
    pub fn import(
        &mut self,
        w: &mut Watcher,
        rel: &str,
        archive_id: u32,
        size: u64,
        mode: u32,
        uid: u32,
        gid: u32,
        atime: (i64, u32),
        mtime: (i64, u32),
        layout: super::layout::LayoutAttrs,
    ) -> Res<Fid> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.root.join(rel.trim_start_matches('/'));
        let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        let f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(mode & 0o7777)
            .open(&path)
            .map_err(errno)?;
        self.drain(w, &[]);
        let rel_b = path.strip_prefix(&self.root).map_err(|_| libc::EINVAL)?;
        let fid = self
            .lookup_rel(std::os::unix::ffi::OsStrExt::as_bytes(rel_b.as_os_str()))
            .ok_or(libc::ENOENT)?;
        let done = (|| -> std::io::Result<()> {
            f.set_len(size)?;
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            let c =
                std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))?;
            // SAFETY: c is a valid path; the mode comes from the caller's stat.
            unsafe { libc::chmod(c.as_ptr(), mode & 0o7777) };
            let ts = [
                libc::timespec {
                    tv_sec: atime.0,
                    tv_nsec: atime.1 as _,
                },
                libc::timespec {
                    tv_sec: mtime.0,
                    tv_nsec: mtime.1 as _,
                },
            ];
            // SAFETY: f is open; ts holds two timespecs as futimens requires.
            if unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })();
        drop(f);
        if let Err(e) = done {
            let _ = std::fs::remove_file(&path);
            self.drain(w, &[]);
            return Err(errno(e));
        }
        self.drain(w, &[fid]);
        let aid = if archive_id != 0 {
            archive_id
        } else {
            self.mdts[0].tun.default_archive_id
        };
        if let Some(n) = self.node_mut(&fid) {
            n.hsm = HS_EXISTS | HS_ARCHIVED | HS_RELEASED;
            n.archive_id = aid;
            // `llapi_hsm_import` creates the stub with the striping it was given.
            n.layout = Some(layout);
        }
        Ok(fid)
    }

    /// Timeouts and purge of finished records; runs every loop_period.
    pub fn housekeeping(&mut self) {
        let now = now_secs();
        let mut timed_out = Vec::new();
        let mut purge = Vec::new();
        for r in self.reqs.values() {
            let tun = &self.mdts[r.mdt as usize].tun;
            if r.status == ARS_STARTED
                && now.saturating_sub(r.last_update) >= tun.active_request_timeout
            {
                timed_out.push(r.cookie);
            } else if !r.active()
                && r.finished_at != 0
                && now.saturating_sub(r.finished_at)
                    >= tun.grace_delay
                        + if r.agent.is_some() && r.canceled {
                            // cancelled while running: its agent still owes an end
                            tun.active_request_timeout
                        } else {
                            0
                        }
            {
                purge.push(r.cookie);
            }
        }
        for c in timed_out {
            let Some(r) = self.reqs.get_mut(&c) else {
                continue;
            };
            r.status = ARS_CANCELED;
            r.finished_at = now;
            let (agent, fid, action, vol) = (r.agent.take(), r.fid, r.action, r.volatile.clone());
            self.touch_req(c);
            if let Some(v) = vol {
                let _ = std::fs::remove_file(v);
            }
            self.count_agent(agent, false);
            // written by the coordinator thread (cdt_timeout): zero NID
            self.emit_hsm_by_coordinator(fid, event_of(action), libc::ECANCELED);
        }
        for c in purge {
            self.reqs.remove(&c);
            self.touch_req(c);
        }
        self.prune_index(true);
        self.dispatch();
    }

    /// hsm_control=purge: every request is cancelled.
    pub fn purge_requests(&mut self, mdt: u32) {
        let now = now_secs();
        let cs: Vec<u64> = self
            .reqs
            .values()
            .filter(|r| r.mdt == mdt && r.active())
            .map(|r| r.cookie)
            .collect();
        for c in cs {
            if let Some(r) = self.reqs.get_mut(&c) {
                r.status = ARS_CANCELED;
                r.canceled = true;
                r.finished_at = now;
            }
            self.touch_req(c);
        }
    }
}

/// A random 16-bit number (the volatile name's `%.4X`).
fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

fn restore_times(f: &std::fs::File, meta: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    let ts = [
        libc::timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        libc::timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    ];
    // SAFETY: f is an open file; ts holds the two timespecs futimens reads.
    unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) };
}

/// A kernel pipe's default capacity, which the client's KUC pipe has.
const PIPE_CAPACITY: libc::c_int = 64 << 10;

/// Sends one whole KUC message to an agent, as the client kernel does
/// (`libcfs_kkuc_msg_put` -> `kernel_write` on the pipe): what fits the pipe is written now;
/// the rest, and every later message while a rest is pending, is written by a thread that blocks
/// on the pipe until the copytool reads (the kernel thread blocking in `pipe_write`). Either way
/// the message counts as sent. EPIPE (the copytool is gone) is reported at once, or at the next
/// send once the blocked writer found it.
pub fn write_pipe(a: &mut Agent, msg: &[u8]) -> Res<()> {
    use std::sync::atomic::Ordering;
    if a.backlog.broken.load(Ordering::SeqCst) {
        return Err(libc::EPIPE);
    }
    let mut done = 0;
    if a.backlog.pending.load(Ordering::SeqCst) == 0 {
        // SAFETY: writing a live buffer to a pipe descriptor the agent record owns.
        let n = unsafe {
            libc::write(
                a.pipe.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            if e != libc::EAGAIN {
                return Err(e);
            }
        } else {
            done = n as usize;
        }
    }
    if done == msg.len() {
        return Ok(());
    }
    let rest = msg[done..].to_vec();
    if a.backlog.tx.is_none() {
        let fd = a
            .pipe
            .try_clone()
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let (pending, broken) = (a.backlog.pending.clone(), a.backlog.broken.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::File::from(fd);
            for buf in rx {
                let mut off = 0;
                while off < buf.len() {
                    match std::io::Write::write(&mut f, &buf[off..]) {
                        Ok(n) => off += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            // The descriptor is non-blocking (shared with the coordinator):
                            // wait for room as a blocking write would.
                            let mut p = libc::pollfd {
                                fd: std::os::fd::AsRawFd::as_raw_fd(&f),
                                events: libc::POLLOUT,
                                revents: 0,
                            };
                            // SAFETY: one pollfd on a descriptor this thread owns.
                            unsafe { libc::poll(&mut p, 1, 1000) };
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            broken.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
                pending.fetch_sub(buf.len(), Ordering::SeqCst);
            }
        });
        a.backlog.tx = Some(tx);
    }
    a.backlog.pending.fetch_add(rest.len(), Ordering::SeqCst);
    let sent = a
        .backlog
        .tx
        .as_ref()
        .is_some_and(|tx| tx.send(rest).is_ok());
    if !sent {
        return Err(libc::EPIPE);
    }
    Ok(())
}
