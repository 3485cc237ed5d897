//! Bad input (issue 7 item 5), with real processes: malformed and hostile policy files, unknown
//! flags, unreadable credentials, a container that does not exist, names a blob cannot carry,
//! 1,024+ byte paths, files that vanish before export, hostile blob names on import. Each gives
//! one clear line (and exit code 2) or a logged per-file failure, and nothing else is affected.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::stack::{Stack, StackOptions};
use e2e::util::{nonempty_lines, wait_until};
use testkit::bin_path;

const GOOD: &str = r#"[lustre]
mount = "/mnt/lustre"
archive_id = 1
changelog_user = "cl1"

[blob]
url = "http://127.0.0.1:10000/devstoreaccount1/export"
use_emulator = true

[autoexport]
path = "projects/"
min_age = "0s"

[copytool]
max_actions = 8
block_size = "1MiB"
"#;

/// Both binaries with this policy file: `lustre-blob daemon --config F` and
/// `lhsmtool_blob --config F MOUNT`.
fn run_both(file: &Path) -> Vec<(String, Output)> {
    let mnt = tempfile::tempdir().unwrap();
    let daemon = Command::new(bin_path("lustre-blob"))
        .arg("daemon")
        .arg("--config")
        .arg(file)
        .output()
        .unwrap();
    let copytool = Command::new(bin_path("lhsmtool_blob"))
        .arg("--config")
        .arg(file)
        .arg(mnt.path())
        .output()
        .unwrap();
    vec![
        ("lustre-blob daemon".into(), daemon),
        ("lhsmtool_blob".into(), copytool),
    ]
}

