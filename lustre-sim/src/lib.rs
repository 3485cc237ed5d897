//! `lustre-sim`: a Lustre stand-in for machines without Lustre.
//!
//! * [`mds`]: the simulated MDS daemon (`lustre-sim mds --mount DIR`): FIDs, persistent
//!   per-MDT changelogs, HSM coordinator, over a plain directory watched with inotify.
//! * the `llapi_*` exports (module `api`): built as `liblustreapi_sim.so`, an ABI-compatible
//!   liblustreapi that talks to the daemon over `DIR/.lustre/mds.sock` ([`proto`]).
//! * [`cli`]: the `lfs` / `lctl` subsets; [`agent`]: `lustre-sim test-agent`, a copytool that
//!   begins every action and never ends it (for tests that kill an agent mid-action).
//! * [`record`] / [`hal`]: the simulator's record and action-list builders, encoded with
//!   `lustre::wire`; [`mounts`]: how a mount is found (path walk-up, mount table).
//!
//! See README.md for what is faithful to Lustre and what is not.

pub mod agent;
pub mod api;
pub mod cli;
pub mod client;
pub mod consts;
pub mod fid;
pub mod hal;
pub mod layout_cli;
pub mod mds;
pub mod mounts;
pub mod proto;
pub mod record;
