//! Loading the function table: candidate selection and the errors a machine without Lustre gets.

use lustre_sys::{
    candidates_from, LoadError, LustreApi, LUSTREAPI_DEVNAME, LUSTREAPI_LIB_ENV, LUSTREAPI_SONAME,
};
use std::ffi::OsString;

#[test]
fn env_path_replaces_the_default_names() {
    assert_eq!(
        candidates_from(Some(OsString::from("/opt/sim/liblustreapi_sim.so"))),
        vec![OsString::from("/opt/sim/liblustreapi_sim.so")]
    );
    let defaults = vec![
        OsString::from(LUSTREAPI_SONAME),
        OsString::from(LUSTREAPI_DEVNAME),
    ];
    assert_eq!(candidates_from(None), defaults);
    assert_eq!(candidates_from(Some(OsString::new())), defaults);
    assert_eq!(LUSTREAPI_SONAME, "liblustreapi.so.1");
    assert_eq!(LUSTREAPI_LIB_ENV, "LUSTREAPI_LIB");
}

#[test]
fn missing_library_names_every_path_tried_on_one_line() {
    let dir = std::env::temp_dir();
    let a = dir.join("lustre-sys-test-no-such-lib-a.so");
    let b = dir.join("lustre-sys-test-no-such-lib-b.so");
    let err = LustreApi::load_first(&[a.clone().into(), b.clone().into()]).unwrap_err();
    let LoadError::NotFound { tried } = &err else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(tried.len(), 2);
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains(&*a.to_string_lossy()), "{text}");
    assert!(text.contains(&*b.to_string_lossy()), "{text}");
    assert!(text.contains("LUSTREAPI_LIB"), "{text}");
}

#[test]
fn a_library_without_the_symbols_is_rejected_by_name() {
    // libc opens everywhere but exports no llapi_* symbol.
    let err = LustreApi::load_first(&["libc.so.6".into()]).unwrap_err();
    assert_eq!(
        err,
        LoadError::MissingSymbol {
            library: "libc.so.6".into(),
            symbol: LustreApi::REQUIRED_SYMBOLS[0],
        }
    );
    assert_eq!(
        err.to_string(),
        "libc.so.6: required symbol llapi_hsm_copytool_register is missing"
    );
}

#[test]
fn optional_symbols_are_the_post_2_12_additions() {
    for sym in [
        "llapi_fid_parse",
        "llapi_fid2path_at",
        "llapi_open_by_fid_at",
        "llapi_root_path_open",
        "llapi_changelog_repack_rec",
        "llapi_changelog_start_user",
        "llapi_changelog_in_buf",
    ] {
        assert!(LustreApi::OPTIONAL_SYMBOLS.contains(&sym), "{sym}");
        assert!(!LustreApi::REQUIRED_SYMBOLS.contains(&sym), "{sym}");
    }
    for sym in [
        "llapi_hsm_copytool_recv",
        "llapi_changelog_recv",
        "llapi_fid2path",
    ] {
        assert!(LustreApi::REQUIRED_SYMBOLS.contains(&sym), "{sym}");
    }
}

/// `lib()` reads LUSTREAPI_LIB; run it in a child process so the variable does not leak into
/// other tests (and the cached outcome is the child's own).
#[test]
fn lib_uses_lustreapi_lib_from_the_environment() {
    if std::env::var_os("LUSTRE_SYS_CHILD").is_some() {
        let err = lustre_sys::lib().unwrap_err();
        println!("CHILD-ERROR: {err}");
        return;
    }
    let bogus = std::env::temp_dir().join("lustre-sys-bogus-dir/liblustreapi_sim.so");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lib_uses_lustreapi_lib_from_the_environment",
            "--nocapture",
        ])
        .env("LUSTRE_SYS_CHILD", "1")
        .env(LUSTREAPI_LIB_ENV, &bogus)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CHILD-ERROR: "))
        .unwrap_or_else(|| panic!("no error line in {stdout}"));
    assert!(line.contains(&*bogus.to_string_lossy()), "{line}");
    assert!(!line.contains(LUSTREAPI_SONAME), "{line}");
}