/// Exit code 2 and exactly one line on stderr naming `FILE:LINE` (when a line is given, else the
/// file) and the key (when given).
fn assert_refused(outs: &[(String, Output)], file: &Path, line: Option<usize>, key: Option<&str>) {
    // Every binary is checked before failing, so the message says which ones are wrong.
    let mut wrong = Vec::new();
    for (who, o) in outs {
        let err = String::from_utf8_lossy(&o.stderr);
        let lines = nonempty_lines(&err);
        let where_ = match line {
            Some(n) => format!("{}:{n}", file.display()),
            None => file.display().to_string(),
        };
        if o.status.code() != Some(2) {
            wrong.push(format!(
                "{who}: exit code {:?}, want 2; stderr: {err}",
                o.status.code()
            ));
        } else if lines.len() != 1 {
            wrong.push(format!("{who}: one line expected, got: {err}"));
        } else if !lines[0].contains(&where_) {
            wrong.push(format!("{who}: `{where_}` not in: {err}"));
        } else if key.is_some_and(|k| !lines[0].contains(k)) {
            wrong.push(format!("{who}: key `{}` not in: {err}", key.unwrap_or("")));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Writes `text` as a policy file and checks both binaries refuse it.
fn refused(text: &str, line: Option<usize>, key: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, text).unwrap();
    assert_refused(&run_both(&file), &file, line, key);
}

/// GOOD with `from` replaced by `to` (the line number stays that of `from`).
fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn policy_syntax_error_names_file_and_line() {
    let t = good_with("archive_id = 1", "archive_id = = 1");
    refused(&t, Some(line_of(&t, "= = 1")), None);
    let t = good_with("[autoexport]", "[autoexport");
    refused(&t, Some(line_of(&t, "[autoexport")), None);
}

#[test]
fn policy_unknown_key_is_refused() {
    let t = good_with("min_age = \"0s\"", "min_age = \"0s\"\nmin_agee = \"5s\"");
    refused(
        &t,
        Some(line_of(&t, "min_agee")),
        Some("autoexport.min_agee"),
    );
    let t = format!("{GOOD}\n[extra]\nx = 1\n");
    refused(&t, Some(line_of(&t, "[extra]")), Some("extra"));
}

#[test]
fn policy_wrong_type_is_refused() {
    let t = good_with("archive_id = 1", "archive_id = \"one\"");
    refused(&t, Some(line_of(&t, "\"one\"")), Some("lustre.archive_id"));
    let t = good_with("use_emulator = true", "use_emulator = \"yes\"");
    refused(&t, Some(line_of(&t, "\"yes\"")), Some("blob.use_emulator"));
}

#[test]
fn policy_bad_duration_is_refused() {
    let t = good_with("min_age = \"0s\"", "min_age = \"5 parsecs\"");
    refused(&t, Some(line_of(&t, "parsecs")), Some("autoexport.min_age"));
    let t = good_with("min_age = \"0s\"", "min_age = 30");
    refused(&t, Some(line_of(&t, "min_age")), Some("autoexport.min_age"));
}

#[test]
fn policy_huge_values_are_refused() {
    for (from, to, key) in [
        (
            "max_actions = 8",
            "max_actions = 99999999999999",
            "copytool.max_actions",
        ),
        (
            "block_size = \"1MiB\"",
            "block_size = \"900TiB\"",
            "copytool.block_size",
        ),
        (
            "archive_id = 1",
            "archive_id = 4294967296",
            "lustre.archive_id",
        ),
        (
            "min_age = \"0s\"",
            "min_age = \"9999999999999999 years\"",
            "autoexport.min_age",
        ),
    ] {
        let t = good_with(from, to);
        refused(&t, Some(line_of(&t, to)), Some(key));
    }
}

#[test]
fn policy_missing_mount_or_url_is_refused() {
    let t = good_with("mount = \"/mnt/lustre\"\n", "");
    refused(&t, None, Some("lustre.mount"));
    let t = good_with(
        "url = \"http://127.0.0.1:10000/devstoreaccount1/export\"\n",
        "",
    );
    refused(&t, None, Some("blob.url"));
}

#[test]
fn hostile_policy_files_are_refused() {
    // An export prefix escaping the mount.
    let t = good_with("path = \"projects/\"", "path = \"../../etc\"");
    refused(&t, Some(line_of(&t, "../../etc")), Some("autoexport.path"));
    // Not UTF-8.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("binary.toml");
    let mut bytes = GOOD.as_bytes().to_vec();
    bytes.extend_from_slice(b"\n\xff\xfe\x00garbage\n");
    std::fs::write(&file, &bytes).unwrap();
    assert_refused(&run_both(&file), &file, None, None);
    // Megabytes of junk on one line: still one line of error, not the junk.
    let file = dir.path().join("junk.toml");
    std::fs::write(&file, format!("{GOOD}\n{}\n", "x".repeat(4 << 20))).unwrap();
    let outs = run_both(&file);
    assert_refused(&outs, &file, None, None);
    for (who, o) in &outs {
        assert!(
            o.stderr.len() < 4096,
            "{who} echoed the junk: {} bytes",
            o.stderr.len()
        );
    }
    // A directory and a missing file.
    assert_refused(&run_both(dir.path()), dir.path(), None, None);
    let missing = dir.path().join("missing.toml");
    assert_refused(&run_both(&missing), &missing, None, None);
}

#[test]
fn unknown_flags_give_one_line_and_exit_2() {
    let mnt = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<&OsStr>, &str)> = vec![
        (
            "lustre-blob",
            vec!["daemon".as_ref(), "--frobnicate".as_ref()],
            "--frobnicate",
        ),
        ("lustre-blob", vec!["frobnicate".as_ref()], "frobnicate"),
        (
            "lustre-blob",
            vec!["status".as_ref(), "--no-such-flag".as_ref()],
            "--no-such-flag",
        ),
        (
            "lhsmtool_blob",
            vec!["--frobnicate".as_ref(), mnt.path().as_os_str()],
            "--frobnicate",
        ),
        (
            "lhsmtool_blob",
            vec![
                "--max-actions".as_ref(),
                "many".as_ref(),
                mnt.path().as_os_str(),
            ],
            "--max-actions",
        ),
        (
            "lhsmtool_blob",
            vec!["--archive".as_ref(), "1".as_ref()],
            "MOUNTPOINT",
        ),
    ];
    let mut wrong = Vec::new();
    for (bin, args, needle) in cases {
        let o = Command::new(bin_path(bin)).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let lines = nonempty_lines(&err);
        if o.status.code() != Some(2) || lines.len() != 1 || !lines[0].contains(needle) {
            wrong.push(format!(
                "{bin} {args:?}: want exit 2 and one line naming `{needle}`; got {:?}: {err}",
                o.status.code()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A stack whose policy names an unusable credential file: both binaries refuse to start with
/// one line naming the file, and never print what is in it.
#[test]
fn unreadable_credentials_are_refused_without_leaking() {
    let stack = Stack::new(StackOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("account.key");
    std::fs::write(&secret_file, "NOT-BASE64-SECRET-7f3a9c!!").unwrap();
    // Private, so that what is refused is its content (a shared file is refused for its mode).
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cases: Vec<(String, PathBuf)> = vec![
        (
            "account_key_file".into(),
            dir.path().join("does-not-exist.key"),
        ),
        ("account_key_file".into(), dir.path().to_path_buf()), // a directory
        ("sas_token_file".into(), dir.path().join("no.sas")),
        ("connection_string_file".into(), dir.path().join("no.conn")),
        ("account_key_file".into(), secret_file.clone()), // unusable content
    ];
    let mut wrong = Vec::new();
    for (key, path) in cases {
        let mut p = stack.policy.clone();
        p.extra.push((
            "blob".into(),
            format!("{key} = {:?}", path.display().to_string()),
        ));
        let file = dir.path().join("policy.toml");
        p.write(&file);
        let mut outs = vec![];
        let o = Command::new(bin_path("lustre-blob"))
            .arg("daemon")
            .arg("--config")
            .arg(&file)
            .envs(stack.sim.env())
            .output()
            .unwrap();
        outs.push(("lustre-blob daemon", o));
        let o = Command::new(bin_path("lhsmtool_blob"))
            .arg("--config")
            .arg(&file)
            .arg(stack.mount())
            .envs(stack.sim.env())
            .output()
            .unwrap();
        outs.push(("lhsmtool_blob", o));
        for (who, o) in outs {
            let err = String::from_utf8_lossy(&o.stderr);
            let lines = nonempty_lines(&err);
            let named = lines.len() == 1 && lines[0].contains(&path.display().to_string());
            // A refusal at start (exit code != 0 and not a signal), in one line naming the file.
            if matches!(o.status.code(), None | Some(0)) || !named {
                wrong.push(format!(
                    "{who} with {key}={}: want a refusal in one line naming the file; got {:?}: {err}",
                    path.display(),
                    o.status.code()
                ));
            }
            let all = String::from_utf8_lossy(&o.stdout).into_owned() + &err;
            assert!(!all.contains("7f3a9c"), "{who} leaked the secret: {all}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The export container does not exist: each try fails with a clear, logged reason, but the
/// file is not failed for good (the container missing is the environment's fault): it waits,
/// `flush` does not say "exported", the daemon and the copytool keep running, and once the
/// container exists the waiting file is exported without being touched again (issue 11).
#[test]
fn missing_container_makes_files_wait_and_keeps_running() {
    let mut stack = Stack::new(StackOptions {
        create_container: false,
        ..Default::default()
    });
    stack.start_copytool(&[]);
    stack.start_daemon();
    let a = stack.write("a.txt", b"first file");
    let o = stack.flush("10s");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        o.status.code(),
        Some(6),
        "flush times out, claims nothing: {text}"
    );
    assert!(
        !stack.hsm_state(&a).contains("archived"),
        "a.txt is not archived"
    );
    assert!(
        stack.copytools[0].alive(),
        "copytool died: {}",
        stack.logs()
    );
    assert!(
        stack.daemon.as_mut().unwrap().alive(),
        "daemon died: {}",
        stack.logs()
    );
    let found = wait_until(Duration::from_secs(60), || {
        stack.store.json_lines(&stack.logs).iter().any(|e| {
            e["kind"] == "failure"
                && e["path"].as_str().is_some_and(|p| p.ends_with("a.txt"))
                && e["azure_code"] == "ContainerNotFound"
                && e["reason"] == "container_missing"
        })
    });
    assert!(
        found,
        "no ContainerNotFound try for a.txt in the logging container"
    );
    let status = stack.status_json();
    assert_eq!(
        status["totalFilesFailed"], 0,
        "not failed for good: {status}"
    );
    assert_eq!(status["everythingExported"], false, "{status}");

    stack.store.create_container(&stack.container);
    let b = stack.write("b.txt", b"second file");
    let o = stack.flush("120s");
    assert!(
        o.status.success(),
        "flush: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        stack.store.get(&stack.container, "a.txt").as_deref(),
        Some(&b"first file"[..]),
        "the file that waited is exported"
    );
    assert_eq!(
        stack.store.get(&stack.container, "b.txt").as_deref(),
        Some(&b"second file"[..])
    );
    assert!(stack.hsm_state(&a).contains("archived"));
    assert!(stack.hsm_state(&b).contains("archived"));
    assert_eq!(stack.status_json()["everythingExported"], true);
}

/// Names a blob cannot carry (not UTF-8; paths over 1,024 bytes) fail per file with a logged
/// reason; the other files of the same iteration are exported.
#[test]
fn uncarriable_names_fail_per_file_others_export() {
    let mut stack = Stack::new(StackOptions::default());
    stack.start_copytool(&[]);
    stack.start_daemon();
    let mut long_rel = PathBuf::new();
    for i in 0..5 {
        long_rel.push(format!("{i}{}", "d".repeat(219)));
    }
    long_rel.push("deep-file.txt");
    assert!(long_rel.as_os_str().len() > 1024);
    let long = stack.write(long_rel.to_str().unwrap(), b"too long a name");
    let bad_name = OsStr::from_bytes(b"bad-\xff\xfe-name.txt");
    let bad = stack.mount().join(bad_name);
    std::fs::write(&bad, b"not utf-8").unwrap();
    let goods: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("ok/file-{i}.txt"),
                format!("content {i}").into_bytes(),
            )
        })
        .collect();
    for (n, c) in &goods {
        stack.write(n, c);
    }
    let o = stack.flush("90s");
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "flush reports the two failures: {text}"
    );
    for (n, c) in &goods {
        assert_eq!(
            stack.store.get(&stack.container, n).as_ref(),
            Some(c),
            "{n}: {}",
            stack.logs()
        );
    }
    let listed = stack.store.list(&stack.container, "");
    assert!(
        listed.iter().all(|b| b.name.len() <= 1024),
        "no blob over 1,024 bytes"
    );
    assert!(
        listed.iter().all(|b| !b.name.starts_with("bad-")),
        "no mangled blob name"
    );
    assert!(!stack.hsm_state(&long).contains("archived"));
    assert!(!stack.hsm_state(&bad).contains("archived"));
    let entries = stack.store.json_lines(&stack.logs);
    let failed = |needle: &str| {
        entries.iter().any(|e| {
            e["kind"] == "failure" && e["path"].as_str().is_some_and(|p| p.contains(needle))
        })
    };
    assert!(failed("deep-file.txt"), "long path not logged: {entries:?}");
    assert!(failed("bad-"), "non-UTF-8 name not logged: {entries:?}");
    assert!(stack.copytools[0].alive() && stack.daemon.as_mut().unwrap().alive());
}

/// A file removed after its change was recorded but before it was exported: no blob, no
/// crash, the rest of the iteration is exported.
#[test]
fn file_vanishing_before_export_affects_nothing_else() {
    let mut stack = Stack::new(StackOptions {
        min_age: "3s".into(),
        ..Default::default()
    });
    stack.start_copytool(&[]);
    stack.start_daemon();
    let gone = stack.write("v/gone.txt", b"here for a moment");
    stack.write("v/kept.txt", b"kept");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&gone).unwrap();
    let o = stack.flush("60s");
    assert!(
        o.status.code().is_some(),
        "flush ended: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        stack.store.get(&stack.container, "v/kept.txt").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(stack.store.get(&stack.container, "v/gone.txt"), None);
    assert!(
        stack.copytools[0].alive() && stack.daemon.as_mut().unwrap().alive(),
        "{}",
        stack.logs()
    );
    // The copytool path: the coordinator hands over a FID whose file is gone by then.
    let f = stack.write("w/racy.txt", b"racy");
    let o = stack.hsm_archive(&[&f]);
    assert!(o.status.success());
    std::fs::remove_file(&f).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        stack.copytools[0].alive(),
        "copytool died: {}",
        stack.logs()
    );
    let later = stack.write("w/after.txt", b"after");
    assert!(stack.flush("60s").status.success());
    assert_eq!(
        stack.store.get(&stack.container, "w/after.txt").as_deref(),
        Some(&b"after"[..])
    );
    assert!(stack.hsm_state(&later).contains("archived"));
}

/// Import refuses blob names with `..`, absolute paths or control characters, logs each, writes
/// nothing outside the mount, and imports the rest.
#[test]
fn hostile_blob_names_on_import_are_refused() {
    let mut stack = Stack::new(StackOptions::default());
    // One blob-integration job at a time: no auto-export while importing.
    stack.edit_policy(|p| p.autoexport = false);
    stack.start_copytool(&[]);
    stack.start_daemon();
    let tag = format!("e2e{}", std::process::id());
    let hostile: Vec<Vec<u8>> = vec![
        format!("../{tag}-up1.txt").into_bytes(),
        format!("sub/../../{tag}-up2.txt").into_bytes(),
        format!("/{tag}-abs.txt").into_bytes(),
        format!("sub/{tag}-nl\nname.txt").into_bytes(),
        format!("sub/{tag}-tab\tname.txt").into_bytes(),
        format!("sub/{tag}-del\x7fname.txt").into_bytes(),
    ];
    for n in &hostile {
        let r = stack.store.put_raw(&stack.container, n, b"evil");
        assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(n));
    }
    let listed = stack.store.list(&stack.container, "");
    assert_eq!(
        listed.len(),
        hostile.len(),
        "Azurite kept every hostile name: {listed:?}"
    );
    stack
        .store
        .put_raw(&stack.container, b"good/a.txt", b"good");
    let o = stack.cli(&["import", "--wait"]);
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "import reports the refused names: {text}"
    );
    let good = stack.mount().join("good/a.txt");
    assert_eq!(
        std::fs::metadata(&good).map(|m| m.len()).ok(),
        Some(4),
        "{text}"
    );
    assert!(
        stack.hsm_state(&good).contains("released"),
        "{}",
        stack.hsm_state(&good)
    );
    // Nothing outside the mount.
    let up1 = stack
        .mount()
        .parent()
        .unwrap()
        .join(format!("{tag}-up1.txt"));
    let up2 = stack
        .mount()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(format!("{tag}-up2.txt"));
    let abs = PathBuf::from(format!("/{tag}-abs.txt"));
    for p in [&up1, &up2, &abs] {
        assert!(!p.exists(), "{} was written", p.display());
        let _ = std::fs::remove_file(p);
    }
    // Nothing with a control character inside it either.
    let mut stack_dirs = vec![stack.mount().to_path_buf()];
    while let Some(d) = stack_dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name();
            assert!(
                !name.as_bytes().iter().any(|b| *b < 0x20 || *b == 0x7f),
                "imported {:?}",
                e.path()
            );
            if e.file_type().unwrap().is_dir() && name != ".lustre" {
                stack_dirs.push(e.path());
            }
        }
    }
    let entries = stack.store.json_lines(&stack.logs);
    let refused = entries
        .iter()
        .filter(|e| e["kind"] == "failure" && e["path"].as_str().is_some_and(|p| p.contains(&tag)))
        .count();
    assert_eq!(
        refused,
        hostile.len(),
        "each refused name is logged: {entries:?}"
    );
    assert!(stack.daemon.as_mut().unwrap().alive(), "{}", stack.logs());
}

/// A daemon pointed at the state directory of another file system (its cursors count in other
/// changelogs, its FIDs name other files) refuses to start with one line naming the state file,
/// both sources and the way out, and leaves that state as it was.
#[test]
fn a_state_directory_of_another_file_system_is_refused() {
    let mut first = Stack::new(StackOptions::default());
    first.start_copytool(&[]);
    first.start_daemon();
    first.write("projects/a.dat", b"a");
    assert!(first.flush("60s").status.success(), "{}", first.logs());
    let code = first
        .daemon
        .as_mut()
        .map(|d| d.stop(Duration::from_secs(20)));
    assert_eq!(code, Some(Some(0)), "{}", first.logs());
    let state_dir = first.policy.state_dir.clone();
    let state = std::fs::read(state_dir.join("state.json")).expect("state saved at exit");

    let mut second = Stack::new(StackOptions::default());
    second.edit_policy(|p| p.state_dir = state_dir.clone());
    let out = Command::new(bin_path("lustre-blob"))
        .envs(second.sim.env())
        .args(["daemon", "--config"])
        .arg(&second.policy_path)
        .output()
        .expect("running lustre-blob daemon");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines = nonempty_lines(&err);
    assert!(!out.status.success(), "started on a foreign state: {err}");
    assert_eq!(lines.len(), 1, "{err}");
    let mdt = |s: &Stack| s.sim.mdt_name(0);
    for needle in [
        "state.json",
        &format!("on {}", mdt(&first)),
        &format!("on {}", mdt(&second)),
        "state_dir",
    ] {
        assert!(lines[0].contains(needle), "{needle:?} missing: {err}");
    }
    assert_eq!(
        std::fs::read(state_dir.join("state.json")).unwrap(),
        state,
        "the refused state is left as it was"
    );
}

/// Import trusts no blob metadata (issue 11 item 6), with real processes: setuid/setgid/sticky
/// bits are dropped, an owner that is not an id refuses the blob (never root), bad permissions and
/// modtimes get safe values (counted in `totalCoercedValues`, logged per blob), folder markers
/// become directories their owner can enter.
#[test]
fn hostile_blob_metadata_on_import_is_never_trusted() {
    use std::os::unix::fs::MetadataExt;
    let mut stack = Stack::new(StackOptions::default());
    stack.edit_policy(|p| p.autoexport = false);
    stack.start_copytool(&[]);
    stack.start_daemon();
    let put = |name: &str, meta: &[(&str, &str)]| {
        let headers: Vec<(String, String)> =
            std::iter::once(("x-ms-blob-type".into(), "BlockBlob".into()))
                .chain(
                    meta.iter()
                        .map(|(k, v)| (format!("x-ms-meta-{k}"), v.to_string())),
                )
                .collect();
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body: &[u8] = if meta.iter().any(|(k, _)| *k == "hdi_isfolder") {
            b""
        } else {
            b"data"
        };
        let r = stack
            .store
            .request(
                "PUT",
                &format!("/{}/{name}", stack.container),
                &[],
                &h,
                body,
            )
            .expect("put blob");
        assert_eq!(r.status, 201, "{name}");
    };
    put(
        "m/suid",
        &[("permissions", "4755"), ("owner", "0"), ("group", "0")],
    );
    put("m/all", &[("permissions", "7777"), ("owner", "0")]);
    put("m/alice", &[("permissions", "0755"), ("owner", "alice")]);
    put("m/minus", &[("owner", "-1")]);
    put("m/abc", &[("permissions", "abc")]);
    put("m/garbage", &[("modtime", "garbage")]);
    put(
        "m/badperm",
        &[("hdi_isfolder", "true"), ("permissions", "abc")],
    );
    put("m/noperm", &[("hdi_isfolder", "true")]);
    let o = stack.cli(&["import", "--wait", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let text = out.clone() + &String::from_utf8_lossy(&o.stderr);
    // Two blobs refused: the import finishes with failures (exit 1), the rest is imported.
    assert_eq!(o.status.code(), Some(1), "{text}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(j["totalErrors"], 2, "{text}");
    // 4755 and 7777 (special bits), abc, garbage, and the folder's abc.
    assert_eq!(j["totalCoercedValues"], 5, "{text}");
    let md = |n: &str| std::fs::symlink_metadata(stack.mount().join("m").join(n));
    let suid = md("suid").expect("suid imported");
    assert_eq!(
        suid.mode() & 0o7777,
        0o755,
        "a setuid-root file was planted"
    );
    assert_eq!(md("all").unwrap().mode() & 0o7777, 0o777);
    assert!(md("alice").is_err(), "owner=alice was imported");
    assert!(md("minus").is_err(), "owner=-1 was imported");
    assert_eq!(md("abc").unwrap().mode() & 0o7777, 0o644);
    let garbage = md("garbage").unwrap();
    assert!(
        garbage.mtime() > 1_600_000_000,
        "mtime {} (1970?)",
        garbage.mtime()
    );
    for d in ["badperm", "noperm"] {
        let m = md(d).unwrap_or_else(|e| panic!("{d}: {e}"));
        assert!(m.is_dir(), "{d} is not a directory");
        assert_eq!(m.mode() & 0o7777, 0o755, "{d}");
    }
    let entries = stack.store.json_lines(&stack.logs);
    for (path, op) in [
        ("m/suid", "import-metadata"),
        ("m/all", "import-metadata"),
        ("m/abc", "import-metadata"),
        ("m/garbage", "import-metadata"),
        ("m/badperm", "import-metadata"),
        ("m/alice", "import"),
        ("m/minus", "import"),
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e["path"] == path && e["operation"] == op),
            "no {op} line for {path}: {entries:?}"
        );
    }
}

/// `lustre-blob ARGS --config P` with the simulator's environment; `closed_stdout` closes the
/// reading end of its standard output before it writes (what `| head -1` does once it has its line).
fn lustre_blob(stack: &Stack, policy: &Path, args: &[&str], closed_stdout: bool) -> Output {
    let mut c = Command::new(bin_path("lustre-blob"));
    c.envs(stack.sim.env())
        .args(args)
        .arg("--config")
        .arg(policy)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if !closed_stdout {
        return c.output().expect("running lustre-blob");
    }
    c.stdout(std::process::Stdio::piped());
    let mut child = c.spawn().expect("running lustre-blob");
    drop(child.stdout.take());
    child.wait_with_output().expect("waiting for lustre-blob")
}

fn stderr_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines = nonempty_lines(&err);
    assert_eq!(lines.len(), 1, "one line expected on stderr: {err}");
    lines[0].to_string()
}

/// A policy whose `lustre.mount` does not exist, is a file, or is not Lustre: the daemon exits 2
/// with one line naming the key and the path (issue 11 item 7).
#[test]
fn a_mount_that_is_missing_or_not_lustre_is_named_with_its_key() {
    let stack = Stack::new(StackOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("not-lustre");
    std::fs::create_dir(&plain).unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for (mount, why) in [
        (dir.path().join("missing"), "does not exist"),
        (file.clone(), "is not a directory"),
        (plain.clone(), "is not a Lustre file system"),
    ] {
        let mut p = stack.policy.clone();
        p.mount = mount.clone();
        let policy = dir.path().join("policy.toml");
        p.write(&policy);
        for args in [&["daemon"][..], &["catalog", "x"][..]] {
            let o = lustre_blob(&stack, &policy, args, false);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{args:?} {}: {o:?}",
                mount.display()
            );
            let line = stderr_line(&o);
            for needle in ["lustre.mount", &mount.display().to_string(), why] {
                assert!(line.contains(needle), "{args:?}: {needle:?} not in {line}");
            }
        }
    }
}

/// A `blob.url` whose host does not resolve is one line at start naming the key and the host,
/// not minutes of retries (`.invalid` never resolves, RFC 6761; nothing leaves the machine).
#[test]
fn a_blob_host_that_does_not_resolve_is_reported_at_start() {
    let stack = Stack::new(StackOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let mut p = stack.policy.clone();
    p.url = "http://no-such-account.invalid:10000/devstoreaccount1/export".into();
    let policy = dir.path().join("policy.toml");
    p.write(&policy);
    let t0 = std::time::Instant::now();
    let o = lustre_blob(&stack, &policy, &["daemon"], false);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let line = stderr_line(&o);
    assert!(
        line.contains("blob.url") && line.contains("no-such-account.invalid"),
        "{line}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
    // The copytool too.
    let t0 = std::time::Instant::now();
    let o = Command::new(bin_path("lhsmtool_blob"))
        .envs(stack.sim.env())
        .arg("--config")
        .arg(&policy)
        .arg(stack.mount())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let line = stderr_line(&o);
    assert!(
        line.contains("blob.url") && line.contains("no-such-account.invalid"),
        "{line}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
}

/// Missing CLI arguments are named (clap puts them on a second line: they must reach the one line).
#[test]
fn a_missing_cli_argument_is_named() {
    for (args, needle) in [
        (&["cancel"][..], "<ID>"),
        (&["export"][..], "<PATH>"),
        (&["catalog"][..], "<PATHS>"),
        (&["catalog", "--json"][..], "<PATHS>"),
        (&["autoexport"][..], "<ACTION>"),
    ] {
        let o = Command::new(bin_path("lustre-blob"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let line = stderr_line(&o);
        assert!(line.contains(needle), "{args:?}: {needle} not in {line}");
    }
}

/// Import refuses an absolute `--prefix` and a negative `--maximum-errors` other than -1 before
/// anything starts (exit 2, the flag named).
#[test]
fn import_refuses_an_absolute_prefix_and_negative_maximum_errors() {
    for (args, needle) in [
        (&["import", "--prefix", "/abs"][..], "--prefix"),
        (
            &["import", "--maximum-errors", "-2"][..],
            "--maximum-errors",
        ),
    ] {
        let o = Command::new(bin_path("lustre-blob"))
            .args(args)
            .args(["--config", "/nonexistent/policy.toml"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let line = stderr_line(&o);
        assert!(line.contains(needle), "{args:?}: {needle} not in {line}");
    }
}

/// On a running system: `flush --timeout 0` once everything is exported succeeds; `export` of a
/// missing path or of a file says why on stderr; `catalog` of a file outside Lustre says so; and
/// every command that prints exits quietly (141, no panic) when its reader has gone (`| head -1`).
#[test]
fn cli_errors_a_person_can_act_on_and_closed_pipes() {
    let mut stack = Stack::new(StackOptions::default());
    stack.start_copytool(&[]);
    stack.start_daemon();
    let a = stack.write("projects/a.dat", b"a");
    let b = stack.write("projects/b.dat", b"b");
    assert!(stack.flush("60s").status.success(), "{}", stack.logs());
    let policy = stack.policy_path.clone();

    let o = lustre_blob(
        &stack,
        &policy,
        &["flush", "--wait", "--timeout", "0"],
        false,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "flush --timeout 0 on an exported system: {o:?}"
    );

    let missing = stack.mount().join("projects/missing");
    let o = lustre_blob(
        &stack,
        &policy,
        &["export", missing.to_str().unwrap()],
        false,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr_line(&o).contains("no such directory"), "{o:?}");
    let o = lustre_blob(&stack, &policy, &["export", a.to_str().unwrap()], false);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr_line(&o).contains("not a directory"), "{o:?}");

    let outside = tempfile::NamedTempFile::new().unwrap();
    let o = lustre_blob(
        &stack,
        &policy,
        &["catalog", outside.path().to_str().unwrap()],
        false,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr_line(&o).contains("not a Lustre file"), "{o:?}");

    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let projects = stack.mount().join("projects");
    let projects = projects.to_str().unwrap();
    let mut wrong = Vec::new();
    let mut check = |args: &[&str], must_print: bool| {
        let o = lustre_blob(&stack, &policy, args, true);
        let err = String::from_utf8_lossy(&o.stderr);
        let want: &[i32] = if must_print { &[141] } else { &[0, 141] };
        if !o.status.code().is_some_and(|c| want.contains(&c)) || err.contains("panicked") {
            wrong.push(format!(
                "{args:?}: exit {:?}, stderr: {err}",
                o.status.code()
            ));
        }
    };
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["jobs"],
        &["jobs", "--json"],
        &["catalog", a, b],
        &["catalog", "--json", a, b],
        &["flush"],
        &["flush", "--json"],
        &["flush", "--wait", "--timeout", "60s"],
        &["flush", "--wait", "--json", "--timeout", "60s"],
        &["autoexport", "disable"],
        &["export", "--wait", projects],
        &["import", "--prefix", "nothing-here/", "--wait"],
        &["jobs", "--json"],
    ] {
        check(args, true);
    }
    check(&["--help"], false);
    check(&["--version"], false);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A credential file its group or others can read is refused by both binaries at start, in one
/// line naming the key, the file and its mode (as ssh refuses such a key); with
/// `blob.allow_shared_credentials_file = true` it is only warned about.
#[test]
fn credential_files_open_to_others_are_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let stack = Stack::new(StackOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("account.key");
    std::fs::write(&key, "SECRET-51d0c0ffee").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut p = stack.policy.clone();
    p.extra.push((
        "blob".into(),
        format!("account_key_file = {:?}", key.display().to_string()),
    ));
    let policy = dir.path().join("policy.toml");
    p.write(&policy);
    for (bin, args) in [
        ("lustre-blob", vec!["daemon".to_string()]),
        ("lhsmtool_blob", vec![stack.mount().display().to_string()]),
    ] {
        let o = Command::new(bin_path(bin))
            .envs(stack.sim.env())
            .args(&args)
            .arg("--config")
            .arg(&policy)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bin}: {o:?}");
        let line = stderr_line(&o);
        for needle in [
            "blob.account_key_file",
            &key.display().to_string(),
            "mode 0644",
            "chmod 600",
        ] {
            assert!(line.contains(needle), "{bin}: {needle:?} not in {line}");
        }
        assert!(!line.contains("51d0"), "{bin} leaked the secret: {line}");
    }
    // Allowed by policy: the refusal becomes a warning (the bad key content then stops it, later).
    p.extra
        .push(("blob".into(), "allow_shared_credentials_file = true".into()));
    p.write(&policy);
    let o = lustre_blob(&stack, &policy, &["daemon"], false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: blob.account_key_file") && err.contains("mode 0644"),
        "{err}"
    );
}
