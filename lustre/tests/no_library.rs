//! On a machine without liblustreapi every entry point fails with one readable error naming
//! the library path that was tried (the bogus LUSTREAPI_LIB is set in a child process only).

use lustre::{changelog_clear, ChangelogReader, Copytool, Error, Mount};
use std::path::Path;

const CHILD: &str = "LUSTRE_NO_LIBRARY_CHILD";

#[test]
fn every_entry_point_reports_the_missing_library() {
    if std::env::var_os(CHILD).is_some() {
        let tmp = std::env::temp_dir();
        let errors: Vec<Error> = vec![
            Mount::open(&tmp).unwrap_err(),
            ChangelogReader::start("lustre-MDT0000", 0, false).unwrap_err(),
            changelog_clear("lustre-MDT0000", "cl1", 0).unwrap_err(),
            Copytool::register(Path::new("/mnt/lustre"), &[1], false).unwrap_err(),
            lustre::set_log_level(5).unwrap_err(),
        ];
        for e in errors {
            assert!(matches!(e, Error::LibraryNotFound { .. }), "{e:?}");
            assert_eq!(e.errno(), None);
            println!("CHILD-ERROR: {e}");
        }
        return;
    }
    let bogus = std::env::temp_dir().join("lustre-no-such-dir/liblustreapi_sim.so");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "every_entry_point_reports_the_missing_library",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("LUSTREAPI_LIB", &bogus)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("CHILD-ERROR: "))
        .collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for line in lines {
        assert!(line.contains("liblustreapi not found"), "{line}");
        assert!(line.contains(&*bogus.to_string_lossy()), "{line}");
    }
}
