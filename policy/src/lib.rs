//! `lustre-blob`: the policy engine (changelog -> iterations -> HSM archive requests), the
//! namespace operations HSM does not carry, jobs, counters, the control socket and the CLI.
//!
//! The engine ([`engine::Engine`]) is written against small ports ([`ports`]): a `Namespace`
//! (Lustre), a `Store` (blob container) and an `EventLog` (logging container), implemented for
//! real in [`real`] and in memory in `fake` (tests and the `testing` feature).
//!
//! * [`daemon::run`] wires it all: one changelog reader thread per MDT ([`readers`]), the engine
//!   loop waiting for records, requests and signals on one channel, the control socket
//!   ([`control`]), metrics.
//! * [`jobs::JobRegistry`]: manual export and import jobs, one at a time, history in `jobs.json`.
//! * [`status`]: Azure's field names for `status --json`, the human form, Prometheus text.
//! * [`state`]: the durable state, saved atomically.
//! * [`exit`]: the CLI's exit codes. See `README.md` for commands and semantics.

#![warn(missing_docs)]

#[cfg(any(test, feature = "testing"))]
pub mod bench;
pub mod check;
// Being restructured on another branch (issue 14, daemon runtime): documented there.
#[allow(missing_docs)]
pub mod control;
// Being restructured on another branch (issue 14, daemon runtime): documented there.
#[allow(missing_docs)]
pub mod daemon;
pub mod engine;
pub mod exit;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod import_meta;
pub mod inflight;
pub mod jobs;
pub mod members;
pub mod model;
pub mod ports;
pub mod progress;
pub mod readers;
pub mod real;
pub mod scope;
pub mod state;
pub mod status;
pub mod tree_scan;
pub mod verify;
pub mod vocab;
// Being restructured on another branch (issue 14, daemon runtime): documented there.
#[allow(missing_docs)]
pub mod web;
pub mod window;
