//! Test harness shared by every end-to-end test: starts Azurite and `lustre-sim`
//! as real processes on 127.0.0.1 and finds the workspace's built binaries.
