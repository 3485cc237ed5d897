//! `lhsmtool_blob`, the Lustre HSM copytool for Azure Blob Storage, as a library so its engine can be
//! tested with in-memory fakes. The binary (`src/main.rs`) only parses the command line and wires
//! these together; other crates do not depend on this one (DESIGN §2).
//!
//! * [`engine::Engine`] receives HSM action lists and serves them (lustre-abi §4):
//!   `Engine::new(ct, store, log, metrics, agent, EngineConfig, journal)`, `run_receiver(&Handle)` (blocking,
//!   wakes when the copytool fd is readable, returns a [`engine::StopReason`]), `request_stop()`
//!   (cancels its one shutdown token), `reload(EngineConfig)`, `drain(grace)`.
//!   `-b/--bandwidth` is one `blob::RateLimiter` per engine (`rate_limit()`), handed to every
//!   transfer; `reload` changes its rate in place.
//! * [`actions`]: ARCHIVE / RESTORE / REMOVE, all through one begin → work → exactly one end.
//! * [`ports`]: the traits the engine is written against, [`ports::Coordinator`] (+
//!   [`ports::CopyAction`]) and [`ports::Store`], plus [`ports::FailureLog`]. They speak
//!   `lustre`'s and `blob`'s own types; [`real`] implements the coordinator with
//!   `lustre::{Mount, Copytool, CopyAction}`, and `blob::BlobStore` is the store. The unit
//!   tests' fakes (`cfg(test)` only) build the same values.
//! * [`guard::ActionGuard`]: a begun action that ends itself (EIO) if dropped without `end`.
//! * The per-file export record (xattr `trusted.lustre_blob`) is `blob::ExportRecord`, read and
//!   written only there; [`job_tag`] reads the job a request came from out of `hai_data`.
//! * [`journal`]: every received item until its end is sent, under an exclusive lock; a restarted
//!   copytool ends what a dead one left STARTED ([`engine::Engine::recover`]).
//! * [`failure`]: errno / reason / HP_FLAG_RETRY mapping of every failure.
//! * [`metrics`]: per-agent counters, Prometheus text at `/metrics` (served by the `endpoint` crate,
//!   as the policy daemon's are).
//! * [`settings`]: the command line and how it overrides the policy file; [`service`]: signals,
//!   reload, metrics, drain.

#![warn(missing_docs)]

pub mod actions;
pub mod engine;
pub mod failure;
pub mod guard;
pub mod job_tag;
pub mod journal;
pub mod metrics;
pub mod ports;
pub mod real;
pub mod service;
pub mod settings;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod fakes;
