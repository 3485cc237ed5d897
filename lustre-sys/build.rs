//! Build script. Does nothing unless the `bindgen` feature is on. With the feature, and when the
//! Lustre headers are installed (`$LUSTRE_INCLUDE_DIR`, default `/usr/include`, must contain
//! `lustre/lustreapi.h`), it generates bindings into `$OUT_DIR/bindings.rs` and sets the cfg
//! `lustre_bindgen`, which enables the `bindgen_layout` test comparing them with the
//! hand-written layouts. Without headers it prints a warning and the test compiles to nothing.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lustre_bindgen)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=LUSTRE_INCLUDE_DIR");
    #[cfg(feature = "bindgen")]
    generate();
}

#[cfg(feature = "bindgen")]
fn generate() {
    use std::path::PathBuf;

    let include = std::env::var_os("LUSTRE_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let api_header = include.join("lustre/lustreapi.h");
    if !api_header.exists() {
        println!(
            "cargo::warning=bindgen feature: {} not found; layout comparison skipped",
            api_header.display()
        );
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let wrapper = "#include <stdbool.h>\n#include <sys/stat.h>\n#include <lustre/lustreapi.h>\n\
                   #include <linux/lustre/lustre_idl.h>\n#include <linux/lustre/lustre_kernelcomm.h>\n";
    let bindings = bindgen::Builder::default()
        .header_contents("lustre_sys_wrapper.h", wrapper)
        .clang_arg(format!("-I{}", include.display()))
        .allowlist_type("lu_fid|hsm_.*|changelog_.*|kuc_hdr|lustre_kernelcomm|getinfo_fid2path")
        .layout_tests(false)
        .generate()
        .expect("bindgen failed on the installed Lustre headers");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings.rs");
    println!("cargo::rerun-if-changed={}", api_header.display());
    println!("cargo::rustc-cfg=lustre_bindgen");
}
