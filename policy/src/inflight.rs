//! The files whose archive request was sent and whose end has not been seen yet, and what the
//! auto-export and a manual export job both do with them: send the requests in batches (one
//! file at a time only where a batch was refused), and settle a request that has had no answer
//! for too long from the file's HSM state.

use crate::ports::{Namespace, NsError};
use lustre::{Fid, HsmState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

/// One sent request, as the set needs it: when it was sent (or last seen still queued).
pub trait Request {
    /// Unix ms the request was sent, or last found still queued.
    fn submitted_ms(&self) -> u64;
    /// The request was found still queued or running at `now_ms`: it waits again from there.
    fn still_queued(&mut self, now_ms: u64);
}

/// In-flight requests by FID: a map (serialised as one, so saved states keep their shape) with
/// the checks both exporters make on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InFlightSet<T>(BTreeMap<Fid, T>);

impl<T> Default for InFlightSet<T> {
    fn default() -> Self {
        InFlightSet(BTreeMap::new())
    }
}

impl<T> Deref for InFlightSet<T> {
    type Target = BTreeMap<Fid, T>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> DerefMut for InFlightSet<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<T> InFlightSet<T> {
    /// No request in flight (a path serde's `skip_serializing_if` can name).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Request> InFlightSet<T> {
    /// Files whose request has waited `after_ms` or longer without an answer.
    pub fn stale(&self, now_ms: u64, after_ms: u64) -> Vec<Fid> {
        self.0
            .iter()
            .filter(|(_, r)| now_ms.saturating_sub(r.submitted_ms()) >= after_ms)
            .map(|(f, _)| *f)
            .collect()
    }
}

/// Whether a file needs an archive for its blob to be current, from its `HS_*` flags alone: not
/// archived, or changed since. The coordinator decides the same way and drops a request it finds
/// not needed (`hsm_action_is_needed`), so nothing more is asked: a `current_action` per file
/// would make Lustre read its whole action catalog under `cdt_llog_lock` each time
/// (`mdt_hsm_get_action` → `cdt_llog_process`). Auto-export's discovery and the manual export's
/// scan both decide here.
pub fn needs_archive(hsm: &HsmState) -> bool {
    !hsm.is_clean_archive()
}

/// What a file whose request had no answer turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// Deleted: nothing left to export.
    Gone,
    /// A request is still waiting or running on it (or that could not be told).
    Queued,
    /// Archived and clean: its archive ended (its CL_HSM was missed, or the coordinator found
    /// nothing to do and skipped the request silently).
    Archived,
    /// Neither archived nor requested: the request vanished (a restart lost the send).
    Vanished,
    /// The file system could not tell (fid2path or the HSM state failed).
    Unknown(NsError),
}

/// Looks at a file whose request had no answer. The flags settle most stragglers; only a file
/// still not archived costs the `current_action`, which on Lustre reads the coordinator's
/// whole action catalog (`mdt_hsm_get_action` → `cdt_llog_process`).
pub fn look_at_stale<N: Namespace>(ns: &N, fid: &Fid) -> Stale {
    let path = match ns.fid2path(fid) {
        Ok(Some(p)) => p,
        Ok(None) => return Stale::Gone,
        Err(e) => return Stale::Unknown(e),
    };
    let hsm = match ns.hsm_state(&path) {
        Ok(h) => h,
        Err(e) => return Stale::Unknown(e),
    };
    if !needs_archive(&hsm) {
        return Stale::Archived;
    }
    // Not archived (or changed since): only the coordinator knows whether the request still
    // waits or was lost.
    match ns.action_pending(&path) {
        Ok(false) => Stale::Vanished,
        Ok(true) | Err(_) => Stale::Queued,
    }
}

/// A file of a refused request, looked at before it is asked for again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRefusal {
    /// Deleted: nothing to export.
    Gone,
    /// Its request is queued or already done, or that cannot be told now: asking again would
    /// queue a duplicate (the stale check settles it).
    Queued,
    /// Not queued: ask again.
    Resend,
}

/// Whether a file of a refused request needs a new one. A refused request may have queued
/// part of its files: the MDT records items one by one and stops at the first error
/// (`mdt_hsm_register_hal`), and under DNE each MDT gets its own part (`lmv_iocontrol`).
pub fn look_after_refusal<N: Namespace>(ns: &N, fid: &Fid) -> AfterRefusal {
    let path = match ns.fid2path(fid) {
        Ok(Some(p)) => p,
        Ok(None) => return AfterRefusal::Gone,
        Err(_) => return AfterRefusal::Queued,
    };
    match ns.action_pending(&path) {
        Ok(true) | Err(_) => AfterRefusal::Queued,
        Ok(false) => match ns.hsm_state(&path) {
            Ok(h) if !h.is_clean_archive() => AfterRefusal::Resend,
            _ => AfterRefusal::Queued,
        },
    }
}

/// What became of the files of one [`request_archives`] call. Files in none of the lists are
/// queued (or found queued or done after a refusal) and stay in flight.
#[derive(Debug, Default)]
pub struct Sent {
    /// The coordinator took at least one batch.
    pub accepted: bool,
    /// Files of a refused batch found deleted: nothing to export.
    pub gone: Vec<Fid>,
    /// Files refused when asked for alone, with that refusal (their own).
    pub refused: Vec<(Fid, NsError)>,
    /// The coordinator takes no requests (EAGAIN: no coordinator running on an MDT,
    /// `mdt_hsm_add_actions`): the refusal and the files not taken (that batch and the later
    /// ones, which are not sent at all).
    pub paused: Option<(NsError, Vec<Fid>)>,
}

