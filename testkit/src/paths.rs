//! Where the workspace and its built binaries are, found from the running test executable
//! (so `CARGO_TARGET_DIR` and custom profiles work without configuration).

use std::path::PathBuf;

/// The root of the cargo workspace (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The profile directory the current test executable was built into (e.g. `target/debug`).
///
/// Test executables live in `<target>/<profile>/deps/`; binaries and cdylibs in `<target>/<profile>/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe
        .parent()
        .map(PathBuf::from)
        .expect("executable has a parent");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// The path of a workspace binary (`lustre-sim`, `lhsmtool_blob`, `lustre-blob`, ...) next to the tests.
pub fn bin_path(name: &str) -> PathBuf {
    target_dir().join(name)
}
