//! `liblustreapi_sim.so`: an ABI-compatible liblustreapi backed by the `lustre-sim mds` daemon.
