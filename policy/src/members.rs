//! The files of the running auto-export iteration, and which of them it has tried.
//!
//! A file counts once per iteration (Azure's counters: Files Discovered, Exported, Failed), so
//! a file the iteration already holds does not join it again when it changes. What the engine
//! must tell apart is *when* it was taken: a member still waiting in the iteration's queue is
//! read when its turn comes, so a change before then is covered by that one try; a member the
//! iteration already tried (requested, skipped as clean, or put back after its copy) needs the
//! next iteration for a change after that, so the running iteration then ends at once and hands
//! its backlog over (`Engine::hand_over`) rather than whenever joiners stop coming.

use lustre::Fid;
use std::collections::HashMap;

/// Members of the running iteration: `true` once tried.
#[derive(Debug, Default)]
pub struct Members {
    tried: HashMap<Fid, bool>,
}

impl Members {
    /// Whether `fid` belongs to the running iteration.
    pub fn contains(&self, fid: &Fid) -> bool {
        self.tried.contains_key(fid)
    }

    /// Whether the running iteration already tried `fid`: a change of it since needs the next.
    pub fn was_tried(&self, fid: &Fid) -> bool {
        self.tried.get(fid).copied().unwrap_or(false)
    }

    /// `fid` was taken into the iteration (not tried yet, unless it was before).
    pub fn join(&mut self, fid: Fid) {
        self.tried.entry(fid).or_insert(false);
    }

    /// The iteration took `fid` off its queue: whatever it changes from now on, this try no
    /// longer covers.
    pub fn tried(&mut self, fid: Fid) {
        self.tried.insert(fid, true);
    }

    /// A new iteration: nobody is a member (the map's memory goes too, it may have held a
    /// million files).
    pub fn clear(&mut self) {
        self.tried = HashMap::new();
    }
}

impl FromIterator<(Fid, bool)> for Members {
    fn from_iter<I: IntoIterator<Item = (Fid, bool)>>(iter: I) -> Members {
        Members {
            tried: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_tried_only_once_taken_off_the_queue_and_stays_tried() {
        let f = Fid::new(0x200000401, 1, 0);
        let mut m = Members::default();
        assert!(!m.contains(&f));
        m.join(f);
        assert!(m.contains(&f) && !m.was_tried(&f));
        m.tried(f);
        m.join(f);
        assert!(m.was_tried(&f), "joining again does not make it untried");
        m.clear();
        assert!(!m.contains(&f) && !m.was_tried(&f));
    }
}