/// Requests archives of `fids` in batches of `batch` with `payload` as the request data. A
/// batch refused for another reason than EAGAIN is not resent whole: each of its files is
/// looked at ([`look_after_refusal`]) and only those not queued are asked for again, alone.
pub fn request_archives<N: Namespace>(
    ns: &N,
    archive_id: u32,
    fids: &[Fid],
    batch: usize,
    payload: &[u8],
) -> Sent {
    let mut sent = Sent::default();
    for (i, chunk) in fids.chunks(batch.max(1)).enumerate() {
        match ns.archive(archive_id, chunk, payload) {
            Ok(()) => sent.accepted = true,
            Err(e) if e.errno == libc::EAGAIN => {
                let rest = fids[i * batch.max(1)..].to_vec();
                sent.paused = Some((e, rest));
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, files = chunk.len(), "batched archive request refused; resubmitting only the files it did not queue");
                resend_alone(ns, archive_id, chunk, payload, &mut sent);
            }
        }
    }
    sent
}

/// The files of a refused batch, each looked at and asked for alone when it is not queued.
fn resend_alone<N: Namespace>(
    ns: &N,
    archive_id: u32,
    chunk: &[Fid],
    payload: &[u8],
    sent: &mut Sent,
) {
    for fid in chunk {
        match look_after_refusal(ns, fid) {
            AfterRefusal::Gone => sent.gone.push(*fid),
            AfterRefusal::Queued => {}
            AfterRefusal::Resend => {
                if let Err(e) = ns.archive(archive_id, std::slice::from_ref(fid), payload) {
                    sent.refused.push((*fid, e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeNs;
    use crate::model::FileKind;
    use lustre::lustre_sys::{HS_ARCHIVED, HS_EXISTS};

    struct Sent1(u64);
    impl Request for Sent1 {
        fn submitted_ms(&self) -> u64 {
            self.0
        }
        fn still_queued(&mut self, now_ms: u64) {
            self.0 = now_ms;
        }
    }

    #[test]
    fn stale_lists_only_requests_that_waited_long_enough() {
        let mut set = InFlightSet::default();
        set.insert(Fid::new(1, 1, 0), Sent1(100));
        set.insert(Fid::new(1, 2, 0), Sent1(150));
        assert_eq!(set.stale(200, 100), vec![Fid::new(1, 1, 0)]);
        if let Some(r) = set.get_mut(&Fid::new(1, 1, 0)) {
            r.still_queued(200);
        }
        assert!(set.stale(200, 100).is_empty());
    }

    #[test]
    fn a_refused_batch_is_resent_alone_only_for_files_not_queued() {
        let ns = FakeNs::default();
        let a = ns.add("a", FileKind::Regular, 1);
        let b = ns.add("b", FileKind::Regular, 1);
        let c = ns.add("c", FileKind::Regular, 1);
        let d = ns.add("d", FileKind::Regular, 1);
        ns.set_hsm(d, HS_EXISTS | HS_ARCHIVED, false);
        // The MDT queues `a`, refuses `b` (EPERM) and stops: `c` and `d` are not queued.
        ns.lock().refuse.insert(b, libc::EPERM);
        let sent = request_archives(&ns, 1, &[a, b, c, d], 10, b"p");
        assert!(!sent.accepted);
        assert!(sent.gone.is_empty() && sent.paused.is_none());
        let refused: Vec<_> = sent.refused.iter().map(|(f, e)| (*f, e.errno)).collect();
        assert_eq!(refused, vec![(b, libc::EPERM)]);
        // `a` was not asked for twice; `d` (archived and clean) not at all; `c` alone.
        assert_eq!(ns.archived_fids(), vec![a, c]);
    }

    #[test]
    fn a_coordinator_that_takes_no_requests_stops_the_sending() {
        let ns = FakeNs::default();
        let fids: Vec<Fid> = (0..5)
            .map(|i| ns.add(&format!("f{i}"), FileKind::Regular, 1))
            .collect();
        ns.lock().refuse.insert(fids[2], libc::EAGAIN);
        let sent = request_archives(&ns, 1, &fids, 2, b"p");
        assert!(sent.accepted);
        let (e, rest) = sent.paused.expect("paused");
        assert_eq!(e.errno, libc::EAGAIN);
        assert_eq!(rest, fids[2..].to_vec());
        assert_eq!(
            ns.lock().archive_requests,
            2,
            "nothing sent after the refusal"
        );
    }

    #[test]
    fn a_stale_request_is_settled_from_the_files_state() {
        let ns = FakeNs::default();
        let gone = Fid::new(0x200000401, 999, 0);
        let done = ns.add("done", FileKind::Regular, 1);
        ns.set_hsm(done, HS_EXISTS | HS_ARCHIVED, false);
        let queued = ns.add("queued", FileKind::Regular, 1);
        ns.set_hsm(queued, 0, true);
        let lost = ns.add("lost", FileKind::Regular, 1);
        assert_eq!(look_at_stale(&ns, &gone), Stale::Gone);
        assert_eq!(look_at_stale(&ns, &done), Stale::Archived);
        assert_eq!(look_at_stale(&ns, &queued), Stale::Queued);
        assert_eq!(look_at_stale(&ns, &lost), Stale::Vanished);
        // The flags settled the deleted and the archived file: only the two not archived cost
        // a current_action.
        assert_eq!(ns.lock().current_action_calls, 2);
        ns.lock().fid2path_errno = Some(libc::ESHUTDOWN);
        assert!(
            matches!(look_at_stale(&ns, &done), Stale::Unknown(e) if e.errno == libc::ESHUTDOWN)
        );
    }
}
