//! Harness for the end-to-end suites in `tests/tests/`: the product binaries (`lhsmtool_blob`,
//! `lustre-blob`), `lustre-sim` and Azurite as real processes on 127.0.0.1.
//!
//! * [`store::Store`]: an Azurite process (in memory, or on disk so it survives `kill -9`),
//!   restartable on the same port, with a raw REST client for checks (byte-exact blob names).
//! * [`stack::Stack`]: Azurite + a simulator + the policy file + copytools and the daemon.
//! * [`policy::PolicyFile`]: the policy file the stack writes.
//! * [`proc::Proc`]: a child process in its own group with its stderr in a log file.
//! * [`copytool_suite::Env`]: the copytool suites' environment (no daemon; `lfs` drives the
//!   coordinator), from the same parts.
//! * [`util`]: waiting, a seeded RNG, checksums.
//!
//! Every environment keeps the logs of a failed test (named on stderr); Azurite keeps its own.

pub mod copytool_suite;
pub mod policy;
pub mod proc;
pub mod stack;
pub mod store;
pub mod util;
pub mod webdriver;
