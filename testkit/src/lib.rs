//! Test harness shared by every end-to-end test: starts Azurite and `lustre-sim`
//! as real processes on 127.0.0.1 and finds the workspace's built binaries.
//!
//! * [`Azurite`]: an in-memory `azurite-blob` on a free loopback port, stopped on drop.
//! * [`sim::Sim`]: a running `lustre-sim mds` on a temporary mount ([`sim_lib_path`] for the library).
//! * [`target_dir`] / [`bin_path`]: the cargo target directory the running test was built in.

mod azurite;
mod paths;
pub mod proxy;
mod sharedkey;
pub mod sim;

pub use azurite::{Azurite, AZURITE_ACCOUNT, AZURITE_KEY};
pub use paths::{bin_path, target_dir, workspace_root};
pub use sharedkey::{percent_encode, sign_shared_key, signed_exchange};
pub use sim::sim_lib_path;
