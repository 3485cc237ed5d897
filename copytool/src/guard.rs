//! The begun-action handle that cannot be forgotten: every received item (except CANCEL) must get
//! exactly one `action_end` (lustre-abi §4.5, §7.7). `ActionGuard::end` consumes the guard; a guard
//! dropped without it (an early return, a panic in a worker) ends the action itself with EIO.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::ports::CopyAction;
use lustre::Extent;

/// A shared slot holding the begun action until it is ended. The progress reporter holds a clone and
/// stops reporting once the slot is empty.
pub struct ActionSlot<A>(Arc<Mutex<Option<A>>>);

impl<A> Clone for ActionSlot<A> {
    fn clone(&self) -> Self {
        ActionSlot(self.0.clone())
    }
}

impl<A: CopyAction> ActionSlot<A> {
    fn lock(&self) -> MutexGuard<'_, Option<A>> {
        // A poisoned lock only means a progress call panicked; the action itself is still valid.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends progress; `Ok(false)` when the action has already ended.
    pub fn progress(&self, ext: Extent, total: u64) -> Result<bool, lustre::Error> {
        match self.lock().as_ref() {
            Some(a) => a.progress(ext, total).map(|()| true),
            None => Ok(false),
        }
    }
}

/// Owns one begun action until it is ended.
pub struct ActionGuard<A: CopyAction> {
    slot: ActionSlot<A>,
    extent: Extent,
    label: String,
}

impl<A: CopyAction> ActionGuard<A> {
    /// `extent` is the item's extent, used if the guard has to end the action itself.
    pub fn new(action: A, extent: Extent, label: String) -> ActionGuard<A> {
        ActionGuard {
            slot: ActionSlot(Arc::new(Mutex::new(Some(action)))),
            extent,
            label,
        }
    }

    /// The slot the progress reporter shares.
    pub fn slot(&self) -> ActionSlot<A> {
        self.slot.clone()
    }

    /// Runs `f` on the action (e.g. to get its data fd).
    pub fn with<R>(
        &self,
        f: impl FnOnce(&A) -> Result<R, lustre::Error>,
    ) -> Result<R, lustre::Error> {
        match self.slot.lock().as_ref() {
            Some(a) => f(a),
            None => Err(lustre::Error::Call {
                call: "action",
                errno: libc::EBADF,
            }),
        }
    }

    /// Ends the action (exactly once: the guard is consumed).
    pub fn end(self, ext: Extent, hp_flags: i32, errval: i32) -> Result<(), lustre::Error> {
        let action = self.slot.lock().take();
        match action {
            Some(a) => a.end(ext, hp_flags, errval),
            None => Err(lustre::Error::Call {
                call: "llapi_hsm_action_end",
                errno: libc::EBADF,
            }),
        }
    }
}

impl<A: CopyAction> Drop for ActionGuard<A> {
    fn drop(&mut self) {
        let action = self.slot.lock().take();
        if let Some(a) = action {
            tracing::error!(action = %self.label, "action dropped without an end; ending it with EIO");
            if let Err(e) = a.end(self.extent, 0, libc::EIO) {
                tracing::error!(action = %self.label, error = %e, "ending a dropped action failed");
            }
        }
    }
}
