//! Test harness shared by every end-to-end test: starts Azurite and `lustre-sim`
//! as real processes on 127.0.0.1 and finds the workspace's built binaries.
//!
//! * [`Azurite`]: an `azurite-blob` (in memory or on disk) on a free loopback port, stopped on
//!   drop; [`BlobEndpoint`]: the URLs of it (or of a [`proxy::FaultProxy`] in front of it).
//! * [`sim::Sim`]: a running `lustre-sim mds` on a temporary mount ([`sim_lib_path`] for the library).
//! * [`target_dir`] / [`bin_path`]: the cargo target directory the running test was built in.

mod azurite;
pub mod http;
mod paths;
pub mod proxy;
mod sharedkey;
pub mod sim;

pub use azurite::{Azurite, AZURITE_ACCOUNT, AZURITE_KEY};
pub use paths::{bin_path, target_dir, workspace_root};
pub use sharedkey::{percent_encode, sign_shared_key, signed_exchange};
pub use sim::sim_lib_path;

/// Something that serves the Azurite account on a loopback port (Azurite itself, or a proxy in
/// front of it): the URLs a test hands to the product.
pub trait BlobEndpoint {
    /// The TCP port on 127.0.0.1.
    fn port(&self) -> u16;

    /// The account endpoint, path-style: `http://127.0.0.1:PORT/devstoreaccount1`.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port())
    }

    /// A container URL (the policy file's `blob.url` with `use_emulator = true`).
    fn container_url(&self, container: &str) -> String {
        format!("{}/{container}", self.url())
    }
}
