//! `lhsmtool_blob`, the Lustre HSM copytool for Azure Blob Storage, as a library so its engine can be
//! tested with in-memory fakes.
//!
//! * [`engine::Engine`] receives HSM action lists and serves them (lustre-abi §4).
//! * [`ports`] holds the two traits it is written against: [`ports::Coordinator`] (the Lustre copytool
//!   session) and [`ports::Store`] (the blob store); `real` implements them with the `lustre` and
//!   `blob` crates.
//! * [`record`] is the per-file export record (xattr `trusted.lustre_blob`).
//! * [`settings`] is the command line and the `[copytool]` part of the policy file.

pub mod actions;
pub mod engine;
pub mod failure;
pub mod guard;
pub mod http_metrics;
pub mod logsink;
pub mod metrics;
pub mod model;
pub mod ports;
pub mod real;
pub mod record;
pub mod service;
pub mod settings;
pub mod throttle;
pub mod timefmt;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod fakes;
